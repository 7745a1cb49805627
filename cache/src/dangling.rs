//! Dangling images: built without a name (`rbuild build -q .`), kept in
//! `index.json` without a `ref.name` so that their id finds them (`rbuild
//! run $(rbuild build -q .)`), as Docker keeps `<none>` images. Naming one
//! makes it an ordinary image; `prune` forgets the rest.

use oci_spec::image::Descriptor;

use crate::{Store, StoreError, layout};

impl Store {
    /// Keeps the image of `manifest` as a dangling image unless a name or
    /// an entry of `index.json` already points at it.
    pub fn keep_dangling(&self, manifest: &Descriptor) -> Result<(), StoreError> {
        let digest = manifest.digest().to_string();
        if !self.has_blob(&digest) {
            return Err(StoreError::NotFound(format!("manifest {digest}")));
        }
        self.update_index(|index| {
            if index
                .manifests()
                .iter()
                .all(|d| d.digest() != manifest.digest())
            {
                let mut manifests = index.manifests().clone();
                let mut plain = manifest.clone();
                plain.set_annotations(None);
                manifests.push(plain);
                index.set_manifests(manifests);
            }
        })
    }

    /// The dangling images' manifests.
    pub fn dangling(&self) -> Result<Vec<Descriptor>, StoreError> {
        let index = layout::read_index(&self.index_path())?;
        Ok(index
            .manifests()
            .iter()
            .filter(|d| layout::ref_name(d).is_none())
            .cloned()
            .collect())
    }

    /// Forgets every dangling image (`prune`: its blobs go with the rest
    /// that no name needs).
    pub(crate) fn forget_dangling(&self) -> Result<(), StoreError> {
        self.update_index(|index| {
            let named: Vec<Descriptor> = index
                .manifests()
                .iter()
                .filter(|d| layout::ref_name(d).is_some())
                .cloned()
                .collect();
            index.set_manifests(named);
        })
    }
}

#[cfg(test)]
mod tests {
    use rbuild_image::manifest::descriptor;
    use rbuild_image::media;

    use super::*;

    #[test]
    fn a_dangling_image_stays_until_named_or_pruned() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let blob = store.put_blob(b"{}").unwrap();
        let desc = descriptor(media::OCI_MANIFEST, &blob.digest, blob.size).unwrap();
        store.keep_dangling(&desc).unwrap();
        store.keep_dangling(&desc).unwrap();
        assert_eq!(store.dangling().unwrap(), std::slice::from_ref(&desc));
        assert!(store.images().unwrap().is_empty());
        store.tag("named", &desc).unwrap();
        assert!(
            store.dangling().unwrap().is_empty(),
            "named, no longer dangling"
        );
        store.untag("named").unwrap();
        store.keep_dangling(&desc).unwrap();
        store.forget_dangling().unwrap();
        assert!(store.dangling().unwrap().is_empty());
    }
}
