//! The checkpointer of the persistent tiers: a WAL in a local data directory, guarded by an
//! exclusive lock, plus snapshots in a [`SnapshotStore`] — the same directory (embedded,
//! [`LocalCheckpointer`]) or an object store (durable).
//!
//! ```text
//! <data_dir>/LOCK                       held (flock) by the process that has the directory open
//! <data_dir>/wal/<first lsn>.wal        log segments, see [`super::wal`]
//! <data_dir>/snapshots/<lsn>.snap       local snapshots, see [`super::snapshot`]
//! ```
//!
//! Every change is encoded ([`super::image`]) and appended to the WAL before the engine
//! applies it; a checkpoint writes the whole catalog and state as one snapshot, then drops
//! the WAL segments that no kept snapshot needs. Recovery loads the newest valid snapshot
//! (falling back to older ones) and replays the WAL after it. A failed periodic checkpoint
//! is retried with exponential backoff; the log keeps every change meanwhile.

use super::image::{
    self, ArchivedLogRecord, ArchivedSnapshotImage, ArchivedSnapshotImageV2,
    ArchivedSnapshotImageV3, ObjectImageV3, SnapshotImageV3,
};
use super::snapshot::{SnapshotBody, SnapshotDir, SnapshotHeader};
use super::snapshot_store::SnapshotStore;
use super::wal::{wal_dir, OnCorruption, Replay, Wal};
use crate::change::{Change, OwnedChange};
use crate::checkpoint::{
    CheckpointReport, Checkpointer, PersistSettings, Recovery, SnapshotObject, StateView,
};
use crate::error::{Error, PersistError};
use crate::metrics::StorageMetrics;
use rkyv::rancor;
use rkyv::util::AlignedVec;
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// WAL segments roll over at this size.
const SEGMENT_BYTES: u64 = 64 << 20;

/// The longest wait between retries of a failing periodic checkpoint.
const MAX_RETRY_DELAY: Duration = Duration::from_secs(300);

/// The embedded tier's checkpointer: WAL and snapshots in the local data directory.
pub type LocalCheckpointer = WalCheckpointer<SnapshotDir>;

/// A local WAL plus snapshots in `S`.
pub struct WalCheckpointer<S: SnapshotStore> {
    data_dir: PathBuf,
    /// Holds the directory lock for as long as the engine lives.
    _lock: File,
    wal: Wal,
    snapshots: S,
    settings: PersistSettings,
    last_checkpoint: Instant,
    /// When the newest checkpoint was written: by this process, or the one recovered from.
    last_success: Option<std::time::SystemTime>,
    /// Checkpoint counters (the log's come from the WAL).
    metrics: StorageMetrics,
    /// Periodic checkpoints that failed in a row, and when to try again.
    failures: u32,
    retry_at: Option<Instant>,
    /// Reused for encoding every logged change.
    encode_buf: AlignedVec,
}

impl<S: SnapshotStore> std::fmt::Debug for WalCheckpointer<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WalCheckpointer")
            .field("data_dir", &self.data_dir)
            .field("snapshots", &self.snapshots.location())
            .field("wal", &self.wal)
            .finish()
    }
}

/// A data directory that cannot be created, written or locked.
fn unmet(requirement: String) -> Error {
    PersistError::Unusable { requirement }.into()
}

/// Creates the data directory if needed, checks it is writable, and takes its lock.
pub(crate) fn lock_data_dir(dir: &Path) -> Result<File, Error> {
    std::fs::create_dir_all(dir).map_err(|e| {
        unmet(format!(
            "the data directory {} must exist or be creatable: {e}",
            dir.display()
        ))
    })?;
    let path = dir.join("LOCK");
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(|e| {
            unmet(format!(
                "the data directory {} must be writable: cannot open {}: {e}",
                dir.display(),
                path.display()
            ))
        })?;
    // A child this process is spawning holds a copy of the lock between fork and exec: when
    // the holder is this very process, wait a moment for the exec to drop it.
    let mut attempts = 0;
    loop {
        match file.try_lock() {
            Ok(()) => break,
            Err(std::fs::TryLockError::WouldBlock) => {
                let mut text = String::new();
                let _ = file.rewind().and_then(|_| file.read_to_string(&mut text));
                let pid: Option<u32> = text.trim().parse().ok();
                if pid == Some(std::process::id()) && attempts < 50 {
                    attempts += 1;
                    std::thread::sleep(std::time::Duration::from_millis(10));
                    continue;
                }
                return Err(PersistError::Locked {
                    dir: dir.display().to_string(),
                    pid,
                }
                .into());
            }
            Err(std::fs::TryLockError::Error(e)) => {
                return Err(PersistError::io("lock", &path, e).into())
            }
        }
    }
    // The holder's pid, for the error a second process gets.
    file.set_len(0)
        .and_then(|_| file.rewind())
        .and_then(|_| write!(file, "{}", std::process::id()))
        .map_err(|e| {
            unmet(format!(
                "the data directory {} must be writable: cannot write {}: {e}",
                dir.display(),
                path.display()
            ))
        })?;
    Ok(file)
}

/// Reads a payload into an aligned buffer and checks it as an archived `T`.
fn access<
    'a,
    T: rkyv::Portable
        + for<'b> rkyv::bytecheck::CheckBytes<rkyv::api::high::HighValidator<'b, rancor::Error>>,
>(
    bytes: &'a [u8],
) -> Result<&'a T, String> {
    rkyv::access::<T, rancor::Error>(bytes).map_err(|e| e.to_string())
}

impl<S: SnapshotStore> Checkpointer for WalCheckpointer<S> {
    fn open(settings: &PersistSettings) -> Result<(Self, Recovery), Error> {
        let data_dir = settings.data_dir.clone();
        let lock = lock_data_dir(&data_dir)?;
        let mut snapshots = S::open(settings)?;
        let outcome = snapshots.load_newest(&mut validate_image)?;
        for notice in outcome.notices() {
            tracing::warn!("{notice}");
        }
        let snapshot_lsn = outcome.loaded.as_ref().map_or(0, |l| l.lsn);
        let last_success = outcome.loaded.as_ref().and_then(|l| l.written_at);
        let mut snapshot_location = String::new();
        let mut objects = Vec::new();
        if let Some(loaded) = &outcome.loaded {
            snapshot_location = loaded.path.display().to_string();
            let corrupt = |reason: String| PersistError::CorruptSnapshot {
                file: snapshot_location.clone(),
                reason,
            };
            let (image_lsn, decoded) =
                snapshot_objects(&loaded.header, &loaded.body).map_err(corrupt)?;
            if image_lsn != snapshot_lsn {
                return Err(corrupt(format!(
                    "it says it covers log record {image_lsn}, its name says {snapshot_lsn}"
                ))
                .into());
            }
            objects = decoded;
            tracing::info!(
                "loaded snapshot {snapshot_location} (lsn {snapshot_lsn}) in {:?}",
                loaded.elapsed
            );
        }
        let log_dir = wal_dir(&data_dir);
        let (mut wal, recovered) = Wal::open(
            &log_dir,
            settings.sync,
            SEGMENT_BYTES,
            if settings.truncate_at_corruption {
                OnCorruption::Repair {
                    covered_lsn: snapshot_lsn,
                }
            } else {
                OnCorruption::Refuse
            },
        )?;
        if let Some(t) = &recovered.truncated_tail {
            tracing::warn!("truncated a torn WAL tail: {t}");
        }
        if let Some(t) = &recovered.repaired {
            tracing::warn!("repaired the WAL at a corrupt record as requested: {t}");
        }
        if recovered.last_lsn < snapshot_lsn {
            // Checkpoints never delete the segment holding the snapshot's last record, so a
            // log ending before it was lost or cut (or never synced, under `sync = "never"`).
            tracing::warn!(
                "the WAL in {} ends at record {} but the newest snapshot (in {}) covers \
                 up to {snapshot_lsn}: the local log was lost, cut or is new; the state is as of \
                 that snapshot, and writes after it, if there were any, are lost",
                log_dir.display(),
                recovered.last_lsn,
                snapshots.location()
            );
        }
        wal.advance_past(snapshot_lsn)?;
        let recovery = Recovery {
            snapshot_lsn,
            snapshot_location,
            objects,
            log_location: log_dir.display().to_string(),
            log: Box::new(LogReplay {
                replay: wal.replay(snapshot_lsn)?,
                buf: AlignedVec::new(),
                dir: log_dir.display().to_string(),
            }),
        };
        let checkpointer = WalCheckpointer {
            data_dir,
            _lock: lock,
            wal,
            snapshots,
            settings: settings.clone(),
            last_checkpoint: Instant::now(),
            last_success,
            metrics: StorageMetrics::default(),
            failures: 0,
            retry_at: None,
            encode_buf: AlignedVec::new(),
        };
        Ok((checkpointer, recovery))
    }

    fn record(&mut self, change: &Change<'_>) -> Result<(), Error> {
        let buf = std::mem::take(&mut self.encode_buf);
        let payload = image::encode_change(change, buf).map_err(|e| PersistError::Encode {
            what: "change",
            cause: e.to_string(),
        })?;
        let appended = self.wal.append(&payload);
        // Keep the buffer for the next record, unless one huge record grew it.
        if payload.capacity() <= 64 << 20 {
            self.encode_buf = payload;
        }
        appended?;
        Ok(())
    }

    fn checkpoint(&mut self, state: &dyn StateView) -> Result<CheckpointReport, Error> {
        let start = Instant::now();
        let result = self.write_checkpoint(state);
        match &result {
            Ok(report) => {
                self.last_checkpoint = Instant::now();
                self.last_success = Some(std::time::SystemTime::now());
                self.metrics.checkpoints += 1;
                self.metrics.checkpoint_bytes += report.bytes;
                self.metrics
                    .checkpoint_seconds
                    .observe(start.elapsed().as_secs_f64());
                self.failures = 0;
                self.retry_at = None;
            }
            Err(_) => {
                self.metrics.checkpoint_failures += 1;
                self.failures = self.failures.saturating_add(1);
                let mut delay = Duration::from_secs(1 << self.failures.min(9).saturating_sub(1))
                    .min(MAX_RETRY_DELAY);
                if let Some(interval) = self.settings.checkpoint_interval {
                    delay = delay.min(interval);
                }
                self.retry_at = Some(Instant::now() + delay);
            }
        }
        result
    }

    fn last_success(&self) -> Option<std::time::SystemTime> {
        self.last_success
    }

    fn probe(&self) -> Result<(), Error> {
        Ok(self.snapshots.probe()?)
    }

    fn metrics(&self) -> StorageMetrics {
        let (wal_bytes, fsyncs) = self.wal.stats();
        StorageMetrics {
            wal_bytes,
            wal_fsync_seconds: fsyncs.clone(),
            ..self.metrics.clone()
        }
    }

    fn checkpoint_due(&self) -> bool {
        match self.retry_at {
            Some(at) => Instant::now() >= at,
            None => self
                .settings
                .checkpoint_interval
                .is_some_and(|i| self.last_checkpoint.elapsed() >= i),
        }
    }
}

impl<S: SnapshotStore> WalCheckpointer<S> {
    /// The last record in the log (or the LSN the newest snapshot covers, if later): the
    /// position a checkpoint taken now covers.
    pub fn last_lsn(&self) -> u64 {
        self.wal.last_lsn()
    }

    /// Syncs the log, stores a snapshot of `engine`, and drops the log no kept snapshot needs.
    fn write_checkpoint(&mut self, state: &dyn StateView) -> Result<CheckpointReport, Error> {
        let start = Instant::now();
        self.wal.sync()?;
        let lsn = self.wal.last_lsn();
        let body = snapshot_body(state, lsn)?;
        let bytes = body.len() as u64;
        self.snapshots.write(lsn, body)?;
        if let Some(oldest) = self.snapshots.retain(self.settings.keep)? {
            self.wal.remove_segments_before(oldest + 1)?;
        }
        Ok(CheckpointReport {
            lsn,
            bytes,
            millis: start.elapsed().as_millis() as u64,
        })
    }
}

/// The snapshot of a whole catalog and state, covering log records up to `lsn`.
pub fn snapshot_body(view: &dyn StateView, lsn: u64) -> Result<AlignedVec, Error> {
    let objects: Vec<ObjectImageV3> = view
        .catalog()
        .into_iter()
        .map(|(name, ddl)| {
            let state = view.export(&name);
            image::object_image_v3(name, ddl, state)
        })
        .collect();
    let image = SnapshotImageV3 { lsn, objects };
    rkyv::to_bytes::<rancor::Error>(&image).map_err(|e| {
        PersistError::Encode {
            what: "snapshot",
            cause: e.to_string(),
        }
        .into()
    })
}

/// Checks a snapshot body as the image of its format version.
pub(crate) fn validate_image(header: &SnapshotHeader, body: &SnapshotBody) -> Result<(), String> {
    match header.version {
        1 => access::<ArchivedSnapshotImage>(body).map(|_| ()),
        2 => access::<ArchivedSnapshotImageV2>(body).map(|_| ()),
        _ => access::<ArchivedSnapshotImageV3>(body).map(|_| ()),
    }
}

/// The catalog of a snapshot body in creation order, and the LSN it says it covers.
pub(crate) fn snapshot_objects(
    header: &SnapshotHeader,
    body: &SnapshotBody,
) -> Result<(u64, Vec<SnapshotObject>), String> {
    Ok(match header.version {
        1 => {
            let image = access::<ArchivedSnapshotImage>(body)?;
            let objects = image.objects.iter().map(|o| {
                let state = image::state_from(&o.state);
                (o.name.to_string(), o.ddl.to_string(), state)
            });
            (image.lsn.to_native(), objects.collect())
        }
        2 => {
            let image = access::<ArchivedSnapshotImageV2>(body)?;
            let objects = image.objects.iter().map(|o| {
                let state = image::state_from_v2(&o.state);
                (o.name.to_string(), o.ddl.to_string(), state)
            });
            (image.lsn.to_native(), objects.collect())
        }
        _ => {
            let image = access::<ArchivedSnapshotImageV3>(body)?;
            let objects = image.objects.iter().map(|o| {
                let mut state = image::state_from_v2(&o.state);
                if let crate::checkpoint::ObjectState::View { distinct, .. } = &mut state {
                    *distinct = image::distinct_from(&o.distinct);
                }
                (o.name.to_string(), o.ddl.to_string(), state)
            });
            (image.lsn.to_native(), objects.collect())
        }
    })
}

/// The changes logged after a snapshot, decoded record by record as recovery pulls them.
struct LogReplay {
    replay: Replay,
    /// Reused aligned copy of each payload (rkyv reads archives from aligned memory).
    buf: AlignedVec<16>,
    /// The WAL directory, for errors.
    dir: String,
}

impl Iterator for LogReplay {
    type Item = Result<(u64, OwnedChange), Error>;

    fn next(&mut self) -> Option<Self::Item> {
        let (lsn, payload) = match self.replay.next_record() {
            Ok(Some(record)) => record,
            Ok(None) => return None,
            Err(e) => return Some(Err(e.into())),
        };
        self.buf.clear();
        self.buf.extend_from_slice(payload);
        Some(match access::<ArchivedLogRecord>(&self.buf) {
            Ok(record) => Ok((lsn, image::owned_change(record))),
            Err(reason) => Err(PersistError::BadRecord {
                dir: self.dir.clone(),
                lsn,
                reason: format!("it does not decode: {reason}"),
            }
            .into()),
        })
    }
}
