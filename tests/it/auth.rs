//! Authentication (`--auth`) over a real socket: bearer tokens from a file the kubelet's way,
//! admin tokens, open endpoints, rotation without a gap, the failure limiter, start-up refusals.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use clap::Parser;
use gateway::cli::Cli;
use gateway_tests::SAMPLE_WEBHOOK;
use gateway_tests::kubelet::KubeletDir;
use gateway_tests::served::ServedGateway;
use reqwest::{Client, Method, StatusCode};

const A: &str = "tokenAAAAAAAAAAAAAAAAAAAAAAAAAAA";
const B: &str = "tokenBBBBBBBBBBBBBBBBBBBBBBBBBBB";
const ADMIN: &str = "adminCCCCCCCCCCCCCCCCCCCCCCCCCCC";

/// A temporary root: a config directory (empty: the defaults), a remediation directory.
struct Root {
    dir: tempfile::TempDir,
}

impl Root {
    fn new() -> Root {
        Root {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn file(&self, name: &str, text: &str) -> String {
        let path = self.path(name);
        std::fs::write(&path, text).unwrap();
        path.to_string_lossy().into_owned()
    }

    /// Every flag but the auth ones.
    fn flags<'a>(&'a self, auth: &[&'a str]) -> Vec<String> {
        let mut flags: Vec<String> = vec![
            "--config-dir".into(),
            self.path("config").to_string_lossy().into_owned(),
            "--remediation-dir".into(),
            self.path("out").to_string_lossy().into_owned(),
        ];
        flags.extend(auth.iter().map(|s| (*s).to_owned()));
        flags
    }

    async fn start(&self, auth: &[&str]) -> ServedGateway {
        let flags = self.flags(auth);
        let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
        ServedGateway::start(&flags, None).await
    }

    async fn try_start(&self, auth: &[&str]) -> anyhow::Result<ServedGateway> {
        let flags = self.flags(auth);
        let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
        ServedGateway::try_start(&flags, None).await
    }
}

/// Sends `method path` with `authorization` (the whole header value) and the sample webhook as
/// body for a POST; returns the status, the `WWW-Authenticate` and `Retry-After` headers and
/// the body.
async fn send(
    client: &Client,
    gw: &ServedGateway,
    method: Method,
    path: &str,
    authorization: Option<&str>,
) -> (StatusCode, Option<String>, Option<String>, String) {
    let mut request = client.request(method.clone(), format!("{}{path}", gw.base));
    if let Some(value) = authorization {
        request = request.header("authorization", value);
    }
    if method == Method::POST && path.starts_with("/api/") {
        request = request
            .header("content-type", "application/json")
            .body(SAMPLE_WEBHOOK);
    }
    let response = request.send().await.unwrap();
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .map(|v| v.to_str().unwrap().to_owned())
    };
    let (challenge, retry) = (header("www-authenticate"), header("retry-after"));
    (
        response.status(),
        challenge,
        retry,
        response.text().await.unwrap(),
    )
}

const SIGNALS: &str = "/api/v1/signals/prometheus";

async fn signal(client: &Client, gw: &ServedGateway, token: &str) -> StatusCode {
    send(
        client,
        gw,
        Method::POST,
        SIGNALS,
        Some(&format!("Bearer {token}")),
    )
    .await
    .0
}

fn metric(gw: &ServedGateway, series: &str) -> f64 {
    let text = gw.gateway.metrics_text();
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {series} in\n{text}"))
}

fn failures(gw: &ServedGateway, reason: &str) -> f64 {
    metric(
        gw,
        &format!("gateway_auth_failures_total{{reason=\"{reason}\"}}"),
    )
}

#[tokio::test]
async fn token_mode_refuses_every_bad_request_with_a_bare_401_and_lets_a_good_token_in() {
    let root = Root::new();
    let tokens = root.file("tokens", &format!("# senders\nam:{A}\n"));
    // More 401s than the default burst come from this one peer.
    let gw = root
        .start(&[
            "--auth",
            "token",
            "--auth-token-file",
            &tokens,
            "--auth-failure-burst",
            "1000",
        ])
        .await;
    let client = Client::new();
    assert_eq!(metric(&gw, "gateway_auth_mode{mode=\"token\"}"), 1.0);
    assert_eq!(metric(&gw, "gateway_auth_mode{mode=\"none\"}"), 0.0);
    assert_eq!(metric(&gw, "gateway_auth_tokens{file=\"signal\"}"), 1.0);
    for reason in [
        "missing",
        "malformed",
        "invalid",
        "forbidden",
        "rate_limited",
        "unavailable",
    ] {
        assert_eq!(failures(&gw, reason), 0.0, "{reason} pre-registered");
    }

    let cases = [
        (None, "missing"),
        (Some("Bearer".to_owned()), "malformed"),
        (Some(format!("Basic {A}")), "malformed"),
        (Some(format!("Bearer {A}x")), "invalid"),
        (Some(format!("Bearer {B}")), "invalid"),
    ];
    let mut bodies = Vec::new();
    for (authorization, reason) in &cases {
        let before = failures(&gw, reason);
        let (status, challenge, _, body) = send(
            &client,
            &gw,
            Method::POST,
            SIGNALS,
            authorization.as_deref(),
        )
        .await;
        assert_eq!(
            status,
            StatusCode::UNAUTHORIZED,
            "{authorization:?}: {body}"
        );
        assert_eq!(
            challenge.as_deref(),
            Some("Bearer realm=\"kubernaut-gateway\"")
        );
        assert!(
            !body.contains(A) && !body.contains(B) && !body.contains(reason),
            "{body}"
        );
        assert_eq!(failures(&gw, reason), before + 1.0, "{reason} counted");
        bodies.push(body);
    }
    bodies.dedup();
    assert_eq!(bodies.len(), 1, "every 401 says the same: {bodies:?}");
    assert!(bodies[0].contains("\"status\":401"), "{}", bodies[0]);
    assert!(
        gateway_tests::read_remediations(&root.path("out")).is_empty(),
        "nothing refused was recorded"
    );

    assert_eq!(signal(&client, &gw, A).await, StatusCode::CREATED);
    let event = client
        .post(format!("{}/api/v1/signals/kubernetes-event", gw.base))
        .header("authorization", format!("bearer {A}"))
        .header("content-type", "application/json")
        .body(gateway_tests::SAMPLE_EVENT)
        .send()
        .await
        .unwrap();
    assert!(event.status().is_success(), "{}", event.status());
    let unauthenticated_event = client
        .post(format!("{}/api/v1/signals/kubernetes-event", gw.base))
        .header("content-type", "application/json")
        .body(gateway_tests::SAMPLE_EVENT)
        .send()
        .await
        .unwrap();
    assert_eq!(unauthenticated_event.status(), StatusCode::UNAUTHORIZED);

    // Health, readiness and metrics stay open; admin endpoints need a token (the signal token
    // will do without --admin-token-file).
    for path in ["/healthz", "/readyz", "/metrics"] {
        let (status, ..) = send(&client, &gw, Method::GET, path, None).await;
        assert_eq!(status, StatusCode::OK, "{path}");
    }
    for (method, path) in [
        (Method::GET, "/config"),
        (Method::POST, "/-/reload"),
        (Method::GET, "/debug/dead-letters"),
    ] {
        let (status, challenge, ..) = send(&client, &gw, method.clone(), path, None).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{path}");
        assert!(challenge.is_some());
        let (status, ..) = send(
            &client,
            &gw,
            method.clone(),
            path,
            Some(&format!("Bearer {B}")),
        )
        .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{path}");
        let (status, _, _, body) =
            send(&client, &gw, method, path, Some(&format!("Bearer {A}"))).await;
        assert_eq!(status, StatusCode::OK, "{path}: {body}");
    }
    gw.stop().await;
}

#[tokio::test]
async fn an_admin_token_file_splits_the_roles() {
    let root = Root::new();
    let tokens = root.file("tokens", &format!("{A}\n"));
    let admin = root.file("admin", &format!("ops:{ADMIN}\n"));
    let gw = root
        .start(&[
            "--auth",
            "token",
            "--auth-token-file",
            &tokens,
            "--admin-token-file",
            &admin,
        ])
        .await;
    let client = Client::new();
    let bearer = |t: &str| format!("Bearer {t}");
    for (method, path) in [
        (Method::GET, "/config"),
        (Method::POST, "/-/reload"),
        (Method::GET, "/debug/dead-letters"),
    ] {
        let (status, challenge, _, body) =
            send(&client, &gw, method.clone(), path, Some(&bearer(A))).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{path}: a signal token");
        assert!(challenge.is_none());
        assert!(
            body.contains("\"status\":403") && !body.contains(A),
            "{body}"
        );
        let (status, ..) = send(&client, &gw, method, path, Some(&bearer(ADMIN))).await;
        assert_eq!(status, StatusCode::OK, "{path}: the admin token");
    }
    assert_eq!(failures(&gw, "forbidden"), 3.0);
    assert_eq!(signal(&client, &gw, ADMIN).await, StatusCode::FORBIDDEN);
    assert_eq!(signal(&client, &gw, A).await, StatusCode::CREATED);
    assert_eq!(metric(&gw, "gateway_auth_tokens{file=\"admin\"}"), 1.0);
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kubelet_rotation_from_a_to_b_has_no_gap_and_revokes_a() {
    let root = Root::new();
    let secret = KubeletDir::create(root.path("auth"), &[("tokens", &format!("{A}\n"))]).unwrap();
    let file = secret.file("tokens");
    let gw = Arc::new(
        root.start(&[
            "--auth",
            "token",
            "--auth-token-file",
            file.to_str().unwrap(),
            // Polling for B before it is valid is a stream of 401s from this one peer.
            "--auth-failure-burst",
            "100000",
            "--config-debounce",
            "50ms",
        ])
        .await,
    );
    let client = Client::new();
    assert_eq!(signal(&client, &gw, B).await, StatusCode::UNAUTHORIZED);

    // A sender that always uses a token valid before and after the swap in progress.
    let current = Arc::new(std::sync::Mutex::new(A));
    let running = Arc::new(AtomicBool::new(true));
    let (ok, failed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let sender = tokio::spawn({
        let (gw, client, current, running, ok, failed) = (
            gw.clone(),
            client.clone(),
            current.clone(),
            running.clone(),
            ok.clone(),
            failed.clone(),
        );
        async move {
            while running.load(Ordering::SeqCst) {
                let token = *current.lock().unwrap();
                let status = signal(&client, &gw, token).await;
                if status.is_success() {
                    ok.fetch_add(1, Ordering::SeqCst);
                } else {
                    eprintln!("{status} with the token in force");
                    failed.fetch_add(1, Ordering::SeqCst);
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    });
    let until = |valid: bool, token: &'static str| {
        let (gw, client) = (gw.clone(), client.clone());
        async move {
            let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
            loop {
                let status = signal(&client, &gw, token).await;
                if status.is_success() == valid {
                    assert!(valid || status == StatusCode::UNAUTHORIZED, "{status}");
                    return;
                }
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "still {status} for {token} 5 s after the swap"
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    };

    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(secret.swap(&[("tokens", &format!("{A}\n{B}\n"))]).unwrap());
    until(true, B).await;
    *current.lock().unwrap() = B;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(secret.swap(&[("tokens", &format!("{B}\n"))]).unwrap());
    until(false, A).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    running.store(false, Ordering::SeqCst);
    sender.await.unwrap();
    assert_eq!(
        failed.load(Ordering::SeqCst),
        0,
        "a valid token failed during the swaps"
    );
    assert!(ok.load(Ordering::SeqCst) > 10, "the sender kept sending");
    assert_eq!(
        metric(
            &gw,
            "gateway_auth_token_reloads_total{file=\"signal\",result=\"success\"}"
        ),
        2.0
    );

    // A Secret emptied by mistake keeps the tokens in force (and says so in the metrics).
    assert!(secret.swap(&[("tokens", "# nothing\n")]).unwrap());
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while metric(
        &gw,
        "gateway_auth_token_reloads_total{file=\"signal\",result=\"error\"}",
    ) < 1.0
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the empty file was not judged"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        signal(&client, &gw, B).await.is_success(),
        "B stays in force"
    );
    assert_eq!(signal(&client, &gw, A).await, StatusCode::UNAUTHORIZED);
    Arc::into_inner(gw).expect("the only owner").stop().await;
}

#[tokio::test]
async fn a_burst_of_failures_from_one_peer_is_refused_429_until_the_window_passes() {
    let root = Root::new();
    let tokens = root.file("tokens", &format!("{A}\n"));
    let gw = root
        .start(&[
            "--auth",
            "token",
            "--auth-token-file",
            &tokens,
            "--auth-failure-burst",
            "3",
            "--auth-failure-window",
            "1s",
        ])
        .await;
    let client = Client::new();
    for _ in 0..3 {
        assert_eq!(signal(&client, &gw, B).await, StatusCode::UNAUTHORIZED);
    }
    // Blocked: even the right token is not looked at.
    let (status, challenge, retry, body) = send(
        &client,
        &gw,
        Method::POST,
        SIGNALS,
        Some(&format!("Bearer {A}")),
    )
    .await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
    assert!(challenge.is_none());
    assert_eq!(retry.as_deref(), Some("1"));
    let (status, ..) = send(&client, &gw, Method::GET, "/config", None).await;
    assert_eq!(
        status,
        StatusCode::TOO_MANY_REQUESTS,
        "every guarded endpoint"
    );
    let (status, ..) = send(&client, &gw, Method::GET, "/healthz", None).await;
    assert_eq!(status, StatusCode::OK, "open endpoints stay open");
    assert_eq!(failures(&gw, "rate_limited"), 2.0);
    assert_eq!(failures(&gw, "invalid"), 3.0, "refused without a look");

    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(
        signal(&client, &gw, A).await,
        StatusCode::CREATED,
        "recovered"
    );
    assert_eq!(signal(&client, &gw, B).await, StatusCode::UNAUTHORIZED);
    gw.stop().await;
}

#[tokio::test]
async fn none_is_explicit_and_exported() {
    let root = Root::new();
    let gw = root.start(&["--auth", "none"]).await;
    let client = Client::new();
    let (status, ..) = send(&client, &gw, Method::POST, SIGNALS, None).await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, ..) = send(&client, &gw, Method::GET, "/config", None).await;
    assert_eq!(status, StatusCode::OK);
    let text = client
        .get(format!("{}/metrics", gw.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        text.contains("gateway_auth_mode{mode=\"none\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("gateway_auth_mode{mode=\"token\"} 0"),
        "{text}"
    );
    assert!(
        text.contains("gateway_auth_mode{mode=\"tokenreview\"} 0"),
        "{text}"
    );
    gw.stop().await;
}

#[tokio::test]
async fn the_gateway_refuses_to_start_without_a_mode_or_with_a_bad_token_file() {
    let root = Root::new();
    let args = Cli::try_parse_from(["gateway", "--listen", "127.0.0.1:0"])
        .unwrap()
        .serve;
    let e = gateway::serve::run(args).await.unwrap_err();
    assert!(
        e.to_string()
            .contains("choose --auth token|tokenreview|none"),
        "{e:#}"
    );

    let e = root.try_start(&["--auth", "token"]).await.err().unwrap();
    assert!(e.to_string().contains("--auth-token-file"), "{e:#}");
    let missing = root.path("absent").to_string_lossy().into_owned();
    let e = root
        .try_start(&["--auth", "token", "--auth-token-file", &missing])
        .await
        .err()
        .unwrap();
    assert!(format!("{e:#}").contains(&missing), "{e:#}");
    let empty = root.file("empty", "# no token yet\n\n");
    let e = root
        .try_start(&["--auth", "token", "--auth-token-file", &empty])
        .await
        .err()
        .unwrap();
    assert!(format!("{e:#}").contains("holds no token"), "{e:#}");
    let weak = root.file("weak", "hunter2\n");
    let e = root
        .try_start(&["--auth", "token", "--auth-token-file", &weak])
        .await
        .err()
        .unwrap();
    let shown = format!("{e:#}");
    assert!(
        shown.contains("line 1") && !shown.contains("hunter2"),
        "{shown}"
    );
    let good = root.file("good", &format!("{A}\n"));
    let e = root
        .try_start(&[
            "--auth",
            "token",
            "--auth-token-file",
            &good,
            "--admin-token-file",
            &empty,
        ])
        .await
        .err()
        .unwrap();
    assert!(format!("{e:#}").contains("holds no token"), "{e:#}");
    let e = root
        .try_start(&[
            "--auth",
            "token",
            "--auth-token-file",
            &good,
            "--auth-failure-burst",
            "0",
        ])
        .await
        .err()
        .unwrap();
    assert!(e.to_string().contains("--auth-failure-burst"), "{e:#}");
}

mod in_process {
    //! The router without the accept loop: the authenticator mocked, no `Peer` on requests.

    use std::sync::Arc;
    use std::time::Duration;

    use axum::body::Body;
    use axum::http::{Request, StatusCode, header};
    use gateway::auth::{Auth, FailureLimits};
    use gateway::http::{AppState, RequestLimits, router};
    use gateway_ports::{Action, Denial, MockAuthenticator, Verdict};
    use gateway_tests::{SAMPLE_WEBHOOK, TestGateway};
    use tower::ServiceExt;

    async fn call(app: &axum::Router, method: &str, uri: &str) -> axum::response::Response {
        let mut request = Request::builder()
            .method(method)
            .uri(uri)
            .header(header::AUTHORIZATION, "Bearer some-token-of-a-caller")
            .header(header::CONTENT_TYPE, "application/json");
        if method == "GET" {
            request = request.header(header::ACCEPT, "application/json");
        }
        let body = if uri.starts_with("/api/") {
            Body::from(SAMPLE_WEBHOOK)
        } else {
            Body::empty()
        };
        app.clone()
            .oneshot(request.body(body).unwrap())
            .await
            .unwrap()
    }

    fn app(gw: &TestGateway, mock: MockAuthenticator, limits: FailureLimits) -> axum::Router {
        // The base state first: each `Auth` built sets `gateway_auth_mode`, the last one wins.
        let base = gw.state();
        let state = AppState {
            auth: Auth::new(Arc::new(mock), limits, gw.gateway.metrics()),
            ..base
        };
        router(state, &RequestLimits::default())
    }

    #[tokio::test]
    async fn each_route_asks_its_action_and_an_unavailable_authority_fails_closed() {
        let gw = TestGateway::new();
        let mut mock = MockAuthenticator::new();
        mock.expect_mode().return_const("tokenreview");
        mock.expect_authenticate().returning(|token, action| {
            assert_eq!(token, "some-token-of-a-caller");
            match action {
                Action::SendSignals => Verdict::Denied(Denial::Unavailable),
                Action::ReadConfig => Verdict::Allowed {
                    subject: "system:serviceaccount:monitoring:alertmanager".into(),
                },
                Action::Reload => Verdict::Denied(Denial::Forbidden),
            }
        });
        let app = app(&gw, mock, FailureLimits::default());

        let refused = call(&app, "POST", "/api/v1/signals/prometheus").await;
        assert_eq!(refused.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(refused.headers()[header::RETRY_AFTER], "5");
        assert!(gw.remediations().is_empty(), "nothing recorded when unsure");
        assert_eq!(call(&app, "GET", "/config").await.status(), StatusCode::OK);
        assert_eq!(
            call(&app, "GET", "/debug/dead-letters").await.status(),
            StatusCode::OK
        );
        // Not reloadable here (404 if it got through): the layer answered first.
        assert_eq!(
            call(&app, "POST", "/-/reload").await.status(),
            StatusCode::FORBIDDEN
        );
        let text = gw.gateway.metrics_text();
        for series in [
            "gateway_auth_mode{mode=\"tokenreview\"} 1",
            "gateway_auth_failures_total{reason=\"unavailable\"} 1",
            "gateway_auth_failures_total{reason=\"forbidden\"} 1",
        ] {
            assert!(text.contains(series), "{series} in\n{text}");
        }
    }

    #[tokio::test]
    async fn requests_without_a_peer_address_are_one_unknown_peer() {
        let gw = TestGateway::new();
        let mut mock = MockAuthenticator::new();
        mock.expect_mode().return_const("token");
        mock.expect_authenticate()
            .times(2)
            .returning(|_, _| Verdict::Denied(Denial::Invalid));
        let limits = FailureLimits::new(2, Duration::from_secs(60), 10).unwrap();
        let app = app(&gw, mock, limits);
        for _ in 0..2 {
            let answer = call(&app, "POST", "/api/v1/signals/prometheus").await;
            assert_eq!(answer.status(), StatusCode::UNAUTHORIZED);
        }
        let blocked = call(&app, "GET", "/config").await;
        assert_eq!(blocked.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(blocked.headers()[header::RETRY_AFTER], "60");
    }
}
