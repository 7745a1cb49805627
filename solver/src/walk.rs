//! Walking everything below a directory in path order, one entry at a
//! time, so that a context checksum or a copy of 250,000 files never holds
//! the list of them all.
//!
//! Path order is that of the whole paths' bytes, so a sibling named
//! `name-x` sorts between a directory `name` and what it holds (`-` is
//! below `/`). Each directory's listing is sorted with its
//! subdirectories' contents as items of their own, keyed `name/`: the
//! paths with a common prefix are consecutive in that order, so walking
//! such an item where it sorts gives exactly the order of a full sort.

use std::io;
use std::path::PathBuf;

use crate::context::{Excluded, escaped, relative};
use crate::layered::{self, FsView};

/// An entry the walk visits.
#[derive(Debug)]
pub struct Walked {
    /// Its path in the view.
    pub path: String,
    /// Where the host holds it.
    pub host: PathBuf,
    /// Whether it is a directory (not following a symlink), as its
    /// directory's listing says: a host tree's `readdir` gives it, no
    /// `stat` needed.
    pub is_dir: bool,
}

/// One item of a directory's walk.
enum Item {
    /// An entry of the directory, and whether it is excluded.
    Entry {
        path: String,
        host: PathBuf,
        is_dir: bool,
        excluded: bool,
    },
    /// The contents of a subdirectory (sorted as `path/`), and whether
    /// the subdirectory itself is excluded.
    Below { path: String, excluded: bool },
}

impl Item {
    /// The bytes the item sorts by: its path, `/` appended for contents.
    fn key(&self) -> impl Iterator<Item = u8> + '_ {
        let (path, slash) = match self {
            Item::Entry { path, .. } => (path, None),
            Item::Below { path, .. } => (path, Some(b'/')),
        };
        path.bytes().chain(slash)
    }
}

/// An excluded directory whose place in the order has passed: it is
/// listed there if something below it is (a `!` exception re-includes
/// it), which is known only once its contents are walked; what comes
/// after it is held back meanwhile.
struct Hold {
    entry: Walked,
    /// Where in the held entries it goes.
    at: usize,
    /// How many entries were held when its contents began.
    below_from: usize,
}

/// Where walked entries go: to the visitor, or held while an excluded
/// directory's listing is undecided.
struct Sink<'v> {
    visit: &'v mut dyn FnMut(Walked) -> io::Result<()>,
    held: Vec<Walked>,
    holds: Vec<Hold>,
}

impl Sink<'_> {
    fn emit(&mut self, walked: Walked) -> io::Result<()> {
        match self.holds.is_empty() {
            true => (self.visit)(walked),
            false => {
                self.held.push(walked);
                Ok(())
            }
        }
    }

    /// Decides the innermost hold: its contents are walked.
    fn close(&mut self) -> io::Result<()> {
        let hold = self.holds.pop().expect("the hold of the walked directory");
        if self.held.len() > hold.below_from {
            self.held.insert(hold.at, hold.entry);
        }
        if self.holds.is_empty() {
            for walked in std::mem::take(&mut self.held) {
                (self.visit)(walked)?;
            }
        }
        Ok(())
    }
}

/// The items of directory `dir`, in walk order.
fn items_of(view: &dyn FsView, dir: &str, excluded: Excluded<'_>) -> io::Result<Vec<Item>> {
    let entries = view
        .list_entries(dir)
        .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", escaped(dir))))?;
    let mut items = Vec::with_capacity(entries.len());
    for (name, host, is_dir) in entries {
        let path = layered::child(dir, &name);
        let hidden = excluded(relative(&path));
        if is_dir {
            items.push(Item::Below {
                path: path.clone(),
                excluded: hidden,
            });
        }
        items.push(Item::Entry {
            path,
            host,
            is_dir,
            excluded: hidden,
        });
    }
    items.sort_by(|a, b| a.key().cmp(b.key()));
    Ok(items)
}

/// Calls `visit` with everything below `root` (not `root` itself) and its
/// host path, in path order, skipping excluded paths but descending into
/// excluded directories, where a `!` exception may re-include something:
/// an excluded directory is visited when something below it is, as
/// BuildKit's context transfer keeps the parents of what it sends. One
/// `readdir` per directory, no `stat` per entry (for a host tree).
pub fn walk_each(
    view: &dyn FsView,
    root: &str,
    excluded: Excluded<'_>,
    visit: &mut dyn FnMut(Walked) -> io::Result<()>,
) -> io::Result<()> {
    let mut sink = Sink {
        visit,
        held: Vec::new(),
        holds: Vec::new(),
    };
    // The directories being walked, each with whether it is excluded
    // (and so has a hold to close once walked).
    let mut frames = vec![(items_of(view, root, excluded)?.into_iter(), false)];
    while let Some((items, _)) = frames.last_mut() {
        let Some(item) = items.next() else {
            let (_, hidden) = frames.pop().expect("a frame");
            if hidden {
                sink.close()?;
            }
            continue;
        };
        match item {
            Item::Entry {
                path,
                host,
                is_dir,
                excluded: false,
            } => sink.emit(Walked { path, host, is_dir })?,
            Item::Entry {
                path,
                host,
                is_dir: true,
                excluded: true,
            } => sink.holds.push(Hold {
                entry: Walked {
                    path,
                    host,
                    is_dir: true,
                },
                at: sink.held.len(),
                below_from: 0,
            }),
            Item::Entry { .. } => {}
            Item::Below {
                path,
                excluded: hidden,
            } => {
                if hidden {
                    let hold = sink.holds.last_mut().expect("the directory's hold");
                    hold.below_from = sink.held.len();
                }
                frames.push((items_of(view, &path, excluded)?.into_iter(), hidden));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layered::HostTree;

    /// Everything below `root` that a walk lists, by the definition: not
    /// excluded, or a directory with something listed below it; sorted.
    fn by_definition(view: &HostTree, root: &str, excluded: Excluded<'_>) -> Vec<String> {
        fn below(view: &HostTree, dir: &str, excluded: Excluded<'_>, out: &mut Vec<String>) {
            for (name, _, is_dir) in view.list_entries(dir).unwrap() {
                let path = layered::child(dir, &name);
                let before = out.len();
                if is_dir {
                    below(view, &path, excluded, out);
                }
                if !excluded(relative(&path)) || out.len() > before {
                    out.push(path);
                }
            }
        }
        let mut out = Vec::new();
        below(view, root, excluded, &mut out);
        out.sort();
        out
    }

    #[test]
    fn the_order_is_a_full_sort_of_the_paths_and_excluded_parents_of_kept_files_stay() {
        let dir = tempfile::tempdir().unwrap();
        for d in [
            "a/x",
            "a-b/y",
            "a.c",
            "a0/z",
            "b/keep/deep",
            "b/drop",
            "b-/q",
        ] {
            std::fs::create_dir_all(dir.path().join(d)).unwrap();
        }
        for f in [
            "a/1",
            "a/x/2",
            "a-b/3",
            "a-b/y/4",
            "a.c/5",
            "a0/6",
            "a!",
            "b/keep/deep/k.log",
            "b/drop/d.log",
            "b/drop.log",
            "b-/q/7",
            "b-/8.log",
        ] {
            std::fs::write(dir.path().join(f), f).unwrap();
        }
        let view = HostTree::new(dir.path());
        let walked = |root: &str, excluded: Excluded<'_>| {
            let mut out = Vec::new();
            walk_each(&view, root, excluded, &mut |w| {
                assert_eq!(w.host, dir.path().join(relative(&w.path)));
                assert_eq!(w.is_dir, w.host.is_dir());
                out.push(w.path);
                Ok(())
            })
            .unwrap();
            out
        };
        let none = |_: &str| false;
        let all = walked("/", &none);
        assert_eq!(all, by_definition(&view, "/", &none));
        assert!(all.len() > 20);
        let only_logs = |p: &str| !p.ends_with(".log");
        assert_eq!(
            walked("/", &only_logs),
            by_definition(&view, "/", &only_logs)
        );
        assert_eq!(
            walked("/b", &only_logs),
            vec![
                "/b/drop",
                "/b/drop.log",
                "/b/drop/d.log",
                "/b/keep",
                "/b/keep/deep",
                "/b/keep/deep/k.log"
            ]
        );
        let a_hidden = |p: &str| p.starts_with('a') && p != "a/x/2";
        assert_eq!(walked("/", &a_hidden), by_definition(&view, "/", &a_hidden));
        assert!(walked("/", &a_hidden).contains(&String::from("/a/x")));
    }
}
