//! Documents as YAML, written directly: block mappings (keys in alphabetical order, as `kubectl
//! get -o yaml` prints them) and sequences, each key and string plain
//! where no YAML reader could take it for anything but that string, double-quoted otherwise
//! (with escapes for what YAML does not allow to stand for itself).
//!
//! It replaces a general emitter (libyaml, through `serde_norway`) that cost about a tenth of a
//! new alert's CPU time on the directory sink; what it writes reads back as the same value with
//! any YAML 1.1 or 1.2 reader (a property test checks it with `serde_norway`).

use std::fmt::Write as _;

use serde::Serialize;
use serde_json::{Map, Value};

/// `value` as a YAML document.
pub(crate) fn to_string<T: Serialize>(value: &T) -> Result<String, serde_json::Error> {
    let value = serde_json::to_value(value)?;
    let mut out = String::with_capacity(1024);
    match &value {
        Value::Object(map) if !map.is_empty() => mapping(&mut out, map, 0, false),
        Value::Array(items) if !items.is_empty() => sequence(&mut out, items, 0),
        scalar => {
            flow(&mut out, scalar);
            out.push('\n');
        }
    }
    Ok(out)
}

/// A non-empty mapping, its keys at `indent`; with `inline`, the first key goes on the current
/// line (after a sequence's `- `).
fn mapping(out: &mut String, map: &Map<String, Value>, indent: usize, inline: bool) {
    for (i, (key, value)) in map.iter().enumerate() {
        if i > 0 || !inline {
            pad(out, indent);
        }
        string(out, key);
        out.push(':');
        match value {
            Value::Object(inner) if !inner.is_empty() => {
                out.push('\n');
                mapping(out, inner, indent + 2, false);
            }
            // Sequences under a key sit at the key's indent, as Kubernetes writes them.
            Value::Array(items) if !items.is_empty() => {
                out.push('\n');
                sequence(out, items, indent);
            }
            scalar => {
                out.push(' ');
                flow(out, scalar);
                out.push('\n');
            }
        }
    }
}

/// A non-empty sequence, its dashes at `indent`.
fn sequence(out: &mut String, items: &[Value], indent: usize) {
    for item in items {
        pad(out, indent);
        match item {
            Value::Object(map) if !map.is_empty() => {
                out.push_str("- ");
                mapping(out, map, indent + 2, true);
            }
            Value::Array(inner) if !inner.is_empty() => {
                out.push_str("-\n");
                sequence(out, inner, indent + 2);
            }
            scalar => {
                out.push_str("- ");
                flow(out, scalar);
                out.push('\n');
            }
        }
    }
}

/// A scalar, or an empty collection, on the current line.
fn flow(out: &mut String, value: &Value) {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => {
            let _ = write!(out, "{n}");
        }
        Value::String(s) => string(out, s),
        Value::Array(_) => out.push_str("[]"),
        Value::Object(_) => out.push_str("{}"),
    }
}

fn string(out: &mut String, s: &str) {
    if is_plain(s) {
        out.push_str(s);
    } else {
        quoted(out, s);
    }
}

/// `s` double-quoted: `"` and `\\` escaped, and as `\\uXXXX` every character YAML does not let
/// stand for itself in a document (C0 and C1 controls, DEL, the byte-order mark, U+FFFE and
/// U+FFFF) or that a YAML 1.1 reader takes for a line break inside quotes (U+0085, U+2028,
/// U+2029).
fn quoted(out: &mut String, s: &str) {
    out.reserve(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{0}'..='\u{1f}'
            | '\u{7f}'..='\u{9f}'
            | '\u{2028}'
            | '\u{2029}'
            | '\u{feff}'
            | '\u{fffe}'
            | '\u{ffff}' => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

fn pad(out: &mut String, indent: usize) {
    out.extend(std::iter::repeat_n(' ', indent));
}

/// Whether `s` reads back as this very string when written plain: a letter first, then only
/// letters, digits and `-_./`, and none of the words a YAML 1.1 reader takes for a boolean or
/// null. Numbers, timestamps, `.inf` and anything with a space, `:` or `#` start or contain
/// something else, so they are quoted.
fn is_plain(s: &str) -> bool {
    const WORDS: [&str; 11] = [
        "y", "n", "yes", "no", "on", "off", "true", "false", "null", "nan", "inf",
    ];
    s.as_bytes().first().is_some_and(u8::is_ascii_alphabetic)
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'/'))
        && !WORDS.iter().any(|w| w.eq_ignore_ascii_case(s))
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use serde_json::json;

    use super::*;

    #[test]
    fn kubernetes_shaped_documents_read_as_kubectl_prints_them() {
        let doc = json!({
            "apiVersion": "remediation.kubernaut.io/v1alpha1",
            "kind": "RemediationRequest",
            "metadata": {"name": "rr-1", "labels": {"kubernaut.io/severity": "critical"}},
            "spec": {
                "count": 3,
                "firingTime": "2026-01-01T00:00:00Z",
                "resources": [{"kind": "Pod", "name": "web-0"}, {"kind": "Pod", "name": "web-1"}],
                "empty": {},
                "none": [],
                "flag": true,
                "words": ["yes", "No", "null", "a b", "x: y", "#c", "", "1e3", "-"],
            }
        });
        let text = to_string(&doc).unwrap();
        assert_eq!(
            text,
            "apiVersion: remediation.kubernaut.io/v1alpha1\n\
             kind: RemediationRequest\n\
             metadata:\n  labels:\n    kubernaut.io/severity: critical\n  name: rr-1\n\
             spec:\n  count: 3\n  empty: {}\n  firingTime: \"2026-01-01T00:00:00Z\"\n  flag: true\n  \
             none: []\n  resources:\n  - kind: Pod\n    name: web-0\n  - kind: Pod\n    name: web-1\n  \
             words:\n  - \"yes\"\n  - \"No\"\n  - \"null\"\n  - \"a b\"\n  - \"x: y\"\n  \
             - \"#c\"\n  - \"\"\n  - \"1e3\"\n  - \"-\"\n"
        );
        assert_eq!(serde_norway::from_str::<Value>(&text).unwrap(), doc);
    }

    #[test]
    fn control_characters_and_unicode_are_escaped_or_kept_and_read_back() {
        let doc =
            json!({"s": "tab\there\nnew \u{1b}[31m \u{7f} \u{85} \u{2028} \u{feff} é 🦀 \"q\" \\"});
        let text = to_string(&doc).unwrap();
        assert!(!text.contains('\u{1b}'), "{text}");
        assert_eq!(serde_norway::from_str::<Value>(&text).unwrap(), doc);
    }

    fn values() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(|n| json!(n)),
            any::<u64>().prop_map(|n| json!(n)),
            "\\PC{0,12}".prop_map(Value::String),
            any::<String>().prop_map(Value::String),
            "[a-zA-Z0-9:#./ _-]{0,8}".prop_map(Value::String),
        ];
        leaf.prop_recursive(4, 48, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
                prop::collection::btree_map(any::<String>(), inner, 0..5)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest! {
        #[test]
        fn every_document_reads_back_as_itself(doc in values()) {
            let text = to_string(&doc).unwrap();
            let back: Value = serde_norway::from_str(&text)
                .map_err(|e| TestCaseError::fail(format!("{e}\n{text}")))?;
            prop_assert_eq!(back, doc, "{}", text);
        }
    }
}
