#!/usr/bin/env python3
"""Writes tests/fixtures/replay/storm.jsonl: a recorded alert storm for `gateway replay`.

Deterministic: the same bytes on every run (random.Random with a fixed seed, no clock read).
`tests/it/replay.rs` pins the replay's numbers on this file, so a change here is a change there.

What it holds, on one 45-minute afternoon from 2026-11-25T10:00:00Z, in JSON lines (one
Alertmanager webhook body, core/v1 Event or wrapper {"received_at", "body"} per line, not in
time order: the replay sorts):
- background: 200 ordinary alerts (40 names, 8 namespaces), each firing, sent again every 60 s
  two to four times (duplicates; as wrappers, since a resend keeps its startsAt), then resolved;
- a rate storm from 10:12: KubeJobFailed flapping on 5 Jobs in `etl`, each firing every 10 s
  and resolved 5 s later, for 3 minutes (about 30 new signals a minute on 5 resources);
- a pattern storm from 10:20: KubePodCrashLooping on 120 Pods of `payments`, one every 1.5 s,
  each sent again 60 s later (duplicates); half resolved at 10:32;
- a storm past the sampling threshold from 10:30: KubeContainerWaiting on 1000 Pods of
  `batch`, 50 alerts per body, a body every 2 s;
- 30 Warning events (BackOff) and 5 Normal events (ignored) in `web`.

    scripts/replay-fixture.py [OUT]     (default tests/fixtures/replay/storm.jsonl)
"""

import datetime
import json
import os
import random
import sys

T0 = datetime.datetime(2026, 11, 25, 10, 0, 0, tzinfo=datetime.timezone.utc)
ZERO = "0001-01-01T00:00:00Z"
rng = random.Random(12)
lines = []


def at(seconds):
    t = T0 + datetime.timedelta(seconds=seconds)
    return t.strftime("%Y-%m-%dT%H:%M:%S") + ".%03dZ" % (t.microsecond // 1000)


def alert(status, labels, starts, ends=None):
    return {
        "status": status,
        "labels": labels,
        "startsAt": at(starts),
        "endsAt": at(ends) if ends is not None else ZERO,
    }


def webhook(alerts):
    status = "firing" if any(a["status"] == "firing" for a in alerts) else "resolved"
    return {"version": "4", "status": status, "receiver": "kubernaut", "alerts": alerts}


def emit(document):
    lines.append(json.dumps(document, separators=(",", ":"), sort_keys=True))


def resent(seconds, body):
    emit({"received_at": at(seconds), "body": body})


# Background: ordinary alerts, a handful per name over the afternoon.
NAMES = ["Background%02d" % i for i in range(40)]
NAMESPACES = ["shop", "search", "auth", "billing", "media", "mail", "ads", "maps"]
for i in range(200):
    name = rng.choice(NAMES)
    labels = {
        "alertname": name,
        "namespace": rng.choice(NAMESPACES),
        "pod": "svc-%03d" % i,
        "severity": rng.choice(["warning", "critical", "info"]),
    }
    start = rng.randrange(0, 40 * 60)
    emit(webhook([alert("firing", labels, start)]))
    repeats = rng.randrange(2, 5)
    for k in range(1, repeats + 1):
        resent(start + 60 * k, webhook([alert("firing", labels, start)]))
    end = start + 60 * repeats + rng.randrange(10, 50)
    emit(webhook([alert("resolved", labels, start, end)]))

# Rate storm: five flapping Jobs.
for job in range(5):
    labels = {"alertname": "KubeJobFailed", "namespace": "etl", "job_name": "etl-import-%d" % job,
              "severity": "warning"}
    for cycle in range(18):
        start = 12 * 60 + cycle * 10 + job * 2
        emit(webhook([alert("firing", labels, start)]))
        emit(webhook([alert("resolved", labels, start, start + 5)]))

# Pattern storm: crash-looping pods, each resent once; half resolved later.
for pod in range(120):
    labels = {"alertname": "KubePodCrashLooping", "namespace": "payments",
              "pod": "payments-api-%03d" % pod, "severity": "critical"}
    start = 20 * 60 + pod * 1.5
    emit(webhook([alert("firing", labels, start)]))
    resent(start + 60, webhook([alert("firing", labels, start)]))
    if pod % 2 == 0:
        emit(webhook([alert("resolved", labels, start, 32 * 60 + pod)]))

# A storm past the sampling threshold: 1000 pods, 50 per body.
for body in range(20):
    start = 30 * 60 + body * 2
    emit(webhook([
        alert("firing", {"alertname": "KubeContainerWaiting", "namespace": "batch",
                         "pod": "batch-worker-%04d" % (body * 50 + n)}, start)
        for n in range(50)
    ]))

# Kubernetes events.
for i in range(35):
    kind = "Normal" if i % 7 == 6 else "Warning"
    seconds = 60 * i + rng.randrange(0, 60)
    emit({
        "apiVersion": "v1",
        "kind": "Event",
        "type": kind,
        "reason": "BackOff" if kind == "Warning" else "Pulled",
        "message": "Back-off restarting failed container" if kind == "Warning" else "Image pulled",
        "involvedObject": {"kind": "Pod", "namespace": "web", "name": "web-%02d" % (i % 12)},
        "metadata": {"name": "web.%d" % i, "namespace": "web"},
        "firstTimestamp": at(seconds - 30),
        "lastTimestamp": at(seconds),
        "source": {"component": "kubelet"},
    })

rng.shuffle(lines)
out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
    os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures", "replay", "storm.jsonl")
with open(out, "w", encoding="utf-8") as f:
    f.write("\n".join(lines) + "\n")
print("%s: %d documents, %d bytes" % (os.path.normpath(out), len(lines), os.path.getsize(out)))
