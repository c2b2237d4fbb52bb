//! Decoding a file's frames into `float32` output slices, Rescale Slope/Intercept applied.
//!
//! Uncompressed pixel data is read in place; encapsulated data (RLE, JPEG baseline/extended/
//! lossless, JPEG 2000) goes through `dicom-pixeldata`'s decoders (pure Rust, except the C
//! OpenJPEG for JPEG 2000). Stored values are
//! masked to BitsStored (unsigned) or sign-extended from it (signed), then mapped as
//! `value * slope + intercept`, computed in f64 and rounded once to f32.

use super::attrs::{self, int, Obj};
use super::header::{error_chain, open, Instance, Probe};
use dicom_core::value::{PrimitiveValue, Value as DicomValue};
use dicom_dictionary_std::tags;
use dicom_pixeldata::PixelDecoder;

/// One frame of a file to decode and where it goes.
#[derive(Clone, Copy)]
pub struct Job {
    pub frame: u32,
    pub slope: f64,
    pub intercept: f64,
    /// Output slice index.
    pub k: usize,
}

/// The stored-value layout of a file.
#[derive(Clone, Copy)]
struct Format {
    bits_allocated: u16,
    bits_stored: u16,
    signed: bool,
}

/// Decodes `jobs` of `inst` and hands each frame's values to `put(k, values)`.
pub fn decode_file(
    inst: &Instance,
    jobs: &[Job],
    mut put: impl FnMut(usize, &mut dyn FnMut(&mut [f32]) -> Result<(), String>) -> Result<(), String>,
) -> Result<(), String> {
    let file = match open(&inst.path, true) {
        Ok(f) => f,
        Err(Probe::Broken(m)) => return Err(m),
        Err(_) => return Err("no longer a DICOM file (changed while loading?)".into()),
    };
    let obj: &Obj = &file;
    let fmt = format(obj)?;
    let npix = inst.rows as usize * inst.cols as usize;
    let pixel = obj
        .get(tags::PIXEL_DATA)
        .ok_or("no pixel data (PixelData absent)")?;
    match pixel.value() {
        DicomValue::Primitive(p) => {
            for job in jobs {
                put(job.k, &mut |dst: &mut [f32]| {
                    native_frame(p, fmt, npix, job, dst)
                })?;
            }
        }
        DicomValue::PixelSequence(_) => {
            for job in jobs {
                // The decoders are third-party code that can panic on damaged data (an RLE
                // segment shorter than it says, found by fuzzing): that is an unreadable
                // file, not a crash.
                let decoded = crate::node::catch_quietly(|| {
                    file.decode_pixel_data_frame(job.frame)
                        .map_err(|e| error_chain(&e))
                })
                .unwrap_or_else(|p| {
                    Err(format!(
                        "the decoder failed on damaged data ({})",
                        p.downcast_ref::<String>()
                            .map(String::as_str)
                            .or_else(|| p.downcast_ref::<&str>().copied())
                            .unwrap_or("panic")
                    ))
                });
                let px = decoded.map_err(|e| {
                    format!(
                        "cannot decode frame {} (transfer syntax {}): {}{}",
                        job.frame + 1,
                        inst.transfer_syntax,
                        e,
                        if inst.transfer_syntax.starts_with("1.2.840.10008.1.2.4.8") {
                            "; JPEG-LS is not supported by this build: convert the series \
                             first (e.g. `gdcmconv --raw` or `dcmdjpls`)"
                        } else {
                            ""
                        }
                    )
                })?;
                let bytes = px.data();
                let dfmt = Format {
                    bits_allocated: px.bits_allocated(),
                    bits_stored: px.bits_stored(),
                    signed: fmt.signed,
                };
                if px.samples_per_pixel() != 1 {
                    return Err("decoded to a colour image".into());
                }
                put(job.k, &mut |dst: &mut [f32]| {
                    from_bytes(bytes, dfmt, npix, job, dst)
                })?;
            }
        }
        DicomValue::Sequence(_) => return Err("PixelData is a sequence, not pixels".into()),
    }
    Ok(())
}

fn format(obj: &Obj) -> Result<Format, String> {
    let ba = int(obj, attrs::BITS_ALLOCATED)?.ok_or("BitsAllocated is absent")?;
    let bs = int(obj, attrs::BITS_STORED)?.unwrap_or(ba);
    let pr = int(obj, attrs::PIXEL_REPRESENTATION)?.unwrap_or(0);
    if !matches!(ba, 8 | 16 | 32) {
        return Err(format!("BitsAllocated {ba} is not supported (8, 16 or 32)"));
    }
    if bs < 1 || bs > ba {
        return Err(format!("BitsStored {bs} does not fit BitsAllocated {ba}"));
    }
    Ok(Format {
        bits_allocated: ba as u16,
        bits_stored: bs as u16,
        signed: pr == 1,
    })
}

fn too_short(have: usize, job: &Job, npix: usize, bytes_per: usize) -> String {
    format!(
        "the pixel data is too short: frame {} needs bytes {}..{} but there are only {have} \
         (a truncated file?)",
        job.frame + 1,
        job.frame as usize * npix * bytes_per,
        (job.frame as usize + 1) * npix * bytes_per
    )
}

/// Uncompressed pixel data as parsed (already in native byte order).
fn native_frame(
    p: &PrimitiveValue,
    fmt: Format,
    npix: usize,
    job: &Job,
    dst: &mut [f32],
) -> Result<(), String> {
    let range = |len: usize, per: usize| -> Result<std::ops::Range<usize>, String> {
        let a = job.frame as usize * npix;
        if (a + npix) > len {
            Err(too_short(len * per, job, npix, per))
        } else {
            Ok(a..a + npix)
        }
    };
    match p {
        PrimitiveValue::U16(v) if fmt.bits_allocated == 16 => {
            let s = &v[range(v.len(), 2)?];
            convert(s, |x| x as i64, fmt, job, dst);
        }
        PrimitiveValue::I16(v) if fmt.bits_allocated == 16 => {
            let s = &v[range(v.len(), 2)?];
            convert(s, |x| x as u16 as i64, fmt, job, dst);
        }
        PrimitiveValue::U32(v) if fmt.bits_allocated == 32 => {
            let s = &v[range(v.len(), 4)?];
            convert(s, |x| x as i64, fmt, job, dst);
        }
        PrimitiveValue::I32(v) if fmt.bits_allocated == 32 => {
            let s = &v[range(v.len(), 4)?];
            convert(s, |x| x as u32 as i64, fmt, job, dst);
        }
        PrimitiveValue::U8(v) => return from_bytes(v, fmt, npix, job, dst),
        _ => {
            // Any other parsed form: go through its little-endian bytes.
            let b = p.to_bytes();
            return from_bytes(&b, fmt, npix, job, dst);
        }
    }
    Ok(())
}

/// Native-endian (here: little-endian) bytes of `frame` (or of frame 0 when `bytes` holds
/// exactly one frame, as decoders return).
fn from_bytes(
    bytes: &[u8],
    fmt: Format,
    npix: usize,
    job: &Job,
    dst: &mut [f32],
) -> Result<(), String> {
    let per = fmt.bits_allocated as usize / 8;
    let flen = npix * per;
    let start = if bytes.len() == flen {
        0
    } else {
        job.frame as usize * flen
    };
    let Some(b) = bytes.get(start..start + flen) else {
        return Err(too_short(bytes.len(), job, npix, per));
    };
    match per {
        1 => convert(b, |x| x as i64, fmt, job, dst),
        2 => {
            let v: Vec<u16> = b
                .chunks_exact(2)
                .map(|c| u16::from_ne_bytes([c[0], c[1]]))
                .collect();
            convert(&v, |x| x as i64, fmt, job, dst)
        }
        _ => {
            let v: Vec<u32> = b
                .chunks_exact(4)
                .map(|c| u32::from_ne_bytes([c[0], c[1], c[2], c[3]]))
                .collect();
            convert(&v, |x| x as i64, fmt, job, dst)
        }
    }
    Ok(())
}

/// `raw` gives the stored bits as an unsigned number; they are masked to BitsStored or
/// sign-extended from it, then rescaled.
#[inline]
fn convert<T: Copy>(src: &[T], raw: impl Fn(T) -> i64, fmt: Format, job: &Job, dst: &mut [f32]) {
    let bs = fmt.bits_stored as u32;
    let mask: i64 = (1i64 << bs) - 1;
    let shift = 64 - bs;
    let (slope, inter) = (job.slope, job.intercept);
    let value = |x: T| -> i64 {
        let u = raw(x) & mask;
        if fmt.signed {
            (u << shift) >> shift
        } else {
            u
        }
    };
    if slope == 1.0 && inter.fract() == 0.0 && inter.abs() < 1e9 {
        let i = inter as i64;
        for (d, s) in dst.iter_mut().zip(src) {
            *d = (value(*s) + i) as f32;
        }
    } else {
        for (d, s) in dst.iter_mut().zip(src) {
            *d = (value(*s) as f64 * slope + inter) as f32;
        }
    }
}
