#!/usr/bin/env bash
# Builds the Redis image the integration tests run (`kubernaut-test/redis:local`) from Debian's
# `redis-server` package, without pulling anything: the host's binary, every library `ldd` lists
# and the dynamic loader, copied into a `FROM scratch` image.
#
# Idempotent: the image carries the sha256 of the redis-server binary as a label, and is not
# rebuilt while that label matches. After a build the image is checked (started, answers PING on
# its mapped port, removed); `--check` runs that check on an existing image too.
#
#   bash tests/images/redis/build.sh [--check]

set -euo pipefail

IMAGE=kubernaut-test/redis:local
BINARY=/usr/bin/redis-server
LABEL=io.kubernaut.test.redis-server.sha256

check=false
case "${1:-}" in
  --check) check=true ;;
  "") ;;
  *) echo "usage: $0 [--check]" >&2; exit 2 ;;
esac

log() { echo "redis-image: $*" >&2; }

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

# What an interrupted run leaves behind: the build context, the check's container.
ctx=""
check_container=""
cleanup() {
  if [ -n "$check_container" ]; then docker rm -f "$check_container" >/dev/null 2>&1 || true; fi
  if [ -n "$ctx" ]; then rm -rf "$ctx"; fi
}
trap cleanup EXIT

# 1. The binary, from Debian's package.
if [ ! -x "$BINARY" ]; then
  log "installing redis-server (apt-get)"
  export DEBIAN_FRONTEND=noninteractive
  # Refresh the package lists only when they do not know the package.
  if ! apt-cache policy redis-server 2>/dev/null | grep -q 'Candidate: [0-9]'; then
    as_root apt-get update -qq
  fi
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    redis-server >/dev/null
fi

sha="$(sha256sum "$(readlink -f "$BINARY")" | cut -d' ' -f1)"

# A Redis in the image answers PING on its mapped port within a few seconds.
self_check() {
  local port reply="" i
  check_container="$(docker run --rm -d -p 127.0.0.1::6379 "$IMAGE")"
  port="$(docker port "$check_container" 6379/tcp | head -n1 | sed 's/.*://')"
  for i in $(seq 1 50); do
    # In a subshell: a refused connection or a broken pipe must not end (or redirect) this shell.
    reply="$( (exec 3<>"/dev/tcp/127.0.0.1/$port" && printf 'PING\r\n' >&3 &&
      IFS= read -r -t 1 line <&3 && printf '%s' "${line%$'\r'}") 2>/dev/null || true)"
    [ "$reply" = "+PONG" ] && break
    sleep 0.1
  done
  if [ "$reply" != "+PONG" ]; then
    log "check FAILED: no PONG from $IMAGE on 127.0.0.1:$port; container logs:"
    docker logs "$check_container" >&2 || true
    return 1
  fi
  docker rm -f "$check_container" >/dev/null
  check_container=""
  log "check ok: $IMAGE answered PONG on 127.0.0.1:$port (try $i)"
}

# 2. Skip when the image already holds this binary.
current="$(docker image inspect -f "{{ index .Config.Labels \"$LABEL\" }}" "$IMAGE" 2>/dev/null || true)"
previous_id="$(docker image inspect -f '{{.Id}}' "$IMAGE" 2>/dev/null || true)"
if [ "$current" = "$sha" ]; then
  log "$IMAGE is up to date (redis-server sha256 ${sha:0:12})"
  if $check; then self_check; fi
  exit 0
fi

# 3. The build context: binary, libraries, loader, Dockerfile.
log "building $IMAGE from $(readlink -f "$BINARY") ($("$BINARY" --version | sed -n "s/.* v=\([^ ]*\).*/\1/p"))"
ctx="$(mktemp -d)"

mkdir -p "$ctx/rootfs/usr/bin" "$ctx/rootfs/data"
cp -L "$BINARY" "$ctx/rootfs/usr/bin/redis-server"

# `ldd` lines: "libx.so => /path/libx.so (0x...)", "/lib64/ld-linux-x86-64.so.2 (0x...)",
# "linux-vdso.so.1 (0x...)" (in the kernel: nothing to copy).
if ldd "$BINARY" | grep -q 'not found'; then
  log "redis-server misses libraries:"; ldd "$BINARY" | grep 'not found' >&2; exit 1
fi
libdirs=()
while read -r path; do
  mkdir -p "$ctx/rootfs$(dirname "$path")"
  cp -L "$path" "$ctx/rootfs$path"
  libdirs+=("$(dirname "$path")")
done < <(ldd "$BINARY" | awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }' | sort -u)
# The loader has no ld.so.cache in the image: tell it where the libraries are.
ld_path="$(printf '%s\n' "${libdirs[@]}" | sort -u | paste -sd: -)"

cat >"$ctx/Dockerfile" <<DOCKERFILE
FROM scratch
COPY rootfs/ /
ENV LD_LIBRARY_PATH=$ld_path
LABEL $LABEL="$sha" \\
      org.opencontainers.image.description="redis-server from Debian's package, for the gateway's tests"
WORKDIR /data
EXPOSE 6379
ENTRYPOINT ["/usr/bin/redis-server"]
CMD ["--port", "6379", "--bind", "0.0.0.0", "--protected-mode", "no", "--save", "", "--appendonly", "no"]
DOCKERFILE

# BuildKit when the buildx plugin is there; else the classic builder (Debian's docker.io).
docker buildx version >/dev/null 2>&1 || export DOCKER_BUILDKIT=0
docker build -q -t "$IMAGE" "$ctx" >/dev/null 2>"$ctx/build.log" || {
  cat "$ctx/build.log" >&2
  exit 1
}

# 4. A broken image must not stay tagged (the next run would skip it).
if ! self_check; then
  docker rmi -f "$IMAGE" >/dev/null 2>&1 || true
  exit 1
fi
# The image this one replaces, unless something else still uses it.
if [ -n "$previous_id" ] && [ "$previous_id" != "$(docker image inspect -f '{{.Id}}' "$IMAGE")" ]; then
  docker rmi "$previous_id" >/dev/null 2>&1 || true
fi
log "built $IMAGE ($(docker image inspect -f '{{.Size}}' "$IMAGE" | awk '{printf "%.1f MB", $1/1e6}'))"
