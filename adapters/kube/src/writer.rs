//! [`KubeWriter`]: the [`RemediationWriter`] port over the Kubernetes API.
//!
//! One API attempt per port call (the app's retry policy, from the retry domain and the
//! hot-reloaded `retry.yaml`, decides whether to try again; kube's own retry layer is turned off
//! by [`client`]). Each call is bounded by a timeout, reported as [`WriteFailure::Timeout`].
//!
//! | port call | API requests |
//! |---|---|
//! | `create` | `POST`; on `409 AlreadyExists`: `GET`, then a merge `PATCH` of the occurrence count guarded by `resourceVersion` (on `409 Conflict`: read again, up to 5 times) |
//! | `update` | `GET`; unless the stored spec is as far along already (`Superseded`), a merge `PATCH` of labels and spec guarded by `resourceVersion` (on `409 Conflict`: read again); on `404`: `POST` (on `409 AlreadyExists`: read again) |
//! | `record_occurrences` | merge `PATCH` of `spec.deduplication.{lastOccurrence,occurrenceCount}`; `404` is reported, never created |
//! | `check` | `GET /apis/remediation.kubernaut.io/v1alpha1` (discovery: is the CRD installed?) |

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use gateway_ports::remediation::Occurrences;
use gateway_ports::{
    Rejection, RemediationRequest as PortRequest, RemediationWriter, WriteError, WriteFailure,
    Written,
};
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::{Client, Config};
use serde_json::json;

use crate::crd::{self, RemediationRequest};

/// How a Kubernetes client is made.
#[derive(Debug, Clone, Default)]
pub struct ClientOptions {
    /// A kubeconfig file; `None`: `KUBECONFIG`, `~/.kube/config`, then the in-cluster service
    /// account (kube's inference).
    pub kubeconfig: Option<std::path::PathBuf>,
}

/// Why no client could be made.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The kubeconfig file could not be read or used.
    #[error("cannot use kubeconfig {path}: {message}")]
    Kubeconfig {
        /// The file.
        path: String,
        /// What went wrong.
        message: String,
    },
    /// Neither a kubeconfig nor an in-cluster service account was found.
    #[error(
        "no Kubernetes configuration found (KUBECONFIG, ~/.kube/config or an in-cluster service account): {0}"
    )]
    Infer(String),
    /// The client could not be built.
    #[error("cannot build the Kubernetes client: {0}")]
    Build(String),
}

/// A Kubernetes client, and the secrets it authenticates with.
pub struct Connection {
    /// The client, kube's built-in retry turned off.
    pub client: Client,
    /// Its credentials — a bearer token (also the content of a token file, the in-cluster
    /// ServiceAccount's included), a password, a client key (as given, and the key file's
    /// content) — for the app to keep out of every log line.
    pub credentials: Vec<String>,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The credentials themselves never: only how many.
        f.debug_struct("Connection")
            .field("credentials", &self.credentials.len())
            .finish_non_exhaustive()
    }
}

/// A Kubernetes client with kube's built-in retry turned off, so the gateway's own policy (the
/// retry domain, with hot-reloaded settings) is the only one: two retry loops would multiply
/// attempts and blow the retry budget kept below Alertmanager's webhook timeout. The
/// configuration is read once; its credentials come with the client.
pub async fn client(options: &ClientOptions) -> Result<Connection, ClientError> {
    let mut config = match &options.kubeconfig {
        Some(path) => from_kubeconfig(path).await?,
        None => Config::infer()
            .await
            .map_err(|e| ClientError::Infer(e.to_string()))?,
    };
    config.default_retry = false;
    let credentials = credentials(&config.auth_info);
    let client = Client::try_from(config).map_err(|e| ClientError::Build(e.to_string()))?;
    Ok(Connection {
        client,
        credentials,
    })
}

/// The secrets of `auth` (see [`Connection::credentials`]).
fn credentials(auth: &kube::config::AuthInfo) -> Vec<String> {
    use secrecy::ExposeSecret;
    let mut secrets: Vec<String> = [&auth.token, &auth.password, &auth.client_key_data]
        .into_iter()
        .flatten()
        .map(|s| s.expose_secret().to_owned())
        .collect();
    for file in [&auth.token_file, &auth.client_key].into_iter().flatten() {
        if let Ok(content) = std::fs::read_to_string(file) {
            secrets.push(content.trim().to_owned());
        }
    }
    secrets.retain(|s| !s.is_empty());
    secrets
}

async fn from_kubeconfig(path: &Path) -> Result<Config, ClientError> {
    let fail = |message: String| ClientError::Kubeconfig {
        path: path.display().to_string(),
        message,
    };
    let kubeconfig = kube::config::Kubeconfig::read_from(path).map_err(|e| fail(e.to_string()))?;
    Config::from_custom_kubeconfig(kubeconfig, &kube::config::KubeConfigOptions::default())
        .await
        .map_err(|e| fail(e.to_string()))
}

/// One API request, for metrics: `verb` is the RBAC verb, `code` the HTTP status (or `timeout`,
/// `connection`).
#[derive(Debug, Clone)]
pub struct ApiCallRecord {
    /// `create`, `get`, `patch`, `discovery`.
    pub verb: &'static str,
    /// HTTP status code as text, `timeout` or `connection`.
    pub code: String,
    /// How long the request took.
    pub duration: Duration,
}

pub(crate) type CallObserver = Arc<dyn Fn(&ApiCallRecord) + Send + Sync>;

/// Writes RemediationRequests through the Kubernetes API.
#[derive(Clone)]
pub struct KubeWriter {
    client: Client,
    timeout: Duration,
    observer: Option<CallObserver>,
}

impl std::fmt::Debug for KubeWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KubeWriter")
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

/// Attempts at the read-modify-write of an occurrence count before giving up on conflicts.
const CONFLICT_ATTEMPTS: u32 = 5;

impl KubeWriter {
    /// A writer over `client`; each API request is given at most `timeout`.
    pub fn new(client: Client, timeout: Duration) -> Self {
        KubeWriter {
            client,
            timeout,
            observer: None,
        }
    }

    /// Calls `observer` after every API request (latency and outcome metrics).
    pub fn with_observer(
        mut self,
        observer: impl Fn(&ApiCallRecord) + Send + Sync + 'static,
    ) -> Self {
        self.observer = Some(Arc::new(observer));
        self
    }

    fn api(&self, namespace: &str) -> Api<RemediationRequest> {
        Api::namespaced(self.client.clone(), namespace)
    }

    /// Runs one API request with the timeout, reports it, and maps its error.
    async fn call<T>(
        &self,
        verb: &'static str,
        what: &str,
        request: impl std::future::Future<Output = Result<T, kube::Error>>,
    ) -> Result<T, WriteError> {
        #[allow(clippy::disallowed_methods)] // a latency metric, not a decision
        let started = Instant::now();
        let result = match tokio::time::timeout(self.timeout, request).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(e)) => Err(map_error(what, e)),
            Err(_) => Err(WriteError::new(
                WriteFailure::Timeout,
                format!(
                    "{what}: no answer from the Kubernetes API within {:?}",
                    self.timeout
                ),
            )),
        };
        if let Some(observer) = &self.observer {
            let code = match &result {
                Ok(_) => "2xx".to_owned(),
                Err(e) => match e
                    .source
                    .as_ref()
                    .and_then(|s| s.downcast_ref::<kube::Error>())
                {
                    Some(kube::Error::Api(status)) => status.code.to_string(),
                    _ => e.failure.as_str().to_owned(),
                },
            };
            observer(&ApiCallRecord {
                verb,
                code,
                duration: started.elapsed(),
            });
        }
        result
    }

    async fn post(
        &self,
        resource: &RemediationRequest,
        namespace: &str,
        name: &str,
    ) -> Result<(), WriteError> {
        let api = self.api(namespace);
        self.call(
            "create",
            &format!("create RemediationRequest {namespace}/{name}"),
            api.create(&PostParams::default(), resource),
        )
        .await
        .map(|_| ())
    }

    /// One JSON merge patch (RFC 7386) of the resource; `what` says what it is for, in errors.
    async fn merge_patch(
        &self,
        namespace: &str,
        name: &str,
        what: &str,
        patch: &serde_json::Value,
    ) -> Result<(), WriteError> {
        let api = self.api(namespace);
        self.call(
            "patch",
            &format!("{what} RemediationRequest {namespace}/{name}"),
            api.patch(name, &PatchParams::default(), &Patch::Merge(patch)),
        )
        .await
        .map(|_| ())
    }

    /// Counts one more occurrence on an existing resource.
    async fn count_occurrence(&self, request: &PortRequest) -> Result<(), WriteError> {
        let at = request.spec.deduplication.last_occurrence;
        self.read_modify_write(request, "count an occurrence on", |existing| {
            let dedup = &existing.spec.deduplication;
            Some(json!({ "spec": { "deduplication": {
                "occurrenceCount": dedup.occurrence_count.saturating_add(1),
                "lastOccurrence": dedup.last_occurrence.max(at),
            }}}))
        })
        .await
        .map(|_| ())
    }

    /// Reads the resource `request` names and merge-patches what `change` makes of it, guarded
    /// by the `resourceVersion` read: the API answers `409 Conflict` if someone wrote in
    /// between, and the resource is read again (up to [`CONFLICT_ATTEMPTS`] times). `change`
    /// answers `None` when nothing is to be written: `Ok(false)`.
    async fn read_modify_write(
        &self,
        request: &PortRequest,
        what: &str,
        change: impl Fn(&RemediationRequest) -> Option<serde_json::Value>,
    ) -> Result<bool, WriteError> {
        let (namespace, name) = (&request.namespace, &request.name);
        let api = self.api(namespace);
        let mut attempt = 0;
        loop {
            attempt += 1;
            let existing = self
                .call(
                    "get",
                    &format!("get RemediationRequest {namespace}/{name}"),
                    api.get(name),
                )
                .await?;
            let Some(mut patch) = change(&existing) else {
                return Ok(false);
            };
            patch["metadata"]["resourceVersion"] = json!(existing.metadata.resource_version);
            match self.merge_patch(namespace, name, what, &patch).await {
                Err(e)
                    if failed_with(&e, WriteFailure::Conflict) && attempt < CONFLICT_ATTEMPTS =>
                {
                    tracing::debug!(%namespace, %name, attempt, "RemediationRequest changed while it was written: reading it again");
                }
                other => return other.map(|()| true),
            }
        }
    }
}

fn failed_with(e: &WriteError, expected: WriteFailure) -> bool {
    e.failure == expected
}

/// The gateway's word for an API status: the one place HTTP codes are read.
fn failure_of(status: &kube::core::Status) -> WriteFailure {
    let retry_after = status
        .details
        .as_ref()
        .map(|d| d.retry_after_seconds)
        .filter(|s| *s > 0)
        .map(|s| Duration::from_secs(u64::from(s)));
    let rejected = |reason| WriteFailure::Rejected { reason };
    match status.code {
        404 | 410 => WriteFailure::NotFound,
        // The API says which: a create meets `AlreadyExists`, a guarded patch `Conflict`.
        409 if status.reason == "AlreadyExists" => WriteFailure::AlreadyExists,
        409 => WriteFailure::Conflict,
        429 => WriteFailure::Throttled { retry_after },
        500 | 502 | 503 | 504 => WriteFailure::Unavailable { retry_after },
        408 => WriteFailure::Timeout,
        401 => rejected(Rejection::Unauthorized),
        403 => rejected(Rejection::Forbidden),
        400 | 413 | 422 => rejected(Rejection::Invalid),
        // 405, 406, 415, 501, 505 and anything unexpected: this API will not do it.
        _ => rejected(Rejection::Unsupported),
    }
}

/// Maps a kube error to the port's vocabulary.
fn map_error(what: &str, e: kube::Error) -> WriteError {
    let failure = match &e {
        kube::Error::Api(status) => failure_of(status),
        kube::Error::HyperError(_) | kube::Error::Service(_) | kube::Error::ReadEvents(_) => {
            WriteFailure::Connection
        }
        // A response we could not read is a broken exchange: worth another attempt.
        kube::Error::SerdeError(_) | kube::Error::FromUtf8(_) => WriteFailure::Connection,
        _ => WriteFailure::Rejected {
            reason: Rejection::Unsupported,
        },
    };
    let detail = match &e {
        kube::Error::Api(status) => {
            format!("{} {} ({})", status.code, status.reason, status.message)
        }
        other => other.to_string(),
    };
    WriteError {
        failure,
        message: format!("{what}: {detail}"),
        source: Some(Box::new(e)),
    }
}

#[async_trait]
impl RemediationWriter for KubeWriter {
    async fn create(&self, request: &PortRequest) -> Result<Written, WriteError> {
        let resource = crd::to_resource(request);
        match self
            .post(&resource, &request.namespace, &request.name)
            .await
        {
            Ok(()) => Ok(Written::Created),
            Err(e) if failed_with(&e, WriteFailure::AlreadyExists) => {
                // AlreadyExists: the work is there (a retry whose first attempt landed, another
                // replica). It is the result; this occurrence is counted on it.
                if let Err(count) = self.count_occurrence(request).await {
                    tracing::warn!(error = %count, "RemediationRequest already existed; its occurrence count could not be updated");
                }
                Ok(Written::AlreadyExisted)
            }
            Err(e) => Err(e),
        }
    }

    async fn update(&self, request: &PortRequest) -> Result<Written, WriteError> {
        let resource = crd::to_resource(request);
        let progress = request.spec.progress();
        let newer = |existing: &RemediationRequest| {
            (existing.spec.progress() < progress).then(|| {
                json!({
                    "metadata": { "labels": request.labels },
                    "spec": resource.spec,
                })
            })
        };
        // Twice at most: a resource missing at the first read may be created by someone else
        // before our create; then it is read again and judged like any other.
        let mut created_meanwhile = false;
        loop {
            match self.read_modify_write(request, "update", newer).await {
                Ok(true) => return Ok(Written::Updated),
                Ok(false) => return Ok(Written::Superseded),
                Err(e) if failed_with(&e, WriteFailure::NotFound) && !created_meanwhile => {
                    match self
                        .post(&resource, &request.namespace, &request.name)
                        .await
                    {
                        Ok(()) => return Ok(Written::Created),
                        // (AlreadyExists must not reach the retry policy, which takes it for
                        // "done": the other writer's content may be older than ours.)
                        Err(e) if failed_with(&e, WriteFailure::AlreadyExists) => {
                            created_meanwhile = true;
                        }
                        Err(e) => return Err(e),
                    }
                }
                Err(e) => return Err(e),
            }
        }
    }

    async fn record_occurrences(&self, occurrences: &Occurrences) -> Result<Written, WriteError> {
        let (namespace, name) = (&occurrences.namespace, &occurrences.name);
        let patch = json!({
            "spec": { "deduplication": {
                "occurrenceCount": occurrences.occurrence_count,
                "lastOccurrence": occurrences.last_occurrence,
            }},
        });
        self.merge_patch(namespace, name, "record occurrences on", &patch)
            .await
            .map(|()| Written::Updated)
    }

    async fn check(&self) -> Result<(), WriteError> {
        let group_version = format!("{}/{}", crd::GROUP, crd::VERSION);
        let resources = self
            .call(
                "discovery",
                &format!("discover {group_version}"),
                self.client.list_api_group_resources(&group_version),
            )
            .await?;
        if resources.resources.iter().any(|r| r.name == crd::PLURAL) {
            Ok(())
        } else {
            Err(WriteError::new(
                WriteFailure::Rejected {
                    reason: Rejection::Unsupported,
                },
                format!(
                    "the API serves {group_version} but not {}: is the CRD installed?",
                    crd::PLURAL
                ),
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{ClientOptions, client};

    async fn credentials(options: &ClientOptions) -> Vec<String> {
        client(options)
            .await
            .map(|c| c.credentials)
            .unwrap_or_default()
    }

    #[tokio::test]
    async fn a_client_comes_with_its_kubeconfig_credentials_for_the_log_filter() {
        let dir = std::env::temp_dir().join(format!("kube-credentials-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let token_file = dir.join("token");
        std::fs::write(&token_file, "file-token-5d1c9e\n").unwrap();
        let kubeconfig = dir.join("config");
        let user = |name: &str, body: &str| format!("- name: {name}\n  user:\n{body}");
        let write = |current: &str| {
            let text = format!(
                "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: http://127.0.0.1:1\ncontexts:\n- name: token\n  context: {{cluster: c, user: token}}\n- name: basic\n  context: {{cluster: c, user: basic}}\n- name: file\n  context: {{cluster: c, user: file}}\ncurrent-context: {current}\nusers:\n{}\n{}\n{}\n",
                user("token", "    token: bearer-secret-8f2a61"),
                user(
                    "basic",
                    "    username: admin\n    password: basic-secret-3b7e90"
                ),
                user("file", &format!("    tokenFile: {}", token_file.display())),
            );
            std::fs::write(&kubeconfig, text).unwrap();
        };
        let options = ClientOptions {
            kubeconfig: Some(kubeconfig.clone()),
        };
        write("token");
        assert_eq!(credentials(&options).await, ["bearer-secret-8f2a61"]);
        write("basic");
        assert_eq!(credentials(&options).await, ["basic-secret-3b7e90"]);
        write("file");
        assert_eq!(credentials(&options).await, ["file-token-5d1c9e"]);
        let none = ClientOptions {
            kubeconfig: Some(dir.join("missing")),
        };
        assert!(credentials(&none).await.is_empty());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
