//! libFuzzer target: `gateway_fuzz::alertmanager` (fuzz/src/lib.rs says what it checks).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| gateway_fuzz::alertmanager(data));
