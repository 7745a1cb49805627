//! The cache format, version 1: the JSON config blob of the cache manifest
//! (see the crate docs for the whole artifact), its reading with every
//! check a reader needs before trusting it, and its writing.

use std::collections::BTreeMap;

use rbuild_cache::{BuildStep, CacheKey, KeyIngredients};
use serde::{Deserialize, Serialize};

use crate::error::CacheError;

/// The media type of the cache config blob (the manifest's `config`).
pub const CONFIG_MEDIA_TYPE: &str = "application/vnd.rbuild.cache.config.v1+json";

/// The media type BuildKit gives its own cache config (`moby.buildkit`
/// caches): recognized only to say that such a cache is foreign.
pub const BUILDKIT_CONFIG_MEDIA_TYPE: &str = "application/vnd.buildkit.cacheconfig.v0";

/// The format version this rbuild writes and reads.
pub const FORMAT_VERSION: u32 = 1;

/// The cache config: every layer blob the cache holds, and every cache
/// key with the layers of its result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CacheConfig {
    /// [`FORMAT_VERSION`] when written; another version is not read.
    pub version: u32,
    /// The layer blobs, in the order of the manifest's `layers` (the same
    /// digests and sizes).
    pub layers: Vec<CacheLayer>,
    /// One entry per cache key, sorted by key.
    pub records: Vec<CacheEntry>,
    /// The build steps whose records carry ingredients: identity (stage,
    /// ordinal, platform), instruction text and key, so that a build
    /// whose store has no previous build of a step explains its miss
    /// against this cache. Absent in caches written before them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub steps: Vec<BuildStep>,
}

/// One layer blob of the cache.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CacheLayer {
    /// `sha256:` of the blob as stored (compressed or not).
    pub digest: String,
    /// The blob's size in bytes.
    pub size: u64,
    /// The blob's media type (its compression).
    pub media_type: String,
    /// `sha256:` of the uncompressed tar (the image config's diff_id).
    pub diff_id: String,
}

/// A cache key and its result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CacheEntry {
    /// The key (machine-independent: see the solver's keys).
    pub key: CacheKey,
    /// The result's filesystem: indexes into [`CacheConfig::layers`],
    /// bottom layer first (base image layers included). A step's parent
    /// chain is its layers less the last when it `added` one.
    pub layers: Vec<usize>,
    /// Whether the step added a layer of its own.
    pub added: bool,
    /// When the result was first made (Unix seconds): the image history's
    /// `created`, so that a build from the cache writes the same image.
    pub created: i64,
    /// What the key was hashed from (checksums and digests only: no file
    /// names, no file contents), for explaining a miss.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ingredients: Option<KeyIngredients>,
    /// The content key the same result is recorded under too (a copy from
    /// a stage keyed on the files it takes, and the steps on top of it):
    /// that record is in the cache as well, and an export of a build that
    /// found this one holds both.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_key: Option<CacheKey>,
}

impl CacheConfig {
    /// The config as written: canonical JSON (sorted keys, no spaces), so
    /// that the same cache is the same blob.
    pub fn to_bytes(&self) -> Vec<u8> {
        rbuild_image::json::to_canonical_json(self)
    }

    /// Reads a config and checks it against the manifest's layer
    /// descriptors `(digest, size)`: the version, every digest, every layer
    /// index. `what` names the cache in errors.
    pub fn parse(
        bytes: &[u8],
        manifest_layers: &[(String, u64)],
        what: &str,
    ) -> Result<Self, CacheError> {
        let malformed = |message: String| CacheError::Malformed {
            what: what.to_string(),
            message,
        };
        let config: CacheConfig =
            serde_json::from_slice(bytes).map_err(|e| malformed(format!("config: {e}")))?;
        config.check(manifest_layers, what)?;
        Ok(config)
    }

    /// Checks a config against the manifest's layer descriptors `(digest,
    /// size)`: the version, every digest, every layer index.
    pub fn check(&self, manifest_layers: &[(String, u64)], what: &str) -> Result<(), CacheError> {
        let malformed = |message: String| CacheError::Malformed {
            what: what.to_string(),
            message,
        };
        let config = self;
        if config.version != FORMAT_VERSION {
            return Err(malformed(format!(
                "format version {} (this rbuild reads {FORMAT_VERSION})",
                config.version
            )));
        }
        let listed: Vec<(String, u64)> = (config.layers.iter())
            .map(|l| (l.digest.clone(), l.size))
            .collect();
        if listed != manifest_layers {
            return Err(malformed(String::from(
                "the config's layers are not the manifest's",
            )));
        }
        for layer in &config.layers {
            for digest in [&layer.digest, &layer.diff_id] {
                if !is_sha256(digest) {
                    return Err(malformed(format!("bad digest {digest:?}")));
                }
            }
        }
        let mut seen = BTreeMap::new();
        for entry in &config.records {
            if let Some(&bad) = entry.layers.iter().find(|&&l| l >= config.layers.len()) {
                return Err(malformed(format!("key {} names layer {bad}", entry.key)));
            }
            if seen.insert(&entry.key, ()).is_some() {
                return Err(malformed(format!("key {} is listed twice", entry.key)));
            }
        }
        Ok(())
    }
}

/// Whether `text` is `sha256:` and 64 lowercase hex digits.
pub fn is_sha256(text: &str) -> bool {
    text.strip_prefix("sha256:").is_some_and(|hex| {
        hex.len() == 64
            && hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn digest(c: char) -> String {
        format!("sha256:{}", c.to_string().repeat(64))
    }

    fn config() -> CacheConfig {
        CacheConfig {
            version: FORMAT_VERSION,
            layers: vec![CacheLayer {
                digest: digest('a'),
                size: 10,
                media_type: String::from("application/vnd.oci.image.layer.v1.tar+zstd"),
                diff_id: digest('b'),
            }],
            records: vec![CacheEntry {
                key: CacheKey::parse(&"c".repeat(64)).unwrap(),
                layers: vec![0],
                added: true,
                created: 5,
                ingredients: None,
                content_key: None,
            }],
            steps: Vec::new(),
        }
    }

    #[test]
    fn a_config_round_trips_against_its_manifest_layers() {
        let c = config();
        let listed = [(digest('a'), 10)];
        assert_eq!(CacheConfig::parse(&c.to_bytes(), &listed, "t").unwrap(), c);
        // Another size in the manifest than in the config: refused.
        let err = CacheConfig::parse(&c.to_bytes(), &[(digest('a'), 11)], "t").unwrap_err();
        assert!(err.to_string().contains("not the manifest's"), "{err}");
    }

    #[test]
    fn bad_versions_indexes_digests_and_duplicates_are_refused() {
        let listed = [(digest('a'), 10)];
        let mut v2 = config();
        v2.version = 2;
        let mut out_of_range = config();
        out_of_range.records[0].layers = vec![1];
        let mut bad_diff = config();
        bad_diff.layers[0].diff_id = String::from("sha256:../x");
        let mut twice = config();
        twice.records.push(twice.records[0].clone());
        for (bad, expected) in [
            (v2, "format version 2"),
            (out_of_range, "names layer 1"),
            (bad_diff, "bad digest"),
            (twice, "listed twice"),
        ] {
            let err = CacheConfig::parse(&bad.to_bytes(), &listed, "t").unwrap_err();
            assert!(err.to_string().contains(expected), "{err}");
        }
        let err = CacheConfig::parse(b"{\"version\":1}", &[], "t").unwrap_err();
        assert!(err.to_string().contains("config:"), "{err}");
    }
}
