//! Rows in: appends to sources (every view on the source is updated), writes to and deletes
//! from tables — the prepare and apply steps of the [pipeline](super::pipeline) for data.

use super::kernel::{state_full, unknown, Kernel, Part, Table};
use super::pipeline::{AppendToView, Prepared, Work};
use super::subscribe::Touched;
use crate::batch::Column;
use crate::error::{ExecError, Result, SqlError};
use crate::profile::PhysicalProfile;
use crate::sql::expr::Expr;
use crate::sql::ObjectKind;
use crate::state::{Full, StateBackend};
use crate::types::{Key, Value};
use std::borrow::Cow;

impl<P: PhysicalProfile> Kernel<P> {
    /// Prepares validated columns (schema order) for a source or a table: every view of a
    /// source evaluates them and reserves the groups they create; a table checks its keys
    /// and its capacity. All or nothing: on `Err` nothing is reserved.
    pub fn prepare_insert<'a>(
        &mut self,
        target: &'a str,
        columns: &'a [Column],
        replace: bool,
    ) -> Result<Prepared<'a, P>> {
        let work = if self.sources.contains_key(target) {
            if replace {
                return Err(SqlError::Unsupported(format!(
                    "INSERT OR REPLACE into source `{target}`: a source is append-only"
                ))
                .into());
            }
            self.prepare_append(target, columns)?
        } else {
            self.prepare_write(target, Cow::Borrowed(columns), replace)?
        };
        Ok(Prepared { work })
    }

    fn prepare_append<'a>(
        &mut self,
        source: &'a str,
        columns: &'a [Column],
    ) -> Result<Work<'a, P>> {
        let rows = columns.first().map_or(0, Column::len);
        let mut parts = Vec::new();
        if rows > 0 {
            // Evaluate everything first; nothing is touched.
            let part = self.part;
            for (name, v) in self.views.iter().filter(|(_, v)| v.source == source) {
                let mut agg = v.state.prepare(columns, rows).map_err(|e| match e {
                    ExecError::Eval(m) => {
                        ExecError::Eval(format!("materialized view `{name}`: {m}"))
                    }
                    other => other,
                })?;
                match part {
                    Part::All => {}
                    // Validated: a catalog-only kernel stores nothing.
                    Part::Catalog => continue,
                    Part::Shard { .. } => v.state.retain_shard(&mut agg, |key| part.holds(key)),
                }
                parts.push(AppendToView {
                    view: name.clone(),
                    agg,
                    groups_before: v.state.len(),
                });
            }
            // Then reserve the new groups; a full view undoes every view's new groups.
            for i in 0..parts.len() {
                let view = self.views.get_mut(&parts[i].view).expect("prepared above");
                if let Err(full) = view.state.assign_slots(&mut parts[i].agg) {
                    let object = format!("materialized view `{}`", parts[i].view);
                    for part in &parts[..i] {
                        let v = self.views.get_mut(&part.view).expect("prepared above");
                        v.state.rollback(part.groups_before);
                    }
                    return Err(state_full::<P>(object, full));
                }
            }
        }
        Ok(Work::Append {
            source,
            columns,
            views: parts,
        })
    }

    pub(super) fn prepare_write<'a>(
        &self,
        name: &'a str,
        columns: Cow<'a, [Column]>,
        replace: bool,
    ) -> Result<Work<'a, P>> {
        let rows = columns.first().map_or(0, Column::len);
        let table = self.table(name)?;
        let mut keys: Vec<Key> = Vec::with_capacity(rows);
        let mut seen = rustc_hash::FxHashSet::default();
        let mut new_keys = 0usize;
        for r in 0..rows {
            let key = table.key_of(|c| columns[c].value(r));
            let exists = table.rows.get(&key).is_some();
            let first_in_batch = seen.insert(key.clone());
            if !replace && (exists || !first_in_batch) {
                return Err(ExecError::DuplicateKey {
                    table: name.to_string(),
                    key: table.key_text(&key),
                }
                .into());
            }
            new_keys += (!exists && first_in_batch) as usize;
            keys.push(key);
        }
        if let Some(cap) = table.rows.capacity() {
            if table.rows.len() + new_keys > cap {
                return Err(state_full::<P>(
                    format!("table `{name}`"),
                    Full { capacity: cap },
                ));
            }
        }
        let stored = match self.part {
            Part::All => None,
            part => Some(
                (0..rows as u32)
                    .filter(|&r| part.holds(&keys[r as usize]))
                    .collect(),
            ),
        };
        Ok(Work::Write {
            table: name,
            columns,
            replace,
            keys,
            stored,
        })
    }

    /// The table `name`.
    pub(super) fn table(&self, name: &str) -> Result<&Table<P>> {
        self.tables
            .get(name)
            .ok_or_else(|| unknown(ObjectKind::Table, name))
    }

    /// Primary keys of the rows of `table` that `filter` selects (all without one).
    pub(super) fn matching_keys(&self, table: &str, filter: Option<&Expr>) -> Result<Vec<Key>> {
        let t = self
            .tables
            .get(table)
            .ok_or_else(|| unknown(ObjectKind::Table, table))?;
        let mut doomed = Vec::new();
        for (key, row) in t.rows.iter() {
            if filter.map_or(Ok(true), |f| f.is_true(&row[..]))? {
                doomed.push(key.clone());
            }
        }
        Ok(doomed)
    }

    pub(super) fn apply_append(&mut self, parts: Vec<AppendToView<'_>>) {
        for part in parts {
            let v = self
                .views
                .get_mut(&part.view)
                .expect("prepared views exist");
            if v.subscribers.is_empty() {
                v.state.accumulate(&part.agg);
                v.state.recycle(part.agg);
                continue;
            }
            let touched = Touched::before(&v.state, &part.agg, part.groups_before);
            v.state.accumulate(&part.agg);
            v.state.recycle(part.agg);
            touched.notify(&v.state, &mut v.subscribers);
        }
    }

    /// Stores rows `stored` (all rows when `None`) of a prepared write.
    pub(super) fn apply_write(
        &mut self,
        name: &str,
        columns: &[Column],
        keys: &[Key],
        stored: Option<&[u32]>,
    ) {
        let table = self.tables.get_mut(name).expect("prepared tables exist");
        let mut replaced = Vec::new();
        let mut written = Vec::new();
        let rows: Box<dyn Iterator<Item = usize>> = match stored {
            None => Box::new(0..keys.len()),
            Some(rows) => Box::new(rows.iter().map(|&r| r as usize)),
        };
        for r in rows {
            let key = &keys[r];
            if stored.is_some() {
                written.push(key.clone());
            }
            let row: Box<[Value]> = columns.iter().map(|c| c.value(r)).collect();
            let old = table
                .rows
                .insert(key.clone(), row)
                .expect("capacity is checked when the write is prepared");
            if let Some(old) = old {
                replaced.push((key.clone(), old));
            }
        }
        let written = if stored.is_some() { &written[..] } else { keys };
        self.update_indexes(name, &replaced, written);
    }

    pub(super) fn remove_keys(&mut self, table: &str, keys: &[Key]) {
        let mut removed = Vec::with_capacity(keys.len());
        if let Some(t) = self.tables.get_mut(table) {
            for key in keys {
                if let Some(row) = t.rows.remove(key) {
                    removed.push((key.clone(), row));
                }
            }
        }
        self.update_indexes(table, &removed, &[]);
    }
}

/// What a cluster node asks of a kernel: a catalog-only kernel validates writes without
/// storing them; a shard's kernel says which keys it holds.
#[cfg(feature = "cluster")]
impl<P: PhysicalProfile> Kernel<P> {
    pub fn is_table(&self, name: &str) -> bool {
        self.tables.contains_key(name)
    }

    /// Checks an insert as preparing it would (every view on a source evaluates the rows),
    /// without keeping anything.
    pub fn validate_insert(
        &mut self,
        target: &str,
        columns: &[Column],
        replace: bool,
    ) -> Result<()> {
        let prepared = self.prepare_insert(target, columns, replace)?;
        self.abort(prepared);
        Ok(())
    }

    /// Checks columns (in schema order) that another node validated against its catalog,
    /// against this one: their number, types and constraints.
    pub fn check_insert_columns(&self, target: &str, columns: &[Column]) -> Result<()> {
        let schema = self.insert_schema(target)?;
        let object = self.describe_object(target);
        if columns.len() != schema.columns.len()
            || columns
                .iter()
                .zip(&schema.columns)
                .any(|(c, spec)| c.data.data_type() != spec.ty)
        {
            return Err(SqlError::Type(format!(
                "the batch's columns no longer match {object}; send it again"
            ))
            .into());
        }
        schema.check_columns(&object, columns)
    }

    /// The primary keys of rows to insert into `table`.
    pub fn primary_keys(&self, table: &str, columns: &[Column]) -> Result<Vec<Key>> {
        let t = self.table(table)?;
        let rows = columns.first().map_or(0, Column::len);
        Ok((0..rows)
            .map(|r| t.key_of(|c| columns[c].value(r)))
            .collect())
    }

    /// The primary key of a row of `table`.
    pub fn row_key(&self, table: &str, row: &[Value]) -> Result<Key> {
        Ok(self.table(table)?.key_of(|c| row[c].clone()))
    }

    /// A primary key of `table` as SQL shows it, for errors.
    pub fn key_text(&self, table: &str, key: &Key) -> Result<String> {
        Ok(self.table(table)?.key_text(key))
    }

    /// The row of `table` with primary key `key`.
    pub fn row(&self, table: &str, key: &Key) -> Option<Vec<Value>> {
        let row = self.tables.get(table)?.rows.get(key)?;
        Some(row.to_vec())
    }

    /// The types of `table`'s columns.
    pub fn column_types(&self, table: &str) -> Result<Vec<crate::types::DataType>> {
        Ok(self
            .table(table)?
            .schema
            .columns
            .iter()
            .map(|c| c.ty)
            .collect())
    }

    /// The primary keys of the rows of `table` a DELETE's WHERE selects.
    pub fn keys_where(&self, table: &str, filter: Option<&Expr>) -> Result<Vec<Key>> {
        self.matching_keys(table, filter)
    }

    /// The rows of `table` an UPDATE's WHERE selects.
    pub fn rows_where(&self, table: &str, filter: Option<&Expr>) -> Result<Vec<Vec<Value>>> {
        let mut rows = Vec::new();
        for (_, row) in self.table(table)?.rows.iter() {
            if filter.map_or(Ok(true), |f| f.is_true(&row[..]))? {
                rows.push(row.to_vec());
            }
        }
        Ok(rows)
    }
}
