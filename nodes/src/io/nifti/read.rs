//! Reading a single-file NIfTI into a [`Value`]: stream (and gunzip) straight into the
//! tensor's memory, then widen, scale, or convert to labels.

use super::affine::{best_affine, Source as AffineSource};
use super::dtype::DataType;
use super::header::{sniff, Header};
use super::{META_SOURCE_FORMAT, META_XFORM_CODE};
use crate::io::labels::to_label_kind;
use crate::io::messages::io_msg;
use crate::io::sample::widen_unsigned;
use crate::io::stream::{swap_bytes, GzipWords, RawTensor, Stream};
use crate::node::{Ctx, NodeError};
use crate::value::{ClassTable, Geometry, LabelMap, Value, Volume};
use flate2::read::MultiGzDecoder;
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::path::Path;
use tch::{Device, Kind, Tensor};

pub fn read(path: &Path, labels: bool, ctx: &Ctx) -> Result<Value, NodeError> {
    let err = |msg: String| NodeError::file(path, msg);
    let file = File::open(path).map_err(|e| err(format!("cannot open: {}", io_msg(&e))))?;
    let file_len = file.metadata().map(|m| m.len()).ok();
    let mut buffered = BufReader::with_capacity(1 << 20, file);
    let gz = buffered
        .fill_buf()
        .map_err(|e| err(format!("cannot read: {}", io_msg(&e))))?
        .starts_with(&[0x1f, 0x8b]);
    let inner: Box<dyn Read> = if gz {
        Box::new(MultiGzDecoder::new(buffered))
    } else {
        Box::new(buffered)
    };
    let words = GzipWords {
        noun: "stream",
        corrupt_hint: "",
    };
    let mut src = Stream::new(inner, gz, words);

    // Header.
    let mut first4 = [0u8; 4];
    let n = src.fill(&mut first4).map_err(|e| err(src.describe(&e)))?;
    if n < 4 {
        return Err(err(format!(
            "{} only {n} bytes long: too short to be NIfTI (a header alone is 348 bytes)",
            what(gz)
        )));
    }
    let (version, big_endian) =
        sniff(first4).ok_or_else(|| {
            err(format!(
            "not a NIfTI file: its first 4 bytes (sizeof_hdr) are {first4:02x?}, which is neither \
             348 (NIfTI-1) nor 540 (NIfTI-2) in either byte order{}",
            if gz { "" } else { " (and it is not gzip-compressed)" }
        ))
        })?;
    let mut hbytes = vec![0u8; version.header_size()];
    hbytes[..4].copy_from_slice(&first4);
    let n = 4 + src
        .fill(&mut hbytes[4..])
        .map_err(|e| err(src.describe(&e)))?;
    if n < hbytes.len() {
        return Err(err(format!(
            "truncated: {} ends after {n} bytes, inside the {}-byte header; the file is \
             incomplete (an interrupted download or copy?)",
            what(gz),
            hbytes.len()
        )));
    }
    let h = Header::parse(version, big_endian, &hbytes).map_err(err)?;
    let layout = Layout::of(&h).map_err(err)?;
    let (affine_ras, from) = best_affine(&h).map_err(err)?;
    let offset = h.data_offset().map_err(err)?;
    let nbytes = layout
        .numel
        .checked_mul(layout.dtype.size() as u64)
        .ok_or_else(|| {
            err(format!(
                "the header's shape {:?} is impossibly large; the header is corrupt",
                layout.shape
            ))
        })?;
    let needed = offset.saturating_add(nbytes);
    if let (false, Some(len)) = (gz, file_len) {
        if len < needed {
            return Err(err(short_msg(&layout, offset, nbytes, len, false)));
        }
    }
    // A gzip file cannot hold more than MAX_INFLATE times its size: refuse an impossible
    // header (a 32767^3 volume in a small file) before allocating for it.
    if let (true, Some(len)) = (gz, file_len) {
        let most = len.saturating_mul(crate::io::MAX_INFLATE);
        if needed > most.saturating_add(256 << 20) {
            return Err(err(format!(
                "the header declares {} of voxel data (shape {:?}), more than a {} gzip file \
                 can hold (at most {}); the header is corrupt",
                crate::text::human_bytes(nbytes),
                layout.shape,
                crate::text::human_bytes(len),
                crate::text::human_bytes(most)
            )));
        }
    }

    // Skip extensions up to vox_offset.
    let skip = offset - hbytes.len() as u64;
    let skipped =
        io::copy(&mut (&mut src).take(skip), &mut io::sink()).map_err(|e| err(src.describe(&e)))?;
    if skipped < skip {
        return Err(err(short_msg(&layout, offset, nbytes, src.pos(), gz)));
    }

    // Voxels, straight into the tensor.
    let size =
        usize::try_from(nbytes).map_err(|_| err("the volume is too large for memory".into()))?;
    let mut raw = RawTensor::alloc(
        layout.tensor_shape.as_slice(),
        layout.dtype.storage_kind(),
        nbytes,
    )
    .map_err(err)?;
    {
        let dst = raw.bytes_mut();
        let got = src
            .fill_chunks(dst, ctx, 0, size)
            .map_err(|e| e.into_node(err))?;
        if got < size {
            return Err(err(short_msg(
                &layout,
                offset,
                nbytes,
                offset + got as u64,
                gz,
            )));
        }
        if h.big_endian != cfg!(target_endian = "big") {
            swap_bytes(dst, layout.dtype.size());
        }
    }
    if gz {
        // Read to the end so that the gzip CRC and length are checked.
        io::copy(&mut src, &mut io::sink()).map_err(|e| err(src.describe(&e)))?;
    }

    let data = widen(raw.into_tensor(), layout.dtype)?;
    let scaling = scaling(&h).map_err(err)?;
    let data = if labels {
        to_labels(data, layout.dtype, scaling).map_err(err)?
    } else {
        scale_image(data, layout.dtype, scaling)?
    };
    let code = match from {
        AffineSource::Sform => h.sform_code,
        AffineSource::Qform => h.qform_code,
        AffineSource::Base => 0,
    };
    let vol = Volume::new(data, Geometry::from_ras(affine_ras))
        .map_err(err)?
        .with_meta(META_SOURCE_FORMAT, h.version.name())
        .with_meta(META_XFORM_CODE, code.to_string());
    if labels {
        Ok(Value::Labels(
            LabelMap::new(vol, ClassTable::new()).map_err(err)?,
        ))
    } else {
        Ok(Value::Image(vol))
    }
}

/// Shape and type of the voxel data.
struct Layout {
    dtype: DataType,
    /// nibabel's shape (i, j, k[, t]).
    shape: Vec<i64>,
    /// `[k, j, i]` or `[t, k, j, i]`.
    tensor_shape: Vec<i64>,
    numel: u64,
}

impl Layout {
    fn of(h: &Header) -> Result<Layout, String> {
        let dtype = h.data_type()?;
        let shape = h.shape()?;
        if let Some(d) = shape.iter().skip(4).find(|&&d| d != 1) {
            return Err(format!(
                "the volume has shape {shape:?}: dimensions beyond the 4th (here {d}) are not \
                 supported; vistaflow reads 3D volumes and 4D ones as channels"
            ));
        }
        let at = |ax: usize| shape.get(ax).copied().unwrap_or(1);
        let (i, j, k, t) = (at(0), at(1), at(2), at(3));
        let tensor_shape = if t > 1 {
            vec![t, k, j, i]
        } else {
            vec![k, j, i]
        };
        let numel = tensor_shape
            .iter()
            .try_fold(1u64, |acc, &d| acc.checked_mul(d as u64))
            .ok_or_else(|| {
                format!("the shape {shape:?} is impossibly large; the header is corrupt")
            })?;
        Ok(Layout {
            dtype,
            shape,
            tensor_shape,
            numel,
        })
    }
}

fn short_msg(l: &Layout, offset: u64, nbytes: u64, have: u64, gz: bool) -> String {
    format!(
        "the data is shorter than the header says: shape {:?} of {:?} needs {nbytes} bytes from \
         offset {offset}, i.e. {} bytes in all, but the {} ends after {have} bytes; the file is \
         truncated (an interrupted download or copy?) or its header is wrong",
        l.shape,
        l.dtype,
        offset + nbytes,
        if gz { "decompressed stream" } else { "file" },
    )
}

fn what(gz: bool) -> &'static str {
    if gz {
        "the decompressed stream is"
    } else {
        "the file is"
    }
}

/// uint16 stored in int16 -> int32; uint32 stored in int32 -> int64; others as they are.
fn widen(raw: Tensor, dtype: DataType) -> Result<Tensor, NodeError> {
    let out = widen_unsigned(raw, dtype)?;
    debug_assert_eq!(out.kind(), dtype.kind());
    Ok(out)
}

/// nibabel's `get_slope_inter`, with slope 1 / inter 0 meaning no scaling as well.
fn scaling(h: &Header) -> Result<Option<(f64, f64)>, String> {
    let (slope, inter) = (h.scl_slope, h.scl_inter);
    if slope == 0.0 || !slope.is_finite() {
        return Ok(None);
    }
    if !inter.is_finite() {
        return Err(format!(
            "scl_slope is {slope} but scl_inter is {inter}: the scaling is invalid (nibabel \
             refuses it too); fix the header"
        ));
    }
    Ok(if slope == 1.0 && inter == 0.0 {
        None
    } else {
        Some((slope, inter))
    })
}

/// `raw * slope + inter` in float64 (as nibabel), stored as float32 (float64 for float64
/// files); in chunks so that the float64 temporaries stay small.
fn scale_image(
    data: Tensor,
    dtype: DataType,
    scaling: Option<(f64, f64)>,
) -> Result<Tensor, NodeError> {
    let Some((slope, inter)) = scaling else {
        return Ok(data);
    };
    let out_kind = if dtype == DataType::Float64 {
        Kind::Double
    } else {
        Kind::Float
    };
    let shape = data.size();
    let flat = data.f_reshape([-1])?;
    let numel = flat.size()[0];
    let out = Tensor::f_empty([numel], (out_kind, Device::Cpu))?;
    let step = 1i64 << 22;
    let mut s = 0;
    while s < numel {
        let n = step.min(numel - s);
        let v = flat.f_narrow(0, s, n)?.f_to_kind(Kind::Double)?;
        let v = v.f_mul_scalar(slope)?.f_add_scalar(inter)?;
        out.f_narrow(0, s, n)?.f_copy_(&v)?;
        s += n;
    }
    Ok(out.f_reshape(shape.as_slice())?)
}

/// Integer voxels as they are; otherwise (float or scaled) whole numbers into the smallest
/// integer kind that holds them.
fn to_labels(data: Tensor, dtype: DataType, scaling: Option<(f64, f64)>) -> Result<Tensor, String> {
    if !dtype.is_float() && scaling.is_none() {
        return Ok(data);
    }
    let t = |e: tch::TchError| format!("libtorch: {e}");
    let Some((slope, inter)) = scaling else {
        return to_label_kind(data, "");
    };
    let v = data
        .f_to_kind(Kind::Double)
        .map_err(t)?
        .f_mul_scalar(slope)
        .map_err(t)?
        .f_add_scalar(inter)
        .map_err(t)?;
    to_label_kind(v, " after scl_slope/scl_inter")
}
