//! Build progress on stderr: BuildKit-style plain lines (`#3 [2/5] RUN make`
//! … `#3 DONE 1.2s`) in CI or with `--progress=plain`, an indicatif display
//! on a terminal, nothing with `--quiet`.

use std::collections::HashMap;
use std::io::{IsTerminal, Write};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use rbuild_build::{Cause, Event, StepId, StepStatus};

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
    /// BuildKit's `SolveStatus` objects as JSON lines (see `rawjson`).
    Rawjson,
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

/// A progress display of a build's events. Steps are numbered in the order
/// they first appear.
pub struct Display {
    mode: Mode,
    started: Instant,
    state: Mutex<State>,
    multi: MultiProgress,
    /// The terminal's first line: `[+] Building 1.2s (3/5)`.
    header: Option<ProgressBar>,
}

#[derive(Default)]
struct State {
    /// Step → display number.
    numbers: HashMap<StepId, usize>,
    bars: HashMap<usize, ProgressBar>,
    /// Why each running step was not cached, for the terminal's last line.
    causes: HashMap<usize, String>,
    /// Steps that ended.
    finished: usize,
}

impl Display {
    /// A display in `mode` (already resolved).
    pub fn new(mode: Mode) -> Self {
        let multi = MultiProgress::new();
        let header = (mode == Mode::Tty).then(|| {
            let bar = multi.add(ProgressBar::new_spinner());
            bar.set_style(
                ProgressStyle::with_template("[+] Building {msg}").expect("valid template"),
            );
            bar
        });
        Self {
            mode,
            started: Instant::now(),
            state: Mutex::default(),
            multi,
            header,
        }
    }

    /// Updates the terminal's header: time so far, steps ended of those
    /// begun, and `FINISHED` at the end (as BuildKit's).
    fn update_header(&self, end: bool) {
        let Some(header) = &self.header else {
            return;
        };
        let (finished, begun) = {
            let st = self.state.lock().expect("poisoned");
            (st.finished, st.numbers.len())
        };
        let secs = self.started.elapsed().as_secs_f64();
        let message = format!("{secs:.1}s ({finished}/{begun})");
        if end {
            header.finish_with_message(format!("{message} FINISHED"));
        } else {
            header.set_message(message);
        }
    }

    /// Ends the display (the terminal's header says FINISHED).
    pub fn finish(&self) {
        self.update_header(true);
    }

    /// Shows one event of the build.
    pub fn show(&self, event: Event) {
        match event {
            Event::Started { step, name, cause } => self.on_start(step, &name, cause.as_ref()),
            Event::Log { step, line } => self.on_log(step, &line),
            Event::Finished { step, name, status } => self.on_finish(step, &name, status),
            Event::Warning { message } => eprintln!("WARNING: {message}"),
        }
    }

    fn number(&self, key: StepId) -> usize {
        let mut st = self.state.lock().expect("poisoned");
        let next = st.numbers.len() + 1;
        *st.numbers.entry(key).or_insert(next)
    }

    fn on_start(&self, key: StepId, name: &str, cause: Option<&Cause>) {
        let n = self.number(key);
        let because = cause.map_or(String::new(), |c| format!("  — {c}"));
        match self.mode {
            Mode::Plain => eprintln!("#{n} {name}{because}"),
            Mode::Tty => {
                (self.state.lock().expect("poisoned").causes).insert(n, because.clone());
                let bar = self.multi.add(ProgressBar::new_spinner());
                bar.set_style(
                    ProgressStyle::with_template("{spinner} {prefix} {wide_msg} {elapsed:>4}")
                        .expect("valid template"),
                );
                bar.set_prefix(format!("{name}{because}"));
                bar.enable_steady_tick(Duration::from_millis(120));
                self.state.lock().expect("poisoned").bars.insert(n, bar);
                self.update_header(false);
            }
            _ => {}
        }
    }

    fn on_log(&self, key: StepId, line: &[u8]) {
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

    fn on_finish(&self, key: StepId, name: &str, status: StepStatus) {
        let n = self.number(key);
        self.state.lock().expect("poisoned").finished += 1;
        let word = match status {
            StepStatus::Done(d) => format!("DONE {:.1}s", d.as_secs_f64()),
            StepStatus::Cached => String::from("CACHED"),
            StepStatus::Failed(d) => format!("ERROR {:.1}s", d.as_secs_f64()),
        };
        match self.mode {
            Mode::Plain => eprintln!("#{n} {word}"),
            Mode::Tty => {
                let (bar, because) = {
                    let mut st = self.state.lock().expect("poisoned");
                    (st.bars.remove(&n), st.causes.remove(&n).unwrap_or_default())
                };
                let bar = bar.unwrap_or_else(|| self.multi.add(ProgressBar::new_spinner()));
                bar.set_style(ProgressStyle::with_template("{msg}").expect("valid template"));
                bar.finish_with_message(format!("=> {name:<60} {word}{because}"));
                self.update_header(false);
            }
            _ => {}
        }
    }
}
