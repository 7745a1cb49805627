//! Cache keys of the generated 10,000-line Dockerfile of the frontend's
//! parse benchmark (about 2,000 RUNs in one stage, each using every
//! variable set before it): the median of 9 key computations, wall and
//! the thread's CPU time (which other load does not stretch), beside the
//! parse + lower of the same file in the same run.
//! Run with `cargo bench -p rbuild-solver --bench keys`.

use std::time::{Duration, Instant};

#[path = "../../frontend/benches/common/mod.rs"]
mod common;

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn main() {
    let text = common::dockerfile(10_000);
    let (opts, images) = common::inputs();
    let (mut lower, mut keys, mut keys_cpu) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..9 {
        let t = Instant::now();
        let df = rbuild_frontend::Dockerfile::parse("Dockerfile", text.as_bytes()).expect("parses");
        let graph = df.lower(&opts, &images).expect("lowers");
        lower.push(t.elapsed());
        let (t, cpu) = (Instant::now(), common::thread_cpu());
        let k = rbuild_solver::graph_keys(&graph, &opts.platform, "sum");
        keys.push(t.elapsed());
        keys_cpu.push(common::thread_cpu() - cpu);
        std::hint::black_box(k.len());
    }
    println!(
        "keys of a 10,000-line Dockerfile: {:.2} ms (median of 9; CPU {:.2} ms); its parse + lower: {:.2} ms",
        ms(median(keys)),
        ms(median(keys_cpu)),
        ms(median(lower)),
    );
}
