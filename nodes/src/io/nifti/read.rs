//! Reading a single-file NIfTI into a [`Value`]: stream (and gunzip) straight into the
//! tensor's memory, then widen, scale, or convert to labels.

use super::affine::{best_affine, Source as AffineSource};
use super::dtype::DataType;
use super::header::{sniff, Header};
use super::{io_msg, CHUNK_BYTES, META_SOURCE_FORMAT, META_XFORM_CODE, PROGRESS_MIN_BYTES};
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
    let mut src = Stream { inner, gz, pos: 0 };

    // Header.
    let mut first4 = [0u8; 4];
    let n = src.fill(&mut first4).map_err(|e| err(src.describe(&e)))?;
    if n < 4 {
        return Err(err(format!(
            "{} only {n} bytes long: too short to be NIfTI (a header alone is 348 bytes)",
            src.what()
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
            src.what(),
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

    // Skip extensions up to vox_offset.
    let skip = offset - hbytes.len() as u64;
    let skipped =
        io::copy(&mut (&mut src).take(skip), &mut io::sink()).map_err(|e| err(src.describe(&e)))?;
    if skipped < skip {
        return Err(err(short_msg(&layout, offset, nbytes, src.pos, gz)));
    }

    // Voxels, straight into the tensor.
    let size =
        usize::try_from(nbytes).map_err(|_| err("the volume is too large for memory".into()))?;
    let raw = Tensor::f_empty(
        layout.tensor_shape.as_slice(),
        (layout.dtype.storage_kind(), Device::Cpu),
    )
    .map_err(|e| {
        err(format!(
            "cannot allocate {} MB for the voxels: {e}",
            nbytes >> 20
        ))
    })?;
    {
        // SAFETY: `raw` was just allocated above on the CPU by `empty`, so it is contiguous,
        // owns exactly numel * element size = `size` bytes starting at `data_ptr`, and no other
        // handle to it exists while this slice lives. Any byte pattern is a valid value of the
        // storage kinds used here (integers and IEEE floats).
        let dst = unsafe { std::slice::from_raw_parts_mut(raw.data_ptr() as *mut u8, size) };
        let got = read_chunks(&mut src, dst, ctx).map_err(|e| match e {
            ReadError::Io(e) => err(src.describe(&e)),
            ReadError::Cancelled => NodeError::Cancelled,
        })?;
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

    let data = widen(raw, layout.dtype)?;
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

/// The byte source, counting the (decompressed) bytes read for error messages.
struct Stream {
    inner: Box<dyn Read>,
    gz: bool,
    pos: u64,
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.pos += n as u64;
        Ok(n)
    }
}

impl Stream {
    /// Reads until `buf` is full or the stream ends; the count read.
    fn fill(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let mut n = 0;
        while n < buf.len() {
            match self.read(&mut buf[n..]) {
                Ok(0) => break,
                Ok(k) => n += k,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(n)
    }

    fn what(&self) -> &'static str {
        if self.gz {
            "the decompressed stream is"
        } else {
            "the file is"
        }
    }

    /// A read error in words: gzip trouble is named as such.
    fn describe(&self, e: &io::Error) -> String {
        if self.gz {
            if e.kind() == io::ErrorKind::UnexpectedEof {
                format!(
                    "the gzip stream ends early (after {} decompressed bytes): the file is \
                     truncated (an interrupted download or copy?)",
                    self.pos
                )
            } else {
                format!(
                    "not a valid gzip stream ({e}) after {} decompressed bytes: the file is \
                     corrupt; fetch or export it again",
                    self.pos
                )
            }
        } else {
            format!("cannot read: {}", io_msg(e))
        }
    }
}

enum ReadError {
    Io(io::Error),
    Cancelled,
}

/// Fills `dst` in chunks, reporting progress and checking for cancellation between them.
fn read_chunks(src: &mut Stream, dst: &mut [u8], ctx: &Ctx) -> Result<usize, ReadError> {
    let total = dst.len();
    let report = total >= PROGRESS_MIN_BYTES;
    let mut done = 0;
    for chunk in dst.chunks_mut(CHUNK_BYTES) {
        if ctx.cancel.is_cancelled() {
            return Err(ReadError::Cancelled);
        }
        let n = src.fill(chunk).map_err(ReadError::Io)?;
        done += n;
        if n < chunk.len() {
            return Ok(done);
        }
        if report {
            ctx.progress((done >> 20) as u64, (total >> 20) as u64, "MB");
        }
    }
    Ok(done)
}

fn swap_bytes(buf: &mut [u8], size: usize) {
    match size {
        2 => buf.chunks_exact_mut(2).for_each(|c| c.swap(0, 1)),
        4 => buf.chunks_exact_mut(4).for_each(|c| {
            let v = u32::from_ne_bytes([c[0], c[1], c[2], c[3]]).swap_bytes();
            c.copy_from_slice(&v.to_ne_bytes())
        }),
        8 => buf.chunks_exact_mut(8).for_each(|c| c.reverse()),
        _ => {}
    }
}

/// uint16 stored in int16 -> int32; uint32 stored in int32 -> int64; others as they are.
fn widen(raw: Tensor, dtype: DataType) -> Result<Tensor, NodeError> {
    let out = match dtype {
        DataType::Uint16 => raw.f_to_kind(Kind::Int)?.f_bitwise_and(0xFFFF)?,
        DataType::Uint32 => raw.f_to_kind(Kind::Int64)?.f_bitwise_and(0xFFFF_FFFFi64)?,
        _ => raw,
    };
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
    let mut v = data.f_to_kind(Kind::Double).map_err(t)?;
    if let Some((slope, inter)) = scaling {
        v = v
            .f_mul_scalar(slope)
            .map_err(t)?
            .f_add_scalar(inter)
            .map_err(t)?;
    }
    let bad = v
        .f_frac()
        .map_err(t)?
        .f_ne(0.0)
        .map_err(t)?
        .f_logical_or(&v.f_isfinite().map_err(t)?.f_logical_not().map_err(t)?)
        .map_err(t)?;
    let nbad = bad
        .f_sum(Kind::Int64)
        .map_err(t)?
        .f_int64_value(&[])
        .map_err(t)?;
    if nbad > 0 {
        let example = v
            .f_masked_select(&bad)
            .map_err(t)?
            .f_double_value(&[0])
            .map_err(t)?;
        return Err(format!(
            "labels: true, but {nbad} voxels are not whole numbers (e.g. {example}{}); this looks \
             like an image, not a label map: load it with labels: false",
            if scaling.is_some() {
                " after scl_slope/scl_inter"
            } else {
                ""
            }
        ));
    }
    let min = v.f_min().map_err(t)?.f_double_value(&[]).map_err(t)?;
    let max = v.f_max().map_err(t)?.f_double_value(&[]).map_err(t)?;
    let kind = if min >= 0.0 && max <= 255.0 {
        Kind::Uint8
    } else if min >= i16::MIN as f64 && max <= i16::MAX as f64 {
        Kind::Int16
    } else if min >= i32::MIN as f64 && max <= i32::MAX as f64 {
        Kind::Int
    } else if min >= -(2f64.powi(63)) && max < 2f64.powi(63) {
        Kind::Int64
    } else {
        return Err(format!("label values span {min}..{max}, beyond int64"));
    };
    v.f_to_kind(kind).map_err(t)
}
