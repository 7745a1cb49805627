//! A registry's JSON answers of any bytes, read as an index (platform
//! choice), an image manifest and a token answer: each an answer or an
//! error, never a panic (a token's lifetime is added to the clock).
#![no_main]

use libfuzzer_sys::fuzz_target;
use rbuild_registry::Platform;
use rbuild_registry::answers::{image_manifest, platform_manifest, token};

fuzz_target!(|data: &[u8]| {
    for variant in [None, Some(String::from("v8"))] {
        let platform = Platform {
            os: String::from("linux"),
            architecture: String::from("arm64"),
            variant,
        };
        let _ = platform_manifest(data, &platform);
    }
    let _ = image_manifest(data);
    if let Ok((_, lifetime)) = token(data) {
        let _ = std::time::Instant::now() + lifetime;
    }
});
