#!/usr/bin/env bash
# How much Redis the gateway needs, measured: one redis-server (Debian's, no persistence) and the
# release gateway on it (deploy/config, --auth none), and for each phase what Redis did per
# signal — commands (INFO commandstats, the ones run inside scripts included), round trips (a
# census of a few more signals under MONITOR), bytes in and out (INFO stats), CPU (INFO cpu) —
# the gateway's own CPU per signal (/proc/PID/stat), and the memory each thing it keeps takes
# (used_memory deltas, MEMORY USAGE). Then the capacity those figures give: Redis shards (one
# core each, at most half busy) and gateway replicas for a range of signal rates. docs/sizing.md
# says what each figure means.
#
#   scripts/redis-sizing.sh [--alerts N] [--storm N] [--rate N] [--concurrency N] [--out FILE]
#                           [--no-build]
#
#   --alerts N       distinct new alerts, each its own alert name (default 20000); the repeat
#                    phase sends the same N again
#   --storm N        storm signals once the window is full (default 10000), after the 1000 that
#                    fill it (--storm-window-capacity); one alert name and namespace, a pod each
#   --rate N         signals per second offered (default 2000; 0: as fast as the load goes).
#                    Per-signal CPU falls as the load rises (more commands per read, fewer
#                    wake-ups), so the rate is part of the result: the report gives the one reached
#   --concurrency N  keep-alive connections of the load (default 8)
#   --out FILE       also write the Markdown report here
#   --no-build       use target/release/gateway as it is
#
# Phases: new (N alerts), repeat (the same N), storm-fill (pods 1..1000 of one alert name: the
# pattern storm opens, its window buffers, aggregates and fills), storm-full (--storm more pods:
# the window at its capacity). Each is checked: every answer 2xx; new: N RemediationRequest files
# and N dedup records; repeat: no new file; storm: one window, an aggregate file, at most 50 other
# files. A failed check exits 1. Everything listens on 127.0.0.1, lives in a temporary directory
# removed at exit, and every process started here is stopped at exit; each step has a time limit.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck disable=SC1091 # stop, free_port
. scripts/lib/processes.sh

alerts=20000
storm=10000
rate=2000
concurrency=8
out=""
build=1
census=200        # signals sent under MONITOR after a phase, to count its round trips
capacity=1000     # --storm-window-capacity: the gateway's default, passed explicitly
send_timeout=900  # seconds any one phase's load may take
rates="1000 5000 20000 50000 100000"

usage() { sed -n '11,23p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }
die() { echo "redis-sizing: $*" >&2; exit 1; }
progress() { echo "[$(date -u +%H:%M:%S)] $*" >&2; }
while [ $# -gt 0 ]; do
  case $1 in
    --alerts) alerts=${2:?}; shift 2 ;;
    --storm) storm=${2:?}; shift 2 ;;
    --rate) rate=${2:?}; shift 2 ;;
    --concurrency) concurrency=${2:?}; shift 2 ;;
    --out) out=${2:?}; shift 2 ;;
    --no-build) build=0; shift ;;
    -h | --help) usage ;;
    *) echo "redis-sizing: unknown argument $1" >&2; usage ;;
  esac
done
for n in alerts storm concurrency; do
  [[ ${!n} =~ ^[1-9][0-9]*$ ]] || die "--$n must be a number ≥ 1, got ${!n}"
done
[[ $rate =~ ^[0-9]+$ ]] || die "--rate must be a whole number of signals per second, got $rate"
[ "$alerts" -ge "$census" ] || die "--alerts must be at least $census (the repeat census resends that many)"
for tool in redis-server redis-cli python3 curl jq sha1sum timeout getconf; do
  command -v "$tool" >/dev/null || die "$tool is missing (Debian: redis-server redis-tools python3 curl jq coreutils)"
done

if [ "$build" = 1 ]; then
  progress "cargo build --release -p gateway"
  cargo build --release -q -p gateway --bin gateway
fi
bin=target/release/gateway
[ -x "$bin" ] || die "$bin is missing (run without --no-build)"

shm=/dev/shm; [ -d "$shm" ] && [ -w "$shm" ] || shm=${TMPDIR:-/tmp}
work=$(mktemp -d "$shm/redis-sizing.XXXXXX")
redis_pid="" gateway_pid="" monitor_pid=""
cleanup() {
  for pid in "$monitor_pid" "$gateway_pid" "$redis_pid"; do stop "$pid"; done
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

rport=$(free_port)
gport=$(free_port)
while [ "$gport" = "$rport" ]; do gport=$(free_port); done
gateway_url="http://127.0.0.1:$gport"
starts=$(date -u +%Y-%m-%dT%H:%M:%SZ)

# --- Servers ---------------------------------------------------------------------------------
rc() { timeout 30 redis-cli -p "$rport" "$@"; }
mkdir -p "$work/redis" "$work/rr"
redis-server --bind 127.0.0.1 --port "$rport" --save "" --appendonly no --dir "$work/redis" \
  >"$work/redis.log" 2>&1 &
redis_pid=$!
for _ in $(seq 100); do rc ping >/dev/null 2>&1 && break; sleep 0.05; done
rc ping >/dev/null 2>&1 || { tail -20 "$work/redis.log" >&2; die "redis-server did not start"; }

gateway_failed() { tail -30 "$work/gateway.log" >&2; die "$@"; }
"$bin" --auth none --listen "127.0.0.1:$gport" --config-dir deploy/config \
  --remediation-dir "$work/rr" --redis-url "redis://127.0.0.1:$rport" \
  --storm-window-capacity "$capacity" --shutdown-delay 0s >"$work/gateway.log" 2>&1 &
gateway_pid=$!
for _ in $(seq 200); do curl -fsS -o /dev/null "$gateway_url/readyz" 2>/dev/null && break; sleep 0.05; done
curl -fsS -o /dev/null "$gateway_url/readyz" 2>/dev/null || gateway_failed "the gateway did not become ready"

# --- Readings --------------------------------------------------------------------------------
info() { rc INFO all | tr -d '\r' >"$1"; }                     # FILE
field() { awk -F: -v k="$2" '$1 == k { print $2; exit }' "$1"; } # INFO_FILE KEY
cpu_s() { awk -F: '$1 == "used_cpu_user" || $1 == "used_cpu_sys" { s += $2 } END { printf "%.6f", s }' "$1"; }
clk_tck=$(getconf CLK_TCK)
gw_ticks() { sed 's/.*) //' "/proc/$gateway_pid/stat" | awk '{ print $12 + $13 }'; } # utime + stime
machine_ticks() { awk '$1 == "cpu" { print $2 + $3 + $4 + $7 + $8 + $9, $2 + $3 + $4 + $5 + $6 + $7 + $8 + $9 }' /proc/stat; } # busy, all
rr_count() { find "$work/rr" -name '*.yaml' | wc -l; }
storm_rr_count() { find "$work/rr" -name 'rr-storm-*.yaml' | wc -l; }
keys() { rc --scan --pattern "$1"; } # PATTERN: the matching keys, one a line
usage_of() { rc MEMORY USAGE "$1" SAMPLES 0; }
calc() { awk "BEGIN { printf \"$1\", $2 }"; } # FORMAT EXPRESSION
used_memory() { rc INFO memory | tr -d '\r' | awk -F: '$1 == "used_memory" { print $2 }'; }

# The scripts as the gateway sends them: redis-rs names a script by the SHA-1 of its text.
script_names=""
for f in adapters/redis/src/lua/*.lua; do
  script_names="$script_names $(sha1sum "$f" | cut -d' ' -f1)=$(basename "$f")"
done

failures=()
fail() { failures+=("$1"); echo "redis-sizing: FAILED: $1" >&2; }

declare -A sig secs answers rtrips rt_by cmds cmd_by in_b out_b rcpu gcpu rrs other_load

send() { # MODE FIRST COUNT: prints send.py's JSON line; a non-2xx answer or a failed request fails the run
  local result
  result=$(timeout "$send_timeout" python3 scripts/redis-sizing/send.py "$gateway_url" "$1" "$2" "$3" \
    "$concurrency" "$rate" "$starts") || { echo "$result" >&2; gateway_failed "$1 signals $2..$(($2 + $3 - 1)): not every answer was 2xx"; }
  echo "$result"
}

# phase KEY MODE FIRST COUNT: one measured phase; the per-signal figures go in the arrays.
phase() {
  local key=$1 mode=$2 first=$3 count=$4 result ticks_before ticks_after rr_before machine_before machine_after
  progress "$key: $count signals ($mode, from $first)"
  rr_before=$(rr_count)
  info "$work/$key.start"
  rc CONFIG RESETSTAT >/dev/null
  info "$work/$key.before"
  ticks_before=$(gw_ticks)
  machine_before=$(machine_ticks)
  result=$(send "$mode" "$first" "$count")
  sleep 1 # the last signals' queued commands (settle) and the in-flight tick finish
  ticks_after=$(gw_ticks)
  machine_after=$(machine_ticks)
  info "$work/$key.after"
  sig[$key]=$count
  secs[$key]=$(jq -r .seconds <<<"$result")
  answers[$key]=$(jq -r '.status | to_entries | map("\(.key)×\(.value)") | join(", ")' <<<"$result")
  in_b[$key]=$(calc "%.0f" "($(field "$work/$key.after" total_net_input_bytes) - $(field "$work/$key.before" total_net_input_bytes)) / $count")
  out_b[$key]=$(calc "%.0f" "($(field "$work/$key.after" total_net_output_bytes) - $(field "$work/$key.before" total_net_output_bytes)) / $count")
  rcpu[$key]=$(calc "%.1f" "($(cpu_s "$work/$key.after") - $(cpu_s "$work/$key.before")) * 1e6 / $count")
  gcpu[$key]=$(calc "%.1f" "($ticks_after - $ticks_before) * 1e6 / $clk_tck / $count")
  rrs[$key]=$(($(rr_count) - rr_before))
  # What else ran on the machine meanwhile, as a share of all its CPUs: busy time less the
  # gateway's, Redis's and the load's. More than a few percent and the figures are less sure.
  other_load[$key]=$(awk -v b="$machine_before" -v a="$machine_after" -v g="$((ticks_after - ticks_before))" \
    -v r="$(calc "%.6f" "$(cpu_s "$work/$key.after") - $(cpu_s "$work/$key.before")")" \
    -v l="$(jq -r .cpu_s <<<"$result")" -v hz="$clk_tck" 'BEGIN {
      split(b, x, " "); split(a, y, " ")
      o = (y[1] - x[1] - g - (r + l) * hz) / (y[2] - x[2]) * 100
      printf "%.0f%%", (o < 0 ? 0 : o) }')
  # Commands Redis ran, the ones inside scripts included; INFO and CONFIG RESETSTAT are ours.
  awk -F'[:,=]' -v n="$count" '/^cmdstat_/ {
      c = substr($1, 9); if (c == "info" || c == "config|resetstat") next
      printf "%s %.2f\n", toupper(c), $3 / n }' "$work/$key.after" | sort -k2,2nr -k1,1 >"$work/$key.cmds"
  cmds[$key]=$(awk '{ s += $2 } END { printf "%.2f", s }' "$work/$key.cmds")
  cmd_by[$key]=$(awk '{ printf "%s%s %s", (NR > 1 ? ", " : ""), $1, $2 }' "$work/$key.cmds")
}

# census KEY MODE FIRST COUNT: COUNT more signals under MONITOR; the commands the gateway sent
# (not those its scripts ran), per signal, scripts by name. The ticker's (SMEMBERS of the 16
# window indexes, load_window.lua) and the health check's (PING) are once a second, not per
# signal: left out of the round trips.
census() {
  local key=$1 mode=$2 first=$3 count=$4
  progress "$key: $count signals under MONITOR (round trips)"
  timeout 120 redis-cli -p "$rport" MONITOR >"$work/$key.monitor" 2>/dev/null &
  monitor_pid=$!
  for _ in $(seq 100); do [ -s "$work/$key.monitor" ] && break; sleep 0.02; done
  [ -s "$work/$key.monitor" ] || die "redis-cli MONITOR did not start"
  send "$mode" "$first" "$count" >/dev/null
  sleep 0.5
  stop "$monitor_pid"; monitor_pid=""
  awk -v n="$count" -v names="$script_names" '
    BEGIN { split(names, pairs, " "); for (i in pairs) { split(pairs[i], kv, "="); name[kv[1]] = kv[2] } }
    $2 ~ /^\[/ && $3 != "lua]" {
      c = $4; gsub(/"/, "", c); c = toupper(c)
      if (c == "EVALSHA") { s = $5; gsub(/"/, "", s); c = c "(" ((s in name) ? name[s] : s) ")" }
      if (c == "SMEMBERS" || c == "PING" || c == "EVALSHA(load_window.lua)") next
      top[c]++; total++
    }
    END {
      for (c in top) printf "%s %.2f\n", c, top[c] / n
      printf "TOTAL %.2f\n", total / n
    }' "$work/$key.monitor" | sort -k2,2nr -k1,1 >"$work/$key.trips"
  rm -f "$work/$key.monitor"
  rtrips[$key]=$(awk '$1 == "TOTAL" { print $2 }' "$work/$key.trips")
  rt_by[$key]=$(awk '$1 != "TOTAL" { printf "%s%s %s", (n++ ? ", " : ""), $1, $2 }' "$work/$key.trips")
}

check_answers() { # KEY CODE: every answer of the phase was CODE
  [ "${answers[$1]}" = "$2×${sig[$1]}" ] || fail "$1: answers ${answers[$1]}, expected $2×${sig[$1]}"
}

# --- New alerts ------------------------------------------------------------------------------
phase new new 0 "$alerts"
check_answers new 201
[ "${rrs[new]}" = "$alerts" ] || fail "new: ${rrs[new]} RemediationRequest files for $alerts new alerts"
dedup_keys=$(keys '*:dedup:*' | wc -l)
[ "$dedup_keys" = "$alerts" ] || fail "new: $dedup_keys dedup records for $alerts new alerts"

# Memory: the dedup records, and the two storm sets of each alert name, told apart by deleting
# the sets (`:signals`, then `:resources`) and reading used_memory after each step.
sample_dedup=$(keys '*:dedup:*' | sed -n 1p)
sample_signals=$(keys '*:storm:{*SizingNew-*}:signals' | sed -n 1p)
sample_resources=$(keys '*:storm:{*SizingNew-*}:resources' | sed -n 1p)
if [ -z "$sample_dedup" ] || [ -z "$sample_signals" ] || [ -z "$sample_resources" ]; then
  die "new: no dedup record or storm set found in Redis"
fi
usage_dedup=$(usage_of "$sample_dedup")
usage_signals=$(usage_of "$sample_signals")
usage_resources=$(usage_of "$sample_resources")
start_memory=$(field "$work/new.start" used_memory)
memory_all=$(used_memory)
keys '*:storm:{*SizingNew-*}:signals' | timeout 60 xargs -r -n 1000 redis-cli -p "$rport" UNLINK >/dev/null
memory_no_signals=$(used_memory)
keys '*:storm:{*SizingNew-*}:resources' | timeout 60 xargs -r -n 1000 redis-cli -p "$rport" UNLINK >/dev/null
memory_dedup=$(used_memory)
per_alert=$(((memory_all - start_memory) / alerts))
per_fingerprint=$(((memory_dedup - start_memory) / alerts))
per_signals_set=$(((memory_all - memory_no_signals) / alerts))
per_resources_set=$(((memory_no_signals - memory_dedup) / alerts))
census new new "$alerts" "$census"

# --- Repeats ---------------------------------------------------------------------------------
phase repeat new 0 "$alerts"
check_answers repeat 202
[ "${rrs[repeat]}" = 0 ] || fail "repeat: ${rrs[repeat]} RemediationRequest files for repeats"
census repeat new 0 "$census"

# --- A storm ---------------------------------------------------------------------------------
# window_figures KEY: the one open window (MEMORY USAGE, its state's length) and its index.
declare -A win_usage win_state idx_usage
window_figures() {
  local window index count
  count=$(keys '*:storm:window:*' | wc -l)
  [ "$count" = 1 ] || fail "$1: $count storm windows in Redis, expected 1"
  window=$(keys '*:storm:window:*' | sed -n 1p)
  index=$(keys '*:storm:windows:*' | sed -n 1p)
  if [ -z "$window" ] || [ -z "$index" ]; then
    fail "$1: no storm window or index in Redis"
    return 0
  fi
  win_usage[$1]=$(usage_of "$window")
  win_state[$1]=$(rc HSTRLEN "$window" s)
  idx_usage[$1]=$(usage_of "$index")
}
storm_before=$(rr_count)
phase storm-fill storm 0 "$capacity"
window_figures storm-fill
phase storm-full storm "$capacity" "$storm"
window_figures storm-full
storm_signals=$(keys '*:storm:{*SizingStorm}:signals' | sed -n 1p)
storm_resources=$(keys '*:storm:{*SizingStorm}:resources' | sed -n 1p)
if [ -z "$storm_signals" ] || [ -z "$storm_resources" ]; then
  die "storm: the alert name's storm sets are not in Redis"
fi
storm_signals_n=$(rc ZCARD "$storm_signals"); storm_signals_usage=$(usage_of "$storm_signals")
storm_resources_n=$(rc ZCARD "$storm_resources"); storm_resources_usage=$(usage_of "$storm_resources")
census storm-full storm $((capacity + storm)) "$census"
aggregates=$(storm_rr_count)
others=$(($(rr_count) - storm_before - aggregates))
if [ "$aggregates" -ge 1 ] && [ "$others" -le 50 ]; then
  storm_check="$aggregates aggregate, $others other RemediationRequests"
else
  storm_check="**FAILED**: $aggregates aggregates, $others other RemediationRequests"
  fail "storm: $aggregates aggregate files and $others other RemediationRequests (expected ≥ 1 and ≤ 50)"
fi

# --- The report ------------------------------------------------------------------------------
ttl=$(awk '$1 == "ttl:" { print $2 }' deploy/config/dedup.yaml)
case $ttl in
  *ms) ttl_s=$(calc "%.3f" "${ttl%ms} / 1000") ;;
  *s) ttl_s=${ttl%s} ;;
  *m) ttl_s=$((${ttl%m} * 60)) ;;
  *h) ttl_s=$((${ttl%h} * 3600)) ;;
  *) die "cannot read the dedup TTL ($ttl) in deploy/config/dedup.yaml" ;;
esac
commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
git diff --quiet HEAD 2>/dev/null || commit="$commit (with uncommitted changes)"
redis_version=$(field "$work/new.after" redis_version)
cpu_model=$(awk -F': ' '/model name/ { print $2; exit }' /proc/cpuinfo)

# Capacity: Redis shards (one core each, at most 50% busy), gateway replicas (one core each, at
# most 50% busy), network to and from Redis, and for new alerts the memory they keep.
halves() { calc "%d" "int($1 * $2 / 500000 + 0.999999)"; } # RATE CPU_US: cores at most half busy
mbits() { calc "%.1f" "$1 * ($2 + $3) * 8 / 1e6"; } # RATE IN OUT
memory_for() { calc "%.0f" "$1 * ($ttl_s * $per_fingerprint + 60 * $per_signals_set + 120 * $per_resources_set) / 1048576"; }

phase_row() { # KEY LABEL CHECK
  local k=$1 reached
  reached=$(calc "%.0f" "${sig[$k]} / ${secs[$k]}")
  echo "| $2 | ${sig[$k]} | $reached | ${rtrips[$k]:-–} | ${cmds[$k]} | ${in_b[$k]} | ${out_b[$k]} | ${rcpu[$k]} | ${gcpu[$k]} | ${other_load[$k]} | ${answers[$k]}; $3 |"
}

report() {
  echo "# Redis sizing: measured $(date -u +%Y-%m-%dT%H:%MZ)"
  echo
  echo "\`scripts/redis-sizing.sh --alerts $alerts --storm $storm --rate $rate --concurrency $concurrency\` at commit $commit."
  echo "Machine: $(nproc) CPUs ($cpu_model), Linux $(uname -r); everything on 127.0.0.1."
  echo "Redis $redis_version (redis-server, one instance, no persistence); the release gateway, one"
  echo "replica, deploy/config (dedup TTL $ttl), --storm-window-capacity $capacity; the load: one alert per"
  if [ "$rate" = 0 ]; then
    echo "request over $concurrency keep-alive connections, as fast as they went (scripts/redis-sizing/send.py)."
  else
    echo "request over $concurrency keep-alive connections, $rate offered per second (scripts/redis-sizing/send.py)."
  fi
  echo
  echo "## Per signal"
  echo
  echo "Round trips: commands the gateway sent per signal (a census of $census more signals under"
  echo "MONITOR; the once-a-second ticker and health check left out). Commands run: every command"
  echo "Redis executed (INFO commandstats), those inside the Lua scripts included. Bytes: Redis's"
  echo "total_net_input_bytes (to Redis) and total_net_output_bytes (from Redis). CPU: Redis's"
  echo "used_cpu_user+sys, the gateway's utime+stime, in µs per signal. signals/s: the rate reached"
  echo "(the load generator shares the machine's cores; not a throughput figure). Other load: the"
  echo "machine's busy time meanwhile less the gateway's, Redis's and the load generator's, as a share"
  echo "of all its CPUs (other processes; more than a few percent makes the CPU figures less sure)."
  echo
  echo "| phase | signals | signals/s | round trips | commands run | bytes to Redis | bytes from Redis | Redis CPU µs | gateway CPU µs | other load | answers; checked |"
  echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"
  phase_row new "new alert (each its own alert name)" "${rrs[new]} RRs, $dedup_keys dedup records"
  phase_row repeat "repeat (the same alerts again)" "${rrs[repeat]} new RRs"
  phase_row storm-fill "storm, window filling (pods 1–$capacity)" "$storm_check"
  phase_row storm-full "storm, window full (pods $((capacity + 1))–$((capacity + storm)))" "$storm_check"
  echo
  echo "## Commands per signal"
  echo
  echo "| phase | round trips (the gateway's commands; scripts by file) | commands run by Redis |"
  echo "|---|---|---|"
  echo "| new alert | ${rt_by[new]} | ${cmd_by[new]} |"
  echo "| repeat | ${rt_by[repeat]} | ${cmd_by[repeat]} |"
  echo "| storm, window filling | (as when full) | ${cmd_by[storm-fill]} |"
  echo "| storm, window full | ${rt_by[storm-full]} | ${cmd_by[storm-full]} |"
  echo
  echo "Once a second, whatever the load, each replica's ticker sends SMEMBERS to the 16 window"
  echo "indexes and load_window.lua + HMGET per open window, and its health check one PING."
  echo
  echo "## Memory"
  echo
  echo "| what | bytes |"
  echo "|---|---:|"
  echo "| a new alert, all it leaves (used_memory delta / $alerts) | $per_alert |"
  echo "| a tracked fingerprint: its dedup record (used_memory, the storm sets deleted; lives the dedup TTL, $ttl) | $per_fingerprint |"
  echo "| one dedup record, MEMORY USAGE | $usage_dedup |"
  echo "| an alert name's \`:signals\` set, one entry (used_memory; lives 60 s after its last signal) | $per_signals_set |"
  echo "| the same, MEMORY USAGE | $usage_signals |"
  echo "| an alert name's \`:resources\` set, one entry (used_memory; lives 120 s after its last signal) | $per_resources_set |"
  echo "| the same, MEMORY USAGE | $usage_resources |"
  echo "| an open window after $capacity pods: MEMORY USAGE (its state ${win_state[storm-fill]:-?} bytes) + its index set | ${win_usage[storm-fill]:-?} + ${idx_usage[storm-fill]:-?} |"
  echo "| the window after $((capacity + storm)) pods (at capacity): MEMORY USAGE (state ${win_state[storm-full]:-?} bytes) + index set | ${win_usage[storm-full]:-?} + ${idx_usage[storm-full]:-?} |"
  echo "| the storm's alert name: \`:signals\` ($storm_signals_n entries) + \`:resources\` ($storm_resources_n entries), MEMORY USAGE | $storm_signals_usage + $storm_resources_usage |"
  echo
  echo "## Capacity for a sustained rate (derived from the figures above)"
  echo
  echo "Redis shards: Redis CPU per signal × rate, each shard one core at most 50% busy. Gateway"
  echo "replicas: gateway CPU per signal × rate, one core each at most 50% busy. Network: bytes to +"
  echo "from Redis. Memory (new alerts): rate × (TTL $ttl_s s × the dedup record + 60 s × a"
  echo "\`:signals\` set + 120 s × a \`:resources\` set), every alert its own alert name (the most)."
  echo "Repeats keep no more memory; a storm keeps one window and two sets per alert name (above)."
  echo
  echo "| signals/s | new: shards | new: replicas | new: Mbit/s | new: memory MiB | repeat: shards | repeat: replicas | repeat: Mbit/s | storm (full window): shards, many storms | storm: replicas | storm: Mbit/s |"
  echo "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
  local r
  for r in $rates; do
    echo "| $r | $(halves "$r" "${rcpu[new]}") | $(halves "$r" "${gcpu[new]}") | $(mbits "$r" "${in_b[new]}" "${out_b[new]}") | $(memory_for "$r") | $(halves "$r" "${rcpu[repeat]}") | $(halves "$r" "${gcpu[repeat]}") | $(mbits "$r" "${in_b[repeat]}" "${out_b[repeat]}") | $(halves "$r" "${rcpu[storm-full]}") | $(halves "$r" "${gcpu[storm-full]}") | $(mbits "$r" "${in_b[storm-full]}" "${out_b[storm-full]}") |"
  done
  echo
  echo "One storm (one alert name in one namespace) keeps its two counter sets on one shard and its"
  echo "window on one shard: whatever the shard count, one storm's signals past about"
  echo "$(calc "%.0f" "500000 / ${rcpu[storm-full]}")/s keep a shard more than half busy (all of a full-window signal's Redis CPU counted there)."
}
if [ -n "$out" ]; then report | tee "$out"; else report; fi
if [ ${#failures[@]} -gt 0 ]; then
  echo >&2
  for f in "${failures[@]}"; do echo "redis-sizing: FAILED: $f" >&2; done
  exit 1
fi
