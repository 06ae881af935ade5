//! What Strata's own integration tests and benches reach beyond the public API: the
//! persistence internals they exercise one by one (the WAL, snapshot files, the index store,
//! object-store checkpoints), the crates the tiers are built on (to damage an index file or
//! wrap an object store), and the fault-injection hooks. Compiled only with the `testing`
//! feature, which only this crate's dev-dependencies enable, so release builds never hold it
//! (`scripts/check-erasure` checks).

pub use crate::types::{format_timestamp, normalize_bits};

#[cfg(feature = "persistence")]
pub use crate::persist::{image, index_store, local, snapshot, snapshot_store, wal};
#[cfg(feature = "persistence")]
pub use {crc32c, redb, rkyv};

#[cfg(feature = "object-store")]
pub use crate::persist::object_snapshots;
#[cfg(feature = "object-store")]
pub use {futures_util, object_store, tokio};

/// The cluster's shared log: its fencing protocol is tested against every store.
#[cfg(feature = "cluster")]
pub use crate::cluster::log as cluster_log;

/// splitmix64: the small, seedable, deterministic generator every test and benchmark uses
/// (no `rand` dependency; the same seed gives the same stream on every machine).
#[derive(Clone, Debug)]
pub struct SplitMix64(pub u64);

impl SplitMix64 {
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (`n > 0`).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }
}
