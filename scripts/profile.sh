#!/usr/bin/env bash
# Where a new alert's CPU time goes: the gateway (the `profiling` build: release with line tables)
# pinned to CPU 0 with `--state STATE` (memory, embedded, redis) and the directory sink on tmpfs,
# wrk sending a new alert per request from CPU 1, `perf record` sampling the gateway. Prints the
# gateway's CPU time per new alert (utime + stime over RemediationRequests written) and the top
# of the profile; with a second perf.data (a baseline), a table of the time by category.
#
#   scripts/profile.sh [STATE] [SECONDS] [BASELINE_PERF_DATA [BASELINE_US_PER_ALERT]]
#
# Writes target/profile-STATE.data. Needs perf (Debian's linux-perf) and wrk; Redis on
# 127.0.0.1:16379 for `redis` (started here when redis-server is installed). Loopback only.
set -euo pipefail
cd "$(dirname "$0")/.."

state=${1:-memory}
seconds=${2:-10}
baseline=${3:-}
baseline_us=${4:-0}
port=18095

for tool in perf wrk; do
  command -v "$tool" >/dev/null || { echo "profile: $tool is missing (apt-get install linux-perf wrk)" >&2; exit 1; }
done
cargo build --profile profiling -q -p gateway --bin gateway
bin=target/profiling/gateway

work=$(mktemp -d /dev/shm/profile.XXXXXX)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

args=(--auth none --listen "127.0.0.1:$port" --config-dir deploy/config --remediation-dir "$work/rr"
  --log-format json)
case "$state" in
  memory) args+=(--state memory) ;;
  embedded) args+=(--state embedded --state-dir "$work/state") ;;
  redis)
    taskset -c 1 redis-server --port 16379 --save "" --appendonly no --dir "$work" >"$work/redis.log" 2>&1 &
    pids+=($!)
    for _ in $(seq 50); do redis-cli -p 16379 ping >/dev/null 2>&1 && break; sleep 0.1; done
    redis-cli -p 16379 flushall >/dev/null
    args+=(--redis-url redis://127.0.0.1:16379) ;;
  *) echo "profile: STATE is memory, embedded or redis" >&2; exit 2 ;;
esac

cat >"$work/new.lua" <<'LUA'
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local counter = 0
tid = 0
function setup(thread) tid = tid + 1; thread:set("tid", tid) end
function request()
  counter = counter + 1
  return wrk.format(nil, nil, nil, string.format('{"receiver":"bench","status":"firing","alerts":[{"status":"firing","labels":{"alertname":"ProfileNew%d_%d","namespace":"bench","pod":"bench-%d","severity":"warning"},"annotations":{},"startsAt":"2026-01-01T00:00:00Z"}]}', tid, counter, counter))
end
LUA

taskset -c 0 "$bin" "${args[@]}" >"$work/gateway.log" 2>&1 &
gateway=$!
pids+=("$gateway")
for _ in $(seq 100); do curl -fsS "http://127.0.0.1:$port/readyz" >/dev/null 2>&1 && break; sleep 0.1; done
curl -fsS "http://127.0.0.1:$port/readyz" >/dev/null

out=target/profile-$state.data
cpu() { awk '{print $14 + $15}' "/proc/$gateway/stat"; }
before=$(cpu)
perf record -F 2000 -g -p "$gateway" -o "$out" -- sleep "$((seconds - 1))" >/dev/null 2>&1 &
recorder=$!
taskset -c 1 wrk -t2 -c32 -d"${seconds}s" -s "$work/new.lua" "http://127.0.0.1:$port/api/v1/signals/prometheus" |
  grep -E 'Requests/sec|Non-2xx|Socket'
wait "$recorder" || true
after=$(cpu)
alerts=$(find "$work/rr" -name '*.yaml' | wc -l)
us=$(( (after - before) * 10000 / (alerts > 0 ? alerts : 1) ))
echo "state $state: $alerts new alerts, gateway CPU $(( (after - before) * 10 )) ms, $us µs per new alert"
perf report -i "$out" --no-children --sort dso,sym --stdio -g none 2>/dev/null | grep '%' | head -25
if [ -n "$baseline" ]; then
  python3 scripts/profile/buckets.py "$baseline" "$out" "$baseline_us" "$us"
fi
