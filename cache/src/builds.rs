//! What a later build compares itself with to explain a cache miss: the
//! index of previous builds (per tag, and per Dockerfile and target: the
//! steps with their instruction text and record key), the file lists of
//! the context selections keys were computed from (path → short content
//! digest, one small file per checksum, so equal checksums share it), and
//! when prune last removed records. Each is one file written atomically.

use serde::{Deserialize, Serialize};

use crate::fsutil;
use crate::{CacheKey, Store, StoreError, read_json};

/// A finished build, as the index keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BuildEntry {
    /// When it finished (Unix seconds).
    pub created: i64,
    /// Its steps (RUN, COPY, ADD, WORKDIR), in graph order.
    pub steps: Vec<BuildStep>,
}

/// One step of a recorded build, identified by its stage and position.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BuildStep {
    /// The stage's name (`stage-N` for an unnamed one).
    pub stage: String,
    /// The instruction's 1-based position in the stage (FROM is 1).
    pub ordinal: usize,
    /// The platform it was built for (one build may make several).
    pub platform: String,
    /// The instruction as written.
    pub instruction: String,
    /// The key its result was recorded under.
    pub key: CacheKey,
}

/// The files a context selection held: relative path and a short digest
/// of what the copy carries of it (type, mode, content), sorted by path.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileList(pub Vec<(String, String)>);

/// Where the index keeps a build of `tags`, or of `dockerfile` and
/// `target` (the file names are hashes: tags and paths are any text).
fn index_names(tags: &[String], dockerfile: &str, target: &str) -> Vec<String> {
    let name = |kind: &str, what: &[&str]| {
        let hash = blake3::hash(what.join("\0").as_bytes()).to_hex();
        format!("{kind}-{hash}.json")
    };
    let mut names: Vec<String> = tags.iter().map(|t| name("tag", &[t])).collect();
    names.push(name("file", &[dockerfile, target]));
    names
}

impl Store {
    /// The latest recorded build of one of `tags`, else the latest of
    /// `dockerfile` (as an absolute path) and `target`.
    pub fn previous_build(
        &self,
        tags: &[String],
        dockerfile: &str,
        target: &str,
    ) -> Result<Option<BuildEntry>, StoreError> {
        for name in index_names(tags, dockerfile, target) {
            if let Some(entry) = read_json(&self.root.join("builds").join(name))? {
                return Ok(Some(entry));
            }
        }
        Ok(None)
    }

    /// Records `entry` as the latest build of each of `tags` and of
    /// `dockerfile` and `target`; an entry with the same steps is left as
    /// it is (a build that changed nothing writes nothing).
    pub fn record_build(
        &self,
        tags: &[String],
        dockerfile: &str,
        target: &str,
        entry: &BuildEntry,
    ) -> Result<(), StoreError> {
        let bytes = serde_json::to_vec(entry).expect("a build entry serializes");
        for name in index_names(tags, dockerfile, target) {
            let path = self.root.join("builds").join(name);
            let kept: Option<BuildEntry> = read_json(&path).ok().flatten();
            if kept.is_none_or(|k| k.steps != entry.steps) {
                fsutil::write_atomic(&*self.disk, &self.tmp_dir(), &path, &bytes)?;
            }
        }
        Ok(())
    }

    /// Keeps the file list of context checksum `sum` (once per checksum).
    pub fn put_file_list(&self, sum: &str, list: &FileList) -> Result<(), StoreError> {
        let path = self.file_list_path(sum)?;
        if path.exists() {
            return Ok(());
        }
        let bytes = serde_json::to_vec(list).expect("a file list serializes");
        fsutil::write_atomic(&*self.disk, &self.tmp_dir(), &path, &bytes)
    }

    /// The file list of context checksum `sum`, if kept.
    pub fn file_list(&self, sum: &str) -> Result<Option<FileList>, StoreError> {
        read_json(&self.file_list_path(sum)?)
    }

    fn file_list_path(&self, sum: &str) -> Result<std::path::PathBuf, StoreError> {
        // A checksum is a key's hex, so a safe file name; one from a
        // remote record is checked all the same.
        let key = CacheKey::parse(sum).map_err(|e| StoreError::Invalid {
            what: String::from("context checksum"),
            message: e.to_string(),
        })?;
        Ok(self.root.join("file-lists").join(format!("{key}.json")))
    }

    /// When a prune last removed cache records (Unix seconds), if ever.
    pub fn last_prune(&self) -> Result<Option<i64>, StoreError> {
        read_json(&self.pruned_path())
    }

    /// Notes that a prune removed cache records at `secs`.
    pub(crate) fn mark_pruned(&self, secs: i64) -> Result<(), StoreError> {
        let bytes = secs.to_string().into_bytes();
        fsutil::write_atomic(&*self.disk, &self.tmp_dir(), &self.pruned_path(), &bytes)
    }

    fn pruned_path(&self) -> std::path::PathBuf {
        self.root.join("builds").join("pruned.json")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(created: i64, key: &str) -> BuildEntry {
        BuildEntry {
            created,
            steps: vec![BuildStep {
                stage: String::from("build"),
                ordinal: 2,
                platform: String::from("linux/amd64"),
                instruction: String::from("RUN make"),
                key: CacheKey::parse(&key.repeat(32)).unwrap(),
            }],
        }
    }

    #[test]
    fn the_previous_build_is_the_latest_of_a_tag_else_of_the_dockerfile_and_target() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let tags = [String::from("app:v1")];
        assert_eq!(
            store.previous_build(&tags, "/c/Dockerfile", "").unwrap(),
            None
        );
        store
            .record_build(&[], "/c/Dockerfile", "", &entry(1, "aa"))
            .unwrap();
        store
            .record_build(&tags, "/other/Dockerfile", "", &entry(2, "bb"))
            .unwrap();
        let by_tag = store.previous_build(&tags, "/c/Dockerfile", "").unwrap();
        assert_eq!(by_tag, Some(entry(2, "bb")));
        let by_file = store.previous_build(&[], "/c/Dockerfile", "").unwrap();
        assert_eq!(by_file, Some(entry(1, "aa")));
        store
            .record_build(&[], "/c/Dockerfile", "", &entry(3, "aa"))
            .unwrap();
        let same_steps = store.previous_build(&[], "/c/Dockerfile", "").unwrap();
        assert_eq!(same_steps.map(|e| e.created), Some(1), "not rewritten");
        let other_target = store.previous_build(&[], "/c/Dockerfile", "test").unwrap();
        assert_eq!(other_target, None);
    }

    #[test]
    fn a_file_list_is_kept_once_per_checksum_and_a_bad_checksum_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let sum = "ab".repeat(32);
        let list = FileList(vec![(String::from("a.txt"), String::from("0123"))]);
        store.put_file_list(&sum, &list).unwrap();
        store.put_file_list(&sum, &FileList::default()).unwrap();
        assert_eq!(store.file_list(&sum).unwrap(), Some(list));
        assert_eq!(store.file_list(&"cd".repeat(32)).unwrap(), None);
        assert!(store.file_list("../records/x").is_err());
    }

    #[test]
    fn prune_keeps_the_file_lists_of_kept_records_and_notes_when_it_removed_records() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let (kept, orphan) = ("ab".repeat(32), "cd".repeat(32));
        let list = FileList(vec![(String::from("a.txt"), String::from("0123"))]);
        store.put_file_list(&kept, &list).unwrap();
        store.put_file_list(&orphan, &list).unwrap();
        let ingredients = crate::KeyIngredients {
            inputs: vec![crate::KeyInput::Content(kept.clone())],
            ..crate::KeyIngredients::new("linux/amd64", "d".repeat(64))
        };
        let record = crate::CacheRecord {
            snapshots: Vec::new(),
            added: false,
            created: 1,
            ingredients: Some(ingredients),
            content_key: None,
        };
        let key = CacheKey::parse(&"ef".repeat(32)).unwrap();
        store.put_record(&key, &record).unwrap();
        store.prune(crate::PruneOptions::default()).unwrap();
        assert!(store.file_list(&kept).unwrap().is_some());
        assert_eq!(store.file_list(&orphan).unwrap(), None);
        assert_eq!(store.last_prune().unwrap(), None, "no record went");
        let all = crate::PruneOptions {
            all: true,
            ..Default::default()
        };
        store.prune(all).unwrap();
        assert_eq!(store.file_list(&kept).unwrap(), None);
        assert!(
            store
                .last_prune()
                .unwrap()
                .is_some_and(|t| t > 1_700_000_000)
        );
    }

    #[test]
    fn the_last_prune_time_is_kept() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        assert_eq!(store.last_prune().unwrap(), None);
        store.mark_pruned(1_700_000_000).unwrap();
        assert_eq!(store.last_prune().unwrap(), Some(1_700_000_000));
    }
}
