//! The review APIs: `TokenReview` (`authentication.k8s.io/v1`) and `SubjectAccessReview`
//! (`authorization.k8s.io/v1`), create-only and cluster-scoped, answered like the real API
//! server (201 with the object echoed and a `status`), from the tokens and grants a test sets up
//! ([`super::ApiServer::grant_token`], [`super::ApiServer::allow`]).

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Value, json};

/// The audience of tokens the API server issues by default (a projected ServiceAccount token
/// without an explicit audience), which a review without `spec.audiences` asks for.
pub const API_AUDIENCE: &str = "https://kubernetes.default.svc.cluster.local";

/// A review resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Review {
    Token,
    SubjectAccess,
}

impl Review {
    pub(crate) fn group(self) -> &'static str {
        match self {
            Review::Token => "authentication.k8s.io",
            Review::SubjectAccess => "authorization.k8s.io",
        }
    }

    pub(crate) fn plural(self) -> &'static str {
        match self {
            Review::Token => "tokenreviews",
            Review::SubjectAccess => "subjectaccessreviews",
        }
    }

    pub(crate) fn kind(self) -> &'static str {
        match self {
            Review::Token => "TokenReview",
            Review::SubjectAccess => "SubjectAccessReview",
        }
    }

    pub(crate) fn from_path(group: &str, version: &str, plural: &str) -> Option<Review> {
        [Review::Token, Review::SubjectAccess]
            .into_iter()
            .find(|r| r.group() == group && version == "v1" && r.plural() == plural)
    }
}

/// A token the emulator knows.
#[derive(Debug, Clone)]
struct Identity {
    username: String,
    uid: String,
    groups: Vec<String>,
    audiences: Vec<String>,
}

/// Who is who, and who may do what.
#[derive(Debug, Default)]
pub(crate) struct Authority {
    tokens: BTreeMap<String, Identity>,
    /// (user or group, verb, API group, resource).
    grants: BTreeSet<(String, String, String, String)>,
    serial: u64,
}

impl Authority {
    pub(crate) fn grant_token(
        &mut self,
        token: &str,
        username: &str,
        groups: &[&str],
        audiences: &[&str],
    ) {
        self.serial += 1;
        let identity = Identity {
            username: username.to_owned(),
            uid: format!("00000000-0000-4000-8000-{:012x}", self.serial),
            groups: groups.iter().map(|g| (*g).to_owned()).collect(),
            audiences: audiences.iter().map(|a| (*a).to_owned()).collect(),
        };
        self.tokens.insert(token.to_owned(), identity);
    }

    pub(crate) fn revoke_token(&mut self, token: &str) {
        self.tokens.remove(token);
    }

    pub(crate) fn allow(&mut self, who: &str, verb: &str, group: &str, resource: &str) {
        self.grants
            .insert((who.into(), verb.into(), group.into(), resource.into()));
    }

    pub(crate) fn deny(&mut self, who: &str, verb: &str, group: &str, resource: &str) {
        self.grants
            .remove(&(who.into(), verb.into(), group.into(), resource.into()));
    }

    /// The `status` of a TokenReview of `spec`.
    fn token_status(&self, spec: &Value) -> Value {
        let token = spec["token"].as_str().unwrap_or_default();
        let asked: Vec<String> = match spec["audiences"].as_array() {
            Some(list) if !list.is_empty() => list
                .iter()
                .filter_map(|a| a.as_str().map(str::to_owned))
                .collect(),
            _ => vec![API_AUDIENCE.to_owned()],
        };
        let Some(identity) = self.tokens.get(token) else {
            return json!({"user": {}, "error": "[invalid bearer token, token lookup failed]"});
        };
        let common: Vec<&String> = asked
            .iter()
            .filter(|a| identity.audiences.contains(a))
            .collect();
        if common.is_empty() {
            return json!({
                "user": {},
                "error": format!(
                    "[invalid bearer token, token audiences {:?} is invalid for the target audiences {:?}]",
                    identity.audiences, asked
                ),
            });
        }
        json!({
            "authenticated": true,
            "user": {
                "username": identity.username,
                "uid": identity.uid,
                "groups": identity.groups,
                "extra": {
                    "authentication.kubernetes.io/credential-id": [format!("JTI={}", identity.uid)],
                },
            },
            "audiences": common,
        })
    }

    /// The `status` of a SubjectAccessReview of `spec` (already validated).
    fn access_status(&self, spec: &Value) -> Value {
        let mut who: Vec<&str> = spec["groups"]
            .as_array()
            .map(|g| g.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        if let Some(user) = spec["user"].as_str().filter(|u| !u.is_empty()) {
            who.push(user);
        }
        let Some(attributes) = spec["resourceAttributes"].as_object() else {
            return json!({"allowed": false, "reason": "no grant covers non-resource URLs"});
        };
        let field = |k: &str| {
            attributes
                .get(k)
                .and_then(Value::as_str)
                .unwrap_or_default()
        };
        let (verb, group, resource) = (field("verb"), field("group"), field("resource"));
        let granted = who.iter().find(|w| {
            self.grants.contains(&(
                (**w).to_owned(),
                verb.to_owned(),
                group.to_owned(),
                resource.to_owned(),
            ))
        });
        match granted {
            Some(w) => json!({
                "allowed": true,
                "reason": format!("RBAC: allowed by the emulator's grant of {verb} {resource}.{group} to {w:?}"),
            }),
            None => json!({"allowed": false}),
        }
    }
}

/// A review request's answer: `Ok(object with status)` (201), or `Err((code, message))`.
pub(crate) fn answer(
    authority: &Authority,
    review: Review,
    mut object: Value,
) -> Result<Value, (u16, String)> {
    let api_version = format!("{}/v1", review.group());
    let kind = object["kind"].as_str().unwrap_or_default();
    let version = object["apiVersion"].as_str().unwrap_or_default();
    if kind != review.kind() || version != api_version {
        return Err((
            400,
            format!(
                "the object provided is unrecognized (must be of type {}): kind {kind:?}, \
                 apiVersion {version:?}",
                review.kind()
            ),
        ));
    }
    let spec = object["spec"].clone();
    let status = match review {
        Review::Token => {
            if spec["token"].as_str().is_none_or(str::is_empty) {
                return Err((
                    400,
                    "token is required for TokenReview in authentication".to_owned(),
                ));
            }
            authority.token_status(&spec)
        }
        Review::SubjectAccess => {
            let has_user = spec["user"].as_str().is_some_and(|u| !u.is_empty());
            let has_groups = spec["groups"].as_array().is_some_and(|g| !g.is_empty());
            if !has_user && !has_groups {
                return Err((
                    422,
                    "SubjectAccessReview.authorization.k8s.io \"\" is invalid: spec.user: \
                     Invalid value: \"\": at least one of user or group must be specified"
                        .to_owned(),
                ));
            }
            let resource = spec["resourceAttributes"].is_object();
            let non_resource = spec["nonResourceAttributes"].is_object();
            if resource == non_resource {
                return Err((
                    422,
                    "SubjectAccessReview.authorization.k8s.io \"\" is invalid: \
                     spec.resourceAttributes: Invalid value: \"null\": exactly one of \
                     nonResourceAttributes or resourceAttributes must be specified"
                        .to_owned(),
                ));
            }
            authority.access_status(&spec)
        }
    };
    if !object["metadata"].is_object() {
        object["metadata"] = json!({});
    }
    object["metadata"]["creationTimestamp"] = Value::Null;
    object["status"] = status;
    Ok(object)
}
