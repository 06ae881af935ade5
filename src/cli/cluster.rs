//! `strata cluster status`: the members of a running cluster, their state, the shards each
//! holds, the log position each has applied and the age of its last checkpoint, read from
//! one node's `GET /cluster`.

use super::{usage, Failure, ReportFormat};
use clap::Subcommand;
use strata::config::Config;
use strata::network::ClusterReport;

#[derive(Subcommand, Debug)]
pub enum ClusterCommand {
    /// Print the members, their state, shards, applied log positions and checkpoint ages.
    Status {
        /// A node's HTTP URL (default: http:// and [server] listen, else 127.0.0.1:7878).
        #[arg(long)]
        server: Option<String>,
        #[arg(long, value_enum, default_value_t = ReportFormat::Table)]
        format: ReportFormat,
    },
}

pub fn run(command: &ClusterCommand, config: &Config) -> Result<(), Failure> {
    let ClusterCommand::Status { server, format } = command;
    let server = server.clone().unwrap_or_else(|| {
        format!(
            "http://{}",
            config.server.listen.as_deref().unwrap_or("127.0.0.1:7878")
        )
    });
    let text = super::client::get(&server, "/cluster", config)?;
    let report: ClusterReport = serde_json::from_str(&text).map_err(|e| {
        usage(anyhow::anyhow!(
            "{server}/cluster: not a cluster report: {e}"
        ))
    })?;
    match format {
        ReportFormat::Table => {
            let now_ms = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as u64);
            print!("{}", report.render(now_ms));
        }
        ReportFormat::Json => println!(
            "{}",
            serde_json::to_string_pretty(&report).expect("a report serializes")
        ),
    }
    Ok(())
}
