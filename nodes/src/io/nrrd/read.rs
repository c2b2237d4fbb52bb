//! Reading a NRRD (attached `.nrrd` or detached `.nhdr` + data files) into a [`Value`]:
//! stream (and gunzip) straight into the tensor's memory, then fix byte order, widen
//! unsigned types, move a channel axis to the front, and make labels.

use super::dtype::{type_name, DataType};
use super::geometry::Layout;
use super::header::{DataFiles, Encoding, Header};
use super::{META_SOURCE_FORMAT, META_SPACE};
use crate::io::labels::to_label_kind;
use crate::io::messages::io_msg;
use crate::io::sample::widen_unsigned;
use crate::io::stream::{swap_bytes, GzipWords, RawTensor, Stream};
use crate::node::{Ctx, NodeError};
use crate::value::{ClassTable, Geometry, LabelMap, Value, Volume};
use flate2::bufread::MultiGzDecoder;
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use tch::Tensor;

pub fn read(path: &Path, labels: bool, ctx: &Ctx) -> Result<Value, NodeError> {
    let err = |msg: String| NodeError::file(path, msg);
    let file = File::open(path).map_err(|e| err(format!("cannot open: {}", io_msg(&e))))?;
    let file_len = file.metadata().map(|m| m.len()).ok();
    let mut r = BufReader::with_capacity(1 << 20, file);
    let h = Header::read(&mut r).map_err(err)?;
    let layout = Layout::of(&h).map_err(err)?;
    if h.byte_skip == -1 && h.encoding != Encoding::Raw {
        return Err(err(
            "`byte skip: -1` (data at the end of the file) works only with raw encoding; the \
             header is wrong"
                .into(),
        ));
    }
    let nbytes = h.numel().map_err(err)? * h.dtype.size() as u64;
    let size =
        usize::try_from(nbytes).map_err(|_| err("the volume is too large for memory".into()))?;

    // The files holding the data, and how many bytes each holds.
    let parts: Vec<PathBuf> = match &h.data {
        DataFiles::Attached => vec![path.to_path_buf()],
        DataFiles::Detached(files) => {
            let dir = path.parent().unwrap_or(Path::new(""));
            files
                .iter()
                .map(|f| super::data_file_path(dir, f))
                .collect::<Result<_, _>>()
                .map_err(err)?
        }
    };
    if size % parts.len() != 0 {
        return Err(err(format!(
            "the {size} data bytes cannot be split evenly over the {} data files",
            parts.len()
        )));
    }
    let per_part = size / parts.len();
    check_declared_size(&h, &parts, file_len, nbytes).map_err(err)?;

    // Voxels, straight into the tensor.
    let mut raw = RawTensor::alloc(layout.disk_shape.as_slice(), h.dtype.storage_kind(), nbytes)
        .map_err(err)?;
    {
        let dst = raw.bytes_mut();
        let mut attached = Some((r, file_len));
        for (n, (part, chunk)) in parts
            .iter()
            .zip(dst.chunks_mut(per_part.max(1)))
            .enumerate()
        {
            let what = Part {
                path: part,
                header: path,
                detached: h.data != DataFiles::Attached,
            };
            let (reader, len, offset): (Box<dyn BufRead>, Option<u64>, u64) =
                match attached.take().filter(|_| !what.detached) {
                    Some((r, len)) => (Box::new(r), len, h.len),
                    None => {
                        let f = File::open(part).map_err(|e| {
                            what.err(format!("cannot open the data file: {}", io_msg(&e)))
                        })?;
                        let len = f.metadata().map(|m| m.len()).ok();
                        (Box::new(BufReader::with_capacity(1 << 20, f)), len, 0)
                    }
                };
            read_part(
                &h,
                &what,
                reader,
                len,
                offset,
                chunk,
                ctx,
                size,
                n * per_part,
            )?;
        }
        if h.big_endian.unwrap_or(false) != cfg!(target_endian = "big") {
            swap_bytes(dst, h.dtype.size());
        }
    }

    let data = widen(raw.into_tensor(), h.dtype).map_err(err)?;
    let data = arrange(data, &layout)?;
    let data = if labels {
        to_labels(data, h.dtype).map_err(err)?
    } else {
        data
    };
    let vol = Volume::new(
        data,
        Geometry {
            affine_lps: layout.affine_lps,
        },
    )
    .map_err(err)?
    .with_meta(META_SOURCE_FORMAT, "nrrd")
    .with_meta(META_SPACE, h.space.map(|s| s.name()).unwrap_or("none"));
    if labels {
        let classes = slicer_classes(&h, ctx);
        Ok(Value::Labels(LabelMap::new(vol, classes).map_err(err)?))
    } else {
        Ok(Value::Image(vol))
    }
}

/// Refuses a header that declares more data than its files can hold, before allocating it (a
/// corrupt or hostile `sizes: 100000 100000 100000` would ask for petabytes): raw data is at
/// most the files' length, gzip at most [`crate::io::MAX_INFLATE`] times it.
fn check_declared_size(
    h: &Header,
    parts: &[PathBuf],
    file_len: Option<u64>,
    nbytes: u64,
) -> Result<(), String> {
    let mut on_disk = 0u64;
    for part in parts {
        let len = if h.data == DataFiles::Attached {
            file_len
        } else {
            std::fs::metadata(part).map(|m| m.len()).ok()
        };
        // A missing file is reported, with its name, when it is opened.
        let Some(len) = len else { return Ok(()) };
        on_disk = on_disk.saturating_add(len);
    }
    let most = match h.encoding {
        Encoding::Raw => on_disk,
        _ => on_disk.saturating_mul(crate::io::MAX_INFLATE),
    };
    // The slack keeps short files to the exact "truncated" message of the read itself.
    if nbytes > most.saturating_add(256 << 20) {
        return Err(format!(
            "the header declares {} of voxel data ({:?} x {} bytes), more than {} can hold \
             ({} on disk); the header is corrupt",
            crate::text::human_bytes(nbytes),
            h.sizes,
            h.dtype.size(),
            if h.data == DataFiles::Attached {
                "the file".to_string()
            } else {
                format!("its {} data file(s)", parts.len())
            },
            crate::text::human_bytes(on_disk)
        ));
    }
    Ok(())
}

/// One data file, for messages.
struct Part<'a> {
    path: &'a Path,
    header: &'a Path,
    detached: bool,
}

impl Part<'_> {
    fn err(&self, msg: String) -> NodeError {
        if self.detached {
            NodeError::file(
                self.path,
                format!("{msg} (data file of {})", self.header.display()),
            )
        } else {
            NodeError::file(self.path, msg)
        }
    }
}

/// Reads one data file's share into `dst`: line skip, gunzip, byte skip, the samples, then
/// checks what follows (gzip: nothing may, and the CRC must match; raw: a warning).
#[expect(
    clippy::too_many_arguments,
    reason = "one data file's share: its skips, encoding, sample type and destination"
)]
fn read_part(
    h: &Header,
    what: &Part,
    mut reader: Box<dyn BufRead>,
    file_len: Option<u64>,
    offset: u64,
    dst: &mut [u8],
    ctx: &Ctx,
    total: usize,
    done_before: usize,
) -> Result<(), NodeError> {
    let need = dst.len() as u64;
    let mut pos = offset;
    if h.byte_skip == -1 {
        // Raw data in the last bytes of the file.
        let len = file_len.unwrap_or(0);
        if len < pos + need {
            return Err(what.err(short_msg(h, need, len.saturating_sub(pos), false)));
        }
        let mut f =
            File::open(what.path).map_err(|e| what.err(format!("cannot open: {}", io_msg(&e))))?;
        f.seek(SeekFrom::End(-(need as i64)))
            .map_err(|e| what.err(format!("cannot read: {}", io_msg(&e))))?;
        reader = Box::new(BufReader::with_capacity(1 << 20, f));
    } else {
        let mut line = Vec::new();
        for n in 0..h.line_skip {
            line.clear();
            let got = reader
                .read_until(b'\n', &mut line)
                .map_err(|e| what.err(format!("cannot read: {}", io_msg(&e))))?;
            if got == 0 {
                return Err(what.err(format!(
                    "`line skip: {}` but the data ends after {n} lines",
                    h.line_skip
                )));
            }
            pos += got as u64;
        }
    }
    let gz = h.encoding == Encoding::Gzip;
    if !gz && h.byte_skip >= 0 {
        if let Some(len) = file_len {
            let start = pos + h.byte_skip as u64;
            if len < start + need {
                return Err(what.err(short_msg(h, need, len.saturating_sub(start), false)));
            }
        }
    }
    let inner: Box<dyn Read> = if gz {
        Box::new(MultiGzDecoder::new(reader))
    } else {
        reader
    };
    let words = GzipWords {
        noun: "data",
        corrupt_hint: " (or `encoding: gzip` is wrong)",
    };
    let mut src = Stream::new(inner, gz, words);
    if h.byte_skip > 0 {
        let skip = h.byte_skip as u64;
        let got = io::copy(&mut (&mut src).take(skip), &mut io::sink())
            .map_err(|e| what.err(src.describe(&e)))?;
        if got < skip {
            return Err(what.err(format!(
                "`byte skip: {skip}` but the {} ends after {got} bytes",
                noun(gz)
            )));
        }
    }
    let done = src
        .fill_chunks(dst, ctx, done_before, total)
        .map_err(|e| e.into_node(|msg| what.err(msg)))?;
    if done < dst.len() {
        return Err(what.err(short_msg(h, need, done as u64, gz)));
    }
    if gz {
        // Read to the end so that the gzip CRC and length are checked; more data than the
        // header says means the header does not describe this data.
        let extra = io::copy(&mut src, &mut io::sink()).map_err(|e| what.err(src.describe(&e)))?;
        if extra > 0 {
            return Err(what.err(format!(
                "the decompressed data is {extra} bytes longer than the header says (sizes {:?} \
                 of {} = {need} bytes); the header's sizes or type do not match the data",
                h.sizes,
                type_name(h.dtype)
            )));
        }
    } else if h.byte_skip >= 0 {
        let mut one = [0u8; 1];
        if matches!(src.fill(&mut one), Ok(1)) {
            ctx.warn(&format!(
                "{}: the raw data goes on past the {need} bytes that sizes {:?} of {} need; the \
                 rest is ignored (as ITK and pynrrd do)",
                what.path.display(),
                h.sizes,
                type_name(h.dtype)
            ));
        }
    }
    Ok(())
}

fn short_msg(h: &Header, need: u64, have: u64, gz: bool) -> String {
    format!(
        "the data is shorter than the header says: sizes {:?} of {} need {need} bytes, but the \
         {} holds only {have}; the file is truncated (an interrupted download or copy?) or its \
         header is wrong",
        h.sizes,
        type_name(h.dtype),
        if gz {
            "decompressed data"
        } else {
            "file after the header"
        },
    )
}

fn noun(gz: bool) -> &'static str {
    if gz {
        "decompressed data"
    } else {
        "data"
    }
}

/// uint16 -> int32, uint32 -> int64 (tch has no such kinds); uint64 -> int64 when every value
/// fits.
fn widen(raw: Tensor, dtype: DataType) -> Result<Tensor, String> {
    let t = |e: tch::TchError| format!("libtorch: {e}");
    if dtype == DataType::Uint64 {
        let big = raw
            .f_lt(0)
            .map_err(t)?
            .f_any()
            .map_err(t)?
            .f_int64_value(&[])
            .map_err(t)?;
        if big != 0 {
            return Err(
                "uint64 samples of 2^63 or more cannot be held (vistaflow's widest \
                        integer kind is int64)"
                    .into(),
            );
        }
    }
    widen_unsigned(raw, dtype).map_err(t)
}

/// The on-disk tensor as `[C, D, H, W]` or `[D, H, W]`.
fn arrange(raw: Tensor, layout: &Layout) -> Result<Tensor, NodeError> {
    let shape = layout.tensor_shape();
    Ok(match layout.channel {
        Some(c) if c != 0 => {
            let mut order = vec![c as i64];
            order.extend((0..layout.disk_shape.len() as i64).filter(|&d| d != c as i64));
            raw.f_permute(order.as_slice())?.f_contiguous()?
        }
        _ => raw.f_reshape(shape.as_slice())?,
    })
}

/// Integer samples as they are; float samples must all be whole numbers and go into the
/// smallest of uint8, int16, int32, int64 that holds their range.
fn to_labels(data: Tensor, dtype: DataType) -> Result<Tensor, String> {
    if !dtype.is_float() {
        return Ok(data);
    }
    to_label_kind(data, "")
}

/// 3D Slicer segmentation (`.seg.nrrd`) class names: `SegmentN_LabelValue` -> `SegmentN_Name`.
/// Segments without a label value are left out; a value named twice (segments in different
/// layers) keeps its first name, with a warning.
fn slicer_classes(h: &Header, ctx: &Ctx) -> ClassTable {
    let mut classes = ClassTable::new();
    for n in 0.. {
        let Some(name) = h.value(&format!("Segment{n}_Name")) else {
            break;
        };
        let Some(value) = h
            .value(&format!("Segment{n}_LabelValue"))
            .and_then(|v| v.trim().parse::<u32>().ok())
            .filter(|&v| v > 0)
        else {
            continue;
        };
        if let Some(first) = classes.get(&value) {
            ctx.warn(&format!(
                "segments `{first}` and `{name}` share label value {value} (different layers of \
                 a layered segmentation); the class table names it `{first}`"
            ));
        } else {
            classes.insert(value, name.to_string());
        }
    }
    classes
}
