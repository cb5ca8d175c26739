#!/usr/bin/env bash
# The whole test suite (the README's test command): installs kubectl, promtool, Prometheus,
# Alertmanager, redis-server and redis-cli when missing (scripts/test-tools.sh), builds the Redis
# test image when needed, then `cargo test --workspace` with any extra arguments, e.g.
#   scripts/test.sh --locked
#   scripts/test.sh -p gateway-tests --test it redis_container   (packages named: no --workspace)
#
# The Redis tests run GATEWAY_TEST_REDIS_IMAGE. Unset, this script builds the local image
# kubernaut-test/redis:local from Debian's redis-server package (tests/images/redis/build.sh:
# nothing is pulled) and uses it. Set it (e.g. to redis:7 on a machine that can pull) to skip
# the build. Plain `cargo test --workspace` uses redis:7.
set -euo pipefail
cd "$(dirname "$0")/.."

# kubectl, promtool, Prometheus, Alertmanager, redis-server and redis-cli, from Debian's packages
# when missing.
bash scripts/test-tools.sh

if [ -z "${GATEWAY_TEST_REDIS_IMAGE:-}" ]; then
  bash tests/images/redis/build.sh
  export GATEWAY_TEST_REDIS_IMAGE=kubernaut-test/redis:local
fi

# The whole workspace, unless the arguments choose packages (`-p gateway-tests`).
scope=(--workspace)
# The chaos suite runs the gateway binary as a child process: built first, with the tests'
# profile (`--release` / `--profile NAME` among the arguments), its path exported.
profile=debug
build_args=()
expect_profile=false
for arg in "$@"; do
  if $expect_profile; then
    profile=$arg; build_args+=(--profile "$arg"); expect_profile=false; continue
  fi
  case "$arg" in
    -p | -p* | --package | --package=*) scope=() ;;
    -r | --release) profile=release; build_args+=(--release) ;;
    --profile) expect_profile=true ;;
    --profile=*) profile=${arg#--profile=}; build_args+=(--profile "$profile") ;;
    --locked | --frozen | --offline) build_args+=("$arg") ;;
    --) break ;;
  esac
done
case "$profile" in dev | test) profile=debug ;; bench) profile=release ;; esac
cargo build -p gateway --bin gateway "${build_args[@]}"
target_dir=$(cargo metadata --format-version 1 --no-deps | sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')
export GATEWAY_BIN="$target_dir/$profile/gateway"

exec cargo test "${scope[@]}" "$@"
