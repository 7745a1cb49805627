//! Wildcard patterns (`*`, `?`, `[a-z]`, `[^x]`, `\` escapes) matched by
//! simulating their automaton over the text, never by backtracking: one
//! pass that keeps the set of pattern positions reached so far, so a match
//! costs O(pattern length × text length) whatever the pattern is (24 `*`
//! followed by `a` is as cheap as `a`). The same simulation, over path
//! components instead of characters, matches `.dockerignore`'s `**`.

/// One element of a pattern: a star that repeats (matches any run of
/// text elements, possibly empty), or a step that consumes exactly one.
pub(crate) trait Element<T: ?Sized> {
    /// Whether this element is a star.
    fn is_star(&self) -> bool;
    /// Whether this (non-star) element consumes `item`.
    fn accepts(&self, item: &T) -> bool;
}

/// For each `i` from 0, whether `pattern` matches exactly `text[..i]` (an
/// anchored match ending at `i`). The answer stops early (is shorter than
/// `text.len() + 1`) where no longer prefix can match, so its length is
/// also the work done.
pub(crate) fn match_ends<T: ?Sized, E: Element<T>>(
    pattern: &[E],
    text: &[impl std::borrow::Borrow<T>],
) -> Vec<bool> {
    let mut reached = vec![false; pattern.len() + 1];
    reached[0] = true;
    close_over_stars(pattern, &mut reached);
    let mut ends = Vec::with_capacity(text.len() + 1);
    ends.push(reached[pattern.len()]);
    let mut next = vec![false; pattern.len() + 1];
    for item in text {
        next.fill(false);
        let mut any = false;
        for (i, element) in pattern.iter().enumerate() {
            if !reached[i] {
                continue;
            }
            if element.is_star() {
                next[i] = true;
                any = true;
            } else if element.accepts(item.borrow()) {
                next[i + 1] = true;
                any = true;
            }
        }
        std::mem::swap(&mut reached, &mut next);
        if !any {
            // No state left: nothing longer can match.
            return ends;
        }
        close_over_stars(pattern, &mut reached);
        ends.push(reached[pattern.len()]);
    }
    ends
}

/// A star may match nothing: reaching it reaches what follows it.
fn close_over_stars<T: ?Sized, E: Element<T>>(pattern: &[E], reached: &mut [bool]) {
    for (i, element) in pattern.iter().enumerate() {
        if reached[i] && element.is_star() {
            reached[i + 1] = true;
        }
    }
}

/// A character-level pattern element.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Token {
    /// `*`.
    Star,
    /// `?`: any one character.
    Any,
    /// A literal (possibly escaped) character.
    Literal(char),
    /// `[…]`: inclusive ranges, possibly negated.
    Class {
        /// `[^…]` or `[!…]`.
        negated: bool,
        /// The ranges (a single character is a range of one).
        ranges: Vec<(char, char)>,
    },
}

impl Element<char> for Token {
    fn is_star(&self) -> bool {
        *self == Token::Star
    }

    fn accepts(&self, c: &char) -> bool {
        match self {
            Token::Star => false,
            Token::Any => true,
            Token::Literal(l) => l == c,
            Token::Class { negated, ranges } => {
                ranges.iter().any(|(lo, hi)| lo <= c && c <= hi) != *negated
            }
        }
    }
}

/// Whether `pattern` holds a wildcard character (`*`, `?`, `[`).
pub fn has_wildcards(pattern: &str) -> bool {
    pattern.contains(['*', '?', '['])
}

/// Whether the path component `name` matches `pattern` in Go's
/// `filepath.Match` syntax, which COPY and ADD sources use: `*`, `?`,
/// `[a-z]`, `[^x]` and `\` escapes. A malformed pattern (an unclosed `[`,
/// a trailing `\`) matches nothing.
pub fn component_matches(pattern: &str, name: &str) -> bool {
    Pattern::glob(pattern).is_some_and(|p| p.matches(name))
}

/// A compiled character pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Pattern {
    tokens: Vec<Token>,
}

impl Pattern {
    /// Go's `filepath.Match` syntax for one path component: `*`, `?`,
    /// classes and `\` escapes. `None` when malformed (an unclosed `[`, a
    /// trailing `\`), which Go reports as `ErrBadPattern`.
    pub(crate) fn glob(pattern: &str) -> Option<Self> {
        let chars: Vec<char> = pattern.chars().collect();
        let mut tokens = Vec::new();
        let mut i = 0;
        while i < chars.len() {
            let (token, next) = match chars[i] {
                '*' => (Token::Star, i + 1),
                '?' => (Token::Any, i + 1),
                '\\' => (Token::Literal(*chars.get(i + 1)?), i + 2),
                '[' => class(&chars, i + 1)?,
                c => (Token::Literal(c), i + 1),
            };
            if !(token == Token::Star && tokens.last() == Some(&Token::Star)) {
                tokens.push(token);
            }
            i = next;
        }
        Some(Self { tokens })
    }

    /// A shell pattern as the expander's `${v#p}` forms read it: `*`, `?`
    /// and `\` escapes (a trailing `\` is literal); no classes.
    pub(crate) fn shell(pattern: &str) -> Self {
        let chars: Vec<char> = pattern.chars().collect();
        let mut tokens = Vec::new();
        let mut i = 0;
        while i < chars.len() {
            let token = match chars[i] {
                '*' => Token::Star,
                '?' => Token::Any,
                '\\' if i + 1 < chars.len() => {
                    i += 1;
                    Token::Literal(chars[i])
                }
                c => Token::Literal(c),
            };
            if !(token == Token::Star && tokens.last() == Some(&Token::Star)) {
                tokens.push(token);
            }
            i += 1;
        }
        Self { tokens }
    }

    /// Its number of elements.
    pub(crate) fn len(&self) -> usize {
        self.tokens.len()
    }

    /// Whether the pattern begins with `*` (then, if it matches no prefix
    /// of a text, it matches no prefix of any of the text's suffixes either).
    pub(crate) fn starts_with_star(&self) -> bool {
        self.tokens.first() == Some(&Token::Star)
    }

    /// Whether the pattern matches all of `text`.
    pub(crate) fn matches(&self, text: &str) -> bool {
        let chars: Vec<char> = text.chars().collect();
        match_ends(&self.tokens, &chars)
            .get(chars.len())
            .is_some_and(|&hit| hit)
    }

    /// For each prefix length of `text`, whether the pattern matches that
    /// prefix (shorter than `text.len() + 1` when the rest cannot match).
    pub(crate) fn prefix_matches(&self, text: &[char]) -> Vec<bool> {
        match_ends(&self.tokens, text)
    }

    /// For each suffix length of `text`, whether the pattern matches that
    /// suffix (shortened as [`Pattern::prefix_matches`]).
    pub(crate) fn suffix_matches(&self, text: &[char]) -> Vec<bool> {
        let reversed: Vec<Token> = self.tokens.iter().rev().cloned().collect();
        let text: Vec<char> = text.iter().rev().copied().collect();
        match_ends(&reversed, &text)
    }
}

/// A class after its `[`: the token and the index after its `]`.
fn class(chars: &[char], mut i: usize) -> Option<(Token, usize)> {
    let negated = matches!(chars.get(i), Some('^' | '!'));
    if negated {
        i += 1;
    }
    let mut ranges = Vec::new();
    let mut first = true;
    loop {
        if *chars.get(i)? == ']' && !first {
            return Some((Token::Class { negated, ranges }, i + 1));
        }
        first = false;
        let (lo, next) = class_char(chars, i)?;
        let (hi, next) = if chars.get(next) == Some(&'-') && chars.get(next + 1) != Some(&']') {
            class_char(chars, next + 1)?
        } else {
            (lo, next)
        };
        ranges.push((lo, hi));
        i = next;
    }
}

fn class_char(chars: &[char], i: usize) -> Option<(char, usize)> {
    match chars.get(i)? {
        '\\' => Some((*chars.get(i + 1)?, i + 2)),
        c => Some((*c, i + 1)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn components_match_as_go_filepath_match() {
        assert!(component_matches("*.txt", "a.txt"));
        assert!(component_matches("*.txt", ".txt"));
        assert!(!component_matches("*.txt", "a.txd"));
        assert!(component_matches("a*b*c", "aXXbYYc"));
        assert!(!component_matches("a*b*c", "aXXbYY"));
        assert!(component_matches("f?o", "foo"));
        assert!(!component_matches("f?o", "fo"));
        assert!(component_matches("*", ""));
        assert!(component_matches("[a-c]x", "bx"));
        assert!(!component_matches("[a-c]x", "dx"));
        assert!(component_matches("[^a-c]x", "dx"));
        assert!(component_matches("[!a]", "b"));
        assert!(component_matches("\\*", "*"));
        assert!(!component_matches("\\*", "a"));
        assert!(!component_matches("[a-", "a"));
        assert!(has_wildcards("src/*.c"));
        assert!(!has_wildcards("src/main.c"));
    }

    fn glob(p: &str, s: &str) -> bool {
        Pattern::glob(p).is_some_and(|p| p.matches(s))
    }

    #[test]
    fn stars_questions_classes_and_escapes() {
        assert!(glob("*.txt", "a.txt") && glob("*.txt", ".txt"));
        assert!(!glob("*.txt", "a.txd"));
        assert!(glob("a*b*c", "aXXbYYc") && !glob("a*b*c", "aXXbYY"));
        assert!(glob("f?o", "foo") && !glob("f?o", "fo"));
        assert!(glob("*", ""));
        assert!(glob("[a-c]x", "bx") && !glob("[a-c]x", "dx"));
        assert!(glob("[^a-c]x", "dx") && glob("[!a]", "b"));
        assert!(glob("[]]", "]") && glob("[\\]]", "]"));
        assert!(glob("\\*", "*") && !glob("\\*", "a"));
        assert!(!glob("[a-", "a") && !glob("a\\", "a"));
    }

    #[test]
    fn many_stars_cost_one_pass() {
        let pattern = format!("{}a", "*".repeat(10_000));
        let text = "b".repeat(10_000);
        let started = std::time::Instant::now();
        assert!(!glob(&pattern, &text));
        assert!(glob(&pattern, &format!("{text}a")));
        assert!(started.elapsed() < std::time::Duration::from_secs(2));
    }

    #[test]
    fn prefix_and_suffix_ends() {
        let text: Vec<char> = "abcab".chars().collect();
        let p = Pattern::shell("a*b");
        assert_eq!(
            p.prefix_matches(&text),
            [false, false, true, false, false, true]
        );
        assert_eq!(
            Pattern::shell("*b").suffix_matches(&text),
            [false, true, true, true, true, true]
        );
        assert_eq!(Pattern::shell("b").prefix_matches(&text), [false]);
        assert_eq!(Pattern::shell("\\*").prefix_matches(&['*']), [false, true]);
    }
}
