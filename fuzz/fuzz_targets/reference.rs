//! Image references of any text: a reference or an error, and a parsed
//! reference round-trips (`parse(r.to_string()) == r`).
#![no_main]

use libfuzzer_sys::fuzz_target;
use rbuild_registry::Reference;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let Ok(reference) = Reference::parse(&text) else {
        return;
    };
    let shown = reference.to_string();
    let again = Reference::parse(&shown)
        .unwrap_or_else(|e| panic!("{text:?} → {shown:?} does not parse again: {e}"));
    assert_eq!(again, reference, "{text:?} → {shown:?}");
});
