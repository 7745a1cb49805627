//! The cache key: what a build step's result is recorded under.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A cache key: 64 lowercase hex digits (a blake3 hash), so it is safe as a
/// file name and compares byte for byte. Serialized as its string.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct CacheKey(String);

/// A string that is not a cache key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cache key {0:?}: must be 64 lowercase hex digits")]
pub struct InvalidKey(pub String);

impl CacheKey {
    /// The key of a hash.
    pub fn from_hash(hash: &blake3::Hash) -> Self {
        CacheKey(hash.to_hex().to_string())
    }

    /// Checks and wraps `text`.
    pub fn parse(text: &str) -> Result<Self, InvalidKey> {
        let hex = |b: u8| b.is_ascii_digit() || (b'a'..=b'f').contains(&b);
        if text.len() == 64 && text.bytes().all(hex) {
            Ok(CacheKey(text.to_string()))
        } else {
            Err(InvalidKey(text.to_string()))
        }
    }

    /// The hex digits.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for CacheKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for CacheKey {
    type Error = InvalidKey;

    fn try_from(text: String) -> Result<Self, InvalidKey> {
        CacheKey::parse(&text)
    }
}

impl From<CacheKey> for String {
    fn from(key: CacheKey) -> String {
        key.0
    }
}

impl std::str::FromStr for CacheKey {
    type Err = InvalidKey;

    fn from_str(text: &str) -> Result<Self, InvalidKey> {
        CacheKey::parse(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_64_lowercase_hex_digits_are_keys() {
        let good = "0123456789abcdef".repeat(4);
        assert_eq!(CacheKey::parse(&good).unwrap().to_string(), good);
        for bad in [
            "",
            "k1",
            &good[..63],
            &good.to_uppercase(),
            &format!("{good}0"),
        ] {
            assert!(CacheKey::parse(bad).is_err(), "{bad:?}");
        }
        let traversal = format!("../{}", &good[3..]);
        assert!(CacheKey::parse(&traversal).is_err());
    }

    #[test]
    fn a_key_serializes_as_its_string_and_is_checked_when_read() {
        let key = CacheKey::from_hash(&blake3::hash(b"x"));
        let json = serde_json::to_string(&key).unwrap();
        assert_eq!(json, format!("\"{key}\""));
        assert_eq!(serde_json::from_str::<CacheKey>(&json).unwrap(), key);
        assert!(serde_json::from_str::<CacheKey>("\"../etc\"").is_err());
    }
}
