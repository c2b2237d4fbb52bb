//! Looks at a workflow's text before the YAML parsers do: what they would choke on.

use crate::diag::Pos;

/// Deeper flow collections than any workflow has: the YAML parsers take time quadratic in the
/// depth (a line of 100,000 `[` took 30 s), so such a file is refused before parsing.
pub const MAX_DEPTH: usize = 64;

/// Where `[`/`{` nesting (outside quotes and comments) first goes past [`MAX_DEPTH`].
pub fn too_deep(text: &str) -> Option<Pos> {
    let mut depth = 0usize;
    for (n, line) in text.lines().enumerate() {
        let mut quote: Option<char> = None;
        for (c, ch) in line.chars().enumerate() {
            match (quote, ch) {
                (Some(q), _) if ch == q => quote = None,
                (Some(_), _) => {}
                (None, '"' | '\'') => quote = Some(ch),
                (None, '#') => break,
                (None, '[' | '{') => {
                    depth += 1;
                    if depth > MAX_DEPTH {
                        return Some(Pos {
                            line: n + 1,
                            col: c + 1,
                        });
                    }
                }
                (None, ']' | '}') => depth = depth.saturating_sub(1),
                _ => {}
            }
        }
    }
    None
}

/// The position just after the last character of `text`.
pub fn end_pos(text: &str) -> Pos {
    let line = text.matches('\n').count() + 1;
    let col = text.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    Pos { line, col }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn brackets_in_quotes_and_comments_do_not_count() {
        let deep = "[".repeat(70);
        assert_eq!(too_deep(&format!("a: \"{deep}\"\nb: 1 # {deep}\n")), None);
        assert_eq!(
            too_deep(&format!("x: 1\na: {deep}")),
            Some(Pos { line: 2, col: 68 })
        );
        assert_eq!(end_pos("ab\ncd"), Pos { line: 2, col: 3 });
    }
}
