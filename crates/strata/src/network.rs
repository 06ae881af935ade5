//! Networks: how a node sees the other members of its deployment, and, in multi-node tiers,
//! the node through which every statement runs.

use crate::batch::Batch;
use crate::checkpoint::PersistSettings;
use crate::engine::ResultSet;
use crate::error::Result;
use crate::sql::Statement;
use crate::types::DataType;
use std::net::SocketAddr;
use std::sync::Arc;

/// A node's view of its deployment. `Default` is a node that joined nothing (an ephemeral
/// engine, which runs statements on its own kernel). Contract, per method:
pub trait Network: Sized + Default {
    /// Joins the deployment the settings name: a single node has nothing to join; a
    /// cluster node validates its settings, binds its node-to-node address, joins the
    /// membership and catches up with the shared log before it returns.
    fn open(settings: &PersistSettings, cluster: &ClusterSettings, capacity: usize)
        -> Result<Self>;

    /// Number of live members, this node included.
    fn members(&self) -> usize;

    /// The node every statement runs through in a multi-node tier (shared with the threads
    /// that serve it); `None` where the engine runs statements on its own kernel
    /// (single-node tiers, and an ephemeral engine of any tier).
    #[doc(hidden)]
    fn node(&self) -> Option<Arc<dyn Node>>;
}

/// The network of single-node tiers: zero-sized; this node is the whole deployment.
#[derive(Clone, Copy, Debug, Default)]
pub struct SingleNode;

impl Network for SingleNode {
    fn open(_: &PersistSettings, _: &ClusterSettings, _: usize) -> Result<Self> {
        Ok(SingleNode)
    }

    #[inline(always)]
    fn members(&self) -> usize {
        1
    }

    #[inline(always)]
    fn node(&self) -> Option<Arc<dyn Node>> {
        None
    }
}

static_assertions::assert_eq_size!(SingleNode, ());

/// A member of a multi-node deployment, as the engine and the server use it: every method
/// may be called from several threads at once.
#[doc(hidden)]
pub trait Node: Send + Sync {
    /// Runs one statement: a read gathers its rows from the owners of the shards it needs
    /// (after every write acknowledged before the call); a write is ordered and recorded by
    /// the log's owner and applied by the owners of its keys.
    fn run(&self, stmt: &Statement) -> Result<Option<ResultSet>>;
    /// Appends a typed batch to a source or writes it to a table (`replace`: upsert).
    fn write_batch(&self, target: &str, batch: &Batch, replace: bool) -> Result<usize>;
    /// Column names and types of an object, as of the newest catalog this node applied.
    fn columns_of(&self, name: &str) -> Option<Vec<(String, DataType)>>;
    /// `(kind, name, keys)` of the state this node holds, per table and view.
    fn state_sizes(&self) -> Vec<(&'static str, String, usize)>;
    /// Rows this node inserted through its clients since it started.
    fn rows_ingested(&self) -> u64;
    /// Checkpoints every shard this node owns (and the catalog, on the log's owner).
    fn checkpoint(&self) -> Result<crate::checkpoint::CheckpointReport>;
    /// Checks that the object store is reachable now.
    fn probe_storage(&self) -> Result<()>;
    /// When this node last checkpointed.
    fn last_checkpoint(&self) -> Option<std::time::SystemTime>;
    /// The counters of its storage.
    fn storage_metrics(&self) -> crate::metrics::StorageMetrics;
    /// What `/health` and `/metrics` show of the cluster.
    fn cluster_status(&self) -> ClusterStatus;
    /// Every live member's report of itself, asked now (at most 2 s each, in parallel):
    /// what `strata cluster status` shows.
    fn survey(&self) -> Vec<MemberStatus>;
    /// Calls `subscriber` with the later changes of view `name`, wherever its groups live.
    fn subscribe(self: Arc<Self>, view: &str, subscriber: crate::ViewSubscriber) -> Result<()>;
    /// Leaves the deployment: checkpoints what it owns and stops its threads.
    fn close(&self) -> Result<()>;
}

/// The cluster as one node sees it and as every member reports itself: `GET /cluster` and
/// `strata cluster status`.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ClusterReport {
    /// The node asked.
    pub node_id: String,
    pub log_owner: Option<String>,
    pub shards_total: usize,
    /// The node that holds each shard (by index), as the node asked computed it.
    pub assignment: Vec<String>,
    pub members: Vec<MemberStatus>,
}

impl ClusterReport {
    /// A table of the members (state, log position, shards, checkpoint age at `now_ms`),
    /// then the shards by owner.
    pub fn render(&self, now_ms: u64) -> String {
        use std::fmt::Write as _;
        let mut out = format!(
            "cluster as node {} sees it: {} members, log owner {}, {} shards\n",
            self.node_id,
            self.members.len(),
            self.log_owner.as_deref().unwrap_or("(none yet)"),
            self.shards_total
        );
        let _ = writeln!(
            out,
            "{:<16} {:<22} {:<12} {:>12} {:>10}  shards",
            "node", "address", "state", "applied LSN", "ckpt age"
        );
        for m in &self.members {
            match &m.report {
                Some(r) => {
                    let age = r.last_checkpoint_unix_ms.map_or("-".to_string(), |t| {
                        format!("{:.1} s", now_ms.saturating_sub(t) as f64 / 1000.0)
                    });
                    let shards: Vec<String> = r.shards.iter().map(u32::to_string).collect();
                    let _ = writeln!(
                        out,
                        "{:<16} {:<22} {:<12} {:>12} {:>10}  {}",
                        m.node_id,
                        m.address,
                        if m.store_reachable {
                            "live"
                        } else {
                            "no store"
                        },
                        r.applied_lsn,
                        age,
                        shards.join(",")
                    );
                }
                None => {
                    let _ = writeln!(
                        out,
                        "{:<16} {:<22} {:<12} {:>12} {:>10}  ({})",
                        m.node_id,
                        m.address,
                        "unreachable",
                        "-",
                        "-",
                        m.error.as_deref().unwrap_or("no answer")
                    );
                }
            }
        }
        out
    }
}

/// A member of the cluster and what it reports of itself.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct MemberStatus {
    pub node_id: String,
    /// Its node-to-node address.
    pub address: String,
    /// Whether it says (in gossip) that it reaches the object store; one that does not
    /// holds no shard and does not own the log.
    pub store_reachable: bool,
    /// `None`: it did not answer (`error` says why).
    pub report: Option<MemberReport>,
    pub error: Option<String>,
}

/// What a member reports of itself.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct MemberReport {
    /// The log position it has applied.
    pub applied_lsn: u64,
    /// The shards it holds.
    pub shards: Vec<u32>,
    pub last_checkpoint_unix_ms: Option<u64>,
    /// The log's owner, as it knows it.
    pub log_owner: Option<String>,
}

/// How a node joins a multi-node deployment, as `[cluster]` in the config sets it. Ignored by
/// single-node tiers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClusterSettings {
    /// Unique in the cluster, stable across restarts.
    pub node_id: String,
    /// The node-to-node address: gossip (UDP) and requests between nodes (HTTP over TCP)
    /// both use this host and port.
    pub listen: SocketAddr,
    /// Addresses of other nodes to join through; none, or only this node's own address,
    /// bootstraps a new cluster.
    pub seeds: Vec<String>,
    /// Shards of a new cluster (recorded once by the node that creates the cluster; a later
    /// node's setting must agree). `None`: 16.
    pub shards: Option<u32>,
}

impl Default for ClusterSettings {
    fn default() -> Self {
        ClusterSettings {
            node_id: String::new(),
            listen: SocketAddr::from(([127, 0, 0, 1], 7946)),
            seeds: Vec::new(),
            shards: None,
        }
    }
}

/// What a cluster node reports about the cluster.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ClusterStatus {
    pub node_id: String,
    /// The live members this node sees, by node id.
    pub members: Vec<String>,
    /// The members gossip knows, live or stopped without draining in the last hour.
    pub known_members: usize,
    /// Whether this node sees half of them or fewer: it is cut off from the majority and
    /// does not take the log over.
    pub minority: bool,
    pub shards_owned: usize,
    pub shards_total: usize,
    /// The node that owns the log (orders every write), if known.
    pub log_owner: Option<String>,
    /// Shards this node took over (loaded from a checkpoint and the log) since it started.
    pub takeovers: u64,
    /// Appends refused because another node took the log over.
    pub fenced_writes: u64,
    /// Writes this node retried, by cause (`not_owner`, `owner_unreachable`, `no_owner`).
    pub write_retries: Vec<(&'static str, u64)>,
    /// Writes it gave up on unconfirmed (they may or may not have been applied).
    pub writes_unconfirmed: u64,
    /// Durations of the object store puts of the log, in seconds.
    pub put_seconds: crate::metrics::Histogram,
    /// Log entries appended (on the log's owner) and the changes they held.
    pub log_entries: u64,
    pub log_changes: u64,
    /// The node that holds each shard (by index), as this node computed it.
    pub assignment: Vec<String>,
}
