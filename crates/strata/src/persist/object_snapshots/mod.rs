//! Snapshots in an object store (the durable tier): `file://`, `memory://` or `s3://`.
//!
//! # Layout
//!
//! ```text
//! PREFIX/checkpoints/<epoch>/state.snap      the snapshot: exactly the bytes of a local
//!                                             snapshot file (see [`super::snapshot`])
//! PREFIX/checkpoints/<epoch>/MANIFEST.json   written last: {format, lsn, object, size,
//!                                             crc32c, created_unix_ms, writer, owner_epoch}
//! PREFIX/owner/<epoch>.json                   who may write the prefix, see [`ownership`]
//! ```
//!
//! The epoch is the LSN the checkpoint covers, zero-padded to 20 digits so names sort like
//! LSNs. A checkpoint exists only once its manifest does: a process that dies mid-upload
//! leaves a `state.snap` without a manifest, which loading ignores and
//! [`SnapshotStore::retain`] deletes. Large snapshots are uploaded in parts (multipart)
//! straight from the one serialized buffer, so no second full copy is held.
//!
//! Loading checks the manifest, the object's size and CRC32C against it, then the snapshot
//! header and body checksums, then the caller's validation (rkyv); a checkpoint that fails
//! any of these is skipped with a notice and the previous one is tried. A store that cannot
//! be reached is an error, never a reason to fall back.
//!
//! # URLs
//!
//! - `file:///absolute/path`: a local directory; every object is fsynced before it is
//!   published (so a checkpoint really reaches the disk).
//! - `memory://NAME`: an in-process store, shared by every engine of the process that uses
//!   the same NAME (tests). Stores registered with [`register_store`] are found here too.
//! - `s3://BUCKET/PREFIX`: Amazon S3 or an S3-compatible server (`endpoint`, `allow_http`);
//!   region and credentials come from the settings or the standard `AWS_*` variables.

mod ownership;

use ownership::{Claim, OwnerRecord};

use super::snapshot::{
    self, LoadOutcome, Loaded, Skipped, SnapshotBody, SnapshotDir, SnapshotHeader,
};
use super::snapshot_store::SnapshotStore;
use crate::checkpoint::{ObjectStoreSettings, PersistSettings};
use crate::error::{Cause, Error, PersistError};
use bytes::Bytes;
use futures_util::TryStreamExt;
use object_store::aws::AmazonS3Builder;
use object_store::local::LocalFileSystem;
use object_store::memory::InMemory;
use object_store::path::Path as ObjectPath;
use object_store::{
    ClientOptions, ObjectStore, ObjectStoreExt, PutPayload, RetryConfig, WriteMultipart,
};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Objects larger than this are uploaded in parts of this size.
pub const PART_BYTES: usize = 8 << 20;
/// Parts in flight at once during a multipart upload.
const PARTS_IN_FLIGHT: usize = 4;
/// Format version of the manifest (2: `writer` and `owner_epoch`).
pub const MANIFEST_FORMAT: u32 = 2;
const CHECKPOINTS: &str = "checkpoints";
const MANIFEST: &str = "MANIFEST.json";
const STATE: &str = "state.snap";

/// The manifest of one checkpoint, written after its state object.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub format: u32,
    /// The last log record the checkpoint includes; also its epoch.
    pub lsn: u64,
    /// Name of the state object in the checkpoint's directory.
    pub object: String,
    /// Size of the state object in bytes.
    pub size: u64,
    /// CRC32C of the whole state object.
    pub crc32c: u32,
    /// When the checkpoint was completed, in milliseconds since the Unix epoch.
    pub created_unix_ms: u64,
    /// The identity of the data directory whose log the checkpoint covers (`None`: written
    /// by a copy — `migrate`, `restore` — or before format 2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub writer: Option<String>,
    /// The writer's ownership epoch of the prefix.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner_epoch: Option<u64>,
}

/// A complete checkpoint found in a store.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckpointInfo {
    pub manifest: Manifest,
    /// The manifest's location, as a URL.
    pub url: String,
}

fn registry() -> &'static Mutex<HashMap<String, Arc<dyn ObjectStore>>> {
    static STORES: OnceLock<Mutex<HashMap<String, Arc<dyn ObjectStore>>>> = OnceLock::new();
    STORES.get_or_init(Default::default)
}

#[cfg(feature = "testing")]
/// Makes `memory://NAME` open `store` in this process (e.g. a fault-injecting wrapper in a
/// test). Replaces an earlier store of that name.
pub fn register_store(name: &str, store: Arc<dyn ObjectStore>) {
    registry()
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(name.to_string(), store);
}

/// A store that cannot be used as configured (see [`PersistError::Unusable`]).
fn unmet(requirement: String) -> Error {
    PersistError::Unusable { requirement }.into()
}

/// Opens the store a URL names, without any I/O. Errors say what is wrong with the URL or
/// the settings.
pub fn open_store(
    settings: &ObjectStoreSettings,
) -> Result<(Arc<dyn ObjectStore>, ObjectPath, String), Error> {
    let text = settings.url.as_deref().ok_or_else(|| {
        unmet(
            "an object store URL for checkpoints: set [object_store] url (or \
             STRATA_OBJECT_STORE_URL), e.g. file:///var/lib/strata-checkpoints or \
             s3://bucket/prefix"
                .into(),
        )
    })?;
    let bad = |why: String| unmet(format!("[object_store] url `{text}` {why}"));
    let url = url::Url::parse(text).map_err(|e| bad(format!("does not parse: {e}")))?;
    let display = text.trim_end_matches('/').to_string();
    match url.scheme() {
        "file" => {
            let dir = url
                .to_file_path()
                .map_err(|()| bad("is not an absolute file path".into()))?;
            std::fs::create_dir_all(&dir).map_err(|e| {
                bad(format!(
                    "names directory {} that cannot be created: {e}",
                    dir.display()
                ))
            })?;
            let store = LocalFileSystem::new_with_prefix(&dir)
                .map_err(|e| bad(format!("cannot be opened: {e}")))?
                .with_fsync(true);
            Ok((Arc::new(store), ObjectPath::default(), display))
        }
        "memory" => {
            let name = url.host_str().unwrap_or("").to_string();
            let mut stores = registry().lock().unwrap_or_else(|e| e.into_inner());
            let store = stores
                .entry(name)
                .or_insert_with(|| Arc::new(InMemory::new()))
                .clone();
            let prefix = ObjectPath::from(url.path().trim_matches('/'));
            Ok((store, prefix, display))
        }
        "s3" => {
            let bucket = url
                .host_str()
                .filter(|b| !b.is_empty())
                .ok_or_else(|| bad("names no bucket: use s3://BUCKET/PREFIX".into()))?;
            let mut builder = AmazonS3Builder::from_env().with_bucket_name(bucket);
            if let Some(endpoint) = &settings.endpoint {
                builder = builder.with_endpoint(endpoint);
            }
            if let Some(region) = &settings.region {
                builder = builder.with_region(region);
            }
            if let Some(key) = &settings.access_key_id {
                builder = builder.with_access_key_id(key);
            }
            if let Some(secret) = &settings.secret_access_key {
                builder = builder.with_secret_access_key(secret);
            }
            let has = |key: &Option<String>, var: &str| {
                key.is_some() || std::env::var_os(var).is_some_and(|v| !v.is_empty())
            };
            if !has(&settings.access_key_id, "AWS_ACCESS_KEY_ID")
                || !has(&settings.secret_access_key, "AWS_SECRET_ACCESS_KEY")
            {
                return Err(unmet(format!(
                    "credentials for {display}: set [object_store] access_key_id and \
                     secret_access_key, or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"
                )));
            }
            if !has(&settings.region, "AWS_REGION") && !has(&settings.region, "AWS_DEFAULT_REGION")
            {
                builder = builder.with_region("us-east-1");
            }
            // These client options replace the ones `from_env` read: keep AWS_ALLOW_HTTP.
            let env_allows_http = std::env::var("AWS_ALLOW_HTTP").is_ok_and(|v| v == "true");
            let client = ClientOptions::new()
                .with_allow_http(settings.allow_http || env_allows_http)
                .with_timeout(settings.timeout)
                .with_connect_timeout(settings.timeout.min(Duration::from_secs(5)));
            let retry = RetryConfig {
                max_retries: 3,
                retry_timeout: settings.timeout,
                ..RetryConfig::default()
            };
            let store = builder
                .with_client_options(client)
                .with_retry(retry)
                .build()
                .map_err(|e| bad(format!("cannot be used: {e}")))?;
            let prefix = ObjectPath::from(url.path().trim_matches('/'));
            Ok((Arc::new(store), prefix, display))
        }
        other => Err(bad(format!(
            "has scheme `{other}`; use file://, memory:// or s3://"
        ))),
    }
}

/// Snapshots in an object store. See the [module docs](self).
pub struct ObjectSnapshots {
    store: Arc<dyn ObjectStore>,
    /// `file://` or `memory://`: one put is one sequential write, no parts needed.
    local: bool,
    prefix: ObjectPath,
    url: String,
    runtime: tokio::runtime::Runtime,
    timeout: Duration,
    /// The prefix's owner records, by epoch (read when connecting).
    owners: BTreeMap<u64, OwnerRecord>,
    /// This process's claim, when it writes the prefix as its owner.
    claim: Option<Claim>,
}

impl std::fmt::Debug for ObjectSnapshots {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ObjectSnapshots")
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

impl ObjectSnapshots {
    /// Opens the store of `settings` and checks it with a live probe: a small object is
    /// put, read back and deleted under the prefix.
    pub fn connect(settings: &ObjectStoreSettings) -> Result<ObjectSnapshots, Error> {
        let (store, prefix, url) = open_store(settings)?;
        let local = !url.starts_with("s3://");
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| PersistError::ObjectStore {
                op: "start the async runtime for".into(),
                location: url.clone(),
                source: e.into(),
            })?;
        let mut snapshots = ObjectSnapshots {
            store,
            local,
            prefix,
            url,
            runtime,
            timeout: settings.timeout,
            owners: BTreeMap::new(),
            claim: None,
        };
        snapshots.probe_now().map_err(|e| {
            unmet(format!(
                "a reachable, writable object store at {}: the startup probe failed: {}",
                snapshots.url,
                crate::error::report(&e)
            ))
        })?;
        snapshots.owners = snapshots.read_owners()?;
        Ok(snapshots)
    }

    /// The store's URL (without a trailing slash).
    pub fn url(&self) -> &str {
        &self.url
    }

    fn probe_now(&self) -> Result<(), PersistError> {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos();
        let path = self
            .prefix
            .clone()
            .join(format!(".strata-probe-{}-{nanos}", std::process::id()));
        let body = Bytes::from_static(b"strata probe");
        self.run("put", &path, self.store.put(&path, body.clone().into()))?;
        let got = self.fetch(&path)?;
        self.remove(&path)?;
        if got.as_ref() != Some(&body) {
            return Err(self.error("get", &path, "read back different bytes than were put"));
        }
        Ok(())
    }

    fn location(&self, path: &ObjectPath) -> String {
        let rel = path
            .as_ref()
            .strip_prefix(self.prefix.as_ref())
            .unwrap_or(path.as_ref())
            .trim_start_matches('/');
        format!("{}/{rel}", self.url)
    }

    fn error(&self, op: &str, path: &ObjectPath, cause: impl Into<Cause>) -> PersistError {
        PersistError::ObjectStore {
            op: op.to_string(),
            location: self.location(path),
            source: cause.into(),
        }
    }

    /// Runs one store operation on the runtime, bounded by the timeout.
    fn run<T>(
        &self,
        op: &str,
        path: &ObjectPath,
        fut: impl Future<Output = object_store::Result<T>>,
    ) -> Result<T, PersistError> {
        self.runtime.block_on(self.bounded(op, path, fut))
    }

    /// One store operation, bounded by the timeout, with errors naming it.
    async fn bounded<T>(
        &self,
        op: &str,
        path: &ObjectPath,
        fut: impl Future<Output = object_store::Result<T>>,
    ) -> Result<T, PersistError> {
        self.within(op, path, fut)
            .await?
            .map_err(|e| self.error(op, path, e))
    }

    /// `fut` bounded by the timeout: `Err` only for the timeout, the store's result inside.
    async fn within<T>(
        &self,
        op: &str,
        path: &ObjectPath,
        fut: impl Future<Output = T>,
    ) -> Result<T, PersistError> {
        tokio::time::timeout(self.timeout, fut)
            .await
            .map_err(|_| self.error(op, path, format!("timed out after {:?}", self.timeout)))
    }

    /// Reads a whole object; `None` when it does not exist.
    fn fetch(&self, path: &ObjectPath) -> Result<Option<Bytes>, PersistError> {
        let read = async { self.store.get(path).await?.bytes().await };
        match self.runtime.block_on(self.within("get", path, read))? {
            Ok(bytes) => Ok(Some(bytes)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(self.error("get", path, e)),
        }
    }

    /// Reads a snapshot object as its header bytes and its body, streaming the body straight
    /// into an aligned buffer (no second copy of it); `None` when it does not exist. `size`
    /// (from the manifest) only sizes the buffer.
    fn fetch_snapshot(
        &self,
        path: &ObjectPath,
        size: u64,
    ) -> Result<Option<(Vec<u8>, SnapshotBody)>, PersistError> {
        let header_len = snapshot::HEADER_LEN;
        let read = async {
            let mut stream = self.store.get(path).await?.into_stream();
            let mut head = Vec::with_capacity(header_len);
            // A damaged manifest must not make us allocate without bound: a hint, capped.
            let hint = (size as usize).saturating_sub(header_len).min(1 << 30);
            let mut body = SnapshotBody::with_capacity(hint);
            while let Some(chunk) = stream.try_next().await? {
                let mut rest = &chunk[..];
                if head.len() < header_len {
                    let n = (header_len - head.len()).min(rest.len());
                    head.extend_from_slice(&rest[..n]);
                    rest = &rest[n..];
                }
                body.extend_from_slice(rest);
            }
            Ok((head, body))
        };
        match self.runtime.block_on(self.within("get", path, read))? {
            Ok(parts) => Ok(Some(parts)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(self.error("get", path, e)),
        }
    }

    /// Deletes an object; one that does not exist is fine.
    fn remove(&self, path: &ObjectPath) -> Result<(), PersistError> {
        match self
            .runtime
            .block_on(self.within("delete", path, self.store.delete(path)))?
        {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(self.error("delete", path, e)),
        }
    }

    fn checkpoint_dir(&self, lsn: u64) -> ObjectPath {
        self.prefix
            .clone()
            .join(CHECKPOINTS)
            .clone()
            .join(format!("{lsn:0width$}", width = snapshot::LSN_DIGITS))
    }

    /// Every epoch under `checkpoints/`, with whether its manifest exists, newest first.
    fn epochs(&self) -> Result<Vec<(u64, bool)>, PersistError> {
        let dir = self.prefix.clone().join(CHECKPOINTS);
        let metas: Vec<_> = self.run("list", &dir, self.store.list(Some(&dir)).try_collect())?;
        let mut epochs: HashMap<u64, bool> = HashMap::new();
        for meta in metas {
            let mut parts = meta.location.as_ref().rsplit('/');
            let (Some(file), Some(epoch)) = (parts.next(), parts.next()) else {
                continue;
            };
            let Some(lsn) = (epoch.len() == snapshot::LSN_DIGITS)
                .then(|| epoch.parse::<u64>().ok())
                .flatten()
            else {
                continue;
            };
            *epochs.entry(lsn).or_default() |= file == MANIFEST;
        }
        let mut out: Vec<_> = epochs.into_iter().collect();
        out.sort_unstable_by_key(|e| std::cmp::Reverse(e.0));
        Ok(out)
    }

    /// The complete checkpoints (those with a readable manifest), newest first.
    pub fn checkpoints(&self) -> Result<Vec<CheckpointInfo>, PersistError> {
        let mut out = Vec::new();
        for (lsn, complete) in self.epochs()? {
            if complete {
                if let Ok(manifest) = self.manifest(lsn)? {
                    let url = self.location(&self.checkpoint_dir(lsn).clone().join(MANIFEST));
                    out.push(CheckpointInfo { manifest, url });
                }
            }
        }
        Ok(out)
    }

    /// The manifest of `lsn`: `Ok(Err(reason))` when it is missing or does not parse.
    fn manifest(&self, lsn: u64) -> Result<Result<Manifest, String>, PersistError> {
        let path = self.checkpoint_dir(lsn).clone().join(MANIFEST);
        let Some(bytes) = self.fetch(&path)? else {
            return Ok(Err("the manifest is missing".into()));
        };
        // The version first: a newer manifest may have fields this build does not know, and
        // must be reported as newer, never skipped as damaged.
        #[derive(Deserialize)]
        struct Version {
            format: u32,
        }
        if let Ok(Version { format }) = serde_json::from_slice::<Version>(&bytes) {
            if format > MANIFEST_FORMAT {
                return Err(PersistError::UnsupportedVersion {
                    file: self.location(&path),
                    found: format,
                    supported: MANIFEST_FORMAT,
                });
            }
        }
        Ok(match serde_json::from_slice::<Manifest>(&bytes) {
            Err(e) => Err(format!("the manifest does not parse: {e}")),
            Ok(m) if self.fenced_checkpoint(m.owner_epoch, m.lsn).is_some() => Err(self
                .fenced_checkpoint(m.owner_epoch, m.lsn)
                .unwrap_or_default()),
            Ok(m) if m.lsn != lsn => Err(format!(
                "the manifest says LSN {}, its directory {lsn}",
                m.lsn
            )),
            Ok(m) if m.object.contains('/') || m.object.is_empty() => Err(format!(
                "the manifest names an invalid object `{}`",
                m.object
            )),
            Ok(m) => Ok(m),
        })
    }

    /// Reads checkpoint `lsn` whole and checks it against its manifest and its own header.
    /// `Ok(Err(reason))`: the checkpoint is damaged.
    fn read_checkpoint(
        &self,
        lsn: u64,
    ) -> Result<Result<(Manifest, SnapshotHeader, SnapshotBody), String>, PersistError> {
        let manifest = match self.manifest(lsn)? {
            Ok(m) => m,
            Err(reason) => return Ok(Err(reason)),
        };
        let path = self
            .checkpoint_dir(lsn)
            .clone()
            .join(manifest.object.as_str());
        let Some((head, body)) = self.fetch_snapshot(&path, manifest.size)? else {
            return Ok(Err(format!("its object {} is missing", manifest.object)));
        };
        let size = (head.len() + body.len()) as u64;
        if size != manifest.size {
            return Ok(Err(format!(
                "its object is {size} bytes, the manifest says {}",
                manifest.size
            )));
        }
        match snapshot::check_parts(&head, &body, lsn) {
            Ok(header) => {
                // The header and body checksums held, so the whole object's CRC follows
                // from them without another pass over the body.
                let crc =
                    crc32c::crc32c_combine(crc32c::crc32c(&head), header.body_crc, body.len());
                if crc != manifest.crc32c {
                    return Ok(Err(format!(
                        "object checksum mismatch: manifest {:#010x}, computed {crc:#010x}",
                        manifest.crc32c
                    )));
                }
                Ok(Ok((manifest, header, body)))
            }
            Err(snapshot::CheckError::Newer(found)) => Err(PersistError::UnsupportedVersion {
                file: self.location(&path),
                found,
                supported: snapshot::FORMAT_VERSION,
            }),
            Err(snapshot::CheckError::Damaged(reason)) => Ok(Err(reason)),
        }
    }

    /// Uploads `header` then `body` as one object at `path`, without copying the body: one
    /// put when it is small or the store is local (a local put is one sequential write), else
    /// a multipart upload of slices of it. An upload that fails is aborted.
    fn upload(&self, path: &ObjectPath, header: Bytes, body: Bytes) -> Result<(), PersistError> {
        if self.local || header.len() + body.len() <= PART_BYTES {
            let payload = PutPayload::from_iter([header, body]);
            return self
                .run("put", path, self.store.put(path, payload))
                .map(|_| ());
        }
        // The multipart writer spawns its part uploads: it runs inside the runtime.
        self.runtime.block_on(async {
            let upload = self
                .bounded(
                    "start multipart upload of",
                    path,
                    self.store.put_multipart(path),
                )
                .await?;
            let mut writer = WriteMultipart::new_with_chunk_size(upload, PART_BYTES);
            writer.put(header);
            let mut at = 0;
            while at < body.len() {
                let room = writer.wait_for_capacity(PARTS_IN_FLIGHT);
                if let Err(e) = self.bounded("upload a part of", path, room).await {
                    let _ = writer.abort().await;
                    return Err(e);
                }
                let end = (at + PART_BYTES).min(body.len());
                writer.put(body.slice(at..end));
                at = end;
            }
            self.bounded("complete multipart upload of", path, writer.finish())
                .await
                .map(|_| ())
        })
    }

    /// Copies the newest complete checkpoint to `target` (state object first, manifest
    /// last). Returns its manifest, or `None` when this store holds no checkpoint.
    pub fn copy_newest_to(&self, target: &ObjectSnapshots) -> Result<Option<Manifest>, Error> {
        for (lsn, complete) in self.epochs()? {
            if !complete {
                continue;
            }
            match self.read_checkpoint(lsn)? {
                Ok((manifest, _, body)) => {
                    target.write_snapshot(lsn, body)?;
                    return Ok(Some(manifest));
                }
                Err(reason) => {
                    let skipped = self.checkpoint_dir(lsn);
                    tracing::warn!(
                        "checkpoint {} is damaged ({reason}); trying the previous one",
                        self.location(&skipped)
                    );
                }
            }
        }
        Ok(None)
    }

    fn write_snapshot(&self, lsn: u64, body: SnapshotBody) -> Result<(), PersistError> {
        let header = SnapshotHeader::new(lsn, &body);
        let header_bytes = header.encode();
        // The whole object's CRC from the header's and the body's (one pass over the body).
        let crc =
            crc32c::crc32c_combine(crc32c::crc32c(&header_bytes), header.body_crc, body.len());
        let size = (header_bytes.len() + body.len()) as u64;
        let dir = self.checkpoint_dir(lsn);
        self.upload(
            &dir.clone().join(STATE),
            Bytes::copy_from_slice(&header_bytes),
            Bytes::from_owner(body),
        )?;
        let manifest = Manifest {
            format: MANIFEST_FORMAT,
            lsn,
            object: STATE.to_string(),
            size,
            crc32c: crc,
            created_unix_ms: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default()
                .as_millis() as u64,
            writer: self.claim.as_ref().map(|c| c.data_dir_id.clone()),
            owner_epoch: self.claim.as_ref().map(|c| c.epoch),
        };
        // A writer that lost the prefix publishes nothing more.
        if let Some(claim) = &self.claim {
            self.check_not_fenced(claim)?;
        }
        let json = serde_json::to_vec_pretty(&manifest).expect("a manifest serializes");
        let path = dir.clone().join(MANIFEST);
        self.run("put", &path, self.store.put(&path, PutPayload::from(json)))
            .map(|_| ())
    }

    fn delete_epoch(&self, lsn: u64) -> Result<(), PersistError> {
        let dir = self.checkpoint_dir(lsn);
        // The manifest first: the checkpoint stops existing before its state goes.
        for name in [MANIFEST, STATE] {
            let path = dir.clone().join(name);
            self.remove(&path)?;
        }
        Ok(())
    }
}

impl SnapshotStore for ObjectSnapshots {
    fn open(settings: &PersistSettings) -> Result<Self, Error> {
        let mut store = ObjectSnapshots::connect(&settings.object_store)?;
        // An embedded data directory keeps its snapshots locally; this tier never reads
        // them. Opening one as if it were empty would silently hide what they hold.
        let local = SnapshotDir::new(&settings.data_dir);
        if let Some((lsn, path)) = local.list()?.first() {
            if store.checkpoints()?.is_empty() {
                return Err(unmet(format!(
                    "a data directory without local snapshots: {} holds an embedded-tier \
                     snapshot ({}), which this tier does not read; move the directory into the \
                     object store with `strata migrate --from {}` and start with a fresh data \
                     directory",
                    settings.data_dir.display(),
                    path.display(),
                    settings.data_dir.display()
                )));
            }
            tracing::warn!(
                "{} holds an embedded-tier snapshot (log position {lsn}) that this tier \
                 ignores: its checkpoints are in {}",
                local.path().display(),
                store.url
            );
        }
        let id = ownership::data_dir_identity(&settings.data_dir)?;
        let claim = store.claim(&settings.data_dir, id, settings.object_store.take_over)?;
        store.claim = Some(claim);
        Ok(store)
    }

    fn location(&self) -> String {
        self.url.clone()
    }

    fn probe(&self) -> Result<(), PersistError> {
        self.probe_now()
    }

    fn write(&mut self, lsn: u64, body: SnapshotBody) -> Result<(), PersistError> {
        self.write_snapshot(lsn, body)
    }

    fn load_newest(
        &mut self,
        validate: &mut dyn FnMut(&SnapshotHeader, &SnapshotBody) -> Result<(), String>,
    ) -> Result<LoadOutcome<()>, PersistError> {
        let mut skipped = Vec::new();
        for (lsn, complete) in self.epochs()? {
            if !complete {
                continue; // an interrupted upload: never a checkpoint
            }
            let start = Instant::now();
            let path = PathBuf::from(self.location(&self.checkpoint_dir(lsn)));
            let reason = match self.read_checkpoint(lsn)? {
                Ok((manifest, header, body)) => match validate(&header, &body) {
                    Ok(()) => {
                        let written_at =
                            UNIX_EPOCH + Duration::from_millis(manifest.created_unix_ms);
                        let loaded = Loaded {
                            lsn,
                            path,
                            header,
                            body,
                            value: (),
                            elapsed: start.elapsed(),
                            written_at: Some(written_at),
                        };
                        return Ok(LoadOutcome {
                            loaded: Some(loaded),
                            skipped,
                        });
                    }
                    Err(msg) => format!("rejected by validation: {msg}"),
                },
                Err(reason) => reason,
            };
            skipped.push(Skipped { lsn, path, reason });
        }
        Ok(LoadOutcome {
            loaded: None,
            skipped,
        })
    }

    fn retain(&mut self, keep: usize) -> Result<Option<u64>, PersistError> {
        let keep = keep.max(1);
        let mut kept = Vec::new();
        for (lsn, complete) in self.epochs()? {
            let newer_kept = !kept.is_empty();
            if complete && kept.len() < keep && self.manifest(lsn)?.is_ok() {
                kept.push(lsn);
            } else if complete || newer_kept {
                // Beyond `keep`, a damaged manifest, or an upload interrupted before a
                // checkpoint that completed later.
                self.delete_epoch(lsn)?;
            }
        }
        Ok(kept.last().copied())
    }
}
