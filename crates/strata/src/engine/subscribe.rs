//! Change subscriptions of materialized views: after a batch is applied, every subscriber of
//! a view it touched hears what each touched group shows now.

use super::aggregate::{AggState, Prepared as PreparedAgg};
use crate::profile::PhysicalProfile;
use crate::types::{Key, Value};

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

/// What subscribers need to tell changes from a batch: the groups it touches, and whether
/// each was shown before the batch (to tell a deletion by HAVING). Taken after slots are
/// assigned and before accumulating.
pub(crate) struct Touched {
    slots: Vec<u32>,
    shown_before: Vec<bool>,
    /// Session windows: the GROUP BY values, shown before the batch, of the groups it
    /// merges away or renames.
    gone: Vec<Vec<Value>>,
    /// Session windows: the key each touched group has after the batch (merging moves
    /// groups between slots).
    keys_after: Option<Vec<Key>>,
}

impl Touched {
    /// `groups_before`: how many groups the view had before this batch created any.
    pub fn before<P: PhysicalProfile>(
        state: &AggState<P>,
        prepared: &PreparedAgg<'_>,
        groups_before: usize,
    ) -> Touched {
        let slots = AggState::<P>::touched(prepared);
        let shown = |slot: u32| {
            (slot as usize) < groups_before
                && matches!(state.output_row(slot as usize), Ok(Some(_)))
        };
        let mut shown_before: Vec<bool> = slots.iter().map(|&slot| shown(slot)).collect();
        let Some(outcome) = state.session_outcome(prepared, &slots) else {
            return Touched {
                slots,
                shown_before,
                gone: Vec::new(),
                keys_after: None,
            };
        };
        // A renamed group is deleted under its old key and shown anew under its new one.
        for (shown, slot) in shown_before.iter_mut().zip(&slots) {
            *shown &= !outcome.renamed.contains(slot);
        }
        let gone = outcome
            .gone
            .iter()
            .filter(|&&slot| shown(slot))
            .filter_map(|&slot| state.group_key(slot as usize).ok())
            .collect();
        Touched {
            slots,
            shown_before,
            gone,
            keys_after: Some(outcome.keys_after),
        }
    }

    /// Tells the subscribers what the touched groups show now; drops those that
    /// unsubscribe. A group whose row cannot be computed (an overflowing SUM) is skipped: a
    /// query on it reports the error.
    pub fn notify<P: PhysicalProfile>(
        &self,
        state: &AggState<P>,
        subscribers: &mut Vec<ViewSubscriber>,
    ) {
        for key in &self.gone {
            subscribers.retain_mut(|s| s(&ViewChange::Delete { key }));
        }
        for (i, (&slot, &was_shown)) in self.slots.iter().zip(&self.shown_before).enumerate() {
            let slot = match &self.keys_after {
                None => slot,
                Some(keys) => match state.slot_of_key(&keys[i]) {
                    Some(slot) => slot,
                    None => continue,
                },
            };
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
}

/// What a view shows, group by group, for following its changes from another node.
#[cfg(feature = "cluster")]
impl<P: PhysicalProfile> super::Kernel<P> {
    /// The types of a view's `[group values…, columns…]`, and how many group values lead.
    pub fn view_group_types(&self, name: &str) -> Option<(Vec<crate::types::DataType>, usize)> {
        let view = self.views.get(name)?;
        let keys = view.state.group_types();
        let mut types = keys.to_vec();
        types.extend(view.columns.iter().map(|(_, t)| *t));
        Some((types, keys.len()))
    }

    /// Every group view `name` shows in this kernel, as `[group values…, columns…]`.
    pub fn view_groups(&self, name: &str) -> Result<Vec<Vec<Value>>, crate::Error> {
        let view = self
            .views
            .get(name)
            .ok_or_else(|| super::kernel::unknown(crate::sql::ObjectKind::View, name))?;
        Ok(view.state.shown_groups())
    }
}
