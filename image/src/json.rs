//! Canonical JSON: object keys sorted at every level, no whitespace. Image
//! configs and manifests are written this way, so equal images have equal
//! digests whatever the field order of the structs that describe them
//! (BuildKit parity and the tests pin these digests).
//!
//! The keys are sorted by going through `serde_json::Value`, whose maps
//! are ordered by key as long as serde_json's `preserve_order` feature is
//! off in the whole build (a test below fails if some crate turns it on).

use serde::Serialize;

/// `value` as canonical JSON bytes.
pub fn to_canonical_json<T: Serialize>(value: &T) -> Vec<u8> {
    // A `Value` from a Serialize type is always a tree of maps, arrays and
    // scalars with string keys: serializing it cannot fail.
    let tree = serde_json::to_value(value).expect("image documents serialize to JSON");
    serde_json::to_vec(&tree).expect("a JSON value serializes")
}

/// `value` as canonical JSON, indented for people (`rbuild inspect`).
pub fn to_canonical_json_pretty<T: Serialize>(value: &T) -> String {
    let tree = serde_json::to_value(value).expect("image documents serialize to JSON");
    serde_json::to_string_pretty(&tree).expect("a JSON value serializes")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Serialize)]
    struct Unsorted {
        zebra: u8,
        apple: Inner,
    }

    #[derive(Serialize)]
    struct Inner {
        y: u8,
        b: u8,
    }

    #[test]
    fn keys_are_sorted_at_every_level() {
        let bytes = to_canonical_json(&Unsorted {
            zebra: 1,
            apple: Inner { y: 2, b: 3 },
        });
        assert_eq!(bytes, br#"{"apple":{"b":3,"y":2},"zebra":1}"#);
    }
}
