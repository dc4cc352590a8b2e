//! Progress on stderr for the slow steps (import, optimize, compile, reference, simulate), and
//! `--verbose` detail. The bar is drawn only when stderr is a terminal and `--quiet` is not
//! given, so piped output and tests see nothing of it.

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use clap::Args;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// How chatty the command is on stderr.
#[derive(Clone, Copy, Debug, Default, Args)]
pub struct Verbosity {
    /// Print no progress bar.
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    pub quiet: bool,
    /// Print each step's wall time and details (optimizer stages, plan) to stderr.
    #[arg(short, long, global = true)]
    pub verbose: bool,
}

/// A sequence of named steps shown as one bar.
#[derive(Debug)]
pub struct Progress {
    bar: ProgressBar,
    verbose: bool,
    step_start: Instant,
    current: Option<String>,
}

impl Progress {
    /// A bar over `steps` steps, hidden unless stderr is a terminal and not `--quiet`.
    pub fn new(verbosity: Verbosity, steps: u64) -> Progress {
        let bar = if verbosity.quiet || !std::io::stderr().is_terminal() {
            ProgressBar::hidden()
        } else {
            let bar = ProgressBar::with_draw_target(Some(steps), ProgressDrawTarget::stderr());
            if let Ok(style) =
                ProgressStyle::with_template("{spinner} [{bar:24}] {pos}/{len} {msg} ({elapsed})")
            {
                bar.set_style(style.progress_chars("=> "));
            }
            bar.enable_steady_tick(Duration::from_millis(100));
            bar
        };
        Progress {
            bar,
            verbose: verbosity.verbose,
            step_start: Instant::now(),
            current: None,
        }
    }

    /// Starts step `name` (finishing the previous one).
    pub fn step(&mut self, name: &str) {
        self.end_step();
        self.bar.set_message(name.to_string());
        self.step_start = Instant::now();
        self.current = Some(name.to_string());
    }

    /// Prints `line` to stderr when `--verbose` (above the bar).
    pub fn detail(&self, line: &str) {
        if self.verbose {
            self.bar.suspend(|| eprintln!("{line}"));
        }
    }

    /// Finishes the last step and removes the bar.
    pub fn finish(mut self) {
        self.end_step();
        self.bar.finish_and_clear();
    }

    fn end_step(&mut self) {
        if let Some(name) = self.current.take() {
            self.bar.inc(1);
            let ms = self.step_start.elapsed().as_secs_f64() * 1e3;
            self.detail(&format!("{name}: {ms:.1} ms"));
        }
    }
}
