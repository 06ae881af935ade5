//! A bounded load test of `strata serve` (the durable tier) over real HTTP on 127.0.0.1.
//!
//! The real binary serves a data directory in a temporary directory with a `file://` object
//! store beside it. After `CREATE SOURCE ev` and a `GROUP BY` view `agg` on it, client threads
//! share a fixed number of `POST /sql` requests: 3 of 4 are an `INSERT` of 10 rows, 1 of 4 is
//! a read (`SELECT COUNT(*), SUM(n) FROM agg`, or a point query on one key). Each request is
//! one HTTP/1.1 connection (`Connection: close`); its latency is connect + request + reading
//! the whole answer. Every answer must be 200. Reported: requests/s, p50, p99 and max latency,
//! errors. Checked at the end: `SUM(n)` and `SUM(s)` of `agg` equal the rows and the sum of `x`
//! inserted, and SIGTERM stops the server with exit 0 within 30 s.
//!
//! `harness = false`, built only with `--features durable`. `cargo bench --no-default-features
//! --features durable --bench server_load` sends 4,000 requests from 64 threads; without
//! `--bench` (as `cargo test` runs it) a smoke run of 200 requests from 8 threads. Either
//! stops sending after a hard time limit and reports what it did. Panics on any failure.

use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

mod common;

use common::http::{post_sql, serve, strata_command, Server};

const REPRODUCE: &str = "cargo bench --no-default-features --features durable --bench server_load";
const ROWS_PER_INSERT: u64 = 10;
const KEYS: u64 = 1000;

/// `strata --data DATA serve --listen 127.0.0.1:0` with a `file://` store and no inherited
/// `STRATA_*` variables; returns the child and its port once it prints `listening on`.
fn start_server(dir: &std::path::Path) -> (Server, u16) {
    let store = std::path::absolute(dir.join("store")).unwrap();
    let mut cmd = strata_command();
    cmd.env(
        "STRATA_OBJECT_STORE_URL",
        format!("file://{}", store.display()),
    )
    .arg("--data")
    .arg(dir.join("data"))
    .args(["serve", "--listen", "127.0.0.1:0"]);
    serve(cmd)
}

/// The rows of the only result set of a 200 answer to a single SELECT.
fn query(port: u16, sql: &str) -> Vec<serde_json::Value> {
    let (status, body) = post_sql(port, sql).expect("query");
    assert_eq!(status, 200, "{sql}: {body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    v["results"][0].as_array().expect("one result set").clone()
}

/// Request `i` of the mix: 3 of 4 insert 10 rows (keys and values derived from `i`), 1 of 4
/// reads (the totals of `agg`, or one key). Returns the SQL, and the rows and sum of `x` it
/// inserts.
fn request_sql(i: u64) -> (String, u64, u64) {
    match i % 8 {
        0 => ("SELECT COUNT(*), SUM(n) FROM agg".into(), 0, 0),
        4 => (
            format!("SELECT k, n, s FROM agg WHERE k = {}", i % KEYS),
            0,
            0,
        ),
        _ => {
            let rows: Vec<String> = (0..ROWS_PER_INSERT)
                .map(|r| format!("({}, {})", (i * 7 + r * 131) % KEYS, i + r))
                .collect();
            let x_sum = (0..ROWS_PER_INSERT).map(|r| i + r).sum();
            let sql = format!("INSERT INTO ev VALUES {}", rows.join(", "));
            (sql, ROWS_PER_INSERT, x_sum)
        }
    }
}

#[derive(Default)]
struct ThreadResult {
    latencies: Vec<Duration>,
    errors: Vec<String>,
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len());
    sorted[i - 1]
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1e3)
}

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let (total, threads, limit) = if full {
        (4_000u64, 64usize, Duration::from_secs(120))
    } else {
        (200, 8, Duration::from_secs(60))
    };
    let version = Command::new(env!("CARGO_BIN_EXE_strata"))
        .arg("--version")
        .output()
        .expect("strata --version");
    let version = String::from_utf8_lossy(&version.stdout).trim().to_string();
    assert!(
        version.contains("profile durable"),
        "the binary is not the durable tier: {version}; run: {REPRODUCE}"
    );
    println!(
        "server_load ({}): {version}; {total} requests, concurrency {threads}, time limit {}s",
        if full {
            "full"
        } else {
            "smoke run, no --bench"
        },
        limit.as_secs()
    );
    println!("reproduce: {REPRODUCE}");

    let tmp = tempfile::tempdir().unwrap();
    let (mut server, port) = start_server(tmp.path());
    let (status, body) = post_sql(
        port,
        "CREATE SOURCE ev (k BIGINT NOT NULL, x BIGINT NOT NULL);
         CREATE MATERIALIZED VIEW agg AS SELECT k, COUNT(*) AS n, SUM(x) AS s FROM ev GROUP BY k",
    )
    .expect("setup");
    assert_eq!(status, 200, "setup: {body}");

    let next = AtomicU64::new(0);
    let rows_inserted = AtomicU64::new(0);
    let x_inserted = AtomicU64::new(0);
    let started = Instant::now();
    let deadline = started + limit;
    let results: Vec<ThreadResult> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                s.spawn(|| {
                    let mut out = ThreadResult::default();
                    while Instant::now() < deadline {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        if i >= total {
                            break;
                        }
                        let (sql, rows, x_sum) = request_sql(i);
                        let t = Instant::now();
                        let answer = post_sql(port, &sql);
                        out.latencies.push(t.elapsed());
                        match answer {
                            Ok((200, _)) => {
                                rows_inserted.fetch_add(rows, Ordering::Relaxed);
                                x_inserted.fetch_add(x_sum, Ordering::Relaxed);
                            }
                            Ok((status, body)) => out.errors.push(format!("{status}: {body}")),
                            Err(e) => out.errors.push(e),
                        }
                    }
                    out
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let elapsed = started.elapsed();

    let mut latencies: Vec<Duration> = results.iter().flat_map(|r| r.latencies.clone()).collect();
    let errors: Vec<&String> = results.iter().flat_map(|r| &r.errors).collect();
    latencies.sort();
    let sent = latencies.len() as u64;
    let rows = rows_inserted.load(Ordering::Relaxed);
    let x_sum = x_inserted.load(Ordering::Relaxed);
    if sent < total {
        println!(
            "TIME LIMIT: stopped after {}s with {sent} of {total} requests sent",
            limit.as_secs()
        );
    }
    println!(
        "{sent} requests in {:.2}s: {:.0} requests/s, {:.0} rows/s inserted; latency p50 {}, \
         p99 {}, max {}; errors {}",
        elapsed.as_secs_f64(),
        sent as f64 / elapsed.as_secs_f64(),
        rows as f64 / elapsed.as_secs_f64(),
        ms(percentile(&latencies, 0.50)),
        ms(percentile(&latencies, 0.99)),
        ms(*latencies.last().unwrap()),
        errors.len()
    );
    for e in errors.iter().take(5) {
        println!("  error: {e}");
    }

    let totals = query(port, "SELECT SUM(n) AS total_n, SUM(s) AS total_s FROM agg");
    let (got_rows, got_x) = (totals[0]["total_n"].as_u64(), totals[0]["total_s"].as_u64());
    println!(
        "check: SUM(n) = {got_rows:?}, SUM(s) = {got_x:?}; inserted {rows} rows, x sum {x_sum}"
    );

    let pid = server.0.id().to_string();
    let t = Instant::now();
    let killed = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    assert!(killed.success(), "kill -TERM {pid}");
    let exit = loop {
        if let Some(status) = server.0.try_wait().unwrap() {
            break status;
        }
        if t.elapsed() > Duration::from_secs(30) {
            panic!("strata serve did not stop within 30 s of SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    println!(
        "SIGTERM: server exited with {exit} after {}",
        ms(t.elapsed())
    );

    assert!(errors.is_empty(), "{} requests failed", errors.len());
    assert_eq!(got_rows, Some(rows), "SUM(n) against rows inserted");
    assert_eq!(got_x, Some(x_sum), "SUM(s) against the sum of x inserted");
    assert!(exit.success(), "strata serve exit status {exit}");
    println!("ok: errors 0, totals match, clean shutdown");
}
