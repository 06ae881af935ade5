//! `embedded` (default): growing in-memory state in one process.

use super::{profile_consts_from_tier, PhysicalProfile, ProfileKind, Sealed};
use crate::checkpoint::NoCheckpoint;
use crate::network::SingleNode;
use crate::state::ElasticTable;

/// The embedded tier. Zero-sized; exists only with the `embedded` feature.
#[derive(Clone, Copy, Debug, Default)]
pub struct Embedded;

impl Sealed for Embedded {}

impl PhysicalProfile for Embedded {
    profile_consts_from_tier!(ProfileKind::Embedded);
    type State<K: Eq + std::hash::Hash + Clone, V> = ElasticTable<K, V>;
    type Checkpointer = NoCheckpoint;
    type Network = SingleNode;
}
