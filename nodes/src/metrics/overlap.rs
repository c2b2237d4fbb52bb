//! One pass over both label maps: voxel counts and boxes per id, and the voxels where the
//! prediction says the class the reference says (for Dice and IoU).

use super::grid::{BBox, LabelGrid};
use crate::node::NodeError;
use rayon::prelude::*;

/// Per-id voxel counts and index boxes of one label map.
#[derive(Clone)]
pub struct IdStats {
    pub count: Vec<u64>,
    pub bbox: Vec<BBox>,
}

impl IdStats {
    fn new(n: usize) -> Self {
        IdStats {
            count: vec![0; n],
            bbox: vec![BBox::empty(); n],
        }
    }
    fn merge(mut self, o: IdStats) -> Self {
        for (i, c) in o.count.iter().enumerate() {
            if *c > 0 {
                self.count[i] += c;
                self.bbox[i] = self.bbox[i].union(&o.bbox[i]);
            }
        }
        self
    }
    /// Ids (other than background 0) with at least one voxel.
    pub fn present(&self) -> impl Iterator<Item = i32> + '_ {
        self.count
            .iter()
            .enumerate()
            .skip(1)
            .filter(|(_, &c)| c > 0)
            .map(|(i, _)| i as i32)
    }
    pub fn count_of(&self, id: i32) -> u64 {
        self.count.get(id as usize).copied().unwrap_or(0)
    }
    pub fn bbox_of(&self, id: i32) -> BBox {
        self.bbox.get(id as usize).copied().unwrap_or(BBox::empty())
    }
}

/// The largest id a label map may hold (ids index arrays here).
pub const MAX_ID: i32 = 65535;

/// Counts and boxes of every id of `g`.
pub fn id_stats(g: &LabelGrid, what: &str) -> Result<IdStats, NodeError> {
    let (min, max) = g
        .ids
        .par_iter()
        .fold(|| (i32::MAX, i32::MIN), |(a, b), &v| (a.min(v), b.max(v)))
        .reduce(|| (i32::MAX, i32::MIN), |x, y| (x.0.min(y.0), x.1.max(y.1)));
    if g.len() > 0 && (min < 0 || max > MAX_ID) {
        return Err(NodeError::Invalid(format!(
            "the {what} label map holds ids from {min} to {max}; class ids must be 0..={MAX_ID}"
        )));
    }
    let n = (max.max(0) + 1) as usize;
    let [_, h, w] = g.shape;
    let plane = h * w;
    Ok(g.ids
        .par_chunks(plane.max(1))
        .enumerate()
        .fold(
            || IdStats::new(n),
            |mut s, (k, pl)| {
                for j in 0..h {
                    let row = &pl[j * w..(j + 1) * w];
                    for (i, &v) in row.iter().enumerate() {
                        if v != 0 {
                            let v = v as usize;
                            s.count[v] += 1;
                            s.bbox[v].add([k, j, i]);
                        }
                    }
                }
                s
            },
        )
        .reduce(|| IdStats::new(n), IdStats::merge))
}

/// Voxels where `pred == p` and `reference == r` for each pair `(p, r)` of `pairs`.
pub fn intersections(pred: &LabelGrid, reference: &LabelGrid, pairs: &[(i32, i32)]) -> Vec<u64> {
    // ref id -> index of its pair, and that pair's prediction id.
    let n = pairs.iter().map(|&(_, r)| r).max().unwrap_or(0).max(0) as usize + 1;
    let mut lut: Vec<Option<(usize, i32)>> = vec![None; n];
    // A class absent from the reference (-1: `match: name` with a name only the prediction
    // has) shares no voxel with it.
    for (idx, &(p, r)) in pairs.iter().enumerate() {
        if r >= 0 {
            lut[r as usize] = Some((idx, p));
        }
    }
    pred.ids
        .par_chunks(1 << 16)
        .zip(reference.ids.par_chunks(1 << 16))
        .fold(
            || vec![0u64; pairs.len()],
            |mut acc, (a, b)| {
                for (&pv, &rv) in a.iter().zip(b) {
                    if let Some(Some((idx, p))) = lut.get(rv as usize) {
                        if pv == *p {
                            acc[*idx] += 1;
                        }
                    }
                }
                acc
            },
        )
        .reduce(
            || vec![0u64; pairs.len()],
            |mut x, y| {
                x.iter_mut().zip(y).for_each(|(a, b)| *a += b);
                x
            },
        )
}
