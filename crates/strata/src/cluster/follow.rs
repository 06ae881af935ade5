//! Following a view's changes through any node (`Engine::subscribe`, `GET
//! /views/<name>/changes`). A view's groups live on the owners of their shards, so the node a
//! client follows through looks at every group the view shows each time the log moved (at
//! most every [`COALESCE`]) and tells its subscriber the difference with what it showed
//! before: the groups that changed (`Upsert`) and those no longer shown (`Delete`).
//!
//! Unlike one engine, which tells every batch's changes, changes made within one look are
//! told together (a group changed twice is told once, with its newest row); after the writes
//! stop, the last change told for each group is what a SELECT of the view returns. Each look
//! reads the whole view from its owners, and the node keeps what it showed: following suits
//! views of up to some hundred thousand groups.

use super::node::{lock, rows_of, Inner};
use super::rpc::Request;
use crate::engine::{unknown, ViewChange, ViewSubscriber};
use crate::error::Result;
use crate::profile::PhysicalProfile;
use crate::sql::ObjectKind;
use crate::types::{Key, Value};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

/// The shortest time between two looks at a view: the changes made within it are told
/// together.
pub(super) const COALESCE: Duration = Duration::from_millis(100);

/// A group as a follower last told it.
struct Group {
    key: Vec<Value>,
    row: Vec<Value>,
    /// The row in a form that compares exactly.
    canonical: Vec<Key>,
}

/// What a follower told last, per group key.
type Shown = HashMap<Key, Group>;

impl<P: PhysicalProfile> Inner<P> {
    /// Starts telling `subscriber` the changes of view `name` after this call (on a thread of
    /// its own, until the subscriber returns `false`, the view is dropped or the node stops).
    pub(super) fn follow(self: &Arc<Self>, name: &str, subscriber: ViewSubscriber) -> Result<()> {
        let at = self.catch_up()?;
        let Some((_, key_len)) = self.state().catalog.view_group_types(name) else {
            return Err(unknown(ObjectKind::View, name));
        };
        // What the view shows now, before this call returns: every change acknowledged
        // after it is told.
        let mut shown = Shown::new();
        tell(&mut shown, self.groups_at(name, at)?, key_len, &mut |_| {
            true
        });
        let view = name.to_string();
        self.spawn("strata-follow", move |node| {
            node.keep_following(&view, at, key_len, shown, subscriber)
        });
        Ok(())
    }

    fn keep_following(
        &self,
        view: &str,
        mut at: u64,
        key_len: usize,
        mut shown: Shown,
        mut subscriber: ViewSubscriber,
    ) {
        let mut failing = false;
        while !self.stopping() {
            if !self.wait_past(at, COALESCE * 2) {
                continue;
            }
            // Entries that arrive together are looked at together.
            std::thread::sleep(COALESCE);
            let now = *lock(&self.applied);
            if self.state().catalog.view_group_types(view).is_none() {
                tracing::info!("stopped following view `{view}`: it was dropped");
                return;
            }
            match self.groups_at(view, now) {
                Ok(groups) => {
                    failing = false;
                    at = now;
                    if !tell(&mut shown, groups, key_len, &mut subscriber) {
                        return;
                    }
                }
                Err(e) => {
                    if !failing {
                        tracing::warn!(
                            "cannot read view `{view}` for its followers (retrying): {}",
                            crate::error::report(&e)
                        );
                    }
                    failing = true;
                    std::thread::sleep(COALESCE * 5);
                }
            }
        }
    }

    /// Waits up to `within` for the log to be applied past `lsn`.
    fn wait_past(&self, lsn: u64, within: Duration) -> bool {
        let guard = lock(&self.applied);
        let (guard, _) = self
            .applied_cv
            .wait_timeout_while(guard, within, |a| *a <= lsn && !self.stopping())
            .unwrap_or_else(|e| e.into_inner());
        *guard > lsn
    }

    /// Every group view `name` shows, from the owners of all shards, once each applied the
    /// log up to `at`.
    fn groups_at(&self, view: &str, at: u64) -> Result<Vec<Vec<Value>>> {
        let shards: Vec<u32> = (0..self.shards).collect();
        let answers = self.ask_owners(&shards, |group| Request::Groups {
            view: view.to_string(),
            shards: group,
            at,
        })?;
        rows_of(answers, &format!("reading view `{view}`"))
    }
}

/// Tells `subscriber` how `groups` (rows of `[group values…, columns…]`) differ from
/// `shown`, which becomes `groups`: first the groups no longer shown, then those new or
/// changed. `false` when the subscriber left.
fn tell(
    shown: &mut Shown,
    groups: Vec<Vec<Value>>,
    key_len: usize,
    subscriber: &mut dyn FnMut(&ViewChange<'_>) -> bool,
) -> bool {
    let canonical = |values: &[Value]| -> Vec<Key> { values.iter().map(Key::from_value).collect() };
    let mut now = Shown::with_capacity(groups.len());
    for mut key in groups {
        let row = key.split_off(key_len.min(key.len()));
        let group = Group {
            canonical: canonical(&row),
            key,
            row,
        };
        now.insert(Key::Composite(canonical(&group.key).into()), group);
    }
    let old = std::mem::replace(shown, now);
    for (key, group) in &old {
        if !shown.contains_key(key) && !subscriber(&ViewChange::Delete { key: &group.key }) {
            return false;
        }
    }
    for (key, group) in shown.iter() {
        if old.get(key).map(|g| &g.canonical) == Some(&group.canonical) {
            continue;
        }
        let change = ViewChange::Upsert {
            key: &group.key,
            row: &group.row,
        };
        if !subscriber(&change) {
            return false;
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(k: i64, n: i64) -> Vec<Value> {
        vec![Value::Int(k), Value::Int(k), Value::Int(n)]
    }

    /// Every change `tell` reports, as `(op, key, n)`.
    fn told(shown: &mut Shown, groups: Vec<Vec<Value>>) -> Vec<(&'static str, i64, i64)> {
        let mut out = Vec::new();
        tell(shown, groups, 1, &mut |change| {
            out.push(match change {
                ViewChange::Upsert { key, row } => {
                    let (Value::Int(k), Value::Int(n)) = (&key[0], &row[1]) else {
                        panic!("{change:?}")
                    };
                    ("upsert", *k, *n)
                }
                ViewChange::Delete { key } => {
                    let Value::Int(k) = &key[0] else {
                        panic!("{change:?}")
                    };
                    ("delete", *k, 0)
                }
            });
            true
        });
        out.sort();
        out
    }

    #[test]
    fn a_follower_is_told_new_changed_and_vanished_groups_only() {
        let mut shown = Shown::new();
        assert_eq!(
            told(&mut shown, vec![row(1, 1), row(2, 5)]),
            [("upsert", 1, 1), ("upsert", 2, 5)]
        );
        assert_eq!(told(&mut shown, vec![row(1, 1), row(2, 5)]), []);
        assert_eq!(
            told(&mut shown, vec![row(2, 6), row(3, 1)]),
            [("delete", 1, 0), ("upsert", 2, 6), ("upsert", 3, 1)]
        );
        assert_eq!(
            told(&mut shown, vec![]),
            [("delete", 2, 0), ("delete", 3, 0)]
        );
    }

    #[test]
    fn a_subscriber_that_leaves_stops_the_telling() {
        let mut shown = Shown::new();
        let mut calls = 0;
        let stayed = tell(&mut shown, vec![row(1, 1), row(2, 1)], 1, &mut |_| {
            calls += 1;
            false
        });
        assert!(!stayed);
        assert_eq!(calls, 1);
    }
}
