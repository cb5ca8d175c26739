//! The [`Authenticator`] port: who a caller is, and whether it may do what it asks.
//!
//! The HTTP layer takes the caller's bearer token from the request and asks an authenticator
//! about one [`Action`]; the answer is a [`Verdict`]. Adapters: bearer tokens from a mounted
//! Secret file (hot-reloaded), and the Kubernetes `TokenReview` + `SubjectAccessReview` APIs.
//! With `--auth none` the app asks no authenticator at all.

use async_trait::async_trait;

/// What a caller asks to do. Each maps to one verb on one virtual resource of the API group
/// [`Action::GROUP`], which is what a `SubjectAccessReview` asks and RBAC grants.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    /// Send signals: the webhook and Kubernetes-event endpoints (`create` `signals`).
    SendSignals,
    /// Read the settings in force and the dead letters: `GET /config`,
    /// `GET /debug/dead-letters` (`get` `config`).
    ReadConfig,
    /// Re-read the settings now: `POST /-/reload` (`update` `config`).
    Reload,
}

impl Action {
    /// The API group of the virtual resources RBAC grants.
    pub const GROUP: &'static str = "gateway.kubernaut.io";
    /// Every action.
    pub const ALL: [Action; 3] = [Action::SendSignals, Action::ReadConfig, Action::Reload];

    /// The RBAC verb.
    pub fn verb(self) -> &'static str {
        match self {
            Action::SendSignals => "create",
            Action::ReadConfig => "get",
            Action::Reload => "update",
        }
    }

    /// The RBAC resource (in [`Action::GROUP`]).
    pub fn resource(self) -> &'static str {
        match self {
            Action::SendSignals => "signals",
            Action::ReadConfig | Action::Reload => "config",
        }
    }

    /// Whether this is an administrative action (settings, not signals).
    pub fn is_admin(self) -> bool {
        !matches!(self, Action::SendSignals)
    }
}

/// Why a caller was refused; the label of `gateway_auth_failures_total{reason}`. Never sent to
/// the caller beyond its status code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Denial {
    /// No `Authorization: Bearer …` header (401).
    Missing,
    /// A header that is not a well-formed bearer token (401).
    Malformed,
    /// A token no authenticator knows, revoked, or expired (401).
    Invalid,
    /// Authenticated, but not allowed this action (403).
    Forbidden,
    /// Too many failures from this peer lately: refused without looking (429).
    RateLimited,
    /// The authority could not be asked (the API server is down, the token file unreadable):
    /// refused, never let through (503).
    Unavailable,
}

impl Denial {
    /// Every denial.
    pub const ALL: [Denial; 6] = [
        Denial::Missing,
        Denial::Malformed,
        Denial::Invalid,
        Denial::Forbidden,
        Denial::RateLimited,
        Denial::Unavailable,
    ];

    /// The metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            Denial::Missing => "missing",
            Denial::Malformed => "malformed",
            Denial::Invalid => "invalid",
            Denial::Forbidden => "forbidden",
            Denial::RateLimited => "rate_limited",
            Denial::Unavailable => "unavailable",
        }
    }
}

/// An authenticator's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Allowed; `subject` names the caller for logs (a token's name or index, a ServiceAccount's
    /// username), never the token.
    Allowed {
        /// Who the caller is.
        subject: String,
    },
    /// Refused.
    Denied(Denial),
}

/// Checks a bearer token for one action.
///
/// Contract:
/// - the token is compared in constant time (no early exit on the first differing byte), and
///   never logged, stored in clear or returned;
/// - an authority that cannot be asked gives `Denied(Unavailable)`, never `Allowed`
///   (fail closed);
/// - a verdict may be cached briefly (a revoked token may work for at most that long), never
///   `Unavailable`.
#[cfg_attr(feature = "mocks", mockall::automock)]
#[async_trait]
pub trait Authenticator: Send + Sync + std::fmt::Debug {
    /// The verdict on `token` (the bearer token, without `Bearer `) for `action`.
    async fn authenticate(&self, token: &str, action: Action) -> Verdict;
    /// The mode's name for logs and `gateway_auth_mode{mode}` (`token`, `tokenreview`).
    fn mode(&self) -> &'static str;
}
