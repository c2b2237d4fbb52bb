//! Placing a stack's frames on a grid: sort along the slice normal, check spacing and tilt,
//! build the voxel -> LPS affine, and (when allowed) plan resampling of uneven slices.

use super::frame::{cross, dot, norm};
use super::series::{FrameRef, Stack};
use crate::node::NodeError;
use std::path::Path;

/// Largest angle (degrees) and lateral shift (mm) between the slice normal and the line
/// through the slice positions that still counts as untilted.
pub const TILT_DEGREES: f64 = 0.01;
pub const TILT_MM: f64 = 0.02;
/// A gap may differ from the median gap by this fraction (and at least 1e-3 mm).
pub const SPACING_TOLERANCE: f64 = 0.01;
/// Slice thickness assumed for a one-slice volume without SliceThickness.
pub const DEFAULT_THICKNESS: f64 = 1.0;

/// How one output slice is made from the sorted input frames: `(1 - w) * lo + w * hi`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Blend {
    pub lo: usize,
    pub hi: usize,
    pub w: f64,
}

/// The sorted frames and the grid they are put on.
pub struct Layout {
    /// Frames sorted along the slice normal (ascending projection of ImagePositionPatient).
    pub order: Vec<FrameRef>,
    /// Voxel (i, j, k, 1) -> LPS mm.
    pub affine: [[f64; 4]; 4],
    /// `Some` when the slices were uneven and are resampled: one blend per output slice.
    pub resample: Option<Vec<Blend>>,
}

fn fmt_list(v: &[f64]) -> String {
    let shown: Vec<String> = v.iter().take(12).map(|x| format!("{x:.3}")).collect();
    let more = if v.len() > 12 {
        format!(", ... ({} in all)", v.len())
    } else {
        String::new()
    };
    format!("[{}{more}]", shown.join(", "))
}

/// Sorts and checks `stack`; `allow_irregular` turns uneven spacing into a resampling plan.
pub fn layout(stack: &Stack, allow_irregular: bool, root: &Path) -> Result<Layout, NodeError> {
    let err = |m: String| NodeError::file(root, m);
    let g0 = stack.frames[0].geom;
    let normal = cross(g0.row_dir, g0.col_dir);
    let normal = normal.map(|x| x / norm(normal));
    let mut order: Vec<(f64, FrameRef)> = stack
        .frames
        .iter()
        .map(|f| (dot(f.geom.position, normal), *f))
        .collect();
    order.sort_by(|a, b| a.0.total_cmp(&b.0));
    let d: Vec<f64> = order.iter().map(|x| x.0).collect();
    let order: Vec<FrameRef> = order.into_iter().map(|x| x.1).collect();
    let n = order.len();
    let first = order[0].geom.position;

    let mut affine = [[0.0; 4]; 4];
    for r in 0..3 {
        affine[r][0] = g0.row_dir[r] * g0.spacing[1];
        affine[r][1] = g0.col_dir[r] * g0.spacing[0];
        affine[r][3] = first[r];
    }
    affine[3][3] = 1.0;

    if n == 1 {
        let t = g0.thickness.unwrap_or(DEFAULT_THICKNESS);
        for r in 0..3 {
            affine[r][2] = normal[r] * t;
        }
        return Ok(Layout {
            order,
            affine,
            resample: None,
        });
    }

    let gaps: Vec<f64> = d.windows(2).map(|w| w[1] - w[0]).collect();
    if let Some(i) = gaps.iter().position(|g| *g < 1e-3) {
        return Err(err(format!(
            "{} slices of the series share a position: slices {} and {} (sorted along the \
             slice normal) both lie at {:.3} mm; the series holds several images per position \
             (echoes, phases or time points?), which a 3D volume cannot hold. Positions along \
             the normal: {}",
            gaps.iter().filter(|g| **g < 1e-3).count() + 1,
            i + 1,
            i + 2,
            d[i],
            fmt_list(&d)
        )));
    }

    // Tilt: the line through the slice positions against the normal.
    let last = order[n - 1].geom.position;
    let span = [last[0] - first[0], last[1] - first[1], last[2] - first[2]];
    let along = dot(span, normal);
    let lateral = norm([
        span[0] - along * normal[0],
        span[1] - along * normal[1],
        span[2] - along * normal[2],
    ]);
    let angle = lateral.atan2(along.abs()).to_degrees();
    if lateral > TILT_MM && angle > TILT_DEGREES {
        return Err(err(format!(
            "gantry tilt: the slice positions run {angle:.3} degrees away from the slice normal \
             ({lateral:.3} mm sideways over {along:.3} mm); tilted series are not loaded, because \
             their voxels are not on a box grid. Correct the tilt first (e.g. dcm2niix \
             corrects gantry tilt) and load the result"
        )));
    }

    let mut sorted = gaps.clone();
    sorted.sort_by(f64::total_cmp);
    let median = sorted[sorted.len() / 2];
    let tol = (SPACING_TOLERANCE * median).max(1e-3);
    let uneven: Vec<usize> = (0..gaps.len())
        .filter(|&i| (gaps[i] - median).abs() > tol)
        .collect();
    if uneven.is_empty() {
        for r in 0..3 {
            affine[r][2] = span[r] / (n - 1) as f64;
        }
        return Ok(Layout {
            order,
            affine,
            resample: None,
        });
    }
    if !allow_irregular {
        let shown: Vec<String> = uneven
            .iter()
            .take(5)
            .map(|&i| {
                let missing = (gaps[i] / median).round() - 1.0;
                format!(
                    "{:.3} mm between slices {} and {} (at {:.3} and {:.3} mm){}",
                    gaps[i],
                    i + 1,
                    i + 2,
                    d[i],
                    d[i + 1],
                    if missing >= 1.0 && (gaps[i] - (missing + 1.0) * median).abs() <= tol {
                        format!(": {missing:.0} slice(s) missing?")
                    } else {
                        String::new()
                    }
                )
            })
            .collect();
        return Err(err(format!(
            "uneven slice spacing: the expected step is {median:.3} mm (the median gap), but {} \
             gap(s) differ by more than {tol:.3} mm: {}{}. Positions along the slice normal \
             ({n} slices): {}\n  = hint: set `allow_irregular: true` to resample onto a regular \
             grid by linear interpolation, or add the missing files",
            uneven.len(),
            shown.join("; "),
            if uneven.len() > 5 { "; ..." } else { "" },
            fmt_list(&d)
        )));
    }
    // Regular grid from the first to the last position at about the median step.
    let extent = d[n - 1] - d[0];
    let nk = ((extent / median).round() as usize).max(1) + 1;
    let step = extent / (nk - 1) as f64;
    for r in 0..3 {
        affine[r][2] = span[r] / (nk - 1) as f64;
    }
    let mut plan = Vec::with_capacity(nk);
    let mut lo = 0usize;
    for k in 0..nk {
        let t = d[0] + k as f64 * step;
        while lo + 2 < n && d[lo + 1] <= t {
            lo += 1;
        }
        let hi = lo + 1;
        let w = ((t - d[lo]) / (d[hi] - d[lo])).clamp(0.0, 1.0);
        plan.push(Blend { lo, hi, w });
    }
    Ok(Layout {
        order,
        affine,
        resample: Some(plan),
    })
}
