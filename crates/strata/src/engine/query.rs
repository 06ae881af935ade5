//! Rows out: `SELECT` over tables and views, `SHOW` and `DESCRIBE`. A query runs in two
//! steps — read its input rows from one object ([`Kernel::query_input`]), then compute the
//! answer from them ([`finish`]) — so that the input can also come from several places.

use super::aggregate::AggState;
use super::kernel::Kernel;
use super::plan::{PlannedSelect, Query, SelectPlan};
use super::schema::ResultSet;
use crate::batch::Column;
use crate::error::{Result, SqlError};
use crate::profile::PhysicalProfile;
use crate::sql::expr::Expr;
use crate::sql::ObjectKind;
use crate::state::StateBackend;
use crate::types::{DataType, Key, Value};

impl<P: PhysicalProfile> Kernel<P> {
    /// Answers a planned SELECT.
    pub fn select(&self, query: Query) -> Result<ResultSet> {
        let rows = self.query_input(&query)?;
        let columns = self
            .columns_of(&query.from)
            .expect("planned against the catalog");
        finish::<P>(query.planned, &columns, rows)
    }

    /// The rows a query reads: a table's rows (only those an index says can match, when
    /// one covers the WHERE), or a view's output rows (one group's, for a lookup by the
    /// group key). The whole WHERE is applied to them afterwards.
    pub fn query_input(&self, query: &Query) -> Result<Vec<Vec<Value>>> {
        let filter = filter_of(&query.planned);
        match query.kind {
            ObjectKind::Table => {
                let t = &self.tables[&query.from];
                // The whole primary key, each column equal to a literal: one row at most.
                if let Some(key) = filter.and_then(|f| t.key_in(f)) {
                    return Ok(t.rows.get(&key).map(|r| r.to_vec()).into_iter().collect());
                }
                Ok(match self.index_candidates(&query.from, filter)? {
                    Some(keys) => keys
                        .iter()
                        .filter_map(|k| t.rows.get(k))
                        .map(|r| r.to_vec())
                        .collect(),
                    None => t.rows.iter().map(|(_, r)| r.to_vec()).collect(),
                })
            }
            ObjectKind::View => {
                let v = &self.views[&query.from];
                // A global aggregate with no input still answers one row, but of all the
                // shards only the one that would hold its group answers it.
                if v.state.is_global()
                    && v.state.is_empty()
                    && !self.part.holds(&Key::Composite(Box::new([])))
                {
                    return Ok(Vec::new());
                }
                Ok(match v.state.lookup_rows(filter)? {
                    Some(rows) => rows,
                    None => v.state.rows()?,
                })
            }
            ObjectKind::Source | ObjectKind::Index => {
                unreachable!("queries are planned on tables and views")
            }
        }
    }

    /// The one key a query reads, when its WHERE selects a single group of a view (by its
    /// GROUP BY column) or a single row of a table (by its primary key): then only the
    /// shard of that key holds its input.
    #[cfg_attr(not(feature = "cluster"), allow(dead_code))]
    pub fn key_lookup(&self, query: &Query) -> Option<Key> {
        let filter = filter_of(&query.planned)?;
        match query.kind {
            ObjectKind::View => self.views[&query.from].state.lookup_key(Some(filter)),
            ObjectKind::Table => self.tables[&query.from].key_in(filter),
            _ => None,
        }
    }

    pub fn show(&self, kind: ObjectKind) -> ResultSet {
        let names: Vec<&String> = match kind {
            ObjectKind::Source => self.sources.keys().collect(),
            ObjectKind::Table => self.tables.keys().collect(),
            ObjectKind::View => self.views.keys().collect(),
            ObjectKind::Index => self.indexes.keys().collect(),
        };
        ResultSet {
            columns: vec![("name".into(), DataType::Text)],
            rows: names
                .into_iter()
                .map(|n| vec![Value::Text(n.as_str().into())])
                .collect(),
        }
    }

    pub fn describe(&self, name: &str) -> Result<ResultSet> {
        let text = |s: &str| Value::Text(s.into());
        let columns = vec![
            ("column".to_string(), DataType::Text),
            ("type".to_string(), DataType::Text),
            ("nullable".to_string(), DataType::Boolean),
            ("key".to_string(), DataType::Boolean),
        ];
        let rows = if let Some(schema) = self.schema_of(name) {
            let pk = self.tables.get(name).map(|t| &t.primary_key);
            schema
                .columns
                .iter()
                .enumerate()
                .map(|(i, c)| {
                    let ty = c.declared.sql_name(c.ty);
                    vec![
                        text(&c.name),
                        text(&ty),
                        Value::Bool(!c.not_null),
                        Value::Bool(pk.is_some_and(|k| k.contains(&i))),
                    ]
                })
                .collect()
        } else if let Some(view) = self.views.get(name) {
            let groups = view.state.plan().groups.len();
            view.columns
                .iter()
                .enumerate()
                .map(|(i, (n, t))| {
                    let is_group = matches!(view.state.plan().output[i], Expr::Column { index, .. } if index < groups);
                    vec![text(n), text(t.sql_name()), Value::Bool(true), Value::Bool(is_group)]
                })
                .collect()
        } else {
            return Err(SqlError::UnknownObject {
                kind: "object",
                kind_plural: "SOURCES, SHOW TABLES or SHOW VIEWS",
                name: name.to_string(),
            }
            .into());
        };
        Ok(ResultSet { columns, rows })
    }
}

/// The WHERE of a planned SELECT.
fn filter_of(planned: &PlannedSelect) -> Option<&Expr> {
    match &planned.plan {
        SelectPlan::Project { filter, .. } => filter.as_ref(),
        SelectPlan::Aggregate(agg) => agg.filter.as_ref(),
    }
}

/// Computes a SELECT's answer from its input rows (in `input_columns`): filter and project,
/// or aggregate; then ORDER BY, OFFSET and LIMIT.
pub(crate) fn finish<P: PhysicalProfile>(
    planned: PlannedSelect,
    input_columns: &[(String, DataType)],
    rows: Vec<Vec<Value>>,
) -> Result<ResultSet> {
    let mut out: Vec<Vec<Value>> = match planned.plan {
        SelectPlan::Project {
            window,
            filter,
            output,
        } => {
            let rows = match window {
                Some(w) => w.expand_rows(rows)?,
                None => rows,
            };
            let mut out = Vec::new();
            for row in &rows {
                if let Some(f) = &filter {
                    if !f.is_true(&row[..])? {
                        continue;
                    }
                }
                out.push(
                    output
                        .iter()
                        .map(|e| e.eval(&row[..]))
                        .collect::<Result<Vec<_>, _>>()?,
                );
            }
            out
        }
        SelectPlan::Aggregate(agg) => {
            let columns: Vec<Column> = input_columns
                .iter()
                .enumerate()
                .map(|(i, (_, ty))| {
                    let values: Vec<Value> = rows.iter().map(|r| r[i].clone()).collect();
                    Column::from_values(*ty, &values)
                })
                .collect();
            // Query scratch state is sized to its input, so it can never be full.
            let mut state = AggState::<P>::new(agg, rows.len().max(1));
            state.apply(&columns, rows.len())?;
            state.rows()?
        }
    };
    if planned.distinct {
        let same = |a: &[Value], b: &[Value]| a.iter().zip(b).all(|(x, y)| x.total_cmp(y).is_eq());
        out.sort_by(|a, b| {
            a.iter()
                .zip(b)
                .map(|(x, y)| x.total_cmp(y))
                .find(|o| o.is_ne())
                .unwrap_or(std::cmp::Ordering::Equal)
        });
        out.dedup_by(|a, b| same(a, b));
    }
    if !planned.order.is_empty() {
        out.sort_by(|a, b| {
            for &(i, desc, nulls_first) in &planned.order {
                let (x, y) = (&a[i], &b[i]);
                let ord = match (x.is_null(), y.is_null()) {
                    (true, true) => std::cmp::Ordering::Equal,
                    (true, false) if nulls_first => std::cmp::Ordering::Less,
                    (true, false) => std::cmp::Ordering::Greater,
                    (false, true) if nulls_first => std::cmp::Ordering::Greater,
                    (false, true) => std::cmp::Ordering::Less,
                    _ if desc => y.total_cmp(x),
                    _ => x.total_cmp(y),
                };
                if ord.is_ne() {
                    return ord;
                }
            }
            std::cmp::Ordering::Equal
        });
    }
    let visible = planned.columns.len();
    let rows = out
        .into_iter()
        .skip(planned.offset)
        .take(planned.limit.unwrap_or(usize::MAX))
        .map(|mut r| {
            r.truncate(visible);
            r
        })
        .collect();
    Ok(ResultSet {
        columns: planned.columns,
        rows,
    })
}
