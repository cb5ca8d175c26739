#!/usr/bin/env python3
"""Writes the structure-aware seed corpus (real payloads from the tests, and variants of them)
into corpus-full/<target>/, which scripts/fuzz.sh then fuzzes and minimizes into corpus/."""
import copy, json, os, pathlib

ROOT = pathlib.Path(__file__).resolve().parents[2]
OUT = pathlib.Path(__file__).resolve().parents[1] / "corpus-full"

def put(target, name, data):
    d = OUT / target
    d.mkdir(parents=True, exist_ok=True)
    (d / name).write_bytes(data if isinstance(data, bytes) else data.encode())

webhook = json.loads((ROOT / "domain/signal/testdata/alertmanager-webhook.json").read_text())
put("alertmanager", "webhook.json", json.dumps(webhook, indent=2))
for i, alert in enumerate(webhook["alerts"]):
    one = dict(webhook, alerts=[alert])
    put("alertmanager", f"alert-{i}.json", json.dumps(one))
node = copy.deepcopy(webhook["alerts"][0])
node["labels"] = {"alertname": "KubeNodeNotReady", "node": "worker-2", "severity": "page",
                  "exported_namespace": "monitoring"}
node["startsAt"] = "0001-01-01T00:00:00Z"
put("alertmanager", "node.json", json.dumps(dict(webhook, version="4", alerts=[node])))
put("alertmanager", "empty-batch.json", json.dumps({"version": "4", "alerts": []}))
put("alertmanager", "no-alertname.json",
    json.dumps({"version": "4", "alerts": [{"status": "firing", "labels": {"pod": "p"}}]}))

event = json.loads((ROOT / "domain/signal/testdata/kubernetes-event.json").read_text())
put("kubernetes_event", "event.json", json.dumps(event, indent=2))
normal = dict(event, type="Normal", reason="Pulled")
put("kubernetes_event", "normal.json", json.dumps(normal))
node_event = dict(event, involvedObject={"kind": "Node", "name": "worker-2"},
                  firstTimestamp=None, eventTime="2025-11-25T16:58:41.123456Z")
put("kubernetes_event", "node-eventtime.json", json.dumps(node_event))
put("kubernetes_event", "events-k8s-io.json", json.dumps(
    {"apiVersion": "events.k8s.io/v1", "kind": "Event", "regarding": {"kind": "Pod", "name": "p"},
     "note": "n", "reason": "BackOff", "type": "Warning"}))

# The settings target: the first byte picks the type (0 storm, 1 dedup, 2 retry).
for selector, name in enumerate(["storm", "dedup", "retry"]):
    put("settings", f"{name}.yaml", bytes([selector]) + (ROOT / f"deploy/config/{name}.yaml").read_bytes())
put("settings", "storm-partial.yaml", b"\x00rate_threshold: 3\nmax_window_duration: 1h 30m\n")
put("settings", "storm-bad.yaml", b"\x00rate_threshold: 0\nsampling_rate: 7\n")
put("settings", "dedup-long.yaml", b"\x01ttl: 7days\n")
put("settings", "retry-units.yaml", b"\x02initial_backoff: 250ms\nmax_backoff: 1m\nmax_attempts: 20\n")
