//! The authentication metrics: the mode in force, failures by reason, the token files' reloads.

use gateway_adapter_file_config::TokenReload;
use gateway_ports::Denial;
use prometheus::{IntCounterVec, IntGaugeVec, Opts, Registry};

use super::{Metrics, gauge_value, register};

/// Every `--auth` mode, the labels of `gateway_auth_mode`.
pub const AUTH_MODES: [&str; 3] = ["token", "tokenreview", "none"];

/// Which token file, as a label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenFileRole {
    /// `--auth-token-file` (`signal`).
    Signal,
    /// `--admin-token-file` (`admin`).
    Admin,
}

impl TokenFileRole {
    const ALL: [TokenFileRole; 2] = [TokenFileRole::Signal, TokenFileRole::Admin];

    const fn as_str(self) -> &'static str {
        match self {
            TokenFileRole::Signal => "signal",
            TokenFileRole::Admin => "admin",
        }
    }
}

/// The series (a field of [`Metrics`]).
#[derive(Debug, Clone)]
pub(super) struct AuthMetrics {
    mode: IntGaugeVec,
    failures: IntCounterVec,
    token_reloads: IntCounterVec,
    tokens: IntGaugeVec,
}

impl AuthMetrics {
    pub(super) fn new(r: &Registry) -> Self {
        let metrics = AuthMetrics {
            mode: register(
                r,
                IntGaugeVec::new(
                    Opts::new(
                        "gateway_auth_mode",
                        "1 for the --auth mode in force (token, tokenreview, none), 0 for the others",
                    ),
                    &["mode"],
                ),
            ),
            failures: register(
                r,
                IntCounterVec::new(
                    Opts::new(
                        "gateway_auth_failures_total",
                        "Requests refused by authentication, by reason (missing, malformed, \
                         invalid: 401; forbidden: 403; rate_limited: 429; unavailable: 503)",
                    ),
                    &["reason"],
                ),
            ),
            token_reloads: register(
                r,
                IntCounterVec::new(
                    Opts::new(
                        "gateway_auth_token_reloads_total",
                        "Changes of a token file seen, by file and result (error: the tokens in \
                         force stay)",
                    ),
                    &["file", "result"],
                ),
            ),
            tokens: register(
                r,
                IntGaugeVec::new(
                    Opts::new("gateway_auth_tokens", "Tokens in force, by token file"),
                    &["file"],
                ),
            ),
        };
        for mode in AUTH_MODES {
            metrics.mode.with_label_values(&[mode]);
        }
        for denial in Denial::ALL {
            metrics.failures.with_label_values(&[denial.as_str()]);
        }
        for role in TokenFileRole::ALL {
            for result in ["success", "error"] {
                metrics
                    .token_reloads
                    .with_label_values(&[role.as_str(), result]);
            }
        }
        metrics
    }
}

impl Metrics {
    /// `mode` (one of [`AUTH_MODES`]) is in force.
    pub fn auth_mode(&self, mode: &str) {
        for m in AUTH_MODES {
            self.auth
                .mode
                .with_label_values(&[m])
                .set(i64::from(m == mode));
        }
    }

    /// A request was refused.
    pub fn auth_failure(&self, denial: Denial) {
        self.auth
            .failures
            .with_label_values(&[denial.as_str()])
            .inc();
    }

    /// `role`'s token file holds `tokens` tokens in force.
    pub fn auth_tokens(&self, role: TokenFileRole, tokens: usize) {
        self.auth
            .tokens
            .with_label_values(&[role.as_str()])
            .set(gauge_value(tokens));
    }

    /// A change of `role`'s token file was judged.
    pub fn auth_token_reload(&self, role: TokenFileRole, reload: TokenReload) {
        let result = match reload {
            TokenReload::Applied { tokens } => {
                self.auth_tokens(role, tokens);
                "success"
            }
            TokenReload::Rejected => "error",
        };
        self.auth
            .token_reloads
            .with_label_values(&[role.as_str(), result])
            .inc();
    }
}
