//! View change subscriptions (`Engine::subscribe`), in every tier: each batch reports the
//! groups it changed with their new rows, a HAVING that hides a group reports a deletion,
//! and a subscriber that returns `false` is dropped.

use std::sync::{Arc, Mutex};
use strata::{Engine, ViewChange};

type Log = Arc<Mutex<Vec<String>>>;

fn recorder(log: &Log, keep: usize) -> strata::ViewSubscriber {
    let log = log.clone();
    Box::new(move |change: &ViewChange<'_>| {
        let text = match change {
            ViewChange::Upsert { key, row } => format!(
                "upsert {} -> {}",
                key.iter()
                    .map(|v| v.to_string())
                    .collect::<Vec<_>>()
                    .join(","),
                row.iter()
                    .map(|v| v.to_string())
                    .collect::<Vec<_>>()
                    .join(",")
            ),
            ViewChange::Delete { key } => format!(
                "delete {}",
                key.iter()
                    .map(|v| v.to_string())
                    .collect::<Vec<_>>()
                    .join(",")
            ),
        };
        let mut log = log.lock().unwrap();
        log.push(text);
        log.len() < keep
    })
}

fn engine() -> Engine {
    let mut e = Engine::builder().ephemeral().build().unwrap();
    e.execute(
        "CREATE SOURCE ev (k BIGINT NOT NULL, x BIGINT NOT NULL);
         CREATE MATERIALIZED VIEW per_k AS SELECT k, COUNT(*) AS n, SUM(x) AS s FROM ev GROUP BY k;
         CREATE MATERIALIZED VIEW big AS SELECT k, SUM(x) AS s FROM ev GROUP BY k HAVING SUM(x) > 10",
    )
    .unwrap();
    e
}

#[test]
fn each_batch_reports_the_groups_it_changed() {
    let mut e = engine();
    let log = Log::default();
    e.subscribe("per_k", recorder(&log, usize::MAX)).unwrap();
    e.execute("INSERT INTO ev VALUES (1, 5), (2, 7), (1, 1)")
        .unwrap();
    assert_eq!(
        *log.lock().unwrap(),
        ["upsert 1 -> 1,2,6", "upsert 2 -> 2,1,7"]
    );
    log.lock().unwrap().clear();
    e.execute("INSERT INTO ev VALUES (2, 3)").unwrap();
    assert_eq!(*log.lock().unwrap(), ["upsert 2 -> 2,2,10"]);
    // A failed statement changes nothing and reports nothing.
    assert!(e.execute("INSERT INTO ev VALUES (NULL, 1)").is_err());
    assert_eq!(log.lock().unwrap().len(), 1);
}

#[test]
fn having_reports_appearance_and_a_group_it_hides_is_a_deletion() {
    let mut e = engine();
    let log = Log::default();
    e.subscribe("big", recorder(&log, usize::MAX)).unwrap();
    e.execute("INSERT INTO ev VALUES (1, 5)").unwrap();
    assert!(
        log.lock().unwrap().is_empty(),
        "not shown yet: nothing to report"
    );
    e.execute("INSERT INTO ev VALUES (1, 20)").unwrap();
    e.execute("INSERT INTO ev VALUES (1, -30)").unwrap();
    assert_eq!(*log.lock().unwrap(), ["upsert 1 -> 1,25", "delete 1"]);
}

#[test]
fn a_subscriber_that_returns_false_is_dropped_and_unknown_views_are_errors() {
    let mut e = engine();
    let log = Log::default();
    e.subscribe("per_k", recorder(&log, 1)).unwrap();
    e.execute("INSERT INTO ev VALUES (1, 1), (2, 2)").unwrap();
    e.execute("INSERT INTO ev VALUES (3, 3)").unwrap();
    assert_eq!(
        log.lock().unwrap().len(),
        1,
        "dropped after its first change"
    );
    let err = e.subscribe("nope", recorder(&log, 1)).unwrap_err();
    assert!(err.to_string().contains("nope"), "{err}");
}
