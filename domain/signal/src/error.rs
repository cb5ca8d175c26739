//! The one error of this crate, and the JSON decoding that produces it with a path.

use std::collections::BTreeMap;
use std::fmt;
use std::marker::PhantomData;

use serde::de::value::MapAccessDeserializer;
use serde::de::{DeserializeOwned, DeserializeSeed, Error as _, MapAccess, Visitor};
use serde::{Deserialize, Deserializer};
use serde_path_to_error::{Path, Segment};

/// A payload the gateway cannot accept.
///
/// `path` says where in the JSON the problem is, in the notation a person would type
/// (`alerts[2].labels.alertname`; `""` for the whole body), so that the HTTP layer can answer with
/// something the sender can act on. `reason` is human text; for malformed JSON it carries the line
/// and column.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct PayloadError {
    /// Where in the JSON, e.g. `alerts[2].labels.alertname`; empty for the whole body.
    pub path: String,
    /// What is wrong there.
    pub reason: String,
}

impl PayloadError {
    /// An error at `path`; both are bounded, as they may echo the request (see [`truncated`]).
    pub(crate) fn at(path: impl Into<String>, reason: impl Into<String>) -> Self {
        let (path, reason) = (path.into(), reason.into());
        PayloadError {
            path: truncated(&path, 4 * ECHO_CHARS).into_owned(),
            reason: bounded_reason(&reason),
        }
    }
}

/// The most characters of one value from a request that an error message repeats.
pub const ECHO_CHARS: usize = 128;

pub use gateway_ports::truncated;

/// A reason bounded to about one echoed value plus the words around it, keeping serde_json's
/// closing `at line L column C`, which is what a sender needs.
fn bounded_reason(reason: &str) -> String {
    let (head, position) = match reason.rfind(" at line ") {
        Some(at) if reason[at..].contains(" column ") => reason.split_at(at),
        _ => (reason, ""),
    };
    format!("{}{position}", truncated(head, ECHO_CHARS + 96))
}

impl fmt::Display for PayloadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            f.write_str(&self.reason)
        } else {
            write!(f, "{}: {}", self.path, self.reason)
        }
    }
}

/// Decodes `body` as one JSON object read as `T`, reporting the path of the first problem.
///
/// serde_json's own messages are kept as the reason because they carry the line and column,
/// which is what a sender needs to find a syntax error.
pub(crate) fn decode<T: DeserializeOwned>(body: &[u8]) -> Result<T, PayloadError> {
    let mut de = serde_json::Deserializer::from_slice(body);
    let Object(value) = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let mut path = render(e.path());
        let reason = e.into_inner().to_string();
        // serde's derived structs refuse a repeated field at the struct's path; point at the key.
        match duplicate_field(&reason) {
            Some(field) => {
                push_key(&mut path, field);
                let duplicate = format!("duplicate key {:?}", truncated(field, ECHO_CHARS));
                PayloadError::at(path, duplicate)
            }
            None => PayloadError::at(path, reason),
        }
    })?;
    // Without this, `{...} garbage` would be accepted.
    de.end()
        .map_err(|e| PayloadError::at(String::new(), e.to_string()))?;
    Ok(value)
}

/// The field named by serde's "duplicate field `name`" message.
fn duplicate_field(reason: &str) -> Option<&str> {
    let rest = reason.strip_prefix("duplicate field `")?;
    rest.find('`').map(|end| &rest[..end])
}

/// A JSON object read as a map whose keys must be distinct: a repeated key is an error at that
/// key's path (`alerts[0].labels.team: duplicate key "team"`), where serde would silently keep
/// the last value — and another reader of the same bytes might keep the first.
#[derive(Debug)]
pub(crate) struct UniqueMap<V>(pub(crate) BTreeMap<String, V>);

impl<'de, V: Deserialize<'de>> Deserialize<'de> for UniqueMap<V> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct MapVisitor<V>(PhantomData<V>);

        impl<'de, V: Deserialize<'de>> Visitor<'de> for MapVisitor<V> {
            type Value = UniqueMap<V>;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<UniqueMap<V>, A::Error> {
                let mut entries = BTreeMap::new();
                while let Some(key) = map.next_key::<String>()? {
                    if entries.contains_key(&key) {
                        // Through the value's seed, so that the error's path ends at the key.
                        map.next_value_seed(Duplicate(&key))?;
                        return Err(A::Error::custom("duplicate key"));
                    }
                    let value = map.next_value()?;
                    entries.insert(key, value);
                }
                Ok(UniqueMap(entries))
            }
        }

        deserializer.deserialize_map(MapVisitor(PhantomData))
    }
}

/// The value of a repeated key: refused without being read.
struct Duplicate<'k>(&'k str);

impl<'de> DeserializeSeed<'de> for Duplicate<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, _: D) -> Result<Self::Value, D::Error> {
        Err(D::Error::custom(format_args!(
            "duplicate key {:?}",
            truncated(self.0, ECHO_CHARS)
        )))
    }
}

/// A `T` read only from a JSON object.
///
/// serde's derived structs also accept an array, taking fields by position, which would let
/// `[null, [...]]` pass for a webhook; wrapping every struct of a payload in this closes that.
#[derive(Debug)]
pub(crate) struct Object<T>(pub(crate) T);

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Object<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ObjectVisitor<T>(PhantomData<T>);

        impl<'de, T: Deserialize<'de>> Visitor<'de> for ObjectVisitor<T> {
            type Value = Object<T>;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }

            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Object<T>, A::Error> {
                T::deserialize(MapAccessDeserializer::new(map)).map(Object)
            }
        }

        deserializer.deserialize_map(ObjectVisitor(PhantomData))
    }
}

/// Renders a path as `alerts[2].labels.alertname`; keys that would read ambiguously in that
/// notation (dots, spaces, empty) are quoted: `labels["app.kubernetes.io/name"]`.
fn render(path: &Path) -> String {
    let mut out = String::new();
    for segment in path {
        match segment {
            Segment::Seq { index } => {
                out.push('[');
                out.push_str(&index.to_string());
                out.push(']');
            }
            Segment::Map { key } | Segment::Enum { variant: key } => push_key(&mut out, key),
            // A syntax error where a key should be: the enclosing path is still right.
            Segment::Unknown => {}
        }
    }
    out
}

fn push_key(out: &mut String, key: &str) {
    let key = truncated(key, ECHO_CHARS);
    let key = key.as_ref();
    let plain = !key.is_empty() && key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
    if plain {
        if !out.is_empty() {
            out.push('.');
        }
        out.push_str(key);
    } else {
        out.push_str(&format!("[{key:?}]"));
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    type Doc = BTreeMap<String, Vec<BTreeMap<String, String>>>;

    #[test]
    fn display_is_path_colon_reason_or_just_reason_for_the_whole_body() {
        assert_eq!(PayloadError::at("a[1].b", "bad").to_string(), "a[1].b: bad");
        assert_eq!(PayloadError::at("", "bad").to_string(), "bad");
    }

    #[test]
    fn paths_use_dots_for_keys_and_brackets_for_indices() {
        let err = decode::<Doc>(br#"{"items":[{},{"k":1}]}"#).unwrap_err();
        assert_eq!(err.path, "items[1].k");
    }

    #[test]
    fn keys_that_would_read_ambiguously_are_quoted() {
        let err = decode::<Doc>(br#"{"items":[{"app.kubernetes.io/name":1}]}"#).unwrap_err();
        assert_eq!(err.path, r#"items[0]["app.kubernetes.io/name"]"#);
    }

    #[test]
    fn a_struct_is_not_read_from_an_array() {
        #[derive(Debug, Deserialize)]
        struct Pair {
            _a: Option<String>,
        }
        let err = decode::<Pair>(br#"["x"]"#).unwrap_err();
        assert_eq!(err.path, "");
        assert!(err.reason.contains("expected a JSON object"), "{err}");
        let err = decode::<BTreeMap<String, Object<Pair>>>(br#"{"inner": ["x"]}"#).unwrap_err();
        assert_eq!(err.path, "inner");
    }

    #[test]
    fn a_syntax_error_where_a_key_belongs_keeps_the_enclosing_path() {
        let err = decode::<Doc>(br#"{"items":[{"k":"v" "l":"w"}]}"#).unwrap_err();
        assert_eq!(err.path, "items[0]");
        assert!(err.reason.contains("line 1 column"), "{err}");
    }

    #[test]
    fn a_repeated_map_key_is_refused_at_its_path() {
        type Unique = BTreeMap<String, Vec<Object<Labelled>>>;
        #[derive(Debug, Deserialize)]
        struct Labelled {
            _labels: Option<UniqueMap<String>>,
        }
        let err = decode::<Unique>(br#"{"items":[{"_labels":{"a":"1","team":"x","team":"y"}}]}"#)
            .unwrap_err();
        assert_eq!(err.path, "items[0]._labels.team");
        assert!(err.reason.starts_with(r#"duplicate key "team""#), "{err}");
        assert!(
            decode::<Unique>(br#"{"items":[{"_labels":{"a":"1","b":"1"}}]}"#).is_ok(),
            "distinct keys, equal values"
        );
    }

    #[test]
    fn a_repeated_struct_field_is_refused_at_its_path() {
        #[derive(Debug, Deserialize)]
        struct Pair {
            _a: Option<String>,
        }
        let err =
            decode::<BTreeMap<String, Object<Pair>>>(br#"{"x": {"_a":"1","_a":"2"}}"#).unwrap_err();
        assert_eq!(err.path, "x._a");
        assert_eq!(err.reason, r#"duplicate key "_a""#);
    }

    #[test]
    fn echoed_values_are_truncated_at_a_character_boundary() {
        assert_eq!(truncated("short", 128), "short");
        let long = "é".repeat(1_000_000);
        let cut = truncated(&long, ECHO_CHARS);
        assert_eq!(cut.chars().count(), ECHO_CHARS + 1);
        assert!(cut.ends_with('…'));
        // serde echoes the value; the position survives the cut.
        let body = format!(r#"{{"items":[{{"k":"{}"}}]}}"#, "x".repeat(1 << 20));
        let err =
            decode::<BTreeMap<String, Vec<BTreeMap<String, u32>>>>(body.as_bytes()).unwrap_err();
        assert!(err.reason.len() < 400, "{}", err.reason.len());
        assert!(err.reason.contains("at line 1 column"), "{err}");
        let key = "k".repeat(10_000);
        let err = decode::<Doc>(format!(r#"{{"items":[{{"{key}":1}}]}}"#).as_bytes()).unwrap_err();
        assert!(err.path.len() < 200, "{}", err.path);
    }

    #[test]
    fn trailing_garbage_after_the_document_is_rejected() {
        let err = decode::<Doc>(br#"{"items":[]} x"#).unwrap_err();
        assert_eq!(err.path, "");
        assert!(err.reason.contains("trailing"), "{err}");
    }
}
