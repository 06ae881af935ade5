//! Session windows: rows in random order, cut into random batches, give the sessions a
//! direct computation gives (sorted timestamps, split where the gap is reached), with every
//! aggregate kind — including DISTINCT ones, whose sets are united when sessions merge — and
//! a subscriber that applies each change it hears ends with the view's rows. Runs under
//! every profile.

use proptest::prelude::*;
use proptest::test_runner::Config;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use strata::{Engine, Value, ViewChange};

const GAP_S: i64 = 10;

fn config() -> Config {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(64);
    Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    }
}

#[derive(Clone, Debug)]
struct Click {
    user: i64,
    /// Seconds; `None` falls in the user's NULL session.
    ts: Option<i64>,
    page: i64,
    tag: &'static str,
}

fn click() -> impl Strategy<Value = Click> {
    (
        0i64..3,
        prop_oneof![9 => (0i64..120).prop_map(Some), 1 => Just(None)],
        0i64..4,
        prop::sample::select(vec!["a", "b", "c"]),
    )
        .prop_map(|(user, ts, page, tag)| Click {
            user,
            ts,
            page,
            tag,
        })
}

fn ts_text(s: i64) -> String {
    format!("'2026-01-01 00:{:02}:{:02}'", s / 60, s % 60)
}

fn insert(clicks: &[Click]) -> String {
    let rows: Vec<String> = clicks
        .iter()
        .map(|c| {
            format!(
                "({}, {}, {}, '{}')",
                c.user,
                c.ts.map_or("NULL".to_string(), ts_text),
                c.page,
                c.tag
            )
        })
        .collect();
    format!("INSERT INTO clicks VALUES {}", rows.join(", "))
}

const SCHEMA: &str = "
    CREATE SOURCE clicks (usr BIGINT, ts TIMESTAMP, page BIGINT, tag VARCHAR);
    CREATE MATERIALIZED VIEW sessions AS
        SELECT usr, window_start, window_end, COUNT(*) AS n, SUM(page) AS total,
               COUNT(DISTINCT page) AS pages, SUM(DISTINCT page) AS page_sum,
               MAX(tag) AS top, MIN(page) AS lo
        FROM SESSION(clicks, ts, INTERVAL '10' SECOND)
        GROUP BY usr, window_start, window_end;
    CREATE MATERIALIZED VIEW everyone AS
        SELECT window_start, window_end, COUNT(*) AS n
        FROM SESSION(clicks, ts, INTERVAL '10' SECOND) GROUP BY window_start;";

/// The sessions of `clicks` computed directly, as the view's rows print.
fn expected(clicks: &[Click]) -> (BTreeSet<String>, BTreeSet<String>) {
    fn sessions(mut rows: Vec<&Click>) -> Vec<Vec<&Click>> {
        rows.sort_by_key(|c| c.ts);
        let mut out: Vec<Vec<&Click>> = Vec::new();
        for c in rows {
            match (out.last_mut(), c.ts) {
                (Some(s), Some(t)) if s.last().unwrap().ts.is_some_and(|l| t - l < GAP_S) => {
                    s.push(c)
                }
                (Some(s), None) if s.last().unwrap().ts.is_none() => s.push(c),
                _ => out.push(vec![c]),
            }
        }
        out
    }
    let bounds = |s: &[&Click]| match (s[0].ts, s.last().unwrap().ts) {
        (Some(a), Some(b)) => format!("{}|{}", ts_text(a), ts_text(b + GAP_S)),
        _ => "NULL|NULL".to_string(),
    };
    let mut per_user: BTreeSet<String> = BTreeSet::new();
    for user in 0..3 {
        let rows: Vec<&Click> = clicks.iter().filter(|c| c.user == user).collect();
        for s in sessions(rows) {
            let pages: BTreeSet<i64> = s.iter().map(|c| c.page).collect();
            per_user.insert(format!(
                "{user}|{}|{}|{}|{}|{}|{}|{}",
                bounds(&s),
                s.len(),
                s.iter().map(|c| c.page).sum::<i64>(),
                pages.len(),
                pages.iter().sum::<i64>(),
                s.iter().map(|c| c.tag).max().unwrap(),
                s.iter().map(|c| c.page).min().unwrap(),
            ));
        }
    }
    let everyone = sessions(clicks.iter().collect())
        .into_iter()
        .map(|s| format!("{}|{}", bounds(&s), s.len()))
        .collect();
    (per_user, everyone)
}

fn cell(v: &Value) -> String {
    match v {
        Value::Null => "NULL".into(),
        // Seconds since 2026-01-01 00:00:00 UTC, as the rows were written.
        Value::Timestamp(ms) => ts_text(ms / 1000 - 1_767_225_600),
        Value::Text(t) => t.to_string(),
        Value::Int(i) => i.to_string(),
        other => format!("{other:?}"),
    }
}

fn line(row: &[Value]) -> String {
    row.iter().map(cell).collect::<Vec<_>>().join("|")
}

fn rows(e: &mut Engine, view: &str) -> BTreeSet<String> {
    let rs = e.query(&format!("SELECT * FROM {view}")).unwrap();
    rs.rows.iter().map(|r| line(r)).collect()
}

/// What a subscriber holds after applying every change it heard: key → row.
type Heard = Arc<Mutex<BTreeMap<String, String>>>;

fn listen(e: &mut Engine, view: &str) -> Heard {
    let heard: Heard = Arc::default();
    let sink = heard.clone();
    e.subscribe(
        view,
        Box::new(move |change| {
            let mut map = sink.lock().unwrap();
            match change {
                ViewChange::Upsert { key, row } => {
                    map.insert(line(key), line(row));
                }
                ViewChange::Delete { key } => {
                    map.remove(&line(key));
                }
            }
            true
        }),
    )
    .expect("subscribe");
    heard
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn sessions_match_a_direct_computation(
        clicks in proptest::collection::vec(click(), 1..40),
        cuts in proptest::collection::vec(1usize..8, 1..10),
    ) {
        let mut e = Engine::builder().ephemeral().build().expect("engine");
        e.execute(SCHEMA).expect("schema");
        let heard = listen(&mut e, "sessions");
        let mut at = 0;
        for cut in cuts.iter().cycle() {
            if at >= clicks.len() {
                break;
            }
            let end = (at + cut).min(clicks.len());
            e.execute(&insert(&clicks[at..end])).expect("insert");
            at = end;
        }
        let (per_user, everyone) = expected(&clicks);
        let got = rows(&mut e, "sessions");
        prop_assert_eq!(&got, &per_user);
        prop_assert_eq!(rows(&mut e, "everyone"), everyone);
        let heard: BTreeSet<String> = heard.lock().unwrap().values().cloned().collect();
        prop_assert_eq!(heard, got, "the subscriber's rows differ from the view's");
    }
}

#[test]
fn a_row_bridging_two_sessions_merges_them_and_a_late_row_moves_the_start() {
    let mut e = Engine::builder().ephemeral().build().expect("engine");
    e.execute(SCHEMA).expect("schema");
    e.execute(&insert(&[
        Click {
            user: 1,
            ts: Some(30),
            page: 1,
            tag: "a",
        },
        Click {
            user: 1,
            ts: Some(50),
            page: 2,
            tag: "b",
        },
    ]))
    .unwrap();
    assert_eq!(rows(&mut e, "everyone").len(), 2);
    // 40 is less than 10 s after 30 only if it is not exactly 10 s: 39 bridges 30 and 50? No:
    // 50 - 39 = 11. Two rows, 39 and 45, bridge them.
    e.execute(&insert(&[
        Click {
            user: 1,
            ts: Some(39),
            page: 2,
            tag: "c",
        },
        Click {
            user: 1,
            ts: Some(45),
            page: 3,
            tag: "a",
        },
    ]))
    .unwrap();
    let got = rows(&mut e, "sessions");
    assert_eq!(
        got,
        BTreeSet::from([format!("1|{}|{}|4|8|3|6|c|1", ts_text(30), ts_text(60))])
    );
    // A row 5 s before the session's start moves its start back.
    e.execute(&insert(&[Click {
        user: 1,
        ts: Some(25),
        page: 9,
        tag: "a",
    }]))
    .unwrap();
    let got = rows(&mut e, "sessions");
    assert_eq!(
        got,
        BTreeSet::from([format!("1|{}|{}|5|17|4|15|c|1", ts_text(25), ts_text(60))])
    );
}

#[test]
fn session_windows_refuse_what_they_cannot_answer() {
    let mut e = Engine::builder().ephemeral().build().expect("engine");
    e.execute("CREATE SOURCE clicks (usr BIGINT, ts TIMESTAMP, page BIGINT)")
        .unwrap();
    // The same columns in a table, for queries (a source keeps no rows to query).
    e.execute("CREATE TABLE visits (id BIGINT PRIMARY KEY, usr BIGINT, ts TIMESTAMP, page BIGINT)")
        .unwrap();
    for (sql, says) in [
        (
            "SELECT usr, COUNT(*) FROM SESSION(clicks, ts, INTERVAL '1' SECOND) GROUP BY usr",
            "name `window_start` once in GROUP BY",
        ),
        (
            "SELECT * FROM SESSION(clicks, ts, INTERVAL '1' SECOND)",
            "name `window_start` once in GROUP BY",
        ),
        (
            "SELECT window_start, COUNT(*) FROM SESSION(clicks, ts, INTERVAL '1' SECOND) \
             WHERE window_end > ts GROUP BY window_start",
            "move as rows arrive",
        ),
        (
            "SELECT window_start, MAX(window_end) FROM SESSION(clicks, ts, INTERVAL '1' SECOND) \
             GROUP BY window_start",
            "move as rows arrive",
        ),
        (
            "SELECT window_start, COUNT(*) FROM SESSION(clicks, page, INTERVAL '1' SECOND) \
             GROUP BY window_start",
            "needs a TIMESTAMP column",
        ),
        (
            "SELECT window_start, COUNT(*) FROM SESSION(clicks, ts, INTERVAL '0' SECOND) \
             GROUP BY window_start",
            "must be positive",
        ),
        (
            "SELECT window_start, COUNT(*) FROM SESSION(clicks, ts) GROUP BY window_start",
            "SESSION(source, ts_column, INTERVAL 'gap')",
        ),
    ] {
        let query = sql.replace("SESSION(clicks", "SESSION(visits");
        let err = e.query(&query).expect_err(&query).to_string();
        assert!(err.contains(says), "{query}: {err}");
        let view = format!("CREATE MATERIALIZED VIEW v AS {sql}");
        let err = e.execute(&view).expect_err(&view).to_string();
        assert!(err.contains(says), "{view}: {err}");
    }
}

#[test]
fn a_query_over_a_table_finds_its_sessions() {
    let mut e = Engine::builder().ephemeral().build().expect("engine");
    e.execute(
        "CREATE TABLE visits (id BIGINT PRIMARY KEY, usr BIGINT, ts TIMESTAMP);
         INSERT INTO visits VALUES (1, 7, '2026-01-01 00:00:00'), (2, 7, '2026-01-01 00:00:09'),
             (3, 7, '2026-01-01 00:00:30'), (4, 8, '2026-01-01 00:00:05');",
    )
    .unwrap();
    let rs = e
        .query(
            "SELECT usr, window_start, window_end, COUNT(*) AS n \
             FROM SESSION(visits, ts, INTERVAL '10' SECOND) GROUP BY usr, window_start \
             ORDER BY usr, window_start",
        )
        .unwrap();
    let got: Vec<String> = rs.rows.iter().map(|r| line(r)).collect();
    assert_eq!(
        got,
        [
            format!("7|{}|{}|2", ts_text(0), ts_text(19)),
            format!("7|{}|{}|1", ts_text(30), ts_text(40)),
            format!("8|{}|{}|1", ts_text(5), ts_text(15)),
        ]
    );
}
