//! Columnar batches: the typed ingest path. A batch is validated once against the target's
//! schema and then flows through the same operators as SQL `INSERT`, without SQL per row.

use crate::types::{DataType, Value};
use std::sync::Arc;

/// One column's values. `nulls[i] == true` marks row `i` as NULL (its slot in `data` is
/// ignored); `None` means no NULLs.
#[derive(Clone, Debug, PartialEq)]
pub struct Column {
    pub data: ColumnData,
    pub nulls: Option<Vec<bool>>,
}

#[derive(Clone, Debug, PartialEq)]
pub enum ColumnData {
    BigInt(Vec<i64>),
    Double(Vec<f64>),
    Text(Vec<Arc<str>>),
    Boolean(Vec<bool>),
    /// Milliseconds since the Unix epoch, UTC.
    Timestamp(Vec<i64>),
}

impl ColumnData {
    pub fn len(&self) -> usize {
        match self {
            ColumnData::BigInt(v) | ColumnData::Timestamp(v) => v.len(),
            ColumnData::Double(v) => v.len(),
            ColumnData::Text(v) => v.len(),
            ColumnData::Boolean(v) => v.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn data_type(&self) -> DataType {
        match self {
            ColumnData::BigInt(_) => DataType::BigInt,
            ColumnData::Double(_) => DataType::Double,
            ColumnData::Text(_) => DataType::Text,
            ColumnData::Boolean(_) => DataType::Boolean,
            ColumnData::Timestamp(_) => DataType::Timestamp,
        }
    }

    /// An empty column of `ty` with room for `capacity` values.
    pub fn with_capacity(ty: DataType, capacity: usize) -> ColumnData {
        match ty {
            DataType::BigInt => ColumnData::BigInt(Vec::with_capacity(capacity)),
            DataType::Double => ColumnData::Double(Vec::with_capacity(capacity)),
            DataType::Text => ColumnData::Text(Vec::with_capacity(capacity)),
            DataType::Boolean => ColumnData::Boolean(Vec::with_capacity(capacity)),
            DataType::Timestamp => ColumnData::Timestamp(Vec::with_capacity(capacity)),
        }
    }
}

impl Column {
    pub fn new(data: ColumnData) -> Column {
        Column { data, nulls: None }
    }

    pub fn bigint(values: Vec<i64>) -> Column {
        Column::new(ColumnData::BigInt(values))
    }

    pub fn double(values: Vec<f64>) -> Column {
        Column::new(ColumnData::Double(values))
    }

    pub fn text<S: Into<Arc<str>>>(values: impl IntoIterator<Item = S>) -> Column {
        Column::new(ColumnData::Text(
            values.into_iter().map(Into::into).collect(),
        ))
    }

    pub fn boolean(values: Vec<bool>) -> Column {
        Column::new(ColumnData::Boolean(values))
    }

    /// Timestamps as milliseconds since the Unix epoch, UTC.
    pub fn timestamp(values: Vec<i64>) -> Column {
        Column::new(ColumnData::Timestamp(values))
    }

    /// Marks rows as NULL: `nulls[i] == true` makes row `i` NULL.
    pub fn with_nulls(mut self, nulls: Vec<bool>) -> Column {
        self.nulls = Some(nulls);
        self
    }

    /// A column of `ty` built from values already checked to have that type (or be NULL).
    pub(crate) fn from_values(ty: DataType, values: &[Value]) -> Column {
        let mut col = Column::new(ColumnData::with_capacity(ty, values.len()));
        for v in values {
            col.push(v);
        }
        col
    }

    pub fn len(&self) -> usize {
        self.data.len()
    }

    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    #[inline]
    pub fn is_null(&self, row: usize) -> bool {
        self.nulls.as_ref().is_some_and(|n| n[row])
    }

    /// Whether any row is NULL.
    pub fn has_nulls(&self) -> bool {
        self.nulls.as_ref().is_some_and(|n| n.iter().any(|&b| b))
    }

    /// The value of one row.
    #[inline]
    pub fn value(&self, row: usize) -> Value {
        if self.is_null(row) {
            return Value::Null;
        }
        match &self.data {
            ColumnData::BigInt(v) => Value::Int(v[row]),
            ColumnData::Double(v) => Value::Double(v[row]),
            ColumnData::Text(v) => Value::Text(v[row].clone()),
            ColumnData::Boolean(v) => Value::Bool(v[row]),
            ColumnData::Timestamp(v) => Value::Timestamp(v[row]),
        }
    }

    /// The rows `rows` of this column, in that order (a row may repeat).
    pub(crate) fn gather(&self, rows: &[u32]) -> Column {
        fn pick<T: Clone>(v: &[T], rows: &[u32]) -> Vec<T> {
            rows.iter().map(|&r| v[r as usize].clone()).collect()
        }
        let data = match &self.data {
            ColumnData::BigInt(v) => ColumnData::BigInt(pick(v, rows)),
            ColumnData::Timestamp(v) => ColumnData::Timestamp(pick(v, rows)),
            ColumnData::Double(v) => ColumnData::Double(pick(v, rows)),
            ColumnData::Text(v) => ColumnData::Text(pick(v, rows)),
            ColumnData::Boolean(v) => ColumnData::Boolean(pick(v, rows)),
        };
        Column {
            data,
            nulls: self.nulls.as_deref().map(|n| pick(n, rows)),
        }
    }

    /// Appends a value of the column's type or NULL. Values of another type are stored as
    /// NULL; callers check types first.
    pub(crate) fn push(&mut self, value: &Value) {
        let row = self.len();
        let null = match (&mut self.data, value) {
            (ColumnData::BigInt(v), Value::Int(x)) => {
                v.push(*x);
                false
            }
            (ColumnData::Timestamp(v), Value::Timestamp(x)) => {
                v.push(*x);
                false
            }
            (ColumnData::Double(v), Value::Double(x)) => {
                v.push(*x);
                false
            }
            (ColumnData::Text(v), Value::Text(x)) => {
                v.push(x.clone());
                false
            }
            (ColumnData::Boolean(v), Value::Bool(x)) => {
                v.push(*x);
                false
            }
            (data, _) => {
                data.push_default();
                true
            }
        };
        if null {
            self.nulls
                .get_or_insert_with(|| vec![false; row])
                .push(true);
        } else if let Some(n) = &mut self.nulls {
            n.push(false);
        }
    }
}

impl ColumnData {
    fn push_default(&mut self) {
        match self {
            ColumnData::BigInt(v) | ColumnData::Timestamp(v) => v.push(0),
            ColumnData::Double(v) => v.push(0.0),
            ColumnData::Text(v) => v.push(Arc::from("")),
            ColumnData::Boolean(v) => v.push(false),
        }
    }
}

/// Named columns of equal length.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Batch {
    names: Vec<String>,
    columns: Vec<Column>,
}

impl Batch {
    pub fn new() -> Batch {
        Batch::default()
    }

    /// Adds a column. Columns the target declares but the batch lacks are NULL.
    pub fn with_column(mut self, name: impl Into<String>, column: Column) -> Batch {
        self.push_column(name, column);
        self
    }

    pub fn push_column(&mut self, name: impl Into<String>, column: Column) {
        self.names.push(name.into());
        self.columns.push(column);
    }

    /// Column names, in the order they were added.
    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// Columns, in the order they were added. A batch whose columns are exactly the
    /// target's, in declaration order, is ingested without copying.
    pub fn columns(&self) -> &[Column] {
        &self.columns
    }

    /// Rows in the batch (the first column's length; the engine rejects ragged batches).
    pub fn num_rows(&self) -> usize {
        self.columns.first().map_or(0, Column::len)
    }

    pub fn column(&self, name: &str) -> Option<&Column> {
        self.names
            .iter()
            .position(|n| n.eq_ignore_ascii_case(name))
            .map(|i| &self.columns[i])
    }
}
