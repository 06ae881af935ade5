//! `strata serve`: the HTTP server of the networked tiers, configured from `[server]`.

use super::{usage, Failure};
use anyhow::anyhow;
use std::path::Path;
use strata::config::Config;
use strata::server::{ServerSettings, DEFAULT_MAX_BODY_BYTES};

pub fn run(listen: Option<&str>, config: &Config, data: Option<&Path>) -> Result<(), Failure> {
    let text = listen
        .map(str::to_string)
        .or_else(|| config.server.listen.clone())
        .unwrap_or_else(|| "127.0.0.1:7878".into());
    let listen = text
        .parse()
        .map_err(|e| usage(anyhow!("listen address `{text}` is not HOST:PORT: {e}")))?;
    let unhealthy_after = match &config.server.unhealthy_after {
        Some(text) => strata::config::parse_duration(text)
            .map_err(|m| usage(anyhow!("[server] unhealthy_after `{text}`: {m}")))?,
        None => std::time::Duration::from_secs(60),
    };
    let shutdown_timeout = match &config.server.shutdown_timeout {
        Some(text) => strata::config::parse_duration(text)
            .map_err(|m| usage(anyhow!("[server] shutdown_timeout `{text}`: {m}")))?,
        None => std::time::Duration::from_secs(30),
    };
    let settings = ServerSettings {
        listen,
        unhealthy_after,
        shutdown_timeout,
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
