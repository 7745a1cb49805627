//! `.dockerignore` text of any bytes: its patterns compiled, then matched
//! against its own lines taken as paths and a few fixed ones. An error for
//! a malformed pattern is fine; a panic or a slow match is a bug.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rbuild_frontend::{IgnoreMatcher, parse_dockerignore};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let Ok(matcher) = IgnoreMatcher::new(&parse_dockerignore(&text)) else {
        return;
    };
    for path in text
        .lines()
        .chain(["a", "a/b/c", "src/main.rs", ".git/config", "x/y/z/w/v/u"])
    {
        let _ = matcher.is_excluded(path);
    }
});
