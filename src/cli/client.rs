//! Reading a running `strata serve` from the command line: one plain-HTTP GET, with the
//! configured token (`[server] token`, `STRATA_SERVER_TOKEN`) as the bearer.

use super::{usage, Failure};
use anyhow::Context;
use strata::config::Config;

/// The body of `GET <server><path>`; `server` is the server's `http://HOST:PORT`.
pub fn get(server: &str, path: &str, config: &Config) -> Result<String, Failure> {
    let url = format!("{}{path}", server.trim_end_matches('/'));
    if !url.starts_with("http://") {
        return Err(usage(anyhow::anyhow!(
            "--server {server}: give the server's http:// URL, e.g. http://127.0.0.1:7878 \
             (https is not built in: reach a TLS proxy's upstream instead)"
        )));
    }
    let mut request = ureq::get(&url);
    if let Some(token) = &config.server.token {
        request = request.header("Authorization", &format!("Bearer {token}"));
    }
    Ok(request
        .call()
        .and_then(|mut r| r.body_mut().read_to_string())
        .with_context(|| format!("cannot read {url}"))?)
}
