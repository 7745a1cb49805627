//! Lists shared between ops ([`Stacked`]): entries given once (an image's
//! environment, a list read back) and sets pushed on top of them in
//! constant time, so that every RUN of a stage holds the stage's sets as
//! they are at that point (one reference count) instead of a copy of them
//! all. The list itself is built the first time it is read, and
//! serializes exactly as a plain list does; its [`Stacked::digest`] names
//! it without building it (what cache keys hash).

use std::fmt;
use std::ops::Deref;
use std::sync::{Arc, OnceLock};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::chain::Chain;

/// A value that feeds a digest: each of its fields length-prefixed, so
/// that field boundaries are unambiguous.
pub trait Digested {
    /// Feeds this value to `h`.
    fn hash_into(&self, h: &mut blake3::Hasher);
}

impl Digested for String {
    fn hash_into(&self, h: &mut blake3::Hasher) {
        hash_field(h, self.as_bytes());
    }
}

/// Feeds `bytes` to `h` after their length.
pub(crate) fn hash_field(h: &mut blake3::Hasher, bytes: &[u8]) {
    h.update(&(bytes.len() as u64).to_le_bytes());
    h.update(bytes);
}

/// How a kind of list is made of the entries it starts from and the sets
/// pushed on top.
pub trait Stacking {
    /// What the list holds.
    type Entry: Digested + Clone + PartialEq + fmt::Debug + Serialize + DeserializeOwned;
    /// What a push sets.
    type Set: Digested;
    /// The list of `base` with `sets` (oldest first) applied.
    fn flatten(base: &[Self::Entry], sets: &[&Self::Set]) -> Vec<Self::Entry>;
}

/// Entries given once, with their digest.
struct Base<E> {
    entries: Vec<E>,
    digest: [u8; 32],
}

impl<E: Digested> Base<E> {
    fn of(entries: Vec<E>) -> Self {
        let mut h = blake3::Hasher::new();
        for entry in &entries {
            entry.hash_into(&mut h);
        }
        Self {
            digest: *h.finalize().as_bytes(),
            entries,
        }
    }
}

/// A list made as `S` makes it of given entries and sets pushed on them,
/// shared between its copies. Reads as a `[S::Entry]`.
pub struct Stacked<S: Stacking> {
    /// Entries as given.
    base: Arc<Base<S::Entry>>,
    /// The sets on top of `base`.
    sets: Chain<S::Set>,
    /// `base` with the sets applied, once read.
    list: OnceLock<Vec<S::Entry>>,
}

impl<S: Stacking> Stacked<S> {
    /// No entries, with `sets` on top.
    pub(crate) fn on(sets: Chain<S::Set>) -> Self {
        Self {
            sets,
            ..Self::default()
        }
    }

    /// This list with `set` pushed on top (constant time).
    pub(crate) fn with_set(&self, set: S::Set) -> Self {
        Self {
            base: Arc::clone(&self.base),
            sets: self.sets.with(set),
            list: OnceLock::new(),
        }
    }

    /// blake3 (hex) of the given entries and of the sets in the order they
    /// were pushed, in constant time. Equal digests mean equal lists; two
    /// lists made by different sets (a name set twice, in another order)
    /// may read the same and still differ here.
    pub fn digest(&self) -> String {
        let mut h = blake3::Hasher::new();
        h.update(&self.base.digest);
        h.update(&self.sets.digest());
        h.finalize().to_hex().to_string()
    }
}

impl<S: Stacking> Default for Stacked<S> {
    fn default() -> Self {
        Self::from(Vec::new())
    }
}

impl<S: Stacking> Clone for Stacked<S> {
    fn clone(&self) -> Self {
        Self {
            base: Arc::clone(&self.base),
            sets: self.sets.clone(),
            list: self.list.clone(),
        }
    }
}

impl<S: Stacking> Deref for Stacked<S> {
    type Target = [S::Entry];

    fn deref(&self) -> &[S::Entry] {
        self.list.get_or_init(|| {
            let mut sets: Vec<&S::Set> = self.sets.newest_first().collect();
            sets.reverse();
            S::flatten(&self.base.entries, &sets)
        })
    }
}

impl<'a, S: Stacking> IntoIterator for &'a Stacked<S> {
    type Item = &'a S::Entry;
    type IntoIter = std::slice::Iter<'a, S::Entry>;

    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

impl<S: Stacking> From<Vec<S::Entry>> for Stacked<S> {
    fn from(entries: Vec<S::Entry>) -> Self {
        Self {
            base: Arc::new(Base::of(entries)),
            sets: Chain::default(),
            list: OnceLock::new(),
        }
    }
}

impl<S: Stacking> PartialEq for Stacked<S> {
    fn eq(&self, other: &Self) -> bool {
        self[..] == other[..]
    }
}

impl<S: Stacking> Eq for Stacked<S> where S::Entry: Eq {}

impl<S: Stacking, T, const N: usize> PartialEq<[T; N]> for Stacked<S>
where
    S::Entry: PartialEq<T>,
{
    fn eq(&self, other: &[T; N]) -> bool {
        self[..] == other[..]
    }
}

impl<S: Stacking> fmt::Debug for Stacked<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

impl<S: Stacking> Serialize for Stacked<S> {
    fn serialize<Z: Serializer>(&self, serializer: Z) -> Result<Z::Ok, Z::Error> {
        serializer.collect_seq(self.iter())
    }
}

impl<'de, S: Stacking> Deserialize<'de> for Stacked<S> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Vec::<S::Entry>::deserialize(deserializer).map(Self::from)
    }
}
