//! Every key the store writes, in one place. A component that comes from outside (a
//! fingerprint, an alert name, a window's name) is length-prefixed, `{<bytes>:<text>}`, so two
//! different components never give one key whatever they hold (`}`, `:`, `/`, newlines), and
//! the braces make it the key's hash tag: the keys one script touches share a slot, and the tag
//! is never empty. The prefix may hold no brace, so it never moves the tag.

use gateway_ports::{Fingerprint, StoreError};

use crate::RedisStore;

/// `{<len>:<text>}`: a hash tag that tells its text apart from every other.
fn tag(text: &str) -> String {
    format!("{{{}:{text}}}", text.len())
}

/// Refuses a prefix with a brace: it would become (or break) the hash tag of every key.
pub(crate) fn check_prefix(prefix: &str) -> Result<(), StoreError> {
    if prefix.contains(['{', '}']) {
        return Err(StoreError::Backend {
            reason: format!(
                "the Redis key prefix {prefix:?} holds a brace, which Redis reads as a hash tag"
            ),
            source: None,
        });
    }
    Ok(())
}

/// How many shards storm windows are spread over. A window and the index that lists it share a
/// hash tag, `{w<shard>}`, so the script that changes both runs on one slot; on a Cluster the
/// windows spread over this many slots (and so over the primaries), and the ticker reads this
/// many indexes. Part of the stored layout: changing it moves every window.
pub(crate) const WINDOW_SHARDS: u64 = 16;

/// A window's shard: FNV-1a of its name, the same on every replica and platform.
fn window_shard(name: &str) -> u64 {
    let hash = name.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |hash, byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3)
    });
    hash % WINDOW_SHARDS
}

/// The Cluster slot of `key`: CRC16 (XMODEM) of its hash tag (or of the whole key when it has
/// none), modulo 16384, as Redis computes it.
pub(crate) fn slot(key: &str) -> u16 {
    let bytes = key.as_bytes();
    let tagged = key.find('{').and_then(|open| {
        let close = key[open + 1..].find('}')? + open + 1;
        (close > open + 1).then(|| &bytes[open + 1..close])
    });
    let crc = tagged.unwrap_or(bytes).iter().fold(0_u16, |crc, &byte| {
        (0..8).fold(crc ^ (u16::from(byte) << 8), |crc, _| {
            if crc & 0x8000 == 0 {
                crc << 1
            } else {
                (crc << 1) ^ 0x1021
            }
        })
    });
    crc % 16384
}

impl RedisStore {
    /// A fingerprint's dedup window: `…:dedup:{64:<fingerprint>}`.
    pub(crate) fn dedup_key(&self, fingerprint: &Fingerprint) -> String {
        format!("{}:dedup:{}", self.key_prefix(), tag(fingerprint.as_str()))
    }

    /// An alert name's storm sets: `…:storm:{<len>:<alert>}:signals` and `…:resources`.
    pub(crate) fn storm_keys(&self, alert_name: &str) -> [String; 2] {
        let base = format!("{}:storm:{}", self.key_prefix(), tag(alert_name));
        [format!("{base}:signals"), format!("{base}:resources")]
    }

    /// A storm window: `…:storm:window:{w<shard>}:<name>`, in its index's slot.
    pub(crate) fn window_key(&self, name: &str) -> String {
        format!(
            "{}:storm:window:{{w{:02}}}:{name}",
            self.key_prefix(),
            window_shard(name)
        )
    }

    /// The index that lists the window `name`: `…:storm:windows:{w<shard>}`.
    pub(crate) fn window_index(&self, name: &str) -> String {
        self.window_index_of(window_shard(name))
    }

    /// Every index of storm windows, one per shard.
    pub(crate) fn window_indexes(&self) -> impl Iterator<Item = String> + '_ {
        (0..WINDOW_SHARDS).map(|shard| self.window_index_of(shard))
    }

    /// A window and the index of windows as stored before Cluster support:
    /// `…:storm:window:{<len>:<name>}` and `…:storm:windows` (one server only).
    pub(crate) fn legacy_window_keys(&self, name: &str) -> [String; 2] {
        [
            format!("{}:storm:window:{}", self.key_prefix(), tag(name)),
            self.legacy_window_index(),
        ]
    }

    /// The index of windows before Cluster support: `…:storm:windows`.
    pub(crate) fn legacy_window_index(&self) -> String {
        format!("{}:storm:windows", self.key_prefix())
    }

    fn window_index_of(&self, shard: u64) -> String {
        format!("{}:storm:windows:{{w{shard:02}}}", self.key_prefix())
    }

    /// The outbox: `…:{outbox}:entries` (a hash) and `…:{outbox}:version` (its counter).
    pub(crate) fn outbox_keys(&self) -> [String; 2] {
        let base = format!("{}:{{outbox}}", self.key_prefix());
        [format!("{base}:entries"), format!("{base}:version")]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_tell_any_two_texts_apart() {
        let texts = ["a", "a}", "1:a", "a}:signals", "", "}", "{", "a\nb", "2:ab"];
        for (i, a) in texts.iter().enumerate() {
            for b in &texts[i + 1..] {
                assert_ne!(tag(a), tag(b), "{a:?} {b:?}");
            }
        }
        assert_eq!(tag("Disk"), "{4:Disk}");
    }

    #[test]
    fn slots_are_the_ones_redis_computes() {
        // `CLUSTER KEYSLOT` on Redis 7.
        assert_eq!(slot("foo"), 12182);
        assert_eq!(slot("somekey"), 11058);
        assert_eq!(slot("{user1000}.following"), slot("user1000"));
    }

    #[test]
    fn windows_spread_over_every_shard_and_stay_there() {
        let shards: std::collections::BTreeSet<u64> = (0..200)
            .map(|i| window_shard(&format!("ns/Alert/{i}")))
            .collect();
        assert_eq!(shards.len(), usize::try_from(WINDOW_SHARDS).unwrap());
        // The layout is stored: a name's shard never changes between versions.
        assert_eq!(window_shard("prod/HighCPU"), window_shard("prod/HighCPU"));
        assert_eq!(window_shard(""), 0xcbf2_9ce4_8422_2325 % WINDOW_SHARDS);
    }

    #[test]
    fn a_prefix_with_a_brace_is_refused() {
        assert!(check_prefix("kubernaut:gateway").is_ok());
        assert!(check_prefix("a{b").is_err());
        assert!(check_prefix("a}b").is_err());
    }
}
