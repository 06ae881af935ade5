//! What Strata's own integration tests and benches reach beyond the public API: the
//! crates the tiers are built on (to damage an index file or wrap an object store) and the
//! fault-injection hooks. Compiled only with the `testing` feature, which only this crate's
//! dev-dependencies enable, so release builds never hold it (`scripts/check-erasure` checks).

#[cfg(feature = "persistence")]
pub use {crc32c, redb, rkyv};
#[cfg(feature = "object-store")]
pub use {futures_util, object_store, tokio};
