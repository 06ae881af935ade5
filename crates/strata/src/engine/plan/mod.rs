//! Planning: a parsed statement, bound against the catalog, becomes a [`Plan`] — Strata's
//! own statement, with every name resolved, every expression typed and every `VALUES` row
//! evaluated into typed columns. The engine runs plans; sqlparser's syntax tree ends here.
//!
//! Planning reads the catalog and never changes it. The checks are made in the order a
//! reader expects their errors (the name first, then what the statement refers to, then its
//! expressions), which the golden SQL scripts pin.

mod select;
mod update;

pub(crate) use select::{plan_select, PlannedSelect, SelectPlan};
pub(crate) use update::{Assignments, Conflict};

use super::aggregate::AggPlan;
use super::kernel::{not_in_tier, unknown, Kernel, Part};
use crate::batch::Column;
use crate::error::{Result, SqlError};
use crate::profile::{IndexSupport, PhysicalProfile};
use crate::sql::expr::{bind, eval_constant, Expr, Scope};
use crate::sql::{ColumnSpec, InsertRows, ObjectKind, Parsed};
use crate::types::{DataType, Value};
use sqlparser::ast;

/// A statement's `WHERE`, bound: it must be a BOOLEAN condition.
fn bind_where(selection: Option<&ast::Expr>, scope: &Scope<'_>) -> Result<Option<Expr>> {
    let filter = selection.map(|s| bind(s, scope)).transpose()?;
    if let Some(ty) = filter
        .as_ref()
        .and_then(|f| f.ty())
        .filter(|t| *t != DataType::Boolean)
    {
        return Err(SqlError::Type(format!("WHERE needs a BOOLEAN condition, got {ty}")).into());
    }
    Ok(filter)
}

/// A bound statement.
#[derive(Debug)]
pub(crate) enum Plan {
    CreateSource {
        name: String,
        columns: Vec<ColumnSpec>,
        ddl: String,
    },
    CreateTable {
        name: String,
        /// With the primary key's columns NOT NULL.
        columns: Vec<ColumnSpec>,
        primary_key: Vec<usize>,
        ddl: String,
    },
    CreateView {
        name: String,
        source: String,
        columns: Vec<(String, DataType)>,
        agg: AggPlan,
        /// The defining query, normalised.
        definition: String,
        ddl: String,
    },
    CreateIndex {
        name: String,
        table: String,
        column: usize,
        ddl: String,
    },
    Drop {
        kind: ObjectKind,
        name: String,
        ddl: String,
    },
    /// `DROP … IF EXISTS` of an object that does not exist: nothing to do.
    Nothing,
    Insert {
        target: String,
        /// In schema order, types and constraints checked.
        columns: Vec<Column>,
        conflict: Conflict,
    },
    Delete {
        table: String,
        filter: Option<Expr>,
    },
    Update {
        table: String,
        assignments: Assignments,
    },
    Select(Query),
    Show(ObjectKind),
    Describe(String),
    Checkpoint,
}

/// A planned SELECT and the table or view it reads.
#[derive(Debug)]
pub(crate) struct Query {
    pub from: String,
    pub kind: ObjectKind,
    pub planned: PlannedSelect,
}

impl Plan {
    /// The SQL text a DDL plan records, `None` for other plans.
    #[cfg_attr(not(feature = "cluster"), allow(dead_code))]
    pub fn ddl_text(&self) -> Option<&str> {
        match self {
            Plan::CreateSource { ddl, .. }
            | Plan::CreateTable { ddl, .. }
            | Plan::CreateView { ddl, .. }
            | Plan::CreateIndex { ddl, .. }
            | Plan::Drop { ddl, .. } => Some(ddl),
            _ => None,
        }
    }

    /// Whether the plan changes the catalog or the state (and so goes through the pipeline).
    pub fn is_write(&self) -> bool {
        !matches!(
            self,
            Plan::Select(_) | Plan::Show(_) | Plan::Describe(_) | Plan::Checkpoint | Plan::Nothing
        )
    }
}

/// Where a statement comes from: a client, or a log being replayed by recovery (which may
/// name an index whose storage is off: it is kept in the catalog, not maintained).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Origin {
    Client,
    Recovery,
}

impl<P: PhysicalProfile> Kernel<P> {
    /// Binds `stmt` against the catalog.
    pub fn plan(&self, stmt: &Parsed, origin: Origin) -> Result<Plan> {
        Ok(match stmt {
            Parsed::CreateSource { name, columns } => {
                self.check_new_name(name)?;
                Plan::CreateSource {
                    name: name.clone(),
                    columns: columns.clone(),
                    ddl: stmt.to_string(),
                }
            }
            Parsed::CreateTable {
                name,
                columns,
                primary_key,
            } => {
                self.check_new_name(name)?;
                let mut columns = columns.clone();
                for &k in primary_key {
                    let key = &mut columns[k];
                    if key.ty == DataType::Double {
                        return Err(SqlError::Type(format!(
                            "primary key `{}` of `{name}` cannot be DOUBLE",
                            key.name
                        ))
                        .into());
                    }
                    key.not_null = true;
                }
                Plan::CreateTable {
                    name: name.clone(),
                    columns,
                    primary_key: primary_key.clone(),
                    ddl: stmt.to_string(),
                }
            }
            Parsed::CreateView { name, query } => self.plan_view(name, query, stmt)?,
            Parsed::CreateIndex {
                name,
                table,
                column,
            } => self.plan_index(name, table, column, stmt, origin)?,
            Parsed::Drop {
                kind,
                name,
                if_exists,
            } => self.plan_drop(*kind, name, *if_exists)?,
            Parsed::Insert {
                target,
                columns,
                rows,
                on_conflict,
            } => {
                let columns = self.values_to_columns(target, columns.as_deref(), rows)?;
                Plan::Insert {
                    target: target.clone(),
                    columns,
                    conflict: self.plan_conflict(target, on_conflict)?,
                }
            }
            Parsed::Delete { table, selection } => self.plan_delete(table, selection)?,
            Parsed::Update {
                table,
                assignments,
                selection,
            } => self.plan_update(table, assignments, selection.as_deref())?,
            Parsed::Query(q) => Plan::Select(self.plan_query(q)?),
            Parsed::Show(kind) => Plan::Show(*kind),
            Parsed::Describe(name) => Plan::Describe(name.clone()),
            Parsed::Checkpoint => Plan::Checkpoint,
        })
    }

    fn plan_view(&self, name: &str, query: &ast::Query, stmt: &Parsed) -> Result<Plan> {
        self.check_new_name(name)?;
        let select = select::simple_select(query)?;
        let from = select::from_name(select)?;
        let source = match self.kind_of(&from) {
            Some(ObjectKind::Source) => &self.sources[&from],
            Some(kind) => {
                return Err(SqlError::Unsupported(format!(
                    "a materialized view over {} `{from}`: views read sources (CREATE SOURCE)",
                    kind.name()
                ))
                .into())
            }
            None => return Err(unknown(ObjectKind::Source, &from)),
        };
        if query.order_by.is_some() || query.limit_clause.is_some() {
            return Err(SqlError::Unsupported(
                "ORDER BY or LIMIT in a materialized view: apply them when you query it".into(),
            )
            .into());
        }
        let input_columns = source.schema.name_types();
        let object = format!("source `{from}`");
        let scope = Scope {
            object: &object,
            columns: &input_columns,
        };
        let planned = plan_select(query, &scope)?;
        if planned.distinct {
            return Err(SqlError::Unsupported(format!(
                "SELECT DISTINCT over aggregates in materialized view `{name}`: apply DISTINCT \
                 when you query it"
            ))
            .into());
        }
        let agg = match planned.plan {
            SelectPlan::Aggregate(agg) => agg,
            SelectPlan::Project {
                window,
                filter,
                output,
            } => select::multiset_of(window, filter, output),
        };
        for (i, (col, _)) in planned.columns.iter().enumerate() {
            if planned.columns[..i].iter().any(|(c, _)| c == col) {
                return Err(SqlError::Type(format!(
                    "materialized view `{name}` has two columns named `{col}`; name them with AS"
                ))
                .into());
            }
        }
        Ok(Plan::CreateView {
            name: name.to_string(),
            source: from,
            columns: planned.columns,
            agg,
            definition: query.to_string(),
            ddl: stmt.to_string(),
        })
    }

    fn plan_index(
        &self,
        name: &str,
        table: &str,
        column: &str,
        stmt: &Parsed,
        origin: Origin,
    ) -> Result<Plan> {
        if P::INDEXES == IndexSupport::None {
            return Err(not_in_tier::<P>("CREATE INDEX", |t| {
                t.indexes != IndexSupport::None
            }));
        }
        if let Some(failure) = &self.index_failure {
            return Err(SqlError::Unsupported(format!(
                "CREATE INDEX while the index storage is failed ({failure}): restart strata, \
                 which rebuilds the indexes"
            ))
            .into());
        }
        // Recovery replays an index created while index storage was on: it is kept. A
        // catalog-only kernel keeps no index entries (the shards' kernels do).
        if self.index_backend.is_none() && origin == Origin::Client && self.part != Part::Catalog {
            return Err(SqlError::Unsupported(
                "CREATE INDEX on an engine without index storage: indexes need a data directory \
                 and [indexes] enabled = true"
                    .into(),
            )
            .into());
        }
        if self.indexes.contains_key(name) || self.kind_of(name).is_some() {
            return Err(SqlError::AlreadyExists {
                kind: "object",
                name: name.to_string(),
            }
            .into());
        }
        let Some(t) = self.tables.get(table) else {
            return Err(match self.kind_of(table) {
                Some(kind) => SqlError::WrongKind {
                    name: table.to_string(),
                    actual: kind.name(),
                    expected: "table",
                    hint: "indexes are on tables".into(),
                }
                .into(),
                None => unknown(ObjectKind::Table, table),
            });
        };
        let col = t
            .schema
            .find(column)
            .ok_or_else(|| t.schema.unknown_column(&format!("table `{table}`"), column))?;
        Ok(Plan::CreateIndex {
            name: name.to_string(),
            table: table.to_string(),
            column: col,
            ddl: stmt.to_string(),
        })
    }

    fn plan_drop(&self, kind: ObjectKind, name: &str, if_exists: bool) -> Result<Plan> {
        let exists = match kind {
            ObjectKind::Source => self.sources.contains_key(name),
            ObjectKind::Table => self.tables.contains_key(name),
            ObjectKind::View => self.views.contains_key(name),
            ObjectKind::Index if P::INDEXES == IndexSupport::None => {
                return Err(not_in_tier::<P>("DROP INDEX", |t| {
                    t.indexes != IndexSupport::None
                }))
            }
            ObjectKind::Index => self.indexes.contains_key(name),
        };
        if !exists {
            return match self.kind_of(name) {
                _ if if_exists => Ok(Plan::Nothing),
                Some(actual) => Err(SqlError::WrongKind {
                    name: name.to_string(),
                    actual: actual.name(),
                    expected: kind.name(),
                    hint: format!(
                        "use {}",
                        Parsed::Drop {
                            kind: actual,
                            name: name.to_string(),
                            if_exists: false
                        }
                    ),
                }
                .into()),
                None => Err(unknown(kind, name)),
            };
        }
        if kind == ObjectKind::Source {
            let readers: Vec<&str> = self
                .views
                .iter()
                .filter(|(_, v)| v.source == name)
                .map(|(n, _)| n.as_str())
                .collect();
            if !readers.is_empty() {
                return Err(SqlError::InUse {
                    kind: "source",
                    name: name.to_string(),
                    reason: format!(
                        "materialized view(s) {} read it; drop them first",
                        readers.join(", ")
                    ),
                }
                .into());
            }
        }
        let ddl = Parsed::Drop {
            kind,
            name: name.to_string(),
            if_exists,
        }
        .to_string();
        Ok(Plan::Drop {
            kind,
            name: name.to_string(),
            ddl,
        })
    }

    fn plan_delete(&self, name: &str, selection: &Option<Box<ast::Expr>>) -> Result<Plan> {
        let columns = self
            .changed_table(name, |kind| {
                format!("DELETE from {kind} `{name}`: only tables have deletable rows")
            })?
            .schema
            .name_types();
        let object = format!("table `{name}`");
        let scope = Scope {
            object: &object,
            columns: &columns,
        };
        Ok(Plan::Delete {
            table: name.to_string(),
            filter: bind_where(selection.as_deref(), &scope)?,
        })
    }

    /// The table a DELETE or UPDATE changes; `refusal(kind)` says why another kind of object
    /// cannot be changed so.
    fn changed_table(
        &self,
        name: &str,
        refusal: impl FnOnce(&str) -> String,
    ) -> Result<&super::kernel::Table<P>> {
        self.tables
            .get(name)
            .ok_or_else(|| match self.kind_of(name) {
                Some(kind) => SqlError::Unsupported(refusal(kind.name())).into(),
                None => unknown(ObjectKind::Table, name),
            })
    }

    fn plan_query(&self, query: &ast::Query) -> Result<Query> {
        let select = select::simple_select(query)?;
        let from = select::from_name(select)?;
        let columns = match self.kind_of(&from) {
            Some(ObjectKind::Table) => self.tables[&from].schema.name_types(),
            Some(ObjectKind::View) => self.views[&from].columns.clone(),
            Some(ObjectKind::Source) => {
                return Err(SqlError::Unsupported(format!(
                    "querying source `{from}` directly: a source keeps no rows; create a \
                     materialized view over it"
                ))
                .into())
            }
            _ => {
                return Err(SqlError::UnknownObject {
                    kind: "table or view",
                    kind_plural: "TABLES or SHOW VIEWS",
                    name: from,
                }
                .into())
            }
        };
        let kind = self.kind_of(&from).expect("matched above");
        let object = self.describe_object(&from);
        let planned = plan_select(
            query,
            &Scope {
                object: &object,
                columns: &columns,
            },
        )?;
        Ok(Query {
            from,
            kind,
            planned,
        })
    }

    /// Evaluates `INSERT … VALUES` rows into typed columns in schema order.
    fn values_to_columns(
        &self,
        target: &str,
        names: Option<&[String]>,
        rows: &InsertRows,
    ) -> Result<Vec<Column>> {
        let schema = self.insert_schema(target)?;
        let object = self.describe_object(target);
        let positions: Vec<usize> = match names {
            None => (0..schema.columns.len()).collect(),
            Some(names) => {
                let mut pos = Vec::with_capacity(names.len());
                for n in names {
                    let i = schema
                        .find(n)
                        .ok_or_else(|| schema.unknown_column(&object, n))?;
                    if pos.contains(&i) {
                        return Err(SqlError::Type(format!("column `{n}` is listed twice")).into());
                    }
                    pos.push(i);
                }
                pos
            }
        };
        let mut values: Vec<Vec<Value>> = schema
            .columns
            .iter()
            .map(|_| Vec::with_capacity(rows.len()))
            .collect();
        // Schema column → position in each VALUES row.
        let sources: Vec<Option<usize>> = (0..schema.columns.len())
            .map(|i| positions.iter().position(|&p| p == i))
            .collect();
        let arity = |r: usize, len: usize| -> Result<()> {
            if len == positions.len() {
                return Ok(());
            }
            Err(SqlError::Type(format!(
                "row {} has {len} values but {} columns are being inserted into {object}",
                r + 1,
                positions.len()
            ))
            .into())
        };
        let mut push_row = |get: &mut dyn FnMut(usize) -> Result<Value>| -> Result<()> {
            for (i, col) in values.iter_mut().enumerate() {
                col.push(match sources[i] {
                    Some(k) => schema.coerce(&object, i, get(k)?)?,
                    None => Value::Null,
                });
            }
            Ok(())
        };
        match rows {
            InsertRows::Literals(rows) => {
                for (r, row) in rows.iter().enumerate() {
                    arity(r, row.len())?;
                    push_row(&mut |k| Ok(row[k].clone()))?;
                }
            }
            InsertRows::Exprs(rows) => {
                for (r, row) in rows.iter().enumerate() {
                    arity(r, row.len())?;
                    push_row(&mut |k| eval_constant(&row[k]))?;
                }
            }
        }
        let columns: Vec<Column> = schema
            .columns
            .iter()
            .zip(&values)
            .map(|(c, v)| Column::from_values(c.ty, v))
            .collect();
        schema.check_columns(&object, &columns)?;
        Ok(columns)
    }
}
