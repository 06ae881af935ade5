//! Accumulators: how each aggregate keeps its state inside a group's record, and the typed
//! loops that fold a prepared batch into the records.

use super::{AggState, Prepared};
use crate::batch::{Column, ColumnData};
use crate::profile::PhysicalProfile;
use std::borrow::Cow;

/// How one aggregate keeps its state inside a group's record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum AccKind {
    /// `[count]`
    Count,
    /// `[low, high, seen]`: an i128 sum, so that only the final value can overflow.
    SumInt,
    /// `[sum bits, seen]`
    SumDouble,
    /// `[low, high, n]`: an exact i128 sum of BIGINTs (no rounding however values cancel).
    AvgInt,
    /// `[sum bits, n]`
    AvgDouble,
    /// `[value, seen]`
    ExtremeInt { max: bool },
    /// `[value bits, seen]`
    ExtremeDouble { max: bool },
    /// Kept beside the records, in `texts[index]`.
    ExtremeText { max: bool, index: usize },
}

impl AccKind {
    pub(super) fn words(self) -> usize {
        match self {
            AccKind::Count => 1,
            AccKind::SumInt | AccKind::AvgInt => 3,
            AccKind::ExtremeText { .. } => 0,
            _ => 2,
        }
    }
}

/// The i128 in words `[low, high]`.
#[inline(always)]
pub(super) fn wide(w: &[i64]) -> i128 {
    (w[1] as i128) << 64 | w[0] as u64 as i128
}

/// Adds `x` to the i128 in words `[low, high]`.
#[inline(always)]
pub(super) fn add_wide(w: &mut [i64], x: i64) {
    set_wide(w, wide(w) + x as i128);
}

#[inline(always)]
pub(super) fn set_wide(w: &mut [i64], v: i128) {
    w[0] = v as i64;
    w[1] = (v >> 64) as i64;
}

#[derive(Clone, Copy, Debug)]
pub(super) struct AccLayout {
    pub(super) kind: AccKind,
    /// For a DISTINCT aggregate, its set of pairs in `AggState::distinct`.
    pub(super) distinct: Option<usize>,
    /// First word of this aggregate within a group's record.
    pub(super) offset: usize,
}

impl<P: PhysicalProfile> AggState<P> {
    /// Phase 3: folds the prepared rows into the accumulators. Cannot fail.
    ///
    /// One tight loop per aggregate, specialised by type, NULLs and selection: the branch
    /// on the aggregate's kind is taken once per batch, not once per row. Records are
    /// row-major, so the later loops find a batch's groups already in cache.
    pub fn accumulate(&mut self, prepared: &Prepared<'_>) {
        let groups_before = self.records.len().checked_div(self.stride).unwrap_or(0);
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
            // A DISTINCT aggregate folds only the rows whose (group, value) pair is new.
            let (slots, selection, nulls) = match l.distinct {
                Some(d) => {
                    let new = &prepared.distinct[d];
                    (new.slots.as_slice(), Some(new.rows.as_slice()), None)
                }
                None => (slots, selection, col.and_then(|c| c.nulls.as_deref())),
            };
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
                        add_wide(w, v[row]);
                        w[2] = 1;
                    })
                }
                (AccKind::AvgInt, Some(c)) => {
                    let v = int_values(c);
                    fold!(|w, row| {
                        add_wide(w, v[row]);
                        w[2] += 1;
                    })
                }
                (AccKind::SumDouble, Some(c)) => {
                    let v = double_values(c);
                    fold!(|w, row| {
                        w[0] = (f64::from_bits(w[0] as u64) + v[row]).to_bits() as i64;
                        w[1] = 1;
                    })
                }
                (AccKind::AvgDouble, Some(c)) => {
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
        if !self.distinct.is_empty() {
            self.insert_new_pairs(prepared);
        }
        if let Some(session) = self.plan.session.clone() {
            self.apply_sessions(&session, prepared, groups_before);
        }
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
