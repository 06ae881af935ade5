//! Schemas of sources and tables, validation of incoming columns, and result sets.

use crate::batch::{Batch, Column, ColumnData};
use crate::error::{ExecError, Result, SqlError};
use crate::sql::{ColumnSpec, Declared};
use crate::types::{DataType, Value};
use std::borrow::Cow;

/// The largest TEXT value accepted, in bytes.
pub const MAX_TEXT_BYTES: usize = 1 << 20;

/// The declared columns of a source or table.
#[derive(Clone, Debug, PartialEq)]
pub struct Schema {
    pub columns: Vec<ColumnSpec>,
}

impl Schema {
    pub fn new(columns: Vec<ColumnSpec>) -> Schema {
        Schema { columns }
    }

    pub fn find(&self, name: &str) -> Option<usize> {
        self.columns.iter().position(|c| c.name == name)
    }

    pub fn name_types(&self) -> Vec<(String, DataType)> {
        self.columns
            .iter()
            .map(|c| (c.name.clone(), c.ty))
            .collect()
    }

    pub fn unknown_column(&self, object: &str, name: &str) -> SqlError {
        SqlError::UnknownColumn {
            column: crate::sql::expr::excerpt(name),
            object: object.to_string(),
            available: self
                .columns
                .iter()
                .map(|c| c.name.as_str())
                .collect::<Vec<_>>()
                .join(", "),
        }
    }

    fn invalid(&self, object: &str, column: usize, message: String) -> SqlError {
        SqlError::InvalidValue {
            object: object.to_string(),
            column: self.columns[column].name.clone(),
            message,
        }
    }

    /// Converts a value for column `i`: exact type, BIGINT into DOUBLE, text into TIMESTAMP.
    pub fn coerce(&self, object: &str, i: usize, v: Value) -> Result<Value> {
        let ty = self.columns[i].ty;
        Ok(match (ty, v) {
            (_, Value::Null) => Value::Null,
            (DataType::BigInt, v @ Value::Int(_)) => v,
            (DataType::Double, Value::Int(x)) => Value::Double(x as f64),
            (DataType::Double, v @ Value::Double(_)) => v,
            (DataType::Text, v @ Value::Text(_)) => v,
            (DataType::Boolean, v @ Value::Bool(_)) => v,
            (DataType::Timestamp, v @ Value::Timestamp(_)) => v,
            (DataType::Timestamp, Value::Text(s)) => Value::Timestamp(
                crate::sql::expr::timestamp_literal(&s)
                    .map_err(|e| self.invalid(object, i, e.to_string()))?,
            ),
            (ty, v) => {
                let got = v.data_type().map_or("NULL", DataType::sql_name);
                let shown = if let Value::Text(t) = &v {
                    format!("'{}'", crate::sql::expr::excerpt(t))
                } else {
                    v.to_string()
                };
                return Err(self
                    .invalid(object, i, format!("expected {ty}, got {got} {shown}"))
                    .into());
            }
        })
    }

    /// Checks that `columns` are this schema's, in order: one per column, of its type, all
    /// of one length (NOT NULL and the other value checks are [`check_columns`](Self::check_columns)').
    pub fn check_shape(&self, object: &str, columns: &[Column]) -> Result<()> {
        let rows = columns.first().map_or(0, Column::len);
        if columns.len() != self.columns.len() {
            return Err(SqlError::Type(format!(
                "a batch of {} columns for {object}, which has {}",
                columns.len(),
                self.columns.len()
            ))
            .into());
        }
        for (i, (spec, col)) in self.columns.iter().zip(columns).enumerate() {
            let got = col.data.data_type();
            if got != spec.ty {
                return Err(self
                    .invalid(
                        object,
                        i,
                        format!("batch column has type {got}, expected {}", spec.ty),
                    )
                    .into());
            }
            if col.len() != rows || col.nulls.as_ref().is_some_and(|n| n.len() != rows) {
                return Err(self
                    .invalid(
                        object,
                        i,
                        format!("batch column length differs from the batch's {rows} rows"),
                    )
                    .into());
            }
        }
        Ok(())
    }

    /// Checks NOT NULL, declared integer ranges, declared text lengths and the text size
    /// limit.
    pub fn check_columns(&self, object: &str, columns: &[Column]) -> Result<()> {
        for (i, (spec, col)) in self.columns.iter().zip(columns).enumerate() {
            if spec.not_null && col.has_nulls() {
                return Err(ExecError::NotNull {
                    object: object.to_string(),
                    column: spec.name.clone(),
                }
                .into());
            }
            if let (Declared::SmallInt | Declared::Int, ColumnData::BigInt(values)) =
                (spec.declared, &col.data)
            {
                for (r, v) in values.iter().enumerate() {
                    if col.is_null(r) {
                        continue;
                    }
                    if let Err(message) = spec.declared.check_range(&Value::Int(*v)) {
                        return Err(self.invalid(object, i, message).into());
                    }
                }
            }
            if let ColumnData::Text(values) = &col.data {
                for (r, v) in values.iter().enumerate() {
                    if col.is_null(r) {
                        continue;
                    }
                    if v.len() > MAX_TEXT_BYTES {
                        return Err(self
                            .invalid(
                                object,
                                i,
                                format!(
                                    "text of {} bytes exceeds the limit of {MAX_TEXT_BYTES} bytes",
                                    v.len()
                                ),
                            )
                            .into());
                    }
                    if let Declared::Varchar(max) = spec.declared {
                        let chars = v.chars().count();
                        if chars > max {
                            return Err(self
                                .invalid(
                                    object,
                                    i,
                                    format!("text of {chars} characters exceeds VARCHAR({max})"),
                                )
                                .into());
                        }
                    }
                }
            }
        }
        Ok(())
    }

    /// The columns of a user batch in schema order: types checked (BIGINT widens to DOUBLE),
    /// missing columns NULL, lengths equal, constraints checked. Borrowed when the batch
    /// already has exactly the schema's columns in order.
    pub fn columns_from_batch<'b>(
        &self,
        object: &str,
        batch: &'b Batch,
    ) -> Result<Cow<'b, [Column]>> {
        let rows = batch.num_rows();
        let exact = batch.columns().len() == self.columns.len()
            && batch
                .names()
                .iter()
                .zip(&self.columns)
                .all(|(n, spec)| *n == spec.name)
            && batch.columns().iter().zip(&self.columns).all(|(c, spec)| {
                c.data.data_type() == spec.ty
                    && c.len() == rows
                    && c.nulls.as_ref().is_none_or(|n| n.len() == rows)
            });
        if exact {
            self.check_columns(object, batch.columns())?;
            return Ok(Cow::Borrowed(batch.columns()));
        }
        let mut slots: Vec<Option<Column>> = vec![None; self.columns.len()];
        for (name, col) in batch.names().iter().zip(batch.columns()) {
            let lname = name.to_lowercase();
            let i = self
                .find(&lname)
                .or_else(|| self.find(name))
                .ok_or_else(|| self.unknown_column(object, name))?;
            if slots[i].is_some() {
                return Err(SqlError::Type(format!("batch has column `{name}` twice")).into());
            }
            if col.len() != rows || col.nulls.as_ref().is_some_and(|n| n.len() != rows) {
                let what = match &col.nulls {
                    Some(n) if col.len() == rows => format!("a NULL mask of {} entries", n.len()),
                    _ => format!("{} values", col.len()),
                };
                return Err(SqlError::Type(format!(
                    "batch column `{name}` has {what} but the batch has {rows} rows"
                ))
                .into());
            }
            let want = self.columns[i].ty;
            let got = col.data.data_type();
            let col = match (want, &col.data) {
                _ if want == got => col.clone(),
                (DataType::Double, ColumnData::BigInt(v)) => Column {
                    data: ColumnData::Double(v.iter().map(|x| *x as f64).collect()),
                    nulls: col.nulls.clone(),
                },
                _ => {
                    return Err(self
                        .invalid(
                            object,
                            i,
                            format!("batch column has type {got}, expected {want}"),
                        )
                        .into())
                }
            };
            slots[i] = Some(col);
        }
        let columns: Vec<Column> = slots
            .into_iter()
            .zip(&self.columns)
            .map(|(c, spec)| c.unwrap_or_else(|| null_column(spec.ty, rows)))
            .collect();
        self.check_columns(object, &columns)?;
        Ok(Cow::Owned(columns))
    }
}

fn null_column(ty: DataType, rows: usize) -> Column {
    Column::from_values(ty, &vec![Value::Null; rows])
}

/// Rows returned by a statement, with column names and types.
#[derive(Clone, Debug, PartialEq)]
pub struct ResultSet {
    pub columns: Vec<(String, DataType)>,
    pub rows: Vec<Vec<Value>>,
}

impl ResultSet {
    pub fn column_names(&self) -> Vec<&str> {
        self.columns.iter().map(|(n, _)| n.as_str()).collect()
    }
}
