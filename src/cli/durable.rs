//! Commands of the durable tier: moving data between an embedded data directory and object
//! stores. Compiled only into the durable binary.

use super::Failure;
use anyhow::anyhow;
use clap::Subcommand;
use std::path::{Path, PathBuf};
use strata::checkpoint::{ObjectStoreSettings, PersistSettings};
use strata::config::Config;
use strata::persist::local::{snapshot_body, LocalCheckpointer};
use strata::persist::object_snapshots::{Manifest, ObjectSnapshots};
use strata::persist::snapshot_store::SnapshotStore;
use strata::server::{ServerSettings, DEFAULT_MAX_BODY_BYTES};
use strata::Engine;

#[derive(Subcommand, Debug)]
pub enum StoreCommand {
    /// Copy an embedded-tier data directory into this tier's object store as a checkpoint.
    Migrate {
        /// The embedded data directory (it is locked while it is read).
        #[arg(long)]
        from: PathBuf,
        /// The store to write to (default: [object_store] url); it must hold no checkpoint.
        #[arg(long)]
        to: Option<String>,
    },
    /// Copy the newest checkpoint of the configured object store to another URL.
    Backup {
        #[arg(long)]
        to: String,
    },
    /// Copy the newest checkpoint at a URL into the configured (empty) object store.
    Restore {
        #[arg(long)]
        from: String,
    },
    /// Serve SQL and health over HTTP until SIGTERM/SIGINT (then a final checkpoint).
    Serve {
        /// HOST:PORT to listen on (default: [server] listen, else 127.0.0.1:7878).
        #[arg(long)]
        listen: Option<String>,
    },
}

/// The configured store's settings with another URL (same endpoint and credentials).
fn with_url(
    config: &Config,
    data: Option<&Path>,
    url: &str,
) -> Result<ObjectStoreSettings, Failure> {
    let mut settings = config.persist_settings(data)?.object_store;
    settings.url = Some(url.to_string());
    Ok(settings)
}

fn configured(config: &Config, data: Option<&Path>) -> Result<PersistSettings, Failure> {
    config.validate::<strata::ActiveProfile>()?;
    Ok(config.persist_settings(data)?)
}

fn empty_store(settings: &ObjectStoreSettings) -> Result<ObjectSnapshots, Failure> {
    let store = ObjectSnapshots::connect(settings)?;
    if let Some(newest) = store.checkpoints().map_err(strata::Error::from)?.first() {
        return Err(anyhow!(
            "{} already holds checkpoints (newest: {}); write into an empty store or prefix",
            store.url(),
            newest.url
        )
        .into());
    }
    Ok(store)
}

fn describe(manifest: &Manifest) -> String {
    format!(
        "checkpoint of log position {} ({} bytes)",
        manifest.lsn, manifest.size
    )
}

pub fn run(command: &StoreCommand, config: &Config, data: Option<&Path>) -> Result<(), Failure> {
    match command {
        StoreCommand::Serve { listen } => {
            let text = listen
                .clone()
                .or_else(|| config.server.listen.clone())
                .unwrap_or_else(|| "127.0.0.1:7878".into());
            let listen = text.parse().map_err(|e| {
                super::usage(anyhow!("listen address `{text}` is not HOST:PORT: {e}"))
            })?;
            let unhealthy_after = match &config.server.unhealthy_after {
                Some(text) => strata::config::parse_duration(text)
                    .map_err(|m| super::usage(anyhow!("[server] unhealthy_after `{text}`: {m}")))?,
                None => std::time::Duration::from_secs(60),
            };
            let settings = ServerSettings {
                listen,
                unhealthy_after,
                token: config.server.token.clone(),
                max_body_bytes: config
                    .server
                    .max_body_bytes
                    .unwrap_or(DEFAULT_MAX_BODY_BYTES),
            };
            settings.check()?;
            config.validate::<strata::ActiveProfile>()?;
            let engine = config
                .engine_builder::<strata::ActiveProfile>(data)?
                .build()?;
            strata::server::serve(engine, &settings, |addr| {
                eprintln!("listening on http://{addr}");
            })?;
            Ok(())
        }
        StoreCommand::Migrate { from, to } => {
            let target = match to {
                Some(url) => with_url(config, data, url)?,
                None => configured(config, data)?.object_store,
            };
            if !from.join("wal").is_dir() && !from.join("snapshots").is_dir() {
                return Err(anyhow!(
                    "{} is not a strata data directory (it has no wal/ or snapshots/)",
                    from.display()
                )
                .into());
            }
            let mut store = empty_store(&target)?;
            let source = PersistSettings {
                data_dir: from.clone(),
                ..PersistSettings::default()
            };
            let (engine, local) = Engine::builder().recover_with::<LocalCheckpointer>(&source)?;
            let lsn = local.last_lsn();
            let body = snapshot_body(engine.state(), lsn)?;
            let bytes = body.len();
            store.write(lsn, body).map_err(strata::Error::from)?;
            eprintln!(
                "migrated {} into {} as the checkpoint of log position {lsn} ({} objects, {} bytes); \
                 start this tier with [object_store] url = \"{}\"",
                from.display(),
                store.url(),
                engine.state().catalog().len(),
                bytes,
                store.url()
            );
            Ok(())
        }
        StoreCommand::Backup { to } => {
            let source = ObjectSnapshots::connect(&configured(config, data)?.object_store)?;
            let target = empty_store(&with_url(config, data, to)?)?;
            match source.copy_newest_to(&target)? {
                Some(m) => {
                    eprintln!("backed up the {} to {}", describe(&m), target.url());
                    Ok(())
                }
                None => Err(anyhow!("{} holds no checkpoint to back up", source.url()).into()),
            }
        }
        StoreCommand::Restore { from } => {
            let settings = configured(config, data)?;
            let wal = settings.data_dir.join("wal");
            let has_log = std::fs::read_dir(&wal).is_ok_and(|mut d| d.next().is_some());
            if has_log {
                return Err(anyhow!(
                    "{} already has a WAL: restore into a fresh data directory (--data DIR), so \
                     that no later log is replayed over the restored checkpoint",
                    settings.data_dir.display()
                )
                .into());
            }
            let source = ObjectSnapshots::connect(&with_url(config, data, from)?)?;
            let target = empty_store(&settings.object_store)?;
            match source.copy_newest_to(&target)? {
                Some(m) => {
                    eprintln!("restored the {} into {}", describe(&m), target.url());
                    Ok(())
                }
                None => Err(anyhow!("{} holds no checkpoint to restore", source.url()).into()),
            }
        }
    }
}

/// One line about the newest checkpoint in the configured store, for `strata profile`.
pub fn last_checkpoint(config: &Config, data: Option<&Path>) -> String {
    let settings = match configured(config, data) {
        Ok(s) => s.object_store,
        Err(_) => {
            return "last checkpoint: unknown (the config names no usable object store)".into()
        }
    };
    let newest = ObjectSnapshots::connect(&settings)
        .map_err(|e| e.to_string())
        .and_then(|s| s.checkpoints().map_err(|e| e.to_string()));
    match newest {
        Ok(list) => match list.first() {
            Some(c) => format!(
                "last checkpoint: log position {} at {} ({} bytes, {})",
                c.manifest.lsn,
                format_unix_ms(c.manifest.created_unix_ms),
                c.manifest.size,
                c.url
            ),
            None => format!(
                "last checkpoint: none yet in {}",
                settings.url.unwrap_or_default()
            ),
        },
        Err(e) => format!("last checkpoint: unknown ({e})"),
    }
}

/// RFC 3339 (UTC) from milliseconds since the Unix epoch.
fn format_unix_ms(ms: u64) -> String {
    let at = std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms);
    humantime::format_rfc3339_seconds(at).to_string()
}
