//! Hostile Dockerfiles: each is refused with a clear error, in bounded time
//! and memory, never with a panic or a stack overflow.

use rbuild_frontend::expand::{MAX_EXPANDED, MAX_NESTING, expand_word};
use rbuild_frontend::{BuildOptions, Dockerfile, MAX_TOTAL_EXPANDED};
use std::collections::BTreeMap;

fn lower_error(source: &str) -> String {
    let df = match Dockerfile::parse("Dockerfile", source.as_bytes()) {
        Ok(df) => df,
        Err(e) => return e.to_string(),
    };
    let opts = BuildOptions {
        platform: String::from("linux/amd64"),
        ..Default::default()
    };
    df.lower(&opts, &BTreeMap::new())
        .expect_err("lowering must fail")
        .to_string()
}

#[test]
fn nesting_20000_deep_over_continuation_lines_is_refused_by_the_logical_line_limit() {
    // Overflowed the stack (SIGABRT) before: every physical line was short.
    let mut source = String::from("FROM scratch\nENV Q=");
    for _ in 0..20_000 {
        source.push_str("${a:-\\\n");
    }
    source.push_str(&"}".repeat(20_000));
    source.push('\n');
    let e = lower_error(&source);
    assert!(e.contains("Dockerfile:2:1:"), "{e}");
    assert!(e.contains("continuation lines joined"), "{e}");
    assert!(
        e.len() < 1_000,
        "the error quotes only an excerpt: {} bytes",
        e.len()
    );
}

#[test]
fn nesting_deeper_than_the_limit_within_one_line_is_a_clear_error() {
    let deep = MAX_NESTING + 1;
    let source = format!(
        "FROM scratch\nENV Q={}x{}\n",
        "${a:-".repeat(deep),
        "}".repeat(deep)
    );
    let e = lower_error(&source);
    assert!(
        e.contains(&format!("nested more than {MAX_NESTING} deep")),
        "{e}"
    );
    let ok = format!(
        "{}x{}",
        "${a:-".repeat(MAX_NESTING),
        "}".repeat(MAX_NESTING)
    );
    assert_eq!(expand_word(&ok, '\\', &|_| None).unwrap(), "x");
}

#[test]
fn a_doubling_env_chain_stops_at_the_expansion_limit() {
    let mut source = String::from("FROM scratch\nENV A=0123456789abcdef\n");
    for _ in 0..40 {
        source.push_str("ENV A=$A$A\n");
    }
    let e = lower_error(&source);
    assert!(
        e.contains(&format!("more than {MAX_EXPANDED} bytes")),
        "{e}"
    );
}

#[test]
fn pattern_forms_do_not_backtrack() {
    let value = "b".repeat(5_000);
    let env = |_: &str| Some(value.clone());
    let stars = "*".repeat(24);
    let started = std::time::Instant::now();
    for form in ["#", "##", "%", "%%"] {
        let word = format!("${{v{form}{stars}a}}");
        assert_eq!(expand_word(&word, '\\', &env).unwrap(), value, "{form}");
    }
    assert_eq!(
        expand_word(&format!("${{v//{stars}a/x}}"), '\\', &env).unwrap(),
        value
    );
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
    // Quadratic at worst (every position starts a match that runs to the
    // end): stopped by a work budget with a clear error.
    let value = "b".repeat(8_000);
    let env = |_: &str| Some(value.clone());
    let e = expand_word("${v//b*a/x}", '\\', &env).unwrap_err();
    assert!(e.contains("too expensive"), "{e}");
    assert_eq!(expand_word("${v//b*b/x}", '\\', &env).unwrap(), "x");
}

#[test]
fn errors_quote_a_short_escaped_excerpt_of_the_line() {
    let long = "x".repeat(10 << 20);
    let source = format!("FROM scratch\nBOGUS \u{1b}[2J{long}\n");
    let e = Dockerfile::parse("Dockerfile", source.as_bytes())
        .expect_err("a 10 MB line is refused")
        .to_string();
    assert!(e.len() < 1_000, "{} bytes", e.len());
    assert!(!e.contains('\u{1b}'), "{e}");
    let source = format!("FROM scratch\nENV A=\"\u{1b}[2J{long}\n");
    let e = lower_error(&source.replace(&long, "y"));
    assert!(!e.contains('\u{1b}'), "{e}");
    assert!(e.contains("\\u{1b}"), "{e}");
}

#[test]
fn a_port_range_is_sixteen_bits() {
    // 0-4294967295 made four billion config entries before.
    for bad in ["0-4294967295", "70000", "20-10"] {
        let e = lower_error(&format!("FROM scratch\nEXPOSE {bad}\n"));
        assert!(e.contains("EXPOSE: invalid containerPort"), "{e}");
    }
}

#[test]
fn step_names_are_short_escaped_excerpts() {
    let source = format!(
        "FROM scratch\nRUN echo \u{1b}]0;title\u{7}{}\n",
        "x".repeat(60_000)
    );
    let df = Dockerfile::parse("Dockerfile", source.as_bytes()).unwrap();
    let opts = BuildOptions {
        platform: String::from("linux/amd64"),
        ..Default::default()
    };
    let graph = df.lower(&opts, &BTreeMap::new()).unwrap();
    let run = graph
        .nodes
        .iter()
        .find(|n| n.name.contains("RUN echo"))
        .expect("the RUN node");
    assert!(run.name.len() < 200, "{}", run.name.len());
    assert!(!run.name.chars().any(char::is_control), "{:?}", run.name);
}

#[test]
fn a_line_of_heredoc_markers_is_read_in_bounded_time() {
    let started = std::time::Instant::now();
    let source = format!("FROM scratch\nRUN {}\n", "<<".repeat(30_000));
    let _ = Dockerfile::parse("Dockerfile", source.as_bytes());
    assert!(
        started.elapsed() < std::time::Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn many_expansions_of_a_large_variable_stop_at_the_total_limit() {
    // Each word alone is within the per-expansion limit; together they
    // would hold gigabytes.
    let mut source = String::from("FROM scratch\nENV A=0123456789abcdef\n");
    for _ in 0..8 {
        source.push_str("ENV A=$A$A$A$A\n");
    }
    // A is now 1 MiB (16 × 4^8 bytes); 200 copies would be 200 MiB.
    for i in 0..200 {
        source.push_str(&format!("ENV B{i}=$A\n"));
    }
    let e = lower_error(&source);
    assert!(
        e.contains(&format!("more than {MAX_TOTAL_EXPANDED} bytes")),
        "{e}"
    );
}

#[test]
fn an_unknown_instruction_is_named_by_an_escaped_excerpt() {
    let keyword = format!("\u{1b}]0;pwned\u{7}{}", "X".repeat(50_000));
    let e = lower_error(&format!("FROM scratch\n{keyword} a\n"));
    assert!(
        e.contains("unknown instruction: \\u{1b}]0;PWNED\\u{7}XX"),
        "{e}"
    );
    assert!(!e.chars().any(|c| c.is_control() && c != '\n'), "{e:?}");
    assert!(e.len() < 1_000, "{} bytes", e.len());
}

#[test]
fn repeated_full_port_ranges_are_bounded_by_the_expansion_budget() {
    // Each line writes a history entry naming 65,536 ports (about 800 KB):
    // without a bound, 50,000 such lines would hold 40 GB.
    // Most of the budget goes to ENV lines (1 MB each), the rest to ports.
    let value = "v".repeat(60_000);
    let spend = "ENV B=$A$A$A$A$A$A$A$A$A$A$A$A$A$A$A$A\n".repeat(60);
    let source = format!(
        "FROM scratch\nENV A={value}\n{spend}{}",
        "EXPOSE 0-65535/udp\n".repeat(20)
    );
    let e = lower_error(&source);
    assert!(
        e.contains(&format!("more than {MAX_TOTAL_EXPANDED} bytes")),
        "{e}"
    );
    assert!(
        e.contains("| EXPOSE 0-65535/udp"),
        "an EXPOSE line goes over: {e}"
    );
}
