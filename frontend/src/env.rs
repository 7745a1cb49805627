//! The environment of an exec op, shared between ops: each variable set
//! in a stage is one link onto the environment before it, so a RUN holds
//! its environment in constant time and space instead of a copy of every
//! variable. The `KEY=value` list is built the first time it is read (the
//! solver's key encoding, the sandbox's spec), and serializes exactly as a
//! plain list does.

use std::collections::HashMap;
use std::fmt;
use std::ops::Deref;
use std::sync::{Arc, OnceLock};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::chain::Chain;

/// An exec's environment as `KEY=value`, in declaration order: a name set
/// again keeps its first position. Reads as a `[String]`.
#[derive(Clone, Default)]
pub struct Env {
    /// Entries as given (an image's environment, a deserialized list).
    base: Arc<Vec<String>>,
    /// The sets on top of `base`, as (key, value).
    sets: Chain<(String, String)>,
    /// `base` with the sets applied, once read.
    list: OnceLock<Vec<String>>,
}

impl Env {
    /// This environment with `key` set to `value` (constant time).
    pub fn with(&self, key: &str, value: &str) -> Self {
        Self {
            base: Arc::clone(&self.base),
            sets: self.sets.with((key.to_string(), value.to_string())),
            list: OnceLock::new(),
        }
    }

    /// `base`, then every set in order, a name set again in its place.
    fn flatten(&self) -> Vec<String> {
        let mut sets: Vec<&(String, String)> = self.sets.newest_first().collect();
        sets.reverse();
        let mut out = Vec::with_capacity(self.base.len() + sets.len());
        let mut index: HashMap<&str, usize> = HashMap::new();
        for entry in self.base.iter() {
            let key = entry.split_once('=').map_or(entry.as_str(), |(k, _)| k);
            index.entry(key).or_insert(out.len());
            out.push(entry.clone());
        }
        for (key, value) in sets {
            let entry = format!("{key}={value}");
            match index.get(key.as_str()) {
                Some(&i) => out[i] = entry,
                None => {
                    index.insert(key, out.len());
                    out.push(entry);
                }
            }
        }
        out
    }
}

impl Deref for Env {
    type Target = [String];

    fn deref(&self) -> &[String] {
        self.list.get_or_init(|| self.flatten())
    }
}

impl From<Vec<String>> for Env {
    fn from(entries: Vec<String>) -> Self {
        Self {
            base: Arc::new(entries),
            ..Self::default()
        }
    }
}

impl PartialEq for Env {
    fn eq(&self, other: &Self) -> bool {
        self[..] == other[..]
    }
}

impl<const N: usize> PartialEq<[&str; N]> for Env {
    fn eq(&self, other: &[&str; N]) -> bool {
        self[..] == other[..]
    }
}

impl fmt::Debug for Env {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

impl Serialize for Env {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.iter())
    }
}

impl<'de> Deserialize<'de> for Env {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Vec::<String>::deserialize(deserializer).map(Self::from)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sets_append_and_a_name_set_again_keeps_its_place() {
        let base = Env::from(vec![String::from("PATH=/bin"), String::from("A=1")]);
        let env = base.with("B", "2").with("A", "3").with("PATH", "/x");
        assert_eq!(env, ["PATH=/x", "A=3", "B=2"]);
        // The environment it was built on is unchanged.
        assert_eq!(base, ["PATH=/bin", "A=1"]);
    }

    #[test]
    fn serializes_as_the_plain_list() {
        let env = Env::default().with("A", "1").with("B", "x=y");
        let json = serde_json::to_string(&env).unwrap();
        assert_eq!(json, r#"["A=1","B=x=y"]"#);
        let back: Env = serde_json::from_str(&json).unwrap();
        assert_eq!(back, env);
    }
}
