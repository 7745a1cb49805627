//! Replays the frontend's fuzz corpora (`testdata/fuzz/{dockerfile,expand,
//! dockerignore}/`: seeds and every crash the fuzzer found, see
//! `scripts/fuzz.sh`) through the calls their fuzz targets make, so that CI
//! keeps each finding fixed: an answer or an error, in bounded time, never
//! a panic.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use rbuild_frontend::expand::{expand_word, expand_words};
use rbuild_frontend::{BuildOptions, Dockerfile, IgnoreMatcher, parse_dockerignore};

fn corpus(target: &str) -> Vec<(String, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../testdata/fuzz")
        .join(target);
    let mut inputs: Vec<(String, Vec<u8>)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| {
            let path = e.unwrap().path();
            (path.display().to_string(), std::fs::read(&path).unwrap())
        })
        .collect();
    inputs.sort();
    assert!(inputs.len() >= 2, "{target}: {} inputs", inputs.len());
    inputs
}

fn replay(target: &str, run: impl Fn(&[u8])) {
    for (name, data) in corpus(target) {
        let started = Instant::now();
        run(&data);
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{name}: {:?}",
            started.elapsed()
        );
    }
}

#[test]
fn dockerfile_inputs_parse_and_lower_without_panicking() {
    replay("dockerfile", |data| {
        let Ok(df) = Dockerfile::parse("Dockerfile", data) else {
            return;
        };
        let opts = BuildOptions {
            platform: String::from("linux/amd64"),
            ..Default::default()
        };
        if let Ok(bases) = df.base_images(&opts) {
            let images = bases
                .into_iter()
                .map(|name| (name, Default::default()))
                .collect::<BTreeMap<_, _>>();
            let _ = df.lower(&opts, &images);
        }
    });
}

#[test]
fn expand_inputs_expand_without_panicking() {
    let env = |name: &str| (name == "A").then(|| String::from("a b"));
    replay("expand", |data| {
        let Some((&first, rest)) = data.split_first() else {
            return;
        };
        let escape = if first & 1 == 0 { '\\' } else { '`' };
        let text = String::from_utf8_lossy(rest);
        let _ = expand_word(&text, escape, &env);
        let _ = expand_words(&text, escape, &env);
    });
}

#[test]
fn dockerignore_inputs_compile_and_match_without_panicking() {
    replay("dockerignore", |data| {
        let text = String::from_utf8_lossy(data);
        if let Ok(m) = IgnoreMatcher::new(&parse_dockerignore(&text)) {
            for path in text.lines().chain(["a", "a/b/c"]) {
                let _ = m.is_excluded(path);
            }
        }
    });
}
