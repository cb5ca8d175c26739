//! The HTTP server's limits, read from the flags and checked together at start-up: each has a
//! flag of its own, and some only make sense against another (the request timeout between the
//! write deadline and the sender's timeout; the shutdown timeout above the shutdown delay; the
//! concurrency limit below the connection limit).

use std::time::Duration;

use crate::cli::ServeArgs;
use crate::connections::ConnectionLimits;
use crate::http::RequestLimits;

/// Alertmanager's shortest notify timeout: a webhook must be answered before it.
pub const SENDER_TIMEOUT: Duration = Duration::from_secs(10);

/// Every limit of the server, valid together by construction (see [`Limits::of`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// What the router enforces per request.
    pub request: RequestLimits,
    /// What the accept loop enforces per connection.
    pub connections: ConnectionLimits,
    /// How shutdown is paced.
    pub shutdown: ShutdownTiming,
    /// `/readyz` fails while the background round has not completed for this long.
    pub ticker_stall: Duration,
}

/// How shutdown is paced: from SIGTERM, readiness fails at once, the listener closes after
/// `delay`, and everything is over by `timeout`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShutdownTiming {
    /// Readiness fails this long before the listener closes (`--shutdown-delay`).
    pub delay: Duration,
    /// The whole shutdown, `delay` included, takes at most this long (`--shutdown-timeout`).
    pub timeout: Duration,
}

/// Why the flags' limits cannot work together; the message names the flags and the fix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidLimits {
    /// A count or duration that must be positive is zero.
    #[error("{0} must be above zero")]
    Zero(&'static str),
    /// The request timeout would cut requests whose writes are still within their deadline.
    #[error(
        "--request-timeout ({request}) must be above --write-deadline ({deadline}): a request \
         must be able to answer after its writes' deadline"
    )]
    RequestTimeoutNotAboveWriteDeadline {
        /// `--request-timeout`.
        request: String,
        /// `--write-deadline`.
        deadline: String,
    },
    /// The sender would give up before the gateway answers.
    #[error(
        "--request-timeout ({0}) must be below 10s, Alertmanager's shortest notify timeout, so \
         that the sender hears the 503 and resends"
    )]
    RequestTimeoutNotBelowSender(String),
    /// Shutdown would end before the listener closes.
    #[error("--shutdown-timeout ({timeout}) must be above --shutdown-delay ({delay})")]
    ShutdownTimeoutNotAboveDelay {
        /// `--shutdown-timeout`.
        timeout: String,
        /// `--shutdown-delay`.
        delay: String,
    },
    /// Busy connections could take every slot, leaving none for health checks.
    #[error(
        "--max-concurrent-requests ({concurrent}) must be below --max-connections ({connections}), \
         so that health checks always find a connection"
    )]
    ConcurrencyNotBelowConnections {
        /// `--max-concurrent-requests`.
        concurrent: usize,
        /// `--max-connections`.
        connections: usize,
    },
}

fn show(d: Duration) -> String {
    humantime::format_duration(d).to_string()
}

impl Limits {
    /// The limits the flags set, or the first reason they cannot work together.
    pub fn of(args: &ServeArgs) -> Result<Limits, InvalidLimits> {
        for (flag, zero) in [
            ("--header-read-timeout", args.header_read_timeout.is_zero()),
            ("--max-connections", args.max_connections == 0),
            (
                "--max-concurrent-requests",
                args.max_concurrent_requests == 0,
            ),
            (
                "--ticker-stall-timeout",
                args.ticker_stall_timeout.is_zero(),
            ),
        ] {
            if zero {
                return Err(InvalidLimits::Zero(flag));
            }
        }
        if args.request_timeout <= args.write_deadline {
            return Err(InvalidLimits::RequestTimeoutNotAboveWriteDeadline {
                request: show(args.request_timeout),
                deadline: show(args.write_deadline),
            });
        }
        if args.request_timeout >= SENDER_TIMEOUT {
            return Err(InvalidLimits::RequestTimeoutNotBelowSender(show(
                args.request_timeout,
            )));
        }
        if args.shutdown_timeout <= args.shutdown_delay {
            return Err(InvalidLimits::ShutdownTimeoutNotAboveDelay {
                timeout: show(args.shutdown_timeout),
                delay: show(args.shutdown_delay),
            });
        }
        if args.max_concurrent_requests >= args.max_connections {
            return Err(InvalidLimits::ConcurrencyNotBelowConnections {
                concurrent: args.max_concurrent_requests,
                connections: args.max_connections,
            });
        }
        Ok(Limits {
            request: RequestLimits {
                max_body_bytes: args.max_body_bytes,
                timeout: args.request_timeout,
                max_concurrent: args.max_concurrent_requests,
            },
            connections: ConnectionLimits {
                header_read_timeout: args.header_read_timeout,
                max: args.max_connections,
            },
            shutdown: ShutdownTiming {
                delay: args.shutdown_delay,
                timeout: args.shutdown_timeout,
            },
            ticker_stall: args.ticker_stall_timeout,
        })
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;
    use crate::cli::Cli;

    fn limits(flags: &[&str]) -> Result<Limits, InvalidLimits> {
        let mut argv = vec!["gateway"];
        argv.extend_from_slice(flags);
        Limits::of(&Cli::try_parse_from(argv).unwrap().serve)
    }

    #[test]
    fn the_defaults_work_together_and_are_the_routers_defaults() {
        let l = limits(&[]).unwrap();
        assert_eq!(l.request, RequestLimits::default());
        assert_eq!(l.request.timeout, Duration::from_secs(9));
        assert_eq!(l.connections.header_read_timeout, Duration::from_secs(5));
        assert_eq!(l.shutdown.timeout, Duration::from_secs(25));
    }

    #[test]
    fn the_request_timeout_sits_between_the_write_deadline_and_the_sender() {
        let e = limits(&["--request-timeout", "8s"]).unwrap_err();
        assert_eq!(
            e.to_string(),
            "--request-timeout (8s) must be above --write-deadline (8s): a request must be able to answer after its writes' deadline"
        );
        let e = limits(&["--request-timeout", "10s"]).unwrap_err();
        assert!(e.to_string().contains("must be below 10s"), "{e}");
        limits(&["--request-timeout", "3s", "--write-deadline", "2s"]).unwrap();
    }

    #[test]
    fn shutdown_ends_after_the_delay() {
        let e = limits(&["--shutdown-timeout", "5s"]).unwrap_err();
        assert_eq!(
            e.to_string(),
            "--shutdown-timeout (5s) must be above --shutdown-delay (5s)"
        );
    }

    #[test]
    fn zero_limits_and_concurrency_at_the_connection_limit_are_refused() {
        assert_eq!(
            limits(&["--max-connections", "0"]).unwrap_err(),
            InvalidLimits::Zero("--max-connections")
        );
        assert!(matches!(
            limits(&["--max-connections", "256"]).unwrap_err(),
            InvalidLimits::ConcurrencyNotBelowConnections { .. }
        ));
    }
}
