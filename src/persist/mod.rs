//! Local persistence of the tiers that keep data: WAL segments and snapshots in the data
//! directory. Compiled only into those tiers.

pub mod image;
pub mod local;
pub mod snapshot;
pub mod wal;

/// When the WAL is fsynced.
pub use crate::checkpoint::SyncMode as SyncPolicy;
