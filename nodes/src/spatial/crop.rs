//! Foreground cropping as MONAI's `CropForeground` does it in the VISTA3D bundle: the box
//! around voxels above a threshold, widened by a margin, clamped to the image
//! (`allow_smaller=True`). The cropped volume keeps its place in the patient (the affine's
//! origin moves to the box's first voxel), so resampling a result onto the original image
//! as reference pastes it back.

use crate::node::NodeError;
use crate::value::{Geometry, Volume};
use tch::Kind;

/// A box of voxels, per voxel axis `(i, j, k)`: `start` inclusive, `end` exclusive.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CropBox {
    pub start: [i64; 3],
    pub end: [i64; 3],
}

/// Metadata keys recording a crop, each a JSON list in `(i, j, k)` order:
/// `crop_start`, `crop_end` (exclusive) and `crop_from_shape` (the uncropped shape).
pub const META_START: &str = "crop_start";
pub const META_END: &str = "crop_end";
pub const META_FROM_SHAPE: &str = "crop_from_shape";

/// The box around voxels `> threshold` (any channel), `margin` voxels wider on each side,
/// clamped to the volume; `None` when no voxel is above the threshold.
pub fn foreground_box(
    v: &Volume,
    threshold: f64,
    margin: i64,
) -> Result<Option<CropBox>, NodeError> {
    if margin < 0 {
        return Err(NodeError::Invalid(format!(
            "margin must be 0 or more voxels, got {margin}"
        )));
    }
    let x = v.data();
    let lead = x.dim() as i64 - 3;
    let mask = x.f_gt(threshold)?;
    let mask = if lead == 1 {
        mask.f_any_dim(0, false)?
    } else {
        mask
    };
    let shape = v.spatial_shape();
    let mut start = [0i64; 3];
    let mut end = [0i64; 3];
    for a in 0..3 {
        // Tensor dim of voxel axis a is 2 - a; reduce over the other two.
        let d = 2 - a as i64;
        let others: Vec<i64> = (0..3).filter(|&o| o != d).collect();
        let profile = mask.f_any_dims(others.as_slice(), false)?;
        let idx = profile.f_nonzero()?.f_to_device(tch::Device::Cpu)?;
        let n = idx.size()[0];
        if n == 0 {
            return Ok(None);
        }
        let idx: Vec<i64> = Vec::<i64>::try_from(idx.f_reshape([-1])?.f_to_kind(Kind::Int64)?)
            .map_err(|e| NodeError::Torch(e.to_string()))?;
        let (lo, hi) = (idx[0], idx[idx.len() - 1]);
        start[a] = (lo - margin).max(0);
        end[a] = (hi + 1 + margin).min(shape[2 - a]);
    }
    Ok(Some(CropBox { start, end }))
}

/// The voxels of `b` as a new (contiguous) volume whose affine puts them where they were;
/// the crop is recorded in `meta` (see [`META_START`]).
pub fn crop(v: &Volume, b: &CropBox) -> Result<Volume, NodeError> {
    let shape = v.spatial_shape();
    for a in 0..3 {
        let n = shape[2 - a];
        if !(0 <= b.start[a] && b.start[a] < b.end[a] && b.end[a] <= n) {
            return Err(NodeError::Invalid(format!(
                "crop box {:?}..{:?} (i,j,k) does not fit a volume of {:?} voxels (i,j,k)",
                b.start,
                b.end,
                [shape[2], shape[1], shape[0]]
            )));
        }
    }
    let lead = v.data().dim() as i64 - 3;
    let mut t = v.data().shallow_clone();
    for a in 0..3 {
        t = t.f_narrow(lead + 2 - a as i64, b.start[a], b.end[a] - b.start[a])?;
    }
    let t = t.f_contiguous()?;
    let a = v.geometry().affine_lps;
    let mut out = a;
    for r in 0..3 {
        out[r][3] = a[r][3] + (0..3).map(|c| a[r][c] * b.start[c] as f64).sum::<f64>();
    }
    let mut vol = Volume::new(t, Geometry { affine_lps: out }).map_err(NodeError::Invalid)?;
    vol.meta = v.meta.clone();
    vol.identity = v.identity.clone();
    let list = |x: [i64; 3]| format!("[{},{},{}]", x[0], x[1], x[2]);
    // A crop of a crop: record the box in the first uncropped volume's indices.
    let (base, from) = match (
        parse_list(v.meta.get(META_START)),
        parse_list(v.meta.get(META_FROM_SHAPE)),
    ) {
        (Some(s), Some(f)) => (s, f),
        _ => ([0; 3], [shape[2], shape[1], shape[0]]),
    };
    let add = |x: [i64; 3]| [x[0] + base[0], x[1] + base[1], x[2] + base[2]];
    vol.meta.insert(META_START.into(), list(add(b.start)));
    vol.meta.insert(META_END.into(), list(add(b.end)));
    vol.meta.insert(META_FROM_SHAPE.into(), list(from));
    Ok(vol)
}

/// Reads a `[a,b,c]` list written by [`crop`].
pub fn parse_list(s: Option<&String>) -> Option<[i64; 3]> {
    let s = s?.trim().strip_prefix('[')?.strip_suffix(']')?;
    let v: Vec<i64> = s
        .split(',')
        .map(|x| x.trim().parse().ok())
        .collect::<Option<_>>()?;
    v.try_into().ok()
}
