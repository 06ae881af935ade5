//! `durable`: everything `embedded` does, with snapshots (checkpoints) in an object store so
//! that the state survives the loss of the local disk.

use super::{profile_consts_from_tier, PhysicalProfile, ProfileKind, Sealed};
use crate::network::SingleNode;
use crate::persist::local::WalCheckpointer;
use crate::persist::object_snapshots::ObjectSnapshots;
use crate::persist::redb_indexes::RedbIndexes;
use crate::state::ElasticTable;

/// The durable tier. Zero-sized; exists only with the `durable` feature.
#[derive(Clone, Copy, Debug, Default)]
pub struct Durable;

impl Sealed for Durable {}

impl PhysicalProfile for Durable {
    profile_consts_from_tier!(ProfileKind::Durable);
    type State<K: Eq + std::hash::Hash + Clone + Send, V: Send> = ElasticTable<K, V>;
    type Checkpointer = WalCheckpointer<ObjectSnapshots>;
    type Network = SingleNode;
    type Indexes = RedbIndexes;
}
