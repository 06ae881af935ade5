//! The `strata` command line as a contract (issue §5): outputs, exit codes (0 ok, 1 runtime
//! error, 2 usage or config error), one-line errors, and never a panic for a user error.

mod common;

use common::cli;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use strata::{ActiveProfile, PhysicalProfile};

const QUICKSTART_CSV: &str = "\
page,views,avg_ms,longest
/docs,2,5400.0,5400
/home,2,1000.0,1200

minute,views,total_ms
2026-01-02 03:04:00,2,6600
2026-01-02 03:05:00,1,800

title
Documentation
";

fn manifest_dir() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// `strata` (see [`cli::strata`]) run from the crate root, with a fresh data
/// directory (and, in the durable tier, its object store) in tiers that persist.
fn strata(args: &[&str]) -> Command {
    let mut cmd = cli::strata(None);
    cmd.current_dir(manifest_dir()).args(args);
    if ActiveProfile::PERSISTENT {
        // Each command gets a data directory of its own, so that tests neither share state
        // nor wait for each other's directory lock (its object store goes beside it).
        let dir = tempfile::tempdir().unwrap().keep().join("data");
        cli::with_store(&mut cmd, &dir);
        cmd.env("STRATA_STORAGE_DATA_DIR", dir);
    }
    cmd
}

/// Runs with no stdin (it reads as empty).
fn run(args: &[&str]) -> Output {
    let out = strata(args).output().unwrap();
    assert_no_panic(&out);
    out
}

/// Runs with `input` on stdin.
fn run_stdin(args: &[&str], input: &str) -> Output {
    let mut child = strata(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(input.as_bytes()).unwrap();
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    assert_no_panic(&out);
    out
}

fn stdout(out: &Output) -> String {
    String::from_utf8(out.stdout.clone()).unwrap()
}

fn stderr(out: &Output) -> String {
    String::from_utf8(out.stderr.clone()).unwrap()
}

fn code(out: &Output) -> i32 {
    out.status.code().expect("exited, not killed by a signal")
}

fn assert_no_panic(out: &Output) {
    let err = stderr(out);
    for sign in [
        "panicked",
        "stack backtrace",
        "RUST_BACKTRACE",
        "thread 'main'",
    ] {
        assert!(!err.contains(sign), "stderr shows a panic ({sign}):\n{err}");
    }
    assert_ne!(
        out.status.code(),
        Some(101),
        "exit code 101 is a panic:\n{err}"
    );
}

/// Exactly one line on stderr, starting `error: `; returns it.
fn one_error_line(out: &Output) -> String {
    let err = stderr(out);
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 1, "expected one stderr line, got:\n{err}");
    assert!(lines[0].starts_with("error: "), "{err}");
    lines[0].to_string()
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

fn s(path: &Path) -> &str {
    path.to_str().unwrap()
}

/// The buildable profile that is not compiled into this build.
fn other_buildable() -> &'static str {
    if ActiveProfile::NAME == "bare-metal" {
        "embedded"
    } else {
        "bare-metal"
    }
}

/// The buildable profile that is neither compiled into this build nor [`other_buildable`].
fn third_buildable() -> &'static str {
    ["bare-metal", "embedded", "durable", "constellation"]
        .into_iter()
        .find(|p| *p != ActiveProfile::NAME && *p != other_buildable())
        .unwrap()
}

#[test]
fn version_names_the_profile() {
    let out = run(&["--version"]);
    assert_eq!(code(&out), 0);
    assert_eq!(
        stdout(&out).trim(),
        format!(
            "strata {} (profile {})",
            env!("CARGO_PKG_VERSION"),
            ActiveProfile::NAME
        )
    );
}

#[test]
fn quickstart_csv_output_is_exact() {
    let out = run(&["sql", "-f", "examples/quickstart.sql", "--format", "csv"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(stdout(&out), QUICKSTART_CSV);
    assert_eq!(stderr(&out), "");
}

#[test]
fn quickstart_default_format_is_a_table_as_the_readme_shows() {
    let out = run(&["sql", "-f", "examples/quickstart.sql"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let text = stdout(&out);
    assert!(
        text.starts_with(" page  | views | avg_ms | longest\n"),
        "{text}"
    );
    assert!(text.contains("(2 rows)"), "{text}");
    assert!(text.trim_end().ends_with("(1 row)"), "{text}");

    let readme = std::fs::read_to_string(manifest_dir().join("README.md")).unwrap();
    let start = "<!-- quickstart-output:start -->\n```text\n";
    let end = "```\n<!-- quickstart-output:end -->";
    let from = readme
        .find(start)
        .expect("README has the quickstart-output markers")
        + start.len();
    let to = from
        + readme[from..]
            .find(end)
            .expect("quickstart-output end marker");
    assert_eq!(
        &readme[from..to],
        text,
        "README.md shows another output of the quickstart"
    );
}

#[test]
fn statements_as_arguments() {
    let out = run(&[
        "sql",
        "--format",
        "csv",
        "CREATE TABLE t (k BIGINT PRIMARY KEY, v VARCHAR, ok BOOLEAN)",
        "INSERT INTO t VALUES (2, 'two, \"quoted\"', true), (1, NULL, false)",
        "SELECT k, v, ok FROM t ORDER BY k",
    ]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(
        stdout(&out),
        "k,v,ok\n1,,false\n2,\"two, \"\"quoted\"\"\",true\n"
    );
}

#[test]
fn statements_from_stdin() {
    let script = "CREATE TABLE t (k BIGINT PRIMARY KEY, ts TIMESTAMP, d DOUBLE);\n\
                  INSERT INTO t VALUES (1, '2026-01-02 03:04:05', 0.1), (2, '2026-01-02 03:04:05.678', 2);\n\
                  SELECT k, ts, d FROM t ORDER BY k DESC;\n\
                  SELECT COUNT(*) AS n FROM t;\n";
    let out = run_stdin(&["sql", "--format", "csv"], script);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(
        stdout(&out),
        "k,ts,d\n2,2026-01-02 03:04:05.678,2.0\n1,2026-01-02 03:04:05,0.1\n\nn\n2\n"
    );
}

#[test]
fn empty_stdin_is_no_statements() {
    let out = run(&["sql"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(stdout(&out), "");
}

#[test]
fn a_failing_statement_stops_the_run_and_keeps_earlier_ones() {
    let script = "CREATE TABLE t (k BIGINT PRIMARY KEY, v VARCHAR);\n\
                  INSERT INTO t VALUES (1, 'a');\n\
                  SELECT k, v FROM t;\n\
                  INSERT INTO t VALUES (2, 'b'), (1, 'again');\n\
                  INSERT INTO t VALUES (3, 'never');\n\
                  SELECT k FROM t;\n";
    let out = run_stdin(&["sql", "--format", "csv"], script);
    assert_eq!(code(&out), 1);
    assert_eq!(stdout(&out), "k,v\n1,a\n");
    let line = one_error_line(&out);
    assert!(line.contains("duplicate primary key 1"), "{line}");
}

#[test]
fn a_syntax_error_stops_the_run_after_earlier_statements() {
    let out = run(&[
        "sql",
        "--format",
        "csv",
        "CREATE TABLE t (k BIGINT PRIMARY KEY)",
        "INSERT INTO t VALUES (7)",
        "SELECT k FROM t",
        "SELEC k FROM t",
        "SELECT k FROM t",
    ]);
    assert_eq!(code(&out), 1);
    assert_eq!(stdout(&out), "k\n7\n");
    let line = one_error_line(&out);
    assert!(line.contains("syntax error"), "{line}");
}

#[test]
fn runtime_errors_are_one_line_with_exit_1() {
    for (statements, needle) in [
        (
            vec!["SELECT x FROM nowhere"],
            "unknown table or view `nowhere`",
        ),
        (
            vec![
                "CREATE SOURCE s (a BIGINT NOT NULL)",
                "INSERT INTO s VALUES (NULL)",
            ],
            "NOT NULL",
        ),
        (
            vec![
                "CREATE SOURCE s (a BIGINT)",
                "INSERT INTO s VALUES ('text')",
            ],
            "`a`",
        ),
        (vec!["CREATE TABLE t (k BIGINT)"], "needs a primary key"),
    ] {
        let mut args = vec!["sql"];
        args.extend(statements.iter().copied());
        let out = run(&args);
        assert_eq!(code(&out), 1, "{statements:?}: {}", stderr(&out));
        let line = one_error_line(&out);
        assert!(line.contains(needle), "{statements:?}: {line}");
    }
}

#[test]
fn usage_errors_exit_2() {
    for args in [
        &["sql", "--bogus"][..],
        &["frobnicate"][..],
        &["sql", "--format", "xml", "SHOW TABLES"][..],
        &["sql", "-f", "no/such/file.sql"][..],
        &[][..],
    ] {
        let out = run(args);
        assert_eq!(code(&out), 2, "{args:?}: {}", stderr(&out));
        assert!(
            stderr(&out).starts_with("error: ") || args.is_empty(),
            "{args:?}"
        );
        assert_eq!(stdout(&out), "", "{args:?}");
    }
}

#[test]
fn data_dir_in_a_tier_without_disk_is_a_usage_error() {
    if ActiveProfile::PERSISTENT {
        return; // tiers that persist take --data
    }
    let dir = tempfile::tempdir().unwrap();
    let out = run(&["--data", s(dir.path()), "sql", "SHOW TABLES"]);
    assert_eq!(code(&out), 2);
    let line = one_error_line(&out);
    assert!(line.contains("keeps no data on disk"), "{line}");
}

#[test]
fn config_errors_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let unknown_key = write(
        dir.path(),
        "unknown.toml",
        "[engine]\nprofil = \"embedded\"\n",
    );
    let bad_name = write(dir.path(), "bad.toml", "[engine]\nprofile = \"turbo\"\n");
    let other = other_buildable();
    let other_tier = write(
        dir.path(),
        "other.toml",
        &format!("[engine]\nprofile = \"{other}\"\n"),
    );
    let third = third_buildable();
    let third_tier = write(
        dir.path(),
        "third.toml",
        &format!("[engine]\nprofile = \"{third}\"\n"),
    );
    let cases = [
        (unknown_key, "unknown field `profil`".to_string()),
        (
            bad_name,
            "valid profiles are bare-metal, embedded, durable, constellation".to_string(),
        ),
        (
            other_tier,
            format!("cargo build --release --no-default-features --features {other}"),
        ),
        (
            third_tier,
            format!("cargo build --release --no-default-features --features {third}"),
        ),
    ];
    for (path, needle) in &cases {
        let out = run(&["--config", s(path), "sql", "SHOW TABLES"]);
        assert_eq!(code(&out), 2, "{}: {}", path.display(), stderr(&out));
        assert_eq!(stdout(&out), "");
        let line = one_error_line(&out);
        assert!(line.contains(needle.as_str()), "{line}");
    }
    // The environment overrides the file, and is checked the same way.
    let out = strata(&["sql", "SHOW TABLES"])
        .env("STRATA_ENGINE_PROFILE", "turbo")
        .output()
        .unwrap();
    assert_no_panic(&out);
    assert_eq!(code(&out), 2);
    assert!(one_error_line(&out).contains("invalid profile name `turbo`"));
    // A missing config file.
    let out = run(&["--config", "no/such/strata.toml", "sql", "SHOW TABLES"]);
    assert_eq!(code(&out), 2);
    assert!(one_error_line(&out).contains("no/such/strata.toml"));
}

#[test]
fn the_reference_config_of_this_tier_works() {
    let config = format!("profiles/{}.toml", ActiveProfile::NAME);
    let out = run(&[
        "--config",
        &config,
        "sql",
        "--format",
        "csv",
        "-f",
        "examples/quickstart.sql",
    ]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(stdout(&out), QUICKSTART_CSV);
}

#[test]
fn profile_prints_the_matrix() {
    let out = run(&["profile"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let text = stdout(&out);
    assert!(
        text.starts_with(&format!("profile: {}", ActiveProfile::NAME)),
        "{text}"
    );
    assert!(
        text.contains(&strata::profile::capability_matrix_markdown()),
        "{text}"
    );
    assert!(
        text.contains(&format!("PERSISTENT     = {}", ActiveProfile::PERSISTENT)),
        "{text}"
    );
    assert!(text.trim_end().ends_with("config: valid"), "{text}");

    let config = format!("profiles/{}.toml", ActiveProfile::NAME);
    let out = run(&["--config", &config, "profile"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert!(stdout(&out).contains("config: valid"));
}

#[test]
fn profile_with_an_invalid_config_exits_2() {
    let config = format!("profiles/{}.toml", other_buildable());
    let out = run(&["--config", &config, "profile"]);
    assert_eq!(code(&out), 2);
    let text = stdout(&out);
    assert!(
        text.contains(&strata::profile::capability_matrix_markdown()),
        "{text}"
    );
    assert!(text.trim_end().ends_with("config: INVALID"), "{text}");
    let line = one_error_line(&out);
    assert!(line.contains("--no-default-features --features"), "{line}");

    let dir = tempfile::tempdir().unwrap();
    let unknown = write(dir.path(), "u.toml", "[state]\ncapacty = 5\n");
    let out = run(&["--config", s(&unknown), "profile"]);
    assert_eq!(code(&out), 2);
    assert!(stdout(&out).contains("config: INVALID"));
    assert!(one_error_line(&out).contains("capacty"));
}

const INIT_SQL: &str = "\
CREATE SOURCE clicks (user_id BIGINT NOT NULL, page VARCHAR, ms BIGINT, ts TIMESTAMP);
CREATE MATERIALIZED VIEW per_user AS
    SELECT user_id, COUNT(*) AS n, SUM(ms) AS total FROM clicks GROUP BY user_id;
";
const PER_USER: &str = "SELECT user_id, n, total FROM per_user ORDER BY user_id";

/// Ingests `name` (written with `data`) into `clicks` and runs `queries`.
fn ingest(data_name: &str, data: &str, queries: &[&str], format: &str) -> (Output, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let init = write(dir.path(), "init.sql", INIT_SQL);
    let file = write(dir.path(), data_name, data);
    let mut args = vec![
        "ingest",
        "clicks",
        s(&file),
        "--init",
        s(&init),
        "--format",
        format,
    ];
    for q in queries {
        args.extend(["--query", q]);
    }
    let out = run(&args);
    (out, file)
}

fn assert_summary(out: &Output, rows: usize) {
    let err = stderr(out);
    assert!(
        err.contains(&format!("ingested {rows} rows into clicks")),
        "{err}"
    );
    assert!(err.contains("rows/s"), "{err}");
}

#[test]
fn ingest_csv() {
    let data = "user_id,page,ms,ts\n\
                1,/a,10,2026-01-02 03:04:05\n\
                2,\"/b,c\",5,2026-01-02 03:04:06\n\
                1,/a,,2026-01-02 03:04:07.500\n";
    let (out, _) = ingest("clicks.csv", data, &[PER_USER], "csv");
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(stdout(&out), "user_id,n,total\n1,2,10\n2,1,5\n");
    assert_summary(&out, 3);
}

#[test]
fn ingest_ndjson() {
    let data = "{\"user_id\": 1, \"page\": \"/a\", \"ms\": 10, \"ts\": \"2026-01-02 03:04:05\"}\n\
                \n\
                {\"user_id\": 2, \"ms\": 5}\n\
                {\"user_id\": 1, \"page\": null, \"ms\": 7, \"ts\": 1767323045000}\n";
    let (out, _) = ingest(
        "clicks.ndjson",
        data,
        &[PER_USER, "SELECT COUNT(*) AS users FROM per_user"],
        "csv",
    );
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(stdout(&out), "user_id,n,total\n1,2,17\n2,1,5\n\nusers\n2\n");
    assert_summary(&out, 3);
}

#[test]
fn ingest_stops_at_a_malformed_line_naming_file_and_line() {
    let data = "user_id,page,ms,ts\n\
                1,/a,10,2026-01-02 03:04:05\n\
                2,/b,abc,2026-01-02 03:04:06\n";
    let (out, file) = ingest("bad.csv", data, &[PER_USER], "csv");
    assert_eq!(code(&out), 1);
    let err = stderr(&out);
    let error_lines: Vec<&str> = err.lines().filter(|l| l.starts_with("error: ")).collect();
    assert_eq!(error_lines.len(), 1, "{err}");
    let line = error_lines[0];
    assert!(line.contains(s(&file)), "{line}");
    assert!(line.contains("line 3"), "{line}");
    assert!(line.contains("`abc` is not a BIGINT"), "{line}");
    assert_eq!(stdout(&out), "", "queries do not run after a failed ingest");
}

#[test]
fn ingest_into_an_unknown_target_fails() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(dir.path(), "x.csv", "a\n1\n");
    let out = run(&["ingest", "nowhere", s(&file)]);
    assert_eq!(code(&out), 1);
    assert!(one_error_line(&out).contains("unknown source or table `nowhere`"));
}

#[test]
fn json_output_parses() {
    let out = run(&["sql", "-f", "examples/quickstart.sql", "--format", "json"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let text = stdout(&out);
    let sets: Vec<serde_json::Value> = text
        .split("\n\n")
        .map(|chunk| serde_json::from_str(chunk.trim()).unwrap())
        .collect();
    assert_eq!(sets.len(), 3, "{text}");
    assert_eq!(
        sets[0],
        serde_json::json!([
            {"page": "/docs", "views": 2, "avg_ms": 5400.0, "longest": 5400},
            {"page": "/home", "views": 2, "avg_ms": 1000.0, "longest": 1200},
        ])
    );
    assert_eq!(
        sets[1][0],
        serde_json::json!({"minute": "2026-01-02 03:04:00", "views": 2, "total_ms": 6600})
    );
    assert_eq!(sets[2], serde_json::json!([{"title": "Documentation"}]));

    let (out, _) = ingest(
        "c.csv",
        "user_id,ms\n1,4\n1,6\n",
        &[PER_USER, "SHOW VIEWS"],
        "json",
    );
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let sets: Vec<serde_json::Value> = stdout(&out)
        .split("\n\n")
        .map(|chunk| serde_json::from_str(chunk.trim()).unwrap())
        .collect();
    assert_eq!(
        sets,
        [
            serde_json::json!([{"user_id": 1, "n": 2, "total": 10}]),
            serde_json::json!([{"name": "per_user"}]),
        ]
    );
}
