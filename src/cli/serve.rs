//! `strata serve`: the HTTP server of the networked tiers, configured from `[server]`.

use super::{usage, Failure};
use anyhow::anyhow;
use std::path::Path;
use strata::config::Config;
use strata::server::{ServerSettings, DEFAULT_MAX_BODY_BYTES};

pub fn run(
    listen: Option<&str>,
    pg_listen: Option<&str>,
    config: &Config,
    data: Option<&Path>,
) -> Result<(), Failure> {
    let text = listen
        .map(str::to_string)
        .or_else(|| config.server.listen.clone())
        .unwrap_or_else(|| "127.0.0.1:7878".into());
    let listen = text
        .parse()
        .map_err(|e| usage(anyhow!("listen address `{text}` is not HOST:PORT: {e}")))?;
    let mut settings = ServerSettings::new(listen);
    let server = &config.server;
    let duration = |key: &str, text: &Option<String>, default: std::time::Duration| match text {
        Some(text) => strata::config::parse_duration(text)
            .map_err(|m| usage(anyhow!("[server] {key} `{text}`: {m}"))),
        None => Ok(default),
    };
    settings.unhealthy_after = duration(
        "unhealthy_after",
        &server.unhealthy_after,
        settings.unhealthy_after,
    )?;
    settings.shutdown_timeout = duration(
        "shutdown_timeout",
        &server.shutdown_timeout,
        settings.shutdown_timeout,
    )?;
    settings.body_read_timeout = duration(
        "body_read_timeout",
        &server.body_read_timeout,
        settings.body_read_timeout,
    )?;
    let limits = &mut settings.limits;
    limits.header_read_timeout = duration(
        "header_read_timeout",
        &server.header_read_timeout,
        limits.header_read_timeout,
    )?;
    limits.max_connections = server.max_connections.unwrap_or(limits.max_connections);
    limits.max_connections_per_client = server
        .max_connections_per_client
        .unwrap_or(limits.max_connections_per_client);
    settings.token = server.token.clone();
    settings.advise = config.advise_thresholds()?;
    settings.pg_listen = pg_listen
        .map(str::to_string)
        .or_else(|| server.pg_listen.clone())
        .map(|text| {
            text.parse()
                .map_err(|e| usage(anyhow!("pg_listen address `{text}` is not HOST:PORT: {e}")))
        })
        .transpose()?;
    settings.max_body_bytes = server.max_body_bytes.unwrap_or(DEFAULT_MAX_BODY_BYTES);
    settings.check()?;
    config.validate::<strata::ActiveProfile>()?;
    let engine = config
        .engine_builder::<strata::ActiveProfile>(data)?
        .build()?;
    strata::server::serve(engine, &settings, |at| {
        if let Some(pg) = at.postgres {
            eprintln!("listening on postgres://{pg} (PostgreSQL protocol)");
        }
        eprintln!("listening on http://{}", at.http);
    })?;
    Ok(())
}
