//! Networks: how a node sees the other members of its cluster.

/// A node's view of the cluster.
pub trait Network: Default {
    /// Number of live members, this node included.
    fn members(&self) -> usize;
}

/// The network of single-node tiers: zero-sized; this node is the whole cluster.
#[derive(Clone, Copy, Debug, Default)]
pub struct SingleNode;

impl Network for SingleNode {
    #[inline(always)]
    fn members(&self) -> usize {
        1
    }
}

static_assertions::assert_eq_size!(SingleNode, ());
