//! Deployment profiles: one zero-sized type per tier, chosen at compile time.
//!
//! Every tier is described by a row of [`TIERS`]; a profile type's consts are read from its
//! row, so the capability matrix that `strata profile` prints and the consts that generic
//! code branches on are the same data. Only the compiled profile's type exists in a build.

use crate::checkpoint::Checkpointer;
use crate::index::IndexBackend;
use crate::network::Network;
use crate::state::StateBackend;
use std::hash::Hash;

#[cfg(feature = "bare-metal")]
mod bare_metal;
#[cfg(feature = "bare-metal")]
pub use bare_metal::BareMetal;

#[cfg(feature = "embedded")]
mod embedded;
#[cfg(feature = "embedded")]
pub use embedded::Embedded;

#[cfg(feature = "durable")]
mod durable;
#[cfg(feature = "durable")]
pub use durable::Durable;

#[cfg(feature = "constellation")]
mod constellation;
#[cfg(feature = "constellation")]
pub use constellation::Constellation;

/// The one profile of this build.
#[cfg(feature = "bare-metal")]
pub type ActiveProfile = BareMetal;
/// The one profile of this build.
#[cfg(feature = "embedded")]
pub type ActiveProfile = Embedded;
/// The one profile of this build.
#[cfg(feature = "durable")]
pub type ActiveProfile = Durable;
/// The one profile of this build.
#[cfg(feature = "constellation")]
pub type ActiveProfile = Constellation;

mod sealed {
    pub trait Sealed {}
}
pub(crate) use sealed::Sealed;

/// A deployment tier as a type. Sealed: the four tiers are the only implementations.
pub trait PhysicalProfile: Sealed + Copy + Default + Send + Sync + 'static {
    /// The profile's feature name, e.g. `"embedded"`.
    const NAME: &'static str;
    const KIND: ProfileKind;
    /// Whether acknowledged writes survive a process restart.
    const PERSISTENT: bool;
    const RECOVERY: Recovery;
    const MULTI_NODE: bool;
    /// Whether state maps grow; if not, a full map fails inserts with `StateFull`.
    const STATE_CAN_GROW: bool;
    /// Upper bound of keys per table or view (`usize::MAX`: bounded by memory only).
    const MAX_KEYS: usize;
    /// Keys per table or view when the config does not say (fixed-capacity tiers).
    const DEFAULT_CAPACITY: usize;
    const INDEXES: IndexSupport;
    /// Whether the tier runs an async runtime and serves clients over the network.
    const NETWORKED: bool;

    /// The key→value map behind every table and view.
    type State<K: Eq + Hash + Clone + Send, V: Send>: StateBackend<K, V> + Send;
    /// Where logical changes and snapshots go.
    type Checkpointer: Checkpointer;
    /// How this node reaches others.
    type Network: Network;
    /// Where secondary indexes live.
    type Indexes: IndexBackend + Send;
}

/// The tiers, in superset order: each has every capability of the ones before it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ProfileKind {
    BareMetal,
    Embedded,
    Durable,
    Constellation,
}

impl ProfileKind {
    pub const ALL: [ProfileKind; 4] = [
        ProfileKind::BareMetal,
        ProfileKind::Embedded,
        ProfileKind::Durable,
        ProfileKind::Constellation,
    ];

    /// The cargo feature (and config) name.
    pub const fn name(self) -> &'static str {
        TIERS[self as usize].name
    }

    pub const fn capabilities(self) -> &'static TierCapabilities {
        &TIERS[self as usize]
    }

    /// Parses a profile name as written in config or on the builder.
    pub fn from_name(name: &str) -> Option<ProfileKind> {
        ProfileKind::ALL.into_iter().find(|k| k.name() == name)
    }

    /// The command that builds this tier.
    pub fn build_command(self) -> String {
        format!(
            "cargo build --release --no-default-features --features {}",
            self.name()
        )
    }
}

impl std::fmt::Display for ProfileKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// How much of the state comes back after a crash.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Recovery {
    /// State is lost when the process ends.
    None,
    /// Recovered from local files; lost with the local disk.
    Partial,
    /// Recovered from an object store even when the local disk is lost.
    Full,
}

/// Secondary index support.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum IndexSupport {
    None,
    Optional,
    Always,
}

/// One row of the capability matrix.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TierCapabilities {
    pub kind: ProfileKind,
    pub name: &'static str,
    pub state: &'static str,
    pub state_can_grow: bool,
    pub max_keys: usize,
    pub default_capacity: usize,
    pub persistent: bool,
    pub checkpoints: &'static str,
    pub recovery: Recovery,
    pub indexes: IndexSupport,
    pub networked: bool,
    pub multi_node: bool,
    pub async_runtime: bool,
}

/// Compile-time ceiling of the bare-metal tier's keys per table or view.
pub const BARE_METAL_MAX_KEYS: usize = 1 << 24;

/// The capability matrix. Rows describe what this release really does.
pub const TIERS: [TierCapabilities; 4] = [
    TierCapabilities {
        kind: ProfileKind::BareMetal,
        name: "bare-metal",
        state: "fixed-capacity open-addressing table, Fx hashing",
        state_can_grow: false,
        max_keys: BARE_METAL_MAX_KEYS,
        default_capacity: 1 << 16,
        persistent: false,
        checkpoints: "none",
        recovery: Recovery::None,
        indexes: IndexSupport::None,
        networked: false,
        multi_node: false,
        async_runtime: false,
    },
    TierCapabilities {
        kind: ProfileKind::Embedded,
        name: "embedded",
        state: "FxHashMap, grows",
        state_can_grow: true,
        max_keys: usize::MAX,
        default_capacity: 1 << 10,
        persistent: true,
        checkpoints: "local WAL + rkyv snapshots",
        recovery: Recovery::Partial,
        indexes: IndexSupport::Optional,
        networked: false,
        multi_node: false,
        async_runtime: false,
    },
    TierCapabilities {
        kind: ProfileKind::Durable,
        name: "durable",
        state: "FxHashMap, grows",
        state_can_grow: true,
        max_keys: usize::MAX,
        default_capacity: 1 << 10,
        persistent: true,
        checkpoints: "local WAL + rkyv snapshots in an object store",
        recovery: Recovery::Full,
        indexes: IndexSupport::Always,
        networked: true,
        multi_node: false,
        async_runtime: true,
    },
    TierCapabilities {
        kind: ProfileKind::Constellation,
        name: "constellation",
        state: "FxHashMap, keys sharded over nodes",
        state_can_grow: true,
        max_keys: usize::MAX,
        default_capacity: 1 << 10,
        persistent: true,
        checkpoints: "a shared log + per-shard rkyv checkpoints in an object store",
        recovery: Recovery::Full,
        indexes: IndexSupport::Always,
        networked: true,
        multi_node: true,
        async_runtime: true,
    },
];

/// The lowest tier that has a capability, for "use tier X" errors.
pub fn lowest_tier_with(has: impl Fn(&TierCapabilities) -> bool) -> Option<ProfileKind> {
    TIERS.iter().find(|t| has(t)).map(|t| t.kind)
}

/// The compiled profile's row.
pub fn active() -> &'static TierCapabilities {
    ActiveProfile::KIND.capabilities()
}

// The superset chain: every tier has every capability of the one below it, and rows are in
// kind order. Checked at compile time over the whole matrix, whichever profile is built.
const _: () = {
    let mut i = 0;
    while i < TIERS.len() {
        let t = &TIERS[i];
        assert!(
            t.kind as usize == i,
            "TIERS rows must be in ProfileKind order"
        );
        assert!(
            t.default_capacity.is_power_of_two(),
            "capacities are powers of two"
        );
        assert!(
            t.default_capacity <= t.max_keys,
            "default capacity within the maximum"
        );
        assert!(t.max_keys == usize::MAX || t.max_keys.is_power_of_two());
        assert!(t.state_can_grow == (t.max_keys == usize::MAX));
        assert!(!t.persistent == matches!(t.recovery, Recovery::None));
        assert!(!t.multi_node || t.networked);
        assert!(
            !t.networked || t.async_runtime,
            "the server runs on the async runtime"
        );
        if i > 0 {
            let lower = &TIERS[i - 1];
            assert!(t.max_keys >= lower.max_keys, "superset chain: capacity");
            assert!(
                t.state_can_grow || !lower.state_can_grow,
                "superset chain: growth"
            );
            assert!(
                t.persistent || !lower.persistent,
                "superset chain: persistence"
            );
            assert!(
                t.recovery as u8 >= lower.recovery as u8,
                "superset chain: recovery"
            );
            assert!(
                t.indexes as u8 >= lower.indexes as u8,
                "superset chain: indexes"
            );
            assert!(
                t.networked || !lower.networked,
                "superset chain: networking"
            );
            assert!(
                t.multi_node || !lower.multi_node,
                "superset chain: membership"
            );
        }
        i += 1;
    }
    assert!(
        BARE_METAL_MAX_KEYS <= u32::MAX as usize,
        "slots are addressed with u32"
    );
};

/// Implements the consts of a profile type from its row of [`TIERS`].
macro_rules! profile_consts_from_tier {
    ($kind:expr) => {
        const NAME: &'static str = $crate::profile::TIERS[$kind as usize].name;
        const KIND: $crate::profile::ProfileKind = $kind;
        const PERSISTENT: bool = $crate::profile::TIERS[$kind as usize].persistent;
        const RECOVERY: $crate::profile::Recovery = $crate::profile::TIERS[$kind as usize].recovery;
        const MULTI_NODE: bool = $crate::profile::TIERS[$kind as usize].multi_node;
        const STATE_CAN_GROW: bool = $crate::profile::TIERS[$kind as usize].state_can_grow;
        const MAX_KEYS: usize = $crate::profile::TIERS[$kind as usize].max_keys;
        const DEFAULT_CAPACITY: usize = $crate::profile::TIERS[$kind as usize].default_capacity;
        const INDEXES: $crate::profile::IndexSupport =
            $crate::profile::TIERS[$kind as usize].indexes;
        const NETWORKED: bool = $crate::profile::TIERS[$kind as usize].networked;
    };
}
pub(crate) use profile_consts_from_tier;

// The compiled profile is zero-sized and its state backend agrees with its consts.
static_assertions::assert_eq_size!(ActiveProfile, ());
const _: () = assert!(
    <<ActiveProfile as PhysicalProfile>::State<u64, u32> as StateBackend<u64, u32>>::GROWS
        == ActiveProfile::STATE_CAN_GROW
);

fn yes_no(b: bool) -> &'static str {
    if b {
        "yes"
    } else {
        "no"
    }
}

/// The capability matrix as a Markdown table, one column per tier. The README embeds
/// exactly this text (a test checks it) and `strata profile` prints it.
pub fn capability_matrix_markdown() -> String {
    type Cell = fn(&TierCapabilities) -> String;
    let rows: [(&str, Cell); 9] = [
        ("state backend", |t| t.state.into()),
        ("state grows", |t| yes_no(t.state_can_grow).into()),
        ("max keys per table/view", |t| {
            if t.max_keys == usize::MAX {
                "memory-bound".into()
            } else {
                t.max_keys.to_string()
            }
        }),
        ("persistence", |t| t.checkpoints.into()),
        ("crash recovery", |t| {
            format!("{:?}", t.recovery).to_lowercase()
        }),
        ("secondary indexes", |t| {
            format!("{:?}", t.indexes).to_lowercase()
        }),
        ("network server", |t| yes_no(t.networked).into()),
        ("multi-node", |t| yes_no(t.multi_node).into()),
        ("async runtime", |t| yes_no(t.async_runtime).into()),
    ];
    let mut out = String::from("| capability |");
    for t in &TIERS {
        out.push_str(&format!(" `{}` |", t.name));
    }
    out.push_str("\n|---|");
    out.push_str(&"---|".repeat(TIERS.len()));
    out.push('\n');
    for (label, cell) in rows {
        out.push_str(&format!("| {label} |"));
        for t in &TIERS {
            out.push_str(&format!(" {} |", cell(t)));
        }
        out.push('\n');
    }
    out
}
