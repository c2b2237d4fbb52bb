//! The terminal display: one line per running node, a bar for nodes that report progress.
//! Nothing is drawn when stderr is not a terminal (CI logs, pipes).

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::IsTerminal;
use std::time::Duration;

/// Owns the bars of one run.
pub struct Display {
    multi: Option<MultiProgress>,
}

impl Display {
    /// Draws only when `enabled` and stderr is a terminal.
    pub fn new(enabled: bool) -> Display {
        let on = enabled && std::io::stderr().is_terminal();
        Display {
            multi: on.then(|| MultiProgress::with_draw_target(ProgressDrawTarget::stderr())),
        }
    }

    /// A line for a node that just started.
    pub fn start(&self, id: &str, kind: &str) -> NodeLine {
        let bar = self.multi.as_ref().map(|m| {
            let b = m.add(ProgressBar::new_spinner());
            b.set_style(
                ProgressStyle::with_template("{spinner} {prefix} {msg} {elapsed}")
                    .expect("valid template"),
            );
            b.set_prefix(format!("{id} ({kind})"));
            b.enable_steady_tick(Duration::from_millis(120));
            b
        });
        NodeLine { bar }
    }

    /// Prints a message above the bars (or plainly to stderr when there are none).
    pub fn println(&self, msg: &str) {
        match &self.multi {
            Some(m) => {
                let _ = m.println(msg);
            }
            None => eprintln!("{msg}"),
        }
    }
}

/// The line of one running node.
pub struct NodeLine {
    bar: Option<ProgressBar>,
}

impl NodeLine {
    pub fn progress(&self, done: u64, total: u64, unit: &str) {
        let Some(b) = &self.bar else { return };
        if b.length() != Some(total) {
            b.set_length(total);
            let tpl =
                format!("{{prefix}} [{{bar:30}}] {{pos}}/{{len}} {unit} {{elapsed}} (eta {{eta}})");
            if let Ok(style) = ProgressStyle::with_template(&tpl) {
                b.set_style(style.progress_chars("=> "));
            }
        }
        b.set_position(done);
    }

    /// A line of text instead of a bar (e.g. what the node is waiting for).
    pub fn status(&self, text: &str) {
        let Some(b) = &self.bar else { return };
        if let Ok(style) = ProgressStyle::with_template("{prefix} {msg} {elapsed}") {
            b.set_style(style);
        }
        b.set_length(0);
        b.set_message(text.to_string());
    }

    pub fn finish(&self) {
        if let Some(b) = &self.bar {
            b.finish_and_clear();
        }
    }
}

/// The display of a cohort: a bar of finished subjects, a line per running subject.
pub struct CohortDisplay {
    multi: Option<MultiProgress>,
    bar: Option<ProgressBar>,
}

impl CohortDisplay {
    pub fn new(enabled: bool, subjects: u64) -> CohortDisplay {
        let multi = (enabled && std::io::stderr().is_terminal())
            .then(|| MultiProgress::with_draw_target(ProgressDrawTarget::stderr()));
        let bar = multi.as_ref().map(|m| {
            let b = m.add(ProgressBar::new(subjects));
            if let Ok(s) = ProgressStyle::with_template(
                "subjects [{bar:30}] {pos}/{len} {msg} {elapsed} (eta {eta})",
            ) {
                b.set_style(s.progress_chars("=> "));
            }
            b
        });
        CohortDisplay { multi, bar }
    }

    /// A line for a subject that just started.
    pub fn start(&self, subject: &str) -> NodeLine {
        let bar = self.multi.as_ref().map(|m| {
            let b = m.add(ProgressBar::new_spinner());
            if let Ok(s) = ProgressStyle::with_template("  {spinner} {prefix} {elapsed}") {
                b.set_style(s);
            }
            b.set_prefix(subject.to_string());
            b.enable_steady_tick(Duration::from_millis(120));
            b
        });
        NodeLine { bar }
    }

    /// One subject finished; `failed` so far goes into the bar's message.
    pub fn finished(&self, failed: usize) {
        if let Some(b) = &self.bar {
            b.inc(1);
            if failed > 0 {
                b.set_message(format!("({failed} failed)"));
            }
        }
    }

    /// Prints above the bars, or to stderr when none are drawn.
    pub fn println(&self, msg: &str) {
        match &self.multi {
            Some(m) => {
                let _ = m.println(msg);
            }
            None => eprintln!("{msg}"),
        }
    }

    pub fn finish(&self) {
        if let Some(b) = &self.bar {
            b.finish_and_clear();
        }
    }
}
