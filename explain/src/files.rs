//! The difference between two file lists of a copy's sources.

use rbuild_cache::FileList;

use crate::cause::{FileChange, FileChangeKind};

/// How many changes a cause names by path; the rest are counted.
const NAMED: usize = 3;

/// The changes from `old` to `new` (both sorted by path): the first few,
/// how many in all, and how many paths the two lists hold together.
pub fn diff(old: &FileList, new: &FileList) -> (Vec<FileChange>, usize, usize) {
    let (mut a, mut b) = (old.0.iter().peekable(), new.0.iter().peekable());
    let (mut first, mut changed, mut total) = (Vec::new(), 0, 0);
    loop {
        let change = match (a.peek(), b.peek()) {
            (None, None) => break,
            (Some((p, _)), None) => Some((p, FileChangeKind::Removed, true, false)),
            (None, Some((p, _))) => Some((p, FileChangeKind::Added, false, true)),
            (Some((pa, ha)), Some((pb, hb))) => match pa.cmp(pb) {
                std::cmp::Ordering::Less => Some((pa, FileChangeKind::Removed, true, false)),
                std::cmp::Ordering::Greater => Some((pb, FileChangeKind::Added, false, true)),
                std::cmp::Ordering::Equal if ha != hb => {
                    Some((pa, FileChangeKind::Modified, true, true))
                }
                std::cmp::Ordering::Equal => {
                    a.next();
                    b.next();
                    total += 1;
                    None
                }
            },
        };
        let Some((path, kind, from_old, from_new)) = change else {
            continue;
        };
        let path = path.clone();
        if from_old {
            a.next();
        }
        if from_new {
            b.next();
        }
        total += 1;
        changed += 1;
        if first.len() < NAMED {
            first.push(FileChange { path, kind });
        }
    }
    (first, changed, total)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(entries: &[(&str, &str)]) -> FileList {
        FileList(
            entries
                .iter()
                .map(|(p, h)| (p.to_string(), h.to_string()))
                .collect(),
        )
    }

    #[test]
    fn added_removed_and_modified_paths_are_found_and_counted() {
        let old = list(&[("a", "1"), ("b", "2"), ("c", "3"), ("e", "5")]);
        let new = list(&[("a", "1"), ("b", "9"), ("d", "4"), ("e", "5")]);
        let (first, changed, total) = diff(&old, &new);
        let shown: Vec<(&str, FileChangeKind)> =
            first.iter().map(|c| (c.path.as_str(), c.kind)).collect();
        assert_eq!(
            shown,
            [
                ("b", FileChangeKind::Modified),
                ("c", FileChangeKind::Removed),
                ("d", FileChangeKind::Added)
            ]
        );
        assert_eq!((changed, total), (3, 5));
    }

    #[test]
    fn only_the_first_few_changes_are_named() {
        let old = list(&[]);
        let new = list(&[("a", "1"), ("b", "1"), ("c", "1"), ("d", "1")]);
        let (first, changed, total) = diff(&old, &new);
        assert_eq!((first.len(), changed, total), (NAMED, 4, 4));
    }
}
