//! Results recorded outside the store, asked for when the store has none
//! under a key: a remote build cache (`--cache-from`) implements
//! [`ImportedCache`]. Its layers are [`Layer::Blob`]s, fetched only when a
//! step must run on them or an output needs their bytes.

use rbuild_cache::{BuildStep, CacheKey, KeyIngredients};

use crate::state::Layer;

/// A result found outside the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportedResult {
    /// Its filesystem, bottom layer first.
    pub layers: Vec<Layer>,
    /// Whether the step added a layer of its own.
    pub added: bool,
    /// When the result was first made (Unix seconds).
    pub created: i64,
    /// What its key was hashed from, as the source recorded it (`None`
    /// where it recorded none): kept when the result is exported again,
    /// so that a relayed cache still explains a miss.
    pub ingredients: Option<KeyIngredients>,
    /// The content key the source recorded the same result under too
    /// (see the store's `CacheRecord::content_key`).
    pub content_key: Option<CacheKey>,
}

/// Where the solver looks for a result its store lacks.
pub trait ImportedCache: Send + Sync + std::fmt::Debug {
    /// The result recorded under `key`, if a source has one.
    fn lookup(&self, key: &CacheKey) -> Option<ImportedResult>;

    /// Notes that the result of `key` (whose ingredients are
    /// `ingredients`) is the one found under the content key `found`:
    /// from then on `key` is found too, so that an export of this build
    /// holds it with its content key.
    fn alias(&self, key: &CacheKey, found: &CacheKey, ingredients: &KeyIngredients);
}

/// A step a cache source recorded with its result: a build whose store
/// has no previous build of the step explains its miss against it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportedStep {
    /// Its identity (stage, ordinal, platform), text and record key.
    pub step: BuildStep,
    /// What that key was computed from.
    pub ingredients: KeyIngredients,
    /// The cache it came from, as `--cache-from` named it.
    pub source: String,
}
