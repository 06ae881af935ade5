//! The SQL consistency suite: every `tests/sql/NAME.sql` script runs on a fresh engine and
//! its output must equal `tests/sql/NAME.expected` byte for byte, under every profile.
//!
//! Output format (the CSV form of `strata sql --format csv`, plus errors inline):
//! - a statement that returns rows prints its result set as CSV (header line, RFC 4180
//!   quoting, NULL as an empty field);
//! - a statement that fails prints one line `error: <message>` and the script CONTINUES with
//!   the next statement, so scripts can pin expected failures;
//! - other statements print nothing; printed blocks are separated by one empty line.
//!
//! The script is split into statements at top-level `;` (outside quotes and comments) and
//! each piece is parsed on its own with `strata::sql::statements`, so a syntax error in one
//! statement is reported and the next statement still runs.
//!
//! A script whose output legitimately depends on the tier (e.g. `CREATE INDEX`, whose error
//! names the profile) has one expected file per profile, `NAME.expected.<profile>`
//! (`strata::profile::ActiveProfile::NAME`); everything else shares `NAME.expected`.
//!
//! `STRATA_BLESS=1 cargo test --test sql_consistency -- --nocapture` (re)writes the
//! expected files of the compiled profile and lists them. Review every change by hand
//! before committing it: the expected files are the specification, not a recording.

mod common;

use common::sql_suite::{diff, run_into, scripts, sql_dir, Script};
use strata::profile::{ActiveProfile, PhysicalProfile};
use strata::Engine;

/// Runs a script on a fresh engine and renders its output.
fn run_script(script: &str) -> String {
    let mut engine = Engine::builder()
        .ephemeral()
        .build()
        .expect("default engine builds");
    let mut blocks: Vec<String> = Vec::new();
    run_into(&mut engine, script, &mut blocks);
    blocks.join("\n")
}

#[test]
fn sql_scripts_match_expected_output() {
    let bless = std::env::var("STRATA_BLESS").is_ok_and(|v| v == "1");
    let scripts = scripts();
    let mut failures = Vec::new();
    for Script {
        name,
        text,
        expected: expected_file,
    } in &scripts
    {
        let actual = run_script(text);
        if bless {
            let old = std::fs::read_to_string(expected_file).unwrap_or_default();
            if old != actual {
                std::fs::write(expected_file, &actual).expect("writable expected file");
                eprintln!("blessed {}", expected_file.display());
            }
            continue;
        }
        match std::fs::read_to_string(expected_file) {
            Ok(expected) if expected == actual => {
                eprintln!("ok   {name} ({})", ActiveProfile::NAME)
            }
            Ok(expected) => failures.push(format!(
                "{name}: output differs from {} (- expected, + actual):\n{}",
                expected_file.display(),
                diff(&expected, &actual)
            )),
            Err(e) => failures.push(format!(
                "{name}: cannot read {}: {e}\nactual output:\n{actual}",
                expected_file.display()
            )),
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} SQL scripts failed under profile `{}` (STRATA_BLESS=1 rewrites the expected files; review them by hand):\n\n{}",
        failures.len(),
        scripts.len(),
        ActiveProfile::NAME,
        failures.join("\n")
    );
}

/// Every expected file belongs to a script, and profile-specific files only exist for tiers.
#[test]
fn expected_files_have_scripts() {
    let dir = sql_dir();
    let profiles = ["bare-metal", "embedded", "durable", "constellation"];
    for entry in std::fs::read_dir(&dir).expect("tests/sql exists") {
        let file = entry
            .expect("readable directory entry")
            .file_name()
            .to_string_lossy()
            .to_string();
        let Some((name, rest)) = file.split_once(".expected") else {
            continue;
        };
        assert!(
            dir.join(format!("{name}.sql")).exists(),
            "{file} has no script {name}.sql"
        );
        if let Some(profile) = rest.strip_prefix('.') {
            assert!(
                profiles.contains(&profile),
                "{file}: unknown profile `{profile}`"
            );
            assert!(
                !dir.join(format!("{name}.expected")).exists(),
                "{name} has both a shared and a profile-specific expected file"
            );
        } else {
            assert!(
                rest.is_empty(),
                "{file}: expected NAME.expected or NAME.expected.<profile>"
            );
        }
    }
}

#[test]
fn diff_marks_changed_lines() {
    let d = diff("a\nb\nc\n", "a\nx\nc\n");
    assert!(d.contains("- b") && d.contains("+ x"), "{d}");
}
