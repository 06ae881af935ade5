//! State backends: the key→value maps that hold every table's rows and every view's groups.
//!
//! Two implementations share one contract and one conformance suite (`tests/state_conformance.rs`):
//! [`FixedTable`] (bare-metal: capacity fixed at creation, memory allocated once, never grown)
//! and [`ElasticTable`] (`FxHashMap`, grows).

mod elastic;
mod fixed;

pub use elastic::ElasticTable;
pub use fixed::FixedTable;

use std::hash::Hash;

/// An insert that needs a new entry found the map at capacity. Nothing was changed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("state is full: capacity is {capacity} keys")]
pub struct Full {
    pub capacity: usize,
}

/// A key→value map holding the state of one table or view.
///
/// Contract, checked for every implementation by the shared conformance suite:
/// - a failed operation (`Err(Full)`) changes nothing;
/// - `len` counts distinct keys present; `iter` yields each exactly once, in an unspecified order;
/// - a fixed backend (`GROWS == false`) accepts exactly `capacity()` keys and allocates no
///   memory after `with_capacity`; a growing backend never returns `Full`.
pub trait StateBackend<K: Eq + Hash + Clone, V>: Sized {
    /// Whether the map grows past the capacity it was created with.
    const GROWS: bool;

    /// Creates an empty map for `capacity` keys: the hard limit of a fixed backend (which
    /// allocates all its memory here), a sizing hint for a growing one.
    fn with_capacity(capacity: usize) -> Self;

    /// The most keys the map can hold, or `None` if it grows.
    fn capacity(&self) -> Option<usize>;

    /// Number of keys present.
    fn len(&self) -> usize;

    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn get(&self, key: &K) -> Option<&V>;

    fn get_mut(&mut self, key: &K) -> Option<&mut V>;

    /// The value for `key`, inserting `make()` first if the key is absent. The flag says
    /// whether it was inserted. `Err(Full)` if the key is absent and the map is full.
    fn get_or_insert_with(
        &mut self,
        key: K,
        make: impl FnOnce() -> V,
    ) -> Result<(&mut V, bool), Full>;

    /// Inserts or replaces, returning the previous value. `Err(Full)` if the key is new and
    /// the map is full.
    fn insert(&mut self, key: K, value: V) -> Result<Option<V>, Full>;

    /// Removes the key, returning its value.
    fn remove(&mut self, key: &K) -> Option<V>;

    /// Removes every key; a fixed backend keeps its memory.
    fn clear(&mut self);

    /// Every entry once, in an unspecified order.
    fn iter<'a>(&'a self) -> impl Iterator<Item = (&'a K, &'a V)> + 'a
    where
        K: 'a,
        V: 'a;
}
