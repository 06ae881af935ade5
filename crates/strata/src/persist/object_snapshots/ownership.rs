//! One writer per object-store prefix (the durable tier).
//!
//! ```text
//! <data_dir>/IDENTITY                 a random id, written when the directory is first opened
//! PREFIX/owner/<epoch>.json            who owns the prefix from that epoch on (create-only)
//! ```
//!
//! The owner is the data directory named by the highest epoch. A directory opening the
//! prefix claims it when nobody owns it (epoch 1), continues when it is the owner, and is
//! refused otherwise — unless told to take over, which creates the next epoch. Creation is
//! create-if-absent, so of two directories racing for an epoch exactly one wins (a retried
//! create that reports "already exists" is told apart from a lost race by the record's
//! random `put_id`).
//!
//! A takeover fences the previous owner: before publishing a checkpoint, a writer checks
//! that the epoch after its own does not exist, so its next checkpoint fails with an error
//! naming the new owner. The takeover record also holds `fence_lsn`, the newest checkpoint
//! in the store when it was made: a checkpoint of an older epoch past that position was
//! published by a fenced writer between its check and its write, and loading skips it.
//! Checkpoint manifests name their writer's directory and epoch for that reason, and so
//! that a directory whose WAL does not belong to the newest checkpoint is refused before
//! anything is replayed.

use super::{snapshot, unmet, ObjectSnapshots};
use crate::error::{Error, PersistError};
use crate::persist::wal::wal_dir;
use bytes::Bytes;
use object_store::path::Path as ObjectPath;
use object_store::{PutMode, PutOptions, PutPayload};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

const OWNER: &str = "owner";
const IDENTITY: &str = "IDENTITY";
/// Format version of owner records.
const OWNER_FORMAT: u32 = 1;

/// Who owns a prefix from an epoch on.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OwnerRecord {
    pub format: u32,
    pub epoch: u64,
    /// The owning data directory's identity (its `IDENTITY` file).
    pub data_dir_id: String,
    /// Where that directory was, on which host, for messages.
    pub data_dir: String,
    pub host: String,
    pub claimed_unix_ms: u64,
    /// The newest checkpoint in the store when the epoch began.
    pub fence_lsn: u64,
    /// Random: tells a retried create of this record from another writer's.
    pub put_id: String,
}

/// This process's claim on a prefix: its directory's identity and epoch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Claim {
    pub data_dir_id: String,
    pub epoch: u64,
}

/// The identity of a data directory, created on first use.
pub fn data_dir_identity(dir: &Path) -> Result<String, Error> {
    let path = dir.join(IDENTITY);
    match std::fs::read_to_string(&path) {
        Ok(text) if !text.trim().is_empty() => return Ok(text.trim().to_string()),
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(PersistError::io("read", &path, e).into()),
    }
    let id = format!("{:032x}", crate::persist::random_id());
    // Written whole and synced before it is relied on: a torn identity would disown the
    // directory's own checkpoints.
    let temp = dir.join(format!("{IDENTITY}.tmp"));
    std::fs::write(&temp, format!("{id}\n"))
        .and_then(|()| std::fs::File::open(&temp)?.sync_all())
        .and_then(|()| std::fs::rename(&temp, &path))
        .and_then(|()| std::fs::File::open(dir)?.sync_all())
        .map_err(|e| PersistError::io("write", &path, e))?;
    Ok(id)
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis() as u64
}

fn describe(owner: &OwnerRecord) -> String {
    format!(
        "data directory {} on host {} (identity {}, epoch {})",
        owner.data_dir, owner.host, owner.data_dir_id, owner.epoch
    )
}

impl ObjectSnapshots {
    fn owner_dir(&self) -> ObjectPath {
        self.prefix.clone().join(OWNER)
    }

    fn owner_path(&self, epoch: u64) -> ObjectPath {
        self.owner_dir().join(format!(
            "{epoch:0width$}.json",
            width = snapshot::LSN_DIGITS
        ))
    }

    /// Every owner record, by epoch. A record that does not parse is an error: ownership
    /// must never be guessed.
    pub(super) fn read_owners(&self) -> Result<BTreeMap<u64, OwnerRecord>, Error> {
        let dir = self.owner_dir();
        let metas: Vec<_> = self.run(
            "list",
            &dir,
            futures_util::TryStreamExt::try_collect(self.store.list(Some(&dir))),
        )?;
        let mut owners = BTreeMap::new();
        for meta in metas {
            let Some(bytes) = self.fetch(&meta.location)? else {
                continue;
            };
            let record: OwnerRecord = serde_json::from_slice(&bytes).map_err(|e| {
                unmet(format!(
                    "a readable owner record: {} does not parse ({e}); it says which data \
                     directory owns {}",
                    self.location(&meta.location),
                    self.url
                ))
            })?;
            if record.format > OWNER_FORMAT {
                return Err(PersistError::UnsupportedVersion {
                    file: self.location(&meta.location),
                    found: record.format,
                    supported: OWNER_FORMAT,
                }
                .into());
            }
            owners.insert(record.epoch, record);
        }
        Ok(owners)
    }

    /// Creates the owner record of `epoch` if absent: `true` when this call made it.
    fn create_owner(&self, record: &OwnerRecord) -> Result<bool, Error> {
        let path = self.owner_path(record.epoch);
        let json = serde_json::to_vec_pretty(record).expect("an owner record serializes");
        let opts = PutOptions {
            mode: PutMode::Create,
            ..PutOptions::default()
        };
        let put = self
            .store
            .put_opts(&path, PutPayload::from(Bytes::from(json)), opts);
        match self.runtime.block_on(self.within("create", &path, put)) {
            Ok(Ok(_)) => Ok(true),
            // Retried after it succeeded, or timed out: the record read back says whose it is.
            Ok(Err(object_store::Error::AlreadyExists { .. })) | Err(_) => {
                let found = self.fetch(&path)?;
                Ok(found.is_some_and(|bytes| {
                    serde_json::from_slice::<OwnerRecord>(&bytes)
                        .is_ok_and(|r| r.put_id == record.put_id)
                }))
            }
            Ok(Err(e)) => Err(self.error("create", &path, e).into()),
        }
    }

    /// Claims the prefix for the data directory `data_dir`, whose identity is `data_dir_id`
    /// (see the [module docs](self)). Refused, it changes nothing in the store.
    pub(super) fn claim(
        &mut self,
        data_dir: &Path,
        data_dir_id: String,
        take_over: bool,
    ) -> Result<Claim, Error> {
        let place = std::fs::canonicalize(data_dir)
            .unwrap_or_else(|_| data_dir.to_path_buf())
            .display()
            .to_string();
        let current = self.owners.values().next_back().cloned();
        if let Some(owner) = &current {
            if owner.data_dir_id == data_dir_id {
                if take_over {
                    tracing::info!(
                        "take_over is set, but this data directory already owns {}",
                        self.url
                    );
                }
                self.check_wal_belongs(data_dir, &data_dir_id)?;
                return Ok(Claim {
                    data_dir_id,
                    epoch: owner.epoch,
                });
            }
            // The owner's own path on this host, new and empty: its disk was lost or
            // replaced, and nothing else can be writing there.
            let log = wal_dir(data_dir);
            let replaced = owner.host == hostname()
                && owner.data_dir == place
                && !crate::persist::wal::holds_records(&log)
                    .map_err(|e| PersistError::io("read", &log, e))?;
            if replaced && !take_over {
                tracing::warn!(
                    "the data directory {place} is new but {} names it as owner: taking the \
                     prefix over from its previous incarnation",
                    self.url
                );
            } else if !take_over {
                return Err(PersistError::Owned {
                    store: self.url.clone(),
                    owner: describe(owner),
                }
                .into());
            }
        }
        // Before anything is created: a directory refused here must not fence the owner.
        self.check_wal_belongs(data_dir, &data_dir_id)?;
        let epoch = current.as_ref().map_or(1, |o| o.epoch + 1);
        let record = OwnerRecord {
            format: OWNER_FORMAT,
            epoch,
            data_dir_id: data_dir_id.clone(),
            data_dir: place,
            host: hostname(),
            claimed_unix_ms: now_ms(),
            fence_lsn: self.epochs()?.iter().find(|e| e.1).map_or(0, |e| e.0),
            put_id: format!("{:032x}", crate::persist::random_id()),
        };
        if !self.create_owner(&record)? {
            let winner = self.read_owners()?;
            let owner = winner
                .get(&epoch)
                .map_or_else(|| format!("epoch {epoch}"), describe);
            return Err(PersistError::Owned {
                store: self.url.clone(),
                owner: format!("{owner}, which claimed it at the same moment"),
            }
            .into());
        }
        match &current {
            Some(old) => tracing::warn!(
                "took over {} from {} as epoch {epoch}: that directory's next checkpoint fails",
                self.url,
                describe(old)
            ),
            None => tracing::info!("claimed {} for this data directory (epoch 1)", self.url),
        }
        self.owners.insert(epoch, record);
        Ok(Claim { data_dir_id, epoch })
    }

    /// `Err(Fenced)` when a later epoch than `claim`'s exists: another directory took over.
    pub(super) fn check_not_fenced(&self, claim: &Claim) -> Result<(), PersistError> {
        let next = self.owner_path(claim.epoch + 1);
        let Some(bytes) = self.fetch(&next)? else {
            return Ok(());
        };
        let by = serde_json::from_slice::<OwnerRecord>(&bytes)
            .map_or_else(|_| format!("epoch {}", claim.epoch + 1), |o| describe(&o));
        Err(PersistError::Fenced {
            store: self.url.clone(),
            by,
        })
    }

    /// Why a checkpoint of `epoch` at `lsn` must not be loaded, if it must not: it was
    /// published by a writer already fenced by the next epoch's takeover.
    pub(super) fn fenced_checkpoint(&self, epoch: Option<u64>, lsn: u64) -> Option<String> {
        let epoch = epoch?;
        let next = self.owners.get(&(epoch + 1))?;
        (lsn > next.fence_lsn).then(|| {
            format!(
                "it was written by the owner of epoch {epoch} after {} took over at checkpoint {}",
                describe(next),
                next.fence_lsn
            )
        })
    }

    /// Refuses a data directory whose WAL holds records when the newest checkpoint was
    /// written by another directory: replaying one directory's log on another's state would
    /// mix two histories.
    fn check_wal_belongs(&self, data_dir: &Path, data_dir_id: &str) -> Result<(), Error> {
        let Some(newest) = self.checkpoints()?.into_iter().next() else {
            return Ok(());
        };
        let Some(writer) = newest.manifest.writer.as_deref() else {
            return Ok(());
        };
        if writer == data_dir_id {
            return Ok(());
        }
        let log = wal_dir(data_dir);
        if !crate::persist::wal::holds_records(&log)
            .map_err(|e| PersistError::io("read", &log, e))?
        {
            return Ok(());
        }
        Err(PersistError::ForeignWal {
            wal: log.display().to_string(),
            checkpoint: newest.url,
            writer: writer.to_string(),
        }
        .into())
    }
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "unknown".into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkpoint::ObjectStoreSettings;
    use crate::persist::snapshot::SnapshotBody;
    use crate::persist::snapshot_store::SnapshotStore;
    use object_store::ObjectStoreExt;

    fn body() -> SnapshotBody {
        let mut b = SnapshotBody::new();
        b.extend_from_slice(b"state");
        b
    }

    fn connect(url: &str) -> ObjectSnapshots {
        ObjectSnapshots::connect(&ObjectStoreSettings {
            url: Some(url.into()),
            ..ObjectStoreSettings::default()
        })
        .unwrap()
    }

    fn newest(store: &mut ObjectSnapshots) -> (Option<u64>, Vec<String>) {
        let outcome = store.load_newest(&mut |_, _| Ok(())).unwrap();
        let skipped = outcome.skipped.iter().map(|s| s.reason.clone()).collect();
        (outcome.loaded.map(|l| l.lsn), skipped)
    }

    #[test]
    fn a_checkpoint_a_fenced_writer_published_after_the_takeover_is_never_loaded() {
        let tmp = tempfile::tempdir().unwrap();
        let url = format!("memory://fence-{}", crate::persist::random_id());
        let (a_dir, b_dir) = (tmp.path().join("a"), tmp.path().join("b"));
        std::fs::create_dir_all(&a_dir).unwrap();
        std::fs::create_dir_all(&b_dir).unwrap();

        let mut a = connect(&url);
        let a_id = data_dir_identity(&a_dir).unwrap();
        assert_eq!(
            data_dir_identity(&a_dir).unwrap(),
            a_id,
            "the identity is kept"
        );
        a.claim = Some(a.claim(&a_dir, a_id, false).unwrap());
        SnapshotStore::write(&mut a, 5, body()).unwrap();

        let mut b = connect(&url);
        let b_id = data_dir_identity(&b_dir).unwrap();
        let claim = b.claim(&b_dir, b_id, true).unwrap();
        assert_eq!(claim.epoch, 2);
        assert_eq!(b.owners[&2].fence_lsn, 5);
        b.claim = Some(claim);

        // A's next checkpoint is refused and leaves nothing behind.
        let err = SnapshotStore::write(&mut a, 9, body())
            .unwrap_err()
            .to_string();
        assert!(err.contains("was taken over by"), "{err}");
        assert_eq!(newest(&mut connect(&url)).0, Some(5));

        // A checkpoint that raced the takeover (A checked before B claimed, published
        // after): hide B's record from A's check, as the race would.
        let record = b.owner_path(2);
        let saved = b.fetch(&record).unwrap().unwrap();
        b.remove(&record).unwrap();
        SnapshotStore::write(&mut a, 9, body()).unwrap();
        b.run("put", &record, b.store.put(&record, saved.into()))
            .unwrap();
        let (loaded, skipped) = newest(&mut connect(&url));
        assert_eq!(
            loaded,
            Some(5),
            "the stale checkpoint 9 is skipped: {skipped:?}"
        );
        assert!(skipped[0].contains("after data directory"), "{skipped:?}");
        // B's own checkpoints load.
        SnapshotStore::write(&mut b, 7, body()).unwrap();
        assert_eq!(newest(&mut connect(&url)).0, Some(7));
    }
}
