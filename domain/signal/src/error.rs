//! The one error of this crate, and the JSON decoding that produces it with a path.

use std::fmt;
use std::marker::PhantomData;

use serde::de::value::MapAccessDeserializer;
use serde::de::{DeserializeOwned, MapAccess, Visitor};
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
    pub(crate) fn at(path: impl Into<String>, reason: impl Into<String>) -> Self {
        PayloadError {
            path: path.into(),
            reason: reason.into(),
        }
    }
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
    let Object(value) = serde_path_to_error::deserialize(&mut de)
        .map_err(|e| PayloadError::at(render(e.path()), e.into_inner().to_string()))?;
    // Without this, `{...} garbage` would be accepted.
    de.end()
        .map_err(|e| PayloadError::at(String::new(), e.to_string()))?;
    Ok(value)
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
    fn trailing_garbage_after_the_document_is_rejected() {
        let err = decode::<Doc>(br#"{"items":[]} x"#).unwrap_err();
        assert_eq!(err.path, "");
        assert!(err.reason.contains("trailing"), "{err}");
    }
}
