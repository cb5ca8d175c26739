//! What the router enforces per request, beyond the body limit: a request timeout on every
//! route, and load shedding on the signal endpoints. Both answer `503` with `Retry-After`, the
//! answer that makes Alertmanager send again.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tokio::sync::Semaphore;

use super::{DEFAULT_MAX_BODY_BYTES, Problem};
use crate::gateway::Gateway;
use crate::metrics::Shed;

/// What the router enforces per request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestLimits {
    /// Largest body accepted (larger: `413`).
    pub max_body_bytes: usize,
    /// A request not answered this long after its headers arrived — reading a slow body
    /// included — is answered `503` with `Retry-After` and its connection closed.
    pub timeout: Duration,
    /// Requests to the signal endpoints in flight at once, at most; beyond it `503` at once.
    pub max_concurrent: usize,
}

impl Default for RequestLimits {
    /// The flags' defaults (a test in `crate::limits` holds them equal).
    fn default() -> Self {
        RequestLimits {
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            timeout: Duration::from_secs(9),
            max_concurrent: 256,
        }
    }
}

/// `Retry-After` of a request refused for load: the sender comes back in a second.
const RETRY_SOON: u64 = 1;

fn overloaded(kind: &'static str, title: &'static str, detail: String) -> Response {
    let mut p = Problem::new(StatusCode::SERVICE_UNAVAILABLE, kind, title, detail);
    p.retry_after = Some(RETRY_SOON);
    p.into_response()
}

/// The state of [`timeout`].
#[derive(Debug, Clone)]
pub(super) struct Timeout {
    pub(super) gateway: Arc<Gateway>,
    pub(super) after: Duration,
}

/// Answers `503` when the inner service has not answered within the timeout. The handler's
/// future is dropped: only the waiting stops (a webhook's processing runs on in its own task),
/// and a body half read leaves the connection unusable, hence `Connection: close`.
pub(super) async fn timeout(State(t): State<Timeout>, request: Request, next: Next) -> Response {
    match tokio::time::timeout(t.after, next.run(request)).await {
        Ok(response) => response,
        Err(_) => {
            t.gateway.metrics().http_shed(Shed::Timeout);
            let mut response = overloaded(
                "request-timeout",
                "Request timed out",
                format!(
                    "the request was not answered within {}; send it again",
                    humantime::format_duration(t.after)
                ),
            );
            response
                .headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
            response
        }
    }
}

/// The state of [`shed`]: one permit per request in flight.
#[derive(Debug, Clone)]
pub(super) struct Shedding {
    pub(super) gateway: Arc<Gateway>,
    pub(super) permits: Arc<Semaphore>,
}

impl Shedding {
    pub(super) fn new(gateway: Arc<Gateway>, max_concurrent: usize) -> Self {
        Shedding {
            gateway,
            permits: Arc::new(Semaphore::new(max_concurrent)),
        }
    }
}

/// Lets a request through while fewer than the limit are in flight; otherwise answers `503`
/// with `Retry-After: 1` at once. No queue: a waiting request would only time out later.
pub(super) async fn shed(State(s): State<Shedding>, request: Request, next: Next) -> Response {
    let Ok(_permit) = s.permits.clone().try_acquire_owned() else {
        s.gateway.metrics().http_shed(Shed::Concurrency);
        return overloaded(
            "overloaded",
            "Overloaded",
            "too many requests in flight; send it again".to_owned(),
        );
    };
    next.run(request).await
}
