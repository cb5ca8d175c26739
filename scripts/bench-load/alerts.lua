-- wrk script of scripts/bench-load.sh: the same alerts, shaped for the gateway (an Alertmanager
-- webhook to /api/v1/signals/prometheus) or for Alertmanager itself (POST /api/v2/alerts, a JSON
-- list of alerts). Set by the environment:
--   BENCH_TARGET  gateway | alertmanager
--   BENCH_MODE    new (every alert distinct: an alert name and a pod of its own)
--                 repeat (the same one alert every time)
--                 storm (one storm alert name, a distinct pod each)
--   BENCH_BATCH   alerts per request (distinct within and across requests, except for repeat)
--   BENCH_TAG     makes pod names distinct across runs
--   BENCH_STARTS  the alerts' startsAt (RFC 3339)
--   BENCH_DELAY_MS  wait before each request on a connection (a fixed rate: connections / delay)
--   BENCH_LIMIT   stop a thread after this many responses (0: run for the duration)
-- done() prints one line `BENCH_JSON {...}`: requests, duration, errors, latency percentiles (µs).

local target = os.getenv("BENCH_TARGET") or "gateway"
local mode = os.getenv("BENCH_MODE") or "new"
local batch = tonumber(os.getenv("BENCH_BATCH") or "1")
local tag = os.getenv("BENCH_TAG") or "t"
local starts = os.getenv("BENCH_STARTS") or "2026-01-01T00:00:00Z"
local delay_ms = tonumber(os.getenv("BENCH_DELAY_MS") or "0")
local limit = tonumber(os.getenv("BENCH_LIMIT") or "0")

local threads = {}
local next_id = 0

function setup(thread)
  thread:set("tid", next_id)
  next_id = next_id + 1
  table.insert(threads, thread)
end

local counter = 0
local responses = 0
local path, fixed

local function alert(name, pod)
  local labels = string.format(
    '{"alertname":"%s","namespace":"bench","pod":"%s","severity":"warning"}', name, pod)
  if target == "gateway" then
    return string.format(
      '{"status":"firing","labels":%s,"annotations":{"summary":"bench"},"startsAt":"%s"}',
      labels, starts)
  end
  return string.format('{"labels":%s,"annotations":{"summary":"bench"},"startsAt":"%s"}',
    labels, starts)
end

local function body(alerts)
  local list = "[" .. table.concat(alerts, ",") .. "]"
  if target == "gateway" then
    return '{"version":"4","status":"firing","receiver":"bench","alerts":' .. list .. '}'
  end
  return list
end

function init(args)
  if target == "gateway" then
    path = "/api/v1/signals/prometheus"
  else
    path = "/api/v2/alerts"
  end
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/json"
  if mode == "repeat" then
    local alerts = {}
    for _ = 1, batch do table.insert(alerts, alert("BenchRepeat", "bench-0")) end
    fixed = wrk.format("POST", path, nil, body(alerts))
  end
end

function request()
  if fixed then return fixed end
  local alerts = {}
  for _ = 1, batch do
    counter = counter + 1
    local id = string.format("%s-%d-%d", tag, tid, counter)
    local name = "BenchStorm"
    if mode == "new" then name = "BenchNew-" .. id end
    alerts[#alerts + 1] = alert(name, id)
  end
  return wrk.format("POST", path, nil, body(alerts))
end

if delay_ms > 0 then
  function delay() return delay_ms end
end

if limit > 0 then
  function response(status, headers, body)
    responses = responses + 1
    if responses >= limit then wrk.thread:stop() end
  end
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCH_JSON {"requests":%d,"duration_us":%d,"connect":%d,"read":%d,"write":%d,'
      .. '"status":%d,"timeout":%d,"p50_us":%d,"p99_us":%d,"max_us":%d}\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(99), latency.max))
end
