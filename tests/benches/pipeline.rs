//! The request path, measured against its own parsing step in the same run.
//!
//! - `parse`: `parse_alertmanager` of the 3-alert sample webhook (the baseline);
//! - `duplicate`: the same webhook through the router when every alert is already known
//!   (parse + dedup + answer: the path an alert storm mostly takes);
//! - `create`: a webhook of 3 new alerts through the router, each written as a YAML file.
//!
//! Compare `duplicate / parse` and `create / parse`: the ratios survive a change of machine.
//! Run: `cargo bench -p gateway-tests --bench pipeline` (or `just bench`).

#![allow(clippy::unwrap_used)]
#![allow(clippy::disallowed_methods)] // benchmarks measure real time

use std::sync::atomic::{AtomicU64, Ordering};

use axum::body::Body;
use axum::http::Request;
use criterion::{Criterion, criterion_group, criterion_main};
use gateway_adapter_memory::StaticConfigSource;
use gateway_ports::Timestamp;
use gateway_ports::settings::{RawStormSettings, Threshold};
use gateway_tests::{SAMPLE_WEBHOOK, TestGateway, alert, webhook};
use tower::ServiceExt;

fn post(body: impl Into<Body>) -> Request<Body> {
    Request::post("/api/v1/signals/prometheus")
        .header("content-type", "application/json")
        .body(body.into())
        .unwrap()
}

fn bench(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    // Storm thresholds out of reach: `create` measures creation, not aggregation.
    let config = StaticConfigSource::default();
    let calm = RawStormSettings {
        rate_threshold: Threshold::MAX,
        pattern_threshold: Threshold::MAX,
        ..Default::default()
    };
    config.set_storm(calm.validate().unwrap());
    let gw = TestGateway::with_config(config);
    let router = gw.router();
    runtime
        .block_on(router.clone().oneshot(post(SAMPLE_WEBHOOK)))
        .unwrap();

    let mut group = c.benchmark_group("request_path");
    group.bench_function("parse", |b| {
        b.iter(|| {
            gateway_signal::parse_alertmanager(
                std::hint::black_box(SAMPLE_WEBHOOK),
                Timestamp::EPOCH,
            )
            .unwrap()
        })
    });
    group.bench_function("duplicate", |b| {
        b.iter(|| {
            let response = runtime
                .block_on(router.clone().oneshot(post(SAMPLE_WEBHOOK)))
                .unwrap();
            assert_eq!(response.status(), 202);
        })
    });
    let n = AtomicU64::new(0);
    group.bench_function("create", |b| {
        b.iter_batched(
            || {
                let i = n.fetch_add(1, Ordering::Relaxed);
                let alerts = (0..3)
                    .map(|k| alert(&format!("Bench{k}"), "bench", &format!("pod-{i}"), "firing"))
                    .collect();
                webhook(alerts).to_string()
            },
            |body| {
                let response = runtime
                    .block_on(router.clone().oneshot(post(body)))
                    .unwrap();
                assert_eq!(response.status(), 201);
            },
            criterion::BatchSize::SmallInput,
        )
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
