# The gateway's everyday commands; `just --list` is the manual.
# (`just` is on PyPI: `pip install rust-just`.)

# Run the gateway on embedded defaults (in-memory dedup, RemediationRequests as YAML in ./remediations), without authentication
run *ARGS:
    cargo run -p gateway -- --auth none --listen 127.0.0.1:8080 --config-dir deploy/config {{ARGS}}

# Run every test: unit, property, integration (the README's test command; builds the Redis image)
test *ARGS: redis-image
    scripts/test.sh {{ARGS}}

# Build the Redis image the tests run (kubernaut-test/redis:local, from Debian's redis-server; nothing pulled)
redis-image:
    bash tests/images/redis/build.sh

# Lint: formatting check and clippy with warnings as errors
lint:
    cargo fmt --all -- --check
    cargo clippy --workspace --all-targets -- -D warnings

# Supply chain: licenses, bans (wildcards, duplicates) and sources of the dependency tree (deny.toml; advisories need the network: `cargo deny check advisories`)
deny:
    cargo deny check bans licenses sources

# Format the whole workspace
fmt:
    cargo fmt --all

# Run the benchmarks: request path, settings reads (criterion) and hot-reload latency/throughput
bench:
    cargo bench -p gateway-tests --bench pipeline
    cargo bench -p gateway-tests --bench auth
    cargo bench -p gateway-tests --bench settings_read
    cargo bench -p gateway-tests --bench hot_reload
    cargo bench -p gateway-tests --bench redis

# What --auth token costs against --auth none end to end (release build, wrk, pinned cores)
bench-auth *ARGS:
    bash scripts/bench-auth.sh {{ARGS}}

# Where a new alert's CPU time goes: perf on the profiling build, STATE memory|embedded|redis (needs perf, wrk)
profile STATE="memory" *ARGS:
    bash scripts/profile.sh {{STATE}} {{ARGS}}

# The gateway against Alertmanager 0.25 under the same load, one run: new, repeats, batches, storm, reload, Redis baseline, fixed-rate p99, RSS per alert (release build, wrk, pinned cores; BENCHMARKS.md)
bench-load *ARGS:
    bash scripts/bench-load.sh {{ARGS}}

# How much Redis the gateway needs: commands, round trips, bytes, CPU and memory per signal (new, repeat, storm) against one redis-server, and the shards and replicas a rate needs (release build; docs/sizing.md)
redis-sizing *ARGS:
    bash scripts/redis-sizing.sh {{ARGS}}

# Fuzz the three parsers (webhook, Kubernetes event, settings) SECONDS each, one after another, and minimize the corpus into fuzz/corpus (needs nightly and cargo-fuzz)
fuzz SECONDS="600" *TARGETS:
    scripts/fuzz.sh {{SECONDS}} {{TARGETS}}

# Validate a config directory offline, like the ConfigMap's own CI would
check-config DIR="deploy/config":
    cargo run -q -p gateway -- config check {{DIR}}

# Replay recorded signals through a config directory offline and report storms, aggregates, RemediationRequests and API writes (e.g. --config deploy/config --compare DIR2 FILE); writes nothing
replay *ARGS:
    cargo run -q -p gateway -- replay {{ARGS}}

# Build the gateway's image (kubernaut/gateway:local) from a host-built static binary and the Dockerfile's runtime stage; nothing pulled
image *ARGS:
    bash scripts/image.sh {{ARGS}}

# Build the image and run it read-only as 65532: --version, config check, serving with Redis, clean SIGTERM
image-smoke:
    bash scripts/image.sh --smoke

# Render the Kustomize base (deploy/); `tests/it/deploy_manifests.rs` checks it
render:
    kubectl kustomize deploy/

# deploy/ on a throwaway kind cluster: webhook -> RemediationRequest, ConfigMap hot reload (needs Docker, kind, registry access)
e2e-kind:
    bash scripts/e2e-kind.sh

# Run what CI runs
ci:
    bash .ci/run
