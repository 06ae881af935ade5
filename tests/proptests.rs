//! Property tests.
//!
//! (a) Random statement text — arbitrary strings, token soup, mutated valid statements —
//!     never panics through `Engine::execute`; errors are one line.
//! (b) Random sequences of inserts give the same state through the batch API
//!     (`insert_batch` / `upsert_batch`) as through SQL `INSERT` text, and the same as a
//!     model computed here, for a source with four views and a keyed table.
//!
//! Both run under every profile, so both state backends are covered. Case counts are small.

use proptest::prelude::*;
use proptest::test_runner::Config;
use std::collections::BTreeMap;
use strata::{Batch, Column, Engine, Value};

/// 64 cases per property; `PROPTEST_CASES=n` runs more for a deeper search.
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

// ---------------------------------------------------------------------------------------
// (a) random statement text never panics

const SCHEMA: &str = "
    CREATE SOURCE events (k BIGINT NOT NULL, name VARCHAR(8), v DOUBLE, ts TIMESTAMP, ok BOOLEAN);
    CREATE MATERIALIZED VIEW by_k AS SELECT k, COUNT(*) AS n, SUM(v) AS total, MAX(name) AS top FROM events GROUP BY k;
    CREATE MATERIALIZED VIEW per_minute AS
        SELECT tumble(ts, INTERVAL '1' MINUTE) AS minute, COUNT(*) AS n FROM events WHERE ok GROUP BY tumble(ts, INTERVAL '1' MINUTE);
    CREATE MATERIALIZED VIEW overall AS SELECT COUNT(*) AS n, AVG(v) AS mean FROM events;
    CREATE TABLE items (id BIGINT PRIMARY KEY, label VARCHAR, price DOUBLE, added TIMESTAMP);
    INSERT INTO events VALUES (1, 'a', 1.5, '2026-01-01 00:00:10', true), (2, NULL, NULL, NULL, NULL);
    INSERT INTO items VALUES (1, 'one', 1.0, '2026-01-01 00:00:00'), (2, NULL, NULL, NULL);
";

/// Statements that work on [`SCHEMA`], to be mutated.
const VALID: &[&str] = &[
    "SELECT k, n, total, top FROM by_k WHERE n > 0 ORDER BY k DESC LIMIT 5",
    "SELECT minute, n FROM per_minute ORDER BY minute",
    "SELECT id, label, price * 2 AS p FROM items WHERE label IS NOT NULL AND price >= 1.0 ORDER BY id",
    "SELECT label, COUNT(*) AS c, SUM(price) AS s FROM items GROUP BY label HAVING COUNT(*) > 0 ORDER BY c DESC",
    "SELECT COUNT(*), MIN(added), MAX(id) FROM items",
    "INSERT INTO events VALUES (3, 'b', -2.5, '2026-01-01 00:01:00.500', false)",
    "INSERT INTO events (k, ts) VALUES (4, '2026-01-01 00:02:00'), (5, '2026-01-01 00:03:00')",
    "INSERT INTO items VALUES (3, 'three', 3.0, NULL)",
    "INSERT OR REPLACE INTO items VALUES (1, 'uno', NULL, '2026-02-01 00:00:00')",
    "DELETE FROM items WHERE id = 2 OR price IS NULL",
    "CREATE MATERIALIZED VIEW w AS SELECT tumble_end(ts, INTERVAL '10' SECOND) AS e, name, COUNT(v) AS c FROM events WHERE v > 0 GROUP BY tumble_end(ts, INTERVAL '10' SECOND), name",
    "CREATE TABLE t2 (a VARCHAR(4) PRIMARY KEY, b BOOLEAN NOT NULL)",
    "CREATE SOURCE s2 (x BIGINT, y TEXT)",
    "DROP MATERIALIZED VIEW overall",
    "DROP TABLE items",
    "SHOW VIEWS",
    "DESCRIBE events",
    "CREATE INDEX i ON items (label)",
    "CHECKPOINT",
    "SELECT id FROM items WHERE (id + 1) * 2 - id / 2 % 3 <> -1 AND NOT (label = 'x' OR label || 'y' = 'xy')",
];

const KEYWORDS: &[&str] = &[
    "SELECT",
    "FROM",
    "WHERE",
    "GROUP",
    "BY",
    "ORDER",
    "LIMIT",
    "OFFSET",
    "HAVING",
    "ASC",
    "DESC",
    "NULLS",
    "FIRST",
    "LAST",
    "INSERT",
    "INTO",
    "VALUES",
    "OR",
    "REPLACE",
    "CREATE",
    "SOURCE",
    "TABLE",
    "MATERIALIZED",
    "VIEW",
    "AS",
    "DROP",
    "IF",
    "EXISTS",
    "DELETE",
    "SHOW",
    "SOURCES",
    "TABLES",
    "VIEWS",
    "DESCRIBE",
    "CHECKPOINT",
    "INDEX",
    "ON",
    "PRIMARY",
    "KEY",
    "NOT",
    "NULL",
    "AND",
    "IS",
    "TRUE",
    "FALSE",
    "COUNT",
    "SUM",
    "MIN",
    "MAX",
    "AVG",
    "tumble",
    "tumble_end",
    "INTERVAL",
    "SECOND",
    "MINUTE",
    "HOUR",
    "DAY",
    "BIGINT",
    "DOUBLE",
    "VARCHAR",
    "TEXT",
    "BOOLEAN",
    "TIMESTAMP",
    "DISTINCT",
    "JOIN",
    "UNION",
    "WITH",
    "CAST",
    "CASE",
    "WHEN",
    "THEN",
    "END",
    "BETWEEN",
    "IN",
    "LIKE",
];
const IDENTIFIERS: &[&str] = &[
    "events",
    "by_k",
    "per_minute",
    "overall",
    "items",
    "k",
    "name",
    "v",
    "ts",
    "ok",
    "n",
    "total",
    "top",
    "minute",
    "mean",
    "id",
    "label",
    "price",
    "added",
    "x",
    "\"k\"",
    "\"Items\"",
    "t.k",
];
const LITERALS: &[&str] = &[
    "0",
    "1",
    "-1",
    "42",
    "9223372036854775807",
    "9223372036854775808",
    "-9223372036854775808",
    "1.5",
    "-0.0",
    "1e308",
    "1e400",
    "'a'",
    "''",
    "'it''s'",
    "'2026-01-01 00:00:00'",
    "'2026-01-01 00:00:00.123'",
    "'1'",
    "'5' MINUTE",
    "'ü✓'",
    "NULL",
];
const PUNCTUATION: &[&str] = &[
    "(", ")", ",", ";", "*", "+", "-", "/", "%", "=", "<", ">", "<=", ">=", "<>", "!=", "||", ".",
    "'", "\"", "::", "[", "]", "?", "$1", "--", "/*", "*/",
];

fn token() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => proptest::sample::select(KEYWORDS).prop_map(str::to_string),
        3 => proptest::sample::select(IDENTIFIERS).prop_map(str::to_string),
        2 => proptest::sample::select(LITERALS).prop_map(str::to_string),
        3 => proptest::sample::select(PUNCTUATION).prop_map(str::to_string),
    ]
}

fn token_soup() -> impl Strategy<Value = String> {
    proptest::collection::vec(token(), 0..40).prop_map(|t| t.join(" "))
}

#[derive(Clone, Debug)]
enum Edit {
    Delete(usize),
    Insert(usize, String),
    Replace(usize, String),
    Swap(usize, usize),
}

/// A valid statement with a few random token edits.
fn mutated_statement() -> impl Strategy<Value = String> {
    let edit = prop_oneof![
        any::<usize>().prop_map(Edit::Delete),
        (any::<usize>(), token()).prop_map(|(i, t)| Edit::Insert(i, t)),
        (any::<usize>(), token()).prop_map(|(i, t)| Edit::Replace(i, t)),
        (any::<usize>(), any::<usize>()).prop_map(|(i, j)| Edit::Swap(i, j)),
    ];
    (
        proptest::sample::select(VALID),
        proptest::collection::vec(edit, 0..4),
    )
        .prop_map(|(sql, edits)| {
            let mut tokens: Vec<String> = sql.split(' ').map(str::to_string).collect();
            for e in edits {
                let n = tokens.len().max(1);
                match e {
                    Edit::Delete(i) if !tokens.is_empty() => {
                        tokens.remove(i % n);
                    }
                    Edit::Insert(i, t) => tokens.insert(i % (tokens.len() + 1), t),
                    Edit::Replace(i, t) if !tokens.is_empty() => tokens[i % n] = t,
                    Edit::Swap(i, j) if !tokens.is_empty() => tokens.swap(i % n, j % n),
                    _ => {}
                }
            }
            tokens.join(" ")
        })
}

/// Runs `sql` on a fresh engine with [`SCHEMA`]; any panic fails the property. Afterwards
/// every table and view can still be read.
fn run_anything(sql: &str) -> Result<(), TestCaseError> {
    let mut e = Engine::builder().ephemeral().build().expect("engine");
    e.execute(SCHEMA).expect("schema");
    if let Err(err) = e.execute(sql) {
        let msg = err.to_string();
        prop_assert!(!msg.trim().is_empty(), "empty error for {sql:?}");
        prop_assert!(
            !msg.contains(['\n', '\r']),
            "multi-line error {msg:?} for {sql:?}"
        );
    }
    for kind in ["TABLES", "VIEWS"] {
        let names = e.query(&format!("SHOW {kind}")).expect("SHOW");
        for row in names.rows {
            let name = row[0].to_string();
            e.query(&format!("SELECT * FROM \"{name}\""))
                .map_err(|err| {
                    TestCaseError::fail(format!("{name} unreadable after {sql:?}: {err}"))
                })?;
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn random_text_never_panics(sql in "\\PC{0,80}") {
        run_anything(&sql)?;
    }

    #[test]
    fn random_ascii_never_panics(sql in "[ -~\\n\\t]{0,120}") {
        run_anything(&sql)?;
    }

    #[test]
    fn token_soup_never_panics(sql in token_soup()) {
        run_anything(&sql)?;
    }

    #[test]
    fn mutated_statements_never_panic(sql in mutated_statement()) {
        run_anything(&sql)?;
    }

    #[test]
    fn several_statements_never_panic(parts in proptest::collection::vec(
        prop_oneof![
            mutated_statement(),
            token_soup(),
            proptest::sample::select(VALID).prop_map(str::to_string),
        ],
        1..5,
    )) {
        run_anything(&parts.join(";\n"))?;
    }
}

// ---------------------------------------------------------------------------------------
// (b) batch API and SQL INSERT give the same state

const STREAM_SCHEMA: &str = "
    CREATE SOURCE ev (k BIGINT NOT NULL, tag VARCHAR, v BIGINT, d DOUBLE, ts TIMESTAMP NOT NULL, flag BOOLEAN);
    CREATE MATERIALIZED VIEW by_k AS
        SELECT k, COUNT(*) AS n, COUNT(v) AS nv, SUM(v) AS sv, MIN(v) AS lo, MAX(v) AS hi, AVG(d) AS ad,
               MIN(tag) AS first_tag
        FROM ev GROUP BY k;
    CREATE MATERIALIZED VIEW by_tag AS
        SELECT tag, COUNT(*) AS n, SUM(d) AS sd, MAX(ts) AS last FROM ev WHERE v IS NULL OR v > 0 GROUP BY tag;
    CREATE MATERIALIZED VIEW per_window AS
        SELECT tumble(ts, INTERVAL '10' SECOND) AS w, tumble_end(ts, INTERVAL '10' SECOND) AS we, flag,
               COUNT(*) AS n, MAX(k) AS mk, MIN(d) AS md
        FROM ev GROUP BY tumble(ts, INTERVAL '10' SECOND), flag;
    CREATE MATERIALIZED VIEW total AS SELECT COUNT(*) AS n, SUM(v) AS sv, MAX(tag) AS mt FROM ev;
    CREATE MATERIALIZED VIEW kept AS SELECT k % 3 AS r, tag, v FROM ev WHERE flag IS NULL OR NOT flag;
    CREATE TABLE kv (id BIGINT PRIMARY KEY, name VARCHAR, score DOUBLE, seen TIMESTAMP, up BOOLEAN);
";

/// 2026-01-01 00:00:00 UTC in milliseconds.
const BASE_TS: i64 = 1_767_225_600_000;

const TAGS: &[&str] = &["a", "b", "", "it's", "ü", "A"];

#[derive(Clone, Debug)]
struct Ev {
    k: i64,
    tag: Option<String>,
    v: Option<i64>,
    d: Option<f64>,
    ts: i64,
    flag: Option<bool>,
}

#[derive(Clone, Debug)]
struct Kv {
    id: i64,
    name: Option<String>,
    score: Option<f64>,
    seen: Option<i64>,
    up: Option<bool>,
}

#[derive(Clone, Debug)]
enum Op {
    /// Rows for the source; `full` gives the batch every column in schema order.
    Events { rows: Vec<Ev>, full: bool },
    /// Rows for the table; `replace` uses INSERT OR REPLACE / upsert_batch.
    Table { rows: Vec<Kv>, replace: bool },
}

fn text() -> impl Strategy<Value = Option<String>> {
    proptest::option::weighted(0.8, proptest::sample::select(TAGS).prop_map(str::to_string))
}

/// Multiples of 0.25, so that sums are exact whatever the order.
fn quarter() -> impl Strategy<Value = Option<f64>> {
    proptest::option::weighted(0.8, (-40i32..40).prop_map(|q| f64::from(q) / 4.0))
}

fn ev() -> impl Strategy<Value = Ev> {
    (
        0i64..6,
        text(),
        proptest::option::weighted(0.8, -5i64..20),
        quarter(),
        0i64..60_000,
        proptest::option::of(any::<bool>()),
    )
        .prop_map(|(k, tag, v, d, ms, flag)| Ev {
            k,
            tag,
            v,
            d,
            ts: BASE_TS + ms,
            flag,
        })
}

fn kv() -> impl Strategy<Value = Kv> {
    (
        0i64..8,
        text(),
        quarter(),
        proptest::option::weighted(0.7, -100_000i64..100_000),
        proptest::option::of(any::<bool>()),
    )
        .prop_map(|(id, name, score, seen, up)| Kv {
            id,
            name,
            score,
            seen: seen.map(|s| BASE_TS + s),
            up,
        })
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (proptest::collection::vec(ev(), 1..8), any::<bool>())
            .prop_map(|(rows, full)| Op::Events { rows, full }),
        2 => (proptest::collection::vec(kv(), 1..5), any::<bool>())
            .prop_map(|(rows, replace)| Op::Table { rows, replace }),
    ]
}

fn sql_text(s: &Option<String>) -> String {
    s.as_ref()
        .map_or("NULL".into(), |s| format!("'{}'", s.replace('\'', "''")))
}

fn sql_num<T: ToString>(v: Option<T>) -> String {
    v.map_or("NULL".into(), |v| v.to_string())
}

fn sql_double(v: Option<f64>) -> String {
    v.map_or("NULL".into(), |v| format!("{v:?}"))
}

fn sql_ts(v: Option<i64>) -> String {
    v.map_or("NULL".into(), |ms| {
        format!("'{}'", strata::testing::format_timestamp(ms))
    })
}

/// The SQL text of an operation.
fn op_sql(op: &Op) -> String {
    match op {
        Op::Events { rows, full } => {
            let values: Vec<String> = rows
                .iter()
                .map(|r| {
                    if *full {
                        format!(
                            "({}, {}, {}, {}, {}, {})",
                            r.k,
                            sql_text(&r.tag),
                            sql_num(r.v),
                            sql_double(r.d),
                            sql_ts(Some(r.ts)),
                            sql_num(r.flag)
                        )
                    } else {
                        // Another column order, through a column list.
                        format!(
                            "({}, {}, {}, {}, {}, {})",
                            sql_ts(Some(r.ts)),
                            sql_num(r.flag),
                            sql_double(r.d),
                            sql_num(r.v),
                            sql_text(&r.tag),
                            r.k
                        )
                    }
                })
                .collect();
            if *full {
                format!("INSERT INTO ev VALUES {}", values.join(", "))
            } else {
                format!(
                    "INSERT INTO ev (ts, flag, d, v, tag, k) VALUES {}",
                    values.join(", ")
                )
            }
        }
        Op::Table { rows, replace } => {
            let values: Vec<String> = rows
                .iter()
                .map(|r| {
                    format!(
                        "({}, {}, {}, {}, {})",
                        r.id,
                        sql_text(&r.name),
                        sql_double(r.score),
                        sql_ts(r.seen),
                        sql_num(r.up)
                    )
                })
                .collect();
            let verb = if *replace {
                "INSERT OR REPLACE"
            } else {
                "INSERT"
            };
            format!("{verb} INTO kv VALUES {}", values.join(", "))
        }
    }
}

fn nulls<T>(values: &[Option<T>]) -> Vec<bool> {
    values.iter().map(Option::is_none).collect()
}

fn text_column(values: &[Option<String>]) -> Column {
    Column::text(values.iter().map(|v| v.clone().unwrap_or_default())).with_nulls(nulls(values))
}

/// The batch of an operation.
fn op_batch(op: &Op) -> Batch {
    match op {
        Op::Events { rows, full } => {
            let k = Column::bigint(rows.iter().map(|r| r.k).collect());
            let tags: Vec<Option<String>> = rows.iter().map(|r| r.tag.clone()).collect();
            let vs: Vec<Option<i64>> = rows.iter().map(|r| r.v).collect();
            let v =
                Column::bigint(vs.iter().map(|v| v.unwrap_or(0)).collect()).with_nulls(nulls(&vs));
            let ds: Vec<Option<f64>> = rows.iter().map(|r| r.d).collect();
            let d = Column::double(ds.iter().map(|d| d.unwrap_or(0.0)).collect())
                .with_nulls(nulls(&ds));
            let ts = Column::timestamp(rows.iter().map(|r| r.ts).collect());
            let flags: Vec<Option<bool>> = rows.iter().map(|r| r.flag).collect();
            let flag = Column::boolean(flags.iter().map(|f| f.unwrap_or(false)).collect())
                .with_nulls(nulls(&flags));
            if *full {
                Batch::new()
                    .with_column("k", k)
                    .with_column("tag", text_column(&tags))
                    .with_column("v", v)
                    .with_column("d", d)
                    .with_column("ts", ts)
                    .with_column("flag", flag)
            } else {
                // Shuffled, and columns that are entirely NULL are left out.
                let mut b = Batch::new().with_column("ts", ts);
                if flags.iter().any(Option::is_some) {
                    b = b.with_column("FLAG", flag);
                }
                if ds.iter().any(Option::is_some) {
                    b = b.with_column("d", d);
                }
                if vs.iter().any(Option::is_some) {
                    b = b.with_column("v", v);
                }
                if tags.iter().any(Option::is_some) {
                    b = b.with_column("tag", text_column(&tags));
                }
                b.with_column("k", k)
            }
        }
        Op::Table { rows, .. } => {
            let names: Vec<Option<String>> = rows.iter().map(|r| r.name.clone()).collect();
            let scores: Vec<Option<f64>> = rows.iter().map(|r| r.score).collect();
            let seen: Vec<Option<i64>> = rows.iter().map(|r| r.seen).collect();
            let ups: Vec<Option<bool>> = rows.iter().map(|r| r.up).collect();
            Batch::new()
                .with_column("id", Column::bigint(rows.iter().map(|r| r.id).collect()))
                .with_column("name", text_column(&names))
                .with_column(
                    "score",
                    Column::double(scores.iter().map(|s| s.unwrap_or(0.0)).collect())
                        .with_nulls(nulls(&scores)),
                )
                .with_column(
                    "seen",
                    Column::timestamp(seen.iter().map(|s| s.unwrap_or(0)).collect())
                        .with_nulls(nulls(&seen)),
                )
                .with_column(
                    "up",
                    Column::boolean(ups.iter().map(|u| u.unwrap_or(false)).collect())
                        .with_nulls(nulls(&ups)),
                )
        }
    }
}

/// Every table's and view's rows, in a canonical order, as text that tells NULL from ''.
fn state(e: &mut Engine) -> BTreeMap<String, Vec<String>> {
    let mut out = BTreeMap::new();
    for name in ["by_k", "by_tag", "per_window", "total", "kept", "kv"] {
        let rs = e.query(&format!("SELECT * FROM {name}")).expect("readable");
        let mut rows: Vec<String> = rs.rows.iter().map(|r| format!("{r:?}")).collect();
        rows.sort();
        out.insert(name.to_string(), rows);
    }
    out
}

/// What `by_k` holds per key: COUNT(*), COUNT(v), SUM(v), MIN(v), MAX(v), AVG(d), MIN(tag).
#[derive(Default)]
struct KModel {
    n: i64,
    nv: i64,
    sv: i64,
    lo: Option<i64>,
    hi: Option<i64>,
    sum_d: f64,
    n_d: i64,
    first_tag: Option<String>,
}

/// The model of `by_k`, `by_tag` and `kv`.
#[derive(Default)]
struct Model {
    by_k: BTreeMap<i64, KModel>,
    /// tag → (COUNT(*), SUM(d) if any d, MAX(ts)), for rows with v NULL or v > 0.
    by_tag: BTreeMap<Option<String>, (i64, Option<f64>, i64)>,
    /// The rows of `kept` (a view without aggregates), duplicates included.
    kept: Vec<(i64, Option<String>, Option<i64>)>,
    kv: BTreeMap<i64, Kv>,
}

impl Model {
    /// Applies an operation; `false` if the engine must refuse it.
    fn apply(&mut self, op: &Op) -> bool {
        match op {
            Op::Events { rows, .. } => {
                for r in rows {
                    let m = self.by_k.entry(r.k).or_default();
                    m.n += 1;
                    if let Some(v) = r.v {
                        m.nv += 1;
                        m.sv += v;
                        m.lo = Some(m.lo.map_or(v, |lo| lo.min(v)));
                        m.hi = Some(m.hi.map_or(v, |hi| hi.max(v)));
                    }
                    if let Some(d) = r.d {
                        m.sum_d += d;
                        m.n_d += 1;
                    }
                    if let Some(t) = &r.tag {
                        if m.first_tag.as_ref().is_none_or(|f| t < f) {
                            m.first_tag = Some(t.clone());
                        }
                    }
                    if r.v.is_none_or(|v| v > 0) {
                        let g = self
                            .by_tag
                            .entry(r.tag.clone())
                            .or_insert((0, None, i64::MIN));
                        g.0 += 1;
                        if let Some(d) = r.d {
                            g.1 = Some(g.1.unwrap_or(0.0) + d);
                        }
                        g.2 = g.2.max(r.ts);
                    }
                    if r.flag != Some(true) {
                        self.kept.push((r.k % 3, r.tag.clone(), r.v));
                    }
                }
                true
            }
            Op::Table { rows, replace } => {
                if !replace {
                    let mut seen = std::collections::BTreeSet::new();
                    if rows
                        .iter()
                        .any(|r| self.kv.contains_key(&r.id) || !seen.insert(r.id))
                    {
                        return false;
                    }
                }
                for r in rows {
                    self.kv.insert(r.id, r.clone());
                }
                true
            }
        }
    }

    fn check(&self, e: &mut Engine) -> Result<(), TestCaseError> {
        let opt = |v: Option<i64>| v.map_or(Value::Null, Value::Int);
        let rs = e
            .query("SELECT k, n, nv, sv, lo, hi, ad, first_tag FROM by_k ORDER BY k")
            .unwrap();
        let want: Vec<Vec<Value>> = self
            .by_k
            .iter()
            .map(|(k, m)| {
                vec![
                    Value::Int(*k),
                    Value::Int(m.n),
                    Value::Int(m.nv),
                    if m.nv > 0 {
                        Value::Int(m.sv)
                    } else {
                        Value::Null
                    },
                    opt(m.lo),
                    opt(m.hi),
                    if m.n_d > 0 {
                        Value::Double(m.sum_d / m.n_d as f64)
                    } else {
                        Value::Null
                    },
                    m.first_tag
                        .as_deref()
                        .map_or(Value::Null, |t| Value::Text(t.into())),
                ]
            })
            .collect();
        prop_assert_eq!(
            format!("{:?}", rs.rows),
            format!("{want:?}"),
            "by_k differs from the model"
        );

        let rs = e
            .query("SELECT r, tag, v FROM kept ORDER BY r, tag NULLS FIRST, v NULLS FIRST")
            .unwrap();
        let mut want = self.kept.clone();
        want.sort();
        let want: Vec<Vec<Value>> = want
            .into_iter()
            .map(|(r, tag, v)| {
                vec![
                    Value::Int(r),
                    tag.map_or(Value::Null, |t| Value::Text(t.into())),
                    v.map_or(Value::Null, Value::Int),
                ]
            })
            .collect();
        prop_assert_eq!(
            format!("{:?}", rs.rows),
            format!("{want:?}"),
            "kept differs from the model"
        );

        let rs = e
            .query("SELECT tag, n, sd, last FROM by_tag ORDER BY tag")
            .unwrap();
        let want: Vec<Vec<Value>> = self
            .by_tag
            .iter()
            .map(|(tag, (n, sd, last))| {
                vec![
                    tag.as_deref()
                        .map_or(Value::Null, |t| Value::Text(t.into())),
                    Value::Int(*n),
                    sd.map_or(Value::Null, Value::Double),
                    Value::Timestamp(*last),
                ]
            })
            .collect();
        prop_assert_eq!(
            format!("{:?}", rs.rows),
            format!("{want:?}"),
            "by_tag differs from the model"
        );

        let rs = e
            .query("SELECT id, name, score, seen, up FROM kv ORDER BY id")
            .unwrap();
        let want: Vec<Vec<Value>> = self
            .kv
            .values()
            .map(|r| {
                vec![
                    Value::Int(r.id),
                    r.name
                        .as_deref()
                        .map_or(Value::Null, |t| Value::Text(t.into())),
                    r.score.map_or(Value::Null, Value::Double),
                    r.seen.map_or(Value::Null, Value::Timestamp),
                    r.up.map_or(Value::Null, Value::Bool),
                ]
            })
            .collect();
        prop_assert_eq!(
            format!("{:?}", rs.rows),
            format!("{want:?}"),
            "kv differs from the model"
        );
        Ok(())
    }
}

/// The error message of a result, if it failed.
fn why<T>(result: &strata::Result<T>) -> Option<String> {
    result.as_ref().err().map(ToString::to_string)
}

fn stream_engine() -> Engine {
    let mut e = Engine::builder().ephemeral().build().expect("engine");
    e.execute(STREAM_SCHEMA).expect("schema");
    e
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn batch_and_sql_inserts_give_the_same_state(ops in proptest::collection::vec(op(), 1..8)) {
        let mut via_sql = stream_engine();
        let mut via_batch = stream_engine();
        let mut model = Model::default();
        for op in &ops {
            let sql = op_sql(op);
            let batch = op_batch(op);
            let by_sql = via_sql.execute(&sql);
            let by_batch = match op {
                Op::Table { replace: true, .. } => via_batch.upsert_batch("kv", &batch),
                Op::Table { replace: false, .. } => via_batch.insert_batch("kv", &batch),
                Op::Events { .. } => via_batch.insert_batch("ev", &batch),
            };
            let accepted = model.apply(op);
            prop_assert_eq!(by_sql.is_ok(), accepted, "SQL {}: {:?}", sql, why(&by_sql));
            prop_assert_eq!(by_batch.is_ok(), accepted, "batch {:?}: {:?}", batch, why(&by_batch));
            if let (Err(a), Err(b)) = (&by_sql, &by_batch) {
                prop_assert_eq!(a.to_string(), b.to_string(), "the two paths fail differently");
            }
            if let Ok(rows) = by_batch {
                prop_assert_eq!(rows, batch.num_rows());
            }
        }
        let a = state(&mut via_sql);
        let b = state(&mut via_batch);
        prop_assert_eq!(&a, &b, "SQL INSERT and the batch API disagree");
        model.check(&mut via_sql)?;
        model.check(&mut via_batch)?;
        // The window view: every row lands in exactly one (window, flag) group.
        let rs = via_batch.query("SELECT SUM(n) AS rows FROM per_window").unwrap();
        let total = via_batch.query("SELECT n FROM total").unwrap();
        let want = if model.by_k.is_empty() { Value::Null } else { total.rows[0][0].clone() };
        prop_assert_eq!(format!("{:?}", rs.rows[0][0]), format!("{want:?}"));
    }

    /// The same rows split into batches of any size give the same state as one statement.
    #[test]
    fn batch_boundaries_do_not_matter(
        rows in proptest::collection::vec(ev(), 1..24),
        cut in 1usize..6,
    ) {
        let mut whole = stream_engine();
        let mut pieces = stream_engine();
        whole.execute(&op_sql(&Op::Events { rows: rows.clone(), full: true })).unwrap();
        for chunk in rows.chunks(cut) {
            let op = Op::Events { rows: chunk.to_vec(), full: chunk.len() % 2 == 0 };
            pieces.insert_batch("ev", &op_batch(&op)).unwrap();
        }
        prop_assert_eq!(state(&mut whole), state(&mut pieces));
    }
}
