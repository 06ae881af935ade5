//! Checkpointers: where a tier sends logical changes so that they outlive the process.
//!
//! The engine calls a checkpointer only when `P::PERSISTENT` is true, so for tiers that do
//! not persist the calls fold away at compile time.

use crate::batch::Column;
use crate::change::{Change, OwnedChange};
use crate::types::Key;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// The state of one catalog object, in types every tier has, for snapshots.
#[derive(Clone, Debug, PartialEq)]
pub enum ObjectState {
    /// Sources keep no rows.
    Source,
    /// Every row of a table, as columns in schema order.
    Table { columns: Vec<Column> },
    /// A view's groups in slot order: group keys, the row-major accumulator records, text
    /// MIN/MAX values per text aggregate, and the (group slot, value) pairs per DISTINCT
    /// aggregate.
    View {
        keys: Vec<Key>,
        records: Vec<i64>,
        texts: Vec<Vec<Option<Arc<str>>>>,
        distinct: Vec<Vec<(u32, Key)>>,
    },
}

/// What a checkpointer reads of an engine to write a snapshot: its catalog and the state of
/// each object, as of the last change recorded. Read-only.
pub trait StateView {
    /// `(name, DDL)` of every object, in creation order (a view after its source).
    fn catalog(&self) -> Vec<(String, String)>;
    /// The state of one object.
    fn export(&self, name: &str) -> Option<ObjectState>;
}

/// One object of a snapshot: its name, its DDL and its state.
pub type SnapshotObject = (String, String, ObjectState);

/// What a checkpointer's storage holds when it is opened, for the engine to apply: the
/// newest snapshot, then every change logged after it, in order. The engine pulls the
/// changes; nothing is applied by the checkpointer.
pub struct Recovery {
    /// The log position the snapshot covers (0: no snapshot).
    pub snapshot_lsn: u64,
    /// Where the snapshot is, for errors about it.
    pub snapshot_location: String,
    /// The snapshot's objects in creation order.
    pub objects: Vec<SnapshotObject>,
    /// Where the log is, for errors about its records.
    pub log_location: String,
    /// The logged changes after the snapshot, with their log positions.
    pub log: Box<dyn Iterator<Item = Result<(u64, OwnedChange), crate::Error>>>,
}

impl Recovery {
    /// Nothing to recover (a tier that keeps nothing, or empty storage).
    pub fn empty() -> Recovery {
        Recovery {
            snapshot_lsn: 0,
            snapshot_location: String::new(),
            objects: Vec::new(),
            log_location: String::new(),
            log: Box::new(std::iter::empty()),
        }
    }
}

impl std::fmt::Debug for Recovery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Recovery")
            .field("snapshot_lsn", &self.snapshot_lsn)
            .field("snapshot_location", &self.snapshot_location)
            .field("objects", &self.objects.len())
            .field("log_location", &self.log_location)
            .finish_non_exhaustive()
    }
}

/// Where a tier keeps what must survive the process.
pub trait Checkpointer: Sized {
    /// Opens (and locks) the tier's storage, and returns it with what it holds: the newest
    /// snapshot and the log after it, which the engine applies before anything else.
    fn open(settings: &PersistSettings) -> Result<(Self, Recovery), crate::Error>;

    /// Records `change` before the engine applies it. When this returns `Ok`, the change is
    /// acknowledged under the sync policy; on `Err` the engine does not apply it.
    fn record(&mut self, change: &Change<'_>) -> Result<(), crate::Error>;

    /// Writes a snapshot of `state`, after which older log can be dropped.
    fn checkpoint(&mut self, state: &dyn StateView) -> Result<CheckpointReport, crate::Error>;

    /// Whether a periodic checkpoint is due.
    fn checkpoint_due(&self) -> bool;

    /// When the newest checkpoint was written: the last successful one of this process, or
    /// else the one recovery started from.
    fn last_success(&self) -> Option<std::time::SystemTime>;

    /// Counters of the log and the checkpoints since the process started.
    fn metrics(&self) -> crate::metrics::StorageMetrics;

    /// Checks that where checkpoints go is reachable now (a live probe of an object store).
    fn probe(&self) -> Result<(), crate::Error>;
}

/// What a checkpoint wrote.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckpointReport {
    /// Log position the snapshot covers.
    pub lsn: u64,
    pub bytes: u64,
    pub millis: u64,
}

/// Where and how persistent tiers keep data. Ignored by tiers that keep nothing.
#[derive(Clone, Debug, PartialEq)]
pub struct PersistSettings {
    pub data_dir: PathBuf,
    /// `always`, `interval:<ms>` or `never`, as [`crate::config`] reads it.
    pub sync: SyncMode,
    /// Automatic checkpoint period; `None` checkpoints only on request and at close.
    pub checkpoint_interval: Option<Duration>,
    /// Snapshots kept.
    pub keep: usize,
    /// Truncate the log at a corrupt record instead of refusing to start.
    pub truncate_at_corruption: bool,
    /// Keep secondary indexes (tiers where they are optional).
    pub indexes: bool,
    /// The index file: relative to `data_dir`, or absolute.
    pub index_file: PathBuf,
    /// Where snapshots go in tiers that keep them in an object store.
    pub object_store: ObjectStoreSettings,
}

/// The index file's name in the data directory, unless `[indexes] db_path` names another.
pub const DEFAULT_INDEX_FILE: &str = "indexes.redb";

impl PersistSettings {
    /// The secondary index file: `index_file` under `data_dir` (or as is, when absolute).
    pub fn index_path(&self) -> PathBuf {
        self.data_dir.join(&self.index_file)
    }
}

/// The object store of the durable tier, as [`crate::config`] reads `[object_store]`.
#[derive(Clone, PartialEq)]
pub struct ObjectStoreSettings {
    /// `file:///path`, `memory://NAME` or `s3://BUCKET/PREFIX`.
    pub url: Option<String>,
    /// S3: an S3-compatible server's endpoint, e.g. `http://127.0.0.1:9000`.
    pub endpoint: Option<String>,
    /// S3: region, access key and secret; unset ones come from the `AWS_*` variables.
    pub region: Option<String>,
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<String>,
    /// S3: allow plain `http://` endpoints (a server on loopback).
    pub allow_http: bool,
    /// The longest one request may take, retries included.
    pub timeout: Duration,
    /// Claim the prefix even though another data directory owns it (that directory is
    /// fenced: its next checkpoint fails).
    pub take_over: bool,
}

impl Default for ObjectStoreSettings {
    fn default() -> Self {
        ObjectStoreSettings {
            url: None,
            endpoint: None,
            region: None,
            access_key_id: None,
            secret_access_key: None,
            allow_http: false,
            timeout: Duration::from_secs(30),
            take_over: false,
        }
    }
}

impl std::fmt::Debug for ObjectStoreSettings {
    /// Never prints the secret.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ObjectStoreSettings")
            .field("url", &self.url)
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .field("access_key_id", &self.access_key_id)
            .field(
                "secret_access_key",
                &self.secret_access_key.as_ref().map(|_| "<redacted>"),
            )
            .field("allow_http", &self.allow_http)
            .field("timeout", &self.timeout)
            .field("take_over", &self.take_over)
            .finish()
    }
}

/// When logged changes reach the disk.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum SyncMode {
    /// Each statement or batch is fsynced before it is acknowledged.
    Always,
    /// At most every `ms` milliseconds; a crash loses at most that window.
    Interval { ms: u64 },
    /// Left to the operating system; a crash may lose recent writes.
    Never,
}

impl Default for PersistSettings {
    fn default() -> Self {
        PersistSettings {
            data_dir: PathBuf::from("./strata-data"),
            sync: SyncMode::Always,
            checkpoint_interval: Some(Duration::from_secs(300)),
            keep: 2,
            truncate_at_corruption: false,
            indexes: true,
            index_file: PathBuf::from(DEFAULT_INDEX_FILE),
            object_store: ObjectStoreSettings::default(),
        }
    }
}

/// The checkpointer of tiers that keep nothing: zero-sized; the engine never calls it.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoCheckpoint;

impl Checkpointer for NoCheckpoint {
    fn open(_settings: &PersistSettings) -> Result<(Self, Recovery), crate::Error> {
        Ok((NoCheckpoint, Recovery::empty()))
    }

    #[inline(always)]
    fn record(&mut self, _change: &Change<'_>) -> Result<(), crate::Error> {
        Ok(())
    }

    fn checkpoint(&mut self, _state: &dyn StateView) -> Result<CheckpointReport, crate::Error> {
        Ok(CheckpointReport {
            lsn: 0,
            bytes: 0,
            millis: 0,
        })
    }

    fn checkpoint_due(&self) -> bool {
        false
    }

    fn last_success(&self) -> Option<std::time::SystemTime> {
        None
    }

    fn metrics(&self) -> crate::metrics::StorageMetrics {
        crate::metrics::StorageMetrics::default()
    }

    fn probe(&self) -> Result<(), crate::Error> {
        Ok(())
    }
}

static_assertions::assert_eq_size!(NoCheckpoint, ());
