//! Planning the statements that compute a table's new rows from its current ones: `UPDATE`
//! and `INSERT … ON CONFLICT`. The rows themselves are computed when the statement is
//! prepared ([`crate::engine::update`]), and recorded as an upsert of the resulting rows, so
//! that a replay writes exactly what was acknowledged.

use super::Plan;
use crate::engine::kernel::Kernel;
use crate::error::{Result, SqlError};
use crate::profile::PhysicalProfile;
use crate::sql::expr::{bind, Expr, Scope};
use crate::sql::OnConflict;
use crate::types::DataType;
use sqlparser::ast;
use std::ops::ControlFlow;

/// `SET col = expr, … [WHERE …]`, bound against a table's row — followed, in `ON CONFLICT
/// DO UPDATE`, by the proposed row (`EXCLUDED`).
#[derive(Debug)]
pub(crate) struct Assignments {
    /// Column position and its new value.
    pub set: Vec<(usize, Expr)>,
    /// Rows it does not select keep their values.
    pub filter: Option<Expr>,
}

/// What an insert into a table does with a row whose key exists, bound.
#[derive(Debug)]
pub(crate) enum Conflict {
    Fail,
    Replace,
    Skip,
    Update(Assignments),
}

/// The prefix under which `ON CONFLICT DO UPDATE` sees the proposed row's columns: a quoted
/// name that no column of the table can collide with, since it holds a dot.
const EXCLUDED: &str = "excluded.";

impl<P: PhysicalProfile> Kernel<P> {
    pub(super) fn plan_update(
        &self,
        name: &str,
        assignments: &[(String, ast::Expr)],
        selection: Option<&ast::Expr>,
    ) -> Result<Plan> {
        let columns = self
            .changed_table(name, |kind| {
                format!("UPDATE of {kind} `{name}`: only tables have rows to update")
            })?
            .schema
            .name_types();
        let object = format!("table `{name}`");
        let scope = Scope {
            object: &object,
            columns: &columns,
        };
        let assignments =
            self.bind_assignments(name, assignments, selection, &scope, &|e| e.clone())?;
        Ok(Plan::Update {
            table: name.to_string(),
            assignments,
        })
    }

    /// Binds what an insert does on a conflict. `ON CONFLICT` needs a table, and its columns
    /// must be the table's primary key.
    pub(super) fn plan_conflict(&self, target: &str, on_conflict: &OnConflict) -> Result<Conflict> {
        let (conflict_target, assignments, selection) = match on_conflict {
            OnConflict::Fail => return Ok(Conflict::Fail),
            OnConflict::Replace => return Ok(Conflict::Replace),
            OnConflict::Skip { target } => (target.as_deref(), None, None),
            OnConflict::Update {
                target,
                assignments,
                selection,
            } => (
                Some(&target[..]),
                Some(&assignments[..]),
                selection.as_deref(),
            ),
        };
        let Some(table) = self.tables.get(target) else {
            return Err(SqlError::Unsupported(format!(
                "ON CONFLICT on {}: only tables have keys that conflict",
                self.describe_object(target)
            ))
            .into());
        };
        if let Some(cols) = conflict_target {
            let mut named: Vec<Option<usize>> = cols.iter().map(|c| table.schema.find(c)).collect();
            let mut key: Vec<Option<usize>> = table.primary_key.iter().map(|&k| Some(k)).collect();
            named.sort();
            key.sort();
            if named != key {
                return Err(SqlError::Unsupported(format!(
                    "ON CONFLICT ({}) on table `{target}`: a conflict is on the primary key, ON CONFLICT ({})",
                    cols.join(", "),
                    table.key_names()
                ))
                .into());
            }
        }
        let Some(assignments) = assignments else {
            return Ok(Conflict::Skip);
        };
        let mut columns = table.schema.name_types();
        columns.extend(
            table
                .schema
                .name_types()
                .into_iter()
                .map(|(n, t)| (format!("{EXCLUDED}{n}"), t)),
        );
        let object = format!("table `{target}` (and EXCLUDED, the row proposed for insertion)");
        let scope = Scope {
            object: &object,
            columns: &columns,
        };
        let qualify = |e: &ast::Expr| excluded_columns(e.clone(), target);
        self.bind_assignments(target, assignments, selection, &scope, &qualify)
            .map(Conflict::Update)
    }

    fn bind_assignments(
        &self,
        name: &str,
        assignments: &[(String, ast::Expr)],
        selection: Option<&ast::Expr>,
        scope: &Scope<'_>,
        rewrite: &dyn Fn(&ast::Expr) -> ast::Expr,
    ) -> Result<Assignments> {
        let table = &self.tables[name];
        let mut set = Vec::with_capacity(assignments.len());
        for (column, value) in assignments {
            let i = table.schema.find(column).ok_or_else(|| {
                table
                    .schema
                    .unknown_column(&format!("table `{name}`"), column)
            })?;
            if table.primary_key.contains(&i) {
                return Err(SqlError::Unsupported(format!(
                    "changing primary key `{column}` of table `{name}`: delete the row and insert it with its new key"
                ))
                .into());
            }
            let value = bind(&rewrite(value), scope)?;
            let ty = table.schema.columns[i].ty;
            if let Some(got) = value.ty().filter(|got| !assignable(ty, *got)) {
                return Err(SqlError::Type(format!(
                    "column `{column}` of table `{name}` is {ty}, but the value assigned to it is {got}"
                ))
                .into());
            }
            set.push((i, value));
        }
        let filter = super::bind_where(selection.map(rewrite).as_ref(), scope)?;
        Ok(Assignments { set, filter })
    }
}

/// Whether a value of type `got` can be stored in a column of type `column` (as INSERT
/// converts it: BIGINT into DOUBLE, text into TIMESTAMP).
fn assignable(column: DataType, got: DataType) -> bool {
    column == got
        || matches!(
            (column, got),
            (DataType::Double, DataType::BigInt) | (DataType::Timestamp, DataType::Text)
        )
}

/// Rewrites `excluded.col` to the proposed row's column and `table.col` to the existing
/// row's, so that binding sees one row of both.
fn excluded_columns(mut expr: ast::Expr, table: &str) -> ast::Expr {
    let _ = ast::visit_expressions_mut(&mut expr, |e| {
        if let ast::Expr::CompoundIdentifier(parts) = e {
            if let [qualifier, column] = parts.as_slice() {
                let column = crate::sql::expr::ident_name(column);
                let qualifier = crate::sql::expr::ident_name(qualifier);
                if qualifier == "excluded" {
                    *e = ast::Expr::Identifier(ast::Ident::with_quote(
                        '"',
                        format!("{EXCLUDED}{column}"),
                    ));
                } else if qualifier == table {
                    *e = ast::Expr::Identifier(ast::Ident::with_quote('"', column));
                }
            }
        }
        ControlFlow::<()>::Continue(())
    });
    expr
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn excluded_and_table_qualifiers_are_resolved() {
        let parse = |s: &str| {
            sqlparser::parser::Parser::new(&sqlparser::dialect::GenericDialect)
                .try_with_sql(s)
                .unwrap()
                .parse_expr()
                .unwrap()
        };
        let e = excluded_columns(parse("t.v + EXCLUDED.v + other.v"), "t");
        assert_eq!(e.to_string(), r#""v" + "excluded.v" + other.v"#);
    }
}
