#!/usr/bin/env bash
# The whole test suite (the README's test command): installs kubectl and promtool when missing
# (scripts/test-tools.sh), builds the Redis test image when needed,
# then `cargo test --workspace` with any extra arguments, e.g.
#   scripts/test.sh --locked
#   scripts/test.sh -p gateway-tests --test it redis_container   (packages named: no --workspace)
#
# The Redis tests run GATEWAY_TEST_REDIS_IMAGE. Unset, this script builds the local image
# kubernaut-test/redis:local from Debian's redis-server package (tests/images/redis/build.sh:
# nothing is pulled) and uses it. Set it (e.g. to redis:7 on a machine that can pull) to skip
# the build. Plain `cargo test --workspace` uses redis:7.
set -euo pipefail
cd "$(dirname "$0")/.."

# kubectl and promtool, from Debian's packages when missing.
bash scripts/test-tools.sh

if [ -z "${GATEWAY_TEST_REDIS_IMAGE:-}" ]; then
  bash tests/images/redis/build.sh
  export GATEWAY_TEST_REDIS_IMAGE=kubernaut-test/redis:local
fi

# The whole workspace, unless the arguments choose packages (`-p gateway-tests`).
scope=(--workspace)
for arg in "$@"; do
  case "$arg" in
    -p | -p* | --package | --package=*) scope=() ;;
  esac
done

exec cargo test "${scope[@]}" "$@"
