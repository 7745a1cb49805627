//! A cache in a local OCI image layout directory (`type=local`): blobs
//! under `blobs/sha256/`, each written to a temporary name and renamed
//! into place, and `index.json` naming each cache by its tag
//! (`org.opencontainers.image.ref.name`). The index is read, changed and
//! replaced under an exclusive lock on `index.json.lock`, so two jobs
//! writing one directory both land their tags and never tear the file.

use std::io::Read;
use std::path::{Path, PathBuf};

use nix::fcntl::{Flock, FlockArg};
use oci_spec::image::{Descriptor, ImageIndex};
use rbuild_image::manifest::{image_index, parse_index};
use sha2::{Digest, Sha256};

use crate::error::{CacheError, io_err};

/// The annotation an OCI layout names a manifest by.
const REF_NAME: &str = "org.opencontainers.image.ref.name";

/// A layout directory.
#[derive(Debug, Clone)]
pub struct Layout {
    dir: PathBuf,
}

impl Layout {
    /// The layout at `dir` (nothing is read or made yet).
    pub fn new(dir: &Path) -> Self {
        Self {
            dir: dir.to_path_buf(),
        }
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Where blob `digest` is (or would be).
    pub fn blob_path(&self, digest: &str) -> PathBuf {
        let hex = digest.strip_prefix("sha256:").unwrap_or("invalid-digest");
        self.dir.join("blobs/sha256").join(hex)
    }

    /// Makes the directory a layout if it is not one yet.
    pub fn create(&self) -> Result<(), CacheError> {
        let blobs = self.dir.join("blobs/sha256");
        std::fs::create_dir_all(&blobs).map_err(io_err("create", &blobs))?;
        let marker = self.dir.join("oci-layout");
        if !marker.exists() {
            self.write_atomic(&marker, br#"{"imageLayoutVersion":"1.0.0"}"#)?;
        }
        Ok(())
    }

    /// Copies the file at `from` in as blob `digest`, unless it is there.
    pub fn put_blob_file(&self, digest: &str, from: &Path) -> Result<(), CacheError> {
        let path = self.blob_path(digest);
        if path.exists() {
            return Ok(());
        }
        let tmp = self.temp_file()?;
        std::fs::copy(from, tmp.path()).map_err(io_err("copy", from))?;
        tmp.persist(&path)
            .map_err(|e| io_err("rename into", &path)(e.error))?;
        Ok(())
    }

    /// Writes `bytes` as a blob; returns its digest.
    pub fn put_blob(&self, bytes: &[u8]) -> Result<String, CacheError> {
        let digest = format!("sha256:{}", hex::encode(Sha256::digest(bytes)));
        let path = self.blob_path(&digest);
        if !path.exists() {
            self.write_atomic(&path, bytes)?;
        }
        Ok(digest)
    }

    /// Reads blob `digest`, at most `max` bytes, and verifies its digest.
    pub fn read_blob(&self, digest: &str, max: u64) -> Result<Vec<u8>, CacheError> {
        let path = self.blob_path(digest);
        let file = std::fs::File::open(&path).map_err(io_err("open", &path))?;
        let mut bytes = Vec::new();
        file.take(max + 1)
            .read_to_end(&mut bytes)
            .map_err(io_err("read", &path))?;
        if bytes.len() as u64 > max {
            return Err(self.malformed(format!("blob {digest} is larger than {max} bytes")));
        }
        let actual = format!("sha256:{}", hex::encode(Sha256::digest(&bytes)));
        if actual != digest {
            return Err(self.malformed(format!("blob {digest} holds {actual}")));
        }
        Ok(bytes)
    }

    /// Whether blob `digest` is there with those bytes (hashed in full).
    pub fn verify_blob(&self, digest: &str) -> Result<(), CacheError> {
        let path = self.blob_path(digest);
        let mut file = std::fs::File::open(&path).map_err(io_err("open", &path))?;
        let mut hasher = Sha256::new();
        let mut buf = vec![0u8; 1 << 20];
        loop {
            let n = file.read(&mut buf).map_err(io_err("read", &path))?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
        }
        let actual = format!("sha256:{}", hex::encode(hasher.finalize()));
        match actual == digest {
            true => Ok(()),
            false => Err(self.malformed(format!("blob {digest} holds {actual}"))),
        }
    }

    /// The manifest tagged `tag`, if any.
    pub fn resolve(&self, tag: &str) -> Result<Option<Descriptor>, CacheError> {
        Ok(self
            .read_index()?
            .manifests()
            .iter()
            .find(|d| ref_name(d) == Some(tag))
            .cloned())
    }

    /// Points `tag` at `manifest` (whose blob must be written already).
    pub fn tag(&self, tag: &str, manifest: &Descriptor) -> Result<(), CacheError> {
        let lock_path = self.dir.join("index.json.lock");
        let lock = std::fs::File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(io_err("open", &lock_path))?;
        let _guard = Flock::lock(lock, FlockArg::LockExclusive)
            .map_err(|(_, e)| io_err("lock", &lock_path)(e.into()))?;
        let index = self.read_index()?;
        let mut manifests: Vec<Descriptor> = (index.manifests().iter())
            .filter(|d| ref_name(d) != Some(tag))
            .cloned()
            .collect();
        let mut named = manifest.clone();
        named.set_annotations(Some(
            [(REF_NAME.to_string(), tag.to_string())]
                .into_iter()
                .collect(),
        ));
        manifests.push(named);
        let bytes = rbuild_image::json::to_canonical_json(&image_index(manifests));
        self.write_atomic(&self.dir.join("index.json"), &bytes)
    }

    fn read_index(&self) -> Result<ImageIndex, CacheError> {
        let path = self.dir.join("index.json");
        match std::fs::read(&path) {
            Ok(bytes) => parse_index(&bytes, &path.display().to_string())
                .map_err(|e| self.malformed(e.to_string())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(image_index(Vec::new())),
            Err(e) => Err(io_err("read", &path)(e)),
        }
    }

    fn temp_file(&self) -> Result<tempfile::NamedTempFile, CacheError> {
        tempfile::Builder::new()
            .prefix(".tmp-")
            .tempfile_in(&self.dir)
            .map_err(io_err("create a temp file in", &self.dir))
    }

    fn write_atomic(&self, path: &Path, bytes: &[u8]) -> Result<(), CacheError> {
        let tmp = self.temp_file()?;
        std::fs::write(tmp.path(), bytes).map_err(io_err("write", tmp.path()))?;
        tmp.persist(path)
            .map_err(|e| io_err("rename into", path)(e.error))?;
        Ok(())
    }

    fn malformed(&self, message: String) -> CacheError {
        CacheError::Malformed {
            what: self.dir.display().to_string(),
            message,
        }
    }
}

fn ref_name(d: &Descriptor) -> Option<&str> {
    d.annotations().as_ref()?.get(REF_NAME).map(String::as_str)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_from_many_writers_all_land_and_blobs_are_verified() {
        let dir = tempfile::tempdir().unwrap();
        let layout = Layout::new(dir.path());
        layout.create().unwrap();
        let threads: Vec<_> = (0..8)
            .map(|n| {
                let layout = layout.clone();
                std::thread::spawn(move || {
                    let digest = layout.put_blob(format!("manifest {n}").as_bytes()).unwrap();
                    let desc = rbuild_image::manifest::descriptor(
                        rbuild_image::media::OCI_MANIFEST,
                        &digest,
                        10,
                    )
                    .unwrap();
                    layout.tag(&format!("t{n}"), &desc).unwrap();
                    digest
                })
            })
            .collect();
        let digests: Vec<String> = threads.into_iter().map(|t| t.join().unwrap()).collect();
        for (n, digest) in digests.iter().enumerate() {
            let found = layout.resolve(&format!("t{n}")).unwrap().unwrap();
            assert_eq!(found.digest().to_string(), *digest);
            assert_eq!(
                layout.read_blob(digest, 100).unwrap(),
                format!("manifest {n}").as_bytes()
            );
        }
        std::fs::write(layout.blob_path(&digests[0]), b"tampered").unwrap();
        assert!(layout.read_blob(&digests[0], 100).is_err());
        assert!(layout.verify_blob(&digests[0]).is_err());
        layout.verify_blob(&digests[1]).unwrap();
        assert!(layout.read_blob(&digests[1], 3).is_err(), "bounded");
    }
}
