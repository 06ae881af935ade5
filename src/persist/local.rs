//! The checkpointer of the embedded tier: a WAL and snapshots in a local data directory,
//! guarded by an exclusive lock.
//!
//! ```text
//! <data_dir>/LOCK                       held (flock) by the process that has the directory open
//! <data_dir>/wal/<first lsn>.wal        log segments, see [`super::wal`]
//! <data_dir>/snapshots/<lsn>.snap       snapshots, see [`super::snapshot`]
//! ```
//!
//! Every change is encoded ([`super::image`]) and appended to the WAL before the engine
//! applies it; a checkpoint writes the whole catalog and state as one snapshot, then drops
//! the WAL segments that no kept snapshot needs. Recovery loads the newest valid snapshot
//! (falling back to older ones) and replays the WAL after it.

use super::image::{self, ArchivedLogRecord, ArchivedSnapshotImage, ObjectImage, SnapshotImage};
use super::snapshot::SnapshotDir;
use super::wal::{wal_dir, OnCorruption, Wal};
use crate::batch::Column;
use crate::checkpoint::{Change, CheckpointReport, Checkpointer, EngineState, PersistSettings};
use crate::error::{ConfigError, Error, PersistError};
use crate::profile::ProfileKind;
use rkyv::rancor;
use rkyv::util::AlignedVec;
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// WAL segments roll over at this size.
const SEGMENT_BYTES: u64 = 64 << 20;

/// WAL + snapshots in a local directory.
pub struct LocalCheckpointer {
    data_dir: PathBuf,
    /// Holds the directory lock for as long as the engine lives.
    _lock: File,
    wal: Wal,
    snapshots: SnapshotDir,
    settings: PersistSettings,
    last_checkpoint: Instant,
    /// Reused for encoding every logged change.
    encode_buf: AlignedVec,
}

impl std::fmt::Debug for LocalCheckpointer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalCheckpointer")
            .field("data_dir", &self.data_dir)
            .field("wal", &self.wal)
            .finish()
    }
}

fn unmet(requirement: String) -> Error {
    ConfigError::ProfileRequirementError {
        profile: ProfileKind::Embedded,
        requirement,
    }
    .into()
}

/// Creates the data directory if needed, checks it is writable, and takes its lock.
fn lock_data_dir(dir: &Path) -> Result<File, Error> {
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

impl Checkpointer for LocalCheckpointer {
    fn open(settings: &PersistSettings, engine: &mut dyn EngineState) -> Result<Self, Error> {
        let data_dir = settings.data_dir.clone();
        let lock = lock_data_dir(&data_dir)?;
        let snapshots = SnapshotDir::new(&data_dir);
        for stale in snapshots.remove_stale_temps()? {
            tracing::info!(
                "removed {} left by an interrupted checkpoint",
                stale.display()
            );
        }
        let outcome =
            snapshots.load_newest(|body| access::<ArchivedSnapshotImage>(body).map(|_| ()))?;
        for notice in outcome.notices() {
            eprintln!("warning: {notice}");
        }
        let snapshot_lsn = outcome.loaded.as_ref().map_or(0, |l| l.lsn);
        engine.begin_recovery(snapshot_lsn)?;
        if let Some(loaded) = &outcome.loaded {
            let image = access::<ArchivedSnapshotImage>(&loaded.body).map_err(|reason| {
                PersistError::CorruptSnapshot {
                    file: loaded.path.display().to_string(),
                    reason,
                }
            })?;
            if image.lsn.to_native() != snapshot_lsn {
                return Err(PersistError::CorruptSnapshot {
                    file: loaded.path.display().to_string(),
                    reason: format!(
                        "it says it covers log record {}, its name says {snapshot_lsn}",
                        image.lsn
                    ),
                }
                .into());
            }
            let restore = |engine: &mut dyn EngineState| -> Result<(), Error> {
                for object in image.objects.iter() {
                    engine.replay(&Change::Ddl(object.ddl.as_str()))?;
                    engine.import(object.name.as_str(), image::state_from(&object.state))?;
                }
                Ok(())
            };
            restore(engine).map_err(|e| PersistError::CorruptSnapshot {
                file: loaded.path.display().to_string(),
                reason: format!("cannot restore it: {e}"),
            })?;
            tracing::info!(
                "loaded snapshot {} (lsn {snapshot_lsn}) in {:?}",
                loaded.path.display(),
                loaded.elapsed
            );
        }
        let (mut wal, recovered) = Wal::open(
            &wal_dir(&data_dir),
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
            eprintln!("warning: truncated a torn WAL tail: {t}");
        }
        if let Some(t) = &recovered.repaired {
            eprintln!("warning: repaired the WAL at a corrupt record as requested: {t}");
        }
        if recovered.last_lsn < snapshot_lsn {
            // Checkpoints never delete the segment holding the snapshot's last record, so a
            // log ending before it was lost or cut (or never synced, under `sync = "never"`).
            eprintln!(
                "warning: the WAL in {} ends at record {} but the snapshot covers up to {snapshot_lsn}: \
                 writes after the snapshot, if there were any, are lost",
                wal_dir(&data_dir).display(),
                recovered.last_lsn
            );
        }
        let mut buf = AlignedVec::<16>::new();
        wal.replay(snapshot_lsn, |lsn, payload| -> Result<(), Error> {
            buf.clear();
            buf.extend_from_slice(payload);
            let bad = |reason: String| PersistError::BadRecord {
                dir: wal_dir(&data_dir).display().to_string(),
                lsn,
                reason,
            };
            let record = access::<ArchivedLogRecord>(&buf)
                .map_err(|r| bad(format!("it does not decode: {r}")))?;
            replay_record(engine, record).map_err(|e| bad(e.to_string()).into())
        })?;
        wal.advance_past(snapshot_lsn)?;
        engine.end_recovery();
        Ok(LocalCheckpointer {
            data_dir,
            _lock: lock,
            wal,
            snapshots,
            settings: settings.clone(),
            last_checkpoint: Instant::now(),
            encode_buf: AlignedVec::new(),
        })
    }

    fn record(&mut self, change: &Change<'_>) -> Result<(), Error> {
        let buf = std::mem::take(&mut self.encode_buf);
        let payload = image::encode_change(change, buf)
            .map_err(|e| crate::error::ExecError::Eval(format!("cannot encode change: {e}")))?;
        let appended = self.wal.append(&payload);
        // Keep the buffer for the next record, unless one huge record grew it.
        if payload.capacity() <= 64 << 20 {
            self.encode_buf = payload;
        }
        appended?;
        Ok(())
    }

    fn checkpoint(&mut self, engine: &dyn EngineState) -> Result<CheckpointReport, Error> {
        let start = Instant::now();
        self.wal.sync()?;
        let lsn = self.wal.last_lsn();
        let objects = engine
            .catalog()
            .into_iter()
            .map(|(name, ddl)| {
                let state = engine
                    .export(&name)
                    .map(|s| image::state_image(&s))
                    .unwrap_or(image::StateImage::Source);
                ObjectImage { name, ddl, state }
            })
            .collect();
        let body = rkyv::to_bytes::<rancor::Error>(&SnapshotImage { lsn, objects })
            .map_err(|e| crate::error::ExecError::Eval(format!("cannot encode snapshot: {e}")))?;
        self.snapshots.write(lsn, &body)?;
        let retained = self.snapshots.retain(self.settings.keep)?;
        if let Some(oldest) = retained.oldest_kept_lsn {
            self.wal.remove_segments_before(oldest + 1)?;
        }
        self.last_checkpoint = Instant::now();
        Ok(CheckpointReport {
            lsn,
            bytes: body.len() as u64,
            millis: start.elapsed().as_millis() as u64,
        })
    }

    fn checkpoint_due(&self) -> bool {
        self.settings
            .checkpoint_interval
            .is_some_and(|i| self.last_checkpoint.elapsed() >= i)
    }
}

/// Applies one decoded WAL record to the engine.
fn replay_record(engine: &mut dyn EngineState, record: &ArchivedLogRecord) -> Result<(), Error> {
    match record {
        ArchivedLogRecord::Ddl(text) => engine.replay(&Change::Ddl(text.as_str())),
        ArchivedLogRecord::Insert {
            target,
            replace,
            columns,
        } => {
            let columns: Vec<Column> = columns.iter().map(image::column_from).collect();
            engine.replay(&Change::Insert {
                target: target.as_str(),
                columns: &columns,
                replace: *replace,
            })
        }
        ArchivedLogRecord::Delete { table, keys } => {
            let keys: Vec<_> = keys.iter().map(image::key_from).collect();
            engine.replay(&Change::Delete {
                table: table.as_str(),
                keys: &keys,
            })
        }
    }
}
