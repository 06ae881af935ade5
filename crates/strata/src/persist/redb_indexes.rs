//! The index backend of the embedded tier: [`IndexStore`] (redb) behind [`IndexBackend`].

use super::index_store::IndexStore;
use crate::checkpoint::PersistSettings;
use crate::index::IndexBackend;
use crate::types::{Key, Value};
use std::ops::Bound;

/// Secondary indexes in one redb file, `<data_dir>/indexes.redb` unless configured.
pub struct RedbIndexes {
    store: IndexStore,
}

impl IndexBackend for RedbIndexes {
    fn open(settings: &PersistSettings) -> Result<(Self, Option<String>), crate::Error> {
        let (store, report) = IndexStore::open(settings.index_path())?;
        let rebuild = if report.rebuilt_all {
            report.reason
        } else {
            None
        };
        Ok((RedbIndexes { store }, rebuild))
    }

    fn discard(settings: &PersistSettings) -> Result<bool, crate::Error> {
        let path = settings.index_path();
        match std::fs::remove_file(&path) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(crate::PersistError::io("remove", &path, e).into()),
        }
    }

    fn exists(&self, index: &str) -> bool {
        self.store.exists(index)
    }

    fn rebuild(
        &mut self,
        index: &str,
        entries: &mut dyn Iterator<Item = (Value, Key)>,
    ) -> Result<(), crate::Error> {
        Ok(self.store.rebuild(index, entries)?)
    }

    fn drop_index(&mut self, index: &str) -> Result<(), crate::Error> {
        self.store.drop_index(index)?;
        Ok(())
    }

    fn apply(
        &mut self,
        index: &str,
        removed: &[(Value, Key)],
        added: &[(Value, Key)],
    ) -> Result<(), crate::Error> {
        Ok(self.store.apply(index, removed, added)?)
    }

    fn lookup(
        &self,
        index: &str,
        lower: Bound<&Value>,
        upper: Bound<&Value>,
    ) -> Result<Vec<Key>, crate::Error> {
        Ok(self.store.lookup_range(index, lower, upper)?)
    }

    fn mark_durable(&mut self, lsn: u64) -> Result<(), crate::Error> {
        Ok(self.store.mark_durable(lsn)?)
    }

    fn durable_lsn(&self) -> Option<u64> {
        self.store.durable_lsn()
    }
}
