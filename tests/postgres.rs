//! PostgreSQL's wire protocol (`strata serve --pg-listen`), from real clients: tokio-postgres
//! (prepared statements, parameters of every type, NULLs, SQLSTATEs, passwords, 64
//! connections at once) and `psql` running a script whose output is checked.
//!
//! `psql` comes from Debian's `postgresql-client`, which scripts/test-all installs; without
//! it the psql test is skipped with a note, unless STRATA_REQUIRE_PSQL=1 (as test-all sets).

#![cfg(feature = "server")]

mod common;

use common::cli;
use common::http::{serve, Server};
use std::path::Path;
use std::time::{Duration, SystemTime};
use tokio_postgres::error::SqlState;
use tokio_postgres::{Client, NoTls};

fn start(data: &Path, token: Option<&str>) -> Server {
    start_with(data, token, &[])
}

fn start_with(data: &Path, token: Option<&str>, env: &[(&str, &str)]) -> Server {
    let mut cmd = cli::strata(Some(data));
    for (k, v) in env {
        cmd.env(k, v);
    }
    if let Some(token) = token {
        cmd.env("STRATA_SERVER_TOKEN", token);
    }
    cmd.args([
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--pg-listen",
        "127.0.0.1:0",
    ]);
    serve(cmd)
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

async fn connect(port: u16, password: Option<&str>) -> Result<Client, tokio_postgres::Error> {
    let mut config =
        format!("host=127.0.0.1 port={port} user=strata dbname=strata connect_timeout=10");
    if let Some(p) = password {
        config.push_str(&format!(" password={p}"));
    }
    let (client, connection) = tokio_postgres::connect(&config, NoTls).await?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(client)
}

fn sqlstate(e: &tokio_postgres::Error) -> Option<&SqlState> {
    e.code()
}

#[test]
fn prepared_statements_carry_every_type_and_null_both_ways() {
    let tmp = tempfile::tempdir().unwrap();
    let server = start(&tmp.path().join("data"), None);
    let port = server
        .pg_port
        .expect("the server reports its PostgreSQL port");
    runtime().block_on(async {
        let client = connect(port, None).await.unwrap();
        client
            .batch_execute(
                "CREATE TABLE t (id BIGINT PRIMARY KEY, i INT, s SMALLINT, d DOUBLE, \
                 v VARCHAR, b BOOLEAN, ts TIMESTAMP)",
            )
            .await
            .unwrap();
        let insert = client
            .prepare("INSERT INTO t VALUES ($1, $2, $3, $4, $5, $6, $7)")
            .await
            .unwrap();
        use tokio_postgres::types::Type;
        assert_eq!(
            insert.params(),
            [
                Type::INT8,
                Type::INT4,
                Type::INT2,
                Type::FLOAT8,
                Type::TEXT,
                Type::BOOL,
                Type::TIMESTAMP
            ]
        );
        let ts = SystemTime::UNIX_EPOCH + Duration::from_millis(1_704_164_645_250);
        let n = client
            .execute(
                &insert,
                &[&1i64, &-7i32, &3i16, &2.5f64, &"it's", &true, &ts],
            )
            .await
            .unwrap();
        assert_eq!(n, 1);
        let none = (
            None::<i32>,
            None::<i16>,
            None::<f64>,
            None::<&str>,
            None::<bool>,
            None::<SystemTime>,
        );
        client
            .execute(
                &insert,
                &[&2i64, &none.0, &none.1, &none.2, &none.3, &none.4, &none.5],
            )
            .await
            .unwrap();

        // Binary results (tokio-postgres asks for them), with the declared types.
        let rows = client
            .query(
                "SELECT id, i, s, d, v, b, ts FROM t WHERE id >= $1 ORDER BY id",
                &[&1i64],
            )
            .await
            .unwrap();
        assert_eq!(rows.len(), 2);
        let r = &rows[0];
        assert_eq!(r.get::<_, i64>(0), 1);
        assert_eq!(r.get::<_, i32>(1), -7);
        assert_eq!(r.get::<_, i16>(2), 3);
        assert_eq!(r.get::<_, f64>(3), 2.5);
        assert_eq!(r.get::<_, &str>(4), "it's");
        assert!(r.get::<_, bool>(5));
        assert_eq!(r.get::<_, SystemTime>(6), ts);
        let r = &rows[1];
        assert_eq!(r.get::<_, Option<i32>>(1), None);
        assert_eq!(r.get::<_, Option<i16>>(2), None);
        assert_eq!(r.get::<_, Option<f64>>(3), None);
        assert_eq!(r.get::<_, Option<&str>>(4), None);
        assert_eq!(r.get::<_, Option<bool>>(5), None);
        assert_eq!(r.get::<_, Option<SystemTime>>(6), None);

        // A parameter in each place whose type is inferred; a statement prepared once, run
        // with several values.
        let by_text = client
            .prepare("SELECT id FROM t WHERE v = $1 AND ts BETWEEN $2 AND $3")
            .await
            .unwrap();
        let found = client
            .query(&by_text, &[&"it's", &SystemTime::UNIX_EPOCH, &ts])
            .await
            .unwrap();
        assert_eq!(found.len(), 1);
        let found = client
            .query(&by_text, &[&"nobody", &SystemTime::UNIX_EPOCH, &ts])
            .await
            .unwrap();
        assert!(found.is_empty());
        let in_list = client
            .query(
                "SELECT COUNT(*) AS n FROM t WHERE id IN ($1, $2) LIMIT $3",
                &[&1i64, &2i64, &5i64],
            )
            .await
            .unwrap();
        assert_eq!(in_list[0].get::<_, i64>("n"), 2);
        let updated = client
            .execute("UPDATE t SET v = $1 WHERE id = $2", &[&"changed", &2i64])
            .await;
        updated.unwrap();

        // The simple protocol answers in text.
        let messages = client
            .simple_query("SELECT v FROM t ORDER BY id")
            .await
            .unwrap();
        let texts: Vec<Option<String>> = messages
            .iter()
            .filter_map(|m| match m {
                tokio_postgres::SimpleQueryMessage::Row(r) => Some(r.get(0).map(String::from)),
                _ => None,
            })
            .collect();
        assert_eq!(
            texts,
            [Some("it's".to_string()), Some("changed".to_string())]
        );

        // Views work as tables do; the SQL injection of a value is just a value.
        client
            .batch_execute(
                "CREATE SOURCE clicks (page VARCHAR, ms BIGINT); \
                 CREATE MATERIALIZED VIEW per_page AS \
                 SELECT page, COUNT(*) AS n, SUM(ms) AS total FROM clicks GROUP BY page",
            )
            .await
            .unwrap();
        let click = client
            .prepare("INSERT INTO clicks VALUES ($1, $2)")
            .await
            .unwrap();
        for (page, ms) in [("/a", 5i64), ("/a", 7), ("'); DROP TABLE t; --", 1)] {
            client.execute(&click, &[&page, &ms]).await.unwrap();
        }
        let rows = client
            .query(
                "SELECT page, n, total FROM per_page WHERE page = $1",
                &[&"/a"],
            )
            .await
            .unwrap();
        assert_eq!(
            (rows[0].get::<_, i64>("n"), rows[0].get::<_, i64>("total")),
            (2, 12)
        );
        let rows = client
            .query("SELECT COUNT(*) AS n FROM t", &[])
            .await
            .unwrap();
        assert_eq!(rows[0].get::<_, i64>("n"), 2, "the table is still there");
    });
}

#[test]
fn errors_carry_their_sqlstate_and_the_connection_stays_usable() {
    let tmp = tempfile::tempdir().unwrap();
    let server = start(&tmp.path().join("data"), None);
    let port = server.pg_port.unwrap();
    runtime().block_on(async {
        let client = connect(port, None).await.unwrap();
        client
            .batch_execute(
                "CREATE TABLE k (id BIGINT PRIMARY KEY, small SMALLINT, name VARCHAR(3))",
            )
            .await
            .unwrap();
        client
            .batch_execute("INSERT INTO k VALUES (1, 1, 'a')")
            .await
            .unwrap();
        let cases: [(&str, SqlState); 8] = [
            ("SELEC 1", SqlState::SYNTAX_ERROR),
            ("SELECT * FROM nowhere", SqlState::UNDEFINED_TABLE),
            ("SELECT nothing FROM k", SqlState::UNDEFINED_COLUMN),
            (
                "INSERT INTO k VALUES (1, 2, 'b')",
                SqlState::UNIQUE_VIOLATION,
            ),
            (
                "INSERT INTO k VALUES (2, 40000, 'b')",
                SqlState::NUMERIC_VALUE_OUT_OF_RANGE,
            ),
            (
                "SELECT id * 9223372036854775807 * 2 FROM k",
                SqlState::NUMERIC_VALUE_OUT_OF_RANGE,
            ),
            ("SELECT id / 0 FROM k", SqlState::DIVISION_BY_ZERO),
            (
                "CREATE TABLE k (id BIGINT PRIMARY KEY)",
                SqlState::DUPLICATE_TABLE,
            ),
        ];
        for (statement, expected) in cases {
            let err = client.batch_execute(statement).await.unwrap_err();
            assert_eq!(sqlstate(&err), Some(&expected), "{statement}: {err:?}");
            // The extended protocol reports the same.
            let err = client.query(statement, &[]).await.unwrap_err();
            assert_eq!(
                sqlstate(&err),
                Some(&expected),
                "{statement} (prepared): {err:?}"
            );
        }
        let err = client
            .batch_execute("INSERT INTO k VALUES (3, NULL, 'toolong')")
            .await
            .unwrap_err();
        assert_eq!(
            sqlstate(&err),
            Some(&SqlState::STRING_DATA_RIGHT_TRUNCATION)
        );
        let err = client
            .query("SELECT * FROM pg_catalog.pg_type", &[])
            .await
            .unwrap_err();
        assert_eq!(sqlstate(&err), Some(&SqlState::FEATURE_NOT_SUPPORTED));
        let message = err.as_db_error().unwrap().message();
        assert!(message.contains("DESCRIBE"), "{message}");
        let err = client.prepare("SELECT 1; SELECT 2").await.unwrap_err();
        assert_eq!(sqlstate(&err), Some(&SqlState::SYNTAX_ERROR));
        // Still serving.
        let rows = client.query("SELECT name FROM k", &[]).await.unwrap();
        assert_eq!(rows[0].get::<_, &str>(0), "a");
        // Session statements that drivers send.
        client
            .batch_execute("SET extra_float_digits = 3; SET application_name = 'x'")
            .await
            .unwrap();
        let version = client.query_one("SELECT version()", &[]).await.unwrap();
        assert!(version.get::<_, &str>(0).contains("Strata"));
        let one = client.simple_query("SELECT 1").await.unwrap();
        assert!(matches!(one[1], tokio_postgres::SimpleQueryMessage::Row(_)));
    });
}

#[test]
fn a_token_is_the_password_and_a_wrong_one_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let server = start(&tmp.path().join("data"), Some("s3cret"));
    let port = server.pg_port.unwrap();
    runtime().block_on(async {
        let err = connect(port, Some("wrong")).await.unwrap_err();
        assert_eq!(sqlstate(&err), Some(&SqlState::INVALID_PASSWORD), "{err:?}");
        let err = connect(port, None).await.unwrap_err();
        assert!(format!("{err:?}").contains("password missing"), "{err:?}");
        let client = connect(port, Some("s3cret")).await.unwrap();
        let rows = client.simple_query("SHOW TABLES").await.unwrap();
        assert!(matches!(
            rows.last(),
            Some(tokio_postgres::SimpleQueryMessage::CommandComplete(0))
        ));
    });
}

#[test]
fn a_connection_beyond_the_limit_gets_too_many_connections() {
    let tmp = tempfile::tempdir().unwrap();
    let limit = [("STRATA_SERVER_MAX_CONNECTIONS", "2")];
    let server = start_with(&tmp.path().join("data"), None, &limit);
    let port = server.pg_port.unwrap();
    runtime().block_on(async {
        let first = connect(port, None).await.unwrap();
        let second = connect(port, None).await.unwrap();
        let err = connect(port, None).await.unwrap_err();
        assert_eq!(
            sqlstate(&err),
            Some(&SqlState::TOO_MANY_CONNECTIONS),
            "{err:?}"
        );
        drop(first);
        // The closed connection's place is given back.
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        let third = loop {
            match connect(port, None).await {
                Ok(client) => break client,
                Err(e) => {
                    assert!(std::time::Instant::now() < deadline, "{e:?}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        };
        third.simple_query("SELECT 1").await.unwrap();
        second.simple_query("SELECT 1").await.unwrap();
    });
}

#[test]
fn sixty_four_clients_write_at_once_and_every_row_counts() {
    const CLIENTS: i64 = 64;
    const ROWS: i64 = 20;
    let tmp = tempfile::tempdir().unwrap();
    let server = start(&tmp.path().join("data"), None);
    let port = server.pg_port.unwrap();
    runtime().block_on(async {
        let setup = connect(port, None).await.unwrap();
        setup
            .batch_execute(
                "CREATE SOURCE events (client BIGINT, n BIGINT); \
                 CREATE MATERIALIZED VIEW per_client AS \
                 SELECT client, COUNT(*) AS rows, SUM(n) AS total FROM events GROUP BY client",
            )
            .await
            .unwrap();
        let mut tasks = Vec::new();
        for c in 0..CLIENTS {
            tasks.push(tokio::spawn(async move {
                let client = connect(port, None).await.unwrap();
                let insert = client
                    .prepare("INSERT INTO events VALUES ($1, $2)")
                    .await
                    .unwrap();
                for n in 0..ROWS {
                    client.execute(&insert, &[&c, &n]).await.unwrap();
                }
                client
            }));
        }
        let mut clients = Vec::new();
        for t in tasks {
            clients.push(t.await.unwrap());
        }
        let rows = setup
            .query(
                "SELECT COUNT(*) AS c, SUM(rows) AS r, SUM(total) AS t FROM per_client",
                &[],
            )
            .await
            .unwrap();
        assert_eq!(rows[0].get::<_, i64>("c"), CLIENTS);
        assert_eq!(rows[0].get::<_, i64>("r"), CLIENTS * ROWS);
        assert_eq!(rows[0].get::<_, i64>("t"), CLIENTS * ROWS * (ROWS - 1) / 2);
        drop(clients);
    });
}

#[test]
fn psql_runs_a_script_with_the_expected_output() {
    let Some(psql) = find_psql() else {
        assert!(
            std::env::var_os("STRATA_REQUIRE_PSQL").is_none(),
            "STRATA_REQUIRE_PSQL is set but psql is not installed (scripts/install-psql)"
        );
        eprintln!("psql is not installed: skipped (scripts/install-psql installs it)");
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let server = start(&tmp.path().join("data"), None);
    let port = server.pg_port.unwrap();
    let script_path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/postgres/psql.sql");
    let script = std::fs::read(&script_path).unwrap();
    let mut child = std::process::Command::new(psql)
        .args(["-X", "-h", "127.0.0.1", "-p", &port.to_string()])
        .args(["-U", "strata", "-d", "strata", "-f", "-"])
        .env_remove("PGPASSWORD")
        .env("PGCONNECT_TIMEOUT", "10")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child.stdin.take().unwrap().write_all(&script).unwrap();
    let out = child.wait_with_output().unwrap();
    // Errors and notices go to stderr: interleave them as a terminal would not, but stably,
    // by comparing each stream on its own.
    let actual = format!(
        "-- stdout\n{}-- stderr\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let expected_path = script_path.with_extension("expected");
    if std::env::var_os("STRATA_BLESS").is_some() {
        std::fs::write(&expected_path, &actual).unwrap();
    }
    let expected = std::fs::read_to_string(&expected_path).unwrap_or_default();
    assert_eq!(
        actual,
        expected,
        "psql's output differs from {} (STRATA_BLESS=1 rewrites it)",
        expected_path.display()
    );
}

fn find_psql() -> Option<std::path::PathBuf> {
    std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .map(|dir| Path::new(dir).join("psql"))
        .find(|p| p.is_file())
}
