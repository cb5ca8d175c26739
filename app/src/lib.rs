//! The Kubernaut alert gateway: the composition root and everything that is not domain logic —
//! the HTTP server, metrics, the CLI, and the carrying out of the domain's decisions.

pub mod aggregates;
pub mod backlog;
pub mod cli;
pub mod config_source;
pub mod connections;
pub mod dead_letters;
pub mod gateway;
pub mod http;
pub mod input_limits;
pub mod intake;
pub mod limits;
pub mod metrics;
pub mod occurrences;
pub mod outcome;
pub mod pending;
pub mod placement;
pub mod readiness;
pub mod remediation;
pub mod serve;
pub mod supervise;
pub mod ticker;
pub mod tls;
pub mod writer;

use cli::LogFormat;

/// Installs the tracing subscriber (`RUST_LOG` filters; default `info`).
pub fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
        LogFormat::Text => builder.try_init(),
    };
}
