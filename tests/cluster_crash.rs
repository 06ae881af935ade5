//! Three `strata serve` processes of the constellation tier on one store (a `file://`
//! directory), clients writing through every node at once, and the node that owns the
//! cluster's log SIGKILLed mid-stream; its data directory is deleted and it comes back.
//!
//! A witness view counts each client's rows. Every write the server acknowledged (HTTP 200)
//! must be in it, none twice: for each client, acknowledged ≤ counted ≤ sent (a write whose
//! answer was lost may or may not have landed, but only once), and every node answers the
//! same counts once the cluster is whole again.
#![cfg(feature = "cluster")]

mod common;

use common::cli;
use common::http::{request, serve, sql, Server};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const CLIENTS: i64 = 3;

struct Node {
    id: String,
    listen: String,
    data: PathBuf,
}

fn start(node: &Node, store: &Path, seed: &str) -> Server {
    let mut cmd = cli::strata(Some(&node.data));
    cmd.env(
        "STRATA_OBJECT_STORE_URL",
        format!("file://{}", store.display()),
    )
    .env("STRATA_CLUSTER_NODE_ID", &node.id)
    .env("STRATA_CLUSTER_LISTEN", &node.listen)
    .env("STRATA_CLUSTER_SEEDS", seed)
    .env("STRATA_CHECKPOINT_INTERVAL", "1s")
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

/// Each client's row count in the witness view, as node `port` answers it.
fn counts(port: u16) -> BTreeMap<i64, i64> {
    let r = sql(port, "SELECT client, n FROM per_client");
    assert_eq!(r.status, 200, "{}", r.body);
    let body: serde_json::Value = serde_json::from_str(&r.body).unwrap();
    body["results"][0]
        .as_array()
        .unwrap()
        .iter()
        .map(|row| (row["client"].as_i64().unwrap(), row["n"].as_i64().unwrap()))
        .collect()
}

#[test]
fn sigkill_of_the_log_owner_loses_no_acknowledged_write_and_applies_none_twice() {
    let tmp = tempfile::tempdir().unwrap();
    let store = tmp.path().join("store");
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
        "CREATE SOURCE ev (client BIGINT, seq BIGINT); \
         CREATE MATERIALIZED VIEW per_client AS \
           SELECT client, COUNT(*) AS n, MAX(seq) AS last FROM ev GROUP BY client",
    );
    assert_eq!(r.status, 200, "{}", r.body);

    // Clients: one INSERT per request, to the nodes in turn; a request that fails (the node
    // is gone, or the answer never came) goes on with the next sequence number.
    let live_ports = Arc::new(Mutex::new(ports.clone()));
    let stop = Arc::new(AtomicBool::new(false));
    let clients: Vec<_> = (0..CLIENTS)
        .map(|client| {
            let live_ports = live_ports.clone();
            let stop = stop.clone();
            std::thread::spawn(move || {
                let (mut sent, mut acked) = (0i64, 0i64);
                let deadline = Instant::now() + Duration::from_secs(60);
                while !stop.load(Ordering::SeqCst) && Instant::now() < deadline {
                    let port = {
                        let live = live_ports.lock().unwrap();
                        live[(sent as usize + client as usize) % live.len()]
                    };
                    sent += 1;
                    let r = sql(port, &format!("INSERT INTO ev VALUES ({client}, {sent})"));
                    if r.status == 200 {
                        acked += 1;
                    }
                }
                (client, sent, acked)
            })
        })
        .collect();

    std::thread::sleep(Duration::from_secs(2));
    // SIGKILL the log's owner; its clients move to the others.
    let victim = nodes.iter().position(|n| n.id == owner).unwrap();
    let killed_port = ports[victim];
    live_ports.lock().unwrap().retain(|p| *p != killed_port);
    servers[victim] = None; // Drop: SIGKILL, wait
    let killed_at = Instant::now();
    // The survivors take the log over; writes are acknowledged again.
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
    let results: Vec<(i64, i64, i64)> = clients.into_iter().map(|c| c.join().unwrap()).collect();

    let on_first = counts(ports[0]);
    for (client, sent, acked) in &results {
        let counted = on_first.get(client).copied().unwrap_or(0);
        assert!(
            *acked <= counted && counted <= *sent,
            "client {client}: {acked} acknowledged, {counted} counted, {sent} sent"
        );
        assert!(*acked > 0, "client {client}: nothing was acknowledged");
    }
    for &port in &ports[1..] {
        assert_eq!(counts(port), on_first, "the nodes disagree");
    }
    eprintln!(
        "owner {owner} killed; {new_owner} owned the log {takeover:?} later; results \
         (client, sent, acknowledged): {results:?}; counted {on_first:?}"
    );
    for s in servers.iter().flatten() {
        let stderr = s.stderr.lock().unwrap();
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
}
