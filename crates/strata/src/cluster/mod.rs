//! The constellation tier's network: several nodes sharing one object store, each holding
//! the state of some of the shards, every write ordered by one shared log.
//!
//! ```text
//!  client ─SQL─▶ any node ──write──▶ the log's owner: validates (catalog; for table inserts
//!                  │                  and deletes, the owners' answer), appends the change to
//!                  │                  the log in the object store (the acknowledgement), pushes
//!                  │                  it to every node
//!                  │                         │
//!                  │        every node applies each entry, in order: DDL to its catalog, rows
//!                  │        to the shards it holds (each keeps the keys of its shard)
//!                  │
//!                  └──read──▶ the head of the log (one GET), then the owners of the shards the
//!                             query needs scan them as of that position; this node finishes it
//! ```
//!
//! | file | owns |
//! |---|---|
//! | `log.rs`, `entry.rs` | the shared log: create-only entries, epochs, fencing, truncation |
//! | `membership.rs` | who is live (chitchat gossip) |
//! | `shard.rs` | which live node holds which shard |
//! | `state.rs` | a node's catalog and partitions, and applying entries to them |
//! | `node.rs` | starting a node, following the log, answering other nodes |
//! | `follow.rs` | telling a view's changes to subscribers on any node |
//! | `maintain.rs` | leadership, loading and dropping shards, checkpoints, truncation |
//! | `leader.rs` | the log's owner: validating, ordering and appending writes |
//! | `rpc.rs` | the requests between nodes |
//!
//! Safety rests on the store's create-if-absent only: gossip decides who *tries* to own the
//! log; a node that lost it can never append again (the next object it would create exists).
//! Liveness under a split network rests on a majority: only a node that sees more than half
//! of the members gossip knows tries, so the two sides do not take the log from each other
//! in turn.

mod entry;
mod follow;
mod leader;
pub mod log;
mod maintain;
mod membership;
mod node;
mod rpc;
mod shard;
mod state;

use crate::batch::Batch;
use crate::change::Change;
use crate::checkpoint::{CheckpointReport, PersistSettings};
use crate::engine::{finish, Origin, Plan, ResultSet};
use crate::error::{ExecError, Result};
use crate::metrics::StorageMetrics;
use crate::network::{ClusterSettings, ClusterStatus, Network, Node};
use crate::profile::PhysicalProfile;
use crate::sql::Statement;
use crate::types::DataType;
use node::{lock, Inner};
use rpc::{Request, Response, WriteBody};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A node of the constellation tier; `Default` is one that joined nothing (an ephemeral
/// engine, which runs statements on its own kernel).
pub struct Cluster<P: PhysicalProfile>(Option<Arc<Inner<P>>>);

impl<P: PhysicalProfile> Default for Cluster<P> {
    fn default() -> Self {
        Cluster(None)
    }
}

impl<P: PhysicalProfile> std::fmt::Debug for Cluster<P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Cluster")
            .field(&self.0.as_ref().map(|n| n.node_id().to_string()))
            .finish()
    }
}

/// An engine dropped without `close()` stops its node without a checkpoint: the log holds
/// every acknowledged change.
impl<P: PhysicalProfile> Drop for Cluster<P> {
    fn drop(&mut self) {
        if let Some(node) = &self.0 {
            if node.stop_threads() {
                node.leave();
            }
        }
    }
}

impl<P: PhysicalProfile> Network for Cluster<P> {
    fn open(
        settings: &PersistSettings,
        cluster: &ClusterSettings,
        capacity: usize,
    ) -> Result<Self> {
        Inner::open(settings, cluster, capacity).map(|n| Cluster(Some(n)))
    }

    fn members(&self) -> usize {
        self.0.as_ref().map_or(1, |n| n.live_members().len())
    }

    fn node(&self) -> Option<Arc<dyn Node>> {
        self.0.clone().map(|n| n as Arc<dyn Node>)
    }
}

impl<P: PhysicalProfile> Node for Inner<P> {
    fn run(&self, stmt: &Statement) -> Result<Option<ResultSet>> {
        if stmt.returns_rows() {
            return self.read(stmt).map(Some);
        }
        if stmt.kind() == "checkpoint" {
            return self.checkpoint().map(|_| None);
        }
        let rows = self.write(WriteBody::Sql(stmt.to_string()))?;
        self.count_rows(rows);
        Ok(None)
    }

    fn write_batch(&self, target: &str, batch: &Batch, replace: bool) -> Result<usize> {
        // Validated here so that a bad batch fails without a round trip; the log's owner
        // checks it again against the catalog as of the log's end.
        self.catch_up()?;
        let columns = {
            let state = self.state();
            let schema = state.catalog.insert_schema(target)?;
            schema
                .columns_from_batch(&state.catalog.describe_object(target), batch)?
                .into_owned()
        };
        let change = crate::persist::image::encode_change(
            &Change::Insert {
                target,
                columns: &columns,
                replace,
            },
            rkyv::util::AlignedVec::new(),
        )
        .map_err(|e| crate::error::PersistError::Encode {
            what: "change",
            cause: e.to_string(),
        })?;
        let rows = self.write(WriteBody::Change(change.into_vec()))?;
        self.count_rows(rows);
        Ok(rows as usize)
    }

    fn columns_of(&self, name: &str) -> Option<Vec<(String, DataType)>> {
        let _ = self.catch_up();
        self.state().catalog.columns_of(name)
    }

    fn state_sizes(&self) -> Vec<(&'static str, String, usize)> {
        let state = self.state();
        let mut sizes: std::collections::BTreeMap<(&'static str, String), usize> = state
            .catalog
            .state_sizes()
            .into_iter()
            .map(|(kind, name, _)| ((kind, name.to_string()), 0))
            .collect();
        for p in state.partitions.values() {
            for (kind, name, keys) in p.kernel.state_sizes() {
                *sizes.entry((kind, name.to_string())).or_default() += keys;
            }
        }
        sizes.into_iter().map(|((k, n), v)| (k, n, v)).collect()
    }

    fn rows_ingested(&self) -> u64 {
        self.counters().rows_ingested.load(Ordering::Relaxed)
    }

    fn checkpoint(&self) -> Result<CheckpointReport> {
        // Every live node checkpoints the shards it holds.
        let started = Instant::now();
        let mut report = CheckpointReport {
            lsn: 0,
            bytes: 0,
            millis: 0,
        };
        // The log's owner last: it truncates the log that every shard's checkpoint covers.
        let owner = self.status().log_owner;
        let mut members = self.live_members();
        members.sort_by_key(|m| Some(&m.node_id) == owner.as_ref());
        for member in members {
            let answer = if member.node_id == self.node_id() {
                self.checkpoint_owned().map(|r| Response::Checkpointed {
                    lsn: r.lsn,
                    bytes: r.bytes,
                })
            } else {
                self.send(member.rpc, &Request::Checkpoint, Duration::from_secs(300))
            };
            match answer? {
                Response::Checkpointed { lsn, bytes } => {
                    report.lsn = report.lsn.max(lsn);
                    report.bytes += bytes;
                }
                Response::Failed {
                    kind,
                    sqlstate,
                    message,
                } => return Err(rpc::remote_error(kind, sqlstate, message)),
                other => {
                    return Err(ExecError::Remote(format!(
                        "node `{}` answered a checkpoint with {other:?}",
                        member.node_id
                    ))
                    .into())
                }
            }
        }
        report.millis = started.elapsed().as_millis() as u64;
        Ok(report)
    }

    fn probe_storage(&self) -> Result<()> {
        self.probe()
    }

    fn last_checkpoint(&self) -> Option<std::time::SystemTime> {
        *lock(self.last_checkpoint_at())
    }

    fn storage_metrics(&self) -> StorageMetrics {
        self.storage()
    }

    fn cluster_status(&self) -> ClusterStatus {
        self.status()
    }

    fn survey(&self) -> Vec<crate::network::MemberStatus> {
        self.survey_members()
    }

    fn subscribe(self: Arc<Self>, view: &str, subscriber: crate::ViewSubscriber) -> Result<()> {
        self.follow(view, subscriber)
    }

    fn close(&self) -> Result<()> {
        self.shut_down()
    }
}

impl<P: PhysicalProfile> Inner<P> {
    /// A read: as of the log's end when it starts, from the owners of the shards it needs.
    fn read(&self, stmt: &Statement) -> Result<ResultSet> {
        let at = self.catch_up()?;
        let plan = self.state().catalog.plan(stmt.parsed(), Origin::Client)?;
        match plan {
            Plan::Show(kind) => Ok(self.state().catalog.show(kind)),
            Plan::Describe(name) => self.state().catalog.describe(&name),
            Plan::Select(query) => {
                let (columns, key) = {
                    let state = self.state();
                    let columns = state
                        .catalog
                        .columns_of(&query.from)
                        .expect("planned against the catalog");
                    (columns, state.catalog.key_lookup(&query))
                };
                // A lookup by key asks only the owner of the key's shard.
                let shards: Vec<u32> = match key {
                    Some(key) => vec![key.shard(self.shard_count())],
                    None => (0..self.shard_count()).collect(),
                };
                let sql = stmt.to_string();
                let answers = self.ask_owners(&shards, |group| Request::Scan {
                    sql: sql.clone(),
                    shards: group,
                    at,
                })?;
                let rows = node::rows_of(answers, "a scan")?;
                finish::<P>(query.planned, &columns, rows)
            }
            _ => unreachable!("statements that return rows plan to reads"),
        }
    }

    /// A write: recorded by the log's owner, wherever it is; retried (with the same request
    /// id, so never applied twice) while the log changes owner.
    fn write(&self, body: WriteBody) -> Result<u64> {
        let request = entry::random_id();
        let until = Instant::now() + node::WRITE_RETRY;
        // Whether an attempt went unanswered (then it may have been applied: the outcome of a
        // write given up on is unknown). Any answer says it was not, or was.
        let mut unanswered_once = false;
        loop {
            let retries = &self.counters().write_retries;
            // The answer, what a failure to get one is counted as, and whether anyone was
            // asked.
            let (answer, unanswered, asked) = match self.current_leader() {
                Some(leader) => {
                    let (reply, answer) = tokio::sync::oneshot::channel();
                    leader.submit(leader::Pending {
                        request,
                        body: body.clone(),
                        reply,
                    });
                    let answer = answer
                        .blocking_recv()
                        .map_err(|_| "this node stopped ordering writes".to_string());
                    (answer, &retries.not_owner, true)
                }
                None => match self.owner_address() {
                    Some((node, to)) => {
                        let answer = self
                            .forward_write(
                                &node,
                                to,
                                &Request::Write {
                                    request,
                                    body: body.clone(),
                                },
                            )
                            .map_err(|e| format!("the log's owner `{node}` did not answer: {e}"));
                        (answer, &retries.owner_unreachable, true)
                    }
                    // Cut off from the majority: nothing to wait for; the client may send
                    // the write to another node at once.
                    None if !unanswered_once && self.in_minority() => {
                        return Err(ExecError::Remote(format!(
                            "{}; the write was not applied: send it to another node",
                            self.no_owner_reason()
                        ))
                        .into())
                    }
                    None => (Err(self.no_owner_reason()), &retries.no_owner, false),
                },
            };
            unanswered_once |= asked && answer.is_err();
            let (last_problem, cause) = match answer {
                Ok(Response::Written { rows }) => return Ok(rows),
                Ok(Response::Failed {
                    kind,
                    sqlstate,
                    message,
                }) => return Err(rpc::remote_error(kind, sqlstate, message)),
                Ok(other) => (format!("{other:?}"), &retries.not_owner),
                Err(problem) => (problem, unanswered),
            };
            cause.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            if Instant::now() >= until {
                self.counters()
                    .writes_unconfirmed
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                return Err(ExecError::Remote(format!(
                    "the write could not be confirmed within {:?} ({last_problem}): it may or \
                     may not have been applied; check before sending it again",
                    node::WRITE_RETRY
                ))
                .into());
            }
            self.forget_owner();
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}
