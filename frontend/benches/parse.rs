//! Parse + lower a generated 10,000-line Dockerfile; prints the median of
//! 20 runs (wall time, and the thread's CPU time, which other load on the
//! machine does not stretch) beside a plain pass over the same bytes
//! (splitting into lines and words), measured in the same run as the
//! machine's reference. Run with `cargo bench -p rbuild-frontend`.

use std::time::{Duration, Instant};

use rbuild_frontend::Dockerfile;

mod common;
use common::{dockerfile, inputs, thread_cpu};

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn main() {
    let text = dockerfile(10_000);
    let (opts, images) = inputs();
    let mut ours = Vec::new();
    let mut ours_cpu = Vec::new();
    let mut reference = Vec::new();
    for _ in 0..20 {
        let (t, cpu) = (Instant::now(), thread_cpu());
        let df = Dockerfile::parse("Dockerfile", text.as_bytes()).expect("parses");
        let graph = df.lower(&opts, &images).expect("lowers");
        std::hint::black_box(graph.nodes.len());
        ours.push(t.elapsed());
        ours_cpu.push(thread_cpu() - cpu);
        let t = Instant::now();
        let words: usize = text.lines().map(|l| l.split_whitespace().count()).sum();
        std::hint::black_box(words);
        reference.push(t.elapsed());
    }
    let (a, cpu, b) = (median(ours), median(ours_cpu), median(reference));
    println!(
        "parse+lower of a {}-line Dockerfile: {:.2} ms (median of 20; CPU {:.2} ms); lines+words pass over the same bytes: {:.2} ms; ratio {:.1}",
        text.lines().count(),
        a.as_secs_f64() * 1e3,
        cpu.as_secs_f64() * 1e3,
        b.as_secs_f64() * 1e3,
        a.as_secs_f64() / b.as_secs_f64()
    );
}
