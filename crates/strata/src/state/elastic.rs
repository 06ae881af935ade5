//! The growing backend: an `FxHashMap`.

use super::{Full, StateBackend};
use rustc_hash::FxHashMap;
use std::hash::Hash;

/// `FxHashMap`-backed state for the tiers whose state grows.
#[derive(Clone, Debug)]
pub struct ElasticTable<K, V> {
    map: FxHashMap<K, V>,
}

impl<K: Eq + Hash + Clone, V> StateBackend<K, V> for ElasticTable<K, V> {
    const GROWS: bool = true;

    fn with_capacity(capacity: usize) -> Self {
        let mut map = FxHashMap::default();
        map.reserve(capacity);
        ElasticTable { map }
    }

    fn capacity(&self) -> Option<usize> {
        None
    }

    #[inline]
    fn len(&self) -> usize {
        self.map.len()
    }

    #[inline]
    fn get(&self, key: &K) -> Option<&V> {
        self.map.get(key)
    }

    #[inline]
    fn get_mut(&mut self, key: &K) -> Option<&mut V> {
        self.map.get_mut(key)
    }

    // Always inlined: the per-row insert of every aggregation (a call per row costs ~20% at
    // small key counts, `benches/ingest.rs`).
    #[inline(always)]
    fn get_or_insert_with(
        &mut self,
        key: K,
        make: impl FnOnce() -> V,
    ) -> Result<(&mut V, bool), Full> {
        use std::collections::hash_map::Entry;
        Ok(match self.map.entry(key) {
            Entry::Occupied(e) => (e.into_mut(), false),
            Entry::Vacant(e) => (e.insert(make()), true),
        })
    }

    #[inline]
    fn insert(&mut self, key: K, value: V) -> Result<Option<V>, Full> {
        Ok(self.map.insert(key, value))
    }

    #[inline]
    fn remove(&mut self, key: &K) -> Option<V> {
        self.map.remove(key)
    }

    fn clear(&mut self) {
        self.map.clear();
    }

    fn iter<'a>(&'a self) -> impl Iterator<Item = (&'a K, &'a V)> + 'a
    where
        K: 'a,
        V: 'a,
    {
        self.map.iter()
    }
}
