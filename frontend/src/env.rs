//! The environment of an exec op ([`Env`]), shared between ops: each
//! variable set in a stage is one set stacked on the environment before
//! it (see [`crate::stacked`]), so a RUN holds its environment in constant
//! time and space instead of a copy of every variable. The `KEY=value`
//! list is built the first time it is read (the sandbox's spec).

use std::collections::HashMap;

use crate::stacked::{Digested, Stacked, Stacking, hash_field};

/// An exec's environment as `KEY=value`, in declaration order: a name set
/// again keeps its first position. Reads as a `[String]`.
pub type Env = Stacked<EnvSets>;

/// How an [`Env`] is made: the given `KEY=value` entries, then every set
/// `(key, value)` in order, a name set again in its place.
pub enum EnvSets {}

impl Digested for (String, String) {
    fn hash_into(&self, h: &mut blake3::Hasher) {
        hash_field(h, self.0.as_bytes());
        hash_field(h, self.1.as_bytes());
    }
}

impl Stacking for EnvSets {
    type Entry = String;
    type Set = (String, String);

    fn flatten(base: &[String], sets: &[&(String, String)]) -> Vec<String> {
        let mut out = Vec::with_capacity(base.len() + sets.len());
        let mut index: HashMap<&str, usize> = HashMap::new();
        for entry in base {
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

impl Env {
    /// This environment with `key` set to `value` (constant time).
    pub fn with(&self, key: &str, value: &str) -> Self {
        self.with_set((key.to_string(), value.to_string()))
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
    fn the_digest_follows_the_entries_and_the_sets() {
        let base = Env::from(vec![String::from("PATH=/bin")]);
        let env = base.with("A", "1");
        assert_eq!(env.digest(), base.with("A", "1").digest());
        assert_ne!(env.digest(), base.with("A", "2").digest());
        assert_ne!(env.digest(), base.digest());
        let other_base = Env::from(vec![String::from("PATH=/usr/bin")]);
        assert_ne!(env.digest(), other_base.with("A", "1").digest());
        // No field runs into the next.
        assert_ne!(
            Env::default().with("AB", "C").digest(),
            Env::default().with("A", "BC").digest()
        );
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
