//! Three `strata serve` processes of the constellation tier on 127.0.0.1, .2 and .3 sharing
//! one store (the S3 test server when it runs, else a `file://` directory), clients
//! inserting through random nodes at once, and nodes SIGKILLed mid-stream:
//!
//! - the node that owns the cluster's log, once; its data directory is deleted and it comes
//!   back;
//! - a soak: a random node every 10–20 s, restarted (half of the times with an empty data
//!   directory), `STRATA_CLUSTER_ROUNDS` times (3 by default), then every node at once, and
//!   the cluster started again in another order;
//! - and the other faults of a cluster's life: the log's owner frozen (SIGSTOP) and woken,
//!   cut off from the others by the network (in a network namespace of the test's own), a
//!   fourth node joining, a SIGTERM drain, one node losing the object store, garbage on the
//!   node-to-node port; and a view's changes followed through one node (SSE).
//!
//! Every statement inserts `ROWS` rows with ids of their own. A witness view counts each
//! id: every row of every acknowledged statement (HTTP 200) is counted exactly once; a
//! statement that failed (the node died, the answer never came) is there whole or not at
//! all, never twice; a second view equals a recomputation from the rows present, and what
//! a one-node engine fed the same statements answers; and every node answers the same once
//! the cluster is whole again.
#![cfg(feature = "cluster")]

mod common;

use common::cli;
use common::cluster::{
    health, nodes, rows, start, start_with, store_url, wait_whole, Node, PrivateNetwork, Proxy,
};
use common::http::{next_event, request, sql, subscribe, Server};
use std::collections::BTreeMap;
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

const CLIENTS: u64 = 4;
/// Rows per INSERT statement.
const ROWS: u64 = 5;

const SCHEMA: &str = "CREATE SOURCE ev (id BIGINT, client BIGINT, v BIGINT); \
     CREATE MATERIALIZED VIEW per_id AS SELECT id, COUNT(*) AS n FROM ev GROUP BY id; \
     CREATE MATERIALIZED VIEW per_client AS \
       SELECT client, COUNT(*) AS n, SUM(v) AS total FROM ev GROUP BY client";

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

fn insert_statement(client: u64, seq: u64) -> String {
    let values: Vec<String> = statement_ids(client, seq)
        .map(|id| format!("({id}, {client}, {})", id % 7))
        .collect();
    format!("INSERT INTO ev VALUES {}", values.join(", "))
}

/// What one client did: its id, the statements it sent, those acknowledged (ascending).
type ClientLog = (u64, u64, Vec<u64>);

/// A client's log and its failures (status and body).
type ClientRun = (ClientLog, Vec<String>);

/// Clients inserting through random live nodes until stopped: one INSERT of `ROWS` rows
/// per request; after a failed request a client goes on with its next statement.
struct Workload {
    live: Arc<Mutex<Vec<u16>>>,
    stop: Arc<AtomicBool>,
    /// When each acknowledgement came, for the longest time without one.
    acks: Arc<Mutex<Vec<Instant>>>,
    clients: Vec<JoinHandle<ClientRun>>,
}

impl Workload {
    fn start(ports: &[u16], longest: Duration) -> Workload {
        Workload::spawn(ports, longest, false)
    }

    /// Clients that do what the README says a client should: a refused connection sent
    /// nothing, so the statement goes to another node; any other failure is counted.
    fn start_resending_refused(ports: &[u16], longest: Duration) -> Workload {
        Workload::spawn(ports, longest, true)
    }

    fn spawn(ports: &[u16], longest: Duration, resend_refused: bool) -> Workload {
        let live = Arc::new(Mutex::new(ports.to_vec()));
        let stop = Arc::new(AtomicBool::new(false));
        let acks = Arc::new(Mutex::new(Vec::new()));
        let clients = (0..CLIENTS)
            .map(|client| {
                let (live, stop, acks) = (live.clone(), stop.clone(), acks.clone());
                std::thread::spawn(move || {
                    let mut rng = strata::testing::SplitMix64(client + 1);
                    let (mut sent, mut acked, mut failures) = (0u64, Vec::new(), Vec::new());
                    let deadline = Instant::now() + longest;
                    while !stop.load(Ordering::SeqCst) && Instant::now() < deadline {
                        sent += 1;
                        loop {
                            let port = {
                                let live = live.lock().unwrap();
                                live[rng.below(live.len() as u64) as usize]
                            };
                            let r = sql(port, &insert_statement(client, sent));
                            if r.status == 200 {
                                acked.push(sent);
                                acks.lock().unwrap().push(Instant::now());
                            } else if r.refused && resend_refused {
                                continue;
                            } else {
                                failures.push(format!("{}: {}", r.status, r.body));
                            }
                            break;
                        }
                    }
                    ((client, sent, acked), failures)
                })
            })
            .collect();
        Workload {
            live,
            stop,
            acks,
            clients,
        }
    }

    fn set_live(&self, ports: &[u16]) {
        *self.live.lock().unwrap() = ports.to_vec();
    }

    /// Stops the clients: what each did, and the longest time without an acknowledgement.
    fn finish(self) -> (Vec<ClientLog>, Duration) {
        let (logs, gap, _) = self.finish_with_acks();
        (logs, gap)
    }

    /// [`finish`](Self::finish), with when each acknowledgement came (in order).
    fn finish_with_acks(self) -> (Vec<ClientLog>, Duration, Vec<Instant>) {
        let (clients, gap, acks) = self.finish_with_failures();
        (clients.into_iter().map(|(log, _)| log).collect(), gap, acks)
    }

    /// Stops the clients: what each did and its failures, the longest time without an
    /// acknowledgement, and when each acknowledgement came (in order).
    fn finish_with_failures(self) -> (Vec<ClientRun>, Duration, Vec<Instant>) {
        self.stop.store(true, Ordering::SeqCst);
        let clients = self
            .clients
            .into_iter()
            .map(|c| c.join().unwrap())
            .collect();
        let mut acks = self.acks.lock().unwrap().clone();
        acks.sort();
        let gap = acks
            .windows(2)
            .map(|w| w[1] - w[0])
            .max()
            .unwrap_or_default();
        (clients, gap, acks)
    }
}

/// What the checks found.
struct Verified {
    acked: u64,
    failed: u64,
    failed_landed: u64,
}

/// Checks the cluster's answers on every port against what the clients did, and (with
/// `reference`, a directory) against a one-node engine fed the rows that landed.
fn verify(ports: &[u16], logs: &[ClientLog], reference: Option<&std::path::Path>) -> Verified {
    let counted = witness(ports[0]);
    assert!(counted.values().all(|&n| n == 1), "an id was counted twice");
    let mut recomputed = BTreeMap::new();
    let mut landed = Vec::new();
    let mut v = Verified {
        acked: 0,
        failed: 0,
        failed_landed: 0,
    };
    for (client, sent, acked) in logs {
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
                v.acked += 1;
            } else {
                assert!(
                    whole || present.iter().all(|&p| !p),
                    "client {client}: failed statement {seq} is partly there: {present:?}"
                );
                v.failed += 1;
                v.failed_landed += whole as u64;
            }
            if whole {
                let e = recomputed.entry(*client).or_insert((0, 0));
                e.0 += ROWS;
                e.1 += statement_ids(*client, seq).map(|id| id % 7).sum::<u64>();
                landed.extend(
                    statement_ids(*client, seq).map(|id| format!("({id}, {client}, {})", id % 7)),
                );
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
    let Some(reference) = reference else {
        return v;
    };
    // A one-node engine fed the same rows answers the same.
    let mut engine = cli::builder(reference).build().unwrap();
    engine.execute(SCHEMA).unwrap();
    for rows in landed.chunks(1000) {
        engine
            .execute(&format!("INSERT INTO ev VALUES {}", rows.join(", ")))
            .unwrap();
    }
    let rs = engine
        .query("SELECT client, n, total FROM per_client ORDER BY client")
        .unwrap();
    let engine_view: BTreeMap<u64, (u64, u64)> = rs
        .rows
        .iter()
        .map(|r| {
            let n = |i: usize| match &r[i] {
                strata::Value::Int(v) => *v as u64,
                other => panic!("{other:?}"),
            };
            (n(0), (n(1), n(2)))
        })
        .collect();
    engine.close().unwrap();
    assert_eq!(
        engine_view, recomputed,
        "a one-node engine answers otherwise"
    );
    v
}

fn assert_no_panic(servers: &[Option<Server>]) {
    for s in servers.iter().flatten() {
        let stderr = s.stderr.lock().unwrap();
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
}

fn running_ports(servers: &[Option<Server>]) -> Vec<u16> {
    servers.iter().flatten().map(|s| s.port).collect()
}

/// Starts the three nodes (node1 first, the seed of the others) and creates the schema.
fn start_cluster(nodes: &[Node], store: &str) -> Vec<Option<Server>> {
    let seed = nodes[0].listen.clone();
    let servers: Vec<Option<Server>> = nodes
        .iter()
        .map(|node| Some(start(node, store, &seed)))
        .collect();
    wait_whole(&running_ports(&servers), nodes.len());
    let r = sql(running_ports(&servers)[0], SCHEMA);
    assert_eq!(r.status, 200, "{}", r.body);
    servers
}

#[test]
fn sigkill_of_the_log_owner_loses_no_acknowledged_write_and_applies_none_twice() {
    let tmp = tempfile::tempdir().unwrap();
    let store = store_url(tmp.path());
    let nodes = nodes(3, tmp.path());
    let mut servers = start_cluster(&nodes, &store);
    let ports = running_ports(&servers);
    let owner = wait_whole(&ports, 3);
    let workload = Workload::start(&ports, Duration::from_secs(60));

    std::thread::sleep(Duration::from_secs(2));
    // SIGKILL the log's owner mid-ingest (requests in flight there fail); then the clients
    // use the others.
    let victim = nodes.iter().position(|n| n.id == owner).unwrap();
    let killed_port = ports[victim];
    servers[victim] = None; // Drop: SIGKILL, wait
    let survivors: Vec<u16> = ports
        .iter()
        .copied()
        .filter(|p| *p != killed_port)
        .collect();
    workload.set_live(&survivors);
    let killed_at = Instant::now();
    // The survivors take the log and the shards over; writes are acknowledged again.
    let new_owner = wait_whole(&survivors, 2);
    assert_ne!(new_owner, owner);
    let takeover = killed_at.elapsed();
    std::thread::sleep(Duration::from_secs(2));
    // The node comes back with an empty data directory.
    std::fs::remove_dir_all(&nodes[victim].data).unwrap();
    let other_seed = &nodes[(victim + 1) % 3].listen;
    servers[victim] = Some(start(&nodes[victim], &store, other_seed));
    let ports = running_ports(&servers);
    wait_whole(&ports, 3);
    workload.set_live(&ports);
    std::thread::sleep(Duration::from_secs(1));
    let (logs, _) = workload.finish();

    let v = verify(&ports, &logs, None);
    // What the survivors counted of the takeover, by cause.
    let mut retries = BTreeMap::new();
    for &port in &survivors {
        let metrics = request(port, "GET", "/metrics", &[], b"").body;
        assert!(
            metrics.contains("strata_cluster_writes_unconfirmed_total "),
            "{metrics}"
        );
        for line in metrics.lines() {
            if let Some(rest) = line.strip_prefix("strata_cluster_write_retries_total{cause=\"") {
                let (cause, n) = rest.split_once("\"} ").unwrap();
                *retries.entry(cause.to_string()).or_insert(0u64) += n.parse::<u64>().unwrap();
            }
        }
    }
    assert_eq!(
        retries.keys().collect::<Vec<_>>(),
        ["no_owner", "not_owner", "owner_unreachable"]
    );
    eprintln!(
        "owner {owner} killed; {new_owner} owned the log and every shard {takeover:?} later; \
         {} statements acknowledged, {} failed ({} of them landed whole); writes retried by \
         the survivors: {retries:?}",
        v.acked, v.failed, v.failed_landed
    );
    assert_no_panic(&servers);
}

#[test]
fn a_soak_of_kills_and_restarts_then_of_the_whole_cluster_loses_nothing() {
    let rounds: u64 = std::env::var("STRATA_CLUSTER_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(3);
    let tmp = tempfile::tempdir().unwrap();
    let store = store_url(tmp.path());
    let nodes = nodes(3, tmp.path());
    let mut servers = start_cluster(&nodes, &store);
    let workload = Workload::start(
        &running_ports(&servers),
        Duration::from_secs(120 + 60 * rounds),
    );
    let mut rng = strata::testing::SplitMix64(rounds);
    let mut takeovers = Vec::new();
    let started = Instant::now();
    let mut first_kill = None;
    for round in 0..rounds {
        std::thread::sleep(Duration::from_millis(10_000 + rng.below(10_000)));
        let victim = rng.below(3) as usize;
        first_kill.get_or_insert_with(Instant::now);
        servers[victim] = None; // SIGKILL
        let survivors = running_ports(&servers);
        workload.set_live(&survivors);
        let killed_at = Instant::now();
        wait_whole(&survivors, 2);
        takeovers.push(killed_at.elapsed());
        let wiped = round % 2 == 0;
        if wiped {
            std::fs::remove_dir_all(&nodes[victim].data).unwrap();
        }
        let seed = &nodes[(victim + 1) % 3].listen;
        servers[victim] = Some(start(&nodes[victim], &store, seed));
        wait_whole(&running_ports(&servers), 3);
        workload.set_live(&running_ports(&servers));
        eprintln!(
            "round {round}: {} killed{}; the others held every shard {:?} later",
            nodes[victim].id,
            if wiped {
                " and its data directory wiped"
            } else {
                ""
            },
            takeovers.last().unwrap()
        );
    }
    std::thread::sleep(Duration::from_secs(2));
    let (logs, longest_gap, acks) = workload.finish_with_acks();
    // Acknowledged statements per second before the first kill, and from it to the end.
    let first_kill = first_kill.unwrap_or_else(Instant::now);
    let calm = acks.iter().filter(|&&t| t < first_kill).count() as f64
        / (first_kill - started).as_secs_f64();
    let stormy = acks.iter().filter(|&&t| t >= first_kill).count() as f64
        / first_kill.elapsed().as_secs_f64().max(0.001);
    let reference = tmp.path().join("reference");
    let before = verify(&running_ports(&servers), &logs, Some(&reference));
    let answers = witness(running_ports(&servers)[0]);
    assert_no_panic(&servers);

    // Every node at once, then back in another order: node3 first (its own seed: it finds
    // the cluster in the store), then node2 and node1 through it.
    for server in &mut servers {
        *server = None;
    }
    let own = nodes[2].listen.clone();
    servers[2] = Some(start(&nodes[2], &store, &own));
    servers[1] = Some(start(&nodes[1], &store, &own));
    servers[0] = Some(start(&nodes[0], &store, &own));
    let ports = running_ports(&servers);
    wait_whole(&ports, 3);
    for &port in &ports {
        assert_eq!(
            witness(port),
            answers,
            "a node answers otherwise after the restart"
        );
    }
    let after = verify(&ports, &logs, None);
    assert_eq!(before.acked, after.acked);
    assert_no_panic(&servers);
    let mut sorted = takeovers.clone();
    sorted.sort();
    eprintln!(
        "soak: {rounds} kills; takeover median {:?}, max {:?}; longest time without an \
         acknowledged write {longest_gap:?}; {} statements acknowledged ({calm:.0}/s before the \
         first kill, {stormy:.0}/s from it on: {:.2}), {} failed ({} of them landed whole); the \
         whole cluster restarted in another order with the same answers",
        sorted[sorted.len() / 2],
        sorted.last().unwrap(),
        before.acked,
        stormy / calm.max(0.001),
        before.failed,
        before.failed_landed
    );
}

#[test]
fn garbage_on_the_node_port_is_refused_and_the_cluster_reports_itself() {
    let tmp = tempfile::tempdir().unwrap();
    let store = store_url(tmp.path());
    let nodes = nodes(3, tmp.path());
    let servers = start_cluster(&nodes, &store);
    let ports = running_ports(&servers);
    let r = sql(ports[1], "INSERT INTO ev VALUES (1, 1, 1), (2, 1, 2)");
    assert_eq!(r.status, 200, "{}", r.body);

    // Garbage: raw bytes over TCP, a request body that is not a request, a UDP datagram.
    let node_port: u16 = nodes[0].listen.rsplit(':').next().unwrap().parse().unwrap();
    let mut raw = std::net::TcpStream::connect(&nodes[0].listen).unwrap();
    let _ = raw.write_all(&[0xff; 4096]);
    drop(raw);
    let body = vec![0x5a; 1000];
    let answer = request(node_port, "POST", "/cluster/v1", &[], &body);
    assert_ne!(answer.status, 0, "the node-to-node server must answer");
    let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let _ = udp.send_to(&[0xff; 512], &nodes[0].listen);
    std::thread::sleep(Duration::from_millis(500));
    // Nothing crashed: every node answers, the cluster is whole.
    wait_whole(&ports, 3);
    assert_no_panic(&servers);

    // `strata cluster status`: every member, live, the shards among them.
    let out = cli::strata(None)
        .args(["cluster", "status", "--format", "json", "--server"])
        .arg(format!("http://127.0.0.1:{}", ports[2]))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let members = report["members"].as_array().unwrap();
    assert_eq!(members.len(), 3, "{report}");
    let mut shards: Vec<u64> = members
        .iter()
        .flat_map(|m| m["report"]["shards"].as_array().unwrap().clone())
        .map(|s| s.as_u64().unwrap())
        .collect();
    shards.sort();
    let total = report["shards_total"].as_u64().unwrap();
    assert_eq!(shards, (0..total).collect::<Vec<_>>(), "{report}");
    assert!(members
        .iter()
        .all(|m| m["report"]["applied_lsn"].as_u64().unwrap() >= 1));
    assert_eq!(
        report["log_owner"],
        health(ports[0])["cluster"]["log_owner"]
    );
    let table = cli::strata(None)
        .args(["cluster", "status", "--server"])
        .arg(format!("http://127.0.0.1:{}", ports[0]))
        .output()
        .unwrap();
    let table = String::from_utf8_lossy(&table.stdout);
    for node in &nodes {
        assert!(table.contains(&node.id), "{table}");
    }
    assert_eq!(table.matches(" live ").count(), 3, "{table}");
    eprintln!("{table}");
}

/// Sends `signal` (`STOP`, `CONT`, `TERM`) to a server's process.
fn signal(server: &Server, signal: &str) {
    let status = std::process::Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(server.child.id().to_string())
        .status()
        .unwrap();
    assert!(status.success(), "kill -{signal}");
}

#[test]
fn a_frozen_log_owner_is_fenced_and_rejoins_without_losing_or_repeating_a_write() {
    let tmp = tempfile::tempdir().unwrap();
    let store = store_url(tmp.path());
    let nodes = nodes(3, tmp.path());
    let servers = start_cluster(&nodes, &store);
    let ports = running_ports(&servers);
    let owner = wait_whole(&ports, 3);
    let zombie = nodes.iter().position(|n| n.id == owner).unwrap();
    let others: Vec<u16> = (0..3).filter(|&i| i != zombie).map(|i| ports[i]).collect();
    let workload = Workload::start(&ports, Duration::from_secs(120));
    std::thread::sleep(Duration::from_secs(2));

    // Freeze the log's owner (a VM paused): the others take the log and its shards over.
    workload.set_live(&others);
    signal(servers[zombie].as_ref().unwrap(), "STOP");
    let frozen_at = Instant::now();
    let new_owner = wait_whole(&others, 2);
    assert_ne!(new_owner, owner);
    let takeover = frozen_at.elapsed();
    std::thread::sleep(Duration::from_secs(2));
    // It wakes up believing it owns the log: whatever it is asked now is refused or
    // forwarded, never acknowledged and lost; then it rejoins.
    signal(servers[zombie].as_ref().unwrap(), "CONT");
    workload.set_live(&ports);
    wait_whole(&ports, 3);
    std::thread::sleep(Duration::from_secs(2));
    let (logs, longest_gap) = workload.finish();
    let v = verify(&ports, &logs, None);
    assert_no_panic(&servers);
    eprintln!(
        "zombie {owner}: frozen; {new_owner} owned the log and every shard {takeover:?} later; \
         longest time without an acknowledged write {longest_gap:?}; {} statements \
         acknowledged, {} failed ({} of them landed whole)",
        v.acked, v.failed, v.failed_landed
    );
}

#[test]
fn a_log_owner_cut_off_from_the_others_is_fenced_and_rejoins_when_the_network_heals() {
    let Some(network) = PrivateNetwork::enter() else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    // The S3 test server is outside this network namespace: a directory every node reaches.
    let store = format!("file://{}", tmp.path().join("store").display());
    // Nodes on 127.0.0.2, .3 and .4: clients reach every node on 127.0.0.1, never cut.
    let nodes: Vec<Node> = nodes(4, tmp.path())
        .into_iter()
        .skip(1)
        .enumerate()
        .map(|(i, node)| Node {
            id: format!("node{}", i + 1),
            ..node
        })
        .collect();
    let servers = start_cluster(&nodes, &store);
    let ports = running_ports(&servers);
    let owner = wait_whole(&ports, 3);
    let cut = nodes.iter().position(|n| n.id == owner).unwrap();
    let host: u8 = nodes[cut].listen[8..]
        .split(':')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let others: Vec<u16> = (0..3).filter(|&i| i != cut).map(|i| ports[i]).collect();
    let workload = Workload::start(&ports, Duration::from_secs(180));
    std::thread::sleep(Duration::from_secs(2));

    // The log's owner loses its links to the other two (it still reaches the store): they
    // take the log and its shards over; it sees a minority and does not take the log back.
    workload.set_live(&others);
    network.isolate(host);
    let cut_at = Instant::now();
    let new_owner = wait_whole(&others, 2);
    assert_ne!(new_owner, owner);
    let takeover = cut_at.elapsed();
    let alone = health(ports[cut]);
    assert_eq!(alone["cluster"]["minority"], true, "{alone}");
    assert_eq!(alone["cluster"]["known_members"], 3, "{alone}");
    // A write sent to the cut-off node fails, and is not applied.
    let lone = sql(ports[cut], "INSERT INTO ev VALUES (999999999, 99, 1)");
    assert_eq!(lone.status, 503, "{}", lone.body);
    assert!(
        lone.body.contains("cut off from the log's owner"),
        "{}",
        lone.body
    );
    // Meanwhile the majority keeps the log: no takeover fights.
    let owners: Vec<String> = others
        .iter()
        .map(|&p| health(p)["cluster"]["log_owner"].to_string())
        .collect();
    assert!(
        owners.iter().all(|o| *o == format!("{new_owner:?}")),
        "{owners:?}"
    );

    network.heal(host);
    let healed_at = Instant::now();
    wait_whole(&ports, 3);
    let rejoined = healed_at.elapsed();
    assert_eq!(health(ports[cut])["cluster"]["minority"], false);
    workload.set_live(&ports);
    std::thread::sleep(Duration::from_secs(2));
    let (logs, longest_gap) = workload.finish();
    let v = verify(&ports, &logs, None);
    assert_no_panic(&servers);
    assert_eq!(
        rows(ports[0], "SELECT n FROM per_id WHERE id = 999999999"),
        Vec::<serde_json::Value>::new()
    );
    let stderr = servers[cut]
        .as_ref()
        .unwrap()
        .stderr
        .lock()
        .unwrap()
        .clone();
    assert!(stderr.contains("leaves the log to a majority"), "{stderr}");
    eprintln!(
        "partition: {owner} cut off; {new_owner} owned the log and every shard {takeover:?} \
         later; whole again {rejoined:?} after healing; longest time without an acknowledged \
         write {longest_gap:?}; {} statements acknowledged, {} failed ({} of them landed \
         whole); the write sent to the cut-off node: {} {}",
        v.acked, v.failed, v.failed_landed, lone.status, lone.body
    );
}

#[test]
fn a_view_s_changes_stream_through_any_node_wherever_its_groups_live() {
    let tmp = tempfile::tempdir().unwrap();
    let store = store_url(tmp.path());
    let nodes = nodes(3, tmp.path());
    let servers = start_cluster(&nodes, &store);
    let ports = running_ports(&servers);
    wait_whole(&ports, 3);
    // Followed through node 1; 200 ids (groups on every node) written through nodes 2 and 3,
    // then some of them again (their count changes).
    let mut stream = subscribe(ports[0], "per_id");
    for seq in 1..=20 {
        for client in 0..2 {
            let r = sql(ports[1 + client as usize], &insert_statement(client, seq));
            assert_eq!(r.status, 200, "{}", r.body);
        }
    }
    for seq in 1..=4 {
        let r = sql(ports[2], &insert_statement(0, seq));
        assert_eq!(r.status, 200, "{}", r.body);
    }
    let want = witness(ports[2]);
    assert_eq!(want.len(), 200);
    assert_eq!(want.values().filter(|&&n| n == 2).count(), 20);
    // The last event of each id equals what SELECT answers, wherever the id lives.
    let mut told: BTreeMap<u64, u64> = BTreeMap::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while told != want {
        assert!(
            Instant::now() < deadline,
            "the stream told {} of {} ids as SELECT answers",
            told.iter()
                .filter(|(id, n)| want.get(id) == Some(n))
                .count(),
            want.len()
        );
        let (event, data) = next_event(&mut stream);
        assert_eq!(event, "change", "{data}");
        let change: serde_json::Value = serde_json::from_str(&data).unwrap();
        assert_eq!(change["op"], "upsert", "{data}");
        let row = &change["row"];
        told.insert(row["id"].as_u64().unwrap(), row["n"].as_u64().unwrap());
    }
    assert_no_panic(&servers);
}

#[test]
fn a_fourth_node_joins_and_takes_its_share_of_the_shards() {
    let tmp = tempfile::tempdir().unwrap();
    let store = store_url(tmp.path());
    let nodes = nodes(4, tmp.path());
    let mut servers = start_cluster(&nodes[..3], &store);
    let r = sql(
        running_ports(&servers)[0],
        "INSERT INTO ev VALUES (1, 1, 10), (2, 2, 20), (3, 3, 30), (4, 4, 40)",
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let before = per_client(running_ports(&servers)[0]);
    servers.push(Some(start(&nodes[3], &store, &nodes[0].listen)));
    let ports = running_ports(&servers);
    wait_whole(&ports, 4);
    // 16 shards over 4 nodes: 4 each, the state moved through the store.
    for &port in &ports {
        let h = health(port);
        assert_eq!(h["cluster"]["shards_owned"], 4, "{h}");
        assert_eq!(
            per_client(port),
            before,
            "node on port {port} answers otherwise"
        );
    }
    let r = sql(ports[3], "INSERT INTO ev VALUES (5, 5, 50)");
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(per_client(ports[0]).len(), 5);
    assert_no_panic(&servers);
}

#[test]
fn sigterm_drains_the_log_owner_without_a_failed_write_and_exits_0() {
    let tmp = tempfile::tempdir().unwrap();
    let store = store_url(tmp.path());
    let nodes = nodes(3, tmp.path());
    let mut servers = start_cluster(&nodes, &store);
    let ports = running_ports(&servers);
    let owner = wait_whole(&ports, 3);
    let leaving = nodes.iter().position(|n| n.id == owner).unwrap();
    let workload = Workload::start_resending_refused(&ports, Duration::from_secs(90));
    std::thread::sleep(Duration::from_secs(2));
    let server = servers[leaving].as_mut().unwrap();
    signal(server, "TERM");
    let drained_at = Instant::now();
    let exit = loop {
        if let Some(status) = server.child.try_wait().unwrap() {
            break status;
        }
        assert!(
            drained_at.elapsed() < Duration::from_secs(60),
            "no exit after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    let drain = drained_at.elapsed();
    assert_eq!(exit.code(), Some(0), "strata did not exit 0 after SIGTERM");
    let others: Vec<u16> = (0..3).filter(|&i| i != leaving).map(|i| ports[i]).collect();
    workload.set_live(&others);
    wait_whole(&others, 2);
    std::thread::sleep(Duration::from_secs(2));
    let (clients, _, _) = workload.finish_with_failures();
    let mut logs = Vec::new();
    for (log, failures) in clients {
        assert!(
            failures.is_empty(),
            "client {}: writes failed: {failures:?}",
            log.0
        );
        logs.push(log);
    }
    servers[leaving] = None;
    let v = verify(&others, &logs, None);
    assert_eq!(v.failed, 0);
    assert_no_panic(&servers);
    eprintln!(
        "drain of {owner}: exited 0 {drain:?} after SIGTERM; {} statements acknowledged, none \
         failed",
        v.acked
    );
}

#[test]
fn a_node_that_loses_the_object_store_gives_its_shards_up_and_rejoins_when_it_heals() {
    // Needs a store behind a network address: the S3 test server.
    let Ok(endpoint) = std::env::var("STRATA_TEST_S3_ENDPOINT") else {
        assert!(
            std::env::var_os("STRATA_REQUIRE_S3").is_none(),
            "STRATA_REQUIRE_S3 is set but STRATA_TEST_S3_ENDPOINT is not"
        );
        eprintln!("no S3 test server (scripts/s3-test-server): skipped");
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let store = store_url(tmp.path());
    let nodes = nodes(3, tmp.path());
    let upstream = endpoint.trim_start_matches("http://").parse().unwrap();
    let proxy = Proxy::start(upstream);
    let through_proxy = format!("http://127.0.0.1:{}", proxy.port);
    let quick = [
        ("STRATA_OBJECT_STORE_TIMEOUT", "2s"),
        ("STRATA_SERVER_UNHEALTHY_AFTER", "2s"),
    ];
    let mut cut_env = quick.to_vec();
    cut_env.push(("STRATA_OBJECT_STORE_ENDPOINT", through_proxy.as_str()));
    // node1, the seed, reaches the store through the proxy.
    let seed = nodes[0].listen.clone();
    let servers: Vec<Option<Server>> = vec![
        Some(start_with(&nodes[0], &store, &seed, &cut_env)),
        Some(start_with(&nodes[1], &store, &seed, &quick)),
        Some(start_with(&nodes[2], &store, &seed, &quick)),
    ];
    let ports = running_ports(&servers);
    wait_whole(&ports, 3);
    let r = sql(ports[0], SCHEMA);
    assert_eq!(r.status, 200, "{}", r.body);
    let workload = Workload::start(&ports, Duration::from_secs(120));
    std::thread::sleep(Duration::from_secs(2));

    proxy.cut();
    let cut_at = Instant::now();
    // The others hold every shard and the log; node1 says it cannot reach the store.
    let healthy = &ports[1..];
    let until = Instant::now() + Duration::from_secs(60);
    let moved = loop {
        let seen: Vec<serde_json::Value> = healthy.iter().map(|p| health(*p)).collect();
        let held: u64 = seen
            .iter()
            .filter_map(|h| h["cluster"]["shards_owned"].as_u64())
            .sum();
        let owner = seen[0]["cluster"]["log_owner"].as_str().map(String::from);
        if held == 16 && owner.as_deref().is_some_and(|o| o != "node1") {
            break cut_at.elapsed();
        }
        assert!(Instant::now() < until, "the shards did not move: {seen:?}");
        std::thread::sleep(Duration::from_millis(100));
    };
    // Its /health says so (503 once the store failed for [server] unhealthy_after).
    let until = Instant::now() + Duration::from_secs(30);
    loop {
        let h = request(ports[0], "GET", "/health", &[], b"");
        if h.status == 503 {
            assert!(
                h.body.contains("\"object_store\":\"unreachable\""),
                "{}",
                h.body
            );
            break;
        }
        assert!(
            Instant::now() < until,
            "/health does not report the outage: {}",
            h.body
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    // Writes through the healthy nodes are acknowledged meanwhile (the workload goes on).
    std::thread::sleep(Duration::from_secs(2));

    proxy.heal();
    let healed_at = Instant::now();
    wait_whole(&ports, 3);
    let back = healed_at.elapsed();
    std::thread::sleep(Duration::from_secs(2));
    let (logs, longest_gap) = workload.finish();
    let v = verify(&ports, &logs, None);
    assert_no_panic(&servers);
    eprintln!(
        "store outage of node1: the others held its shards and the log {moved:?} after the cut; \
         it held its share again {back:?} after healing; longest time without an acknowledged \
         write {longest_gap:?}; {} statements acknowledged, {} failed ({} of them landed whole)",
        v.acked, v.failed, v.failed_landed
    );
}
