//! Wildcard patterns (`*`, `?`, `[a-z]`, `[^x]`, `\` escapes) matched by
//! simulating their automaton over the text, never by backtracking: one
//! pass that keeps the set of pattern positions reached so far, so a match
//! costs O(pattern length × text length) whatever the pattern is (24 `*`
//! followed by `a` is as cheap as `a`). The same simulation, over path
//! components instead of characters, matches `.dockerignore`'s `**`.

use std::borrow::Borrow;

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
    text: &[impl Borrow<T>],
) -> Vec<bool> {
    let mut ends = Vec::with_capacity(text.len() + 1);
    simulate(pattern, text.iter().map(|item| item.borrow()), |hit| {
        ends.push(hit);
        true
    });
    ends
}

/// Runs `pattern`'s automaton over `text`, telling `ended` after each
/// prefix (the empty one first) whether the pattern matches exactly that
/// prefix; stops when `ended` returns false or no longer prefix can match.
/// Allocates nothing for a pattern of fewer than 64 elements (its states
/// are the bits of one word), which every `.dockerignore` line and path
/// component of a real context is: a context walk asks this for every
/// path.
pub(crate) fn simulate<T: ?Sized, E: Element<T>>(
    pattern: &[E],
    text: impl IntoIterator<Item = impl Borrow<T>>,
    ended: impl FnMut(bool) -> bool,
) {
    match pattern.len() < 64 {
        true => run::<u64, T, E>(pattern, text, ended),
        false => run::<Vec<bool>, T, E>(pattern, text, ended),
    }
}

/// A set of pattern positions.
trait States {
    /// The empty set for a pattern of `len` elements (`len + 1` positions).
    fn empty(len: usize) -> Self;
    /// Whether position `i` is in the set.
    fn contains(&self, i: usize) -> bool;
    /// The positions in the set, lowest first.
    fn positions(&self) -> impl Iterator<Item = usize>;
    /// Adds position `i`.
    fn insert(&mut self, i: usize);
    /// Empties the set.
    fn clear(&mut self);
    /// Whether the set is empty.
    fn is_empty(&self) -> bool;
}

impl States for u64 {
    fn empty(_: usize) -> Self {
        0
    }
    fn contains(&self, i: usize) -> bool {
        self & (1 << i) != 0
    }
    fn positions(&self) -> impl Iterator<Item = usize> {
        let mut left = *self;
        std::iter::from_fn(move || {
            let i = left.trailing_zeros() as usize;
            left &= left.wrapping_sub(1);
            (i < 64).then_some(i)
        })
    }
    fn insert(&mut self, i: usize) {
        *self |= 1 << i;
    }
    fn clear(&mut self) {
        *self = 0;
    }
    fn is_empty(&self) -> bool {
        *self == 0
    }
}

impl States for Vec<bool> {
    fn empty(len: usize) -> Self {
        vec![false; len + 1]
    }
    fn contains(&self, i: usize) -> bool {
        self[i]
    }
    fn positions(&self) -> impl Iterator<Item = usize> {
        (0..self.len()).filter(|&i| self[i])
    }
    fn insert(&mut self, i: usize) {
        self[i] = true;
    }
    fn clear(&mut self) {
        self.fill(false);
    }
    fn is_empty(&self) -> bool {
        !self.iter().any(|&reached| reached)
    }
}

/// [`simulate`] with the states kept in `S`.
fn run<S: States, T: ?Sized, E: Element<T>>(
    pattern: &[E],
    text: impl IntoIterator<Item = impl Borrow<T>>,
    mut ended: impl FnMut(bool) -> bool,
) {
    let mut reached = S::empty(pattern.len());
    reached.insert(0);
    close_over_stars(pattern, &mut reached);
    if !ended(reached.contains(pattern.len())) {
        return;
    }
    let mut next = S::empty(pattern.len());
    for item in text {
        next.clear();
        for i in reached.positions() {
            let Some(element) = pattern.get(i) else {
                continue; // The end: nothing follows it.
            };
            if element.is_star() {
                next.insert(i);
            } else if element.accepts(item.borrow()) {
                next.insert(i + 1);
            }
        }
        std::mem::swap(&mut reached, &mut next);
        if reached.is_empty() {
            // No state left: nothing longer can match.
            return;
        }
        close_over_stars(pattern, &mut reached);
        if !ended(reached.contains(pattern.len())) {
            return;
        }
    }
}

/// A star may match nothing: reaching it reaches what follows it.
fn close_over_stars<T: ?Sized, E: Element<T>>(pattern: &[E], reached: &mut impl States) {
    for (i, element) in pattern.iter().enumerate() {
        if reached.contains(i) && element.is_star() {
            reached.insert(i + 1);
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
    /// The literal characters the pattern starts with: a text it matches
    /// starts with them (checked before the automaton runs).
    head: String,
    /// The literal characters it ends with: a text it matches ends so.
    tail: String,
}

impl Pattern {
    /// The pattern of `tokens`, with its literal head and tail.
    fn new(tokens: Vec<Token>) -> Self {
        let literal = |t: &Token| match t {
            Token::Literal(c) => Some(*c),
            _ => None,
        };
        let head = tokens.iter().map_while(literal).collect();
        let tail: Vec<char> = tokens.iter().rev().map_while(literal).collect();
        let tail = tail.into_iter().rev().collect();
        Self { tokens, head, tail }
    }

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
        Some(Self::new(tokens))
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
        Self::new(tokens)
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
        if !text.starts_with(&self.head) || !text.ends_with(&self.tail) {
            return false;
        }
        let (mut ends, mut last) = (0, false);
        let chars = text.chars().count();
        simulate(&self.tokens, text.chars(), |hit| {
            ends += 1;
            last = hit;
            true
        });
        ends == chars + 1 && last
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

    /// The ends `run` reports with states kept in `S`.
    fn ends_with_states<S: States>(pattern: &Pattern, text: &str) -> Vec<bool> {
        let mut ends = Vec::new();
        run::<S, char, Token>(&pattern.tokens, text.chars(), |hit| {
            ends.push(hit);
            true
        });
        ends
    }

    #[test]
    fn word_and_heap_states_agree_and_the_literal_ends_only_reject() {
        let long = "a?".repeat(40);
        let cases = [
            ("*.tmp", "f00007.txt"),
            ("*.tmp", "x.tmp"),
            ("node_modules", "node_modules"),
            ("node_*", "node_modules"),
            ("a*b*c", "aXXbYYc"),
            ("[a-c]*x", "b12x"),
            ("ab*ab", "ab"),
            ("ab*ab", "abab"),
            (long.as_str(), &"ab".repeat(40)),
            (long.as_str(), &"ab".repeat(39)),
        ];
        for (pattern, text) in cases {
            let p = Pattern::glob(pattern).unwrap();
            let heap = ends_with_states::<Vec<bool>>(&p, text);
            if p.len() < 64 {
                assert_eq!(ends_with_states::<u64>(&p, text), heap, "{pattern}");
            }
            let whole = heap.len() == text.chars().count() + 1 && heap[heap.len() - 1];
            assert_eq!(p.matches(text), whole, "{pattern} on {text}");
        }
        assert!(glob(&long, &"ab".repeat(40)) && !glob(&long, &"ab".repeat(39)));
        // A text shorter than the literal head and tail together.
        assert!(!glob("ab*ab", "aba") && glob("ab*ab", "abab"));
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
