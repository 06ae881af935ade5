//! `strata advise`: whether it is time to move up a tier, read from a running server
//! (`--server URL`, its `GET /advise`) or from this tier's state: the data directory in the
//! tiers that persist, or (bare-metal, which keeps nothing) the state a SQL file leaves.

use super::{build_engine, run_sql, usage, Cli, Failure, ReportFormat};
use anyhow::Context;
use std::path::Path;
use std::time::Instant;
use strata::advise::{evaluate, Measurements, Report};
use strata::config::Config;
use strata::format::OutputFormat;
use strata::profile::{ActiveProfile, PhysicalProfile};

pub fn run(
    cli: &Cli,
    config: &Config,
    server: Option<&str>,
    file: Option<&Path>,
    format: ReportFormat,
) -> Result<(), Failure> {
    let report = match server {
        Some(url) => from_server(url, config)?,
        None => from_state(cli, config, file)?,
    };
    match format {
        ReportFormat::Table => print!("{}", report.render()),
        ReportFormat::Json => println!("{}", report.to_json()),
    }
    Ok(())
}

/// Measures this tier's own state: opens the data directory (as `strata sql` does; the time
/// that takes is reported), or runs `file` in a tier that keeps nothing.
fn from_state(cli: &Cli, config: &Config, file: Option<&Path>) -> Result<Report, Failure> {
    let thresholds = config.advise_thresholds()?;
    if ActiveProfile::MULTI_NODE {
        return Ok(Report {
            profile: ActiveProfile::NAME.into(),
            source: "the top tier".into(),
            triggers: Vec::new(),
        });
    }
    let started = Instant::now();
    let mut engine = build_engine(cli, config, false)?;
    let opened = started.elapsed();
    if let Some(path) = file {
        let sql = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read {}", path.display()))
            .map_err(usage)?;
        run_sql(&mut engine, &sql, OutputFormat::Table)?;
    }
    let mut m = Measurements::of_engine(&engine);
    // Leave the data directory as it was: no final checkpoint.
    drop(engine);
    let (source, data_dir) = match measure_data_dir(cli, config, &mut m, opened)? {
        Some((source, dir)) => (source, Some(dir)),
        None if file.is_some() => ("the state the SQL file left".to_string(), None),
        None => (
            "an empty engine (bare-metal keeps nothing: give a SQL file with -f)".to_string(),
            None,
        ),
    };
    Ok(Report {
        profile: ActiveProfile::NAME.into(),
        source,
        triggers: evaluate(ActiveProfile::KIND, &m, &thresholds, data_dir.as_deref()),
    })
}

/// Adds the data directory's figures and the process's memory to `m`; the report's source
/// and the directory, `None` in a tier without one.
#[cfg(feature = "persistence")]
fn measure_data_dir(
    cli: &Cli,
    config: &Config,
    m: &mut Measurements,
    opened: std::time::Duration,
) -> Result<Option<(String, String)>, Failure> {
    let dir = config.persist_settings(cli.data.as_deref())?.data_dir;
    let figures = strata::advise::measure::data_dir(&dir)
        .with_context(|| format!("cannot measure data directory {}", dir.display()))?;
    m.snapshot_bytes = Some(figures.newest_snapshot_bytes);
    m.wal_bytes = Some(figures.wal_bytes);
    m.data_dir_bytes = Some(figures.total_bytes);
    m.disk_free_bytes = figures.free_bytes;
    (m.memory_bytes, m.memory_limit_bytes) = strata::advise::measure::memory();
    let source = format!(
        "data directory {}, opened in {:.2} s",
        dir.display(),
        opened.as_secs_f64()
    );
    Ok(Some((source, dir.display().to_string())))
}

#[cfg(not(feature = "persistence"))]
fn measure_data_dir(
    _cli: &Cli,
    _config: &Config,
    _m: &mut Measurements,
    _opened: std::time::Duration,
) -> Result<Option<(String, String)>, Failure> {
    Ok(None)
}

#[cfg(feature = "server")]
fn from_server(url: &str, config: &Config) -> Result<Report, Failure> {
    let text = super::client::get(url, "/advise", config)?;
    Report::from_json(&text).map_err(|e| anyhow::anyhow!("{url}/advise: {e}").into())
}

#[cfg(not(feature = "server"))]
fn from_server(url: &str, _config: &Config) -> Result<Report, Failure> {
    Err(usage(anyhow::anyhow!(
        "--server {url}: profile `{}` has no server; advise on its state instead (without \
         --server)",
        ActiveProfile::NAME
    )))
}
