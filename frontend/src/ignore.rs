//! `.dockerignore`: patterns in file order, the last matching one decides,
//! `!` re-includes, `**` spans directories, and a pattern that matches a
//! directory excludes everything below it.

use crate::FrontendError;

/// Parses a `.dockerignore` file into its patterns, in order (comments and
/// blank lines dropped, paths cleaned, `!` kept as a prefix).
pub fn parse_dockerignore(source: &str) -> Vec<String> {
    source
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|l| {
            let (neg, p) = match l.strip_prefix('!') {
                Some(rest) => (true, rest.trim()),
                None => (false, l),
            };
            let cleaned = clean(p);
            if cleaned.is_empty() || cleaned == "." {
                return None;
            }
            Some(if neg { format!("!{cleaned}") } else { cleaned })
        })
        .collect()
}

/// `filepath.Clean` without the leading `/`.
pub(crate) fn clean(p: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for c in p.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            c => parts.push(c),
        }
    }
    parts.join("/")
}

/// Matches context paths against `.dockerignore` patterns with Docker's rules.
#[derive(Debug, Clone)]
pub struct IgnoreMatcher {
    patterns: Vec<(bool, Vec<String>)>,
}

impl IgnoreMatcher {
    /// Compiles the patterns.
    pub fn new(patterns: &[String]) -> Result<Self, FrontendError> {
        let patterns = patterns
            .iter()
            .map(|p| {
                let (neg, p) = match p.strip_prefix('!') {
                    Some(rest) => (true, rest),
                    None => (false, p.as_str()),
                };
                (neg, clean(p).split('/').map(str::to_string).collect())
            })
            .collect();
        Ok(Self { patterns })
    }

    /// Whether the context-relative path (`/`-separated, no leading `/`) is excluded.
    pub fn is_excluded(&self, path: &str) -> bool {
        let comps: Vec<&str> = path.split('/').filter(|c| !c.is_empty()).collect();
        let mut excluded = false;
        for (neg, pat) in &self.patterns {
            // A pattern matches the path or one of its parent directories.
            let hit = (1..=comps.len()).any(|n| match_components(pat, &comps[..n]));
            if hit {
                excluded = !neg;
            }
        }
        excluded
    }
}

fn match_components(pat: &[String], comps: &[&str]) -> bool {
    match pat.first() {
        None => comps.is_empty(),
        Some(p) if p == "**" => (0..=comps.len()).any(|i| match_components(&pat[1..], &comps[i..])),
        Some(p) => {
            !comps.is_empty()
                && glob(p.as_bytes(), comps[0].as_bytes())
                && match_components(&pat[1..], &comps[1..])
        }
    }
}

/// Go's `filepath.Match` for one path component.
fn glob(p: &[u8], s: &[u8]) -> bool {
    match p.first() {
        None => s.is_empty(),
        Some(b'*') => (0..=s.len()).any(|i| glob(&p[1..], &s[i..])),
        Some(b'?') => !s.is_empty() && glob(&p[1..], &s[1..]),
        Some(b'\\') if p.len() > 1 => s.first() == Some(&p[1]) && glob(&p[2..], &s[1..]),
        Some(b'[') => {
            let Some(c) = s.first() else { return false };
            let mut i = 1;
            let negate = p.get(1) == Some(&b'^') || p.get(1) == Some(&b'!');
            if negate {
                i += 1;
            }
            let mut matched = false;
            let mut first = true;
            while i < p.len() && (first || p[i] != b']') {
                first = false;
                let lo = p[i];
                if p.get(i + 1) == Some(&b'-') && i + 2 < p.len() && p[i + 2] != b']' {
                    matched |= lo <= *c && *c <= p[i + 2];
                    i += 3;
                } else {
                    matched |= lo == *c;
                    i += 1;
                }
            }
            if i >= p.len() {
                return false;
            }
            matched != negate && glob(&p[i + 1..], &s[1..])
        }
        Some(c) => s.first() == Some(c) && glob(&p[1..], &s[1..]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(patterns: &str) -> IgnoreMatcher {
        IgnoreMatcher::new(&parse_dockerignore(patterns)).unwrap()
    }

    #[test]
    fn docker_rules() {
        let i = m("# comment\n*.log\n/build\n**/tmp\n!keep.log\nnode_modules/\n");
        assert!(i.is_excluded("a.log"));
        assert!(!i.is_excluded("keep.log"));
        assert!(!i.is_excluded("dir/a.log"), "* does not cross directories");
        assert!(i.is_excluded("build/x/y"), "below an excluded dir");
        assert!(i.is_excluded("a/b/tmp/c"));
        assert!(i.is_excluded("tmp"));
        assert!(i.is_excluded("node_modules/x"));
        assert!(!i.is_excluded("src/main.c"));
        let j = m("docs\n!docs/README.md\n");
        assert!(j.is_excluded("docs/a.md") && !j.is_excluded("docs/README.md"));
        assert!(m("[a-c].txt").is_excluded("b.txt"));
        assert!(!m("[!a-c].txt").is_excluded("b.txt"));
    }
}
