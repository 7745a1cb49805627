//! Quoting untrusted text in error messages: a short, escaped excerpt, so
//! that a 10 MB Dockerfile line or a terminal escape sequence in it never
//! reaches stderr as it is.

/// Most characters of the text an excerpt keeps.
pub const EXCERPT_CHARS: usize = 80;

/// The first [`EXCERPT_CHARS`] characters of `text` with every control
/// character (ESC included) and quote escaped, in double quotes, followed
/// by `… (N bytes)` when `text` was longer.
pub fn excerpt(text: &str) -> String {
    format!("\"{}\"", shorten(text, true))
}

/// [`excerpt`] without the quotes, and quotes and backslashes kept as they
/// are: for a source line shown on a line of its own under an error.
pub fn line(text: &str) -> String {
    shorten(text, false)
}

fn shorten(text: &str, escape_quotes: bool) -> String {
    let mut out = String::with_capacity(text.len().min(EXCERPT_CHARS));
    let mut chars = text.chars();
    for c in chars.by_ref().take(EXCERPT_CHARS) {
        if c.is_control() || (escape_quotes && (c == '"' || c == '\\')) {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    if chars.next().is_some() {
        out.push_str(&format!("… ({} bytes)", text.len()));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_text_is_cut_and_control_characters_escaped() {
        assert_eq!(excerpt("RUN a"), "\"RUN a\"");
        assert_eq!(excerpt("a\u{1b}[2Jb\"\\"), "\"a\\u{1b}[2Jb\\\"\\\\\"");
        let long = "x".repeat(10_000_000);
        let quoted = excerpt(&long);
        assert!(quoted.len() < 120, "{}", quoted.len());
        assert!(quoted.ends_with("… (10000000 bytes)\""));
        assert_eq!(line("RUN echo \"a\\\u{7}\""), "RUN echo \"a\\\\u{7}\"");
    }
}
