# The gateway's everyday commands; `just --list` is the manual.
# (`just` is on PyPI: `pip install rust-just`.)

# Run the gateway on embedded defaults (in-memory dedup, RemediationRequests as YAML in ./remediations)
run *ARGS:
    cargo run -p gateway -- --listen 127.0.0.1:8080 --config-dir deploy/config {{ARGS}}

# Run every test: unit, property, integration (the README's test command)
test:
    cargo test --workspace

# Lint: formatting check and clippy with warnings as errors
lint:
    cargo fmt --all -- --check
    cargo clippy --workspace --all-targets -- -D warnings

# Format the whole workspace
fmt:
    cargo fmt --all

# Run the benchmarks: request path, settings reads (criterion) and hot-reload latency/throughput
bench:
    cargo bench -p gateway-tests --bench pipeline
    cargo bench -p gateway-tests --bench settings_read
    cargo bench -p gateway-tests --bench hot_reload

# Validate a config directory offline, like the ConfigMap's own CI would
check-config DIR="deploy/config":
    cargo run -q -p gateway -- config check {{DIR}}

# Run what CI runs
ci:
    bash .ci/run
