//! DICOM RT Structure Sets (SOP Class 1.2.840.10008.5.1.4.1.1.481.3) referencing the source
//! CT series: one ROI per class present, its planar closed contours per axial slice in
//! patient millimetres (LPS), each contour pointing at its slice.
//!
//! - [`contours`]: a class's outline on one slice, along the pixel edges (why, and the hole
//!   convention, are there);
//! - [`names`]: ROI names (AAPM TG-263, `tg263.json`);
//! - [`dataset`]: the IOD's modules.
//!
//! The source, its identity (patient and study modules), de-identification and the
//! deterministic UIDs are the DICOM SEG export's (`dicom_seg::source`, `uid`).

pub mod contours;
mod dataset;
pub mod names;

use super::dicom_seg::{frames::Voxels, source, uid};
use crate::io::atomic;
use crate::node::{Ctx, NodeError};
use crate::value::{LabelMap, Volume};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;

/// One ROI: a class and its contours, each `(slice k, points in LPS mm)`.
pub struct Roi {
    pub number: u32,
    pub class: u32,
    /// Where it comes from: a class of `labels`, or one of the `structures:` (class 0).
    pub input: &'static str,
    pub name: String,
    pub colour: [u8; 3],
    pub contours: Vec<(usize, Vec<[f64; 3]>)>,
}

/// Writes `labels` (on `source`'s grid, from load_dicom) as an RT Structure Set at `path`.
/// `structures`: masks derived from `labels` (the `structures:` param, see
/// [`crate::structures`]), each a ROI of its own after the classes', whole even where it
/// overlaps a class or another structure (a PTV over the organs it was grown into).
/// `names`: ROI names by class name or id, over the TG-263 table. Written atomically.
pub fn write(
    path: &Path,
    labels: &LabelMap,
    structures: &[(String, Vec<bool>)],
    source: &Volume,
    deidentify: bool,
    names: &BTreeMap<String, String>,
    ctx: &Ctx,
) -> Result<(), NodeError> {
    let src = source::SourceRef::for_export(labels, source, deidentify, "rtstruct")?;
    if src.resampled {
        return Err(NodeError::Invalid(
            "rtstruct: the series was resampled when it was loaded (uneven or tilted slices), \
             so its slices are not the CT's images and contours could not point at them; \
             export `dicom_seg` instead, or load a series with regular slices"
                .into(),
        ));
    }
    let mut rois = rois_of(labels, names, ctx)?;
    let [d, h, w] = labels.volume.spatial_shape().map(|n| n as usize);
    let to_mm = corner_to_mm(labels);
    for (name, mask) in structures {
        ctx.check_cancelled()?;
        let mut roi = Roi {
            number: rois.len() as u32 + 1,
            class: 0,
            input: "structures",
            name: names.get(name).cloned().unwrap_or_else(|| name.clone()),
            colour: crate::export::preview::class_colour(rois.len() as u32 + 1),
            contours: Vec::new(),
        };
        for k in 0..d {
            let slice = &mask[k * h * w..(k + 1) * h * w];
            if slice.iter().any(|v| *v) {
                for c in contours::trace(slice, w, h) {
                    roi.contours
                        .push((k, c.iter().map(|&(x, y)| to_mm(x, y, k)).collect()));
                }
            }
        }
        if roi.contours.is_empty() {
            ctx.warn(&format!(
                "rtstruct: structure `{name}` is empty: left out (no contour)"
            ));
            continue;
        }
        rois.push(roi);
    }
    if rois.is_empty() {
        return Err(NodeError::Invalid(
            "rtstruct: nothing to export: the label map has no labelled voxel (every voxel is \
             0, background)"
                .into(),
        ));
    }
    let mut seen = std::collections::BTreeSet::new();
    for r in &rois {
        if !seen.insert(r.name.as_str()) {
            return Err(NodeError::Invalid(format!(
                "rtstruct: two ROIs would be named `{}` (a class and a structure?): rename \
                 one with `names:` or in `structures:`",
                r.name
            )));
        }
    }
    let digest = content_digest(&src, &rois);
    let (study, series_ref, for_uid) = super::dicom_seg::reference_uids(&src, "rtstruct", ctx);
    let content = dataset::Content {
        src: &src,
        study_instance_uid: study,
        referenced_series_uid: series_ref,
        frame_of_reference_uid: for_uid,
        series_instance_uid: uid::derive(&digest, "rtstruct series"),
        sop_instance_uid: uid::derive(&digest, "rtstruct sop"),
        rois,
    };
    let bytes = dataset::encode(dataset::build(&content)).map_err(|e| NodeError::file(path, e))?;
    atomic::create_parent(path)?;
    atomic::write(path, |f| {
        f.write_all(&bytes)
            .map_err(|e| atomic::write_error(path, e))
    })
}

/// Pixel-edge corner (x, y) of slice k (voxel index (x - 0.5, y - 0.5, k)) in LPS mm.
fn corner_to_mm(labels: &LabelMap) -> impl Fn(u32, u32, usize) -> [f64; 3] {
    let affine = labels.volume.geometry().affine_lps;
    move |x, y, k| {
        let (i, j, k) = (x as f64 - 0.5, y as f64 - 0.5, k as f64);
        [0, 1, 2].map(|r| affine[r][0] * i + affine[r][1] * j + affine[r][2] * k + affine[r][3])
    }
}

/// The ROIs of the classes present in `labels`, numbered from 1, with their contours.
fn rois_of(
    labels: &LabelMap,
    names: &BTreeMap<String, String>,
    ctx: &Ctx,
) -> Result<Vec<Roi>, NodeError> {
    let voxels = Voxels::of(labels)?;
    let [d, h, w] = voxels.shape;
    let per_slice = voxels.classes_per_slice()?;
    let present: std::collections::BTreeSet<u32> = per_slice.iter().flatten().copied().collect();
    let to_mm = corner_to_mm(labels);
    let mut rois: Vec<Roi> = present
        .iter()
        .enumerate()
        .map(|(n, &class)| Roi {
            number: 1 + n as u32,
            class,
            input: "labels",
            name: names::roi_name(class, labels.classes.get(&class).map(String::as_str), names),
            colour: crate::export::preview::class_colour(class),
            contours: Vec::new(),
        })
        .collect();
    let index: BTreeMap<u32, usize> = rois.iter().enumerate().map(|(n, r)| (r.class, n)).collect();
    let mut mask = vec![false; w * h];
    let mut slice = Vec::new();
    for (k, classes) in per_slice.iter().enumerate() {
        ctx.check_cancelled()?;
        if classes.is_empty() {
            continue;
        }
        voxels.slice_ids(k, &mut slice);
        for &class in classes {
            for (m, &v) in mask.iter_mut().zip(&slice) {
                *m = v == class as i64;
            }
            let roi = &mut rois[index[&class]];
            for c in contours::trace(&mask, w, h) {
                roi.contours
                    .push((k, c.iter().map(|&(x, y)| to_mm(x, y, k)).collect()));
            }
        }
        ctx.progress(k as u64 + 1, d as u64, "slices");
    }
    Ok(rois)
}

/// sha256 of what makes the file: the source slices and every ROI's name and points.
fn content_digest(src: &source::SourceRef, rois: &[Roi]) -> [u8; 32] {
    let mut h = Sha256::new();
    for i in &src.instances {
        h.update(i.sop_instance_uid.as_bytes());
        h.update([0]);
    }
    for r in rois {
        h.update(r.class.to_le_bytes());
        h.update(r.name.as_bytes());
        h.update([0]);
        for (k, pts) in &r.contours {
            h.update((*k as u64).to_le_bytes());
            for p in pts {
                for v in p {
                    h.update(v.to_le_bytes());
                }
            }
        }
    }
    h.finalize().into()
}
