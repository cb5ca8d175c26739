//! The HTTP surface: signal ingestion, health, readiness and metrics.
//!
//! Client mistakes are answered 4xx with an RFC 9457 `application/problem+json` body that names
//! the problem; internals never reach the client. A signal that could not be recorded is 503
//! with `Retry-After`, which Alertmanager treats as "send again".

use std::sync::Arc;
use std::time::Instant;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use gateway_ports::settings::{
    RawDedupSettings, RawRetrySettings, RawSecuritySettings, RawStormSettings,
};
use gateway_ports::{Action, ConfigControl, ConfigKind, ConfigStatus, ReloadRecord, ReloadResult};
use gateway_signal::{ECHO_CHARS, PayloadError, truncated};
use serde::Serialize;
use serde_json::json;

use crate::auth::{Auth, authorize};
use crate::gateway::{Gateway, Payload, Refused};
use crate::input_limits::OverLimit;
use crate::metrics::HttpMethod;
use crate::outcome::{AlertOutcome, Outcome, Unrecorded};

mod guard;

pub use guard::RequestLimits;

/// The longest `detail` of a problem, in characters: a backstop, each echoed value being
/// truncated to [`ECHO_CHARS`] where it is written.
const MAX_DETAIL_CHARS: usize = 1024;

/// The default limit on a request body.
pub const DEFAULT_MAX_BODY_BYTES: usize = 1024 * 1024;

/// What the handlers share.
#[derive(Debug, Clone)]
pub struct AppState {
    /// The pipeline.
    pub gateway: Arc<Gateway>,
    /// Reload control of the settings source, when it is reloadable.
    pub control: Option<Arc<dyn ConfigControl>>,
    /// Who may send signals and use the admin endpoints (`--auth`).
    pub auth: Auth,
}

/// An RFC 9457 problem.
#[derive(Debug)]
pub struct Problem {
    status: StatusCode,
    kind: &'static str,
    title: &'static str,
    detail: String,
    pub(crate) retry_after: Option<u64>,
    /// Extension members (RFC 9457 §3.2), such as the JSON path of a payload error.
    extra: serde_json::Map<String, serde_json::Value>,
}

impl Problem {
    pub(crate) fn new(
        status: StatusCode,
        kind: &'static str,
        title: &'static str,
        detail: impl Into<String>,
    ) -> Self {
        Problem {
            status,
            kind,
            title,
            detail: truncated(&detail.into(), MAX_DETAIL_CHARS).into_owned(),
            retry_after: None,
            extra: serde_json::Map::new(),
        }
    }

    /// 500: the gateway failed unexpectedly; the sender resends.
    fn internal() -> Self {
        Problem::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "Internal error",
            "the gateway failed to handle this request; send it again",
        )
    }

    fn invalid_payload(e: &PayloadError) -> Self {
        let mut p = Problem::new(
            StatusCode::BAD_REQUEST,
            "invalid-payload",
            "Invalid payload",
            e.to_string(),
        );
        p.extra.insert("path".to_owned(), json!(e.path));
        p
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let mut body = json!({
            "type": format!("https://kubernaut.io/problems/gateway/{}", self.kind),
            "title": self.title,
            "status": self.status.as_u16(),
            "detail": self.detail,
        });
        if let Some(map) = body.as_object_mut() {
            map.extend(self.extra);
        }
        let mut response = (self.status, Json(body)).into_response();
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        if let Some(secs) = self.retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}

impl From<Refused> for Problem {
    fn from(refused: Refused) -> Self {
        match refused {
            Refused::Invalid(e) => Problem::invalid_payload(&e),
            Refused::Unrecorded { first, outcomes } => {
                let mut problem = Problem::from(first);
                let missing = outcomes
                    .iter()
                    .filter(|o| o.outcome == Outcome::NotRecorded)
                    .count();
                problem.detail = format!(
                    "{missing} of {} signal(s) not recorded ({}); send the request again",
                    outcomes.len(),
                    problem.detail
                );
                problem.extra.insert("outcomes".to_owned(), json!(outcomes));
                problem
            }
            Refused::Panicked => Problem::internal(),
            Refused::OverLimit(e) => {
                let status = match e {
                    OverLimit::Alerts { .. } => StatusCode::PAYLOAD_TOO_LARGE,
                    OverLimit::Labels { .. } | OverLimit::Bytes { .. } => StatusCode::BAD_REQUEST,
                };
                let mut p = Problem::new(status, "over-limit", "Over a limit", e.to_string());
                p.extra.insert("limit".to_owned(), json!(e.flag()));
                p
            }
        }
    }
}

impl From<Unrecorded> for Problem {
    fn from(e: Unrecorded) -> Self {
        let mut p = Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "not-recorded",
            "Signal not recorded",
            format!("{}; send it again", e),
        );
        p.retry_after = Some(e.retry_after.as_secs().max(1));
        p
    }
}

/// The gateway's router, enforcing `limits` (see [`RequestLimits`]): every route answers within
/// the request timeout; the signal endpoints shed load beyond the concurrency limit, while
/// `/healthz`, `/readyz` and `/metrics` are never shed. The signal and admin endpoints need
/// what `state.auth` allows (see [`crate::auth`]); health, readiness and metrics stay open.
pub fn router(state: AppState, limits: &RequestLimits) -> Router {
    let guarded =
        |action: Action| middleware::from_fn_with_state(state.auth.guard(action), authorize);
    let shedding = guard::Shedding::new(state.gateway.clone(), limits.max_concurrent);
    let timeout = guard::Timeout {
        gateway: state.gateway.clone(),
        after: limits.timeout,
    };
    Router::new()
        .route(
            "/api/v1/signals/prometheus",
            post(|State(state), headers, body| {
                signals(state, headers, body, Payload::Alertmanager)
            }),
        )
        .route(
            "/api/v1/signals/kubernetes-event",
            post(|State(state), headers, body| {
                signals(state, headers, body, Payload::KubernetesEvent)
            }),
        )
        // Only the routes above: health checks and scrapes stay unlimited.
        .route_layer(middleware::from_fn_with_state(shedding, guard::shed))
        // Outside the shedding: a refused caller never takes a sender's place.
        .route_layer(guarded(Action::SendSignals))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route(
            "/config",
            get(config).route_layer(guarded(Action::ReadConfig)),
        )
        .route(
            "/-/reload",
            post(reload).route_layer(guarded(Action::Reload)),
        )
        .route(
            "/debug/dead-letters",
            get(dead_letters).route_layer(guarded(Action::ReadConfig)),
        )
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(limits.max_body_bytes))
        .layer(middleware::from_fn_with_state(timeout, guard::timeout))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            observe_request,
        ))
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(panicked))
        .with_state(state)
}

fn panicked(_: Box<dyn std::any::Any + Send + 'static>) -> Response {
    tracing::error!("a request handler panicked");
    Problem::internal().into_response()
}

async fn observe_request(State(state): State<AppState>, request: Request, next: Next) -> Response {
    #[allow(clippy::disallowed_methods)] // a latency metric, not a domain decision
    let started = Instant::now();
    let method = HttpMethod::of(request.method());
    // The matched route, not the raw path: unknown paths must not grow the label set.
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let response = next.run(request).await;
    state.gateway.observe_http(
        method,
        &route,
        response.status().as_u16(),
        started.elapsed(),
    );
    response
}

async fn not_found() -> Problem {
    Problem::new(
        StatusCode::NOT_FOUND,
        "not-found",
        "Not found",
        "no such endpoint",
    )
}

async fn method_not_allowed() -> Problem {
    Problem::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method-not-allowed",
        "Method not allowed",
        "this endpoint does not accept that method",
    )
}

/// The JSON body of a 2xx answer.
#[derive(Debug, Serialize)]
pub struct Accepted {
    /// `created` when at least one RemediationRequest was created, else `accepted`.
    pub status: &'static str,
    /// One entry per signal, in the order received.
    pub outcomes: Vec<AlertOutcome>,
}

fn answer(outcomes: Vec<AlertOutcome>) -> Response {
    let created = outcomes.iter().any(|o| o.created);
    let (status, word) = if created {
        (StatusCode::CREATED, "created")
    } else {
        (StatusCode::ACCEPTED, "accepted")
    };
    (
        status,
        Json(Accepted {
            status: word,
            outcomes,
        }),
    )
        .into_response()
}

/// Checks the content type and the body extraction; returns the body.
fn json_body(headers: &HeaderMap, body: Result<Bytes, BytesRejection>) -> Result<Bytes, Problem> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let mime = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    if mime != "application/json" && !(mime.starts_with("application/") && mime.ends_with("+json"))
    {
        return Err(Problem::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported-media-type",
            "Unsupported media type",
            format!(
                "expected Content-Type application/json, got {:?}",
                truncated(content_type, ECHO_CHARS)
            ),
        ));
    }
    body.map_err(|rejection| {
        let status = rejection.status();
        if status == StatusCode::PAYLOAD_TOO_LARGE {
            Problem::new(
                status,
                "payload-too-large",
                "Payload too large",
                "the request body exceeds the gateway's limit",
            )
        } else {
            Problem::new(
                status,
                "unreadable-body",
                "Unreadable body",
                rejection.body_text(),
            )
        }
    })
}

/// A signal endpoint: a JSON body of `payload`'s kind, answered with one outcome per signal.
async fn signals(
    state: AppState,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
    payload: Payload,
) -> Result<Response, Problem> {
    let body = json_body(&headers, body)?;
    Ok(answer(state.gateway.receive(payload, &body).await?))
}

async fn healthz() -> Json<serde_json::Value> {
    Json(json!({ "status": "ok" }))
}

async fn readyz(State(state): State<AppState>) -> Response {
    match state.gateway.readiness().await {
        Ok(()) => (StatusCode::OK, Json(json!({ "status": "ready" }))).into_response(),
        Err(problems) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({ "status": "not ready", "problems": problems })),
        )
            .into_response(),
    }
}

async fn metrics(State(state): State<AppState>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
        )],
        state.gateway.metrics_text(),
    )
        .into_response()
}

fn record_json(record: &ReloadRecord) -> serde_json::Value {
    let (result, errors) = match &record.result {
        ReloadResult::Applied => ("success", Vec::new()),
        ReloadResult::Rejected(errors) => ("error", errors.clone()),
    };
    json!({
        "result": result,
        "errors": errors,
        "hash": record.hash,
        "generation": record.generation,
        "at": record.at.to_rfc3339(),
        "duration_seconds": record.duration.as_secs_f64(),
    })
}

/// The state of every settings type, when the source is reloadable.
fn statuses(state: &AppState) -> Vec<ConfigStatus> {
    state
        .control
        .as_ref()
        .map(|c| c.status())
        .unwrap_or_default()
}

/// `GET /debug/dead-letters`: background writes given up for good, oldest first.
async fn dead_letters(State(state): State<AppState>) -> Json<serde_json::Value> {
    Json(json!({ "dead_letters": state.gateway.dead_letters() }))
}

/// `GET /config`: the settings in force per type, their hash, generation and last reload.
async fn config(State(state): State<AppState>) -> Json<serde_json::Value> {
    let settings = state.gateway.settings();
    let statuses = statuses(&state);
    let mut body = serde_json::Map::new();
    for kind in ConfigKind::ALL {
        let in_force = match kind {
            ConfigKind::Storm => json!(RawStormSettings::from(&*settings.storm)),
            ConfigKind::Dedup => json!(RawDedupSettings::from(&*settings.dedup)),
            ConfigKind::Retry => json!(RawRetrySettings::from(&*settings.retry)),
            ConfigKind::Security => json!(RawSecuritySettings::from(&*settings.security)),
        };
        let status = statuses.iter().find(|s| s.kind == kind);
        body.insert(
            kind.as_str().to_owned(),
            json!({
                "settings": in_force,
                "origin": status.map(|s| s.origin.as_str()),
                "hash": status.map(|s| s.hash.as_str()),
                "generation": state.gateway.generation(kind),
                "last_reload": status.and_then(|s| s.last_reload.as_ref()).map(record_json),
            }),
        );
    }
    Json(serde_json::Value::Object(body))
}

/// `POST /-/reload`: re-reads the settings now; 500 when any type was rejected.
async fn reload(State(state): State<AppState>) -> Result<Response, Problem> {
    let Some(control) = state.control.clone() else {
        return Err(Problem::new(
            StatusCode::NOT_FOUND,
            "not-reloadable",
            "Not reloadable",
            "this gateway's settings do not come from a reloadable source",
        ));
    };
    let records = control.reload_now().await;
    // A type whose content did not change since its last attempt answers with that attempt: a
    // file that is still invalid is still an error.
    let statuses = statuses(&state);
    let mut body = serde_json::Map::new();
    let mut failed = false;
    for kind in ConfigKind::ALL {
        let fresh = records.iter().find(|r| r.kind == kind);
        let last = fresh.or_else(|| {
            statuses
                .iter()
                .find(|s| s.kind == kind)
                .and_then(|s| s.last_reload.as_ref())
        });
        failed |= last.is_some_and(|r| matches!(r.result, ReloadResult::Rejected(_)));
        let mut entry = last.map_or_else(|| json!({ "result": "success" }), record_json);
        entry["changed"] = json!(fresh.is_some());
        entry["generation"] = json!(state.gateway.generation(kind));
        body.insert(kind.as_str().to_owned(), entry);
    }
    let status = if failed {
        StatusCode::INTERNAL_SERVER_ERROR
    } else {
        StatusCode::OK
    };
    Ok((status, Json(serde_json::Value::Object(body))).into_response())
}
