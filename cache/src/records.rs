//! The key index: cache key → result, and snapshot → layer blob. One small
//! JSON file per entry under `records/` and `layers/`, each written
//! atomically, so concurrent builds and killed processes never see half an
//! entry and lookups cost one file read.

use serde::{Deserialize, Serialize};

use crate::blobs::BlobInfo;
use crate::key::CacheKey;

/// A layer known to the store: its snapshot and, once exported or pulled,
/// its blob.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LayerRecord {
    /// The snapshot holding the unpacked layer.
    pub snapshot: String,
    /// `sha256:` of the uncompressed tar (the config's diff_id).
    pub diff_id: String,
    /// The blob (possibly compressed).
    pub blob: BlobInfo,
    /// The blob's media type.
    pub media_type: String,
    /// The `SOURCE_DATE_EPOCH` the blob's file times were clamped to, for
    /// a layer exported from a built snapshot (part of its identity: the
    /// same snapshot makes another blob under another epoch).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub epoch: Option<i64>,
}

/// What a cache key resolves to: the layers of a filesystem state, bottom
/// first, each a snapshot id (plus its layer record if it has a blob), and
/// what went into the key.
///
/// Records written before these fields were named kept `added` and
/// `created` in a free-form `meta` object; they still read (see
/// [`StoredRecord`]), without ingredients.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "StoredRecord")]
pub struct CacheRecord {
    /// Snapshot ids, bottom layer first.
    pub snapshots: Vec<String>,
    /// Whether the step added a layer of its own (a step whose changes are
    /// empty adds none, as in BuildKit).
    pub added: bool,
    /// When the result was first made (Unix seconds): the image history's
    /// `created` of a cached rebuild, and what `prune --older-than` and
    /// `--keep-storage` order by.
    pub created: i64,
    /// What the key the record is stored under was computed from; `None`
    /// in records older than the ingredients.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ingredients: Option<KeyIngredients>,
    /// The content key the same result is recorded under too (hashed from
    /// what the step's inputs hold rather than from their keys: a copy
    /// from a stage keys on the files it selects), so that whatever holds
    /// this record can hold that one with it (a cache export).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_key: Option<CacheKey>,
}

/// The version of [`KeyIngredients`] this rbuild writes (and of the key
/// scheme hashed from them): bump it when what goes into a key changes.
pub const INGREDIENTS_VERSION: u32 = 4;

/// Everything a cache key is hashed from, in the order it is hashed: the
/// key is a function of these fields alone (see the solver's `keys`;
/// `vars` is not hashed, `vars_digest` stands for it), so a later build
/// can say which one changed. Nothing of the machine is in them: no store
/// path, snapshot id or host name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyIngredients {
    /// The scheme: [`INGREDIENTS_VERSION`] when written.
    pub version: u32,
    /// The platform the step runs for, e.g. `linux/amd64`.
    pub platform: String,
    /// blake3 of the op's definition in the key encoding (the solver's
    /// `keyenc`: every field by name, in a fixed order).
    pub definition: String,
    /// What each input contributes, by input position.
    pub inputs: Vec<KeyInput>,
    /// blake3 of the build args and ENV values the step uses, of the
    /// sets that made them in their order (the frontend's
    /// `UsedVars::digest`, computed as the stage is lowered, so that the
    /// key of each of n RUNs costs no list of every variable before it);
    /// empty for a vertex of no instruction.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub vars_digest: String,
    /// Those variables by name, as a record keeps them so that a later
    /// build can name the one that changed: not hashed (`vars_digest`
    /// stands for them) and listed only where a record is written or a
    /// miss explained, never for a key alone.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub vars: Vec<StepVar>,
    /// Checksums of the remote sources (ADD of a URL or git repository)
    /// the op fetched, in action order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub remotes: Vec<String>,
    /// The manifest digest of the stage's base image (`FROM`), if it has
    /// one and the result depends on it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_image: Option<String>,
}

impl KeyIngredients {
    /// The ingredients, in the current scheme ([`INGREDIENTS_VERSION`]),
    /// of a step for `platform` whose op's definition digests to
    /// `definition`: no inputs, variables, remote sources or base image
    /// until they are set.
    pub fn new(platform: impl Into<String>, definition: impl Into<String>) -> Self {
        Self {
            version: INGREDIENTS_VERSION,
            platform: platform.into(),
            definition: definition.into(),
            inputs: Vec::new(),
            vars_digest: String::new(),
            vars: Vec::new(),
            remotes: Vec::new(),
            base_image: None,
        }
    }
}

/// A build arg or ENV value a step uses.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepVar {
    /// The variable's name.
    pub name: String,
    /// Whether an ARG or an ENV of the Dockerfile set it.
    pub origin: VarOrigin,
    /// Its value; for a name that looks like a credential, `redacted:`
    /// and the blake3 of the value instead, so a change still shows.
    pub value: String,
}

/// Where a variable a step uses was set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VarOrigin {
    /// An `ARG` (its default or a `--build-arg`).
    Arg,
    /// An `ENV`.
    Env,
}

/// One input's part in a key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KeyInput {
    /// The state of an earlier vertex, by its key.
    State(CacheKey),
    /// The build context: the checksum of exactly the files the op
    /// selects (or mounts) in it.
    Content(String),
    /// An earlier stage a copy reads from, by the checksum of exactly the
    /// files it selects there (content, modes, owners, times), so that a
    /// rebuilt stage that left them as they were still hits.
    StageFiles(String),
    /// The base of a linked copy (`COPY --link`), whose result does not
    /// depend on it.
    AnyBase,
}

/// A record as it may be on disk: the named fields, or the `meta` object
/// of records written before them.
#[derive(Deserialize)]
struct StoredRecord {
    snapshots: Vec<String>,
    added: Option<bool>,
    created: Option<i64>,
    #[serde(default)]
    ingredients: Option<KeyIngredients>,
    #[serde(default)]
    content_key: Option<CacheKey>,
    #[serde(default)]
    meta: Option<LegacyMeta>,
}

/// The `meta` object of a record written before the fields were named.
#[derive(Deserialize, Default)]
struct LegacyMeta {
    added: Option<bool>,
    created: Option<i64>,
}

impl From<StoredRecord> for CacheRecord {
    fn from(stored: StoredRecord) -> Self {
        let legacy = stored.meta.unwrap_or_default();
        CacheRecord {
            snapshots: stored.snapshots,
            // A result whose record does not say added a layer, as the
            // solver has always assumed.
            added: stored.added.or(legacy.added).unwrap_or(true),
            created: stored.created.or(legacy.created).unwrap_or(0),
            ingredients: stored.ingredients,
            content_key: stored.content_key,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_with_the_old_meta_object_reads_into_the_named_fields() {
        let old = br#"{"snapshots":["a"],"meta":{"added":false,"created":1700000000}}"#;
        let record: CacheRecord = serde_json::from_slice(old).unwrap();
        assert_eq!(record.snapshots, ["a"]);
        assert!(!record.added);
        assert_eq!(record.created, 1_700_000_000);
        assert_eq!(record.ingredients, None);
        let null_meta: CacheRecord =
            serde_json::from_slice(br#"{"snapshots":[],"meta":null}"#).unwrap();
        assert!(null_meta.added);
        assert_eq!(null_meta.created, 0);
    }

    #[test]
    fn a_record_round_trips_with_its_ingredients() {
        let key = CacheKey::parse(&"ab".repeat(32)).unwrap();
        let record = CacheRecord {
            snapshots: vec![String::from("s1")],
            added: true,
            created: 42,
            ingredients: Some(KeyIngredients {
                inputs: vec![
                    KeyInput::State(key),
                    KeyInput::Content(String::from("sum")),
                    KeyInput::AnyBase,
                ],
                vars: vec![StepVar {
                    name: String::from("VERSION"),
                    origin: VarOrigin::Arg,
                    value: String::from("1.2"),
                }],
                base_image: Some(String::from("sha256:00")),
                ..KeyIngredients::new("linux/amd64", "cd".repeat(32))
            }),
            content_key: Some(CacheKey::parse(&"ef".repeat(32)).unwrap()),
        };
        let bytes = serde_json::to_vec(&record).unwrap();
        assert!(!String::from_utf8_lossy(&bytes).contains("meta"));
        assert_eq!(
            serde_json::from_slice::<CacheRecord>(&bytes).unwrap(),
            record
        );
    }
}
