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
