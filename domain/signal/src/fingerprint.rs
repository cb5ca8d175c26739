//! The fingerprint: the dedup identity of a signal. See the crate documentation for the
//! definition and its test vectors.

use gateway_ports::Fingerprint;
use sha2::{Digest, Sha256};

const HEX: &[u8; 16] = b"0123456789abcdef";

/// The fingerprint of a signal about `kind`/`resource_name` in `namespace`, named `name`.
///
/// SHA-256 over `name \0 namespace \0 kind \0 resource_name` (UTF-8), as 64 lowercase hex
/// digits. Nothing else enters it, so the same alert from two Alertmanager replicas, with labels
/// in another order, other annotations, other timestamps or another status, has one fingerprint.
///
/// ```
/// use gateway_signal::fingerprint;
///
/// // `printf 'a\0b\0c\0d' | sha256sum`
/// assert_eq!(
///     fingerprint("a", "b", "c", "d").as_str(),
///     "cf92326f85f50aa865be765403a20d1b6772cd24f2628a15b31d53eb9150b043",
/// );
/// ```
pub fn fingerprint(name: &str, namespace: &str, kind: &str, resource_name: &str) -> Fingerprint {
    let mut hasher = Sha256::new();
    // NUL cannot occur inside any of the four in practice (Kubernetes names, Prometheus label
    // values), and separating with it keeps ("ab", "c") apart from ("a", "bc").
    hasher.update(name.as_bytes());
    hasher.update([0]);
    hasher.update(namespace.as_bytes());
    hasher.update([0]);
    hasher.update(kind.as_bytes());
    hasher.update([0]);
    hasher.update(resource_name.as_bytes());
    let digest = hasher.finalize();

    let mut hex = String::with_capacity(64);
    for byte in digest {
        hex.push(char::from(HEX[usize::from(byte >> 4)]));
        hex.push(char::from(HEX[usize::from(byte & 0x0f)]));
    }
    // The ports type offers only a checked constructor; 32 bytes rendered from `HEX` are always
    // 64 lowercase hex digits, so this cannot fail.
    Fingerprint::from_hex(&hex).expect("a SHA-256 in lowercase hex is a valid fingerprint")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The vectors of the crate documentation; the first checked independently with
    /// `printf 'a\0b\0c\0d' | sha256sum`.
    const VECTORS: [(&str, &str, &str, &str, &str); 6] = [
        (
            "a",
            "b",
            "c",
            "d",
            "cf92326f85f50aa865be765403a20d1b6772cd24f2628a15b31d53eb9150b043",
        ),
        (
            "ab",
            "c",
            "",
            "",
            "bd004134849ca646d85104d0f90bea121a2a2861f05c76e07d97dec0361d29f0",
        ),
        (
            "a",
            "bc",
            "",
            "",
            "659f6e5742991f4ef127c972729839a1cd4a59f862339c765ddfa4459be3d959",
        ),
        (
            "",
            "",
            "Unknown",
            "",
            "8344fca3e05a65cb3e4fec2c441439ee6e3d997732739d944828fa2dfffcf89a",
        ),
        (
            "KubePodCrashLooping",
            "payments",
            "Pod",
            "payments-api-7d9f8c6b5-x2x9q",
            "4737d08755f6951f17ded3bafca36b579cd6a3ef800d2e99076069014e9fe6db",
        ),
        (
            "KubeNodeNotReady",
            "monitoring",
            "Node",
            "worker-2",
            "858b5542be5a7c179cf66b4ee3a7d7e629ce47dc235e771107f2601d98393bf2",
        ),
    ];

    #[test]
    fn the_documented_test_vectors_hold() {
        for (name, namespace, kind, resource, hex) in VECTORS {
            assert_eq!(
                fingerprint(name, namespace, kind, resource).as_str(),
                hex,
                "{name:?} {namespace:?} {kind:?} {resource:?}"
            );
        }
    }

    #[test]
    fn the_separator_keeps_shifted_boundaries_apart() {
        assert_ne!(
            fingerprint("ab", "c", "", ""),
            fingerprint("a", "bc", "", "")
        );
        assert_ne!(
            fingerprint("", "", "ab", "c"),
            fingerprint("", "", "a", "bc")
        );
    }

    #[test]
    fn every_part_enters_the_fingerprint() {
        let base = fingerprint("n", "ns", "Pod", "p");
        assert_ne!(base, fingerprint("m", "ns", "Pod", "p"));
        assert_ne!(base, fingerprint("n", "other", "Pod", "p"));
        assert_ne!(base, fingerprint("n", "ns", "Node", "p"));
        assert_ne!(base, fingerprint("n", "ns", "Pod", "q"));
    }
}
