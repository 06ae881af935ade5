//! Change subscriptions of materialized views: after a batch is applied, every subscriber of
//! a view it touched hears what each touched group shows now.

use super::aggregate::{AggState, Prepared as PreparedAgg};
use crate::profile::PhysicalProfile;
use crate::types::Value;

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
}

impl Touched {
    /// `groups_before`: how many groups the view had before this batch created any.
    pub fn before<P: PhysicalProfile>(
        state: &AggState<P>,
        prepared: &PreparedAgg<'_>,
        groups_before: usize,
    ) -> Touched {
        let slots = AggState::<P>::touched(prepared);
        let shown_before = slots
            .iter()
            .map(|&slot| {
                (slot as usize) < groups_before
                    && matches!(state.output_row(slot as usize), Ok(Some(_)))
            })
            .collect();
        Touched {
            slots,
            shown_before,
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
        for (&slot, &was_shown) in self.slots.iter().zip(&self.shown_before) {
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
