//! Parse + lower time grows linearly with the Dockerfile's length: no
//! instruction copies what every earlier one set (a RUN's environment and
//! step variables are shared with the stage, not copied).

use std::time::Duration;

use rbuild_frontend::Dockerfile;

#[path = "../benches/common/mod.rs"]
mod common;

/// The least CPU time of five parse + lower runs of a `lines`-line
/// Dockerfile (the least: other load only ever adds).
fn lower_time(lines: usize) -> Duration {
    let text = common::dockerfile(lines);
    let (opts, images) = common::inputs();
    (0..5)
        .map(|_| {
            let start = common::thread_cpu();
            let df = Dockerfile::parse("Dockerfile", text.as_bytes()).expect("parses");
            let graph = df.lower(&opts, &images).expect("lowers");
            assert!(
                graph.nodes.len() > lines / 2,
                "a node for most instructions"
            );
            common::thread_cpu() - start
        })
        .min()
        .expect("five runs")
}

#[test]
fn ten_times_the_lines_take_about_ten_times_as_long() {
    let (small, large) = (lower_time(1_000), lower_time(10_000));
    let ratio = large.as_secs_f64() / small.as_secs_f64();
    // Linear is 10; copying every variable into every RUN made it ~100.
    assert!(
        ratio < 30.0,
        "10x the lines took {ratio:.1}x the time ({small:?} -> {large:?})"
    );
}
