//! Build progress on stderr: BuildKit-style plain lines (`#3 [2/5] RUN make`
//! … `#3 DONE 1.2s`) in CI or with `--progress=plain`, an indicatif display
//! on a terminal, nothing with `--quiet`.

use std::collections::HashMap;
use std::io::{IsTerminal, Write};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use rbuild_solver::{Progress, VertexStatus};

/// `--progress` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Mode {
    /// A terminal display when stderr is a terminal and CI is not set.
    Auto,
    /// Plain lines.
    Plain,
    /// A terminal display.
    Tty,
    /// Nothing.
    Quiet,
}

impl Mode {
    /// Resolves `auto`.
    pub fn resolve(self) -> Mode {
        match self {
            Mode::Auto
                if std::io::stderr().is_terminal()
                    && std::env::var("CI").map_or(true, |v| v != "true") =>
            {
                Mode::Tty
            }
            Mode::Auto => Mode::Plain,
            m => m,
        }
    }
}

/// A progress display. Steps are the graph's vertices plus steps of the
/// build's own (loading the definition, exporting), numbered in start order.
pub struct Display {
    mode: Mode,
    started: Instant,
    state: Mutex<State>,
    multi: MultiProgress,
}

#[derive(Default)]
struct State {
    /// Step key → display number.
    numbers: HashMap<StepKey, usize>,
    bars: HashMap<usize, ProgressBar>,
    next_extra: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum StepKey {
    Vertex(usize),
    Extra(usize),
}

/// A step of the build's own, finished with [`Display::end`].
#[derive(Debug, Clone, Copy)]
pub struct Step {
    key: StepKey,
    started: Instant,
}

impl Display {
    /// A display in `mode` (already resolved).
    pub fn new(mode: Mode) -> Self {
        Self {
            mode,
            started: Instant::now(),
            state: Mutex::default(),
            multi: MultiProgress::new(),
        }
    }

    /// Starts a step of the build's own.
    pub fn begin(&self, name: &str) -> Step {
        let key = {
            let mut st = self.state.lock().expect("poisoned");
            st.next_extra += 1;
            StepKey::Extra(st.next_extra)
        };
        self.on_start(key, name);
        Step {
            key,
            started: Instant::now(),
        }
    }

    /// Writes a note line under a step (`writing image sha256:… done`).
    pub fn note(&self, step: &Step, text: &str) {
        self.on_log(step.key, text.as_bytes());
    }

    /// Ends a step of the build's own.
    pub fn end(&self, step: Step, name: &str) {
        self.on_finish(step.key, name, VertexStatus::Done(step.started.elapsed()));
    }

    fn number(&self, key: StepKey) -> usize {
        let mut st = self.state.lock().expect("poisoned");
        let next = st.numbers.len() + 1;
        *st.numbers.entry(key).or_insert(next)
    }

    fn on_start(&self, key: StepKey, name: &str) {
        let n = self.number(key);
        match self.mode {
            Mode::Plain => eprintln!("#{n} {name}"),
            Mode::Tty => {
                let bar = self.multi.add(ProgressBar::new_spinner());
                bar.set_style(
                    ProgressStyle::with_template("{spinner} {prefix} {wide_msg} {elapsed:>4}")
                        .expect("valid template"),
                );
                bar.set_prefix(name.to_string());
                bar.enable_steady_tick(Duration::from_millis(120));
                self.state.lock().expect("poisoned").bars.insert(n, bar);
            }
            _ => {}
        }
    }

    fn on_log(&self, key: StepKey, line: &[u8]) {
        let n = self.number(key);
        let text = String::from_utf8_lossy(line);
        let text = text.trim_end_matches(['\n', '\r']);
        match self.mode {
            Mode::Plain => {
                let t = self.started.elapsed().as_secs_f64();
                let mut err = std::io::stderr().lock();
                let _ = writeln!(err, "#{n} {t:.3} {text}");
            }
            Mode::Tty => {
                if let Some(bar) = self.state.lock().expect("poisoned").bars.get(&n) {
                    bar.set_message(text.to_string());
                }
            }
            _ => {}
        }
    }

    fn on_finish(&self, key: StepKey, name: &str, status: VertexStatus) {
        let n = self.number(key);
        let word = match status {
            VertexStatus::Done(d) => format!("DONE {:.1}s", d.as_secs_f64()),
            VertexStatus::Cached => String::from("CACHED"),
            VertexStatus::Error(d) => format!("ERROR {:.1}s", d.as_secs_f64()),
        };
        match self.mode {
            Mode::Plain => eprintln!("#{n} {word}"),
            Mode::Tty => {
                let bar = self.state.lock().expect("poisoned").bars.remove(&n);
                let bar = bar.unwrap_or_else(|| self.multi.add(ProgressBar::new_spinner()));
                bar.set_style(ProgressStyle::with_template("{msg}").expect("valid template"));
                bar.finish_with_message(format!("=> {name:<60} {word}"));
            }
            _ => {}
        }
    }
}

impl Progress for Display {
    fn started(&self, index: usize, name: &str) {
        self.on_start(StepKey::Vertex(index), name);
    }

    fn log(&self, index: usize, line: &[u8]) {
        self.on_log(StepKey::Vertex(index), line);
    }

    fn finished(&self, index: usize, name: &str, status: VertexStatus) {
        self.on_finish(StepKey::Vertex(index), name, status);
    }
}
