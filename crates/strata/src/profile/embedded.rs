//! `embedded` (default): growing in-memory state in one process, kept in a local data
//! directory (WAL + snapshots) and recovered after a crash.

use super::{profile_consts_from_tier, PhysicalProfile, ProfileKind, Sealed};
use crate::network::SingleNode;
use crate::persist::local::LocalCheckpointer;
use crate::persist::redb_indexes::RedbIndexes;
use crate::state::ElasticTable;

/// The embedded tier. Zero-sized; exists only with the `embedded` feature.
#[derive(Clone, Copy, Debug, Default)]
pub struct Embedded;

impl Sealed for Embedded {}

impl PhysicalProfile for Embedded {
    profile_consts_from_tier!(ProfileKind::Embedded);
    type State<K: Eq + std::hash::Hash + Clone + Send, V: Send> = ElasticTable<K, V>;
    type Checkpointer = LocalCheckpointer;
    type Network = SingleNode;
    type Indexes = RedbIndexes;
}
