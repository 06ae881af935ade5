//! Where the library's `tracing` events go: stderr, one line each. As text, a warning reads
//! `warning: …` and a notice (target `strata::notice`) `notice: …`, like the CLI's own
//! messages; as JSON, one object per event. `STRATA_LOG` sets the filter (default: warnings
//! and notices).

use std::fmt;
use std::io::IsTerminal;
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::fmt::format::{FormatEvent, FormatFields, Writer};
use tracing_subscriber::fmt::FmtContext;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::EnvFilter;

/// The filter when `STRATA_LOG` is unset.
const DEFAULT_FILTER: &str = "warn,strata::notice=info";

#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// Installs the subscriber for the whole process.
pub fn init(format: LogFormat) {
    let filter = EnvFilter::try_from_env("STRATA_LOG").unwrap_or_else(|_| DEFAULT_FILTER.into());
    let logs = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_env_filter(filter);
    match format {
        LogFormat::Text => logs.event_format(Plain).init(),
        LogFormat::Json => logs.json().init(),
    }
}

/// `<kind>: <message> <fields>`, with the kind a person reads first.
struct Plain;

impl<S, N> FormatEvent<S, N> for Plain
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let meta = event.metadata();
        let kind = match *meta.level() {
            Level::ERROR => "error",
            Level::WARN => "warning",
            _ if meta.target() == "strata::notice" => "notice",
            Level::INFO => "info",
            Level::DEBUG => "debug",
            Level::TRACE => "trace",
        };
        write!(writer, "{kind}: ")?;
        ctx.field_format().format_fields(writer.by_ref(), event)?;
        writeln!(writer)
    }
}
