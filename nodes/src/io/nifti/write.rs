//! Writing a [`Value`] as a single-file NIfTI-1, atomically.

use super::affine::{qform_for, Mat4};
use super::dtype::{code_of, DataType};
use super::header::NIFTI1_SIZE;
use super::META_XFORM_CODE;
use crate::io::atomic::{self, create_parent, write_error};
use crate::io::sample::storable;
use crate::io::stream::{gzip_or_raw, write_tensor};
use crate::node::{Ctx, NodeError};
use crate::value::{Value, Volume};
use std::path::Path;
/// Where the voxels start: the header plus the 4-byte "no extensions" flag.
const VOX_OFFSET: usize = NIFTI1_SIZE + 4;

pub fn write(path: &Path, value: &Value, ctx: &Ctx) -> Result<(), NodeError> {
    write_as(path, value, None, ctx)
}

/// [`write`], storing the voxels as `sample` (`Uint8`/`Uint16` label maps: the values must
/// fit, which the caller checks; uint16 has no tensor kind, so its bits travel as int16).
pub(crate) fn write_as(
    path: &Path,
    value: &Value,
    sample: Option<DataType>,
    ctx: &Ctx,
) -> Result<(), NodeError> {
    let err = |msg: String| NodeError::file(path, msg);
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
    let gz = if name.ends_with(".nii.gz") {
        true
    } else if name.ends_with(".nii") {
        false
    } else {
        return Err(err(
            "a NIfTI file name must end in .nii.gz (compressed) or .nii (raw)".into(),
        ));
    };
    let vol = value.volume();
    let (data, dtype) = storable(vol, "NIfTI").map_err(err)?;
    let (data, dtype) = match sample {
        Some(DataType::Uint8) => (data.to_kind(tch::Kind::Uint8), DataType::Uint8),
        Some(DataType::Uint16) => (data.to_kind(tch::Kind::Int16), DataType::Uint16),
        _ => (data, dtype),
    };
    let header = header_bytes(vol, &data.size(), dtype).map_err(err)?;

    create_parent(path)?;
    atomic::write(path, |w| {
        gzip_or_raw(w, gz, path, |w| {
            w.write_all(&header).map_err(|e| write_error(path, e))?;
            write_tensor(w, &data, ctx, path)
        })
    })
}

/// The 348-byte NIfTI-1 header plus the 4-byte extension flag, in this machine's byte order.
fn header_bytes(vol: &Volume, size: &[i64], dtype: DataType) -> Result<Vec<u8>, String> {
    // [k, j, i] or [c, k, j, i] -> dim = [n, i, j, k, (c)].
    let mut dim = [1i16; 8];
    let rev: Vec<i64> = size.iter().rev().copied().collect();
    dim[0] = rev.len() as i16;
    for (ax, &d) in rev.iter().enumerate() {
        dim[ax + 1] = i16::try_from(d).map_err(|_| {
            format!("the volume's shape {size:?} has a dimension over 32767, more than NIfTI-1 can hold")
        })?;
    }
    let ras: Mat4 = vol.geometry().affine_ras();
    if ras.iter().flatten().any(|v| !v.is_finite()) {
        return Err(format!("the volume's affine is not finite: {ras:?}"));
    }
    let code: i16 = vol
        .meta
        .get(META_XFORM_CODE)
        .and_then(|c| c.parse().ok())
        .filter(|c| (1..=5).contains(c))
        .unwrap_or(1);
    let q = qform_for(&ras);

    let mut b = vec![0u8; VOX_OFFSET];
    let mut put = |at: usize, bytes: &[u8]| b[at..at + bytes.len()].copy_from_slice(bytes);
    put(0, &(NIFTI1_SIZE as i32).to_ne_bytes());
    for (i, d) in dim.iter().enumerate() {
        put(40 + 2 * i, &d.to_ne_bytes());
    }
    put(70, &code_of(dtype).to_ne_bytes());
    put(72, &((dtype.size() * 8) as i16).to_ne_bytes());
    let spacing = vol.geometry().spacing();
    let mut pixdim = [1.0f32; 8];
    match &q {
        Some(q) => {
            pixdim[0] = q.qfac as f32;
            for ax in 0..3 {
                pixdim[ax + 1] = q.zooms[ax] as f32;
            }
        }
        None => {
            for ax in 0..3 {
                pixdim[ax + 1] = if spacing[ax] > 0.0 {
                    spacing[ax] as f32
                } else {
                    1.0
                };
            }
        }
    }
    for (i, p) in pixdim.iter().enumerate() {
        put(76 + 4 * i, &p.to_ne_bytes());
    }
    put(108, &(VOX_OFFSET as f32).to_ne_bytes());
    put(112, &1.0f32.to_ne_bytes()); // scl_slope
    put(116, &0.0f32.to_ne_bytes()); // scl_inter
    put(123, &[2u8]); // xyzt_units: mm
    put(148, b"vistaflow");
    put(252, &(if q.is_some() { code } else { 0 }).to_ne_bytes());
    put(254, &code.to_ne_bytes());
    if let Some(q) = &q {
        for i in 0..3 {
            put(256 + 4 * i, &(q.quatern[i] as f32).to_ne_bytes());
            put(268 + 4 * i, &(q.offset[i] as f32).to_ne_bytes());
        }
    }
    for (r, row) in ras.iter().take(3).enumerate() {
        for (c, v) in row.iter().enumerate() {
            put(280 + 16 * r + 4 * c, &(*v as f32).to_ne_bytes());
        }
    }
    put(344, b"n+1\0");
    Ok(b)
}
