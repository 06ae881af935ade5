//! What the SQL consistency suite and its variants share: the scripts and which expected
//! file applies, how a statement's outcome is rendered, and how two outputs differ.

use std::fmt::Write as _;
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

/// One script of `tests/sql`: its name, its text and the expected file of this profile.
pub struct Script {
    pub name: String,
    pub text: String,
    pub expected: PathBuf,
}

/// Every script of `tests/sql`, by name.
pub fn scripts() -> Vec<Script> {
    let dir = sql_dir();
    let mut paths: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("tests/sql exists")
        .map(|e| e.expect("readable directory entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "sql"))
        .collect();
    paths.sort();
    assert!(
        paths.len() >= 5,
        "expected the SQL scripts in {}",
        dir.display()
    );
    paths
        .into_iter()
        .map(|p| {
            let name = p.file_stem().unwrap().to_string_lossy().to_string();
            Script {
                text: std::fs::read_to_string(&p).expect("readable script"),
                expected: expected_path(&dir, &name),
                name,
            }
        })
        .collect()
}

/// A line diff (longest common subsequence), `-` expected, `+` actual, with 2 lines of context.
pub fn diff(expected: &str, actual: &str) -> String {
    let a: Vec<&str> = expected.lines().collect();
    let b: Vec<&str> = actual.lines().collect();
    let (n, m) = (a.len(), b.len());
    let mut lcs = vec![vec![0u32; m + 1]; n + 1];
    for i in (0..n).rev() {
        for j in (0..m).rev() {
            lcs[i][j] = if a[i] == b[j] {
                lcs[i + 1][j + 1] + 1
            } else {
                lcs[i + 1][j].max(lcs[i][j + 1])
            };
        }
    }
    let mut ops: Vec<(char, &str)> = Vec::new();
    let (mut i, mut j) = (0, 0);
    while i < n || j < m {
        if i < n && j < m && a[i] == b[j] {
            ops.push((' ', a[i]));
            i += 1;
            j += 1;
        } else if i < n && (j == m || lcs[i + 1][j] >= lcs[i][j + 1]) {
            ops.push(('-', a[i]));
            i += 1;
        } else {
            ops.push(('+', b[j]));
            j += 1;
        }
    }
    let changed: Vec<usize> = ops
        .iter()
        .enumerate()
        .filter(|(_, (c, _))| *c != ' ')
        .map(|(k, _)| k)
        .collect();
    let mut out = String::new();
    let mut last_printed: Option<usize> = None;
    for (k, (c, line)) in ops.iter().enumerate() {
        let near = changed.iter().any(|&x| x.abs_diff(k) <= 2);
        if !near {
            continue;
        }
        if last_printed.is_some_and(|l| l + 1 != k) || (last_printed.is_none() && k > 0) {
            out.push_str("  ...\n");
        }
        let _ = writeln!(out, "{c} {line}");
        last_printed = Some(k);
    }
    if expected.ends_with('\n') != actual.ends_with('\n') {
        out.push_str("  (the files differ in the final newline)\n");
    }
    out
}
