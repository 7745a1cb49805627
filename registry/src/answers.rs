//! The registry's JSON answers read as pure functions of their bytes (an
//! index's platform choice, an image manifest, a token answer), so that
//! they can be fuzzed without a network: whatever the bytes, an answer or
//! an error, never a panic.

use std::time::Duration;

use crate::Platform;

/// How long a token lives when the token service does not say, and at
/// least (as docker does: shorter `expires_in` values are not trusted).
pub const MIN_TOKEN_LIFETIME: Duration = Duration::from_secs(60);

/// The longest a token is kept, whatever its `expires_in` says: a day
/// (`Instant::now()` plus an unbounded `expires_in` would overflow).
pub const MAX_TOKEN_LIFETIME: Duration = Duration::from_secs(86_400);

/// Why an answer is unusable.
#[derive(Debug, thiserror::Error)]
pub enum AnswerError {
    /// Not the JSON document expected.
    #[error("bad {what}: {source}")]
    Json {
        /// `manifest`, `image manifest` or `token answer`.
        what: &'static str,
        /// The parser's complaint.
        #[source]
        source: serde_json::Error,
    },
    /// An index without an image for the platform.
    #[error("no image for platform {wanted} in the index; it has: {}", if available.is_empty() { String::from("no platforms") } else { available.join(", ") })]
    NoPlatform {
        /// The platform asked for (`linux/s390x`).
        wanted: String,
        /// The platforms the index names, in its order.
        available: Vec<String>,
    },
    /// An index entry without a digest.
    #[error("index entry without digest")]
    NoDigest,
    /// A token answer without a token.
    #[error("the token service returned no token")]
    NoToken,
}

/// For an index (a document with `manifests`), the digest of the manifest
/// for `platform`, as containerd's `platforms.Only` chooses (both sides
/// normalised): the exact platform first, else the same OS and
/// architecture when one side names no variant, else for `arm` a lower
/// variant (`v7` runs `v6` images); `None` for a document that is not an
/// index.
pub fn platform_manifest(bytes: &[u8], platform: &Platform) -> Result<Option<String>, AnswerError> {
    let doc: IndexAnswer = serde_json::from_slice(bytes).map_err(|source| AnswerError::Json {
        what: "manifest",
        source,
    })?;
    let Some(list) = doc.manifests else {
        return Ok(None);
    };
    let entries: Vec<(Platform, &IndexEntry)> = list
        .iter()
        // BuildKit's attestation manifests say `unknown/unknown`.
        .filter(|m| !matches!(m.platform.architecture.as_str(), "" | "unknown"))
        .map(|m| {
            let p = &m.platform;
            let os = if p.os.is_empty() { "linux" } else { &p.os };
            let variant = p.variant.as_deref().unwrap_or("");
            (Platform::new(os, &p.architecture, variant), m)
        })
        .collect();
    let same_machine =
        |p: &Platform| p.os == platform.os && p.architecture == platform.architecture;
    let chosen = entries
        .iter()
        .find(|(p, _)| p == platform)
        .or_else(|| {
            entries.iter().find(|(p, _)| {
                same_machine(p) && (p.variant.is_none() || platform.variant.is_none())
            })
        })
        .or_else(|| {
            let wanted = arm_variant(platform)?;
            entries
                .iter()
                .filter(|(p, _)| same_machine(p))
                .filter_map(|e| Some((arm_variant(&e.0)?, e)))
                .filter(|(v, _)| *v <= wanted)
                .max_by_key(|(v, _)| *v)
                .map(|(_, e)| e)
        })
        .ok_or_else(|| AnswerError::NoPlatform {
            wanted: platform.to_string(),
            available: entries.iter().map(|(p, _)| p.to_string()).collect(),
        })?;
    chosen
        .1
        .digest
        .clone()
        .map(Some)
        .ok_or(AnswerError::NoDigest)
}

/// The number of an `arm` platform's variant (`v7` → 7).
fn arm_variant(p: &Platform) -> Option<u32> {
    if p.architecture != "arm" {
        return None;
    }
    p.variant.as_deref()?.strip_prefix('v')?.parse().ok()
}

/// A manifest answer as far as choosing a platform goes: an index has
/// `manifests`, an image manifest does not. Entries are read leniently
/// (only what the choice needs), as registries write them.
#[derive(serde::Deserialize)]
struct IndexAnswer {
    manifests: Option<Vec<IndexEntry>>,
}

/// One entry of an index.
#[derive(serde::Deserialize)]
struct IndexEntry {
    digest: Option<String>,
    #[serde(default)]
    platform: EntryPlatform,
}

/// An entry's platform (empty fields when it names none).
#[derive(Default, serde::Deserialize)]
struct EntryPlatform {
    #[serde(default)]
    os: String,
    #[serde(default)]
    architecture: String,
    variant: Option<String>,
}

/// An image manifest.
pub fn image_manifest(bytes: &[u8]) -> Result<oci_spec::image::ImageManifest, AnswerError> {
    serde_json::from_slice(bytes).map_err(|source| AnswerError::Json {
        what: "image manifest",
        source,
    })
}

/// A token answer: the token and how long to use it (its `expires_in`,
/// between [`MIN_TOKEN_LIFETIME`] and [`MAX_TOKEN_LIFETIME`], less a tenth
/// as a margin for clocks that disagree).
pub fn token(bytes: &[u8]) -> Result<(String, Duration), AnswerError> {
    #[derive(serde::Deserialize)]
    struct TokenAnswer {
        token: Option<String>,
        access_token: Option<String>,
        expires_in: Option<serde_json::Value>,
    }
    let t: TokenAnswer = serde_json::from_slice(bytes).map_err(|source| AnswerError::Json {
        what: "token answer",
        source,
    })?;
    let lifetime = t
        .expires_in
        .as_ref()
        .and_then(serde_json::Value::as_u64)
        .map_or(MIN_TOKEN_LIFETIME, Duration::from_secs)
        .clamp(MIN_TOKEN_LIFETIME, MAX_TOKEN_LIFETIME)
        .mul_f32(0.9);
    let token = t.token.or(t.access_token).ok_or(AnswerError::NoToken)?;
    Ok((token, lifetime))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn amd64() -> Platform {
        Platform {
            os: String::from("linux"),
            architecture: String::from("amd64"),
            variant: None,
        }
    }

    #[test]
    fn an_index_yields_the_platform_digest() {
        let index = br#"{"manifests":[{"digest":"sha256:a","platform":{"os":"linux","architecture":"arm64"}},{"digest":"sha256:b","platform":{"os":"linux","architecture":"amd64"}}]}"#;
        assert_eq!(
            platform_manifest(index, &amd64()).unwrap().as_deref(),
            Some("sha256:b")
        );
        assert!(
            platform_manifest(br#"{"layers":[]}"#, &amd64())
                .unwrap()
                .is_none()
        );
        assert!(platform_manifest(br#"{"manifests":[]}"#, &amd64()).is_err());
        assert!(platform_manifest(b"[", &amd64()).is_err());
        let no_digest = br#"{"manifests":[{"platform":{"os":"linux","architecture":"amd64"}}]}"#;
        assert!(matches!(
            platform_manifest(no_digest, &amd64()),
            Err(AnswerError::NoDigest)
        ));
        let variants = br#"{"manifests":[{"digest":"sha256:6","platform":{"os":"linux","architecture":"arm","variant":"v6"}},{"digest":"sha256:7","platform":{"os":"linux","architecture":"arm","variant":"v7"}},{"digest":"sha256:8","platform":{"os":"linux","architecture":"arm64","variant":"v8"}}]}"#;
        let pick = |s: &str| {
            platform_manifest(variants, &Platform::parse(s).unwrap())
                .unwrap()
                .unwrap()
        };
        assert_eq!(pick("linux/arm/v7"), "sha256:7", "the variant is preferred");
        assert_eq!(pick("linux/arm/v8"), "sha256:7", "a lower arm variant runs");
        assert_eq!(pick("linux/arm/v6"), "sha256:6");
        assert_eq!(pick("arm64"), "sha256:8", "arm64/v8 is arm64");
        assert!(platform_manifest(variants, &Platform::parse("linux/arm/v5").unwrap()).is_err());
    }

    #[test]
    fn a_missing_platform_lists_what_the_index_has() {
        let index = br#"{"manifests":[{"digest":"sha256:a","platform":{"os":"linux","architecture":"arm64","variant":"v8"}},{"digest":"sha256:b","platform":{"os":"linux","architecture":"amd64"}},{"digest":"sha256:c","platform":{"os":"unknown","architecture":"unknown"}}]}"#;
        let e = platform_manifest(index, &Platform::parse("linux/s390x").unwrap())
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "no image for platform linux/s390x in the index; it has: linux/arm64, linux/amd64"
        );
    }

    #[test]
    fn tokens_live_at_least_a_minute() {
        let (t, life) = token(br#"{"token":"x","expires_in":5}"#).unwrap();
        assert_eq!((t.as_str(), life), ("x", MIN_TOKEN_LIFETIME.mul_f32(0.9)));
        let (t, life) =
            token(br#"{"access_token":"y","expires_in":18446744073709551615}"#).unwrap();
        assert_eq!((t.as_str(), life), ("y", MAX_TOKEN_LIFETIME.mul_f32(0.9)));
        // Used as `Instant::now() + life`: must not overflow.
        let _ = std::time::Instant::now() + life;
        assert!(matches!(token(b"{}"), Err(AnswerError::NoToken)));
    }
}
