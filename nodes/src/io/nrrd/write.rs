//! Writing a [`Value`] as NRRD, atomically: `.nrrd` (header and data in one file) or `.nhdr`
//! (header, plus the data in `<stem>.raw.gz` or `<stem>.raw` beside it).

use super::dtype::{type_name, DataType};
use super::geometry::space_fields;
use crate::io::atomic::{self, create_parent, write_error};
use crate::io::sample::storable;
use crate::io::stream::{gzip_or_raw, write_tensor};
use crate::node::{Ctx, NodeError};
use crate::value::{ClassTable, Value, Volume};
use std::fmt::Write as _;
use std::io::Write;
use std::path::{Path, PathBuf};

/// The data file beside the detached header `name` (`x.nhdr` -> `x.raw.gz`, or `x.raw`).
pub fn data_file_name(name: &str, compress: bool) -> String {
    let stem = name.strip_suffix(".nhdr").unwrap_or(name);
    format!("{stem}.raw{}", if compress { ".gz" } else { "" })
}

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
    let (data, dtype) = storable(vol, "NRRD").map_err(err)?;
    let classes = match value {
        Value::Labels(l) => Some(&l.classes),
        Value::Image(_) | Value::Table(_) | Value::Model(_) => None,
    };
    let data_name = detached.then(|| data_file_name(name, compress));
    let header = header_text(
        vol,
        &data.size(),
        dtype,
        compress,
        data_name.as_deref(),
        classes,
    )
    .map_err(err)?;

    let dir = create_parent(path)?;
    match data_name {
        None => atomic::write(path, |w| {
            w.write_all(header.as_bytes())
                .map_err(|e| write_error(path, e))?;
            gzip_or_raw(w, compress, path, |w| write_tensor(w, &data, ctx, path))
        }),
        Some(data_name) => {
            // Data first, then the header that points at it: a crash leaves at worst an
            // unreferenced data file, never a header without its data.
            let data_path: PathBuf = dir.join(&data_name);
            atomic::write(&data_path, |w| {
                gzip_or_raw(w, compress, &data_path, |w| {
                    write_tensor(w, &data, ctx, &data_path)
                })
            })?;
            atomic::write(path, |w| {
                w.write_all(header.as_bytes())
                    .map_err(|e| write_error(path, e))
            })
        }
    }
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
        type_name(dtype),
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
