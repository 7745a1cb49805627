//! Shell-style matching of one path component, as Go's `filepath.Match`
//! (which COPY and ADD use for wildcard sources): `*`, `?`, `[a-z]`, `[^x]`,
//! and `\` escapes.

/// Whether `pattern` holds any wildcard character.
pub fn has_wildcards(pattern: &str) -> bool {
    pattern.contains(['*', '?', '['])
}

/// Whether the component `name` matches `pattern`. A malformed pattern
/// (an unclosed `[`) matches nothing.
pub fn matches(pattern: &str, name: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    match_from(&p, &n)
}

fn match_from(p: &[char], n: &[char]) -> bool {
    let (mut pi, mut ni) = (0, 0);
    // Position to resume from after the last `*`: (pattern index, name index).
    let mut star: Option<(usize, usize)> = None;
    while ni < n.len() {
        let step = if pi < p.len() {
            match_one(&p[pi..], n[ni])
        } else {
            None
        };
        match step {
            Some(Step::Star) => {
                star = Some((pi + 1, ni));
                pi += 1;
            }
            Some(Step::Matched(len)) => {
                pi += len;
                ni += 1;
            }
            None => match star {
                Some((sp, sn)) => {
                    pi = sp;
                    ni = sn + 1;
                    star = Some((sp, sn + 1));
                }
                None => return false,
            },
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

enum Step {
    Star,
    /// One name character matched by this many pattern characters.
    Matched(usize),
}

fn match_one(p: &[char], c: char) -> Option<Step> {
    match p[0] {
        '*' => Some(Step::Star),
        '?' => Some(Step::Matched(1)),
        '\\' if p.len() > 1 => (p[1] == c).then_some(Step::Matched(2)),
        '[' => match_class(p, c),
        other => (other == c).then_some(Step::Matched(1)),
    }
}

fn match_class(p: &[char], c: char) -> Option<Step> {
    let mut i = 1;
    let negated = matches!(p.get(i), Some('^') | Some('!'));
    if negated {
        i += 1;
    }
    let mut found = false;
    let mut first = true;
    loop {
        let lo = *p.get(i)?;
        if lo == ']' && !first {
            break;
        }
        first = false;
        let (lo, next) = class_char(p, i)?;
        let (hi, next) = if p.get(next) == Some(&'-') && p.get(next + 1) != Some(&']') {
            class_char(p, next + 1)?
        } else {
            (lo, next)
        };
        if lo <= c && c <= hi {
            found = true;
        }
        i = next;
    }
    (found != negated).then_some(Step::Matched(i + 1))
}

fn class_char(p: &[char], i: usize) -> Option<(char, usize)> {
    match p.get(i)? {
        '\\' => Some((*p.get(i + 1)?, i + 2)),
        c => Some((*c, i + 1)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stars_and_questions() {
        assert!(matches("*.txt", "a.txt"));
        assert!(matches("*.txt", ".txt"));
        assert!(!matches("*.txt", "a.txd"));
        assert!(matches("a*b*c", "aXXbYYc"));
        assert!(!matches("a*b*c", "aXXbYY"));
        assert!(matches("f?o", "foo"));
        assert!(!matches("f?o", "fo"));
        assert!(matches("*", ""));
    }

    #[test]
    fn classes_and_escapes() {
        assert!(matches("[a-c]x", "bx"));
        assert!(!matches("[a-c]x", "dx"));
        assert!(matches("[^a-c]x", "dx"));
        assert!(matches("[!a]", "b"));
        assert!(matches("\\*", "*"));
        assert!(!matches("\\*", "a"));
        assert!(!matches("[a-", "a"));
    }

    #[test]
    fn many_stars_do_not_backtrack_exponentially() {
        // The last-star backtracking is O(pattern × name): 24 stars and an
        // `a` against 10,000 characters stay well under a second.
        let pattern = format!("{}a", "*".repeat(24));
        let name = "b".repeat(10_000);
        let started = std::time::Instant::now();
        assert!(!matches(&pattern, &name));
        assert!(matches(&pattern, &format!("{name}a")));
        assert!(started.elapsed() < std::time::Duration::from_secs(1));
    }

    #[test]
    fn detects_wildcards() {
        assert!(has_wildcards("src/*.c"));
        assert!(!has_wildcards("src/main.c"));
    }
}
