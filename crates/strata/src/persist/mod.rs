//! Persistence of the tiers that keep data: WAL segments and snapshots in the data
//! directory, and (durable) snapshots in an object store. Compiled only into those tiers.

pub mod image;
pub mod index_store;
pub mod local;
#[cfg(feature = "object-store")]
pub mod object_snapshots;
pub mod redb_indexes;
pub mod snapshot;
pub mod snapshot_store;
pub mod wal;

/// 128 random bits, from the standard library's randomly keyed hasher (seeded by the OS):
/// tells a writer its own object from another's when it reads one back.
#[cfg(feature = "object-store")]
pub fn random_id() -> u128 {
    use std::hash::{BuildHasher, Hasher};
    let state = std::collections::hash_map::RandomState::new();
    let mut a = state.build_hasher();
    a.write_u64(1);
    let mut b = state.build_hasher();
    b.write_u64(2);
    (a.finish() as u128) << 64 | b.finish() as u128
}
