//! Computing keys grows linearly with the Dockerfile's length: no RUN's
//! key lists every variable or environment entry set before it (the
//! generated file of the frontend's parse benchmark: a RUN every five
//! instructions, two ENV sets every five).

use std::time::Duration;

#[path = "../../frontend/benches/common/mod.rs"]
mod common;

/// The least CPU time of five key computations for a `lines`-line
/// Dockerfile (the least: other load only ever adds), each timed over
/// `rounds` rounds so that the scheduler's count of the thread's time,
/// which moves at its ticks and switches, sees a small one.
fn keys_time(lines: usize, rounds: u32) -> Duration {
    let text = common::dockerfile(lines);
    let (opts, images) = common::inputs();
    let df = rbuild_frontend::Dockerfile::parse("Dockerfile", text.as_bytes()).expect("parses");
    let graph = df.lower(&opts, &images).expect("lowers");
    (0..5)
        .map(|_| {
            let start = common::thread_cpu();
            for _ in 0..rounds {
                let keys = rbuild_solver::graph_keys(&graph, &opts.platform, "sum");
                assert_eq!(keys.len(), graph.nodes.len(), "a key for every node");
            }
            (common::thread_cpu() - start) / rounds
        })
        .min()
        .expect("five runs")
}

#[test]
fn ten_times_the_lines_take_about_ten_times_as_long() {
    let (small, large) = (keys_time(1_000, 10), keys_time(10_000, 1));
    let ratio = large.as_secs_f64() / small.as_secs_f64();
    // Linear is 10; a list of every earlier variable per RUN made it ~100.
    assert!(
        ratio < 30.0,
        "10x the lines took {ratio:.1}x the time ({small:?} -> {large:?})"
    );
}
