//! BuildKit's parser corpus and shell-expansion vectors, vendored byte for
//! byte from ../shared/conformance into testdata/conformance (its README and
//! licences included), so that a clean clone tests itself.

use std::path::PathBuf;

use rbuild_frontend::expand::{expand_word, expand_words};
use rbuild_frontend::{Dockerfile, dump_ast};

fn corpus() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../testdata/conformance")
}

fn folders(dir: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(corpus().join(dir))
        .expect("the conformance corpus is at testdata/conformance")
        .map(|e| e.unwrap().path())
        .collect();
    v.sort();
    v
}

#[test]
fn positive_cases_dump_exactly_as_buildkit() {
    let mut failures = Vec::new();
    let cases = folders("parser/cases");
    assert_eq!(cases.len(), 33);
    for case in &cases {
        let source = std::fs::read(case.join("Dockerfile")).unwrap();
        let expected = std::fs::read_to_string(case.join("result")).unwrap();
        match dump_ast("Dockerfile", &source) {
            Ok(dump) if dump == expected => {}
            Ok(dump) => failures.push(format!(
                "{}:\n--- got\n{dump}--- want\n{expected}",
                case.display()
            )),
            Err(e) => failures.push(format!("{}: {e}", case.display())),
        }
    }
    println!(
        "parser: {}/{} cases",
        cases.len() - failures.len(),
        cases.len()
    );
    assert!(
        failures.is_empty(),
        "{} of {} cases differ:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

#[test]
fn negative_cases_fail_with_a_location() {
    let cases = folders("parser/negative");
    assert_eq!(cases.len(), 4, "the README's count");
    for case in cases {
        let source = std::fs::read(case.join("Dockerfile")).unwrap();
        let err = Dockerfile::parse("Dockerfile", &source).expect_err(&case.display().to_string());
        assert!(err.to_string().starts_with("Dockerfile:"), "{err}");
    }
}

#[test]
fn line_numbers_match() {
    let dir = corpus().join("parser/line-numbers");
    let source = std::fs::read(dir.join("Dockerfile")).unwrap();
    let df = Dockerfile::parse("Dockerfile", &source).unwrap();
    let ins = df.instructions();
    assert_eq!(ins.len(), 3);
    for line in std::fs::read_to_string(dir.join("expected"))
        .unwrap()
        .lines()
    {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let f: Vec<&str> = line.split_whitespace().collect();
        let (start, end): (usize, usize) = (f[1].parse().unwrap(), f[2].parse().unwrap());
        if f[0] == "root" {
            assert_eq!((ins[0].line, ins[2].end_line), (start, end), "root");
        } else {
            let i = &ins[f[0].parse::<usize>().unwrap() - 1];
            assert_eq!((i.line, i.end_line), (start, end), "instruction {}", f[0]);
        }
    }
}

fn env_var_test_env(k: &str) -> Option<String> {
    match k {
        "PWD" => Some("/home".into()),
        "SHELL" => Some("bash".into()),
        "KOREAN" => Some("한국어".into()),
        "NULL" => Some(String::new()),
        _ => None,
    }
}

#[test]
fn env_var_vectors() {
    let text = std::fs::read_to_string(corpus().join("shell/envVarTest")).unwrap();
    let mut failures = Vec::new();
    let mut n = 0;
    for line in text.lines() {
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let f: Vec<&str> = line.trim().split('|').map(str::trim).collect();
        assert_eq!(f.len(), 3, "{line}");
        if f[0] == "W" {
            continue;
        }
        n += 1;
        let got = expand_word(f[1], '\\', &env_var_test_env);
        let ok = match (&got, f[2]) {
            (Err(_), "error") => true,
            (Ok(v), want) => want != "error" && v == want,
            _ => false,
        };
        if !ok {
            failures.push(format!("{:?} → {got:?}, want {:?}", f[1], f[2]));
        }
    }
    assert_eq!(n, 228);
    println!("shell envVarTest: {}/{n} vectors", n - failures.len());
    assert!(
        failures.is_empty(),
        "{} of {n} differ:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn words_vectors() {
    let text = std::fs::read_to_string(corpus().join("shell/wordsTest")).unwrap();
    let mut env: Vec<(String, String)> = Vec::new();
    let mut failures = Vec::new();
    let mut n = 0;
    let mut env_lines = 0;
    for line in text.lines() {
        if line.starts_with('#') {
            continue;
        }
        if let Some(rest) = line.strip_prefix("ENV ") {
            env_lines += 1;
            let (k, v) = rest.trim_start_matches(' ').split_once('=').unwrap();
            env.retain(|(n, _)| n != k);
            env.push((k.to_string(), v.to_string()));
            continue;
        }
        let (input, expected) = line.split_once('|').unwrap();
        let input = input.trim();
        let expected = expected.trim_start_matches(' ');
        let lookup = |k: &str| env.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
        n += 1;
        let got = expand_words(input, '\\', &lookup);
        let ok = match (&got, expected) {
            (Err(_), "error") => true,
            (Ok(words), want) => want != "error" && words.join(",") == want,
            _ => false,
        };
        if !ok {
            failures.push(format!("{input:?} → {got:?}, want {expected:?}"));
        }
    }
    assert_eq!((n, env_lines), (24, 4), "the README's counts");
    println!("shell wordsTest: {}/{n} vectors", n - failures.len());
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
