//! Incremental grouped aggregation: the operator behind materialized views and behind
//! aggregates in ad-hoc queries.
//!
//! A batch is applied in three phases so that a failure leaves no trace:
//! 1. [`AggState::prepare`] evaluates filter, group keys and aggregate arguments (no state touched);
//! 2. [`AggState::assign_slots`] maps each selected row's group key to a dense slot number,
//!    inserting new groups (the only step that can hit a full fixed-capacity map, and which
//!    [`AggState::rollback`] undoes);
//! 3. [`AggState::accumulate`] updates columnar accumulators indexed by slot, in typed loops.

use super::batch_rows::BatchRow;
use crate::batch::{Column, ColumnData};
use crate::checkpoint::ObjectState;
use crate::error::ExecError;
use crate::profile::PhysicalProfile;
use crate::sql::expr::{BinOp, Expr};
use crate::state::{Full, StateBackend};
use crate::types::{DataType, Key, Value};
use std::borrow::Cow;
use std::hash::{Hash, Hasher};
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
}

impl AggPlan {
    fn group_types(&self) -> Vec<DataType> {
        self.groups
            .iter()
            .map(|g| g.ty().unwrap_or(DataType::BigInt))
            .collect()
    }
}

/// A key of up to `N` fixed-width values (BIGINT, TIMESTAMP, BOOLEAN, DOUBLE bits) with a
/// NULL mask: grouping on such columns never allocates.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FixedKey<const N: usize> {
    values: [i64; N],
    nulls: u8,
}

impl<const N: usize> Hash for FixedKey<N> {
    #[inline]
    fn hash<H: Hasher>(&self, state: &mut H) {
        // The NULL mask is left out: it only separates keys whose values are equal.
        for v in self.values {
            state.write_i64(v);
        }
    }
}

/// Group key → slot, specialised by key shape.
enum GroupIndex<P: PhysicalProfile> {
    Fixed1 {
        map: P::State<FixedKey<1>, u32>,
        keys: Vec<FixedKey<1>>,
    },
    Fixed2 {
        map: P::State<FixedKey<2>, u32>,
        keys: Vec<FixedKey<2>>,
    },
    General {
        map: P::State<Key, u32>,
        keys: Vec<Key>,
    },
}

/// How one aggregate keeps its state inside a group's record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum AccKind {
    /// `[count]`
    Count,
    /// `[low, high, seen]`: an i128 sum, so that only the final value can overflow.
    SumInt,
    /// `[sum bits, seen]`
    SumDouble,
    /// `[sum bits, n]`
    Avg,
    /// `[value, seen]`
    ExtremeInt { max: bool },
    /// `[value bits, seen]`
    ExtremeDouble { max: bool },
    /// Kept beside the records, in `texts[index]`.
    ExtremeText { max: bool, index: usize },
}

impl AccKind {
    fn words(self) -> usize {
        match self {
            AccKind::Count => 1,
            AccKind::SumInt => 3,
            AccKind::ExtremeText { .. } => 0,
            _ => 2,
        }
    }
}

#[derive(Clone, Copy, Debug)]
struct AccLayout {
    kind: AccKind,
    /// First word of this aggregate within a group's record.
    offset: usize,
}

/// A fixed-width key column as i64 values with its NULL mask.
type FixedColumn<'a> = (Cow<'a, [i64]>, Option<Cow<'a, [bool]>>);

/// Group keys of a prepared batch, one per selected row.
enum PreparedKeys<'a> {
    Fixed { columns: Vec<FixedColumn<'a>> },
    General(Vec<Key>),
}

/// A batch evaluated against one view: nothing in it refers to state yet.
pub struct Prepared<'a> {
    rows: usize,
    /// Selected row numbers, or `None` for all rows.
    selection: Option<Vec<u32>>,
    keys: PreparedKeys<'a>,
    args: Vec<Option<Cow<'a, Column>>>,
    slots: Vec<u32>,
}

impl Prepared<'_> {
    fn selected(&self) -> usize {
        self.selection.as_ref().map_or(self.rows, Vec::len)
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
    /// The slot buffer of the last batch, kept for the next: a fresh one per batch costs a
    /// page fault per 4 KiB (large allocations come straight from the OS).
    spare_slots: Vec<u32>,
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
        for a in &plan.aggs {
            let arg_ty = a.arg.as_ref().and_then(Expr::ty);
            let max = a.func == AggFunc::Max;
            let kind = match (a.func, arg_ty) {
                (AggFunc::CountStar | AggFunc::Count, _) => AccKind::Count,
                (AggFunc::Avg, _) => AccKind::Avg,
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
            layout.push(AccLayout {
                kind,
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
            spare_slots: Vec::new(),
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
    /// schema order, all of `rows` length). Changes nothing.
    pub fn prepare<'a>(
        &self,
        columns: &'a [Column],
        rows: usize,
    ) -> Result<Prepared<'a>, ExecError> {
        let selection = match &self.plan.filter {
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
        };
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
                    .map(|g| fixed_column(g, columns, rows))
                    .collect::<Result<_, _>>()?,
            },
        };
        let args = self
            .plan
            .aggs
            .iter()
            .map(|a| match &a.arg {
                None => Ok(None),
                Some(e) => evaluate_column(e, columns, rows).map(Some),
            })
            .collect::<Result<_, ExecError>>()?;
        Ok(Prepared {
            rows,
            selection,
            keys,
            args,
            slots: Vec::new(),
        })
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

    /// Phase 3: folds the prepared rows into the accumulators. Cannot fail.
    ///
    /// One tight loop per aggregate, specialised by type, NULLs and selection: the branch
    /// on the aggregate's kind is taken once per batch, not once per row. Records are
    /// row-major, so the later loops find a batch's groups already in cache.
    pub fn accumulate(&mut self, prepared: &Prepared<'_>) {
        let groups = self.len();
        let stride = self.stride;
        self.records.resize(groups * stride, 0);
        for t in &mut self.texts {
            t.resize(groups, None);
        }
        let slots = prepared.slots.as_slice();
        let selection = prepared.selection.as_deref();
        for (l, arg) in self.layout.iter().zip(&prepared.args) {
            let col = arg.as_deref();
            let nulls = col.and_then(|c| c.nulls.as_deref());
            let records = &mut self.records;
            // Each arm below monomorphises `fold_rows` for its own update.
            macro_rules! fold {
                ($update:expr) => {
                    fold_rows(records, stride, l.offset, slots, selection, nulls, $update)
                };
            }
            match (l.kind, col) {
                (AccKind::Count, _) => fold!(|w, _| w[0] += 1),
                (_, None) => {}
                (AccKind::SumInt, Some(c)) => {
                    let v = int_values(c);
                    fold!(|w, row| {
                        let sum = ((w[1] as i128) << 64 | w[0] as u64 as i128) + v[row] as i128;
                        w[0] = sum as i64;
                        w[1] = (sum >> 64) as i64;
                        w[2] = 1;
                    })
                }
                (AccKind::SumDouble, Some(c)) => {
                    let v = double_values(c);
                    fold!(|w, row| {
                        w[0] = (f64::from_bits(w[0] as u64) + v[row]).to_bits() as i64;
                        w[1] = 1;
                    })
                }
                (AccKind::Avg, Some(c)) => {
                    let v = double_values(c);
                    fold!(|w, row| {
                        w[0] = (f64::from_bits(w[0] as u64) + v[row]).to_bits() as i64;
                        w[1] += 1;
                    })
                }
                (AccKind::ExtremeInt { max: true }, Some(c)) => {
                    let v = int_values(c);
                    fold!(|w, row| {
                        if w[1] == 0 || v[row] > w[0] {
                            w[0] = v[row];
                        }
                        w[1] = 1;
                    })
                }
                (AccKind::ExtremeInt { max: false }, Some(c)) => {
                    let v = int_values(c);
                    fold!(|w, row| {
                        if w[1] == 0 || v[row] < w[0] {
                            w[0] = v[row];
                        }
                        w[1] = 1;
                    })
                }
                (AccKind::ExtremeDouble { max }, Some(c)) => {
                    let v = double_values(c);
                    let want = if max {
                        std::cmp::Ordering::Greater
                    } else {
                        std::cmp::Ordering::Less
                    };
                    fold!(|w, row| {
                        if w[1] == 0 || v[row].total_cmp(&f64::from_bits(w[0] as u64)) == want {
                            w[0] = v[row].to_bits() as i64;
                        }
                        w[1] = 1;
                    })
                }
                (
                    AccKind::ExtremeText { max, index },
                    Some(Column {
                        data: ColumnData::Text(v),
                        ..
                    }),
                ) => {
                    let texts = &mut self.texts[index];
                    let mut visit = |slot: usize, row: usize| {
                        let cur = &mut texts[slot];
                        let x = &v[row];
                        if cur.as_ref().is_none_or(|c| if max { x > c } else { x < c }) {
                            *cur = Some(x.clone());
                        }
                    };
                    for (i, &slot) in slots.iter().enumerate() {
                        let row = selection.map_or(i, |sel| sel[i] as usize);
                        if !nulls.is_some_and(|n| n[row]) {
                            visit(slot as usize, row);
                        }
                    }
                }
                (AccKind::ExtremeText { .. }, Some(_)) => {
                    unreachable!("text aggregates read text columns")
                }
            }
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

    /// The post-aggregation row of one group: `[group values…, aggregate results…]`.
    fn group_row(&self, slot: usize) -> Result<Vec<Value>, ExecError> {
        let mut row = Vec::with_capacity(self.group_types.len() + self.layout.len());
        match &self.index {
            GroupIndex::Fixed1 { keys, .. } => push_fixed(&mut row, &keys[slot], &self.group_types),
            GroupIndex::Fixed2 { keys, .. } => push_fixed(&mut row, &keys[slot], &self.group_types),
            GroupIndex::General { keys, .. } => match (&keys[slot], self.group_types.as_slice()) {
                (Key::Composite(parts), types) => {
                    row.extend(parts.iter().zip(types).map(|(k, t)| key_value(k, *t)))
                }
                (k, [t]) => row.push(key_value(k, *t)),
                _ => {}
            },
        }
        let rec = &self.records[slot * self.stride..(slot + 1) * self.stride];
        for (l, spec) in self.layout.iter().zip(&self.plan.aggs) {
            row.push(self.result(l, &rec[l.offset..l.offset + l.kind.words()], slot, spec)?);
        }
        Ok(row)
    }

    /// The output row of group `slot` as the view's SELECT shows it, or `None` when its
    /// HAVING hides the group.
    pub fn output_row(&self, slot: usize) -> Result<Option<Vec<Value>>, ExecError> {
        let post = self.group_row(slot)?;
        if let Some(h) = &self.plan.having {
            if !h.is_true(post.as_slice())? {
                return Ok(None);
            }
        }
        let row = self
            .plan
            .output
            .iter()
            .map(|e| e.eval(post.as_slice()))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Some(row))
    }

    /// The output rows a WHERE can only match within one group, found through the group
    /// index instead of a scan: when one of `filter`'s top-level `AND`ed terms compares the
    /// output column of the single GROUP BY column with a literal of its type, for equality.
    /// `None` when no such term exists (scan every group). The caller still applies the whole
    /// WHERE to the rows returned.
    pub fn lookup_rows(&self, filter: Option<&Expr>) -> Result<Option<Vec<Vec<Value>>>, ExecError> {
        let (Some(filter), [group_type]) = (filter, self.group_types.as_slice()) else {
            return Ok(None);
        };
        // Output columns that are the group column itself.
        let is_group_column = |index: usize| {
            matches!(
                self.plan.output.get(index),
                Some(Expr::Column { index: 0, .. })
            )
        };
        let mut terms = vec![filter];
        let mut probe = None;
        while let Some(e) = terms.pop() {
            match e {
                Expr::Binary {
                    op: BinOp::And,
                    left,
                    right,
                    ..
                } => terms.extend([&**left, &**right]),
                Expr::Binary {
                    op: BinOp::Eq,
                    left,
                    right,
                    ..
                } => match (&**left, &**right) {
                    (Expr::Column { index, .. }, Expr::Literal(v))
                    | (Expr::Literal(v), Expr::Column { index, .. })
                        if is_group_column(*index) && v.data_type() == Some(*group_type) =>
                    {
                        probe = Some(v);
                        break;
                    }
                    _ => {}
                },
                _ => {}
            }
        }
        let Some(value) = probe else {
            return Ok(None);
        };
        let key = Key::from_value(value);
        let slot = match &self.index {
            GroupIndex::Fixed1 { map, .. } => {
                key_to_fixed::<1>(&key, 1).and_then(|k| map.get(&k).copied())
            }
            GroupIndex::Fixed2 { .. } => None,
            GroupIndex::General { map, .. } => map.get(&key).copied(),
        };
        let mut rows = Vec::new();
        if let Some(slot) = slot {
            rows.extend(self.output_row(slot as usize)?);
        }
        Ok(Some(rows))
    }

    /// The group-by values of group `slot` (empty for a view without GROUP BY).
    pub fn group_key(&self, slot: usize) -> Result<Vec<Value>, ExecError> {
        let mut row = self.group_row(slot)?;
        row.truncate(self.group_types.len());
        Ok(row)
    }

    /// The groups a prepared batch touches (after [`assign_slots`](Self::assign_slots)),
    /// each once, in slot order.
    pub fn touched(prepared: &Prepared<'_>) -> Vec<u32> {
        let mut slots = prepared.slots.clone();
        slots.sort_unstable();
        slots.dedup();
        slots
    }

    /// The output rows, one per group in the order groups first appeared. A plan without
    /// GROUP BY yields exactly one row even before any input.
    pub fn rows(&self) -> Result<Vec<Vec<Value>>, ExecError> {
        let mut out = Vec::with_capacity(self.len().max(1));
        let empty_global = self.plan.groups.is_empty() && self.is_empty();
        let post_rows: Box<dyn Iterator<Item = Result<Vec<Value>, ExecError>>> = if empty_global {
            Box::new(std::iter::once(Ok(self
                .plan
                .aggs
                .iter()
                .map(|a| {
                    if matches!(a.func, AggFunc::Count | AggFunc::CountStar) {
                        Value::Int(0)
                    } else {
                        Value::Null
                    }
                })
                .collect())))
        } else {
            Box::new((0..self.len()).map(|s| self.group_row(s)))
        };
        for post in post_rows {
            let post = post?;
            if let Some(h) = &self.plan.having {
                if !h.is_true(post.as_slice())? {
                    continue;
                }
            }
            out.push(
                self.plan
                    .output
                    .iter()
                    .map(|e| e.eval(post.as_slice()))
                    .collect::<Result<Vec<_>, _>>()?,
            );
        }
        Ok(out)
    }
}

/// Calls `f(record words from offset, row)` for every prepared row whose argument is not
/// NULL. The four shapes of selection and NULL mask get their own loop.
#[inline(always)]
fn fold_rows(
    records: &mut [i64],
    stride: usize,
    offset: usize,
    slots: &[u32],
    selection: Option<&[u32]>,
    nulls: Option<&[bool]>,
    mut f: impl FnMut(&mut [i64], usize),
) {
    let words = stride - offset;
    let mut apply = |slot: u32, row: usize| {
        let base = slot as usize * stride + offset;
        f(&mut records[base..base + words], row)
    };
    match (selection, nulls) {
        (None, None) => {
            for (row, &s) in slots.iter().enumerate() {
                apply(s, row);
            }
        }
        (None, Some(n)) => {
            for (row, &s) in slots.iter().enumerate() {
                if !n[row] {
                    apply(s, row);
                }
            }
        }
        (Some(sel), None) => {
            for (&s, &row) in slots.iter().zip(sel) {
                apply(s, row as usize);
            }
        }
        (Some(sel), Some(n)) => {
            for (&s, &row) in slots.iter().zip(sel) {
                if !n[row as usize] {
                    apply(s, row as usize);
                }
            }
        }
    }
}

/// Why a snapshot's view state could not be loaded.
pub enum ImportError {
    Full(Full),
    Shape(String),
}

impl<P: PhysicalProfile> AggState<P> {
    /// The groups in slot order, as keys, records and text extremes.
    pub fn export(&self) -> ObjectState {
        let keys: Vec<Key> = match &self.index {
            GroupIndex::Fixed1 { keys, .. } => keys.iter().map(fixed_to_key).collect(),
            GroupIndex::Fixed2 { keys, .. } => keys.iter().map(fixed_to_key).collect(),
            GroupIndex::General { keys, .. } => keys.clone(),
        };
        let mut records = self.records.clone();
        records.resize(keys.len() * self.stride, 0);
        let texts = self
            .texts
            .iter()
            .map(|t| {
                let mut t = t.clone();
                t.resize(keys.len(), None);
                t
            })
            .collect();
        ObjectState::View {
            keys,
            records,
            texts,
        }
    }

    /// Loads exported groups into this (empty) state.
    pub fn import(
        &mut self,
        keys: Vec<Key>,
        records: Vec<i64>,
        texts: Vec<Vec<Option<Arc<str>>>>,
    ) -> Result<(), ImportError> {
        if !self.is_empty() {
            return Err(ImportError::Shape("the view already holds groups".into()));
        }
        if records.len() != keys.len() * self.stride
            || texts.len() != self.texts.len()
            || texts.iter().any(|t| t.len() != keys.len())
        {
            return Err(ImportError::Shape(format!(
                "{} groups with {} record words and {} text columns, expected {} words per group and {} text columns",
                keys.len(),
                records.len(),
                texts.len(),
                self.stride,
                self.texts.len()
            )));
        }
        if P::STATE_CAN_GROW {
            // Size the index once instead of growing it through every power of two.
            let n = keys.len();
            match &mut self.index {
                GroupIndex::Fixed1 { map, keys } => {
                    *map = StateBackend::with_capacity(n);
                    keys.reserve(n);
                }
                GroupIndex::Fixed2 { map, keys } => {
                    *map = StateBackend::with_capacity(n);
                    keys.reserve(n);
                }
                GroupIndex::General { map, keys } => {
                    *map = StateBackend::with_capacity(n);
                    keys.reserve(n);
                }
            }
        }
        let width = self.group_types.len();
        let result = keys.into_iter().try_for_each(|key| {
            let next = self.len() as u32;
            let inserted = match &mut self.index {
                GroupIndex::Fixed1 { map, keys } => key_to_fixed::<1>(&key, width)
                    .map(|k| (map, keys, k))
                    .map(|(m, ks, k)| slot_for(m, ks, k)),
                GroupIndex::Fixed2 { map, keys } => key_to_fixed::<2>(&key, width)
                    .map(|k| (map, keys, k))
                    .map(|(m, ks, k)| slot_for(m, ks, k)),
                GroupIndex::General { map, keys } => Some(slot_for(map, keys, key)),
            };
            match inserted {
                None => Err(ImportError::Shape(
                    "a group key does not fit the view's key columns".into(),
                )),
                Some(Err(full)) => Err(ImportError::Full(full)),
                Some(Ok(slot)) if slot != next => {
                    Err(ImportError::Shape("duplicate group key".into()))
                }
                Some(Ok(_)) => Ok(()),
            }
        });
        if let Err(e) = result {
            self.rollback(0);
            return Err(e);
        }
        self.records = records;
        self.texts = texts;
        Ok(())
    }
}

fn fixed_to_key<const N: usize>(k: &FixedKey<N>) -> Key {
    let part = |i: usize| {
        if k.nulls & (1 << i) != 0 {
            Key::Null
        } else {
            Key::Int(k.values[i])
        }
    };
    if N == 1 {
        part(0)
    } else {
        Key::Composite((0..N).map(part).collect())
    }
}

fn key_to_fixed<const N: usize>(key: &Key, width: usize) -> Option<FixedKey<N>> {
    let parts: &[Key] = match key {
        Key::Composite(parts) if width != 1 => parts,
        single if width == 1 => std::slice::from_ref(single),
        _ => return None,
    };
    if parts.len() != N {
        return None;
    }
    let mut k = FixedKey {
        values: [0; N],
        nulls: 0,
    };
    for (i, p) in parts.iter().enumerate() {
        match p {
            Key::Int(v) => k.values[i] = *v,
            Key::Null => k.nulls |= 1 << i,
            _ => return None,
        }
    }
    Some(k)
}

#[inline]
fn slot_for<K: Eq + Hash + Clone, S: StateBackend<K, u32>>(
    map: &mut S,
    keys: &mut Vec<K>,
    key: K,
) -> Result<u32, Full> {
    let next = keys.len() as u32;
    let (slot, inserted) = map.get_or_insert_with(key.clone(), || next)?;
    if inserted {
        keys.push(key);
    }
    Ok(*slot)
}

fn key_value(k: &Key, ty: DataType) -> Value {
    match k {
        Key::Null => Value::Null,
        k => k.to_value(ty),
    }
}

fn push_fixed<const N: usize>(row: &mut Vec<Value>, key: &FixedKey<N>, types: &[DataType]) {
    for (i, (v, t)) in key.values.iter().zip(types).enumerate() {
        row.push(if key.nulls & (1 << i) != 0 {
            Value::Null
        } else {
            Key::Int(*v).to_value(*t)
        });
    }
}

/// The values of a column as i64 (BIGINT, TIMESTAMP, BOOLEAN as 0/1, DOUBLE as canonical bits).
fn fixed_column<'a>(
    e: &Expr,
    columns: &'a [Column],
    rows: usize,
) -> Result<FixedColumn<'a>, ExecError> {
    if let Some(i) = e.as_column() {
        let col = &columns[i];
        let nulls = col.nulls.as_deref().map(Cow::Borrowed);
        return Ok(match &col.data {
            ColumnData::BigInt(v) | ColumnData::Timestamp(v) => {
                (Cow::Borrowed(v.as_slice()), nulls)
            }
            ColumnData::Double(v) => (
                Cow::Owned(
                    v.iter()
                        .map(|d| crate::types::normalize_bits(*d) as i64)
                        .collect(),
                ),
                nulls,
            ),
            ColumnData::Boolean(v) => (Cow::Owned(v.iter().map(|b| *b as i64).collect()), nulls),
            ColumnData::Text(_) => unreachable!("text keys use the general index"),
        });
    }
    // A computed key (e.g. a tumbling window): evaluated per row.
    let mut vals = Vec::with_capacity(rows);
    let mut null_rows: Option<Vec<bool>> = None;
    for r in 0..rows {
        let v = e.eval(&BatchRow { columns, row: r })?;
        match Key::from_value(&v) {
            Key::Int(x) => vals.push(x),
            _ => {
                vals.push(0);
                null_rows.get_or_insert_with(|| vec![false; rows])[r] = true;
            }
        }
    }
    Ok((Cow::Owned(vals), null_rows.map(Cow::Owned)))
}

/// An aggregate argument as a column: borrowed when it is a plain column reference.
fn evaluate_column<'a>(
    e: &Expr,
    columns: &'a [Column],
    rows: usize,
) -> Result<Cow<'a, Column>, ExecError> {
    if let Some(i) = e.as_column() {
        return Ok(Cow::Borrowed(&columns[i]));
    }
    let ty = e.ty().unwrap_or(DataType::BigInt);
    let values = (0..rows)
        .map(|r| e.eval(&BatchRow { columns, row: r }))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Cow::Owned(Column::from_values(ty, &values)))
}

fn int_values(c: &Column) -> Cow<'_, [i64]> {
    match &c.data {
        ColumnData::BigInt(v) | ColumnData::Timestamp(v) => Cow::Borrowed(v),
        ColumnData::Boolean(v) => Cow::Owned(v.iter().map(|b| *b as i64).collect()),
        ColumnData::Double(v) => Cow::Owned(v.iter().map(|d| *d as i64).collect()),
        ColumnData::Text(_) => Cow::Owned(Vec::new()),
    }
}

fn double_values(c: &Column) -> Cow<'_, [f64]> {
    match &c.data {
        ColumnData::Double(v) => Cow::Borrowed(v),
        ColumnData::BigInt(v) | ColumnData::Timestamp(v) => {
            Cow::Owned(v.iter().map(|x| *x as f64).collect())
        }
        ColumnData::Boolean(v) => Cow::Owned(v.iter().map(|b| *b as i64 as f64).collect()),
        ColumnData::Text(_) => Cow::Owned(Vec::new()),
    }
}

impl<P: PhysicalProfile> AggState<P> {
    /// The final value of one aggregate from its words of a group record.
    fn result(
        &self,
        l: &AccLayout,
        w: &[i64],
        slot: usize,
        spec: &AggSpec,
    ) -> Result<Value, ExecError> {
        Ok(match l.kind {
            AccKind::Count => Value::Int(w[0]),
            AccKind::SumInt if w[2] == 0 => Value::Null,
            AccKind::SumInt => {
                let sum = (w[1] as i128) << 64 | w[0] as u64 as i128;
                Value::Int(
                    i64::try_from(sum).map_err(|_| {
                        ExecError::Eval(format!("SUM overflows BIGINT (value {sum})"))
                    })?,
                )
            }
            AccKind::SumDouble if w[1] == 0 => Value::Null,
            AccKind::SumDouble => Value::Double(f64::from_bits(w[0] as u64)),
            AccKind::Avg if w[1] == 0 => Value::Null,
            AccKind::Avg => Value::Double(f64::from_bits(w[0] as u64) / w[1] as f64),
            AccKind::ExtremeInt { .. } | AccKind::ExtremeDouble { .. } if w[1] == 0 => Value::Null,
            AccKind::ExtremeInt { .. } => Key::Int(w[0]).to_value(spec.ty),
            AccKind::ExtremeDouble { .. } => Value::Double(f64::from_bits(w[0] as u64)),
            AccKind::ExtremeText { index, .. } => match &self.texts[index][slot] {
                Some(s) => Value::Text(s.clone()),
                None => Value::Null,
            },
        })
    }
}
