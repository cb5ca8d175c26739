//! `security.yaml`: the namespaces signals may target, as globs matched without a regex engine.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::{InvalidSettings, Problems};
use crate::text::truncated;

/// One namespace pattern of `security.yaml`: lowercase letters, digits and `-` (the characters
/// of a namespace, an RFC 1123 label), with the wildcards `*` (any run of characters, the empty
/// one included) and `?` (exactly one character); at most [`NamespaceGlob::MAX_LEN`] bytes.
///
/// Matching takes no regex engine and never backtracks further than the last `*` seen, so it
/// costs at most `pattern length × namespace length` steps: with patterns bounded, linear in the
/// namespace, whatever a sender puts there.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct NamespaceGlob(String);

impl NamespaceGlob {
    /// The longest pattern accepted: a namespace is at most 63 characters, and a pattern longer
    /// than that could only ever match by its wildcards.
    pub const MAX_LEN: usize = 63;

    /// The pattern, or why it is not one (in words naming the offending character).
    pub fn new(pattern: &str) -> Result<Self, String> {
        if pattern.is_empty() {
            return Err(
                "an empty pattern matches no namespace; write `*` for every namespace".into(),
            );
        }
        if pattern.len() > Self::MAX_LEN {
            return Err(format!(
                "is {} bytes long, at most {} are allowed (a namespace has at most 63 characters)",
                pattern.len(),
                Self::MAX_LEN
            ));
        }
        if let Some(c) = pattern
            .chars()
            .find(|c| !matches!(c, 'a'..='z' | '0'..='9' | '-' | '*' | '?'))
        {
            let hint = if c.is_ascii_uppercase() {
                " (namespaces are lowercase)"
            } else {
                ""
            };
            return Err(format!(
                "has {c:?}, which no namespace contains{hint}; a pattern is made of lowercase \
                 letters, digits, `-` and the wildcards `*` and `?`"
            ));
        }
        Ok(NamespaceGlob(pattern.to_owned()))
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether `namespace` matches the pattern. `*` matches any run of characters (so `*` alone
    /// matches every namespace, even one no cluster would accept); `?` exactly one character;
    /// every other character itself.
    pub fn matches(&self, namespace: &str) -> bool {
        glob_matches(self.0.as_bytes(), namespace)
    }
}

impl fmt::Display for NamespaceGlob {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The iterative glob match with one resume point, the last `*` seen: when a literal fails after
/// a star, the star takes one more character and matching resumes there. Earlier stars never need
/// revisiting (whatever they could absorb, the last one can), so there is no exponential blow-up:
/// each resume moves the text position forward, at most `pattern × text` steps in all.
///
/// `pattern` is ASCII (checked by [`NamespaceGlob::new`]); `text` may be any string, read a
/// character at a time.
fn glob_matches(pattern: &[u8], text: &str) -> bool {
    let (mut p, mut t) = (0, 0);
    // (pattern index after the last star, text index that star's match ends at)
    let mut resume: Option<(usize, usize)> = None;
    loop {
        let next = text[t..].chars().next();
        match (pattern.get(p), next) {
            (Some(b'*'), _) => {
                p += 1;
                resume = Some((p, t));
            }
            (Some(&b), Some(c)) if b == b'?' || char::from(b) == c => {
                p += 1;
                t += c.len_utf8();
            }
            (None, None) => return true,
            _ => {
                // A mismatch, or one side ran out: let the last star take one more character.
                let Some((after_star, star_end)) = resume else {
                    return false;
                };
                let Some(c) = text[star_end..].chars().next() else {
                    return false;
                };
                p = after_star;
                t = star_end + c.len_utf8();
                resume = Some((after_star, t));
            }
        }
    }
}

/// The namespaces signals may target: a list of [`NamespaceGlob`]s, at most
/// [`NamespaceGlobs::MAX_PATTERNS`]. A namespace is allowed when any pattern matches it; an empty
/// list allows none (every signal is refused: fail closed, never "empty means everything").
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct NamespaceGlobs(Vec<NamespaceGlob>);

impl NamespaceGlobs {
    /// The most patterns a `security.yaml` may list: checking a namespace tries each in turn, on
    /// every signal.
    pub const MAX_PATTERNS: usize = 256;

    /// Every namespace (`["*"]`): the default.
    pub fn any() -> Self {
        NamespaceGlobs(vec![NamespaceGlob("*".to_owned())])
    }

    /// Whether `namespace` matches any pattern.
    pub fn allows(&self, namespace: &str) -> bool {
        self.0.iter().any(|glob| glob.matches(namespace))
    }

    /// The patterns, in file order.
    pub fn patterns(&self) -> &[NamespaceGlob] {
        &self.0
    }
}

/// Security settings (`security.yaml`): which namespaces signals may target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecuritySettings {
    /// A signal whose target namespace matches none of these is answered `rejected`, and
    /// nothing is recorded for it. Default `["*"]` (every namespace); `[]` allows none.
    pub allowed_namespaces: NamespaceGlobs,
}

/// `security.yaml` as written.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RawSecuritySettings {
    pub allowed_namespaces: Vec<String>,
}

impl Default for RawSecuritySettings {
    fn default() -> Self {
        RawSecuritySettings {
            allowed_namespaces: vec!["*".to_owned()],
        }
    }
}

impl RawSecuritySettings {
    /// Checks every pattern; returns all problems at once, each naming its entry.
    pub fn validate(&self) -> Result<SecuritySettings, InvalidSettings> {
        const KEY: &str = "allowed_namespaces";
        let mut p = Problems::default();
        let listed = self.allowed_namespaces.len();
        if listed > NamespaceGlobs::MAX_PATTERNS {
            // One problem, not one per entry: a runaway list must not make a runaway report.
            p.push(
                KEY,
                format!(
                    "must list at most {} patterns, got {listed}",
                    NamespaceGlobs::MAX_PATTERNS
                ),
            );
            return p.finish(SecuritySettings {
                allowed_namespaces: NamespaceGlobs(Vec::new()),
            });
        }
        let mut globs = Vec::with_capacity(listed);
        for (i, pattern) in self.allowed_namespaces.iter().enumerate() {
            match NamespaceGlob::new(pattern) {
                Ok(glob) => globs.push(glob),
                Err(why) => p.push(
                    KEY,
                    format!("entry {} {:?} {why}", i + 1, truncated(pattern, 80)),
                ),
            }
        }
        p.finish(SecuritySettings {
            allowed_namespaces: NamespaceGlobs(globs),
        })
    }
}

impl From<&SecuritySettings> for RawSecuritySettings {
    fn from(s: &SecuritySettings) -> Self {
        RawSecuritySettings {
            allowed_namespaces: s
                .allowed_namespaces
                .patterns()
                .iter()
                .map(|g| g.as_str().to_owned())
                .collect(),
        }
    }
}

impl Default for SecuritySettings {
    fn default() -> Self {
        SecuritySettings {
            allowed_namespaces: NamespaceGlobs::any(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::settings::tests::{keys, only_error};

    fn security(patterns: &[&str]) -> Result<SecuritySettings, InvalidSettings> {
        RawSecuritySettings {
            allowed_namespaces: patterns.iter().map(|p| (*p).to_owned()).collect(),
        }
        .validate()
    }

    #[test]
    fn the_default_allows_every_namespace_and_an_empty_list_none() {
        let any = SecuritySettings::default().allowed_namespaces;
        assert_eq!(RawSecuritySettings::default().allowed_namespaces, ["*"]);
        for ns in ["default", "kube-system", "", "Not_A_Namespace"] {
            assert!(any.allows(ns), "{ns:?}");
        }
        let none = security(&[]).unwrap().allowed_namespaces;
        assert!(!none.allows("default") && !none.allows(""));
    }

    #[test]
    fn globs_match_whole_namespaces_with_star_and_question_mark() {
        let globs = security(&["team-*", "prod-?", "exact", "*-canary"])
            .unwrap()
            .allowed_namespaces;
        for ns in [
            "team-",
            "team-a",
            "team-payments",
            "prod-1",
            "exact",
            "eu-canary",
        ] {
            assert!(globs.allows(ns), "{ns:?} is allowed");
        }
        for ns in [
            "team",
            "my-team-a",
            "prod-",
            "prod-12",
            "exactly",
            "canary",
            "default",
        ] {
            assert!(!globs.allows(ns), "{ns:?} is not allowed");
        }
    }

    #[test]
    fn invalid_patterns_are_reported_each_naming_its_entry() {
        let err = security(&["ok-*", "Team-*", "a_b", "", "x.y", "fine"]).unwrap_err();
        assert_eq!(keys(&err), ["allowed_namespaces"; 4]);
        let reasons: Vec<&str> = err.errors.iter().map(|e| e.reason.as_str()).collect();
        assert!(
            reasons[0].starts_with("entry 2 \"Team-*\" has 'T'"),
            "{reasons:?}"
        );
        assert!(reasons[0].contains("lowercase"), "{reasons:?}");
        assert!(
            reasons[1].starts_with("entry 3 \"a_b\" has '_'"),
            "{reasons:?}"
        );
        assert!(
            reasons[2].starts_with("entry 4 \"\" an empty pattern"),
            "{reasons:?}"
        );
        assert!(
            reasons[3].starts_with("entry 5 \"x.y\" has '.'"),
            "{reasons:?}"
        );
        let long = "a".repeat(NamespaceGlob::MAX_LEN + 1);
        let err = security(&[&long]).unwrap_err();
        assert!(
            err.to_string().contains("64 bytes long, at most 63"),
            "{err}"
        );
        assert!(security(&[&long[1..]]).is_ok(), "63 bytes is the bound");
    }

    #[test]
    fn too_many_patterns_are_one_problem_and_the_bound_is_accepted() {
        let many = vec!["a"; NamespaceGlobs::MAX_PATTERNS + 1];
        assert_eq!(
            only_error(security(&many)),
            "allowed_namespaces: must list at most 256 patterns, got 257"
        );
        assert!(security(&many[1..]).is_ok());
    }

    #[test]
    fn the_file_form_round_trips_and_unknown_keys_are_refused() {
        let raw: RawSecuritySettings =
            serde_json::from_str(r#"{"allowed_namespaces":["team-*","prod"]}"#).unwrap();
        let settings = raw.validate().unwrap();
        assert_eq!(RawSecuritySettings::from(&settings), raw);
        let err = serde_json::from_str::<RawSecuritySettings>(r#"{"allowed_namespace":["a"]}"#)
            .unwrap_err();
        assert!(err.to_string().contains("allowed_namespace"), "{err}");
    }

    #[test]
    fn a_long_namespace_against_many_stars_is_answered_quickly() {
        // The pattern that makes a backtracking matcher exponential.
        let glob = NamespaceGlob::new(&("a*".repeat(30) + "b")).unwrap();
        let namespace = "a".repeat(100_000);
        assert!(!glob.matches(&namespace));
        assert!(glob.matches(&(namespace + "b")));
    }

    /// The reference: the definition of a glob, recursively, with no care for cost.
    fn naive_matches(pattern: &[char], text: &[char]) -> bool {
        match pattern.split_first() {
            None => text.is_empty(),
            Some(('*', rest)) => (0..=text.len()).any(|skip| naive_matches(rest, &text[skip..])),
            Some((p, rest)) => text
                .split_first()
                .is_some_and(|(t, text)| (*p == '?' || p == t) && naive_matches(rest, text)),
        }
    }

    proptest::proptest! {
        /// The matcher agrees with the definition on small alphabets (where stars and literals
        /// collide most), and on text it could never be asked to match by a valid namespace.
        #[test]
        fn the_glob_matcher_agrees_with_the_naive_one(
            pattern in "[ab*?-]{1,8}",
            text in "[ab\\-é_]{0,10}",
        ) {
            let glob = NamespaceGlob::new(&pattern).unwrap();
            let p: Vec<char> = pattern.chars().collect();
            let t: Vec<char> = text.chars().collect();
            let naive = naive_matches(&p, &t);
            proptest::prop_assert_eq!(glob.matches(&text), naive, "{} on {:?}", pattern, text);
        }
    }
}
