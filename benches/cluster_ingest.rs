//! Acknowledged ingest over HTTP: `strata serve` processes on loopback, 16 clients each
//! sending `INSERT`s of 1,000 rows (into a source with a `GROUP BY` view on it) for a fixed
//! time, every answer checked (200). Run in the durable tier it measures one durable server
//! (the baseline); in the constellation tier, clusters of 1, 2 and 3 nodes (127.0.0.1, .2,
//! .3, one `file://` store), the ratio of each to one node, the object-store puts per
//! acknowledged statement (group commit), and the time from the SIGKILL of the node that owns
//! the log to every shard held again and a write acknowledged.
//!
//! `cargo bench --no-default-features --features constellation --bench cluster_ingest` (and
//! `--features durable` for the baseline): 10 s per run. Without `--bench` (as `cargo test`
//! runs it) a smoke run: 1 s, 4 clients, 100 rows per statement. The final counts are checked
//! against what was acknowledged.

mod common;

use common::http::{post_sql, serve, strata_command, Server};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use strata::{ActiveProfile, PhysicalProfile};

const KEYS: u64 = 1000;

struct Load {
    seconds: u64,
    clients: usize,
    rows: u64,
}

/// Starts node `i` (0-based) of a cluster on 127.0.0.`i+1`:`port`, joining through node 0.
fn start_node(dir: &Path, store: &Path, i: usize, port: u16) -> (Server, u16) {
    let mut cmd = strata_command();
    cmd.env(
        "STRATA_OBJECT_STORE_URL",
        format!("file://{}", store.display()),
    )
    .env("STRATA_CHECKPOINT_INTERVAL", "30s")
    .arg("--data")
    .arg(dir.join(format!("node{}", i + 1)));
    if ActiveProfile::MULTI_NODE {
        cmd.env("STRATA_CLUSTER_NODE_ID", format!("node{}", i + 1))
            .env("STRATA_CLUSTER_LISTEN", format!("127.0.0.{}:{port}", i + 1))
            .env("STRATA_CLUSTER_SEEDS", format!("127.0.0.1:{port}"));
    }
    cmd.args(["serve", "--listen", "127.0.0.1:0"]);
    serve(cmd)
}

/// A free port on 127.0.0.1-3 for the nodes' gossip (UDP) and requests (TCP).
fn free_port() -> u16 {
    loop {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        if (1..=3).all(|h| {
            let a = std::net::SocketAddr::from(([127, 0, 0, h], port));
            std::net::TcpListener::bind(a).is_ok() && std::net::UdpSocket::bind(a).is_ok()
        }) {
            return port;
        }
    }
}

fn get_json(port: u16, path: &str) -> serde_json::Value {
    use std::io::{Read, Write};
    let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
        return serde_json::Value::Null;
    };
    let _ = write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    );
    let mut raw = String::new();
    let _ = s.read_to_string(&mut raw);
    let body = raw.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    serde_json::from_str(body).unwrap_or(serde_json::Value::Null)
}

/// A cluster node's metric, from its `/metrics`.
fn metric(port: u16, name: &str) -> f64 {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(
        s,
        "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut raw = String::new();
    s.read_to_string(&mut raw).unwrap();
    raw.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or(0.0)
}

/// Waits until every node sees `n` members, one log owner and every shard held.
fn wait_whole(ports: &[u16], n: usize, within: Duration) -> Option<String> {
    let until = Instant::now() + within;
    while Instant::now() < until {
        let seen: Vec<_> = ports
            .iter()
            .map(|p| get_json(*p, "/health")["cluster"].clone())
            .collect();
        let owner = seen[0]["log_owner"].as_str().map(str::to_string);
        let held: u64 = seen.iter().filter_map(|c| c["shards_owned"].as_u64()).sum();
        if owner.is_some()
            && seen.iter().all(|c| {
                c["members"].as_array().is_some_and(|m| m.len() == n)
                    && c["log_owner"].as_str() == owner.as_deref()
            })
            && seen[0]["shards_total"].as_u64() == Some(held)
        {
            return owner;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    None
}

/// The INSERT a client sends as its `seq`-th statement: `rows` rows over `KEYS` keys.
fn insert(client: usize, seq: u64, rows: u64) -> String {
    let values: Vec<String> = (0..rows)
        .map(|r| format!("({}, {})", (seq * 31 + r * 7 + client as u64) % KEYS, r))
        .collect();
    format!("INSERT INTO ev VALUES {}", values.join(","))
}

/// Clients insert through `ports` (in turn) until `stop` or the time is up: rows
/// acknowledged, statements acknowledged, failures.
fn drive(ports: &[u16], load: &Load, stop: &AtomicBool) -> (u64, u64, u64) {
    let rows = AtomicU64::new(0);
    let statements = AtomicU64::new(0);
    let failures = AtomicU64::new(0);
    let until = Instant::now() + Duration::from_secs(load.seconds);
    std::thread::scope(|s| {
        for client in 0..load.clients {
            let (rows, statements, failures) = (&rows, &statements, &failures);
            s.spawn(move || {
                let mut seq = 0;
                while Instant::now() < until && !stop.load(Ordering::Relaxed) {
                    seq += 1;
                    let port = ports[(client + seq as usize) % ports.len()];
                    match post_sql(port, &insert(client, seq, load.rows)) {
                        Ok((200, _)) => {
                            rows.fetch_add(load.rows, Ordering::Relaxed);
                            statements.fetch_add(1, Ordering::Relaxed);
                        }
                        _ => {
                            failures.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
            });
        }
    });
    (
        rows.into_inner(),
        statements.into_inner(),
        failures.into_inner(),
    )
}

/// The rows the view counted, as node `port` answers.
fn counted(port: u16) -> u64 {
    let (status, body) = post_sql(port, "SELECT SUM(n) FROM agg").unwrap();
    assert_eq!(status, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    v["results"][0][0]["sum(n)"].as_u64().unwrap_or(0)
}

/// One measured run on `nodes` servers: acknowledged rows/s and puts per statement.
fn run(nodes: usize, load: &Load) -> (f64, f64) {
    let tmp = tempfile::tempdir().unwrap();
    let store = std::path::absolute(tmp.path().join("store")).unwrap();
    let port = free_port();
    let servers: Vec<(Server, u16)> = (0..nodes)
        .map(|i| start_node(tmp.path(), &store, i, port))
        .collect();
    let ports: Vec<u16> = servers.iter().map(|(_, p)| *p).collect();
    if ActiveProfile::MULTI_NODE {
        wait_whole(&ports, nodes, Duration::from_secs(60)).expect("the cluster forms");
    }
    let (status, body) = post_sql(
        ports[0],
        "CREATE SOURCE ev (k BIGINT, x BIGINT); \
         CREATE MATERIALIZED VIEW agg AS SELECT k, COUNT(*) AS n, SUM(x) AS s FROM ev GROUP BY k",
    )
    .unwrap();
    assert_eq!(status, 200, "{body}");
    let started = Instant::now();
    let (rows, statements, failures) = drive(&ports, load, &AtomicBool::new(false));
    let rate = rows as f64 / started.elapsed().as_secs_f64();
    assert_eq!(failures, 0, "every statement is acknowledged");
    assert_eq!(
        counted(ports[ports.len() - 1]),
        rows,
        "the view counts every row"
    );
    let puts = if ActiveProfile::MULTI_NODE {
        let entries: f64 = ports
            .iter()
            .map(|p| metric(*p, "strata_cluster_log_entries_total"))
            .sum();
        entries / statements.max(1) as f64
    } else {
        f64::NAN
    };
    (rate, puts)
}

/// SIGKILL of the log's owner among 3 nodes under load: the time until the others hold
/// every shard and own the log, and until a write is acknowledged again.
fn failover(load: &Load) -> (Duration, Duration) {
    let tmp = tempfile::tempdir().unwrap();
    let store = std::path::absolute(tmp.path().join("store")).unwrap();
    let port = free_port();
    let mut servers: Vec<Option<(Server, u16)>> = (0..3)
        .map(|i| Some(start_node(tmp.path(), &store, i, port)))
        .collect();
    let ports: Vec<u16> = servers.iter().flatten().map(|(_, p)| *p).collect();
    let owner = wait_whole(&ports, 3, Duration::from_secs(60)).expect("the cluster forms");
    let (status, body) = post_sql(ports[0], "CREATE SOURCE ev (k BIGINT, x BIGINT)").unwrap();
    assert_eq!(status, 200, "{body}");
    let victim: usize = owner.trim_start_matches("node").parse::<usize>().unwrap() - 1;
    let survivors: Vec<u16> = (0..3).filter(|&i| i != victim).map(|i| ports[i]).collect();
    let stop = Arc::new(AtomicBool::new(false));
    let background = {
        let (survivors, stop) = (survivors.clone(), stop.clone());
        let load = Load {
            seconds: 60,
            clients: 4,
            rows: load.rows,
        };
        std::thread::spawn(move || drive(&survivors, &load, &stop))
    };
    std::thread::sleep(Duration::from_millis(500));
    servers[victim] = None; // SIGKILL
    let killed = Instant::now();
    wait_whole(&survivors, 2, Duration::from_secs(60)).expect("the survivors take over");
    let whole = killed.elapsed();
    while post_sql(survivors[0], &insert(99, 1, 1)).map(|(s, _)| s) != Ok(200) {
        assert!(
            killed.elapsed() < Duration::from_secs(60),
            "no write acknowledged"
        );
    }
    let writable = killed.elapsed();
    stop.store(true, Ordering::Relaxed);
    let _ = background.join();
    (whole, writable)
}

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let load = if full {
        Load {
            seconds: 10,
            clients: 16,
            rows: 1000,
        }
    } else {
        Load {
            seconds: 1,
            clients: 4,
            rows: 100,
        }
    };
    let profile = ActiveProfile::NAME;
    println!(
        "cluster_ingest ({}): profile {profile}, {} clients, INSERTs of {} rows, {} s per run, \
         {} hardware threads, object store file:// on the local disk",
        if full {
            "full"
        } else {
            "smoke run, no --bench"
        },
        load.clients,
        load.rows,
        load.seconds,
        std::thread::available_parallelism().map_or(1, |n| n.get()),
    );
    println!(
        "reproduce: cargo bench --no-default-features --features {profile} --bench cluster_ingest"
    );
    if !ActiveProfile::MULTI_NODE {
        let (rate, _) = run(1, &load);
        println!("  1 {profile} server: {rate:>12.0} acknowledged rows/s");
        return;
    }
    let sizes: &[usize] = if full { &[1, 2, 3] } else { &[1, 3] };
    let mut one = 0.0;
    for &n in sizes {
        let (rate, puts) = run(n, &load);
        if n == 1 {
            one = rate;
        }
        println!(
            "  {n} node(s): {rate:>12.0} acknowledged rows/s  ({:.2}x one node)  {puts:.2} log puts per statement",
            rate / one
        );
    }
    let (whole, writable) = failover(&load);
    println!(
        "  SIGKILL of the log's owner (3 nodes, under load): every shard held and the log owned \
         again after {:.2} s, a write acknowledged after {:.2} s",
        whole.as_secs_f64(),
        writable.as_secs_f64()
    );
}
