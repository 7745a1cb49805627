//! The progress of a build as a stream of typed events, for whoever shows
//! it (the CLI's plain or terminal display, later `--progress=rawjson`),
//! and the per-step records a build returns. Steps are the graph's
//! vertices and the build's own steps (loading the definition, exporting).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use rbuild_solver::{Cause, Progress, StagedWork, VertexStatus};

/// A step of the build.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StepId {
    /// A vertex of the op graph (its node index).
    Vertex(usize),
    /// A step of the build's own, numbered in the order it began.
    Own(usize),
}

/// How a step ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StepStatus {
    /// It ran for this long.
    Done(Duration),
    /// Its result came from the cache.
    Cached,
    /// It failed after this long.
    Failed(Duration),
}

/// One thing that happened during a build.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A step began.
    Started {
        /// Which.
        step: StepId,
        /// Its name (`[2/5] RUN make`).
        name: String,
        /// For a step that runs because the cache had no result for it:
        /// why (what changed since the previous build).
        cause: Option<Cause>,
        /// The steps it reads (a step of the build's own reads none).
        inputs: Vec<StepId>,
    },
    /// A step wrote a line (a RUN's output, or a note of the build's own:
    /// `writing image sha256:… done`).
    Log {
        /// Which.
        step: StepId,
        /// The line, as written (not always UTF-8).
        line: Vec<u8>,
    },
    /// A step ended.
    Finished {
        /// Which.
        step: StepId,
        /// Its name.
        name: String,
        /// How.
        status: StepStatus,
    },
    /// A RUN step's process ran, from its sandbox's set-up to its exit:
    /// the part of the step's time that is the command's.
    Process {
        /// Which.
        step: StepId,
        /// When its sandbox began to be set up.
        started: SystemTime,
        /// When it exited.
        ended: SystemTime,
    },
    /// Part of a copy made ahead of its step's base ran (the solver's
    /// staging): the checksum of what it selects, or the copy itself.
    Staged {
        /// Which step it is for.
        step: StepId,
        /// Which part.
        work: StagedWork,
        /// When it began.
        started: SystemTime,
        /// When it ended.
        ended: SystemTime,
    },
    /// Something the user should know that is not an error
    /// (`build-arg "X" was not consumed by any ARG`).
    Warning {
        /// The text.
        message: String,
    },
}

/// Where a build sends its events; called from many threads at once.
pub type EventSink = Arc<dyn Fn(Event) + Send + Sync>;

/// What a build records of one step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepRecord {
    /// Which.
    pub step: StepId,
    /// Its name.
    pub name: String,
    /// How it ended: ran (with its time), cached, or failed.
    pub status: StepStatus,
    /// Why it ran instead of coming from the cache, for a step of the
    /// graph that ran.
    pub cause: Option<Cause>,
}

/// Forwards events to the sink and keeps the record of every finished step.
pub(crate) struct Recorder {
    sink: EventSink,
    records: Mutex<Vec<StepRecord>>,
    own_steps: Mutex<usize>,
    /// The causes of the steps started after a miss, until they end.
    causes: Mutex<HashMap<StepId, Cause>>,
}

/// A step of the build's own, begun with [`Recorder::begin`].
pub(crate) struct OwnStep {
    id: StepId,
    name: &'static str,
    started: std::time::Instant,
}

impl Recorder {
    pub(crate) fn new(sink: EventSink) -> Self {
        Self {
            sink,
            records: Mutex::default(),
            own_steps: Mutex::default(),
            causes: Mutex::default(),
        }
    }

    pub(crate) fn emit(&self, event: Event) {
        match &event {
            Event::Started {
                step,
                cause: Some(cause),
                ..
            } => {
                let mut causes = self.causes.lock().expect("poisoned");
                causes.insert(*step, cause.clone());
            }
            Event::Finished { step, name, status } => {
                let cause = self.causes.lock().expect("poisoned").remove(step);
                self.records.lock().expect("poisoned").push(StepRecord {
                    step: *step,
                    name: name.clone(),
                    status: *status,
                    cause,
                });
            }
            _ => {}
        }
        (self.sink)(event);
    }

    /// Begins a step of the build's own.
    pub(crate) fn begin(&self, name: &'static str) -> OwnStep {
        let id = {
            let mut n = self.own_steps.lock().expect("poisoned");
            *n += 1;
            StepId::Own(*n)
        };
        self.emit(Event::Started {
            step: id,
            name: name.to_string(),
            cause: None,
            inputs: Vec::new(),
        });
        OwnStep {
            id,
            name,
            started: std::time::Instant::now(),
        }
    }

    /// A note under a step of the build's own.
    pub(crate) fn note(&self, step: &OwnStep, text: &str) {
        self.emit(Event::Log {
            step: step.id,
            line: text.as_bytes().to_vec(),
        });
    }

    /// Ends a step of the build's own.
    pub(crate) fn end(&self, step: OwnStep) {
        self.emit(Event::Finished {
            step: step.id,
            name: step.name.to_string(),
            status: StepStatus::Done(step.started.elapsed()),
        });
    }

    /// The records so far, in the order the steps ended.
    pub(crate) fn records(&self) -> Vec<StepRecord> {
        self.records.lock().expect("poisoned").clone()
    }
}

impl Progress for Recorder {
    fn started(&self, index: usize, name: &str, inputs: &[usize]) {
        self.emit(Event::Started {
            step: StepId::Vertex(index),
            name: name.to_string(),
            cause: None,
            inputs: vertices(inputs),
        });
    }

    fn started_after_miss(&self, index: usize, name: &str, inputs: &[usize], cause: &Cause) {
        self.emit(Event::Started {
            step: StepId::Vertex(index),
            name: name.to_string(),
            cause: Some(cause.clone()),
            inputs: vertices(inputs),
        });
    }

    fn process(&self, index: usize, started: SystemTime, ended: SystemTime) {
        self.emit(Event::Process {
            step: StepId::Vertex(index),
            started,
            ended,
        });
    }

    fn staged(&self, index: usize, work: StagedWork, started: SystemTime, ended: SystemTime) {
        self.emit(Event::Staged {
            step: StepId::Vertex(index),
            work,
            started,
            ended,
        });
    }

    fn log(&self, index: usize, line: &[u8]) {
        self.emit(Event::Log {
            step: StepId::Vertex(index),
            line: line.to_vec(),
        });
    }

    fn finished(&self, index: usize, name: &str, status: VertexStatus) {
        let status = match status {
            VertexStatus::Done(d) => StepStatus::Done(d),
            VertexStatus::Cached => StepStatus::Cached,
            VertexStatus::Error(d) => StepStatus::Failed(d),
        };
        self.emit(Event::Finished {
            step: StepId::Vertex(index),
            name: name.to_string(),
            status,
        });
    }
}

/// The steps of graph nodes `nodes`.
fn vertices(nodes: &[usize]) -> Vec<StepId> {
    nodes.iter().map(|&n| StepId::Vertex(n)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_event_reaches_the_sink_and_finished_steps_are_recorded() {
        let seen: Arc<Mutex<Vec<Event>>> = Arc::default();
        let sink = {
            let seen = seen.clone();
            Arc::new(move |e| seen.lock().unwrap().push(e))
        };
        let recorder = Recorder::new(sink);
        let own = recorder.begin("exporting to image");
        recorder.note(&own, "writing image sha256:x done");
        recorder.started(3, "[1/2] RUN make", &[]);
        recorder.log(3, b"ok\n");
        let ran = (SystemTime::UNIX_EPOCH, SystemTime::now());
        recorder.process(3, ran.0, ran.1);
        recorder.finished(3, "[1/2] RUN make", VertexStatus::Cached);
        recorder.started_after_miss(4, "[2/2] COPY . /", &[3], &Cause::NeverRan);
        recorder.finished(4, "[2/2] COPY . /", VertexStatus::Done(Duration::ZERO));
        recorder.end(own);
        let seen = seen.lock().unwrap();
        assert_eq!(seen.len(), 9);
        assert_eq!(
            seen[1],
            Event::Log {
                step: StepId::Own(1),
                line: b"writing image sha256:x done".to_vec()
            }
        );
        assert_eq!(
            seen[4],
            Event::Process {
                step: StepId::Vertex(3),
                started: ran.0,
                ended: ran.1
            }
        );
        assert!(
            matches!(&seen[6], Event::Started { step: StepId::Vertex(4), inputs, .. } if inputs == &[StepId::Vertex(3)]),
            "a step's inputs reach the sink: {:?}",
            seen[6]
        );
        let records = recorder.records();
        assert_eq!(records.len(), 3);
        assert_eq!(
            (records[0].step, records[0].status, &records[0].cause),
            (StepId::Vertex(3), StepStatus::Cached, &None)
        );
        assert_eq!(
            records[1].cause,
            Some(Cause::NeverRan),
            "a miss keeps its cause"
        );
        assert_eq!(records[2].name, "exporting to image");
        assert!(matches!(records[2].status, StepStatus::Done(_)));
    }
}
