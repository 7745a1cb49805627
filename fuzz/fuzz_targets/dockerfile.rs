//! A Dockerfile of any bytes: parsed, dumped, and lowered with every base
//! image it names resolved to an empty image. An error is fine; a panic, a
//! stack overflow or a hang is a bug.
#![no_main]

use std::collections::BTreeMap;

use libfuzzer_sys::fuzz_target;
use rbuild_frontend::{BuildOptions, Dockerfile, ResolvedImage, dump_ast};

fuzz_target!(|data: &[u8]| {
    let _ = dump_ast("Dockerfile", data);
    let Ok(df) = Dockerfile::parse("Dockerfile", data) else {
        return;
    };
    let opts = BuildOptions {
        platform: String::from("linux/amd64"),
        build_args: BTreeMap::from([(String::from("A"), String::from("a b"))]),
        ..Default::default()
    };
    let Ok(bases) = df.base_images(&opts) else {
        return;
    };
    let images = bases
        .into_iter()
        .map(|base| {
            let image = ResolvedImage {
                reference: base.name.clone(),
                digest: format!("sha256:{}", "0".repeat(64)),
                ..Default::default()
            };
            (base, image)
        })
        .collect();
    let _ = df.lower(&opts, &images);
});
