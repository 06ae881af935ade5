//! The one door of every change. A mutation — DDL, a source batch, a table write or delete,
//! index DDL — goes through the same three steps, and recovery through the last two:
//!
//! ```text
//!  statement ─plan─▶ Plan ─prepare─▶ Prepared ─(the tier's effects)─▶ apply
//!                           │                   record it in the WAL     │
//!                           │                   (persistent tiers)       └ cannot fail
//!                           ├ validates, evaluates every expression,
//!                           │ reserves capacity; nothing visible changes
//!                           └ abort(prepared): the effects failed, undo the reservation
//!
//!  recovery: snapshot objects, then each logged Change ─prepare─▶ Prepared ─apply─▶
//! ```
//!
//! [`Prepared::change`] is the [`Change`] the effects record (and a replay yields again).
//! Between prepare and apply the engine is borrowed mutably, so nothing can observe the
//! reservations (the new groups of a view, which have no accumulators yet).

use super::aggregate::Prepared as PreparedAgg;
use super::kernel::{IndexDef, Kernel, Source, Table, View};
use super::plan::{Conflict, Origin, Plan};
use crate::batch::Column;
use crate::change::Change;
use crate::error::Result;
use crate::profile::PhysicalProfile;
use crate::sql::ObjectKind;
use crate::state::StateBackend;
use crate::types::Key;
use std::borrow::Cow;

/// A validated change, ready to be recorded and applied. Holds the reservations it made
/// (new view groups) until [`Kernel::apply`] or [`Kernel::abort`] takes it.
pub(crate) struct Prepared<'a, P: PhysicalProfile> {
    pub(super) work: Work<'a, P>,
}

pub(super) enum Work<'a, P: PhysicalProfile> {
    CreateSource {
        name: String,
        source: Source,
        ddl: String,
    },
    CreateTable {
        name: String,
        table: Table<P>,
        ddl: String,
    },
    CreateView {
        name: String,
        /// Boxed: a view's state is much larger than the other variants.
        view: Box<View<P>>,
        ddl: String,
    },
    CreateIndex {
        name: String,
        def: IndexDef,
        ddl: String,
        /// When recovery replays it: the snapshot recovery started from (0: none), and why
        /// every index must be rebuilt, if it must.
        replayed: Option<(u64, Option<String>)>,
    },
    Drop {
        kind: ObjectKind,
        name: String,
        ddl: String,
    },
    /// Rows appended to a source, evaluated for every view on it (slots reserved).
    Append {
        source: &'a str,
        columns: &'a [Column],
        views: Vec<AppendToView<'a>>,
    },
    /// Rows written to a table; `keys[r]` is row `r`'s primary key. `stored`: the rows
    /// this kernel's part holds (`None`: all of them).
    Write {
        table: &'a str,
        /// Borrowed from the plan, or computed from the table's rows (UPDATE, ON CONFLICT).
        columns: Cow<'a, [Column]>,
        replace: bool,
        keys: Vec<Key>,
        stored: Option<Vec<u32>>,
    },
    Delete {
        table: &'a str,
        keys: Vec<Key>,
    },
}

/// One view's part of a prepared append.
pub(super) struct AppendToView<'a> {
    pub view: String,
    pub agg: PreparedAgg<'a>,
    /// Groups the view had before this batch reserved new ones.
    pub groups_before: usize,
}

impl<P: PhysicalProfile> Prepared<'_, P> {
    /// Whether applying it changes nothing (an append of no rows), so that there is nothing
    /// to record either.
    pub fn is_empty(&self) -> bool {
        match &self.work {
            Work::Append { columns, .. } => columns.first().is_none_or(|c| c.is_empty()),
            Work::Write { keys, .. } => keys.is_empty(),
            _ => false,
        }
    }

    /// The change the tier's effects record before it is applied.
    pub fn change(&self) -> Change<'_> {
        match &self.work {
            Work::CreateSource { ddl, .. }
            | Work::CreateTable { ddl, .. }
            | Work::CreateView { ddl, .. }
            | Work::CreateIndex { ddl, .. }
            | Work::Drop { ddl, .. } => Change::Ddl(ddl),
            Work::Append {
                source, columns, ..
            } => Change::Insert {
                target: source,
                columns,
                replace: false,
            },
            Work::Write {
                table,
                columns,
                replace,
                ..
            } => Change::Insert {
                target: table,
                columns: columns.as_ref(),
                replace: *replace,
            },
            Work::Delete { table, keys } => Change::Delete { table, keys },
        }
    }
}

/// What recovery knows while it replays: the snapshot it started from, and why the index
/// storage had to be recreated (a missing or damaged file), if it had.
#[derive(Clone, Debug, Default)]
pub(crate) struct Replaying {
    pub snapshot_lsn: u64,
    pub index_rebuild_reason: Option<String>,
}

impl<P: PhysicalProfile> Kernel<P> {
    /// Step 1 for a write plan (see the [module docs](self)). `replaying` is set when
    /// recovery applies a logged change.
    pub fn prepare<'a>(
        &mut self,
        plan: &'a Plan,
        replaying: Option<&Replaying>,
    ) -> Result<Prepared<'a, P>> {
        let work = match plan {
            Plan::Insert {
                target,
                columns,
                conflict: conflict @ (Conflict::Fail | Conflict::Replace),
            } => {
                let replace = matches!(conflict, Conflict::Replace);
                return self.prepare_insert(target, columns, replace);
            }
            Plan::Insert {
                target,
                columns,
                conflict,
            } => {
                let table = self.table(target)?;
                let existing = |key: &Key| table.rows.get(key).map(|row| &row[..]);
                let rows = self.resolve_conflicts(target, columns, conflict, &existing)?;
                self.prepare_write(target, Cow::Owned(rows), true)?
            }
            Plan::Update { table, assignments } => {
                let rows = self.table(table)?.rows.iter().map(|(_, row)| &row[..]);
                let rows = self.updated_rows(table, assignments, rows)?;
                self.prepare_write(table, Cow::Owned(rows), true)?
            }
            Plan::Delete { table, filter } => Work::Delete {
                table,
                keys: self.matching_keys(table, filter.as_ref())?,
            },
            ddl => self.prepare_ddl(ddl, replaying)?,
        };
        Ok(Prepared { work })
    }

    /// Steps 1 and 3 for a change read back from a log: it was valid when it was recorded,
    /// so preparing it again can only fail on a log that does not match the catalog.
    pub fn replay(&mut self, change: &Change<'_>, replaying: &Replaying) -> Result<()> {
        match change {
            Change::Ddl(text) => {
                let plan = self.plan(crate::sql::parse_one(text)?.parsed(), Origin::Recovery)?;
                if plan.is_write() {
                    let prepared = self.prepare(&plan, Some(replaying))?;
                    self.apply(prepared);
                }
            }
            Change::Insert {
                target,
                columns,
                replace,
            } => {
                // A logged batch is checked like a caller's: a record that decodes but does
                // not fit its target is an error, never a panic further down.
                let schema = self.schema_of(target).ok_or_else(|| {
                    crate::error::ExecError::Eval(format!(
                        "the log writes to `{target}`, which does not exist"
                    ))
                })?;
                schema.check_shape(target, columns)?;
                let prepared = self.prepare_insert(target, columns, *replace)?;
                self.apply(prepared);
            }
            Change::Delete { table, keys } => {
                self.table(table)?;
                let prepared = Prepared {
                    work: Work::Delete {
                        table,
                        keys: keys.to_vec(),
                    },
                };
                self.apply(prepared);
            }
        }
        Ok(())
    }

    /// Undoes the reservations of a prepared change whose effects failed.
    pub fn abort(&mut self, prepared: Prepared<'_, P>) {
        if let Work::Append { views, .. } = prepared.work {
            for part in views {
                if let Some(v) = self.views.get_mut(&part.view) {
                    v.state.rollback(part.groups_before);
                    v.state.recycle(part.agg);
                }
            }
        }
    }

    /// Step 3: makes a prepared change visible. Cannot fail. Returns the rows it inserted
    /// into sources and tables.
    pub fn apply(&mut self, prepared: Prepared<'_, P>) -> usize {
        match prepared.work {
            Work::Append { columns, views, .. } => {
                self.apply_append(views);
                columns.first().map_or(0, Column::len)
            }
            Work::Write {
                table,
                columns,
                keys,
                stored,
                ..
            } => {
                self.apply_write(table, &columns, &keys, stored.as_deref());
                keys.len()
            }
            Work::Delete { table, keys } => {
                self.remove_keys(table, &keys);
                0
            }
            ddl => {
                self.apply_ddl(ddl);
                0
            }
        }
    }
}
