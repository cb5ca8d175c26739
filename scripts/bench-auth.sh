#!/usr/bin/env bash
# What authentication costs: the duplicate path (one alert, sent again and again) with
# `--auth token` against `--auth none`, in one run, as a ratio. The gateway (release build,
# `--state memory`, RemediationRequests on tmpfs) is pinned to CPU 0 and wrk to CPU 1; each
# round runs both modes back to back, and the median of the rounds' ratios is reported. Both
# modes get the same request bytes (the Authorization header included), so only the check
# differs. On a shared VM a round's ratio varies by about ±20%: for the check's own cost, the
# criterion bench `cargo bench -p gateway-tests --bench auth` is the precise figure.
#
#   scripts/bench-auth.sh [SECONDS_PER_RUN] [ROUNDS]     (defaults 5 and 9)
#
# Installs wrk from Debian when missing. Loopback only.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=${1:-5}
rounds=${2:-9}
connections=32

if ! command -v wrk >/dev/null; then
  echo "bench-auth: installing wrk (Debian)" >&2
  sudo=""; [ "$(id -u)" = 0 ] || sudo=sudo
  $sudo apt-get install -y --no-install-recommends wrk >/dev/null
fi

cargo build --release -q -p gateway --bin gateway
bin=target/release/gateway

work=$(mktemp -d /dev/shm/bench-auth.XXXXXX)
gateway_pid=""
cleanup() {
  if [ -n "$gateway_pid" ]; then kill "$gateway_pid" 2>/dev/null || true; wait "$gateway_pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

token=$(head -c 32 /dev/urandom | base64 | tr -d '/+=' | head -c 40)
# Three tokens, as during a rotation: the one used is the last compared.
{
  echo "# bench tokens"
  head -c 32 /dev/urandom | base64 | tr -d '/+=' | head -c 40; echo
  head -c 32 /dev/urandom | base64 | tr -d '/+=' | head -c 40; echo
  echo "$token"
} >"$work/tokens"

cat >"$work/post.lua" <<EOF
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer $token"
wrk.body = '{"receiver":"bench","status":"firing","alerts":[{"status":"firing","labels":{"alertname":"BenchRepeated","namespace":"bench","pod":"bench-0","severity":"warning"},"annotations":{},"startsAt":"2026-01-01T00:00:00Z","fingerprint":"bench"}]}'
EOF

port=18089
base="http://127.0.0.1:$port"

start_gateway() { # MODE
  local mode=$1
  local auth=(--auth none)
  [ "$mode" = token ] && auth=(--auth token --auth-token-file "$work/tokens")
  rm -rf "$work/rr" "$work/state"
  taskset -c 0 "$bin" --listen "127.0.0.1:$port" --config-dir deploy/config --state memory \
    --remediation-dir "$work/rr" --log-format json "${auth[@]}" >"$work/gateway-$mode.log" 2>&1 &
  gateway_pid=$!
  for _ in $(seq 100); do
    curl -fsS "$base/readyz" >/dev/null 2>&1 && break
    sleep 0.1
  done
  curl -fsS "$base/readyz" >/dev/null
  # The first send creates the RemediationRequest; every later one is a duplicate.
  curl -fsS -o /dev/null -X POST -H 'Content-Type: application/json' -H "Authorization: Bearer $token" \
    --data "$(sed -n "s/^wrk.body = '\(.*\)'$/\1/p" "$work/post.lua")" "$base/api/v1/signals/prometheus"
}

stop_gateway() {
  kill "$gateway_pid"; wait "$gateway_pid" 2>/dev/null || true; gateway_pid=""
}

run() { # MODE -> prints "req/s p99_ms"
  local mode=$1
  start_gateway "$mode"
  # Warm-up, then the measured run.
  taskset -c 1 wrk -t1 -c"$connections" -d2s -s "$work/post.lua" "$base/api/v1/signals/prometheus" >/dev/null
  local out
  out=$(taskset -c 1 wrk -t2 -c"$connections" -d"${seconds}s" --latency -s "$work/post.lua" "$base/api/v1/signals/prometheus")
  stop_gateway
  if echo "$out" | grep -q "Non-2xx"; then
    echo "bench-auth: $mode: non-2xx answers:" >&2; echo "$out" >&2; exit 1
  fi
  local rps p99
  rps=$(echo "$out" | awk '/Requests\/sec/ {print $2}')
  p99=$(echo "$out" | awk '$1 == "99%" {print $2}')
  echo "$rps $p99"
}

median() { sort -n | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }

declare -a none_rps token_rps ratios
echo "round  none req/s (p99)      token req/s (p99)     token/none"
for r in $(seq "$rounds"); do
  # Each round measures both modes back to back (the order alternating), and its ratio is
  # what is kept: drift of the machine between rounds cancels out.
  if [ $((r % 2)) = 1 ]; then order="none token"; else order="token none"; fi
  for mode in $order; do
    read -r rps p99 < <(run "$mode")
    if [ "$mode" = none ]; then none_rps+=("$rps"); none_p99=$p99; else token_rps+=("$rps"); token_p99=$p99; fi
  done
  ratio=$(awk -v t="${token_rps[-1]}" -v n="${none_rps[-1]}" 'BEGIN {printf "%.3f", t / n}')
  ratios+=("$ratio")
  printf '%-6s %-10s %-12s %-10s %-12s %s\n' "$r" "${none_rps[-1]}" "($none_p99)" "${token_rps[-1]}" "($token_p99)" "$ratio"
done
none_median=$(printf '%s\n' "${none_rps[@]}" | median)
token_median=$(printf '%s\n' "${token_rps[@]}" | median)
ratio_median=$(printf '%s\n' "${ratios[@]}" | median)
echo "median req/s: none $none_median, token $token_median"
echo "median of the rounds' ratios token/none = $ratio_median (aim >= 0.95)"
