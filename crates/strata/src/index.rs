//! Secondary-index backends: the sorted `(column value, primary key)` entries behind
//! `CREATE INDEX`, used by `SELECT … WHERE col = x` and range predicates on that column.
//!
//! The engine keeps the catalog of indexes and calls the backend only in tiers whose
//! `P::INDEXES` is not `None`; the others carry the zero-sized [`NoIndexes`].

use crate::checkpoint::PersistSettings;
use crate::types::{Key, Value};
use std::ops::Bound;

/// Index storage. Contract, per method:
pub trait IndexBackend: Sized {
    /// Opens the index storage of a data directory. The string, if any, says why every
    /// index must be rebuilt (a missing or damaged file); the engine prints it as a notice.
    fn open(settings: &PersistSettings) -> Result<(Self, Option<String>), crate::Error>;

    /// Discards the index storage of a data directory that is opened with index storage
    /// off: its tables change without their indexes, so what is stored goes out of date.
    /// Returns whether there was anything to discard. The indexes are rebuilt from their
    /// tables when the storage is on again.
    fn discard(settings: &PersistSettings) -> Result<bool, crate::Error>;

    /// Whether `index` exists in storage.
    fn exists(&self, index: &str) -> bool;

    /// Replaces the entries of `index` (creating it) with `entries`.
    fn rebuild(
        &mut self,
        index: &str,
        entries: &mut dyn Iterator<Item = (Value, Key)>,
    ) -> Result<(), crate::Error>;

    /// Removes `index` and its entries; absent is not an error.
    fn drop_index(&mut self, index: &str) -> Result<(), crate::Error>;

    /// Removes then adds entries of `index`, in one step.
    fn apply(
        &mut self,
        index: &str,
        removed: &[(Value, Key)],
        added: &[(Value, Key)],
    ) -> Result<(), crate::Error>;

    /// Primary keys whose column value lies within the bounds, in value order. NULL values
    /// never match.
    fn lookup(
        &self,
        index: &str,
        lower: Bound<&Value>,
        upper: Bound<&Value>,
    ) -> Result<Vec<Key>, crate::Error>;

    /// Makes every entry durable and records that the indexes reflect the log up to `lsn`.
    fn mark_durable(&mut self, lsn: u64) -> Result<(), crate::Error>;

    /// The `lsn` of the last [`mark_durable`](Self::mark_durable) when the storage holds
    /// exactly the entries as of that mark (as after a crash); `None` when it holds every
    /// change made through it since (as after a clean close), or nothing was ever marked.
    fn durable_lsn(&self) -> Option<u64>;
}

/// The index backend of tiers without secondary indexes: zero-sized; the engine never calls it.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoIndexes;

impl IndexBackend for NoIndexes {
    fn open(_settings: &PersistSettings) -> Result<(Self, Option<String>), crate::Error> {
        Ok((NoIndexes, None))
    }

    fn discard(_settings: &PersistSettings) -> Result<bool, crate::Error> {
        Ok(false)
    }

    fn exists(&self, _index: &str) -> bool {
        false
    }

    fn rebuild(
        &mut self,
        _index: &str,
        _entries: &mut dyn Iterator<Item = (Value, Key)>,
    ) -> Result<(), crate::Error> {
        Ok(())
    }

    fn drop_index(&mut self, _index: &str) -> Result<(), crate::Error> {
        Ok(())
    }

    fn apply(
        &mut self,
        _index: &str,
        _removed: &[(Value, Key)],
        _added: &[(Value, Key)],
    ) -> Result<(), crate::Error> {
        Ok(())
    }

    fn lookup(
        &self,
        _index: &str,
        _lower: Bound<&Value>,
        _upper: Bound<&Value>,
    ) -> Result<Vec<Key>, crate::Error> {
        Ok(Vec::new())
    }

    fn mark_durable(&mut self, _lsn: u64) -> Result<(), crate::Error> {
        Ok(())
    }

    fn durable_lsn(&self) -> Option<u64> {
        None
    }
}

static_assertions::assert_eq_size!(NoIndexes, ());
