//! Images of the local store found by the name a user gives (`busybox`,
//! `docker.io/library/busybox:latest` and `busybox:latest` are one image;
//! so are its id, whole or short, and `busybox@sha256:…`): the store's
//! lookup, or say there is no such image. Every command that names a stored image goes through
//! here; listing and inspecting the store's images too.

use std::collections::BTreeMap;

use oci_spec::image::Descriptor;
use rbuild_cache::{Store, StoreError};
use rbuild_image::ConfigFile;
use rbuild_image::Platform;
use rbuild_image::manifest::{parse_index, parse_manifest};
use rbuild_image::reference::{id_prefix, split_store_name};
use rbuild_image::{ImageError, ImageManifest, Reference, ReferenceError};
use serde::Serialize;

/// Why an image was not found.
#[derive(Debug, thiserror::Error)]
pub enum LookupError {
    /// The name is not a reference.
    #[error(transparent)]
    Reference(#[from] ReferenceError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A manifest in the store is not one.
    #[error(transparent)]
    Image(#[from] ImageError),
    /// A config in the store is not JSON.
    #[error("{name}: config {digest}: {source}")]
    Config {
        /// The image's name.
        name: String,
        /// The config's digest.
        digest: String,
        /// Why.
        #[source]
        source: serde_json::Error,
    },
    /// The store has no image of that name.
    #[error("no such image: {0}")]
    NoSuchImage(String),
    /// `--platform` names a platform the image is not for.
    #[error("image {name} has no {wanted} image (it has {has})")]
    NoSuchPlatform {
        /// The image's name as given.
        name: String,
        /// The platform asked for.
        wanted: String,
        /// The platforms it has, comma-separated.
        has: String,
    },
}

/// An image of the store.
#[derive(Debug, Clone)]
pub struct LocalImage {
    /// The name it was found by (`busybox`, `hello:v2`), else (found by id
    /// or digest) its first name; `None` when it has no name.
    pub name: Option<String>,
    /// Every name of the store that points at it.
    pub names: Vec<String>,
    /// Its manifest.
    pub manifest: Descriptor,
    /// Its image id (config digest).
    pub id: String,
    /// The index its names point at, for a multi-platform image (whose
    /// `manifest` is then the host platform's, else the first).
    pub index: Option<Descriptor>,
}

/// The store's name for what a user typed (`docker.io/library/busybox` →
/// `busybox`).
pub fn store_name(text: &str) -> Result<String, ReferenceError> {
    Ok(Reference::parse(text)?.store_name())
}

/// The image `text` names in `store`: a name, `name@sha256:…`,
/// `name:tag@sha256:…` or an image id (12 to 64 hex digits, with or
/// without `sha256:`).
pub fn find(store: &Store, text: &str) -> Result<LocalImage, LookupError> {
    let Some(found) = store.find_image(text)? else {
        // Not an image: say so, or why the text is no name at all.
        return Err(match id_prefix(text) {
            Some(_) => LookupError::NoSuchImage(text.to_string()),
            None => store_name(text).map_or_else(LookupError::from, |_| {
                LookupError::NoSuchImage(text.to_string())
            }),
        });
    };
    let given = store_name(text).ok().filter(|n| found.names.contains(n));
    Ok(LocalImage {
        name: given.or_else(|| found.names.first().cloned()),
        names: found.names,
        manifest: found.manifest,
        id: found.id,
        index: found.index,
    })
}

/// The image `text` names, as [`find`]; with `platform`, that
/// platform's image of a multi-platform one (an error naming the
/// platforms it has when it has not that one), as `docker image inspect
/// --platform` and `docker history --platform` choose. A single-platform
/// image must be for `platform`.
pub fn find_for(
    store: &Store,
    text: &str,
    platform: Option<&Platform>,
) -> Result<LocalImage, LookupError> {
    let mut found = find(store, text)?;
    let Some(wanted) = platform else {
        return Ok(found);
    };
    let missing = |has: Vec<String>| LookupError::NoSuchPlatform {
        name: text.to_string(),
        wanted: wanted.to_string(),
        has: has.join(", "),
    };
    match &found.index {
        Some(index) => {
            let (entries, platforms) = index_entries(store, index)?;
            let at = platforms.iter().position(|p| *p == wanted.to_string());
            let Some(at) = at else {
                return Err(missing(platforms));
            };
            let digest = entries[at].digest().to_string();
            let manifest =
                parse_manifest(&store.read_blob(&digest)?, &format!("manifest {digest}"))?;
            found.id = manifest.config().digest().to_string();
            found.manifest = entries[at].clone();
        }
        None => {
            let config = read_config(store, text, &found.id)?;
            let own = Platform::new(
                &config.os,
                &config.architecture,
                config.variant.as_deref().unwrap_or_default(),
            );
            if own != *wanted {
                return Err(missing(vec![own.to_string()]));
            }
        }
    }
    Ok(found)
}

/// The config `digest` of the image named `text`.
fn read_config(store: &Store, text: &str, digest: &str) -> Result<ConfigFile, LookupError> {
    serde_json::from_slice(&store.read_blob(digest)?).map_err(|source| LookupError::Config {
        name: text.to_string(),
        digest: digest.to_string(),
        source,
    })
}

/// An image as `rbuild images` lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageSummary {
    /// Its name in the store; `None` for a dangling image.
    pub name: Option<String>,
    /// Its manifest's digest.
    pub digest: String,
    /// Its image id (config digest).
    pub id: String,
    /// The config's `created`, if it says.
    pub created: Option<String>,
    /// The config's labels.
    pub labels: BTreeMap<String, String>,
    /// The bytes of its config and layers, as `docker images` counts them
    /// (of every platform's, for a multi-platform image).
    pub size: u64,
    /// The platforms of a multi-platform image (`linux/amd64`, …), in
    /// its index's order; empty for a single-platform image.
    pub platforms: Vec<String>,
}

/// The manifests an index lists and their platforms (`os/arch[/variant]`).
fn index_entries(
    store: &Store,
    index: &Descriptor,
) -> Result<(Vec<Descriptor>, Vec<String>), LookupError> {
    let digest = index.digest().to_string();
    let parsed = parse_index(&store.read_blob(&digest)?, &format!("index {digest}"))?;
    let platforms = parsed
        .manifests()
        .iter()
        .map(|d| {
            d.platform().as_ref().map_or_else(
                || String::from("unknown"),
                |p| Platform::from_oci(p).to_string(),
            )
        })
        .collect();
    Ok((parsed.manifests().clone(), platforms))
}

/// The images of the store: the named ones by name, then the dangling
/// ones.
pub fn list(store: &Store) -> Result<Vec<ImageSummary>, LookupError> {
    let mut out = Vec::new();
    let named = store.images()?.into_iter().map(|(n, d)| (Some(n), d));
    let dangling = store.dangling()?.into_iter().map(|d| (None, d));
    for (name, desc) in named.chain(dangling) {
        let digest = desc.digest().to_string();
        let found = store.found(desc)?;
        let (entries, platforms) = match &found.index {
            Some(index) => index_entries(store, index)?,
            None => (vec![found.manifest.clone()], Vec::new()),
        };
        let mut size = 0;
        for entry in &entries {
            let d = entry.digest().to_string();
            let m = parse_manifest(&store.read_blob(&d)?, &format!("manifest {d}"))?;
            size += m.config().size() + m.layers().iter().map(|l| l.size()).sum::<u64>();
        }
        let id = found.id;
        let config: ConfigFile =
            serde_json::from_slice(&store.read_blob(&id)?).map_err(|source| {
                LookupError::Config {
                    name: name.clone().unwrap_or_else(|| id.clone()),
                    digest: id.clone(),
                    source,
                }
            })?;
        out.push(ImageSummary {
            name,
            digest,
            id,
            created: config.created,
            labels: config.config.labels,
            size,
            platforms,
        });
    }
    Ok(out)
}

/// What `rbuild inspect` shows of an image: `docker image inspect`'s
/// fields, plus the manifest's digest and the manifest itself.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Inspection {
    /// The image id (config digest).
    pub id: String,
    /// Its names, `repo:tag` with `latest` spelled out, as Docker lists
    /// them.
    pub repo_tags: Vec<String>,
    /// `repo@digest` of its manifest for each repository that names it.
    pub repo_digests: Vec<String>,
    /// When it was made (the config's `created`), if it says.
    pub created: Option<String>,
    /// The config's author.
    pub author: String,
    /// The config's `config` object as stored, every field of it: the
    /// image model reads only the fields it knows, and a pulled image's
    /// config may have more.
    pub config: serde_json::Value,
    /// The config's architecture.
    pub architecture: String,
    /// The config's OS.
    pub os: String,
    /// The config's `rootfs`, as Docker shows it (`Type`, `Layers`).
    #[serde(rename = "RootFS")]
    pub root_fs: RootFsView,
    /// The bytes of its layers, as `docker image inspect` counts them.
    pub size: u64,
    /// The manifest digest (rbuild's field).
    pub digest: String,
    /// The manifest (rbuild's field).
    pub manifest: ImageManifest,
    /// For a multi-platform image, its index's digest (rbuild's field);
    /// the rest describes the host platform's image (else the first), or
    /// `--platform`'s.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub index: Option<String>,
    /// For a multi-platform image, its platforms in the index's order
    /// (rbuild's field).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub platforms: Vec<String>,
}

/// One step of an image's history, as `docker history` lists it (newest
/// first).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryStep {
    /// When, if the config says.
    pub created: Option<String>,
    /// The instruction.
    pub created_by: String,
    /// The bytes of its layer as stored (0 for a step without one).
    pub size: u64,
    /// The comment.
    pub comment: String,
}

/// The history of the image `text` names (`platform`'s, see
/// [`find_for`]), newest step first, each with the size of its layer.
pub fn history(
    store: &Store,
    text: &str,
    platform: Option<&Platform>,
) -> Result<Vec<HistoryStep>, LookupError> {
    let found = find_for(store, text, platform)?;
    let digest = found.manifest.digest().to_string();
    let manifest = parse_manifest(&store.read_blob(&digest)?, &format!("manifest {digest}"))?;
    let config = read_config(store, text, &found.id)?;
    let mut layers = manifest.layers().iter();
    let mut steps: Vec<HistoryStep> = config
        .history
        .into_iter()
        .map(|h| HistoryStep {
            size: match h.empty_layer {
                true => 0,
                false => layers.next().map_or(0, |l| l.size()),
            },
            created: h.created,
            created_by: h.created_by,
            comment: h.comment,
        })
        .collect();
    steps.reverse();
    Ok(steps)
}

/// An image's layers as `docker image inspect` shows them.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct RootFsView {
    /// Always `layers`.
    #[serde(rename = "Type")]
    pub kind: String,
    /// The diff ids, bottom first.
    pub layers: Vec<String>,
}

/// The image `text` names (`platform`'s, see [`find_for`]), for
/// `rbuild inspect`.
pub fn inspect(
    store: &Store,
    text: &str,
    platform: Option<&Platform>,
) -> Result<Inspection, LookupError> {
    let found = find_for(store, text, platform)?;
    let digest = found.manifest.digest().to_string();
    let manifest = parse_manifest(
        &store.read_blob(&digest)?,
        &format!("{text}: manifest {digest}"),
    )?;
    let id = manifest.config().digest().to_string();
    let bad_config = |source| LookupError::Config {
        name: text.to_string(),
        digest: id.clone(),
        source,
    };
    let raw: serde_json::Value =
        serde_json::from_slice(&store.read_blob(&id)?).map_err(bad_config)?;
    let file: ConfigFile = serde_json::from_value(raw.clone()).map_err(bad_config)?;
    let repo_tags = found
        .names
        .iter()
        .map(|n| {
            let (repo, tag) = split_store_name(n);
            format!("{repo}:{tag}")
        })
        .collect();
    let mut repo_digests: Vec<String> = found
        .names
        .iter()
        .map(|n| format!("{}@{digest}", split_store_name(n).0))
        .collect();
    repo_digests.dedup();
    Ok(Inspection {
        repo_tags,
        repo_digests,
        created: file.created,
        author: file.author.unwrap_or_default(),
        config: raw.get("config").cloned().unwrap_or_default(),
        architecture: file.architecture,
        os: file.os,
        root_fs: RootFsView {
            kind: String::from("layers"),
            layers: file.rootfs.diff_ids,
        },
        size: manifest.layers().iter().map(|l| l.size()).sum(),
        id,
        digest,
        manifest,
        platforms: match &found.index {
            Some(index) => index_entries(store, index)?.1,
            None => Vec::new(),
        },
        index: found.index.map(|d| d.digest().to_string()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    use rbuild_image::json::to_canonical_json;
    use rbuild_image::manifest::{descriptor, image_manifest};
    use rbuild_image::media;

    /// The config of the test image (with a field the model does not know).
    const CONFIG: &[u8] = br#"{"architecture":"amd64","config":{"Cmd":["sh"],"X":1},"os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#;

    /// A store with one image tagged `busybox`: [`CONFIG`] and a 5-byte layer.
    fn store_with_busybox() -> (tempfile::TempDir, Store, Descriptor) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let desc = put_image(&store, CONFIG);
        store.tag("busybox", &desc).unwrap();
        (dir, store, desc)
    }

    /// An image of `config` and a 5-byte layer written to `store`; its
    /// manifest's descriptor.
    fn put_image(store: &Store, config: &[u8]) -> Descriptor {
        let config = store.put_blob(config).unwrap();
        let layer = store.put_blob(b"layer").unwrap();
        let manifest = image_manifest(
            media::OCI_MANIFEST,
            descriptor(media::OCI_CONFIG, &config.digest, config.size).unwrap(),
            vec![descriptor(media::OCI_LAYER_TAR, &layer.digest, layer.size).unwrap()],
            &Default::default(),
        );
        let blob = store.put_blob(&to_canonical_json(&manifest)).unwrap();
        descriptor(media::OCI_MANIFEST, &blob.digest, blob.size).unwrap()
    }

    #[test]
    fn platform_selects_an_image_of_a_multi_platform_one() {
        let (_dir, store, amd64) = store_with_busybox();
        let arm64 = put_image(
            &store,
            br#"{"architecture":"arm64","os":"linux","rootfs":{"type":"layers","diff_ids":["sha256:aa"]},"history":[{"created_by":"RUN arm64 step"}]}"#,
        );
        let pairs = [
            (amd64, Platform::parse("linux/amd64").unwrap()),
            (arm64.clone(), Platform::parse("linux/arm64").unwrap()),
        ];
        let index = rbuild_exporter::write_index(&store, &pairs, &BTreeMap::new()).unwrap();
        store.tag("multi", &index).unwrap();
        let arm = Platform::parse("arm64").unwrap();

        let shown = inspect(&store, "multi", Some(&arm)).unwrap();
        assert_eq!(shown.architecture, "arm64");
        assert_eq!(shown.digest, arm64.digest().to_string());
        assert_eq!(shown.id, shown.manifest.config().digest().to_string());
        assert_eq!(shown.index, Some(index.digest().to_string()));
        assert_eq!(shown.platforms, ["linux/amd64", "linux/arm64"]);
        let steps = history(&store, "multi", Some(&arm)).unwrap();
        assert_eq!(steps.len(), 1);
        assert_eq!(steps[0].created_by, "RUN arm64 step");
        assert_eq!(steps[0].size, 5);

        let v7 = Platform::parse("linux/arm/v7").unwrap();
        let e = inspect(&store, "multi", Some(&v7)).unwrap_err();
        assert_eq!(
            e.to_string(),
            "image multi has no linux/arm/v7 image (it has linux/amd64, linux/arm64)"
        );
        // A single-platform image is shown only for its own platform.
        let e = history(&store, "busybox", Some(&arm)).unwrap_err();
        assert_eq!(
            e.to_string(),
            "image busybox has no linux/arm64 image (it has linux/amd64)"
        );
        let amd = Platform::parse("linux/amd64").unwrap();
        assert_eq!(
            inspect(&store, "busybox", Some(&amd)).unwrap().architecture,
            "amd64"
        );
    }

    #[test]
    fn listing_counts_config_and_layers() {
        let (_dir, store, desc) = store_with_busybox();
        let listed = list(&store).unwrap();
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].name.as_deref(), Some("busybox"));
        assert_eq!(listed[0].digest, desc.digest().to_string());
        assert!(listed[0].id.starts_with("sha256:"));
        assert_ne!(
            listed[0].id, listed[0].digest,
            "the id is the config's digest"
        );
        assert_eq!(listed[0].size, CONFIG.len() as u64 + 5);
    }

    #[test]
    fn inspection_shows_the_config_as_stored() {
        let (_dir, store, _) = store_with_busybox();
        let shown = inspect(&store, "docker.io/library/busybox", None).unwrap();
        assert_eq!(shown.repo_tags, ["busybox:latest"]);
        assert_eq!(shown.repo_digests, [format!("busybox@{}", shown.digest)]);
        assert_eq!(shown.config["Cmd"][0], "sh");
        assert_eq!(shown.config["X"], 1, "a field the model does not know");
        assert_eq!(
            (shown.architecture.as_str(), shown.os.as_str()),
            ("amd64", "linux")
        );
        assert_eq!(shown.size, 5);
        assert_eq!(shown.id, shown.manifest.config().digest().to_string());
    }

    #[test]
    fn every_spelling_of_a_name_finds_the_same_image() {
        let (_dir, store, desc) = store_with_busybox();
        for text in [
            "busybox",
            "busybox:latest",
            "docker.io/library/busybox:latest",
        ] {
            let found = find(&store, text).unwrap();
            assert_eq!(found.name.as_deref(), Some("busybox"));
            assert_eq!(found.manifest.digest(), desc.digest());
        }
        let id = find(&store, "busybox").unwrap().id;
        for text in [
            id.clone(),
            id[7..19].to_string(),
            format!("busybox@{}", desc.digest()),
        ] {
            let found = find(&store, &text).unwrap();
            assert_eq!(found.name.as_deref(), Some("busybox"), "{text}");
            assert_eq!(found.manifest.digest(), desc.digest(), "{text}");
        }
        assert!(matches!(
            find(&store, "0123456789ab"),
            Err(LookupError::NoSuchImage(_))
        ));
        let e = find(&store, "other").unwrap_err();
        assert_eq!(e.to_string(), "no such image: other");
        assert!(matches!(
            find(&store, "UPPER"),
            Err(LookupError::Reference(_))
        ));
    }
}
