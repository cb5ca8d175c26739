//! The cost of reading settings on the request path, against a plain `Arc` clone measured in the
//! same run (the least any shared-settings design can cost).
//!
//! - `arc_clone`: `Arc::clone` of a `StormSettings` (baseline);
//! - `storm`: `ConfigSource::storm()` on the arc-swap cell every source uses;
//! - `snapshot`: `ConfigSourceExt::snapshot()`, every type (what one request takes);
//! - `storm_while_reloading`: `storm()` while another thread replaces the settings in a loop.
//!
//! Run: `cargo bench -p gateway-tests --bench settings_read`.

#![allow(clippy::unwrap_used)]
#![allow(clippy::disallowed_methods)] // benchmarks measure real time

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use criterion::{Criterion, criterion_group, criterion_main};
use gateway_ports::settings::RawStormSettings;
use gateway_ports::{ConfigSource, ConfigSourceExt, SettingsCell, StormSettings};

fn bench(c: &mut Criterion) {
    let cell = Arc::new(SettingsCell::default());
    let plain = Arc::new(StormSettings::default());
    let mut group = c.benchmark_group("settings_read");
    group.bench_function("arc_clone", |b| {
        b.iter(|| std::hint::black_box(Arc::clone(&plain)))
    });
    group.bench_function("storm", |b| b.iter(|| std::hint::black_box(cell.storm())));
    group.bench_function("snapshot", |b| {
        b.iter(|| std::hint::black_box(cell.snapshot()))
    });

    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (cell, stop) = (cell.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut n = 1;
            while !stop.load(Ordering::Relaxed) {
                let raw = RawStormSettings {
                    rate_threshold: n,
                    ..Default::default()
                };
                cell.set_storm(raw.validate().unwrap());
                n = n % 1000 + 1;
            }
        })
    };
    group.bench_function("storm_while_reloading", |b| {
        b.iter(|| std::hint::black_box(cell.storm()))
    });
    stop.store(true, Ordering::Relaxed);
    writer.join().unwrap();
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
