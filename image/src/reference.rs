//! Image references with Docker's normalization (`busybox` is
//! `docker.io/library/busybox:latest`; a first component with a `.` or `:`
//! or equal to `localhost` is a registry host), and the name an image has
//! in the local store (Docker's familiar form: `busybox`, `hello:v2`,
//! `127.0.0.1:5000/busybox`). This is the one place names are normalized.

/// A reference that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid reference {reference:?}: {reason}")]
pub struct ReferenceError {
    /// The text given.
    pub reference: String,
    /// Why it is invalid.
    pub reason: String,
}

/// A normalized image reference (`docker.io/library/busybox:latest`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Reference {
    /// Registry host[:port], e.g. `docker.io`, `127.0.0.1:5000`.
    pub registry: String,
    /// Repository path, e.g. `library/busybox`.
    pub repository: String,
    /// Tag, if any (defaults to `latest` when there is no digest).
    pub tag: Option<String>,
    /// Digest, if any.
    pub digest: Option<String>,
}

fn invalid(reference: &str, reason: &str) -> ReferenceError {
    ReferenceError {
        reference: reference.to_string(),
        reason: reason.to_string(),
    }
}

/// Whether `c` is a valid repository path component: lowercase letters,
/// digits and separators, alphanumeric at both ends.
fn valid_component(c: &str) -> bool {
    !c.is_empty()
        && c.chars()
            .all(|ch| ch.is_ascii_lowercase() || ch.is_ascii_digit() || "._-".contains(ch))
        && c.starts_with(|ch: char| ch.is_ascii_alphanumeric())
        && c.ends_with(|ch: char| ch.is_ascii_alphanumeric())
}

/// Whether `t` is a valid tag (Docker: `[\w][\w.-]{0,127}`).
fn valid_tag(t: &str) -> bool {
    !t.is_empty()
        && t.len() <= 128
        && t.chars()
            .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c))
        && !t.starts_with(['.', '-'])
}

impl Reference {
    /// Parses and normalizes with Docker's rules.
    pub fn parse(s: &str) -> Result<Self, ReferenceError> {
        if s.is_empty() {
            return Err(invalid(s, "empty"));
        }
        let (rest, digest) = match s.split_once('@') {
            Some((r, d)) => {
                let hex = d
                    .strip_prefix("sha256:")
                    .ok_or_else(|| invalid(s, "digest must be sha256:<hex>"))?;
                if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
                    return Err(invalid(s, "digest must be sha256: and 64 hex digits"));
                }
                (r, Some(d.to_string()))
            }
            None => (s, None),
        };
        let (name, tag) = match rest.rsplit_once(':') {
            Some((n, t)) if !t.contains('/') => (n, Some(t.to_string())),
            _ => (rest, None),
        };
        if tag.as_deref().is_some_and(|t| !valid_tag(t)) {
            return Err(invalid(s, "invalid tag"));
        }
        let (registry, repository) = match name.split_once('/') {
            Some((first, path)) if first.contains(['.', ':']) || first == "localhost" => {
                (first.to_string(), path.to_string())
            }
            _ => (String::from("docker.io"), name.to_string()),
        };
        let repository = if registry == "docker.io" && !repository.contains('/') {
            format!("library/{repository}")
        } else {
            repository
        };
        if !repository.split('/').all(valid_component) {
            return Err(invalid(
                s,
                "repository names must be lowercase letters, digits and separators",
            ));
        }
        let tag = match (&tag, &digest) {
            (None, None) => Some(String::from("latest")),
            _ => tag,
        };
        Ok(Self {
            registry,
            repository,
            tag,
            digest,
        })
    }

    /// The tag or digest to request a manifest by.
    pub fn manifest_ref(&self) -> &str {
        self.digest
            .as_deref()
            .or(self.tag.as_deref())
            .unwrap_or("latest")
    }

    /// The name the image has in the local store: Docker's familiar form,
    /// with a `:latest` tag left out (`hello`, `hello:v2`,
    /// `127.0.0.1:5000/busybox`).
    pub fn store_name(&self) -> String {
        let mut name = self.to_string();
        if let Some(rest) = name.strip_prefix("docker.io/") {
            name = rest.strip_prefix("library/").unwrap_or(rest).to_string();
        }
        match name.strip_suffix(":latest") {
            Some(short) if self.digest.is_none() => short.to_string(),
            _ => name,
        }
    }
}

/// A store name split into repository and tag, `latest` when it has none
/// (a colon of a registry port is not a tag separator).
pub fn split_store_name(name: &str) -> (&str, &str) {
    match name.rsplit_once(':') {
        Some((repo, tag)) if !tag.contains('/') => (repo, tag),
        _ => (name, "latest"),
    }
}

/// The shortest image id prefix accepted as a reference (Docker's short
/// id is twelve hex digits).
pub const MIN_ID_PREFIX: usize = 12;

/// The hex digits of an image id or id prefix, as Docker accepts them:
/// twelve to sixty-four lowercase hex digits, with or without `sha256:`
/// (`4f1c3a…`, `sha256:4f1c3a…`). `None` for anything else.
pub fn id_prefix(text: &str) -> Option<&str> {
    let hex = text.strip_prefix("sha256:").unwrap_or(text);
    (hex.len() >= MIN_ID_PREFIX
        && hex.len() <= 64
        && hex
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)))
    .then_some(hex)
}

impl std::fmt::Display for Reference {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.registry, self.repository)?;
        if let Some(t) = &self.tag {
            write!(f, ":{t}")?;
        }
        if let Some(d) = &self.digest {
            write!(f, "@{d}")?;
        }
        Ok(())
    }
}

impl std::str::FromStr for Reference {
    type Err = ReferenceError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalizes_as_docker() {
        let r = Reference::parse("busybox").unwrap();
        assert_eq!(r.to_string(), "docker.io/library/busybox:latest");
        let r = Reference::parse("127.0.0.1:5000/busybox").unwrap();
        assert_eq!(
            (r.registry.as_str(), r.repository.as_str(), r.tag.as_deref()),
            ("127.0.0.1:5000", "busybox", Some("latest"))
        );
        let d = format!("sha256:{}", "a".repeat(64));
        let r = Reference::parse(&format!("localhost/a/b:1@{d}")).unwrap();
        assert_eq!(
            (
                r.registry.as_str(),
                r.repository.as_str(),
                r.tag.as_deref(),
                r.digest.as_deref()
            ),
            ("localhost", "a/b", Some("1"), Some(d.as_str()))
        );
        assert_eq!(
            Reference::parse("user/app:v2").unwrap().to_string(),
            "docker.io/user/app:v2"
        );
        for bad in ["", "UPPER", "a:b:c", "x@sha256:1", "a/:t", "repo:-bad"] {
            assert!(Reference::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn parsing_what_is_shown_gives_the_same_reference() {
        let d = format!("sha256:{}", "b".repeat(64));
        for text in [
            "busybox",
            "user/app:v2",
            "127.0.0.1:5000/team/app:1",
            &format!("localhost/a@{d}"),
        ] {
            let r = Reference::parse(text).unwrap();
            assert_eq!(Reference::parse(&r.to_string()).unwrap(), r, "{text}");
            assert_eq!(Reference::parse(&r.store_name()).unwrap(), r, "{text}");
        }
    }

    #[test]
    fn store_names_are_dockers_familiar_form() {
        let name = |s: &str| Reference::parse(s).unwrap().store_name();
        assert_eq!(name("docker.io/library/busybox:latest"), "busybox");
        assert_eq!(name("hello:v2"), "hello:v2");
        assert_eq!(name("user/app"), "user/app");
        assert_eq!(
            name("127.0.0.1:5000/busybox:latest"),
            "127.0.0.1:5000/busybox"
        );
        let d = format!("sha256:{}", "c".repeat(64));
        assert_eq!(name(&format!("busybox@{d}")), format!("busybox@{d}"));
    }

    #[test]
    fn image_ids_are_twelve_to_sixty_four_hex_digits() {
        let full = "a".repeat(64);
        assert_eq!(id_prefix(&full), Some(full.as_str()));
        assert_eq!(id_prefix(&format!("sha256:{full}")), Some(full.as_str()));
        assert_eq!(id_prefix("0123456789ab"), Some("0123456789ab"));
        for not_an_id in ["0123456789a", "busybox", "0123456789AB", &"a".repeat(65)] {
            assert_eq!(id_prefix(not_an_id), None, "{not_an_id}");
        }
    }

    #[test]
    fn store_names_split_into_repository_and_tag() {
        assert_eq!(split_store_name("hello"), ("hello", "latest"));
        assert_eq!(split_store_name("hello:v2"), ("hello", "v2"));
        assert_eq!(
            split_store_name("127.0.0.1:5000/busybox"),
            ("127.0.0.1:5000/busybox", "latest")
        );
        assert_eq!(
            split_store_name("127.0.0.1:5000/busybox:1"),
            ("127.0.0.1:5000/busybox", "1")
        );
    }
}
