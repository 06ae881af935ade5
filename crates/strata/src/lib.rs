//! Strata: an embeddable streaming state engine whose deployment tier is a compile-time type.
//!
//! One kernel — SQL sources, keyed tables, incrementally maintained materialized views —
//! runs in every tier; the tier is chosen by exactly one cargo feature and named by
//! [`ActiveProfile`]. See `README.md` for the tiers and the SQL dialect.
//!
//! ```
//! use strata::{Engine, Batch, Column};
//! let mut engine = Engine::builder().ephemeral().build()?;
//! engine.execute("CREATE SOURCE clicks (user_id BIGINT NOT NULL, ms BIGINT)")?;
//! engine.execute("CREATE MATERIALIZED VIEW per_user AS
//!                 SELECT user_id, COUNT(*) AS n, SUM(ms) AS total FROM clicks GROUP BY user_id")?;
//! engine.execute("INSERT INTO clicks VALUES (1, 10), (2, 5)")?;
//! let batch = Batch::new()
//!     .with_column("user_id", Column::bigint(vec![1, 1]))
//!     .with_column("ms", Column::bigint(vec![7, 3]));
//! engine.insert_batch("clicks", &batch)?;
//! let rows = engine.query("SELECT n, total FROM per_user WHERE user_id = 1")?;
//! assert_eq!(rows.rows[0][0].to_string(), "3");
//! assert_eq!(rows.rows[0][1].to_string(), "20");
//! # Ok::<(), strata::Error>(())
//! ```

// Backs up build.rs for tools that skip build scripts: exactly one profile feature.
#[cfg(not(any(
    feature = "bare-metal",
    feature = "embedded",
    feature = "durable",
    feature = "constellation"
)))]
compile_error!(
    "strata needs exactly one profile feature, but none is enabled. The profiles are: bare-metal, \
     embedded, durable, constellation; `embedded` is the default. Pick one, e.g.: \
     cargo build --no-default-features --features durable"
);
#[cfg(any(
    all(
        feature = "bare-metal",
        any(feature = "embedded", feature = "durable", feature = "constellation")
    ),
    all(
        feature = "embedded",
        any(feature = "durable", feature = "constellation")
    ),
    all(feature = "durable", feature = "constellation")
))]
compile_error!(
    "strata needs exactly one profile feature, but several are enabled. The profiles are: \
     bare-metal, embedded, durable, constellation; `embedded` is the default. Pick one, e.g.: \
     cargo build --no-default-features --features durable"
);

// The README's Rust examples run as doc tests (`cargo test --doc`).
#[cfg(doctest)]
#[doc = include_str!("../../../README.md")]
pub struct ReadmeDoctests;

/// Logs a notice for whoever runs Strata: something worth knowing that is not a problem
/// (`strata` prints it as `notice: …`). Library messages go through `tracing` only.
macro_rules! notice {
    ($($arg:tt)*) => { tracing::info!(target: "strata::notice", $($arg)*) };
}
pub(crate) use notice;

// The facade: what an embedding application (and the `strata` command line) uses. Every
// other item is private to the crate; the integration tests reach internals through
// `testing` (feature `testing`, never in a release build).
pub mod advise;
mod batch;
pub mod bench;
mod change;
pub mod checkpoint;
#[cfg(feature = "cluster")]
mod cluster;
pub mod config;
mod engine;
mod error;
pub mod format;
pub mod index;
pub mod ingest;
pub mod metrics;
pub mod network;
#[cfg(feature = "persistence")]
mod persist;
pub mod profile;
#[cfg(feature = "server")]
pub mod server;
pub mod sql;
pub mod state;
#[cfg(feature = "object-store")]
pub mod store;
#[cfg(feature = "testing")]
#[doc(hidden)]
pub mod testing;
mod types;

/// `<version> (profile <tier>)`: the version and the compiled tier, as `strata --version` prints it.
pub const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (profile ",
    env!("STRATA_BUILD_PROFILE"),
    ")"
);

pub use batch::{Batch, Column, ColumnData};
pub use change::{Change, OwnedChange};
pub use engine::{Engine, EngineBuilder, ResultSet, ViewChange, ViewSubscriber};
pub use error::{
    Cause, ConfigError, Error, ExecError, PersistError, Result, ServerError, SqlError,
};
pub use profile::{ActiveProfile, PhysicalProfile, ProfileKind};
pub use sql::Statement;
pub use types::{DataType, Key, Value};
