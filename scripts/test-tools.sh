#!/usr/bin/env bash
# Installs the programs the test suite runs besides cargo, when missing, from Debian's packages:
# kubectl (tests/it/deploy_manifests.rs renders deploy/; Debian's is 1.20, kustomize v2.0.3),
# promtool and Prometheus (Debian's prometheus package: promtool checks and unit-tests the
# PrometheusRule and the gateway's /metrics; Prometheus scrapes and alerts in
# tests/it/prometheus_stack.rs) and Alertmanager (0.25+; delivers to the gateway over TLS in
# tests/it/alertmanager_tls.rs, and Prometheus' alerts in tests/it/prometheus_stack.rs), and
# redis-server and redis-cli (Debian's redis-server and redis-tools: Redis Cluster and Sentinel
# topologies in tests/it, real processes on loopback ports started by
# tests/src/redis_topology.rs, the cluster created with `redis-cli --cluster create`).
# Called by scripts/test.sh, so the README's test command works on a fresh machine.
set -euo pipefail

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}
# Installs Debian's PACKAGE when COMMAND is missing (the package lists refreshed only when they
# do not know it).
need() {
  local command="$1" package="$2"
  command -v "$command" >/dev/null && return 0
  echo "installing $package (for $command)"
  if ! apt-cache policy "$package" 2>/dev/null | grep -q 'Candidate: [0-9]'; then
    as_root apt-get update -qq
  fi
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    "$package" >/dev/null
}

need kubectl kubernetes-client
need promtool prometheus
need prometheus prometheus
need prometheus-alertmanager prometheus-alertmanager
need redis-server redis-server
need redis-cli redis-tools
