//! Grouping frames into stacks (one series, one orientation, spacing and size) and choosing
//! the stack to load.

use super::frame::{cross, FrameGeom};
use super::header::Instance;
use crate::node::{Ctx, NodeError};
use regex::Regex;
use std::collections::HashMap;
use std::path::Path;

/// One frame of one file.
#[derive(Clone, Copy, Debug)]
pub struct FrameRef {
    /// Index into the scan's images.
    pub inst: usize,
    /// Frame index inside that file.
    pub frame: u32,
    pub geom: FrameGeom,
}

/// Frames of one series that share orientation, pixel spacing and size: one volume.
#[derive(Clone, Debug)]
pub struct Stack {
    pub frames: Vec<FrameRef>,
    pub modality: String,
    pub rows: u32,
    pub cols: u32,
    pub series_number: Option<i64>,
    pub series_uid: Option<String>,
    pub description: Option<String>,
    pub spacing: [f64; 2],
    pub normal: [f64; 3],
}

impl Stack {
    /// A description without identifying values (no UIDs, no free text).
    pub fn summary(&self) -> String {
        let n = self.frames.len();
        let m = if self.modality.is_empty() {
            "?"
        } else {
            &self.modality
        };
        let mut s = format!(
            "{m}, {n} slice{}, {}x{} pixels of {:.3} x {:.3} mm, {}",
            if n == 1 { "" } else { "s" },
            self.cols,
            self.rows,
            self.spacing[1],
            self.spacing[0],
            orientation_name(self.normal)
        );
        match self.series_number {
            Some(k) => s.push_str(&format!(", series number {k}")),
            None => s.push_str(", no series number"),
        }
        s
    }
}

fn orientation_name(n: [f64; 3]) -> &'static str {
    let a = [n[0].abs(), n[1].abs(), n[2].abs()];
    if a[2] > 0.9 {
        "axial"
    } else if a[1] > 0.9 {
        "coronal"
    } else if a[0] > 0.9 {
        "sagittal"
    } else {
        "oblique"
    }
}

/// Groups the frames of `images` into stacks, in order of first appearance.
pub fn stacks(images: &[Instance]) -> Vec<Stack> {
    let mut index: HashMap<String, usize> = HashMap::new();
    let mut out: Vec<Stack> = Vec::new();
    let q = |x: f64| (x * 1e4).round() as i64;
    for (ii, inst) in images.iter().enumerate() {
        for &(frame, geom) in &inst.frames {
            let key = format!(
                "{}|{}x{}|{:?}|{:?}|{:?}",
                inst.series_key,
                inst.rows,
                inst.cols,
                geom.row_dir.map(q),
                geom.col_dir.map(q),
                geom.spacing.map(q)
            );
            let fr = FrameRef {
                inst: ii,
                frame,
                geom,
            };
            match index.get(&key) {
                Some(&s) => out[s].frames.push(fr),
                None => {
                    index.insert(key, out.len());
                    out.push(Stack {
                        frames: vec![fr],
                        modality: inst.modality.clone(),
                        rows: inst.rows,
                        cols: inst.cols,
                        series_number: inst.series_number,
                        series_uid: inst.ids.series_instance_uid.clone(),
                        description: inst.description.clone(),
                        spacing: geom.spacing,
                        normal: cross(geom.row_dir, geom.col_dir),
                    });
                }
            }
        }
    }
    out
}

/// What the params ask for.
#[derive(Default)]
pub struct Choice {
    pub series_uid: Option<String>,
    pub series_number: Option<i64>,
    pub modality: Option<String>,
    pub description: Option<Regex>,
    pub min_slices: Option<i64>,
}

impl Choice {
    fn matches(&self, s: &Stack) -> bool {
        self.series_uid
            .as_ref()
            .is_none_or(|u| s.series_uid.as_deref() == Some(u.as_str()))
            && self
                .series_number
                .is_none_or(|n| s.series_number == Some(n))
            && self
                .modality
                .as_ref()
                .is_none_or(|m| s.modality.eq_ignore_ascii_case(m))
            && self
                .description
                .as_ref()
                .is_none_or(|r| s.description.as_deref().is_some_and(|d| r.is_match(d)))
            && self.min_slices.is_none_or(|n| s.frames.len() as i64 >= n)
    }

    fn describe(&self) -> String {
        let mut v = vec![];
        if self.series_uid.is_some() {
            v.push("series_uid".to_string());
        }
        if let Some(n) = self.series_number {
            v.push(format!("series_number {n}"));
        }
        if let Some(m) = &self.modality {
            v.push(format!("modality {m}"));
        }
        if let Some(r) = &self.description {
            v.push(format!("description /{}/", r.as_str()));
        }
        if let Some(n) = self.min_slices {
            v.push(format!("min_slices {n}"));
        }
        v.join(", ")
    }
}

const HINT: &str = "choose with `series_number`, `modality`, `min_slices`, `description` (a \
                    regex on SeriesDescription) or `series_uid` (read it with dcmdump; UIDs and \
                    descriptions are not printed here because they can identify the patient)";

fn listing(stacks: &[&Stack]) -> String {
    stacks
        .iter()
        .enumerate()
        .map(|(i, s)| format!("\n  #{} {}", i + 1, s.summary()))
        .collect()
}

/// Picks the stack to load: those matching every given param; without `modality`, CT
/// stacks when there are any; then the one with the most slices. A tie is an error listing
/// the tied stacks; other stacks left out are reported through `ctx.warn`.
pub fn choose(
    all: Vec<Stack>,
    choice: &Choice,
    root: &Path,
    ctx: &Ctx,
) -> Result<Stack, NodeError> {
    let matching: Vec<&Stack> = all.iter().filter(|s| choice.matches(s)).collect();
    if matching.is_empty() {
        return Err(NodeError::file(
            root,
            format!(
                "no series matches {}; found {} series:{}\n  = hint: {HINT}",
                choice.describe(),
                all.len(),
                listing(&all.iter().collect::<Vec<_>>())
            ),
        ));
    }
    let pool: Vec<&Stack> =
        if choice.modality.is_none() && matching.iter().any(|s| s.modality == "CT") {
            matching
                .iter()
                .copied()
                .filter(|s| s.modality == "CT")
                .collect()
        } else {
            matching.clone()
        };
    let most = pool.iter().map(|s| s.frames.len()).max().unwrap_or(0);
    let top: Vec<&Stack> = pool
        .iter()
        .copied()
        .filter(|s| s.frames.len() == most)
        .collect();
    if top.len() > 1 {
        return Err(NodeError::file(
            root,
            format!(
                "{} series are equally good candidates (the largest{}{}):{}\n  = hint: {HINT}",
                top.len(),
                if pool.len() < matching.len() {
                    " CT series"
                } else {
                    " series"
                },
                if choice.describe().is_empty() {
                    String::new()
                } else {
                    format!(" matching {}", choice.describe())
                },
                listing(&top)
            ),
        ));
    }
    let chosen = top[0];
    let others: Vec<&Stack> = all.iter().filter(|s| !std::ptr::eq(*s, chosen)).collect();
    if !others.is_empty() {
        ctx.warn(&format!(
            "loading the series: {}; {} other series left out:{}\n  ({HINT})",
            chosen.summary(),
            others.len(),
            listing(&others)
        ));
    }
    let idx = all
        .iter()
        .position(|s| std::ptr::eq(s, chosen))
        .unwrap_or(0);
    Ok(all.into_iter().nth(idx).expect("index of a member"))
}
