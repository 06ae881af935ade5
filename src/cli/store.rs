//! The commands of the tiers with an object store: moving checkpoints between an embedded
//! data directory and object stores (`migrate`, `backup`, `restore`), and the newest
//! checkpoint for `strata profile`.

use super::Failure;
use anyhow::anyhow;
use clap::Subcommand;
use std::path::{Path, PathBuf};
use strata::checkpoint::{ObjectStoreSettings, PersistSettings};
use strata::config::Config;
use strata::store::{self, CheckpointInfo};

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

fn describe(c: &CheckpointInfo) -> String {
    format!("checkpoint of log position {} ({} bytes)", c.lsn, c.bytes)
}

fn url_of(settings: &ObjectStoreSettings) -> &str {
    settings
        .url
        .as_deref()
        .unwrap_or_default()
        .trim_end_matches('/')
}

pub fn run(command: &StoreCommand, config: &Config, data: Option<&Path>) -> Result<(), Failure> {
    match command {
        StoreCommand::Migrate { from, to } => {
            let target = match to {
                Some(url) => with_url(config, data, url)?,
                None => configured(config, data)?.object_store,
            };
            let m = store::migrate(from, &target)?;
            eprintln!(
                "migrated {} into {} as the checkpoint of log position {} ({} objects, {} bytes); \
                 start this tier with [object_store] url = \"{}\"",
                from.display(),
                m.url,
                m.lsn,
                m.objects,
                m.bytes,
                m.url
            );
            Ok(())
        }
        StoreCommand::Backup { to } => {
            let source = configured(config, data)?.object_store;
            let target = with_url(config, data, to)?;
            match store::copy_newest(&source, &target)? {
                Some(c) => {
                    eprintln!("backed up the {} to {}", describe(&c), url_of(&target));
                    Ok(())
                }
                None => Err(anyhow!("{} holds no checkpoint to back up", url_of(&source)).into()),
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
            let source = with_url(config, data, from)?;
            match store::copy_newest(&source, &settings.object_store)? {
                Some(c) => {
                    eprintln!(
                        "restored the {} into {}",
                        describe(&c),
                        url_of(&settings.object_store)
                    );
                    Ok(())
                }
                None => Err(anyhow!("{} holds no checkpoint to restore", url_of(&source)).into()),
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
    match store::newest_checkpoint(&settings) {
        Ok(Some(c)) => format!(
            "last checkpoint: log position {} at {} ({} bytes, {})",
            c.lsn,
            humantime::format_rfc3339_seconds(c.created),
            c.bytes,
            c.url
        ),
        Ok(None) => format!("last checkpoint: none yet in {}", url_of(&settings)),
        Err(e) => format!("last checkpoint: unknown ({})", e.report()),
    }
}
