//! `--progress=rawjson`: the build's events as BuildKit's `SolveStatus`
//! objects, one JSON object a line on stderr, as `docker buildx build
//! --progress=rawjson` prints them: `vertexes` (name, inputs, started,
//! completed, cached, error), `logs` (vertex, stream, base64 data,
//! timestamp), `statuses` (a RUN's process: id `process`, its vertex,
//! started and completed, from its sandbox's set-up to its exit; a copy
//! made ahead of its base: ids `staged checksum` and `staged copy`) and
//! `warnings`. A vertex's `digest` is an id of the step in this build
//! (`sha256:` and its number), not an LLB digest: rbuild has no LLB.

use std::collections::HashMap;
use std::io::Write;
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use rbuild_build::{Event, StagedWork, StepId, StepStatus};
use serde_json::{Value, json};

/// Prints events as rawjson lines.
#[derive(Default)]
pub struct RawJson {
    /// What is known of each step seen.
    steps: Mutex<HashMap<StepId, Seen>>,
}

/// A step seen: what every line about its vertex repeats.
struct Seen {
    /// Its number, in the order steps were first seen.
    number: usize,
    /// When it started.
    started: String,
    /// The digests of the steps it reads.
    inputs: Vec<String>,
}

impl RawJson {
    /// Prints one event as a `SolveStatus` line.
    pub fn show(&self, event: Event) {
        let now = timestamp(SystemTime::now());
        let status = match event {
            Event::Started {
                step, name, inputs, ..
            } => {
                let inputs: Vec<String> = inputs.into_iter().map(|s| self.digest(s)).collect();
                let digest = self.begin(step, &now);
                self.read(step, &inputs);
                json!({"vertexes": [{"digest": digest, "inputs": inputs, "name": name, "started": now}]})
            }
            Event::Process {
                step,
                started,
                ended,
            } => {
                json!({"statuses": [{"id": "process", "vertex": self.digest(step), "name": "process",
                    "started": timestamp(started), "completed": timestamp(ended), "timestamp": now}]})
            }
            Event::Staged {
                step,
                work,
                started,
                ended,
            } => {
                let id = match work {
                    StagedWork::Checksum => "staged checksum",
                    StagedWork::Copy => "staged copy",
                    StagedWork::Export => "staged export",
                };
                json!({"statuses": [{"id": id, "vertex": self.digest(step), "name": id,
                    "started": timestamp(started), "completed": timestamp(ended), "timestamp": now}]})
            }
            Event::Log { step, line } => {
                let digest = self.digest(step);
                json!({"logs": [{"vertex": digest, "stream": 1, "data": base64(&line), "timestamp": now}]})
            }
            Event::Finished { step, name, status } => {
                let digest = self.digest(step);
                let (started, inputs) = self.seen(step);
                let mut vertex = json!({"digest": digest, "inputs": inputs, "name": name,
                    "started": started, "completed": now});
                match status {
                    StepStatus::Cached => vertex["cached"] = Value::Bool(true),
                    StepStatus::Failed(_) => vertex["error"] = Value::from("failed"),
                    StepStatus::Done(_) => {}
                }
                json!({"vertexes": [vertex]})
            }
            Event::Warning { message } => {
                json!({"warnings": [{"level": 1, "short": base64(message.as_bytes())}]})
            }
        };
        // One write a line (stderr is unbuffered: the value's own
        // `Display` would write it piece by piece, a syscall for each).
        let line = format!("{status}\n");
        let _ = std::io::stderr().lock().write_all(line.as_bytes());
    }

    /// Numbers `step` (if new) and records when it started (a status
    /// seen before, of a copy staged ahead of it, numbered it only); its
    /// digest.
    fn begin(&self, step: StepId, now: &str) -> String {
        self.number(step, Some(now))
    }

    /// Numbers `step` if new, noting `started` (else now) as when it
    /// started if given or new; its digest.
    fn number(&self, step: StepId, started: Option<&str>) -> String {
        let mut steps = self.steps.lock().expect("poisoned");
        let next = steps.len() + 1;
        let entry = steps.entry(step).or_insert_with(|| Seen {
            number: next,
            started: timestamp(SystemTime::now()),
            inputs: Vec::new(),
        });
        if let Some(started) = started {
            entry.started = started.to_string();
        }
        digest_of(entry.number)
    }

    /// Records the digests of the steps `step` reads.
    fn read(&self, step: StepId, inputs: &[String]) {
        if let Some(seen) = self.steps.lock().expect("poisoned").get_mut(&step) {
            seen.inputs = inputs.to_vec();
        }
    }

    /// When a step seen started, and what it reads.
    fn seen(&self, step: StepId) -> (String, Vec<String>) {
        let steps = self.steps.lock().expect("poisoned");
        let seen = steps.get(&step).expect("numbered before");
        (seen.started.clone(), seen.inputs.clone())
    }

    fn digest(&self, step: StepId) -> String {
        self.number(step, None)
    }
}

/// The id of step number `n` in digest form.
fn digest_of(n: usize) -> String {
    format!("sha256:{n:064x}")
}

/// RFC 3339 with nanoseconds, as Go's `time.Time` marshals.
fn timestamp(t: SystemTime) -> String {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = rbuild_build::time::rfc3339(d.as_secs() as i64);
    format!("{}.{:09}Z", secs.trim_end_matches('Z'), d.subsec_nanos())
}

/// Standard base64 with padding, as Go's JSON encodes `[]byte`.
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for (i, shift) in [18, 12, 6, 0].into_iter().enumerate() {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[(n >> shift & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_is_the_standard_alphabet_with_padding() {
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
        assert_eq!(base64(b"hello\n"), "aGVsbG8K");
        assert_eq!(base64(&[0xff, 0xfe]), "//4=");
    }

    #[test]
    fn a_status_before_its_step_starts_numbers_it_and_leaves_its_start() {
        let raw = RawJson::default();
        let step = StepId::Vertex(4);
        let early = raw.digest(step);
        assert_eq!(raw.begin(step, "later"), early, "one number");
        assert_eq!(raw.seen(step).0, "later", "started when it began");
    }

    #[test]
    fn timestamps_have_nanoseconds() {
        let t = UNIX_EPOCH + std::time::Duration::new(1, 5);
        assert_eq!(timestamp(t), "1970-01-01T00:00:01.000000005Z");
    }
}
