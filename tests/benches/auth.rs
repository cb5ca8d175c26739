//! What authentication costs on the duplicate path (the path an alert storm mostly takes): the
//! same one-alert webhook, already known, through the router with `--auth none` and with
//! `--auth token` (three tokens in the file, as during a rotation; the one sent is the last),
//! measured in the same run. Report `token / none` (throughput ratio = inverse of the time
//! ratio); the aim is a throughput ratio of at least 0.95.
//! Run: `cargo bench -p gateway-tests --bench auth`.

#![allow(clippy::unwrap_used)]
#![allow(clippy::disallowed_methods)] // benchmarks measure real time

use std::sync::Arc;

use axum::body::Body;
use axum::http::Request;
use criterion::{Criterion, criterion_group, criterion_main};
use gateway::auth::{Auth, FailureLimits};
use gateway::http::{AppState, RequestLimits, router};
use gateway_adapter_file_config::{TokenAuthenticator, TokenFile};
use gateway_tests::{TestGateway, alert, webhook};
use tower::ServiceExt;

const TOKEN: &str = "c2VuZGVyLXRva2VuLWZvci10aGUtYmVuY2g";

fn post(body: &str, token: &str) -> Request<Body> {
    Request::post("/api/v1/signals/prometheus")
        .header("content-type", "application/json")
        .header("authorization", format!("Bearer {token}"))
        .body(Body::from(body.to_owned()))
        .unwrap()
}

fn bench(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let gw = TestGateway::new();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("tokens");
    std::fs::write(
        &file,
        format!("old:b2xkLXRva2VuLXN0aWxsLXZhbGlkLWR1cmluZy1yb3RhdGlvbg\nother:b3RoZXItc2VuZGVyLXRva2VuLTEyMzQ1Njc4\nsender:{TOKEN}\n"),
    )
    .unwrap();
    let tokens = TokenAuthenticator::new(Arc::new(TokenFile::load(&file).unwrap()), None);
    let metrics = gw.gateway.metrics();
    let routers = [
        ("none", gw.router()),
        (
            "token",
            router(
                AppState {
                    gateway: gw.gateway.clone(),
                    control: None,
                    auth: Auth::new(Arc::new(tokens), FailureLimits::default(), metrics),
                },
                &RequestLimits::default(),
            ),
        ),
    ];
    let body = webhook(vec![alert("BenchAuth", "bench", "pod-0", "firing")]).to_string();
    let first = runtime
        .block_on(routers[0].1.clone().oneshot(post(&body, TOKEN)))
        .unwrap();
    assert_eq!(first.status(), 201);

    let mut group = c.benchmark_group("auth_duplicate");
    for (mode, router) in &routers {
        group.bench_function(*mode, |b| {
            b.iter(|| {
                let response = runtime
                    .block_on(router.clone().oneshot(post(&body, TOKEN)))
                    .unwrap();
                assert_eq!(response.status(), 202);
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
