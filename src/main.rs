//! The `strata` command line: runs SQL, ingests files, prints the profile, benchmarks.

#[path = "cli/advise.rs"]
mod advise;
#[cfg(feature = "server")]
#[path = "cli/client.rs"]
mod client;
#[cfg(feature = "cluster")]
#[path = "cli/cluster.rs"]
mod cluster;
#[path = "cli/logging.rs"]
mod logging;
#[cfg(feature = "server")]
#[path = "cli/serve.rs"]
mod serve;
#[cfg(feature = "object-store")]
#[path = "cli/store.rs"]
mod store;

use logging::LogFormat;

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};
use std::io::{IsTerminal, Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;
use strata::config::Config;
use strata::format::{write_result, OutputFormat};
use strata::ingest::{BatchReader, Format};
use strata::profile::{self, ActiveProfile, PhysicalProfile};
use strata::{Engine, Error};

#[derive(Parser, Debug)]
#[command(name = "strata", version = strata::VERSION, about = "Strata: a streaming state engine whose deployment tier is a compile-time type")]
struct Cli {
    /// TOML config file (see profiles/<name>.toml); STRATA_<SECTION>_<KEY> variables override it.
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    /// Data directory (tiers that persist).
    #[arg(long, global = true)]
    data: Option<PathBuf>,
    /// Log lines on stderr as text or as one JSON object each.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run SQL statements from -f FILE, the arguments, or stdin; print each query's rows.
    Sql {
        /// Read statements from this file.
        #[arg(short = 'f', long = "file", conflicts_with = "statements")]
        file: Option<PathBuf>,
        /// Statements to run, in order.
        statements: Vec<String>,
        #[arg(long, value_enum, default_value_t = Fmt::Table)]
        format: Fmt,
    },
    /// Print the compiled profile, its constants, the capability matrix and whether the config is valid.
    Profile,
    /// Load a CSV (header row) or NDJSON (.ndjson/.jsonl) file into a source or table through the batch path.
    Ingest {
        /// Target source or table.
        name: String,
        /// Input file.
        file: PathBuf,
        /// SQL to run first (e.g. the CREATE statements; needed in tiers that keep nothing between runs).
        #[arg(long)]
        init: Option<PathBuf>,
        /// Queries to run after ingesting, printed like `strata sql`.
        #[arg(long)]
        query: Vec<String>,
        #[arg(long, value_enum, default_value_t = Fmt::Table)]
        format: Fmt,
        /// Rows per batch.
        #[arg(long, default_value_t = 10_000)]
        batch_size: usize,
    },
    /// Say whether it is time to move up a tier: each trigger with its measured value, threshold and verdict, and the next step when one fires.
    Advise {
        /// Read a running `strata serve` (its GET /advise), e.g. http://127.0.0.1:7878, instead of the data directory.
        #[arg(long)]
        server: Option<String>,
        /// Run this SQL file first and advise on the state it leaves (bare-metal keeps nothing between runs).
        #[arg(short = 'f', long = "file", conflicts_with = "server")]
        file: Option<PathBuf>,
        #[arg(long, value_enum, default_value_t = ReportFormat::Table)]
        format: ReportFormat,
    },
    /// The cluster (constellation): its members and what each holds.
    #[cfg(feature = "cluster")]
    Cluster {
        #[command(subcommand)]
        command: cluster::ClusterCommand,
    },
    /// Write a snapshot of the data directory now (tiers that persist).
    Checkpoint,
    /// Open a data directory whose WAL has a corrupt record, keeping the records before it.
    Repair {
        /// Drop the corrupt record and everything after it (required: it loses those writes).
        #[arg(long)]
        truncate_at_corruption: bool,
    },
    #[cfg(feature = "object-store")]
    #[command(flatten)]
    Store(store::StoreCommand),
    /// Serve SQL and health over HTTP until SIGTERM/SIGINT (then a final checkpoint).
    #[cfg(feature = "server")]
    Serve {
        /// HOST:PORT to listen on (default: [server] listen, else 127.0.0.1:7878).
        #[arg(long)]
        listen: Option<String>,
        /// HOST:PORT for PostgreSQL clients (default: [server] pg_listen, else not served).
        #[arg(long)]
        pg_listen: Option<String>,
    },
    /// Measure typed batch ingest into a grouped view against a hand-written FxHashMap loop.
    Bench {
        /// Distinct keys per run (repeatable).
        #[arg(long = "keys", default_values_t = vec![1_000usize, 100_000, 1_000_000])]
        keys: Vec<usize>,
        /// Rows per run.
        #[arg(long, default_value_t = 4_000_000)]
        rows: usize,
        /// Rows per batch.
        #[arg(long, default_value_t = 10_000)]
        batch_rows: usize,
        /// Runs per configuration; the best is reported.
        #[arg(long, default_value_t = 3)]
        repeats: usize,
    },
}

/// How `strata advise` and `strata cluster status` print their report.
#[derive(Clone, Copy, Debug, ValueEnum)]
enum ReportFormat {
    Table,
    Json,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum Fmt {
    Table,
    Csv,
    Json,
}

impl From<Fmt> for OutputFormat {
    fn from(f: Fmt) -> OutputFormat {
        match f {
            Fmt::Table => OutputFormat::Table,
            Fmt::Csv => OutputFormat::Csv,
            Fmt::Json => OutputFormat::Json,
        }
    }
}

/// A failure and the exit code it maps to: 2 for usage and config, 1 at run time.
struct Failure {
    code: u8,
    error: anyhow::Error,
}

impl<E: Into<anyhow::Error>> From<E> for Failure {
    fn from(e: E) -> Failure {
        let error = e.into();
        let code = match error.downcast_ref::<Error>() {
            // Storage that cannot be used as configured is a configuration error too.
            Some(Error::Config(_) | Error::Persist(strata::PersistError::Unusable { .. })) => 2,
            _ if error.downcast_ref::<strata::ConfigError>().is_some() => 2,
            _ => 1,
        };
        Failure { code, error }
    }
}

fn usage(error: anyhow::Error) -> Failure {
    Failure { code: 2, error }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    logging::init(cli.log_format);
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure { code, error }) => {
            let _ = std::io::stdout().flush();
            eprintln!("error: {}", format!("{error:#}").replace('\n', " "));
            ExitCode::from(code)
        }
    }
}

fn load_config(cli: &Cli) -> Result<Config, Failure> {
    let config = Config::load(cli.config.as_deref(), std::env::vars())?;
    if let Some(dir) = &cli.data {
        if !ActiveProfile::PERSISTENT {
            return Err(usage(anyhow::anyhow!(
                "--data {}: profile `{}` keeps no data on disk in this build",
                dir.display(),
                ActiveProfile::NAME
            )));
        }
    }
    Ok(config)
}

fn build_engine(
    cli: &Cli,
    config: &Config,
    truncate_at_corruption: bool,
) -> Result<Engine, Failure> {
    config.validate::<ActiveProfile>()?;
    let mut builder = config.engine_builder::<ActiveProfile>(cli.data.as_deref())?;
    if truncate_at_corruption {
        let mut persist = config.persist_settings(cli.data.as_deref())?;
        persist.truncate_at_corruption = true;
        builder = builder.persist(persist);
    }
    Ok(builder.build()?)
}

fn run(cli: Cli) -> Result<(), Failure> {
    match &cli.command {
        Command::Profile => {
            let config = load_config(&cli);
            print_profile();
            #[cfg(feature = "object-store")]
            if let Ok(c) = &config {
                println!("{}", store::last_checkpoint(c, cli.data.as_deref()));
            }
            let verdict = config.and_then(|c| c.validate::<ActiveProfile>().map_err(Failure::from));
            match verdict {
                Ok(()) => {
                    println!(
                        "config: valid{}",
                        cli.config
                            .as_ref()
                            .map(|p| format!(" ({})", p.display()))
                            .unwrap_or_default()
                    );
                    Ok(())
                }
                Err(f) => {
                    println!("config: INVALID");
                    Err(usage(f.error))
                }
            }
        }
        Command::Sql {
            file,
            statements,
            format,
        } => {
            let config = load_config(&cli)?;
            let sql = match (file, statements.is_empty()) {
                (Some(path), _) => std::fs::read_to_string(path)
                    .with_context(|| format!("cannot read {}", path.display()))
                    .map_err(usage)?,
                (None, false) => statements.join(";\n"),
                (None, true) => {
                    let mut s = String::new();
                    std::io::stdin()
                        .read_to_string(&mut s)
                        .context("cannot read statements from stdin")?;
                    s
                }
            };
            let mut engine = build_engine(&cli, &config, false)?;
            run_sql(&mut engine, &sql, (*format).into())?;
            Ok(engine.close()?)
        }
        Command::Ingest {
            name,
            file,
            init,
            query,
            format,
            batch_size,
        } => {
            let config = load_config(&cli)?;
            let mut engine = build_engine(&cli, &config, false)?;
            if let Some(init) = init {
                let sql = std::fs::read_to_string(init)
                    .with_context(|| format!("cannot read {}", init.display()))
                    .map_err(usage)?;
                run_sql(&mut engine, &sql, (*format).into())?;
            }
            ingest(&mut engine, name, file, *batch_size)?;
            run_sql(&mut engine, &query.join(";\n"), (*format).into())?;
            Ok(engine.close()?)
        }
        #[cfg(feature = "object-store")]
        Command::Store(command) => {
            let config = load_config(&cli)?;
            store::run(command, &config, cli.data.as_deref())
        }
        #[cfg(feature = "server")]
        Command::Serve { listen, pg_listen } => {
            let config = load_config(&cli)?;
            serve::run(
                listen.as_deref(),
                pg_listen.as_deref(),
                &config,
                cli.data.as_deref(),
            )
        }
        Command::Bench {
            keys,
            rows,
            batch_rows,
            repeats,
        } => bench(keys, *rows, *batch_rows, *repeats),
        Command::Advise {
            server,
            file,
            format,
        } => {
            let config = load_config(&cli)?;
            advise::run(&cli, &config, server.as_deref(), file.as_deref(), *format)
        }
        #[cfg(feature = "cluster")]
        Command::Cluster { command } => {
            let config = load_config(&cli)?;
            cluster::run(command, &config)
        }
        Command::Checkpoint => {
            let config = load_config(&cli)?;
            let mut engine = build_engine(&cli, &config, false)?;
            // A large state takes a while to write (or upload): show that it is working.
            let spinner = std::io::stderr().is_terminal().then(|| {
                let bar = indicatif::ProgressBar::new_spinner();
                bar.set_style(
                    indicatif::ProgressStyle::with_template("{spinner} {msg} ({elapsed})")
                        .expect("valid template"),
                );
                bar.set_message("writing the checkpoint");
                bar.enable_steady_tick(std::time::Duration::from_millis(100));
                bar
            });
            let report = engine.checkpoint();
            if let Some(bar) = spinner {
                bar.finish_and_clear();
            }
            let report = report?;
            eprintln!(
                "checkpoint at log position {}: {} bytes in {} ms",
                report.lsn, report.bytes, report.millis
            );
            Ok(())
        }
        Command::Repair {
            truncate_at_corruption,
        } => {
            if !truncate_at_corruption {
                return Err(usage(anyhow::anyhow!(
                    "repair needs --truncate-at-corruption: it keeps the log up to the first corrupt record and drops the rest"
                )));
            }
            let config = load_config(&cli)?;
            let mut engine = build_engine(&cli, &config, true)?;
            let report = engine.checkpoint()?;
            eprintln!(
                "repaired: state recovered up to log position {}, checkpoint written",
                report.lsn
            );
            Ok(())
        }
    }
}

/// Runs statements in order, printing each result set; stops at the first error.
fn run_sql(engine: &mut Engine, sql: &str, format: OutputFormat) -> Result<(), Failure> {
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let mut printed = 0;
    for stmt in strata::sql::statements(sql)? {
        let result = stmt.map_err(Error::from).and_then(|s| engine.run(&s));
        match result {
            Ok(Some(rs)) => {
                if printed > 0 {
                    writeln!(out)?;
                }
                write_result(&mut out, &rs, format)?;
                printed += 1;
            }
            Ok(None) => {}
            Err(e) => {
                out.flush()?;
                return Err(e.into());
            }
        }
    }
    out.flush()?;
    Ok(())
}

fn ingest(engine: &mut Engine, name: &str, path: &Path, batch_size: usize) -> Result<(), Failure> {
    let Some(columns) = engine.columns_of(name) else {
        return Err(anyhow::anyhow!(
            "unknown source or table `{name}`; create it first (see --init)"
        )
        .into());
    };
    let file =
        std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let size = file.metadata().map(|m| m.len()).unwrap_or(0);
    let progress = if std::io::stderr().is_terminal() {
        let bar = indicatif::ProgressBar::new(size);
        bar.set_style(
            indicatif::ProgressStyle::with_template("{bar:40} {bytes}/{total_bytes} {msg}")
                .expect("valid template"),
        );
        Some(bar)
    } else {
        None
    };
    let counted = CountingReader {
        inner: file,
        bar: progress.clone(),
    };
    let input = std::io::BufReader::with_capacity(1 << 20, counted);
    let display = path.display().to_string();
    let mut reader = BatchReader::new(
        &display,
        input,
        Format::from_path(path),
        columns,
        batch_size,
    )?;
    // Ctrl-C stops after the batch in flight, so that the summary says what was acknowledged.
    let interrupted = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flag = interrupted.clone();
    if let Err(e) =
        ctrlc::set_handler(move || flag.store(true, std::sync::atomic::Ordering::SeqCst))
    {
        tracing::warn!(
            "cannot handle Ctrl-C ({e}); an interrupt will not report acknowledged rows"
        );
    }
    let start = Instant::now();
    let mut rows = 0usize;
    let outcome = (|| -> anyhow::Result<()> {
        while let Some(batch) = reader.next_batch()? {
            if interrupted.load(std::sync::atomic::Ordering::SeqCst) {
                anyhow::bail!("interrupted");
            }
            rows += engine.insert_batch(name, &batch)?;
            // Each batch is acknowledged (durable under the sync policy) once insert_batch returns.
            tracing::debug!("acknowledged {rows} rows of {name}");
            if let Some(bar) = &progress {
                bar.set_message(format!("{rows} rows"));
            }
        }
        Ok(())
    })();
    if let Some(bar) = progress {
        bar.finish_and_clear();
    }
    let secs = start.elapsed().as_secs_f64();
    eprintln!(
        "ingested {rows} rows into {name} in {secs:.3} s ({:.0} rows/s)",
        rows as f64 / secs.max(1e-9)
    );
    let acknowledged = if ActiveProfile::PERSISTENT {
        "acknowledged"
    } else {
        "applied"
    };
    outcome.map_err(|e| {
        e.context(format!("stopped after {rows} rows were {acknowledged}"))
            .into()
    })
}

/// Feeds a progress bar with the bytes read.
struct CountingReader<R> {
    inner: R,
    bar: Option<indicatif::ProgressBar>,
}

impl<R: Read> Read for CountingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        if let Some(bar) = &self.bar {
            bar.inc(n as u64);
        }
        Ok(n)
    }
}

fn print_profile() {
    type P = ActiveProfile;
    let t = profile::active();
    println!(
        "profile: {} (strata {})",
        P::NAME,
        env!("CARGO_PKG_VERSION")
    );
    println!();
    println!("constants:");
    println!("  NAME           = {:?}", P::NAME);
    println!("  KIND           = {:?}", P::KIND);
    println!("  PERSISTENT     = {}", P::PERSISTENT);
    println!("  RECOVERY       = {:?}", P::RECOVERY);
    println!("  MULTI_NODE     = {}", P::MULTI_NODE);
    println!("  STATE_CAN_GROW = {}", P::STATE_CAN_GROW);
    println!(
        "  MAX_KEYS       = {}",
        if P::MAX_KEYS == usize::MAX {
            "unbounded".to_string()
        } else {
            P::MAX_KEYS.to_string()
        }
    );
    println!("  DEFAULT_CAPACITY = {}", P::DEFAULT_CAPACITY);
    println!("  INDEXES        = {:?}", P::INDEXES);
    println!("  NETWORKED      = {}", P::NETWORKED);
    println!("  state backend  : {}", t.state);
    println!();
    println!("capability matrix:");
    print!("{}", profile::capability_matrix_markdown());
    println!();
}

fn bench(keys: &[usize], rows: usize, batch_rows: usize, repeats: usize) -> Result<(), Failure> {
    if rows == 0 || batch_rows == 0 {
        return Err(usage(anyhow::anyhow!(
            "--rows and --batch-rows must be positive"
        )));
    }
    println!(
        "typed batch ingest into a view (COUNT/SUM/MIN/MAX GROUP BY BIGINT), profile {}, {rows} rows, {batch_rows} rows/batch, best of {repeats}",
        ActiveProfile::NAME
    );
    println!(
        "{:>10} {:>16} {:>16} {:>7}",
        "keys", "strata rows/s", "FxHashMap rows/s", "ratio"
    );
    for &k in keys {
        if !(1..=ActiveProfile::MAX_KEYS).contains(&k) {
            return Err(usage(anyhow::anyhow!(
                "--keys {k}: must be between 1 and {}",
                ActiveProfile::MAX_KEYS
            )));
        }
        let r = strata::bench::ingest_vs_fxhashmap::<ActiveProfile>(k, rows, batch_rows, repeats)?;
        println!(
            "{:>10} {:>16.0} {:>16.0} {:>7.2}",
            r.keys,
            r.strata_rows_per_sec,
            r.baseline_rows_per_sec,
            r.ratio()
        );
    }
    Ok(())
}
