//! `constellation`: several nodes sharing one object store; every write ordered by a shared
//! log in the store, every key held by the node that owns its shard.

use super::{profile_consts_from_tier, PhysicalProfile, ProfileKind, Sealed};
use crate::checkpoint::NoCheckpoint;
use crate::cluster::Cluster;
use crate::persist::redb_indexes::RedbIndexes;
use crate::state::ElasticTable;

/// The constellation tier. Zero-sized; exists only with the `constellation` feature. Its
/// state lives in its network (the cluster node): the shared log records every change and
/// the shards' checkpoints go to the object store, so the engine needs no checkpointer of
/// its own.
#[derive(Clone, Copy, Debug, Default)]
pub struct Constellation;

impl Sealed for Constellation {}

impl PhysicalProfile for Constellation {
    profile_consts_from_tier!(ProfileKind::Constellation);
    type State<K: Eq + std::hash::Hash + Clone + Send, V: Send> = ElasticTable<K, V>;
    type Checkpointer = NoCheckpoint;
    type Network = Cluster<Constellation>;
    type Indexes = RedbIndexes;
}
