//! Rows computed from a table's current rows: the new rows of an `UPDATE`, and what an
//! `INSERT … ON CONFLICT` writes. Both become an upsert of whole rows — the change that is
//! recorded and applied — so that replaying the log writes exactly what was acknowledged,
//! whatever the table held when the statement ran.
//!
//! The current rows are passed in: one engine reads its own table, a cluster's log owner
//! the rows the shards' owners sent it.

use super::kernel::{unknown, Kernel};
use super::plan::{Assignments, Conflict};
use crate::batch::Column;
use crate::error::{ExecError, Result};
use crate::profile::PhysicalProfile;
use crate::sql::expr::Row;
use crate::sql::ObjectKind;
use crate::types::{Key, Value};

/// The existing row followed by the proposed one, as `ON CONFLICT DO UPDATE` sees them.
struct ExistingAndProposed<'a> {
    existing: &'a [Value],
    proposed: &'a [Value],
}

impl Row for ExistingAndProposed<'_> {
    fn value(&self, index: usize) -> Value {
        match self.existing.get(index) {
            Some(v) => v.clone(),
            None => self.proposed[index - self.existing.len()].clone(),
        }
    }
}

/// New rows, gathered value by value into one list per column.
struct NewRows {
    values: Vec<Vec<Value>>,
}

impl NewRows {
    fn new(columns: usize) -> NewRows {
        NewRows {
            values: vec![Vec::new(); columns],
        }
    }

    fn push(&mut self, row: Vec<Value>) {
        for (column, v) in self.values.iter_mut().zip(row) {
            column.push(v);
        }
    }
}

impl<P: PhysicalProfile> Kernel<P> {
    /// UPDATE: each of `rows` (of `table`) that the filter selects, with its assignments
    /// applied, as columns in schema order. All or nothing: the first value that fails
    /// (an error in an expression, a type, NOT NULL) fails the statement.
    pub fn updated_rows<'r>(
        &self,
        table: &str,
        assignments: &Assignments,
        rows: impl Iterator<Item = &'r [Value]>,
    ) -> Result<Vec<Column>> {
        let mut new = NewRows::new(self.table_width(table)?);
        for row in rows {
            if let Some(updated) = self.assign(table, assignments, row, row)? {
                new.push(updated);
            }
        }
        self.new_columns(table, new)
    }

    /// `INSERT … ON CONFLICT`: the rows to write as an upsert. A row whose key is new is
    /// written as proposed; one whose key exists (`existing(key)`, or an earlier row of the
    /// same statement) is skipped (DO NOTHING) or updated from the existing row (DO UPDATE,
    /// which, as in PostgreSQL, may not meet one key twice in a statement).
    pub fn resolve_conflicts<'r>(
        &self,
        table: &str,
        columns: &[Column],
        conflict: &Conflict,
        existing: &dyn Fn(&Key) -> Option<&'r [Value]>,
    ) -> Result<Vec<Column>> {
        let t = self
            .tables
            .get(table)
            .ok_or_else(|| unknown(ObjectKind::Table, table))?;
        let rows = columns.first().map_or(0, Column::len);
        let mut new = NewRows::new(columns.len());
        let mut seen = rustc_hash::FxHashSet::default();
        for r in 0..rows {
            let proposed: Vec<Value> = columns.iter().map(|c| c.value(r)).collect();
            let key = t.key_of(|c| proposed[c].clone());
            let first_in_statement = seen.insert(key.clone());
            let current = existing(&key);
            match conflict {
                _ if first_in_statement && current.is_none() => new.push(proposed),
                Conflict::Skip => {}
                Conflict::Update(assignments) => {
                    let Some(current) = current.filter(|_| first_in_statement) else {
                        return Err(ExecError::Eval(format!(
                            "ON CONFLICT DO UPDATE meets key {} of table `{table}` twice: a \
                             statement may update a row once",
                            t.key_text(&key)
                        ))
                        .into());
                    };
                    let both = ExistingAndProposed {
                        existing: current,
                        proposed: &proposed,
                    };
                    if let Some(updated) = self.assign(table, assignments, current, &both)? {
                        new.push(updated);
                    }
                }
                Conflict::Fail | Conflict::Replace => {
                    unreachable!("only DO NOTHING and DO UPDATE are resolved here")
                }
            }
        }
        self.new_columns(table, new)
    }

    fn table_width(&self, table: &str) -> Result<usize> {
        self.tables
            .get(table)
            .map(|t| t.schema.columns.len())
            .ok_or_else(|| unknown(ObjectKind::Table, table))
    }

    /// `row` with the assignments evaluated over `input`; `None` when the filter does not
    /// select it.
    fn assign<R: Row + ?Sized>(
        &self,
        table: &str,
        assignments: &Assignments,
        row: &[Value],
        input: &R,
    ) -> Result<Option<Vec<Value>>> {
        if let Some(filter) = &assignments.filter {
            if !filter.is_true(input)? {
                return Ok(None);
            }
        }
        let schema = &self.tables[table].schema;
        let object = format!("table `{table}`");
        let mut updated = row.to_vec();
        for (column, value) in &assignments.set {
            updated[*column] = schema.coerce(&object, *column, value.eval(input)?)?;
        }
        Ok(Some(updated))
    }

    fn new_columns(&self, table: &str, new: NewRows) -> Result<Vec<Column>> {
        let schema = &self.tables[table].schema;
        let columns: Vec<Column> = schema
            .columns
            .iter()
            .zip(&new.values)
            .map(|(c, v)| Column::from_values(c.ty, v))
            .collect();
        schema.check_columns(&format!("table `{table}`"), &columns)?;
        Ok(columns)
    }
}
