//! Routing and the REST verbs: what the API server answers, with its status codes, reasons and
//! messages.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use futures::StreamExt;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Bytes, Frame, Incoming};
use hyper::{Method, Request, Response, StatusCode};
use serde_json::{Value, json};
use tokio::sync::broadcast;

use super::reviews::{self, Review};
use super::schema::Cause;
use super::selector::{FieldSelector, LabelSelector};
use super::store::{Change, ChangeKind, Notice, Store};
use super::{Resource, Shared, lock, now_rfc3339, url_params, validation};

/// Response bodies: whole JSON documents, or a watch stream.
pub(crate) type Body = UnsyncBoxBody<Bytes, Infallible>;

/// The real API's request size limit.
const MAX_BODY: usize = 3 * 1024 * 1024;
/// A watch without `timeoutSeconds` ends after this (the real server picks 30–60 minutes).
const DEFAULT_WATCH_TIMEOUT: Duration = Duration::from_secs(1800);

/// Where a request goes.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Route {
    Root,
    Version,
    Health,
    ApiVersions,
    CoreResources,
    GroupList,
    Group,
    GroupResources,
    Resource(Target),
    /// `POST /apis/{authentication,authorization}.k8s.io/v1/{tokenreviews,subjectaccessreviews}`.
    Review(Review),
    NotFound,
}

/// A resource request's target.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Target {
    pub(crate) resource: Resource,
    pub(crate) namespace: Option<String>,
    pub(crate) name: Option<String>,
    pub(crate) subresource: Option<String>,
}

fn route(path: &str) -> Route {
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let group = Resource::RemediationRequests.group();
    let version = Resource::RemediationRequests.version();
    match segments.as_slice() {
        [] => Route::Root,
        ["version"] => Route::Version,
        ["healthz" | "livez" | "readyz"] => Route::Health,
        ["api"] => Route::ApiVersions,
        ["api", "v1"] => Route::CoreResources,
        ["api", "v1", rest @ ..] => resource_route(&[Resource::ConfigMaps], rest),
        ["apis"] => Route::GroupList,
        ["apis", g] if *g == group => Route::Group,
        ["apis", g, v] if *g == group && *v == version => Route::GroupResources,
        ["apis", g, v, rest @ ..] if *g == group && *v == version => {
            resource_route(&[Resource::RemediationRequests], rest)
        }
        ["apis", g, v, plural] => {
            Review::from_path(g, v, plural).map_or(Route::NotFound, Route::Review)
        }
        _ => Route::NotFound,
    }
}

fn resource_route(resources: &[Resource], rest: &[&str]) -> Route {
    let find = |plural: &str| resources.iter().copied().find(|r| r.plural() == plural);
    let target = |plural: &str, ns: Option<&str>, name: Option<&str>, sub: Option<&str>| {
        let resource = find(plural)?;
        if sub.is_some_and(|s| s != "status" || !resource.has_status()) {
            return None;
        }
        Some(Route::Resource(Target {
            resource,
            namespace: ns.map(str::to_owned),
            name: name.map(str::to_owned),
            subresource: sub.map(str::to_owned),
        }))
    };
    let found = match rest {
        [plural] => target(plural, None, None, None),
        ["namespaces", ns, plural] => target(plural, Some(ns), None, None),
        ["namespaces", ns, plural, name] => target(plural, Some(ns), Some(name), None),
        ["namespaces", ns, plural, name, sub] => target(plural, Some(ns), Some(name), Some(sub)),
        _ => None,
    };
    found.unwrap_or(Route::NotFound)
}

/// A request, parsed: route, RBAC verb, query parameters.
#[derive(Debug)]
pub(crate) struct Call {
    pub(crate) method: Method,
    pub(crate) path: String,
    pub(crate) query: String,
    pub(crate) params: Vec<(String, String)>,
    pub(crate) route: Route,
    pub(crate) verb: &'static str,
    pub(crate) content_type: String,
    /// The request's number in the server's log (set once it is recorded).
    pub(crate) seq: u64,
}

impl Call {
    pub(crate) fn new<B>(request: &Request<B>) -> Call {
        let method = request.method().clone();
        let path = request.uri().path().to_owned();
        let query = request.uri().query().unwrap_or_default().to_owned();
        let params = url_params(&query);
        let route = route(&path);
        let watching = params
            .iter()
            .any(|(k, v)| k == "watch" && (v == "true" || v == "1"));
        let verb = match &route {
            Route::Review(_) => match method {
                Method::POST => "create",
                _ => "",
            },
            Route::Resource(t) => match method {
                Method::GET | Method::HEAD => match (&t.name, watching) {
                    (_, true) => "watch",
                    (Some(_), false) => "get",
                    (None, false) => "list",
                },
                Method::POST => "create",
                Method::PUT => "update",
                Method::PATCH => "patch",
                Method::DELETE if t.name.is_some() => "delete",
                Method::DELETE => "deletecollection",
                _ => "",
            },
            _ => match method {
                Method::GET | Method::HEAD => "get",
                Method::POST => "post",
                Method::PUT => "put",
                Method::PATCH => "patch",
                Method::DELETE => "delete",
                Method::OPTIONS => "options",
                _ => "",
            },
        };
        let content_type = request
            .headers()
            .get(hyper::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        Call {
            method,
            path,
            query,
            params,
            route,
            verb,
            content_type,
            seq: 0,
        }
    }

    fn target(&self) -> Option<&Target> {
        match &self.route {
            Route::Resource(t) => Some(t),
            _ => None,
        }
    }

    pub(crate) fn group(&self) -> &str {
        match &self.route {
            Route::Review(review) => review.group(),
            _ => self.target().map_or("", |t| t.resource.group()),
        }
    }

    pub(crate) fn resource_name(&self) -> &str {
        match &self.route {
            Route::Review(review) => review.plural(),
            _ => self.target().map_or("", |t| t.resource.plural()),
        }
    }

    pub(crate) fn subresource(&self) -> Option<&str> {
        self.target().and_then(|t| t.subresource.as_deref())
    }

    pub(crate) fn namespace(&self) -> Option<&str> {
        self.target().and_then(|t| t.namespace.as_deref())
    }

    pub(crate) fn name(&self) -> Option<&str> {
        self.target().and_then(|t| t.name.as_deref())
    }

    fn param(&self, key: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    fn flag(&self, key: &str) -> bool {
        matches!(self.param(key), Some("true" | "1"))
    }

    fn dry_run(&self) -> bool {
        self.param("dryRun") == Some("All")
    }

    /// The media type without parameters, lowercased.
    fn media_type(&self) -> String {
        self.content_type
            .split(';')
            .next()
            .unwrap_or_default()
            .trim()
            .to_ascii_lowercase()
    }
}

/// A failed request: rendered as a `Status` with the matching HTTP code.
#[derive(Debug, Clone)]
pub(crate) struct ApiError {
    code: u16,
    reason: &'static str,
    message: String,
    details: Option<Value>,
    retry_after: Option<u64>,
}

/// The reason the API server gives for an HTTP code.
fn reason_for(code: u16) -> &'static str {
    match code {
        400 => "BadRequest",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "NotFound",
        405 => "MethodNotAllowed",
        406 => "NotAcceptable",
        409 => "Conflict",
        410 => "Expired",
        413 => "RequestEntityTooLarge",
        415 => "UnsupportedMediaType",
        422 => "Invalid",
        429 => "TooManyRequests",
        500 => "InternalError",
        503 => "ServiceUnavailable",
        504 => "Timeout",
        _ => "",
    }
}

fn resource_details(resource: Resource, name: &str) -> Value {
    json!({"name": name, "group": resource.group(), "kind": resource.plural()})
}

impl ApiError {
    fn new(code: u16, message: impl Into<String>) -> ApiError {
        ApiError {
            code,
            reason: reason_for(code),
            message: message.into(),
            details: None,
            retry_after: None,
        }
    }

    fn with_details(mut self, details: Value) -> ApiError {
        self.details = Some(details);
        self
    }

    fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(400, message)
    }

    fn not_found(resource: Resource, name: &str) -> ApiError {
        ApiError::new(
            404,
            format!("{} \"{name}\" not found", resource.qualified()),
        )
        .with_details(resource_details(resource, name))
    }

    fn already_exists(resource: Resource, name: &str) -> ApiError {
        ApiError::new(
            409,
            format!("{} \"{name}\" already exists", resource.qualified()),
        )
        .with_details(resource_details(resource, name))
        .with_reason("AlreadyExists")
    }

    fn conflict(resource: Resource, name: &str, why: &str) -> ApiError {
        ApiError::new(
            409,
            format!(
                "Operation cannot be fulfilled on {} \"{name}\": {why}",
                resource.qualified()
            ),
        )
        .with_details(resource_details(resource, name))
    }

    fn stale(resource: Resource, name: &str) -> ApiError {
        ApiError::conflict(
            resource,
            name,
            "the object has been modified; please apply your changes to the latest version and \
             try again",
        )
    }

    fn invalid(resource: Resource, name: &str, causes: &[Cause]) -> ApiError {
        let listed: Vec<String> = causes
            .iter()
            .map(|c| format!("{}: {}", c.field, c.message))
            .collect();
        let summary = match listed.as_slice() {
            [one] => one.clone(),
            many => format!("[{}]", many.join(", ")),
        };
        ApiError::new(
            422,
            format!(
                "{} \"{name}\" is invalid: {summary}",
                resource.qualified_kind()
            ),
        )
        .with_details(json!({
            "name": name,
            "group": resource.group(),
            "kind": resource.kind(),
            "causes": causes
                .iter()
                .map(|c| json!({"reason": c.reason, "message": c.message, "field": c.field}))
                .collect::<Vec<_>>(),
        }))
    }

    fn method_not_allowed() -> ApiError {
        ApiError::new(
            405,
            "the server does not allow this method on the requested resource",
        )
    }

    fn unsupported_media_type(accepted: &[&str]) -> ApiError {
        ApiError::new(
            415,
            format!(
                "the body of the request was in an unknown format - accepted media types \
                 include: {}",
                accepted.join(", ")
            ),
        )
    }

    fn with_reason(mut self, reason: &'static str) -> ApiError {
        self.reason = reason;
        self
    }

    /// The `Status` document.
    fn status(&self) -> Value {
        let mut status = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "code": self.code,
        });
        if !self.reason.is_empty() {
            status["reason"] = json!(self.reason);
        }
        if let Some(details) = &self.details {
            status["details"] = details.clone();
        }
        status
    }

    fn response(&self) -> Response<Body> {
        let mut headers = Vec::new();
        if let Some(secs) = self.retry_after {
            headers.push(("retry-after", secs.to_string()));
        }
        json_response(self.code, &self.status(), &headers)
    }
}

/// The answer to a faulted request.
pub(crate) fn fault_response(code: u16, retry_after: Option<u64>) -> Response<Body> {
    let cause = "injected fault";
    let mut error = match code {
        429 => ApiError::new(429, "Too many requests, please try again later.")
            .with_details(json!({"retryAfterSeconds": retry_after.unwrap_or(1)})),
        500 => ApiError::new(500, format!("Internal error occurred: {cause}"))
            .with_details(json!({"causes": [{"message": cause}]})),
        503 => ApiError::new(
            503,
            format!("the server is currently unable to handle the request ({cause})"),
        ),
        504 => ApiError::new(
            504,
            format!(
                "The server was unable to return a response in the time allotted, but may \
                 still be processing the request ({cause})"
            ),
        ),
        other => ApiError::new(other, format!("{cause} ({other})")),
    };
    if code == 429 {
        error.retry_after = Some(retry_after.unwrap_or(1));
    }
    error.response()
}

fn full(bytes: Vec<u8>) -> Body {
    Full::new(Bytes::from(bytes)).boxed_unsync()
}

fn json_response(code: u16, body: &Value, headers: &[(&str, String)]) -> Response<Body> {
    let status = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut builder = Response::builder()
        .status(status)
        .header(hyper::header::CONTENT_TYPE, "application/json");
    for (name, value) in headers {
        builder = builder.header(*name, value.as_str());
    }
    let bytes = serde_json::to_vec(body).unwrap_or_default();
    builder
        .body(full(bytes))
        .unwrap_or_else(|_| Response::new(full(b"{}".to_vec())))
}

/// A successful answer.
struct Reply {
    code: u16,
    body: Value,
    warnings: Vec<String>,
}

impl Reply {
    fn new(code: u16, body: Value) -> Reply {
        Reply {
            code,
            body,
            warnings: Vec::new(),
        }
    }

    fn warn(mut self, warnings: Vec<String>) -> Reply {
        self.warnings = warnings;
        self
    }

    fn response(self) -> Response<Body> {
        let headers: Vec<(&str, String)> = self
            .warnings
            .iter()
            .map(|w| {
                let ascii: String = w
                    .chars()
                    .map(|c| {
                        if c.is_ascii_graphic() || c == ' ' {
                            c
                        } else {
                            '?'
                        }
                    })
                    .collect();
                (
                    "warning",
                    format!("299 - \"{}\"", ascii.replace('"', "\\\"")),
                )
            })
            .collect();
        json_response(self.code, &self.body, &headers)
    }
}

type Outcome = Result<Reply, ApiError>;

/// Answers a request the fault switchboard let through.
pub(crate) async fn dispatch(
    shared: &Arc<Shared>,
    call: Call,
    request: Request<Incoming>,
) -> Response<Body> {
    let target = match &call.route {
        Route::Resource(t) => t.clone(),
        Route::Review(review) => return create_review(shared, *review, &call, request).await,
        Route::NotFound => {
            return ApiError::new(404, "the server could not find the requested resource")
                .with_details(json!({}))
                .response();
        }
        other => {
            if call.method != Method::GET && call.method != Method::HEAD {
                return ApiError::method_not_allowed().response();
            }
            return discovery(shared, other);
        }
    };
    let allowed = match (&target.namespace, &target.name, &target.subresource) {
        (_, Some(_), Some(_)) => ["get", "update", "patch"].contains(&call.verb),
        (_, Some(_), None) => ["get", "watch", "update", "patch", "delete"].contains(&call.verb),
        (Some(_), None, _) => ["list", "watch", "create", "deletecollection"].contains(&call.verb),
        (None, None, _) => ["list", "watch"].contains(&call.verb),
    };
    if !allowed {
        return ApiError::method_not_allowed().response();
    }
    if call.verb == "watch" {
        return watch(shared, &target, &call);
    }
    let body = match request.into_body().collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(e) => return ApiError::bad_request(format!("reading the body: {e}")).response(),
    };
    if body.len() > MAX_BODY {
        return ApiError::new(413, "Request entity too large: limit is 3145728").response();
    }
    let outcome = match call.verb {
        "get" => get(shared, &target),
        "list" => list(shared, &target, &call),
        "create" => create(shared, &target, &call, &body),
        "update" => update(shared, &target, &call, &body),
        "patch" => patch(shared, &target, &call, &body),
        "delete" => delete(shared, &target, &call, &body),
        "deletecollection" => delete_collection(shared, &target, &call),
        _ => Err(ApiError::method_not_allowed()),
    };
    match outcome {
        Ok(reply) => reply.response(),
        Err(error) => error.response(),
    }
}

/// A TokenReview or SubjectAccessReview: create only, nothing stored; the request body is kept
/// in the request log ([`super::Recorded::body`]).
async fn create_review(
    shared: &Shared,
    review: Review,
    call: &Call,
    request: Request<Incoming>,
) -> Response<Body> {
    if call.verb != "create" {
        return ApiError::method_not_allowed().response();
    }
    let body = match request.into_body().collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(e) => return ApiError::bad_request(format!("reading the body: {e}")).response(),
    };
    if body.len() > MAX_BODY {
        return ApiError::new(413, "Request entity too large: limit is 3145728").response();
    }
    let object = match parse_object(call, &body) {
        Ok(object) => object,
        Err(error) => return error.response(),
    };
    shared.update(call.seq, |r| r.body = Some(object.clone()));
    let answer = reviews::answer(&lock(&shared.reviews), review, object);
    match answer {
        Ok(object) => Reply::new(201, object).response(),
        Err((code, message)) => ApiError::new(code, message).response(),
    }
}

fn discovery(shared: &Shared, route: &Route) -> Response<Body> {
    let crd = Resource::RemediationRequests;
    let group_version = json!({"groupVersion": crd.api_version(), "version": crd.version()});
    let group = json!({
        "name": crd.group(),
        "versions": [group_version],
        "preferredVersion": group_version,
    });
    let names = &shared.crd_names;
    let body = match route {
        Route::Root => json!({"paths": [
            "/api", "/api/v1", "/apis", format!("/apis/{}", crd.group()),
            format!("/apis/{}", crd.api_version()), "/healthz", "/livez", "/readyz", "/version"
        ]}),
        Route::Version => json!({
            "major": "1", "minor": "33", "gitVersion": "v1.33.0-kubernaut-emulator",
            "gitCommit": "0000000000000000000000000000000000000000", "gitTreeState": "clean",
            "buildDate": "2025-01-01T00:00:00Z", "goVersion": "go1.24.0", "compiler": "gc",
            "platform": "linux/amd64"
        }),
        Route::Health => {
            return Response::builder()
                .status(StatusCode::OK)
                .header(hyper::header::CONTENT_TYPE, "text/plain; charset=utf-8")
                .body(full(b"ok".to_vec()))
                .unwrap_or_else(|_| Response::new(full(b"ok".to_vec())));
        }
        Route::ApiVersions => json!({
            "kind": "APIVersions",
            "versions": ["v1"],
            "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": shared.address}],
        }),
        Route::CoreResources => json!({
            "kind": "APIResourceList",
            "groupVersion": "v1",
            "resources": [{
                "name": "configmaps",
                "singularName": "configmap",
                "namespaced": true,
                "kind": "ConfigMap",
                "verbs": ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"],
                "shortNames": ["cm"],
            }],
        }),
        Route::GroupList => json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": [group]}),
        Route::Group => {
            let mut group = group;
            group["kind"] = json!("APIGroup");
            group["apiVersion"] = json!("v1");
            group
        }
        Route::GroupResources => json!({
            "kind": "APIResourceList",
            "apiVersion": "v1",
            "groupVersion": crd.api_version(),
            "resources": [
                {
                    "name": crd.plural(),
                    "singularName": names.singular,
                    "namespaced": true,
                    "kind": crd.kind(),
                    "verbs": ["delete", "deletecollection", "get", "list", "patch", "create", "update", "watch"],
                    "shortNames": names.short_names,
                },
                {
                    "name": format!("{}/status", crd.plural()),
                    "singularName": "",
                    "namespaced": true,
                    "kind": crd.kind(),
                    "verbs": ["get", "patch", "update"],
                },
            ],
        }),
        Route::Resource(_) | Route::Review(_) | Route::NotFound => {
            return ApiError::new(404, "the server could not find the requested resource")
                .response();
        }
    };
    json_response(200, &body, &[])
}

fn meta_str<'a>(object: &'a Value, field: &str) -> &'a str {
    object["metadata"][field].as_str().unwrap_or_default()
}

fn name_of(target: &Target) -> &str {
    target.name.as_deref().unwrap_or_default()
}

fn namespace_of(target: &Target) -> &str {
    target.namespace.as_deref().unwrap_or_default()
}

fn get(shared: &Shared, target: &Target) -> Outcome {
    let store = shared.store();
    store
        .get(target.resource, namespace_of(target), name_of(target))
        .map(|o| Reply::new(200, o.clone()))
        .ok_or_else(|| ApiError::not_found(target.resource, name_of(target)))
}

/// Label and field selectors of a list, watch or deletecollection (400 when they do not parse).
struct Selection {
    labels: LabelSelector,
    fields: FieldSelector,
    namespace: Option<String>,
    name: Option<String>,
}

impl Selection {
    fn new(target: &Target, call: &Call) -> Result<Selection, ApiError> {
        Ok(Selection {
            labels: LabelSelector::parse(call.param("labelSelector").unwrap_or_default())
                .map_err(ApiError::bad_request)?,
            fields: FieldSelector::parse(call.param("fieldSelector").unwrap_or_default())
                .map_err(ApiError::bad_request)?,
            namespace: target.namespace.clone(),
            name: target.name.clone(),
        })
    }

    fn matches(&self, object: &Value) -> bool {
        self.namespace
            .as_deref()
            .is_none_or(|ns| meta_str(object, "namespace") == ns)
            && self
                .name
                .as_deref()
                .is_none_or(|n| meta_str(object, "name") == n)
            && self.labels.matches(object)
            && self.fields.matches(object)
    }
}

/// A list item as the real API returns it: built-in types' items carry no kind/apiVersion.
fn list_item(resource: Resource, object: &Value) -> Value {
    let mut item = object.clone();
    if resource.group().is_empty()
        && let Value::Object(map) = &mut item
    {
        map.remove("kind");
        map.remove("apiVersion");
    }
    item
}

fn list_document(shared: &Shared, resource: Resource, rv: u64, items: Vec<Value>) -> Value {
    json!({
        "kind": shared.list_kind(resource),
        "apiVersion": resource.api_version(),
        "metadata": {"resourceVersion": rv.to_string()},
        "items": items,
    })
}

fn list(shared: &Shared, target: &Target, call: &Call) -> Outcome {
    let selection = Selection::new(target, call)?;
    let store = shared.store();
    let items = store
        .list(target.resource, target.namespace.as_deref())
        .filter(|o| selection.matches(o))
        .map(|o| list_item(target.resource, o))
        .collect();
    Ok(Reply::new(
        200,
        list_document(shared, target.resource, store.rv(), items),
    ))
}

/// Parses a JSON (or YAML) request body into an object.
fn parse_object(call: &Call, body: &[u8]) -> Result<Value, ApiError> {
    let media = call.media_type();
    let value: Value = match media.as_str() {
        "" | "application/json" | "*/*" => serde_json::from_slice(body)
            .map_err(|e| ApiError::bad_request(format!("error decoding the body: {e}")))?,
        "application/yaml" => serde_norway::from_slice(body)
            .map_err(|e| ApiError::bad_request(format!("error decoding YAML: {e}")))?,
        _ => {
            return Err(ApiError::unsupported_media_type(&[
                "application/json",
                "application/yaml",
            ]));
        }
    };
    if !value.is_object() {
        return Err(ApiError::bad_request(format!(
            "Object 'Kind' is missing in '{}'",
            String::from_utf8_lossy(body)
        )));
    }
    Ok(value)
}

/// `kind` and `apiVersion` must be the resource's.
fn check_type(resource: Resource, object: &Value) -> Result<(), ApiError> {
    let body = || object.to_string();
    let kind = object["kind"].as_str().unwrap_or_default();
    let api_version = object["apiVersion"].as_str().unwrap_or_default();
    if kind.is_empty() {
        return Err(ApiError::bad_request(format!(
            "Object 'Kind' is missing in '{}'",
            body()
        )));
    }
    if api_version.is_empty() {
        return Err(ApiError::bad_request(format!(
            "Object 'apiVersion' is missing in '{}'",
            body()
        )));
    }
    if api_version != resource.api_version() {
        return Err(ApiError::bad_request(format!(
            "the API version in the data ({api_version}) does not match the expected API version ({})",
            resource.api_version()
        )));
    }
    if kind != resource.kind() {
        return Err(ApiError::bad_request(format!(
            "{kind} in version \"{}\" cannot be handled as a {}: the kind in the data does not \
             match the resource",
            resource.version(),
            resource.kind()
        )));
    }
    Ok(())
}

const METADATA_FIELDS: &[&str] = &[
    "name",
    "generateName",
    "namespace",
    "selfLink",
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "labels",
    "annotations",
    "ownerReferences",
    "finalizers",
    "managedFields",
];

fn string_map(value: &Value, what: &str) -> Result<(), ApiError> {
    match value {
        Value::Null => Ok(()),
        Value::Object(map) => match map.iter().find(|(_, v)| !v.is_string()) {
            Some((k, v)) => Err(ApiError::bad_request(format!(
                "json: cannot unmarshal {} into Go struct field {what} of type string (key {k:?})",
                super::schema::type_name_of(v)
            ))),
            None => Ok(()),
        },
        other => Err(ApiError::bad_request(format!(
            "json: cannot unmarshal {} into Go struct field {what} of type map[string]string",
            super::schema::type_name_of(other)
        ))),
    }
}

fn field_invalid(field: String, value: &str, why: &str) -> Cause {
    Cause {
        reason: "FieldValueInvalid",
        message: format!("Invalid value: {value:?}: {why}"),
        field,
    }
}

/// Decoding and validation shared by create, update and patch: prunes what the API would drop,
/// applies defaults, and collects every violation. Returns the warnings (pruned fields).
fn admit(shared: &Shared, resource: Resource, object: &mut Value) -> Result<Vec<String>, ApiError> {
    let mut warnings = Vec::new();
    let mut causes = Vec::new();
    // metadata
    if !object["metadata"].is_object() {
        return Err(ApiError::bad_request("metadata must be an object"));
    }
    if let Some(meta) = object["metadata"].as_object_mut() {
        let unknown: Vec<String> = meta
            .keys()
            .filter(|k| !METADATA_FIELDS.contains(&k.as_str()))
            .cloned()
            .collect();
        for key in unknown {
            meta.remove(&key);
            warnings.push(format!("metadata.{key}"));
        }
        meta.retain(|_, v| !v.is_null());
    }
    string_map(&object["metadata"]["labels"], "ObjectMeta.metadata.labels")?;
    string_map(
        &object["metadata"]["annotations"],
        "ObjectMeta.metadata.annotations",
    )?;
    if let Some(labels) = object["metadata"]["labels"].as_object() {
        for (k, v) in labels {
            if let Err(e) = validation::label_key(k) {
                causes.push(field_invalid("metadata.labels".to_owned(), k, &e));
            }
            let v = v.as_str().unwrap_or_default();
            if let Err(e) = validation::label_value(v) {
                causes.push(field_invalid("metadata.labels".to_owned(), v, &e));
            }
        }
    }
    if let Some(annotations) = object["metadata"]["annotations"].as_object() {
        for k in annotations.keys() {
            if let Err(e) = validation::label_key(k) {
                causes.push(field_invalid("metadata.annotations".to_owned(), k, &e));
            }
        }
    }
    // the body
    match resource {
        Resource::RemediationRequests => {
            warnings.extend(shared.crd_schema.normalize(object));
            causes.extend(shared.crd_schema.validate(object));
        }
        Resource::ConfigMaps => {
            if let Value::Object(map) = object {
                let unknown: Vec<String> = map
                    .keys()
                    .filter(|k| {
                        ![
                            "apiVersion",
                            "kind",
                            "metadata",
                            "data",
                            "binaryData",
                            "immutable",
                        ]
                        .contains(&k.as_str())
                    })
                    .cloned()
                    .collect();
                for key in unknown {
                    map.remove(&key);
                    warnings.push(key);
                }
                map.retain(|_, v| !v.is_null());
            }
            string_map(&object["data"], "ConfigMap.data")?;
            string_map(&object["binaryData"], "ConfigMap.binaryData")?;
            if !object["immutable"].is_null() && !object["immutable"].is_boolean() {
                return Err(ApiError::bad_request(
                    "json: cannot unmarshal into Go struct field ConfigMap.immutable of type bool",
                ));
            }
            for field in ["data", "binaryData"] {
                if let Some(map) = object[field].as_object() {
                    for key in map.keys() {
                        if let Err(e) = validation::config_map_key(key) {
                            causes.push(field_invalid(format!("{field}[{key}]"), key, &e));
                        }
                        if field == "binaryData" && object["data"].get(key).is_some() {
                            causes.push(field_invalid(
                                format!("binaryData[{key}]"),
                                key,
                                "duplicate of key present in data",
                            ));
                        }
                    }
                }
            }
        }
    }
    if causes.is_empty() {
        Ok(warnings
            .into_iter()
            .map(|f| format!("unknown field \"{f}\""))
            .collect())
    } else {
        Err(ApiError::invalid(
            resource,
            meta_str(object, "name"),
            &causes,
        ))
    }
}

/// Fills in what the server owns on a new object: uid, creation time, generation.
pub(crate) fn set_server_metadata(resource: Resource, store: &mut Store, object: &mut Value) {
    let serial = store.serial();
    let meta = &mut object["metadata"];
    meta["uid"] = json!(format!("00000000-0000-4000-8000-{serial:012x}"));
    meta["creationTimestamp"] = json!(now_rfc3339());
    if resource.has_generation() {
        meta["generation"] = json!(1);
    }
    if let Some(meta) = meta.as_object_mut() {
        for field in [
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "managedFields",
            "selfLink",
            "resourceVersion",
        ] {
            meta.remove(field);
        }
        if !resource.has_generation() {
            meta.remove("generation");
        }
    }
}

/// Carries the server's metadata of `old` over to its replacement; bumps the generation when
/// the spec changed.
pub(crate) fn keep_server_metadata(resource: Resource, old: &Value, new: &mut Value) {
    for field in [
        "uid",
        "creationTimestamp",
        "deletionTimestamp",
        "generateName",
    ] {
        match old["metadata"].get(field) {
            Some(v) => new["metadata"][field] = v.clone(),
            None => {
                if let Some(meta) = new["metadata"].as_object_mut() {
                    meta.remove(field);
                }
            }
        }
    }
    if let Some(meta) = new["metadata"].as_object_mut() {
        meta.remove("managedFields");
        meta.remove("selfLink");
        if !resource.has_generation() {
            meta.remove("generation");
        }
    }
    if resource.has_generation() {
        let generation = old["metadata"]["generation"].as_i64().unwrap_or(1);
        let bumped = if old.get("spec") == new.get("spec") {
            generation
        } else {
            generation + 1
        };
        new["metadata"]["generation"] = json!(bumped);
    }
}

const NAME_CHARS: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";

fn create(shared: &Shared, target: &Target, call: &Call, body: &[u8]) -> Outcome {
    let resource = target.resource;
    let namespace = namespace_of(target);
    if lock(&shared.missing_namespaces).contains(namespace) {
        return Err(
            ApiError::new(404, format!("namespaces \"{namespace}\" not found"))
                .with_details(json!({"name": namespace, "kind": "namespaces"})),
        );
    }
    let mut object = parse_object(call, body)?;
    check_type(resource, &object)?;
    if object["metadata"].is_null() {
        object["metadata"] = json!({});
    }
    if !object["metadata"].is_object() {
        return Err(ApiError::bad_request("metadata must be an object"));
    }
    let body_namespace = meta_str(&object, "namespace");
    if !body_namespace.is_empty() && body_namespace != namespace {
        return Err(ApiError::bad_request(
            "the namespace of the provided object does not match the namespace sent on the request",
        ));
    }
    object["metadata"]["namespace"] = json!(namespace);
    if resource.has_status()
        && let Value::Object(map) = &mut object
    {
        map.remove("status");
    }
    let mut store = shared.store();
    if meta_str(&object, "name").is_empty() {
        let prefix = meta_str(&object, "generateName").to_owned();
        if prefix.is_empty() {
            return Err(ApiError::invalid(
                resource,
                "",
                &[Cause {
                    reason: "FieldValueRequired",
                    message: "Required value: name or generateName is required".to_owned(),
                    field: "metadata.name".to_owned(),
                }],
            ));
        }
        let name = loop {
            let mut rng = super::faults::SplitMix64(store.serial());
            let suffix: String = (0..5)
                .map(|_| {
                    let i = usize::try_from(rng.next_u64() % NAME_CHARS.len() as u64).unwrap_or(0);
                    char::from(NAME_CHARS[i])
                })
                .collect();
            let name = format!("{prefix}{suffix}");
            if store.get(resource, namespace, &name).is_none() {
                break name;
            }
        };
        object["metadata"]["name"] = json!(name);
    }
    let name = meta_str(&object, "name").to_owned();
    let warnings = match (
        validation::dns_subdomain(&name),
        admit(shared, resource, &mut object),
    ) {
        (Ok(()), Ok(warnings)) => warnings,
        (name_error, admitted) => {
            let mut causes = Vec::new();
            if let Err(e) = name_error {
                causes.push(field_invalid("metadata.name".to_owned(), &name, &e));
            }
            if let Err(e) = admitted {
                if e.code != 422 {
                    return Err(e);
                }
                causes.extend(e.causes());
            }
            return Err(ApiError::invalid(resource, &name, &causes));
        }
    };
    if !meta_str(&object, "resourceVersion").is_empty() {
        return Err(ApiError::new(
            500,
            "resourceVersion should not be set on objects to be created",
        ));
    }
    if store.get(resource, namespace, &name).is_some() {
        return Err(ApiError::already_exists(resource, &name));
    }
    set_server_metadata(resource, &mut store, &mut object);
    if call.dry_run() {
        return Ok(Reply::new(201, object).warn(warnings));
    }
    let stored = store.write(resource, object);
    Ok(Reply::new(201, stored).warn(warnings))
}

impl ApiError {
    /// The causes of an `Invalid` error.
    fn causes(&self) -> Vec<Cause> {
        self.details
            .as_ref()
            .and_then(|d| d["causes"].as_array())
            .map(|causes| {
                causes
                    .iter()
                    .map(|c| Cause {
                        reason: match c["reason"].as_str().unwrap_or_default() {
                            "FieldValueRequired" => "FieldValueRequired",
                            "FieldValueNotSupported" => "FieldValueNotSupported",
                            "FieldValueTypeInvalid" => "FieldValueTypeInvalid",
                            "FieldValueForbidden" => "FieldValueForbidden",
                            _ => "FieldValueInvalid",
                        },
                        message: c["message"].as_str().unwrap_or_default().to_owned(),
                        field: c["field"].as_str().unwrap_or_default().to_owned(),
                    })
                    .collect()
            })
            .unwrap_or_default()
    }
}

fn check_identity(target: &Target, object: &Value) -> Result<(), ApiError> {
    let body_name = meta_str(object, "name");
    if body_name != name_of(target) {
        return Err(ApiError::bad_request(format!(
            "the name of the object ({body_name}) does not match the name on the URL ({})",
            name_of(target)
        )));
    }
    let body_namespace = meta_str(object, "namespace");
    if !body_namespace.is_empty() && body_namespace != namespace_of(target) {
        return Err(ApiError::bad_request(
            "the namespace of the provided object does not match the namespace sent on the request",
        ));
    }
    Ok(())
}

fn check_uid(resource: Resource, name: &str, object: &Value, old: &Value) -> Result<(), ApiError> {
    let uid = meta_str(object, "uid");
    let old_uid = meta_str(old, "uid");
    if !uid.is_empty() && uid != old_uid {
        return Err(ApiError::conflict(
            resource,
            name,
            &format!(
                "Precondition failed: UID in precondition: {uid}, UID in object meta: {old_uid}"
            ),
        ));
    }
    Ok(())
}

/// The new state of an object written through the resource or its status subresource.
fn merge_subresource(target: &Target, old: &Value, incoming: Value) -> Value {
    let take_status = target.subresource.as_deref() == Some("status");
    let (mut base, source) = if take_status {
        (old.clone(), incoming)
    } else {
        (incoming, old.clone())
    };
    if target.resource.has_status()
        && let Value::Object(map) = &mut base
    {
        match source.get("status") {
            Some(status) if !status.is_null() => {
                map.insert("status".to_owned(), status.clone());
            }
            _ => {
                map.remove("status");
            }
        }
    }
    base
}

fn update(shared: &Shared, target: &Target, call: &Call, body: &[u8]) -> Outcome {
    let resource = target.resource;
    let name = name_of(target);
    let mut object = parse_object(call, body)?;
    check_type(resource, &object)?;
    check_identity(target, &object)?;
    object["metadata"]["namespace"] = json!(namespace_of(target));
    let mut store = shared.store();
    let old = store
        .get(resource, namespace_of(target), name)
        .cloned()
        .ok_or_else(|| ApiError::not_found(resource, name))?;
    let rv = meta_str(&object, "resourceVersion");
    if rv.is_empty() {
        if !resource.unconditional_update() {
            return Err(ApiError::invalid(
                resource,
                name,
                &[Cause {
                    reason: "FieldValueInvalid",
                    message: "Invalid value: 0x0: must be specified for an update".to_owned(),
                    field: "metadata.resourceVersion".to_owned(),
                }],
            ));
        }
    } else if rv != meta_str(&old, "resourceVersion") {
        return Err(ApiError::stale(resource, name));
    }
    check_uid(resource, name, &object, &old)?;
    let new = merge_subresource(target, &old, object);
    finish_update(shared, &mut store, target, call, &old, new)
}

/// Validates and writes the new state of an existing object (update and patch).
fn finish_update(
    shared: &Shared,
    store: &mut Store,
    target: &Target,
    call: &Call,
    old: &Value,
    mut new: Value,
) -> Outcome {
    let resource = target.resource;
    let name = name_of(target);
    let warnings = admit(shared, resource, &mut new)?;
    keep_server_metadata(resource, old, &mut new);
    new["metadata"]["resourceVersion"] = old["metadata"]["resourceVersion"].clone();
    if old["immutable"] == json!(true)
        && (old.get("data") != new.get("data")
            || old.get("binaryData") != new.get("binaryData")
            || new["immutable"] != json!(true))
    {
        return Err(ApiError::invalid(
            resource,
            name,
            &[Cause {
                reason: "FieldValueForbidden",
                message: "Forbidden: field is immutable when `immutable` is set".to_owned(),
                field: "data".to_owned(),
            }],
        ));
    }
    if &new == old || call.dry_run() {
        // A no-op write keeps the resource version and emits no event.
        return Ok(Reply::new(200, new).warn(warnings));
    }
    let stored = store.write(resource, new);
    Ok(Reply::new(200, stored).warn(warnings))
}

fn patch(shared: &Shared, target: &Target, call: &Call, body: &[u8]) -> Outcome {
    let resource = target.resource;
    let name = name_of(target);
    let mut accepted = vec![
        "application/json-patch+json",
        "application/merge-patch+json",
        "application/apply-patch+yaml",
    ];
    if resource.group().is_empty() {
        accepted.push("application/strategic-merge-patch+json");
    }
    #[derive(PartialEq)]
    enum Kind {
        Merge,
        Json,
    }
    let kind = match call.media_type().as_str() {
        "application/merge-patch+json" => Kind::Merge,
        "application/json-patch+json" => Kind::Json,
        "application/strategic-merge-patch+json" if resource.group().is_empty() => Kind::Merge,
        // Server-side apply is not emulated.
        _ => return Err(ApiError::unsupported_media_type(&accepted)),
    };
    let patch: Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("error decoding patch: {e}")))?;
    let mut store = shared.store();
    let old = store
        .get(resource, namespace_of(target), name)
        .cloned()
        .ok_or_else(|| ApiError::not_found(resource, name))?;
    let mut doc = old.clone();
    match kind {
        Kind::Merge => {
            if !patch.is_object() {
                return Err(ApiError::bad_request(
                    "error decoding patch: a merge patch must be a JSON object",
                ));
            }
            json_patch::merge(&mut doc, &patch);
        }
        Kind::Json => {
            let operations: json_patch::Patch = serde_json::from_value(patch)
                .map_err(|e| ApiError::bad_request(format!("error decoding patch: {e}")))?;
            json_patch::patch(&mut doc, &operations).map_err(|e| {
                ApiError::new(
                    422,
                    "the server rejected our request due to an error in our request",
                )
                .with_details(json!({
                    "name": name,
                    "group": resource.group(),
                    "kind": resource.plural(),
                    "causes": [{"reason": "UnexpectedServerResponse", "message": e.to_string()}],
                }))
            })?;
        }
    }
    if !doc.is_object() || !doc["metadata"].is_object() {
        return Err(ApiError::bad_request(
            "the patched object is not an object with metadata",
        ));
    }
    check_type(resource, &doc)?;
    check_identity(target, &doc)?;
    let rv = meta_str(&doc, "resourceVersion");
    if !rv.is_empty() && rv != meta_str(&old, "resourceVersion") {
        return Err(ApiError::stale(resource, name));
    }
    check_uid(resource, name, &doc, &old)?;
    doc["metadata"]["namespace"] = json!(namespace_of(target));
    let new = merge_subresource(target, &old, doc);
    finish_update(shared, &mut store, target, call, &old, new)
}

fn delete(shared: &Shared, target: &Target, call: &Call, body: &[u8]) -> Outcome {
    let resource = target.resource;
    let name = name_of(target);
    let options: Value = if body.iter().all(u8::is_ascii_whitespace) {
        json!({})
    } else {
        serde_json::from_slice(body)
            .map_err(|e| ApiError::bad_request(format!("error decoding DeleteOptions: {e}")))?
    };
    let dry_run = call.dry_run()
        || options["dryRun"]
            .as_array()
            .is_some_and(|d| d.iter().any(|v| v == "All"));
    let mut store = shared.store();
    let old = store
        .get(resource, namespace_of(target), name)
        .cloned()
        .ok_or_else(|| ApiError::not_found(resource, name))?;
    let preconditions = &options["preconditions"];
    for (field, label) in [("uid", "UID"), ("resourceVersion", "ResourceVersion")] {
        if let Some(expected) = preconditions[field].as_str() {
            let actual = meta_str(&old, field);
            if expected != actual {
                return Err(ApiError::conflict(
                    resource,
                    name,
                    &format!(
                        "Precondition failed: {label} in precondition: {expected}, {label} in \
                         object meta: {actual}"
                    ),
                ));
            }
        }
    }
    if !dry_run {
        store.remove(resource, namespace_of(target), name);
    }
    Ok(Reply::new(
        200,
        json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Success",
            "details": {
                "name": name,
                "group": resource.group(),
                "kind": resource.plural(),
                "uid": meta_str(&old, "uid"),
            },
        }),
    ))
}

fn delete_collection(shared: &Shared, target: &Target, call: &Call) -> Outcome {
    let selection = Selection::new(target, call)?;
    let mut store = shared.store();
    let doomed: Vec<(String, String)> = store
        .list(target.resource, target.namespace.as_deref())
        .filter(|o| selection.matches(o))
        .map(|o| {
            (
                meta_str(o, "namespace").to_owned(),
                meta_str(o, "name").to_owned(),
            )
        })
        .collect();
    let mut deleted = Vec::new();
    for (namespace, name) in doomed {
        if call.dry_run() {
            deleted.extend(store.get(target.resource, &namespace, &name).cloned());
        } else {
            deleted.extend(store.remove(target.resource, &namespace, &name));
        }
    }
    let items = deleted
        .iter()
        .map(|o| list_item(target.resource, o))
        .collect();
    Ok(Reply::new(
        200,
        list_document(shared, target.resource, store.rv(), items),
    ))
}

// ---------------------------------------------------------------------------------------------
// Watch

fn event_line(kind: &str, object: &Value) -> Bytes {
    let mut line = serde_json::to_vec(&json!({"type": kind, "object": object})).unwrap_or_default();
    line.push(b'\n');
    Bytes::from(line)
}

fn bookmark(resource: Resource, rv: u64, initial_end: bool) -> Bytes {
    let mut metadata = json!({"resourceVersion": rv.to_string()});
    if initial_end {
        metadata["annotations"] = json!({"k8s.io/initial-events-end": "true"});
    }
    event_line(
        "BOOKMARK",
        &json!({"kind": resource.kind(), "apiVersion": resource.api_version(), "metadata": metadata}),
    )
}

fn expired(requested: u64, oldest: u64) -> Bytes {
    let error = ApiError::new(
        410,
        format!("too old resource version: {requested} ({oldest})"),
    );
    event_line("ERROR", &error.status())
}

struct WatchFilter {
    resource: Resource,
    selection: Selection,
}

impl WatchFilter {
    /// The event a watcher with this filter sees for a change, if any.
    fn render(&self, change: &Change) -> Option<Bytes> {
        if change.resource != self.resource {
            return None;
        }
        let now = self.selection.matches(&change.object);
        let kind = match change.kind {
            ChangeKind::Added => now.then_some("ADDED"),
            ChangeKind::Deleted => now.then_some("DELETED"),
            ChangeKind::Modified => {
                let before = change
                    .old
                    .as_ref()
                    .is_some_and(|o| self.selection.matches(o));
                match (before, now) {
                    (true, true) => Some("MODIFIED"),
                    (false, true) => Some("ADDED"),
                    (true, false) => Some("DELETED"),
                    (false, false) => None,
                }
            }
        }?;
        Some(event_line(kind, &change.object))
    }
}

/// Counts an open watch for as long as its stream lives.
struct WatchGuard(Arc<Shared>);

impl WatchGuard {
    fn new(shared: &Arc<Shared>) -> WatchGuard {
        shared.open_watches.fetch_add(1, Ordering::SeqCst);
        WatchGuard(shared.clone())
    }
}

impl Drop for WatchGuard {
    fn drop(&mut self) {
        self.0.open_watches.fetch_sub(1, Ordering::SeqCst);
    }
}

struct WatchState {
    pending: VecDeque<Bytes>,
    notices: Option<broadcast::Receiver<Notice>>,
    timeout: Pin<Box<tokio::time::Sleep>>,
    filter: WatchFilter,
    bookmarks: bool,
    rv: u64,
    done: bool,
    _guard: WatchGuard,
}

fn watch(shared: &Arc<Shared>, target: &Target, call: &Call) -> Response<Body> {
    let resource = target.resource;
    let selection = match Selection::new(target, call) {
        Ok(s) => s,
        Err(e) => return e.response(),
    };
    let timeout = match call.param("timeoutSeconds") {
        None | Some("") => DEFAULT_WATCH_TIMEOUT,
        Some(s) => match s.parse::<u64>() {
            // 0 means "the server's default", as in the real API.
            Ok(0) => DEFAULT_WATCH_TIMEOUT,
            Ok(secs) => Duration::from_secs(secs),
            Err(_) => {
                return ApiError::bad_request(format!("invalid timeoutSeconds: {s:?}")).response();
            }
        },
    };
    let from = match call.param("resourceVersion") {
        None | Some("" | "0") => None,
        Some(s) => match s.parse::<u64>() {
            Ok(rv) => Some(rv),
            Err(_) => {
                return ApiError::bad_request(format!("invalid resource version: {s:?}"))
                    .response();
            }
        },
    };
    let send_initial = call.flag("sendInitialEvents");
    let filter = WatchFilter {
        resource,
        selection,
    };
    let mut pending = VecDeque::new();
    let (notices, rv) = {
        let store = shared.store();
        let synthetic = from.is_none() || send_initial;
        let start = if synthetic {
            store.rv()
        } else {
            from.unwrap_or_default()
        };
        match store.watch_from(start) {
            Ok((replay, notices)) => {
                if synthetic {
                    for object in store
                        .list(resource, target.namespace.as_deref())
                        .filter(|o| filter.selection.matches(o))
                    {
                        pending.push_back(event_line("ADDED", object));
                    }
                    if send_initial {
                        pending.push_back(bookmark(resource, store.rv(), true));
                    }
                }
                pending.extend(replay.iter().filter_map(|c| filter.render(c)));
                (Some(notices), store.rv())
            }
            Err(e) => {
                pending.push_back(expired(e.requested, e.oldest));
                (None, store.rv())
            }
        }
    };
    let state = WatchState {
        done: notices.is_none(),
        pending,
        notices,
        timeout: Box::pin(tokio::time::sleep(timeout)),
        filter,
        bookmarks: call.flag("allowWatchBookmarks"),
        rv,
        _guard: WatchGuard::new(shared),
    };
    let stream = futures::stream::unfold(state, next_event)
        .map(|line| Ok::<_, Infallible>(Frame::data(line)));
    Response::builder()
        .status(StatusCode::OK)
        .header(hyper::header::CONTENT_TYPE, "application/json")
        .body(StreamBody::new(stream).boxed_unsync())
        .unwrap_or_else(|_| Response::new(full(Vec::new())))
}

async fn next_event(mut state: WatchState) -> Option<(Bytes, WatchState)> {
    loop {
        if let Some(line) = state.pending.pop_front() {
            return Some((line, state));
        }
        if state.done {
            return None;
        }
        let notices = state.notices.as_mut()?;
        tokio::select! {
            () = state.timeout.as_mut() => {
                state.done = true;
                if state.bookmarks {
                    let line = bookmark(state.filter.resource, state.rv, false);
                    state.pending.push_back(line);
                }
            }
            notice = notices.recv() => match notice {
                Ok(Notice::Change(change)) => {
                    state.rv = state.rv.max(change.rv);
                    if let Some(line) = state.filter.render(&change) {
                        state.pending.push_back(line);
                    }
                }
                Ok(Notice::Close) | Err(broadcast::error::RecvError::Closed) => state.done = true,
                Err(broadcast::error::RecvError::Lagged(_)) => {
                    // Too slow a reader: the real server drops it too; the client re-lists.
                    state.done = true;
                    state.pending.push_back(expired(state.rv, state.rv + 1));
                }
            },
        }
    }
}
