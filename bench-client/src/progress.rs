//! The once-a-second progress line of long runs, on stderr: an indicatif bar when stderr is a
//! terminal, plain lines otherwise (logs, CI, scripts).

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};

use crate::load::Progress;
use crate::report::group;

/// Prints progress; call [`ProgressLine::update`] about once a second.
pub struct ProgressLine {
    bar: Option<ProgressBar>,
    warmup: Duration,
    last: Option<(Instant, u64)>,
}

impl ProgressLine {
    /// `planned` is the whole run (warm-up included) when it ends by time, for the bar's length.
    pub fn new(planned: Option<Duration>, warmup: Duration) -> Self {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = match planned {
                Some(total) => ProgressBar::new(total.as_secs().max(1)),
                None => ProgressBar::new_spinner(),
            };
            let template = match planned {
                Some(_) => "{elapsed:>4} [{bar:30}] {msg}",
                None => "{elapsed:>4} {spinner} {msg}",
            };
            bar.set_style(
                ProgressStyle::with_template(template)
                    .unwrap_or_else(|_| ProgressStyle::default_bar())
                    .progress_chars("=> "),
            );
            bar
        });
        ProgressLine {
            bar,
            warmup,
            last: None,
        }
    }

    /// Shows the rate since the previous update.
    pub fn update(&mut self, progress: Progress) {
        let Some(elapsed) = progress.elapsed else {
            return;
        };
        let now = Instant::now();
        let rate = match self.last {
            Some((at, replies)) => {
                let secs = now.duration_since(at).as_secs_f64();
                if secs > 0.0 {
                    (progress.replies - replies) as f64 / secs
                } else {
                    0.0
                }
            }
            None if elapsed.as_secs_f64() > 0.0 => progress.replies as f64 / elapsed.as_secs_f64(),
            None => 0.0,
        };
        self.last = Some((now, progress.replies));
        let phase = if elapsed < self.warmup {
            "  (warm-up)"
        } else {
            ""
        };
        let message = format!(
            "{:>11} req/s  errors {}{phase}",
            group(rate.round() as u64),
            group(progress.errors)
        );
        match &self.bar {
            Some(bar) => {
                bar.set_position(elapsed.as_secs());
                bar.set_message(message);
            }
            None => eprintln!("[{:>5.1}s] {message}", elapsed.as_secs_f64()),
        }
    }

    /// Removes the bar before the report is printed.
    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}
