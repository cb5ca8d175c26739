//! Text shown back to whoever wrote it: bounded.

use std::borrow::Cow;

/// `text` cut to at most `max_chars` characters (at a character boundary), `…` marking a cut:
/// how a value an operator or a sender wrote is echoed in an error or a log line, so that a
/// 1 MB label cannot make a 1 MB error body.
pub fn truncated(text: &str, max_chars: usize) -> Cow<'_, str> {
    match text.char_indices().nth(max_chars) {
        None => Cow::Borrowed(text),
        Some((end, _)) => Cow::Owned(format!("{}…", &text[..end])),
    }
}

#[cfg(test)]
mod tests {
    use super::truncated;

    #[test]
    fn truncated_cuts_at_a_character_boundary() {
        assert_eq!(truncated("abc", 3), "abc");
        assert_eq!(truncated("abcd", 3), "abc…");
        assert_eq!(truncated("ééé", 2), "éé…");
        assert_eq!(truncated("", 0), "");
    }
}
