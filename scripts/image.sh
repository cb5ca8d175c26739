#!/usr/bin/env bash
# Builds the gateway's image, and with --smoke runs it the way the Deployment does.
#
#   scripts/image.sh [--from-source] [--smoke] [--tag IMAGE]
#
# By default nothing is pulled: scripts/build-static.sh builds the static binary on this host
# (release build, target/<host triple>/release), and the image is built from the Dockerfile's own
# runtime stage (the lines below its "---- runtime" marker, verbatim) on top of a FROM-scratch
# stage holding that binary. The Dockerfile's build stage runs the same script, so both images
# hold the same thing. --from-source runs `docker build .` on the Dockerfile instead (it pulls
# the Rust image: for machines with registry access).
#
# --smoke, on a read-only root filesystem as uid 65532 (like the Deployment's securityContext):
# `--version`; `config check` on deploy/config; serving: /healthz, /readyz, /metrics, /config,
# the sample Alertmanager webhook answered 201, Redis (the tests' local image,
# tests/images/redis/build.sh) reached by a DNS name from inside the image (static glibc), and a
# clean exit on SIGTERM. The image tag defaults to kubernaut/gateway:local.
set -euo pipefail
cd "$(dirname "$0")/.."

image="kubernaut/gateway:local"
from_source=false
smoke=false
while [ $# -gt 0 ]; do
  case "$1" in
    --from-source) from_source=true ;;
    --smoke) smoke=true ;;
    --tag) image="${2:?--tag needs an image name}"; shift ;;
    -h | --help) sed -n '2,17p' "$0"; exit 0 ;;
    *) echo "usage: $0 [--from-source] [--smoke] [--tag IMAGE]" >&2; exit 2 ;;
  esac
  shift
done

log() { echo "image: $*" >&2; }
command -v docker >/dev/null || { log "docker is missing"; exit 1; }
# BuildKit when the buildx plugin is there; else the classic builder (Debian's docker.io).
docker buildx version >/dev/null 2>&1 || export DOCKER_BUILDKIT=0

ctx=""
container=""
redis=""
network=""
cleanup() {
  if [ -n "$container" ]; then docker rm -f "$container" >/dev/null 2>&1 || true; fi
  if [ -n "$redis" ]; then docker rm -f "$redis" >/dev/null 2>&1 || true; fi
  if [ -n "$network" ]; then docker network rm "$network" >/dev/null 2>&1 || true; fi
  if [ -n "$ctx" ]; then rm -rf "$ctx"; fi
}
trap cleanup EXIT

# The image this build replaces, removed afterwards unless something else still uses it.
previous_id="$(docker image inspect -f '{{.Id}}' "$image" 2>/dev/null || true)"
if $from_source; then
  log "docker build -t $image . (pulls the Rust image)"
  docker build -t "$image" .
else
  ctx="$(mktemp -d)"
  scripts/build-static.sh "$ctx/out"
  marker='^# ---- runtime'
  grep -q "$marker" Dockerfile || { log "Dockerfile has no '# ---- runtime' marker"; exit 1; }
  {
    echo "# The host-built root filesystem (scripts/build-static.sh), standing in for the build stage."
    echo "FROM scratch AS build"
    echo "COPY out/ /out/"
    echo
    sed -n "/$marker/,\$p" Dockerfile
  } >"$ctx/Dockerfile"
  log "docker build -t $image (runtime stage of the Dockerfile, host-built binary; nothing pulled)"
  docker build -q -t "$image" "$ctx" >/dev/null
fi
if [ -n "$previous_id" ] && [ "$previous_id" != "$(docker image inspect -f '{{.Id}}' "$image")" ]; then
  docker rmi "$previous_id" >/dev/null 2>&1 || true
fi
log "built $image ($(docker image inspect -f '{{.Size}}' "$image" | awk '{printf "%.1f MB", $1/1e6}'))"

$smoke || exit 0

# ---- smoke test ----
fail() { log "smoke FAILED: $*"; if [ -n "$container" ]; then docker logs "$container" >&2 || true; fi; exit 1; }
# As the Deployment runs it: read-only root, nonroot, no capabilities, no privilege escalation.
run_flags=(--read-only --user 65532:65532 --cap-drop ALL --security-opt no-new-privileges)

version="$(docker run --rm "${run_flags[@]}" "$image" --version)" || fail "--version"
log "--version: $version"
[ "$version" = "gateway $(sed -n 's/^version = "\(.*\)"/\1/p' app/Cargo.toml | head -n1)" ] ||
  fail "unexpected version '$version'"

config="$(pwd)/deploy/config"
docker run --rm "${run_flags[@]}" -v "$config:/etc/kubernaut/config:ro" "$image" \
  config check /etc/kubernaut/config >/dev/null || fail "config check of deploy/config"

# Serving, with Redis reached by a DNS name (Docker's resolver on a network of its own, as a
# Service name in a cluster): a static glibc binary in an empty image must resolve it. The
# directory sink writes RemediationRequests to a tmpfs (the Deployment's kubernetes sink writes
# nothing locally).
bash tests/images/redis/build.sh
network="kubernaut-smoke-$$"
redis="kubernaut-smoke-redis-$$"
docker network create "$network" >/dev/null
docker run -d --rm --network "$network" --name "$redis" kubernaut-test/redis:local >/dev/null
container="$(docker run -d "${run_flags[@]}" --network "$network" \
  --tmpfs /tmp:rw,size=16m,uid=65532,gid=65532,mode=0700 \
  -v "$config:/etc/kubernaut/config:ro" \
  -e GATEWAY_LOG_FORMAT=json \
  -p 127.0.0.1::8080 "$image" \
  --auth none --remediation-dir /tmp/remediations --shutdown-delay 1s \
  --redis-url "redis://$redis:6379/0")" || fail "docker run"
port="$(docker port "$container" 8080/tcp | head -n1 | sed 's/.*://')"
base="http://127.0.0.1:$port"

for _ in $(seq 1 100); do
  curl -fsS "$base/readyz" >/dev/null 2>&1 && break
  sleep 0.1
done
curl -fsS "$base/healthz" | grep -q '"ok"' || fail "/healthz"
curl -fsS "$base/readyz" | grep -q '"ready"' || fail "/readyz: $(curl -sS "$base/readyz")"
metrics="$(curl -fsS "$base/metrics")"
grep -q '^gateway_build_info' <<<"$metrics" || fail "/metrics has no gateway_build_info"
grep -q '^gateway_redis_available 1' <<<"$metrics" || fail "Redis at $redis not available"
curl -fsS "$base/config" | grep -q 'storm.yaml' || fail "/config does not name the mounted storm.yaml"
status="$(curl -sS -o /dev/null -w '%{http_code}' -X POST -H 'Content-Type: application/json' \
  --data-binary @domain/signal/testdata/alertmanager-webhook.json "$base/api/v1/signals/prometheus")"
[ "$status" = 201 ] || fail "the sample webhook was answered $status, not 201"
log "served on a read-only root as 65532: /healthz, /readyz, /metrics, /config, webhook 201, Redis by DNS name"

docker stop -t 20 "$container" >/dev/null
code="$(docker inspect -f '{{.State.ExitCode}}' "$container")"
[ "$code" = 0 ] || fail "exit status $code after SIGTERM"
docker logs "$container" 2>&1 | grep -q '"gateway stopped"' || fail "no 'gateway stopped' log line"
log "smoke ok: $image (clean exit on SIGTERM)"
