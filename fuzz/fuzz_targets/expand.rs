//! Shell-word expansion of any text, with either escape character, over
//! variables holding spaces, wildcards and nothing: a word or an error,
//! never a panic, a stack overflow or a hang.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rbuild_frontend::expand::{expand_word, expand_words};

fn env(name: &str) -> Option<String> {
    match name {
        "A" => Some(String::from("a b")),
        "STAR" => Some(String::from("*?[x]\\")),
        "EMPTY" => Some(String::new()),
        "LONG" => Some("x".repeat(4096)),
        _ => None,
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&first, rest)) = data.split_first() else {
        return;
    };
    let escape = if first & 1 == 0 { '\\' } else { '`' };
    let text = String::from_utf8_lossy(rest);
    let _ = expand_word(&text, escape, &env);
    let _ = expand_words(&text, escape, &env);
});
