//! The allocator's tuning for builds of large contexts. glibc gives the
//! threads that allocate their own arenas (up to 8 a core), and memory one
//! arena freed is not reused by another: a build holds and frees a
//! structure per context file on several threads (the checksum on a
//! runtime thread, the copy on a blocking one, hashing on rayon's), and
//! kept far more resident than it used. Two arenas: a one-file edit of a
//! 250,000-file context peaked at 302 MB resident with the default, 231 MB
//! with two (one: 225 MB), no slower.

/// Limits the allocator to two arenas. Called first in `main`, before any
/// other thread exists.
pub fn limit_arenas() {
    #[cfg(target_env = "gnu")]
    // SAFETY: mallopt only sets a tunable of the allocator; no other
    // thread exists yet to allocate meanwhile.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 2);
    }
}
