//! The compiled default filter kept in a file across processes (in the
//! store), so that a sandbox does not wait for libseccomp: compiling
//! Docker's profile takes 5-30 ms on this project's machine, loading the
//! program from a file a few microseconds.
//!
//! The file holds one program: a 32-byte key, the blake3 hash of the
//! program, then the program's `sock_filter` instructions as libseccomp
//! exported them. The key is a hash of everything the compiled program
//! depends on: the profile's text, the bounding capabilities, the kernel
//! (release, build and machine: its version decides the profile's
//! `minKernel` rules) and libseccomp (version and API level, which decide
//! the code it generates). A file whose key or hash does not match is
//! ignored and replaced; it is written to a temp name in the store's
//! `tmp/` (swept by gc, should a killed process leave it there) and
//! renamed, so a reader sees a whole program or none.

use std::io::Write;
use std::path::Path;

use super::{Program, ProgramCache};

/// Length of the key and of the program's hash.
const HASH_LEN: usize = 32;

/// What a compiled program depends on, hashed.
pub(super) struct Key([u8; HASH_LEN]);

impl Key {
    /// The key of `profile` compiled for the bounding set `caps` on this
    /// kernel with this libseccomp.
    pub(super) fn new(profile: &str, caps: &[&str]) -> Self {
        let mut h = blake3::Hasher::new();
        h.update(b"rbuild seccomp program v1\0");
        h.update(profile.as_bytes());
        h.update(b"\0");
        for cap in caps {
            h.update(cap.as_bytes());
            h.update(b"\0");
        }
        // SAFETY: uname fills the struct; its fields are NUL-terminated.
        unsafe {
            let mut u: libc::utsname = std::mem::zeroed();
            if libc::uname(&mut u) == 0 {
                for field in [&u.release[..], &u.version[..], &u.machine[..]] {
                    h.update(std::ffi::CStr::from_ptr(field.as_ptr()).to_bytes());
                    h.update(b"\0");
                }
            }
        }
        if let Ok(v) = libseccomp::ScmpVersion::current() {
            h.update(format!("libseccomp {}.{}.{}", v.major, v.minor, v.micro).as_bytes());
        }
        h.update(&libseccomp::get_api().to_le_bytes());
        Self(*h.finalize().as_bytes())
    }
}

/// The program `file` holds for `key`, if it holds a whole one.
pub(super) fn load(file: &Path, key: &Key) -> Option<Program> {
    let bytes = std::fs::read(file).ok()?;
    let (stored_key, rest) = bytes.split_at_checked(HASH_LEN)?;
    let (hash, program) = rest.split_at_checked(HASH_LEN)?;
    if stored_key != key.0 || hash != blake3::hash(program).as_bytes() {
        return None;
    }
    Program::from_bytes(program).ok()
}

/// Writes `program` under `key` to the cache's file (its directory created
/// if missing): to a temp name in the cache's temp dir first, then renamed
/// over the old file.
pub(super) fn store(cache: &ProgramCache, key: &Key, program: &Program) -> std::io::Result<()> {
    let file = &cache.file;
    let dir = file
        .parent()
        .ok_or_else(|| std::io::Error::other("no directory"))?;
    std::fs::create_dir_all(dir)?;
    let bytes = program.to_bytes();
    let mut tmp = tempfile::Builder::new()
        .prefix(".seccomp-")
        .tempfile_in(&cache.temp_dir)?;
    tmp.write_all(&key.0)?;
    tmp.write_all(blake3::hash(&bytes).as_bytes())?;
    tmp.write_all(&bytes)?;
    tmp.persist(file).map_err(|e| e.error)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn program() -> Program {
        Program::from_bytes(&[
            // ld [0]; ret ALLOW
            0x20, 0, 0, 0, 0, 0, 0, 0, 0x06, 0, 0, 0, 0, 0, 0xff, 0x7f,
        ])
        .unwrap()
    }

    #[test]
    fn a_stored_program_loads_back_under_its_key_only() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("store/seccomp.bpf");
        let cache = ProgramCache {
            file: file.clone(),
            temp_dir: dir.path().join("store/tmp"),
        };
        let key = Key::new("{}", &["CAP_CHOWN"]);
        assert!(load(&file, &key).is_none(), "nothing stored yet");
        assert!(
            store(&cache, &key, &program()).is_err(),
            "the temp file is made in the temp dir, which does not exist yet"
        );
        std::fs::create_dir_all(&cache.temp_dir).unwrap();
        store(&cache, &key, &program()).unwrap();
        assert_eq!(load(&file, &key).unwrap().to_bytes(), program().to_bytes());
        for other in [
            Key::new("{ }", &["CAP_CHOWN"]),
            Key::new("{}", &["CAP_CHOWN", "CAP_SYS_ADMIN"]),
        ] {
            assert!(load(&file, &other).is_none());
        }
        assert_eq!(
            std::fs::read_dir(dir.path().join("store")).unwrap().count(),
            2,
            "the file and the temp dir"
        );
        assert!(
            std::fs::read_dir(&cache.temp_dir).unwrap().next().is_none(),
            "no temp file left"
        );
    }

    #[test]
    fn a_damaged_file_is_not_loaded() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("seccomp.bpf");
        let cache = ProgramCache {
            file: file.clone(),
            temp_dir: dir.path().to_path_buf(),
        };
        let key = Key::new("{}", &[]);
        store(&cache, &key, &program()).unwrap();
        let whole = std::fs::read(&file).unwrap();
        let mut flipped = whole.clone();
        *flipped.last_mut().unwrap() ^= 1;
        for damaged in [&whole[..whole.len() - 8], &whole[..40], &flipped[..]] {
            std::fs::write(&file, damaged).unwrap();
            assert!(load(&file, &key).is_none());
        }
    }
}
