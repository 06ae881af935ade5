//! A bounded load test of `strata serve` (the durable tier) over real HTTP on 127.0.0.1.
//!
//! The real binary serves a data directory in a temporary directory with a `file://` object
//! store beside it (connection limits raised to 1,024, as every client here is 127.0.0.1).
//! After `CREATE SOURCE ev` and a `GROUP BY` view `agg` on it, three workloads, each a fixed
//! number of `POST /sql` requests shared by client threads: `select` (`SELECT COUNT(*),
//! SUM(n) FROM agg`, or a point query on one key), `insert` (a 1-row `INSERT`) and `mix` (3
//! of 4 an `INSERT` of 10 rows, 1 of 4 a read). Each request is one HTTP/1.1 connection
//! (`Connection: close`); its latency is connect + request + reading the whole answer. Every
//! answer must be 200. Reported per workload: requests/s, p50, p99 and max latency, errors.
//!
//! Then the change-stream fan-out: one client sends 1,000-row `INSERT`s into a source whose
//! view has 8 groups for a fixed time, first alone, then while N clients follow the view's
//! changes (`GET /views/fan/changes`), each reading every event. Reported: rows/s of both and
//! their ratio; checked: every follower received every change.
//!
//! Checked at the end: `SUM(n)` and `SUM(s)` of `agg` equal the rows and the sum of `x`
//! inserted, and SIGTERM stops the server with exit 0 within 30 s.
//!
//! `harness = false`, built only with `--features durable`. `cargo bench --no-default-features
//! --features durable --bench server_load` sends 4,000 requests per workload from 64 threads
//! and has 200 followers; without `--bench` (as `cargo test` runs it) a smoke run of 200
//! requests from 8 threads and 10 followers. Either stops sending after a hard time limit and
//! reports what it did. Panics on any failure.

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
    .env("STRATA_SERVER_MAX_CONNECTIONS", "1024")
    .env("STRATA_SERVER_MAX_CONNECTIONS_PER_CLIENT", "1024")
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

/// Request `i` of a workload: its SQL, and the rows and the sum of `x` it inserts.
type MakeRequest = fn(u64) -> (String, u64, u64);

/// A read of `agg`: its totals, or one key.
fn select_sql(i: u64) -> (String, u64, u64) {
    if i.is_multiple_of(2) {
        ("SELECT COUNT(*), SUM(n) FROM agg".into(), 0, 0)
    } else {
        (
            format!("SELECT k, n, s FROM agg WHERE k = {}", i % KEYS),
            0,
            0,
        )
    }
}

/// An `INSERT` of `rows` rows (keys and values derived from `i`): the SQL, the rows and the
/// sum of `x` it inserts.
fn insert_sql(i: u64, rows: u64) -> (String, u64, u64) {
    let values: Vec<String> = (0..rows)
        .map(|r| format!("({}, {})", (i * 7 + r * 131) % KEYS, i + r))
        .collect();
    let x_sum = (0..rows).map(|r| i + r).sum();
    (
        format!("INSERT INTO ev VALUES {}", values.join(", ")),
        rows,
        x_sum,
    )
}

/// Request `i` of the mix: 3 of 4 insert 10 rows, 1 of 4 reads.
fn mix_sql(i: u64) -> (String, u64, u64) {
    match i % 8 {
        0 | 4 => select_sql(i / 4),
        _ => insert_sql(i, ROWS_PER_INSERT),
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

/// What one workload did.
struct Load {
    sent: u64,
    elapsed: Duration,
    /// Sorted.
    latencies: Vec<Duration>,
    errors: Vec<String>,
    rows: u64,
    x_sum: u64,
}

/// `total` requests made by `make(i)`, sent by `threads` threads, for at most `limit`.
fn run_load(port: u16, total: u64, threads: usize, limit: Duration, make: MakeRequest) -> Load {
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
                        let (sql, rows, x_sum) = make(i);
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
    latencies.sort();
    Load {
        sent: latencies.len() as u64,
        elapsed,
        latencies,
        errors: results.into_iter().flat_map(|r| r.errors).collect(),
        rows: rows_inserted.load(Ordering::Relaxed),
        x_sum: x_inserted.load(Ordering::Relaxed),
    }
}

/// The change-stream fan-out (see the module docs): ingest alone, then with `followers`
/// clients reading every change of the view.
fn fan_out(port: u16, followers: usize, each: Duration) {
    let (status, body) = post_sql(
        port,
        "CREATE SOURCE fe (k BIGINT NOT NULL, x BIGINT NOT NULL);
         CREATE MATERIALIZED VIEW fan AS SELECT k, COUNT(*) AS n, SUM(x) AS s FROM fe GROUP BY k",
    )
    .expect("fan-out setup");
    assert_eq!(status, 200, "fan-out setup: {body}");
    let statement: String = {
        let rows: Vec<String> = (0..1000).map(|i| format!("({}, {i})", i % 8)).collect();
        format!("INSERT INTO fe VALUES {}", rows.join(", "))
    };
    // One client, statements back to back: (statements, rows/s).
    let ingest = || {
        let started = Instant::now();
        let mut statements = 0u64;
        while started.elapsed() < each {
            let (status, body) = post_sql(port, &statement).expect("insert");
            assert_eq!(status, 200, "{body}");
            statements += 1;
        }
        (
            statements,
            statements as f64 * 1000.0 / started.elapsed().as_secs_f64(),
        )
    };
    let (_, alone) = ingest();
    let streams: Vec<std::net::TcpStream> = (0..followers).map(|_| follow(port, "fan")).collect();
    let (statements, followed) = ingest();
    // Every statement changes the 8 groups: each follower must read 8 events per statement.
    let expected = statements * 8;
    let counts: Vec<u64> = std::thread::scope(|s| {
        let readers: Vec<_> = streams
            .into_iter()
            .map(|stream| s.spawn(move || count_changes(stream, expected)))
            .collect();
        readers.into_iter().map(|r| r.join().unwrap()).collect()
    });
    println!(
        "change fan-out: 1,000-row INSERTs into a view of 8 groups, {:.1}s each: alone {alone:.0} rows/s; \
         with {followers} followers reading every change {followed:.0} rows/s (ratio {:.2}); \
         each follower received {} of {expected} changes",
        each.as_secs_f64(),
        followed / alone,
        counts.iter().min().unwrap(),
    );
    assert!(
        counts.iter().all(|&c| c == expected),
        "a follower missed changes: {counts:?} of {expected}"
    );
}

/// Opens `GET /views/VIEW/changes` and reads its response header.
fn follow(port: u16, view: &str) -> std::net::TcpStream {
    use std::io::{BufRead, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
    stream
        .write_all(format!("GET /views/{view}/changes HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes())
        .unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    // The header arrives once the subscription exists: later changes all reach this client.
    let mut reader = std::io::BufReader::new(stream.try_clone().unwrap());
    let mut line = String::new();
    reader.read_line(&mut line).unwrap();
    assert!(line.starts_with("HTTP/1.1 200"), "{line}");
    loop {
        line.clear();
        reader.read_line(&mut line).unwrap();
        if line == "\r\n" {
            break;
        }
    }
    assert!(reader.buffer().is_empty(), "events before the first change");
    stream
}

/// Reads `change` events from a followed stream until `expected` arrived (or the stream
/// stops); returns how many did.
fn count_changes(stream: std::net::TcpStream, expected: u64) -> u64 {
    use std::io::BufRead;
    let mut reader = std::io::BufReader::new(stream);
    let mut seen = 0;
    let mut line = String::new();
    while seen < expected {
        line.clear();
        match reader.read_line(&mut line) {
            Ok(0) | Err(_) => break,
            Ok(_) if line.contains("event: change") => seen += 1,
            Ok(_) if line.contains("event: dropped") => break,
            Ok(_) => {}
        }
    }
    seen
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

    let mut rows = 0;
    let mut x_sum = 0;
    let mut failed = 0;
    let workloads: [(&str, MakeRequest); 3] = [
        ("select", select_sql),
        ("insert 1 row", |i| insert_sql(i, 1)),
        ("mix", mix_sql),
    ];
    for (name, make) in workloads {
        let load = run_load(port, total, threads, limit, make);
        println!(
            "{name:>12}: {} requests in {:.2}s: {:.0} requests/s; latency p50 {}, p99 {}, max {}; errors {}",
            load.sent,
            load.elapsed.as_secs_f64(),
            load.sent as f64 / load.elapsed.as_secs_f64(),
            ms(percentile(&load.latencies, 0.50)),
            ms(percentile(&load.latencies, 0.99)),
            ms(*load.latencies.last().unwrap()),
            load.errors.len()
        );
        if load.sent < total {
            println!(
                "TIME LIMIT: stopped after {}s with {} of {total} requests sent",
                limit.as_secs(),
                load.sent
            );
        }
        for e in load.errors.iter().take(5) {
            println!("  error: {e}");
        }
        rows += load.rows;
        x_sum += load.x_sum;
        failed += load.errors.len();
    }
    fan_out(
        port,
        if full { 200 } else { 10 },
        if full {
            Duration::from_secs(5)
        } else {
            Duration::from_millis(500)
        },
    );

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

    assert_eq!(failed, 0, "{failed} requests failed");
    assert_eq!(got_rows, Some(rows), "SUM(n) against rows inserted");
    assert_eq!(got_x, Some(x_sum), "SUM(s) against the sum of x inserted");
    assert!(exit.success(), "strata serve exit status {exit}");
    println!("ok: errors 0, totals match, clean shutdown");
}
