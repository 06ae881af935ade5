//! What a view shows: the row of a group (its HAVING applied), a lookup by the group key,
//! and every row.

use super::accumulate::{wide, AccKind, AccLayout};
use super::keys::{key_to_fixed, push_fixed, GroupIndex};
use super::{AggFunc, AggSpec, AggState, Prepared};
use crate::error::ExecError;
use crate::profile::PhysicalProfile;
use crate::sql::expr::Expr;
use crate::state::StateBackend;
use crate::types::{DataType, Key, Value};

impl<P: PhysicalProfile> AggState<P> {
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
        self.shown(&self.group_row(slot)?)
    }

    /// The output row of a post-aggregation row, or `None` when HAVING hides it.
    fn shown(&self, post: &[Value]) -> Result<Option<Vec<Value>>, ExecError> {
        if let Some(h) = &self.plan.having {
            if !h.is_true(post)? {
                return Ok(None);
            }
        }
        let row = self
            .plan
            .output
            .iter()
            .map(|e| e.eval(post))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Some(row))
    }

    /// How many times a group's row is shown: once, or, in a view without aggregates, as
    /// many times as the row arrived.
    fn copies(&self, post: &[Value]) -> usize {
        match self.plan.multiplicity.map(|i| &post[i]) {
            Some(Value::Int(n)) => *n as usize,
            _ => 1,
        }
    }

    /// The output rows a WHERE can only match within one group, found through the group
    /// index instead of a scan: when one of `filter`'s top-level `AND`ed terms compares the
    /// output column of the single GROUP BY column with a literal of its type, for equality.
    /// `None` when no such term exists (scan every group). The caller still applies the whole
    /// WHERE to the rows returned.
    pub fn lookup_rows(&self, filter: Option<&Expr>) -> Result<Option<Vec<Vec<Value>>>, ExecError> {
        let Some(key) = self.lookup_key(filter) else {
            return Ok(None);
        };
        let slot = match &self.index {
            GroupIndex::Fixed1 { map, .. } => {
                key_to_fixed::<1>(&key, 1).and_then(|k| map.get(&k).copied())
            }
            GroupIndex::Fixed2 { .. } => None,
            GroupIndex::General { map, .. } => map.get(&key).copied(),
        };
        let mut rows = Vec::new();
        if let Some(slot) = slot {
            let post = self.group_row(slot as usize)?;
            if let Some(row) = self.shown(&post)? {
                rows.extend(std::iter::repeat_n(row, self.copies(&post)));
            }
        }
        Ok(Some(rows))
    }

    /// Whether the view has no GROUP BY (one group, whose key is the empty composite).
    pub fn is_global(&self) -> bool {
        self.plan.groups.is_empty()
    }

    /// The group key a WHERE selects on its own, when one of its top-level `AND`ed terms
    /// compares the output column of the single GROUP BY column with a literal of its type.
    pub fn lookup_key(&self, filter: Option<&Expr>) -> Option<Key> {
        let [group_type] = self.group_types.as_slice() else {
            return None;
        };
        // A session's shard follows its partition, not its start.
        if self.plan.session.is_some() {
            return None;
        }
        // Output columns that are the group column itself.
        let is_group_column = |index: usize| {
            matches!(
                self.plan.output.get(index),
                Some(Expr::Column { index: 0, .. })
            )
        };
        filter?
            .equality(|index, v| is_group_column(index) && v.data_type() == Some(*group_type))
            .map(Key::from_value)
    }

    /// The group-by values of group `slot` (empty for a view without GROUP BY).
    pub fn group_key(&self, slot: usize) -> Result<Vec<Value>, ExecError> {
        let mut row = self.group_row(slot)?;
        row.truncate(self.group_types.len());
        Ok(row)
    }

    /// The types of the GROUP BY values (empty for a view without GROUP BY).
    #[cfg(feature = "cluster")]
    pub fn group_types(&self) -> &[DataType] {
        &self.group_types
    }

    /// Every group the view shows, as `[group values…, output row…]`: what a follower of
    /// the view's changes compares between two positions of the log. Groups hidden by HAVING
    /// are left out; a group whose row cannot be computed (an overflowing SUM) too.
    #[cfg(feature = "cluster")]
    pub fn shown_groups(&self) -> Vec<Vec<Value>> {
        (0..self.len())
            .filter_map(|slot| {
                let mut key = self.group_key(slot).ok()?;
                key.extend(self.output_row(slot).ok()??);
                Some(key)
            })
            .collect()
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
            if let Some(row) = self.shown(&post)? {
                out.extend(std::iter::repeat_n(row, self.copies(&post)));
            }
        }
        Ok(out)
    }

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
                let sum = wide(w);
                Value::Int(
                    i64::try_from(sum).map_err(|_| {
                        ExecError::Eval(format!("SUM overflows BIGINT (value {sum})"))
                    })?,
                )
            }
            AccKind::SumDouble if w[1] == 0 => Value::Null,
            AccKind::SumDouble => Value::Double(f64::from_bits(w[0] as u64)),
            AccKind::AvgInt if w[2] == 0 => Value::Null,
            AccKind::AvgInt => {
                // Quotient and remainder are exact; only the result is rounded, once each.
                let (sum, n) = (wide(w), w[2] as i128);
                Value::Double((sum / n) as f64 + (sum % n) as f64 / n as f64)
            }
            AccKind::AvgDouble if w[1] == 0 => Value::Null,
            AccKind::AvgDouble => Value::Double(f64::from_bits(w[0] as u64) / w[1] as f64),
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

fn key_value(k: &Key, ty: DataType) -> Value {
    match k {
        Key::Null => Value::Null,
        k => k.to_value(ty),
    }
}
