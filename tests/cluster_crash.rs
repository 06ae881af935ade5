//! Three `strata serve` processes of the constellation tier on 127.0.0.1, .2 and .3 sharing
//! one store (the S3 test server when it runs, else a `file://` directory), clients
//! inserting through random nodes at once, and the node that owns the cluster's log
//! SIGKILLed mid-stream; its data directory is deleted and it comes back.
//!
//! Every statement inserts `ROWS` rows with ids of their own. A witness view counts each
//! id: every row of every acknowledged statement (HTTP 200) is counted exactly once; a
//! statement that failed (the node died, the answer never came) is there whole or not at
//! all, never twice; a second view equals a recomputation from the rows present; and every
//! node answers the same once the cluster is whole again.
#![cfg(feature = "cluster")]

mod common;

use common::cli;
use common::http::{request, serve, sql, Server};
use common::stores::{store_settings, unique};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const CLIENTS: u64 = 4;
/// Rows per INSERT statement.
const ROWS: u64 = 5;

struct Node {
    id: String,
    listen: String,
    data: PathBuf,
}

/// The store every node shares: on the S3 test server when it runs (`scripts/test-all`
/// starts it and requires it), else a directory. On S3, a bucket of its own: the test
/// server (moto) lists a prefix by scanning the whole bucket, which the other tests fill.
fn store_url(tmp: &Path) -> String {
    match std::env::var("STRATA_TEST_S3_ENDPOINT") {
        Ok(endpoint) => {
            let port: u16 = endpoint.rsplit(':').next().unwrap().parse().unwrap();
            let bucket = unique("crash").to_lowercase();
            let made = request(port, "PUT", &format!("/{bucket}"), &[], b"");
            assert_eq!(made.status, 200, "creating bucket {bucket}: {}", made.body);
            format!("s3://{bucket}/cluster")
        }
        Err(_) => {
            assert!(
                std::env::var_os("STRATA_REQUIRE_S3").is_none(),
                "STRATA_REQUIRE_S3 is set but STRATA_TEST_S3_ENDPOINT is not"
            );
            format!("file://{}", tmp.join("store").display())
        }
    }
}

fn start(node: &Node, store: &str, seed: &str) -> Server {
    let mut cmd = cli::strata(Some(&node.data));
    if let Some(endpoint) = store_settings(store).endpoint {
        cmd.env("STRATA_OBJECT_STORE_ENDPOINT", endpoint)
            .env("STRATA_OBJECT_STORE_ALLOW_HTTP", "true")
            .env("STRATA_OBJECT_STORE_REGION", "us-east-1")
            .env("STRATA_OBJECT_STORE_ACCESS_KEY_ID", "test")
            .env("STRATA_OBJECT_STORE_SECRET_ACCESS_KEY", "test");
    }
    cmd.env("STRATA_OBJECT_STORE_URL", store)
        .env("STRATA_CLUSTER_NODE_ID", &node.id)
        .env("STRATA_CLUSTER_LISTEN", &node.listen)
        .env("STRATA_CLUSTER_SEEDS", seed)
        .env("STRATA_CHECKPOINT_INTERVAL", "3s")
        .args(["serve", "--listen", "127.0.0.1:0"]);
    serve(cmd)
}

fn health(port: u16) -> serde_json::Value {
    let r = request(port, "GET", "/health", &[], b"");
    serde_json::from_str(&r.body).unwrap_or(serde_json::Value::Null)
}

/// Waits until every server sees `n` members and one owner of the log; returns the owner.
fn wait_whole(ports: &[u16], n: usize) -> String {
    let until = Instant::now() + Duration::from_secs(60);
    loop {
        let seen: Vec<serde_json::Value> = ports.iter().map(|p| health(*p)).collect();
        let owner = &seen[0]["cluster"]["log_owner"];
        if seen.iter().all(|h| {
            h["cluster"]["members"]
                .as_array()
                .is_some_and(|m| m.len() == n)
                && h["cluster"]["log_owner"] == *owner
                && h["cluster"]["shards_owned"].as_u64().is_some()
        }) && owner.is_string()
        {
            let held: u64 = seen
                .iter()
                .map(|h| h["cluster"]["shards_owned"].as_u64().unwrap())
                .sum();
            if held == seen[0]["cluster"]["shards_total"].as_u64().unwrap() {
                return owner.as_str().unwrap().to_string();
            }
        }
        assert!(
            Instant::now() < until,
            "the cluster did not become whole: {seen:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The rows of a query's result, as JSON objects.
fn rows(port: u16, query: &str) -> Vec<serde_json::Value> {
    let r = sql(port, query);
    assert_eq!(r.status, 200, "{query}: {}", r.body);
    let body: serde_json::Value = serde_json::from_str(&r.body).unwrap();
    body["results"][0].as_array().unwrap().clone()
}

/// The witness: how many times each id was counted, as node `port` answers it.
fn witness(port: u16) -> BTreeMap<u64, u64> {
    rows(port, "SELECT id, n FROM per_id")
        .iter()
        .map(|r| (r["id"].as_u64().unwrap(), r["n"].as_u64().unwrap()))
        .collect()
}

/// The second view: rows and value total per client.
fn per_client(port: u16) -> BTreeMap<u64, (u64, u64)> {
    rows(port, "SELECT client, n, total FROM per_client")
        .iter()
        .map(|r| {
            let n = |k: &str| r[k].as_u64().unwrap();
            (n("client"), (n("n"), n("total")))
        })
        .collect()
}

/// The ids of the rows a client sends in its `seq`-th statement.
fn statement_ids(client: u64, seq: u64) -> std::ops::Range<u64> {
    let first = (client * 1_000_000 + seq) * ROWS;
    first..first + ROWS
}

#[test]
fn sigkill_of_the_log_owner_loses_no_acknowledged_write_and_applies_none_twice() {
    let tmp = tempfile::tempdir().unwrap();
    let store = store_url(tmp.path());
    let port = cli::free_port(3);
    let nodes: Vec<Node> = (1..=3)
        .map(|i| Node {
            id: format!("node{i}"),
            listen: format!("127.0.0.{i}:{port}"),
            data: tmp.path().join(format!("node{i}")),
        })
        .collect();
    let seed = nodes[0].listen.clone();
    let mut servers: Vec<Option<Server>> = Vec::new();
    for node in &nodes {
        servers.push(Some(start(node, &store, &seed)));
    }
    let ports: Vec<u16> = servers.iter().flatten().map(|s| s.port).collect();
    let owner = wait_whole(&ports, 3);
    let r = sql(
        ports[0],
        "CREATE SOURCE ev (id BIGINT, client BIGINT, v BIGINT); \
         CREATE MATERIALIZED VIEW per_id AS SELECT id, COUNT(*) AS n FROM ev GROUP BY id; \
         CREATE MATERIALIZED VIEW per_client AS \
           SELECT client, COUNT(*) AS n, SUM(v) AS total FROM ev GROUP BY client",
    );
    assert_eq!(r.status, 200, "{}", r.body);

    // Clients: one INSERT of ROWS rows per request, each to a random node of those running
    // (the victim too, until it dies); after a failed request a client goes on with its
    // next statement. Each records which of its statements were acknowledged.
    let live_ports = Arc::new(Mutex::new(ports.clone()));
    let stop = Arc::new(AtomicBool::new(false));
    let clients: Vec<_> = (0..CLIENTS)
        .map(|client| {
            let live_ports = live_ports.clone();
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut rng = strata::testing::SplitMix64(client + 1);
                let (mut sent, mut acked) = (0u64, Vec::new());
                let deadline = Instant::now() + Duration::from_secs(60);
                while !stop.load(Ordering::SeqCst) && Instant::now() < deadline {
                    let port = {
                        let live = live_ports.lock().unwrap();
                        live[rng.below(live.len() as u64) as usize]
                    };
                    sent += 1;
                    let values: Vec<String> = statement_ids(client, sent)
                        .map(|id| format!("({id}, {client}, {})", id % 7))
                        .collect();
                    let r = sql(
                        port,
                        &format!("INSERT INTO ev VALUES {}", values.join(", ")),
                    );
                    if r.status == 200 {
                        acked.push(sent);
                    }
                }
                (client, sent, acked)
            })
        })
        .collect();

    std::thread::sleep(Duration::from_secs(2));
    // SIGKILL the log's owner mid-ingest (requests in flight there fail); then the clients
    // use the others.
    let victim = nodes.iter().position(|n| n.id == owner).unwrap();
    let killed_port = ports[victim];
    servers[victim] = None; // Drop: SIGKILL, wait
    live_ports.lock().unwrap().retain(|p| *p != killed_port);
    let killed_at = Instant::now();
    // The survivors take the log and the shards over; writes are acknowledged again.
    let survivors: Vec<u16> = ports
        .iter()
        .copied()
        .filter(|p| *p != killed_port)
        .collect();
    let new_owner = wait_whole(&survivors, 2);
    assert_ne!(new_owner, owner);
    let takeover = killed_at.elapsed();
    std::thread::sleep(Duration::from_secs(2));
    // The node comes back with an empty data directory.
    std::fs::remove_dir_all(&nodes[victim].data).unwrap();
    let other_seed = &nodes[(victim + 1) % 3].listen;
    servers[victim] = Some(start(&nodes[victim], &store, other_seed));
    let ports: Vec<u16> = servers.iter().flatten().map(|s| s.port).collect();
    wait_whole(&ports, 3);
    *live_ports.lock().unwrap() = ports.clone();
    std::thread::sleep(Duration::from_secs(1));
    stop.store(true, Ordering::SeqCst);
    let results: Vec<(u64, u64, Vec<u64>)> =
        clients.into_iter().map(|c| c.join().unwrap()).collect();

    let counted = witness(ports[0]);
    assert!(counted.values().all(|&n| n == 1), "an id was counted twice");
    let mut recomputed = BTreeMap::new();
    let (mut acked_total, mut failed_total, mut failed_landed) = (0, 0, 0);
    for (client, sent, acked) in &results {
        assert!(
            !acked.is_empty(),
            "client {client}: nothing was acknowledged"
        );
        for seq in 1..=*sent {
            let present: Vec<bool> = statement_ids(*client, seq)
                .map(|id| counted.contains_key(&id))
                .collect();
            let whole = present.iter().all(|&p| p);
            if acked.binary_search(&seq).is_ok() {
                assert!(
                    whole,
                    "client {client}: acknowledged statement {seq} is not all there: {present:?}"
                );
                acked_total += 1;
            } else {
                assert!(
                    whole || present.iter().all(|&p| !p),
                    "client {client}: failed statement {seq} is partly there: {present:?}"
                );
                failed_total += 1;
                failed_landed += whole as u64;
            }
            if whole {
                let e = recomputed.entry(*client).or_insert((0, 0));
                e.0 += ROWS;
                e.1 += statement_ids(*client, seq).map(|id| id % 7).sum::<u64>();
            }
        }
    }
    assert_eq!(
        counted.len() as u64,
        recomputed.values().map(|(n, _)| n).sum::<u64>()
    );
    assert_eq!(
        per_client(ports[0]),
        recomputed,
        "the view differs from a recomputation"
    );
    for &port in &ports[1..] {
        assert_eq!(witness(port), counted, "the nodes disagree");
        assert_eq!(per_client(port), recomputed, "the nodes disagree");
    }
    eprintln!(
        "owner {owner} killed; {new_owner} owned the log and every shard {takeover:?} later; \
         {acked_total} statements acknowledged, {failed_total} failed ({failed_landed} of \
         them landed whole)"
    );
    for s in servers.iter().flatten() {
        let stderr = s.stderr.lock().unwrap();
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
}
