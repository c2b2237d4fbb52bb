//! Writing a [`Value`] as NRRD, atomically: `.nrrd` (header and data in one file) or `.nhdr`
//! (header, plus the data in `<stem>.raw.gz` or `<stem>.raw` beside it).

use super::dtype::DataType;
use super::geometry::space_fields;
use super::{io_msg, CHUNK_BYTES, PROGRESS_MIN_BYTES};
use crate::node::{Ctx, NodeError};
use crate::value::{ClassTable, Value, Volume};
use flate2::write::GzEncoder;
use flate2::Compression;
use std::fmt::Write as _;
use std::fs;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use tch::{Device, Kind, Tensor};

/// gzip level 2, as the NIfTI writer: zlib-rs's level 1 is static-Huffman only (a third
/// larger on CT), level 2 is about as small as zlib level 1 and faster than level 6.
const GZIP_LEVEL: u32 = 2;

pub fn write(path: &Path, value: &Value, compress: bool, ctx: &Ctx) -> Result<(), NodeError> {
    let err = |msg: String| NodeError::file(path, msg);
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
    let detached = if name.ends_with(".nrrd") && name.len() > 5 {
        false
    } else if name.ends_with(".nhdr") && name.len() > 5 {
        true
    } else {
        return Err(err(
            "a NRRD file name must end in .nrrd (header and data in one file) or .nhdr \
             (header, with the data in a .raw or .raw.gz file beside it)"
                .into(),
        ));
    };
    let vol = value.volume();
    let (data, dtype) = storable(vol).map_err(err)?;
    let classes = match value {
        Value::Labels(l) => Some(&l.classes),
        Value::Image(_) => None,
    };
    let data_name = detached.then(|| {
        format!(
            "{}.raw{}",
            &name[..name.len() - 5],
            if compress { ".gz" } else { "" }
        )
    });
    let header = header_text(
        vol,
        &data.size(),
        dtype,
        compress,
        data_name.as_deref(),
        classes,
    )
    .map_err(err)?;

    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    fs::create_dir_all(dir).map_err(|e| {
        err(format!(
            "cannot create the folder {}: {}",
            dir.display(),
            io_msg(&e)
        ))
    })?;
    match data_name {
        None => atomic_write(path, |w| {
            w.write_all(header.as_bytes()).map_err(|e| werr(path, e))?;
            write_data(w, &data, compress, ctx, path)
        }),
        Some(data_name) => {
            // Data first, then the header that points at it: a crash leaves at worst an
            // unreferenced data file, never a header without its data.
            let data_path: PathBuf = dir.join(&data_name);
            atomic_write(&data_path, |w| {
                write_data(w, &data, compress, ctx, &data_path)
            })?;
            atomic_write(path, |w| {
                w.write_all(header.as_bytes()).map_err(|e| werr(path, e))
            })
        }
    }
}

fn werr(path: &Path, e: io::Error) -> NodeError {
    NodeError::file(path, format!("cannot write: {}", io_msg(&e)))
}

/// Writes `path` through a temporary file in the same folder that is fsynced and renamed
/// into place, so a crash never leaves half a file.
fn atomic_write(
    path: &Path,
    body: impl FnOnce(&mut BufWriter<&fs::File>) -> Result<(), NodeError>,
) -> Result<(), NodeError> {
    let err = |msg: String| NodeError::file(path, msg);
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("out");
    let mut builder = tempfile::Builder::new();
    let prefix = format!(".{name}.");
    builder.prefix(&prefix).suffix(".partial");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        builder.permissions(fs::Permissions::from_mode(0o644));
    }
    let tmp = builder.tempfile_in(dir).map_err(|e| {
        err(format!(
            "cannot create a file in the folder {}: {}",
            dir.display(),
            io_msg(&e)
        ))
    })?;
    let mut w = BufWriter::with_capacity(1 << 20, tmp.as_file());
    body(&mut w)?;
    w.flush().map_err(|e| werr(path, e))?;
    drop(w);
    tmp.as_file().sync_all().map_err(|e| werr(path, e))?;
    tmp.persist(path).map_err(|e| {
        err(format!(
            "cannot rename the finished file into place: {}",
            io_msg(&e.error)
        ))
    })?;
    // Make the rename itself durable; best effort (not every file system allows it).
    if let Ok(d) = fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

/// The voxels as a contiguous CPU tensor of a kind NRRD stores, and that type.
fn storable(vol: &Volume) -> Result<(Tensor, DataType), String> {
    let t = |e: tch::TchError| format!("libtorch: {e}");
    let data = vol.data();
    let (data, dtype) = match DataType::for_kind(data.kind()) {
        Some(d) => (data.shallow_clone(), d),
        None => match data.kind() {
            Kind::Bool => (data.f_to_kind(Kind::Uint8).map_err(t)?, DataType::Uint8),
            Kind::Half | Kind::BFloat16 => {
                (data.f_to_kind(Kind::Float).map_err(t)?, DataType::Float32)
            }
            k => {
                return Err(format!(
                    "cannot write voxels of kind {k:?} as NRRD; convert the volume to a real type"
                ))
            }
        },
    };
    let data = data
        .f_to_device(Device::Cpu)
        .map_err(t)?
        .f_contiguous()
        .map_err(t)?;
    Ok((data, dtype))
}

/// The header, in LPS, in this machine's byte order. `[C, D, H, W]` is written with the
/// channel axis last (slowest, kind `list`), so the tensor's bytes go out as they are.
fn header_text(
    vol: &Volume,
    size: &[i64],
    dtype: DataType,
    compress: bool,
    data_file: Option<&str>,
    classes: Option<&ClassTable>,
) -> Result<String, String> {
    let channels = size.len() == 4;
    let sizes: Vec<String> = size.iter().rev().map(|d| d.to_string()).collect();
    let mut h = String::from(
        "NRRD0004\n# Complete NRRD file format specification at:\n\
         # http://teem.sourceforge.net/nrrd/format.html\n# written by vistaflow\n",
    );
    let kinds = if channels {
        "domain domain domain list"
    } else {
        "domain domain domain"
    };
    // Writing to a String cannot fail.
    let _ = write!(
        h,
        "type: {}\ndimension: {}\nspace: left-posterior-superior\nsizes: {}\n{}kinds: {kinds}\n\
         endian: {}\nencoding: {}\n",
        dtype.name(),
        size.len(),
        sizes.join(" "),
        space_fields(&vol.geometry().affine_lps, channels)?,
        if cfg!(target_endian = "big") {
            "big"
        } else {
            "little"
        },
        if compress { "gzip" } else { "raw" },
    );
    if let Some(f) = data_file {
        let _ = writeln!(h, "data file: {f}");
    }
    if let Some(classes) = classes.filter(|c| !c.is_empty()) {
        // 3D Slicer segmentation keys, so Slicer shows the class names.
        h.push_str("Segmentation_MasterRepresentation:=Binary labelmap\n");
        h.push_str("Segmentation_ContainedRepresentationNames:=Binary labelmap|\n");
        for (n, (value, name)) in classes.iter().enumerate() {
            let name: String = name.chars().filter(|c| !c.is_control()).collect();
            let _ = write!(
                h,
                "Segment{n}_ID:=Segment_{value}\nSegment{n}_Name:={name}\n\
                 Segment{n}_LabelValue:={value}\nSegment{n}_Layer:=0\n"
            );
        }
    }
    if data_file.is_none() {
        h.push('\n');
    }
    Ok(h)
}

/// The voxels in chunks (gzip-compressed or raw), with progress and cancellation between
/// chunks.
fn write_data(
    w: &mut impl Write,
    data: &Tensor,
    compress: bool,
    ctx: &Ctx,
    path: &Path,
) -> Result<(), NodeError> {
    if compress {
        let mut enc = GzEncoder::new(w, Compression::new(GZIP_LEVEL));
        write_samples(&mut enc, data, ctx, path)?;
        enc.finish().map_err(|e| werr(path, e))?;
        Ok(())
    } else {
        write_samples(w, data, ctx, path)
    }
}

fn write_samples(
    w: &mut impl Write,
    data: &Tensor,
    ctx: &Ctx,
    path: &Path,
) -> Result<(), NodeError> {
    let flat = data.f_reshape([-1])?;
    let numel = flat.size()[0] as usize;
    let esize = flat.kind().elt_size_in_bytes();
    let total = numel * esize;
    let per_chunk = (CHUNK_BYTES / esize).max(1);
    let mut buf = vec![0u8; per_chunk.min(numel) * esize];
    let mut s = 0;
    while s < numel {
        ctx.check_cancelled()?;
        let n = per_chunk.min(numel - s);
        flat.f_narrow(0, s as i64, n as i64)?
            .f_copy_data_u8(&mut buf[..n * esize], n)?;
        w.write_all(&buf[..n * esize]).map_err(|e| werr(path, e))?;
        s += n;
        if total >= PROGRESS_MIN_BYTES {
            ctx.progress(((s * esize) >> 20) as u64, (total >> 20) as u64, "MB");
        }
    }
    Ok(())
}
