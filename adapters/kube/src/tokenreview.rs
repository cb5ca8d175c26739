//! [`TokenReviewer`]: the [`Authenticator`] port over the Kubernetes `TokenReview` and
//! `SubjectAccessReview` APIs (`--auth tokenreview`).
//!
//! For a bearer token and an [`Action`], two API requests, each bounded by the timeout:
//! 1. `POST /apis/authentication.k8s.io/v1/tokenreviews` (`spec.token`, and `spec.audiences`
//!    when some are configured): who is the caller?
//! 2. when authenticated, `POST /apis/authorization.k8s.io/v1/subjectaccessreviews` with the
//!    user, groups, uid and extra the review returned and `resourceAttributes` `{group:
//!    gateway.kubernaut.io, resource, verb}` of the action (`create` `signals`, `get` / `update`
//!    `config`): may it?
//!
//! | answer | verdict | cached for |
//! |---|---|---|
//! | not authenticated, no username, or none of the configured audiences | `Denied(Invalid)` | `cache_ttl / 2` |
//! | authenticated, the access review does not allow it | `Denied(Forbidden)` | `cache_ttl / 2` |
//! | authenticated and allowed | `Allowed { subject: username }` | `cache_ttl` |
//! | a request failed, timed out, or its answer could not be read | `Denied(Unavailable)` | never |
//!
//! Denials are cached half as long as grants: a flood of bad tokens is still answered from
//! memory, while a new RoleBinding takes effect sooner. A revoked token keeps working for at most
//! `cache_ttl`. The cache is keyed by SHA-256 of the token and the action (the token itself is
//! never stored), holds at most `max_cached` verdicts (the oldest evicted first), and
//! `cache_ttl = 0` turns it off. Concurrent requests for the same token and action share one
//! review (single flight); a caller that goes away does not cancel the others' review.

use std::collections::hash_map::Entry as MapEntry;
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use gateway_ports::auth::{Action, Authenticator, Denial, Verdict};
use k8s_openapi::api::authentication::v1::{TokenReview, TokenReviewSpec, UserInfo};
use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec,
};
use kube::Client;
use kube::api::{Api, PostParams};
use sha2::{Digest, Sha256};
use tokio::sync::OnceCell;
use tokio::time::Instant;

use crate::writer::{ApiCallRecord, CallObserver};

/// How a [`TokenReviewer`] asks and remembers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenReviewOptions {
    /// `spec.audiences` of each TokenReview; empty: the API server's own audience. When set, a
    /// review must name one of them in `status.audiences`, or the token is refused.
    pub audiences: Vec<String>,
    /// How long an allowed verdict is reused (a denial: half as long); zero: never.
    pub cache_ttl: Duration,
    /// The longest wait for one API request.
    pub timeout: Duration,
    /// At most this many cached verdicts; the oldest go first.
    pub max_cached: usize,
}

impl Default for TokenReviewOptions {
    fn default() -> Self {
        TokenReviewOptions {
            audiences: Vec::new(),
            cache_ttl: Duration::from_secs(10),
            timeout: Duration::from_secs(2),
            max_cached: 10_000,
        }
    }
}

/// Why a review could not be made. Its text never holds the token (an API error that echoes
/// the request has it replaced), which is why the kube error is not kept as a source.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{call}: {detail}")]
pub struct ReviewError {
    /// `tokenreview` or `subjectaccessreview`.
    pub call: &'static str,
    /// What went wrong (HTTP status and message, timeout, connection).
    pub detail: String,
}

/// The [`Authenticator`] over `TokenReview` + `SubjectAccessReview`.
pub struct TokenReviewer {
    client: Client,
    options: TokenReviewOptions,
    observer: Option<CallObserver>,
    cache: Mutex<Cache>,
    flights: Mutex<HashMap<Key, Arc<OnceCell<Verdict>>>>,
}

impl std::fmt::Debug for TokenReviewer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenReviewer")
            .field("options", &self.options)
            .field("cached", &lock(&self.cache).entries.len())
            .finish_non_exhaustive()
    }
}

/// SHA-256 of the token, and the action.
type Key = ([u8; 32], Action);

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl TokenReviewer {
    /// A reviewer asking through `client`.
    pub fn new(client: Client, options: TokenReviewOptions) -> Self {
        let cache = Cache::new(options.max_cached);
        TokenReviewer {
            client,
            options,
            observer: None,
            cache: Mutex::new(cache),
            flights: Mutex::new(HashMap::new()),
        }
    }

    /// Calls `observer` after every API request (`verb`: `tokenreview`, `subjectaccessreview`).
    pub fn with_observer(
        mut self,
        observer: impl Fn(&ApiCallRecord) + Send + Sync + 'static,
    ) -> Self {
        self.observer = Some(Arc::new(observer));
        self
    }

    /// How many verdicts are cached now (expired ones included until evicted or looked up).
    pub fn cached(&self) -> usize {
        lock(&self.cache).entries.len()
    }

    /// Asks the API, without the cache: the verdict on `token` for `action`, or why the API
    /// could not be asked.
    pub async fn review(&self, token: &str, action: Action) -> Result<Verdict, ReviewError> {
        if token.is_empty() {
            return Ok(Verdict::Denied(Denial::Invalid));
        }
        let review = TokenReview {
            spec: TokenReviewSpec {
                token: Some(token.to_owned()),
                audiences: (!self.options.audiences.is_empty())
                    .then(|| self.options.audiences.clone()),
            },
            ..TokenReview::default()
        };
        let reviews: Api<TokenReview> = Api::all(self.client.clone());
        let answer = self
            .call(
                "tokenreview",
                token,
                reviews.create(&PostParams::default(), &review),
            )
            .await?;
        let Some(user) = authenticated(&answer, &self.options.audiences) else {
            return Ok(Verdict::Denied(Denial::Invalid));
        };
        let username = user.username.clone().unwrap_or_default();
        let access = SubjectAccessReview {
            spec: SubjectAccessReviewSpec {
                user: Some(username.clone()),
                groups: user.groups.clone(),
                uid: user.uid.clone(),
                extra: user.extra.clone(),
                resource_attributes: Some(ResourceAttributes {
                    group: Some(Action::GROUP.to_owned()),
                    resource: Some(action.resource().to_owned()),
                    verb: Some(action.verb().to_owned()),
                    ..ResourceAttributes::default()
                }),
                non_resource_attributes: None,
            },
            ..SubjectAccessReview::default()
        };
        let accesses: Api<SubjectAccessReview> = Api::all(self.client.clone());
        let answer = self
            .call(
                "subjectaccessreview",
                token,
                accesses.create(&PostParams::default(), &access),
            )
            .await?;
        let allowed = answer
            .status
            .as_ref()
            .is_some_and(|s| s.allowed && s.denied != Some(true));
        Ok(if allowed {
            Verdict::Allowed { subject: username }
        } else {
            Verdict::Denied(Denial::Forbidden)
        })
    }

    /// Runs one API request with the timeout, reports it, and maps its error (the token
    /// replaced wherever the answer echoed it).
    async fn call<T>(
        &self,
        call: &'static str,
        token: &str,
        request: impl std::future::Future<Output = Result<T, kube::Error>>,
    ) -> Result<T, ReviewError> {
        let started = Instant::now();
        let (result, code) = match tokio::time::timeout(self.options.timeout, request).await {
            Ok(Ok(value)) => (Ok(value), "2xx".to_owned()),
            Ok(Err(kube::Error::Api(status))) => (
                Err(format!(
                    "{} {} ({})",
                    status.code, status.reason, status.message
                )),
                status.code.to_string(),
            ),
            Ok(Err(e)) => (Err(e.to_string()), "connection".to_owned()),
            Err(_) => (
                Err(format!(
                    "no answer from the Kubernetes API within {:?}",
                    self.options.timeout
                )),
                "timeout".to_owned(),
            ),
        };
        if let Some(observer) = &self.observer {
            observer(&ApiCallRecord {
                verb: call,
                code,
                duration: started.elapsed(),
            });
        }
        result.map_err(|detail| ReviewError {
            call,
            detail: detail.replace(token, "[token]"),
        })
    }

    /// The cached verdict, or one review shared by every concurrent caller with this key.
    async fn verdict(&self, key: Key, token: &str, action: Action) -> Verdict {
        let (cell, _guard) = {
            let mut flights = lock(&self.flights);
            match flights.entry(key) {
                MapEntry::Occupied(flight) => (flight.get().clone(), None),
                MapEntry::Vacant(slot) => {
                    let cell = slot.insert(Arc::new(OnceCell::new())).clone();
                    let guard = FlightGuard {
                        flights: &self.flights,
                        key,
                        cell: cell.clone(),
                    };
                    (cell, Some(guard))
                }
            }
        };
        cell.get_or_init(|| self.review_and_remember(key, token, action))
            .await
            .clone()
    }

    async fn review_and_remember(&self, key: Key, token: &str, action: Action) -> Verdict {
        let verdict = match self.review(token, action).await {
            Ok(verdict) => verdict,
            Err(e) => {
                tracing::warn!(error = %e, action = ?action, "the Kubernetes API could not review a bearer token: refused");
                return Verdict::Denied(Denial::Unavailable);
            }
        };
        let ttl = match &verdict {
            Verdict::Allowed { .. } => self.options.cache_ttl,
            Verdict::Denied(_) => self.options.cache_ttl / 2,
        };
        if !ttl.is_zero() {
            lock(&self.cache).insert(key, verdict.clone(), Instant::now() + ttl);
        }
        verdict
    }
}

/// The user of an authenticated review that names a username and, when audiences were asked
/// for, one of them.
fn authenticated<'a>(review: &'a TokenReview, audiences: &[String]) -> Option<&'a UserInfo> {
    let status = review.status.as_ref()?;
    if status.authenticated != Some(true) {
        return None;
    }
    if !audiences.is_empty() {
        let granted = status.audiences.as_deref().unwrap_or_default();
        if !granted.iter().any(|a| audiences.contains(a)) {
            return None;
        }
    }
    status
        .user
        .as_ref()
        .filter(|u| u.username.as_deref().is_some_and(|n| !n.is_empty()))
}

/// Ends the flight its creator started, when the creator is done (or goes away): later callers
/// start a new one, or find the verdict in the cache.
struct FlightGuard<'a> {
    flights: &'a Mutex<HashMap<Key, Arc<OnceCell<Verdict>>>>,
    key: Key,
    cell: Arc<OnceCell<Verdict>>,
}

impl Drop for FlightGuard<'_> {
    fn drop(&mut self) {
        let mut flights = lock(self.flights);
        if flights
            .get(&self.key)
            .is_some_and(|c| Arc::ptr_eq(c, &self.cell))
        {
            flights.remove(&self.key);
        }
    }
}

#[async_trait]
impl Authenticator for TokenReviewer {
    async fn authenticate(&self, token: &str, action: Action) -> Verdict {
        let key = (Sha256::digest(token.as_bytes()).into(), action);
        if let Some(verdict) = lock(&self.cache).get(&key, Instant::now()) {
            return verdict;
        }
        self.verdict(key, token, action).await
    }

    fn mode(&self) -> &'static str {
        "tokenreview"
    }
}

/// Verdicts by key until they expire, at most `max`, the oldest inserted evicted first.
#[derive(Debug)]
struct Cache {
    entries: HashMap<Key, Cached>,
    /// Insertion order; an item whose `seq` is no longer its entry's is stale and skipped.
    order: VecDeque<(Key, u64)>,
    next: u64,
    max: usize,
}

#[derive(Debug)]
struct Cached {
    verdict: Verdict,
    expires: Instant,
    seq: u64,
}

impl Cache {
    fn new(max: usize) -> Cache {
        Cache {
            entries: HashMap::new(),
            order: VecDeque::new(),
            next: 0,
            max,
        }
    }

    fn get(&mut self, key: &Key, now: Instant) -> Option<Verdict> {
        let cached = self.entries.get(key)?;
        if cached.expires > now {
            return Some(cached.verdict.clone());
        }
        self.entries.remove(key);
        None
    }

    fn insert(&mut self, key: Key, verdict: Verdict, expires: Instant) {
        if self.max == 0 {
            return;
        }
        self.next += 1;
        let seq = self.next;
        self.entries.insert(
            key,
            Cached {
                verdict,
                expires,
                seq,
            },
        );
        self.order.push_back((key, seq));
        while self.entries.len() > self.max {
            let Some((oldest, seq)) = self.order.pop_front() else {
                break;
            };
            if self.entries.get(&oldest).is_some_and(|c| c.seq == seq) {
                self.entries.remove(&oldest);
            }
        }
        // Re-inserted keys leave stale items behind: drop them before they outnumber the live.
        if self.order.len() > 2 * self.max.max(8) {
            let entries = &self.entries;
            self.order
                .retain(|(k, seq)| entries.get(k).is_some_and(|c| c.seq == *seq));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(n: u8) -> Key {
        ([n; 32], Action::SendSignals)
    }

    fn allowed(name: &str) -> Verdict {
        Verdict::Allowed {
            subject: name.to_owned(),
        }
    }

    #[test]
    fn the_cache_forgets_expired_verdicts() {
        let mut cache = Cache::new(10);
        let now = Instant::now();
        cache.insert(key(1), allowed("a"), now + Duration::from_secs(1));
        assert_eq!(cache.get(&key(1), now), Some(allowed("a")));
        assert_eq!(cache.get(&key(1), now + Duration::from_secs(1)), None);
        assert!(cache.entries.is_empty());
    }

    #[test]
    fn the_cache_evicts_the_oldest_beyond_its_bound() {
        let mut cache = Cache::new(3);
        let now = Instant::now();
        let later = now + Duration::from_secs(60);
        for n in 0..5 {
            cache.insert(key(n), allowed(&n.to_string()), later);
        }
        assert_eq!(cache.entries.len(), 3);
        assert_eq!(cache.get(&key(0), now), None);
        assert_eq!(cache.get(&key(1), now), None);
        for n in 2..5 {
            assert_eq!(cache.get(&key(n), now), Some(allowed(&n.to_string())));
        }
    }

    #[test]
    fn re_inserting_a_key_keeps_the_order_bounded_and_the_newest_verdict() {
        let mut cache = Cache::new(2);
        let now = Instant::now();
        let later = now + Duration::from_secs(60);
        for round in 0..100 {
            cache.insert(key(1), allowed(&round.to_string()), later);
        }
        cache.insert(key(2), allowed("two"), later);
        assert!(cache.order.len() <= 2 * 8 + 1, "{}", cache.order.len());
        assert_eq!(cache.get(&key(1), now), Some(allowed("99")));
        // Key 1 was last written before key 2: it is the oldest, the next insert evicts it.
        cache.insert(key(3), allowed("three"), later);
        assert_eq!(cache.get(&key(1), now), None);
        assert_eq!(cache.get(&key(2), now), Some(allowed("two")));
    }

    #[test]
    fn a_zero_bound_caches_nothing() {
        let mut cache = Cache::new(0);
        let now = Instant::now();
        cache.insert(key(1), allowed("a"), now + Duration::from_secs(60));
        assert_eq!(cache.get(&key(1), now), None);
    }

    #[test]
    fn audiences_must_match_when_asked_for() {
        let review = |authenticated: bool, audiences: Option<Vec<&str>>, user: Option<&str>| {
            serde_json::from_value::<TokenReview>(serde_json::json!({
                "apiVersion": "authentication.k8s.io/v1",
                "kind": "TokenReview",
                "metadata": {},
                "spec": {},
                "status": {
                    "authenticated": authenticated,
                    "audiences": audiences,
                    "user": {"username": user},
                },
            }))
            .unwrap()
        };
        let asked = vec!["gateway".to_owned()];
        let ok = review(true, Some(vec!["gateway"]), Some("sa"));
        assert!(authenticated(&ok, &asked).is_some());
        assert!(authenticated(&ok, &[]).is_some());
        assert!(authenticated(&review(true, Some(vec!["api"]), Some("sa")), &asked).is_none());
        assert!(authenticated(&review(true, None, Some("sa")), &asked).is_none());
        assert!(authenticated(&review(true, None, Some("sa")), &[]).is_some());
        assert!(authenticated(&review(false, Some(vec!["gateway"]), Some("sa")), &asked).is_none());
        assert!(authenticated(&review(true, Some(vec!["gateway"]), Some("")), &asked).is_none());
        assert!(authenticated(&review(true, Some(vec!["gateway"]), None), &asked).is_none());
    }
}
