//! `RUN --mount=type=bind`: the sandbox sees exactly the selected source,
//! as BuildKit mounts it. A directory of a stage or image is an overlay of
//! its layers (read-only, or with a throw-away upper dir for `rw`); a file
//! of a stage, and a source of the build context, is a private copy made
//! for this RUN, so that `.dockerignore` applies (with its `!` exceptions)
//! and nothing else of the host or of the store is visible. The copy is
//! removed when the RUN ends, with whatever an `rw` mount wrote to it.
//! A context source the copy would show unchanged (see [`as_is`]) is not
//! copied: it is bound read-only as it is, or, for `rw`, as the lower dir
//! of an overlay whose throw-away upper dir takes the writes.

use std::fs::Permissions;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use rbuild_executor::{BindMount, LayerMount};
use rbuild_frontend::IgnoreMatcher;
use rbuild_frontend::graph::{FileAction, FileOp};

use crate::as_is;
use crate::context;
use crate::fileop::{self, Source};
use crate::keys;
use crate::layered::{self, FsView, HostTree, LayerStack};
use crate::modes::ContextModes;

/// What a bind mount reads: the build context or a state's layers.
#[derive(Debug, Clone)]
pub enum BindSource {
    /// The build context directory, its `.dockerignore` and the modes its
    /// files carry.
    Context {
        /// The context directory.
        dir: PathBuf,
        /// Its `.dockerignore`.
        ignore: IgnoreMatcher,
        /// The permission bits context files carry.
        modes: ContextModes,
    },
    /// Layer directories, bottom first.
    Layers(Vec<PathBuf>),
}

/// How the sandbox gets a bind mount.
pub enum Bound {
    /// A host path of the context bound read-only as it is.
    AsIs(BindMount),
    /// A host path bound as it is: a private copy, kept until dropped.
    Copy {
        /// The mount.
        mount: BindMount,
        /// The directory holding the copy.
        holder: tempfile::TempDir,
    },
    /// An overlay of layers.
    Layers(LayerMount),
}

/// The mount of `source` of `from` at `target`, writable (writes
/// discarded) when `readwrite`. Copies go to a new directory in `scratch`.
pub fn prepare(
    from: &BindSource,
    source: &str,
    target: &str,
    readwrite: bool,
    scratch: &Path,
) -> Result<Bound, String> {
    match from {
        BindSource::Context { dir, ignore, modes } => {
            let view = HostTree::new(dir);
            let ignored = |p: &str| ignore.is_excluded(p);
            let from = Source {
                view: &view,
                is_context: true,
                modes: *modes,
                ignored: &ignored,
            };
            match unchanged(&from, source, target, readwrite)? {
                Some(bound) => Ok(bound),
                None => copy(&from, source, target, readwrite, scratch),
            }
        }
        BindSource::Layers(lowers) => {
            let view = LayerStack::new(lowers.clone());
            let resolved = layered::resolve(&view, source, true).map_err(|e| e.to_string())?;
            let host = view
                .locate(&resolved)
                .ok_or_else(|| format!("bind source {}: not found", context::escaped(source)))?;
            if host.is_dir() {
                return Ok(Bound::Layers(LayerMount {
                    lowers: lowers.clone(),
                    source: resolved,
                    target: target.to_string(),
                    readwrite,
                }));
            }
            let from = Source::layers(&view);
            copy(&from, &resolved, target, readwrite, scratch)
        }
    }
}

/// The context's `source` mounted as it is on the host, when a copy would
/// show it unchanged: read-only, or a directory under a throw-away overlay
/// upper dir for `rw` (`None` for an `rw` file, or when a copy differs).
fn unchanged(
    from: &Source<'_>,
    source: &str,
    target: &str,
    readwrite: bool,
) -> Result<Option<Bound>, String> {
    let found =
        context::expand(from.view, source, from.ignored).map_err(|e| format!("bind source {e}"))?;
    let Some(selected) = found.first() else {
        return Ok(None);
    };
    let Some(host) = from.view.locate(&selected.resolved) else {
        return Ok(None);
    };
    let same = as_is::shows_as_copied(
        from.view,
        &selected.resolved,
        &host,
        from.ignored,
        from.modes,
    )
    .map_err(|e| format!("bind source {}: {e}", context::escaped(source)))?;
    Ok(match (same, readwrite, host.is_dir()) {
        (false, _, _) | (true, true, false) => None,
        (true, false, _) => Some(Bound::AsIs(BindMount {
            source: host,
            target: target.to_string(),
            readonly: true,
        })),
        (true, true, true) => Some(Bound::Layers(LayerMount {
            lowers: vec![host],
            source: String::from("/"),
            target: target.to_string(),
            readwrite: true,
        })),
    })
}

/// A private copy of `source` of `from` (a directory's content, or one
/// file), bound at `target`.
fn copy(
    from: &Source<'_>,
    source: &str,
    target: &str,
    readwrite: bool,
    scratch: &Path,
) -> Result<Bound, String> {
    let found =
        context::expand(from.view, source, from.ignored).map_err(|e| format!("bind source {e}"))?;
    let selected = found
        .first()
        .ok_or_else(|| format!("bind source {}: not found", context::escaped(source)))?;
    let is_dir = from
        .view
        .locate(&selected.resolved)
        .is_some_and(|h| h.is_dir());
    let holder = tempfile::Builder::new()
        .prefix("bind-")
        .tempdir_in(scratch)
        .map_err(|e| format!("temp dir in {}: {e}", scratch.display()))?;
    let root = holder.path().join("root");
    std::fs::create_dir(&root).map_err(|e| format!("create {}: {e}", root.display()))?;
    std::fs::set_permissions(&root, Permissions::from_mode(as_is::COPY_ROOT_MODE))
        .map_err(|e| format!("chmod {}: {e}", root.display()))?;
    let op = FileOp {
        actions: vec![FileAction::Copy(keys::mount_source_copy(1, source))],
    };
    let sources = [None, Some(Source { ..*from })];
    fileop::apply(&op, &[], &root, &sources, &Default::default())
        .map_err(|e| format!("bind source {}: {e}", context::escaped(source)))?;
    let path = match is_dir {
        true => root,
        false => layered::host_join(&root, layered::base_name(&selected.named)),
    };
    Ok(Bound::Copy {
        mount: BindMount {
            source: path,
            target: target.to_string(),
            readonly: !readwrite,
        },
        holder,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn context(dir: &Path, ignore: &[&str]) -> BindSource {
        let patterns: Vec<String> = ignore.iter().map(|s| s.to_string()).collect();
        BindSource::Context {
            dir: dir.to_path_buf(),
            ignore: IgnoreMatcher::new(&patterns).unwrap(),
            modes: ContextModes::OnDisk,
        }
    }

    fn copied(bound: &Bound) -> &Path {
        match bound {
            Bound::Copy { mount, .. } => &mount.source,
            _ => panic!("a copy was expected"),
        }
    }

    #[test]
    fn a_context_bind_shows_exactly_the_source_with_dockerignore_applied() {
        let dir = tempfile::tempdir().unwrap();
        let ctx = dir.path().join("ctx");
        let scratch = dir.path().join("scratch");
        std::fs::create_dir_all(ctx.join("sub/deep")).unwrap();
        std::fs::create_dir(&scratch).unwrap();
        for f in ["secret.key", "keep.txt", "sub/x.tmp", "sub/deep/y.txt"] {
            std::fs::write(ctx.join(f), f).unwrap();
        }
        let from = context(&ctx, &["secret.key", "**/*.tmp"]);
        let whole = prepare(&from, "/", "/ctx", false, &scratch).unwrap();
        let root = copied(&whole);
        assert!(root.join("keep.txt").is_file());
        assert!(root.join("sub/deep/y.txt").is_file());
        assert!(!root.join("secret.key").exists());
        assert!(!root.join("sub/x.tmp").exists());
        let sub = prepare(&from, "sub", "/s", false, &scratch).unwrap();
        let names: Vec<_> = std::fs::read_dir(copied(&sub))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["deep"]);
        let one = prepare(&from, "keep.txt", "/k", true, &scratch).unwrap();
        assert_eq!(std::fs::read_to_string(copied(&one)).unwrap(), "keep.txt");
        let err = prepare(&from, "secret.key", "/k", false, &scratch).err();
        assert!(err.is_some_and(|e| e.contains("not found")));
        drop(whole);
        drop(sub);
        drop(one);
        assert_eq!(std::fs::read_dir(&scratch).unwrap().count(), 0, "copies go");
    }

    #[test]
    fn a_context_source_a_copy_would_show_unchanged_is_not_copied() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let ctx = dir.path().join("ctx");
        std::fs::create_dir_all(ctx.join("src")).unwrap();
        std::fs::set_permissions(&ctx, Permissions::from_mode(0o755)).unwrap();
        std::fs::write(ctx.join("src/a.c"), "a").unwrap();
        std::fs::write(ctx.join("src/b.c"), "b").unwrap();
        std::fs::set_permissions(ctx.join("src/b.c"), Permissions::from_mode(0o664)).unwrap();
        std::fs::write(ctx.join("secret.key"), "s").unwrap();
        let scratch = dir.path();
        let is_as_is = |from: &BindSource, source: &str, rw: bool| match prepare(
            from, source, "/m", rw, scratch,
        )
        .unwrap()
        {
            Bound::AsIs(m) => m.readonly && m.source == ctx.join(source.trim_start_matches('/')),
            Bound::Layers(m) => m.readwrite && m.lowers == [ctx.join(source)],
            Bound::Copy { .. } => false,
        };
        let plain = context(&ctx, &[]);
        assert!(is_as_is(&plain, "/", false));
        assert!(
            is_as_is(&plain, "src", true),
            "rw: an overlay of the host dir"
        );
        assert!(is_as_is(&plain, "src/a.c", false));
        assert!(!is_as_is(&plain, "src/a.c", true), "an rw file is copied");
        // What .dockerignore hides, git modes would change, or another
        // owner holds, a copy shows differently: it is copied.
        assert!(!is_as_is(&context(&ctx, &["secret.key"]), "/", false));
        assert!(is_as_is(&context(&ctx, &["secret.key"]), "src", false));
        let git = BindSource::Context {
            dir: ctx.clone(),
            ignore: IgnoreMatcher::new(&[]).unwrap(),
            modes: ContextModes::Git,
        };
        assert!(!is_as_is(&git, "src", false));
        assert!(is_as_is(&git, "src/a.c", false));
        std::os::unix::fs::lchown(ctx.join("src/a.c"), Some(1000), Some(1000)).unwrap();
        assert!(!is_as_is(&plain, "src", false));
        assert!(is_as_is(&plain, "src/b.c", false));
        std::fs::hard_link(ctx.join("src/b.c"), ctx.join("b-link")).unwrap();
        assert!(
            !is_as_is(&plain, "src/b.c", false),
            "its link count would differ"
        );
        std::fs::remove_file(ctx.join("b-link")).unwrap();
        std::os::unix::fs::lchown(ctx.join("src/a.c"), Some(0), Some(0)).unwrap();
        assert!(is_as_is(&plain, "/", false));
        std::fs::set_permissions(&ctx, Permissions::from_mode(0o700)).unwrap();
        assert!(!is_as_is(&plain, "/", false), "the copy's root is 0755");
    }

    #[test]
    fn a_layer_bind_resolves_its_source_inside_the_layers() {
        let dir = tempfile::tempdir().unwrap();
        let layer = dir.path().join("layer");
        std::fs::create_dir_all(layer.join("usr/lib")).unwrap();
        std::fs::write(layer.join("usr/lib/os-release"), "os").unwrap();
        std::os::unix::fs::symlink("/usr/lib", layer.join("lib")).unwrap();
        let from = BindSource::Layers(vec![layer.clone()]);
        match prepare(&from, "/lib", "/m", false, dir.path()).unwrap() {
            Bound::Layers(m) => assert_eq!(m.source, "/usr/lib"),
            _ => panic!("a directory is an overlay"),
        }
        let file = prepare(&from, "/lib/os-release", "/f", false, dir.path()).unwrap();
        assert_eq!(std::fs::read_to_string(copied(&file)).unwrap(), "os");
    }
}
