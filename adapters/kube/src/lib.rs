//! The Kubernetes side of the gateway:
//! - [`crd`]: the `RemediationRequest` custom resource (`remediation.kubernaut.io/v1alpha1`);
//! - the `RemediationWriter` port over the Kubernetes API (kube-rs);
//! - [`configmap`]: the ConfigMap of the hot-reloadable settings, read and watched through the API;
//! - [`tokenreview`]: the `Authenticator` port over `TokenReview` + `SubjectAccessReview`.
//!
//! Every API call this crate makes is listed in [`API_CALLS`] (and, in `--auth tokenreview`
//! mode, [`TOKENREVIEW_API_CALLS`]); the RBAC in `deploy/` grants exactly those (a test renders
//! `deploy/` and compares), and the API-server emulator tests check that the code makes no other.

pub mod configmap;
pub mod crd;
pub mod tokenreview;
mod writer;

pub use kube::Client;
pub use tokenreview::{ReviewError, TokenReviewOptions, TokenReviewer};
pub use writer::{ApiCallRecord, ClientError, ClientOptions, Connection, KubeWriter, client};

/// One kind of Kubernetes API request the gateway makes: what RBAC must allow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct ApiCall {
    /// API group (`""` for the core group).
    pub group: &'static str,
    /// Resource (plural, as in RBAC rules).
    pub resource: &'static str,
    /// RBAC verb.
    pub verb: &'static str,
}

const fn call(group: &'static str, resource: &'static str, verb: &'static str) -> ApiCall {
    ApiCall {
        group,
        resource,
        verb,
    }
}

/// Every API request the gateway makes, by group, resource and verb.
///
/// - RemediationRequests, in the namespace of each signal: `create` (a new one), `get` and
///   `patch` (an existing one: the occurrence count after `AlreadyExists`, a growing aggregate,
///   coalesced duplicate counts). The gateway never lists, watches, replaces or deletes them,
///   and never writes their status (controllers own it).
/// - The ConfigMap of `--config-source configmap:NS/NAME`: `list` and `watch` (the kube runtime
///   watcher, by field selector on its name) and `get` (`POST /-/reload`).
///
/// Readiness reads the API group's discovery document, which every authenticated client may read.
pub const API_CALLS: &[ApiCall] = &[
    call(crd::GROUP, crd::PLURAL, "create"),
    call(crd::GROUP, crd::PLURAL, "get"),
    call(crd::GROUP, crd::PLURAL, "patch"),
    call("", "configmaps", "get"),
    call("", "configmaps", "list"),
    call("", "configmaps", "watch"),
];

/// The API requests of `--auth tokenreview` ([`tokenreview`]), on top of [`API_CALLS`]: `create`
/// of the two cluster-scoped review resources. Granted by the kustomize component
/// `deploy/components/tokenreview/`, not by the base, so that the default token mode holds no
/// cluster-wide right to review tokens.
pub const TOKENREVIEW_API_CALLS: &[ApiCall] = &[
    call("authentication.k8s.io", "tokenreviews", "create"),
    call("authorization.k8s.io", "subjectaccessreviews", "create"),
];
