//! Parse + lower a generated 10,000-line Dockerfile; prints the median of
//! 20 runs (wall time, and the thread's CPU time, which other load on the
//! machine does not stretch) beside a plain pass over the same bytes
//! (splitting into lines and words), measured in the same run as the
//! machine's reference. Run with `cargo bench -p rbuild-frontend`.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use rbuild_frontend::{BaseImage, BuildOptions, Dockerfile, ResolvedImage};

fn dockerfile(lines: usize) -> String {
    let mut s = String::from("ARG BASE=busybox\nFROM ${BASE} AS build\n");
    let mut n = 2;
    let mut i = 0;
    while n < lines {
        match i % 5 {
            0 => s.push_str(&format!(
                "ENV VAR{i}=\"value {i}\" OTHER{i}=${{VAR{i}:-x}}\n"
            )),
            1 => s.push_str(&format!(
                "RUN echo step {i} && \\\n    test -n \"$VAR{}\"\n",
                i - 1
            )),
            2 => s.push_str(&format!("COPY --chown=1:1 src/file{i}.txt /app/{i}/\n")),
            3 => s.push_str(&format!("LABEL org.example.step{i}=\"{i}\"\n")),
            _ => s.push_str(&format!("WORKDIR /work/{i}\n")),
        }
        n += if i % 5 == 1 { 2 } else { 1 };
        i += 1;
    }
    s
}

/// The CPU time this thread has run so far (the scheduler's own count).
fn thread_cpu() -> Duration {
    let stat = std::fs::read_to_string("/proc/thread-self/schedstat").expect("schedstat");
    let ns = stat.split_whitespace().next().and_then(|n| n.parse().ok());
    Duration::from_nanos(ns.expect("a CPU time in ns"))
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn main() {
    let text = dockerfile(10_000);
    let opts = BuildOptions {
        platform: String::from("linux/amd64"),
        ..Default::default()
    };
    let busybox = BaseImage {
        name: String::from("busybox"),
        platform: opts.platform.clone(),
    };
    let images = BTreeMap::from([(busybox, ResolvedImage::default())]);
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
