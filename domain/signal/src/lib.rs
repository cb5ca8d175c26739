//! Turns what Alertmanager and Kubernetes send into [`Signal`](gateway_ports::Signal)s, and fingerprints them.
//!
//! Pure: no IO, no clock. The receive time is an argument, so every result is reproducible.
//! Parsers never panic, whatever the bytes; a payload the gateway cannot accept is a
//! [`PayloadError`] naming where in the JSON the problem is (`alerts[1].labels.alertname`).
//!
//! # Alertmanager webhooks ([`parse_alertmanager`])
//!
//! Webhook version `"4"`. Every alert of the batch becomes a signal, firing and resolved, in
//! order. Unknown fields are ignored everywhere, because Alertmanager adds fields over time.
//!
//! | Signal field | From |
//! |---|---|
//! | `name` | label `alertname` (required, non-empty) |
//! | `namespace` | label `namespace`, else `exported_namespace`, else `""` |
//! | `resource` | the first non-empty label of `pod`, `deployment`, `statefulset`, `daemonset`, `replicaset`, `job_name` (Job), `cronjob`, `persistentvolumeclaim`, `node`, `service`; none → kind `Unknown`, name `""` |
//! | `severity` | label `severity`, case-insensitive: `critical`/`page`/`high` → Critical, `warning`/`warn`/`medium` → Warning, anything else or none → Info |
//! | `status` | the alert's own `status` (`firing` or `resolved`), not the batch's |
//! | `firing_time` | `startsAt`, unless it is missing, unparseable, or a zero time (Go's `0001-01-01T00:00:00Z` or the Unix epoch): then the receive time |
//! | `labels`, `annotations` | the alert's, verbatim (values must be strings) |
//!
//! A label with an empty value counts as absent, as it does in Prometheus. `job` is not read as a
//! Job: it is Prometheus's scrape job; kube-state-metrics names the Job in `job_name`.
//!
//! # Kubernetes events ([`parse_kubernetes_event`])
//!
//! A core/v1 `Event` only (`apiVersion: v1`, when given). The events.k8s.io/v1 shape (`regarding`,
//! `note`) is rejected with a message saying so, rather than misread. Only `type: Warning`
//! becomes a signal; `Normal` events are [`EventOutcome::Ignored`], and any other type is an error
//! (Kubernetes defines no other, so it means a broken forwarder).
//!
//! | Signal field | From |
//! |---|---|
//! | `name` | `reason` (required) |
//! | `namespace` | `involvedObject.namespace`, else `metadata.namespace`, else `""` |
//! | `resource` | `involvedObject.kind` and `.name` (both required) |
//! | `severity`, `status` | Warning, Firing |
//! | `firing_time` | `firstTimestamp`, else `eventTime`, else the receive time (zero times skipped) |
//! | `labels` | `event_type`, `involved_kind`, `involved_name`, and when known `source_component` (`source.component`, else `reportingComponent`) and `source_host` |
//! | `annotations` | `message`, when present |
//!
//! # Resources and namespaces
//!
//! A cluster-scoped resource (`Node`, `Namespace`, `PersistentVolume`, `StorageClass`,
//! `ClusterRole`, `ClusterRoleBinding`, `CustomResourceDefinition`, `PriorityClass`,
//! `CSINode`, `VolumeAttachment`) gets an empty `resource.namespace`; the signal's `namespace`
//! is still what the source said, since that is where the gateway files its work.
//!
//! # Fingerprint ([`fingerprint`])
//!
//! The dedup identity of a signal is
//!
//! ```text
//! lowercase_hex(SHA-256(name ␀ namespace ␀ kind ␀ resource_name))
//! ```
//!
//! over the UTF-8 bytes, `␀` being one NUL byte, so `("ab", "c")` and `("a", "bc")` differ. The
//! arguments are the signal's `name`, `namespace`, `resource.kind` and `resource.name`. Label
//! order, other labels, annotations, timestamps, status, receiver and the Alertmanager replica
//! never enter it: two Alertmanager replicas sending the same alert yield one fingerprint, and
//! the resolved alert has the fingerprint of the firing one, so it can close its window.
//!
//! Test vectors (each checkable with `printf '<name>\0<namespace>\0<kind>\0<resource>' | sha256sum`):
//!
//! | name | namespace | kind | resource_name | fingerprint |
//! |---|---|---|---|---|
//! | `a` | `b` | `c` | `d` | `cf92326f85f50aa865be765403a20d1b6772cd24f2628a15b31d53eb9150b043` |
//! | `ab` | `c` | `""` | `""` | `bd004134849ca646d85104d0f90bea121a2a2861f05c76e07d97dec0361d29f0` |
//! | `a` | `bc` | `""` | `""` | `659f6e5742991f4ef127c972729839a1cd4a59f862339c765ddfa4459be3d959` |
//! | `""` | `""` | `Unknown` | `""` | `8344fca3e05a65cb3e4fec2c441439ee6e3d997732739d944828fa2dfffcf89a` |
//! | `KubePodCrashLooping` | `payments` | `Pod` | `payments-api-7d9f8c6b5-x2x9q` | `4737d08755f6951f17ded3bafca36b579cd6a3ef800d2e99076069014e9fe6db` |
//! | `KubeNodeNotReady` | `monitoring` | `Node` | `worker-2` | `858b5542be5a7c179cf66b4ee3a7d7e629ce47dc235e771107f2601d98393bf2` |

mod alertmanager;
mod error;
mod fingerprint;
mod kubernetes;
#[cfg(test)]
mod proptests;

use gateway_ports::Timestamp;

pub use alertmanager::parse_alertmanager;
pub use error::{ECHO_CHARS, PayloadError, truncated};
pub use fingerprint::fingerprint;
pub use kubernetes::{EventOutcome, parse_kubernetes_event};

/// `raw` as a firing time, if it says something usable.
///
/// Alertmanager and Kubernetes both write a zero time rather than omit the field, and a
/// signal that claims to have started in year 1 or 1970 would break every age computation
/// downstream, so those count as "not said".
fn usable_time(raw: Option<&str>) -> Option<Timestamp> {
    Timestamp::parse_rfc3339(raw?).filter(|t| *t != Timestamp::EPOCH)
}

/// Kinds with no namespace, among those signals commonly name.
fn is_cluster_scoped(kind: &str) -> bool {
    matches!(
        kind,
        "Node"
            | "Namespace"
            | "PersistentVolume"
            | "StorageClass"
            | "ClusterRole"
            | "ClusterRoleBinding"
            | "CustomResourceDefinition"
            | "PriorityClass"
            | "CSINode"
            | "VolumeAttachment"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_real_start_time_is_used() {
        assert_eq!(
            usable_time(Some("2025-11-25T17:00:00Z")),
            Some(Timestamp::from_secs(1_764_090_000))
        );
    }

    #[test]
    fn zero_missing_and_garbage_times_are_not_usable() {
        for raw in [
            "0001-01-01T00:00:00Z",
            "1970-01-01T00:00:00Z",
            "",
            "yesterday",
        ] {
            assert_eq!(usable_time(Some(raw)), None, "{raw}");
        }
        assert_eq!(usable_time(None), None);
    }

    #[test]
    fn nodes_are_cluster_scoped_and_pods_are_not() {
        assert!(is_cluster_scoped("Node"));
        assert!(!is_cluster_scoped("Pod"));
        assert!(!is_cluster_scoped("Unknown"));
    }
}
