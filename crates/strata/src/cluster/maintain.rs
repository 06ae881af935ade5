//! The node's maintainer thread: who is live, who owns the log (and taking it over when its
//! owner is gone), which shards this node holds (loading new ones from their checkpoint and
//! the log, dropping those that moved), checkpoints of what it holds, and, on the log's
//! owner, truncating the log every checkpoint covers.

use super::leader::{self, Leader};
use super::log::AcquireError;
use super::node::{lock, Inner};
use super::shard;
use super::state::{self, Partition};
use crate::checkpoint::CheckpointReport;
use crate::error::{ExecError, Result};
use crate::index::IndexBackend;
use crate::persist::local::snapshot_body;
use crate::persist::object_snapshots::ObjectSnapshots;
use crate::persist::snapshot_store::SnapshotStore;
use crate::profile::PhysicalProfile;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

/// How often the maintainer looks around.
const TICK: Duration = Duration::from_millis(100);
/// How often, at most, the log's owner truncates the log.
const TRUNCATE_EVERY: Duration = Duration::from_secs(30);
/// How often the log's owner is read from the store (and after any failure).
const OWNER_REFRESH: Duration = Duration::from_secs(2);
/// How long the store may fail every read before this node gives its shards and the log
/// up (says in gossip that it cannot reach the store): two reads at least, so that one slow
/// answer moves nothing.
const STORE_GRACE: Duration = Duration::from_secs(3);
/// How long the maintainer waits for its read of the log's owner (at most the store's own
/// timeout): a store that does not answer is noticed within seconds, not after the 30 s a
/// large checkpoint may need.
const STORE_PROBE: Duration = Duration::from_millis(1500);

/// What the maintainer remembers from one look around to the next.
pub(super) struct Maintainer {
    owner_read: Instant,
    owner_missing_since: Option<Instant>,
    last_checkpoint: Instant,
    /// Since when every read of the store failed.
    store_failing_since: Option<Instant>,
    /// What this node last told the cluster about its store.
    store_ok: bool,
}

impl Maintainer {
    pub(super) fn new() -> Maintainer {
        Maintainer {
            owner_read: Instant::now() - OWNER_REFRESH,
            owner_missing_since: None,
            last_checkpoint: Instant::now(),
            store_failing_since: None,
            store_ok: true,
        }
    }

    /// Looks around every [`TICK`] until the node stops.
    pub(super) fn run<P: PhysicalProfile>(mut self, inner: Arc<Inner<P>>) {
        while !inner.stopping() {
            std::thread::park_timeout(TICK);
            if !inner.stopping() {
                self.tick(&inner);
            }
        }
    }

    /// One look around: members, the log's owner (taking the log over if needed), the
    /// shards to hold, the periodic checkpoint.
    pub(super) fn tick<P: PhysicalProfile>(&mut self, inner: &Arc<Inner<P>>) {
        inner.refresh_members();
        if self.owner_read.elapsed() >= OWNER_REFRESH || lock(&inner.owner).is_none() {
            let started = Instant::now();
            self.owner_read = started;
            let known = lock(&inner.owner).clone();
            let probe = STORE_PROBE.min(inner.persist.object_store.timeout);
            // The timer is made inside the runtime (this thread is not one of its own).
            let read = inner.block_on(async {
                tokio::time::timeout(probe, inner.log.owner_since(known)).await
            });
            match read {
                Ok(Ok(owner)) => {
                    *lock(&inner.owner) = owner;
                    self.store_reached(inner, None);
                }
                Ok(Err(e)) => {
                    tracing::warn!(
                        "cannot read who owns the cluster log: {}",
                        crate::error::report(&e)
                    );
                    self.store_reached(inner, Some(started));
                }
                Err(_) => {
                    tracing::warn!(
                        "cannot read who owns the cluster log: the object store did not answer \
                         within {probe:?}"
                    );
                    self.store_reached(inner, Some(started));
                }
            }
        }
        inner.lead_if_needed(&mut self.owner_missing_since);
        if let Err(e) = inner.hold_assigned_shards() {
            tracing::warn!("cannot load a shard: {}", crate::error::report(&e));
        }
        let interval = inner.persist.checkpoint_interval;
        if interval.is_some_and(|i| self.last_checkpoint.elapsed() >= i) {
            self.last_checkpoint = Instant::now();
            if let Err(e) = inner.checkpoint_owned() {
                tracing::warn!(
                    "periodic checkpoint failed (the log still holds every change): {}",
                    crate::error::report(&e)
                );
            }
        }
    }
}

impl Maintainer {
    /// Records a read of the store: `None` if it succeeded, else when the failed read
    /// started. Once every read failed for [`STORE_GRACE`] (counted from the start of the
    /// first, as the store was unreachable from then on), tells the cluster that this node
    /// cannot reach the store (the others then take its shards and the log over), and when a
    /// read succeeds again, that it can. A failed read is retried at the next tick.
    fn store_reached<P: PhysicalProfile>(&mut self, inner: &Inner<P>, failed: Option<Instant>) {
        let failing = match failed {
            None => {
                self.store_failing_since = None;
                false
            }
            Some(started) => {
                self.owner_read = Instant::now() - OWNER_REFRESH;
                self.store_failing_since.get_or_insert(started).elapsed() >= STORE_GRACE
            }
        };
        if failing == self.store_ok {
            self.store_ok = !failing;
            if failing {
                tracing::warn!(
                    "node `{}` cannot reach the object store: it gives its shards and the log up \
                     until it can",
                    inner.me
                );
            } else {
                tracing::info!("node `{}` reaches the object store again", inner.me);
            }
            inner.block_on(inner.membership.set_store_reachable(!failing));
        }
    }
}

impl<P: PhysicalProfile> Inner<P> {
    /// Reads the live members and recomputes which node owns which shard: the members that
    /// reach the object store share the shards.
    pub(super) fn refresh_members(&self) {
        let members = self.block_on(self.membership.live());
        let ids: Vec<String> = members
            .iter()
            .filter(|m| m.store_ok)
            .map(|m| m.node_id.clone())
            .collect();
        let owners = shard::assign(&ids, self.shards);
        *lock(&self.assignment) = owners.into_iter().map(|i| ids[i].clone()).collect();
        let known = self.block_on(self.membership.known()).max(members.len());
        self.known_members.store(known as u64, Ordering::Relaxed);
        let minority = members.len() * 2 <= known;
        if self.in_minority.swap(minority, Ordering::Relaxed) != minority {
            if minority {
                tracing::warn!(
                    "node `{}` sees {} of the cluster's {known} members: it leaves the log to \
                     a majority",
                    self.me,
                    members.len()
                );
            } else {
                tracing::info!("node `{}` sees a majority of the cluster again", self.me);
            }
        }
        *lock(&self.members) = members;
    }

    /// Whether this node sees half of the known members or fewer (as of the last
    /// [`refresh_members`](Self::refresh_members)).
    pub(super) fn in_minority(&self) -> bool {
        self.in_minority.load(Ordering::Relaxed)
    }

    /// Why no node owns the log as far as this node sees: none yet, or this node is cut off
    /// from the majority that does.
    pub(super) fn no_owner_reason(&self) -> String {
        if !self.in_minority() {
            return "no node owns the cluster log yet".into();
        }
        format!(
            "node `{}` sees {} of the cluster's {} members: it is cut off from the log's owner",
            self.me,
            lock(&self.members).len(),
            self.known_members.load(Ordering::Relaxed)
        )
    }

    /// Takes the log over when its owner is not live (or nobody owns it yet), this node is
    /// the live node with the smallest id, and it sees a majority of the known members;
    /// steps down when it was fenced.
    fn lead_if_needed(self: &Arc<Self>, missing_since: &mut Option<Instant>) {
        if lock(&self.leader).as_ref().is_some_and(|l| !l.is_fenced()) {
            *missing_since = None;
            return;
        }
        // Only members that reach the store may own the log.
        let members: Vec<_> = lock(&self.members)
            .iter()
            .filter(|m| m.store_ok)
            .cloned()
            .collect();
        if !members.iter().any(|m| m.node_id == self.me) && !members.is_empty() {
            return;
        }
        let owner = lock(&self.owner).clone();
        let owner_live = owner.as_ref().is_some_and(|(_, node)| {
            *node != self.me && members.iter().any(|m| m.node_id == *node)
        });
        if owner_live {
            *missing_since = None;
            return;
        }
        // A side of a split cluster with half of the members or fewer leaves the log to the
        // other side: both would take it over in turn otherwise, fencing each other's writes.
        if self.in_minority() {
            return;
        }
        // Gossip needs a moment after joining to show who is live.
        let alone = members.len() == 1;
        if !alone && self.uptime() < super::node::SETTLE {
            return;
        }
        let since = *missing_since.get_or_insert_with(Instant::now);
        let first = members.first().is_some_and(|m| m.node_id == self.me);
        let previous_run_of_me = owner.as_ref().is_some_and(|(_, n)| *n == self.me);
        // An owner that is live but says it cannot reach the store gave the log up: no need
        // to wait for it to come back.
        let owner_gave_up = owner.as_ref().is_some_and(|(_, node)| {
            lock(&self.members)
                .iter()
                .any(|m| m.node_id == *node && !m.store_ok)
        });
        if !first
            || (!previous_run_of_me
                && !owner_gave_up
                && owner.is_some()
                && since.elapsed() < super::node::OWNER_MISSING)
        {
            return;
        }
        let from = self.state().cursor;
        match self.block_on(self.log.acquire(&self.me, from)) {
            Ok(writer) => {
                let epoch = writer.epoch();
                let head = writer.next_lsn() - 1;
                tracing::info!(
                    "node `{}` owns the cluster log from epoch {epoch} (log position {head})",
                    self.me
                );
                // Everything before the fence is applied before any write is ordered.
                if let Err(e) = self.wait_applied(head, Duration::from_secs(60)) {
                    tracing::error!(
                        "cannot apply the log before ordering writes: {}",
                        crate::error::report(&e)
                    );
                }
                let leader = Arc::new(Leader::new(writer));
                *lock(&self.leader) = Some(leader.clone());
                *lock(&self.owner) = Some((epoch, self.me.clone()));
                *missing_since = None;
                self.spawn("strata-sequencer", move |inner| leader::run(inner, leader));
            }
            Err(AcquireError::Lost { winner, epoch }) => {
                *lock(&self.owner) = Some((epoch, winner));
            }
            Err(AcquireError::Store(e)) => {
                tracing::warn!(
                    "cannot take the cluster log over: {}",
                    crate::error::report(&e)
                );
            }
        }
    }

    /// Loads the shards assigned to this node that it does not hold yet, and drops those
    /// assigned elsewhere.
    fn hold_assigned_shards(&self) -> Result<()> {
        let assignment = lock(&self.assignment).clone();
        let mine: Vec<u32> = (0..self.shards)
            .filter(|&s| assignment.get(s as usize).is_some_and(|o| *o == self.me))
            .collect();
        let held: Vec<u32> = self.state().partitions.keys().copied().collect();
        for s in held.iter().filter(|s| !mine.contains(s)) {
            self.state().partitions.remove(s);
            let _ = std::fs::remove_dir_all(self.shard_dir(*s));
            tracing::info!("shard {s} moved to another node");
        }
        let missing: Vec<u32> = mine.into_iter().filter(|s| !held.contains(s)).collect();
        lock(&self.loading).extend(missing.iter().copied());
        let mut loaded = Ok(());
        for &s in &missing {
            if loaded.is_ok() && !self.stopping() {
                loaded = self.load_shard(s);
            }
            lock(&self.loading).remove(&s);
        }
        loaded
    }

    fn shard_dir(&self, shard: u32) -> std::path::PathBuf {
        self.persist
            .data_dir
            .join("shards")
            .join(format!("{shard:04}"))
    }

    /// The checkpoint store of shard `shard` (`None`: the catalog's), connected once.
    fn with_store<T>(
        &self,
        shard: Option<u32>,
        use_it: impl FnOnce(&mut ObjectSnapshots) -> Result<T>,
    ) -> Result<T> {
        let mut stores = lock(&self.stores);
        let store = match stores.entry(shard) {
            std::collections::btree_map::Entry::Occupied(e) => e.into_mut(),
            std::collections::btree_map::Entry::Vacant(e) => {
                let suffix = match shard {
                    Some(s) => format!("shards/{s:04}"),
                    None => "shards/catalog".into(),
                };
                let settings = super::node::sub_store(&self.persist.object_store, &suffix);
                e.insert(ObjectSnapshots::connect(&settings)?)
            }
        };
        use_it(store)
    }

    /// Takes shard `shard` over: its newest checkpoint, then the log after it, until it is
    /// at this node's position; then it serves.
    fn load_shard(&self, shard: u32) -> Result<()> {
        let started = Instant::now();
        let mut kernel = state::partition_kernel::<P>(self.capacity, shard, self.shards);
        let dir = self.shard_dir(shard);
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir)
            .map_err(|e| crate::error::PersistError::io("create", &dir, e))?;
        // Indexes are always on in this tier (the config refuses `enabled = false`).
        let index_settings = crate::checkpoint::PersistSettings {
            data_dir: dir,
            indexes: true,
            ..self.persist.clone()
        };
        let (indexes, _) = P::Indexes::open(&index_settings)?;
        kernel.index_backend = Some(indexes);
        let (mut at, _) = self.with_store(Some(shard), |s| {
            super::node::load_checkpoint(&mut kernel, s)
        })?;
        let checkpointed = at;
        loop {
            let recent = self.state().recent_after(at);
            let entries = match recent {
                Some(entries) => entries,
                None => self.fetch_after(at)?,
            };
            for (lsn, payload) in entries {
                if lsn == at + 1 {
                    state::apply_to(&mut kernel, lsn, &payload)?;
                    at = lsn;
                }
            }
            let mut state = self.state();
            if state.cursor.applied() == at {
                state.partitions.insert(
                    shard,
                    Partition {
                        kernel,
                        checkpointed,
                    },
                );
                break;
            }
            if self.stopping() {
                return Ok(());
            }
        }
        self.counters
            .takeovers
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        tracing::info!(
            "node `{}` holds shard {shard} (log position {at}, loaded in {:?})",
            self.me,
            started.elapsed()
        );
        Ok(())
    }

    /// The entries after `after` up to this node's position, read from the store.
    fn fetch_after(&self, after: u64) -> Result<Vec<(u64, bytes::Bytes)>> {
        let target = self.state().cursor.applied();
        let mut cursor = self.block_on(self.log.cursor_for(after))?;
        let mut out = Vec::new();
        while cursor.applied() < target {
            let want = (target - cursor.applied()) as usize;
            let entries = self.block_on(self.log.read_ahead(&mut cursor, want))?;
            if entries.is_empty() {
                break;
            }
            out.extend(entries.into_iter().map(|(_, lsn, payload)| (lsn, payload)));
        }
        if out.is_empty() && after < target {
            return Err(ExecError::Remote(format!(
                "the log after position {after} is gone from the store (truncated before a \
                 checkpoint covered it)"
            ))
            .into());
        }
        Ok(out)
    }

    /// Checkpoints every shard this node holds (and, on the log's owner, the catalog, then
    /// truncates the log every checkpoint covers).
    pub(super) fn checkpoint_owned(&self) -> Result<CheckpointReport> {
        let started = Instant::now();
        let shards: Vec<u32> = self.state().partitions.keys().copied().collect();
        let mut report = CheckpointReport {
            lsn: 0,
            bytes: 0,
            millis: 0,
        };
        let keep = self.persist.keep.max(1);
        let result = (|| -> Result<()> {
            for shard in shards {
                // A shard whose checkpoint covers the log applied so far is skipped.
                let taken = {
                    let state = self.state();
                    let lsn = state.cursor.applied();
                    report.lsn = report.lsn.max(lsn);
                    state
                        .partitions
                        .get(&shard)
                        .filter(|p| p.checkpointed < lsn)
                        .map(|p| snapshot_body(&p.kernel, lsn).map(|b| (lsn, b)))
                };
                let Some(taken) = taken else { continue };
                let (lsn, body) = taken?;
                report.bytes += body.len() as u64;
                self.with_store(Some(shard), |s| {
                    s.write(lsn, body)?;
                    s.retain(keep)?;
                    Ok(())
                })?;
                if let Some(p) = self.state().partitions.get_mut(&shard) {
                    p.checkpointed = lsn;
                }
            }
            // The log's owner checkpoints the catalog (when it changed) and truncates the log.
            let due = lock(&self.leader).is_some().then(|| {
                let state = self.state();
                let lsn = state.cursor.applied();
                (lsn > state.catalog_checkpointed)
                    .then(|| snapshot_body(&state.catalog, lsn).map(|b| (lsn, b)))
            });
            if let Some(Some(taken)) = due {
                let (lsn, body) = taken?;
                report.bytes += body.len() as u64;
                self.with_store(None, |s| {
                    s.write(lsn, body)?;
                    s.retain(keep)?;
                    Ok(())
                })?;
                self.state().catalog_checkpointed = lsn;
                self.truncate_log()?;
            }
            Ok(())
        })();
        let c = &self.counters;
        match &result {
            Ok(()) => {
                c.checkpoints
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                c.checkpoint_bytes
                    .fetch_add(report.bytes, std::sync::atomic::Ordering::Relaxed);
                lock(&c.checkpoint_seconds).observe(started.elapsed().as_secs_f64());
                *lock(&self.last_checkpoint) = Some(SystemTime::now());
            }
            Err(_) => {
                c.checkpoint_failures
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
        }
        result?;
        report.millis = started.elapsed().as_millis() as u64;
        Ok(report)
    }

    /// Deletes the log entries that every checkpoint kept covers (the catalog's and every
    /// shard's: a damaged newest checkpoint falls back to the one before it, which still
    /// finds its log). At most every [`TRUNCATE_EVERY`]: it reads every shard's checkpoints.
    fn truncate_log(&self) -> Result<()> {
        {
            let mut last = lock(&self.truncated_at);
            if last.is_some_and(|t| t.elapsed() < TRUNCATE_EVERY) {
                return Ok(());
            }
            *last = Some(Instant::now());
        }
        let mut floor = u64::MAX;
        for shard in std::iter::once(None).chain((0..self.shards).map(Some)) {
            let oldest = self.with_store(shard, |s| {
                Ok(s.checkpoints()?.last().map(|c| c.manifest.lsn))
            })?;
            match oldest {
                Some(lsn) => floor = floor.min(lsn),
                // A shard without a checkpoint still needs the whole log.
                None => return Ok(()),
            }
        }
        if floor > 1 {
            let deleted = self.block_on(self.log.truncate_before(floor + 1))?;
            if deleted > 0 {
                tracing::info!("truncated {deleted} log entries up to position {floor}");
            }
        }
        Ok(())
    }
}
