//! Source positions of every node of a YAML document, by path (`nodes.seg.params.classes`).
//!
//! serde_yaml gives typed values but no positions; yaml-rust2's event parser gives markers.
//! Both read the same text, so positions found here belong to the values serde_yaml returns.

use crate::diag::Pos;
use std::collections::HashMap;
use yaml_rust2::parser::{Event, Parser};

/// Where a value (and, for a mapping entry, its key) starts.
#[derive(Clone, Copy, Debug, Default)]
pub struct Loc {
    pub key: Option<Pos>,
    pub value: Option<Pos>,
    /// Length of the scalar's text (for underlining), 1 for collections.
    pub value_len: usize,
}

/// A mapping key seen twice, with both positions.
#[derive(Clone, Debug)]
pub struct DuplicateKey {
    pub path: String,
    pub key: String,
    pub first: Pos,
    pub second: Pos,
}

/// Positions by dotted path; list items are `path.0`, `path.1`, ...
#[derive(Debug, Default)]
pub struct Locations {
    map: HashMap<String, Loc>,
    pub duplicates: Vec<DuplicateKey>,
}

impl Locations {
    /// Indexes `text`; parse errors are left to serde_yaml, which reports them with positions.
    pub fn index(text: &str) -> Locations {
        let mut out = Locations::default();
        let mut parser = Parser::new_from_str(text);
        let mut stack: Vec<Frame> = vec![];
        while let Ok((event, mark)) = parser.next_token() {
            let pos = Pos {
                line: mark.line(),
                col: mark.col() + 1,
            };
            match event {
                Event::StreamEnd => break,
                Event::Scalar(s, ..) => {
                    let len = s.chars().count().max(1);
                    out.value(&mut stack, pos, len, Some(s));
                }
                Event::Alias(_) => {
                    out.value(&mut stack, pos, 1, None);
                }
                Event::MappingStart(..) | Event::SequenceStart(..) => {
                    let is_map = matches!(event, Event::MappingStart(..));
                    let path = out.value(&mut stack, pos, 1, None);
                    stack.push(Frame {
                        path,
                        is_map,
                        key: None,
                        index: 0,
                        seen: HashMap::new(),
                    });
                }
                Event::MappingEnd | Event::SequenceEnd => {
                    stack.pop();
                }
                _ => {}
            }
        }
        out
    }

    /// Records a value event; inside a mapping a scalar alternates between key and value.
    /// Returns the path of the value (for collections, the frame to push).
    fn value(
        &mut self,
        stack: &mut [Frame],
        pos: Pos,
        len: usize,
        scalar: Option<String>,
    ) -> String {
        let Some(top) = stack.last_mut() else {
            self.map.insert(
                String::new(),
                Loc {
                    key: None,
                    value: Some(pos),
                    value_len: len,
                },
            );
            return String::new();
        };
        if top.is_map {
            match top.key.take() {
                None => {
                    // This event is a key.
                    let key = scalar.unwrap_or_default();
                    if let Some(first) = top.seen.get(&key) {
                        self.duplicates.push(DuplicateKey {
                            path: top.path.clone(),
                            key: key.clone(),
                            first: *first,
                            second: pos,
                        });
                    } else {
                        top.seen.insert(key.clone(), pos);
                    }
                    let path = join(&top.path, &key);
                    self.map.entry(path.clone()).or_default().key = Some(pos);
                    top.key = Some(path);
                    // A key is not a container frame even if written as one (unsupported).
                    String::new()
                }
                Some(path) => {
                    let e = self.map.entry(path.clone()).or_default();
                    e.value = Some(pos);
                    e.value_len = len;
                    path
                }
            }
        } else {
            let path = join(&top.path, &top.index.to_string());
            top.index += 1;
            self.map.insert(
                path.clone(),
                Loc {
                    key: None,
                    value: Some(pos),
                    value_len: len,
                },
            );
            path
        }
    }

    pub fn get(&self, path: &str) -> Loc {
        self.map.get(path).copied().unwrap_or_default()
    }

    /// Position of the key at `path`, else of its value, else of the nearest ancestor.
    pub fn key_pos(&self, path: &str) -> Option<Pos> {
        let l = self.get(path);
        l.key
            .or(l.value)
            .or_else(|| parent(path).and_then(|p| self.key_pos(p)))
    }

    /// Position of the value at `path`, else of its key, else of the nearest ancestor.
    pub fn value_pos(&self, path: &str) -> Option<Pos> {
        let l = self.get(path);
        l.value
            .or(l.key)
            .or_else(|| parent(path).and_then(|p| self.value_pos(p)))
    }
}

struct Frame {
    path: String,
    is_map: bool,
    /// Path of the pending key whose value comes next.
    key: Option<String>,
    index: usize,
    seen: HashMap<String, Pos>,
}

/// `a.b` + `c` -> `a.b.c`.
pub fn join(path: &str, seg: &str) -> String {
    if path.is_empty() {
        seg.to_string()
    } else {
        format!("{path}.{seg}")
    }
}

fn parent(path: &str) -> Option<&str> {
    if path.is_empty() {
        None
    } else {
        Some(path.rfind('.').map_or("", |i| &path[..i]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "version: 1\nnodes:\n  ct:   { kind: load_nifti, params: { path: a.nii } }\n  out:\n    kind: save_nifti\n    inputs: { image: ct.image }\n    list: [1, 2]\n";

    #[test]
    fn finds_keys_and_values() {
        let l = Locations::index(TEXT);
        assert_eq!(l.get("version").key, Some(Pos { line: 1, col: 1 }));
        assert_eq!(l.get("version").value, Some(Pos { line: 1, col: 10 }));
        assert_eq!(l.get("nodes.ct.kind").value, Some(Pos { line: 3, col: 17 }));
        assert_eq!(l.get("nodes.ct.kind").value_len, 10);
        assert_eq!(
            l.get("nodes.ct.params.path").value,
            Some(Pos { line: 3, col: 45 })
        );
        assert_eq!(
            l.get("nodes.out.inputs.image").value,
            Some(Pos { line: 6, col: 22 })
        );
        assert_eq!(
            l.get("nodes.out.list.1").value,
            Some(Pos { line: 7, col: 15 })
        );
        assert_eq!(
            l.key_pos("nodes.out.params.path"),
            Some(Pos { line: 4, col: 3 })
        );
    }

    #[test]
    fn reports_duplicate_keys() {
        let l = Locations::index("nodes:\n  a: {kind: x}\n  b: {kind: y}\n  a: {kind: z}\n");
        assert_eq!(l.duplicates.len(), 1);
        assert_eq!(l.duplicates[0].key, "a");
        assert_eq!(l.duplicates[0].first, Pos { line: 2, col: 3 });
        assert_eq!(l.duplicates[0].second, Pos { line: 4, col: 3 });
    }
}
