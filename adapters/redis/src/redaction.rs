//! How a Redis URL is shown and which secrets it carries: every form of password a URL can
//! hold (user-info, query parameters, a fragment) is kept out of logs and errors, one seed list
//! (`redis+cluster://a:1,b:2`, `redis+sentinel://a:1,b:2/MASTER`) as much as one server.

/// Query parameters whose values are shown: none of them can hold a secret.
const SHOWN_PARAMETERS: [&str; 2] = ["db", "protocol"];

/// The URL for logs and errors: without its user information (`redis://user:pw@h` →
/// `redis://h`), and with the value of every query parameter but `db` and `protocol` replaced
/// by `<redacted>` (`?pass=`, `?password=`, and any the client may learn later), as is a
/// fragment other than `#insecure`.
///
/// It fails closed: whatever does not read as `name=value` is redacted whole, and the user
/// information ends at the *last* `@` (a password with a raw `@` or `?` loses the host from the
/// display rather than leaking its tail).
pub fn redacted(url: &str) -> String {
    let Some(scheme_end) = url.find("://") else {
        // Not a URL the client accepts; it is shown nowhere but may still hold a secret.
        return "<unparseable URL>".to_owned();
    };
    let (scheme, rest) = (&url[..scheme_end], &url[scheme_end + 3..]);
    let rest = rest.rfind('@').map_or(rest, |at| &rest[at + 1..]);
    let (rest, fragment) = match rest.split_once('#') {
        Some((rest, "insecure")) => (rest, "#insecure"),
        Some((rest, _)) => (rest, "#<redacted>"),
        None => (rest, ""),
    };
    let (location, query) = match rest.split_once('?') {
        Some((location, query)) => (location, Some(query)),
        None => (rest, None),
    };
    let mut shown = format!("{scheme}://{location}");
    if let Some(query) = query {
        shown.push('?');
        let parameters: Vec<String> = query
            .split('&')
            .map(|parameter| match parameter.split_once('=') {
                Some((name, value)) if SHOWN_PARAMETERS.contains(&name) => {
                    format!("{name}={value}")
                }
                Some((name, _)) if name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') => {
                    format!("{name}=<redacted>")
                }
                _ => "<redacted>".to_owned(),
            })
            .collect();
        shown.push_str(&parameters.join("&"));
    }
    shown.push_str(fragment);
    shown
}

/// The secrets `url` carries (the user-info password, and the values of parameters other than
/// `db`, `protocol` and `user`), as written and percent-decoded, for a log filter that must
/// never print them whatever error text echoes them.
pub fn secrets_of(url: &str) -> Vec<String> {
    let mut secrets = Vec::new();
    let Some(scheme_end) = url.find("://") else {
        secrets.push(url.to_owned());
        return secrets;
    };
    let rest = &url[scheme_end + 3..];
    // A user name alone is no secret (and registering `default` would blank a common word).
    if let Some((_, password)) = rest.rfind('@').and_then(|at| rest[..at].split_once(':')) {
        secrets.push(password.to_owned());
    }
    if let Some((_, query)) = rest.split_once('?') {
        let query = query.split_once('#').map_or(query, |(q, _)| q);
        for parameter in query.split('&') {
            match parameter.split_once('=') {
                Some((name, _)) if SHOWN_PARAMETERS.contains(&name) || name == "user" => {}
                Some((_, value)) => secrets.push(value.to_owned()),
                None => secrets.push(parameter.to_owned()),
            }
        }
    }
    let decoded: Vec<String> = secrets.iter().filter_map(|s| percent_decoded(s)).collect();
    secrets.extend(decoded);
    secrets.retain(|s| !s.is_empty());
    secrets
}

/// `s` with `%XX` escapes (and `+`) decoded, when that changes it and gives UTF-8.
fn percent_decoded(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| char::from(b).to_digit(16);
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                (Some(hi), Some(lo)) => {
                    out.push(u8::try_from(hi * 16 + lo).unwrap_or(b'?'));
                    i += 3;
                    continue;
                }
                _ => out.push(b'%'),
            },
            b'+' => out.push(b' '),
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).ok().filter(|d| d != s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_shown_without_any_form_of_password() {
        let cases = [
            ("redis://:s3cret@redis:6379/0", "redis://redis:6379/0"),
            ("redis://user:s3cret@redis:6379", "redis://redis:6379"),
            ("rediss://user:s3cret@host", "rediss://host"),
            (
                "rediss://:s3cret@host:6380/1#insecure",
                "rediss://host:6380/1#insecure",
            ),
            (
                "redis://host?password=s3cret",
                "redis://host?password=<redacted>",
            ),
            (
                "redis://host/0?pass=s3cret",
                "redis://host/0?pass=<redacted>",
            ),
            (
                "redis://host?db=2&protocol=resp3&pass=s3cret",
                "redis://host?db=2&protocol=resp3&pass=<redacted>",
            ),
            (
                "redis+unix:///run/redis.sock?pass=s3cret",
                "redis+unix:///run/redis.sock?pass=<redacted>",
            ),
            (
                "redis+unix:///run/redis.sock?db=1&user=u&pass=s3cret",
                "redis+unix:///run/redis.sock?db=1&user=<redacted>&pass=<redacted>",
            ),
            // A raw `&` in the password: the tail is no `name=value`, redacted whole.
            (
                "redis://h?pass=s3&cret",
                "redis://h?pass=<redacted>&<redacted>",
            ),
            // Encoded names are not trusted to be harmless.
            ("redis://h?p%61ss=s3cret", "redis://h?<redacted>"),
            // A raw `@` or `?` in the user-info password.
            ("redis://:s3@cret@h:1", "redis://h:1"),
            ("redis://:s3?cr@et@h:1", "redis://h:1"),
            ("redis://h#s3cret", "redis://h#<redacted>"),
            ("redis://redis:6379", "redis://redis:6379"),
            ("s3cret", "<unparseable URL>"),
        ];
        for (url, shown) in cases {
            assert_eq!(redacted(url), shown, "{url}");
            let shown = redacted(url);
            assert!(!shown.contains("s3") && !shown.contains("cret"), "{url}");
        }
    }

    #[test]
    fn seed_lists_are_shown_without_their_password() {
        let cases = [
            (
                "redis+cluster://:s3cret@a:7000,b:7001,c:7002",
                "redis+cluster://a:7000,b:7001,c:7002",
            ),
            (
                "rediss+cluster://u:s3cret@a:7000,b:7001#insecure",
                "rediss+cluster://a:7000,b:7001#insecure",
            ),
            (
                "redis+sentinel://:s3cret@a:26379,b:26379/gateway",
                "redis+sentinel://a:26379,b:26379/gateway",
            ),
            (
                "redis+sentinel://a:26379,b:26379/gateway?pass=s3cret",
                "redis+sentinel://a:26379,b:26379/gateway?pass=<redacted>",
            ),
        ];
        for (url, shown) in cases {
            assert_eq!(redacted(url), shown, "{url}");
        }
        assert_eq!(
            secrets_of("redis+cluster://:s3cret@a:7000,b:7001"),
            ["s3cret"]
        );
    }

    #[test]
    fn the_secrets_of_a_url_are_found_raw_and_decoded() {
        assert_eq!(secrets_of("redis://:s3cret@h"), ["s3cret"]);
        assert_eq!(secrets_of("redis://u:p%40ss@h"), ["p%40ss", "p@ss"]);
        assert_eq!(
            secrets_of("redis+unix:///s?db=1&pass=a%2Bb&x"),
            ["a%2Bb", "x", "a+b"]
        );
        assert!(secrets_of("redis://h:1/0?db=2").is_empty());
        assert!(secrets_of("redis://default@h:1/0?user=default").is_empty());
    }
}
