//! Incremental grouped aggregation: the operator behind materialized views and behind
//! aggregates in ad-hoc queries.
//!
//! A batch is applied in three phases so that a failure leaves no trace:
//! 1. [`AggState::prepare`] evaluates filter, group keys and aggregate arguments (no state touched);
//! 2. [`AggState::assign_slots`] maps each selected row's group key to a dense slot number,
//!    inserting new groups (the only step that can hit a full fixed-capacity map, and which
//!    [`AggState::rollback`] undoes);
//! 3. [`AggState::accumulate`] updates columnar accumulators indexed by slot, in typed loops.
//!
//! | file | owns |
//! |---|---|
//! | `keys.rs` | group keys: fixed-width keys, the group index, key columns |
//! | `accumulate.rs` | the accumulator layout of a group record and the typed fold loops |
//! | `output.rs` | a group's row as the view shows it, lookups by key, all rows |
//! | `image.rs` | a view's groups in and out of snapshots |
//! | `session.rs` | session windows: groups that merge and move |

mod accumulate;
mod distinct;
mod image;
mod keys;
mod output;
mod session;

pub use image::ImportError;
pub(crate) use session::SessionWindow;

use accumulate::{AccKind, AccLayout};
use distinct::{DistinctKey, NewPairs};
use keys::{fixed_column, slot_for, FixedKey, GroupIndex, PreparedKeys};
use session::{SessionChange, SessionIndex};

use super::batch_rows::BatchRow;
pub(crate) use super::window::Windowing;
use crate::batch::Column;
use crate::error::ExecError;
use crate::profile::PhysicalProfile;
use crate::sql::expr::Expr;
use crate::state::{Full, StateBackend};
use crate::types::{DataType, Key};
use std::borrow::Cow;
use std::hash::Hash;
use std::sync::Arc;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AggFunc {
    CountStar,
    Count,
    Sum,
    Min,
    Max,
    Avg,
}

/// One aggregate of a grouped query: function, argument (over input columns), result type.
#[derive(Clone, Debug, PartialEq)]
pub struct AggSpec {
    pub func: AggFunc,
    pub arg: Option<Expr>,
    pub ty: DataType,
    /// `COUNT(DISTINCT x)`, `SUM(DISTINCT x)`, `AVG(DISTINCT x)`: each value once per group.
    pub distinct: bool,
}

/// A grouped aggregation over the rows of one input.
#[derive(Clone, Debug)]
pub struct AggPlan {
    pub filter: Option<Expr>,
    /// Group expressions over input columns.
    pub groups: Vec<Expr>,
    pub aggs: Vec<AggSpec>,
    /// Predicate over the post-aggregation row `[groups…, aggregates…]`.
    pub having: Option<Expr>,
    /// Output expressions over the post-aggregation row.
    pub output: Vec<Expr>,
    /// A window table function (`TUMBLE`, `HOP`): the input is expanded into its windows
    /// first, and every expression above reads the expanded rows.
    pub window: Option<Windowing>,
    /// A session window (`FROM SESSION(…)`): one of the groups is each row's session start.
    pub session: Option<SessionWindow>,
    /// A view without aggregates: each group is one distinct output row, kept once with a
    /// hidden `COUNT(*)` and shown as many times as it arrived. The index of that count in
    /// the post-aggregation row.
    pub multiplicity: Option<usize>,
}

impl AggPlan {
    fn group_types(&self) -> Vec<DataType> {
        self.groups
            .iter()
            .map(|g| g.ty().unwrap_or(DataType::BigInt))
            .collect()
    }
}

/// A batch evaluated against one view: nothing in it refers to state yet.
pub struct Prepared<'a> {
    rows: usize,
    /// Selected row numbers, or `None` for all rows.
    selection: Option<Vec<u32>>,
    keys: PreparedKeys<'a>,
    args: Vec<Option<Cow<'a, Column>>>,
    slots: Vec<u32>,
    /// Per DISTINCT aggregate, the pairs this batch adds (found when slots are assigned).
    distinct: Vec<NewPairs>,
    /// The sessions this batch merges or extends backwards (session windows only).
    sessions: Vec<SessionChange>,
}

impl Prepared<'_> {
    /// The same, owning what it borrowed (the expanded input of a window is dropped).
    fn into_owned(self) -> Prepared<'static> {
        Prepared {
            rows: self.rows,
            selection: self.selection,
            keys: self.keys.into_owned(),
            args: self
                .args
                .into_iter()
                .map(|a| a.map(|c| Cow::Owned(c.into_owned())))
                .collect(),
            slots: self.slots,
            distinct: self.distinct,
            sessions: self.sessions,
        }
    }

    fn selected(&self) -> usize {
        self.selection.as_ref().map_or(self.rows, Vec::len)
    }

    /// Keeps only the selected rows whose group key `keep` accepts (e.g. the rows of one
    /// shard). The key is the group's canonical [`Key`], whatever the index's key shape.
    fn retain_keys(&mut self, mut keep: impl FnMut(&Key) -> bool) {
        let selected: Vec<u32> = self
            .selection
            .take()
            .unwrap_or_else(|| (0..self.rows as u32).collect());
        let mut kept = Vec::with_capacity(selected.len());
        match &mut self.keys {
            PreparedKeys::General(keys) => {
                let mut kept_keys = Vec::with_capacity(keys.len());
                for (row, key) in selected.into_iter().zip(keys.drain(..)) {
                    if keep(&key) {
                        kept.push(row);
                        kept_keys.push(key);
                    }
                }
                *keys = kept_keys;
            }
            PreparedKeys::Fixed { columns } => {
                for row in selected {
                    if keep(&keys::fixed_key_at(columns, row as usize)) {
                        kept.push(row);
                    }
                }
            }
        }
        self.selection = Some(kept);
    }
}

/// The state of one grouped aggregation.
pub struct AggState<P: PhysicalProfile> {
    plan: AggPlan,
    group_types: Vec<DataType>,
    index: GroupIndex<P>,
    /// Where each aggregate lives in a record.
    layout: Vec<AccLayout>,
    /// Words per group record.
    stride: usize,
    /// Group records, row-major: all of a group's aggregates share a cache line or two,
    /// so one row touches one record instead of one array per aggregate.
    records: Vec<i64>,
    /// MIN/MAX of text, per group.
    texts: Vec<Vec<Option<Arc<str>>>>,
    /// The (group, value) pairs of each DISTINCT aggregate.
    distinct: Vec<P::State<DistinctKey, ()>>,
    /// The slot buffer of the last batch, kept for the next: a fresh one per batch costs a
    /// page fault per 4 KiB (large allocations come straight from the OS).
    spare_slots: Vec<u32>,
    /// Each partition's sessions (session windows only).
    sessions: SessionIndex,
}

/// The largest slot buffer kept between batches (4M rows).
const MAX_SPARE_SLOTS: usize = 1 << 22;

fn is_fixed_width(ty: DataType) -> bool {
    ty != DataType::Text
}

impl<P: PhysicalProfile> AggState<P> {
    /// Creates the state for `plan`, holding up to `capacity` groups in fixed-capacity tiers.
    pub fn new(plan: AggPlan, capacity: usize) -> Self {
        let group_types = plan.group_types();
        let fixed = group_types.iter().all(|t| is_fixed_width(*t));
        let index = match group_types.len() {
            1 if fixed => GroupIndex::Fixed1 {
                map: StateBackend::with_capacity(capacity),
                keys: Vec::new(),
            },
            2 if fixed => GroupIndex::Fixed2 {
                map: StateBackend::with_capacity(capacity),
                keys: Vec::new(),
            },
            _ => GroupIndex::General {
                map: StateBackend::with_capacity(capacity),
                keys: Vec::new(),
            },
        };
        let mut layout = Vec::with_capacity(plan.aggs.len());
        let mut stride = 0;
        let mut texts = Vec::new();
        let mut distinct = Vec::new();
        for a in &plan.aggs {
            let arg_ty = a.arg.as_ref().and_then(Expr::ty);
            let max = a.func == AggFunc::Max;
            let kind = match (a.func, arg_ty) {
                (AggFunc::CountStar | AggFunc::Count, _) => AccKind::Count,
                (AggFunc::Avg, Some(DataType::Double)) => AccKind::AvgDouble,
                (AggFunc::Avg, _) => AccKind::AvgInt,
                (AggFunc::Sum, Some(DataType::Double)) => AccKind::SumDouble,
                (AggFunc::Sum, _) => AccKind::SumInt,
                (_, Some(DataType::Double)) => AccKind::ExtremeDouble { max },
                (_, Some(DataType::Text)) => {
                    texts.push(Vec::new());
                    AccKind::ExtremeText {
                        max,
                        index: texts.len() - 1,
                    }
                }
                _ => AccKind::ExtremeInt { max },
            };
            let set = a.distinct.then(|| {
                distinct.push(StateBackend::with_capacity(capacity));
                distinct.len() - 1
            });
            layout.push(AccLayout {
                kind,
                distinct: set,
                offset: stride,
            });
            stride += kind.words();
        }
        AggState {
            plan,
            group_types,
            index,
            layout,
            stride,
            records: Vec::new(),
            texts,
            distinct,
            spare_slots: Vec::new(),
            sessions: SessionIndex::default(),
        }
    }

    pub fn plan(&self) -> &AggPlan {
        &self.plan
    }

    /// Number of groups.
    pub fn len(&self) -> usize {
        match &self.index {
            GroupIndex::Fixed1 { keys, .. } => keys.len(),
            GroupIndex::Fixed2 { keys, .. } => keys.len(),
            GroupIndex::General { keys, .. } => keys.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Phase 1: evaluates the plan's expressions over `columns` (the input's columns in
    /// schema order, all of `rows` length), expanded into their windows first if the plan
    /// has a window. Changes nothing.
    pub fn prepare<'a>(
        &self,
        columns: &'a [Column],
        rows: usize,
    ) -> Result<Prepared<'a>, ExecError> {
        if let Some(session) = &self.plan.session {
            return self.prepare_sessions(session, columns, rows);
        }
        match &self.plan.window {
            None => self.prepare_selected(columns, rows, self.select(columns, rows)?),
            Some(window) => {
                let expanded = window.expand_columns(columns, rows)?;
                let rows = expanded.first().map_or(0, Column::len);
                let selection = self.select(&expanded, rows)?;
                Ok(self
                    .prepare_selected(&expanded, rows, selection)?
                    .into_owned())
            }
        }
    }

    /// The rows the WHERE keeps (`None`: all of them).
    fn select(&self, columns: &[Column], rows: usize) -> Result<Option<Vec<u32>>, ExecError> {
        Ok(match &self.plan.filter {
            None => None,
            Some(f) => {
                let mut sel = Vec::with_capacity(rows);
                for r in 0..rows {
                    if f.is_true(&BatchRow { columns, row: r })? {
                        sel.push(r as u32);
                    }
                }
                Some(sel)
            }
        })
    }

    /// Phase 1 for the rows `selection` keeps: group keys and aggregate arguments.
    fn prepare_selected<'a>(
        &self,
        columns: &'a [Column],
        rows: usize,
        selection: Option<Vec<u32>>,
    ) -> Result<Prepared<'a>, ExecError> {
        // The rows the WHERE keeps, by row: group keys and aggregate arguments are evaluated
        // only for them (a computed value of a dropped row must not fail the statement).
        let mask: Option<Vec<bool>> = selection.as_ref().map(|sel| {
            let mut m = vec![false; rows];
            for &r in sel {
                m[r as usize] = true;
            }
            m
        });
        let keys = match &self.index {
            GroupIndex::General { .. } => {
                let mut keys = Vec::with_capacity(selection.as_ref().map_or(rows, Vec::len));
                let each = |r: usize, keys: &mut Vec<Key>| -> Result<(), ExecError> {
                    let row = BatchRow { columns, row: r };
                    keys.push(match self.plan.groups.as_slice() {
                        [g] => Key::from_value(&g.eval(&row)?),
                        gs => Key::Composite(
                            gs.iter()
                                .map(|g| Ok(Key::from_value(&g.eval(&row)?)))
                                .collect::<Result<_, ExecError>>()?,
                        ),
                    });
                    Ok(())
                };
                match &selection {
                    Some(sel) => sel.iter().try_for_each(|&r| each(r as usize, &mut keys))?,
                    None => (0..rows).try_for_each(|r| each(r, &mut keys))?,
                }
                PreparedKeys::General(keys)
            }
            _ => PreparedKeys::Fixed {
                columns: self
                    .plan
                    .groups
                    .iter()
                    .map(|g| fixed_column(g, columns, rows, mask.as_deref()))
                    .collect::<Result<_, _>>()?,
            },
        };
        let args = self
            .plan
            .aggs
            .iter()
            .map(|a| match &a.arg {
                None => Ok(None),
                Some(e) => evaluate_column(e, columns, rows, mask.as_deref()).map(Some),
            })
            .collect::<Result<_, ExecError>>()?;
        Ok(Prepared {
            rows,
            selection,
            keys,
            args,
            slots: Vec::new(),
            distinct: Vec::new(),
            sessions: Vec::new(),
        })
    }

    /// Keeps only the selected rows whose group `keep` accepts as its shard's: by the group
    /// key, or for a session window by its partition (all of whose sessions live together).
    pub fn retain_shard(&self, prepared: &mut Prepared<'_>, mut keep: impl FnMut(&Key) -> bool) {
        match &self.plan.session {
            None => prepared.retain_keys(keep),
            Some(session) => {
                prepared.retain_keys(|key| keep(&self.session_partition(session, key)));
                prepared.sessions.retain(|c| keep(&c.partition));
            }
        }
    }

    /// Phase 2: assigns a slot to every selected row, creating groups as needed. On `Full`
    /// the groups created by this call are removed again.
    pub fn assign_slots(&mut self, prepared: &mut Prepared<'_>) -> Result<(), Full> {
        let before = self.len();
        let n = prepared.selected();
        let mut slots = std::mem::take(&mut self.spare_slots);
        slots.clear();
        slots.reserve(n);
        let result = match (&mut self.index, &prepared.keys) {
            (GroupIndex::Fixed1 { map, keys }, PreparedKeys::Fixed { columns }) => {
                let (vals, nulls) = &columns[0];
                let mut go = |row: usize| -> Result<(), Full> {
                    let null = nulls.as_ref().is_some_and(|n| n[row]);
                    let key = FixedKey {
                        values: [if null { 0 } else { vals[row] }],
                        nulls: null as u8,
                    };
                    slots.push(slot_for(map, keys, key)?);
                    Ok(())
                };
                match &prepared.selection {
                    Some(sel) => sel.iter().try_for_each(|&r| go(r as usize)),
                    None => (0..n).try_for_each(go),
                }
            }
            (GroupIndex::Fixed2 { map, keys }, PreparedKeys::Fixed { columns }) => {
                let ((a, an), (b, bn)) = (&columns[0], &columns[1]);
                let mut go = |row: usize| -> Result<(), Full> {
                    let a_null = an.as_ref().is_some_and(|n| n[row]);
                    let b_null = bn.as_ref().is_some_and(|n| n[row]);
                    let key = FixedKey {
                        values: [
                            if a_null { 0 } else { a[row] },
                            if b_null { 0 } else { b[row] },
                        ],
                        nulls: a_null as u8 | (b_null as u8) << 1,
                    };
                    slots.push(slot_for(map, keys, key)?);
                    Ok(())
                };
                match &prepared.selection {
                    Some(sel) => sel.iter().try_for_each(|&r| go(r as usize)),
                    None => (0..n).try_for_each(go),
                }
            }
            (GroupIndex::General { map, keys }, PreparedKeys::General(batch_keys)) => batch_keys
                .iter()
                .try_for_each(|k| slot_for(map, keys, k.clone()).map(|s| slots.push(s))),
            _ => unreachable!("prepared keys always match the index they were prepared for"),
        };
        prepared.slots = slots;
        let result = result.and_then(|()| {
            if self.distinct.is_empty() {
                Ok(())
            } else {
                self.find_new_pairs(prepared)
            }
        });
        if result.is_err() {
            self.rollback(before);
        }
        result
    }

    /// Takes back the buffers of a batch that was accumulated (or given up), for the next.
    pub fn recycle(&mut self, prepared: Prepared<'_>) {
        if prepared.slots.capacity() <= MAX_SPARE_SLOTS {
            self.spare_slots = prepared.slots;
        }
    }

    /// Removes the groups created after there were `groups` of them (before accumulation).
    pub fn rollback(&mut self, groups: usize) {
        fn undo<K: Eq + Hash + Clone, S: StateBackend<K, u32>>(
            map: &mut S,
            keys: &mut Vec<K>,
            to: usize,
        ) {
            for k in keys.drain(to..) {
                map.remove(&k);
            }
        }
        match &mut self.index {
            GroupIndex::Fixed1 { map, keys } => undo(map, keys, groups),
            GroupIndex::Fixed2 { map, keys } => undo(map, keys, groups),
            GroupIndex::General { map, keys } => undo(map, keys, groups),
        }
    }

    /// Applies one batch (all three phases) to this state alone.
    pub fn apply(&mut self, columns: &[Column], rows: usize) -> Result<(), crate::Error> {
        let mut prepared = self.prepare(columns, rows)?;
        self.assign_slots(&mut prepared)
            .map_err(|f| ExecError::Eval(f.to_string()))?;
        self.accumulate(&prepared);
        self.recycle(prepared);
        Ok(())
    }
}

/// An aggregate argument as a column: borrowed when it is a plain column reference. Rows
/// outside `selected` (when given) are not evaluated: NULL, never read.
fn evaluate_column<'a>(
    e: &Expr,
    columns: &'a [Column],
    rows: usize,
    selected: Option<&[bool]>,
) -> Result<Cow<'a, Column>, ExecError> {
    if let Some(i) = e.as_column() {
        return Ok(Cow::Borrowed(&columns[i]));
    }
    let ty = e.ty().unwrap_or(DataType::BigInt);
    let values = (0..rows)
        .map(|r| match selected {
            Some(s) if !s[r] => Ok(crate::types::Value::Null),
            _ => e.eval(&BatchRow { columns, row: r }),
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Cow::Owned(Column::from_values(ty, &values)))
}
