//! Export: the results of the given keys become a cache (see the crate
//! docs): layer blobs made once and compressed as asked, sent where they
//! are missing (a registry's blob of another repository is mounted), then
//! the config, and the manifest last.

use std::collections::{BTreeMap, HashMap};

use futures::TryStreamExt;
use oci_spec::image::Descriptor;
use rbuild_cache::{BuildStep, CacheKey, Store};
use rbuild_exporter::{Compression, ExportOptions, export_layer, recompress};
use rbuild_image::manifest::{descriptor, image_manifest};
use rbuild_image::media;
use rbuild_registry::{Client, Reference};
use rbuild_solver::{ImageResolver, ImportedCache, Layer};

use crate::error::CacheError;
use crate::format::{CONFIG_MEDIA_TYPE, CacheConfig, CacheEntry, CacheLayer, FORMAT_VERSION};
use crate::import::ImportedCaches;
use crate::layout::Layout;
use crate::spec::{CacheExport, CacheTarget};

/// How many blobs are sent at once.
const PARALLEL_UPLOADS: usize = 4;

/// What an export wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportReport {
    /// Where (the reference, or the directory and tag).
    pub target: String,
    /// How many keys the cache holds.
    pub records: usize,
    /// How many layer blobs it names.
    pub layers: usize,
    /// Their size in bytes (sent or already there).
    pub layer_bytes: u64,
    /// The cache manifest's digest.
    pub manifest: String,
}

/// What an export holds.
#[derive(Debug, Clone, Copy)]
pub struct Held<'a> {
    /// The record keys whose results it holds.
    pub keys: &'a [CacheKey],
    /// The build's steps (identity, text, key): those whose records carry
    /// ingredients are kept with them, to explain a later build's misses.
    pub steps: &'a [BuildStep],
}

/// Writes the results of the `held` keys, and their steps, as the cache
/// `spec` asks for. A key whose
/// result is neither in the store nor in `imported` is left out. Layers
/// built from snapshots are made with `epoch` (the build's
/// `SOURCE_DATE_EPOCH`), as the image's are, so a build from the cache
/// makes the same image.
pub async fn export(
    store: &Store,
    client: &Client,
    images: &ImageResolver,
    imported: Option<&ImportedCaches>,
    held: Held<'_>,
    epoch: Option<i64>,
    spec: &CacheExport,
) -> Result<ExportReport, CacheError> {
    if spec.target == CacheTarget::Inline {
        return Err(inline_refused());
    }
    let mut keys = held.keys.to_vec();
    let linked: Vec<CacheKey> = (keys.iter())
        .filter_map(|k| content_key_of(store, imported, k))
        .collect();
    keys.extend(linked);
    keys.sort();
    keys.dedup();
    let (local, elsewhere): (Vec<CacheKey>, Vec<CacheKey>) = keys.into_iter().partition(|k| {
        store
            .get_record(k)
            .ok()
            .flatten()
            .is_some_and(|r| r.snapshots.iter().all(|s| store.has_snapshot(s)))
    });
    let made = {
        let (store, spec) = (store.clone(), spec.clone());
        tokio::task::spawn_blocking(move || local_entries(&store, &local, epoch, &spec))
            .await
            .map_err(|e| CacheError::Malformed {
                what: String::from("cache export"),
                message: e.to_string(),
            })??
    };
    let mut entries: Vec<(CacheEntry, Vec<CacheLayer>)> = made;
    for key in elsewhere {
        let Some(found) = imported.and_then(|i| i.lookup(&key)) else {
            continue;
        };
        let mut layers = Vec::with_capacity(found.layers.len());
        for layer in &found.layers {
            let Layer::Blob {
                blob,
                media_type,
                diff_id,
                ..
            } = layer
            else {
                continue;
            };
            if !mountable(store, spec, &blob.digest)? {
                images.ensure_blob(layer).await?;
            }
            layers.push(CacheLayer {
                digest: blob.digest.clone(),
                size: blob.size,
                media_type: media_type.clone(),
                diff_id: diff_id.clone(),
            });
        }
        let entry = CacheEntry {
            key,
            layers: Vec::new(),
            added: found.added,
            created: found.created,
            ingredients: found.ingredients,
            content_key: found.content_key,
        };
        entries.push((entry, layers));
    }
    let config = assemble(entries, held.steps);
    write(store, client, spec, &config).await
}

/// The content key the result of `key` is recorded under too, by the
/// store or else by an imported cache: exported with it, so that a build
/// whose source stage changed but not the files a copy takes from it
/// finds the copy (and the steps on top of it) in the cache.
fn content_key_of(
    store: &Store,
    imported: Option<&ImportedCaches>,
    key: &CacheKey,
) -> Option<CacheKey> {
    match store.get_record(key).ok().flatten() {
        Some(record) => record.content_key,
        None => imported?.lookup(key)?.content_key,
    }
}

/// The entries of keys the store holds, their layers made and compressed.
fn local_entries(
    store: &Store,
    keys: &[CacheKey],
    epoch: Option<i64>,
    spec: &CacheExport,
) -> Result<Vec<(CacheEntry, Vec<CacheLayer>)>, CacheError> {
    let plain = ExportOptions {
        compression: Compression::Uncompressed,
        source_date_epoch: epoch,
        oci_mediatypes: true,
    };
    let mut made: HashMap<String, CacheLayer> = HashMap::new();
    let mut entries = Vec::with_capacity(keys.len());
    for key in keys {
        let Some(record) = store.get_record(key)? else {
            continue;
        };
        let mut layers = Vec::with_capacity(record.snapshots.len());
        for snapshot in &record.snapshots {
            if let Some(layer) = made.get(snapshot) {
                layers.push(layer.clone());
                continue;
            }
            // The image's layer (same epoch) when it was exported, so the
            // tar is written once; then compressed once per kind.
            let tar = export_layer(store, snapshot, &plain)?;
            let blob = recompress(store, &tar, spec.compression, spec.oci_mediatypes)?;
            let layer = CacheLayer {
                digest: blob.blob.digest,
                size: blob.blob.size,
                media_type: media::layer_in_family(&blob.media_type, spec.oci_mediatypes),
                diff_id: blob.diff_id,
            };
            made.insert(snapshot.clone(), layer.clone());
            layers.push(layer);
        }
        let entry = CacheEntry {
            key: key.clone(),
            layers: Vec::new(),
            added: record.added,
            created: record.created,
            ingredients: record.ingredients,
            content_key: record.content_key,
        };
        entries.push((entry, layers));
    }
    Ok(entries)
}

/// The config of `entries`: layers listed once each, in first use order;
/// entries sorted by key; the `steps` of entries with ingredients (what
/// a miss is explained with), sorted.
fn assemble(mut entries: Vec<(CacheEntry, Vec<CacheLayer>)>, steps: &[BuildStep]) -> CacheConfig {
    entries.sort_by(|a, b| a.0.key.cmp(&b.0.key));
    let explained = |key: &CacheKey| {
        (entries.binary_search_by(|(e, _)| e.key.cmp(key)))
            .is_ok_and(|i| entries[i].0.ingredients.is_some())
    };
    let mut steps: Vec<BuildStep> = (steps.iter())
        .filter(|s| explained(&s.key))
        .cloned()
        .collect();
    steps.sort_by(|a, b| {
        (&a.stage, a.ordinal, &a.platform).cmp(&(&b.stage, b.ordinal, &b.platform))
    });
    steps.dedup();
    let mut layers: Vec<CacheLayer> = Vec::new();
    let mut index: BTreeMap<String, usize> = BTreeMap::new();
    let records = entries
        .into_iter()
        .map(|(mut entry, chain)| {
            entry.layers = chain
                .into_iter()
                .map(|l| {
                    *index.entry(l.digest.clone()).or_insert_with(|| {
                        layers.push(l);
                        layers.len() - 1
                    })
                })
                .collect();
            entry
        })
        .collect();
    CacheConfig {
        version: FORMAT_VERSION,
        layers,
        records,
        steps,
    }
}

/// Whether a registry target can get blob `digest` without its bytes
/// here: the target's registry has it in some repository.
fn mountable(store: &Store, spec: &CacheExport, digest: &str) -> Result<bool, CacheError> {
    let CacheTarget::Registry {
        reference: text, ..
    } = &spec.target
    else {
        return Ok(false);
    };
    let reference = Reference::parse(text).map_err(rbuild_registry::RegistryError::from)?;
    let same = format!("{}/", reference.registry);
    Ok(store
        .blob_sources(digest)?
        .iter()
        .any(|r| r.starts_with(&same)))
}

/// Sends the blobs, then the config, then the manifest.
async fn write(
    store: &Store,
    client: &Client,
    spec: &CacheExport,
    config: &CacheConfig,
) -> Result<ExportReport, CacheError> {
    let config_bytes = config.to_bytes();
    let config_blob = store.put_blob(&config_bytes)?;
    let config_desc = descriptor(CONFIG_MEDIA_TYPE, &config_blob.digest, config_blob.size)
        .map_err(|e| malformed(&e))?;
    let layers: Vec<Descriptor> = (config.layers.iter())
        .map(|l| descriptor(&l.media_type, &l.digest, l.size))
        .collect::<Result<_, _>>()
        .map_err(|e| malformed(&e))?;
    let manifest = image_manifest(media::OCI_MANIFEST, config_desc, layers, &BTreeMap::new());
    let manifest_bytes = rbuild_image::json::to_canonical_json(&manifest);
    let blobs: Vec<String> = (config.layers.iter())
        .map(|l| l.digest.clone())
        .chain([config_blob.digest.clone()])
        .collect();
    let (target, digest) = match &spec.target {
        CacheTarget::Registry {
            reference: text, ..
        } => {
            let reference = Reference::parse(text).map_err(rbuild_registry::RegistryError::from)?;
            let here = format!("{}/{}", reference.registry, reference.repository);
            let same = format!("{}/", reference.registry);
            futures::stream::iter(blobs.iter().map(Ok::<_, CacheError>))
                .try_for_each_concurrent(PARALLEL_UPLOADS, |digest| {
                    let (reference, here, same) = (&reference, &here, &same);
                    async move {
                        let from = (store.blob_sources(digest)?.into_iter())
                            .filter(|r| r != here)
                            .find_map(|r| r.strip_prefix(same.as_str()).map(str::to_string));
                        let path = store.blob_path(digest);
                        client
                            .push_blob_from(reference, digest, &path, from.as_deref())
                            .await?;
                        store.add_blob_source(digest, here)?;
                        Ok(())
                    }
                })
                .await?;
            let digest = client
                .push_manifest(&reference, media::OCI_MANIFEST, &manifest_bytes)
                .await?;
            (reference.to_string(), digest)
        }
        CacheTarget::Local { dir, tag } => {
            let layout = Layout::new(dir);
            let (store, tag, blobs, bytes) = (store.clone(), tag.clone(), blobs, manifest_bytes);
            let target = format!("{}:{tag}", dir.display());
            let digest = tokio::task::spawn_blocking(move || {
                layout.create()?;
                for digest in &blobs {
                    layout.put_blob_file(digest, &store.blob_path(digest))?;
                }
                let digest = layout.put_blob(&bytes)?;
                let desc = descriptor(media::OCI_MANIFEST, &digest, bytes.len() as u64)
                    .map_err(|e| malformed(&e))?;
                layout.tag(&tag, &desc)?;
                Ok::<_, CacheError>(digest)
            })
            .await
            .map_err(|e| malformed(&e))??;
            (target, digest)
        }
        CacheTarget::Inline => return Err(inline_refused()),
    };
    Ok(ExportReport {
        target,
        records: config.records.len(),
        layers: config.layers.len(),
        layer_bytes: config.layers.iter().map(|l| l.size).sum(),
        manifest: digest,
    })
}

/// An inline cache is not exported: it is in the image config already.
fn inline_refused() -> CacheError {
    CacheError::Spec {
        text: String::from("type=inline"),
        message: String::from("an inline cache is written with the image config (inline_cache)"),
    }
}

fn malformed(e: &dyn std::fmt::Display) -> CacheError {
    CacheError::Malformed {
        what: String::from("cache export"),
        message: e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layer(c: char) -> CacheLayer {
        CacheLayer {
            digest: format!("sha256:{}", c.to_string().repeat(64)),
            size: 1,
            media_type: String::from("t"),
            diff_id: format!("sha256:{}", c.to_string().repeat(64)),
        }
    }

    fn entry(c: char) -> CacheEntry {
        CacheEntry {
            key: CacheKey::parse(&c.to_string().repeat(64)).unwrap(),
            layers: Vec::new(),
            added: true,
            created: 1,
            ingredients: None,
            content_key: None,
        }
    }

    #[test]
    fn shared_layers_are_listed_once_and_entries_sorted_by_key() {
        let config = assemble(
            vec![
                (entry('b'), vec![layer('1'), layer('2'), layer('3')]),
                (entry('a'), vec![layer('1'), layer('2')]),
            ],
            &[],
        );
        let keys: Vec<&str> = config.records.iter().map(|e| e.key.as_str()).collect();
        assert_eq!(keys, ["a".repeat(64), "b".repeat(64)]);
        assert_eq!(config.layers, [layer('1'), layer('2'), layer('3')]);
        assert_eq!(config.records[0].layers, [0, 1]);
        assert_eq!(config.records[1].layers, [0, 1, 2]);
    }

    #[test]
    fn only_the_steps_of_records_with_ingredients_are_kept() {
        let step = |c: char, ordinal| BuildStep {
            stage: String::from("stage-0"),
            ordinal,
            platform: String::from("linux/amd64"),
            instruction: format!("COPY {c} /"),
            key: entry(c).key,
        };
        let mut explained = entry('b');
        explained.ingredients = Some(rbuild_cache::KeyIngredients::new("linux/amd64", "d"));
        let steps = [step('b', 3), step('a', 2), step('c', 4)];
        let config = assemble(
            vec![
                (explained, vec![layer('1')]),
                (entry('a'), vec![layer('1')]),
            ],
            &steps,
        );
        // 'a' has no ingredients, 'c' is not in the cache.
        assert_eq!(config.steps, [step('b', 3)]);
    }
}
