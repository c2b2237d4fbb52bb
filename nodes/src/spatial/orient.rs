//! Orientation codes and exact reorientation (axis permutation and flips, no interpolation).
//!
//! A code names, for voxel axes i, j, k in turn, the patient direction in which that index
//! *increases*, as nibabel's `aff2axcodes` does: `RAS` = i towards the patient's Right, j
//! Anterior, k Superior (NIfTI's canonical), `LPS` = DICOM/ITK's. (DICOM and ITK's own
//! "RAI"-style codes sometimes name where axes come *from*; we never use that convention.)

// Small fixed-size matrix code reads best with explicit indices.

use super::grid::Mat4;
use crate::node::NodeError;
use crate::value::{Geometry, Volume};

/// Every valid code (one letter from each of R/L, A/P, S/I, in any order).
pub const CODES: &[&str] = &[
    "RAS", "RAI", "RPS", "RPI", "LAS", "LAI", "LPS", "LPI", "RSA", "RSP", "RIA", "RIP", "LSA",
    "LSP", "LIA", "LIP", "ARS", "ARI", "ALS", "ALI", "PRS", "PRI", "PLS", "PLI", "ASR", "ASL",
    "AIR", "AIL", "PSR", "PSL", "PIR", "PIL", "SRA", "SRP", "SLA", "SLP", "IRA", "IRP", "ILA",
    "ILP", "SAR", "SAL", "SPR", "SPL", "IAR", "IAL", "IPR", "IPL",
];

/// For each voxel axis (i, j, k): the LPS world axis it runs along (0 = x, 1 = y, 2 = z) and
/// whether it runs towards + (L, P, S) or - (R, A, I).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Orientation {
    pub axis: [usize; 3],
    pub positive: [bool; 3],
}

impl Orientation {
    /// Parses a code such as `RAS` (case-insensitive).
    pub fn parse(code: &str) -> Result<Orientation, NodeError> {
        let bad = || {
            NodeError::Invalid(format!(
                "unknown orientation code `{code}`: use three letters, one from each of R/L, \
                 A/P and S/I, naming where voxel axes i, j, k point (e.g. RAS, LPS)"
            ))
        };
        let letters: Vec<char> = code.trim().to_ascii_uppercase().chars().collect();
        if letters.len() != 3 {
            return Err(bad());
        }
        let mut o = Orientation {
            axis: [0; 3],
            positive: [true; 3],
        };
        let mut seen = [false; 3];
        for (a, ch) in letters.iter().enumerate() {
            let (w, pos) = match ch {
                'L' => (0, true),
                'R' => (0, false),
                'P' => (1, true),
                'A' => (1, false),
                'S' => (2, true),
                'I' => (2, false),
                _ => return Err(bad()),
            };
            if seen[w] {
                return Err(bad());
            }
            seen[w] = true;
            o.axis[a] = w;
            o.positive[a] = pos;
        }
        Ok(o)
    }

    /// The closest orientation of an affine's axes (nibabel's `io_orientation`: the largest
    /// direction cosine first, each world axis used once).
    pub fn of(affine: &Mat4) -> Orientation {
        let mut cos = [[0.0f64; 3]; 3]; // [world][voxel axis]
        for c in 0..3 {
            let n = (0..3).map(|r| affine[r][c].powi(2)).sum::<f64>().sqrt();
            for r in 0..3 {
                cos[r][c] = if n > 0.0 { affine[r][c] / n } else { 0.0 };
            }
        }
        let mut o = Orientation {
            axis: [0; 3],
            positive: [true; 3],
        };
        let (mut rows, mut cols) = ([false; 3], [false; 3]);
        for _ in 0..3 {
            let mut best = (0, 0, -1.0);
            for (r, row) in cos.iter().enumerate() {
                for (c, v) in row.iter().enumerate() {
                    if !rows[r] && !cols[c] && v.abs() > best.2 {
                        best = (r, c, v.abs());
                    }
                }
            }
            let (r, c, _) = best;
            rows[r] = true;
            cols[c] = true;
            o.axis[c] = r;
            o.positive[c] = cos[r][c] >= 0.0;
        }
        o
    }

    pub fn code(&self) -> String {
        (0..3)
            .map(|a| match (self.axis[a], self.positive[a]) {
                (0, true) => 'L',
                (0, false) => 'R',
                (1, true) => 'P',
                (1, false) => 'A',
                (2, true) => 'S',
                _ => 'I',
            })
            .collect()
    }
}

/// The same voxels with axes permuted and flipped so that the volume's closest orientation is
/// `target`; the affine is changed to match, so every voxel keeps its place in the patient.
/// Exact: no interpolation. Oblique volumes keep their rotation (only the axis order and
/// directions change), as nibabel's and MONAI's `Orientation` do.
pub fn reorient(v: &Volume, target: Orientation) -> Result<Volume, NodeError> {
    let a = v.geometry().affine_lps;
    let now = Orientation::of(&a);
    if now == target {
        return Ok(v.clone());
    }
    let shape = v.spatial_shape();
    let lead = (v.data().dim() - 3) as i64;
    let mut src = [0usize; 3];
    let mut flip = [false; 3];
    for b in 0..3 {
        let s = (0..3)
            .find(|&x| now.axis[x] == target.axis[b])
            .expect("both orientations use each world axis once");
        src[b] = s;
        flip[b] = now.positive[s] != target.positive[b];
    }
    // Tensor dim of voxel axis x is lead + 2 - x.
    let mut perm: Vec<i64> = (0..lead).collect();
    for d in 0..3 {
        let b = 2 - d; // output voxel axis at tensor dim lead + d
        perm.push(lead + 2 - src[b] as i64);
    }
    let flips: Vec<i64> = (0..3)
        .filter(|&b| flip[b])
        .map(|b| lead + 2 - b as i64)
        .collect();
    let mut data = v.data().f_permute(&perm)?;
    if !flips.is_empty() {
        data = data.f_flip(&flips)?;
    }
    let data = data.f_contiguous()?;

    let mut out: Mat4 = [[0.0; 4]; 4];
    out[3][3] = 1.0;
    for r in 0..3 {
        out[r][3] = a[r][3];
    }
    for b in 0..3 {
        let s = src[b];
        let sign = if flip[b] { -1.0 } else { 1.0 };
        let n = shape[2 - s] as f64;
        for r in 0..3 {
            out[r][b] = sign * a[r][s];
            if flip[b] {
                out[r][3] += a[r][s] * (n - 1.0);
            }
        }
    }
    let mut vol = Volume::new(data, Geometry { affine_lps: out }).map_err(NodeError::Invalid)?;
    vol.meta = v.meta.clone();
    vol.identity = v.identity.clone();
    Ok(vol)
}
