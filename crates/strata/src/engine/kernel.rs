//! The kernel: the catalog and the state of every source, table, view and index — everything
//! that [`Kernel::apply`](super::pipeline) changes. It knows nothing of logs, checkpoints or
//! networks: the engine runs every change through it as prepare → (the tier's effects) →
//! apply, and recovery applies logged changes through the same two steps.

use super::aggregate::AggState;
use super::schema::Schema;
use super::subscribe::ViewSubscriber;
use crate::error::{Error, ExecError, SqlError};
use crate::profile::{self, PhysicalProfile};
use crate::sql::ObjectKind;
use crate::state::{Full, StateBackend};
use crate::types::{DataType, Key, Value};
use std::collections::BTreeMap;

pub(crate) struct Source {
    pub schema: Schema,
}

pub(crate) struct Table<P: PhysicalProfile> {
    pub schema: Schema,
    /// The primary key's columns, in the key's order.
    pub primary_key: Vec<usize>,
    pub rows: P::State<Key, Box<[Value]>>,
}

impl<P: PhysicalProfile> Table<P> {
    /// The primary key of the row whose column `i` is `value(i)`: the value itself for a
    /// key of one column, a composite of the values for several.
    #[inline]
    pub fn key_of(&self, value: impl Fn(usize) -> Value) -> Key {
        match self.primary_key.as_slice() {
            [column] => Key::from_value(&value(*column)),
            columns => Key::Composite(
                columns
                    .iter()
                    .map(|&c| Key::from_value(&value(c)))
                    .collect(),
            ),
        }
    }

    /// A key as SQL shows it, for errors: `7`, or `(7, 'x')` for a key of several columns.
    pub fn key_text(&self, key: &Key) -> String {
        let ty = |i: usize| self.schema.columns[self.primary_key[i]].ty;
        let text = match key {
            Key::Composite(parts) => format!(
                "({})",
                parts
                    .iter()
                    .enumerate()
                    .map(|(i, k)| k.to_value(ty(i)).to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            key => key.to_value(ty(0)).to_string(),
        };
        crate::sql::expr::excerpt(&text)
    }

    /// The one primary key `filter` selects: when each of the key's columns is, in an
    /// `AND`ed term, equal to a literal of its type.
    pub fn key_in(&self, filter: &crate::sql::expr::Expr) -> Option<Key> {
        let value = |column: usize| {
            let ty = self.schema.columns[column].ty;
            filter.equality(|index, v| index == column && v.data_type() == Some(ty))
        };
        let values: Vec<&Value> = self
            .primary_key
            .iter()
            .map(|&c| value(c))
            .collect::<Option<_>>()?;
        Some(self.key_of(|c| {
            let at = self
                .primary_key
                .iter()
                .position(|&k| k == c)
                .expect("a key column");
            values[at].clone()
        }))
    }

    /// The key's column names, for messages: `id`, or `user_id, day`.
    pub fn key_names(&self) -> String {
        self.primary_key
            .iter()
            .map(|&c| self.schema.columns[c].name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// A secondary index: a table and the position of its indexed column.
pub(crate) struct IndexDef {
    pub table: String,
    pub column: usize,
}

pub(crate) struct View<P: PhysicalProfile> {
    pub source: String,
    pub columns: Vec<(String, DataType)>,
    pub state: AggState<P>,
    /// The defining query, as normalised SQL.
    pub definition: String,
    /// Called with the changes of every applied batch.
    pub subscribers: Vec<ViewSubscriber>,
}

/// Which keys a kernel holds. Single-node tiers hold every key; a cluster node holds the
/// keys of the shards it owns, one kernel per shard, and a catalog-only kernel to plan and
/// validate statements with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(not(feature = "cluster"), allow(dead_code))] // partitions exist in the cluster tier
pub(crate) enum Part {
    /// Every key.
    All,
    /// No data: changes to data are validated (every expression evaluated), never stored.
    Catalog,
    /// The keys of shard `shard` of `shards` (see [`Key::shard`]).
    Shard { shard: u32, shards: u32 },
}

impl Part {
    /// Whether a kernel of this part stores the row or group with key `key`.
    #[inline]
    pub fn holds(self, key: &Key) -> bool {
        match self {
            Part::All => true,
            Part::Catalog => false,
            Part::Shard { shard, shards } => key.shard(shards) == shard,
        }
    }
}

/// The catalog and state of one engine.
pub(crate) struct Kernel<P: PhysicalProfile> {
    /// The keys it holds.
    pub part: Part,
    /// Keys per table or view: allocated up front in fixed-capacity tiers, a hint otherwise.
    pub capacity: usize,
    /// `(name, DDL)` of every object in creation order (a view after its source), for
    /// snapshots.
    pub catalog: Vec<(String, String)>,
    pub sources: BTreeMap<String, Source>,
    pub tables: BTreeMap<String, Table<P>>,
    pub views: BTreeMap<String, View<P>>,
    pub indexes: BTreeMap<String, IndexDef>,
    /// `None` in tiers without indexes, in ephemeral engines, with `[indexes] enabled =
    /// false`, and after the index storage failed (queries then scan).
    pub index_backend: Option<P::Indexes>,
    /// Why the index storage failed, once it has (the indexes are rebuilt at the next start).
    pub index_failure: Option<String>,
}

impl<P: PhysicalProfile> Kernel<P> {
    pub fn new(capacity: usize) -> Self {
        Self::with_part(capacity, Part::All)
    }

    /// A kernel that holds the keys of `part` only.
    pub fn with_part(capacity: usize, part: Part) -> Self {
        Kernel {
            part,
            capacity,
            catalog: Vec::new(),
            sources: BTreeMap::new(),
            tables: BTreeMap::new(),
            views: BTreeMap::new(),
            indexes: BTreeMap::new(),
            index_backend: None,
            index_failure: None,
        }
    }

    pub fn schema_of(&self, name: &str) -> Option<&Schema> {
        self.sources
            .get(name)
            .map(|s| &s.schema)
            .or_else(|| self.tables.get(name).map(|t| &t.schema))
    }

    pub fn kind_of(&self, name: &str) -> Option<ObjectKind> {
        if self.sources.contains_key(name) {
            Some(ObjectKind::Source)
        } else if self.tables.contains_key(name) {
            Some(ObjectKind::Table)
        } else if self.views.contains_key(name) {
            Some(ObjectKind::View)
        } else {
            None
        }
    }

    pub fn check_new_name(&self, name: &str) -> Result<(), Error> {
        match self.kind_of(name) {
            Some(kind) => Err(SqlError::AlreadyExists {
                kind: kind.name(),
                name: name.to_string(),
            }
            .into()),
            None => Ok(()),
        }
    }

    /// "table `t`", "source `s`", … for messages.
    pub fn describe_object(&self, name: &str) -> String {
        match self.kind_of(name) {
            Some(kind) => format!("{} `{name}`", kind.name()),
            None => format!("`{name}`"),
        }
    }

    /// Column names and types of a source, table or view.
    pub fn columns_of(&self, name: &str) -> Option<Vec<(String, DataType)>> {
        self.schema_of(name)
            .map(|s| s.name_types())
            .or_else(|| self.views.get(name).map(|v| v.columns.clone()))
    }

    /// The schema an insert into `target` is checked against.
    pub fn insert_schema(&self, target: &str) -> Result<&Schema, Error> {
        match self.schema_of(target) {
            Some(s) => Ok(s),
            None if self.views.contains_key(target) => Err(SqlError::Unsupported(format!(
                "inserting into materialized view `{target}`: insert into its source `{}`",
                self.views[target].source
            ))
            .into()),
            None => Err(SqlError::UnknownObject {
                kind: "source or table",
                kind_plural: "SOURCES / SHOW TABLES",
                name: target.to_string(),
            }
            .into()),
        }
    }

    /// `(kind, name, keys)` of every table and view: the state each holds.
    pub fn state_sizes(&self) -> Vec<(&'static str, &str, usize)> {
        let tables = self
            .tables
            .iter()
            .map(|(n, t)| ("table", n.as_str(), t.rows.len()));
        let views = self
            .views
            .iter()
            .map(|(n, v)| ("view", n.as_str(), v.state.len()));
        tables.chain(views).collect()
    }
}

/// The error for an object that does not exist.
pub(crate) fn unknown(kind: ObjectKind, name: &str) -> Error {
    SqlError::UnknownObject {
        kind: kind.name(),
        kind_plural: kind.plural(),
        name: name.to_string(),
    }
    .into()
}

/// The error for a statement that the compiled tier `P` cannot run, naming the lowest tier
/// that can.
pub(crate) fn not_in_tier<P: PhysicalProfile>(
    what: &'static str,
    has: impl Fn(&profile::TierCapabilities) -> bool,
) -> Error {
    match profile::lowest_tier_with(&has) {
        Some(tier) => SqlError::NotInThisTier {
            what,
            profile: P::KIND,
            tier,
            command: tier.build_command(),
        }
        .into(),
        None => SqlError::NotAvailableYet {
            what,
            profile: P::KIND,
        }
        .into(),
    }
}

/// The error for a full table or view of a fixed-capacity tier.
pub(crate) fn state_full<P: PhysicalProfile>(object: String, full: Full) -> Error {
    ExecError::StateFull {
        object,
        capacity: full.capacity,
        max: P::MAX_KEYS,
        profile: P::KIND,
    }
    .into()
}
