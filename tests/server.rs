//! `strata serve` over real HTTP on an ephemeral 127.0.0.1 port: SQL round trips in JSON and
//! CSV, errors, bearer-token auth, the body limit, health, and a graceful shutdown that
//! loses nothing. The client is a few lines of HTTP/1.1 over a TcpStream.
#![cfg(feature = "server")]

mod common;

use common::cli;
use common::http::{next_event, request, serve, sql, subscribe, Server};
use std::io::Write;
use std::net::TcpStream;
use std::path::Path;
use std::time::{Duration, Instant};
use strata::{ActiveProfile, PhysicalProfile};

/// A running `strata serve`, killed when dropped.
/// Starts `strata --data DATA serve --listen 127.0.0.1:0` with extra environment variables
/// and waits for its "listening on" line.
fn start(data: &Path, env: &[(&str, &str)]) -> Server {
    start_with(data, env, &[])
}

fn start_with(data: &Path, env: &[(&str, &str)], args: &[&str]) -> Server {
    let mut cmd = cli::strata(Some(data));
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.args(["serve", "--listen", "127.0.0.1:0"]).args(args);
    serve(cmd)
}

#[test]
fn sql_round_trips_in_json_and_csv_and_errors_are_json() {
    let tmp = tempfile::tempdir().unwrap();
    let server = start(&tmp.path().join("data"), &[]);
    let r = sql(
        server.port,
        "CREATE TABLE kv (k BIGINT PRIMARY KEY, v VARCHAR);
         INSERT INTO kv VALUES (1, 'a'), (2, NULL);
         SELECT k, v FROM kv ORDER BY k",
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        r.body,
        r#"{"results":[null,null,[{"k":1,"v":"a"},{"k":2,"v":null}]]}"#
    );
    let r = request(
        server.port,
        "POST",
        "/sql",
        &[("Content-Type", "application/json")],
        br#"{"sql": "SELECT COUNT(*) AS n FROM kv"}"#,
    );
    assert_eq!(
        (r.status, r.body.as_str()),
        (200, r#"{"results":[[{"n":2}]]}"#)
    );
    let r = request(
        server.port,
        "POST",
        "/sql",
        &[("Accept", "text/csv")],
        b"SELECT k, v FROM kv ORDER BY k",
    );
    assert_eq!(r.status, 200);
    assert!(
        r.headers.contains("content-type: text/csv"),
        "{}",
        r.headers
    );
    assert_eq!(r.body, "k,v\n1,a\n2,\n");

    // Bad SQL and bad input are 400 with a JSON error naming the statement; earlier ones stay.
    let r = sql(server.port, "INSERT INTO kv VALUES (3, 'c'); SELEC 1");
    assert_eq!(r.status, 400, "{}", r.body);
    let error: serde_json::Value = serde_json::from_str(&r.body).unwrap();
    assert_eq!(error["statement"], 1);
    assert!(
        error["error"].as_str().unwrap().contains("syntax error"),
        "{}",
        r.body
    );
    let r = sql(server.port, "INSERT INTO kv VALUES (3, 'again')");
    assert_eq!(r.status, 400, "a duplicate key: {}", r.body);
    let r = request(
        server.port,
        "POST",
        "/sql",
        &[("Content-Type", "application/json")],
        b"{not json",
    );
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(r.body.contains("\"error\""), "{}", r.body);

    let r = request(server.port, "GET", "/health", &[], b"");
    assert_eq!(r.status, 200);
    let health: serde_json::Value = serde_json::from_str(&r.body).unwrap();
    assert_eq!(health["status"], "ok");
    assert_eq!(health["profile"], ActiveProfile::NAME);
    if ActiveProfile::MULTI_NODE {
        let cluster = &health["cluster"];
        assert_eq!(cluster["node_id"], "node1", "{}", r.body);
        assert_eq!(cluster["members"], serde_json::json!(["node1"]));
        assert_eq!(cluster["log_owner"], "node1");
        assert_eq!(cluster["shards_owned"], cluster["shards_total"]);
    }
}

#[test]
fn a_token_is_required_when_configured_and_beyond_loopback() {
    let tmp = tempfile::tempdir().unwrap();
    let server = start(
        &tmp.path().join("data"),
        &[("STRATA_SERVER_TOKEN", "s3cret")],
    );
    let r = request(server.port, "GET", "/health", &[], b"");
    assert_eq!(r.status, 401, "{}", r.body);
    let r = request(
        server.port,
        "GET",
        "/health",
        &[("Authorization", "Bearer wrong")],
        b"",
    );
    assert_eq!(r.status, 401);
    // The scheme is case-insensitive (RFC 7235); the token is not.
    for value in ["Bearer s3cret", "bearer s3cret", "BEARER  s3cret"] {
        let r = request(
            server.port,
            "GET",
            "/health",
            &[("Authorization", value)],
            b"",
        );
        assert_eq!(r.status, 200, "{value}: {}", r.body);
    }
    for value in [
        "Bearer S3CRET",
        "Basic s3cret",
        "Bearers3cret",
        "Bearer s3cre",
    ] {
        let r = request(
            server.port,
            "GET",
            "/health",
            &[("Authorization", value)],
            b"",
        );
        assert_eq!(r.status, 401, "{value}");
    }
    drop(server);

    // Listening on every interface without a token: refused at startup, exit 2.
    let out = cli::strata(Some(&tmp.path().join("other")))
        .args(["serve", "--listen", "0.0.0.0:0"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("STRATA_SERVER_TOKEN"), "{stderr}");
}

#[test]
fn oversized_bodies_get_413() {
    let tmp = tempfile::tempdir().unwrap();
    let server = start(
        &tmp.path().join("data"),
        &[("STRATA_SERVER_MAX_BODY_BYTES", "1000")],
    );
    let big = format!("SELECT '{}'", "x".repeat(5000));
    let r = sql(server.port, &big);
    assert_eq!(r.status, 413, "{}", r.body);
    let r = sql(server.port, "SHOW TABLES");
    assert_eq!(r.status, 200, "the server still answers: {}", r.body);
}

/// Sends SIGTERM and waits (at most 60 s) for the server to exit 0.
fn terminate_and_wait(server: &mut Server, context: &str) {
    let pid = server.child.id().to_string();
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    assert!(killed.success());
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(s) = server.child.try_wait().unwrap() {
            break s;
        }
        assert!(
            Instant::now() < deadline,
            "strata serve did not stop on SIGTERM{context}"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "exit status {status}");
}

#[test]
fn sigterm_finishes_cleanly_and_loses_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let mut server = start(&data, &[]);
    let r = sql(
        server.port,
        "CREATE SOURCE ev (k BIGINT NOT NULL, x BIGINT NOT NULL);
         CREATE MATERIALIZED VIEW agg AS SELECT k, COUNT(*) AS n, SUM(x) AS s FROM ev GROUP BY k;
         INSERT INTO ev VALUES (1, 10), (2, 20), (1, 5)",
    );
    assert_eq!(r.status, 200, "{}", r.body);
    terminate_and_wait(&mut server, "");
    // The final checkpoint holds everything: it comes back without the local disk.
    std::fs::remove_dir_all(&data).unwrap();
    let out = cli::strata(Some(&data))
        .args([
            "sql",
            "SELECT k, n, s FROM agg ORDER BY k",
            "--format",
            "csv",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "k,n,s\n1,2,15\n2,1,20\n"
    );
    // A server started on it reports the checkpoint it recovered from.
    let server = start(&data, &[]);
    let r = request(server.port, "GET", "/health", &[], b"");
    let health: serde_json::Value = serde_json::from_str(&r.body).unwrap();
    assert!(
        health["last_checkpoint_unix_ms"].as_u64().is_some(),
        "{}",
        r.body
    );
}

/// A client that never finishes its request header cannot keep the server from stopping:
/// after SIGTERM it waits `[server] shutdown_timeout` for it, closes it, logs that, takes
/// the final checkpoint and exits 0 (issue 13).
#[test]
fn a_half_sent_header_does_not_hold_up_the_shutdown() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let mut server = start(&data, &[("STRATA_SERVER_SHUTDOWN_TIMEOUT", "1s")]);
    assert_eq!(
        sql(
            server.port,
            "CREATE TABLE t (id BIGINT PRIMARY KEY); INSERT INTO t VALUES (7)"
        )
        .status,
        200
    );
    let mut stalled = TcpStream::connect(("127.0.0.1", server.port)).unwrap();
    stalled
        .write_all(b"POST /sql HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Le")
        .unwrap();
    std::thread::sleep(Duration::from_millis(200));
    // A bound on the wait, not a speed check: without the timeout it never exits.
    terminate_and_wait(&mut server, " with a half-sent header open");
    drop(stalled);
    let log = server.stderr.lock().unwrap().clone();
    assert!(log.contains("shutdown_timeout"), "{log}");
    // The final checkpoint was taken: the row comes back from the store alone.
    std::fs::remove_dir_all(&data).unwrap();
    let out = cli::strata(Some(&data))
        .args(["sql", "SELECT id FROM t", "--format", "csv"])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "id\n7\n",
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Checks `text` as Prometheus text exposition: every sample's family has `# HELP` and
/// `# TYPE` before it, counters end in `_total`, values are numbers, histogram buckets are
/// cumulative and end with `+Inf` equal to `_count`. Returns `sample name with labels → value`.
fn parse_prometheus(text: &str) -> std::collections::BTreeMap<String, f64> {
    let mut types = std::collections::HashMap::new();
    let mut helped = std::collections::HashSet::new();
    let mut samples = std::collections::BTreeMap::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            helped.insert(rest.split_whitespace().next().unwrap().to_string());
        } else if let Some(rest) = line.strip_prefix("# TYPE ") {
            let mut parts = rest.split_whitespace();
            let (name, kind) = (parts.next().unwrap(), parts.next().unwrap());
            assert!(helped.contains(name), "TYPE before HELP: {line}");
            if kind == "counter" {
                assert!(
                    name.ends_with("_total"),
                    "a counter not named _total: {name}"
                );
            }
            types.insert(name.to_string(), kind.to_string());
        } else {
            let (series, value) = line.rsplit_once(' ').expect("sample: NAME VALUE");
            let value: f64 = value
                .parse()
                .unwrap_or_else(|_| panic!("bad value: {line}"));
            let name = series.split('{').next().unwrap();
            let family = ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|s| {
                    name.strip_suffix(s)
                        .filter(|f| types.get(*f).is_some_and(|k| k == "histogram"))
                })
                .unwrap_or(name);
            assert!(types.contains_key(family), "sample before its TYPE: {line}");
            samples.insert(series.to_string(), value);
        }
    }
    for (family, kind) in &types {
        if kind != "histogram" {
            continue;
        }
        let buckets: Vec<f64> = samples
            .iter()
            .filter(|(k, _)| k.starts_with(&format!("{family}_bucket{{")))
            .map(|(_, v)| *v)
            .collect();
        let inf = samples[&format!("{family}_bucket{{le=\"+Inf\"}}")];
        assert_eq!(
            inf,
            samples[&format!("{family}_count")],
            "{family}: +Inf != count"
        );
        assert!(
            buckets.iter().all(|b| *b <= inf),
            "{family}: buckets not cumulative"
        );
    }
    samples
}

#[test]
fn metrics_are_prometheus_text_and_count_what_happened() {
    let tmp = tempfile::tempdir().unwrap();
    let server = start(&tmp.path().join("data"), &[]);
    let r = sql(
        server.port,
        "CREATE SOURCE ev (k BIGINT NOT NULL, x BIGINT NOT NULL);
         CREATE MATERIALIZED VIEW agg AS SELECT k, COUNT(*) AS n FROM ev GROUP BY k;
         INSERT INTO ev VALUES (1, 1), (2, 2), (1, 3);
         CHECKPOINT",
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        sql(server.port, "INSERT INTO nowhere VALUES (1)").status,
        400
    );
    let r = request(server.port, "GET", "/metrics", &[], b"");
    assert_eq!(r.status, 200);
    assert!(
        r.headers.contains("content-type: text/plain"),
        "{}",
        r.headers
    );
    let m = parse_prometheus(&r.body);
    assert_eq!(m["strata_rows_ingested_total"], 3.0);
    assert_eq!(
        m[r#"strata_statements_total{kind="insert",outcome="ok"}"#],
        1.0
    );
    assert_eq!(
        m[r#"strata_statements_total{kind="insert",outcome="error"}"#],
        1.0
    );
    assert_eq!(m[r#"strata_state_keys{kind="view",name="agg"}"#], 2.0);
    if ActiveProfile::MULTI_NODE {
        // No local log: every write is an entry of the cluster's log.
        assert_eq!(m["strata_cluster_members"], 1.0);
        assert_eq!(m["strata_cluster_log_owner"], 1.0);
        assert_eq!(m["strata_cluster_shards_owned"], m["strata_cluster_shards"]);
        assert!(m["strata_cluster_log_entries_total"] >= 3.0);
        assert!(m["strata_cluster_log_put_seconds_count"] >= 3.0);
    } else {
        assert!(m["strata_wal_bytes_total"] > 0.0);
        assert!(
            m["strata_wal_fsync_seconds_count"] >= 3.0,
            "sync = always: one per write"
        );
    }
    assert_eq!(m[r#"strata_checkpoints_total{outcome="ok"}"#], 1.0);
    assert!(m["strata_checkpoint_bytes_total"] > 0.0);
    assert_eq!(
        m[r#"strata_http_requests_total{path="/sql",status="200"}"#],
        1.0
    );
    assert_eq!(
        m[r#"strata_http_requests_total{path="/sql",status="400"}"#],
        1.0
    );
    assert_eq!(m["strata_http_request_seconds_count"], 2.0);
}

#[test]
fn requests_are_logged_one_json_line_each_at_debug_level() {
    let tmp = tempfile::tempdir().unwrap();
    let server = start_with(
        &tmp.path().join("data"),
        &[("STRATA_LOG", "strata=debug")],
        &["--log-format", "json"],
    );
    assert_eq!(request(server.port, "GET", "/health", &[], b"").status, 200);
    let deadline = Instant::now() + Duration::from_secs(10);
    let line = loop {
        let logs = server.stderr.lock().unwrap().clone();
        if let Some(l) = logs.lines().find(|l| l.contains("\"path\":\"/health\"")) {
            break l.to_string();
        }
        assert!(Instant::now() < deadline, "no request log line in:\n{logs}");
        std::thread::sleep(Duration::from_millis(20));
    };
    let entry: serde_json::Value = serde_json::from_str(&line).unwrap();
    assert_eq!(entry["level"], "DEBUG");
    assert_eq!(entry["fields"]["status"], 200);
    assert_eq!(entry["fields"]["method"], "GET");
}

#[test]
fn a_view_subscriber_receives_its_changes_and_a_slow_one_is_dropped() {
    let tmp = tempfile::tempdir().unwrap();
    let server = start(&tmp.path().join("data"), &[]);
    let r = sql(
        server.port,
        "CREATE SOURCE ev (k BIGINT NOT NULL, x BIGINT NOT NULL);
         CREATE MATERIALIZED VIEW agg AS SELECT k, COUNT(*) AS n, SUM(x) AS s FROM ev GROUP BY k",
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let r = request(server.port, "GET", "/views/nope/changes", &[], b"");
    assert_eq!(r.status, 404, "{}", r.body);

    let mut live = subscribe(server.port, "agg");
    let slow = subscribe(server.port, "agg"); // never reads
    assert_eq!(
        sql(
            server.port,
            "INSERT INTO ev VALUES (1, 10), (2, 20), (1, 5)"
        )
        .status,
        200
    );
    let mut got = vec![next_event(&mut live), next_event(&mut live)];
    got.sort();
    assert_eq!(
        got,
        [
            (
                "change".to_string(),
                r#"{"key":[1],"op":"upsert","row":{"k":1,"n":2,"s":15}}"#.to_string()
            ),
            (
                "change".to_string(),
                r#"{"key":[2],"op":"upsert","row":{"k":2,"n":1,"s":20}}"#.to_string()
            ),
        ]
    );

    // Far more changes than a client may fall behind, and than the sockets buffer (about
    // 20 MB of events): the one that does not read is dropped, and ingestion does not wait
    // for it.
    for round in 0..4 {
        let rows: Vec<String> = (0..60_000)
            .map(|k| format!("({}, 1)", round * 60_000 + k + 10))
            .collect();
        let started = Instant::now();
        let r = sql(
            server.port,
            &format!("INSERT INTO ev VALUES {}", rows.join(",")),
        );
        assert_eq!(r.status, 200, "{}", r.body);
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "ingestion waited"
        );
    }
    let mut slow = slow;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (event, data) = next_event(&mut slow);
        if event == "dropped" {
            assert!(data.contains("fell more than"), "{data}");
            break;
        }
        assert!(Instant::now() < deadline, "no `dropped` event");
    }
    // The live subscriber, which reads, gets the new groups.
    let (event, _) = next_event(&mut live);
    assert_eq!(event, "change");
}

#[test]
fn health_reports_an_unreachable_store_and_answers_503_after_the_bound() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let server = start(&data, &[("STRATA_SERVER_UNHEALTHY_AFTER", "0")]);
    let r = request(server.port, "GET", "/health", &[], b"");
    assert_eq!(r.status, 200, "{}", r.body);
    let health: serde_json::Value = serde_json::from_str(&r.body).unwrap();
    assert_eq!(health["object_store"], "reachable");
    // The store's directory turns into a file: every put fails from now on.
    let store = cli::store_dir(&data);
    std::fs::remove_dir_all(&store).unwrap();
    std::fs::write(&store, b"not a directory").unwrap();
    // Probes run at most every 5 s.
    let deadline = Instant::now() + Duration::from_secs(20);
    let r = loop {
        let r = request(server.port, "GET", "/health", &[], b"");
        if r.status != 200 || Instant::now() > deadline {
            break r;
        }
        std::thread::sleep(Duration::from_millis(250));
    };
    assert_eq!(r.status, 503, "{}", r.body);
    let health: serde_json::Value = serde_json::from_str(&r.body).unwrap();
    assert_eq!(health["status"], "unavailable");
    assert_eq!(health["object_store"], "unreachable");
    assert!(
        health["object_store_error"]
            .as_str()
            .unwrap()
            .contains("probe"),
        "{}",
        r.body
    );
    if ActiveProfile::MULTI_NODE {
        return; // no local log: writes wait for the store (tests/cluster.rs)
    }
    // SQL still works: the local log acknowledges writes.
    assert_eq!(
        sql(server.port, "CREATE TABLE t (k BIGINT PRIMARY KEY)").status,
        200
    );
}

/// `/health` and `/metrics` do not wait for a statement that holds the engine: they answer
/// from what they last read of it (issue 13). A multi-megabyte INSERT runs while they are
/// asked; they must answer before it does.
#[test]
fn health_and_metrics_answer_while_a_long_statement_runs() {
    let tmp = tempfile::tempdir().unwrap();
    let server = start(&tmp.path().join("data"), &[]);
    let port = server.port;
    assert_eq!(
        sql(port, "CREATE SOURCE s (k BIGINT, v BIGINT); CREATE MATERIALIZED VIEW by_k AS SELECT k, COUNT(*) AS n FROM s GROUP BY k").status,
        200
    );
    let mut long = String::from("INSERT INTO s VALUES ");
    let mut k = 0u64;
    while long.len() < 12 << 20 {
        if k > 0 {
            long.push_str(", ");
        }
        long.push_str(&format!("({}, {k})", k % 100_000));
        k += 1;
    }
    let (done, finished) = std::sync::mpsc::channel();
    let writer = std::thread::spawn(move || {
        let reply = sql(port, &long);
        done.send(Instant::now()).unwrap();
        reply.status
    });
    // Ask until the INSERT is done; at least one answer must come while it runs.
    let mut answered_during = 0;
    let until = Instant::now() + Duration::from_secs(120);
    while finished.try_recv().is_err() && Instant::now() < until {
        let health = request(port, "GET", "/health", &[], b"");
        let metrics = request(port, "GET", "/metrics", &[], b"");
        assert_eq!(
            (health.status, metrics.status),
            (200, 200),
            "{}",
            health.body
        );
        assert!(metrics.body.contains("strata_rows_ingested_total"));
        answered_during += 1;
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(writer.join().unwrap(), 200);
    assert!(
        answered_during >= 2,
        "/health and /metrics answered {answered_during} times while the INSERT ran"
    );
    // Once the engine is free they read it again: the rows are counted.
    let metrics = request(port, "GET", "/metrics", &[], b"");
    assert!(
        metrics
            .body
            .contains(&format!("strata_rows_ingested_total {k}")),
        "{}",
        metrics.body
    );
}

/// A TCP connection to the server from the loopback address `from` (127.0.0.2 is another
/// client than 127.0.0.1, as the server counts them).
fn connect_from(from: [u8; 4], port: u16) -> TcpStream {
    use socket2::{Domain, Socket, Type};
    let socket = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
    socket
        .bind(&std::net::SocketAddr::from((from, 0)).into())
        .unwrap();
    socket
        .connect(&std::net::SocketAddr::from(([127, 0, 0, 1], port)).into())
        .unwrap();
    let stream: TcpStream = socket.into();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream
}

/// What the server sends on `stream` until it closes it.
fn read_to_close(stream: &mut TcpStream) -> String {
    let mut out = Vec::new();
    let _ = std::io::Read::read_to_end(stream, &mut out);
    String::from_utf8_lossy(&out).to_string()
}

fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count())
}

/// Slowloris: one client holds as many connections as it may with half-sent headers and
/// trickled bodies. Its excess connections are refused at once with 503, its stalled ones
/// are cut at the header deadline, its trickled bodies get 408 — and another client is
/// served throughout, while the server's file descriptors stay bounded.
#[test]
fn a_client_holding_connections_open_cannot_starve_the_others() {
    let tmp = tempfile::tempdir().unwrap();
    let server = start(
        &tmp.path().join("data"),
        &[
            ("STRATA_SERVER_MAX_CONNECTIONS", "40"),
            ("STRATA_SERVER_MAX_CONNECTIONS_PER_CLIENT", "10"),
            ("STRATA_SERVER_HEADER_READ_TIMEOUT", "1s"),
            ("STRATA_SERVER_BODY_READ_TIMEOUT", "1s"),
        ],
    );
    let port = server.port;
    assert_eq!(
        sql(port, "CREATE TABLE t (id BIGINT PRIMARY KEY)").status,
        200
    );
    let fds_before = open_fds(server.child.id());

    // The attacker, from 127.0.0.2: 30 connections, each with half a header.
    let mut stalled: Vec<TcpStream> = (0..30)
        .map(|_| {
            let mut s = connect_from([127, 0, 0, 2], port);
            let _ = s.write_all(b"POST /sql HTTP/1.1\r\nHost: x\r\nContent-Le");
            s
        })
        .collect();
    // Beyond its 10, each is answered 503 and closed without waiting.
    let refused: Vec<String> = stalled
        .drain(10..)
        .map(|mut s| read_to_close(&mut s))
        .collect();
    assert!(
        refused.iter().all(|r| r.starts_with("HTTP/1.1 503")),
        "{refused:?}"
    );
    // Another client is served meanwhile.
    let started = Instant::now();
    for i in 0..20 {
        let reply = sql(port, &format!("INSERT INTO t VALUES ({i})"));
        assert_eq!(reply.status, 200, "{}", reply.body);
    }
    let normal = started.elapsed();
    assert!(open_fds(server.child.id()) <= fds_before + 12);

    // The stalled ones are cut at the header deadline (1 s).
    let started = Instant::now();
    for s in &mut stalled {
        let answer = read_to_close(s);
        assert!(!answer.starts_with("HTTP/1.1 2"), "{answer}");
    }
    let cut_after = started.elapsed();
    assert!(
        cut_after < Duration::from_secs(5),
        "cut after {cut_after:?}"
    );

    // A body trickled slower than the body deadline gets 408.
    let mut trickle = connect_from([127, 0, 0, 2], port);
    trickle
        .write_all(b"POST /sql HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nINSERT")
        .unwrap();
    let answer = read_to_close(&mut trickle);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("body_read_timeout"), "{answer}");

    let metrics = request(port, "GET", "/metrics", &[], b"");
    let samples = parse_prometheus(&metrics.body);
    assert_eq!(samples["strata_http_connections_refused_total"], 20.0);
    eprintln!("20 requests of another client took {normal:?} under the attack; stalled connections were cut after {cut_after:?}");
    let rows = sql(port, "SELECT COUNT(*) AS n FROM t");
    assert!(rows.body.contains("20"), "{}", rows.body);
}
