//! Row views over columnar data, for row-at-a-time expression evaluation.

use crate::batch::Column;
use crate::sql::expr::Row;
use crate::types::Value;

/// Row `row` of `columns`.
pub struct BatchRow<'a> {
    pub columns: &'a [Column],
    pub row: usize,
}

impl Row for BatchRow<'_> {
    #[inline]
    fn value(&self, index: usize) -> Value {
        self.columns[index].value(self.row)
    }
}
