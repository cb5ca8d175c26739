//! Logging: the tracing subscriber, and the writer every record passes through on its way out.
//!
//! Two guarantees hold for every record, text or JSON, whoever wrote the message:
//! - **no secret is printed**: the secrets the gateway was given (the Redis password, from the URL
//!   or apart) are registered with [`never_print`], and each occurrence — raw, or as JSON or Rust
//!   debug text would escape it — is replaced by `<redacted>` before the bytes leave, so an error
//!   text from a back end that echoes its URL or its `AUTH` arguments is caught too;
//! - **one record is one line** (text format): every control character inside a record (CR, LF,
//!   ESC, NUL, the rest of C0 and C1, DEL, and the Unicode line and paragraph separators) is
//!   written as an escape (`\n`, `\r`, `\t`, `\u{1b}`), so an alert name with a newline cannot
//!   forge a log line nor a terminal escape recolour one. The JSON format is escaped by
//!   serde_json already (every C0 character; DEL and C1 break no line).
//!
//! tracing-subscriber's fmt layer formats a record whole and writes it with one `write_all`, so
//! the writer sees one record per call, its final `\n` last.
//!
//! A panic is logged through the same writer (hook installed by [`init`]), never printed raw.

use std::io::{self, Write};
use std::sync::RwLock;

use crate::cli::LogFormat;

/// What a registered secret is shown as.
const REDACTED: &str = "<redacted>";
/// The longest panic message logged, in characters.
const PANIC_MESSAGE_CHARS: usize = 256;

/// The secrets no log record may contain, with the forms they take once escaped.
static SECRETS: RwLock<Vec<String>> = RwLock::new(Vec::new());

/// Registers `secret`: from now on no log record shows it (nor its JSON- or debug-escaped
/// forms). Empty strings are ignored.
pub fn never_print(secret: &str) {
    if secret.is_empty() {
        return;
    }
    let mut forms = vec![secret.to_owned()];
    if let Ok(json) = serde_json::to_string(secret) {
        forms.push(json[1..json.len() - 1].to_owned());
    }
    let debug = format!("{secret:?}");
    forms.push(debug[1..debug.len() - 1].to_owned());
    let mut secrets = SECRETS.write().unwrap_or_else(|p| p.into_inner());
    for form in forms {
        if !secrets.contains(&form) {
            secrets.push(form);
        }
    }
    // Longest first, so that a secret containing another is replaced whole.
    secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
}

/// `text` with every registered secret replaced.
pub fn scrub(text: &str) -> std::borrow::Cow<'_, str> {
    let secrets = SECRETS.read().unwrap_or_else(|p| p.into_inner());
    let mut out = std::borrow::Cow::Borrowed(text);
    for secret in secrets.iter() {
        if out.contains(secret.as_str()) {
            out = std::borrow::Cow::Owned(out.replace(secret.as_str(), REDACTED));
        }
    }
    out
}

/// `record` with every control character escaped, but for its final `\n`.
pub fn escape_controls(record: &str) -> std::borrow::Cow<'_, str> {
    let (body, end) = match record.strip_suffix('\n') {
        Some(body) => (body, "\n"),
        None => (record, ""),
    };
    let is_escaped = |c: char| c.is_control() || c == '\u{2028}' || c == '\u{2029}';
    if !body.chars().any(is_escaped) {
        return std::borrow::Cow::Borrowed(record);
    }
    let mut out = String::with_capacity(record.len() + 16);
    for c in body.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if is_escaped(c) => out.push_str(&format!("\\u{{{:x}}}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push_str(end);
    std::borrow::Cow::Owned(out)
}

/// A writer that scrubs secrets from, and (for text) escapes control characters in, each
/// record before handing it to `W`.
#[derive(Debug)]
pub struct SafeWriter<W> {
    inner: W,
    escape: bool,
}

impl<W: Write> SafeWriter<W> {
    /// Wraps `inner`; `escape` for the text format.
    pub fn new(inner: W, escape: bool) -> Self {
        SafeWriter { inner, escape }
    }
}

impl<W: Write> Write for SafeWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let text = String::from_utf8_lossy(buf);
        let scrubbed = scrub(&text);
        let out = if self.escape {
            escape_controls(&scrubbed)
        } else {
            std::borrow::Cow::Borrowed(scrubbed.as_ref())
        };
        self.inner.write_all(out.as_bytes())?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Installs the tracing subscriber (`RUST_LOG` filters; default `info`), writing to stderr
/// through [`SafeWriter`], and a panic hook that logs through it.
pub fn init(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let escape = matches!(format, LogFormat::Text);
    // No colours: an escape sequence of ours would be escaped, and nothing else may write one.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(false)
        .with_writer(move || SafeWriter::new(io::stderr(), escape));
    let _ = match format {
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
        LogFormat::Text => builder.try_init(),
    };
    std::panic::set_hook(Box::new(|info| {
        let message = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "(no message)".to_owned());
        let location = info
            .location()
            .map(|l| format!("{}:{}", l.file(), l.line()))
            .unwrap_or_default();
        // The message may carry request data: bounded, and through the writer like any record.
        tracing::error!(
            location,
            message = %gateway_signal::truncated(&message, PANIC_MESSAGE_CHARS),
            "panic"
        );
    }));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_inside_a_record_are_escaped_but_its_end_is_kept() {
        let record = "INFO alert name=\"a\nFAKE ERROR\r\u{1b}[31m\0\u{7f}\u{85}\u{2028}\tb\"\n";
        let escaped = escape_controls(record);
        assert_eq!(
            escaped,
            "INFO alert name=\"a\\nFAKE ERROR\\r\\u{1b}[31m\\u{0}\\u{7f}\\u{85}\\u{2028}\\tb\"\n"
        );
        assert_eq!(escaped.matches('\n').count(), 1);
        assert!(matches!(
            escape_controls("plain line\n"),
            std::borrow::Cow::Borrowed(_)
        ));
        assert_eq!(escape_controls("héllo ✓\n"), "héllo ✓\n");
    }

    #[test]
    fn the_writer_makes_one_line_of_each_record_and_hides_secrets() {
        never_print("tr0ub4dor\"&3");
        let mut out = Vec::new();
        {
            let mut writer = SafeWriter::new(&mut out, true);
            writer
                .write_all(b"ERROR auth failed: tr0ub4dor\"&3 and tr0ub4dor\\\"&3\nnext\n")
                .unwrap();
        }
        let text = String::from_utf8(out).unwrap();
        assert_eq!(
            text, "ERROR auth failed: <redacted> and <redacted>\\nnext\n",
            "{text}"
        );
        let mut json = Vec::new();
        SafeWriter::new(&mut json, false)
            .write_all(b"{\"error\":\"tr0ub4dor\\\"&3\"}\n")
            .unwrap();
        assert_eq!(json, b"{\"error\":\"<redacted>\"}\n");
    }

    #[test]
    fn json_records_escape_control_characters_by_themselves() {
        let line = serde_json::to_string("a\nb\r\u{1b}\0").unwrap();
        assert!(!line.chars().any(|c| c.is_ascii_control()), "{line}");
    }
}
