//! Build progress on stderr: BuildKit-style plain lines (`#3 [2/5] RUN make`
//! … `#3 DONE 1.2s`) in CI or with `--progress=plain`, an indicatif display
//! on a terminal, nothing with `--quiet`. On a terminal every line fits its
//! width, as in BuildKit's tty display: a long step name (and its last log
//! line) is cut, the status and time stay at the right edge.

use std::collections::HashMap;
use std::io::{IsTerminal, Write};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
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
    /// Each running step's title on the terminal: its name and why it was
    /// not cached.
    titles: HashMap<usize, String>,
    /// Steps that ended.
    finished: usize,
}

impl Display {
    /// A display in `mode` (already resolved), a terminal display on stderr.
    pub fn new(mode: Mode) -> Self {
        Self::with_target(mode, ProgressDrawTarget::stderr())
    }

    /// A display in `mode` whose terminal display draws on `target`.
    fn with_target(mode: Mode, target: ProgressDrawTarget) -> Self {
        let multi = MultiProgress::with_draw_target(target);
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
            Event::Started {
                step, name, cause, ..
            } => self.on_start(step, &name, cause.as_ref()),
            Event::Log { step, line } => self.on_log(step, &line),
            Event::Finished { step, name, status } => self.on_finish(step, &name, status),
            Event::Warning { message } => eprintln!("WARNING: {message}"),
            // The step's own line already shows its time.
            Event::Process { .. } | Event::Staged { .. } => {}
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
                let title = format!("{name}{because}");
                let bar = self.multi.add(ProgressBar::new_spinner());
                bar.set_style(
                    ProgressStyle::with_template("{spinner} {wide_msg} {elapsed:>4}")
                        .expect("valid template"),
                );
                bar.set_message(title.clone());
                bar.enable_steady_tick(Duration::from_millis(120));
                let mut st = self.state.lock().expect("poisoned");
                st.titles.insert(n, title);
                st.bars.insert(n, bar);
                drop(st);
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
                let st = self.state.lock().expect("poisoned");
                if let (Some(bar), Some(title)) = (st.bars.get(&n), st.titles.get(&n)) {
                    bar.set_message(format!("{title}  {text}"));
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
                let (bar, title) = {
                    let mut st = self.state.lock().expect("poisoned");
                    (st.bars.remove(&n), st.titles.remove(&n))
                };
                let bar = bar.unwrap_or_else(|| self.multi.add(ProgressBar::new_spinner()));
                // `wide_msg` fills the width left and is cut to it.
                bar.set_style(
                    ProgressStyle::with_template("=> {wide_msg} {prefix}").expect("valid template"),
                );
                bar.set_prefix(word);
                bar.finish_with_message(title.unwrap_or_else(|| name.to_string()));
                self.update_header(false);
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use indicatif::TermLike;

    use super::*;

    /// A terminal of a fixed width that keeps each piece of text written
    /// to it (indicatif writes a line in one piece, then the spaces that
    /// fill it to the width).
    #[derive(Debug, Clone)]
    struct Screen {
        width: u16,
        written: Arc<Mutex<Vec<String>>>,
    }

    impl TermLike for Screen {
        fn width(&self) -> u16 {
            self.width
        }
        fn move_cursor_up(&self, _: usize) -> std::io::Result<()> {
            Ok(())
        }
        fn move_cursor_down(&self, _: usize) -> std::io::Result<()> {
            Ok(())
        }
        fn move_cursor_right(&self, _: usize) -> std::io::Result<()> {
            Ok(())
        }
        fn move_cursor_left(&self, _: usize) -> std::io::Result<()> {
            Ok(())
        }
        fn write_line(&self, s: &str) -> std::io::Result<()> {
            self.write_str(&format!("{s}\n"))
        }
        fn write_str(&self, s: &str) -> std::io::Result<()> {
            self.written.lock().unwrap().push(s.to_string());
            Ok(())
        }
        fn clear_line(&self) -> std::io::Result<()> {
            Ok(())
        }
        fn flush(&self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn long_step_lines_are_cut_to_the_terminal_width_with_the_status_kept() {
        let screen = Screen {
            width: 40,
            written: Arc::default(),
        };
        let target = ProgressDrawTarget::term_like(Box::new(screen.clone()));
        let display = Display::with_target(Mode::Tty, target);
        let step = StepId::Vertex(0);
        let name = format!("[1/2] RUN {}", "echo long ".repeat(20));
        display.show(Event::Started {
            step,
            name: name.clone(),
            cause: None,
            inputs: Vec::new(),
        });
        display.show(Event::Log {
            step,
            line: "a log line ".repeat(10).into_bytes(),
        });
        display.show(Event::Finished {
            step,
            name,
            status: StepStatus::Done(Duration::from_millis(1500)),
        });
        display.finish();
        let written = screen.written.lock().unwrap().clone();
        for line in &written {
            assert!(line.chars().count() <= 40, "{line:?} is wider than 40");
        }
        // The last: a tick may have drawn the running line before.
        let done = (written.iter().rev())
            .find(|l| l.starts_with("=> [1/2] RUN echo long"))
            .unwrap_or_else(|| panic!("no finished line in {written:?}"));
        assert!(done.ends_with(" DONE 1.5s"), "{done:?}");
        assert!(
            written.iter().any(|l| l.contains("FINISHED")),
            "{written:?}"
        );
    }
}
