//! DICOM Segmentation objects (binary, one segment per class) referencing the source series.
//!
//! [`write`] turns a label map on the grid of an image read by `load_dicom` into one SEG
//! instance (SOP Class 1.2.840.10008.5.1.4.1.1.66.4, BitsAllocated 1, Explicit VR Little
//! Endian): a segment per class present, a frame per (segment, slice) where the segment is
//! not empty, each frame pointing at its source slice (SOP Instance UID, and frame number for
//! multi-frame sources). The SEG joins the source's study and frame of reference; its series
//! and instance UIDs are derived from the content, so the same result gives the same file.
//!
//! - [`source`]: the source series from `Volume::identity`, and the grid check;
//! - [`frames`]: the label map's voxels, classes per slice, 1-bit packing;
//! - [`codes`]: SNOMED CT codes per class name (`codes.json`);
//! - [`color`]: recommended display colours;
//! - [`uid`]: deterministic `2.25` UIDs;
//! - [`dataset`]: the data set (modules) and its encoding; [`groups`]: functional groups and
//!   dimensions; [`elements`]: a data set builder, decimal strings, code items.

mod codes;
pub(crate) mod color;
mod content;
pub(crate) mod dataset;
pub(crate) mod elements;
pub(crate) mod frames;
mod groups;
pub(crate) mod source;
pub(crate) mod uid;

use crate::io::atomic;
use crate::node::{Ctx, NodeError};
use crate::value::{LabelMap, Volume};
use content::{Content, Frame, Segment};
use sha2::{Digest, Sha256};
use std::io::Write;
use std::path::Path;

/// Writes `labels` (on `source`'s grid) as a DICOM SEG file at `path`.
///
/// `source` must be the image `load_dicom` produced (its `identity` names the series); the
/// labels must have its shape and affine (resample them with `reference:` first). Classes
/// without a name or a code get a generic code and a warning. The file is written atomically.
/// `deidentify`: the patient and study identifiers left out (see [`source::SourceRef::deidentify`]).
pub fn write(
    path: &Path,
    labels: &LabelMap,
    source: &Volume,
    deidentify: bool,
    ctx: &Ctx,
) -> Result<(), NodeError> {
    let src = source::SourceRef::for_export(labels, source, deidentify, "dicom_seg")?;
    let voxels = frames::Voxels::of(labels)?;
    let [_, rows, cols] = voxels.shape;
    if rows > u16::MAX as usize || cols > u16::MAX as usize {
        return Err(NodeError::Invalid(format!(
            "dicom_seg: slices of {rows}x{cols} voxels do not fit DICOM's 16-bit Rows/Columns"
        )));
    }
    let per_slice = voxels.classes_per_slice()?;
    let present: std::collections::BTreeSet<u32> = per_slice.iter().flatten().copied().collect();
    if present.is_empty() {
        return Err(NodeError::Invalid(
            "dicom_seg: nothing to export: the label map has no labelled voxel (every voxel is \
             0, background), and a DICOM SEG needs at least one non-empty segment"
                .into(),
        ));
    }
    if present.len() > u16::MAX as usize {
        return Err(NodeError::Invalid(format!(
            "dicom_seg: {} classes are more than a SEG's 65535 segments",
            present.len()
        )));
    }
    if src.resampled {
        ctx.warn(
            "dicom_seg: the image was resampled when the series was loaded (uneven or tilted \
             slices), so the SEG's frames cannot point at source slices one to one: they \
             reference the series' slices as a whole (SpatialLocationsPreserved NO) and carry \
             their own plane positions",
        );
    }

    let segments = segments(labels, &present, ctx);
    let content_digest = digest(&src, &voxels, labels);
    let (study, series_ref, for_uid) = reference_uids(&src, "dicom_seg", ctx);

    let mut bits = frames::PixelBits::default();
    let mut frame_list = Vec::new();
    for (n, seg) in segments.iter().enumerate() {
        ctx.check_cancelled()?;
        for (k, classes) in per_slice.iter().enumerate() {
            if classes.contains(&seg.class) {
                voxels.pack_slice(k, seg.class, &mut bits);
                frame_list.push(Frame {
                    segment: seg.number,
                    slice: k,
                });
            }
        }
        ctx.progress(n as u64 + 1, segments.len() as u64, "segments");
    }
    ctx.check_cancelled()?;

    let content = Content {
        src: &src,
        study_instance_uid: study,
        referenced_series_uid: series_ref,
        frame_of_reference_uid: for_uid,
        series_instance_uid: uid::derive(&content_digest, "series"),
        sop_instance_uid: uid::derive(&content_digest, "sop"),
        dimension_organization_uid: uid::derive(&content_digest, "dimension organization"),
        shape: voxels.shape,
        affine: labels.volume.geometry().affine_lps,
        per_frame_sources: !src.resampled,
        segments,
        frames: frame_list,
    };
    drop(voxels);
    let obj = dataset::build(&content);
    let bytes = dataset::encode(obj, bits.finish()).map_err(|e| NodeError::file(path, e))?;
    atomic::create_parent(path)?;
    atomic::write(path, |w| {
        w.write_all(&bytes)
            .map_err(|e| atomic::write_error(path, e))
    })
}

/// One segment per present class, numbered from 1 in class id order, with its name, codes
/// and colour. Warns (once) about classes without a name or without a code.
fn segments(
    labels: &LabelMap,
    present: &std::collections::BTreeSet<u32>,
    ctx: &Ctx,
) -> Vec<Segment> {
    let mut unnamed = Vec::new();
    let mut uncoded = Vec::new();
    let out = present
        .iter()
        .enumerate()
        .map(|(i, &class)| {
            let name = labels
                .classes
                .get(&class)
                .map(|s| s.trim())
                .filter(|s| !s.is_empty());
            let label = match name {
                Some(n) => n.to_string(),
                None => {
                    unnamed.push(class.to_string());
                    format!("class {class}")
                }
            };
            let codes = match name.and_then(codes::lookup) {
                Some(c) => c,
                None => {
                    if name.is_some() {
                        uncoded.push(label.clone());
                    }
                    codes::fallback()
                }
            };
            Segment {
                number: i as u16 + 1,
                class,
                label,
                codes,
                lab: color::cielab_of_class(class),
            }
        })
        .collect();
    if !unnamed.is_empty() {
        ctx.warn(&format!(
            "dicom_seg: the label map's class table has no name for class(es) {}: their \
             segments are labelled `class <id>` and coded with the generic code Tissue \
             (SCT 85756007); give the label map a class table to get specific codes",
            unnamed.join(", ")
        ));
    }
    if !uncoded.is_empty() {
        ctx.warn(&format!(
            "dicom_seg: no SNOMED CT code is known for {}: coded with the generic code Tissue \
             (SCT 85756007); the known names are VISTA3D's class names",
            uncoded
                .iter()
                .map(|n| format!("`{n}`"))
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    out
}

/// sha256 over what makes the result: the source series (its UID and slice UIDs), the voxel
/// values with their shape and type, the class table and the grid.
fn digest(src: &source::SourceRef, voxels: &frames::Voxels, labels: &LabelMap) -> [u8; 32] {
    let mut h = Sha256::new();
    let field = |h: &mut Sha256, s: &str| {
        h.update((s.len() as u64).to_le_bytes());
        h.update(s.as_bytes());
    };
    field(&mut h, src.series_instance_uid.as_deref().unwrap_or(""));
    for i in &src.instances {
        field(&mut h, &i.sop_instance_uid);
        h.update(i.frame.unwrap_or(0).to_le_bytes());
    }
    voxels.hash_into(&mut h);
    for (id, name) in &labels.classes {
        h.update(id.to_le_bytes());
        field(&mut h, name);
    }
    for row in labels.volume.geometry().affine_lps {
        for v in row {
            h.update(v.to_le_bytes());
        }
    }
    h.finalize().into()
}

/// The study, referenced series and frame of reference UIDs: the source's, or, where the
/// source left one empty, a UID derived from the source slices' UIDs (so that every SEG of
/// the series agrees) and a warning.
pub(crate) fn reference_uids(
    src: &source::SourceRef,
    format: &str,
    ctx: &Ctx,
) -> (String, String, String) {
    let mut h = Sha256::new();
    for i in &src.instances {
        h.update((i.sop_instance_uid.len() as u64).to_le_bytes());
        h.update(i.sop_instance_uid.as_bytes());
    }
    let series_digest: [u8; 32] = h.finalize().into();
    let mut missing = Vec::new();
    let mut pick = |v: &Option<String>, what: &'static str, purpose: &str| match v {
        Some(u) => u.clone(),
        None => {
            missing.push(what);
            uid::derive(&series_digest, purpose)
        }
    };
    let study = pick(&src.study_instance_uid, "StudyInstanceUID", "source study");
    let series = pick(
        &src.series_instance_uid,
        "SeriesInstanceUID",
        "source series",
    );
    let frame = pick(
        &src.frame_of_reference_uid,
        "FrameOfReferenceUID",
        "source frame of reference",
    );
    if !missing.is_empty() {
        ctx.warn(&format!(
            "{format}: the source series has no {}: the file uses UIDs derived from the \
             slices' SOP Instance UIDs instead, so viewers may not file it with the images (it \
             still points at the source slices)",
            missing.join(", ")
        ));
    }
    (study, series, frame)
}
