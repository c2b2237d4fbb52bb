//! Voxel -> RAS affines from a header exactly as nibabel computes `img.affine`
//! (`Nifti1Header.get_best_affine`), and the qform parameters for an affine to write.

use super::header::{Header, Version};

/// A 4x4 matrix, rows first.
pub type Mat4 = [[f64; 4]; 4];

/// Which header transform gave the affine.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    Sform,
    Qform,
    /// Neither code set: nibabel's base affine from the shape and voxel sizes.
    Base,
}

/// nibabel's `get_best_affine`: the sform if `sform_code != 0`, else the qform if
/// `qform_code != 0`, else the base affine.
pub fn best_affine(h: &Header) -> Result<(Mat4, Source), String> {
    if h.sform_code != 0 {
        Ok((sform(h), Source::Sform))
    } else if h.qform_code != 0 {
        Ok((qform(h)?, Source::Qform))
    } else {
        Ok((base_affine(h)?, Source::Base))
    }
}

/// The sform rows `srow_x/y/z` under `[0, 0, 0, 1]`.
pub fn sform(h: &Header) -> Mat4 {
    [h.srow[0], h.srow[1], h.srow[2], [0.0, 0.0, 0.0, 1.0]]
}

/// nibabel's `get_qform`: rotation from the unit quaternion (b, c, d) with `a` filled in as
/// `sqrt(1 - b^2 - c^2 - d^2)` (0 when within 3 float eps of 0; an error when clearly
/// negative), voxel sizes `pixdim[1..4]` with the k size times qfac (`pixdim[0]`), and the
/// `qoffset` translation.
pub fn qform(h: &Header) -> Result<Mat4, String> {
    let [b, c, d] = h.quatern;
    let eps = match h.version {
        Version::Nifti1 => f32::EPSILON as f64,
        Version::Nifti2 => f64::EPSILON,
    };
    let w2 = 1.0 - (b * b + c * c + d * d);
    let a = if w2.abs() < 3.0 * eps {
        0.0
    } else if w2 < 0.0 {
        return Err(format!(
            "the qform quaternion (b, c, d) = ({b}, {c}, {d}) has length > 1, so it is no rotation; \
             the header is corrupt (nibabel refuses it too)"
        ));
    } else {
        w2.sqrt()
    };
    let r = quat_to_mat([a, b, c, d]);
    let vox = [h.pixdim[1], h.pixdim[2], h.pixdim[3] * h.pixdim[0]];
    let mut m = [[0.0; 4]; 4];
    for (row, out) in m.iter_mut().take(3).enumerate() {
        for col in 0..3 {
            out[col] = r[row][col] * vox[col];
        }
        out[3] = h.qoffset[row];
    }
    m[3][3] = 1.0;
    Ok(m)
}

/// nibabel's `get_base_affine` (`shape_zoom_affine` with x flipped): voxel sizes on the
/// diagonal, x negated, the volume centred on the origin.
pub fn base_affine(h: &Header) -> Result<Mat4, String> {
    let n = h.ndim()?;
    let mut shape = [1.0f64; 3];
    let mut zooms = [1.0f64; 3];
    for ax in 0..n.min(3) {
        shape[ax] = h.dim[ax + 1] as f64;
        zooms[ax] = h.pixdim[ax + 1];
    }
    zooms[0] = -zooms[0];
    let mut m = [[0.0; 4]; 4];
    for ax in 0..3 {
        m[ax][ax] = zooms[ax];
        m[ax][3] = -((shape[ax] - 1.0) / 2.0) * zooms[ax];
    }
    m[3][3] = 1.0;
    Ok(m)
}

/// nibabel's `quat2mat` for quaternion (w, x, y, z).
fn quat_to_mat(q: [f64; 4]) -> [[f64; 3]; 3] {
    let [w, x, y, z] = q;
    let nq = w * w + x * x + y * y + z * z;
    if nq < f64::EPSILON {
        return [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]];
    }
    let s = 2.0 / nq;
    let (xs, ys, zs) = (x * s, y * s, z * s);
    let (wx, wy, wz) = (w * xs, w * ys, w * zs);
    let (xx, xy, xz) = (x * xs, x * ys, x * zs);
    let (yy, yz, zz) = (y * ys, y * zs, z * zs);
    [
        [1.0 - (yy + zz), xy - wz, xz + wy],
        [xy + wz, 1.0 - (xx + zz), yz - wx],
        [xz - wy, yz + wx, 1.0 - (xx + yy)],
    ]
}

/// The qform fields that represent an affine (nibabel's `set_qform` with `strip_shears`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Qform {
    /// Quaternion b, c, d (a >= 0 implied).
    pub quatern: [f64; 3],
    pub offset: [f64; 3],
    /// `pixdim[0]`: -1 when the affine flips handedness.
    pub qfac: f64,
    /// `pixdim[1..4]`: the lengths of the affine's columns.
    pub zooms: [f64; 3],
}

/// The qform closest to `affine` (RAS): zooms are the column lengths, qfac makes the rotation
/// proper, and a rotation with shear is replaced by the nearest orthogonal matrix (the polar
/// factor, which is what nibabel's SVD `P @ Qs` gives). The sform keeps the exact affine, so
/// only a reader that ignores the sform sees the sheared-off difference. `None` when a column
/// is zero or not finite (no rotation exists; write qform_code 0 then).
pub fn qform_for(affine: &Mat4) -> Option<Qform> {
    let mut zooms = [0.0; 3];
    let mut r = [[0.0; 3]; 3];
    for col in 0..3 {
        let n = (0..3)
            .map(|row| affine[row][col].powi(2))
            .sum::<f64>()
            .sqrt();
        if !(n.is_finite() && n > 0.0) {
            return None;
        }
        zooms[col] = n;
        for row in 0..3 {
            r[row][col] = affine[row][col] / n;
        }
    }
    let qfac = if det3(&r) > 0.0 {
        1.0
    } else {
        for row in &mut r {
            row[2] = -row[2];
        }
        -1.0
    };
    let r = nearest_rotation(r)?;
    let q = mat_to_quat(&r);
    Some(Qform {
        quatern: [q[1], q[2], q[3]],
        offset: [affine[0][3], affine[1][3], affine[2][3]],
        qfac,
        zooms,
    })
}

fn det3(m: &[[f64; 3]; 3]) -> f64 {
    m[0][0] * (m[1][1] * m[2][2] - m[1][2] * m[2][1])
        - m[0][1] * (m[1][0] * m[2][2] - m[1][2] * m[2][0])
        + m[0][2] * (m[1][0] * m[2][1] - m[1][1] * m[2][0])
}

fn transpose_inverse(m: &[[f64; 3]; 3]) -> Option<[[f64; 3]; 3]> {
    let det = det3(m);
    if det.abs() < 1e-12 {
        return None;
    }
    // inverse^T = cofactor matrix / det.
    let mut c = [[0.0; 3]; 3];
    for (i, row) in c.iter_mut().enumerate() {
        for (j, out) in row.iter_mut().enumerate() {
            let (i1, i2) = ((i + 1) % 3, (i + 2) % 3);
            let (j1, j2) = ((j + 1) % 3, (j + 2) % 3);
            *out = (m[i1][j1] * m[i2][j2] - m[i1][j2] * m[i2][j1]) / det;
        }
    }
    Some(c)
}

/// The orthogonal polar factor of `m` by Newton's iteration `R <- (R + R^-T) / 2`, which
/// converges (quadratically) to the same matrix as `U V^T` from the SVD.
fn nearest_rotation(mut m: [[f64; 3]; 3]) -> Option<[[f64; 3]; 3]> {
    for _ in 0..100 {
        let it = transpose_inverse(&m)?;
        let mut next = [[0.0; 3]; 3];
        let mut change: f64 = 0.0;
        for i in 0..3 {
            for j in 0..3 {
                next[i][j] = 0.5 * (m[i][j] + it[i][j]);
                change = change.max((next[i][j] - m[i][j]).abs());
            }
        }
        m = next;
        if change < 1e-15 {
            break;
        }
    }
    Some(m)
}

/// Quaternion (w, x, y, z) with w >= 0 of a rotation matrix (Shepperd's method; equal to
/// nibabel's eigenvector method for orthogonal input).
fn mat_to_quat(m: &[[f64; 3]; 3]) -> [f64; 4] {
    let tr = m[0][0] + m[1][1] + m[2][2];
    let q = if tr > 0.0 {
        let s = 2.0 * (1.0 + tr).sqrt();
        [
            0.25 * s,
            (m[2][1] - m[1][2]) / s,
            (m[0][2] - m[2][0]) / s,
            (m[1][0] - m[0][1]) / s,
        ]
    } else if m[0][0] > m[1][1] && m[0][0] > m[2][2] {
        let s = 2.0 * (1.0 + m[0][0] - m[1][1] - m[2][2]).sqrt();
        [
            (m[2][1] - m[1][2]) / s,
            0.25 * s,
            (m[0][1] + m[1][0]) / s,
            (m[0][2] + m[2][0]) / s,
        ]
    } else if m[1][1] > m[2][2] {
        let s = 2.0 * (1.0 + m[1][1] - m[0][0] - m[2][2]).sqrt();
        [
            (m[0][2] - m[2][0]) / s,
            (m[0][1] + m[1][0]) / s,
            0.25 * s,
            (m[1][2] + m[2][1]) / s,
        ]
    } else {
        let s = 2.0 * (1.0 + m[2][2] - m[0][0] - m[1][1]).sqrt();
        [
            (m[1][0] - m[0][1]) / s,
            (m[0][2] + m[2][0]) / s,
            (m[1][2] + m[2][1]) / s,
            0.25 * s,
        ]
    };
    if q[0] < 0.0 {
        q.map(|v| -v)
    } else {
        q
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header_with(q: &Qform) -> Header {
        Header {
            version: Version::Nifti2,
            big_endian: false,
            dim: [3, 10, 20, 30, 1, 1, 1, 1],
            datatype: 4,
            pixdim: [
                q.qfac, q.zooms[0], q.zooms[1], q.zooms[2], 0.0, 0.0, 0.0, 0.0,
            ],
            vox_offset: 544.0,
            scl_slope: 0.0,
            scl_inter: 0.0,
            qform_code: 1,
            sform_code: 0,
            quatern: q.quatern,
            qoffset: q.offset,
            srow: [[0.0; 4]; 3],
        }
    }

    fn close(a: &Mat4, b: &Mat4, tol: f64) -> bool {
        a.iter()
            .flatten()
            .zip(b.iter().flatten())
            .all(|(x, y)| (x - y).abs() <= tol)
    }

    #[test]
    fn qform_round_trips_rotations_with_flips() {
        let (c, s) = (0.3f64.cos(), 0.3f64.sin());
        // A rotation about z, scaled (0.8, 1.2, 2.5), with the k axis flipped (qfac -1),
        // and a 180-degree case (w = 0).
        let cases: [Mat4; 3] = [
            [
                [c * 0.8, -s * 1.2, 0.0, 10.0],
                [s * 0.8, c * 1.2, 0.0, -5.0],
                [0.0, 0.0, -2.5, 7.0],
                [0.0, 0.0, 0.0, 1.0],
            ],
            [
                [-1.0, 0.0, 0.0, 1.0],
                [0.0, -1.0, 0.0, 2.0],
                [0.0, 0.0, 1.0, 3.0],
                [0.0, 0.0, 0.0, 1.0],
            ],
            [
                [0.0, 0.0, 3.0, 1.0],
                [-2.0, 0.0, 0.0, 2.0],
                [0.0, -1.5, 0.0, 3.0],
                [0.0, 0.0, 0.0, 1.0],
            ],
        ];
        for a in cases {
            let q = qform_for(&a).unwrap();
            let back = qform(&header_with(&q)).unwrap();
            assert!(close(&a, &back, 1e-12), "{a:?} -> {q:?} -> {back:?}");
        }
    }

    #[test]
    fn sheared_affine_gets_the_nearest_rotation() {
        let a: Mat4 = [
            [1.0, 0.1, 0.0, 0.0],
            [0.0, 1.0, 0.0, 0.0],
            [0.0, 0.0, 1.0, 0.0],
            [0.0, 0.0, 0.0, 1.0],
        ];
        let q = qform_for(&a).unwrap();
        let back = qform(&header_with(&q)).unwrap();
        // Orthogonal columns after stripping the shear.
        let dot: f64 = (0..3).map(|r| back[r][0] * back[r][1]).sum();
        assert!(dot.abs() < 1e-12);
        assert!(close(&a, &back, 0.06));
    }
}
