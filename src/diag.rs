//! Located problems in a workflow file, rendered like rustc/cargo messages.

use std::fmt;
use std::path::{Path, PathBuf};
use vistaflow_nodes::text::edit_distance;

/// A 1-based line and column in a file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Pos {
    pub line: usize,
    pub col: usize,
}

/// One problem: what is wrong, where, and what to do.
#[derive(Clone, Debug, PartialEq)]
pub struct Diagnostic {
    pub message: String,
    pub pos: Option<Pos>,
    /// Width of the underlined text (at least 1).
    pub width: usize,
    pub hint: Option<String>,
}

impl Diagnostic {
    pub fn new(message: impl Into<String>, pos: Option<Pos>) -> Self {
        Diagnostic {
            message: message.into(),
            pos,
            width: 1,
            hint: None,
        }
    }
    pub fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }
    pub fn width(mut self, width: usize) -> Self {
        self.width = width.max(1);
        self
    }
}

/// Every problem found in one file, with the text needed to show the offending lines.
#[derive(Clone, Debug)]
pub struct Diagnostics {
    pub file: PathBuf,
    pub source: String,
    pub items: Vec<Diagnostic>,
}

impl Diagnostics {
    pub fn new(file: &Path, source: &str) -> Self {
        Diagnostics {
            file: file.to_path_buf(),
            source: source.to_string(),
            items: vec![],
        }
    }
    pub fn push(&mut self, d: Diagnostic) {
        self.items.push(d);
    }
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }
    /// `Err(self)` when there are problems; the order is by position.
    pub fn into_result(mut self) -> Result<(), Diagnostics> {
        if self.items.is_empty() {
            return Ok(());
        }
        self.items.sort_by_key(|d| d.pos);
        self.items.dedup();
        Err(self)
    }
}

impl fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let lines: Vec<&str> = self.source.lines().collect();
        for (n, d) in self.items.iter().enumerate() {
            if n > 0 {
                writeln!(f)?;
            }
            writeln!(f, "error: {}", d.message)?;
            match d.pos {
                Some(p) => {
                    writeln!(f, "  --> {}:{}:{}", self.file.display(), p.line, p.col)?;
                    if let Some(text) = lines.get(p.line.wrapping_sub(1)) {
                        let (shown, at) = excerpt(text, p.col.saturating_sub(1));
                        let width = d.width.min(shown.chars().count().saturating_sub(at).max(1));
                        let gutter = p.line.to_string().len();
                        writeln!(f, "{:gutter$} |", "")?;
                        writeln!(f, "{} | {}", p.line, shown)?;
                        let pad = " ".repeat(at);
                        writeln!(f, "{:gutter$} | {pad}{}", "", "^".repeat(width))?;
                    }
                }
                None => writeln!(f, "  --> {}", self.file.display())?,
            }
            if let Some(h) = &d.hint {
                writeln!(f, "  = hint: {h}")?;
            }
        }
        let n = self.items.len();
        write!(
            f,
            "{} problem{} in {}",
            n,
            if n == 1 { "" } else { "s" },
            self.file.display()
        )
    }
}

impl std::error::Error for Diagnostics {}

/// Characters of a source line shown around a problem: a long line (a 200 KB line of
/// brackets, a minified document) is cut to a window around the column, marked with `...`.
/// Returns the text and the column's character offset in it.
fn excerpt(line: &str, col: usize) -> (String, usize) {
    const WIDTH: usize = 100;
    let n = line.chars().count();
    if n <= WIDTH + 20 {
        return (line.to_string(), col);
    }
    let start = col.saturating_sub(WIDTH / 2).min(n.saturating_sub(WIDTH));
    let body: String = line.chars().skip(start).take(WIDTH).collect();
    let (head, tail) = (start > 0, start + WIDTH < n);
    let text = format!(
        "{}{body}{}",
        if head { "..." } else { "" },
        if tail { "..." } else { "" }
    );
    (text, col - start + if head { 3 } else { 0 })
}

/// The candidate closest to `word` by edit distance, if close enough to be a likely typo.
pub fn nearest<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    candidates
        .into_iter()
        .map(|c| (edit_distance(word, c), c))
        .filter(|(d, c)| *d <= (c.len().max(word.len()) / 3).max(2))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_long_line_is_cut_around_the_column() {
        let line = format!("a: {}", "[".repeat(200_000));
        let (text, at) = excerpt(&line, 150_000);
        assert!(text.len() < 120 && text.starts_with("...") && text.ends_with("..."));
        assert_eq!(at, 53);
        let (text, at) = excerpt("short: line", 3);
        assert_eq!((text.as_str(), at), ("short: line", 3));
    }

    #[test]
    fn nearest_finds_typos_and_rejects_strangers() {
        let kinds = ["load_nifti", "save_nifti", "resample"];
        assert_eq!(nearest("load_nifty", kinds), Some("load_nifti"));
        assert_eq!(nearest("resampel", kinds), Some("resample"));
        assert_eq!(nearest("vista3d_auto", kinds), None);
    }

    #[test]
    fn renders_line_and_caret() {
        let mut d = Diagnostics::new(Path::new("w.yaml"), "a: 1\nnodes:\n  x: { kind: foo }\n");
        d.push(
            Diagnostic::new("unknown node kind `foo`", Some(Pos { line: 3, col: 14 }))
                .width(3)
                .hint("h"),
        );
        let s = d.to_string();
        assert!(s.contains("--> w.yaml:3:14"), "{s}");
        assert!(s.contains("3 |   x: { kind: foo }"), "{s}");
        assert!(s.contains("  |              ^^^\n"), "{s}");
        assert!(s.contains("= hint: h"), "{s}");
    }
}
