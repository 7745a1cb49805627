//! What every runner of the escape probe needs, shared by the executor's
//! escape tests and the end-to-end sandbox tests (included by path).

use std::path::{Path, PathBuf};

/// Compiles `probe.c` (beside this file, taken in at build time) into
/// `dir`, static, so that it runs on any root filesystem; returns the
/// binary's path.
pub fn compile_probe(dir: &Path) -> PathBuf {
    let src = dir.join("probe.c");
    std::fs::write(&src, include_bytes!("probe.c")).unwrap();
    let out = dir.join("probe");
    let status = std::process::Command::new("cc")
        .args(["-static", "-O2", "-o"])
        .arg(&out)
        .arg(&src)
        .status()
        .expect("a C compiler (cc) is installed");
    assert!(status.success(), "compile {}", src.display());
    std::fs::remove_file(&src).unwrap();
    out
}

/// `PID:NETNS` of this (host) process, as the probe takes them: a process
/// and a network namespace the sandbox must not reach.
pub fn host_ids() -> String {
    use std::os::unix::fs::MetadataExt;
    let netns = std::fs::metadata("/proc/self/ns/net").unwrap().ino();
    format!("{}:{netns}", std::process::id())
}
