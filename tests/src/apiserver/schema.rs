//! A custom resource's structural schema at work: pruning unknown fields, dropping nulls the
//! schema does not allow, applying defaults, and validating with the `jsonschema` crate after
//! translating the OpenAPI v3 dialect to JSON Schema (draft 4).

use serde_json::{Map, Value};

/// One `details.causes[]` entry of an `Invalid` Status.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Cause {
    /// `FieldValueInvalid`, `FieldValueRequired`, `FieldValueNotSupported`,
    /// `FieldValueTypeInvalid`.
    pub(crate) reason: &'static str,
    /// As the API words it: `Invalid value: "x": spec.f in body should match '^a$'`.
    pub(crate) message: String,
    /// Kubernetes field path: `spec.affectedResources[0].kind`.
    pub(crate) field: String,
}

/// The `openAPIV3Schema` of one custom resource version, ready to prune, default and validate.
pub(crate) struct CrdSchema {
    openapi: Value,
    validator: jsonschema::Validator,
}

impl std::fmt::Debug for CrdSchema {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CrdSchema").finish_non_exhaustive()
    }
}

impl CrdSchema {
    /// From an `openAPIV3Schema` document.
    pub(crate) fn new(openapi: Value) -> CrdSchema {
        let translated = to_json_schema(&openapi);
        let validator = jsonschema::options()
            .with_draft(jsonschema::Draft::Draft4)
            .should_validate_formats(true)
            .should_ignore_unknown_formats(true)
            .build(&translated)
            .expect("a CRD's openAPIV3Schema translates to a valid JSON Schema");
        CrdSchema { openapi, validator }
    }

    /// Prunes unknown fields and disallowed nulls, then applies defaults, in place, as the API
    /// server does when it decodes a request. Returns the pruned fields' paths (the server's
    /// `Warning: unknown field "spec.x"`).
    pub(crate) fn normalize(&self, object: &mut Value) -> Vec<String> {
        let mut pruned = Vec::new();
        if let Value::Object(map) = object {
            // apiVersion, kind and metadata are kept whatever the schema says.
            let mut kept = Map::new();
            for key in ["apiVersion", "kind", "metadata"] {
                if let Some(v) = map.remove(key) {
                    kept.insert(key.to_owned(), v);
                }
            }
            normalize_node(&self.openapi, object, "", &mut pruned);
            if let Value::Object(map) = object {
                map.extend(kept);
            }
        }
        pruned.sort();
        pruned
    }

    /// Every violation of the schema, as `Invalid` causes.
    pub(crate) fn validate(&self, object: &Value) -> Vec<Cause> {
        let mut causes: Vec<Cause> = self
            .validator
            .iter_errors(object)
            .map(|e| cause(object, &e))
            .collect();
        causes.dedup();
        causes
    }
}

/// OpenAPI v3 (as CRDs use it) → JSON Schema draft 4: `nullable: true` allows `null`,
/// `x-kubernetes-*` extensions are dropped.
fn to_json_schema(schema: &Value) -> Value {
    match schema {
        Value::Object(map) => {
            let nullable = map.get("nullable").and_then(Value::as_bool) == Some(true);
            let mut out = Map::new();
            for (k, v) in map {
                if k.starts_with("x-kubernetes-") || k == "nullable" {
                    continue;
                }
                let translated = match k.as_str() {
                    // Maps of sub-schemas, lists of sub-schemas, or one sub-schema.
                    "properties" | "patternProperties" | "definitions" => match v {
                        Value::Object(props) => Value::Object(
                            props
                                .iter()
                                .map(|(name, s)| (name.clone(), to_json_schema(s)))
                                .collect(),
                        ),
                        other => other.clone(),
                    },
                    "items" | "additionalProperties" | "not" => to_json_schema(v),
                    "allOf" | "anyOf" | "oneOf" => match v {
                        Value::Array(list) => {
                            Value::Array(list.iter().map(to_json_schema).collect())
                        }
                        other => other.clone(),
                    },
                    // Keyword values that are not schemas (enum, default, required, …).
                    _ => v.clone(),
                };
                out.insert(k.clone(), translated);
            }
            if nullable {
                if let Some(Value::String(t)) = out.get("type").cloned() {
                    out.insert("type".to_owned(), Value::from(vec![t, "null".to_owned()]));
                }
                if let Some(Value::Array(options)) = out.get_mut("enum")
                    && !options.contains(&Value::Null)
                {
                    options.push(Value::Null);
                }
            }
            Value::Object(out)
        }
        other => other.clone(),
    }
}

fn preserves_unknown(schema: &Value) -> bool {
    schema
        .get("x-kubernetes-preserve-unknown-fields")
        .and_then(Value::as_bool)
        == Some(true)
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

/// Structural pruning, null pruning and defaulting of one node (recursively).
fn normalize_node(schema: &Value, value: &mut Value, path: &str, pruned: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            let properties = schema.get("properties").and_then(Value::as_object);
            let additional = schema.get("additionalProperties");
            let keys: Vec<String> = map.keys().cloned().collect();
            for key in keys {
                let child_schema = properties
                    .and_then(|p| p.get(&key))
                    .or(additional.filter(|a| a.is_object()));
                match child_schema {
                    Some(child) => {
                        let is_null = map.get(&key).is_some_and(Value::is_null);
                        let nullable = child.get("nullable").and_then(Value::as_bool) == Some(true);
                        if is_null && !nullable {
                            map.remove(&key);
                        }
                    }
                    None => {
                        let keep = preserves_unknown(schema)
                            || additional.and_then(Value::as_bool) == Some(true);
                        if !keep {
                            map.remove(&key);
                            pruned.push(join(path, &key));
                        }
                    }
                }
            }
            if let Some(properties) = properties {
                for (key, child) in properties {
                    if !map.contains_key(key)
                        && let Some(default) = child.get("default")
                    {
                        map.insert(key.clone(), default.clone());
                    }
                }
            }
            for (key, child) in map.iter_mut() {
                let child_schema = properties
                    .and_then(|p| p.get(key))
                    .or(additional.filter(|a| a.is_object()));
                if let Some(s) = child_schema {
                    normalize_node(s, child, &join(path, key), pruned);
                }
            }
        }
        Value::Array(items) => {
            if let Some(item_schema) = schema.get("items") {
                for (i, item) in items.iter_mut().enumerate() {
                    normalize_node(item_schema, item, &format!("{path}[{i}]"), pruned);
                }
            }
        }
        _ => {}
    }
}

/// A JSON pointer into `object` as a Kubernetes field path (`spec.items[0].name`).
pub(crate) fn field_path(object: &Value, pointer: &str) -> String {
    let mut out = String::new();
    let mut node = Some(object);
    for raw in pointer.split('/').skip(1) {
        let segment = raw.replace("~1", "/").replace("~0", "~");
        match node {
            Some(Value::Array(items)) => {
                out.push_str(&format!("[{segment}]"));
                node = segment.parse::<usize>().ok().and_then(|i| items.get(i));
            }
            other => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(&segment);
                node = other.and_then(|v| v.get(&segment));
            }
        }
    }
    out
}

/// How the API server prints an invalid value.
fn shown(value: &Value) -> String {
    match value {
        Value::String(s) => format!("{s:?}"),
        Value::Object(_) => "\"object\"".to_owned(),
        Value::Array(_) => "\"array\"".to_owned(),
        other => other.to_string(),
    }
}

pub(crate) fn type_name_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn cause(object: &Value, error: &jsonschema::ValidationError<'_>) -> Cause {
    use jsonschema::error::ValidationErrorKind as Kind;
    let field = field_path(object, error.instance_path().as_str());
    let instance = error.instance();
    let value = shown(instance);
    let invalid = |detail: String| Cause {
        reason: "FieldValueInvalid",
        message: format!("Invalid value: {value}: {field} in body {detail}"),
        field: field.clone(),
    };
    match error.kind() {
        Kind::Required { property } => {
            let name = property
                .as_str()
                .map_or_else(|| property.to_string(), str::to_owned);
            Cause {
                reason: "FieldValueRequired",
                message: "Required value".to_owned(),
                field: join(&field, &name),
            }
        }
        Kind::Enum { options } => {
            let supported = options
                .as_array()
                .map(|o| {
                    o.iter()
                        .filter(|v| !v.is_null())
                        .map(shown)
                        .collect::<Vec<_>>()
                        .join(", ")
                })
                .unwrap_or_default();
            Cause {
                reason: "FieldValueNotSupported",
                message: format!("Unsupported value: {value}: supported values: {supported}"),
                field,
            }
        }
        Kind::Type { kind } => {
            let expected = match kind {
                jsonschema::error::TypeKind::Single(t) => t.to_string(),
                jsonschema::error::TypeKind::Multiple(ts) => ts
                    .iter()
                    .map(|t| t.to_string())
                    .find(|t| t != "null")
                    .unwrap_or_default(),
            };
            Cause {
                reason: "FieldValueTypeInvalid",
                message: format!(
                    "Invalid value: \"{}\": {field} in body must be of type {expected}: \"{}\"",
                    type_name_of(instance),
                    type_name_of(instance)
                ),
                field,
            }
        }
        Kind::Pattern { pattern } => invalid(format!("should match '{pattern}'")),
        Kind::Format { format } => invalid(format!("must be of type {format}: {value}")),
        Kind::Minimum { limit } => invalid(format!(
            "should be greater than or equal to {}",
            number(limit)
        )),
        Kind::Maximum { limit } => {
            invalid(format!("should be less than or equal to {}", number(limit)))
        }
        Kind::ExclusiveMinimum { limit } => {
            invalid(format!("should be greater than {}", number(limit)))
        }
        Kind::ExclusiveMaximum { limit } => {
            invalid(format!("should be less than {}", number(limit)))
        }
        Kind::MinLength { limit } => invalid(format!("should be at least {limit} chars long")),
        Kind::MaxLength { limit } => invalid(format!("may not be more than {limit} chars long")),
        Kind::MinItems { limit } => invalid(format!("should have at least {limit} items")),
        Kind::MaxItems { limit } => invalid(format!("must have at most {limit} items")),
        _ => invalid(error.to_string()),
    }
}

/// `1.0` → `1` (the schema's floats print as Kubernetes prints its limits).
fn number(limit: &Value) -> String {
    match limit.as_f64() {
        Some(f) if f.fract() == 0.0 && f.abs() < 1e15 => format!("{}", f as i64),
        _ => limit.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn schema() -> CrdSchema {
        CrdSchema::new(json!({
            "type": "object",
            "required": ["spec"],
            "properties": {
                "spec": {
                    "type": "object",
                    "required": ["a"],
                    "properties": {
                        "a": {"type": "string", "pattern": "^[a-z]+$"},
                        "n": {"type": "integer", "format": "uint64", "minimum": 1.0, "nullable": true},
                        "t": {"type": "string", "format": "date-time"},
                        "e": {"type": "string", "enum": ["x", "y"], "nullable": true},
                        "d": {"type": "boolean", "default": false},
                        "m": {"type": "object", "additionalProperties": {"type": "string"}},
                        "l": {"type": "array", "items": {"type": "object", "properties": {"k": {"type": "string"}}, "required": ["k"]}}
                    }
                }
            }
        }))
    }

    #[test]
    fn prunes_unknown_fields_and_applies_defaults() {
        let s = schema();
        let mut o = json!({"apiVersion": "v", "kind": "K", "metadata": {"name": "n"}, "extra": 1,
            "spec": {"a": "ok", "unknown": {"x": 1}, "m": {"free": "form"}, "l": [{"k": "v", "z": 1}], "e": null, "t": null}});
        let pruned = s.normalize(&mut o);
        assert_eq!(pruned, vec!["extra", "spec.l[0].z", "spec.unknown"]);
        assert_eq!(
            o,
            json!({"apiVersion": "v", "kind": "K", "metadata": {"name": "n"},
                "spec": {"a": "ok", "d": false, "m": {"free": "form"}, "l": [{"k": "v"}], "e": null}})
        );
        assert!(s.validate(&o).is_empty());
    }

    #[test]
    fn reports_violations_with_kubernetes_field_paths() {
        let s = schema();
        let o =
            json!({"spec": {"a": "NO", "n": 0, "t": "yesterday", "e": "z", "l": [{}], "d": "x"}});
        let causes = s.validate(&o);
        let fields: Vec<(&str, &str)> = causes
            .iter()
            .map(|c| (c.field.as_str(), c.reason))
            .collect();
        for expected in [
            ("spec.a", "FieldValueInvalid"),
            ("spec.n", "FieldValueInvalid"),
            ("spec.t", "FieldValueInvalid"),
            ("spec.e", "FieldValueNotSupported"),
            ("spec.l[0].k", "FieldValueRequired"),
            ("spec.d", "FieldValueTypeInvalid"),
        ] {
            assert!(
                fields.contains(&expected),
                "{expected:?} not in {causes:#?}"
            );
        }
        let a = causes.iter().find(|c| c.field == "spec.a").unwrap();
        assert_eq!(
            a.message,
            "Invalid value: \"NO\": spec.a in body should match '^[a-z]+$'"
        );
        assert_eq!(s.validate(&json!({}))[0].field, "spec");
    }
}
