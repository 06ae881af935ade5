//! Where a [`WalCheckpointer`](super::local::WalCheckpointer) keeps its snapshots: a local
//! directory ([`SnapshotDir`], embedded) or an object store (durable). The checkpointer
//! logic — WAL first, snapshot, then drop the log no kept snapshot needs — is the same for
//! both; only this storage differs. `tests/snapshot_stores.rs` runs one conformance suite
//! over every implementation.

use super::snapshot::{LoadOutcome, SnapshotBody, SnapshotDir, SnapshotHeader};
use crate::checkpoint::PersistSettings;
use crate::error::{Error, PersistError};

/// Snapshot storage for a WAL checkpointer. A snapshot is an opaque body (an rkyv archive)
/// covering every log record up to an LSN.
pub trait SnapshotStore: Sized {
    /// Opens the store that `settings` name and checks that it can be used; errors name the
    /// store and the cause. Called with the data directory already locked.
    fn open(settings: &PersistSettings) -> Result<Self, Error>;

    /// Where the snapshots are, for messages (a directory or a URL).
    fn location(&self) -> String;

    /// Checks that the storage is reachable and writable right now (for health checks).
    fn probe(&self) -> Result<(), PersistError>;

    /// Stores `body` (taken, so that it can be handed on without a copy) as the snapshot of
    /// `lsn`. When this returns `Ok` the snapshot survives
    /// a crash and [`load_newest`](Self::load_newest) can return it. On `Err`, or if the
    /// process dies midway, the snapshots stored before are untouched and nothing of this
    /// one is visible. Storing an LSN that is already stored replaces it the same way.
    fn write(&mut self, lsn: u64, body: SnapshotBody) -> Result<(), PersistError>;

    /// The newest snapshot whose checksums hold and that `validate` accepts (given its
    /// header, for the format version, and its body), trying newest first, with every newer one that was skipped and why. `Err` when the store cannot be
    /// read at all (falling back past a snapshot that could not be read could lose data) or
    /// a snapshot has a newer format version.
    fn load_newest(
        &mut self,
        validate: &mut dyn FnMut(&SnapshotHeader, &SnapshotBody) -> Result<(), String>,
    ) -> Result<LoadOutcome<()>, PersistError>;

    /// Keeps the newest `keep` (at least 1) complete snapshots and deletes older ones and
    /// leftovers of interrupted writes. Returns the LSN of the oldest snapshot kept: log
    /// records after it are still needed (`None`: no snapshot, the whole log is).
    fn retain(&mut self, keep: usize) -> Result<Option<u64>, PersistError>;
}

impl SnapshotStore for SnapshotDir {
    fn open(settings: &PersistSettings) -> Result<Self, Error> {
        let dir = SnapshotDir::new(&settings.data_dir);
        for stale in dir.remove_stale_temps()? {
            tracing::info!(
                "removed {} left by an interrupted checkpoint",
                stale.display()
            );
        }
        Ok(dir)
    }

    fn location(&self) -> String {
        self.path().display().to_string()
    }

    /// The local directory is checked by every write; nothing to probe separately.
    fn probe(&self) -> Result<(), PersistError> {
        Ok(())
    }

    fn write(&mut self, lsn: u64, body: SnapshotBody) -> Result<(), PersistError> {
        SnapshotDir::write(self, lsn, &body).map(|_| ())
    }

    fn load_newest(
        &mut self,
        validate: &mut dyn FnMut(&SnapshotHeader, &SnapshotBody) -> Result<(), String>,
    ) -> Result<LoadOutcome<()>, PersistError> {
        SnapshotDir::load_newest(self, validate)
    }

    fn retain(&mut self, keep: usize) -> Result<Option<u64>, PersistError> {
        SnapshotDir::retain(self, keep).map(|r| r.oldest_kept_lsn)
    }
}
