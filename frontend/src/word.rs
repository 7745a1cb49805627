//! The words of an instruction as BuildKit's first stage reads them:
//! blanks separate words, and double quotes, single quotes and the escape
//! character (`\` or the `# escape=` backtick) protect blanks inside one.
//! A word keeps its quotes and escapes; only a flag's value is unquoted.
//! A plain scan over the characters: this runs for every instruction, and
//! a lexer needs no grammar.

/// Space, tab, vertical tab, form feed, carriage return.
pub(crate) fn is_blank(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\u{0B}' | '\u{0C}' | '\r')
}

/// The word at the start of `text` (which does not start with a blank):
/// its length in bytes, and whether it ends in a lone escape character
/// (one that ends the text).
fn scan(text: &str, escape: char) -> (usize, bool) {
    let mut chars = text.char_indices();
    while let Some((at, c)) = chars.next() {
        match c {
            c if is_blank(c) => return (at, false),
            '"' => loop {
                match chars.next() {
                    None | Some((_, '"')) => break,
                    Some((_, c)) if c == escape => {
                        chars.next();
                    }
                    Some(_) => {}
                }
            },
            '\'' => while chars.next().is_some_and(|(_, c)| c != '\'') {},
            // The guard consumes the escaped character, if there is one.
            c if c == escape && chars.next().is_none() => return (text.len(), true),
            _ => {}
        }
    }
    (text.len(), false)
}

/// The first word of `text` after its leading blanks, and the text after
/// that word; `None` when only blanks are left.
fn next_word(text: &str, escape: char) -> Option<(&str, &str)> {
    let text = text.trim_start_matches(is_blank);
    if text.is_empty() {
        return None;
    }
    let (len, dangling) = scan(text, escape);
    let word = &text[..len];
    let word = match dangling {
        true => &word[..len - escape.len_utf8()],
        false => word,
    };
    Some((word, &text[len..]))
}

/// The words of `text` (quotes and escapes kept; a lone escape at the very
/// end dropped).
pub(crate) fn words(text: &str, escape: char) -> Vec<&str> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some((word, after)) = next_word(rest, escape) {
        if !word.is_empty() {
            out.push(word);
        }
        rest = after;
    }
    out
}

/// The leading `--flags` of an instruction's arguments, unquoted, and the
/// arguments after them; a bare `--` ends the flags and is dropped.
pub(crate) fn flags(args: &str, escape: char) -> (Vec<String>, &str) {
    let mut flags = Vec::new();
    let mut rest = args.trim_start_matches(is_blank);
    while rest.starts_with("--") {
        // As written: `--` then a lone escape is a flag, not the end.
        let (len, _) = scan(rest, escape);
        let word = &rest[..len];
        rest = rest[len..].trim_start_matches(is_blank);
        if word == "--" {
            break;
        }
        flags.push(unquote(word, escape));
    }
    (flags, rest)
}

/// `word` with its quotes removed and its escapes applied.
fn unquote(word: &str, escape: char) -> String {
    let mut out = String::with_capacity(word.len());
    let mut chars = word.chars();
    while let Some(c) = chars.next() {
        match c {
            '"' => loop {
                match chars.next() {
                    None | Some('"') => break,
                    Some(c) if c == escape => out.extend(chars.next()),
                    Some(c) => out.push(c),
                }
            },
            '\'' => out.extend(chars.by_ref().take_while(|c| *c != '\'')),
            c if c == escape => out.extend(chars.next()),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_and_escapes_keep_blanks_inside_a_word() {
        assert_eq!(
            words(r#" a "b c"d 'e f' g\ h  "#, '\\'),
            ["a", r#""b c"d"#, "'e f'", r"g\ h"]
        );
        assert_eq!(words(r#"a "x\" y" b"#, '\\'), ["a", r#""x\" y""#, "b"]);
        assert_eq!(words("a`  b `", '`'), ["a` ", "b"]);
        // An unterminated quote runs to the end; a lone escape at the very
        // end is dropped.
        assert_eq!(words(r#"a "b c"#, '\\'), ["a", r#""b c"#]);
        assert_eq!(words(r"a b\", '\\'), ["a", "b"]);
        assert_eq!(words("a \\", '\\'), ["a"]);
        assert!(words(" \t", '\\').is_empty());
    }

    #[test]
    fn flags_are_unquoted_and_a_bare_double_dash_ends_them() {
        let (flags, rest) = flags(r#"--a=1 --b="x y" --c='q' --d\ e -- --not a flag"#, '\\');
        assert_eq!(flags, ["--a=1", "--b=x y", "--c=q", "--d e"]);
        assert_eq!(rest, "--not a flag");
        let (flags, rest) = super::flags("--x  echo --y", '\\');
        assert_eq!((flags, rest), (vec![String::from("--x")], "echo --y"));
        assert_eq!(super::flags("--", '\\'), (Vec::new(), ""));
        assert_eq!(super::flags("--a=`\"`", '`').0, ["--a=\""]);
        assert_eq!(super::flags("--\\", '\\'), (vec![String::from("--")], ""));
    }
}
