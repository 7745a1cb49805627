//! One test per cause: a step's ingredients against its previous build's,
//! without root or store, asserting the exact text a user reads.

use rbuild_cache::{
    CacheKey, FileList, INGREDIENTS_VERSION, KeyIngredients, KeyInput, StepVar, VarOrigin,
};
use rbuild_explain::{Cause, NoCache, Previous, Step, explain, recorded_value};

const BUSYBOX_OLD: &str = "sha256:1111111111111111111111111111111111111111111111111111111111111111";
const BUSYBOX_NEW: &str = "sha256:2222222222222222222222222222222222222222222222222222222222222222";

fn key(c: &str) -> CacheKey {
    CacheKey::parse(&c.repeat(64)).unwrap()
}

fn var(name: &str, origin: VarOrigin, value: &str) -> StepVar {
    StepVar {
        name: name.to_string(),
        origin,
        value: recorded_value(name, value),
    }
}

/// A COPY of the context on a step's state, with one ARG.
fn ingredients() -> KeyIngredients {
    KeyIngredients {
        inputs: vec![KeyInput::State(key("a")), KeyInput::Content("c".repeat(64))],
        vars: vec![var("VERSION", VarOrigin::Arg, "1.0")],
        base_image: Some(BUSYBOX_OLD.to_string()),
        ..KeyIngredients::new("linux/amd64", "d".repeat(64))
    }
}

const TEXT: &str = "COPY src/ src/";
const NAMES: &[String] = &[];

fn names() -> Vec<String> {
    vec![
        String::from("[build 3/6] RUN make deps"),
        String::from("[internal] load build context"),
    ]
}

/// The cause of `new`'s miss against a recorded `old`, with the file
/// lists `lists` gives by checksum.
fn cause_with(
    old: &KeyIngredients,
    new: &KeyIngredients,
    lists: &dyn Fn(&str) -> Option<FileList>,
) -> Cause {
    let input_names = names();
    let step = Step {
        instruction: TEXT,
        ingredients: new,
        input_names: &input_names,
        base_reference: Some("busybox"),
    };
    let previous = Previous::Recorded {
        instruction: TEXT,
        ingredients: Some(old),
    };
    explain(&step, &previous, NoCache::Off, lists)
}

fn cause(old: &KeyIngredients, new: &KeyIngredients) -> Cause {
    cause_with(old, new, &|_| None)
}

fn step(new: &KeyIngredients) -> Step<'_> {
    Step {
        instruction: TEXT,
        ingredients: new,
        input_names: NAMES,
        base_reference: Some("busybox"),
    }
}

#[test]
fn no_cache_comes_first() {
    let new = ingredients();
    let cause = explain(&step(&new), &Previous::None, NoCache::All, &|_| None);
    assert_eq!(cause.to_string(), "--no-cache");
    let filtered = explain(&step(&new), &Previous::None, NoCache::Filter, &|_| None);
    assert_eq!(filtered.to_string(), "--no-cache-filter");
}

#[test]
fn a_step_no_earlier_build_had_never_ran() {
    let new = ingredients();
    let cause = explain(&step(&new), &Previous::None, NoCache::Off, &|_| None);
    assert_eq!(cause.to_string(), "never ran before on this store");
}

#[test]
fn a_step_only_a_cache_source_recorded_is_compared_with_it_and_says_so() {
    let old = ingredients();
    let mut new = ingredients();
    new.vars = vec![var("VERSION", VarOrigin::Arg, "2.0")];
    let previous = Previous::Cached {
        source: "registry.example/cache:main",
        instruction: TEXT,
        ingredients: &old,
    };
    let cause = explain(&step(&new), &previous, NoCache::Off, &|_| None);
    assert_eq!(
        cause.to_string(),
        r#"build arg VERSION changed: "1.0" → "2.0" (previous build from cache registry.example/cache:main)"#
    );
    // --no-cache still comes first.
    let forced = explain(&step(&new), &previous, NoCache::All, &|_| None);
    assert_eq!(forced, Cause::NoCache);
}

#[test]
fn a_changed_instruction_shows_the_old_and_new_text() {
    let new = ingredients();
    let previous = Previous::Recorded {
        instruction: "COPY src/ /src/",
        ingredients: Some(&new),
    };
    let cause = explain(&step(&new), &previous, NoCache::Off, &|_| None);
    assert_eq!(
        cause.to_string(),
        r#"instruction changed: "COPY src/ /src/" → "COPY src/ src/""#
    );
}

#[test]
fn a_pruned_record_says_when_prune_ran() {
    let new = ingredients();
    let gone = |pruned| Previous::Gone {
        instruction: TEXT,
        pruned,
    };
    let at = explain(
        &step(&new),
        &gone(Some(1_764_466_800)),
        NoCache::Off,
        &|_| None,
    );
    assert_eq!(
        at.to_string(),
        "its cache record was pruned (Sun, 30 Nov 2025 01:40:00 GMT)"
    );
    let unknown = explain(&step(&new), &gone(None), NoCache::Off, &|_| None);
    assert_eq!(unknown.to_string(), "its cache record was pruned");
}

#[test]
fn a_record_of_another_key_scheme_says_so() {
    let new = ingredients();
    let old = KeyIngredients {
        version: INGREDIENTS_VERSION - 1,
        ..ingredients()
    };
    assert_eq!(
        cause(&old, &new).to_string(),
        format!(
            "cache key scheme changed (v{} → v{INGREDIENTS_VERSION})",
            INGREDIENTS_VERSION - 1
        )
    );
    let bare = explain(
        &step(&new),
        &Previous::Recorded {
            instruction: TEXT,
            ingredients: None,
        },
        NoCache::Off,
        &|_| None,
    );
    assert_eq!(
        bare.to_string(),
        format!(
            "cache key scheme changed (v{INGREDIENTS_VERSION} keeps ingredients, the record did not)"
        )
    );
}

#[test]
fn a_changed_build_arg_shows_its_name_and_values() {
    let old = ingredients();
    let new = KeyIngredients {
        vars: vec![var("VERSION", VarOrigin::Arg, "1.1")],
        base_image: Some(BUSYBOX_NEW.to_string()),
        ..ingredients()
    };
    assert_eq!(
        cause(&old, &new).to_string(),
        r#"build arg VERSION changed: "1.0" → "1.1""#
    );
}

#[test]
fn a_new_env_value_and_an_unset_one_read_as_such() {
    let old = ingredients();
    let mut new = ingredients();
    new.vars.push(var("MODE", VarOrigin::Env, "release"));
    assert_eq!(
        cause(&old, &new).to_string(),
        r#"ENV MODE changed: (unset) → "release""#
    );
    assert_eq!(
        cause(&new, &old).to_string(),
        r#"ENV MODE changed: "release" → (unset)"#
    );
}

#[test]
fn a_credential_value_is_never_shown() {
    let old = KeyIngredients {
        vars: vec![var("NPM_TOKEN", VarOrigin::Arg, "s3cret-old")],
        ..ingredients()
    };
    let new = KeyIngredients {
        vars: vec![var("NPM_TOKEN", VarOrigin::Arg, "s3cret-new")],
        ..ingredients()
    };
    let cause = cause(&old, &new);
    assert_eq!(
        cause.to_string(),
        "build arg NPM_TOKEN changed (value redacted)"
    );
    let Cause::Variable { old, new, .. } = cause else {
        panic!("a variable cause")
    };
    assert_eq!((old, new), (None, None), "no digest of the value either");
}

#[test]
fn a_changed_base_image_shows_both_digests() {
    let old = ingredients();
    let new = KeyIngredients {
        base_image: Some(BUSYBOX_NEW.to_string()),
        inputs: vec![KeyInput::State(key("b")), KeyInput::Content("e".repeat(64))],
        ..ingredients()
    };
    assert_eq!(
        cause(&old, &new).to_string(),
        "base image busybox changed: sha256:111111111111 → sha256:222222222222"
    );
}

#[test]
fn changed_files_name_the_first_paths_and_count_all() {
    let old = ingredients();
    let new = KeyIngredients {
        inputs: vec![KeyInput::State(key("b")), KeyInput::Content("e".repeat(64))],
        ..ingredients()
    };
    let list = |entries: &[(&str, &str)]| {
        FileList(
            entries
                .iter()
                .map(|(p, h)| (p.to_string(), h.to_string()))
                .collect(),
        )
    };
    let lists = |sum: &str| match sum.as_bytes()[0] {
        b'c' => Some(list(&[("src/main.c", "1"), ("src/util.c", "2")])),
        b'e' => Some(list(&[("src/main.c", "9"), ("src/util.c", "2")])),
        _ => None,
    };
    assert_eq!(
        cause_with(&old, &new, &lists).to_string(),
        "src/main.c modified (1 of 2 files)"
    );
    let many = |sum: &str| match sum.as_bytes()[0] {
        b'c' => Some(list(&[
            ("a", "1"),
            ("b", "1"),
            ("c", "1"),
            ("d", "1"),
            ("e", "1"),
        ])),
        _ => Some(list(&[
            ("b", "1"),
            ("c", "2"),
            ("d", "1"),
            ("e", "1"),
            ("f", "1"),
            ("g", "1"),
        ])),
    };
    assert_eq!(
        cause_with(&old, &new, &many).to_string(),
        "a removed, c modified, f added, … (4 of 7 files)"
    );
    assert_eq!(
        cause(&old, &new).to_string(),
        "the content of its sources changed",
        "without the lists"
    );
}

#[test]
fn a_parent_that_ran_is_named() {
    let old = ingredients();
    let new = KeyIngredients {
        inputs: vec![KeyInput::State(key("b")), KeyInput::Content("c".repeat(64))],
        ..ingredients()
    };
    assert_eq!(
        cause(&old, &new).to_string(),
        "parent step ran: [build 3/6] RUN make deps"
    );
}

#[test]
fn anything_else_is_a_changed_definition() {
    let old = ingredients();
    let new = KeyIngredients {
        definition: "f".repeat(64),
        ..ingredients()
    };
    assert_eq!(
        cause(&old, &new).to_string(),
        "its definition changed (an earlier SHELL, USER or WORKDIR, the platform, or an option)"
    );
}
