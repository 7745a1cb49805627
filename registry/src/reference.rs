//! Image references with Docker's normalization: `busybox` is
//! `docker.io/library/busybox:latest`; a first component with a `.` or `:`
//! or equal to `localhost` is a registry host.

use crate::RegistryError;

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

fn invalid(reference: &str, reason: &str) -> RegistryError {
    RegistryError::InvalidReference {
        reference: reference.to_string(),
        reason: reason.to_string(),
    }
}

impl Reference {
    /// Parses and normalizes with Docker's rules.
    pub fn parse(s: &str) -> Result<Self, RegistryError> {
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
        if let Some(t) = &tag
            && (t.is_empty()
                || t.len() > 128
                || !t
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c))
                || t.starts_with(['.', '-']))
        {
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
        let valid_component = |c: &str| {
            !c.is_empty()
                && c.chars()
                    .all(|ch| ch.is_ascii_lowercase() || ch.is_ascii_digit() || "._-".contains(ch))
                && c.starts_with(|ch: char| ch.is_ascii_alphanumeric())
                && c.ends_with(|ch: char| ch.is_ascii_alphanumeric())
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
}
