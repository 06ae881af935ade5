//! Clusters of `strata serve` processes of the constellation tier on 127.0.0.1, .2, .3, …
//! sharing one store: starting nodes, waiting until the cluster is whole, and reading it.

use super::cli;
use super::http::{request, serve, sql, Server};
use super::stores::{store_settings, unique};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

pub struct Node {
    pub id: String,
    pub listen: String,
    pub data: PathBuf,
}

/// The store every node shares: on the S3 test server when it runs (`scripts/test-all`
/// starts it and requires it), else a directory. On S3, a bucket of its own: the test
/// server (moto) lists a prefix by scanning the whole bucket, which the other tests fill.
pub fn store_url(tmp: &Path) -> String {
    match std::env::var("STRATA_TEST_S3_ENDPOINT") {
        Ok(endpoint) => {
            let port: u16 = endpoint.rsplit(':').next().unwrap().parse().unwrap();
            let bucket = unique("cluster").to_lowercase();
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

pub fn start(node: &Node, store: &str, seed: &str) -> Server {
    start_with(node, store, seed, &[])
}

/// [`start`] with more environment variables (which override the store's).
pub fn start_with(node: &Node, store: &str, seed: &str, env: &[(&str, &str)]) -> Server {
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
    for (k, v) in env {
        cmd.env(k, v);
    }
    serve(cmd)
}

/// A TCP proxy on 127.0.0.1 in front of `upstream` that the test can cut (every connection
/// closed, new ones refused) and heal.
pub struct Proxy {
    pub port: u16,
    cut: std::sync::Arc<std::sync::atomic::AtomicBool>,
    open: std::sync::Arc<std::sync::Mutex<Vec<std::net::TcpStream>>>,
}

impl Proxy {
    pub fn start(upstream: std::net::SocketAddr) -> Proxy {
        use std::sync::atomic::Ordering;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let cut = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let open = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let (cut2, open2) = (cut.clone(), open.clone());
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { continue };
                if cut2.load(Ordering::SeqCst) {
                    drop(client);
                    continue;
                }
                let Ok(server) = std::net::TcpStream::connect(upstream) else {
                    continue;
                };
                let mut registry = open2.lock().unwrap();
                for stream in [&client, &server] {
                    if let Ok(s) = stream.try_clone() {
                        registry.push(s);
                    }
                }
                drop(registry);
                for (mut from, mut to) in [
                    (client.try_clone().unwrap(), server.try_clone().unwrap()),
                    (server, client),
                ] {
                    std::thread::spawn(move || {
                        let _ = std::io::copy(&mut from, &mut to);
                        let _ = to.shutdown(std::net::Shutdown::Both);
                    });
                }
            }
        });
        Proxy { port, cut, open }
    }

    /// Closes every connection and refuses new ones.
    pub fn cut(&self) {
        self.cut.store(true, std::sync::atomic::Ordering::SeqCst);
        for s in self.open.lock().unwrap().drain(..) {
            let _ = s.shutdown(std::net::Shutdown::Both);
        }
    }

    pub fn heal(&self) {
        self.cut.store(false, std::sync::atomic::Ordering::SeqCst);
    }
}

pub fn health(port: u16) -> serde_json::Value {
    let r = request(port, "GET", "/health", &[], b"");
    serde_json::from_str(&r.body).unwrap_or(serde_json::Value::Null)
}

/// Waits until every server sees `n` members and one owner of the log; returns the owner.
pub fn wait_whole(ports: &[u16], n: usize) -> String {
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
pub fn rows(port: u16, query: &str) -> Vec<serde_json::Value> {
    let r = sql(port, query);
    assert_eq!(r.status, 200, "{query}: {}", r.body);
    let body: serde_json::Value = serde_json::from_str(&r.body).unwrap();
    body["results"][0].as_array().unwrap().clone()
}

/// Nodes `node1` … `node<n>` on 127.0.0.1 … .n, one port, data directories under `root`.
pub fn nodes(n: u8, root: &Path) -> Vec<Node> {
    let port = cli::free_port(n);
    (1..=n)
        .map(|i| Node {
            id: format!("node{i}"),
            listen: format!("127.0.0.{i}:{port}"),
            data: root.join(format!("node{i}")),
        })
        .collect()
}

/// A network namespace of the calling thread's own, with its loopback up, where the links of
/// one address (127.0.0.x) can be cut and healed (`ip rule … blackhole`): processes started
/// from this thread, and threads it starts, share it; the rest of the test binary does not.
pub struct PrivateNetwork;

impl PrivateNetwork {
    /// Moves this thread into a new network namespace. `None` (with the reason printed) where
    /// that is not permitted (not root, no `ip`), unless `STRATA_REQUIRE_NETNS` is set, which
    /// makes it a failure.
    pub fn enter() -> Option<PrivateNetwork> {
        let required = std::env::var_os("STRATA_REQUIRE_NETNS").is_some();
        // SAFETY: unshare(2) takes flags only; CLONE_NEWNET moves just this thread.
        if unsafe { libc::unshare(libc::CLONE_NEWNET) } != 0 {
            let e = std::io::Error::last_os_error();
            assert!(
                !required,
                "STRATA_REQUIRE_NETNS is set but unshare(CLONE_NEWNET) failed: {e}"
            );
            eprintln!("skipped: a network namespace of its own is not permitted here ({e})");
            return None;
        }
        // Local addresses are looked up at rule 0; move that lookup after the rules that cut.
        for args in [
            &["link", "set", "lo", "up"][..],
            &["rule", "del", "pref", "0"],
            &["rule", "add", "pref", "100", "lookup", "local"],
        ] {
            if let Err(e) = ip(args) {
                assert!(!required, "STRATA_REQUIRE_NETNS is set but {e}");
                eprintln!("skipped: {e}");
                return None;
            }
        }
        Some(PrivateNetwork)
    }

    /// Cuts every packet from or to `127.0.0.<host>`.
    pub fn isolate(&self, host: u8) {
        for (dir, pref) in [("from", 10 + host as u32 * 2), ("to", 11 + host as u32 * 2)] {
            let (addr, pref) = (format!("127.0.0.{host}"), pref.to_string());
            ip(&["rule", "add", dir, &addr, "blackhole", "pref", &pref]).unwrap();
        }
    }

    pub fn heal(&self, host: u8) {
        for pref in [10 + host as u32 * 2, 11 + host as u32 * 2] {
            ip(&["rule", "del", "pref", &pref.to_string()]).unwrap();
        }
    }
}

fn ip(args: &[&str]) -> Result<(), String> {
    let out = std::process::Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| format!("`ip` cannot run: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "`ip {}` failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(())
}
