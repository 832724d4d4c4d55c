//! Progress of a transfer: a bar with bytes, rate and ETA on a terminal, one log line per phase otherwise.

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::IsTerminal;
use std::sync::{Arc, Mutex};

/// Shared by the download task and the file reader; cheap to clone.
#[derive(Debug, Clone)]
pub struct Progress {
    terminal: bool,
    bar: Arc<Mutex<Option<ProgressBar>>>,
}

impl Progress {
    /// Draws a bar only when stderr is a terminal and output is not quieted.
    pub fn new(quiet: bool) -> Self {
        Progress { terminal: !quiet && std::io::stderr().is_terminal(), bar: Arc::default() }
    }

    fn bar(&self) -> std::sync::MutexGuard<'_, Option<ProgressBar>> {
        self.bar.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A phase: a log line, or the bar's label while a transfer is drawn.
    pub fn phase(&self, message: String) {
        match self.bar().as_ref() {
            Some(bar) => bar.set_message(message),
            None => tracing::info!("{message}"),
        }
    }

    /// A transfer begins (`what` is e.g. "downloading"): the bar on a terminal, labelled with the file name so
    /// it fits on one line, or a log line with the whole source otherwise.
    pub fn begin(&self, what: &str, source: &str) {
        if !self.terminal {
            return tracing::info!("{what} {source}");
        }
        let message = format!("{what} {}", source.rsplit(['/', '\\']).next().unwrap_or(source));
        let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
        bar.set_style(
            ProgressStyle::with_template("{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} ETA {eta}")
                .expect("valid template")
                .progress_chars("=> "),
        );
        bar.set_message(message);
        *self.bar() = Some(bar);
    }

    pub fn set_total(&self, total: Option<u64>) {
        if let (Some(bar), Some(t)) = (self.bar().as_ref(), total) {
            bar.set_length(t);
        }
    }

    pub fn advance(&self, n: u64) {
        if let Some(bar) = self.bar().as_ref() {
            bar.inc(n);
        }
    }

    /// The transfer is over: the bar goes away before anything else is printed.
    pub fn finish(&self) {
        if let Some(bar) = self.bar().take() {
            bar.finish_and_clear();
        }
    }
}
