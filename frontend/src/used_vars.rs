//! The variables a step uses ([`UsedVars`]), shared between steps: a RUN
//! uses every variable its stage set so far, so each RUN holds the stage's
//! sets as they are at that point (see [`crate::stacked`]) instead of a
//! copy of them all. The by-name list is built the first time it is read
//! (when a step's record names them); cache keys hash its digest.

use std::collections::BTreeMap;

use crate::chain::Chain;
use crate::graph::{UsedVar, VarOrigin};
use crate::stacked::{Digested, Stacked, Stacking, hash_field};

/// The variables a step uses, by name. Reads as a `[UsedVar]`.
pub type UsedVars = Stacked<LatestByName>;

/// How [`UsedVars`] are made: of the given variables and the sets on
/// them, the latest set of each name, sorted by name.
pub enum LatestByName {}

impl Digested for UsedVar {
    fn hash_into(&self, h: &mut blake3::Hasher) {
        let origin = match self.origin {
            VarOrigin::Arg => "arg",
            VarOrigin::Env => "env",
        };
        hash_field(h, origin.as_bytes());
        hash_field(h, self.name.as_bytes());
        hash_field(h, self.value.as_bytes());
    }
}

impl Stacking for LatestByName {
    type Entry = UsedVar;
    type Set = UsedVar;

    fn flatten(base: &[UsedVar], sets: &[&UsedVar]) -> Vec<UsedVar> {
        let mut latest: BTreeMap<&str, &UsedVar> = BTreeMap::new();
        for var in base.iter().chain(sets.iter().copied()) {
            latest.insert(var.name.as_str(), var);
        }
        latest.into_values().cloned().collect()
    }
}

impl UsedVars {
    /// All the variables of `sets`, each with its latest origin and value.
    pub(crate) fn latest_of(sets: Chain<UsedVar>) -> Self {
        Self::on(sets)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn the_digest_changes_with_a_value_or_an_origin() {
        let of = |origin, value| {
            let sets = Chain::default().with(var("A", origin, value));
            UsedVars::latest_of(sets).digest()
        };
        assert_eq!(of(VarOrigin::Arg, "1"), of(VarOrigin::Arg, "1"));
        assert_ne!(of(VarOrigin::Arg, "1"), of(VarOrigin::Arg, "2"));
        assert_ne!(of(VarOrigin::Arg, "1"), of(VarOrigin::Env, "1"));
        assert_ne!(of(VarOrigin::Arg, "1"), UsedVars::default().digest());
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
