//! `fsck`: what the store claims, checked. Every blob hashes to its name;
//! every snapshot still matches the listing recorded when it was made;
//! every layer index still holds (see `layer_index`) and its hash states
//! are its blob's;
//! every cache record names snapshots that are there and whole; every
//! layer record names a snapshot that is there; every tagged image is
//! complete (its manifest, or index and the manifests it lists, its config
//! and every layer blob are stored and readable). With `repair`, what is
//! broken is removed (corrupt blobs, broken snapshots with the records
//! that name them, dangling layer records, layer indexes that do not hold, the names of incomplete images)
//! and each removal is reported.

use rbuild_image::manifest::{BlobKind, referenced_blobs};
use serde::Serialize;

use crate::gc::{names, remove_path};
use crate::listing::Listing;
use crate::midstate::{CHECKPOINT, CheckpointedSha256};
use crate::snapshots::listing_path;
use crate::{CacheRecord, LayerRecord, Store, StoreError, blobs, read_json};

/// What fsck found (and, with repair, removed).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct FsckReport {
    /// Blobs whose digest was checked.
    pub blobs_checked: usize,
    /// Snapshots walked and compared with their listing.
    pub snapshots_checked: usize,
    /// Tagged images checked for completeness.
    pub images_checked: usize,
    /// Problems, one line each.
    pub problems: Vec<String>,
    /// What repair removed, one line each (empty without repair).
    pub removed: Vec<String>,
}

impl Store {
    /// Checks the store as the module docs say; with `repair`, removes
    /// what is broken. Waits for every other command on the store.
    pub fn fsck(&self, repair: bool) -> Result<FsckReport, StoreError> {
        let _exclusive = self.lease.exclusive()?;
        self.check(repair, true)
    }

    /// The checks of [`Store::fsck`] (blob digests only with
    /// `verify_blobs`), for a caller that holds the store exclusively.
    pub(crate) fn check(&self, repair: bool, verify_blobs: bool) -> Result<FsckReport, StoreError> {
        let mut report = FsckReport::default();
        let remove = |report: &mut FsckReport, what: String, path: &std::path::Path| {
            if repair {
                remove_path(path)?;
                report.removed.push(what);
            }
            Ok::<(), StoreError>(())
        };

        let blobs_dir = self.root.join("blobs/sha256");
        for name in names(&blobs_dir)?.into_iter().filter(|_| verify_blobs) {
            let path = blobs_dir.join(&name);
            report.blobs_checked += 1;
            let expected = format!("sha256:{name}");
            let actual = blobs::verify(&path)?;
            if actual != expected {
                report.problems.push(format!(
                    "blob {expected} is corrupt (content hashes to {actual})"
                ));
                remove(&mut report, format!("blob {expected}"), &path)?;
            }
        }

        let snapshots_dir = self.root.join("snapshots");
        for id in names(&snapshots_dir)? {
            report.snapshots_checked += 1;
            let dir = snapshots_dir.join(&id);
            let recorded = std::fs::read(listing_path(&self.root, &id))
                .ok()
                .and_then(|b| Listing::decode(&b));
            let problem = match recorded {
                None => Some(String::from("has no recorded listing")),
                Some(recorded) => {
                    let now = Listing::of(&dir)?;
                    (now != recorded).then(|| {
                        format!(
                            "does not match its listing ({} entries recorded, {} found, or changed)",
                            recorded.entries, now.entries
                        )
                    })
                }
            };
            if let Some(problem) = problem {
                report.problems.push(format!("snapshot {id} {problem}"));
                if repair {
                    // Before the snapshot: see `layer_index`.
                    remove_path(&crate::layer_index::index_path(&self.root, &id))?;
                }
                remove(&mut report, format!("snapshot {id}"), &dir)?;
                if repair {
                    remove_path(&listing_path(&self.root, &id))?;
                    remove_path(&crate::snapshots::left_out_path(&self.root, &id))?;
                    remove_path(&crate::copied::copied_path(&self.root, &id))?;
                    remove_path(&crate::copied::shared_from_path(&self.root, &id))?;
                }
            }
        }

        let records_dir = self.root.join("records");
        for name in names(&records_dir)? {
            let path = records_dir.join(&name);
            let broken = match read_json::<CacheRecord>(&path) {
                Ok(Some(r)) => r
                    .snapshots
                    .iter()
                    .find(|s| !self.has_snapshot(s))
                    .map(|s| format!("names missing snapshot {s}")),
                _ => Some(String::from("is unreadable")),
            };
            if let Some(why) = broken {
                report.problems.push(format!("record {name} {why}"));
                remove(&mut report, format!("record {name}"), &path)?;
            }
        }

        let layers_dir = self.root.join("layers");
        for name in names(&layers_dir)? {
            let Some(snapshot) = name.strip_suffix(".json") else {
                continue;
            };
            let path = layers_dir.join(&name);
            let broken = match read_json::<LayerRecord>(&path) {
                Ok(Some(r)) if r.snapshot == snapshot => (!self.has_snapshot(snapshot))
                    .then(|| format!("names missing snapshot {snapshot}")),
                _ => Some(String::from("is unreadable")),
            };
            if let Some(why) = broken {
                report.problems.push(format!("layer record {name} {why}"));
                remove(&mut report, format!("layer record {name}"), &path)?;
            }
        }

        let indexes = self.root.join("layer-index");
        for id in names(&indexes)? {
            let problem = match self.layer_index(&id) {
                None => Some("does not hold (unreadable, or its snapshot or blob is gone)"),
                Some(index) if verify_blobs && !self.states_match(&index)? => {
                    Some("has hash states its blob does not have")
                }
                Some(_) => None,
            };
            if let Some(problem) = problem {
                report.problems.push(format!("layer index {id} {problem}"));
                remove(&mut report, format!("layer index {id}"), &indexes.join(&id))?;
            }
        }

        for (name, desc) in self.images()? {
            report.images_checked += 1;
            if let Some(why) = self.incomplete(desc.digest().as_ref()) {
                report
                    .problems
                    .push(format!("image {name} is incomplete: {why}"));
                if repair {
                    self.untag(&name)?;
                    report.removed.push(format!("name {name}"));
                }
            }
        }
        Ok(report)
    }

    /// Whether the hash states a layer index keeps are its blob's.
    fn states_match(&self, index: &crate::LayerIndex) -> Result<bool, StoreError> {
        let path = self.blob_path(&index.blob.digest);
        let mut file = std::fs::File::open(&path).map_err(crate::error::io_err("open", &path))?;
        let mut hasher = CheckpointedSha256::new();
        let mut buf = vec![0u8; 1 << 20];
        let wanted = index.checkpoints.len() as u64 * CHECKPOINT;
        while hasher.len() < wanted {
            let n = std::io::Read::read(&mut file, &mut buf)
                .map_err(crate::error::io_err("read", &path))?;
            if n == 0 {
                return Ok(false);
            }
            hasher.update(&buf[..n]);
        }
        Ok(hasher.checkpoints().get(..index.checkpoints.len()) == Some(&index.checkpoints[..]))
    }

    /// Why the image (manifest or index) `digest` is not whole, if it is not.
    fn incomplete(&self, digest: &str) -> Option<String> {
        let mut stack = vec![(BlobKind::Manifest, digest.to_string())];
        while let Some((kind, digest)) = stack.pop() {
            let what = kind.name();
            if kind == BlobKind::Layer {
                if !self.has_blob(&digest) {
                    return Some(format!("missing layer {digest}"));
                }
                continue;
            }
            let bytes = match self.read_blob(&digest) {
                Ok(b) => b,
                Err(_) => return Some(format!("missing {what} {digest}")),
            };
            let checked = match kind {
                // A config names no blob: it only has to be JSON.
                BlobKind::Config => serde_json::from_slice::<serde::de::IgnoredAny>(&bytes)
                    .map(|_| ())
                    .map_err(|e| format!("{what} {digest} is not JSON: {e}")),
                _ => referenced_blobs(&bytes, what)
                    .map(|children| stack.extend(children))
                    .map_err(|e| format!("{what} {digest} is malformed: {e}")),
            };
            if let Err(problem) = checked {
                return Some(problem);
            }
        }
        None
    }
}
