//! Moving checkpoints between storage: an embedded data directory into an object store
//! (`strata migrate`), and the newest checkpoint from one object store to another
//! (`strata backup`, `strata restore`). Every target must hold no checkpoint yet.

use crate::checkpoint::{ObjectStoreSettings, PersistSettings};
use crate::error::{PersistError, Result};
use crate::persist::local::{snapshot_body, LocalCheckpointer};
use crate::persist::object_snapshots::ObjectSnapshots;
use crate::persist::snapshot_store::SnapshotStore;
use crate::Engine;
use std::path::Path;
use std::time::{Duration, UNIX_EPOCH};

/// A checkpoint in an object store.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckpointInfo {
    /// The log position it covers.
    pub lsn: u64,
    /// Size of its state object in bytes.
    pub bytes: u64,
    /// When it was completed.
    pub created: std::time::SystemTime,
    /// Its manifest's location, as a URL.
    pub url: String,
}

/// What [`migrate`] wrote.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Migrated {
    /// The store's URL.
    pub url: String,
    /// The log position of the checkpoint written.
    pub lsn: u64,
    /// Catalog objects in it.
    pub objects: usize,
    pub bytes: u64,
}

/// Reads the embedded-tier data directory `from` (locking it meanwhile) and writes its
/// whole state, DDL of indexes included, into the empty store `to` as one checkpoint.
pub fn migrate(from: &Path, to: &ObjectStoreSettings) -> Result<Migrated> {
    if !from.join("wal").is_dir() && !from.join("snapshots").is_dir() {
        return Err(PersistError::NotADataDirectory {
            dir: from.display().to_string(),
        }
        .into());
    }
    let mut store = empty_store(to)?;
    let source = PersistSettings {
        data_dir: from.to_path_buf(),
        ..PersistSettings::default()
    };
    let (engine, local) = Engine::builder().recover_with::<LocalCheckpointer>(&source)?;
    let lsn = local.last_lsn();
    let body = snapshot_body(engine.state(), lsn)?;
    let bytes = body.len() as u64;
    store.write(lsn, body)?;
    Ok(Migrated {
        url: store.url().to_string(),
        lsn,
        objects: engine.state().catalog().len(),
        bytes,
    })
}

/// Copies the newest checkpoint of `from` into the empty store `to` (state object first,
/// manifest last). `None` when `from` holds no checkpoint.
pub fn copy_newest(
    from: &ObjectStoreSettings,
    to: &ObjectStoreSettings,
) -> Result<Option<CheckpointInfo>> {
    let source = ObjectSnapshots::connect(from)?;
    let target = empty_store(to)?;
    let copied = source.copy_newest_to(&target)?;
    let Some(manifest) = copied else {
        return Ok(None);
    };
    let url = target.checkpoints()?.into_iter().next().map(|c| c.url);
    Ok(Some(info(manifest, url.unwrap_or_default())))
}

/// The newest complete checkpoint of a store, if any.
pub fn newest_checkpoint(settings: &ObjectStoreSettings) -> Result<Option<CheckpointInfo>> {
    let store = ObjectSnapshots::connect(settings)?;
    Ok(store
        .checkpoints()?
        .into_iter()
        .next()
        .map(|c| info(c.manifest, c.url)))
}

fn info(manifest: crate::persist::object_snapshots::Manifest, url: String) -> CheckpointInfo {
    CheckpointInfo {
        lsn: manifest.lsn,
        bytes: manifest.size,
        created: UNIX_EPOCH + Duration::from_millis(manifest.created_unix_ms),
        url,
    }
}

/// Connects to a store that must hold no checkpoint.
fn empty_store(settings: &ObjectStoreSettings) -> Result<ObjectSnapshots> {
    let store = ObjectSnapshots::connect(settings)?;
    if let Some(newest) = store.checkpoints()?.first() {
        return Err(PersistError::NotEmpty {
            store: store.url().to_string(),
            newest: newest.url.clone(),
        }
        .into());
    }
    Ok(store)
}
