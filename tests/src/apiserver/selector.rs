//! Label and field selectors, parsed and matched as the API server does.

use std::collections::BTreeSet;

use serde_json::Value;

/// A parsed `labelSelector`: every requirement must hold.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct LabelSelector(Vec<Requirement>);

#[derive(Debug, Clone, PartialEq)]
enum Requirement {
    Exists(String),
    NotExists(String),
    Equals(String, String),
    NotEquals(String, String),
    In(String, BTreeSet<String>),
    NotIn(String, BTreeSet<String>),
    GreaterThan(String, i64),
    LessThan(String, i64),
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Word(String),
    Comma,
    Open,
    Close,
    Eq,
    DoubleEq,
    NotEq,
    Bang,
    Gt,
    Lt,
}

fn tokenize(s: &str) -> Vec<Token> {
    let mut tokens = Vec::new();
    let mut chars = s.chars().peekable();
    while let Some(&c) = chars.peek() {
        match c {
            ' ' | '\t' => {
                chars.next();
            }
            ',' => {
                chars.next();
                tokens.push(Token::Comma);
            }
            '(' => {
                chars.next();
                tokens.push(Token::Open);
            }
            ')' => {
                chars.next();
                tokens.push(Token::Close);
            }
            '>' => {
                chars.next();
                tokens.push(Token::Gt);
            }
            '<' => {
                chars.next();
                tokens.push(Token::Lt);
            }
            '=' => {
                chars.next();
                if chars.peek() == Some(&'=') {
                    chars.next();
                    tokens.push(Token::DoubleEq);
                } else {
                    tokens.push(Token::Eq);
                }
            }
            '!' => {
                chars.next();
                if chars.peek() == Some(&'=') {
                    chars.next();
                    tokens.push(Token::NotEq);
                } else {
                    tokens.push(Token::Bang);
                }
            }
            _ => {
                let mut word = String::new();
                while let Some(&c) = chars.peek() {
                    if " \t,()=!<>".contains(c) {
                        break;
                    }
                    word.push(c);
                    chars.next();
                }
                tokens.push(Token::Word(word));
            }
        }
    }
    tokens
}

impl LabelSelector {
    /// Parses `k=v,k!=v,k in (a,b),k notin (a),k,!k,k>1,k<2`; empty selects everything.
    pub(crate) fn parse(s: &str) -> Result<LabelSelector, String> {
        let tokens = tokenize(s);
        let mut reqs = Vec::new();
        let mut i = 0;
        let err = |what: &str| format!("unable to parse requirement: {what} in {s:?}");
        let word = |i: usize| match tokens.get(i) {
            Some(Token::Word(w)) => Some(w.clone()),
            _ => None,
        };
        while i < tokens.len() {
            let req = if tokens[i] == Token::Bang {
                let key = word(i + 1).ok_or_else(|| err("a key after '!'"))?;
                i += 2;
                Requirement::NotExists(key)
            } else {
                let key = word(i).ok_or_else(|| err("a key"))?;
                i += 1;
                match tokens.get(i) {
                    None | Some(Token::Comma) => Requirement::Exists(key),
                    Some(Token::Eq | Token::DoubleEq) => {
                        let value = word(i + 1).unwrap_or_default();
                        i += if word(i + 1).is_some() { 2 } else { 1 };
                        Requirement::Equals(key, value)
                    }
                    Some(Token::NotEq) => {
                        let value = word(i + 1).unwrap_or_default();
                        i += if word(i + 1).is_some() { 2 } else { 1 };
                        Requirement::NotEquals(key, value)
                    }
                    Some(Token::Gt | Token::Lt) => {
                        let gt = tokens[i] == Token::Gt;
                        let n = word(i + 1)
                            .and_then(|w| w.parse::<i64>().ok())
                            .ok_or_else(|| err("an integer after '>' or '<'"))?;
                        i += 2;
                        if gt {
                            Requirement::GreaterThan(key, n)
                        } else {
                            Requirement::LessThan(key, n)
                        }
                    }
                    Some(Token::Word(op)) if op == "in" || op == "notin" => {
                        let negate = op == "notin";
                        i += 1;
                        if tokens.get(i) != Some(&Token::Open) {
                            return Err(err("'(' after in/notin"));
                        }
                        i += 1;
                        let mut values = BTreeSet::new();
                        loop {
                            match tokens.get(i) {
                                Some(Token::Word(w)) => {
                                    values.insert(w.clone());
                                    i += 1;
                                }
                                Some(Token::Comma) => i += 1,
                                Some(Token::Close) => {
                                    i += 1;
                                    break;
                                }
                                _ => return Err(err("a closing ')'")),
                            }
                        }
                        if negate {
                            Requirement::NotIn(key, values)
                        } else {
                            Requirement::In(key, values)
                        }
                    }
                    Some(_) => return Err(err("an operator")),
                }
            };
            validate_key(req.key()).map_err(|e| err(&e))?;
            reqs.push(req);
            match tokens.get(i) {
                None => {}
                Some(Token::Comma) => i += 1,
                Some(_) => return Err(err("',' between requirements")),
            }
        }
        Ok(LabelSelector(reqs))
    }

    /// Whether an object's `metadata.labels` satisfy every requirement.
    pub(crate) fn matches(&self, object: &Value) -> bool {
        let labels = &object["metadata"]["labels"];
        let get = |k: &str| labels.get(k).and_then(Value::as_str);
        self.0.iter().all(|r| match r {
            Requirement::Exists(k) => get(k).is_some(),
            Requirement::NotExists(k) => get(k).is_none(),
            Requirement::Equals(k, v) => get(k) == Some(v.as_str()),
            Requirement::NotEquals(k, v) => get(k) != Some(v.as_str()),
            Requirement::In(k, vs) => get(k).is_some_and(|x| vs.contains(x)),
            Requirement::NotIn(k, vs) => get(k).is_none_or(|x| !vs.contains(x)),
            Requirement::GreaterThan(k, n) => get(k)
                .and_then(|x| x.parse::<i64>().ok())
                .is_some_and(|x| x > *n),
            Requirement::LessThan(k, n) => get(k)
                .and_then(|x| x.parse::<i64>().ok())
                .is_some_and(|x| x < *n),
        })
    }
}

impl Requirement {
    fn key(&self) -> &str {
        match self {
            Requirement::Exists(k)
            | Requirement::NotExists(k)
            | Requirement::Equals(k, _)
            | Requirement::NotEquals(k, _)
            | Requirement::In(k, _)
            | Requirement::NotIn(k, _)
            | Requirement::GreaterThan(k, _)
            | Requirement::LessThan(k, _) => k,
        }
    }
}

fn validate_key(key: &str) -> Result<(), String> {
    super::validation::label_key(key).map_err(|e| format!("invalid label key {key:?}: {e}"))
}

/// A parsed `fieldSelector`: `metadata.name` and `metadata.namespace`, with `=`, `==`, `!=`.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct FieldSelector(Vec<(FieldPath, bool, String)>);

#[derive(Debug, Clone, Copy, PartialEq)]
enum FieldPath {
    Name,
    Namespace,
}

impl FieldSelector {
    /// Parses a field selector; unknown fields are rejected as the API does.
    pub(crate) fn parse(s: &str) -> Result<FieldSelector, String> {
        let mut terms = Vec::new();
        for term in s.split(',').map(str::trim).filter(|t| !t.is_empty()) {
            let (field, equal, value) = if let Some((f, v)) = term.split_once("!=") {
                (f, false, v)
            } else if let Some((f, v)) = term.split_once("==") {
                (f, true, v)
            } else if let Some((f, v)) = term.split_once('=') {
                (f, true, v)
            } else {
                return Err(format!(
                    "invalid selector: '{s}'; can't understand '{term}'"
                ));
            };
            let path = match field.trim() {
                "metadata.name" => FieldPath::Name,
                "metadata.namespace" => FieldPath::Namespace,
                other => return Err(format!("field label not supported: {other}")),
            };
            terms.push((path, equal, value.trim().to_owned()));
        }
        Ok(FieldSelector(terms))
    }

    /// Whether the object satisfies every term.
    pub(crate) fn matches(&self, object: &Value) -> bool {
        self.0.iter().all(|(path, equal, value)| {
            let field = match path {
                FieldPath::Name => &object["metadata"]["name"],
                FieldPath::Namespace => &object["metadata"]["namespace"],
            };
            let actual = field.as_str().unwrap_or("");
            (actual == value) == *equal
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(labels: Value) -> Value {
        json!({"metadata": {"name": "a", "namespace": "ns", "labels": labels}})
    }

    #[test]
    fn label_selectors_follow_the_api_semantics() {
        let o = obj(json!({"app": "web", "tier": "front", "n": "5"}));
        let yes = [
            "",
            "app=web",
            "app==web",
            "app!=db",
            "missing!=x",
            "app in (web, db)",
            "tier notin (back)",
            "missing notin (x)",
            "app",
            "!missing",
            "app=web,tier=front",
            "n>3",
            "n<6",
        ];
        for s in yes {
            assert!(LabelSelector::parse(s).unwrap().matches(&o), "{s}");
        }
        let no = [
            "app=db",
            "app!=web",
            "app in (db)",
            "missing",
            "!app",
            "app=web,tier=back",
            "missing in (x)",
        ];
        for s in no {
            assert!(!LabelSelector::parse(s).unwrap().matches(&o), "{s}");
        }
        assert!(LabelSelector::parse("app in (web").is_err());
        assert!(LabelSelector::parse("=x").is_err());
    }

    #[test]
    fn field_selectors_know_name_and_namespace_only() {
        let o = obj(json!({}));
        assert!(FieldSelector::parse("metadata.name=a").unwrap().matches(&o));
        assert!(
            FieldSelector::parse("metadata.name!=b,metadata.namespace==ns")
                .unwrap()
                .matches(&o)
        );
        assert!(!FieldSelector::parse("metadata.name=b").unwrap().matches(&o));
        assert!(FieldSelector::parse("spec.x=1").is_err());
    }
}
