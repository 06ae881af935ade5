//! Window table functions: `TUMBLE(src, ts, size)` and `HOP(src, ts, slide, size)` in
//! `FROM`, and `hop(ts, slide, size)` in `GROUP BY`. Each input row appears once per window
//! that contains its timestamp, with the window's start and end appended as two TIMESTAMP
//! columns (`window_start`, `window_end`) after the input's own. A tumbling window is a hop
//! whose slide is its size: one window per row.
//!
//! Windows are aligned to the Unix epoch: the windows of `ts` start at the multiples of
//! `slide` in `(ts - size, ts]`. A row whose timestamp is NULL appears once, in a NULL window.

use super::batch_rows::BatchRow;
use crate::batch::Column;
use crate::error::ExecError;
use crate::sql::expr::Expr;
use crate::types::Value;

/// The windows an input is expanded into.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Windowing {
    /// The timestamp, over the input's columns.
    pub ts: Expr,
    pub slide_ms: i64,
    pub size_ms: i64,
}

impl Windowing {
    /// Calls `each(start)` for every window that contains `ts`, latest first.
    fn windows(&self, ts: Value, mut each: impl FnMut(Option<i64>)) -> Result<(), ExecError> {
        let Value::Timestamp(t) = ts else {
            each(None);
            return Ok(());
        };
        // In i128: the windows of an extreme timestamp may start or end beyond i64.
        let (t, slide, size) = (t as i128, self.slide_ms as i128, self.size_ms as i128);
        let mut start = t - t.rem_euclid(slide);
        while start > t - size {
            match (i64::try_from(start), i64::try_from(start + size)) {
                (Ok(s), Ok(_)) => each(Some(s)),
                _ => {
                    return Err(ExecError::Eval(format!(
                        "timestamp {t} ms has a window beyond the TIMESTAMP range"
                    )))
                }
            }
            start -= slide;
        }
        Ok(())
    }

    /// `columns` (of `rows` rows) expanded: each row once per window, then the windows'
    /// start and end columns.
    pub fn expand_columns(
        &self,
        columns: &[Column],
        rows: usize,
    ) -> Result<Vec<Column>, ExecError> {
        let mut source = Vec::with_capacity(rows);
        let mut starts = Vec::with_capacity(rows);
        for r in 0..rows {
            let ts = self.ts.eval(&BatchRow { columns, row: r })?;
            self.windows(ts, |start| {
                source.push(r as u32);
                starts.push(start);
            })?;
        }
        let mut expanded: Vec<Column> = columns.iter().map(|c| c.gather(&source)).collect();
        let bound = |offset: i64| {
            let values = starts
                .iter()
                .map(|s| s.map_or(Value::Null, |s| Value::Timestamp(s + offset)))
                .collect::<Vec<_>>();
            Column::from_values(crate::types::DataType::Timestamp, &values)
        };
        expanded.push(bound(0));
        expanded.push(bound(self.size_ms));
        Ok(expanded)
    }

    /// Rows expanded the same way.
    pub fn expand_rows(&self, rows: Vec<Vec<Value>>) -> Result<Vec<Vec<Value>>, ExecError> {
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            let ts = self.ts.eval(&row[..])?;
            self.windows(ts, |start| {
                let mut r = row.clone();
                r.push(start.map_or(Value::Null, Value::Timestamp));
                r.push(start.map_or(Value::Null, |s| Value::Timestamp(s + self.size_ms)));
                out.push(r);
            })?;
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::DataType;

    fn starts(w: &Windowing, t: i64) -> Vec<Option<i64>> {
        let mut out = Vec::new();
        w.windows(Value::Timestamp(t), |s| out.push(s)).unwrap();
        out
    }

    #[test]
    fn a_row_is_in_every_window_that_contains_it() {
        let ts = Expr::Column {
            index: 0,
            ty: DataType::Timestamp,
        };
        let hop = Windowing {
            ts: ts.clone(),
            slide_ms: 5,
            size_ms: 15,
        };
        assert_eq!(starts(&hop, 10), [Some(10), Some(5), Some(0)]);
        assert_eq!(starts(&hop, 14), [Some(10), Some(5), Some(0)]);
        assert_eq!(starts(&hop, -1), [Some(-5), Some(-10), Some(-15)]);
        let tumble = Windowing {
            ts: ts.clone(),
            slide_ms: 10,
            size_ms: 10,
        };
        assert_eq!(starts(&tumble, 19), [Some(10)]);
        assert_eq!(starts(&tumble, -1), [Some(-10)]);
        // A slide longer than the size leaves gaps: some rows are in no window.
        let sparse = Windowing {
            ts,
            slide_ms: 10,
            size_ms: 3,
        };
        assert_eq!(starts(&sparse, 12), [Some(10)]);
        assert_eq!(starts(&sparse, 15), Vec::<Option<i64>>::new());
    }
}
