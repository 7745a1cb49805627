//! The variables a step uses ([`UsedVars`]), shared between steps: a RUN
//! uses every variable its stage set so far, so each RUN holds the stage's
//! sets as they are at that point (one reference count) instead of a copy
//! of them all. The by-name list is built the first time it is read (the
//! solver's key ingredients), and serializes exactly as a plain list does.

use std::collections::BTreeMap;
use std::fmt;
use std::ops::Deref;
use std::sync::OnceLock;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::chain::Chain;
use crate::graph::UsedVar;

/// The variables a step uses, by name. Reads as a `[UsedVar]`.
#[derive(Clone, Default)]
pub struct UsedVars {
    /// Every set of a variable, for a step that uses them all.
    sets: Chain<UsedVar>,
    /// The latest set of each name, by name (or the list as given).
    list: OnceLock<Vec<UsedVar>>,
}

impl UsedVars {
    /// All the variables of `sets`, each with its latest origin and value.
    pub(crate) fn latest_of(sets: Chain<UsedVar>) -> Self {
        Self {
            sets,
            list: OnceLock::new(),
        }
    }

    /// The latest set of each name, sorted by name.
    fn flatten(&self) -> Vec<UsedVar> {
        let mut latest: BTreeMap<&str, &UsedVar> = BTreeMap::new();
        for var in self.sets.newest_first() {
            latest.entry(var.name.as_str()).or_insert(var);
        }
        latest.into_values().cloned().collect()
    }
}

impl Deref for UsedVars {
    type Target = [UsedVar];

    fn deref(&self) -> &[UsedVar] {
        self.list.get_or_init(|| self.flatten())
    }
}

impl<'a> IntoIterator for &'a UsedVars {
    type Item = &'a UsedVar;
    type IntoIter = std::slice::Iter<'a, UsedVar>;

    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

impl From<Vec<UsedVar>> for UsedVars {
    fn from(list: Vec<UsedVar>) -> Self {
        Self {
            sets: Chain::default(),
            list: OnceLock::from(list),
        }
    }
}

impl PartialEq for UsedVars {
    fn eq(&self, other: &Self) -> bool {
        self[..] == other[..]
    }
}

impl Eq for UsedVars {}

impl fmt::Debug for UsedVars {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

impl Serialize for UsedVars {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.iter())
    }
}

impl<'de> Deserialize<'de> for UsedVars {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Vec::<UsedVar>::deserialize(deserializer).map(Self::from)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::VarOrigin;

    fn var(name: &str, origin: VarOrigin, value: &str) -> UsedVar {
        UsedVar {
            name: name.to_string(),
            origin,
            value: value.to_string(),
        }
    }

    #[test]
    fn each_name_reads_once_with_its_latest_set_sorted_by_name() {
        let sets = Chain::default()
            .with(var("B", VarOrigin::Arg, "1"))
            .with(var("A", VarOrigin::Env, "2"))
            .with(var("B", VarOrigin::Env, "3"));
        let used = UsedVars::latest_of(sets.clone());
        assert_eq!(
            used[..],
            [var("A", VarOrigin::Env, "2"), var("B", VarOrigin::Env, "3")]
        );
        // A later set is not seen by the step taken before it.
        let later = sets.with(var("C", VarOrigin::Arg, "4"));
        assert_eq!(used.len(), 2);
        assert_eq!(UsedVars::latest_of(later).len(), 3);
    }

    #[test]
    fn serializes_as_the_plain_list() {
        let used = UsedVars::latest_of(Chain::default().with(var("A", VarOrigin::Arg, "x")));
        let json = serde_json::to_string(&used).unwrap();
        assert_eq!(json, r#"[{"name":"A","origin":"arg","value":"x"}]"#);
        let back: UsedVars = serde_json::from_str(&json).unwrap();
        assert_eq!(back, used);
    }
}
