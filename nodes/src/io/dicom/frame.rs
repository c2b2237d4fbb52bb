//! One frame's place in patient space and its rescale: what header reading (plain and
//! enhanced multi-frame files alike) produces, and the vector helpers the layout uses.

use super::attrs::{self, float, Obj};

/// Where one frame lies and how its stored values become output values.
#[derive(Clone, Copy, Debug)]
pub struct FrameGeom {
    /// ImagePositionPatient: the centre of the first transmitted pixel, LPS mm.
    pub position: [f64; 3],
    /// ImageOrientationPatient[0..3]: the direction of increasing column index `i`.
    pub row_dir: [f64; 3],
    /// ImageOrientationPatient[3..6]: the direction of increasing row index `j`.
    pub col_dir: [f64; 3],
    /// PixelSpacing: `[between rows (along j), between columns (along i)]`, mm.
    pub spacing: [f64; 2],
    /// SliceThickness, mm (used only for a one-slice volume).
    pub thickness: Option<f64>,
    pub slope: f64,
    pub intercept: f64,
}

/// RescaleSlope/RescaleIntercept of a data set (1 and 0 when absent).
pub fn rescale(obj: &Obj) -> Result<(f64, f64), String> {
    let slope = float(obj, attrs::RESCALE_SLOPE)?.unwrap_or(1.0);
    let intercept = float(obj, attrs::RESCALE_INTERCEPT)?.unwrap_or(0.0);
    if slope == 0.0 {
        return Err("RescaleSlope is 0".into());
    }
    Ok((slope, intercept))
}

/// Checks and normalises the orientation (unit, orthogonal within 1e-3).
pub fn build_geom(
    ipp: &[f64],
    iop: &[f64],
    ps: &[f64],
    thickness: Option<f64>,
    slope: f64,
    intercept: f64,
) -> Result<FrameGeom, String> {
    let mut r = [iop[0], iop[1], iop[2]];
    let mut c = [iop[3], iop[4], iop[5]];
    let (nr, nc) = (norm(r), norm(c));
    if (nr - 1.0).abs() > 1e-2 || (nc - 1.0).abs() > 1e-2 {
        return Err(format!(
            "ImageOrientationPatient is not two unit vectors (lengths {nr:.4} and {nc:.4})"
        ));
    }
    let d = dot(r, c) / (nr * nc);
    if d.abs() > 1e-3 {
        return Err(format!(
            "ImageOrientationPatient's row and column directions are not orthogonal (cosine {d:.4})"
        ));
    }
    for v in r.iter_mut() {
        *v /= nr;
    }
    for v in c.iter_mut() {
        *v /= nc;
    }
    if !(ps[0] > 0.0 && ps[1] > 0.0) {
        return Err(format!(
            "PixelSpacing is not positive ({} \\ {})",
            ps[0], ps[1]
        ));
    }
    Ok(FrameGeom {
        position: [ipp[0], ipp[1], ipp[2]],
        row_dir: r,
        col_dir: c,
        spacing: [ps[0], ps[1]],
        thickness: thickness.filter(|t| *t > 0.0),
        slope,
        intercept,
    })
}

pub fn dot(a: [f64; 3], b: [f64; 3]) -> f64 {
    a[0] * b[0] + a[1] * b[1] + a[2] * b[2]
}

pub fn norm(a: [f64; 3]) -> f64 {
    dot(a, a).sqrt()
}

pub fn cross(a: [f64; 3], b: [f64; 3]) -> [f64; 3] {
    [
        a[1] * b[2] - a[2] * b[1],
        a[2] * b[0] - a[0] * b[2],
        a[0] * b[1] - a[1] * b[0],
    ]
}
