//! What the SQL consistency suite and its restart variant share: where the scripts are,
//! which expected file applies, and how a statement's outcome is rendered.

use std::path::{Path, PathBuf};
use strata::profile::{ActiveProfile, PhysicalProfile};
use strata::Engine;

pub fn sql_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("sql")
}

/// The expected file for `name` under the compiled profile.
pub fn expected_path(dir: &Path, name: &str) -> PathBuf {
    let specific = dir.join(format!("{name}.expected.{}", ActiveProfile::NAME));
    if specific.exists() || has_profile_specific(dir, name) {
        specific
    } else {
        dir.join(format!("{name}.expected"))
    }
}

/// Whether `name` has an expected file for some profile (then every profile needs its own).
pub fn has_profile_specific(dir: &Path, name: &str) -> bool {
    let prefix = format!("{name}.expected.");
    std::fs::read_dir(dir)
        .expect("tests/sql exists")
        .filter_map(|e| e.ok())
        .any(|e| e.file_name().to_string_lossy().starts_with(&prefix))
}

pub fn error_line(message: &str) -> String {
    assert!(
        !message.contains('\n'),
        "error messages are one line, got: {message:?}"
    );
    format!("error: {message}\n")
}

/// Runs every statement of `script` on `engine`, even after an error (so that expected files
/// pin each error), appending one output block per result set (CSV) or error.
pub fn run_into(engine: &mut Engine, script: &str, blocks: &mut Vec<String>) {
    for piece in strata::sql::pieces(script) {
        let Some(stmt) = piece.parse() else { continue };
        match stmt
            .map_err(strata::Error::from)
            .and_then(|s| engine.run(&s))
        {
            Ok(Some(rs)) => {
                let mut csv = Vec::new();
                strata::format::write_csv(&mut csv, &rs).expect("writing to a Vec cannot fail");
                blocks.push(String::from_utf8(csv).expect("CSV output is UTF-8"));
            }
            Ok(None) => {}
            Err(e) => blocks.push(error_line(&e.to_string())),
        }
    }
}
