//! The terminal display: one line per running node, a bar for nodes that report progress.
//! Nothing is drawn when stderr is not a terminal (CI logs, pipes).

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::IsTerminal;
use std::time::Duration;

/// Owns the bars of one run.
pub struct Display {
    multi: Option<MultiProgress>,
    /// A cohort subject's line: the run's nodes show there instead of on lines of their own.
    within: Option<NodeLine>,
}

impl Display {
    /// Draws only when `enabled` and stderr is a terminal; on `within` when given.
    pub fn new(enabled: bool, within: Option<NodeLine>) -> Display {
        let on = enabled && within.is_none() && std::io::stderr().is_terminal();
        Display {
            multi: on.then(|| MultiProgress::with_draw_target(ProgressDrawTarget::stderr())),
            within,
        }
    }

    /// A line for a node that just started.
    pub fn start(&self, id: &str, kind: &str) -> NodeLine {
        if let Some(w) = &self.within {
            let label = format!("{id} ({kind})");
            if let Some(b) = &w.bar {
                b.set_message(label.clone());
            }
            return NodeLine {
                bar: w.bar.clone(),
                label: Some(label),
            };
        }
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
        NodeLine { bar, label: None }
    }

    /// Prints a message above the bars (or plainly to stderr when there are none).
    pub fn println(&self, msg: &str) {
        match (
            &self.multi,
            self.within.as_ref().and_then(|w| w.bar.as_ref()),
        ) {
            (Some(m), _) => {
                let _ = m.println(msg);
            }
            // Above the cohort's bars, which a plain print would tear.
            (None, Some(b)) => b.println(msg),
            (None, None) => eprintln!("{msg}"),
        }
    }
}

/// The line of one running node (or of a cohort subject, which its nodes write into).
#[derive(Clone, Debug)]
pub struct NodeLine {
    bar: Option<ProgressBar>,
    /// Set for a node shown on its subject's line: the node's name, put before its progress.
    label: Option<String>,
}

impl NodeLine {
    pub fn progress(&self, done: u64, total: u64, unit: &str) {
        let Some(b) = &self.bar else { return };
        if let Some(label) = &self.label {
            b.set_message(format!("{label} {done}/{total} {unit}"));
            return;
        }
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
        if let Some(label) = &self.label {
            b.set_message(format!("{label}: {text}"));
            return;
        }
        if let Ok(style) = ProgressStyle::with_template("{prefix} {msg} {elapsed}") {
            b.set_style(style);
        }
        b.set_length(0);
        b.set_message(text.to_string());
    }

    pub fn finish(&self) {
        // A node on its subject's line leaves the line to the subject.
        if let (Some(b), None) = (&self.bar, &self.label) {
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

    /// A line for a subject that just started; its run's nodes show on it (`Display::new`).
    pub fn start(&self, subject: &str) -> NodeLine {
        let bar = self.multi.as_ref().map(|m| {
            let b = m.add(ProgressBar::new_spinner());
            if let Ok(s) = ProgressStyle::with_template("  {spinner} {prefix} {elapsed} {msg}") {
                b.set_style(s);
            }
            b.set_prefix(subject.to_string());
            b.enable_steady_tick(Duration::from_millis(120));
            b
        });
        NodeLine { bar, label: None }
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
