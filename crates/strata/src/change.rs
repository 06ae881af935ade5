//! A logical change: the unit that every mutation becomes once it is validated, that a tier
//! records (the WAL of the persistent tiers) before it is applied, and that recovery applies
//! again. Its encoding in the log is [`crate::persist`]'s business; its meaning is the
//! engine's.

use crate::batch::Column;
use crate::types::Key;

/// One validated change, as it is recorded and replayed.
#[derive(Debug)]
pub enum Change<'a> {
    /// A DDL statement, as SQL text that parses back to the same statement.
    Ddl(&'a str),
    /// Rows appended to a source or written to a table, as validated columns in schema
    /// order (`replace`: `INSERT OR REPLACE`, tables only).
    Insert {
        target: &'a str,
        columns: &'a [Column],
        replace: bool,
    },
    /// Rows deleted from a table, by primary key.
    Delete { table: &'a str, keys: &'a [Key] },
}

/// A [`Change`] that owns its data: what a log replay yields, one record at a time.
#[derive(Clone, Debug, PartialEq)]
pub enum OwnedChange {
    Ddl(String),
    Insert {
        target: String,
        columns: Vec<Column>,
        replace: bool,
    },
    Delete {
        table: String,
        keys: Vec<Key>,
    },
}

impl OwnedChange {
    /// The change borrowed, as the engine applies it.
    pub fn as_change(&self) -> Change<'_> {
        match self {
            OwnedChange::Ddl(text) => Change::Ddl(text),
            OwnedChange::Insert {
                target,
                columns,
                replace,
            } => Change::Insert {
                target,
                columns,
                replace: *replace,
            },
            OwnedChange::Delete { table, keys } => Change::Delete { table, keys },
        }
    }
}
