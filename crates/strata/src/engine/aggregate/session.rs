//! Session windows: `FROM SESSION(src, ts, INTERVAL 'gap')`. Within a partition — the
//! values of the view's GROUP BY expressions other than `window_start` — rows whose
//! timestamps follow each other by less than `gap` form one session: `window_start` is its
//! first timestamp and `window_end` its last plus the gap. A row within `gap` of two
//! sessions merges them into one.
//!
//! A session is a group keyed by `(partition…, window_start)`. Its last timestamp is a
//! hidden `MAX(ts)` aggregate that the planner adds (and `window_end` reads), so a snapshot
//! needs nothing more: the index of each partition's sessions is rebuilt from group keys.
//!
//! The phases of the [module](super) hold:
//! 1. against the sessions as they are, each row is placed in a session and the batch's
//!    merges and backward extensions are worked out; a row is keyed by its session's start
//!    as it is now, or, for a new session, by the start it will have, so that phase 2 finds
//!    or creates groups as for any view;
//! 2. unchanged;
//! 3. the rows are folded, then merged sessions are combined (accumulators added, DISTINCT
//!    sets united and recounted), a session whose start moved is renamed, and the slots of
//!    the merged-away groups are compacted (the last group moves into each).

use super::accumulate::{add_wide, AccKind};
use super::distinct::DistinctKey;
use super::{AggState, Prepared};
use crate::batch::Column;
use crate::engine::batch_rows::BatchRow;
use crate::error::ExecError;
use crate::profile::PhysicalProfile;
use crate::sql::expr::Expr;
use crate::state::StateBackend;
use crate::types::{DataType, Key, Value};
use rustc_hash::{FxHashMap, FxHashSet};
use std::collections::BTreeSet;
use std::ops::Bound;

/// A session window of a grouped aggregation.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct SessionWindow {
    /// The timestamp, over the input's columns.
    pub ts: Expr,
    pub gap_ms: i64,
    /// The position of `window_start` among the GROUP BY expressions.
    pub start: usize,
    /// The hidden `MAX(ts)` aggregate: each session's last timestamp.
    pub last: usize,
}

impl SessionWindow {
    /// A canonical group key (of `width` group columns) split into its partition and its
    /// start (`None` for the session of rows without a timestamp).
    fn split(&self, key: &Key, width: usize) -> (Key, Option<i64>) {
        let start_of = |k: &Key| match k {
            Key::Int(s) => Some(*s),
            _ => None,
        };
        match key {
            Key::Composite(parts) if width > 1 => {
                let mut rest: Vec<Key> = Vec::with_capacity(width - 1);
                rest.extend(parts[..self.start].iter().cloned());
                rest.extend(parts[self.start + 1..].iter().cloned());
                (partition_key(rest), start_of(&parts[self.start]))
            }
            single => (partition_key(Vec::new()), start_of(single)),
        }
    }

    /// The canonical group key of the session of `partition` that starts at `start`.
    fn join(&self, partition: &Key, start: i64, width: usize) -> Key {
        if width == 1 {
            return Key::Int(start);
        }
        let mut parts: Vec<Key> = match (partition, width) {
            (Key::Composite(parts), w) if w != 2 => parts.to_vec(),
            (single, _) => vec![single.clone()],
        };
        parts.insert(self.start, Key::Int(start));
        Key::Composite(parts.into())
    }
}

/// The key of a partition of `parts` values: the value itself for one, a composite
/// otherwise (as group keys are).
fn partition_key(mut parts: Vec<Key>) -> Key {
    if parts.len() == 1 {
        parts.pop().expect("one part")
    } else {
        Key::Composite(parts.into())
    }
}

/// What a batch does to one existing session.
#[derive(Debug)]
pub(super) struct SessionChange {
    pub partition: Key,
    /// Its start now: the key the batch's rows in it are folded under.
    current: i64,
    /// Its start after the batch (earlier when a row extends it backwards).
    start: i64,
    /// The starts of the sessions merged into it.
    merged: Vec<i64>,
}

/// The starts of each partition's sessions.
#[derive(Default)]
pub(super) struct SessionIndex {
    starts: FxHashMap<Key, BTreeSet<i64>>,
}

impl SessionIndex {
    fn insert(&mut self, partition: Key, start: i64) {
        self.starts.entry(partition).or_default().insert(start);
    }

    fn remove(&mut self, partition: &Key, start: i64) {
        if let Some(set) = self.starts.get_mut(partition) {
            set.remove(&start);
            if set.is_empty() {
                self.starts.remove(partition);
            }
        }
    }

    /// The starts of the sessions that rows at `lo..=hi` can reach: the last one starting
    /// at or before `lo`, and every one starting before `hi + gap`. (Sessions are more than
    /// `gap` apart, so one that starts earlier ends before `lo`.)
    fn near(&self, partition: &Key, lo: i64, hi: i64, gap: i64) -> Vec<i64> {
        let Some(set) = self.starts.get(partition) else {
            return Vec::new();
        };
        let mut near: Vec<i64> = set.range(..=lo).next_back().copied().into_iter().collect();
        let limit = hi.saturating_add(gap);
        if limit > lo {
            near.extend(set.range((Bound::Excluded(lo), Bound::Excluded(limit))));
        }
        near
    }
}

/// One item of a partition's sweep: an existing session, or a row of the batch.
struct Span {
    start: i64,
    last: i64,
    /// The batch row, or `None` for an existing session.
    row: Option<u32>,
}

impl<P: PhysicalProfile> AggState<P> {
    /// Phase 1 of a session view: places each selected row in a session and expands the
    /// input with its `window_start` (as phase 2 must look it up) and an unread
    /// `window_end`. Changes nothing.
    pub(super) fn prepare_sessions(
        &self,
        session: &SessionWindow,
        columns: &[Column],
        rows: usize,
    ) -> Result<Prepared<'static>, ExecError> {
        let selection = self.select(columns, rows)?;
        let mut by_partition: FxHashMap<Key, Vec<(i64, u32)>> = FxHashMap::default();
        let mut place = |r: usize| -> Result<(), ExecError> {
            let row = BatchRow { columns, row: r };
            // A row without a timestamp falls in its partition's NULL session.
            let Value::Timestamp(t) = session.ts.eval(&row)? else {
                return Ok(());
            };
            let mut parts = Vec::with_capacity(self.plan.groups.len().saturating_sub(1));
            for (i, g) in self.plan.groups.iter().enumerate() {
                if i != session.start {
                    parts.push(Key::from_value(&g.eval(&row)?));
                }
            }
            by_partition
                .entry(partition_key(parts))
                .or_default()
                .push((t, r as u32));
            Ok(())
        };
        match &selection {
            Some(sel) => sel.iter().try_for_each(|&r| place(r as usize))?,
            None => (0..rows).try_for_each(&mut place)?,
        }
        let mut starts: Vec<Option<i64>> = vec![None; rows];
        let mut changes = Vec::new();
        for (partition, mut points) in by_partition {
            points.sort_unstable();
            let (lo, hi) = (points[0].0, points[points.len() - 1].0);
            let mut spans: Vec<Span> = self
                .sessions
                .near(&partition, lo, hi, session.gap_ms)
                .into_iter()
                .map(|start| Span {
                    start,
                    last: self.session_last(session, &partition, start),
                    row: None,
                })
                .collect();
            spans.extend(points.into_iter().map(|(t, row)| Span {
                start: t,
                last: t,
                row: Some(row),
            }));
            // Existing sessions first among equal starts: each run's survivor is its
            // earliest existing session.
            spans.sort_by_key(|s| (s.start, s.row.is_some()));
            let mut i = 0;
            while i < spans.len() {
                let mut last = spans[i].last;
                let mut j = i + 1;
                while j < spans.len()
                    && (spans[j].start as i128) < last as i128 + session.gap_ms as i128
                {
                    last = last.max(spans[j].last);
                    j += 1;
                }
                let run = &spans[i..j];
                let survivor = run.iter().find(|s| s.row.is_none()).map(|s| s.start);
                let key_start = survivor.unwrap_or(run[0].start);
                for s in run {
                    if let Some(row) = s.row {
                        starts[row as usize] = Some(key_start);
                    }
                }
                if let Some(current) = survivor {
                    let merged: Vec<i64> = run
                        .iter()
                        .filter(|s| s.row.is_none() && s.start != current)
                        .map(|s| s.start)
                        .collect();
                    if run[0].start != current || !merged.is_empty() {
                        changes.push(SessionChange {
                            partition: partition.clone(),
                            current,
                            start: run[0].start,
                            merged,
                        });
                    }
                }
                i = j;
            }
        }
        let mut expanded = columns.to_vec();
        let window_start = starts
            .iter()
            .map(|s| s.map_or(Value::Null, Value::Timestamp))
            .collect::<Vec<_>>();
        expanded.push(Column::from_values(DataType::Timestamp, &window_start));
        expanded.push(Column::from_values(
            DataType::Timestamp,
            &vec![Value::Null; rows],
        ));
        let mut prepared = self
            .prepare_selected(&expanded, rows, selection)?
            .into_owned();
        prepared.sessions = changes;
        Ok(prepared)
    }

    /// The last timestamp of the session of `partition` starting at `start`.
    fn session_last(&self, session: &SessionWindow, partition: &Key, start: i64) -> i64 {
        let width = self.group_types.len();
        let slot = self
            .index
            .slot_of(&session.join(partition, start, width), width)
            .expect("the session index names existing groups") as usize;
        let offset = self.layout[session.last].offset;
        self.records[slot * self.stride + offset]
    }

    /// The partition a group key belongs to (its shard in a cluster follows it, so that a
    /// partition's sessions live together and can merge).
    pub(super) fn session_partition(&self, session: &SessionWindow, key: &Key) -> Key {
        session.split(key, self.group_types.len()).0
    }

    /// Rebuilds the session index from the group keys.
    pub(super) fn index_sessions(&mut self, from_slot: usize) {
        let Some(session) = self.plan.session.clone() else {
            return;
        };
        let width = self.group_types.len();
        for slot in from_slot..self.len() {
            if let (partition, Some(start)) = session.split(&self.index.key_at(slot), width) {
                self.sessions.insert(partition, start);
            }
        }
    }

    /// Phase 3 of a session view, after the rows are folded: indexes the sessions the batch
    /// created (those from slot `groups_before` on), then merges and renames sessions.
    pub(super) fn apply_sessions(
        &mut self,
        session: &SessionWindow,
        prepared: &Prepared<'_>,
        groups_before: usize,
    ) {
        self.index_sessions(groups_before);
        let width = self.group_types.len();
        let mut merges: Vec<(u32, u32)> = Vec::new();
        for c in &prepared.sessions {
            let survivor = self
                .index
                .slot_of(&session.join(&c.partition, c.current, width), width)
                .expect("a changed session exists");
            for &start in &c.merged {
                let key = session.join(&c.partition, start, width);
                let slot = self
                    .index
                    .slot_of(&key, width)
                    .expect("a merged session exists");
                self.combine(slot as usize, survivor as usize);
                self.index.unmap(&key, width);
                self.sessions.remove(&c.partition, start);
                merges.push((slot, survivor));
            }
            if c.start != c.current {
                let key = session.join(&c.partition, c.start, width);
                self.index.rekey(survivor, &key, width);
                self.sessions.remove(&c.partition, c.current);
                self.sessions.insert(c.partition.clone(), c.start);
            }
        }
        self.compact(&merges);
    }

    /// Adds the accumulators of group `from` to those of group `into` (DISTINCT aggregates
    /// are recounted from their sets after [`compact`](Self::compact)).
    fn combine(&mut self, from: usize, into: usize) {
        let stride = self.stride;
        for l in self.layout.iter().filter(|l| l.distinct.is_none()) {
            let words = l.kind.words();
            let src: Vec<i64> = self.records[from * stride + l.offset..][..words].to_vec();
            let dst = &mut self.records[into * stride + l.offset..][..words];
            match l.kind {
                AccKind::Count => dst[0] += src[0],
                AccKind::SumInt | AccKind::AvgInt => {
                    let sum = super::accumulate::wide(dst) + super::accumulate::wide(&src);
                    super::accumulate::set_wide(dst, sum);
                    dst[2] = if l.kind == AccKind::SumInt {
                        dst[2] | src[2]
                    } else {
                        dst[2] + src[2]
                    };
                }
                AccKind::SumDouble | AccKind::AvgDouble => {
                    let sum = f64::from_bits(dst[0] as u64) + f64::from_bits(src[0] as u64);
                    dst[0] = sum.to_bits() as i64;
                    dst[1] = if l.kind == AccKind::SumDouble {
                        dst[1] | src[1]
                    } else {
                        dst[1] + src[1]
                    };
                }
                AccKind::ExtremeInt { max } => {
                    let better = if max {
                        src[0] > dst[0]
                    } else {
                        src[0] < dst[0]
                    };
                    if src[1] != 0 && (dst[1] == 0 || better) {
                        dst[0] = src[0];
                        dst[1] = 1;
                    }
                }
                AccKind::ExtremeDouble { max } => {
                    let (s, d) = (f64::from_bits(src[0] as u64), f64::from_bits(dst[0] as u64));
                    let want = if max {
                        std::cmp::Ordering::Greater
                    } else {
                        std::cmp::Ordering::Less
                    };
                    if src[1] != 0 && (dst[1] == 0 || s.total_cmp(&d) == want) {
                        dst[0] = src[0];
                        dst[1] = 1;
                    }
                }
                AccKind::ExtremeText { max, index } => {
                    let texts = &mut self.texts[index];
                    if let Some(s) = texts[from].clone() {
                        let better =
                            texts[into]
                                .as_ref()
                                .is_none_or(|d| if max { s > *d } else { s < *d });
                        if better {
                            texts[into] = Some(s);
                        }
                    }
                }
            }
        }
    }

    /// Drops the merged-away groups of `merges` (`(merged, survivor)` slots): the last
    /// group moves into each freed slot. DISTINCT pairs follow their groups, and the
    /// survivors' DISTINCT aggregates are recounted from their united sets.
    fn compact(&mut self, merges: &[(u32, u32)]) {
        if merges.is_empty() {
            return;
        }
        let width = self.group_types.len();
        let stride = self.stride;
        let mut freed: Vec<u32> = merges.iter().map(|m| m.0).collect();
        freed.sort_unstable_by(|a, b| b.cmp(a));
        // Where groups moved: the original slot of each position that changed, and back.
        let mut origin_at: FxHashMap<u32, u32> = FxHashMap::default();
        let mut moved: FxHashMap<u32, u32> = FxHashMap::default();
        for &slot in &freed {
            let last = (self.len() - 1) as u32;
            self.index.swap_remove(slot as usize, width);
            if slot != last {
                self.records.copy_within(
                    last as usize * stride..(last as usize + 1) * stride,
                    slot as usize * stride,
                );
                let origin = origin_at.remove(&last).unwrap_or(last);
                origin_at.insert(slot, origin);
                moved.insert(origin, slot);
            }
            self.records.truncate(last as usize * stride);
            for t in &mut self.texts {
                t.swap_remove(slot as usize);
            }
        }
        if self.distinct.is_empty() {
            return;
        }
        let now = |slot: u32| moved.get(&slot).copied().unwrap_or(slot);
        let merged_into: FxHashMap<u32, u32> = merges.iter().map(|&(m, s)| (m, now(s))).collect();
        let target = |slot: u32| match merged_into.get(&slot) {
            Some(&s) => Some(s),
            None => moved.get(&slot).copied(),
        };
        for set in &mut self.distinct {
            let follow: Vec<DistinctKey> = set
                .iter()
                .filter(|(k, ())| target(k.slot).is_some())
                .map(|(k, ())| k.clone())
                .collect();
            for k in &follow {
                set.remove(k);
            }
            for k in follow {
                let slot = target(k.slot).expect("filtered above");
                // A value both groups had is kept once.
                set.insert(
                    DistinctKey {
                        slot,
                        value: k.value,
                    },
                    (),
                )
                .expect("as many pairs were removed first");
            }
        }
        let survivors: FxHashSet<u32> = merged_into.values().copied().collect();
        self.recount_distinct(&survivors);
    }

    /// Recomputes the DISTINCT aggregates of groups `slots` from their sets, in a fixed
    /// order of values (so that a DOUBLE sum is the same in every tier).
    fn recount_distinct(&mut self, slots: &FxHashSet<u32>) {
        for l in self.layout.clone() {
            let Some(d) = l.distinct else { continue };
            let mut values: FxHashMap<u32, Vec<Key>> = FxHashMap::default();
            for (k, ()) in self.distinct[d].iter() {
                if slots.contains(&k.slot) {
                    values.entry(k.slot).or_default().push(k.value.clone());
                }
            }
            for &slot in slots {
                let words =
                    &mut self.records[slot as usize * self.stride + l.offset..][..l.kind.words()];
                words.fill(0);
                let mut vals = values.remove(&slot).unwrap_or_default();
                vals.sort_unstable_by_key(|v| match v {
                    Key::Int(x) => *x,
                    _ => 0,
                });
                for v in vals {
                    let x = match v {
                        Key::Int(x) => x,
                        _ => 0,
                    };
                    match l.kind {
                        AccKind::Count => words[0] += 1,
                        AccKind::SumInt => {
                            add_wide(words, x);
                            words[2] = 1;
                        }
                        AccKind::AvgInt => {
                            add_wide(words, x);
                            words[2] += 1;
                        }
                        AccKind::SumDouble | AccKind::AvgDouble => {
                            let sum = f64::from_bits(words[0] as u64) + f64::from_bits(x as u64);
                            words[0] = sum.to_bits() as i64;
                            words[1] = if l.kind == AccKind::SumDouble {
                                1
                            } else {
                                words[1] + 1
                            };
                        }
                        _ => unreachable!("DISTINCT is planned for COUNT, SUM and AVG only"),
                    }
                }
            }
        }
    }
}

/// What subscribers of a session view need to know of a batch before it is applied.
pub(crate) struct SessionOutcome {
    /// Groups whose key disappears: merged away, or renamed by a new start.
    pub gone: Vec<u32>,
    /// Groups renamed (shown under a new key after the batch).
    pub renamed: FxHashSet<u32>,
    /// The canonical key each of the touched slots has after the batch.
    pub keys_after: Vec<Key>,
}

impl<P: PhysicalProfile> AggState<P> {
    /// The outcome of `prepared` (slots assigned, not accumulated) for the groups `slots`.
    pub(crate) fn session_outcome(
        &self,
        prepared: &Prepared<'_>,
        slots: &[u32],
    ) -> Option<SessionOutcome> {
        let session = self.plan.session.as_ref()?;
        let width = self.group_types.len();
        let slot_of = |start: i64, partition: &Key| {
            self.index
                .slot_of(&session.join(partition, start, width), width)
                .expect("a changed session exists")
        };
        let mut gone = Vec::new();
        let mut renamed: FxHashMap<u32, Key> = FxHashMap::default();
        for c in &prepared.sessions {
            gone.extend(c.merged.iter().map(|&m| slot_of(m, &c.partition)));
            if c.start != c.current {
                let survivor = slot_of(c.current, &c.partition);
                gone.push(survivor);
                renamed.insert(survivor, session.join(&c.partition, c.start, width));
            }
        }
        let keys_after = slots
            .iter()
            .map(|&s| {
                renamed
                    .get(&s)
                    .cloned()
                    .unwrap_or_else(|| self.index.key_at(s as usize))
            })
            .collect();
        Some(SessionOutcome {
            gone,
            renamed: renamed.into_keys().collect(),
            keys_after,
        })
    }

    /// The slot of the group whose canonical key is `key`.
    pub(crate) fn slot_of_key(&self, key: &Key) -> Option<u32> {
        self.index.slot_of(key, self.group_types.len())
    }
}
