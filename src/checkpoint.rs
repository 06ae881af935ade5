//! Checkpointers: where a tier sends logical changes so that they outlive the process.
//!
//! The engine calls a checkpointer only when `P::PERSISTENT` is true, so for tiers that do
//! not persist the calls fold away at compile time.

use crate::batch::Column;
use crate::types::Key;

/// A logical change, recorded before it is acknowledged.
#[derive(Debug)]
pub enum Change<'a> {
    /// A DDL statement, as text.
    Ddl(&'a str),
    /// Rows appended to a source or written to a table, as validated columns in schema
    /// order (`replace`: `INSERT OR REPLACE`).
    Insert { target: &'a str, columns: &'a [Column], replace: bool },
    /// Rows deleted from a table, by primary key.
    Delete { table: &'a str, keys: &'a [Key] },
}

/// Records changes durably.
pub trait Checkpointer: Default {
    /// Records `change`. When this returns `Ok`, the change is acknowledged under the tier's
    /// sync policy; on `Err` the engine does not apply it.
    fn record(&mut self, change: &Change<'_>) -> Result<(), crate::Error>;
}

/// The checkpointer of tiers that keep nothing: zero-sized, never called.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoCheckpoint;

impl Checkpointer for NoCheckpoint {
    #[inline(always)]
    fn record(&mut self, _change: &Change<'_>) -> Result<(), crate::Error> {
        Ok(())
    }
}

static_assertions::assert_eq_size!(NoCheckpoint, ());
