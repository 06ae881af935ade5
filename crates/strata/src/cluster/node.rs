//! A cluster node: it joins the membership, follows the log (applying every entry to its
//! catalog and to the shards it owns), answers reads by asking the owners of the shards a
//! query needs, and sends writes to the log's owner — itself, when it owns the log.
//!
//! Threads: the applier (follows the log), the maintainer (membership, leadership, which
//! shards to hold, checkpoints), the sequencer while this node owns the log (see
//! [`super::leader`]), and a tokio runtime for gossip, requests between nodes and the
//! object store.

use super::leader::{Leader, Pending};
use super::log::SharedLog;
use super::maintain::Maintainer;
use super::membership::{Member, Membership};
use super::rpc::{self, Request, Response};
use super::state::State;
use crate::checkpoint::{ObjectStoreSettings, PersistSettings, Recovery};
use crate::engine::{Kernel, Origin, Part, Plan};
use crate::error::{ConfigError, Error, ExecError, PersistError, Result};
use crate::metrics::{Histogram, StorageMetrics};
use crate::network::{ClusterSettings, ClusterStatus};
use crate::persist::local::{lock_data_dir, snapshot_objects, validate_image};
use crate::persist::object_snapshots::{open_store, ObjectSnapshots};
use crate::persist::snapshot_store::SnapshotStore;
use crate::profile::PhysicalProfile;
use crate::types::{Key, Value};
use bytes::Bytes;
use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

/// How long a node waits for a seed to answer at startup.
const SEED_WAIT: Duration = Duration::from_secs(10);
/// How long a node watches for another live process with its id at startup.
const DUPLICATE_WATCH: Duration = Duration::from_millis(1500);
/// How long after joining a node leaves leadership decisions to gossip to settle.
pub(super) const SETTLE: Duration = Duration::from_millis(1500);
/// How long the log's owner must have been missing before another node takes the log.
pub(super) const OWNER_MISSING: Duration = Duration::from_millis(800);
/// How long a request waits for the state it needs (a shard loading, the log applied).
const WAIT_STATE: Duration = Duration::from_secs(20);
/// How long a write retries while the log changes owner.
pub(super) const WRITE_RETRY: Duration = Duration::from_secs(30);
/// How often the applier looks at the store for entries nobody pushed.
const POLL: Duration = Duration::from_millis(250);

pub struct Inner<P: PhysicalProfile> {
    pub(super) me: String,
    pub(super) shards: u32,
    pub(super) capacity: usize,
    pub(super) persist: PersistSettings,
    /// Gossip, the node-to-node server, pushes and the object store run here; taken out
    /// and shut down when the node stops (which also ends the server's hold on the node).
    runtime: Mutex<Option<tokio::runtime::Runtime>>,
    pub(super) tokio: tokio::runtime::Handle,
    pub(super) log: SharedLog,
    pub(super) client: rpc::Client,
    pub(super) membership: Membership,
    pub(super) started: Instant,
    pub(super) state: Mutex<State<P>>,
    /// The LSN the catalog and every partition have applied, for waiters.
    pub(super) applied: Mutex<u64>,
    pub(super) applied_cv: Condvar,
    /// Entries pushed by the log's owner, not applied yet: LSN → (epoch, payload).
    pub(super) pushed: Mutex<BTreeMap<u64, (u64, Bytes)>>,
    /// Wakes the applier; `true`: read the store too.
    pub(super) wake: Mutex<bool>,
    pub(super) wake_cv: Condvar,
    /// The log's owner as last read from the store: (epoch, node).
    pub(super) owner: Mutex<Option<(u64, String)>>,
    pub(super) leader: Mutex<Option<Arc<Leader>>>,
    pub(super) members: Mutex<Vec<Member>>,
    /// How many nodes gossip knows as members of the cluster, live or not (see
    /// [`Membership::known`]).
    pub(super) known_members: AtomicU64,
    /// Whether this node sees half of the known members or fewer (it does not take the log).
    pub(super) in_minority: AtomicBool,
    /// The owner of each shard, by node id, as this node last computed it.
    pub(super) assignment: Mutex<Vec<String>>,
    pub(super) loading: Mutex<BTreeSet<u32>>,
    /// Checkpoint stores: `None` is the catalog's, `Some(s)` shard `s`'s.
    pub(super) stores: Mutex<BTreeMap<Option<u32>, ObjectSnapshots>>,
    pub(super) last_checkpoint: Mutex<Option<SystemTime>>,
    /// When the log was last truncated (by this node, while it owned the log).
    pub(super) truncated_at: Mutex<Option<Instant>>,
    pub(super) counters: Counters,
    pub(super) stop: AtomicBool,
    pub(super) threads: Mutex<Vec<std::thread::JoinHandle<()>>>,
    pub(super) _lock: File,
}

#[derive(Default)]
pub(super) struct Counters {
    pub(super) rows_ingested: AtomicU64,
    pub(super) takeovers: AtomicU64,
    pub(super) fenced_writes: AtomicU64,
    /// Writes this node retried because the log's owner could not take them, by cause.
    pub(super) write_retries: WriteRetries,
    /// Writes given up on unconfirmed (the log changed owner for longer than the retry time).
    pub(super) writes_unconfirmed: AtomicU64,
    pub(super) log_entries: AtomicU64,
    pub(super) log_changes: AtomicU64,
    pub(super) put_seconds: Mutex<Histogram>,
    pub(super) checkpoints: AtomicU64,
    pub(super) checkpoint_failures: AtomicU64,
    pub(super) checkpoint_bytes: AtomicU64,
    pub(super) checkpoint_seconds: Mutex<Histogram>,
}

/// Why a write was retried: the node asked was not the log's owner (any more), the owner did
/// not answer, or no node owned the log.
#[derive(Default)]
pub(super) struct WriteRetries {
    pub(super) not_owner: AtomicU64,
    pub(super) owner_unreachable: AtomicU64,
    pub(super) no_owner: AtomicU64,
}

pub(super) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A requirement of this tier that is not met, for startup errors.
fn unmet<P: PhysicalProfile>(requirement: String) -> Error {
    ConfigError::ProfileRequirementError {
        profile: P::KIND,
        requirement,
    }
    .into()
}

/// The URL of a part of the cluster's store: `<url>/<suffix>`.
pub(super) fn sub_store(settings: &ObjectStoreSettings, suffix: &str) -> ObjectStoreSettings {
    let mut s = settings.clone();
    s.url = s
        .url
        .map(|u| format!("{}/{suffix}", u.trim_end_matches('/')));
    s
}

impl<P: PhysicalProfile> Inner<P> {
    /// Starts a node: checks the tier's requirements, joins the membership, loads the
    /// catalog, and starts following the log. Shards load in the background.
    pub fn open(
        persist: &PersistSettings,
        cluster: &ClusterSettings,
        capacity: usize,
    ) -> Result<Arc<Inner<P>>> {
        if cluster.node_id.trim().is_empty() {
            return Err(unmet::<P>(
                "a node id: set [cluster] node_id (or STRATA_CLUSTER_NODE_ID), unique in the \
                 cluster and stable across restarts"
                    .into(),
            ));
        }
        let lock_file = lock_data_dir(&persist.data_dir)?;
        if let Some(found) = ["wal", "snapshots"]
            .iter()
            .map(|sub| persist.data_dir.join(sub))
            .find(|dir| dir.exists())
        {
            return Err(unmet::<P>(format!(
                "a data directory of its own: {} holds a single-node engine's data ({}); a \
                 cluster node keeps its data in the cluster's object store, give it another \
                 directory",
                persist.data_dir.display(),
                found.display()
            )));
        }
        let catalog_store =
            ObjectSnapshots::connect(&sub_store(&persist.object_store, "shards/catalog"))?;
        let (store, prefix, url) = open_store(&persist.object_store)?;
        let log = SharedLog::new(store, &prefix, &url, persist.object_store.timeout);
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("strata-node")
            .enable_all()
            .build()
            .map_err(|e| unmet::<P>(format!("an async runtime for the node: {e}")))?;
        runtime
            .block_on(log.probe_conditional_create())
            .map_err(unmet::<P>)?;
        let shards = runtime
            .block_on(log.shards(cluster.shards))
            .map_err(unmet::<P>)?;
        // The node-to-node address: requests over TCP, gossip over UDP, same port.
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind(cluster.listen))
            .map_err(|e| {
                unmet::<P>(format!(
                    "a node-to-node address that can be bound: [cluster] listen = {}: {e}",
                    cluster.listen
                ))
            })?;
        let cluster_id = format!("strata-{:016x}", fnv(url.as_bytes()));
        let membership = runtime
            .block_on(Membership::join(
                &cluster.node_id,
                cluster.listen,
                &cluster.seeds,
                &cluster_id,
            ))
            .map_err(|e| {
                unmet::<P>(format!(
                    "a node-to-node address that can be bound: [cluster] listen = {}: {e}",
                    cluster.listen
                ))
            })?;
        let bootstrap = cluster
            .seeds
            .iter()
            .all(|s| s.parse::<SocketAddr>().ok() == Some(cluster.listen));
        if !bootstrap && !runtime.block_on(membership.wait_for_peer(SEED_WAIT)) {
            return Err(unmet::<P>(format!(
                "a seed that answers: none of [cluster] seeds = {:?} answered within {SEED_WAIT:?} \
                 (start one of them first, or list only this node's own address to start a new \
                 cluster)",
                cluster.seeds
            )));
        }
        // A node that starts a cluster gossips with nobody: no duplicate can be seen.
        if !bootstrap && runtime.block_on(membership.duplicate_of_me(DUPLICATE_WATCH)) {
            return Err(unmet::<P>(format!(
                "a node id unique in the cluster: another live node is `{}`; give this node \
                 another [cluster] node_id",
                cluster.node_id
            )));
        }
        // The catalog, as of its newest checkpoint; the log after it is applied below.
        let mut catalog = Kernel::with_part(capacity, Part::Catalog);
        let mut catalog_store = catalog_store;
        let (lsn, written_at) = load_checkpoint(&mut catalog, &mut catalog_store)?;
        let cursor = runtime.block_on(log.cursor_for(lsn))?;
        let inner = Arc::new(Inner {
            me: cluster.node_id.clone(),
            shards,
            capacity,
            persist: persist.clone(),
            log,
            client: rpc::Client::new(Some(cluster.listen.ip()).filter(|ip| !ip.is_unspecified()))
                .map_err(unmet::<P>)?,
            membership,
            started: Instant::now(),
            state: Mutex::new(State::new(catalog, cursor, lsn)),
            applied: Mutex::new(cursor.applied()),
            applied_cv: Condvar::new(),
            pushed: Mutex::new(BTreeMap::new()),
            wake: Mutex::new(false),
            wake_cv: Condvar::new(),
            owner: Mutex::new(None),
            leader: Mutex::new(None),
            members: Mutex::new(Vec::new()),
            known_members: AtomicU64::new(1),
            in_minority: AtomicBool::new(false),
            assignment: Mutex::new(Vec::new()),
            loading: Mutex::new(BTreeSet::new()),
            stores: Mutex::new(BTreeMap::from([(None, catalog_store)])),
            last_checkpoint: Mutex::new(written_at),
            truncated_at: Mutex::new(None),
            counters: Counters::default(),
            stop: AtomicBool::new(false),
            threads: Mutex::new(Vec::new()),
            tokio: runtime.handle().clone(),
            runtime: Mutex::new(Some(runtime)),
            _lock: lock_file,
        });
        // Requests from other nodes.
        let server = inner.clone();
        inner.tokio.spawn(async move {
            let app = axum::Router::new()
                .route(rpc::PATH, axum::routing::post(handle::<P>))
                .with_state(server);
            if let Err(e) = axum::serve(listener, app).await {
                tracing::error!("the node-to-node server stopped: {e}");
            }
        });
        inner.spawn("strata-applier", |inner| inner.apply_loop());
        inner.catch_up()?;
        // One look around before returning: a node alone (or restarting the cluster's log
        // owner) owns the log and holds its shards before its first statement.
        let mut maintainer = Maintainer::new();
        maintainer.tick(&inner);
        inner.spawn("strata-maintainer", move |inner| maintainer.run(inner));
        Ok(inner)
    }

    pub(super) fn spawn(
        self: &Arc<Self>,
        name: &str,
        run: impl FnOnce(Arc<Self>) + Send + 'static,
    ) {
        let inner = self.clone();
        let thread = std::thread::Builder::new()
            .name(name.into())
            .spawn(move || run(inner))
            .expect("a thread starts");
        let mut threads = lock(&self.threads);
        // Followers of views come and go: their finished threads need no joining.
        threads.retain(|t| !t.is_finished());
        threads.push(thread);
    }

    pub(super) fn stopping(&self) -> bool {
        self.stop.load(Ordering::SeqCst)
    }

    pub(super) fn state(&self) -> MutexGuard<'_, State<P>> {
        lock(&self.state)
    }

    pub(super) fn block_on<F: std::future::Future>(&self, fut: F) -> F::Output {
        self.tokio.block_on(fut)
    }

    pub(super) fn applied_request(&self, request: u128) -> bool {
        self.state().applied_request(request)
    }

    // -- following the log ---------------------------------------------------------------

    /// Wakes the applier; `fetch`: also read the store (someone knows of newer entries).
    fn nudge(&self, fetch: bool) {
        *lock(&self.wake) |= fetch;
        self.wake_cv.notify_one();
    }

    fn apply_loop(self: Arc<Self>) {
        let mut last_poll = Instant::now();
        while !self.stopping() {
            let fetch = {
                let guard = lock(&self.wake);
                let (mut guard, _) = self
                    .wake_cv
                    .wait_timeout_while(guard, POLL, |f| !*f && self.pushed_ready().is_none())
                    .unwrap_or_else(|e| e.into_inner());
                std::mem::take(&mut *guard)
            };
            if let Err(e) = self.apply_pushed() {
                tracing::error!("cannot apply a log entry: {}", crate::error::report(&e));
            }
            let gap = lock(&self.pushed).keys().next().is_some();
            if fetch || gap || last_poll.elapsed() >= POLL {
                last_poll = Instant::now();
                if let Err(e) = self.apply_from_store() {
                    tracing::warn!("cannot read the cluster log: {}", crate::error::report(&e));
                }
            }
        }
    }

    /// The next pushed entry, if it is the one to apply next.
    fn pushed_ready(&self) -> Option<u64> {
        let next = self.state().cursor.next_lsn;
        lock(&self.pushed)
            .keys()
            .next()
            .copied()
            .filter(|&l| l <= next)
    }

    fn apply_pushed(&self) -> Result<()> {
        loop {
            let mut state = self.state();
            let next = state.cursor.next_lsn;
            let entry = {
                let mut pushed = lock(&self.pushed);
                pushed.retain(|&lsn, _| lsn >= next);
                pushed.remove(&next)
            };
            let Some((epoch, payload)) = entry else {
                return Ok(());
            };
            state.apply(epoch, next, payload)?;
            drop(state);
            self.set_applied(next);
        }
    }

    fn apply_from_store(&self) -> Result<()> {
        let mut cursor = self.state().cursor;
        loop {
            let entries = self.block_on(self.log.read_ahead(&mut cursor, 256))?;
            if entries.is_empty() {
                return Ok(());
            }
            for (epoch, lsn, payload) in entries {
                let mut state = self.state();
                if state.cursor.next_lsn == lsn {
                    state.apply(epoch, lsn, payload)?;
                    drop(state);
                    self.set_applied(lsn);
                } else if state.cursor.next_lsn < lsn {
                    // Cannot happen: entries are read in order from the node's position.
                    return Err(ExecError::Eval(format!(
                        "the cluster log skipped from {} to {lsn}",
                        state.cursor.next_lsn
                    ))
                    .into());
                }
            }
        }
    }

    fn set_applied(&self, lsn: u64) {
        let mut applied = lock(&self.applied);
        if lsn > *applied {
            *applied = lsn;
            self.applied_cv.notify_all();
        }
    }

    /// Waits until the catalog and every partition applied the log up to `lsn`.
    pub(super) fn wait_applied(&self, lsn: u64, within: Duration) -> Result<()> {
        if *lock(&self.applied) >= lsn {
            return Ok(());
        }
        self.nudge(true);
        let guard = lock(&self.applied);
        let (guard, _) = self
            .applied_cv
            .wait_timeout_while(guard, within, |a| *a < lsn)
            .unwrap_or_else(|e| e.into_inner());
        if *guard >= lsn {
            return Ok(());
        }
        Err(ExecError::Remote(format!(
            "node `{}` has applied the cluster log up to {} of {lsn} after {within:?}; try again",
            self.me, *guard
        ))
        .into())
    }

    /// Applies every entry in the log now; returns the LSN of the last one. Every write
    /// acknowledged before the call is at or before it (read your writes).
    pub(super) fn catch_up(&self) -> Result<u64> {
        loop {
            let mut probe = self.state().cursor;
            let at = probe.applied();
            // One read: is there an entry after this node's position?
            match self.block_on(self.log.read_ahead(&mut probe, 1))?.last() {
                None => return Ok(at),
                Some((_, lsn, _)) => self.wait_applied(*lsn, WAIT_STATE)?,
            }
        }
    }

    /// Called by the leader once an entry is in the log: applied here, pushed to the others.
    pub(super) fn appended(
        &self,
        epoch: u64,
        lsn: u64,
        payload: Bytes,
        changes: u64,
        took: Duration,
    ) {
        self.counters.log_entries.fetch_add(1, Ordering::Relaxed);
        self.counters
            .log_changes
            .fetch_add(changes, Ordering::Relaxed);
        lock(&self.counters.put_seconds).observe(took.as_secs_f64());
        let others: Vec<SocketAddr> = lock(&self.members)
            .iter()
            .filter(|m| m.node_id != self.me)
            .map(|m| m.rpc)
            .collect();
        for to in others {
            let client = self.client.clone();
            let request = Request::Push {
                epoch,
                lsn,
                payload: payload.to_vec(),
            };
            self.tokio.spawn(async move {
                let _ = client.send(to, &request, Duration::from_secs(5)).await;
            });
        }
        lock(&self.pushed).insert(lsn, (epoch, payload));
        self.nudge(false);
    }

    pub(super) fn count_fenced(&self, changes: u64) {
        self.counters
            .fenced_writes
            .fetch_add(changes, Ordering::Relaxed);
    }

    pub(super) fn lost_leadership(&self, leader: &Arc<Leader>) {
        let mut current = lock(&self.leader);
        if current.as_ref().is_some_and(|l| Arc::ptr_eq(l, leader)) {
            *current = None;
        }
        *lock(&self.owner) = None;
    }
}

/// Loads the newest checkpoint in `store` into `kernel` (a damaged one is skipped with a
/// warning, and the one before it is used): the LSN it covers (0: none) and when it was
/// written.
pub(super) fn load_checkpoint<P: PhysicalProfile>(
    kernel: &mut Kernel<P>,
    store: &mut ObjectSnapshots,
) -> Result<(u64, Option<SystemTime>)> {
    let outcome = store.load_newest(&mut validate_image)?;
    for notice in outcome.notices() {
        tracing::warn!("{notice}");
    }
    let Some(loaded) = outcome.loaded else {
        return Ok((0, None));
    };
    let (lsn, objects) = snapshot_objects(&loaded.header, &loaded.body).map_err(|reason| {
        PersistError::CorruptSnapshot {
            file: loaded.path.display().to_string(),
            reason,
        }
    })?;
    kernel.recover(
        Recovery {
            snapshot_lsn: lsn,
            snapshot_location: loaded.path.display().to_string(),
            objects,
            ..Recovery::empty()
        },
        None,
    )?;
    Ok((lsn, loaded.written_at))
}

/// FNV-1a, for a stable cluster id from the store's URL.
fn fnv(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xCBF2_9CE4_8422_2325u64, |h, &b| {
        (h ^ b as u64).wrapping_mul(0x0000_0100_0000_01B3)
    })
}

/// The node-to-node endpoint.
async fn handle<P: PhysicalProfile>(
    axum::extract::State(inner): axum::extract::State<Arc<Inner<P>>>,
    body: axum::body::Bytes,
) -> Vec<u8> {
    let response = match rpc::decode::<Request>(&body) {
        Err(e) => Response::broken(format!("a request that does not decode: {e}")),
        Ok(Request::Push {
            epoch,
            lsn,
            payload,
        }) => {
            lock(&inner.pushed).insert(lsn, (epoch, Bytes::from(payload)));
            inner.nudge(false);
            Response::Done
        }
        Ok(Request::Write { request, body }) => {
            let leader = lock(&inner.leader).clone();
            match leader {
                Some(leader) => {
                    let (reply, answer) = tokio::sync::oneshot::channel();
                    leader.submit(Pending {
                        request,
                        body,
                        reply,
                    });
                    answer.await.unwrap_or(Response::NotLeader { owner: None })
                }
                None => Response::NotLeader {
                    owner: lock(&inner.owner).as_ref().map(|(_, n)| n.clone()),
                },
            }
        }
        Ok(other) => {
            let node = inner.clone();
            tokio::task::spawn_blocking(move || node.serve(other))
                .await
                .unwrap_or_else(|e| Response::broken(format!("the request failed: {e}")))
        }
    };
    rpc::encode(&response)
}

impl<P: PhysicalProfile> Inner<P> {
    /// Answers a request about the shards this node holds (on a blocking thread).
    pub(super) fn serve(&self, request: Request) -> Response {
        let answer = match request {
            Request::Scan { sql, shards, at } => self.local_scan(&sql, &shards, at),
            Request::Existing {
                table,
                keys,
                shards,
                at,
            } => self.local_existing(&table, rpc::images_to_keys(keys), &shards, at),
            Request::Matching { sql, shards, at } => self.local_matching(&sql, &shards, at),
            Request::Groups { view, shards, at } => self.local_groups(&view, &shards, at),
            Request::Checkpoint => self.checkpoint_owned().map(|r| Response::Checkpointed {
                lsn: r.lsn,
                bytes: r.bytes,
            }),
            Request::Status => Ok(self.report()),
            Request::Write { .. } | Request::Push { .. } => Ok(Response::Done),
        };
        answer.unwrap_or_else(|e| Response::failed(&e))
    }

    /// Waits until `shards` are held here and the log is applied up to `at`; `Err(shard)`
    /// for a shard this node neither holds nor is loading.
    fn hold(&self, shards: &[u32], at: u64) -> Result<std::result::Result<(), u32>> {
        let until = Instant::now() + WAIT_STATE;
        loop {
            let missing = {
                let state = self.state();
                shards
                    .iter()
                    .copied()
                    .find(|s| !state.partitions.contains_key(s))
            };
            match missing {
                None => break,
                Some(s) if !lock(&self.loading).contains(&s) && !self.assigned_to_me(s) => {
                    return Ok(Err(s))
                }
                Some(s) if Instant::now() >= until => {
                    return Err(ExecError::Remote(format!(
                        "shard {s} is still loading on node `{}`; try again",
                        self.me
                    ))
                    .into())
                }
                Some(_) => std::thread::sleep(Duration::from_millis(20)),
            }
        }
        self.wait_applied(at, WAIT_STATE)?;
        Ok(Ok(()))
    }

    fn assigned_to_me(&self, shard: u32) -> bool {
        lock(&self.assignment)
            .get(shard as usize)
            .is_some_and(|o| *o == self.me)
    }

    fn local_scan(&self, sql: &str, shards: &[u32], at: u64) -> Result<Response> {
        if let Err(shard) = self.hold(shards, at)? {
            return Ok(Response::NotOwner { shard });
        }
        let stmt = crate::sql::parse_one(sql)?;
        let state = self.state();
        let mut rows = Vec::new();
        let mut types = Vec::new();
        for shard in shards {
            let Some(p) = state.partitions.get(shard) else {
                return Ok(Response::NotOwner { shard: *shard });
            };
            let Plan::Select(query) = p.kernel.plan(stmt.parsed(), Origin::Client)? else {
                return Err(
                    ExecError::Remote("a scan of a statement that is not a SELECT".into()).into(),
                );
            };
            types = p
                .kernel
                .columns_of(&query.from)
                .unwrap_or_default()
                .into_iter()
                .map(|(_, t)| t)
                .collect();
            rows.extend(p.kernel.query_input(&query)?);
        }
        Ok(Response::Rows {
            columns: rpc::rows_to_columns(&rows, &types),
        })
    }

    fn local_groups(&self, view: &str, shards: &[u32], at: u64) -> Result<Response> {
        if let Err(shard) = self.hold(shards, at)? {
            return Ok(Response::NotOwner { shard });
        }
        let state = self.state();
        let Some((types, _)) = state.catalog.view_group_types(view) else {
            return Err(crate::engine::unknown(crate::sql::ObjectKind::View, view));
        };
        let mut rows = Vec::new();
        for shard in shards {
            let Some(p) = state.partitions.get(shard) else {
                return Ok(Response::NotOwner { shard: *shard });
            };
            rows.extend(p.kernel.view_groups(view)?);
        }
        Ok(Response::Rows {
            columns: rpc::rows_to_columns(&rows, &types),
        })
    }

    fn local_existing(
        &self,
        table: &str,
        keys: Vec<Key>,
        shards: &[u32],
        at: u64,
    ) -> Result<Response> {
        if let Err(shard) = self.hold(shards, at)? {
            return Ok(Response::NotOwner { shard });
        }
        let state = self.state();
        let rows: Vec<Vec<Value>> = keys
            .iter()
            .filter_map(|key| {
                state
                    .partitions
                    .get(&key.shard(self.shards))
                    .and_then(|p| p.kernel.row(table, key))
            })
            .collect();
        Ok(Response::Rows {
            columns: rpc::rows_to_columns(&rows, &state.catalog.column_types(table)?),
        })
    }

    fn local_matching(&self, sql: &str, shards: &[u32], at: u64) -> Result<Response> {
        if let Err(shard) = self.hold(shards, at)? {
            return Ok(Response::NotOwner { shard });
        }
        let stmt = crate::sql::parse_one(sql)?;
        let state = self.state();
        let mut keys = Vec::new();
        let mut rows = Vec::new();
        let mut updated = None;
        for shard in shards {
            let Some(p) = state.partitions.get(shard) else {
                return Ok(Response::NotOwner { shard: *shard });
            };
            match p.kernel.plan(stmt.parsed(), Origin::Client)? {
                Plan::Delete { table, filter } => {
                    keys.extend(p.kernel.keys_where(&table, filter.as_ref())?)
                }
                Plan::Update { table, assignments } => {
                    rows.extend(p.kernel.rows_where(&table, assignments.filter.as_ref())?);
                    updated = Some(table);
                }
                _ => {
                    return Err(ExecError::Remote(
                        "a match of a statement that is neither a DELETE nor an UPDATE".into(),
                    )
                    .into())
                }
            }
        }
        Ok(match updated {
            Some(table) => Response::Rows {
                columns: rpc::rows_to_columns(&rows, &state.catalog.column_types(&table)?),
            },
            None => Response::Keys(rpc::keys_to_images(&keys)),
        })
    }

    // -- asking the owners ---------------------------------------------------------------

    /// Sends `make(shards)` to the owner of each group of `shards`, retrying shards whose
    /// owner changed, until every shard answered; the answers in shard order.
    pub(super) fn ask_owners(
        &self,
        shards: &[u32],
        make: impl Fn(Vec<u32>) -> Request,
    ) -> Result<Vec<(u32, Response)>> {
        let until = Instant::now() + WAIT_STATE;
        let mut todo: Vec<u32> = shards.to_vec();
        let mut answers = Vec::new();
        while !todo.is_empty() {
            let owners = self.owners_of(&todo);
            let mut retry = Vec::new();
            let asked: Vec<(Vec<u32>, std::result::Result<Response, String>)> = owners
                .into_iter()
                .map(|(owner, group)| {
                    let request = make(group.clone());
                    let answer = match owner {
                        None => Err("no live node".to_string()),
                        Some(m) if m.node_id == self.me => Ok(self.serve(request)),
                        Some(m) => self.block_on(self.client.send(
                            m.rpc,
                            &request,
                            WAIT_STATE + Duration::from_secs(5),
                        )),
                    };
                    (group, answer)
                })
                .collect();
            for (group, answer) in asked {
                match answer {
                    Ok(Response::NotOwner { .. }) | Err(_) => retry.extend(group),
                    Ok(Response::Failed {
                        kind,
                        sqlstate,
                        message,
                    }) => return Err(rpc::remote_error(kind, sqlstate, message)),
                    Ok(response) => answers.push((group[0], response)),
                }
            }
            if !retry.is_empty() {
                if Instant::now() >= until {
                    return Err(ExecError::Remote(format!(
                        "shards {retry:?} have no live owner that answers; try again"
                    ))
                    .into());
                }
                std::thread::sleep(Duration::from_millis(100));
                self.refresh_members();
            }
            todo = retry;
        }
        answers.sort_by_key(|(first, _)| *first);
        Ok(answers)
    }

    /// The live member that owns each of `shards`, grouped.
    fn owners_of(&self, shards: &[u32]) -> Vec<(Option<Member>, Vec<u32>)> {
        let members = lock(&self.members).clone();
        let assignment = lock(&self.assignment).clone();
        let mut groups: BTreeMap<Option<String>, Vec<u32>> = BTreeMap::new();
        for &s in shards {
            groups
                .entry(assignment.get(s as usize).cloned())
                .or_default()
                .push(s);
        }
        groups
            .into_iter()
            .map(|(owner, group)| {
                let member = owner.and_then(|o| members.iter().find(|m| m.node_id == o).cloned());
                (member, group)
            })
            .collect()
    }

    /// The rows of `table` whose primary keys are among `keys`, as of `at`.
    pub(super) fn existing_rows(
        &self,
        table: &str,
        keys: &[Key],
        at: u64,
    ) -> Result<Vec<Vec<Value>>> {
        let mut by_shard: BTreeMap<u32, Vec<Key>> = BTreeMap::new();
        for k in keys {
            by_shard
                .entry(k.shard(self.shards))
                .or_default()
                .push(k.clone());
        }
        let shards: Vec<u32> = by_shard.keys().copied().collect();
        let answers = self.ask_owners(&shards, |group| Request::Existing {
            table: table.to_string(),
            keys: rpc::keys_to_images(
                &group
                    .iter()
                    .flat_map(|s| by_shard[s].clone())
                    .collect::<Vec<_>>(),
            ),
            shards: group,
            at,
        })?;
        rows_of(answers, "a key check")
    }

    /// The primary keys a DELETE selects, as of `at`.
    pub(super) fn matching_keys(&self, sql: &str, at: u64) -> Result<Vec<Key>> {
        let mut keys = Vec::new();
        for (_, response) in self.ask_matching(sql, at)? {
            let Response::Keys(found) = response else {
                return Err(ExecError::Remote("an unexpected answer to a DELETE".into()).into());
            };
            keys.extend(rpc::images_to_keys(found));
        }
        Ok(keys)
    }

    /// The rows an UPDATE selects, as of `at`.
    pub(super) fn matching_rows(&self, sql: &str, at: u64) -> Result<Vec<Vec<Value>>> {
        rows_of(self.ask_matching(sql, at)?, "an UPDATE")
    }

    fn ask_matching(&self, sql: &str, at: u64) -> Result<Vec<(u32, Response)>> {
        let shards: Vec<u32> = (0..self.shards).collect();
        self.ask_owners(&shards, |group| Request::Matching {
            sql: sql.to_string(),
            shards: group,
            at,
        })
    }
}

/// The rows of every answer (to `what`, for the error of an answer that holds none).
pub(super) fn rows_of(answers: Vec<(u32, Response)>, what: &str) -> Result<Vec<Vec<Value>>> {
    let mut rows = Vec::new();
    for (_, response) in answers {
        let Response::Rows { columns } = response else {
            return Err(
                ExecError::Remote(format!("an unexpected answer to {what}: {response:?}")).into(),
            );
        };
        rows.extend(rpc::columns_to_rows(columns));
    }
    Ok(rows)
}

/// What the rest of the cluster module reads of a node.
impl<P: PhysicalProfile> Inner<P> {
    pub(super) fn node_id(&self) -> &str {
        &self.me
    }

    pub(super) fn uptime(&self) -> Duration {
        self.started.elapsed()
    }

    pub(super) fn shard_count(&self) -> u32 {
        self.shards
    }

    pub(super) fn live_members(&self) -> Vec<Member> {
        let members = lock(&self.members).clone();
        if members.is_empty() {
            return vec![self.membership.me().clone()];
        }
        members
    }

    pub(super) fn count_rows(&self, rows: u64) {
        self.counters
            .rows_ingested
            .fetch_add(rows, Ordering::Relaxed);
    }

    pub(super) fn counters(&self) -> &Counters {
        &self.counters
    }

    pub(super) fn last_checkpoint_at(&self) -> &Mutex<Option<SystemTime>> {
        &self.last_checkpoint
    }

    /// This node's leader, while it owns the log.
    pub(super) fn current_leader(&self) -> Option<Arc<Leader>> {
        lock(&self.leader).clone().filter(|l| !l.is_fenced())
    }

    /// The log's owner and its node-to-node address, if it is live.
    pub(super) fn owner_address(&self) -> Option<(String, SocketAddr)> {
        let owner = lock(&self.owner).clone()?.1;
        let rpc = lock(&self.members).iter().find(|m| m.node_id == owner)?.rpc;
        Some((owner, rpc))
    }

    /// Forgets who owns the log, so that the maintainer reads it again.
    pub(super) fn forget_owner(&self) {
        *lock(&self.owner) = None;
    }

    /// Sends a write to the log's owner `node` at `to`; gives up early (as a failure to
    /// answer) once gossip no longer shows `node` live and reaching the store: a connection
    /// to a node that was cut off hangs until its timeout, and an owner without its store
    /// cannot append, while the write can go to the new owner at once (under the same request
    /// id, so it is never applied twice).
    pub(super) fn forward_write(
        &self,
        node: &str,
        to: SocketAddr,
        request: &Request,
    ) -> std::result::Result<Response, String> {
        let gone = async {
            loop {
                tokio::time::sleep(Duration::from_millis(200)).await;
                if !lock(&self.members)
                    .iter()
                    .any(|m| m.node_id == node && m.store_ok)
                {
                    return;
                }
            }
        };
        self.block_on(async {
            tokio::select! {
                answer = self.client.send(to, request, Duration::from_secs(60)) => answer,
                () = gone => Err(format!(
                    "node `{node}` left the live members or lost the object store"
                )),
            }
        })
    }

    pub(super) fn send(
        &self,
        to: SocketAddr,
        request: &Request,
        timeout: Duration,
    ) -> Result<Response> {
        self.block_on(self.client.send(to, request, timeout))
            .map_err(|e| ExecError::Remote(e).into())
    }

    pub(super) fn probe(&self) -> Result<()> {
        let stores = lock(&self.stores);
        match stores.get(&None) {
            Some(s) => Ok(s.probe()?),
            None => Ok(()),
        }
    }

    pub(super) fn storage(&self) -> StorageMetrics {
        let c = &self.counters;
        StorageMetrics {
            checkpoints: c.checkpoints.load(Ordering::Relaxed),
            checkpoint_failures: c.checkpoint_failures.load(Ordering::Relaxed),
            checkpoint_bytes: c.checkpoint_bytes.load(Ordering::Relaxed),
            checkpoint_seconds: lock(&c.checkpoint_seconds).clone(),
            ..StorageMetrics::default()
        }
    }

    /// This node's report of itself, for [`Request::Status`].
    fn report(&self) -> Response {
        Response::Status {
            applied_lsn: *lock(&self.applied),
            shards: self.state().partitions.keys().copied().collect(),
            last_checkpoint_unix_ms: lock(&self.last_checkpoint)
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .map(|d| d.as_millis() as u64),
            log_owner: lock(&self.owner).as_ref().map(|(_, n)| n.clone()),
        }
    }

    /// Every live member's report, asked in parallel.
    pub(super) fn survey_members(&self) -> Vec<crate::network::MemberStatus> {
        let members = self.live_members();
        let asked = members.iter().map(|m| {
            let client = self.client.clone();
            let to = m.rpc;
            async move {
                client
                    .send(to, &Request::Status, Duration::from_secs(2))
                    .await
            }
        });
        let answers = self.block_on(futures_util::future::join_all(asked));
        members
            .into_iter()
            .zip(answers)
            .map(|(m, answer)| {
                let (report, error) = match answer {
                    Ok(Response::Status {
                        applied_lsn,
                        shards,
                        last_checkpoint_unix_ms,
                        log_owner,
                    }) => (
                        Some(crate::network::MemberReport {
                            applied_lsn,
                            shards,
                            last_checkpoint_unix_ms,
                            log_owner,
                        }),
                        None,
                    ),
                    Ok(other) => (None, Some(format!("an unexpected answer: {other:?}"))),
                    Err(e) => (None, Some(e)),
                };
                crate::network::MemberStatus {
                    node_id: m.node_id,
                    address: m.rpc.to_string(),
                    store_reachable: m.store_ok,
                    report,
                    error,
                }
            })
            .collect()
    }

    pub(super) fn status(&self) -> ClusterStatus {
        let c = &self.counters;
        let members: Vec<String> = self.live_members().into_iter().map(|m| m.node_id).collect();
        // An owner that is not live (yet to be replaced) owns nothing that matters.
        let log_owner = lock(&self.owner)
            .as_ref()
            .map(|(_, n)| n.clone())
            .filter(|n| members.contains(n));
        ClusterStatus {
            node_id: self.me.clone(),
            members,
            known_members: self.known_members.load(Ordering::Relaxed) as usize,
            minority: self.in_minority(),
            shards_owned: self.state().partitions.len(),
            shards_total: self.shards as usize,
            log_owner,
            takeovers: c.takeovers.load(Ordering::Relaxed),
            fenced_writes: c.fenced_writes.load(Ordering::Relaxed),
            write_retries: vec![
                (
                    "not_owner",
                    c.write_retries.not_owner.load(Ordering::Relaxed),
                ),
                (
                    "owner_unreachable",
                    c.write_retries.owner_unreachable.load(Ordering::Relaxed),
                ),
                ("no_owner", c.write_retries.no_owner.load(Ordering::Relaxed)),
            ],
            writes_unconfirmed: c.writes_unconfirmed.load(Ordering::Relaxed),
            put_seconds: lock(&c.put_seconds).clone(),
            log_entries: c.log_entries.load(Ordering::Relaxed),
            log_changes: c.log_changes.load(Ordering::Relaxed),
            assignment: lock(&self.assignment).clone(),
        }
    }

    /// Stops the node: its threads end, it checkpoints what it holds, and it leaves.
    pub(super) fn shut_down(&self) -> Result<()> {
        if !self.stop_threads() {
            return Ok(());
        }
        let checkpointed = self.checkpoint_owned();
        self.block_on(self.membership.say_leaving());
        self.leave();
        checkpointed.map(drop)
    }

    /// Stops the node's threads; `false` if it was stopped already.
    pub(super) fn stop_threads(&self) -> bool {
        if self.stop.swap(true, Ordering::SeqCst) {
            return false;
        }
        if let Some(leader) = lock(&self.leader).clone() {
            leader.nudge();
        }
        self.nudge(false);
        let threads: Vec<_> = lock(&self.threads).drain(..).collect();
        for t in &threads {
            t.thread().unpark();
        }
        for t in threads {
            let _ = t.join();
        }
        true
    }

    /// Leaves the membership and stops the runtime (the node-to-node server with it).
    pub(super) fn leave(&self) {
        self.block_on(self.membership.leave_now());
        if let Some(runtime) = lock(&self.runtime).take() {
            runtime.shutdown_timeout(Duration::from_secs(1));
        }
    }
}
