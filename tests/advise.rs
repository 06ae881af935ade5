//! `strata advise` from outside: on this tier's own state (a SQL file's in bare-metal, the
//! data directory in the tiers that persist) and on a running server (`--server URL`,
//! `GET /advise`, the `strata_advise_*` gauges of `/metrics`). Each trigger's firing and not
//! firing on synthetic figures is tested in `strata::advise`.

mod common;

use common::cli;
use std::path::Path;
use strata::{ActiveProfile, PhysicalProfile, ProfileKind};

/// `strata advise --format json` with `env`, parsed.
fn advise(data: Option<&Path>, env: &[(&str, &str)], args: &[&str]) -> serde_json::Value {
    let mut cmd = cli::strata(data);
    cmd.args(["advise", "--format", "json"]).args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn trigger<'a>(report: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    report["triggers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == name)
        .unwrap_or_else(|| panic!("no trigger {name} in {report}"))
}

#[test]
fn advise_reads_this_tiers_own_state_and_names_the_next_step() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    match ActiveProfile::KIND {
        ProfileKind::BareMetal => {
            let sql = tmp.path().join("state.sql");
            std::fs::write(
                &sql,
                "CREATE TABLE t (k BIGINT PRIMARY KEY); \
                 INSERT INTO t VALUES (1), (2), (3), (4), (5), (6), (7), (8), (9)",
            )
            .unwrap();
            let capacity = [("STRATA_STATE_CAPACITY", "10")];
            let report = advise(None, &capacity, &["-f", sql.to_str().unwrap()]);
            let full = trigger(&report, "capacity");
            assert_eq!(
                (full["value"].as_f64(), full["verdict"].as_str()),
                (Some(90.0), Some("move"))
            );
            assert!(full["next_step"]
                .as_str()
                .unwrap()
                .contains("cargo build --release"));
            assert_eq!(trigger(&report, "must_survive_restart")["verdict"], "stay");
            let larger = [("STRATA_STATE_CAPACITY", "100")];
            let report = advise(None, &larger, &["-f", sql.to_str().unwrap()]);
            assert_eq!(trigger(&report, "capacity")["verdict"], "stay");
            let declared = [("STRATA_ADVISE_MUST_SURVIVE_RESTART", "true")];
            let report = advise(None, &declared, &[]);
            assert_eq!(trigger(&report, "must_survive_restart")["verdict"], "move");
        }
        ProfileKind::Embedded | ProfileKind::Durable => {
            let out = cli::strata(Some(&data))
                .args([
                    "sql",
                    "CREATE TABLE t (k BIGINT PRIMARY KEY); INSERT INTO t VALUES (1), (2)",
                ])
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            let report = advise(Some(&data), &[], &[]);
            assert!(
                report["source"].as_str().unwrap().contains("opened in"),
                "{report}"
            );
            let names: Vec<&str> = report["triggers"]
                .as_array()
                .unwrap()
                .iter()
                .map(|t| t["name"].as_str().unwrap())
                .collect();
            if ActiveProfile::KIND == ProfileKind::Embedded {
                assert_eq!(
                    names,
                    ["recovery_time", "must_survive_disk_loss", "disk_space"]
                );
                let recovery = trigger(&report, "recovery_time");
                assert_eq!(recovery["verdict"], "stay", "{recovery}");
                assert!(recovery["value"].as_f64().unwrap() < 1.0);
                // An objective tighter than any recovery fires, with the migrate command.
                let strict = [("STRATA_ADVISE_RECOVERY_OBJECTIVE", "0")];
                let report = advise(Some(&data), &strict, &[]);
                let recovery = trigger(&report, "recovery_time");
                assert_eq!(recovery["verdict"], "move", "{recovery}");
                let step = recovery["next_step"].as_str().unwrap();
                assert!(
                    step.contains("--features durable")
                        && step.contains(&format!("migrate --from {}", data.display())),
                    "{step}"
                );
                let declared = [("STRATA_ADVISE_MUST_SURVIVE_DISK_LOSS", "true")];
                let report = advise(Some(&data), &declared, &[]);
                assert_eq!(
                    trigger(&report, "must_survive_disk_loss")["verdict"],
                    "move"
                );
            } else {
                assert_eq!(
                    names,
                    [
                        "memory",
                        "ingest_rate",
                        "write_latency",
                        "must_stay_available_during_maintenance"
                    ]
                );
                assert_eq!(trigger(&report, "memory")["verdict"], "stay");
                // A data directory has no traffic: those are not measured, not guessed.
                assert_eq!(trigger(&report, "ingest_rate")["verdict"], "unknown");
                assert_eq!(trigger(&report, "write_latency")["verdict"], "unknown");
            }
            // Advising changed nothing: the data is still there.
            let out = cli::strata(Some(&data))
                .args(["sql", "--format", "csv", "SELECT COUNT(*) AS n FROM t"])
                .output()
                .unwrap();
            assert_eq!(String::from_utf8_lossy(&out.stdout), "n\n2\n");
        }
        _ => {
            let report = advise(Some(&data), &[], &[]);
            assert_eq!(report["triggers"].as_array().unwrap().len(), 0, "{report}");
        }
    }
}

#[test]
fn a_threshold_out_of_range_is_a_config_error() {
    let mut cmd = cli::strata(None);
    let out = cmd
        .args(["advise"])
        .env("STRATA_ADVISE_MEMORY_PERCENT", "150")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("[advise] memory_percent") && stderr.contains("1 to 100"),
        "{stderr}"
    );
}

#[cfg(feature = "server")]
#[test]
fn a_running_server_advises_and_shows_its_triggers_as_gauges() {
    use common::http::{request, serve, sql};
    let tmp = tempfile::tempdir().unwrap();
    let mut cmd = cli::strata(Some(&tmp.path().join("data")));
    cmd.env(
        "STRATA_ADVISE_MUST_STAY_AVAILABLE_DURING_MAINTENANCE",
        "true",
    )
    .args(["serve", "--listen", "127.0.0.1:0"]);
    let server = serve(cmd);
    let r = sql(
        server.port,
        "CREATE SOURCE s (k BIGINT); INSERT INTO s VALUES (1), (2)",
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let r = request(server.port, "GET", "/advise", &[], b"");
    assert_eq!(r.status, 200, "{}", r.body);
    let report: serde_json::Value = serde_json::from_str(&r.body).unwrap();
    let metrics = request(server.port, "GET", "/metrics", &[], b"").body;
    let out = cli::strata(None)
        .args([
            "advise",
            "--server",
            &format!("http://127.0.0.1:{}", server.port),
        ])
        .output()
        .unwrap();
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    if ActiveProfile::MULTI_NODE {
        assert_eq!(report["triggers"].as_array().unwrap().len(), 0);
        assert!(table.contains("no tier to move up to"), "{table}");
        return;
    }
    let maintenance = trigger(&report, "must_stay_available_during_maintenance");
    assert_eq!(maintenance["verdict"], "move", "{report}");
    // One INSERT ran: its latency is measured.
    let latency = trigger(&report, "write_latency");
    assert!(latency["value"].as_f64().is_some(), "{latency}");
    assert!(metrics.contains(
        "strata_advise_move{trigger=\"must_stay_available_during_maintenance\",to=\"constellation\",unit=\"declared\"} 1"
    ), "{metrics}");
    assert!(
        metrics.contains(
            "strata_advise_threshold{trigger=\"memory\",to=\"constellation\",unit=\"percent\"} 70"
        ),
        "{metrics}"
    );
    assert!(
        table.contains("MOVE") && table.contains("next step: build the constellation tier"),
        "{table}"
    );
}
