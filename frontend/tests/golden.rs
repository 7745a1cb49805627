//! Golden tests of lowering: every `testdata/*/Dockerfile` and
//! `testdata/diff/*/Dockerfile` (found by walking the directories) is
//! lowered without root or network, and its op graph, image config and
//! history — or its error — are compared, as JSON with sorted keys, with
//! `frontend/tests/golden/<case>.json`. `UPDATE_GOLDEN=1 cargo test -p
//! rbuild-frontend --test golden` rewrites the files; reviewing their diff
//! is how a change of lowering is noticed.
//!
//! A case's `platform` file sets the target platform (the build platform
//! is linux/amd64). Base images are not pulled: each resolves to a stand-in with a digest
//! derived from its name and a config holding only the default PATH (see
//! [`stand_in`]), so what a golden pins is the frontend's own work.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use rbuild_frontend::config::{History, ImageConfig};
use rbuild_frontend::{BuildOptions, Dockerfile, ResolvedImage, parse_dockerignore};
use serde_json::{Value, json};

fn testdata() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../testdata")
}

fn golden_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden")
}

/// `(case name, directory)` of every case: `testdata/X` is `X`,
/// `testdata/diff/X` is `diff-X`.
fn cases() -> Vec<(String, PathBuf)> {
    let mut out = Vec::new();
    for (prefix, dir) in [("", testdata()), ("diff-", testdata().join("diff"))] {
        let mut entries: Vec<PathBuf> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("read {}: {e}", dir.display()))
            .map(|e| e.expect("a directory entry").path())
            .filter(|p| p.join("Dockerfile").is_file())
            .collect();
        entries.sort();
        for path in entries {
            let name = path.file_name().expect("a name").to_string_lossy();
            out.push((format!("{prefix}{name}"), path));
        }
    }
    out
}

/// A base image as the golden tests resolve it: a digest derived from the
/// name (stable, distinct per name) and a config with the default PATH.
fn stand_in(name: &str) -> ResolvedImage {
    let digest: String = name
        .bytes()
        .chain(std::iter::repeat(0))
        .take(32)
        .map(|b| format!("{b:02x}"))
        .collect();
    ResolvedImage {
        reference: name.to_string(),
        digest: format!("sha256:{digest}"),
        config: ImageConfig {
            env: vec![String::from(
                "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            )],
            ..ImageConfig::default()
        },
        history: vec![History {
            created_by: format!("stand-in for {name}"),
            ..History::default()
        }],
    }
}

/// The case's lowering (or its error) as JSON.
fn lowered(dir: &Path) -> Value {
    let source = std::fs::read(dir.join("Dockerfile")).expect("read the Dockerfile");
    let ignore = std::fs::read_to_string(dir.join(".dockerignore")).unwrap_or_default();
    // A case's `platform` file names another target platform than the
    // build platform, linux/amd64.
    let target = std::fs::read_to_string(dir.join("platform"))
        .map_or_else(|_| String::from("linux/amd64"), |p| p.trim().to_string());
    let opts = BuildOptions {
        platform: target,
        build_platform: String::from("linux/amd64"),
        ignore_patterns: parse_dockerignore(&ignore),
        ..BuildOptions::default()
    };
    let result = Dockerfile::parse("Dockerfile", &source).and_then(|df| {
        let images = df
            .base_images(&opts)?
            .into_iter()
            .map(|base| {
                let image = stand_in(&base.name);
                (base, image)
            })
            .collect::<BTreeMap<_, _>>();
        df.lower(&opts, &images)
    });
    match result {
        Ok(graph) => readable(serde_json::to_value(&graph).expect("a graph serializes")),
        Err(e) => json!({ "error": e.to_string() }),
    }
}

/// `value` with object keys sorted, file contents (`data` byte arrays)
/// shown as text and modes in octal, so a golden reads and diffs well.
fn readable(value: Value) -> Value {
    match value {
        Value::Object(map) => {
            let mut entries: Vec<(String, Value)> = map.into_iter().collect();
            entries.sort_by(|a, b| a.0.cmp(&b.0));
            let map = entries
                .into_iter()
                .map(|(k, v)| {
                    let v = match (k.as_str(), v) {
                        ("data", Value::Array(bytes)) => {
                            let bytes: Vec<u8> = bytes
                                .iter()
                                .map(|b| b.as_u64().expect("a byte") as u8)
                                .collect();
                            Value::String(String::from_utf8_lossy(&bytes).into_owned())
                        }
                        ("mode", Value::Number(n)) if n.is_u64() => {
                            Value::String(format!("0o{:o}", n.as_u64().expect("a mode")))
                        }
                        (_, v) => readable(v),
                    };
                    (k, v)
                })
                .collect();
            Value::Object(map)
        }
        Value::Array(items) => Value::Array(items.into_iter().map(readable).collect()),
        other => other,
    }
}

#[test]
fn every_testdata_dockerfile_lowers_as_its_golden_says() {
    let update = std::env::var_os("UPDATE_GOLDEN").is_some_and(|v| v == "1");
    let cases = cases();
    assert!(cases.len() > 10, "found only {} cases", cases.len());
    let mut differing = Vec::new();
    let mut first = String::new();
    for (name, dir) in &cases {
        let text = serde_json::to_string_pretty(&lowered(dir)).expect("JSON") + "\n";
        let path = golden_dir().join(format!("{name}.json"));
        if update {
            std::fs::write(&path, &text)
                .unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
            continue;
        }
        let golden = std::fs::read_to_string(&path).ok();
        if golden.as_deref() != Some(text.as_str()) {
            if first.is_empty() {
                first = first_difference(name, golden.as_deref(), &text);
            }
            differing.push(name.clone());
        }
    }
    assert!(
        differing.is_empty(),
        "lowering differs from (or has no) golden for {differing:?}: review, then rewrite with \
         UPDATE_GOLDEN=1 cargo test -p rbuild-frontend --test golden\n{first}"
    );
}

/// Where `now` first differs from the golden of case `name`.
fn first_difference(name: &str, golden: Option<&str>, now: &str) -> String {
    let Some(golden) = golden else {
        return format!("{name}: no golden yet");
    };
    let (mut old, mut new) = (golden.lines(), now.lines());
    for line in 1.. {
        match (old.next(), new.next()) {
            (Some(a), Some(b)) if a == b => continue,
            (None, None) => break,
            (a, b) => {
                return format!(
                    "{name}.json line {line}:\n  golden: {}\n  now:    {}",
                    a.unwrap_or("(end)"),
                    b.unwrap_or("(end)")
                );
            }
        }
    }
    format!("{name}: differs")
}

#[test]
fn every_golden_belongs_to_a_testdata_dockerfile() {
    let names: Vec<String> = cases()
        .into_iter()
        .map(|(n, _)| format!("{n}.json"))
        .collect();
    let update = std::env::var_os("UPDATE_GOLDEN").is_some_and(|v| v == "1");
    for entry in std::fs::read_dir(golden_dir()).expect("the golden directory") {
        let path = entry.expect("an entry").path();
        let file = path
            .file_name()
            .expect("a name")
            .to_string_lossy()
            .into_owned();
        if !file.ends_with(".json") || names.contains(&file) {
            continue;
        }
        if update {
            std::fs::remove_file(&path).expect("remove a stale golden");
        } else {
            panic!("{file} has no testdata Dockerfile: remove it (UPDATE_GOLDEN=1 does)");
        }
    }
}
