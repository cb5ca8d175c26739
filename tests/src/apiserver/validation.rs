//! The API server's own checks of names, labels and ConfigMap keys (apimachinery's
//! `validation` package), with its messages.

/// A DNS-1123 subdomain: object names of ConfigMaps and custom resources.
pub(crate) fn dns_subdomain(name: &str) -> Result<(), String> {
    if name.len() > 253 {
        return Err("must be no more than 253 characters".to_owned());
    }
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    if name.is_empty() || !name.split('.').all(label_ok) {
        return Err(
            "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric \
                    characters, '-' or '.', and must start and end with an alphanumeric \
                    character (e.g. 'example.com', regex used for validation is \
                    '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
                .to_owned(),
        );
    }
    Ok(())
}

fn qualified_name_part(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("name part must be non-empty".to_owned());
    }
    if name.len() > 63 {
        return Err("name part must be no more than 63 characters".to_owned());
    }
    let alnum = |b: u8| b.is_ascii_alphanumeric();
    let bytes = name.as_bytes();
    let ok = bytes
        .iter()
        .all(|&b| alnum(b) || b == b'-' || b == b'_' || b == b'.')
        && alnum(bytes[0])
        && alnum(bytes[bytes.len() - 1]);
    if !ok {
        return Err(
            "name part must consist of alphanumeric characters, '-', '_' or '.', and \
                    must start and end with an alphanumeric character"
                .to_owned(),
        );
    }
    Ok(())
}

/// A label (or annotation) key: `[prefix/]name`.
pub(crate) fn label_key(key: &str) -> Result<(), String> {
    match key.split_once('/') {
        Some((prefix, name)) => {
            dns_subdomain(prefix).map_err(|e| format!("prefix part {e}"))?;
            qualified_name_part(name)
        }
        None => qualified_name_part(key),
    }
}

/// A label value: empty, or a qualified name part of at most 63 characters.
pub(crate) fn label_value(value: &str) -> Result<(), String> {
    if value.is_empty() {
        return Ok(());
    }
    if value.len() > 63 {
        return Err("must be no more than 63 characters".to_owned());
    }
    qualified_name_part(value).map_err(|_| {
        "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' \
         or '.', and must start and end with an alphanumeric character"
            .to_owned()
    })
}

/// A key of a ConfigMap's `data` or `binaryData`.
pub(crate) fn config_map_key(key: &str) -> Result<(), String> {
    if key.is_empty() || key.len() > 253 {
        return Err("must be non-empty and no more than 253 characters".to_owned());
    }
    if !key
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
    {
        return Err(
            "a valid config key must consist of alphanumeric characters, '-', '_' or '.'"
                .to_owned(),
        );
    }
    if key == "." || key == ".." || key.starts_with("..") {
        return Err("must not be '.' or '..' or start with '..'".to_owned());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_labels_and_keys() {
        assert!(dns_subdomain("rr-0123-1").is_ok());
        assert!(dns_subdomain("a.b").is_ok());
        assert!(dns_subdomain("Upper").is_err());
        assert!(dns_subdomain("-a").is_err());
        assert!(dns_subdomain(&"a".repeat(254)).is_err());
        assert!(label_key("kubernaut.io/storm").is_ok());
        assert!(label_key("app").is_ok());
        assert!(label_key("bad key").is_err());
        assert!(label_value("").is_ok());
        assert!(label_value("true").is_ok());
        assert!(label_value(&"a".repeat(64)).is_err());
        assert!(config_map_key("storm.yaml").is_ok());
        assert!(config_map_key("..data").is_err());
    }
}
