//! The engine: one kernel (catalog and state) behind the tier's checkpointer and network.
//!
//! Every statement is parsed, then planned against the catalog ([`plan`]). A read runs on
//! the kernel ([`query`]). A write goes through the [`pipeline`]: the kernel prepares it,
//! the tier records it (persistent tiers: the WAL), and the kernel applies it. Recovery
//! applies what the checkpointer's storage holds through the same steps ([`recovery`]).
//!
//! | file | owns |
//! |---|---|
//! | `builder.rs` | building an engine: profile checks, opening storage, recovery |
//! | `kernel.rs` | the catalog and the state; lookups and the errors about them |
//! | `plan/` | statements bound against the catalog (`Plan`); SELECT planning |
//! | `pipeline.rs` | prepare → effects → apply, and `Prepared` |
//! | `ddl.rs` | creating and dropping objects |
//! | `write.rs` | appends to sources, table writes and deletes |
//! | `indexes.rs` | secondary index maintenance and use |
//! | `query.rs` | SELECT, SHOW, DESCRIBE |
//! | `recovery.rs` | applying a snapshot and a log; the state a snapshot reads |
//! | `subscribe.rs` | view change subscriptions |
//! | `aggregate/` | incremental grouped aggregation (views and aggregate queries) |

mod aggregate;
mod batch_rows;
mod builder;
mod ddl;
mod indexes;
mod kernel;
mod pipeline;
mod plan;
mod query;
mod recovery;
mod schema;
mod subscribe;
mod update;
mod window;
mod write;

pub use builder::{check_profile_name, EngineBuilder};
pub use schema::ResultSet;
pub use subscribe::{ViewChange, ViewSubscriber};

// What the cluster tier builds its nodes from: kernels (one per shard, one for the catalog),
// plans, and the last step of a query.
#[cfg(feature = "cluster")]
pub(crate) use kernel::Part;
#[cfg(feature = "cluster")]
pub(crate) use pipeline::Replaying;
#[cfg(feature = "cluster")]
pub(crate) use plan::{Assignments, Conflict};
#[cfg(feature = "cluster")]
pub(crate) use query::finish;

use crate::batch::Batch;
use crate::checkpoint::{CheckpointReport, Checkpointer, StateView};
use crate::error::{Result, SqlError};
use crate::network::{Network, Node};
use crate::profile::{ActiveProfile, PhysicalProfile, Recovery};
use crate::sql::{self, Statement};
use crate::types::DataType;
use kernel::not_in_tier;
pub(crate) use kernel::unknown;
pub(crate) use kernel::Kernel;
use pipeline::Prepared;
pub(crate) use plan::{Origin, Plan};

/// A Strata engine of profile `P` (the compiled one unless named).
pub struct Engine<P: PhysicalProfile = ActiveProfile> {
    kernel: Kernel<P>,
    /// `None` in tiers that keep nothing and in ephemeral engines.
    checkpointer: Option<P::Checkpointer>,
    network: P::Network,
    /// Rows inserted into sources and tables since the engine was built (recovery's
    /// replays not counted).
    rows_ingested: u64,
}

impl Engine<ActiveProfile> {
    /// A builder for an engine of the compiled profile.
    pub fn builder() -> EngineBuilder<ActiveProfile> {
        EngineBuilder::default()
    }
}

impl<P: PhysicalProfile> Engine<P> {
    /// Keys per table or view.
    pub fn capacity(&self) -> usize {
        self.kernel.capacity
    }

    /// Live members of the cluster this engine belongs to.
    pub fn members(&self) -> usize {
        self.network.members()
    }

    /// Runs every statement in `sql`, in order, returning the results of those that produce
    /// rows. Stops at the first error; statements before it stay applied.
    pub fn execute(&mut self, sql: &str) -> Result<Vec<ResultSet>> {
        let mut results = Vec::new();
        for stmt in sql::statements(sql)? {
            if let Some(rs) = self.run(&stmt?)? {
                results.push(rs);
            }
        }
        Ok(results)
    }

    /// Runs one statement that returns rows (SELECT, SHOW, DESCRIBE).
    pub fn query(&mut self, sql: &str) -> Result<ResultSet> {
        let stmt = sql::parse_one(sql)?;
        let refused = || {
            SqlError::Unsupported(
                "query() needs a statement that returns rows; use execute()".into(),
            )
        };
        // Refused before it runs: an INSERT must not be applied and then reported as an error.
        if !stmt.returns_rows() {
            return Err(refused().into());
        }
        self.run(&stmt)?.ok_or_else(|| refused().into())
    }

    /// The cluster node statements run through (multi-node tiers, once joined).
    #[inline(always)]
    fn node(&self) -> Option<std::sync::Arc<dyn Node>> {
        if P::MULTI_NODE {
            self.network.node()
        } else {
            None
        }
    }

    /// Runs one parsed statement (see [`crate::sql::statements`]); `Some` for statements
    /// that return rows.
    pub fn run(&mut self, stmt: &Statement) -> Result<Option<ResultSet>> {
        if let Some(node) = self.node() {
            return node.run(stmt);
        }
        let plan = self.kernel.plan(stmt.parsed(), Origin::Client)?;
        let result = match plan {
            Plan::Select(query) => return self.kernel.select(query).map(Some),
            Plan::Show(kind) => return Ok(Some(self.kernel.show(kind))),
            Plan::Describe(name) => return self.kernel.describe(&name).map(Some),
            Plan::Checkpoint => self.checkpoint().map(drop),
            Plan::Nothing => Ok(()),
            write => self.commit(&write).map(drop),
        };
        result?;
        self.maybe_checkpoint();
        Ok(None)
    }

    /// Appends a batch to a source (updating every view on it) or inserts it into a table
    /// (failing on an existing key). Returns the number of rows. All or nothing.
    pub fn insert_batch(&mut self, target: &str, batch: &Batch) -> Result<usize> {
        self.write_batch(target, batch, false)
    }

    /// Like [`Engine::insert_batch`], but rows with an existing key replace it (tables only).
    pub fn upsert_batch(&mut self, target: &str, batch: &Batch) -> Result<usize> {
        self.write_batch(target, batch, true)
    }

    fn write_batch(&mut self, target: &str, batch: &Batch, replace: bool) -> Result<usize> {
        if let Some(node) = self.node() {
            return node.write_batch(target, batch, replace);
        }
        let schema = self.kernel.insert_schema(target)?;
        let columns = schema.columns_from_batch(&self.kernel.describe_object(target), batch)?;
        let prepared = self.kernel.prepare_insert(target, &columns, replace)?;
        let rows = self.record_and_apply(prepared)?;
        self.maybe_checkpoint();
        Ok(rows)
    }

    /// The pipeline for a write plan: prepare, record, apply. Returns the rows inserted.
    fn commit(&mut self, plan: &Plan) -> Result<usize> {
        let prepared = self.kernel.prepare(plan, None)?;
        self.record_and_apply(prepared)
    }

    /// The tier's effects, then apply; on a failed effect, the reservations are undone and
    /// nothing is applied.
    fn record_and_apply(&mut self, prepared: Prepared<'_, P>) -> Result<usize> {
        if P::PERSISTENT && !prepared.is_empty() {
            if let Some(c) = self.checkpointer.as_mut() {
                if let Err(e) = c.record(&prepared.change()) {
                    self.kernel.abort(prepared);
                    return Err(e);
                }
            }
        }
        let rows = self.kernel.apply(prepared);
        self.rows_ingested += rows as u64;
        Ok(rows)
    }

    /// Column names and types of a source, table or view.
    pub fn columns_of(&self, name: &str) -> Option<Vec<(String, DataType)>> {
        match self.node() {
            Some(node) => node.columns_of(name),
            None => self.kernel.columns_of(name),
        }
    }

    /// The definition of a materialized view, as normalised SQL.
    pub fn view_definition(&self, name: &str) -> Option<&str> {
        self.kernel.views.get(name).map(|v| v.definition.as_str())
    }

    /// Calls `subscriber` with every later change of view `name` (see [`ViewChange`]): in
    /// single-node tiers the changes of each batch as it is applied; in constellation, from a
    /// thread of the node, the changes since its last look at the view (it looks each time
    /// the cluster log moves, at most every 100 ms), wherever the view's groups live.
    pub fn subscribe(&mut self, name: &str, subscriber: ViewSubscriber) -> Result<()> {
        if let Some(node) = self.node() {
            return node.subscribe(name, subscriber);
        }
        let Some(view) = self.kernel.views.get_mut(name) else {
            return Err(unknown(crate::sql::ObjectKind::View, name));
        };
        view.subscribers.push(subscriber);
        Ok(())
    }

    /// Writes a snapshot now (persistent tiers), so that recovery replays less log.
    pub fn checkpoint(&mut self) -> Result<CheckpointReport> {
        if !P::PERSISTENT {
            return Err(not_in_tier::<P>("CHECKPOINT", |t| t.persistent));
        }
        if let Some(node) = self.node() {
            return node.checkpoint();
        }
        let Some(c) = self.checkpointer.as_mut() else {
            return Err(SqlError::Unsupported(
                "CHECKPOINT on an ephemeral engine: it keeps nothing to disk".into(),
            )
            .into());
        };
        let report = c.checkpoint(&self.kernel)?;
        self.kernel.mark_indexes_durable(report.lsn);
        Ok(report)
    }

    /// Rows inserted into sources and tables since the engine was built (recovery's replays
    /// not counted).
    pub fn rows_ingested(&self) -> u64 {
        match self.node() {
            Some(node) => node.rows_ingested(),
            None => self.rows_ingested,
        }
    }

    /// `(kind, name, keys)` of every table and view: the state each holds (in a cluster, the
    /// part this node holds).
    pub fn state_sizes(&self) -> Vec<(&'static str, String, usize)> {
        match self.node() {
            Some(node) => node.state_sizes(),
            None => self
                .kernel
                .state_sizes()
                .into_iter()
                .map(|(kind, name, keys)| (kind, name.to_string(), keys))
                .collect(),
        }
    }

    /// The log's and the checkpoints' counters (defaults in tiers that keep nothing).
    pub fn storage_metrics(&self) -> crate::metrics::StorageMetrics {
        match self.node() {
            Some(node) => node.storage_metrics(),
            None => self
                .checkpointer
                .as_ref()
                .map(|c| c.metrics())
                .unwrap_or_default(),
        }
    }

    /// Checks that the checkpoint storage is reachable now (a live probe of an object store;
    /// `Ok` in tiers that keep nothing or keep it locally).
    pub fn probe_storage(&self) -> Result<()> {
        match self.node() {
            Some(node) => node.probe_storage(),
            None => self.checkpointer.as_ref().map_or(Ok(()), |c| c.probe()),
        }
    }

    /// When the newest checkpoint was written: the last one this engine took, or else the one
    /// it recovered from (`None`: none yet, or a tier that keeps nothing).
    pub fn last_checkpoint(&self) -> Option<std::time::SystemTime> {
        match self.node() {
            Some(node) => node.last_checkpoint(),
            None => self.checkpointer.as_ref().and_then(|c| c.last_success()),
        }
    }

    /// What this node sees of its cluster (multi-node tiers, once joined).
    pub fn cluster_status(&self) -> Option<crate::network::ClusterStatus> {
        self.node().map(|n| n.cluster_status())
    }

    /// The node statements run through, shared with other threads (multi-node tiers, once
    /// joined): the server runs concurrent requests through it.
    #[doc(hidden)]
    pub fn shared_node(&self) -> Option<std::sync::Arc<dyn Node>> {
        self.node()
    }

    /// The catalog and state, as a checkpointer reads them for a snapshot.
    pub fn state(&self) -> &dyn StateView {
        &self.kernel
    }

    /// Shuts the engine down cleanly. Tiers whose recovery must not depend on the local disk
    /// (`Recovery::Full`: the checkpoint lives in an object store) take a final checkpoint,
    /// so that everything acknowledged is in the store; the others only release their files
    /// (the log already holds every acknowledged change). Dropping an engine without
    /// calling this loses nothing either, but recovery then replays the local log.
    pub fn close(mut self) -> Result<()> {
        if let Some(node) = self.node() {
            return node.close();
        }
        if P::RECOVERY == Recovery::Full && self.checkpointer.is_some() {
            self.checkpoint()?;
        }
        Ok(())
    }

    /// Takes the periodic checkpoint when it is due. A failure is reported but does not
    /// undo the statement that triggered it: that statement is already acknowledged.
    fn maybe_checkpoint(&mut self) {
        if P::PERSISTENT
            && self
                .checkpointer
                .as_ref()
                .is_some_and(|c| c.checkpoint_due())
        {
            if let Err(e) = self.checkpoint() {
                tracing::warn!(
                    "periodic checkpoint failed (the log still holds every change): {e}"
                );
            }
        }
    }
}

impl<P: PhysicalProfile> std::fmt::Debug for Engine<P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("profile", &P::NAME)
            .field("sources", &self.kernel.sources.keys().collect::<Vec<_>>())
            .field("tables", &self.kernel.tables.keys().collect::<Vec<_>>())
            .field("views", &self.kernel.views.keys().collect::<Vec<_>>())
            .finish()
    }
}
