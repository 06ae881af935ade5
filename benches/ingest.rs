//! Ingest throughput of the compiled profile, each measurement against its baseline in the
//! same run (issue 2 §7):
//!
//! - (a)/(b) typed batch ingest into a COUNT/SUM/MIN/MAX GROUP BY view at 1k, 100k and 1M
//!   keys vs a hand-written `FxHashMap` loop (`strata::bench::ingest_vs_fxhashmap`). Under
//!   `embedded` this is (a); under `bare-metal` the same code measures the static state (b).
//! - (c) multi-row SQL `INSERT` (1,000 rows per statement) through `Engine::execute` vs SQLite
//!   (rusqlite, bundled, in-memory) maintaining the same aggregation by UPSERT.
//!
//! `harness = false`: a plain `main` that prints tables. Run it with
//! `cargo bench --bench ingest` (embedded) or
//! `cargo bench --no-default-features --features bare-metal --bench ingest`;
//! `STRATA_BENCH_QUICK=1` picks smaller sizes. Arguments (cargo passes `--bench`) are ignored.

mod common;

use common::report::{load_average, thousands};
use common::{
    capacity_for, compare_aggregates, engine_aggregates, reference_aggregates, sqlite_aggregates,
    Aggregates,
};
use rusqlite::Connection;
use std::fmt::Write as _;
use std::hint::black_box;
use std::time::{Duration, Instant};
use strata::bench::{bench_engine, ingest_vs_fxhashmap, workload};
use strata::{ActiveProfile, PhysicalProfile};
use strata::{Batch, Column};

type P = ActiveProfile;

/// Rows per SQL statement in (c).
const ROWS_PER_STATEMENT: usize = 1_000;
/// Distinct keys measured in every part.
const KEYS: [usize; 3] = [1_000, 100_000, 1_000_000];

/// Sizes of one run.
struct Sizes {
    quick: bool,
    /// Rows per configuration in (a)/(b).
    batch_rows_total: usize,
    /// Rows per typed batch in (a)/(b).
    batch_rows: usize,
    /// Rows per configuration in (c).
    sql_rows: usize,
    /// Runs per configuration; the best is reported.
    repeats: usize,
}

impl Sizes {
    fn from_env() -> Sizes {
        let quick = std::env::var("STRATA_BENCH_QUICK").is_ok_and(|v| !v.is_empty() && v != "0");
        if quick {
            Sizes {
                quick,
                batch_rows_total: 2_000_000,
                batch_rows: 10_000,
                sql_rows: 200_000,
                repeats: 3,
            }
        } else {
            Sizes {
                quick,
                batch_rows_total: 4_000_000,
                batch_rows: 10_000,
                sql_rows: 1_000_000,
                repeats: 5,
            }
        }
    }
}

fn rate(rows: usize, d: Duration) -> f64 {
    rows as f64 / d.as_secs_f64()
}

/// (a)/(b): one key count. Returns the table row and whether the result was verified.
fn typed_batch(keys: usize, s: &Sizes) -> Result<String, String> {
    let r = ingest_vs_fxhashmap::<P>(keys, s.batch_rows_total, s.batch_rows, s.repeats)
        .map_err(|e| e.to_string())?;
    // Outside the measurement: the same workload through the same path must give exactly the
    // aggregates of the reference, or the ratio means nothing.
    let (ks, vs) = workload(keys, s.batch_rows_total);
    let mut engine = bench_engine::<P>(capacity_for(keys)).map_err(|e| e.to_string())?;
    for (k, v) in ks.chunks(s.batch_rows).zip(vs.chunks(s.batch_rows)) {
        let b = Batch::new()
            .with_column("k", Column::bigint(k.to_vec()))
            .with_column("v", Column::bigint(v.to_vec()));
        engine
            .insert_batch("events", &b)
            .map_err(|e| e.to_string())?;
    }
    let want = reference_aggregates(&ks, &vs);
    compare_aggregates("strata", &engine_aggregates(&mut engine)?, &want)?;
    Ok(format!(
        "{:>10} {:>10} {:>18} {:>18} {:>7.2}  ok ({} groups)",
        r.keys,
        r.rows,
        thousands(r.strata_rows_per_sec),
        thousands(r.baseline_rows_per_sec),
        r.ratio(),
        want.len()
    ))
}

const SQLITE_SCHEMA: &str = "CREATE TABLE stats (k INTEGER PRIMARY KEY, n INTEGER NOT NULL, \
     total INTEGER NOT NULL, lo INTEGER NOT NULL, hi INTEGER NOT NULL)";
const SQLITE_UPSERT: &str =
    "ON CONFLICT(k) DO UPDATE SET n = n + 1, total = total + excluded.total, \
     lo = min(lo, excluded.lo), hi = max(hi, excluded.hi)";

/// The statement texts of (c), generated before anything is timed.
struct Statements {
    /// `INSERT INTO events VALUES (k, v), …` for the engine.
    strata: Vec<String>,
    /// `INSERT INTO stats VALUES (k, 1, v, v, v), … ON CONFLICT …` for SQLite.
    sqlite_rows: Vec<String>,
    /// `INSERT INTO stats SELECT … FROM (VALUES (k, v), …) WHERE true ON CONFLICT …`: the
    /// engine's exact `(k, v)` tuples, so SQLite parses the same row text.
    sqlite_same_tuples: Vec<String>,
}

fn statements(ks: &[i64], vs: &[i64]) -> Statements {
    let mut st = Statements {
        strata: Vec::new(),
        sqlite_rows: Vec::new(),
        sqlite_same_tuples: Vec::new(),
    };
    for (k, v) in ks
        .chunks(ROWS_PER_STATEMENT)
        .zip(vs.chunks(ROWS_PER_STATEMENT))
    {
        let mut tuples = String::with_capacity(k.len() * 16);
        let mut wide = String::with_capacity(k.len() * 32);
        for (i, (k, v)) in k.iter().zip(v).enumerate() {
            let sep = if i == 0 { "" } else { "," };
            write!(tuples, "{sep}({k},{v})").unwrap();
            write!(wide, "{sep}({k},1,{v},{v},{v})").unwrap();
        }
        st.strata
            .push(format!("INSERT INTO events VALUES {tuples}"));
        st.sqlite_rows
            .push(format!("INSERT INTO stats VALUES {wide} {SQLITE_UPSERT}"));
        st.sqlite_same_tuples.push(format!(
            "INSERT INTO stats (k, n, total, lo, hi) SELECT column1, 1, column2, column2, column2 \
             FROM (VALUES {tuples}) WHERE true {SQLITE_UPSERT}"
        ));
    }
    st
}

/// One side of (c): best time over the repeats, and the final aggregates of the last run.
struct Side {
    name: &'static str,
    best: Duration,
    result: Result<Aggregates, String>,
}

/// Times `run` on fresh state `repeats` times; `setup` is outside the timed region.
fn measure<S>(
    name: &'static str,
    repeats: usize,
    mut setup: impl FnMut() -> Result<S, String>,
    mut run: impl FnMut(&mut S) -> Result<(), String>,
    mut read: impl FnMut(&mut S) -> Result<Aggregates, String>,
) -> Side {
    let mut best = Duration::MAX;
    let mut last = None;
    for _ in 0..repeats.max(1) {
        let mut state = match setup() {
            Ok(s) => s,
            Err(e) => {
                return Side {
                    name,
                    best,
                    result: Err(e),
                }
            }
        };
        let start = Instant::now();
        if let Err(e) = run(&mut state) {
            return Side {
                name,
                best,
                result: Err(e),
            };
        }
        best = best.min(start.elapsed());
        last = Some(black_box(state));
    }
    let result = read(last.as_mut().expect("at least one run"));
    Side { name, best, result }
}

fn sqlite_conn() -> Result<Connection, String> {
    let conn = Connection::open_in_memory().map_err(|e| e.to_string())?;
    conn.execute_batch(SQLITE_SCHEMA)
        .map_err(|e| e.to_string())?;
    Ok(conn)
}

/// (c): one key count. Returns the table lines; `Err` if some side failed or disagreed.
fn sql_insert(keys: usize, s: &Sizes, out: &mut Vec<String>) -> bool {
    let (ks, vs) = workload(keys, s.sql_rows);
    let want = reference_aggregates(&ks, &vs);
    let st = statements(&ks, &vs);
    let rows = ks.len();

    let strata = measure(
        "strata   engine.execute(\"INSERT INTO events VALUES (k,v),…\")",
        s.repeats,
        || bench_engine::<P>(capacity_for(keys)).map_err(|e| e.to_string()),
        |engine| {
            for text in &st.strata {
                engine.execute(text).map_err(|e| e.to_string())?;
            }
            Ok(())
        },
        engine_aggregates,
    );
    let sqlite_text = measure(
        "SQLite   text: INSERT INTO stats VALUES (k,1,v,v,v),… UPSERT",
        s.repeats,
        sqlite_conn,
        |conn| {
            for text in &st.sqlite_rows {
                conn.execute(text, []).map_err(|e| e.to_string())?;
            }
            Ok(())
        },
        |conn| sqlite_aggregates(conn),
    );
    let sqlite_tuples = measure(
        "SQLite   text: same (k,v) tuples, INSERT…SELECT FROM (VALUES…) UPSERT",
        s.repeats,
        sqlite_conn,
        |conn| {
            for text in &st.sqlite_same_tuples {
                conn.execute(text, []).map_err(|e| e.to_string())?;
            }
            Ok(())
        },
        |conn| sqlite_aggregates(conn),
    );
    let sqlite_prepared = measure(
        "SQLite   prepared (?,1,?,?,?) UPSERT reused per row, BEGIN…COMMIT per 1,000",
        s.repeats,
        sqlite_conn,
        |conn| {
            let mut stmt = conn
                .prepare(&format!(
                    "INSERT INTO stats VALUES (?1, 1, ?2, ?2, ?2) {SQLITE_UPSERT}"
                ))
                .map_err(|e| e.to_string())?;
            for (k, v) in ks
                .chunks(ROWS_PER_STATEMENT)
                .zip(vs.chunks(ROWS_PER_STATEMENT))
            {
                conn.execute_batch("BEGIN").map_err(|e| e.to_string())?;
                for (k, v) in k.iter().zip(v) {
                    stmt.execute([k, v]).map_err(|e| e.to_string())?;
                }
                conn.execute_batch("COMMIT").map_err(|e| e.to_string())?;
            }
            Ok(())
        },
        |conn| sqlite_aggregates(conn),
    );

    let mut ok = true;
    let strata_rate = strata.result.is_ok().then(|| rate(rows, strata.best));
    for (i, side) in [&strata, &sqlite_text, &sqlite_tuples, &sqlite_prepared]
        .into_iter()
        .enumerate()
    {
        let check = side
            .result
            .as_ref()
            .map_err(Clone::clone)
            .and_then(|got| compare_aggregates(side.name, got, &want));
        let (rs, ratio, verdict) = match &check {
            Ok(()) => {
                let r = rate(rows, side.best);
                let ratio = match strata_rate {
                    Some(sr) if i > 0 => format!("{:.2}", sr / r),
                    _ => "—".to_string(),
                };
                (thousands(r), ratio, "ok".to_string())
            }
            Err(e) => {
                ok = false;
                ("—".to_string(), "—".to_string(), format!("FAILED: {e}"))
            }
        };
        out.push(format!(
            "{:>10} {:<78} {:>14} {:>8}  {verdict}",
            keys, side.name, rs, ratio
        ));
    }
    out.push(format!(
        "{:>10} all sides hold the same {} groups (n, total, lo, hi per key compared with a direct computation){}",
        "",
        want.len(),
        if ok { "" } else { " — NOT VERIFIED, see FAILED above" }
    ));
    ok
}

fn main() {
    // cargo passes `--bench`; a filter or other flags change nothing here.
    for arg in std::env::args().skip(1) {
        if arg != "--bench" {
            eprintln!("note: ignoring argument `{arg}`");
        }
    }
    // `cargo test --all-targets` runs this without `--bench`: a smoke run that checks every
    // side's results on tiny inputs, too small for figures.
    let smoke = !std::env::args().any(|a| a == "--bench");
    let s = if smoke {
        println!("smoke run (no --bench): tiny sizes, results checked, rates meaningless");
        Sizes {
            quick: true,
            batch_rows_total: 20_000,
            batch_rows: 1_000,
            sql_rows: 5_000,
            repeats: 1,
        }
    } else {
        Sizes::from_env()
    };
    let quick = if s.quick { "STRATA_BENCH_QUICK=1 " } else { "" };
    let features = match P::NAME {
        "embedded" => String::new(),
        other => format!("--no-default-features --features {other} "),
    };
    println!("reproduce: {quick}cargo bench {features}--bench ingest");
    println!(
        "profile {} ({} mode), {} hardware threads, SQLite {} (rusqlite bundled)",
        P::NAME,
        if s.quick { "quick" } else { "full" },
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        rusqlite::version()
    );
    println!("keys and values are strata::bench::workload (xorshift), values 0..999; every rate is the best of {} runs on fresh state", s.repeats);
    println!("load average at start: {} (other processes on the machine skew rates; compare within a run)", load_average());
    let mut all_ok = true;

    println!();
    let part = if P::NAME == "bare-metal" {
        "(b) typed batch ingest into the bare-metal static state"
    } else {
        "(a) typed batch ingest"
    };
    println!(
        "{part}: Engine::insert_batch into `SELECT k, COUNT(*), SUM(v), MIN(v), MAX(v) FROM events GROUP BY k` \
         vs a hand-written FxHashMap loop; {} rows/batch, capacity = keys rounded up to a power of two",
        s.batch_rows
    );
    println!(
        "{:>10} {:>10} {:>18} {:>18} {:>7}  state check",
        "keys", "rows", "strata rows/s", "FxHashMap rows/s", "ratio"
    );
    for keys in KEYS {
        match typed_batch(keys, &s) {
            Ok(line) => println!("{line}"),
            Err(e) => {
                all_ok = false;
                println!("{keys:>10} {:>10} FAILED: {e}", s.batch_rows_total);
            }
        }
    }

    println!();
    println!(
        "(c) multi-row SQL INSERT, {ROWS_PER_STATEMENT} rows per statement, {} rows ({} statements) per key count; \
         statement texts generated before timing",
        s.sql_rows,
        s.sql_rows.div_ceil(ROWS_PER_STATEMENT)
    );
    println!(
        "    SQLite: in-memory database (:memory:, default pragmas), \
         `{SQLITE_SCHEMA}`, aggregation by `… {SQLITE_UPSERT}`"
    );
    println!(
        "    transactions: one per 1,000 rows on every side — each text statement is its own (SQLite autocommit; \
         a strata statement is all-or-nothing); the prepared baseline wraps each 1,000 rows in BEGIN…COMMIT"
    );
    println!("    ratio = strata rows/s ÷ that SQLite variant's rows/s");
    println!(
        "{:>10} {:<78} {:>14} {:>8}  state check",
        "keys", "side", "rows/s", "ratio"
    );
    for keys in KEYS {
        let mut lines = Vec::new();
        all_ok &= sql_insert(keys, &s, &mut lines);
        for l in lines {
            println!("{l}");
        }
    }
    println!();
    println!("load average at end: {}", load_average());
    if !all_ok {
        eprintln!("error: some measurements failed or their results disagreed; see FAILED above");
        std::process::exit(1);
    }
}
