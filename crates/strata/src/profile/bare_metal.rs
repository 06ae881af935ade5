//! `bare-metal`: fixed-capacity state allocated once, no persistence, no network, no runtime.

use super::{profile_consts_from_tier, PhysicalProfile, ProfileKind, Sealed};
use crate::checkpoint::NoCheckpoint;
use crate::index::NoIndexes;
use crate::network::SingleNode;
use crate::state::FixedTable;

/// The bare-metal tier. Zero-sized; exists only with the `bare-metal` feature.
#[derive(Clone, Copy, Debug, Default)]
pub struct BareMetal;

impl Sealed for BareMetal {}

impl PhysicalProfile for BareMetal {
    profile_consts_from_tier!(ProfileKind::BareMetal);
    type State<K: Eq + std::hash::Hash + Clone + Send, V: Send> = FixedTable<K, V>;
    type Checkpointer = NoCheckpoint;
    type Network = SingleNode;
    type Indexes = NoIndexes;
}
