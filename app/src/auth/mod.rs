//! Authentication of the signal and admin endpoints (`--auth`): the [`Auth`] the router holds
//! and the middleware that asks it, per route, about one [`Action`].
//!
//! Per request: a peer blocked by the [`FailureLimiter`] is refused 429 without a look at its
//! token; then the `Authorization: Bearer …` header is read (missing or malformed: 401), the
//! authenticator asked (one SHA-256 and a constant-time comparison with `--auth token`), and its
//! verdict carried out: the request goes on in a span naming the subject, or is refused with a
//! problem that says nothing beyond its status (401 with `WWW-Authenticate`, 403, 503 with
//! `Retry-After`). Every refusal is counted in `gateway_auth_failures_total{reason}` and logged
//! with the peer and reason, never the token. The 401s (missing, malformed, invalid) count
//! towards the peer's burst; a 403 (a known caller) and a 503 (our failure) do not.
//!
//! With `--auth none` no authenticator is asked and every request goes on.

mod failures;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use gateway_adapter_file_config::WatchHandle;
use gateway_ports::{Action, Authenticator, Denial, Verdict};
use tokio::time::Instant;
use tracing::Instrument;

pub use failures::{FailureLimiter, FailureLimits, PeerKey};

use crate::connections::Peer;
use crate::http::Problem;
use crate::metrics::Metrics;

/// The `WWW-Authenticate` challenge of a 401.
pub const CHALLENGE: &str = "Bearer realm=\"kubernaut-gateway\"";

/// `Retry-After` of a 503 when the authority (the API server) could not be asked.
const RETRY_UNAVAILABLE: u64 = 5;

/// How requests are authenticated; cheap to clone (clones share everything).
#[derive(Debug, Clone)]
pub struct Auth {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    /// `None`: `--auth none`.
    authenticator: Option<Arc<dyn Authenticator>>,
    failures: Mutex<FailureLimiter>,
    metrics: Metrics,
    /// Watchers of the authenticator's files, stopped with the last clone.
    watching: Mutex<Vec<WatchHandle>>,
}

impl Auth {
    /// `--auth none`: every request goes on. Sets `gateway_auth_mode{mode="none"}`.
    pub fn none(metrics: &Metrics) -> Auth {
        Self::build(None, FailureLimits::default(), metrics)
    }

    /// Asks `authenticator`, limiting failures per peer by `limits`. Sets
    /// `gateway_auth_mode{mode}` to the authenticator's mode.
    pub fn new(
        authenticator: Arc<dyn Authenticator>,
        limits: FailureLimits,
        metrics: &Metrics,
    ) -> Auth {
        Self::build(Some(authenticator), limits, metrics)
    }

    fn build(
        authenticator: Option<Arc<dyn Authenticator>>,
        limits: FailureLimits,
        metrics: &Metrics,
    ) -> Auth {
        let auth = Auth {
            inner: Arc::new(Inner {
                authenticator,
                failures: Mutex::new(FailureLimiter::new(limits)),
                metrics: metrics.clone(),
                watching: Mutex::new(Vec::new()),
            }),
        };
        metrics.auth_mode(auth.mode());
        auth
    }

    /// The mode's name: `token`, `tokenreview` or `none`.
    pub fn mode(&self) -> &'static str {
        self.inner
            .authenticator
            .as_ref()
            .map_or("none", |a| a.mode())
    }

    /// Keeps `handle` (a watcher of the authenticator's files) running as long as this `Auth`.
    pub fn keep(&self, handle: WatchHandle) {
        if let Ok(mut watching) = self.inner.watching.lock() {
            watching.push(handle);
        }
    }

    /// The middleware's state for routes doing `action`.
    pub(crate) fn guard(&self, action: Action) -> Guard {
        Guard {
            auth: self.clone(),
            action,
        }
    }

    fn blocked(&self, peer: PeerKey, now: Instant) -> Option<Duration> {
        self.inner
            .failures
            .lock()
            .map_or(None, |f| f.blocked(peer, now))
    }

    fn failed(&self, peer: PeerKey, now: Instant) -> bool {
        self.inner
            .failures
            .lock()
            .is_ok_and(|mut f| f.failed(peer, now))
    }
}

/// The state of [`authorize`]: whom to ask, about what.
#[derive(Debug, Clone)]
pub(crate) struct Guard {
    auth: Auth,
    action: Action,
}

/// The bearer token of `headers`: exactly one `Authorization` header, scheme `Bearer` (any
/// case), one or more spaces, an RFC 6750 `b64token`.
fn bearer(headers: &HeaderMap) -> Result<&str, Denial> {
    let mut values = headers.get_all(header::AUTHORIZATION).iter();
    let value = values.next().ok_or(Denial::Missing)?;
    if values.next().is_some() {
        return Err(Denial::Malformed);
    }
    let value = value.to_str().map_err(|_| Denial::Malformed)?;
    let (scheme, token) = value.split_once(' ').ok_or(Denial::Malformed)?;
    let token = token.trim_matches(' ');
    if !scheme.eq_ignore_ascii_case("bearer") || !is_b64token(token) {
        return Err(Denial::Malformed);
    }
    Ok(token)
}

fn is_b64token(token: &str) -> bool {
    let body = token.trim_end_matches('=');
    !body.is_empty()
        && body.bytes().all(|b| {
            b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'+' | b'/')
        })
}

/// The answer to a refused request: its status's generic problem, nothing more.
fn refusal(denial: Denial, retry_after: Option<Duration>) -> Response {
    let (status, kind, title, detail) = match denial {
        Denial::Missing | Denial::Malformed | Denial::Invalid => (
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "Unauthorized",
            "this endpoint needs a valid bearer token",
        ),
        Denial::Forbidden => (
            StatusCode::FORBIDDEN,
            "forbidden",
            "Forbidden",
            "this token may not do this",
        ),
        Denial::RateLimited => (
            StatusCode::TOO_MANY_REQUESTS,
            "too-many-failures",
            "Too many requests",
            "too many failed attempts from this address; try again later",
        ),
        Denial::Unavailable => (
            StatusCode::SERVICE_UNAVAILABLE,
            "auth-unavailable",
            "Service unavailable",
            "authentication is unavailable now; send the request again",
        ),
    };
    let mut problem = Problem::new(status, kind, title, detail);
    problem.retry_after = match denial {
        Denial::RateLimited => retry_after.map(|wait| wait.as_secs_f64().ceil().max(1.0) as u64),
        Denial::Unavailable => Some(RETRY_UNAVAILABLE),
        _ => None,
    };
    let mut response = problem.into_response();
    if status == StatusCode::UNAUTHORIZED {
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static(CHALLENGE),
        );
    }
    response
}

/// Shows a peer in logs.
struct ShownPeer(Option<SocketAddr>);

impl std::fmt::Display for ShownPeer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            Some(addr) => write!(f, "{addr}"),
            None => f.write_str("unknown"),
        }
    }
}

/// The middleware: lets the request through to the route only when the authenticator allows
/// the guard's action (see the [module documentation](self)).
pub(crate) async fn authorize(
    State(guard): State<Guard>,
    request: Request,
    next: Next,
) -> Response {
    let auth = &guard.auth;
    let Some(authenticator) = auth.inner.authenticator.clone() else {
        return next.run(request).await;
    };
    let addr = request.extensions().get::<Peer>().map(|p| p.0);
    let peer = PeerKey::of(addr.map(|a| a.ip()));
    let shown = ShownPeer(addr);
    if let Some(wait) = auth.blocked(peer, Instant::now()) {
        tracing::debug!(peer = %shown, action = ?guard.action, reason = Denial::RateLimited.as_str(), "request refused");
        auth.inner.metrics.auth_failure(Denial::RateLimited);
        return refusal(Denial::RateLimited, Some(wait));
    }
    let verdict = match bearer(request.headers()) {
        Ok(token) => authenticator.authenticate(token, guard.action).await,
        Err(denial) => Verdict::Denied(denial),
    };
    match verdict {
        Verdict::Allowed { subject } => {
            // At debug level the request's log lines name the caller; below it the span costs
            // nothing (an INFO span on every request cost a few percent of throughput).
            let span = tracing::debug_span!("authenticated", %subject);
            next.run(request).instrument(span).await
        }
        Verdict::Denied(denial) => {
            auth.inner.metrics.auth_failure(denial);
            let counted = matches!(
                denial,
                Denial::Missing | Denial::Malformed | Denial::Invalid
            );
            if denial == Denial::Unavailable {
                tracing::warn!(peer = %shown, action = ?guard.action, mode = authenticator.mode(), "request refused: the authority could not be asked");
            } else {
                tracing::info!(peer = %shown, action = ?guard.action, reason = denial.as_str(), "request refused");
            }
            if counted && auth.failed(peer, Instant::now()) {
                tracing::warn!(peer = %shown, "too many authentication failures: this peer is refused (429) for --auth-failure-window");
            }
            refusal(denial, None)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(values: &[&str]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for v in values {
            map.append(header::AUTHORIZATION, HeaderValue::from_str(v).unwrap());
        }
        map
    }

    #[test]
    fn bearer_tokens_are_read_strictly() {
        assert_eq!(bearer(&headers(&[])), Err(Denial::Missing));
        assert_eq!(bearer(&headers(&["Bearer abc="])), Ok("abc="));
        assert_eq!(bearer(&headers(&["bearer  abc"])), Ok("abc"));
        for bad in [
            "Bearer",
            "Bearer ",
            "Basic YWxhZGRpbjpvcGVuc2VzYW1l",
            "Bearer a b",
            "Bearer a:b",
            "Bearer =abc",
            "Bearerabc",
        ] {
            assert_eq!(bearer(&headers(&[bad])), Err(Denial::Malformed), "{bad}");
        }
        assert_eq!(
            bearer(&headers(&["Bearer abc", "Bearer abc"])),
            Err(Denial::Malformed),
            "two headers"
        );
        let mut map = HeaderMap::new();
        map.insert(
            header::AUTHORIZATION,
            HeaderValue::from_bytes(b"Bearer \xff").unwrap(),
        );
        assert_eq!(bearer(&map), Err(Denial::Malformed));
    }

    #[test]
    fn refusals_say_nothing_beyond_their_status() {
        let cases = [
            (Denial::Missing, 401),
            (Denial::Malformed, 401),
            (Denial::Invalid, 401),
            (Denial::Forbidden, 403),
            (Denial::RateLimited, 429),
            (Denial::Unavailable, 503),
        ];
        for (denial, status) in cases {
            let r = refusal(denial, Some(Duration::from_millis(2500)));
            assert_eq!(r.status().as_u16(), status);
            assert_eq!(
                r.headers().get(header::WWW_AUTHENTICATE).is_some(),
                status == 401
            );
            let retry = r
                .headers()
                .get(header::RETRY_AFTER)
                .map(|v| v.to_str().unwrap().to_owned());
            match status {
                429 => assert_eq!(retry.as_deref(), Some("3")),
                503 => assert_eq!(retry.as_deref(), Some("5")),
                _ => assert_eq!(retry, None),
            }
        }
        let missing = refusal(Denial::Missing, None);
        let invalid = refusal(Denial::Invalid, None);
        assert_eq!(missing.headers(), invalid.headers(), "401s are alike");
    }

    #[test]
    fn none_mode_and_the_gauge() {
        let metrics = Metrics::new();
        let auth = Auth::none(&metrics);
        assert_eq!(auth.mode(), "none");
        let text = metrics.render();
        assert!(
            text.contains("gateway_auth_mode{mode=\"none\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("gateway_auth_mode{mode=\"token\"} 0"),
            "{text}"
        );
        assert!(
            text.contains("gateway_auth_failures_total{reason=\"rate_limited\"} 0"),
            "{text}"
        );
    }
}
