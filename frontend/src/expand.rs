//! Shell-word expansion of instruction arguments, as BuildKit does it:
//! quote removal, escapes, `$name` / `${name}` with the `-` `+` `?` `:-`
//! `:+` `:?` `#` `##` `%` `%%` `/` `//` forms, and (for word lists)
//! splitting on unquoted whitespace. No command substitution, no globbing.
//!
//! Bounded by construction: `${…}` nests at most [`MAX_NESTING`] deep (the
//! lexer recurses once per level), the variable values substituted into
//! one call add up to at most [`MAX_EXPANDED`] bytes (so `ENV A=$A$A` on
//! repeat cannot double without end), and the pattern forms match by
//! automaton simulation ([`crate::wildcard`]), never by backtracking.

use crate::quote;
use crate::wildcard::Pattern;

/// Deepest `${…}` nesting accepted. Real Dockerfiles nest two or three
/// deep; each level costs one recursion of the lexer.
pub const MAX_NESTING: usize = 100;

/// Most bytes of variable values one expansion may substitute: the kernel's
/// limit on one argument or environment string (`MAX_ARG_STRLEN`, 128 KiB)
/// times eight, so anything a RUN could receive fits.
pub const MAX_EXPANDED: usize = 1 << 20;

/// Most pattern-matching steps (pattern positions × text characters) one
/// `${v/p/r}` may take: a few tens of milliseconds of work. Only a pattern
/// with a `*` after its first element, over a value thousands of
/// characters long, gets near it.
const MAX_MATCH_WORK: usize = 20_000_000;

/// How a piece of expanded text may be split into words.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Piece {
    /// Literal or quoted text: never split.
    Whole,
    /// Unquoted whitespace: a word boundary.
    Boundary,
    /// The value of an unquoted expansion: split on its whitespace.
    Splittable,
}

struct Lexer<'a> {
    chars: Vec<char>,
    pos: usize,
    escape: char,
    env: &'a dyn Fn(&str) -> Option<String>,
    /// `${` levels open around the current position.
    depth: usize,
    /// Bytes of variable values substituted so far.
    produced: usize,
    /// Quotes are plain characters (heredoc bodies).
    keep_quotes: bool,
}

type Pieces = Vec<(Piece, String)>;

fn push(out: &mut Pieces, kind: Piece, text: &str) {
    if let Some((k, s)) = out.last_mut()
        && *k == kind
        && kind != Piece::Boundary
    {
        s.push_str(text);
        return;
    }
    out.push((kind, text.to_string()));
}

fn is_name_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

impl Lexer<'_> {
    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    fn peek_at(&self, n: usize) -> Option<char> {
        self.chars.get(self.pos + n).copied()
    }

    /// The rest of a quoted string opened by `close` (`'` or `"`), its
    /// closing quote consumed. Single quotes keep everything; double
    /// quotes expand `$` and let the escape quote `"`, `$` and itself.
    fn quoted(&mut self, close: char) -> Result<String, String> {
        let unterminated = || {
            let name = if close == '"' { "double" } else { "single" };
            format!("unexpected end of statement while looking for matching {name}-quote")
        };
        let mut s = String::new();
        loop {
            match self.peek() {
                None => return Err(unterminated()),
                Some(ch) if ch == close => {
                    self.pos += 1;
                    return Ok(s);
                }
                Some(ch) if close == '"' && ch == self.escape => {
                    self.pos += 1;
                    match self.peek() {
                        Some(n) if n == '"' || n == '$' || n == self.escape => {
                            s.push(n);
                            self.pos += 1;
                        }
                        Some(_) => s.push(ch),
                        None => return Err(unterminated()),
                    }
                }
                Some('$') if close == '"' => {
                    s.push_str(&self.dollar()?.unwrap_or_else(|| String::from("$")))
                }
                Some(ch) => {
                    s.push(ch);
                    self.pos += 1;
                }
            }
        }
    }

    /// Reads until `stop` (a `}` ending a `${…}` word) or the end.
    fn pieces(&mut self, stop: Option<char>) -> Result<Pieces, String> {
        let mut out = Pieces::new();
        while let Some(c) = self.peek() {
            if Some(c) == stop {
                return Ok(out);
            }
            if c == self.escape {
                self.pos += 1;
                if let Some(n) = self.peek() {
                    self.pos += 1;
                    push(&mut out, Piece::Whole, n.encode_utf8(&mut [0; 4]));
                }
            } else if (c == '\'' || c == '"') && !self.keep_quotes {
                self.pos += 1;
                let s = self.quoted(c)?;
                push(&mut out, Piece::Whole, &s);
                if s.is_empty() {
                    out.push((Piece::Whole, String::new()));
                }
            } else if c == '$' {
                match self.dollar()? {
                    Some(v) => push(&mut out, Piece::Splittable, &v),
                    None => push(&mut out, Piece::Whole, "$"),
                }
            } else if c == '<'
                && self.peek_at(1) == Some('<')
                && matches!(self.peek_at(2), Some(' ' | '\t'))
            {
                // `<< EOF` stays one piece.
                let mut s = String::from("<<");
                self.pos += 2;
                while let Some(b @ (' ' | '\t')) = self.peek() {
                    s.push(b);
                    self.pos += 1;
                }
                push(&mut out, Piece::Whole, &s);
            } else if c.is_whitespace() {
                self.pos += 1;
                push(&mut out, Piece::Boundary, c.encode_utf8(&mut [0; 4]));
            } else {
                self.pos += 1;
                push(&mut out, Piece::Whole, c.encode_utf8(&mut [0; 4]));
            }
        }
        Ok(out)
    }

    /// The value of a variable, counted against [`MAX_EXPANDED`].
    fn lookup(&mut self, name: &str) -> Result<Option<String>, String> {
        let value = (self.env)(name);
        self.produced += value.as_ref().map_or(0, String::len);
        if self.produced > MAX_EXPANDED {
            return Err(format!(
                "the variables substituted add up to more than {MAX_EXPANDED} bytes"
            ));
        }
        Ok(value)
    }

    /// At `$`: the expansion, or `None` when the `$` is literal.
    fn dollar(&mut self) -> Result<Option<String>, String> {
        self.pos += 1;
        match self.peek() {
            Some('{') => {
                self.pos += 1;
                if self.depth >= MAX_NESTING {
                    return Err(format!("${{…}} nested more than {MAX_NESTING} deep"));
                }
                self.depth += 1;
                let value = self.braced();
                self.depth -= 1;
                value.map(Some)
            }
            Some(c) if c.is_ascii_digit() => {
                let mut name = String::new();
                while let Some(d) = self.peek().filter(char::is_ascii_digit) {
                    name.push(d);
                    self.pos += 1;
                }
                Ok(Some(self.lookup(&name)?.unwrap_or_default()))
            }
            Some(c) if is_name_char(c) => {
                let mut name = String::new();
                while let Some(d) = self.peek().filter(|c| is_name_char(*c)) {
                    name.push(d);
                    self.pos += 1;
                }
                Ok(Some(self.lookup(&name)?.unwrap_or_default()))
            }
            Some(c) if "@*#?-$!0".contains(c) => {
                self.pos += 1;
                Ok(Some(self.lookup(&c.to_string())?.unwrap_or_default()))
            }
            _ => Ok(None),
        }
    }

    /// After `${`.
    // Over 80 lines: every `${…}` form (`-` `+` `?` `#` `%` `/`, with and
    // without `:`) after one read of the name; the forms share the cursor,
    // nesting depth and budget, as BuildKit's `processDollar`.
    fn braced(&mut self) -> Result<String, String> {
        let bad = || String::from("bad substitution");
        let Some(first) = self.peek() else {
            return Err(String::from("syntax error: missing '}'"));
        };
        let mut name = String::new();
        if is_name_char(first) {
            while let Some(c) = self.peek().filter(|c| is_name_char(*c)) {
                name.push(c);
                self.pos += 1;
            }
        } else if "@*#?-$!0".contains(first) && matches!(self.peek_at(1), Some('}' | ':')) {
            name.push(first);
            self.pos += 1;
        } else {
            return Err(bad());
        }
        let value = self.lookup(&name)?;
        let op: String = match self.peek() {
            None => return Err(String::from("syntax error: missing '}'")),
            Some('}') => {
                self.pos += 1;
                return Ok(value.unwrap_or_default());
            }
            Some(':') => match self.peek_at(1) {
                Some(c @ ('-' | '+' | '?')) => {
                    self.pos += 2;
                    format!(":{c}")
                }
                _ => return Err(bad()),
            },
            Some(c @ ('-' | '+' | '?')) => {
                self.pos += 1;
                c.to_string()
            }
            Some(c @ ('#' | '%' | '/')) => {
                self.pos += 1;
                if self.peek() == Some(c) {
                    self.pos += 1;
                    format!("{c}{c}")
                } else {
                    c.to_string()
                }
            }
            Some(_) => return Err(bad()),
        };
        if op.starts_with('/') {
            let pattern = self.raw_until(&['/', '}']);
            let replacement = if self.peek() == Some('/') {
                self.pos += 1;
                self.word_until_brace()?
            } else {
                String::new()
            };
            self.close()?;
            let v = value.unwrap_or_default();
            let pattern = self.expand_pattern(&pattern)?;
            return replace(&v, &pattern, &replacement, op == "//");
        }
        if op.starts_with('#') || op.starts_with('%') {
            let pattern = self.raw_until(&['}']);
            self.close()?;
            let pat = self.expand_pattern(&pattern)?;
            let v = value.unwrap_or_default();
            return Ok(trim(&v, &pat, op.starts_with('#'), op.len() == 2));
        }
        let word = self.word_until_brace()?;
        self.close()?;
        let set = value.is_some();
        let non_empty = value.as_deref().is_some_and(|v| !v.is_empty());
        Ok(match op.as_str() {
            "-" => {
                if set {
                    value.unwrap_or_default()
                } else {
                    word
                }
            }
            ":-" => {
                if non_empty {
                    value.unwrap_or_default()
                } else {
                    word
                }
            }
            "+" => {
                if set {
                    word
                } else {
                    String::new()
                }
            }
            ":+" => {
                if non_empty {
                    word
                } else {
                    String::new()
                }
            }
            "?" | ":?" => {
                let ok = if op == "?" { set } else { non_empty };
                if !ok {
                    return Err(if word.is_empty() {
                        format!("{name}: is not allowed to be unset")
                    } else {
                        format!("{name}: {word}")
                    });
                }
                value.unwrap_or_default()
            }
            _ => unreachable!("all operators handled"),
        })
    }

    fn close(&mut self) -> Result<(), String> {
        if self.peek() == Some('}') {
            self.pos += 1;
            Ok(())
        } else {
            Err(String::from("syntax error: missing '}'"))
        }
    }

    /// The expanded word up to the closing `}`.
    fn word_until_brace(&mut self) -> Result<String, String> {
        let pieces = self.pieces(Some('}'))?;
        Ok(pieces.into_iter().map(|(_, s)| s).collect())
    }

    /// Raw text up to one of `stops` (escapes kept, nested `${…}` skipped).
    fn raw_until(&mut self, stops: &[char]) -> String {
        let mut s = String::new();
        let mut depth = 0;
        while let Some(c) = self.peek() {
            if depth == 0 && stops.contains(&c) {
                break;
            }
            if c == self.escape {
                s.push(c);
                self.pos += 1;
                if let Some(n) = self.peek() {
                    s.push(n);
                    self.pos += 1;
                }
                continue;
            }
            if c == '$' && self.peek_at(1) == Some('{') {
                depth += 1;
            } else if c == '}' && depth > 0 {
                depth -= 1;
            }
            s.push(c);
            self.pos += 1;
        }
        s
    }

    /// Expands variables in a pattern, keeping escapes (for matching).
    fn expand_pattern(&mut self, raw: &str) -> Result<String, String> {
        let mut out = String::new();
        let chars: Vec<char> = raw.chars().collect();
        let mut i = 0;
        while i < chars.len() {
            let c = chars[i];
            if c == self.escape && i + 1 < chars.len() {
                out.push('\\');
                out.push(chars[i + 1]);
                i += 2;
            } else if c == '$' {
                let rest: String = chars[i..].iter().collect();
                let mut sub = Lexer {
                    chars: rest.chars().collect(),
                    pos: 0,
                    escape: self.escape,
                    env: self.env,
                    depth: self.depth,
                    produced: self.produced,
                    keep_quotes: self.keep_quotes,
                };
                let value = sub.dollar()?;
                self.produced = sub.produced;
                match value {
                    Some(v) => {
                        for ch in v.chars() {
                            if "*?\\".contains(ch) {
                                out.push('\\');
                            }
                            out.push(ch);
                        }
                    }
                    None => out.push('$'),
                }
                i += sub.pos.max(1);
            } else {
                out.push(c);
                i += 1;
            }
        }
        Ok(out)
    }
}

/// `${v#p}`, `${v##p}`, `${v%p}`, `${v%%p}`.
fn trim(value: &str, pattern: &str, prefix: bool, longest: bool) -> String {
    let v: Vec<char> = value.chars().collect();
    let pattern = Pattern::shell(pattern);
    let ends = if prefix {
        pattern.prefix_matches(&v)
    } else {
        pattern.suffix_matches(&v)
    };
    let mut lens = (0..ends.len()).filter(|&len| ends[len]);
    let Some(len) = (if longest {
        lens.next_back()
    } else {
        lens.next()
    }) else {
        return value.to_string();
    };
    if prefix {
        v[len..].iter().collect()
    } else {
        v[..v.len() - len].iter().collect()
    }
}

/// `${v/p/r}` and `${v//p/r}` (longest match at each position).
fn replace(value: &str, pattern: &str, with: &str, all: bool) -> Result<String, String> {
    let v: Vec<char> = value.chars().collect();
    let pattern = Pattern::shell(pattern);
    let mut out = String::new();
    let mut work = 0usize;
    let mut i = 0;
    let mut done = false;
    while i < v.len() {
        if !done {
            let ends = pattern.prefix_matches(&v[i..]);
            work += pattern.len().max(1) * ends.len();
            if work > MAX_MATCH_WORK {
                return Err(String::from(
                    "pattern substitution too expensive (value and pattern too long)",
                ));
            }
            if let Some(len) = (1..ends.len()).rev().find(|&len| ends[len]) {
                out.push_str(with);
                if out.len() > MAX_EXPANDED {
                    return Err(format!(
                        "pattern substitution result longer than {MAX_EXPANDED} bytes"
                    ));
                }
                i += len;
                done = !all;
                continue;
            }
            // A leading `*` that matched nothing here matches nothing later.
            done = pattern.starts_with_star();
        }
        out.push(v[i]);
        i += 1;
    }
    Ok(out)
}

fn lex(
    input: &str,
    escape: char,
    keep_quotes: bool,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Pieces, String> {
    let mut lexer = Lexer {
        chars: input.chars().collect(),
        pos: 0,
        escape,
        env,
        depth: 0,
        produced: 0,
        keep_quotes,
    };
    let pieces = lexer.pieces(None)?;
    Ok(pieces)
}

/// Expands one word: quotes removed, escapes processed, variables
/// substituted; whitespace kept as it is.
pub fn expand_word(
    input: &str,
    escape: char,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<String, String> {
    // Most words have no quote, escape or `$`: they expand to themselves.
    if !input.contains(['$', '\'', '"', escape]) {
        return Ok(input.to_string());
    }
    let pieces = lex(input, escape, false, env)
        .map_err(|e| format!("failed to process {}: {e}", quote::excerpt(input)))?;
    Ok(pieces.into_iter().map(|(_, s)| s).collect())
}

/// Expands a heredoc body as BuildKit does for an unquoted delimiter
/// (`SkipProcessQuotes`): variables substituted and `\` escapes processed
/// (`\$A` is a literal `$A`), quotes kept as written.
pub fn expand_heredoc(input: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<String, String> {
    let pieces = lex(input, '\\', true, env)
        .map_err(|e| format!("failed to process {}: {e}", quote::excerpt(input)))?;
    Ok(pieces.into_iter().map(|(_, s)| s).collect())
}

/// Expands and splits into words (see the module docs).
pub fn expand_words(
    input: &str,
    escape: char,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Vec<String>, String> {
    let pieces = lex(input, escape, false, env)
        .map_err(|e| format!("failed to process {}: {e}", quote::excerpt(input)))?;
    let mut words = Vec::new();
    let mut current = String::new();
    let mut has = false;
    for (kind, text) in pieces {
        match kind {
            Piece::Boundary => {
                if has {
                    words.push(std::mem::take(&mut current));
                    has = false;
                }
            }
            Piece::Whole => {
                current.push_str(&text);
                has = has || !text.is_empty();
            }
            Piece::Splittable => {
                for (i, part) in text.split(char::is_whitespace).enumerate() {
                    if i > 0 && has {
                        words.push(std::mem::take(&mut current));
                        has = false;
                    }
                    if !part.is_empty() {
                        current.push_str(part);
                        has = true;
                    }
                }
            }
        }
    }
    if has {
        words.push(current);
    }
    Ok(words)
}
