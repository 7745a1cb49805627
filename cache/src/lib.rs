//! The embedded store every other part stands on, in one directory that is
//! itself an OCI image layout (`oci-layout`, `index.json`, `blobs/sha256/…`),
//! plus unpacked layer snapshots (overlay lower dirs), a key index (cache key
//! → result), the content-hash cache of context files, and cache mounts.
//!
//! Every write goes to a temp name on the same filesystem (`tmp/`), then is
//! renamed into place, so a killed process never leaves a partial object
//! reachable. Tag updates serialize on a lock file; every open handle holds
//! the store lock shared, and `prune` and `fsck` take it exclusively, so
//! they never run beside another command on the same store.
//!
//! Layout:
//! ```text
//! oci-layout  index.json  blobs/sha256/<hex>      the OCI image layout
//! store-version                                   this layout's version (see `version`)
//! boot-id                                         the boot it was last used in (see `recovery`)
//! snapshots/<id>/                                 unpacked layers / RUN and COPY results
//! listings/<id>                                   what a snapshot held when made (for fsck)
//! left-out/<id>                                   paths its layer tar leaves out (unchanged copy-ups)
//! copied/<id>                                     the source stamps of a COPY's files (see `copied`)
//! lineage/<hex>                                   the snapshot a COPY step made last (see `copied`)
//! shared-from/<id>                                the snapshot a COPY's snapshot shares files with (see `copied`)
//! layer-index/<id>                                the entries and hash states of its layer blob (see `layer_index`)
//! records/<key>.json                              cache key → CacheRecord
//! layers/<snapshot>.json                          snapshot → LayerRecord (its blob)
//! layers/by-blob/<blob hex>                       blob → the built snapshot it was made from
//! variants/<diff_id hex>-<kind>.json              a layer compressed another way
//! sources/<blob hex>.json                         repositories known to hold a blob (a hint, not synced)
//! hashes/<name>.bin                               content-hash cache of context files
//! cache-mounts/<id>/                              RUN --mount=type=cache dirs
//! volumes/<name>/                                 named volumes of `rbuild run`
//! tmp/                                            writes in progress
//! ```

mod blobs;
mod builds;
pub mod contain;
mod copied;
mod dangling;
mod durable;
mod error;
pub mod files;
mod fsck;
mod fsutil;
mod gc;
mod hashes;
mod key;
mod layer_index;
mod layout;
mod lease;
mod listing;
mod lookup;
pub mod midstate;
mod records;
mod recovery;
mod snapshots;
pub mod sorted_walk;
mod streamed;
#[cfg(feature = "testing")]
pub mod testing;
mod unpack;
mod version;
mod volumes;

use std::io::Write;
use std::path::{Path, PathBuf};

pub use blobs::{BlobInfo, BlobWriter, digest_hex};
pub use builds::{BuildEntry, BuildStep, FileList};
pub use copied::{CopiedFiles, CopiedWriter, SourceStamp};
pub use durable::{Disk, DiskStep, RealDisk, RecordingDisk};
pub use error::StoreError;
pub use fsck::FsckReport;
use fsutil::LockGuard;
pub use gc::{DiskUsage, PruneOptions, PruneReport, RecordUsage};
pub use hashes::{FileHashCache, FileStamp};
pub use key::{CacheKey, InvalidKey};
pub use layer_index::{IndexCursor, IndexEntries, IndexEntry, LayerIndex, header_hash};
pub use layout::REF_NAME;
pub use lookup::{FoundImage, is_index_type};
pub use records::{
    CacheRecord, INGREDIENTS_VERSION, KeyIngredients, KeyInput, LayerRecord, StepVar, VarOrigin,
};
pub use snapshots::PendingSnapshot;
pub use streamed::{LayerFeed, StreamedUnpack};
pub use unpack::{Limits, OPAQUE_XATTR, UnpackError, Whiteouts, decompress, unpack};
pub use version::STORE_VERSION;

use error::io_err;

/// The store. Every handle holds the store lease (see [`lease`]) until
/// its last clone is dropped.
#[derive(Debug, Clone)]
pub struct Store {
    root: PathBuf,
    lease: std::sync::Arc<lease::Lease>,
    disk: std::sync::Arc<dyn Disk>,
}

impl Store {
    /// Opens (creating if needed) the store at `root` and takes its lease:
    /// waits while a prune or fsck runs, and makes them wait until the
    /// handle (and every clone of it) is dropped.
    pub fn open(root: &Path) -> Result<Self, StoreError> {
        Self::open_on(root, std::sync::Arc::new(RealDisk))
    }

    /// [`Store::open`], with the durable-write steps going through `disk`
    /// (a [`RecordingDisk`] in tests of the write order).
    pub fn open_on(root: &Path, disk: std::sync::Arc<dyn Disk>) -> Result<Self, StoreError> {
        for dir in [
            "blobs/sha256",
            "snapshots",
            "listings",
            "left-out",
            "copied",
            "lineage",
            "shared-from",
            "layer-index",
            "records",
            "layers/by-blob",
            "variants",
            "sources",
            "hashes",
            "builds",
            "file-lists",
            "cache-mounts",
            "tmp",
        ] {
            let p = root.join(dir);
            std::fs::create_dir_all(&p).map_err(io_err("create", &p))?;
        }
        // Snapshots and cache mounts are filled in directories made here.
        for dir in ["tmp", "cache-mounts"] {
            fsutil::spread_subdirectories(&root.join(dir));
        }
        let lock = root.join("gc.lock");
        let lock = match lock.parent().map(Path::canonicalize) {
            Some(Ok(dir)) => dir.join("gc.lock"),
            _ => lock,
        };
        let store = Self {
            root: root.to_path_buf(),
            lease: lease::Lease::take(&lock)?,
            disk,
        };
        store.check_version()?;
        store.recover_after_restart()?;
        // A new store's two layout files are written at once: their syncs
        // overlap (one journal commit where the filesystem groups them).
        std::thread::scope(|scope| {
            let layout = scope.spawn(|| store.write_layout_marker());
            let index = store.write_first_index();
            layout.join().expect("the oci-layout thread panicked")?;
            index
        })?;
        Ok(store)
    }

    /// Writes `oci-layout` if it is missing.
    fn write_layout_marker(&self) -> Result<(), StoreError> {
        let layout = self.root.join("oci-layout");
        if layout.exists() {
            return Ok(());
        }
        fsutil::write_atomic(
            &*self.disk,
            &self.tmp_dir(),
            &layout,
            br#"{"imageLayoutVersion":"1.0.0"}"#,
        )
    }

    /// Writes an empty `index.json` if there is none.
    fn write_first_index(&self) -> Result<(), StoreError> {
        if self.index_path().exists() {
            return Ok(());
        }
        let _lock = self.index_lock()?;
        if self.index_path().exists() {
            return Ok(());
        }
        let index = layout::read_index(&self.index_path())?;
        layout::write_index(&*self.disk, &self.tmp_dir(), &self.index_path(), &index)
    }

    /// The store's root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn tmp_dir(&self) -> PathBuf {
        self.root.join("tmp")
    }

    fn index_path(&self) -> PathBuf {
        self.root.join("index.json")
    }

    fn index_lock(&self) -> Result<LockGuard, StoreError> {
        fsutil::lock(&self.root.join("index.lock"), true)
    }

    /// Path of a blob by digest (whether or not it exists). A malformed
    /// digest maps to a path that never exists.
    pub fn blob_path(&self, digest: &str) -> PathBuf {
        let hex = blobs::digest_hex(digest).unwrap_or("invalid-digest");
        self.root.join("blobs/sha256").join(hex)
    }

    /// Whether the blob is in the store.
    pub fn has_blob(&self, digest: &str) -> bool {
        self.blob_path(digest).exists()
    }

    /// Starts a streamed blob write.
    pub fn blob_writer(&self) -> Result<BlobWriter, StoreError> {
        BlobWriter::new(
            &self.tmp_dir(),
            self.root.join("blobs/sha256"),
            self.disk.clone(),
        )
    }

    /// Writes a whole blob from memory.
    pub fn put_blob(&self, bytes: &[u8]) -> Result<BlobInfo, StoreError> {
        let mut w = self.blob_writer()?;
        w.write_all(bytes).map_err(|source| StoreError::Io {
            op: "write blob",
            path: self.root.clone(),
            source,
        })?;
        w.commit(None)
    }

    /// Reads a whole blob.
    pub fn read_blob(&self, digest: &str) -> Result<Vec<u8>, StoreError> {
        blobs::digest_hex(digest)?;
        let path = self.blob_path(digest);
        std::fs::read(&path).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => StoreError::NotFound(format!("blob {digest}")),
            _ => io_err("read", &path)(e),
        })
    }

    /// Points `name` (e.g. `hello`, `hello:v2`) at a manifest in `index.json`.
    pub fn tag(
        &self,
        name: &str,
        manifest: &oci_spec::image::Descriptor,
    ) -> Result<(), StoreError> {
        let digest = manifest.digest().to_string();
        if !self.has_blob(&digest) {
            return Err(StoreError::NotFound(format!("manifest {digest} of {name}")));
        }
        self.update_index(|index| layout::retag(index, name, Some(manifest)))
    }

    /// Removes the name `name`; returns whether it existed. Blobs stay
    /// until `prune`.
    pub fn untag(&self, name: &str) -> Result<bool, StoreError> {
        let mut existed = false;
        self.update_index(|index| {
            existed = index
                .manifests()
                .iter()
                .any(|d| layout::ref_name(d) == Some(name));
            layout::retag(index, name, None);
        })?;
        Ok(existed)
    }

    fn update_index(
        &self,
        change: impl FnOnce(&mut oci_spec::image::ImageIndex),
    ) -> Result<(), StoreError> {
        let _lock = self.index_lock()?;
        let mut index = layout::read_index(&self.index_path())?;
        change(&mut index);
        layout::write_index(&*self.disk, &self.tmp_dir(), &self.index_path(), &index)
    }

    /// The manifest descriptor a name points at.
    pub fn resolve_tag(
        &self,
        name: &str,
    ) -> Result<Option<oci_spec::image::Descriptor>, StoreError> {
        Ok(self
            .images()?
            .into_iter()
            .find(|(n, _)| n == name)
            .map(|(_, d)| d))
    }

    /// All tagged images: (name, manifest descriptor), sorted by name.
    pub fn images(&self) -> Result<Vec<(String, oci_spec::image::Descriptor)>, StoreError> {
        let index = layout::read_index(&self.index_path())?;
        let mut out: Vec<_> = index
            .manifests()
            .iter()
            .filter_map(|d| layout::ref_name(d).map(|n| (n.to_string(), d.clone())))
            .collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(out)
    }

    /// Path of a snapshot's directory (whether or not it exists).
    pub fn snapshot_path(&self, id: &str) -> PathBuf {
        self.root.join("snapshots").join(id)
    }

    /// The paths (relative to the snapshot) that the layer tar of snapshot
    /// `id` leaves out: a RUN's copy-ups without a change, which its
    /// snapshot keeps for the next RUN. Empty when there are none.
    pub fn left_out(&self, id: &str) -> Result<std::collections::HashSet<PathBuf>, StoreError> {
        snapshots::check_id(id)?;
        snapshots::left_out(&self.root, id)
    }

    /// The source stamps of the files snapshot `id`'s COPY wrote (see
    /// [`PendingSnapshot::copied_writer`]); `None` when it has none or
    /// they do not read back whole.
    pub fn copied_files(&self, id: &str) -> Option<CopiedFiles> {
        snapshots::check_id(id).ok()?;
        CopiedFiles::read(&copied::copied_path(&self.root, id))
    }

    /// The snapshot the step with `lineage` made last, if it still exists.
    pub fn lineage_snapshot(&self, lineage: &str) -> Option<String> {
        copied::check_lineage(lineage).ok()?;
        let id = std::fs::read_to_string(copied::lineage_path(&self.root, lineage)).ok()?;
        self.has_snapshot(&id).then_some(id)
    }

    /// Records snapshot `id` as the last one of `lineage` (a hint, not
    /// synced).
    pub fn set_lineage(&self, lineage: &str, id: &str) -> Result<(), StoreError> {
        copied::check_lineage(lineage)?;
        snapshots::check_id(id)?;
        copied::write_hint(
            &self.tmp_dir(),
            &copied::lineage_path(&self.root, lineage),
            id.as_bytes(),
        )
    }

    /// The snapshot whose files snapshot `id`'s COPY shares (see
    /// [`PendingSnapshot::record_shared_from`]), if it still exists.
    pub fn shared_from(&self, id: &str) -> Option<String> {
        snapshots::check_id(id).ok()?;
        let from = std::fs::read_to_string(copied::shared_from_path(&self.root, id)).ok()?;
        self.has_snapshot(&from).then_some(from)
    }

    /// The index of the layer blob exported from snapshot `id` (see
    /// [`LayerIndex`]), when it reads back whole and still holds: the
    /// snapshot exists and its layer record names that blob, uncompressed,
    /// which is stored.
    pub fn layer_index(&self, id: &str) -> Option<LayerIndex> {
        if !self.has_snapshot(id) {
            return None;
        }
        let index =
            LayerIndex::decode(std::fs::read(layer_index::index_path(&self.root, id)).ok()?)?;
        let record = self.layer_of_snapshot(id).ok()??;
        let holds = record.blob == index.blob && record.diff_id == record.blob.digest;
        holds.then_some(index)
    }

    /// Keeps `index` as the index of snapshot `id`'s layer blob (a hint,
    /// not synced).
    pub fn put_layer_index(&self, id: &str, index: &LayerIndex) -> Result<(), StoreError> {
        snapshots::check_id(id)?;
        copied::write_hint_with(
            &self.tmp_dir(),
            &layer_index::index_path(&self.root, id),
            |out| index.write(out),
        )
    }

    /// Whether the snapshot exists (fully written).
    pub fn has_snapshot(&self, id: &str) -> bool {
        snapshots::check_id(id).is_ok() && self.snapshot_path(id).exists()
    }

    /// Starts a new snapshot: an empty dir to fill (an overlay upper dir, or
    /// the target of a copy), with an overlay work dir beside it.
    pub fn new_snapshot(&self) -> Result<PendingSnapshot, StoreError> {
        PendingSnapshot::new(self.root.clone(), self.disk.clone())
    }

    /// Unpacks a layer blob (gzip, zstd or plain tar) into a snapshot with
    /// OCI whiteouts converted to overlay whiteouts; returns the layer
    /// record. Idempotent: an unpacked layer is not unpacked again. The
    /// snapshot id is `sha256-<hex of the blob digest>`.
    pub fn unpack_layer(
        &self,
        blob: &BlobInfo,
        media_type: &str,
    ) -> Result<LayerRecord, StoreError> {
        let hex = blobs::digest_hex(&blob.digest)?;
        let id = format!("sha256-{hex}");
        // Unpacked before, or exported from a snapshot this store built.
        let built = std::fs::read_to_string(self.built_snapshot_path(hex)).ok();
        for id in std::iter::once(id.as_str()).chain(built.as_deref()) {
            if self.has_snapshot(id)
                && let Some(record) = self.layer_of_snapshot(id)?
                && record.blob.digest == blob.digest
            {
                return Ok(record);
            }
        }
        let path = self.blob_path(&blob.digest);
        let file = std::fs::File::open(&path).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => StoreError::NotFound(format!("blob {}", blob.digest)),
            _ => io_err("open", &path)(e),
        })?;
        let size = file.metadata().map_err(io_err("stat", &path))?.len();
        let limits = unpack::Limits::for_compressed(size);
        let unpacked = self.unpack_blob_bytes(file, limits, blob, |stream| stream)?;
        self.commit_unpacked(unpacked, blob, media_type)
    }

    /// Unpacks the bytes of layer blob `blob` that `reader` gives into a
    /// new snapshot, not yet committed, within `limits`, the uncompressed
    /// stream read through what `hold` makes of it; with the layer's
    /// diff_id.
    fn unpack_blob_bytes<'a>(
        &self,
        reader: impl std::io::Read + 'a,
        limits: unpack::Limits,
        blob: &BlobInfo,
        hold: impl FnOnce(Box<dyn std::io::Read + 'a>) -> Box<dyn std::io::Read + 'a>,
    ) -> Result<(PendingSnapshot, String), StoreError> {
        let pending = self.new_snapshot()?;
        let invalid = |e: std::io::Error| StoreError::Invalid {
            what: format!("layer {}", blob.digest),
            message: e.to_string(),
        };
        let reader = hold(unpack::decompress(reader).map_err(invalid)?);
        let diff_id = unpack::unpack(reader, pending.dir(), Whiteouts::Overlay, limits)
            .map_err(|e| invalid(e.into()))?;
        Ok((pending, diff_id))
    }

    /// Commits a snapshot [`Store::unpack_blob_bytes`] made of `blob`
    /// (which the store holds) under its id, and its layer record.
    fn commit_unpacked(
        &self,
        (pending, diff_id): (PendingSnapshot, String),
        blob: &BlobInfo,
        media_type: &str,
    ) -> Result<LayerRecord, StoreError> {
        let id = format!("sha256-{}", blobs::digest_hex(&blob.digest)?);
        pending.commit(&id)?;
        let record = LayerRecord {
            snapshot: id,
            diff_id,
            blob: blob.clone(),
            media_type: media_type.to_string(),
            epoch: None,
        };
        self.put_layer(&record)?;
        Ok(record)
    }

    /// Records a layer (snapshot ↔ blob). An index of another blob of the
    /// snapshot (see [`Store::put_layer_index`]) is dropped first.
    pub fn put_layer(&self, layer: &LayerRecord) -> Result<(), StoreError> {
        snapshots::check_id(&layer.snapshot)?;
        gc::remove_path(&layer_index::index_path(&self.root, &layer.snapshot))?;
        let path = self
            .root
            .join("layers")
            .join(format!("{}.json", layer.snapshot));
        let bytes = serde_json::to_vec(layer).expect("a layer record serializes");
        fsutil::write_atomic(&*self.disk, &self.tmp_dir(), &path, &bytes)?;
        let hex = blobs::digest_hex(&layer.blob.digest)?;
        if layer.snapshot != format!("sha256-{hex}") {
            let by_blob = self.built_snapshot_path(hex);
            fsutil::write_atomic(
                &*self.disk,
                &self.tmp_dir(),
                &by_blob,
                layer.snapshot.as_bytes(),
            )?;
        }
        Ok(())
    }

    /// Where the id of the built snapshot a layer blob was exported from
    /// is kept, so that running or building on the image reuses it.
    fn built_snapshot_path(&self, blob_hex: &str) -> PathBuf {
        self.root.join("layers/by-blob").join(blob_hex)
    }

    /// The layer record of a snapshot, if it has a blob (that is still stored).
    pub fn layer_of_snapshot(&self, snapshot: &str) -> Result<Option<LayerRecord>, StoreError> {
        snapshots::check_id(snapshot)?;
        let path = self.root.join("layers").join(format!("{snapshot}.json"));
        let Some(record) = read_json::<LayerRecord>(&path)? else {
            return Ok(None);
        };
        Ok(self.has_blob(&record.blob.digest).then_some(record))
    }

    /// Records that the layer with `diff_id` exists compressed as `kind`
    /// (e.g. `gzip-6`) in `layer`'s blob, so the work is done once.
    pub fn put_variant(
        &self,
        diff_id: &str,
        kind: &str,
        layer: &LayerRecord,
    ) -> Result<(), StoreError> {
        let path = self.variant_path(diff_id, kind)?;
        let bytes = serde_json::to_vec(layer).expect("a layer record serializes");
        fsutil::write_atomic(&*self.disk, &self.tmp_dir(), &path, &bytes)
    }

    /// The layer with `diff_id` compressed as `kind`, if made before and its
    /// blob is still stored.
    pub fn variant(&self, diff_id: &str, kind: &str) -> Result<Option<LayerRecord>, StoreError> {
        let Some(record) = read_json::<LayerRecord>(&self.variant_path(diff_id, kind)?)? else {
            return Ok(None);
        };
        Ok(self.has_blob(&record.blob.digest).then_some(record))
    }

    fn variant_path(&self, diff_id: &str, kind: &str) -> Result<PathBuf, StoreError> {
        snapshots::check_id(kind)?;
        let hex = blobs::digest_hex(diff_id)?;
        Ok(self
            .root
            .join("variants")
            .join(format!("{hex}-{kind}.json")))
    }

    /// Remembers that `repository` (`host/path`) holds blob `digest`, so
    /// that a later push to another repository of that registry can mount
    /// it instead of uploading it. A hint, not synced (a pull waited for
    /// its sync before the next request): a list a power loss tore reads
    /// as empty, which costs a push a mount (it uploads instead) and a
    /// build the check that its base's registry is still there.
    pub fn add_blob_source(&self, digest: &str, repository: &str) -> Result<(), StoreError> {
        let path = self.source_path(digest)?;
        let mut list = read_sources(&path);
        if list.iter().any(|r| r == repository) {
            return Ok(());
        }
        list.push(repository.to_string());
        let bytes = serde_json::to_vec(&list).expect("a list serializes");
        copied::write_hint(&self.tmp_dir(), &path, &bytes)
    }

    /// The repositories known to hold blob `digest`.
    pub fn blob_sources(&self, digest: &str) -> Result<Vec<String>, StoreError> {
        Ok(read_sources(&self.source_path(digest)?))
    }

    fn source_path(&self, digest: &str) -> Result<PathBuf, StoreError> {
        Ok(self
            .root
            .join("sources")
            .join(format!("{}.json", blobs::digest_hex(digest)?)))
    }

    /// Looks up a cache key.
    pub fn get_record(&self, key: &CacheKey) -> Result<Option<CacheRecord>, StoreError> {
        read_json(&self.record_path(key))
    }

    /// Stores a cache key's result. Every snapshot it names must exist.
    pub fn put_record(&self, key: &CacheKey, record: &CacheRecord) -> Result<(), StoreError> {
        if let Some(missing) = record.snapshots.iter().find(|s| !self.has_snapshot(s)) {
            return Err(StoreError::NotFound(format!(
                "snapshot {missing} of record {key}"
            )));
        }
        let bytes = serde_json::to_vec(record).expect("a cache record serializes");
        fsutil::write_atomic(&*self.disk, &self.tmp_dir(), &self.record_path(key), &bytes)
    }

    /// Marks a cache record as used now (its file's mtime), for `du` and
    /// age-based pruning. A record that vanished meanwhile is fine.
    pub fn touch_record(&self, key: &CacheKey) -> Result<(), StoreError> {
        let path = self.record_path(key);
        if let Ok(f) = std::fs::File::options().write(true).open(&path) {
            f.set_modified(std::time::SystemTime::now())
                .map_err(io_err("touch", &path))?;
        }
        Ok(())
    }

    /// The record file of `key` (a key is hex, so a safe file name).
    fn record_path(&self, key: &CacheKey) -> PathBuf {
        self.root.join("records").join(format!("{key}.json"))
    }

    /// The directory of cache mount `id` (`RUN --mount=type=cache`),
    /// created on first use, with a lock file for `sharing=locked`.
    pub fn cache_mount_dir(&self, id: &str) -> Result<(PathBuf, PathBuf), StoreError> {
        let name = blake3::hash(id.as_bytes()).to_hex().to_string();
        let dir = self.root.join("cache-mounts").join(&name);
        std::fs::create_dir_all(&dir).map_err(io_err("create", &dir))?;
        let lock = self.root.join("cache-mounts").join(format!("{name}.lock"));
        Ok((dir, lock))
    }

    /// The content-hash cache named `name` (one per build context).
    pub fn file_hashes(&self, name: &str) -> FileHashCache {
        let file = blake3::hash(name.as_bytes()).to_hex().to_string();
        FileHashCache::load(
            self.root.join("hashes").join(format!("{file}.bin")),
            self.tmp_dir(),
        )
    }
}

/// A blob's list of repositories: empty when there is none, or when it
/// cannot be read whole (a hint, see [`Store::add_blob_source`]).
fn read_sources(path: &Path) -> Vec<String> {
    std::fs::read(path)
        .ok()
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .unwrap_or_default()
}

/// Reads a JSON file; `None` when it does not exist.
fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<Option<T>, StoreError> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| StoreError::Invalid {
                what: path.display().to_string(),
                message: e.to_string(),
            }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io_err("read", path)(e)),
    }
}
