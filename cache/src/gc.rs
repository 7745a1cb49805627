//! Disk usage and prune. What tagged images reference (manifests,
//! configs, layer blobs, and the snapshots those layers unpack to) is
//! always kept; the build cache (records and the snapshots only they name)
//! goes with `prune --all`. Prune and fsck hold the store lease
//! exclusively, so they wait for every other command on the store.

use std::collections::HashSet;
use std::path::Path;

use rbuild_image::manifest::referenced_blobs;
use serde::Serialize;

use crate::error::io_err;
use crate::{CacheKey, CacheRecord, LayerRecord, Store, StoreError, read_json};

/// Sizes of what the store holds, in bytes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct DiskUsage {
    /// Blobs (manifests, configs, compressed layers) and their total size.
    pub blobs: (usize, u64),
    /// Snapshots (unpacked layers, build results) and their total size.
    pub snapshots: (usize, u64),
    /// Cache records.
    pub records: usize,
    /// Cache mounts and their total size.
    pub cache_mounts: (usize, u64),
    /// Named volumes of `rbuild run` and their total size (`prune
    /// --volumes` removes them; `prune --all` does not).
    pub volumes: (usize, u64),
    /// What `prune --all` would free.
    pub reclaimable: u64,
}

/// One cache record as `du --verbose` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RecordUsage {
    /// The cache key.
    pub key: CacheKey,
    /// When its result was made (Unix seconds), if recorded.
    pub created: Option<i64>,
    /// When it was last used (Unix seconds).
    pub last_used: Option<i64>,
    /// Size of the step's own layer (its top snapshot).
    pub size: u64,
    /// How many layers its state has.
    pub layers: usize,
}

/// What to prune.
#[derive(Debug, Clone, Copy, Default)]
pub struct PruneOptions {
    /// Drop the whole build cache too (records, cache mounts), not only
    /// what nothing references.
    pub all: bool,
    /// Only count what would go.
    pub dry_run: bool,
    /// Also drop cache records made before this time (Unix seconds; the
    /// `created` the solver keeps in a record's meta).
    pub older_than: Option<i64>,
    /// Then drop the oldest cache records until the build cache (snapshots
    /// only records need) takes at most this many bytes.
    pub keep_bytes: Option<u64>,
}

/// What a prune removed (or would remove).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct PruneReport {
    /// Blobs removed.
    pub blobs: usize,
    /// Snapshots removed.
    pub snapshots: usize,
    /// Cache records removed.
    pub records: usize,
    /// Context hash caches (`hashes/`), blob source lists (`sources/`)
    /// and context file lists (`file-lists/`) removed.
    pub caches: usize,
    /// Bytes freed.
    pub bytes: u64,
}

pub(crate) fn dir_size(path: &Path) -> u64 {
    walkdir::WalkDir::new(path)
        .into_iter()
        .filter_map(Result::ok)
        .filter_map(|e| e.metadata().ok())
        .filter(|m| !m.is_dir())
        .map(|m| m.len())
        .sum()
}

pub(crate) fn names(dir: &Path) -> Result<Vec<String>, StoreError> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io_err("read", dir))? {
        let entry = entry.map_err(io_err("read", dir))?;
        out.push(entry.file_name().to_string_lossy().into_owned());
    }
    out.sort();
    Ok(out)
}

pub(crate) fn remove_path(path: &Path) -> Result<(), StoreError> {
    let result = if path.is_dir() {
        std::fs::remove_dir_all(path)
    } else {
        std::fs::remove_file(path)
    };
    match result {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(io_err("remove", path)(e)),
        _ => Ok(()),
    }
}

impl Store {
    /// Blobs reachable from tagged images (indexes, manifests, configs, layers).
    fn image_blobs(&self) -> Result<HashSet<String>, StoreError> {
        let mut live = HashSet::new();
        let mut stack: Vec<String> = self
            .images()?
            .into_iter()
            .map(|(_, d)| d.digest().to_string())
            .collect();
        while let Some(digest) = stack.pop() {
            if !live.insert(digest.clone()) {
                continue;
            }
            let Ok(bytes) = self.read_blob(&digest) else {
                continue;
            };
            // Layers and configs name nothing (and are not documents).
            let Ok(children) = referenced_blobs(&bytes, &digest) else {
                continue;
            };
            stack.extend(children.into_iter().map(|(_, d)| d));
        }
        Ok(live)
    }

    /// Removes what is not needed, as described in the module docs.
    pub fn prune(&self, opts: PruneOptions) -> Result<PruneReport, StoreError> {
        let _exclusive = self.lease.exclusive()?;
        let mut report = PruneReport::default();
        if !opts.dry_run {
            self.forget_dangling()?;
        }
        let live_blobs = self.image_blobs()?;
        let mut live_snapshots: HashSet<String> = HashSet::new();

        let records_dir = self.root.join("records");
        let mut kept: Vec<(i64, std::path::PathBuf, CacheRecord)> = Vec::new();
        for name in names(&records_dir)? {
            let path = records_dir.join(&name);
            let record: Option<CacheRecord> = read_json(&path).ok().flatten();
            let created = record.as_ref().map_or(0, |r| r.created);
            let keep = !opts.all
                && opts.older_than.is_none_or(|t| created >= t)
                && record
                    .as_ref()
                    .is_some_and(|r| r.snapshots.iter().all(|s| self.has_snapshot(s)));
            match record {
                Some(r) if keep => kept.push((created, path, r)),
                _ => {
                    report.records += 1;
                    if !opts.dry_run {
                        remove_path(&path)?;
                    }
                }
            }
        }
        if let Some(limit) = opts.keep_bytes {
            // Oldest first, drop records while the snapshots only records
            // need are over the limit.
            kept.sort_by_key(|(created, _, _)| *created);
            let mut uses: std::collections::HashMap<String, usize> =
                std::collections::HashMap::new();
            for (_, _, r) in &kept {
                for s in &r.snapshots {
                    *uses.entry(s.clone()).or_default() += 1;
                }
            }
            let size_of = |s: &str| dir_size(&self.snapshot_path(s));
            let mut sizes: std::collections::HashMap<String, u64> =
                uses.keys().map(|s| (s.clone(), size_of(s))).collect();
            let mut total: u64 = sizes.values().sum();
            let mut drop_count = 0;
            for (_, path, r) in &kept {
                if total <= limit {
                    break;
                }
                for s in &r.snapshots {
                    let n = uses.get_mut(s).expect("counted above");
                    *n -= 1;
                    if *n == 0 {
                        total -= sizes.remove(s).unwrap_or(0);
                    }
                }
                report.records += 1;
                if !opts.dry_run {
                    remove_path(path)?;
                }
                drop_count += 1;
            }
            kept.drain(..drop_count);
        }
        if report.records > 0 && !opts.dry_run {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs() as i64);
            self.mark_pruned(now)?;
        }
        // The file lists a later build explains a miss with go with the
        // last record keyed on their checksum.
        let mut live_lists: HashSet<String> = HashSet::new();
        for (_, _, r) in kept {
            live_snapshots.extend(r.snapshots);
            let inputs = r.ingredients.iter().flat_map(|i| &i.inputs);
            live_lists.extend(inputs.filter_map(|input| match input {
                crate::KeyInput::Content(sum) => Some(format!("{sum}.json")),
                _ => None,
            }));
        }
        let lists = self.root.join("file-lists");
        for name in names(&lists)? {
            if !live_lists.contains(&name) {
                report.caches += 1;
                self.remove_counted(&lists.join(&name), opts, &mut report)?;
            }
        }
        // Unpacked layers of tagged images stay (so `run` needs no unpack).
        let layers_dir = self.root.join("layers");
        let mut layer_blobs: HashSet<String> = HashSet::new();
        for name in names(&layers_dir)? {
            let Some(snapshot) = name.strip_suffix(".json") else {
                continue;
            };
            let record: Option<LayerRecord> = read_json(&layers_dir.join(&name)).ok().flatten();
            if let Some(r) = record
                && live_blobs.contains(&r.blob.digest)
            {
                live_snapshots.insert(snapshot.to_string());
            }
        }
        for name in names(&layers_dir)? {
            let Some(snapshot) = name.strip_suffix(".json") else {
                continue;
            };
            if live_snapshots.contains(snapshot) {
                if let Some(r) = read_json::<LayerRecord>(&layers_dir.join(&name))
                    .ok()
                    .flatten()
                {
                    layer_blobs.insert(r.blob.digest);
                }
            } else if !opts.dry_run {
                remove_path(&layers_dir.join(&name))?;
            }
        }
        let by_blob = layers_dir.join("by-blob");
        for name in names(&by_blob)? {
            let path = by_blob.join(&name);
            let live = std::fs::read_to_string(&path).is_ok_and(|id| live_snapshots.contains(&id));
            if !live && !opts.dry_run {
                remove_path(&path)?;
            }
        }
        let snapshots_dir = self.root.join("snapshots");
        for name in names(&snapshots_dir)? {
            if !live_snapshots.contains(&name) {
                let path = snapshots_dir.join(&name);
                report.snapshots += 1;
                report.bytes += dir_size(&path);
                if !opts.dry_run {
                    // The layer index first: it must never outlive the
                    // inodes it names (see `layer_index`).
                    remove_path(&crate::layer_index::index_path(&self.root, &name))?;
                    remove_path(&path)?;
                    remove_path(&crate::snapshots::listing_path(&self.root, &name))?;
                    remove_path(&crate::snapshots::left_out_path(&self.root, &name))?;
                    remove_path(&crate::copied::copied_path(&self.root, &name))?;
                    remove_path(&crate::copied::shared_from_path(&self.root, &name))?;
                }
            }
        }
        // Listings and left-out lists of snapshots that were never
        // committed (a killed process).
        for kept in [
            "listings",
            "left-out",
            "copied",
            "shared-from",
            "layer-index",
        ] {
            let kept = self.root.join(kept);
            for name in names(&kept)? {
                if !opts.dry_run && !snapshots_dir.join(&name).exists() {
                    remove_path(&kept.join(&name))?;
                }
            }
        }
        // Lineage hints whose snapshot is gone.
        let lineage = self.root.join("lineage");
        for name in names(&lineage)? {
            let path = lineage.join(&name);
            let live = std::fs::read_to_string(&path).is_ok_and(|id| live_snapshots.contains(&id));
            if !live && !opts.dry_run {
                remove_path(&path)?;
            }
        }
        // Compressed variants are a cache: they go with prune --all, and
        // otherwise stay with their blobs.
        let variants = self.root.join("variants");
        for name in names(&variants)? {
            let path = variants.join(&name);
            match read_json::<LayerRecord>(&path).ok().flatten() {
                Some(r) if !opts.all => {
                    layer_blobs.insert(r.blob.digest);
                }
                _ if !opts.dry_run => remove_path(&path)?,
                _ => {}
            }
        }
        let blobs_dir = self.root.join("blobs/sha256");
        for name in names(&blobs_dir)? {
            let digest = format!("sha256:{name}");
            if !live_blobs.contains(&digest) && !layer_blobs.contains(&digest) {
                let path = blobs_dir.join(&name);
                report.blobs += 1;
                report.bytes += std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
                if !opts.dry_run {
                    remove_path(&path)?;
                }
            }
        }
        // Layer indexes go with their blob (and with their snapshot, above).
        let indexes = self.root.join("layer-index");
        for name in names(&indexes)? {
            if !opts.dry_run && self.layer_index(&name).is_none() {
                remove_path(&indexes.join(&name))?;
            }
        }
        // Where a blob came from matters while it is stored.
        let sources = self.root.join("sources");
        for name in names(&sources)? {
            let hex = name.strip_suffix(".json").unwrap_or(&name);
            let digest = format!("sha256:{hex}");
            if !live_blobs.contains(&digest) && !layer_blobs.contains(&digest) {
                report.caches += 1;
                self.remove_counted(&sources.join(&name), opts, &mut report)?;
            }
        }
        // Context hash caches go with the build cache, or when unused
        // since the cut-off (they are saved when a build adds to them).
        let hashes = self.root.join("hashes");
        for name in names(&hashes)? {
            let path = hashes.join(&name);
            let unused_since = std::fs::metadata(&path)
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .map_or(0, |d| d.as_secs() as i64);
            if opts.all || opts.older_than.is_some_and(|t| unused_since < t) {
                report.caches += 1;
                self.remove_counted(&path, opts, &mut report)?;
            }
        }
        if opts.all {
            let mounts = self.root.join("cache-mounts");
            report.bytes += dir_size(&mounts);
            if !opts.dry_run {
                for name in names(&mounts)? {
                    remove_path(&mounts.join(name))?;
                }
            }
        }
        if !opts.dry_run {
            // Leftovers of killed processes.
            for name in names(&self.root.join("tmp"))? {
                remove_path(&self.root.join("tmp").join(name))?;
            }
        }
        Ok(report)
    }

    /// Removes one file (unless a dry run), adding its size to the report.
    fn remove_counted(
        &self,
        path: &Path,
        opts: PruneOptions,
        report: &mut PruneReport,
    ) -> Result<(), StoreError> {
        report.bytes += std::fs::metadata(path).map_or(0, |m| m.len());
        if opts.dry_run {
            Ok(())
        } else {
            remove_path(path)
        }
    }

    /// Every cache record with its age and the size of its own layer,
    /// oldest first.
    pub fn record_usage(&self) -> Result<Vec<RecordUsage>, StoreError> {
        let dir = self.root.join("records");
        let mut out = Vec::new();
        for name in names(&dir)? {
            let Some(record) = read_json::<CacheRecord>(&dir.join(&name)).ok().flatten() else {
                continue;
            };
            let last_used = std::fs::metadata(dir.join(&name))
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .map(|d| d.as_secs() as i64);
            // A file not named by a key is no record the solver can find.
            let Ok(key) = CacheKey::parse(name.trim_end_matches(".json")) else {
                continue;
            };
            out.push(RecordUsage {
                key,
                last_used,
                created: Some(record.created).filter(|&t| t > 0),
                size: record
                    .snapshots
                    .last()
                    .map_or(0, |s| dir_size(&self.snapshot_path(s))),
                layers: record.snapshots.len(),
            });
        }
        out.sort_by_key(|r| r.created);
        Ok(out)
    }

    /// Sizes of everything, and what `prune --all` would free.
    pub fn disk_usage(&self) -> Result<DiskUsage, StoreError> {
        let count_size = |dir: &Path| -> Result<(usize, u64), StoreError> {
            let items = names(dir)?;
            let size = items.iter().map(|n| dir_size(&dir.join(n))).sum();
            Ok((items.len(), size))
        };
        let reclaimable = self
            .prune(PruneOptions {
                all: true,
                dry_run: true,
                ..Default::default()
            })?
            .bytes;
        Ok(DiskUsage {
            blobs: count_size(&self.root.join("blobs/sha256"))?,
            snapshots: count_size(&self.root.join("snapshots"))?,
            records: names(&self.root.join("records"))?.len(),
            cache_mounts: {
                let (n, s) = count_size(&self.root.join("cache-mounts"))?;
                (n / 2, s)
            },
            volumes: self.volumes_usage()?,
            reclaimable,
        })
    }
}
