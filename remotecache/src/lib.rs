//! The build cache away from the store (`--cache-to` / `--cache-from`):
//! written to and read from an OCI registry or an OCI layout directory, so
//! that a machine with an empty store (a CI runner) still builds from
//! cache. No service of its own: what every CI already has.
//!
//! # The format (version 1)
//!
//! A cache is one OCI image manifest (`application/vnd.oci.image.manifest.v1+json`),
//! tagged where `ref=` (registry) or `tag=` (layout directory) says:
//!
//! - `config`: a JSON blob of media type
//!   `application/vnd.rbuild.cache.config.v1+json` (canonical JSON: sorted
//!   keys, no spaces), [`CacheConfig`]:
//!   ```json
//!   {"layers":[{"diff_id":"sha256:…","digest":"sha256:…","media_type":"…tar+zstd","size":123}],
//!    "records":[{"added":true,"created":1700000000,"ingredients":{…},"key":"<64 hex>","layers":[0,1]}],
//!    "steps":[{"instruction":"COPY src/ /src/","key":"<64 hex>","ordinal":4,"platform":"linux/amd64","stage":"stage-0"}],
//!    "version":1}
//!   ```
//!   `layers` lists every layer blob, in the manifest's order; each record
//!   maps a cache key to its result: the indexes of its layers, bottom
//!   first (base image layers included; the step's parent chain is its
//!   layers less the last when it `added` one), whether the step added a
//!   layer, when the result was made (so the image history, and so the
//!   image, come out the same), and the key's ingredients (checksums,
//!   digests, the platform, the variables a step uses: what `--explain`
//!   compares), and optionally `content_key`: another key of the cache
//!   whose record holds the same result, hashed from what the step's
//!   inputs hold rather than their keys (a `COPY --from` keys on the
//!   checksum of the files it takes, whole-second times clamped to
//!   `SOURCE_DATE_EPOCH` as its layer keeps them; a step on top of it on
//!   that key), so that a build whose source stage changed but not those
//!   files finds the copy and what follows it; an export holds both
//!   records. `steps` (optional; a reader before it ignores it) names
//!   the build step of each record with ingredients: stage, instruction
//!   position, platform and text, so a store with no previous build of a
//!   step explains its miss against the cache.
//! - `layers`: the layer blobs, compressed as `compression=` says (zstd by
//!   default for built layers; base image layers as pulled).
//!
//! A reader refuses (with a warning, and builds without it) a manifest
//! whose config has another media type (BuildKit's own caches,
//! `application/vnd.buildkit.cacheconfig.v0`, included), another version,
//! layers that disagree with the manifest's, or a key naming a layer that
//! is not there.
//!
//! An inline cache (`type=inline`) is the same records without their own
//! manifest: they ride in the image config under `rbuild.cache.v1`, each
//! record's layers indexing the image manifest's layers (see [`inline_cache`]).
//!
//! # What a cache reveals
//!
//! Whoever can read the cache can read every exported layer: with
//! `mode=max` that includes intermediate stages (sources, build tools,
//! anything a build stage wrote to its filesystem). Besides layers:
//! hashes (cache keys, the blake3 of each step's definition, checksums of
//! the context files a step reads, base image digests), the platform, the
//! values of the build args and ENV variables each step uses (a
//! credential-looking name's only as a digest), and each step's stage
//! name and instruction text (a RUN's command as written). No file names
//! are written, and cache mounts (`RUN --mount=type=cache`) and secrets
//! are never exported.
//!
//! # Import and export
//!
//! Import reads the manifest and config only; a layer blob is fetched
//! (and verified against its digest) when a step must run on top of it or
//! an output needs its bytes. Export makes the layer blobs (each once; a
//! blob the target has is not sent again, one of the same registry is
//! mounted), then the config, and writes the manifest last, so a reader
//! never sees a partial cache and two exports to one place leave one
//! complete cache (the last).

mod error;
mod export;
mod format;
mod import;
mod inline;
mod layout;
mod spec;

pub use error::CacheError;
pub use export::{ExportReport, Held, export};
pub use format::{
    BUILDKIT_CONFIG_MEDIA_TYPE, CONFIG_MEDIA_TYPE, CacheConfig, CacheEntry, CacheLayer,
    FORMAT_VERSION,
};
pub use import::{ImportedCaches, import};
pub use inline::{INLINE_FIELD, inline_cache};
pub use layout::Layout;
pub use spec::{
    CacheExport, CacheSource, CacheTarget, DEFAULT_COMPRESSION, DEFAULT_TAG, Mode,
    parse_cache_from, parse_cache_to,
};
