//! `--auth tokenreview`: the `TokenReviewer` adapter (`gateway_adapter_kube::tokenreview`)
//! against the API-server emulator's TokenReview and SubjectAccessReview APIs: the verdicts,
//! what it asks, its cache (revocation within the TTL, no call on a hit), and fail-closed on
//! every kind of API failure.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use gateway_adapter_kube::{TOKENREVIEW_API_CALLS, TokenReviewOptions, TokenReviewer};
use gateway_ports::{Action, Authenticator, Denial, Verdict};
use gateway_tests::apiserver::{ApiServer, Fault, Filter, Recorded};
use serde_json::{Value, json};

const TOKEN: &str = "eyJhbGciOiJSUzI1NiJ9.alertmanager-secret-token.c2lnbmF0dXJl";
const SA: &str = "system:serviceaccount:monitoring:alertmanager";
const GROUPS: [&str; 3] = [
    "system:serviceaccounts",
    "system:serviceaccounts:monitoring",
    "system:authenticated",
];

fn options(cache_ttl: Duration) -> TokenReviewOptions {
    TokenReviewOptions {
        cache_ttl,
        timeout: Duration::from_millis(500),
        ..TokenReviewOptions::default()
    }
}

fn reviewer(api: &ApiServer, options: TokenReviewOptions) -> TokenReviewer {
    TokenReviewer::new(api.client(), options)
}

/// Alertmanager's ServiceAccount token, allowed to send signals.
fn sender(api: &ApiServer) {
    api.grant_token(TOKEN, SA, &GROUPS);
    api.allow(SA, "create", Action::GROUP, "signals");
}

fn allowed(subject: &str) -> Verdict {
    Verdict::Allowed {
        subject: subject.to_owned(),
    }
}

/// The review requests seen, oldest first.
fn reviews(api: &ApiServer) -> Vec<Recorded> {
    api.requests()
        .into_iter()
        .filter(|r| r.resource == "tokenreviews" || r.resource == "subjectaccessreviews")
        .collect()
}

fn count(api: &ApiServer, resource: &str) -> usize {
    reviews(api)
        .iter()
        .filter(|r| r.resource == resource)
        .count()
}

#[tokio::test]
async fn a_valid_token_allowed_to_send_is_allowed_as_its_username_and_asked_exactly_so() {
    let api = ApiServer::start().await;
    sender(&api);
    let auth = reviewer(&api, options(Duration::from_secs(10)));
    assert_eq!(auth.mode(), "tokenreview");

    assert_eq!(
        auth.authenticate(TOKEN, Action::SendSignals).await,
        allowed(SA)
    );

    let seen = reviews(&api);
    assert_eq!(seen.len(), 2, "{seen:#?}");
    let (token_review, access_review) = (&seen[0], &seen[1]);
    assert_eq!(
        (token_review.method.as_str(), token_review.path.as_str()),
        ("POST", "/apis/authentication.k8s.io/v1/tokenreviews")
    );
    assert_eq!(token_review.status, 201);
    let body = token_review.body.as_ref().unwrap();
    assert_eq!(body["kind"], "TokenReview");
    assert_eq!(body["spec"]["token"], TOKEN);
    assert!(
        body["spec"].get("audiences").is_none(),
        "no audiences configured, none asked: {body}"
    );

    assert_eq!(
        (access_review.method.as_str(), access_review.path.as_str()),
        ("POST", "/apis/authorization.k8s.io/v1/subjectaccessreviews")
    );
    assert_eq!(access_review.status, 201);
    let spec = &access_review.body.as_ref().unwrap()["spec"];
    assert_eq!(spec["user"], SA);
    assert_eq!(spec["groups"], json!(GROUPS));
    let uid = spec["uid"].as_str().unwrap();
    assert!(!uid.is_empty(), "the uid of the TokenReview is passed on");
    assert_eq!(
        spec["extra"],
        json!({"authentication.kubernetes.io/credential-id": [format!("JTI={uid}")]}),
        "the extra of the TokenReview is passed on"
    );
    assert_eq!(
        spec["resourceAttributes"],
        json!({"group": "gateway.kubernaut.io", "resource": "signals", "verb": "create"}),
        "exactly create signals.gateway.kubernaut.io, cluster-wide"
    );
    assert!(spec.get("nonResourceAttributes").is_none());
    assert!(
        !access_review
            .body
            .as_ref()
            .unwrap()
            .to_string()
            .contains(TOKEN),
        "the token goes to the TokenReview only"
    );

    // Only the calls the tokenreview RBAC component grants.
    let granted: BTreeSet<(String, String, String)> = TOKENREVIEW_API_CALLS
        .iter()
        .map(|c| (c.group.to_owned(), c.resource.to_owned(), c.verb.to_owned()))
        .collect();
    for request in api.requests() {
        let call = (request.group, request.resource, request.verb.to_owned());
        assert!(granted.contains(&call), "{call:?} is not granted");
    }
}

#[tokio::test]
async fn admin_actions_ask_get_and_update_on_config_and_groups_count() {
    let api = ApiServer::start().await;
    api.grant_token(TOKEN, SA, &GROUPS);
    // Granted to one of its groups, not to the user.
    api.allow(
        "system:serviceaccounts:monitoring",
        "get",
        Action::GROUP,
        "config",
    );
    let auth = reviewer(&api, options(Duration::from_secs(10)));

    assert_eq!(
        auth.authenticate(TOKEN, Action::ReadConfig).await,
        allowed(SA)
    );
    assert_eq!(
        auth.authenticate(TOKEN, Action::Reload).await,
        Verdict::Denied(Denial::Forbidden)
    );
    assert_eq!(
        auth.authenticate(TOKEN, Action::SendSignals).await,
        Verdict::Denied(Denial::Forbidden),
        "config rights are not signal rights"
    );
    let asked: Vec<Value> = reviews(&api)
        .iter()
        .filter(|r| r.resource == "subjectaccessreviews")
        .map(|r| r.body.as_ref().unwrap()["spec"]["resourceAttributes"].clone())
        .collect();
    assert_eq!(
        asked,
        [
            json!({"group": "gateway.kubernaut.io", "resource": "config", "verb": "get"}),
            json!({"group": "gateway.kubernaut.io", "resource": "config", "verb": "update"}),
            json!({"group": "gateway.kubernaut.io", "resource": "signals", "verb": "create"}),
        ]
    );
}

#[tokio::test]
async fn a_valid_token_without_the_grant_is_forbidden() {
    let api = ApiServer::start().await;
    sender(&api);
    api.deny(SA, "create", Action::GROUP, "signals");
    let auth = reviewer(&api, options(Duration::ZERO));
    assert_eq!(
        auth.authenticate(TOKEN, Action::SendSignals).await,
        Verdict::Denied(Denial::Forbidden)
    );
    assert_eq!(count(&api, "subjectaccessreviews"), 1);
    // Allowed again: with the cache off, the next request sees it.
    api.allow(SA, "create", Action::GROUP, "signals");
    assert_eq!(
        auth.authenticate(TOKEN, Action::SendSignals).await,
        allowed(SA)
    );
}

#[tokio::test]
async fn an_unknown_token_is_invalid_without_an_access_review() {
    let api = ApiServer::start().await;
    sender(&api);
    let auth = reviewer(&api, options(Duration::from_secs(10)));
    assert_eq!(
        auth.authenticate("not-a-token-anyone-issued", Action::SendSignals)
            .await,
        Verdict::Denied(Denial::Invalid)
    );
    assert_eq!(
        auth.authenticate("", Action::SendSignals).await,
        Verdict::Denied(Denial::Invalid),
        "an empty token is refused without asking"
    );
    assert_eq!(count(&api, "tokenreviews"), 1);
    assert_eq!(count(&api, "subjectaccessreviews"), 0);
}

#[tokio::test]
async fn a_revoked_token_works_until_its_cached_verdict_expires_then_is_refused() {
    let api = ApiServer::start().await;
    sender(&api);
    let ttl = Duration::from_millis(1500);
    let auth = reviewer(&api, options(ttl));
    let started = Instant::now();
    assert_eq!(
        auth.authenticate(TOKEN, Action::SendSignals).await,
        allowed(SA)
    );
    api.revoke_token(TOKEN);
    assert_eq!(
        auth.authenticate(TOKEN, Action::SendSignals).await,
        allowed(SA),
        "still cached"
    );
    assert!(started.elapsed() < ttl, "the test ran too slowly to judge");
    assert_eq!(count(&api, "tokenreviews"), 1, "the cache answered");

    tokio::time::sleep(ttl + Duration::from_millis(50)).await;
    assert_eq!(
        auth.authenticate(TOKEN, Action::SendSignals).await,
        Verdict::Denied(Denial::Invalid),
        "refused once the verdict expired"
    );
    assert_eq!(count(&api, "tokenreviews"), 2);
}

#[tokio::test]
async fn denials_are_cached_half_as_long_as_grants() {
    let api = ApiServer::start().await;
    let ttl = Duration::from_millis(2000);
    let auth = reviewer(&api, options(ttl));
    let started = Instant::now();
    assert_eq!(
        auth.authenticate(TOKEN, Action::SendSignals).await,
        Verdict::Denied(Denial::Invalid)
    );
    sender(&api);
    assert_eq!(
        auth.authenticate(TOKEN, Action::SendSignals).await,
        Verdict::Denied(Denial::Invalid),
        "the denial is cached"
    );
    assert!(
        started.elapsed() < ttl / 2,
        "the test ran too slowly to judge"
    );
    assert_eq!(count(&api, "tokenreviews"), 1);
    tokio::time::sleep(ttl / 2 + Duration::from_millis(50)).await;
    assert_eq!(
        auth.authenticate(TOKEN, Action::SendSignals).await,
        allowed(SA),
        "after half the TTL the grant is seen"
    );
}

/// Every API failure is `Unavailable` (fail closed), never cached: the next request after the
/// API is back is answered from the API.
#[tokio::test]
async fn api_failures_are_unavailable_and_never_cached() {
    let api = ApiServer::start().await;
    sender(&api);
    let auth = reviewer(&api, options(Duration::from_secs(10)));
    let cases = [
        (Fault::Status(500), "tokenreviews"),
        (Fault::Status(503), "subjectaccessreviews"),
        (Fault::Status(403), "tokenreviews"),
        (
            Fault::TooManyRequests {
                retry_after_secs: 1,
            },
            "subjectaccessreviews",
        ),
        (Fault::Drop, "tokenreviews"),
        (Fault::Drop, "subjectaccessreviews"),
    ];
    let injected = cases.len();
    for (fault, resource) in cases {
        api.faults()
            .fail_next(1, fault.clone(), Filter::resource(resource));
        assert_eq!(
            auth.authenticate(TOKEN, Action::SendSignals).await,
            Verdict::Denied(Denial::Unavailable),
            "{fault:?} on {resource}"
        );
        assert_eq!(auth.cached(), 0, "{fault:?}: nothing cached");
    }
    assert_eq!(api.faults().injected(), injected);
    assert_eq!(
        auth.authenticate(TOKEN, Action::SendSignals).await,
        allowed(SA),
        "answered as soon as the API is back"
    );
    assert_eq!(auth.cached(), 1);
}

#[tokio::test]
async fn an_api_hanging_past_the_timeout_is_unavailable_in_time() {
    let api = ApiServer::start().await;
    sender(&api);
    let timeout = Duration::from_millis(300);
    let auth = reviewer(
        &api,
        TokenReviewOptions {
            timeout,
            ..options(Duration::from_secs(10))
        },
    );
    for resource in ["tokenreviews", "subjectaccessreviews"] {
        api.faults().fail_next(
            1,
            Fault::Slow(Duration::from_secs(5)),
            Filter::resource(resource),
        );
        let started = Instant::now();
        assert_eq!(
            auth.authenticate(TOKEN, Action::SendSignals).await,
            Verdict::Denied(Denial::Unavailable),
            "{resource} hanging"
        );
        let took = started.elapsed();
        assert!(
            took >= timeout && took < Duration::from_secs(2),
            "{resource}: gave up after {took:?}"
        );
    }
    assert_eq!(
        auth.authenticate(TOKEN, Action::SendSignals).await,
        allowed(SA)
    );
}

#[tokio::test]
async fn a_refused_connection_is_unavailable() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap();
    drop(listener);
    let mut config = kube::Config::new(format!("http://{address}").parse().unwrap());
    config.default_retry = false;
    let client = kube::Client::try_from(config).unwrap();
    let auth = TokenReviewer::new(client, options(Duration::from_secs(10)));
    assert_eq!(
        auth.authenticate(TOKEN, Action::SendSignals).await,
        Verdict::Denied(Denial::Unavailable)
    );
    let error = auth.review(TOKEN, Action::SendSignals).await.unwrap_err();
    assert_eq!(error.call, "tokenreview");
    assert_eq!(auth.cached(), 0);
}

#[tokio::test]
async fn audiences_are_asked_for_and_must_be_the_tokens() {
    let api = ApiServer::start().await;
    api.grant_token_for(TOKEN, SA, &GROUPS, &["kubernaut-gateway"]);
    api.allow(SA, "create", Action::GROUP, "signals");
    let with = |audiences: &[&str]| {
        reviewer(
            &api,
            TokenReviewOptions {
                audiences: audiences.iter().map(|a| (*a).to_owned()).collect(),
                ..options(Duration::ZERO)
            },
        )
    };

    assert_eq!(
        with(&["other", "kubernaut-gateway"])
            .authenticate(TOKEN, Action::SendSignals)
            .await,
        allowed(SA)
    );
    let asked = reviews(&api)[0].body.clone().unwrap();
    assert_eq!(
        asked["spec"]["audiences"],
        json!(["other", "kubernaut-gateway"])
    );

    assert_eq!(
        with(&["other"])
            .authenticate(TOKEN, Action::SendSignals)
            .await,
        Verdict::Denied(Denial::Invalid),
        "a token for another audience"
    );
    assert_eq!(
        with(&[]).authenticate(TOKEN, Action::SendSignals).await,
        Verdict::Denied(Denial::Invalid),
        "a gateway token is not an API-server token"
    );
}

#[tokio::test]
async fn a_cache_hit_makes_no_api_call_and_the_key_is_token_and_action() {
    let api = ApiServer::start().await;
    sender(&api);
    api.grant_token("other-token", "system:serviceaccount:ops:robot", &[]);
    let auth = reviewer(&api, options(Duration::from_secs(60)));
    for _ in 0..5 {
        assert_eq!(
            auth.authenticate(TOKEN, Action::SendSignals).await,
            allowed(SA)
        );
    }
    assert_eq!(
        reviews(&api).len(),
        2,
        "one TokenReview and one SubjectAccessReview"
    );

    assert_eq!(
        auth.authenticate(TOKEN, Action::Reload).await,
        Verdict::Denied(Denial::Forbidden)
    );
    assert_eq!(
        auth.authenticate("other-token", Action::SendSignals).await,
        Verdict::Denied(Denial::Forbidden)
    );
    assert_eq!(
        reviews(&api).len(),
        6,
        "another action, another token: asked"
    );
    assert_eq!(auth.cached(), 3);
}

#[tokio::test]
async fn the_cache_holds_at_most_max_cached_verdicts() {
    let api = ApiServer::start().await;
    let auth = reviewer(
        &api,
        TokenReviewOptions {
            max_cached: 3,
            ..options(Duration::from_secs(60))
        },
    );
    for n in 0..10 {
        assert_eq!(
            auth.authenticate(&format!("unknown-{n}"), Action::SendSignals)
                .await,
            Verdict::Denied(Denial::Invalid)
        );
    }
    assert_eq!(auth.cached(), 3);
    // The newest is still cached, the oldest is asked again.
    auth.authenticate("unknown-9", Action::SendSignals).await;
    assert_eq!(count(&api, "tokenreviews"), 10);
    auth.authenticate("unknown-0", Action::SendSignals).await;
    assert_eq!(count(&api, "tokenreviews"), 11);
}

#[tokio::test]
async fn concurrent_requests_for_one_token_share_one_review() {
    let api = ApiServer::start().await;
    sender(&api);
    let auth = Arc::new(reviewer(&api, options(Duration::from_secs(60))));
    // The first review is slow, so every caller arrives while it is in flight.
    api.faults().fail_next(
        1,
        Fault::Slow(Duration::from_millis(300)),
        Filter::resource("tokenreviews"),
    );
    let callers: Vec<_> = (0..20)
        .map(|_| {
            let auth = auth.clone();
            tokio::spawn(async move { auth.authenticate(TOKEN, Action::SendSignals).await })
        })
        .collect();
    for caller in callers {
        assert_eq!(caller.await.unwrap(), allowed(SA));
    }
    assert_eq!(count(&api, "tokenreviews"), 1);
    assert_eq!(count(&api, "subjectaccessreviews"), 1);
}

#[tokio::test]
async fn a_caller_that_goes_away_does_not_fail_the_others() {
    let api = ApiServer::start().await;
    sender(&api);
    let auth = Arc::new(reviewer(&api, options(Duration::from_secs(60))));
    api.faults().fail_next(
        1,
        Fault::Slow(Duration::from_millis(300)),
        Filter::resource("tokenreviews"),
    );
    let first = {
        let auth = auth.clone();
        tokio::spawn(async move { auth.authenticate(TOKEN, Action::SendSignals).await })
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    let second = {
        let auth = auth.clone();
        tokio::spawn(async move { auth.authenticate(TOKEN, Action::SendSignals).await })
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    first.abort();
    assert_eq!(second.await.unwrap(), allowed(SA));
    assert_eq!(
        auth.authenticate(TOKEN, Action::SendSignals).await,
        allowed(SA)
    );
}

/// An API server that answers every request 400 with the request body in its message, as the
/// real one does for a body it cannot decode.
async fn echoing_server() -> (String, tokio::task::JoinHandle<()>) {
    use axum::http::StatusCode;
    let app = axum::Router::new().fallback(|body: String| async move {
        (
            StatusCode::BAD_REQUEST,
            [("content-type", "application/json")],
            json!({
                "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                "reason": "BadRequest", "code": 400,
                "message": format!("Object 'Kind' is missing in '{body}'"),
            })
            .to_string(),
        )
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let task = tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    (url, task)
}

#[tokio::test]
async fn the_token_never_shows_in_debug_output_or_errors() {
    let (url, server) = echoing_server().await;
    let mut config = kube::Config::new(url.parse().unwrap());
    config.default_retry = false;
    let auth = TokenReviewer::new(
        kube::Client::try_from(config).unwrap(),
        options(Duration::from_secs(10)),
    );
    let error = auth.review(TOKEN, Action::SendSignals).await.unwrap_err();
    let (text, debug) = (error.to_string(), format!("{error:?}"));
    assert!(text.contains("400"), "{text}");
    assert!(
        text.contains("Object 'Kind' is missing"),
        "the API's message is kept: {text}"
    );
    assert!(!text.contains(TOKEN) && !debug.contains(TOKEN), "{debug}");
    assert!(!text.contains("alertmanager-secret-token"), "{text}");
    assert_eq!(
        auth.authenticate(TOKEN, Action::SendSignals).await,
        Verdict::Denied(Denial::Unavailable)
    );
    server.abort();

    let api = ApiServer::start().await;
    sender(&api);
    let auth = reviewer(&api, options(Duration::from_secs(10)));
    auth.authenticate(TOKEN, Action::SendSignals).await;
    let debug = format!("{auth:?}");
    assert!(debug.contains("TokenReviewer"), "{debug}");
    assert!(!debug.contains(TOKEN), "{debug}");
}

#[tokio::test]
async fn api_calls_are_reported_to_the_observer() {
    let api = ApiServer::start().await;
    sender(&api);
    let calls = Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = calls.clone();
    let auth = reviewer(&api, options(Duration::from_secs(10))).with_observer(move |call| {
        seen.lock().unwrap().push((call.verb, call.code.clone()));
    });
    auth.authenticate(TOKEN, Action::SendSignals).await;
    api.faults()
        .fail_next(1, Fault::Status(500), Filter::resource("tokenreviews"));
    auth.authenticate(TOKEN, Action::Reload).await;
    assert_eq!(
        *calls.lock().unwrap(),
        [
            ("tokenreview", "2xx".to_owned()),
            ("subjectaccessreview", "2xx".to_owned()),
            ("tokenreview", "500".to_owned()),
        ]
    );
}

/// A one-alert webhook for the served gateway.
fn webhook(alert: &str) -> String {
    json!({
        "version": "4",
        "status": "firing",
        "alerts": [{
            "status": "firing",
            "labels": {"alertname": alert, "namespace": "payments", "pod": "api-0", "severity": "warning"},
            "startsAt": "2026-12-01T00:00:00Z"
        }]
    })
    .to_string()
}

async fn send(base: &str, token: Option<&str>, alert: &str) -> reqwest::Response {
    let mut request = reqwest::Client::new()
        .post(format!("{base}/api/v1/signals/prometheus"))
        .header("content-type", "application/json")
        .body(webhook(alert));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    request.send().await.unwrap()
}

/// The gateway itself run with `--auth tokenreview` on the emulator: the flags wire the
/// reviewer, and each verdict becomes its status — 201 allowed, 401 unknown or revoked (after
/// the cache TTL), 403 not allowed, 503 + `Retry-After` while the API fails (never let through).
#[tokio::test]
async fn the_gateway_run_with_auth_tokenreview_answers_each_verdict_with_its_status() {
    let api = ApiServer::start().await;
    sender(&api);
    const READER: &str = "eyJhbGciOiJSUzI1NiJ9.reader-token.c2lnbmF0dXJl";
    const LATE: &str = "eyJhbGciOiJSUzI1NiJ9.late-token.c2lnbmF0dXJl";
    api.grant_token(READER, "system:serviceaccount:ops:reader", &GROUPS);
    api.grant_token(LATE, SA, &GROUPS);
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = api.write_kubeconfig(dir.path());
    let out = dir.path().join("out");
    let served = gateway_tests::served::ServedGateway::start(
        &[
            "--auth",
            "tokenreview",
            "--kubeconfig",
            kubeconfig.to_str().unwrap(),
            "--auth-cache-ttl",
            "300ms",
            "--kube-timeout",
            "500ms",
            "--remediation-dir",
            out.to_str().unwrap(),
        ],
        None,
    )
    .await;
    let base = served.base.clone();

    let allowed = send(&base, Some(TOKEN), "Allowed").await;
    assert_eq!(allowed.status(), 201, "{}", allowed.text().await.unwrap());
    let missing = send(&base, None, "NoToken").await;
    assert_eq!(missing.status(), 401);
    assert!(missing.headers().contains_key("www-authenticate"));
    let unknown = send(&base, Some("eyJ.unknown-token.sig"), "Unknown").await;
    assert_eq!(unknown.status(), 401);
    let reader = send(&base, Some(READER), "Reader").await;
    assert_eq!(reader.status(), 403, "authenticated, not allowed to send");
    let config = reqwest::Client::new()
        .get(format!("{base}/config"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(config.status(), 403, "a sender may not read the settings");

    // The API fails: a token not cached is refused 503, never let through.
    api.faults().set_rate(
        1.0,
        vec![Fault::Status(500)],
        Filter::resource("tokenreviews"),
        7,
    );
    let down = send(&base, Some(LATE), "WhileDown").await;
    assert_eq!(down.status(), 503);
    assert!(down.headers().contains_key("retry-after"));
    api.faults().clear();
    let back = send(&base, Some(LATE), "AfterRecovery").await;
    assert_eq!(
        back.status(),
        201,
        "not cached while down: works once the API is back"
    );

    // Revoked: refused once the cached verdict has expired.
    api.revoke_token(TOKEN);
    tokio::time::sleep(Duration::from_millis(400)).await;
    let revoked = send(&base, Some(TOKEN), "Revoked").await;
    assert_eq!(revoked.status(), 401);

    let metrics = served.gateway.metrics().render();
    for line in [
        "gateway_auth_mode{mode=\"tokenreview\"} 1",
        "gateway_auth_failures_total{reason=\"missing\"} 1",
        "gateway_auth_failures_total{reason=\"forbidden\"} 2",
        "gateway_auth_failures_total{reason=\"unavailable\"} 1",
        "gateway_auth_failures_total{reason=\"invalid\"} 2",
    ] {
        assert!(metrics.contains(line), "{line} in:\n{metrics}");
    }
    let created = std::fs::read_dir(&out).unwrap().count();
    assert_eq!(created, 2, "only the allowed alerts were recorded");
    served.stop().await;
}
