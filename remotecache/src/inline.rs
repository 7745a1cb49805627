//! The inline cache (`--cache-to type=inline`): the records of the image's
//! own steps ride in its config under `rbuild.cache.v1` (as BuildKit's
//! `moby.buildkit.cache.v0`), their layers named by index into the image's
//! layers, so the pushed image is itself a cache source (`--cache-from
//! IMAGE`) whatever compression the push gave the layers.

use std::collections::HashMap;

use oci_spec::image::ImageManifest;
use rbuild_cache::{CacheKey, Store};
use rbuild_solver::Layer;
use serde::{Deserialize, Serialize};

use crate::error::CacheError;
use crate::format::{CacheConfig, CacheEntry, CacheLayer, FORMAT_VERSION};

/// The config field the inline cache is kept in.
pub const INLINE_FIELD: &str = "rbuild.cache.v1";

/// What the image config holds under [`INLINE_FIELD`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct InlineCache {
    /// [`FORMAT_VERSION`].
    version: u32,
    /// The entries; their `layers` index the image's layers.
    records: Vec<CacheEntry>,
}

/// The inline cache of the image whose layers are `state`, holding those
/// of `keys` (and of the content keys their records name) the store has a
/// record for whose layers are all the image's.
pub fn inline_cache(
    store: &Store,
    keys: &[CacheKey],
    state: &[Layer],
) -> Result<serde_json::Value, CacheError> {
    let position: HashMap<String, usize> = (state.iter().enumerate())
        .map(|(i, layer)| {
            let id = match layer {
                Layer::Snapshot(id) => id.clone(),
                // A layer not unpacked: its snapshot id when it is.
                Layer::Blob { blob, .. } => blob.digest.replacen("sha256:", "sha256-", 1),
            };
            (id, i)
        })
        .collect();
    let mut records = Vec::new();
    let mut keys = keys.to_vec();
    for key in keys.clone() {
        if let Some(linked) = store.get_record(&key)?.and_then(|r| r.content_key) {
            keys.push(linked);
        }
    }
    for key in &keys {
        let Some(record) = store.get_record(key)? else {
            continue;
        };
        let layers: Option<Vec<usize>> = (record.snapshots.iter())
            .map(|s| position.get(s).copied())
            .collect();
        if let Some(layers) = layers {
            records.push(CacheEntry {
                key: key.clone(),
                layers,
                added: record.added,
                created: record.created,
                ingredients: record.ingredients,
                content_key: record.content_key,
            });
        }
    }
    records.sort_by(|a, b| a.key.cmp(&b.key));
    records.dedup_by(|a, b| a.key == b.key);
    let inline = InlineCache {
        version: FORMAT_VERSION,
        records,
    };
    Ok(serde_json::to_value(inline).expect("an inline cache serializes"))
}

/// The cache an image carries inline: its manifest's layers, the diff_ids
/// of its config, and the records under [`INLINE_FIELD`].
pub fn from_image(
    manifest: &ImageManifest,
    config: &[u8],
    what: &str,
) -> Result<CacheConfig, CacheError> {
    let malformed = |message: String| CacheError::Malformed {
        what: what.to_string(),
        message,
    };
    let parsed: rbuild_image::ConfigFile =
        serde_json::from_slice(config).map_err(|e| malformed(format!("image config: {e}")))?;
    let Some(value) = parsed.inline_cache else {
        return Err(CacheError::Foreign {
            what: what.to_string(),
            media_type: format!("{} without an inline cache", manifest.config().media_type()),
        });
    };
    let inline: InlineCache =
        serde_json::from_value(value).map_err(|e| malformed(format!("inline cache: {e}")))?;
    let diff_ids = &parsed.rootfs.diff_ids;
    if diff_ids.len() != manifest.layers().len() {
        return Err(malformed(String::from(
            "the config's diff_ids are not the manifest's layers",
        )));
    }
    let config = CacheConfig {
        version: inline.version,
        layers: (manifest.layers().iter().zip(diff_ids))
            .map(|(d, diff_id)| CacheLayer {
                digest: d.digest().to_string(),
                size: d.size(),
                media_type: d.media_type().to_string(),
                diff_id: diff_id.clone(),
            })
            .collect(),
        records: inline.records,
        // An inline cache keeps no steps: the image config stays small.
        steps: Vec::new(),
    };
    let listed: Vec<(String, u64)> = (config.layers.iter())
        .map(|l| (l.digest.clone(), l.size))
        .collect();
    config.check(&listed, what)?;
    Ok(config)
}

#[cfg(test)]
mod tests {
    use rbuild_image::manifest::{descriptor, image_manifest};
    use rbuild_image::media;

    use super::*;

    #[test]
    fn an_image_config_carries_the_records_and_the_manifest_the_layers() {
        let digest = |c: char| format!("sha256:{}", c.to_string().repeat(64));
        let key = CacheKey::parse(&"d".repeat(64)).unwrap();
        let inline = InlineCache {
            version: FORMAT_VERSION,
            records: vec![CacheEntry {
                key: key.clone(),
                layers: vec![0],
                added: true,
                created: 7,
                ingredients: None,
                content_key: None,
            }],
        };
        let config = serde_json::json!({
            "architecture": "amd64", "os": "linux",
            "rootfs": {"type": "layers", "diff_ids": [digest('b')]},
            INLINE_FIELD: inline,
        });
        let layer = descriptor(media::OCI_LAYER_TAR, &digest('a'), 3).unwrap();
        let config_desc = descriptor(media::OCI_CONFIG, &digest('c'), 1).unwrap();
        let manifest = image_manifest(
            media::OCI_MANIFEST,
            config_desc,
            vec![layer],
            &Default::default(),
        );
        let bytes = serde_json::to_vec(&config).unwrap();
        let cache = from_image(&manifest, &bytes, "img").unwrap();
        assert_eq!(cache.records[0].key, key);
        assert_eq!(cache.layers[0].digest, digest('a'));
        assert_eq!(cache.layers[0].diff_id, digest('b'));
        // An image without one is foreign; a record past the layers malformed.
        let plain = serde_json::json!({"rootfs": {"type": "layers", "diff_ids": [digest('b')]}});
        let err = from_image(&manifest, &serde_json::to_vec(&plain).unwrap(), "img").unwrap_err();
        assert!(err.to_string().contains("without an inline cache"), "{err}");
        let mut bad = config.clone();
        bad[INLINE_FIELD]["records"][0]["layers"] = serde_json::json!([1]);
        let err = from_image(&manifest, &serde_json::to_vec(&bad).unwrap(), "img").unwrap_err();
        assert!(err.to_string().contains("names layer 1"), "{err}");
    }
}
