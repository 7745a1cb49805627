//! The generated Dockerfile of the parse benchmark and how it is timed,
//! shared with the test that checks lowering time grows linearly with
//! its length.

use std::collections::BTreeMap;
use std::time::Duration;

use rbuild_frontend::{BaseImage, BuildOptions, ResolvedImage};

/// A Dockerfile of about `lines` lines in one stage: ENV pairs (one
/// expanding the previous), RUNs over two lines using them, COPY with
/// `--chown`, LABEL and WORKDIR, in turn.
pub fn dockerfile(lines: usize) -> String {
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

/// The build options and the resolved base image that lower [`dockerfile`].
pub fn inputs() -> (BuildOptions, BTreeMap<BaseImage, ResolvedImage>) {
    let opts = BuildOptions {
        platform: String::from("linux/amd64"),
        ..Default::default()
    };
    let busybox = BaseImage {
        name: String::from("busybox"),
        platform: opts.platform.clone(),
    };
    (opts, BTreeMap::from([(busybox, ResolvedImage::default())]))
}

/// The CPU time this thread has run so far (the scheduler's own count).
pub fn thread_cpu() -> Duration {
    let stat = std::fs::read_to_string("/proc/thread-self/schedstat").expect("schedstat");
    let ns = stat.split_whitespace().next().and_then(|n| n.parse().ok());
    Duration::from_nanos(ns.expect("a CPU time in ns"))
}
