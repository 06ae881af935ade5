//! The engine: catalog, tables, materialized views and queries, generic over the profile.

mod aggregate;
mod batch_rows;
mod plan;
mod schema;

pub use aggregate::{AggFunc, AggPlan, AggSpec};
pub use schema::{ResultSet, Schema};

use crate::batch::{Batch, Column};
use crate::checkpoint::{
    Change, CheckpointReport, Checkpointer, EngineState, ObjectState, PersistSettings,
};
use crate::error::{ConfigError, Error, ExecError, Result, SqlError};
use crate::index::IndexBackend;
use crate::profile::{self, ActiveProfile, IndexSupport, PhysicalProfile, ProfileKind};
use crate::sql::expr::{bind, eval_constant, BinOp, Expr, Scope};
use crate::sql::{self, InsertRows, ObjectKind, Statement};
use crate::state::{Full, StateBackend};
use crate::types::{DataType, Key, Value};
use aggregate::{AggState, ImportError};
use plan::{plan_select, PlannedSelect, SelectPlan};
use sqlparser::ast;
use std::collections::BTreeMap;
use std::ops::Bound;

/// Settings an engine is built with; `strata` fills them from the config file.
#[derive(Clone, Debug, Default)]
pub struct EngineBuilder<P: PhysicalProfile = ActiveProfile> {
    profile: Option<String>,
    capacity: Option<usize>,
    persist: Option<PersistSettings>,
    ephemeral: bool,
    _profile: std::marker::PhantomData<P>,
}

impl<P: PhysicalProfile> EngineBuilder<P> {
    /// Names the profile the caller expects; building fails with `FeatureNotCompiled` if
    /// it is not the compiled one, or `InvalidProfileName` if there is no such profile.
    pub fn profile(mut self, name: impl Into<String>) -> Self {
        self.profile = Some(name.into());
        self
    }

    /// Keys per table or view. Fixed-capacity tiers allocate this much for each table and
    /// view when it is created and never grow it; growing tiers take it as a hint.
    pub fn capacity(mut self, keys: usize) -> Self {
        self.capacity = Some(keys);
        self
    }

    /// Where and how persistent tiers keep data (ignored by tiers that keep nothing).
    pub fn persist(mut self, settings: PersistSettings) -> Self {
        self.persist = Some(settings);
        self
    }

    /// The data directory of persistent tiers, with default settings otherwise.
    pub fn data_dir(mut self, dir: impl Into<std::path::PathBuf>) -> Self {
        self.persist
            .get_or_insert_with(PersistSettings::default)
            .data_dir = dir.into();
        self
    }

    /// A throwaway engine that keeps nothing, in any tier (like SQLite's `:memory:`).
    /// Persistent tiers otherwise need [`data_dir`](Self::data_dir) or [`persist`](Self::persist).
    pub fn ephemeral(mut self) -> Self {
        self.ephemeral = true;
        self
    }

    /// Builds the engine. Persistent tiers open the data directory here and recover the
    /// last acknowledged state from it.
    pub fn build(self) -> Result<Engine<P>> {
        if let Some(name) = &self.profile {
            check_profile_name::<P>(name)?;
        }
        let capacity = self.capacity.unwrap_or(P::DEFAULT_CAPACITY);
        if capacity > P::MAX_KEYS {
            return Err(ConfigError::ProfileRequirementError {
                profile: P::KIND,
                requirement: format!(
                    "[state] capacity is {capacity} keys but this tier holds at most {} per table or view",
                    P::MAX_KEYS
                ),
            }
            .into());
        }
        let mut engine = Engine {
            capacity,
            catalog: Vec::new(),
            sources: BTreeMap::new(),
            tables: BTreeMap::new(),
            views: BTreeMap::new(),
            checkpointer: None,
            indexes: BTreeMap::new(),
            index_backend: None,
            recovering_from: None,
            index_settings: None,
            index_rebuild_reason: None,
            network: P::Network::default(),
            rows_ingested: 0,
            subscribers: BTreeMap::new(),
        };
        if P::PERSISTENT && !self.ephemeral {
            let Some(settings) = &self.persist else {
                return Err(ConfigError::ProfileRequirementError {
                    profile: P::KIND,
                    requirement:
                        "this tier keeps its data in a directory: set one with .data_dir(path), \
                                  or build a throwaway engine with .ephemeral()"
                            .into(),
                }
                .into());
            };
            let checkpointer = engine.recover::<P::Checkpointer>(settings)?;
            engine.checkpointer = Some(checkpointer);
        }
        Ok(engine)
    }

    /// Builds an engine holding what another checkpointer's storage holds (e.g. an embedded
    /// data directory read by a durable build, to migrate it), and returns that
    /// checkpointer beside it. The engine logs nothing: it has no checkpointer of its own.
    pub fn recover_with<C: Checkpointer>(
        self,
        settings: &PersistSettings,
    ) -> Result<(Engine<P>, C)> {
        let mut engine = self.ephemeral().build()?;
        let checkpointer = engine.recover::<C>(settings)?;
        Ok((engine, checkpointer))
    }
}

/// Checks a profile name from config or the builder against the compiled profile.
pub fn check_profile_name<P: PhysicalProfile>(name: &str) -> Result<(), ConfigError> {
    match ProfileKind::from_name(name) {
        None => Err(ConfigError::InvalidProfileName {
            name: name.to_string(),
        }),
        Some(kind) if kind != P::KIND => Err(ConfigError::FeatureNotCompiled {
            requested: kind,
            compiled: P::KIND,
            command: kind.build_command(),
        }),
        Some(_) => Ok(()),
    }
}

struct Source {
    schema: Schema,
}

struct Table<P: PhysicalProfile> {
    schema: Schema,
    primary_key: usize,
    rows: P::State<Key, Box<[Value]>>,
}

/// A secondary index: a table and the position of its indexed column.
struct IndexDef {
    table: String,
    column: usize,
}

struct View<P: PhysicalProfile> {
    source: String,
    columns: Vec<(String, DataType)>,
    state: AggState<P>,
    definition: String,
}

/// A change to one group of a materialized view, as its subscribers see it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum ViewChange<'a> {
    /// The group now shows `row` (in the view's columns); `key` is its GROUP BY values.
    Upsert { key: &'a [Value], row: &'a [Value] },
    /// The group is no longer shown (its HAVING became false).
    Delete { key: &'a [Value] },
}

/// Called with every change of a subscribed view, after the batch that made it is
/// acknowledged; returning `false` unsubscribes.
pub type ViewSubscriber = Box<dyn FnMut(&ViewChange<'_>) -> bool + Send>;

/// A Strata engine of profile `P` (the compiled one unless named).
pub struct Engine<P: PhysicalProfile = ActiveProfile> {
    capacity: usize,
    /// `(name, DDL)` of every object in creation order, for snapshots.
    catalog: Vec<(String, String)>,
    sources: BTreeMap<String, Source>,
    tables: BTreeMap<String, Table<P>>,
    views: BTreeMap<String, View<P>>,
    /// `None` while recovering (and always in tiers that keep nothing).
    checkpointer: Option<P::Checkpointer>,
    /// Secondary indexes by name.
    indexes: BTreeMap<String, IndexDef>,
    /// `None` in tiers without indexes, in ephemeral engines and with `[indexes] enabled = false`.
    index_backend: Option<P::Indexes>,
    /// While recovering: the LSN of the snapshot recovery started from.
    recovering_from: Option<u64>,
    /// Where to open the index storage when recovery begins.
    index_settings: Option<PersistSettings>,
    /// Why the index storage had to be recreated (a missing or damaged file), for the notice
    /// printed when an index is rebuilt because of it.
    index_rebuild_reason: Option<String>,
    network: P::Network,
    /// Rows inserted into sources and tables since the engine was built (replays excluded).
    rows_ingested: u64,
    /// Subscribers of each view's changes.
    subscribers: BTreeMap<String, Vec<ViewSubscriber>>,
}

impl Engine<ActiveProfile> {
    /// A builder for an engine of the compiled profile.
    pub fn builder() -> EngineBuilder<ActiveProfile> {
        EngineBuilder::default()
    }
}

impl<P: PhysicalProfile> Engine<P> {
    /// Keys per table or view.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Live members of the cluster this engine belongs to.
    pub fn members(&self) -> usize {
        crate::network::Network::members(&self.network)
    }

    /// Runs every statement in `sql`, in order, returning the results of those that produce
    /// rows. Stops at the first error; statements before it stay applied.
    pub fn execute(&mut self, sql: &str) -> Result<Vec<ResultSet>> {
        let mut results = Vec::new();
        for stmt in sql::statements(sql)? {
            if let Some(rs) = self.execute_statement(&stmt?)? {
                results.push(rs);
            }
        }
        Ok(results)
    }

    /// Runs one statement that returns rows (SELECT, SHOW, DESCRIBE).
    pub fn query(&mut self, sql: &str) -> Result<ResultSet> {
        let stmt = sql::parse_one(sql)?;
        // Refused before it runs: an INSERT must not be applied and then reported as an error.
        if !matches!(
            stmt,
            Statement::Query(_) | Statement::Show(_) | Statement::Describe(_)
        ) {
            return Err(SqlError::Unsupported(
                "query() needs a statement that returns rows; use execute()".into(),
            )
            .into());
        }
        self.execute_statement(&stmt)?.ok_or_else(|| {
            SqlError::Unsupported(
                "query() needs a statement that returns rows; use execute()".into(),
            )
            .into()
        })
    }

    /// Runs one parsed statement; `Some` for statements that return rows.
    pub fn execute_statement(&mut self, stmt: &Statement) -> Result<Option<ResultSet>> {
        match stmt {
            Statement::CreateSource { name, columns } => {
                self.check_new_name(name)?;
                self.log_ddl(name, stmt)?;
                self.sources.insert(
                    name.clone(),
                    Source {
                        schema: Schema::new(columns.clone()),
                    },
                );
            }
            Statement::CreateTable {
                name,
                columns,
                primary_key,
            } => {
                self.check_new_name(name)?;
                let key = &columns[*primary_key];
                if key.ty == DataType::Double {
                    return Err(SqlError::Type(format!(
                        "primary key `{}` of `{name}` cannot be DOUBLE",
                        key.name
                    ))
                    .into());
                }
                let mut columns = columns.clone();
                columns[*primary_key].not_null = true;
                self.log_ddl(name, stmt)?;
                self.tables.insert(
                    name.clone(),
                    Table {
                        schema: Schema::new(columns),
                        primary_key: *primary_key,
                        rows: StateBackend::with_capacity(self.capacity),
                    },
                );
            }
            Statement::CreateView { name, query } => self.create_view(name, query, stmt)?,
            Statement::CreateIndex {
                name,
                table,
                column,
            } => self.create_index(name, table, column, stmt)?,
            Statement::Checkpoint => {
                if !P::PERSISTENT {
                    return Err(self.not_in_tier("CHECKPOINT", |t| t.persistent));
                }
                self.checkpoint()?;
            }
            Statement::Insert {
                target,
                columns,
                rows,
                replace,
            } => {
                let batch = self.values_to_columns(target, columns.as_deref(), rows)?;
                self.insert_columns(target, &batch, *replace)?;
            }
            Statement::Delete { table, selection } => {
                self.delete(table, selection.as_deref())?;
            }
            Statement::Query(q) => return self.select(q).map(Some),
            Statement::Show(kind) => return Ok(Some(self.show(*kind))),
            Statement::Describe(name) => return self.describe(name).map(Some),
            Statement::Drop {
                kind,
                name,
                if_exists,
            } => self.drop(*kind, name, *if_exists)?,
        }
        self.maybe_checkpoint();
        Ok(None)
    }

    /// Appends a batch to a source (updating every view on it) or inserts it into a table
    /// (failing on an existing key). Returns the number of rows. All or nothing.
    pub fn insert_batch(&mut self, target: &str, batch: &Batch) -> Result<usize> {
        let columns = self.batch_columns(target, batch)?;
        let rows = self.insert_columns(target, &columns, false)?;
        self.maybe_checkpoint();
        Ok(rows)
    }

    /// Like [`Engine::insert_batch`], but rows with an existing key replace it (tables only).
    pub fn upsert_batch(&mut self, target: &str, batch: &Batch) -> Result<usize> {
        let columns = self.batch_columns(target, batch)?;
        let rows = self.insert_columns(target, &columns, true)?;
        self.maybe_checkpoint();
        Ok(rows)
    }

    /// Column names and types of a source, table or view.
    pub fn columns_of(&self, name: &str) -> Option<Vec<(String, DataType)>> {
        self.schema_of(name)
            .map(|s| s.name_types())
            .or_else(|| self.views.get(name).map(|v| v.columns.clone()))
    }

    fn schema_of(&self, name: &str) -> Option<&Schema> {
        self.sources
            .get(name)
            .map(|s| &s.schema)
            .or_else(|| self.tables.get(name).map(|t| &t.schema))
    }

    fn kind_of(&self, name: &str) -> Option<ObjectKind> {
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

    fn check_new_name(&self, name: &str) -> Result<()> {
        match self.kind_of(name) {
            Some(kind) => Err(SqlError::AlreadyExists {
                kind: kind.name(),
                name: name.to_string(),
            }
            .into()),
            None => Ok(()),
        }
    }

    /// Records a DDL statement with the checkpointer of persistent tiers and notes it in the
    /// catalog; called once the statement is known to succeed.
    fn log_ddl(&mut self, name: &str, stmt: &Statement) -> Result<()> {
        let text = stmt.to_string();
        log::<P>(&mut self.checkpointer, &Change::Ddl(&text))?;
        self.catalog.push((name.to_string(), text));
        Ok(())
    }

    fn not_in_tier(
        &self,
        what: &'static str,
        has: impl Fn(&profile::TierCapabilities) -> bool,
    ) -> Error {
        match profile::lowest_tier_with(&has) {
            Some(tier) if tier.capabilities().available => SqlError::NotInThisTier {
                what,
                profile: P::KIND,
                tier,
                command: tier.build_command(),
            }
            .into(),
            Some(tier) => SqlError::NotInThisTier {
                what,
                profile: P::KIND,
                tier,
                command: "that tier is not available in this release yet".into(),
            }
            .into(),
            None => SqlError::NotAvailableYet {
                what,
                profile: P::KIND,
            }
            .into(),
        }
    }

    fn unknown(kind: ObjectKind, name: &str) -> Error {
        SqlError::UnknownObject {
            kind: kind.name(),
            kind_plural: kind.plural(),
            name: name.to_string(),
        }
        .into()
    }

    fn describe_object(&self, name: &str) -> String {
        match self.kind_of(name) {
            Some(kind) => format!("{} `{name}`", kind.name()),
            None => format!("`{name}`"),
        }
    }

    fn state_full(object: String, full: Full) -> Error {
        ExecError::StateFull {
            object,
            capacity: full.capacity,
            max: P::MAX_KEYS,
            profile: P::KIND,
        }
        .into()
    }

    fn create_view(&mut self, name: &str, query: &ast::Query, stmt: &Statement) -> Result<()> {
        self.check_new_name(name)?;
        let select = plan::simple_select(query)?;
        let from = plan::from_name(select)?;
        let source = match self.kind_of(&from) {
            Some(ObjectKind::Source) => &self.sources[&from],
            Some(kind) => {
                return Err(SqlError::Unsupported(format!(
                    "a materialized view over {} `{from}`: views read sources (CREATE SOURCE)",
                    kind.name()
                ))
                .into())
            }
            None => return Err(Self::unknown(ObjectKind::Source, &from)),
        };
        if query.order_by.is_some() || query.limit_clause.is_some() {
            return Err(SqlError::Unsupported(
                "ORDER BY or LIMIT in a materialized view: apply them when you query it".into(),
            )
            .into());
        }
        let input_columns = source.schema.name_types();
        let object = format!("source `{from}`");
        let scope = Scope {
            object: &object,
            columns: &input_columns,
        };
        let planned = plan_select(query, &scope)?;
        let SelectPlan::Aggregate(agg) = planned.plan else {
            return Err(SqlError::Unsupported(format!(
                "materialized view `{name}` without GROUP BY or aggregates: a view keeps grouped state, \
                 e.g. SELECT k, COUNT(*) FROM {from} GROUP BY k"
            ))
            .into());
        };
        for (i, (col, _)) in planned.columns.iter().enumerate() {
            if planned.columns[..i].iter().any(|(c, _)| c == col) {
                return Err(SqlError::Type(format!(
                    "materialized view `{name}` has two columns named `{col}`; name them with AS"
                ))
                .into());
            }
        }
        self.log_ddl(name, stmt)?;
        let view = View {
            source: from,
            columns: planned.columns,
            state: AggState::new(agg, self.capacity),
            definition: query.to_string(),
        };
        self.views.insert(name.to_string(), view);
        Ok(())
    }

    /// Validates a user batch against the target's schema and returns its columns in schema order.
    fn batch_columns<'b>(
        &self,
        target: &str,
        batch: &'b Batch,
    ) -> Result<std::borrow::Cow<'b, [Column]>> {
        let schema = self.insert_schema(target)?;
        schema.columns_from_batch(&self.describe_object(target), batch)
    }

    fn insert_schema(&self, target: &str) -> Result<&Schema> {
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

    /// Evaluates `INSERT … VALUES` rows into typed columns in schema order.
    fn values_to_columns(
        &self,
        target: &str,
        names: Option<&[String]>,
        rows: &InsertRows,
    ) -> Result<Vec<Column>> {
        let schema = self.insert_schema(target)?;
        let object = self.describe_object(target);
        let positions: Vec<usize> = match names {
            None => (0..schema.columns.len()).collect(),
            Some(names) => {
                let mut pos = Vec::with_capacity(names.len());
                for n in names {
                    let i = schema
                        .find(n)
                        .ok_or_else(|| schema.unknown_column(&object, n))?;
                    if pos.contains(&i) {
                        return Err(SqlError::Type(format!("column `{n}` is listed twice")).into());
                    }
                    pos.push(i);
                }
                pos
            }
        };
        let mut values: Vec<Vec<Value>> = schema
            .columns
            .iter()
            .map(|_| Vec::with_capacity(rows.len()))
            .collect();
        // Schema column → position in each VALUES row.
        let sources: Vec<Option<usize>> = (0..schema.columns.len())
            .map(|i| positions.iter().position(|&p| p == i))
            .collect();
        let arity = |r: usize, len: usize| -> Result<()> {
            if len == positions.len() {
                return Ok(());
            }
            Err(SqlError::Type(format!(
                "row {} has {len} values but {} columns are being inserted into {object}",
                r + 1,
                positions.len()
            ))
            .into())
        };
        let mut push_row = |get: &mut dyn FnMut(usize) -> Result<Value>| -> Result<()> {
            for (i, col) in values.iter_mut().enumerate() {
                col.push(match sources[i] {
                    Some(k) => schema.coerce(&object, i, get(k)?)?,
                    None => Value::Null,
                });
            }
            Ok(())
        };
        match rows {
            InsertRows::Literals(rows) => {
                for (r, row) in rows.iter().enumerate() {
                    arity(r, row.len())?;
                    push_row(&mut |k| Ok(row[k].clone()))?;
                }
            }
            InsertRows::Exprs(rows) => {
                for (r, row) in rows.iter().enumerate() {
                    arity(r, row.len())?;
                    push_row(&mut |k| eval_constant(&row[k]))?;
                }
            }
        }
        let columns: Vec<Column> = schema
            .columns
            .iter()
            .zip(&values)
            .map(|(c, v)| Column::from_values(c.ty, v))
            .collect();
        schema.check_columns(&object, &columns)?;
        Ok(columns)
    }

    /// Applies validated columns (schema order) to a source or table. All or nothing.
    fn insert_columns(&mut self, target: &str, columns: &[Column], replace: bool) -> Result<usize> {
        let rows = columns.first().map_or(0, Column::len);
        if self.sources.contains_key(target) {
            if replace {
                return Err(SqlError::Unsupported(format!(
                    "INSERT OR REPLACE into source `{target}`: a source is append-only"
                ))
                .into());
            }
            self.append_to_source(target, columns, rows)?;
        } else {
            self.write_table(target, columns, rows, replace)?;
        }
        if self.recovering_from.is_none() {
            self.rows_ingested += rows as u64;
        }
        Ok(rows)
    }

    fn append_to_source(&mut self, source: &str, columns: &[Column], rows: usize) -> Result<()> {
        if rows == 0 {
            return Ok(());
        }
        let mut views: Vec<(&String, &mut View<P>)> = self
            .views
            .iter_mut()
            .filter(|(_, v)| v.source == source)
            .collect();
        // Phase 1: evaluate everything; nothing is touched.
        let mut prepared = Vec::with_capacity(views.len());
        for (name, v) in &views {
            let p = v.state.prepare(columns, rows).map_err(|e| match e {
                ExecError::Eval(m) => ExecError::Eval(format!("materialized view `{name}`: {m}")),
                other => other,
            })?;
            prepared.push(p);
        }
        // Phase 2: create groups; a full view undoes every view's new groups.
        let before: Vec<usize> = views.iter().map(|(_, v)| v.state.len()).collect();
        for i in 0..views.len() {
            if let Err(full) = views[i].1.state.assign_slots(&mut prepared[i]) {
                for (j, (_, v)) in views.iter_mut().enumerate().take(i) {
                    v.state.rollback(before[j]);
                }
                let object = format!("materialized view `{}`", views[i].0);
                return Err(Self::state_full(object, full));
            }
        }
        if let Err(e) = log::<P>(
            &mut self.checkpointer,
            &Change::Insert {
                target: source,
                columns,
                replace: false,
            },
        ) {
            for (j, (_, v)) in views.iter_mut().enumerate() {
                v.state.rollback(before[j]);
            }
            return Err(e);
        }
        // Phase 3: accumulate; cannot fail.
        for (i, ((name, v), p)) in views.iter_mut().zip(prepared).enumerate() {
            let Some(subscribers) = self.subscribers.get_mut(name.as_str()) else {
                v.state.accumulate(&p);
                v.state.recycle(p);
                continue;
            };
            let touched = AggState::<P>::touched(&p);
            // Whether each touched group was shown before, to tell a deletion (HAVING).
            let shown_before: Vec<bool> = touched
                .iter()
                .map(|&slot| {
                    (slot as usize) < before[i]
                        && matches!(v.state.output_row(slot as usize), Ok(Some(_)))
                })
                .collect();
            v.state.accumulate(&p);
            v.state.recycle(p);
            notify(&v.state, subscribers, &touched, &shown_before);
        }
        Ok(())
    }

    fn write_table(
        &mut self,
        name: &str,
        columns: &[Column],
        rows: usize,
        replace: bool,
    ) -> Result<()> {
        let table = self
            .tables
            .get(name)
            .ok_or_else(|| Self::unknown(ObjectKind::Table, name))?;
        let pk = table.primary_key;
        let key_ty = table.schema.columns[pk].ty;
        let mut keys: Vec<Key> = Vec::with_capacity(rows);
        let mut seen = rustc_hash::FxHashSet::default();
        let mut new_keys = 0usize;
        for r in 0..rows {
            let key = Key::from_value(&columns[pk].value(r));
            let exists = table.rows.get(&key).is_some();
            let first_in_batch = seen.insert(key.clone());
            if !replace && (exists || !first_in_batch) {
                return Err(ExecError::DuplicateKey {
                    table: name.to_string(),
                    key: crate::sql::expr::excerpt(&key.to_value(key_ty).to_string()),
                }
                .into());
            }
            new_keys += (!exists && first_in_batch) as usize;
            keys.push(key);
        }
        if let Some(cap) = table.rows.capacity() {
            if table.rows.len() + new_keys > cap {
                return Err(Self::state_full(
                    format!("table `{name}`"),
                    Full { capacity: cap },
                ));
            }
        }
        log::<P>(
            &mut self.checkpointer,
            &Change::Insert {
                target: name,
                columns,
                replace,
            },
        )?;
        let table = self.tables.get_mut(name).expect("checked above");
        let mut replaced = Vec::new();
        for (r, key) in keys.iter().enumerate() {
            let row: Box<[Value]> = columns.iter().map(|c| c.value(r)).collect();
            if let Some(old) = table
                .rows
                .insert(key.clone(), row)
                .expect("capacity checked before writing")
            {
                replaced.push((key.clone(), old));
            }
        }
        self.update_indexes(name, &replaced, &keys)
    }

    fn delete(&mut self, name: &str, selection: Option<&ast::Expr>) -> Result<usize> {
        let Some(table) = self.tables.get(name) else {
            return Err(match self.kind_of(name) {
                Some(kind) => SqlError::Unsupported(format!(
                    "DELETE from {} `{name}`: only tables have deletable rows",
                    kind.name()
                ))
                .into(),
                None => Self::unknown(ObjectKind::Table, name),
            });
        };
        let columns = table.schema.name_types();
        let object = format!("table `{name}`");
        let filter = selection
            .map(|s| {
                bind(
                    s,
                    &Scope {
                        object: &object,
                        columns: &columns,
                    },
                )
            })
            .transpose()?;
        if let Some(ty) = filter
            .as_ref()
            .and_then(|f| f.ty())
            .filter(|t| *t != DataType::Boolean)
        {
            return Err(
                SqlError::Type(format!("WHERE needs a BOOLEAN condition, got {ty}")).into(),
            );
        }
        let mut doomed = Vec::new();
        for (key, row) in table.rows.iter() {
            if filter.as_ref().map_or(Ok(true), |f| f.is_true(&row[..]))? {
                doomed.push(key.clone());
            }
        }
        log::<P>(
            &mut self.checkpointer,
            &Change::Delete {
                table: name,
                keys: &doomed,
            },
        )?;
        self.remove_keys(name, &doomed)?;
        Ok(doomed.len())
    }

    fn drop(&mut self, kind: ObjectKind, name: &str, if_exists: bool) -> Result<()> {
        let exists = match kind {
            ObjectKind::Source => self.sources.contains_key(name),
            ObjectKind::Table => self.tables.contains_key(name),
            ObjectKind::View => self.views.contains_key(name),
            ObjectKind::Index if P::INDEXES == IndexSupport::None => {
                return Err(self.not_in_tier("DROP INDEX", |t| t.indexes != IndexSupport::None))
            }
            ObjectKind::Index => self.indexes.contains_key(name),
        };
        if !exists {
            return match self.kind_of(name) {
                _ if if_exists => Ok(()),
                Some(actual) => Err(SqlError::WrongKind {
                    name: name.to_string(),
                    actual: actual.name(),
                    expected: kind.name(),
                    hint: format!(
                        "use {}",
                        Statement::Drop {
                            kind: actual,
                            name: name.to_string(),
                            if_exists: false
                        }
                    ),
                }
                .into()),
                None => Err(Self::unknown(kind, name)),
            };
        }
        if kind == ObjectKind::Source {
            let readers: Vec<&str> = self
                .views
                .iter()
                .filter(|(_, v)| v.source == name)
                .map(|(n, _)| n.as_str())
                .collect();
            if !readers.is_empty() {
                return Err(SqlError::InUse {
                    kind: "source",
                    name: name.to_string(),
                    reason: format!(
                        "materialized view(s) {} read it; drop them first",
                        readers.join(", ")
                    ),
                }
                .into());
            }
        }
        let stmt = Statement::Drop {
            kind,
            name: name.to_string(),
            if_exists,
        };
        log::<P>(&mut self.checkpointer, &Change::Ddl(&stmt.to_string()))?;
        self.catalog.retain(|(n, _)| n != name);
        match kind {
            ObjectKind::Source => drop(self.sources.remove(name)),
            ObjectKind::Table => drop(self.tables.remove(name)),
            ObjectKind::View => {
                self.views.remove(name);
                self.subscribers.remove(name);
            }
            ObjectKind::Index => {
                self.indexes.remove(name);
                if let Some(b) = self.index_backend.as_mut() {
                    b.drop_index(name)?;
                }
            }
        }
        if kind == ObjectKind::Table {
            // A table's indexes go with it.
            let doomed: Vec<String> = self
                .indexes
                .iter()
                .filter(|(_, d)| d.table == name)
                .map(|(n, _)| n.clone())
                .collect();
            for index in doomed {
                self.indexes.remove(&index);
                self.catalog.retain(|(n, _)| *n != index);
                if let Some(b) = self.index_backend.as_mut() {
                    b.drop_index(&index)?;
                }
            }
        }
        Ok(())
    }

    fn show(&self, kind: ObjectKind) -> ResultSet {
        let names: Vec<&String> = match kind {
            ObjectKind::Source => self.sources.keys().collect(),
            ObjectKind::Table => self.tables.keys().collect(),
            ObjectKind::View => self.views.keys().collect(),
            ObjectKind::Index => self.indexes.keys().collect(),
        };
        ResultSet {
            columns: vec![("name".into(), DataType::Text)],
            rows: names
                .into_iter()
                .map(|n| vec![Value::Text(n.as_str().into())])
                .collect(),
        }
    }

    fn describe(&self, name: &str) -> Result<ResultSet> {
        let text = |s: &str| Value::Text(s.into());
        let columns = vec![
            ("column".to_string(), DataType::Text),
            ("type".to_string(), DataType::Text),
            ("nullable".to_string(), DataType::Boolean),
            ("key".to_string(), DataType::Boolean),
        ];
        let rows = if let Some(schema) = self.schema_of(name) {
            let pk = self.tables.get(name).map(|t| t.primary_key);
            schema
                .columns
                .iter()
                .enumerate()
                .map(|(i, c)| {
                    let ty = match c.max_len {
                        Some(n) => format!("VARCHAR({n})"),
                        None => c.ty.sql_name().to_string(),
                    };
                    vec![
                        text(&c.name),
                        text(&ty),
                        Value::Bool(!c.not_null),
                        Value::Bool(pk == Some(i)),
                    ]
                })
                .collect()
        } else if let Some(view) = self.views.get(name) {
            let groups = view.state.plan().groups.len();
            view.columns
                .iter()
                .enumerate()
                .map(|(i, (n, t))| {
                    let is_group = matches!(view.state.plan().output[i], crate::sql::expr::Expr::Column { index, .. } if index < groups);
                    vec![text(n), text(t.sql_name()), Value::Bool(true), Value::Bool(is_group)]
                })
                .collect()
        } else {
            return Err(SqlError::UnknownObject {
                kind: "object",
                kind_plural: "SOURCES, SHOW TABLES or SHOW VIEWS",
                name: name.to_string(),
            }
            .into());
        };
        Ok(ResultSet { columns, rows })
    }

    /// The definition of a materialized view, as normalised SQL.
    pub fn view_definition(&self, name: &str) -> Option<&str> {
        self.views.get(name).map(|v| v.definition.as_str())
    }

    fn select(&self, query: &ast::Query) -> Result<ResultSet> {
        let select = plan::simple_select(query)?;
        let from = plan::from_name(select)?;
        match self.kind_of(&from) {
            Some(ObjectKind::Table) => {
                let t = &self.tables[&from];
                let columns = t.schema.name_types();
                let object = self.describe_object(&from);
                let planned = plan_select(query, &Scope { object: &object, columns: &columns })?;
                let filter = match &planned.plan {
                    SelectPlan::Project { filter, .. } => filter.as_ref(),
                    SelectPlan::Aggregate(agg) => agg.filter.as_ref(),
                };
                // An index narrows the rows read; the whole WHERE is still applied to them.
                let rows = match self.index_candidates(&from, filter)? {
                    Some(keys) => keys.iter().filter_map(|k| t.rows.get(k)).map(|r| r.to_vec()).collect(),
                    None => t.rows.iter().map(|(_, r)| r.to_vec()).collect(),
                };
                self.run_select(planned, &columns, rows)
            }
            Some(ObjectKind::View) => {
                let v = &self.views[&from];
                let object = self.describe_object(&from);
                let scope = Scope {
                    object: &object,
                    columns: &v.columns,
                };
                let planned = plan_select(query, &scope)?;
                let filter = match &planned.plan {
                    SelectPlan::Project { filter, .. } => filter.as_ref(),
                    SelectPlan::Aggregate(agg) => agg.filter.as_ref(),
                };
                // A lookup by the group key reads one group instead of all of them.
                let rows = match v.state.lookup_rows(filter)? {
                    Some(rows) => rows,
                    None => v.state.rows()?,
                };
                self.run_select(planned, &v.columns, rows)
            }
            Some(ObjectKind::Source) => Err(SqlError::Unsupported(format!(
                    "querying source `{from}` directly: a source keeps no rows; create a materialized view over it"
            ))
            .into()),
            _ => Err(SqlError::UnknownObject {
                    kind: "table or view",
                    kind_plural: "TABLES or SHOW VIEWS",
                name: from,
            }
            .into()),
        }
    }

    /// Primary keys of the rows an index says can satisfy `filter`, when an index covers one
    /// of its top-level `AND`ed comparisons of a column with a literal of the column's type.
    fn index_candidates(&self, table: &str, filter: Option<&Expr>) -> Result<Option<Vec<Key>>> {
        let (Some(backend), Some(filter)) = (self.index_backend.as_ref(), filter) else {
            return Ok(None);
        };
        let mut conjuncts = vec![filter];
        let mut comparisons = Vec::new();
        while let Some(e) = conjuncts.pop() {
            match e {
                Expr::Binary {
                    op: BinOp::And,
                    left,
                    right,
                    ..
                } => conjuncts.extend([&**left, &**right]),
                Expr::Binary {
                    op, left, right, ..
                } => match (&**left, &**right) {
                    (Expr::Column { index, ty }, Expr::Literal(v))
                        if v.data_type() == Some(*ty) =>
                    {
                        comparisons.push((*index, *op, v))
                    }
                    (Expr::Literal(v), Expr::Column { index, ty })
                        if v.data_type() == Some(*ty) =>
                    {
                        let flipped = match op {
                            BinOp::Lt => BinOp::Gt,
                            BinOp::LtEq => BinOp::GtEq,
                            BinOp::Gt => BinOp::Lt,
                            BinOp::GtEq => BinOp::LtEq,
                            other => *other,
                        };
                        comparisons.push((*index, flipped, v))
                    }
                    _ => {}
                },
                _ => {}
            }
        }
        for (index, def) in self.indexes.iter().filter(|(_, d)| d.table == table) {
            let on_column: Vec<_> = comparisons
                .iter()
                .filter(|(c, _, _)| *c == def.column)
                .collect();
            if let Some((_, _, v)) = on_column.iter().find(|(_, op, _)| *op == BinOp::Eq) {
                return Ok(Some(backend.lookup(
                    index,
                    Bound::Included(v),
                    Bound::Included(v),
                )?));
            }
            let (mut lower, mut upper) = (Bound::Unbounded, Bound::Unbounded);
            for (_, op, v) in &on_column {
                match op {
                    BinOp::Gt => lower = Bound::Excluded(*v),
                    BinOp::GtEq => lower = Bound::Included(*v),
                    BinOp::Lt => upper = Bound::Excluded(*v),
                    BinOp::LtEq => upper = Bound::Included(*v),
                    _ => {}
                }
            }
            if !matches!((&lower, &upper), (Bound::Unbounded, Bound::Unbounded)) {
                return Ok(Some(backend.lookup(index, lower, upper)?));
            }
        }
        Ok(None)
    }

    fn run_select(
        &self,
        planned: PlannedSelect,
        input_columns: &[(String, DataType)],
        rows: Vec<Vec<Value>>,
    ) -> Result<ResultSet> {
        let mut out: Vec<Vec<Value>> = match planned.plan {
            SelectPlan::Project { filter, output } => {
                let mut out = Vec::new();
                for row in &rows {
                    if let Some(f) = &filter {
                        if !f.is_true(&row[..])? {
                            continue;
                        }
                    }
                    out.push(
                        output
                            .iter()
                            .map(|e| e.eval(&row[..]))
                            .collect::<Result<Vec<_>, _>>()?,
                    );
                }
                out
            }
            SelectPlan::Aggregate(agg) => {
                let columns: Vec<Column> = input_columns
                    .iter()
                    .enumerate()
                    .map(|(i, (_, ty))| {
                        let values: Vec<Value> = rows.iter().map(|r| r[i].clone()).collect();
                        Column::from_values(*ty, &values)
                    })
                    .collect();
                // Query scratch state is sized to its input, so it can never be full.
                let mut state = AggState::<P>::new(agg, rows.len().max(1));
                state.apply(&columns, rows.len())?;
                state.rows()?
            }
        };
        if !planned.order.is_empty() {
            out.sort_by(|a, b| {
                for &(i, desc, nulls_first) in &planned.order {
                    let (x, y) = (&a[i], &b[i]);
                    let ord = match (x.is_null(), y.is_null()) {
                        (true, true) => std::cmp::Ordering::Equal,
                        (true, false) => {
                            if nulls_first {
                                std::cmp::Ordering::Less
                            } else {
                                std::cmp::Ordering::Greater
                            }
                        }
                        (false, true) => {
                            if nulls_first {
                                std::cmp::Ordering::Greater
                            } else {
                                std::cmp::Ordering::Less
                            }
                        }
                        _ if desc => y.total_cmp(x),
                        _ => x.total_cmp(y),
                    };
                    if ord.is_ne() {
                        return ord;
                    }
                }
                std::cmp::Ordering::Equal
            });
        }
        let visible = planned.columns.len();
        let rows = out
            .into_iter()
            .skip(planned.offset)
            .take(planned.limit.unwrap_or(usize::MAX))
            .map(|mut r| {
                r.truncate(visible);
                r
            })
            .collect();
        Ok(ResultSet {
            columns: planned.columns,
            rows,
        })
    }
}

/// Tells the subscribers of a view what the touched groups show now; drops those that
/// unsubscribe. A group whose row cannot be computed (an overflowing SUM) is skipped: a
/// query on it reports the error.
fn notify<P: PhysicalProfile>(
    state: &AggState<P>,
    subscribers: &mut Vec<ViewSubscriber>,
    touched: &[u32],
    shown_before: &[bool],
) {
    for (&slot, &was_shown) in touched.iter().zip(shown_before) {
        let (Ok(key), Ok(row)) = (
            state.group_key(slot as usize),
            state.output_row(slot as usize),
        ) else {
            continue;
        };
        let change = match &row {
            Some(row) => ViewChange::Upsert { key: &key, row },
            None if was_shown => ViewChange::Delete { key: &key },
            None => continue,
        };
        subscribers.retain_mut(|s| s(&change));
        if subscribers.is_empty() {
            return;
        }
    }
}

/// Records a change with the checkpointer of persistent tiers (a no-op folded away in the
/// others, and skipped while recovering).
#[inline]
fn log<P: PhysicalProfile>(
    checkpointer: &mut Option<P::Checkpointer>,
    change: &Change<'_>,
) -> Result<()> {
    match checkpointer {
        Some(c) if P::PERSISTENT => c.record(change),
        _ => Ok(()),
    }
}

impl<P: PhysicalProfile> Engine<P> {
    /// Writes a snapshot now (persistent tiers), so that recovery replays less log.
    pub fn checkpoint(&mut self) -> Result<CheckpointReport> {
        if !P::PERSISTENT {
            return Err(self.not_in_tier("CHECKPOINT", |t| t.persistent));
        }
        let Some(mut c) = self.checkpointer.take() else {
            return Err(SqlError::Unsupported(
                "CHECKPOINT on an ephemeral engine (or during recovery): it keeps nothing to disk"
                    .into(),
            )
            .into());
        };
        let report = c.checkpoint(self);
        self.checkpointer = Some(c);
        let report = report?;
        if let Some(b) = self.index_backend.as_mut() {
            b.mark_durable(report.lsn)?;
        }
        Ok(report)
    }

    /// Opens `C` on `settings`, which brings this (empty) engine to the state it holds. The
    /// index storage is opened by `begin_recovery`, once the checkpointer holds the data
    /// directory's lock. Recovery replays through the engine while it has no checkpointer,
    /// so nothing replayed is logged again.
    fn recover<C: Checkpointer>(&mut self, settings: &PersistSettings) -> Result<C> {
        // `settings.indexes` only matters where indexes are optional.
        let indexes_on = match P::INDEXES {
            IndexSupport::None => false,
            IndexSupport::Optional => settings.indexes,
            IndexSupport::Always => true,
        };
        self.index_settings = indexes_on.then(|| settings.clone());
        let checkpointer = C::open(settings, self)?;
        if P::INDEXES == IndexSupport::Optional && !indexes_on && P::Indexes::discard(settings)? {
            eprintln!(
                "notice: index storage is off ([indexes] enabled = false): removed the index \
                 file, whose indexes would go out of date; they are rebuilt from their tables \
                 when it is on again"
            );
        }
        Ok(checkpointer)
    }

    /// Calls `subscriber` with every later change of view `name` (see [`ViewChange`]).
    pub fn subscribe(&mut self, name: &str, subscriber: ViewSubscriber) -> Result<()> {
        if !self.views.contains_key(name) {
            return Err(Self::unknown(ObjectKind::View, name));
        }
        self.subscribers
            .entry(name.to_string())
            .or_default()
            .push(subscriber);
        Ok(())
    }

    /// Rows inserted into sources and tables since the engine was built (recovery's replays
    /// not counted).
    pub fn rows_ingested(&self) -> u64 {
        self.rows_ingested
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

    /// The log's and the checkpoints' counters (defaults in tiers that keep nothing).
    pub fn storage_metrics(&self) -> crate::metrics::StorageMetrics {
        self.checkpointer
            .as_ref()
            .map(|c| c.metrics())
            .unwrap_or_default()
    }

    /// Checks that the checkpoint storage is reachable now (a live probe of an object store;
    /// `Ok` in tiers that keep nothing or keep it locally).
    pub fn probe_storage(&self) -> Result<()> {
        self.checkpointer.as_ref().map_or(Ok(()), |c| c.probe())
    }

    /// When the newest checkpoint was written: the last one this engine took, or else the one
    /// it recovered from (`None`: none yet, or a tier that keeps nothing).
    pub fn last_checkpoint(&self) -> Option<std::time::SystemTime> {
        self.checkpointer.as_ref().and_then(|c| c.last_success())
    }

    /// Shuts the engine down cleanly. Tiers whose recovery must not depend on the local disk
    /// (`Recovery::Full`: the checkpoint lives in an object store) take a final checkpoint,
    /// so that everything acknowledged is in the store; the others only release their files
    /// (the log already holds every acknowledged change). Dropping an engine without
    /// calling this loses nothing either, but recovery then replays the local log.
    pub fn close(mut self) -> Result<()> {
        if P::RECOVERY == crate::profile::Recovery::Full && self.checkpointer.is_some() {
            self.checkpoint()?;
        }
        Ok(())
    }

    /// Takes the periodic checkpoint when it is due. A failure is reported but does not
    /// undo the statement that triggered it: that statement is already acknowledged.
    fn maybe_checkpoint(&mut self) {
        if P::PERSISTENT
            && self
                .checkpointer
                .as_ref()
                .is_some_and(|c| c.checkpoint_due())
        {
            if let Err(e) = self.checkpoint() {
                tracing::warn!(
                    "periodic checkpoint failed (the log still holds every change): {e}"
                );
            }
        }
    }

    fn remove_keys(&mut self, table: &str, keys: &[Key]) -> Result<()> {
        let mut removed = Vec::with_capacity(keys.len());
        if let Some(t) = self.tables.get_mut(table) {
            for key in keys {
                if let Some(row) = t.rows.remove(key) {
                    removed.push((key.clone(), row));
                }
            }
        }
        self.update_indexes(table, &removed, &[])
    }

    /// Brings the indexes of `table` up to date after rows `removed` (key, old row) went
    /// away and rows with keys `written` were stored.
    fn update_indexes(
        &mut self,
        table: &str,
        removed: &[(Key, Box<[Value]>)],
        written: &[Key],
    ) -> Result<()> {
        let Some(backend) = self.index_backend.as_mut() else {
            return Ok(());
        };
        let Some(t) = self.tables.get(table) else {
            return Ok(());
        };
        for (index, def) in self.indexes.iter().filter(|(_, d)| d.table == table) {
            let old: Vec<(Value, Key)> = removed
                .iter()
                .map(|(k, row)| (row[def.column].clone(), k.clone()))
                .collect();
            let new: Vec<(Value, Key)> = written
                .iter()
                .filter_map(|k| {
                    t.rows
                        .get(k)
                        .map(|row| (row[def.column].clone(), k.clone()))
                })
                .collect();
            backend.apply(index, &old, &new)?;
        }
        Ok(())
    }

    fn create_index(
        &mut self,
        name: &str,
        table: &str,
        column: &str,
        stmt: &Statement,
    ) -> Result<()> {
        if P::INDEXES == IndexSupport::None {
            return Err(self.not_in_tier("CREATE INDEX", |t| t.indexes != IndexSupport::None));
        }
        // Recovery replays an index created while index storage was on: keep it (below).
        if self.index_backend.is_none() && self.recovering_from.is_none() {
            return Err(SqlError::Unsupported(
                "CREATE INDEX on an engine without index storage: indexes need a data directory \
                 and [indexes] enabled = true"
                    .into(),
            )
            .into());
        }
        if self.indexes.contains_key(name) || self.kind_of(name).is_some() {
            return Err(SqlError::AlreadyExists {
                kind: "object",
                name: name.to_string(),
            }
            .into());
        }
        let Some(t) = self.tables.get(table) else {
            return Err(match self.kind_of(table) {
                Some(kind) => SqlError::WrongKind {
                    name: table.to_string(),
                    actual: kind.name(),
                    expected: "table",
                    hint: "indexes are on tables".into(),
                }
                .into(),
                None => Self::unknown(ObjectKind::Table, table),
            });
        };
        let col = t
            .schema
            .find(column)
            .ok_or_else(|| t.schema.unknown_column(&format!("table `{table}`"), column))?;
        self.log_ddl(name, stmt)?;
        self.indexes.insert(
            name.to_string(),
            IndexDef {
                table: table.to_string(),
                column: col,
            },
        );
        let Some(backend) = self.index_backend.as_mut() else {
            // Index storage is off ([indexes] enabled = false) for a directory whose log or
            // snapshot has this index: it stays in the catalog (and in later snapshots), and
            // queries scan. With storage on again, it is rebuilt or caught up at startup.
            eprintln!(
                "notice: index `{name}` on `{table}` is kept but not maintained while \
                 [indexes] enabled = false; queries on `{table}` scan"
            );
            return Ok(());
        };
        // The stored index holds the exact entries as of some log position: the last
        // `mark_durable` after a crash, or everything written before a clean close (`None`).
        // From any position at or after the snapshot, replaying the log after the snapshot
        // ends at the current entries (each record's change is computed from the table), so
        // only an index older than the snapshot, or missing, is rebuilt.
        let current = self.recovering_from.is_some_and(|lsn| {
            backend.exists(name) && backend.durable_lsn().is_none_or(|marked| marked >= lsn)
        });
        if !current {
            // Without a snapshot the index storage was never made durable: rebuilding is routine.
            if let Some(reason) = &self.index_rebuild_reason {
                eprintln!(
                    "notice: {reason}: rebuilding index `{name}` on `{table}` from the table"
                );
            } else if self.recovering_from.is_some_and(|lsn| lsn > 0) {
                eprintln!("notice: index `{name}` on `{table}` is not as of the snapshot: rebuilding it from the table");
            }
            let t = &self.tables[table];
            backend.rebuild(
                name,
                &mut t.rows.iter().map(|(k, row)| (row[col].clone(), k.clone())),
            )?;
        }
        Ok(())
    }
}

impl<P: PhysicalProfile> EngineState for Engine<P> {
    fn catalog(&self) -> Vec<(String, String)> {
        self.catalog.clone()
    }

    fn export(&self, name: &str) -> Option<ObjectState> {
        if self.sources.contains_key(name) {
            return Some(ObjectState::Source);
        }
        if let Some(t) = self.tables.get(name) {
            let mut values: Vec<Vec<Value>> = t
                .schema
                .columns
                .iter()
                .map(|_| Vec::with_capacity(t.rows.len()))
                .collect();
            for (_, row) in t.rows.iter() {
                for (col, v) in values.iter_mut().zip(row.iter()) {
                    col.push(v.clone());
                }
            }
            let columns = t
                .schema
                .columns
                .iter()
                .zip(&values)
                .map(|(c, v)| Column::from_values(c.ty, v))
                .collect();
            return Some(ObjectState::Table { columns });
        }
        self.views.get(name).map(|v| v.state.export())
    }

    fn import(&mut self, name: &str, state: ObjectState) -> Result<()> {
        match state {
            ObjectState::Source => Ok(()),
            ObjectState::Table { columns } => {
                let rows = columns.first().map_or(0, Column::len);
                self.write_table(name, &columns, rows, true)
            }
            ObjectState::View {
                keys,
                records,
                texts,
            } => {
                let Some(view) = self.views.get_mut(name) else {
                    return Err(Self::unknown(ObjectKind::View, name));
                };
                match view.state.import(keys, records, texts) {
                    Ok(()) => Ok(()),
                    Err(ImportError::Full(f)) => Err(Self::state_full(format!("materialized view `{name}`"), f)),
                    Err(ImportError::Shape(reason)) => Err(ExecError::Eval(format!(
                        "snapshot state of materialized view `{name}` does not match its definition: {reason}"
                    ))
                    .into()),
                }
            }
        }
    }

    fn replay(&mut self, change: &Change<'_>) -> Result<()> {
        match change {
            Change::Ddl(text) => {
                self.execute_statement(&sql::parse_one(text)?)?;
            }
            Change::Insert {
                target,
                columns,
                replace,
            } => {
                self.insert_columns(target, columns, *replace)?;
            }
            Change::Delete { table, keys } => self.remove_keys(table, keys)?,
        }
        Ok(())
    }

    fn begin_recovery(&mut self, snapshot_lsn: u64) -> Result<()> {
        self.recovering_from = Some(snapshot_lsn);
        if let Some(settings) = self.index_settings.take() {
            let (backend, rebuild) = P::Indexes::open(&settings)?;
            self.index_rebuild_reason = rebuild;
            self.index_backend = Some(backend);
        }
        Ok(())
    }

    fn end_recovery(&mut self) {
        self.recovering_from = None;
        self.index_rebuild_reason = None;
    }
}

impl<P: PhysicalProfile> std::fmt::Debug for Engine<P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("profile", &P::NAME)
            .field("sources", &self.sources.keys().collect::<Vec<_>>())
            .field("tables", &self.tables.keys().collect::<Vec<_>>())
            .field("views", &self.views.keys().collect::<Vec<_>>())
            .finish()
    }
}
