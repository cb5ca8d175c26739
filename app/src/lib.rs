//! The Kubernaut alert gateway: the composition root and everything that is not domain logic —
//! the HTTP server, metrics, the CLI, and the carrying out of the domain's decisions.

pub mod aggregates;
pub mod auth;
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
pub mod logging;
pub mod metrics;
pub mod occurrences;
pub mod outcome;
pub mod pending;
pub mod placement;
pub mod readiness;
pub mod releases;
pub mod remediation;
pub mod replay;
pub mod serve;
pub mod single_flight;
pub mod supervise;
pub mod ticker;
pub mod tls;
pub mod window_locks;
pub mod writer;

use cli::LogFormat;

/// Installs the tracing subscriber (`RUST_LOG` filters; default `info`); see [`logging`].
pub fn init_logging(format: LogFormat) {
    logging::init(format);
}
