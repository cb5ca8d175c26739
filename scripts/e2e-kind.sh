#!/usr/bin/env bash
# End-to-end test of deploy/ on a throwaway kind cluster (`just e2e-kind`):
#   1. builds the image with the Dockerfile (tagged as deploy/ names it) and `kind load`s it;
#   2. applies the CRD first and waits until it is Established, then `kubectl apply -k deploy/`
#      (stand-in CRDs for ServiceMonitor and PrometheusRule when the cluster has no Prometheus
#      Operator, so the base applies unchanged), and waits for the rollout;
#   3. port-forwards the Service, POSTs an Alertmanager webhook and asserts 201 and that a
#      RemediationRequest exists (`kubectl get remediationrequests -A`);
#   4. patches dedup.yaml in the ConfigMap and waits (up to E2E_RELOAD_TIMEOUT, 150 s: the
#      kubelet's sync delay) until every replica has it in force (GET /config through the API
#      server's pod proxy, and gateway_config_generation{config_type="dedup"} risen); then patches
#      an invalid value and waits until every replica has rejected it and kept the previous one;
#   5. deletes the cluster on exit, whatever happened (E2E_KEEP_CLUSTER=1 keeps it to look around).
#
# It CANNOT run on the development machine this repository is built on: there is no kind and no
# container registry there (kind needs its node image, the Dockerfile the Rust image). It needs:
# Docker with a running daemon, kind (>= 0.20), kubectl (>= 1.24), curl, registry access for
# the kindest/node and rust:1.95-bookworm images, and a few GB of disk. E2E_BUILD=host builds the
# image from a host-built binary instead of the Dockerfile (scripts/image.sh: no Rust image pull;
# the node image is still needed).
#
#   scripts/e2e-kind.sh
#   E2E_CLUSTER=name E2E_KEEP_CLUSTER=1 E2E_BUILD=host scripts/e2e-kind.sh
set -euo pipefail
cd "$(dirname "$0")/.."

cluster="${E2E_CLUSTER:-kubernaut-gateway-e2e}"
build="${E2E_BUILD:-dockerfile}"
reload_timeout="${E2E_RELOAD_TIMEOUT:-150}"
ns=kubernaut-system
signal_ns=kubernaut-e2e
crd=remediationrequests.remediation.kubernaut.io

log() { echo "e2e-kind: $*" >&2; }
die() { log "FAILED: $*"; exit 1; }

# ---- prerequisites, each with what to do about it ----
missing=()
for tool in docker kind kubectl curl; do
  command -v "$tool" >/dev/null || missing+=("$tool")
done
if [ ${#missing[@]} -gt 0 ]; then
  log "missing: ${missing[*]}"
  log "  docker:  a running Docker daemon (https://docs.docker.com/engine/install/)"
  log "  kind:    go install sigs.k8s.io/kind@latest, or a release binary (needs registry access for kindest/node)"
  log "  kubectl: Debian's kubernetes-client, or a release binary"
  log "  curl:    apt-get install curl"
  exit 1
fi
docker info >/dev/null 2>&1 || die "the Docker daemon does not answer (docker info)"
case "$build" in
  dockerfile | host) ;;
  *) die "E2E_BUILD must be 'dockerfile' or 'host', not '$build'" ;;
esac
if kind get clusters 2>/dev/null | grep -qx "$cluster"; then
  die "a kind cluster named $cluster exists already: kind delete cluster --name $cluster (or set E2E_CLUSTER)"
fi

# ---- cleanup: port-forward, cluster ----
forward_pid=""
forward_log="$(mktemp)"
cleanup() {
  local status=$?
  if [ -n "$forward_pid" ]; then kill "$forward_pid" 2>/dev/null || true; fi
  rm -f "$forward_log"
  if [ $status -ne 0 ]; then
    log "diagnostics:"
    kubectl -n "$ns" get pods -o wide >&2 2>&1 || true
    kubectl -n "$ns" logs -l app.kubernetes.io/name=kubernaut-gateway --tail=50 --prefix >&2 2>&1 || true
  fi
  if [ "${E2E_KEEP_CLUSTER:-0}" = 1 ]; then
    log "keeping cluster $cluster (kind delete cluster --name $cluster)"
  else
    kind delete cluster --name "$cluster" >/dev/null 2>&1 || true
  fi
  exit $status
}
trap cleanup EXIT

# ---- 1. image ----
image="$(kubectl kustomize deploy/ 2>/dev/null | sed -n 's/^ *image: *//p')"
image="${image%%$'\n'*}"
[ -n "$image" ] || die "no image in the render of deploy/"
if [ "$build" = host ]; then
  scripts/image.sh --tag "$image"
else
  scripts/image.sh --from-source --tag "$image"
fi

log "creating kind cluster $cluster"
kind create cluster --name "$cluster" --wait 180s
kubectl config use-context "kind-$cluster" >/dev/null
log "kind load docker-image $image"
kind load docker-image "$image" --name "$cluster"

# ---- 2. apply ----
log "the CRD first"
kubectl apply -f deploy/crd.yaml
kubectl wait --for condition=established --timeout=60s "crd/$crd"

# deploy/ includes a ServiceMonitor and a PrometheusRule; without the Prometheus Operator their
# kinds are unknown and `apply -k` fails. Stand-in CRDs (any content) let the base apply as is.
for kind_plural in ServiceMonitor:servicemonitors PrometheusRule:prometheusrules; do
  kind_name="${kind_plural%%:*}"
  plural="${kind_plural##*:}"
  if ! kubectl get crd "$plural.monitoring.coreos.com" >/dev/null 2>&1; then
    log "stand-in CRD for $kind_name (no Prometheus Operator in this cluster)"
    kubectl apply -f - <<YAML
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: $plural.monitoring.coreos.com
spec:
  group: monitoring.coreos.com
  names:
    kind: $kind_name
    plural: $plural
  scope: Namespaced
  versions:
    - name: v1
      served: true
      storage: true
      schema:
        openAPIV3Schema:
          type: object
          x-kubernetes-preserve-unknown-fields: true
YAML
    kubectl wait --for condition=established --timeout=60s "crd/$plural.monitoring.coreos.com"
  fi
done

# The Deployment mounts the callers' tokens from this Secret (not optional: deploy/README.md,
# "Caller tokens"); a throwaway token for a throwaway cluster.
kubectl create namespace "$ns" --dry-run=client -o yaml | kubectl apply -f -
token_file="$(mktemp)"
head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$token_file"
kubectl -n "$ns" create secret generic kubernaut-gateway-auth --from-file=tokens="$token_file" \
  --dry-run=client -o yaml | kubectl apply -f -
rm -f "$token_file"

log "kubectl apply -k deploy/"
kubectl apply -k deploy/
kubectl -n "$ns" rollout status deployment/kubernaut-gateway --timeout=180s

# ---- 3. a signal becomes a RemediationRequest ----
kubectl create namespace "$signal_ns" --dry-run=client -o yaml | kubectl apply -f -
kubectl -n "$ns" port-forward svc/kubernaut-gateway :8080 >"$forward_log" 2>&1 &
forward_pid=$!
port=""
for _ in $(seq 1 100); do
  port="$(sed -n 's/^Forwarding from 127\.0\.0\.1:\([0-9]*\) .*/\1/p' "$forward_log" | head -n1)"
  [ -n "$port" ] && break
  sleep 0.1
done
[ -n "$port" ] || die "port-forward did not start: $(cat "$forward_log")"
base="http://127.0.0.1:$port"
log "port-forward: $base -> svc/kubernaut-gateway:8080"
curl -fsS "$base/readyz" >/dev/null || die "/readyz through the Service"

now="$(date -u +%Y-%m-%dT%H:%M:%SZ)"
payload="$(cat <<JSON
{
  "version": "4",
  "status": "firing",
  "receiver": "kubernaut-gateway",
  "groupKey": "{}:{alertname=\"KubePodCrashLooping\"}",
  "groupLabels": {"alertname": "KubePodCrashLooping"},
  "commonLabels": {},
  "commonAnnotations": {},
  "externalURL": "http://alertmanager.e2e:9093",
  "alerts": [{
    "status": "firing",
    "labels": {"alertname": "KubePodCrashLooping", "namespace": "$signal_ns",
               "pod": "e2e-api-7d9f8c6b5-x2x9q", "severity": "warning"},
    "annotations": {"summary": "Pod is crash looping."},
    "startsAt": "$now",
    "endsAt": "0001-01-01T00:00:00Z",
    "generatorURL": "http://prometheus.e2e:9090/graph",
    "fingerprint": "e2e0000000000001"
  }]
}
JSON
)"
answer="$(mktemp)"
status="$(curl -sS -o "$answer" -w '%{http_code}' -X POST -H 'Content-Type: application/json' \
  --data-binary "$payload" "$base/api/v1/signals/prometheus")"
body="$(cat "$answer")"; rm -f "$answer"
[ "$status" = 201 ] || die "the webhook was answered $status, not 201: $body"
log "webhook answered 201: $body"
kubectl get remediationrequests -A
[ -n "$(kubectl -n "$signal_ns" get remediationrequests -o name)" ] ||
  die "no RemediationRequest in namespace $signal_ns"

# ---- 4. hot reload from the ConfigMap ----
pods=()
while read -r pod; do pods+=("$pod"); done < <(kubectl -n "$ns" get pods \
  -l app.kubernetes.io/name=kubernaut-gateway --field-selector=status.phase=Running -o name)
[ ${#pods[@]} -gt 0 ] || die "no running gateway pod"

# GET PATH of one pod, through the API server's pod proxy (no port-forward per pod).
pod_get() { kubectl get --raw "/api/v1/namespaces/$ns/pods/http:${1#pod/}:8080/proxy$2"; }
metric() { pod_get "$1" /metrics | awk -v m="$2" '$1 == m { print $2 }'; }
wait_each_pod() { # DESCRIPTION CHECK-FUNCTION
  local pod deadline
  for pod in "${pods[@]}"; do
    deadline=$((SECONDS + reload_timeout))
    until "$2" "$pod"; do
      [ $SECONDS -lt $deadline ] || die "$pod: $1 not seen within ${reload_timeout}s"
      sleep 2
    done
    log "$pod: $1 after $((SECONDS + reload_timeout - deadline))s"
  done
}

generation_metric='gateway_config_generation{config_type="dedup"}'
declare -A generation_before errors_before
for pod in "${pods[@]}"; do
  generation_before[$pod]="$(metric "$pod" "$generation_metric")"
  errors_before[$pod]="$(metric "$pod" 'gateway_config_reload_total{config_type="dedup",result="error"}')"
  pod_get "$pod" /config | grep -q '"ttl":"5m"' || die "$pod: dedup ttl is not the seed's 5m"
done

log "kubectl patch configmap: dedup.yaml ttl 5m -> 7m"
kubectl -n "$ns" patch configmap kubernaut-gateway-config --type merge \
  -p '{"data":{"dedup.yaml":"ttl: 7m\n"}}'
applied() {
  pod_get "$1" /config | grep -q '"ttl":"7m"' &&
    [ "$(metric "$1" "$generation_metric")" -gt "${generation_before[$1]}" ]
}
wait_each_pod "ttl 7m in force (generation risen)" applied

log "kubectl patch configmap: an invalid dedup.yaml (ttl 0s) must be rejected"
kubectl -n "$ns" patch configmap kubernaut-gateway-config --type merge \
  -p '{"data":{"dedup.yaml":"ttl: 0s\n"}}'
rejected() {
  [ "$(metric "$1" 'gateway_config_reload_total{config_type="dedup",result="error"}')" -gt "${errors_before[$1]:-0}" ] &&
    pod_get "$1" /config | grep -q '"ttl":"7m"'
}
wait_each_pod "ttl 0s rejected, 7m kept" rejected

log "ok: deploy/ on kind: rollout, webhook -> RemediationRequest, ConfigMap hot reload and rejection"
