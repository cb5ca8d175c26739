#!/usr/bin/env python3
"""The load of scripts/redis-sizing.sh: one Alertmanager webhook per request, each holding one
alert, sent over CONCURRENCY keep-alive connections, exactly COUNT requests (wrk cannot stop at
an exact count, and the repeat phase must resend exactly the alerts of the new phase), at a
steady RATE.

    send.py URL MODE FIRST COUNT CONCURRENCY RATE STARTS

URL     the gateway's base URL (http://127.0.0.1:PORT)
MODE    new   alert i is SizingNew-<i> on pod sizing-<i>: an alert name of its own, so no storm
              starts (sending the same range again is the repeat phase: the same fingerprints)
        storm alert i is SizingStorm on pod storm-<i>: one alert name and namespace, a pod each
FIRST   the first i; alerts FIRST .. FIRST+COUNT-1 are sent, each once
RATE    requests per second: alert FIRST+j is not sent before j/RATE seconds from the start
        (a connection that falls behind sends at once); 0: as fast as the connections go
STARTS  the alerts' startsAt (RFC 3339), the same in every phase

Prints one JSON line: {"sent", "seconds", "cpu_s" (this process's CPU time), "status": {code:
count}, "errors"}. Exits 1 when any
answer was not 2xx or a request failed (the first few are quoted on stderr), 2 on bad arguments.
"""

import http.client
import json
import sys
import threading
import time
import urllib.parse

PATH = "/api/v1/signals/prometheus"
TIMEOUT_S = 30


def body(mode, i, starts):
    """One webhook with one alert, shaped like Alertmanager's (a few labels and annotations, as
    a kube-prometheus pod alert carries)."""
    if mode == "new":
        name, pod = f"SizingNew-{i}", f"sizing-{i}"
    else:
        name, pod = "SizingStorm", f"storm-{i}"
    labels = {
        "alertname": name,
        "namespace": "sizing",
        "pod": pod,
        "container": "app",
        "job": "kube-state-metrics",
        "severity": "warning",
    }
    alert = {
        "status": "firing",
        "labels": labels,
        "annotations": {
            "summary": f"{name} on {pod}",
            "description": "Pod sizing/" + pod + " has been in a non-ready state for 15 minutes.",
        },
        "startsAt": starts,
        "endsAt": "0001-01-01T00:00:00Z",
        "generatorURL": "http://prometheus.example/graph?g0.expr=up",
        "fingerprint": f"{i:016x}",
    }
    webhook = {
        "version": "4",
        "groupKey": "{}:{alertname=\"" + name + "\"}",
        "status": "firing",
        "receiver": "kubernaut",
        "groupLabels": {"alertname": name},
        "commonLabels": labels,
        "commonAnnotations": {},
        "externalURL": "http://alertmanager.example",
        "alerts": [alert],
    }
    return json.dumps(webhook, separators=(",", ":")).encode()


def worker(host, port, mode, indexes, pace, starts, status, errors, lock):
    """Sends alerts `indexes` in turn on one connection; alert `first + j` not before
    `started + j * interval` (`pace` = (first, started, interval), interval 0: no wait)."""
    first, started, interval = pace
    connection = http.client.HTTPConnection(host, port, timeout=TIMEOUT_S)
    headers = {"Content-Type": "application/json"}
    mine = {}
    failures = []
    for i in indexes:
        wait = started + (i - first) * interval - time.monotonic()
        if wait > 0:
            time.sleep(wait)
        try:
            connection.request("POST", PATH, body(mode, i, starts), headers)
            response = connection.getresponse()
            text = response.read()
            mine[response.status] = mine.get(response.status, 0) + 1
            if not 200 <= response.status < 300:
                failures.append(f"alert {i}: {response.status} {text[:200]!r}")
        except (OSError, http.client.HTTPException) as error:
            failures.append(f"alert {i}: {error!r}")
            connection.close()
            connection = http.client.HTTPConnection(host, port, timeout=TIMEOUT_S)
    connection.close()
    with lock:
        for code, n in mine.items():
            status[code] = status.get(code, 0) + n
        errors.extend(failures)


def main(argv):
    if len(argv) != 8:
        print(__doc__, file=sys.stderr)
        return 2
    url, mode, first, count, concurrency, rate, starts = argv[1:]
    if mode not in ("new", "storm"):
        print(f"send.py: MODE must be new or storm, got {mode}", file=sys.stderr)
        return 2
    first, count, concurrency, rate = int(first), int(count), int(concurrency), float(rate)
    if count < 1 or concurrency < 1 or rate < 0:
        print("send.py: COUNT and CONCURRENCY must be ≥ 1, RATE ≥ 0", file=sys.stderr)
        return 2
    # The schedule starts a little ahead, so that every thread is running when it does.
    pace = (first, time.monotonic() + 0.1, 1 / rate if rate > 0 else 0)
    parsed = urllib.parse.urlsplit(url)
    status, errors, lock = {}, [], threading.Lock()
    threads = [
        threading.Thread(
            target=worker,
            args=(
                parsed.hostname,
                parsed.port,
                mode,
                range(first + t, first + count, concurrency),
                pace,
                starts,
                status,
                errors,
                lock,
            ),
        )
        for t in range(concurrency)
    ]
    started = pace[1]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    seconds = time.monotonic() - started
    result = {
        "sent": count,
        "seconds": round(seconds, 3),
        "cpu_s": round(time.process_time(), 3),
        "status": {str(code): n for code, n in sorted(status.items())},
        "errors": len(errors),
    }
    print(json.dumps(result))
    for error in errors[:5]:
        print(f"send.py: {error}", file=sys.stderr)
    answered = sum(n for code, n in status.items() if 200 <= code < 300)
    return 0 if not errors and answered == count else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
