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

    /// A storm window: `…:storm:window:{<len>:<name>}`.
    pub(crate) fn window_key(&self, name: &str) -> String {
        format!("{}:storm:window:{}", self.key_prefix(), tag(name))
    }

    /// The index of storm windows: `…:storm:windows`.
    pub(crate) fn window_index(&self) -> String {
        format!("{}:storm:windows", self.key_prefix())
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
    fn a_prefix_with_a_brace_is_refused() {
        assert!(check_prefix("kubernaut:gateway").is_ok());
        assert!(check_prefix("a{b").is_err());
        assert!(check_prefix("a}b").is_err());
    }
}
