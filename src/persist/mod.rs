//! Local persistence of the tiers that keep data: WAL segments and snapshots in the data
//! directory. Compiled only into those tiers.

pub mod image;
pub mod index;
pub mod local;
pub mod redb_indexes;
pub mod snapshot;
pub mod wal;

/// When the WAL is fsynced.
pub use crate::checkpoint::SyncMode as SyncPolicy;
