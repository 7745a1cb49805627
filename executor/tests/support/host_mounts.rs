//! The host's mounts that rbuild could have left behind, shared by the
//! executor's sandbox tests and the end-to-end tests (included by path).

use std::path::Path;

/// The lines of the host's `/proc/self/mountinfo` that rbuild could have
/// made: mounts whose mount point, root, source or overlay layer dirs lie
/// under one of `dirs` (the test's store and temp dirs) or under a sandbox
/// dir (`rbuild-sandbox-…`). Mounts of other processes (a BuildKit daemon's)
/// are left out, so that a test comparing these before and after does not
/// depend on what else the machine mounts meanwhile.
pub fn rbuild_mounts(dirs: &[&Path]) -> Vec<String> {
    let ours = |path: &str| {
        let path = Path::new(path);
        dirs.iter().any(|d| path.starts_with(d))
            || path.components().any(|c| {
                c.as_os_str()
                    .to_string_lossy()
                    .starts_with("rbuild-sandbox-")
            })
    };
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .filter(|line| {
            // ID PARENT MAJ:MIN ROOT MOUNT-POINT OPTIONS [OPTIONAL…] - TYPE SOURCE SUPER-OPTIONS
            let fields: Vec<&str> = line.split(' ').collect();
            let tail = fields
                .iter()
                .position(|f| *f == "-")
                .unwrap_or(fields.len());
            let super_options = fields.get(tail + 3).copied().unwrap_or("");
            let layer_dirs = super_options
                .split(',')
                .filter_map(|o| o.split_once('='))
                .filter(|(k, _)| matches!(*k, "lowerdir" | "upperdir" | "workdir"))
                .flat_map(|(_, v)| v.split(':'));
            [fields.get(3), fields.get(4), fields.get(tail + 2)]
                .into_iter()
                .flatten()
                .copied()
                .chain(layer_dirs)
                .any(ours)
        })
        .map(str::to_string)
        .collect()
}
