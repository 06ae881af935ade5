//! Secondary indexes in use: keeping a table's index entries in step with its rows, and
//! narrowing the rows a query reads. The entries live in the tier's index backend
//! (`P::Indexes`); the catalog of indexes is the kernel's.

use super::kernel::Kernel;
use crate::error::{Error, Result};
use crate::index::IndexBackend;
use crate::profile::PhysicalProfile;
use crate::sql::expr::{BinOp, Expr};
use crate::state::StateBackend;
use crate::types::{Key, Value};
use std::ops::Bound;

impl<P: PhysicalProfile> Kernel<P> {
    /// Brings the indexes of `table` up to date after rows `removed` (key, old row) went
    /// away and rows with keys `written` were stored.
    pub(super) fn update_indexes(
        &mut self,
        table: &str,
        removed: &[(Key, Box<[Value]>)],
        written: &[Key],
    ) {
        let Some(backend) = self.index_backend.as_mut() else {
            return;
        };
        let Some(t) = self.tables.get(table) else {
            return;
        };
        for (index, def) in self.indexes.iter().filter(|(_, d)| d.table == table) {
            let old: Vec<(Value, Key)> = removed
                .iter()
                .map(|(k, row)| (row[def.column].clone(), k.clone()))
                .collect();
            let new: Vec<(Value, Key)> = written
                .iter()
                .filter_map(|k| {
                    t.rows
                        .get(k)
                        .map(|row| (row[def.column].clone(), k.clone()))
                })
                .collect();
            if let Err(e) = backend.apply(index, &old, &new) {
                self.index_storage_failed(&e);
                return;
            }
        }
    }

    /// The index storage failed under a change that is already recorded and applied: the
    /// change stands, and the indexes are no longer used (queries scan) or maintained until
    /// the next start, which rebuilds them from their tables (their stored entries are not
    /// marked as of any later snapshot).
    pub(super) fn index_storage_failed(&mut self, error: &Error) {
        tracing::error!(
            "secondary index storage failed ({error}); queries scan their tables from now on, \
             and the indexes are rebuilt at the next start"
        );
        self.index_backend = None;
        self.index_failure = Some(error.to_string());
    }

    /// Primary keys of the rows an index says can satisfy `filter`, when an index covers one
    /// of its top-level `AND`ed comparisons of a column with a literal of the column's type.
    pub(super) fn index_candidates(
        &self,
        table: &str,
        filter: Option<&Expr>,
    ) -> Result<Option<Vec<Key>>> {
        let (Some(backend), Some(filter)) = (self.index_backend.as_ref(), filter) else {
            return Ok(None);
        };
        let mut conjuncts = vec![filter];
        let mut comparisons = Vec::new();
        while let Some(e) = conjuncts.pop() {
            match e {
                Expr::Binary {
                    op: BinOp::And,
                    left,
                    right,
                    ..
                } => conjuncts.extend([&**left, &**right]),
                Expr::Binary {
                    op, left, right, ..
                } => match (&**left, &**right) {
                    (Expr::Column { index, ty }, Expr::Literal(v))
                        if v.data_type() == Some(*ty) =>
                    {
                        comparisons.push((*index, *op, v))
                    }
                    (Expr::Literal(v), Expr::Column { index, ty })
                        if v.data_type() == Some(*ty) =>
                    {
                        let flipped = match op {
                            BinOp::Lt => BinOp::Gt,
                            BinOp::LtEq => BinOp::GtEq,
                            BinOp::Gt => BinOp::Lt,
                            BinOp::GtEq => BinOp::LtEq,
                            other => *other,
                        };
                        comparisons.push((*index, flipped, v))
                    }
                    _ => {}
                },
                _ => {}
            }
        }
        for (index, def) in self.indexes.iter().filter(|(_, d)| d.table == table) {
            let on_column: Vec<_> = comparisons
                .iter()
                .filter(|(c, _, _)| *c == def.column)
                .collect();
            if let Some((_, _, v)) = on_column.iter().find(|(_, op, _)| *op == BinOp::Eq) {
                return Ok(Some(backend.lookup(
                    index,
                    Bound::Included(v),
                    Bound::Included(v),
                )?));
            }
            let (mut lower, mut upper) = (Bound::Unbounded, Bound::Unbounded);
            for (_, op, v) in &on_column {
                match op {
                    BinOp::Gt => lower = Bound::Excluded(*v),
                    BinOp::GtEq => lower = Bound::Included(*v),
                    BinOp::Lt => upper = Bound::Excluded(*v),
                    BinOp::LtEq => upper = Bound::Included(*v),
                    _ => {}
                }
            }
            if !matches!((&lower, &upper), (Bound::Unbounded, Bound::Unbounded)) {
                return Ok(Some(backend.lookup(index, lower, upper)?));
            }
        }
        Ok(None)
    }
}

impl<P: PhysicalProfile> Kernel<P> {
    /// A checkpoint covering log position `lsn` is durable: makes the index entries durable
    /// and records that they reflect the log up to it.
    pub(super) fn mark_indexes_durable(&mut self, lsn: u64) {
        if let Some(backend) = self.index_backend.as_mut() {
            if let Err(e) = backend.mark_durable(lsn) {
                self.index_storage_failed(&e);
            }
        }
    }
}
