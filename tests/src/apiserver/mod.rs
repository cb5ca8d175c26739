//! A Kubernetes API-server emulator for integration tests: a real HTTP/1.1 server on
//! `127.0.0.1:<random port>` that speaks the Kubernetes REST conventions, so the real kube-rs
//! client (and the gateway binary, through [`ApiServer::write_kubeconfig`]) can talk to it.
//!
//! # What it emulates
//! - Two resources: the `RemediationRequest` custom resource (`remediation.kubernaut.io/v1alpha1`,
//!   namespaced, status subresource), described by the adapter's own CRD object
//!   ([`gateway_adapter_kube::crd::definition`]), and core/v1 `ConfigMap`s.
//! - Discovery: `/version`, `/api`, `/api/v1`, `/apis`, `/apis/{group}`,
//!   `/apis/{group}/{version}`, and `/healthz`, `/livez`, `/readyz`.
//! - `create`, `get`, `list`, `watch`, `update` (PUT), `patch` (JSON merge patch, JSON patch;
//!   strategic merge patch as a merge patch for ConfigMaps, 415 for the custom resource as the
//!   real API answers), `delete`, `deletecollection`; `dryRun=All`.
//! - Server-set metadata: `uid`, `resourceVersion` (one global counter, like etcd's revision),
//!   `creationTimestamp`, `generation` (custom resource: 1, bumped when `.spec` changes);
//!   optimistic concurrency (a stale `resourceVersion` is a 409 `Conflict`); no-op writes keep
//!   the resource version and emit no event, as etcd's guaranteed update does.
//! - The status subresource rules: create drops `.status`, an update of the resource keeps the
//!   stored status, an update of `/status` changes only the status.
//! - The custom resource's structural schema: unknown fields are pruned (with a `Warning`
//!   header), nulls the schema does not allow are dropped, defaults applied, and the result is
//!   validated against the `openAPIV3Schema` (translated to JSON Schema for the `jsonschema`
//!   crate): violations are a 422 `Invalid` Status with Kubernetes-style `details.causes`.
//!   Names, label keys and values, and ConfigMap keys are validated as the API does.
//! - Label selectors (`=`, `==`, `!=`, `in`, `notin`, exists, `!`, `>`, `<`) and field selectors
//!   (`metadata.name`, `metadata.namespace`; `=`, `==`, `!=`).
//! - Watches: newline-delimited JSON events over a chunked response, from a resource version
//!   (replayed from a bounded history; too old: an `ERROR` event with a 410 `Expired` Status),
//!   or from "now" with synthetic `ADDED` events (`resourceVersion` unset or `0`);
//!   `sendInitialEvents` with the `k8s.io/initial-events-end` bookmark; `timeoutSeconds`;
//!   a `BOOKMARK` before a timed-out watch ends when bookmarks are allowed; objects moving in or
//!   out of a selector show up as `ADDED` / `DELETED`.
//! - Every error is a `Status` body with the reason and code the real API uses.
//! - Fault injection ([`Faults`]) by RBAC verb and resource: 429 with `Retry-After`, any status,
//!   a delay, or a dropped connection; deterministic (`fail_next`) or seeded-random (`set_rate`).
//! - A log of every request ([`ApiServer::requests`]) with its RBAC verb, group, resource,
//!   namespace, name, status and fault: what RBAC must allow.
//! - The review APIs, create only: `authentication.k8s.io/v1` `tokenreviews` and
//!   `authorization.k8s.io/v1` `subjectaccessreviews` (201 with the object echoed and a
//!   `status`; 400 without a token, 422 without a user or group or with other than exactly one
//!   of resource / non-resource attributes), answered from the tokens and grants a test sets up
//!   ([`ApiServer::grant_token`], [`ApiServer::revoke_token`], [`ApiServer::allow`],
//!   [`ApiServer::deny`]); their request bodies are logged ([`Recorded::body`]), and faults apply
//!   (`Filter::resource("tokenreviews")`).
//!
//! # What it does not
//! No authentication or authorization of its own clients (every request is allowed; the review
//! APIs answer about tokens, they do not guard the server), no discovery of the review API
//! groups, no RBAC objects (grants are set up by the test), no admission webhooks or
//! validating admission policies, no CEL (`x-kubernetes-validations`), no server-side apply
//! (`application/apply-patch+yaml` is a 415), no `managedFields`, no pagination (`limit` and
//! `continue` are accepted and ignored: every list is complete), no `resourceVersionMatch=Exact`
//! reads of the past (lists are always current), no namespaces as objects (any namespace
//! exists, unless [`ApiServer::remove_namespace`] removed it), no finalizers or graceful deletion (a delete removes at once), no owner references
//! or garbage collection, no protobuf, no compression, no HTTP/2, no table output, no
//! periodic bookmarks (only the one before a timed-out watch ends), no other resources.

mod faults;
mod rest;
mod reviews;
mod schema;
mod selector;
mod store;
mod validation;

pub(crate) use faults::SplitMix64;
pub use faults::{Fault, Faults, Filter};
pub use reviews::API_AUDIENCE;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use gateway_adapter_kube::crd;
use serde_json::{Value, json};
use tokio::net::TcpListener;

/// A resource the emulator serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Resource {
    /// `remediation.kubernaut.io/v1alpha1` `remediationrequests` (namespaced, status subresource).
    RemediationRequests,
    /// core/v1 `configmaps`.
    ConfigMaps,
}

impl Resource {
    /// Both resources.
    pub const ALL: [Resource; 2] = [Resource::RemediationRequests, Resource::ConfigMaps];

    /// API group (`""` for core).
    pub fn group(self) -> &'static str {
        match self {
            Resource::RemediationRequests => crd::GROUP,
            Resource::ConfigMaps => "",
        }
    }

    /// API version within the group.
    pub fn version(self) -> &'static str {
        match self {
            Resource::RemediationRequests => crd::VERSION,
            Resource::ConfigMaps => "v1",
        }
    }

    /// `apiVersion` of its objects.
    pub fn api_version(self) -> String {
        match self.group() {
            "" => self.version().to_owned(),
            group => format!("{group}/{}", self.version()),
        }
    }

    /// Plural (URL segment and RBAC resource).
    pub fn plural(self) -> &'static str {
        match self {
            Resource::RemediationRequests => crd::PLURAL,
            Resource::ConfigMaps => "configmaps",
        }
    }

    /// `kind` of its objects.
    pub fn kind(self) -> &'static str {
        match self {
            Resource::RemediationRequests => "RemediationRequest",
            Resource::ConfigMaps => "ConfigMap",
        }
    }

    /// `configmaps`, `remediationrequests.remediation.kubernaut.io`: how error messages name it.
    pub(crate) fn qualified(self) -> String {
        match self.group() {
            "" => self.plural().to_owned(),
            group => format!("{}.{group}", self.plural()),
        }
    }

    /// `ConfigMap`, `RemediationRequest.remediation.kubernaut.io`: how `Invalid` names it.
    pub(crate) fn qualified_kind(self) -> String {
        match self.group() {
            "" => self.kind().to_owned(),
            group => format!("{}.{group}", self.kind()),
        }
    }

    pub(crate) fn has_status(self) -> bool {
        matches!(self, Resource::RemediationRequests)
    }

    /// Whether an update without `metadata.resourceVersion` is allowed (built-in types: yes;
    /// custom resources: no, 422).
    pub(crate) fn unconditional_update(self) -> bool {
        matches!(self, Resource::ConfigMaps)
    }

    /// Whether `metadata.generation` is kept (custom resources).
    pub(crate) fn has_generation(self) -> bool {
        matches!(self, Resource::RemediationRequests)
    }
}

/// One request the server saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recorded {
    /// `GET`, `POST`, …
    pub method: String,
    /// The URL path.
    pub path: String,
    /// The raw query string (`""` when none).
    pub query: String,
    /// RBAC verb: `create`, `get`, `list`, `watch`, `update`, `patch`, `delete`,
    /// `deletecollection`; for non-resource URLs (discovery, health) the lowercased method
    /// (`get`); `""` for a method the API does not know.
    pub verb: &'static str,
    /// API group (`""` for core and for non-resource URLs).
    pub group: String,
    /// Resource plural (`""` for non-resource URLs).
    pub resource: String,
    /// `status` for the status subresource.
    pub subresource: Option<String>,
    /// Namespace of the request (`None`: cluster-wide or non-resource).
    pub namespace: Option<String>,
    /// Object name (`None`: a collection).
    pub name: Option<String>,
    /// HTTP status answered; 0 when the connection was dropped (or the request is still in
    /// flight).
    pub status: u16,
    /// The fault injected, as [`Fault::label`].
    pub fault: Option<String>,
    /// When the request arrived.
    pub received: std::time::Instant,
    /// When it was answered (`None`: dropped, or still in flight).
    pub answered: Option<std::time::Instant>,
    /// The body, parsed, of a TokenReview or SubjectAccessReview request (`None` for every
    /// other request, and for one faulted before it was read).
    pub body: Option<Value>,
}

impl Recorded {
    /// Whether this was a resource request (not discovery or health).
    pub fn is_resource(&self) -> bool {
        !self.resource.is_empty()
    }

    /// A query parameter's (decoded) value.
    pub fn param(&self, key: &str) -> Option<String> {
        url_params(&self.query)
            .into_iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v)
    }
}

/// Decoded `application/x-www-form-urlencoded` pairs.
pub(crate) fn url_params(query: &str) -> Vec<(String, String)> {
    fn decode(s: &str) -> String {
        let bytes = s.as_bytes();
        let mut out = Vec::with_capacity(bytes.len());
        let mut i = 0;
        while i < bytes.len() {
            match bytes[i] {
                b'+' => out.push(b' '),
                b'%' if i + 2 < bytes.len() => {
                    let hex = |b: u8| char::from(b).to_digit(16);
                    match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                        (Some(high), Some(low)) => {
                            out.push(u8::try_from(high * 16 + low).unwrap_or(b'?'));
                            i += 2;
                        }
                        _ => out.push(b'%'),
                    }
                }
                b => out.push(b),
            }
            i += 1;
        }
        String::from_utf8_lossy(&out).into_owned()
    }
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| match pair.split_once('=') {
            Some((k, v)) => (decode(k), decode(v)),
            None => (decode(pair), String::new()),
        })
        .collect()
}

/// Locks, ignoring poisoning (a panicking test thread must not hide the server's state).
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// What every connection task shares.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) store: Mutex<store::Store>,
    pub(crate) faults: Faults,
    pub(crate) crd_schema: schema::CrdSchema,
    pub(crate) crd_names: CrdNames,
    pub(crate) address: String,
    requests: Mutex<Vec<(u64, Recorded)>>,
    next_request: AtomicU64,
    pub(crate) open_watches: AtomicUsize,
    /// Namespaces that do not exist: a create in one is a 404 (see [`ApiServer::remove_namespace`]).
    pub(crate) missing_namespaces: Mutex<BTreeSet<String>>,
    /// Tokens and grants the review APIs answer from.
    pub(crate) reviews: Mutex<reviews::Authority>,
}

/// Names the CRD declares (for discovery).
#[derive(Debug)]
pub(crate) struct CrdNames {
    pub(crate) singular: String,
    pub(crate) short_names: Vec<String>,
    pub(crate) list_kind: String,
}

impl Shared {
    pub(crate) fn store(&self) -> MutexGuard<'_, store::Store> {
        lock(&self.store)
    }

    fn record(&self, recorded: Recorded) -> u64 {
        let seq = self.next_request.fetch_add(1, Ordering::SeqCst);
        lock(&self.requests).push((seq, recorded));
        seq
    }

    fn update(&self, seq: u64, f: impl FnOnce(&mut Recorded)) {
        let mut requests = lock(&self.requests);
        if let Some((_, r)) = requests.iter_mut().rev().find(|(s, _)| *s == seq) {
            f(r);
        }
    }

    pub(crate) fn list_kind(&self, resource: Resource) -> String {
        match resource {
            Resource::RemediationRequests => self.crd_names.list_kind.clone(),
            Resource::ConfigMaps => "ConfigMapList".to_owned(),
        }
    }
}

/// A running API-server emulator; stops (closing every connection) when dropped.
pub struct ApiServer {
    shared: Arc<Shared>,
    url: String,
    task: tokio::task::JoinHandle<()>,
}

impl std::fmt::Debug for ApiServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiServer")
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

impl Drop for ApiServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl ApiServer {
    /// Starts serving the RemediationRequest CRD and ConfigMaps on a free loopback port.
    pub async fn start() -> ApiServer {
        let definition = crd::definition();
        let version = definition
            .spec
            .versions
            .iter()
            .find(|v| v.name == crd::VERSION)
            .expect("the CRD serves its version");
        let openapi = serde_json::to_value(
            version
                .schema
                .as_ref()
                .and_then(|s| s.open_api_v3_schema.as_ref())
                .expect("the CRD version has an openAPIV3Schema"),
        )
        .expect("a schema serialises");
        let names = &definition.spec.names;
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a loopback port");
        let address = listener.local_addr().expect("bound").to_string();
        let shared = Arc::new(Shared {
            store: Mutex::new(store::Store::new()),
            faults: Faults::default(),
            crd_schema: schema::CrdSchema::new(openapi),
            crd_names: CrdNames {
                singular: names.singular.clone().unwrap_or_default(),
                short_names: names.short_names.clone().unwrap_or_default(),
                list_kind: names
                    .list_kind
                    .clone()
                    .unwrap_or_else(|| format!("{}List", names.kind)),
            },
            address: address.clone(),
            requests: Mutex::new(Vec::new()),
            next_request: AtomicU64::new(0),
            open_watches: AtomicUsize::new(0),
            missing_namespaces: Mutex::new(BTreeSet::new()),
            reviews: Mutex::new(reviews::Authority::default()),
        });
        let task = tokio::spawn(accept_loop(listener, shared.clone()));
        ApiServer {
            shared,
            url: format!("http://{address}"),
            task,
        }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        self.url.clone()
    }

    /// A kube client for this server, without kube's built-in retry (`default_retry = false`).
    pub fn client(&self) -> kube::Client {
        let mut config = kube::Config::new(self.url.parse().expect("a valid URL"));
        config.default_retry = false;
        kube::Client::try_from(config).expect("a client for a plain-HTTP URL")
    }

    /// Writes `dir/kubeconfig` (YAML): one cluster at [`ApiServer::url`], no credentials,
    /// context namespace `default`. For the gateway binary's `--kubeconfig`.
    pub fn write_kubeconfig(&self, dir: &Path) -> PathBuf {
        let config = json!({
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "emulator", "cluster": {"server": self.url}}],
            "users": [{"name": "emulator", "user": {}}],
            "contexts": [{
                "name": "emulator",
                "context": {"cluster": "emulator", "user": "emulator", "namespace": "default"}
            }],
            "current-context": "emulator",
            "preferences": {}
        });
        let path = dir.join("kubeconfig");
        let yaml = serde_norway::to_string(&config).expect("YAML");
        std::fs::write(&path, yaml).expect("kubeconfig written");
        path
    }

    /// From now on `namespace` does not exist: a create in it is answered as the real API
    /// answers one in a missing namespace (404 `NotFound`, `namespaces "NAME" not found`, details
    /// kind `namespaces`) unless a fault comes first. Reads and lists are unaffected.
    pub fn remove_namespace(&self, namespace: &str) {
        lock(&self.shared.missing_namespaces).insert(namespace.to_owned());
    }

    /// From now on `token` authenticates (TokenReview) as `username` in `groups`, with a uid
    /// and an `extra` credential id, for reviews that ask for [`API_AUDIENCE`] (or no audience).
    /// Replaces an earlier grant of the same token.
    pub fn grant_token(&self, token: &str, username: &str, groups: &[&str]) {
        self.grant_token_for(token, username, groups, &[API_AUDIENCE]);
    }

    /// Like [`ApiServer::grant_token`], for a token bound to `audiences`: a review authenticates
    /// it only when it asks for one of them (an empty `spec.audiences` asks for
    /// [`API_AUDIENCE`]), and its `status.audiences` lists those asked for and bound.
    pub fn grant_token_for(
        &self,
        token: &str,
        username: &str,
        groups: &[&str],
        audiences: &[&str],
    ) {
        lock(&self.shared.reviews).grant_token(token, username, groups, audiences);
    }

    /// From now on `token` does not authenticate (a deleted ServiceAccount or Secret).
    pub fn revoke_token(&self, token: &str) {
        lock(&self.shared.reviews).revoke_token(token);
    }

    /// From now on a SubjectAccessReview whose user or one of whose groups is `who`, for `verb`
    /// on `resource` in API `group`, is allowed (in any namespace), like a ClusterRoleBinding.
    pub fn allow(&self, who: &str, verb: &str, group: &str, resource: &str) {
        lock(&self.shared.reviews).allow(who, verb, group, resource);
    }

    /// Takes back what [`ApiServer::allow`] gave `who` (the binding deleted): such a review is
    /// answered `allowed: false`, unless another of the subject's names is allowed.
    pub fn deny(&self, who: &str, verb: &str, group: &str, resource: &str) {
        lock(&self.shared.reviews).deny(who, verb, group, resource);
    }

    /// The fault switchboard.
    pub fn faults(&self) -> &Faults {
        &self.shared.faults
    }

    /// Every request seen since the start (or the last [`ApiServer::clear_requests`]), in
    /// arrival order.
    pub fn requests(&self) -> Vec<Recorded> {
        lock(&self.shared.requests)
            .iter()
            .map(|(_, r)| r.clone())
            .collect()
    }

    /// Forgets the requests seen so far.
    pub fn clear_requests(&self) {
        lock(&self.shared.requests).clear();
    }

    /// A stored object.
    pub fn object(&self, resource: Resource, namespace: &str, name: &str) -> Option<Value> {
        self.shared.store().get(resource, namespace, name).cloned()
    }

    /// Every stored object of a resource, by namespace and name.
    pub fn objects(&self, resource: Resource) -> Vec<Value> {
        self.shared.store().list(resource, None).cloned().collect()
    }

    /// Creates or replaces an object directly, for test setup: no validation, no defaulting,
    /// no fault, not recorded; `kind` and `apiVersion` are filled in, `metadata.namespace` and
    /// `metadata.name` are required; the server's metadata (uid, creation time, generation) is
    /// kept for a replaced object and set for a new one; the resource version is bumped and
    /// watches see the change. Returns the stored object.
    pub fn put_object(&self, resource: Resource, object: Value) -> Value {
        let mut store = self.shared.store();
        let mut object = object;
        object["kind"] = json!(resource.kind());
        object["apiVersion"] = json!(resource.api_version());
        let namespace = object["metadata"]["namespace"]
            .as_str()
            .expect("put_object: metadata.namespace")
            .to_owned();
        let name = object["metadata"]["name"]
            .as_str()
            .expect("put_object: metadata.name")
            .to_owned();
        match store.get(resource, &namespace, &name).cloned() {
            Some(old) => rest::keep_server_metadata(resource, &old, &mut object),
            None => rest::set_server_metadata(resource, &mut store, &mut object),
        }
        store.write(resource, object)
    }

    /// Deletes an object directly (watches see it); nothing happens when it does not exist.
    pub fn delete_object(&self, resource: Resource, namespace: &str, name: &str) {
        self.shared.store().remove(resource, namespace, name);
    }

    /// The latest resource version (the global revision).
    pub fn resource_version(&self) -> u64 {
        self.shared.store().rv()
    }

    /// Ends every open watch stream (clean end of the chunked response), as an API server
    /// restart or a load balancer would; clients resume from their last resource version.
    pub fn end_watches(&self) {
        self.shared.store().close_watches();
    }

    /// Forgets the change history, like etcd compaction: a watch from any earlier resource
    /// version gets an `ERROR` event with a 410 `Expired` Status (clients must re-list).
    pub fn compact(&self) {
        self.shared.store().compact();
    }

    /// How many watch streams are open.
    pub fn open_watches(&self) -> usize {
        self.shared.open_watches.load(Ordering::SeqCst)
    }
}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    let mut connections = tokio::task::JoinSet::new();
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(_) => {
                // Out of file descriptors or similar: try again shortly.
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                continue;
            }
        };
        while connections.try_join_next().is_some() {}
        let shared = shared.clone();
        connections.spawn(async move {
            let service = hyper::service::service_fn(move |request| {
                let shared = shared.clone();
                async move { handle(shared, request).await }
            });
            // A dropped request ends the connection with an error: nothing to report.
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                .await;
        });
    }
}

/// The error a service returns to make hyper close the connection without a response.
#[derive(Debug)]
pub(crate) struct DropConnection;

impl std::fmt::Display for DropConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("connection dropped by fault injection")
    }
}

impl std::error::Error for DropConnection {}

// The request log's times stand for a real server's clock; tests never control it.
#[allow(clippy::disallowed_methods)]
async fn handle(
    shared: Arc<Shared>,
    request: hyper::Request<hyper::body::Incoming>,
) -> Result<hyper::Response<rest::Body>, DropConnection> {
    let mut call = rest::Call::new(&request);
    let seq = shared.record(Recorded {
        method: request.method().as_str().to_owned(),
        path: call.path.clone(),
        query: call.query.clone(),
        verb: call.verb,
        group: call.group().to_owned(),
        resource: call.resource_name().to_owned(),
        subresource: call.subresource().map(str::to_owned),
        namespace: call.namespace().map(str::to_owned),
        name: call.name().map(str::to_owned),
        status: 0,
        fault: None,
        received: std::time::Instant::now(),
        answered: None,
        body: None,
    });
    call.seq = seq;
    let fault = shared
        .faults
        .pick(call.verb, call.resource_name(), call.subresource());
    if let Some(fault) = &fault {
        let label = fault.label();
        shared.update(seq, |r| r.fault = Some(label));
    }
    let response = match fault {
        Some(Fault::Drop) => return Err(DropConnection),
        Some(Fault::TooManyRequests { retry_after_secs }) => {
            rest::fault_response(429, Some(retry_after_secs))
        }
        Some(Fault::Status(code)) => rest::fault_response(code, None),
        Some(Fault::Slow(delay)) => {
            tokio::time::sleep(delay).await;
            rest::dispatch(&shared, call, request).await
        }
        None => rest::dispatch(&shared, call, request).await,
    };
    let status = response.status().as_u16();
    shared.update(seq, |r| {
        r.status = status;
        r.answered = Some(std::time::Instant::now());
    });
    Ok(response)
}

/// The current time as the API server writes timestamps (RFC 3339, seconds, UTC).
pub(crate) fn now_rfc3339() -> String {
    // The emulator stands for a real server's clock; tests never control it.
    #[allow(clippy::disallowed_methods)]
    let now = std::time::SystemTime::now();
    k8s_openapi::jiff::Timestamp::try_from(now)
        .map(|t| t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string())
        .unwrap_or_else(|_| "1970-01-01T00:00:00Z".to_owned())
}

/// A valid RemediationRequest (every required spec field, schema-conforming values) in
/// `namespace` named `name`, as JSON; tests change fields to make it invalid.
pub fn sample_remediation(namespace: &str, name: &str) -> Value {
    json!({
        "apiVersion": format!("{}/{}", crd::GROUP, crd::VERSION),
        "kind": "RemediationRequest",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "signalFingerprint": "0123456789abcdef".repeat(4),
            "signalName": "HighMemoryUsage",
            "severity": "critical",
            "signalType": "prometheus-alert",
            "signalSource": "prometheus",
            "targetType": "kubernetes",
            "targetResource": {"kind": "Pod", "name": "api-1", "namespace": namespace},
            "firingTime": "2025-11-25T17:00:00Z",
            "receivedTime": "2025-11-25T17:00:01Z",
            "signalLabels": {"alertname": "HighMemoryUsage", "severity": "critical"},
            "signalAnnotations": {"summary": "memory above 90%"},
            "isStorm": false,
            "deduplication": {
                "firstOccurrence": "2025-11-25T17:00:01Z",
                "lastOccurrence": "2025-11-25T17:00:01Z",
                "occurrenceCount": 1
            }
        }
    })
}
