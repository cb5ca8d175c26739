#!/usr/bin/env bash
# The gateway against Prometheus Alertmanager 0.25 (Debian's) under the same load, in one run:
# throughput and p50/p99 for new alerts, repeats, webhook batches of 10 and 100, and a storm, with
# memory, embedded and Redis state; new and repeats again under a config reload every 100 ms;
# the Redis repeat path against `redis-benchmark` SET NX EX; p99 at a fixed ~1,000 req/s with
# Redis; and resident memory per tracked alert. BENCHMARKS.md says what each figure means.
#
#   scripts/bench-load.sh [--seconds N] [--connections N] [--cores one|shared]
#                         [--only CASE,...] [--quick] [--out FILE] [--rss-stores LIST]
#
#   --seconds N       length of each measured run (default 10; a 1 s warm-up precedes each)
#   --connections N   wrk connections, and redis-benchmark clients (default 32)
#   --cores one       (default) the server under test (gateway, Alertmanager, redis-server for its
#                     own baseline) pinned to CPU 0 with taskset, wrk and redis-server to CPU 1
#   --cores shared    no pinning, wrk with two threads
#   --only LIST       some of: new,repeat,batch10,batch100,storm,reload,redis-set,latency,rss
#   --quick           a smoke run: 2 s runs, RSS after 25k and 100k alerts instead of 250k and 1M
#   --out FILE        also write the Markdown report here (default target/bench-load/<UTC time>.md)
#   --rss-stores LIST the gateway's stores for the RSS case: memory (default), embedded
#
# Every case is checked for doing what it claims (RemediationRequest files counted, the storm's
# aggregate found, Alertmanager's alertmanager_alerts_received_total compared with what was sent,
# reloads counted); a failed check, or any wrk socket error or non-2xx answer, stops the run with
# exit status 1. Everything listens on 127.0.0.1 and lives in a tmpfs directory removed at exit.
# Installs wrk from Debian when missing (Debian has no wrk2: the fixed rate is wrk's delay()).
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck disable=SC1091 # stop, free_port
. scripts/lib/processes.sh

seconds=10
connections=32
cores=one
only=""
quick=0
out=""
rss_stores=memory
all_cases="new repeat batch10 batch100 storm reload redis-set latency rss"

usage() { sed -n '8,19p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }
die() { echo "bench-load: $*" >&2; exit 1; }
while [ $# -gt 0 ]; do
  case $1 in
    --seconds) seconds=${2:?}; shift 2 ;;
    --connections) connections=${2:?}; shift 2 ;;
    --cores) cores=${2:?}; shift 2 ;;
    --only) only=${2:?}; shift 2 ;;
    --rss-stores) rss_stores=${2:?}; shift 2 ;;
    --quick) quick=1; shift ;;
    --out) out=${2:?}; shift 2 ;;
    -h | --help) usage ;;
    *) echo "bench-load: unknown argument $1" >&2; usage ;;
  esac
done
[ "$quick" = 1 ] && seconds=2
[[ $seconds =~ ^[1-9][0-9]*$ ]] || die "--seconds must be a whole number of seconds ≥ 1, got $seconds"
[[ $connections =~ ^[1-9][0-9]*$ ]] || die "--connections must be a number ≥ 1, got $connections"
case $cores in one | shared) ;; *) die "--cores must be one or shared, got $cores" ;; esac
rss_stores=${rss_stores//,/ }
for s in $rss_stores; do
  case $s in memory | embedded) ;; *) die "--rss-stores takes memory and/or embedded, got $s" ;; esac
done
if [ -n "$only" ]; then
  cases=${only//,/ }
  for c in $cases; do
    [[ " $all_cases " == *" $c "* ]] || die "unknown case $c in --only (known: ${all_cases// /,})"
  done
else
  cases=$all_cases
fi
wanted() { [[ " $cases " == *" $1 "* ]]; }
if [ "$quick" = 1 ]; then rss_steps="25000 100000"; else rss_steps="250000 1000000"; fi
stores="memory embedded redis"

if ! command -v wrk >/dev/null; then
  echo "bench-load: installing wrk (Debian)" >&2
  sudo=""; [ "$(id -u)" = 0 ] || sudo=sudo
  $sudo apt-get install -y --no-install-recommends wrk >/dev/null
fi
for tool in redis-server redis-cli redis-benchmark jq curl taskset; do
  command -v "$tool" >/dev/null || die "$tool is missing (Debian: redis-server redis-tools jq curl util-linux)"
done
alertmanager=/usr/bin/prometheus-alertmanager
[ -x "$alertmanager" ] || die "$alertmanager is missing (Debian: apt-get install prometheus-alertmanager)"

cargo build --release -q -p gateway --bin gateway
bin=target/release/gateway

if [ "$cores" = one ]; then
  sut=(taskset -c 0); load=(taskset -c 1); threads=1
else
  sut=(); load=(); threads=2
fi

work=$(mktemp -d /dev/shm/bench-load.XXXXXX)
[ -n "$out" ] || { mkdir -p target/bench-load; out=target/bench-load/$(date -u +%Y%m%dT%H%M%SZ).md; }
gateway_pid="" am_pid="" redis_pid="" reload_pid="" wrk_pid=""
cleanup() {
  for pid in "$wrk_pid" "$reload_pid" "$gateway_pid" "$am_pid" "$redis_pid"; do stop "$pid"; done
  rm -rf "$work"
}
trap cleanup EXIT

gport=$(free_port); aport=$(free_port); rport=$(free_port)
gateway_url="http://127.0.0.1:$gport"
am_url="http://127.0.0.1:$aport"
starts=$(date -u +%Y-%m-%dT%H:%M:%SZ)
progress() { echo "[$(date -u +%H:%M:%S)] $*" >&2; }

# --- Configuration ---------------------------------------------------------------------------
# The bench config: deploy/config as shipped (a copy, which the reload cases swap). A new alert
# has an alert name of its own (as different alerts do), so no storm starts; many pods of one
# alert name is the storm case.
mkdir -p "$work/config-bench"
cp deploy/config/*.yaml "$work/config-bench/"

cat >"$work/alertmanager.yml" <<'EOF'
route:
  receiver: "null"
  group_by: [namespace]
receivers:
  - name: "null"
EOF

# --- Servers ---------------------------------------------------------------------------------
wait_ready() { # URL NAME LOG
  for _ in $(seq 200); do
    curl -fsS -o /dev/null "$1" 2>/dev/null && return 0
    sleep 0.05
  done
  tail -20 "$3" >&2
  die "$2 did not become ready at $1"
}

start_redis() {
  mkdir -p "$work/redis"
  "${load[@]}" redis-server --bind 127.0.0.1 --port "$rport" --save "" --appendonly no \
    --dir "$work/redis" >"$work/redis.log" 2>&1 &
  redis_pid=$!
  for _ in $(seq 100); do redis-cli -p "$rport" ping >/dev/null 2>&1 && return 0; sleep 0.05; done
  die "redis-server did not start (see $work/redis.log)"
}

start_gateway() { # STORE CONFIG_DIR [EXTRA FLAGS...]
  local store=$1 config=$2
  shift 2
  rm -rf "$work/rr" "$work/state"
  local state
  case $store in
    memory) state=(--state memory) ;;
    embedded) state=(--state embedded --state-dir "$work/state") ;;
    redis)
      redis-cli -p "$rport" flushall >/dev/null
      state=(--redis-url "redis://127.0.0.1:$rport/0")
      ;;
  esac
  "${sut[@]}" "$bin" --listen "127.0.0.1:$gport" --auth none --config-dir "$config" \
    --remediation-dir "$work/rr" "${state[@]}" --log-format json --shutdown-delay 0s "$@" \
    >>"$work/gateway.log" 2>&1 &
  gateway_pid=$!
  wait_ready "$gateway_url/readyz" gateway "$work/gateway.log"
}
stop_gateway() { stop "$gateway_pid"; gateway_pid=""; }

start_am() {
  rm -rf "$work/am"
  mkdir -p "$work/am"
  "${sut[@]}" "$alertmanager" --config.file="$work/alertmanager.yml" --storage.path="$work/am" \
    --web.listen-address="127.0.0.1:$aport" --cluster.listen-address= --log.level=warn \
    >>"$work/alertmanager.log" 2>&1 &
  am_pid=$!
  wait_ready "$am_url/-/ready" alertmanager "$work/alertmanager.log"
}
stop_am() { stop "$am_pid"; am_pid=""; }

metric_sum() { # URL NAME [LABEL FILTER]: the sum of a metric family's samples
  curl -fsS "$1/metrics" | awk -v n="$2" -v f="${3:-}" \
    '($1 == n || index($1, n "{") == 1) && (f == "" || index($1, f)) { s += $2 } END { printf "%d\n", s }'
}
rr_count() { find "$work/rr" -name '*.yaml' 2>/dev/null | wc -l; }
rss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }

# --- Load ------------------------------------------------------------------------------------
# wrk_run TARGET MODE BATCH DURATION TAG [DELAY_MS]: one wrk run; prints its BENCH_JSON line.
wrk_run() {
  local target=$1 mode=$2 batch=$3 duration=$4 tag=$5 delay=${6:-0} url output
  url=$gateway_url; [ "$target" = alertmanager ] && url=$am_url
  output=$(BENCH_TARGET=$target BENCH_MODE=$mode BENCH_BATCH=$batch BENCH_TAG=$tag \
    BENCH_STARTS=$starts BENCH_DELAY_MS=$delay \
    "${load[@]}" wrk -t"${wrk_threads:-$threads}" -c"${wrk_connections:-$connections}" -d"$duration" \
    --timeout 10s --latency -s scripts/bench-load/alerts.lua "$url")
  echo "$output" >>"$work/wrk.log"
  sed -n 's/^BENCH_JSON //p' <<<"$output"
}

# measure TARGET MODE BATCH TAG [DELAY_MS]: a 1 s warm-up, then the measured run. Sets
# m_rps m_p50 m_p99 (ms), m_sent (requests answered, warm-up included) and m_errors (socket
# errors, timeouts and non-2xx answers in all three runs).
measure() {
  local warm json prime='{"requests":0,"connect":0,"read":0,"write":0,"status":0,"timeout":0}'
  if [ "$2" = repeat ]; then
    # The first send is created on one connection: while it is being written its dedup record
    # is claimed, and a repeat racing it is answered 503 (to be resent) — not the repeat path
    # this case measures.
    prime=$(wrk_threads=1 wrk_connections=1 wrk_run "$1" "$2" "$3" 1s "$4p")
  fi
  warm=$(wrk_run "$1" "$2" "$3" 1s "$4w" "${5:-0}")
  json=$(wrk_run "$1" "$2" "$3" "${seconds}s" "$4" "${5:-0}")
  for j in "$prime" "$warm" "$json"; do
    [ -n "$j" ] || { tail -30 "$work/wrk.log" >&2; die "$1 $2: no result from wrk"; }
  done
  echo "$json" | jq -c --arg case "$1 $2 $3 $4" '. + {case: $case}' >>"$work/results.jsonl"
  m_rps=$(jq -r '.requests / (.duration_us / 1e6) | floor' <<<"$json")
  m_p50=$(jq -r '.p50_us / 1000 | . * 100 | round / 100' <<<"$json")
  m_p99=$(jq -r '.p99_us / 1000 | . * 100 | round / 100' <<<"$json")
  m_sent=$(jq -s 'map(.requests) | add' <<<"$prime$warm$json")
  m_errors=$(jq -s 'map(.connect + .read + .write + .status + .timeout) | add' <<<"$prime$warm$json")
  m_measured=$(jq .requests <<<"$json")
}

# A failed check is reported at once on stderr and in the report, the run goes on (the other
# figures are still worth having), and the script exits 1 at the end.
failures=()
fail() { # KEY MESSAGE
  failures+=("$1: $2")
  check[$1]="**FAILED**: $2"
  echo "bench-load: FAILED: $1: $2" >&2
}
ok() { [[ ${check[$1]:-} != "**FAILED**"* ]]; }
wrk_errors() { # KEY LOG FROM_LINE: fails KEY when wrk saw errors, quoting the last error line
  # the server logged from FROM_LINE on (after it was ready)
  if [ "$m_measured" = 0 ]; then
    fail "$1" "no request was answered within the ${seconds} s measured run (each took longer)"
    return 0
  fi
  [ "$m_errors" = 0 ] && return 0
  local why
  why=$(tail -n +"$3" "$2" | grep -E '"level":"(ERROR|WARN)"' | tail -1 |
    jq -r '.message + (if .error then ": " + .error else "" end)' 2>/dev/null || true)
  fail "$1" "wrk saw $m_errors socket errors, timeouts or non-2xx answers${why:+ (last error logged: $why)}"
}

# Requests still in flight when wrk stops are not counted by wrk but are served: a check
# accepts up to one more request per connection for each wrk run (prime, warm-up, measure).
within() { # COUNT LOW PER -> true when LOW*PER <= COUNT <= (LOW+3*connections)*PER
  [ "$1" -ge $(($2 * $3)) ] && [ "$1" -le $((($2 + 3 * connections) * $3)) ]
}

mode_of() { case $1 in new | batch10 | batch100) echo new ;; *) echo "$1" ;; esac; }
batch_of() { case $1 in batch10) echo 10 ;; batch100) echo 100 ;; *) echo 1 ;; esac; }

declare -A rps p50 p99 alerts check
# gateway_case CASE STORE [reload]: one case on a fresh gateway, checked.
gateway_case() {
  local case=$1 store=$2 reload=${3:-} mode batch config key tag n reloads=0 extra=() log_from
  mode=$(mode_of "$case"); batch=$(batch_of "$case")
  config=$work/config-bench
  [ "$case" = storm ] && config=$PWD/deploy/config
  key="$case/$store/gateway"
  tag="g-$case-$store"
  if [ -n "$reload" ]; then
    key="$case/$store/reload"; tag="$tag-r"
    config=$work/kubelet
    kubelet_mount
    # A 50 ms debounce, so that a swap every 100 ms is a reload every 100 ms (the default 200 ms
    # would wait for a quiet moment that never comes, and reload every 2 s).
    extra=(--config-debounce 50ms)
  fi
  progress "gateway $case $store${reload:+ (reload every 100 ms)}"
  : >"$work/gateway.log"
  start_gateway "$store" "$config" "${extra[@]}"
  sleep 0.2 # a store connecting in the background (Redis) is connected
  log_from=$(($(wc -l <"$work/gateway.log") + 1))
  if [ -n "$reload" ]; then
    reloads=$(metric_sum "$gateway_url" gateway_config_reload_total 'result="success"')
    reload_loop "$work/kubelet" &
    reload_pid=$!
    [ "$cores" = shared ] || taskset -pc 1 "$reload_pid" >/dev/null
  fi
  measure gateway "$mode" "$batch" "$tag"
  if [ -n "$reload" ]; then
    stop "$reload_pid"; reload_pid=""
    reloads=$(($(metric_sum "$gateway_url" gateway_config_reload_total 'result="success"') - reloads))
  fi
  sleep 0.5 # the requests wrk left in flight finish
  n=$(rr_count)
  wrk_errors "$key" "$work/gateway.log" "$log_from"
  case $mode in
    new)
      if within "$n" "$m_sent" "$batch"; then
        ok "$key" && check[$key]="$n RRs for $m_sent requests"
      else
        fail "$key" "$n RemediationRequests for $m_sent requests of $batch new alerts"
      fi
      ;;
    repeat)
      if [ "$n" = 1 ]; then
        ok "$key" && check[$key]="1 RR for $m_sent requests"
      else
        fail "$key" "$n RemediationRequests for one repeated alert"
      fi
      ;;
    storm)
      local aggregates
      aggregates=$(find "$work/rr" -name 'rr-storm-*.yaml' | wc -l)
      if [ "$aggregates" -ge 1 ] && [ "$n" -le $((aggregates + 50)) ]; then
        ok "$key" && check[$key]="$aggregates aggregate(s), $((n - aggregates)) other RRs for $m_sent requests"
      else
        fail "$key" "$n RemediationRequests of which $aggregates aggregates, for $m_sent requests"
      fi
      ;;
  esac
  if [ -n "$reload" ]; then
    if [ "$reloads" -ge $((seconds * 5)) ]; then
      check[$key]="${check[$key]}; $reloads reloads"
    else
      fail "$key" "only $reloads reloads in about $((seconds + 1)) s (one every 100 ms was meant)"
    fi
  fi
  stop_gateway
  rps[$key]=$m_rps; p50[$key]=$m_p50; p99[$key]=$m_p99; alerts[$key]=$((m_rps * batch))
}

am_case() { # CASE: one case on a fresh Alertmanager, checked against what it says it received
  local case=$1 mode batch key=$1/-/alertmanager received
  mode=$(mode_of "$case"); batch=$(batch_of "$case")
  progress "alertmanager $case"
  : >"$work/alertmanager.log"
  start_am
  measure alertmanager "$mode" "$batch" "a-$case"
  sleep 0.5
  received=$(metric_sum "$am_url" alertmanager_alerts_received_total)
  wrk_errors "$key" "$work/alertmanager.log" 1
  if within "$received" "$m_sent" "$batch"; then
    ok "$key" && check[$key]="received $received alerts"
  else
    fail "$key" "it received $received alerts for $m_sent requests of $batch"
  fi
  stop_am
  rps[$key]=$m_rps; p50[$key]=$m_p50; p99[$key]=$m_p99; alerts[$key]=$((m_rps * batch))
}

# --- The kubelet's ConfigMap update: scripts/bench-load/kubelet-swap.pl (one perl process, so
# that the swaps cost the load generator on the same CPU next to nothing).
kubelet_mount() { rm -rf "$work/kubelet"; perl scripts/bench-load/kubelet-swap.pl "$work/kubelet" "$work/config-bench" 1 0; }
reload_loop() { exec perl scripts/bench-load/kubelet-swap.pl "$1" "$work/config-bench" 0 0.1; }

# --- The run ---------------------------------------------------------------------------------
progress "work dir $work; ${seconds}s per run, $connections connections, cores $cores"
needs_redis=0
for c in new repeat batch10 batch100 storm reload redis-set latency; do wanted "$c" && needs_redis=1; done
[ "$needs_redis" = 1 ] && start_redis

for c in new repeat batch10 batch100 storm; do
  wanted "$c" || continue
  am_case "$c"
  for s in $stores; do gateway_case "$c" "$s"; done
done
if wanted reload; then
  for c in new repeat; do
    for s in $stores; do gateway_case "$c" "$s" reload; done
  done
fi

if wanted redis-set; then
  # The baseline for the Redis repeat path: Redis itself answering SET NX EX, placed like a
  # server under test (CPU 0), redis-benchmark where wrk runs.
  n=$((seconds * 50000)); [ "$n" -lt 100000 ] && n=100000
  progress "redis-benchmark SET NX EX 60, -c $connections -n $n"
  [ "$cores" = one ] && taskset -pc 0 "$redis_pid" >/dev/null
  redis-cli -p "$rport" flushall >/dev/null
  csv=$("${load[@]}" redis-benchmark -h 127.0.0.1 -p "$rport" -c "$connections" -n "$n" \
    -r 100000 --csv SET 'bench:__rand_int__' v NX EX 60)
  [ "$cores" = one ] && taskset -pc 1 "$redis_pid" >/dev/null
  echo "$csv" >>"$work/redis-benchmark.csv"
  # "test","rps","avg_latency_ms","min_latency_ms","p50_latency_ms","p95_latency_ms","p99_latency_ms","max_latency_ms"
  line=$(tail -1 <<<"$csv" | tr -d '"')
  IFS=, read -r _ rb_rps _ _ rb_p50 _ rb_p99 _ <<<"$line"
  [[ $rb_rps =~ ^[0-9.]+$ ]] || die "no figures from redis-benchmark: $csv"
  rb_rps=${rb_rps%.*}
fi

if wanted latency; then
  # wrk cannot hold a rate and Debian has no wrk2: each connection waits `connections` ms before
  # each request (wrk's delay()), so the offered rate is about 1,000 req/s whatever the count.
  for mode in new repeat; do
    progress "gateway $mode redis at ~1,000 req/s"
    start_gateway redis "$work/config-bench"
    measure gateway "$mode" 1 "l-$mode" "$connections"
    stop_gateway
    key="latency-$mode"
    rps[$key]=$m_rps; p50[$key]=$m_p50; p99[$key]=$m_p99
  done
fi

# send_alerts TARGET URL COUNT_METRIC TOTAL TAG: new alerts in batches of 100 until the server
# has received at least TOTAL in all, then wrk is stopped (SIGINT makes it end cleanly). Eight
# connections: what is measured is memory, and 800 alerts in flight stay within the write
# deadline even with embedded state.
rss_connections=8
send_alerts() {
  local target=$1 url=$2 metric=$3 total=$4 tag=$5 got
  BENCH_TARGET=$target BENCH_MODE=new BENCH_BATCH=100 BENCH_TAG=$tag BENCH_STARTS=$starts \
    "${load[@]}" wrk -t"$threads" -c"$rss_connections" -d1h --timeout 10s \
    -s scripts/bench-load/alerts.lua "$url" >"$work/wrk-rss.log" 2>&1 &
  wrk_pid=$!
  while :; do
    got=$(metric_sum "$url" "$metric")
    [ "$got" -ge "$total" ] && break
    kill -0 "$wrk_pid" 2>/dev/null || { cat "$work/wrk-rss.log" >&2; die "wrk stopped early"; }
    sleep 0.2
  done
  kill -INT "$wrk_pid"; wait "$wrk_pid" || true; wrk_pid=""
  cat "$work/wrk-rss.log" >>"$work/wrk.log"
  local errors
  errors=$(sed -n 's/^BENCH_JSON //p' "$work/wrk-rss.log" | jq '.connect + .read + .write + .status + .timeout')
  [ "${errors:-1}" = 0 ] || fail "rss/$target" "wrk saw ${errors:-?} socket errors, timeouts or non-2xx answers"
}

declare -A rss
rss_case() { # NAME PID URL METRIC
  local name=$1 pid=$2 url=$3 metric=$4 step got
  sleep 1
  rss[$name/idle]=$(rss_kib "$pid")
  for step in $rss_steps; do
    progress "$name: sending alerts up to $step"
    send_alerts "${name%%/*}" "$url" "$metric" "$step" "m-${name//\//-}-$step"
    sleep 2 # background work (flushes, group commits) settles
    got=$(metric_sum "$url" "$metric")
    rss[$name/$step]=$(rss_kib "$pid")
    rss[$name/$step/alerts]=$got
  done
}

if wanted rss; then
  top=${rss_steps##* }
  capacity=$((top + top / 5))
  for s in $rss_stores; do
    # The dedup store must hold every alert sent (its default holds 100,000).
    start_gateway "$s" "$work/config-bench" --dedup-capacity "$capacity"
    rss_case "gateway/$s" "$gateway_pid" "$gateway_url" gateway_signals_received_total
    n=$(rr_count)
    [ "$n" -ge "${rss[gateway/$s/$top/alerts]}" ] ||
      fail "rss/gateway/$s" "$n RemediationRequests for ${rss[gateway/$s/$top/alerts]} alerts"
    stop_gateway
  done
  start_am
  rss_case "alertmanager/-" "$am_pid" "$am_url" alertmanager_alerts_received_total
  stop_am
fi

# --- The report ------------------------------------------------------------------------------
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else printf "n/a" }'; }
report() {
  echo "# bench-load $(date -u +%Y-%m-%dT%H:%MZ)"
  echo
  echo "Machine: $(nproc) CPUs, $(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo), Linux $(uname -r)."
  echo "Runs of ${seconds}s (after 1 s of warm-up), wrk -t$threads -c$connections, cores: $cores."
  echo "Gateway $("$bin" --version 2>/dev/null | head -1); $("$alertmanager" --version 2>&1 | head -1)."
  if [ "$quick" = 1 ]; then echo; echo "**A quick run (--quick): 2 s runs, RSS after 25k and 100k alerts.**"; fi
  local c s k a
  if wanted new || wanted repeat || wanted batch10 || wanted batch100 || wanted storm; then
    echo
    echo "## Throughput and latency"
    echo
    echo "One alert per request, batches excepted. gateway/AM is the ratio of alerts/s, which for"
    echo "the same batches is also the ratio of requests/s. p50 and p99 in ms."
    echo
    echo "| path | store | AM req/s | AM p50 | AM p99 | gateway req/s | gateway alerts/s | gateway p50 | gateway p99 | gateway/AM | checked |"
    echo "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|"
    for c in new repeat batch10 batch100 storm; do
      wanted "$c" || continue
      a=$c/-/alertmanager
      for s in $stores; do
        k=$c/$s/gateway
        echo "| $c | $s | ${rps[$a]} | ${p50[$a]} | ${p99[$a]} | ${rps[$k]} | ${alerts[$k]} | ${p50[$k]} | ${p99[$k]} | $(ratio "${alerts[$k]}" "${alerts[$a]}") | ${check[$k]}; AM ${check[$a]} |"
      done
    done
  fi
  if wanted reload; then
    echo
    echo "## With a config reload every 100 ms"
    echo
    echo "A kubelet-style \`..data\` swap every 100 ms changing storm.yaml's inactivity_timeout"
    echo "(60s/61s), gateway with --config-debounce 50ms. Ratio against the same case without reload."
    echo
    echo "| path | store | req/s | p50 | p99 | without reload req/s | ratio | checked |"
    echo "|---|---|---:|---:|---:|---:|---:|---|"
    for c in new repeat; do
      for s in $stores; do
        k=$c/$s/reload
        echo "| $c + reload | $s | ${rps[$k]} | ${p50[$k]} | ${p99[$k]} | ${rps[$c/$s/gateway]:-n/a} | $(ratio "${rps[$k]}" "${rps[$c/$s/gateway]:-0}") | ${check[$k]} |"
      done
    done
  fi
  if wanted redis-set; then
    echo
    echo "## Redis repeat path against Redis itself"
    echo
    echo "| redis-benchmark SET NX EX 60 (-c $connections) rps | p50 | p99 | gateway repeat, Redis req/s | p50 | p99 | ratio |"
    echo "|---:|---:|---:|---:|---:|---:|---:|"
    echo "| $rb_rps | $rb_p50 | $rb_p99 | ${rps[repeat/redis/gateway]:-n/a} | ${p50[repeat/redis/gateway]:-} | ${p99[repeat/redis/gateway]:-} | $(ratio "${rps[repeat/redis/gateway]:-0}" "$rb_rps") |"
  fi
  if wanted latency; then
    echo
    echo "## Latency at about 1,000 req/s, Redis state"
    echo
    echo "$connections connections, each waiting $connections ms before each request (wrk delay())."
    echo
    echo "| path | achieved req/s | p50 | p99 |"
    echo "|---|---:|---:|---:|"
    for c in new repeat; do echo "| $c | ${rps[latency-$c]} | ${p50[latency-$c]} | ${p99[latency-$c]} |"; done
  fi
  if wanted rss; then
    echo
    echo "## Resident memory (VmRSS) per tracked alert"
    echo
    echo "New alerts in batches of 100; per alert = (RSS after − RSS idle) / alerts received."
    echo
    local first=${rss_steps%% *} name idle
    echo "| process | store | idle MiB | after ~$first: alerts, MiB, B/alert | after ~$top: alerts, MiB, B/alert | B/alert vs AM |"
    echo "|---|---|---:|---|---|---:|"
    local am_per
    am_per=$(awk -v a="${rss[alertmanager/-/$top]}" -v i="${rss[alertmanager/-/idle]}" -v n="${rss[alertmanager/-/$top/alerts]}" 'BEGIN {printf "%.0f", (a - i) * 1024 / n}')
    local names=()
    for s in $rss_stores; do names+=("gateway/$s"); done
    for name in "${names[@]}" alertmanager/-; do
      idle=${rss[$name/idle]}
      local cells="" per=""
      for step in $rss_steps; do
        per=$(awk -v a="${rss[$name/$step]}" -v i="$idle" -v n="${rss[$name/$step/alerts]}" 'BEGIN {printf "%.0f", (a - i) * 1024 / n}')
        cells="$cells | ${rss[$name/$step/alerts]}, $(awk -v a="${rss[$name/$step]}" 'BEGIN {printf "%.1f", a / 1024}'), $per"
      done
      echo "| ${name%%/*} | ${name#*/} | $(awk -v a="$idle" 'BEGIN {printf "%.1f", a / 1024}')$cells | $(ratio "$per" "$am_per") |"
    done
  fi
}
report | tee "$out"
progress "report written to $out"
if [ ${#failures[@]} -gt 0 ]; then
  {
    echo
    echo "## FAILED checks"
    echo
    for f in "${failures[@]}"; do echo "- $f"; done
  } | tee -a "$out" >&2
  exit 1
fi
