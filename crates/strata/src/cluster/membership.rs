//! Membership: who is alive, by gossip (chitchat, Quickwit's scuttlebutt gossip with a
//! phi-accrual failure detector). Gossip decides only who *tries* to own the log and which
//! node holds which shard; it is never trusted with a write (the log's create-only objects
//! are).
//!
//! Each node advertises its node id and, in its gossip state, `rpc`: the address of its
//! node-to-node HTTP endpoint (the same host and port as gossip, over TCP).

use chitchat::transport::UdpTransport;
use chitchat::{spawn_chitchat, ChitchatConfig, ChitchatHandle, ChitchatId, FailureDetectorConfig};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// How often a node gossips.
pub const GOSSIP_INTERVAL: Duration = Duration::from_millis(100);

/// A live member of the cluster.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Member {
    pub node_id: String,
    /// Its node-to-node HTTP address.
    pub rpc: SocketAddr,
    /// Whether it reaches the object store: a member that does not holds no shard and does
    /// not take the log over (it says so in gossip, see [`Membership::set_store_reachable`]).
    pub store_ok: bool,
}

/// The gossip key where a node says whether it reaches the object store.
const STORE_KEY: &str = "store";
/// The gossip key where a node that leaves on purpose (drained) says so: it no longer
/// counts among the cluster's members.
const LEFT_KEY: &str = "left";

/// This node's membership in the cluster.
pub struct Membership {
    handle: ChitchatHandle,
    me: Member,
}

impl Membership {
    /// Starts gossiping on `listen` (UDP) as `node_id`, with `seeds` to join through.
    /// `cluster_id` keeps clusters apart (nodes of another cluster are ignored).
    pub async fn join(
        node_id: &str,
        listen: SocketAddr,
        seeds: &[String],
        cluster_id: &str,
    ) -> Result<Membership, String> {
        // A generation of this run of the node: later than any earlier run's.
        let generation = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        let config = ChitchatConfig {
            chitchat_id: ChitchatId::new(node_id.to_string(), generation, listen),
            cluster_id: cluster_id.to_string(),
            gossip_interval: GOSSIP_INTERVAL,
            listen_addr: listen,
            seed_nodes: seeds
                .iter()
                .filter(|s| s.parse::<SocketAddr>().ok() != Some(listen))
                .cloned()
                .collect(),
            failure_detector_config: FailureDetectorConfig {
                // About 0.5–1 s to declare a silent node dead at this gossip interval.
                phi_threshold: 8.0,
                sampling_window_size: 1_000,
                max_interval: Duration::from_secs(2),
                initial_interval: GOSSIP_INTERVAL,
                dead_node_grace_period: Duration::from_secs(3600),
            },
            marked_for_deletion_grace_period: Duration::from_secs(3600),
            catchup_callback: None,
            extra_liveness_predicate: None,
            protocol_version: chitchat::ProtocolVersion::V0,
        };
        let handle = spawn_chitchat(
            config,
            vec![("rpc".into(), listen.to_string())],
            &UdpTransport,
        )
        .await
        .map_err(|e| format!("cannot gossip on {listen} (UDP): {e}"))?;
        Ok(Membership {
            handle,
            me: Member {
                node_id: node_id.to_string(),
                rpc: listen,
                store_ok: true,
            },
        })
    }

    /// This node.
    pub fn me(&self) -> &Member {
        &self.me
    }

    /// The live members, this node included, by node id (one entry per id: the newest
    /// generation).
    pub async fn live(&self) -> Vec<Member> {
        let chitchat = self.handle.chitchat();
        let guard = chitchat.lock().await;
        let mut by_id: BTreeMap<String, (u64, SocketAddr, bool)> = BTreeMap::new();
        for id in guard.live_nodes() {
            let state = guard.node_state(id);
            let rpc = state
                .and_then(|s| s.get("rpc"))
                .and_then(|a| a.parse().ok())
                .unwrap_or(id.gossip_advertise_addr);
            let store_ok = state.and_then(|s| s.get(STORE_KEY)) != Some("unreachable");
            let entry = by_id
                .entry(id.node_id.to_string())
                .or_insert((0, rpc, store_ok));
            if id.generation_id >= entry.0 {
                *entry = (id.generation_id, rpc, store_ok);
            }
        }
        by_id
            .into_iter()
            .map(|(node_id, (_, rpc, store_ok))| Member {
                node_id,
                rpc,
                store_ok,
            })
            .collect()
    }

    /// How many nodes make up the cluster as gossip knows it, by node id: the live ones, and
    /// those that stopped without leaving (killed, frozen, cut off) in the last hour. A side
    /// of a split cluster sees only part of them: it may take the log over only when it
    /// holds more than half (see `lead_if_needed`).
    pub async fn known(&self) -> usize {
        let chitchat = self.handle.chitchat();
        let guard = chitchat.lock().await;
        // Per id, its newest generation: whether it counts.
        let mut newest: BTreeMap<&str, (u64, bool)> = BTreeMap::new();
        let live = guard.live_nodes().map(|id| (id, true));
        let dead = guard.dead_nodes().map(|id| {
            let left = guard.node_state(id).and_then(|s| s.get(LEFT_KEY)).is_some();
            (id, !left)
        });
        for (id, counts) in live.chain(dead) {
            let entry = newest.entry(&*id.node_id).or_insert((0, counts));
            if id.generation_id >= entry.0 {
                *entry = (id.generation_id, counts);
            }
        }
        newest.values().filter(|(_, counts)| *counts).count()
    }

    /// Whether another process gossips with this node's id: a live node of another
    /// generation whose heartbeat advances while we watch (a run of this node that was
    /// killed stops beating, and is not a duplicate).
    pub async fn duplicate_of_me(&self, watch: Duration) -> bool {
        let me = self.handle.chitchat_id().clone();
        let beats = |guard: &chitchat::Chitchat| -> BTreeMap<u64, u64> {
            guard
                .node_states()
                .iter()
                .filter(|(id, _)| id.node_id == me.node_id && id.generation_id != me.generation_id)
                .map(|(id, state)| (id.generation_id, u64::from(state.heartbeat())))
                .collect()
        };
        let chitchat = self.handle.chitchat();
        let before = beats(&*chitchat.lock().await);
        let until = Instant::now() + watch;
        while Instant::now() < until {
            tokio::time::sleep(GOSSIP_INTERVAL).await;
            let now = beats(&*chitchat.lock().await);
            if now
                .iter()
                .any(|(generation, beat)| before.get(generation).is_some_and(|b| beat > b))
            {
                return true;
            }
        }
        false
    }

    /// Waits until some other member is live, up to `within`; whether one is.
    pub async fn wait_for_peer(&self, within: Duration) -> bool {
        let until = Instant::now() + within;
        loop {
            if self.live().await.len() > 1 {
                return true;
            }
            if Instant::now() >= until {
                return false;
            }
            tokio::time::sleep(GOSSIP_INTERVAL).await;
        }
    }

    /// Tells the cluster whether this node reaches the object store.
    pub async fn set_store_reachable(&self, reachable: bool) {
        let value = if reachable { "ok" } else { "unreachable" };
        self.handle
            .with_chitchat(|c| c.self_node_state().set(STORE_KEY, value))
            .await;
    }

    /// Tells the cluster that this node leaves on purpose, and waits a few gossip rounds for
    /// the others to hear it.
    pub async fn say_leaving(&self) {
        self.handle
            .with_chitchat(|c| c.self_node_state().set(LEFT_KEY, "true"))
            .await;
        tokio::time::sleep(GOSSIP_INTERVAL * 4).await;
    }

    /// Stops gossiping (others see this node leave once its heartbeat stops).
    pub async fn leave_now(&self) {
        let _ = self.handle.initiate_shutdown();
    }
}
