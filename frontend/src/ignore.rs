//! `.dockerignore`: patterns in file order, the last matching one decides,
//! `!` re-includes, `**` spans directories, and a pattern that matches a
//! directory excludes everything below it.

use crate::FrontendError;
use crate::quote;
use crate::wildcard::{Element, Pattern, simulate};

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

/// One component of an ignore pattern.
#[derive(Debug, Clone)]
enum Component {
    /// `**`: any number of path components, none included.
    AnyDirs,
    /// A `filepath.Match` pattern for exactly one component.
    Glob(Pattern),
}

impl Element<str> for Component {
    fn is_star(&self) -> bool {
        matches!(self, Component::AnyDirs)
    }

    fn accepts(&self, component: &str) -> bool {
        match self {
            Component::AnyDirs => false,
            Component::Glob(p) => p.matches(component),
        }
    }
}

/// Matches context paths against `.dockerignore` patterns with Docker's
/// rules, in time linear in the pattern's and the path's length (see
/// [`crate::wildcard`]).
#[derive(Debug, Clone)]
pub struct IgnoreMatcher {
    patterns: Vec<(bool, Vec<Component>)>,
}

impl IgnoreMatcher {
    /// Compiles the patterns; a malformed one (an unclosed `[`, a trailing
    /// `\`) is an error, as in Docker.
    pub fn new(patterns: &[String]) -> Result<Self, FrontendError> {
        let patterns = patterns
            .iter()
            .map(|p| {
                let (neg, p) = match p.strip_prefix('!') {
                    Some(rest) => (true, rest),
                    None => (false, p.as_str()),
                };
                let components = clean(p)
                    .split('/')
                    .map(|c| match c {
                        "**" => Some(Component::AnyDirs),
                        c => Pattern::glob(c).map(Component::Glob),
                    })
                    .collect::<Option<Vec<_>>>()
                    .ok_or_else(|| {
                        FrontendError::at(
                            ".dockerignore",
                            0,
                            0,
                            format!("syntax error in pattern {}", quote::excerpt(p)),
                        )
                    })?;
                Ok((neg, components))
            })
            .collect::<Result<_, FrontendError>>()?;
        Ok(Self { patterns })
    }

    /// Whether the context-relative path (`/`-separated, no leading `/`) is excluded.
    /// The last pattern that matches decides, so they are tried from the
    /// last; nothing is allocated (a context walk asks for every path).
    pub fn is_excluded(&self, path: &str) -> bool {
        let comps = || path.split('/').filter(|c| !c.is_empty());
        for (neg, pat) in self.patterns.iter().rev() {
            // A pattern matches the path or one of its parent directories:
            // an anchored match ending after any component.
            let (mut hit, mut prefixes) = (false, 0);
            simulate::<str, _>(pat, comps(), |ends_here| {
                hit = ends_here && prefixes > 0;
                prefixes += 1;
                !hit
            });
            if hit {
                return !neg;
            }
        }
        false
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
        assert!(m("a/**/b").is_excluded("a/b") && m("a/**/b").is_excluded("a/x/y/b/c"));
        assert!(!m("a/**/b").is_excluded("a/x/c"));
        assert!(IgnoreMatcher::new(&[String::from("[a-")]).is_err());
    }

    #[test]
    fn many_stars_are_matched_in_one_pass() {
        // Exponential for a backtracking matcher: over a minute before.
        let i = m(&format!(
            "{}a\n{}/**/{}b",
            "*".repeat(24),
            "*".repeat(500),
            "*".repeat(500)
        ));
        let started = std::time::Instant::now();
        for path in [
            "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb",
            "x/y/z/bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbc",
        ] {
            assert!(!i.is_excluded(path));
        }
        assert!(i.is_excluded("bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbba"));
        assert!(started.elapsed() < std::time::Duration::from_secs(1));
    }
}
