//! Import: each `--cache-from` source's manifest and config are read up
//! front and checked; the layers stay where they are ([`Layer::Blob`]s
//! naming the source) until the solver needs them. A source that cannot
//! be used is an error for the caller to warn about, never a failed build.

use std::collections::HashMap;
use std::sync::Mutex;

use oci_spec::image::ImageManifest;
use rbuild_cache::{BlobInfo, CacheKey, KeyIngredients, Store};
use rbuild_image::manifest::parse_manifest;
use rbuild_image::media;
use rbuild_registry::{Client, MAX_MANIFEST_BYTES, Platform, Reference};
use rbuild_solver::{
    FailedBlob, ImportedCache, ImportedResult, ImportedStep, LAYOUT_PREFIX, Layer,
};

use crate::error::{CacheError, io_err};
use crate::format::{CONFIG_MEDIA_TYPE, CacheConfig};
use crate::inline;
use crate::layout::Layout;
use crate::spec::CacheSource;

/// The results of every readable source, the first source's first.
#[derive(Debug)]
pub struct ImportedCaches {
    store: Store,
    /// Key → (index into `mounts`, result).
    entries: HashMap<CacheKey, (usize, ImportedResult)>,
    /// Per source: the `registry/repository` its blobs can be mounted
    /// from, for a registry source.
    mounts: Vec<Option<String>>,
    /// The steps the sources recorded, with their records' ingredients.
    steps: Vec<ImportedStep>,
    /// Keys of this build found under a content key of the sources (see
    /// [`ImportedCache::alias`]): key → (content key, its ingredients).
    aliases: Mutex<HashMap<CacheKey, (CacheKey, KeyIngredients)>>,
}

impl ImportedCaches {
    /// How many keys the sources hold together.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether no source holds any key.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The steps the sources recorded (the first source's first), each
    /// with its record's ingredients: what a miss is explained with when
    /// the store has no previous build of the step.
    pub fn steps(&self) -> &[ImportedStep] {
        &self.steps
    }

    /// Whether `failed` is a layer blob of an imported cache, from where
    /// the cache names it (a failed fetch of one: gone, or not the bytes
    /// its digest says).
    pub fn holds_blob(&self, failed: &FailedBlob) -> bool {
        (self.entries.values())
            .flat_map(|(_, r)| &r.layers)
            .any(|l| match l {
                Layer::Blob {
                    reference, blob, ..
                } => blob.digest == failed.digest && *reference == failed.source,
                Layer::Snapshot(_) => false,
            })
    }
}

impl ImportedCache for ImportedCaches {
    fn lookup(&self, key: &CacheKey) -> Option<ImportedResult> {
        if let Some((source, result)) = self.entries.get(key) {
            return Some(self.found(*source, result));
        }
        let (found, ingredients) = self.aliases.lock().expect("poisoned").get(key)?.clone();
        let (source, result) = self.entries.get(&found)?;
        Some(ImportedResult {
            ingredients: Some(ingredients),
            content_key: Some(found),
            ..self.found(*source, result)
        })
    }

    fn alias(&self, key: &CacheKey, found: &CacheKey, ingredients: &KeyIngredients) {
        let mut aliases = self.aliases.lock().expect("poisoned");
        aliases.insert(key.clone(), (found.clone(), ingredients.clone()));
    }
}

impl ImportedCaches {
    /// `result`, found in source `source`.
    fn found(&self, source: usize, result: &ImportedResult) -> ImportedResult {
        if let Some(repository) = &self.mounts[source] {
            // A push to this registry mounts these blobs instead of
            // fetching and uploading them.
            for layer in &result.layers {
                if let Layer::Blob { blob, .. } = layer {
                    // Only an optimization: a push without it uploads.
                    let _ = self.store.add_blob_source(&blob.digest, repository);
                }
            }
        }
        result.clone()
    }
}

/// Reads every source; the sources that failed come back as errors (with
/// what was readable still imported).
pub async fn import(
    store: &Store,
    client: &Client,
    platform: &Platform,
    sources: &[CacheSource],
) -> (ImportedCaches, Vec<CacheError>) {
    let mut caches = ImportedCaches {
        store: store.clone(),
        entries: HashMap::new(),
        mounts: Vec::new(),
        steps: Vec::new(),
        aliases: Mutex::default(),
    };
    let mut errors = Vec::new();
    let loaded = futures::future::join_all(sources.iter().map(|s| load(client, platform, s))).await;
    for result in loaded {
        match result {
            Ok(source) => caches.add(source),
            Err(e) => errors.push(e),
        }
    }
    (caches, errors)
}

/// One source, read and checked.
struct Loaded {
    /// What a [`Layer::Blob`] of it names as where to fetch from.
    reference: String,
    /// Its `registry/repository`, for a registry.
    mount: Option<String>,
    config: CacheConfig,
}

impl ImportedCaches {
    fn add(&mut self, source: Loaded) {
        let index = self.mounts.len();
        self.mounts.push(source.mount);
        let layers: Vec<Layer> = (source.config.layers.iter())
            .map(|l| Layer::Blob {
                reference: source.reference.clone(),
                blob: BlobInfo {
                    digest: l.digest.clone(),
                    size: l.size,
                },
                media_type: l.media_type.clone(),
                diff_id: l.diff_id.clone(),
            })
            .collect();
        let recorded: HashMap<&CacheKey, &KeyIngredients> = (source.config.records.iter())
            .filter_map(|e| Some((&e.key, e.ingredients.as_ref()?)))
            .collect();
        for step in &source.config.steps {
            if let Some(&ingredients) = recorded.get(&step.key) {
                self.steps.push(ImportedStep {
                    step: step.clone(),
                    ingredients: ingredients.clone(),
                    source: source.reference.clone(),
                });
            }
        }
        for entry in source.config.records {
            let result = ImportedResult {
                layers: entry.layers.iter().map(|&i| layers[i].clone()).collect(),
                added: entry.added,
                created: entry.created,
                ingredients: entry.ingredients,
                content_key: entry.content_key,
            };
            self.entries.entry(entry.key).or_insert((index, result));
        }
    }
}

async fn load(
    client: &Client,
    platform: &Platform,
    source: &CacheSource,
) -> Result<Loaded, CacheError> {
    match source {
        CacheSource::Registry { reference, .. } => load_registry(client, platform, reference).await,
        CacheSource::Local { dir, tag } => {
            let (dir, tag) = (dir.clone(), tag.clone());
            tokio::task::spawn_blocking(move || load_layout(&Layout::new(&dir), &tag))
                .await
                .map_err(|e| CacheError::Malformed {
                    what: String::from("cache import"),
                    message: e.to_string(),
                })?
        }
    }
}

async fn load_registry(
    client: &Client,
    platform: &Platform,
    text: &str,
) -> Result<Loaded, CacheError> {
    let reference = Reference::parse(text).map_err(rbuild_registry::RegistryError::from)?;
    let what = reference.to_string();
    let pulled = client
        .pull_manifest(&reference, platform)
        .await
        .map_err(|e| match e {
            rbuild_registry::RegistryError::Status { status: 404, .. } => {
                CacheError::Missing { what: what.clone() }
            }
            other => other.into(),
        })?;
    let manifest = &pulled.manifest;
    let config_type = manifest.config().media_type().to_string();
    let config_digest = manifest.config().digest().to_string();
    let image = [media::OCI_CONFIG, media::DOCKER_CONFIG].contains(&config_type.as_str());
    if !image {
        checked_config(manifest, &what)?;
    }
    let mut bytes = Vec::new();
    client
        .pull_config(&reference, &config_digest, &mut bytes)
        .await?;
    let config = match image {
        // An image: its config may carry an inline cache.
        true => inline::from_image(manifest, &bytes, &what)?,
        false => CacheConfig::parse(&bytes, &manifest_layers(manifest), &what)?,
    };
    Ok(Loaded {
        mount: Some(format!("{}/{}", reference.registry, reference.repository)),
        reference: what,
        config,
    })
}

fn load_layout(layout: &Layout, tag: &str) -> Result<Loaded, CacheError> {
    let dir = std::fs::canonicalize(layout.dir()).map_err(io_err("open", layout.dir()))?;
    let what = format!("{}:{tag}", dir.display());
    let layout = Layout::new(&dir);
    let manifest = layout
        .resolve(tag)?
        .ok_or_else(|| CacheError::Missing { what: what.clone() })?;
    let limit = MAX_MANIFEST_BYTES as u64;
    let bytes = layout.read_blob(manifest.digest().as_ref(), limit)?;
    let manifest = parse_manifest(&bytes, &what).map_err(|e| CacheError::Malformed {
        what: what.clone(),
        message: e.to_string(),
    })?;
    let config_digest = checked_config(&manifest, &what)?;
    let bytes = layout.read_blob(&config_digest, limit)?;
    let config = CacheConfig::parse(&bytes, &manifest_layers(&manifest), &what)?;
    // Local blobs are cheap to check in full, so a damaged cache is
    // refused here rather than failing a step later.
    for layer in &config.layers {
        layout.verify_blob(&layer.digest)?;
    }
    Ok(Loaded {
        reference: format!("{LAYOUT_PREFIX}{}", dir.display()),
        mount: None,
        config,
    })
}

/// The digest of the manifest's config, if it is an rbuild cache config.
fn checked_config(manifest: &ImageManifest, what: &str) -> Result<String, CacheError> {
    let media_type = manifest.config().media_type().to_string();
    if media_type != CONFIG_MEDIA_TYPE {
        return Err(CacheError::Foreign {
            what: what.to_string(),
            media_type,
        });
    }
    Ok(manifest.config().digest().to_string())
}

fn manifest_layers(manifest: &ImageManifest) -> Vec<(String, u64)> {
    (manifest.layers().iter())
        .map(|d| (d.digest().to_string(), d.size()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::{CacheEntry, CacheLayer, FORMAT_VERSION};

    fn key(c: char) -> CacheKey {
        CacheKey::parse(&c.to_string().repeat(64)).unwrap()
    }

    /// Caches of one source holding key 'a' (linked to content key 'c',
    /// also held) on one layer blob.
    fn caches(dir: &std::path::Path) -> ImportedCaches {
        let mut caches = ImportedCaches {
            store: Store::open(dir).unwrap(),
            entries: HashMap::new(),
            mounts: Vec::new(),
            steps: Vec::new(),
            aliases: Mutex::default(),
        };
        let entry = |k: char, content_key: Option<CacheKey>| CacheEntry {
            key: key(k),
            layers: vec![0],
            added: true,
            created: 1,
            ingredients: None,
            content_key,
        };
        caches.add(Loaded {
            reference: String::from("registry.example/cache:main"),
            mount: None,
            config: CacheConfig {
                version: FORMAT_VERSION,
                layers: vec![CacheLayer {
                    digest: format!("sha256:{}", "1".repeat(64)),
                    size: 3,
                    media_type: String::from("application/vnd.oci.image.layer.v1.tar+zstd"),
                    diff_id: format!("sha256:{}", "2".repeat(64)),
                }],
                records: vec![entry('a', Some(key('c'))), entry('c', None)],
                steps: Vec::new(),
            },
        });
        caches
    }

    #[test]
    fn a_failed_blob_is_the_caches_only_by_digest_and_source() {
        let dir = tempfile::tempdir().unwrap();
        let caches = caches(dir.path());
        let failed = |digest: char, source: &str| FailedBlob {
            digest: format!("sha256:{}", digest.to_string().repeat(64)),
            source: source.to_string(),
        };
        assert!(caches.holds_blob(&failed('1', "registry.example/cache:main")));
        assert!(!caches.holds_blob(&failed('1', "registry.example/base:latest")));
        assert!(!caches.holds_blob(&failed('9', "registry.example/cache:main")));
    }

    #[test]
    fn a_key_found_by_its_content_key_is_found_itself_afterwards() {
        let dir = tempfile::tempdir().unwrap();
        let caches = caches(dir.path());
        assert_eq!(
            caches.lookup(&key('a')).unwrap().content_key,
            Some(key('c'))
        );
        assert_eq!(caches.lookup(&key('b')), None);
        let ingredients = KeyIngredients::new("linux/amd64", "d");
        caches.alias(&key('b'), &key('c'), &ingredients);
        let found = caches.lookup(&key('b')).unwrap();
        assert_eq!(found.content_key, Some(key('c')));
        assert_eq!(found.ingredients, Some(ingredients));
        assert_eq!(found.layers, caches.lookup(&key('c')).unwrap().layers);
    }
}
