//! The cluster's log: one totally ordered sequence of entries in the shared object store,
//! written only with create-if-absent (`PutMode::Create`), owned by one node at a time and
//! fenced when another takes it over. Nothing here is home-made consensus: every decision
//! rests on the store's linearizable create (S3 `If-None-Match: *`, `file://`'s
//! create-new, `memory://`).
//!
//! # Layout
//!
//! ```text
//! PREFIX/cluster/CLUSTER.json               the cluster's shape: {"format": 1, "shards": N}
//! PREFIX/cluster/epochs/<epoch>             who owns the log from that epoch on (create-only)
//! PREFIX/cluster/starts/<epoch>             the first LSN of that epoch's entries, written
//!                                           before its first append (to find an LSN's epoch)
//! PREFIX/cluster/log/<epoch>/<lsn>          the entries the owner of <epoch> appended, and,
//!                                           when another node took over, one FENCE last
//! ```
//!
//! `<epoch>` and `<lsn>` are zero-padded to 20 digits. Log sequence numbers (LSNs) number
//! the entries of the whole log, 1, 2, …, across epochs. Epoch `e` owns namespace
//! `log/<e>/`: only its owner creates entries there, at consecutive LSNs.
//!
//! # Taking the log over, and fencing
//!
//! A node that must own the log (`acquire`) creates `epochs/<E+1>` (E: the newest epoch): the
//! create succeeds for exactly one node. It then follows the log to its end — the namespace
//! whose last object is not a fence — and creates a FENCE there, at the first free LSN `f`,
//! naming its epoch. The previous owner's next create in that namespace collides with the
//! fence (or with its own entries before it) and it learns it was fenced: from then on it
//! can never acknowledge an append. The new owner appends in `log/<E+1>/` from LSN `f` on.
//! Readers follow fences: the object at `(e, f)` is a fence to `(E+1, f)`.
//!
//! # Appends whose outcome is not known
//!
//! Every object carries a random put id. A create that fails with "already exists", times
//! out or fails with a server error (after which the client may have retried a create that
//! had succeeded) is resolved by reading the object back: our put id means the append
//! succeeded; another object means we were fenced; nothing means it did not happen, and the
//! same bytes are created again at the same LSN — never at another one, so an append lands
//! at most once and leaves no gap.
//!
//! # Retention
//!
//! [`SharedLog::truncate_before`] deletes entries every shard's checkpoint covers, but never
//! the last object of a namespace: that keeps every fence, and the head, so no position can
//! be created a second time (a stale owner's next create still collides).

use super::entry::{LogObject, ObjectKind};
use crate::error::{Cause, PersistError};
use futures_util::{StreamExt, TryStreamExt};
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Digits of epochs and LSNs in object names: they sort like numbers.
const DIGITS: usize = 20;
/// Entries read at once when following the log (one GET each, concurrently).
const READ_AHEAD: u64 = 32;

/// A position in the log: the namespace (epoch) to look in and the next LSN to read there.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Cursor {
    pub epoch: u64,
    /// The LSN of the next entry (1 for an empty log).
    pub next_lsn: u64,
}

impl Cursor {
    /// The LSN of the last entry before this position (0: none).
    pub fn applied(&self) -> u64 {
        self.next_lsn - 1
    }
}

/// Why an append did not succeed.
#[derive(Debug, thiserror::Error)]
pub enum AppendError {
    /// Another node owns the log now: nothing was appended, and this writer can append
    /// nothing more.
    #[error("this node no longer owns the cluster log: node `{by}` took it over (epoch {epoch})")]
    Fenced { by: String, epoch: u64 },
    /// The store could not be reached in time: the entry may or may not have been appended.
    /// The writer resolves it before appending anything else.
    #[error("the outcome of an append at log position {lsn} is unknown: {source}")]
    Unknown {
        lsn: u64,
        #[source]
        source: PersistError,
    },
}

/// Why taking the log over failed.
#[derive(Debug, thiserror::Error)]
pub enum AcquireError {
    /// Another node created the next epoch first: it owns the log.
    #[error("node `{winner}` took the cluster log over first (epoch {epoch})")]
    Lost { winner: String, epoch: u64 },
    #[error(transparent)]
    Store(#[from] PersistError),
}

/// The log in a store, for reading, tailing, taking over and truncating.
#[derive(Clone)]
pub struct SharedLog {
    store: Arc<dyn ObjectStore>,
    root: ObjectPath,
    url: String,
    /// The longest one store request may take (retries included).
    timeout: Duration,
}

impl std::fmt::Debug for SharedLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedLog").field("url", &self.url).finish()
    }
}

/// The owner of the log in one epoch: the only node that appends.
#[derive(Debug)]
pub struct Writer {
    epoch: u64,
    /// Where the next entry goes.
    next_lsn: u64,
    /// An append whose outcome was unknown, resolved before the next one.
    pending: Option<LogObject>,
    fenced: Option<(String, u64)>,
}

impl SharedLog {
    /// The log under `prefix` of `store` (`url` names it in messages).
    pub fn new(
        store: Arc<dyn ObjectStore>,
        prefix: &ObjectPath,
        url: &str,
        timeout: Duration,
    ) -> Self {
        SharedLog {
            store,
            root: prefix.clone().join("cluster"),
            url: url.trim_end_matches('/').to_string(),
            timeout,
        }
    }

    fn epoch_path(&self, epoch: u64) -> ObjectPath {
        self.root
            .clone()
            .join("epochs")
            .join(format!("{epoch:0DIGITS$}"))
    }

    fn entry_path(&self, epoch: u64, lsn: u64) -> ObjectPath {
        self.root
            .clone()
            .join("log")
            .join(format!("{epoch:0DIGITS$}"))
            .join(format!("{lsn:0DIGITS$}"))
    }

    fn location(&self, path: &ObjectPath) -> String {
        let rel = path
            .as_ref()
            .strip_prefix(self.root.as_ref())
            .unwrap_or(path.as_ref());
        format!("{}/cluster{rel}", self.url)
    }

    fn error(&self, op: &str, path: &ObjectPath, cause: impl Into<Cause>) -> PersistError {
        PersistError::ObjectStore {
            op: op.to_string(),
            location: self.location(path),
            source: cause.into(),
        }
    }

    async fn bounded<T>(
        &self,
        op: &str,
        path: &ObjectPath,
        fut: impl std::future::Future<Output = object_store::Result<T>>,
    ) -> Result<object_store::Result<T>, PersistError> {
        tokio::time::timeout(self.timeout, fut)
            .await
            .map_err(|_| self.error(op, path, format!("timed out after {:?}", self.timeout)))
    }

    /// Reads one object; `None` when it does not exist.
    async fn get(&self, path: &ObjectPath) -> Result<Option<bytes::Bytes>, PersistError> {
        let read = async { self.store.get(path).await?.bytes().await };
        match self.bounded("get", path, read).await? {
            Ok(bytes) => Ok(Some(bytes)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(self.error("get", path, e)),
        }
    }

    /// Creates an object if absent: `Ok(true)` created, `Ok(false)` already there.
    async fn create(&self, path: &ObjectPath, bytes: bytes::Bytes) -> Result<bool, PersistError> {
        let opts = PutOptions {
            mode: PutMode::Create,
            ..PutOptions::default()
        };
        let put = self.store.put_opts(path, PutPayload::from(bytes), opts);
        match self.bounded("create", path, put).await? {
            Ok(_) => Ok(true),
            Err(object_store::Error::AlreadyExists { .. }) => Ok(false),
            Err(e) => Err(self.error("create", path, e)),
        }
    }

    async fn list(&self, dir: &ObjectPath) -> Result<Vec<ObjectPath>, PersistError> {
        let metas: Vec<_> = self
            .bounded("list", dir, self.store.list(Some(dir)).try_collect())
            .await?
            .map_err(|e| self.error("list", dir, e))?;
        Ok(metas.into_iter().map(|m| m.location).collect())
    }

    /// The number at the end of an object name made of `DIGITS` digits.
    fn number(path: &ObjectPath) -> Option<u64> {
        let name = path.filename()?;
        (name.len() == DIGITS).then(|| name.parse().ok()).flatten()
    }

    /// The epochs that exist, ascending.
    pub async fn epochs(&self) -> Result<Vec<u64>, PersistError> {
        let mut epochs: Vec<u64> = self
            .list(&self.root.clone().join("epochs"))
            .await?
            .iter()
            .filter_map(Self::number)
            .collect();
        epochs.sort_unstable();
        Ok(epochs)
    }

    /// Who owns epoch `epoch` (the node that created it), if it exists.
    pub async fn epoch_owner(&self, epoch: u64) -> Result<Option<String>, PersistError> {
        let path = self.epoch_path(epoch);
        Ok(self
            .get(&path)
            .await?
            .map(|b| String::from_utf8_lossy(&b).into_owned()))
    }

    /// The newest epoch and its owner, from `known` (an owner read before): one read of the
    /// epoch after it per newer epoch, instead of a listing.
    pub async fn owner_since(
        &self,
        known: Option<(u64, String)>,
    ) -> Result<Option<(u64, String)>, PersistError> {
        let Some(mut newest) = known else {
            return self.current_owner().await;
        };
        while let Some(node) = self.epoch_owner(newest.0 + 1).await? {
            newest = (newest.0 + 1, node);
        }
        Ok(Some(newest))
    }

    /// The newest epoch and its owner (`None`: nobody ever owned the log).
    pub async fn current_owner(&self) -> Result<Option<(u64, String)>, PersistError> {
        let Some(&epoch) = self.epochs().await?.last() else {
            return Ok(None);
        };
        Ok(self.epoch_owner(epoch).await?.map(|node| (epoch, node)))
    }

    /// Reads up to `max` entries from `cursor` on, in order, following fences: one read
    /// first (at the head, that is all it costs), then twice as many at a time after each
    /// window that held only entries, up to [`READ_AHEAD`].
    /// Returns `(epoch, lsn, payload)` each (the namespace it was read from), none at the
    /// head. Moves the cursor past what it returns; a failed read ends the batch early (an
    /// error only if nothing was read).
    pub async fn read_ahead(
        &self,
        cursor: &mut Cursor,
        max: usize,
    ) -> Result<Vec<(u64, u64, bytes::Bytes)>, PersistError> {
        let mut out = Vec::new();
        // Reads at once: 1, then twice as many after every window that was all entries.
        let mut ahead = 1;
        while out.len() < max {
            let window = ahead.min((max - out.len()) as u64);
            let (epoch, first) = (cursor.epoch, cursor.next_lsn);
            let reads = (first..first + window).map(|lsn| async move {
                let path = self.entry_path(epoch, lsn);
                let read = self.get(&path).await;
                (path, read)
            });
            ahead = (ahead * 2).min(READ_AHEAD);
            for (path, read) in futures_util::future::join_all(reads).await {
                let bytes = match read {
                    Ok(Some(bytes)) => bytes,
                    Ok(None) => return Ok(out), // the head
                    Err(e) if out.is_empty() => return Err(e),
                    Err(_) => return Ok(out),
                };
                let object = LogObject::decode(&bytes)
                    .map_err(|reason| self.error("decode", &path, reason))?;
                match object.kind {
                    ObjectKind::Entry => {
                        out.push((cursor.epoch, cursor.next_lsn, object.payload));
                        cursor.next_lsn += 1;
                    }
                    ObjectKind::Fence { next_epoch } => {
                        // The rest of this window is not in the log; the new namespace
                        // starts with one read again.
                        cursor.epoch = next_epoch;
                        ahead = 1;
                        break;
                    }
                }
            }
        }
        Ok(out)
    }

    /// Moves `cursor` to the head, without returning the entries it passes (the caller has
    /// them): the end of the log as of this call.
    pub async fn head(&self, mut cursor: Cursor) -> Result<Cursor, PersistError> {
        while !self.read_ahead(&mut cursor, 1024).await?.is_empty() {}
        Ok(cursor)
    }

    /// Makes `node` the owner of the log: creates the next epoch, then fences the log's end
    /// (see the [module docs](self)). `from` is a position known to be in the log (the
    /// start, or a checkpoint's); the fence goes where the log ends.
    pub async fn acquire(&self, node: &str, from: Cursor) -> Result<Writer, AcquireError> {
        let epoch = self.epochs().await?.last().map_or(1, |e| e + 1);
        let path = self.epoch_path(epoch);
        if !self
            .create(&path, bytes::Bytes::from(node.to_string()))
            .await?
        {
            let winner = self.epoch_owner(epoch).await?.unwrap_or_default();
            if winner != node {
                return Err(AcquireError::Lost { winner, epoch });
            }
            // Our own create, retried by the client after a lost response.
        }
        let mut cursor = self.head(from).await?;
        loop {
            let fence = LogObject::fence(cursor.next_lsn, epoch);
            let at = self.entry_path(cursor.epoch, cursor.next_lsn);
            if self.create(&at, fence.encode()).await? {
                break;
            }
            let found = self
                .get(&at)
                .await?
                .ok_or_else(|| self.error("read back", &at, "an object that existed is gone"))?;
            let found = LogObject::decode(&found).map_err(|r| self.error("decode", &at, r))?;
            match found.kind {
                // Our own fence (a retried create), or the previous owner's last entries.
                _ if found.put_id == fence.put_id => break,
                ObjectKind::Entry => cursor = self.head(cursor).await?,
                ObjectKind::Fence { next_epoch } if next_epoch > epoch => {
                    let winner = self.epoch_owner(next_epoch).await?.unwrap_or_default();
                    return Err(AcquireError::Lost {
                        winner,
                        epoch: next_epoch,
                    });
                }
                // An older candidate fenced here first: the log continues in its namespace.
                ObjectKind::Fence { next_epoch } => {
                    cursor.epoch = next_epoch;
                    cursor = self.head(cursor).await?;
                }
            }
        }
        // Where this epoch's entries start, before the first of them (see `cursor_for`).
        let start = self
            .root
            .clone()
            .join("starts")
            .join(format!("{epoch:0DIGITS$}"));
        self.create(&start, bytes::Bytes::from(cursor.next_lsn.to_string()))
            .await?;
        Ok(Writer {
            epoch,
            next_lsn: cursor.next_lsn,
            pending: None,
            fenced: None,
        })
    }

    /// The position to read the entries after LSN `lsn` from (e.g. a checkpoint's): the
    /// newest epoch whose entries start at or before `lsn + 1`.
    pub async fn cursor_for(&self, lsn: u64) -> Result<Cursor, PersistError> {
        let dir = self.root.clone().join("starts");
        let mut best = Cursor {
            epoch: 0,
            next_lsn: lsn + 1,
        };
        for path in self.list(&dir).await? {
            let Some(epoch) = Self::number(&path) else {
                continue;
            };
            let Some(bytes) = self.get(&path).await? else {
                continue;
            };
            let start: u64 = String::from_utf8_lossy(&bytes)
                .trim()
                .parse()
                .map_err(|_| self.error("decode", &path, "not a log position"))?;
            if start <= lsn + 1 && epoch > best.epoch {
                best.epoch = epoch;
            }
        }
        Ok(best)
    }

    /// The cluster's number of shards: the one recorded when the cluster was created, or
    /// `wanted` (default 16) recorded now by this first node.
    pub async fn shards(&self, wanted: Option<u32>) -> Result<u32, String> {
        let path = self.root.clone().join("CLUSTER.json");
        let read = |bytes: &[u8]| -> Result<u32, String> {
            let v: serde_json::Value = serde_json::from_slice(bytes)
                .map_err(|e| format!("{} does not parse: {e}", self.location(&path)))?;
            if v["format"] != 1 {
                return Err(format!(
                    "{} is of cluster format {}, but this strata reads format 1: run the \
                     strata version that created the cluster",
                    self.location(&path),
                    v["format"]
                ));
            }
            v["shards"]
                .as_u64()
                .filter(|&n| (1..=4096).contains(&n))
                .map(|n| n as u32)
                .ok_or_else(|| format!("{} names no number of shards", self.location(&path)))
        };
        let shards = match self.get(&path).await.map_err(|e| e.to_string())? {
            Some(bytes) => read(&bytes)?,
            None => {
                let n = wanted.unwrap_or(16);
                let body = serde_json::json!({ "format": 1, "shards": n }).to_string();
                if !self
                    .create(&path, bytes::Bytes::from(body))
                    .await
                    .map_err(|e| e.to_string())?
                {
                    // Another node created the cluster at the same moment.
                    let bytes = self.get(&path).await.map_err(|e| e.to_string())?;
                    read(&bytes.unwrap_or_default())?
                } else {
                    n
                }
            }
        };
        match wanted {
            Some(n) if n != shards => Err(format!(
                "[cluster] shards = {n}, but the cluster at {} was created with {shards} shards; \
                 remove the key or set it to {shards}",
                self.url
            )),
            _ => Ok(shards),
        }
    }

    /// Checks that the store refuses a second create of the same object (conditional
    /// create, which the log's safety rests on).
    pub async fn probe_conditional_create(&self) -> Result<(), String> {
        let path = self
            .root
            .clone()
            .join(format!(".probe-create-{:032x}", super::entry::random_id()));
        let first = self.create(&path, bytes::Bytes::from_static(b"1")).await;
        let second = self.create(&path, bytes::Bytes::from_static(b"2")).await;
        let _ = self.store.delete(&path).await;
        match (first, second) {
            (Ok(true), Ok(false)) => Ok(()),
            (Ok(true), Ok(true)) => Err(format!(
                "the object store at {} overwrote an object on a create-if-absent: it does not \
                 support conditional create, which this tier needs",
                self.url
            )),
            (Err(e), _) | (_, Err(e)) => Err(format!(
                "the object store at {} failed a conditional create: {}",
                self.url,
                crate::error::report(&e)
            )),
            (Ok(false), _) => Err(format!(
                "the object store at {} claimed a new object already existed",
                self.url
            )),
        }
    }

    /// Appends one entry for `writer`: its LSN once it is in the log (and so acknowledged).
    pub async fn append(
        &self,
        writer: &mut Writer,
        payload: bytes::Bytes,
    ) -> Result<u64, AppendError> {
        if let Some((by, epoch)) = &writer.fenced {
            return Err(AppendError::Fenced {
                by: by.clone(),
                epoch: *epoch,
            });
        }
        if let Some(pending) = writer.pending.take() {
            self.settle(writer, pending).await?;
        }
        let object = LogObject::entry(writer.next_lsn, payload);
        self.settle(writer, object).await
    }

    /// Resolves an append whose outcome was unknown: `Ok` with its LSN once it is in the log
    /// (it lands at most once, at its position), or how it failed.
    pub async fn resolve(&self, writer: &mut Writer) -> Result<u64, AppendError> {
        match writer.pending.take() {
            Some(pending) => self.settle(writer, pending).await,
            None => Ok(writer.next_lsn - 1),
        }
    }

    /// Creates `object` at the writer's next LSN until its outcome is known (bounded by the
    /// timeout per attempt and a few attempts).
    async fn settle(&self, writer: &mut Writer, object: LogObject) -> Result<u64, AppendError> {
        let lsn = writer.next_lsn;
        let path = self.entry_path(writer.epoch, lsn);
        let bytes = object.encode();
        let deadline = Instant::now() + self.timeout * 3;
        let mut delay = Duration::from_millis(20);
        loop {
            let outcome = match self.create(&path, bytes.clone()).await {
                Ok(true) => Ok(true),
                // There already: ours (a retried create) or the fence of a new owner.
                Ok(false) => self.read_back(&path, &object).await,
                // Unknown: the create may have succeeded. What is there says.
                Err(_) => self.read_back(&path, &object).await,
            };
            match outcome {
                Ok(true) => {
                    writer.next_lsn += 1;
                    return Ok(lsn);
                }
                Ok(false) => {
                    let by = self.epoch_after(writer.epoch).await;
                    writer.fenced = Some(by.clone());
                    return Err(AppendError::Fenced {
                        by: by.0,
                        epoch: by.1,
                    });
                }
                Err(e) if Instant::now() >= deadline => {
                    writer.pending = Some(object);
                    return Err(AppendError::Unknown { lsn, source: e });
                }
                Err(_) => {
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(1));
                }
            }
        }
    }

    /// After an unclear create: `Ok(true)` our object is there, `Ok(false)` another one is,
    /// `Err` nothing is (or the store cannot say), so the create must be tried again.
    async fn read_back(&self, path: &ObjectPath, ours: &LogObject) -> Result<bool, PersistError> {
        match self.get(path).await? {
            Some(bytes) => {
                let found = LogObject::decode(&bytes).map_err(|r| self.error("decode", path, r))?;
                Ok(found.put_id == ours.put_id)
            }
            None => Err(self.error("create", path, "the object is not there after the create")),
        }
    }

    /// The owner that fenced `epoch`: the newest epoch's (best effort, for the message).
    async fn epoch_after(&self, epoch: u64) -> (String, u64) {
        match self.current_owner().await {
            Ok(Some((e, node))) if e > epoch => (node, e),
            _ => ("another node".to_string(), epoch + 1),
        }
    }

    /// Deletes the entries with an LSN below `lsn` (every reader starts at or after it),
    /// except the last object of each namespace (see the [module docs](self)). Returns how
    /// many objects were deleted.
    pub async fn truncate_before(&self, lsn: u64) -> Result<usize, PersistError> {
        let dir = self.root.clone().join("log");
        let mut by_epoch: std::collections::BTreeMap<u64, Vec<(u64, ObjectPath)>> =
            Default::default();
        for path in self.list(&dir).await? {
            let Some(entry) = Self::number(&path) else {
                continue;
            };
            let epoch = path
                .parts()
                .nth_back(1)
                .and_then(|p| p.as_ref().parse::<u64>().ok());
            if let Some(epoch) = epoch {
                by_epoch.entry(epoch).or_default().push((entry, path));
            }
        }
        let mut doomed = Vec::new();
        for (_, mut objects) in by_epoch {
            objects.sort_unstable_by_key(|(lsn, _)| *lsn);
            objects.pop(); // the last object of the namespace stays
            doomed.extend(
                objects
                    .into_iter()
                    .take_while(|(entry, _)| *entry < lsn)
                    .map(|(_, path)| path),
            );
        }
        // One bulk request per 1,000 objects on S3 (DeleteObjects).
        let count = doomed.len();
        let paths = futures_util::stream::iter(doomed.into_iter().map(Ok)).boxed();
        let outcomes: Vec<_> = self
            .bounded("delete", &dir, async {
                Ok(self.store.delete_stream(paths).collect::<Vec<_>>().await)
            })
            .await?
            .map_err(|e| self.error("delete", &dir, e))?;
        for outcome in outcomes {
            match outcome {
                Ok(_) | Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(self.error("delete", &dir, e)),
            }
        }
        Ok(count)
    }
}

impl Writer {
    /// The epoch this writer owns the log in.
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// The LSN the next entry gets.
    pub fn next_lsn(&self) -> u64 {
        self.next_lsn
    }
}
