//! The constellation tier, three nodes in one process (on 127.0.0.1, .2 and .3, one shared
//! store): the SQL suite gives the answers one engine gives, with every statement sent to
//! another node; keys spread over the nodes; a node that leaves hands its shards over and
//! nothing acknowledged is lost; a node that comes back with an empty data directory gets
//! its state from the store.
#![cfg(feature = "cluster")]

mod common;

use common::cli;
use common::sql_suite::{diff, scripts, Script};
use common::stores::{store_settings, unique};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use strata::checkpoint::PersistSettings;
use strata::network::ClusterSettings;
use strata::{Batch, Column, Engine, Value};

/// Scripts whose single-engine answers are those of an ephemeral engine (no index storage,
/// no checkpoints), which a cluster node is not: checked on their own below.
const PERSISTENCE_DEPENDENT: &[&str] = &["tier"];

const SHARDS: u32 = 16;

/// A cluster of nodes in this process; `nodes[i]` is `None` while node i is stopped.
struct Cluster {
    nodes: Vec<Option<Engine>>,
    url: String,
    port: u16,
    root: PathBuf,
}

impl Cluster {
    fn start(n: usize, root: &Path) -> Cluster {
        let mut cluster = Cluster {
            nodes: (0..n).map(|_| None).collect(),
            url: format!("memory://{}", unique("cluster")),
            port: cli::free_port(3),
            root: root.to_path_buf(),
        };
        for i in 0..n {
            cluster.start_node(i);
        }
        cluster.wait_until_settled(n);
        cluster
    }

    fn address(&self, i: usize) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, i as u8 + 1], self.port))
    }

    fn data_dir(&self, i: usize) -> PathBuf {
        self.root.join(format!("node{}", i + 1))
    }

    fn start_node(&mut self, i: usize) {
        let persist = PersistSettings {
            data_dir: self.data_dir(i),
            checkpoint_interval: None,
            object_store: store_settings(&self.url),
            ..PersistSettings::default()
        };
        // The first node starts the cluster; the others join through it (or, when it is the
        // one restarting, through the second).
        let seed = if i == 0 && self.nodes.iter().all(Option::is_none) {
            self.address(0)
        } else {
            self.address(if i == 0 { 1 } else { 0 })
        };
        let cluster = ClusterSettings {
            node_id: format!("node{}", i + 1),
            listen: self.address(i),
            seeds: vec![seed.to_string()],
            shards: Some(SHARDS),
        };
        let engine = Engine::builder()
            .persist(persist)
            .cluster(cluster)
            .build()
            .unwrap_or_else(|e| panic!("node{} starts: {}", i + 1, e.report()));
        self.nodes[i] = Some(engine);
    }

    fn node(&mut self, i: usize) -> &mut Engine {
        self.nodes[i].as_mut().expect("a running node")
    }

    fn running(&self) -> Vec<usize> {
        (0..self.nodes.len())
            .filter(|&i| self.nodes[i].is_some())
            .collect()
    }

    /// Waits until every running node sees `n` members and the shards are all held.
    fn wait_until_settled(&self, n: usize) {
        let until = Instant::now() + Duration::from_secs(60);
        loop {
            let statuses: Vec<_> = self
                .nodes
                .iter()
                .flatten()
                .map(|e| e.cluster_status().expect("a cluster node"))
                .collect();
            let held: usize = statuses.iter().map(|s| s.shards_owned).sum();
            let owner = statuses[0].log_owner.clone();
            if statuses
                .iter()
                .all(|s| s.members.len() == n && s.log_owner == owner)
                && owner.is_some()
                && held == SHARDS as usize
            {
                return;
            }
            assert!(
                Instant::now() < until,
                "the cluster did not settle: {statuses:?}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Drops every object, so that the next script starts from an empty catalog.
    fn reset(&mut self) {
        let e = self.node(0);
        for (show, drop) in [
            ("SHOW VIEWS", "DROP MATERIALIZED VIEW"),
            ("SHOW INDEXES", "DROP INDEX"),
            ("SHOW TABLES", "DROP TABLE"),
            ("SHOW SOURCES", "DROP SOURCE"),
        ] {
            let names = e.query(show).unwrap();
            for row in &names.rows {
                let name = row[0].to_string().replace('"', "\"\"");
                e.execute(&format!("{drop} \"{name}\"")).unwrap();
            }
        }
    }
}

/// One statement's outcome as the SQL suite prints it, rows sorted unless the statement
/// orders them (a cluster gathers rows from several nodes, in no particular order).
fn outcome(result: strata::Result<Option<strata::ResultSet>>, ordered: bool) -> Option<String> {
    match result {
        Ok(Some(rs)) => {
            let mut csv = Vec::new();
            strata::format::write_csv(&mut csv, &rs).unwrap();
            let text = String::from_utf8(csv).unwrap();
            if ordered {
                return Some(text);
            }
            let mut lines: Vec<&str> = text.lines().collect();
            lines[1..].sort_unstable();
            Some(lines.join("\n") + "\n")
        }
        Ok(None) => None,
        Err(e) => Some(format!("error: {e}\n")),
    }
}

/// Runs a script, statement `i` on `run(i, stmt)`; its printed output.
fn run_script(
    text: &str,
    mut run: impl FnMut(usize, &strata::Statement) -> strata::Result<Option<strata::ResultSet>>,
) -> String {
    let mut blocks = Vec::new();
    for (i, piece) in strata::sql::pieces(text).enumerate() {
        let Some(stmt) = piece.parse() else { continue };
        let ordered = piece.text.to_uppercase().contains("ORDER BY");
        let result = stmt.map_err(strata::Error::from).and_then(|s| run(i, &s));
        blocks.extend(outcome(result, ordered));
    }
    blocks.join("\n")
}

#[test]
fn the_sql_suite_gives_one_engine_s_answers_on_three_nodes() {
    let tmp = tempfile::tempdir().unwrap();
    let mut cluster = Cluster::start(3, tmp.path());
    let mut failures = Vec::new();
    for Script { name, text, .. } in scripts() {
        if PERSISTENCE_DEPENDENT.contains(&name.as_str()) {
            continue;
        }
        let mut one = Engine::builder().ephemeral().build().unwrap();
        let expected = run_script(&text, |_, stmt| one.run(stmt));
        cluster.reset();
        let actual = run_script(&text, |i, stmt| cluster.node(i % 3).run(stmt));
        if expected == actual {
            eprintln!("ok   {name} (3 nodes)");
        } else {
            failures.push(format!(
                "{name}: 3 nodes differ from one engine (- one engine, + 3 nodes):\n{}",
                diff(&expected, &actual)
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn indexes_and_checkpoints_work_on_every_node() {
    let tmp = tempfile::tempdir().unwrap();
    let mut cluster = Cluster::start(3, tmp.path());
    cluster
        .node(0)
        .execute("CREATE TABLE t (k BIGINT PRIMARY KEY, v VARCHAR)")
        .unwrap();
    cluster
        .node(1)
        .execute("INSERT INTO t VALUES (1, 'a'), (2, 'b'), (3, 'a')")
        .unwrap();
    cluster
        .node(2)
        .execute("CREATE INDEX t_v ON t (v)")
        .unwrap();
    for i in 0..3 {
        let rs = cluster
            .node(i)
            .query("SELECT k FROM t WHERE v = 'a' ORDER BY k")
            .unwrap();
        assert_eq!(rs.rows, [[Value::Int(1)], [Value::Int(3)]], "node{}", i + 1);
        assert_eq!(cluster.node(i).query("SHOW INDEXES").unwrap().rows.len(), 1);
    }
    let report = cluster.node(1).checkpoint().unwrap();
    assert!(report.lsn >= 3, "{report:?}");
    cluster.node(0).execute("DROP INDEX t_v").unwrap();
    assert!(cluster
        .node(2)
        .query("SHOW INDEXES")
        .unwrap()
        .rows
        .is_empty());
}

fn rows_batch(from: i64, to: i64) -> Batch {
    Batch::new()
        .with_column("k", Column::bigint((from..to).collect()))
        .with_column("v", Column::bigint((from..to).map(|k| k * 2).collect()))
}

/// The count and sum of `t` and of the view over `s`.
fn totals(e: &mut Engine) -> (String, String) {
    let t = e.query("SELECT COUNT(*), SUM(v) FROM t").unwrap();
    let s = e
        .query("SELECT SUM(n), SUM(total) FROM per_bucket")
        .unwrap();
    (format!("{:?}", t.rows), format!("{:?}", s.rows))
}

#[test]
fn keys_spread_over_the_nodes_and_survive_nodes_leaving_and_coming_back_empty() {
    let tmp = tempfile::tempdir().unwrap();
    let mut cluster = Cluster::start(3, tmp.path());
    cluster
        .node(0)
        .execute(
            "CREATE TABLE t (k BIGINT PRIMARY KEY, v BIGINT); \
             CREATE SOURCE s (k BIGINT, v BIGINT); \
             CREATE MATERIALIZED VIEW per_bucket AS \
               SELECT k % 1000 AS bucket, COUNT(*) AS n, SUM(v) AS total FROM s GROUP BY k % 1000",
        )
        .unwrap();
    // 120,000 keys, in batches sent to every node.
    const KEYS: i64 = 120_000;
    for (b, from) in (0..KEYS).step_by(10_000).enumerate() {
        let batch = rows_batch(from, from + 10_000);
        let node = cluster.node(b % 3);
        assert_eq!(node.insert_batch("t", &batch).unwrap(), 10_000);
        assert_eq!(node.insert_batch("s", &batch).unwrap(), 10_000);
    }
    let want = (
        format!("{:?}", [[Value::Int(KEYS), Value::Int(KEYS * (KEYS - 1))]]),
        format!("{:?}", [[Value::Int(KEYS), Value::Int(KEYS * (KEYS - 1))]]),
    );
    for i in 0..3 {
        assert_eq!(totals(cluster.node(i)), want, "node{}", i + 1);
    }
    // Each node holds 25–42% of the table's keys (16 shards over 3 nodes: 5 or 6 each).
    let held: Vec<usize> = (0..3)
        .map(|i| {
            let sizes = cluster.node(i).state_sizes();
            sizes
                .iter()
                .find(|(kind, name, _)| *kind == "table" && name == "t")
                .map_or(0, |(_, _, keys)| *keys)
        })
        .collect();
    assert_eq!(held.iter().sum::<usize>(), KEYS as usize, "{held:?}");
    for (i, keys) in held.iter().enumerate() {
        let share = *keys as f64 / KEYS as f64;
        assert!(
            (0.25..=0.42).contains(&share),
            "node{} holds {share:.3}: {held:?}",
            i + 1
        );
    }
    // A key lookup answers from the owner of its shard, on any node.
    let rs = cluster
        .node(2)
        .query("SELECT v FROM t WHERE k = 4242")
        .unwrap();
    assert_eq!(rs.rows, [[Value::Int(8484)]]);

    // The node that owns the log stops without a word (no checkpoint, no goodbye): another
    // takes the log over and the leaver's shards; writes go on through the others.
    let owner = cluster.node(0).cluster_status().unwrap().log_owner.unwrap();
    let leaver: usize = owner.trim_start_matches("node").parse::<usize>().unwrap() - 1;
    cluster.nodes[leaver] = None;
    let others = cluster.running();
    let extra = rows_batch(KEYS, KEYS + 1_000);
    cluster.node(others[0]).insert_batch("t", &extra).unwrap();
    cluster.node(others[1]).insert_batch("s", &extra).unwrap();
    let after = KEYS + 1_000;
    let want_after = (
        format!(
            "{:?}",
            [[Value::Int(after), Value::Int(after * (after - 1))]]
        ),
        format!(
            "{:?}",
            [[Value::Int(after), Value::Int(after * (after - 1))]]
        ),
    );
    cluster.wait_until_settled(2);
    for &i in &others {
        assert_eq!(
            totals(cluster.node(i)),
            want_after,
            "node{} after node{} left",
            i + 1,
            leaver + 1
        );
        let status = cluster.node(i).cluster_status().unwrap();
        assert_ne!(status.log_owner.as_deref(), Some(owner.as_str()));
    }
    // A checkpoint of every shard lets the log be truncated; then the node comes back
    // with an empty data directory and gets its shards from the store.
    cluster.node(others[0]).checkpoint().unwrap();
    std::fs::remove_dir_all(cluster.data_dir(leaver)).unwrap();
    cluster.start_node(leaver);
    cluster.wait_until_settled(3);
    for i in 0..3 {
        assert_eq!(
            totals(cluster.node(i)),
            want_after,
            "node{} after the return",
            i + 1
        );
    }
    let duplicate = cluster
        .node(leaver)
        .execute("INSERT INTO t VALUES (7, 0)")
        .unwrap_err();
    assert!(
        duplicate.to_string().contains("duplicate primary key 7"),
        "{duplicate}"
    );
    // Closing every node checkpoints what it holds.
    for i in 0..3 {
        cluster.nodes[i].take().unwrap().close().unwrap();
    }
}

/// What a subscriber was told last per group: `key → row` (`None`: deleted).
type Told = std::sync::Arc<std::sync::Mutex<std::collections::BTreeMap<String, Option<String>>>>;

/// Waits until nothing new has been told for a second (at most a minute).
fn quiet(events: &std::sync::atomic::AtomicUsize) {
    use std::sync::atomic::Ordering;
    let until = Instant::now() + Duration::from_secs(60);
    let mut seen = events.load(Ordering::SeqCst);
    loop {
        std::thread::sleep(Duration::from_secs(1));
        let now = events.load(Ordering::SeqCst);
        if now == seen || Instant::now() > until {
            return;
        }
        seen = now;
    }
}

#[test]
fn a_view_is_followed_through_any_node_wherever_its_groups_live() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    let tmp = tempfile::tempdir().unwrap();
    let mut cluster = Cluster::start(3, tmp.path());
    cluster
        .node(0)
        .execute(
            "CREATE SOURCE s (k BIGINT, v BIGINT); \
             CREATE MATERIALIZED VIEW few AS \
               SELECT k % 200 AS g, COUNT(*) AS n, SUM(v) AS total FROM s GROUP BY k % 200 \
               HAVING COUNT(*) < 5",
        )
        .unwrap();
    cluster
        .node(1)
        .execute("INSERT INTO s VALUES (0, 1)")
        .unwrap();
    // Followed through node 1; the groups are on every node, written through the others.
    let told: Told = Arc::default();
    let events = Arc::new(AtomicUsize::new(0));
    let (into, count) = (told.clone(), events.clone());
    cluster
        .node(0)
        .subscribe(
            "few",
            Box::new(move |change| {
                let mut told = into.lock().unwrap();
                match change {
                    strata::ViewChange::Upsert { key, row } => {
                        told.insert(format!("{key:?}"), Some(format!("{row:?}")))
                    }
                    strata::ViewChange::Delete { key } => told.insert(format!("{key:?}"), None),
                };
                count.fetch_add(1, Ordering::SeqCst);
                true
            }),
        )
        .unwrap();
    let unknown = cluster.node(0).subscribe("nope", Box::new(|_| true));
    assert!(unknown.unwrap_err().to_string().contains("nope"));
    // Four rounds of 200 rows, one per group: group 0 (which had a row) reaches 5 and is
    // hidden by the HAVING, the others show 4; node 3 stops halfway (its shards move).
    for round in 0..4i64 {
        if round == 2 {
            cluster.nodes[2] = None;
            cluster.wait_until_settled(2);
        }
        let node = cluster.node(1 - (round as usize % 2));
        let batch = rows_batch(round * 200, round * 200 + 200);
        assert_eq!(node.insert_batch("s", &batch).unwrap(), 200);
    }
    quiet(&events);
    let view = cluster
        .node(1)
        .query("SELECT g, n, total FROM few ORDER BY g")
        .unwrap();
    let shown: std::collections::BTreeMap<String, Option<String>> = view
        .rows
        .iter()
        .map(|r| (format!("{:?}", [r[0].clone()]), Some(format!("{r:?}"))))
        .collect();
    assert_eq!(shown.len(), 199, "{shown:?}");
    let mut want = shown;
    want.insert(format!("{:?}", [Value::Int(0)]), None);
    assert_eq!(*told.lock().unwrap(), want);
    assert!(events.load(Ordering::SeqCst) >= 199);
}

#[test]
fn a_single_node_data_directory_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    std::fs::create_dir_all(data.join("wal")).unwrap();
    let settings = PersistSettings {
        data_dir: data.clone(),
        object_store: store_settings(&format!("memory://{}", unique("refuse"))),
        ..PersistSettings::default()
    };
    let err = Engine::builder()
        .persist(settings)
        .cluster(ClusterSettings {
            node_id: "n".into(),
            listen: SocketAddr::from(([127, 0, 0, 1], cli::free_port(1))),
            seeds: Vec::new(),
            shards: None,
        })
        .build()
        .unwrap_err()
        .to_string();
    assert!(err.contains("holds a single-node engine's data"), "{err}");
    assert!(data.join("wal").exists(), "nothing was removed");
}

#[test]
fn a_node_whose_seeds_do_not_answer_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let port = cli::free_port(2);
    let settings = PersistSettings {
        data_dir: tmp.path().join("data"),
        object_store: store_settings(&format!("memory://{}", unique("lonely"))),
        ..PersistSettings::default()
    };
    let started = Instant::now();
    let err = Engine::builder()
        .persist(settings)
        .cluster(ClusterSettings {
            node_id: "n".into(),
            listen: SocketAddr::from(([127, 0, 0, 1], port)),
            seeds: vec![SocketAddr::from(([127, 0, 0, 2], port)).to_string()],
            shards: None,
        })
        .build()
        .unwrap_err();
    let message = err.to_string();
    assert!(message.contains("a seed that answers"), "{message}");
    assert!(
        matches!(
            err,
            strata::Error::Config(strata::ConfigError::ProfileRequirementError { .. })
        ),
        "{err:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(30));
}

#[test]
fn a_node_of_another_layout_or_format_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let cluster = Cluster::start(1, tmp.path());
    let node = |url: &str, data: &str, seed: SocketAddr, listen: SocketAddr, shards| {
        Engine::builder()
            .persist(PersistSettings {
                data_dir: tmp.path().join(data),
                object_store: store_settings(url),
                ..PersistSettings::default()
            })
            .cluster(ClusterSettings {
                node_id: data.into(),
                listen,
                seeds: vec![seed.to_string()],
                shards,
            })
            .build()
            .map(drop)
            .unwrap_err()
            .to_string()
    };
    let err = node(
        &cluster.url,
        "eight",
        cluster.address(0),
        cluster.address(1),
        Some(8),
    );
    assert!(err.contains("was created with 16 shards"), "{err}");
    // A cluster written by another version of its format.
    let store = tmp.path().join("store");
    std::fs::create_dir_all(store.join("cluster")).unwrap();
    let layout = store.join("cluster").join("CLUSTER.json");
    std::fs::write(layout, r#"{"format": 2, "shards": 16}"#).unwrap();
    let own = SocketAddr::from(([127, 0, 0, 1], cli::free_port(1)));
    let url = format!("file://{}", store.display());
    let err = node(&url, "newer", own, own, None);
    assert!(
        err.contains("cluster format 2") && err.contains("reads format 1"),
        "{err}"
    );
}

#[test]
fn a_second_node_with_the_same_id_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let mut cluster = Cluster::start(2, tmp.path());
    let persist = PersistSettings {
        data_dir: tmp.path().join("impostor"),
        object_store: store_settings(&cluster.url),
        ..PersistSettings::default()
    };
    let err = Engine::builder()
        .persist(persist)
        .cluster(ClusterSettings {
            node_id: "node2".into(),
            listen: cluster.address(2),
            seeds: vec![cluster.address(0).to_string()],
            shards: None,
        })
        .build()
        .unwrap_err()
        .to_string();
    assert!(err.contains("another live node is `node2`"), "{err}");
    // The real node2 is unaffected.
    cluster
        .node(1)
        .execute("CREATE SOURCE s (x BIGINT)")
        .unwrap();
}
