//! The `load_rtstruct` node: an RT Structure Set made on a CT series, onto that series' grid
//! (the `image` of the load_dicom node that read it) as a label map whose classes are the
//! ROI names, so that `metrics` with `match: name` compares them with automatic contours.
//!
//! - [`read`]: the file's ROIs and contours;
//! - [`raster`]: filling a slice's contours (even-odd).

mod raster;
mod read;

use crate::export::dicom_seg::source::{self, SourceRef};
use crate::node::{Compute, Ctx, Inputs, Node, NodeError, NodeSpec, Outputs, PortSpec};
use crate::params::{self, NodeParams, ParamSchema, ParamType, Params};
use crate::value::{LabelMap, PortType, Value, Volume};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use tch::Tensor;

pub struct LoadRtstruct;

#[derive(Deserialize, NodeParams)]
#[serde(deny_unknown_fields)]
struct LoadRtstructParams {
    /// the RT Structure Set file (.dcm)
    #[param(input_path)]
    path: PathBuf,
    /// ROI names to load, e.g. [Liver, Kidney_L]; where ROIs overlap, the later one keeps the
    /// voxel (a label map holds one class per voxel). Default: every ROI with contours, in
    /// the file's order
    #[param(ty = ParamType::Custom {
        describe: "a list of ROI names",
        check: check_rois,
    })]
    rois: Option<Vec<String>>,
}

fn check_rois(v: &serde_json::Value) -> Result<(), String> {
    match v.as_array() {
        Some(a) if !a.is_empty() && a.iter().all(|x| x.as_str().is_some_and(|s| !s.is_empty())) => {
            Ok(())
        }
        _ => Err("rois: a non-empty list of ROI names, e.g. [Liver, Kidney_L]".into()),
    }
}

/// A contour's slice may be this far (in slices) from the CT's slice centre.
const SLICE_TOL: f64 = 0.05;

impl Node for LoadRtstruct {
    fn spec(&self) -> &NodeSpec {
        static SPEC: OnceLock<NodeSpec> = OnceLock::new();
        SPEC.get_or_init(|| NodeSpec {
            kind: "load_rtstruct",
            version: "1",
            summary: "Reads a DICOM RT Structure Set onto the grid of the CT series it was drawn \
                      on, as a label map whose classes are the ROI names",
            inputs: vec![PortSpec::input(
                "image",
                PortType::Image,
                "the CT series from load_dicom that the structure set references",
            )],
            exactly_one_input_of: vec![],
            outputs: vec![PortSpec::output(
                "labels",
                PortType::Labels,
                "one class per ROI (ids 1.. in `rois` order), named by ROI name",
            )],
            params: ParamSchema::of::<LoadRtstructParams>(),
            compute: Compute::Cpu,
        })
    }

    fn run(&self, ctx: &Ctx, inputs: Inputs, params: &Params) -> Result<Outputs, NodeError> {
        let p: LoadRtstructParams = params::load(params)?;
        let Some(Value::Image(image)) = inputs.get("image") else {
            return Err(NodeError::Invalid(
                "load_rtstruct needs its `image` input".into(),
            ));
        };
        let labels = load(&p.path, image, p.rois.as_deref(), ctx)?;
        Ok(Outputs::from([(
            "labels".to_string(),
            Value::Labels(labels),
        )]))
    }
}

/// The structure set at `path` on `image`'s grid.
pub fn load(
    path: &Path,
    image: &Volume,
    wanted: Option<&[String]>,
    ctx: &Ctx,
) -> Result<LabelMap, NodeError> {
    let src = SourceRef::of(image, "load_rtstruct")?;
    let ss = read::read(path).map_err(|e| NodeError::file(path, e))?;
    check_reference(path, &ss, &src)?;
    let rois = choose(path, &ss, wanted, ctx)?;

    let [d, h, w] = image.spatial_shape().map(|n| n as usize);
    let inverse = crate::spatial::grid::inverse(&image.geometry().affine_lps).ok_or_else(|| {
        NodeError::Invalid("load_rtstruct: the image's affine is singular".into())
    })?;
    let mut painter = crate::io::painter::Painter::new([d, h, w]);
    let mut skipped = Vec::new();
    let slices_of_series: std::collections::BTreeSet<&str> = src
        .instances
        .iter()
        .map(|i| i.sop_instance_uid.as_str())
        .collect();
    let mut foreign_refs = 0usize;
    for (n, roi) in rois.iter().enumerate() {
        ctx.check_cancelled()?;
        let class = n as i16 + 1;
        let mut slices: BTreeMap<usize, Vec<Vec<[f64; 2]>>> = BTreeMap::new();
        for c in &roi.contours {
            if c.images
                .iter()
                .any(|u| !slices_of_series.contains(u.as_str()))
            {
                foreign_refs += 1;
            }
            if c.kind != "CLOSED_PLANAR" {
                skipped.push(format!("`{}` ({})", roi.name, c.kind));
                continue;
            }
            let (k, poly) = on_slice(&c.points, &inverse, d)
                .map_err(|e| NodeError::file(path, format!("ROI `{}`: {e}", roi.name)))?;
            slices.entry(k).or_default().push(poly);
        }
        let mut mask = vec![false; h * w];
        for (k, polys) in slices {
            mask.fill(false);
            for poly in &polys {
                raster::toggle(&mut mask, w, h, poly);
            }
            painter.paint(k, &mask, class, &roi.name);
        }
        ctx.progress(n as u64 + 1, rois.len() as u64, "ROIs");
    }
    if !skipped.is_empty() {
        skipped.dedup();
        ctx.warn(&format!(
            "load_rtstruct: contours that are not CLOSED_PLANAR hold no area and were skipped: \
             {}",
            skipped.join(", ")
        ));
    }
    if foreign_refs > 0 {
        ctx.warn(&format!(
            "load_rtstruct: {foreign_refs} contour(s) reference images that are not slices of \
             the image's series; they were placed by their position, which matched a slice"
        ));
    }
    for (n, roi) in rois.iter().enumerate() {
        // a ROI whose contours painted nothing keeps its name (and an empty class)
        painter
            .classes
            .entry(n as u32 + 1)
            .or_insert_with(|| roi.name.clone());
    }
    painter.warn_overlaps(ctx, "load_rtstruct", "ROIs", "rois");
    let data = Tensor::from_slice(&painter.ids).view([d as i64, h as i64, w as i64]);
    let mut volume = Volume::new(data, *image.geometry()).map_err(NodeError::Invalid)?;
    volume
        .meta
        .insert("source_format".into(), "rtstruct".into());
    let labels = LabelMap::new(volume, painter.classes).map_err(NodeError::Invalid)?;
    source::check_grid(&labels, image, &src, "load_rtstruct")?;
    Ok(labels)
}

/// The structure set must be drawn on this series: same frame of reference and, when it
/// names its series, this one. UIDs are not printed (they can identify a study).
fn check_reference(path: &Path, ss: &read::StructureSet, src: &SourceRef) -> Result<(), NodeError> {
    if let (Some(a), Some(b)) = (&ss.frame_of_reference, &src.frame_of_reference_uid) {
        if a != b {
            return Err(NodeError::file(
                path,
                "the structure set is on another frame of reference than the image (its \
                 Referenced Frame of Reference UID differs from the series'): it was drawn on \
                 another scan; connect the load_dicom node that read the series it references",
            ));
        }
    }
    if let Some(series) = &src.series_instance_uid {
        if !ss.series.is_empty() && !ss.series.contains(series) {
            return Err(NodeError::file(
                path,
                "the structure set references another series than the image (no RT Referenced \
                 Series is the image's SeriesInstanceUID): the series it was drawn on is \
                 missing; load that series with load_dicom and connect it",
            ));
        }
    }
    Ok(())
}

/// The ROIs to load, in order: `wanted` by name (each must exist and have contours), or
/// every ROI with contours (empty ones skipped with a warning).
fn choose<'a>(
    path: &Path,
    ss: &'a read::StructureSet,
    wanted: Option<&[String]>,
    ctx: &Ctx,
) -> Result<Vec<&'a read::Roi>, NodeError> {
    let names = || {
        ss.rois
            .iter()
            .map(|r| format!("`{}`", r.name))
            .collect::<Vec<_>>()
            .join(", ")
    };
    match wanted {
        Some(list) => list
            .iter()
            .map(|want| {
                let roi = ss
                    .rois
                    .iter()
                    .find(|r| r.name == *want)
                    .or_else(|| ss.rois.iter().find(|r| r.name.eq_ignore_ascii_case(want)))
                    .ok_or_else(|| {
                        NodeError::file(path, format!("no ROI `{want}`; the ROIs are {}", names()))
                    })?;
                if roi.contours.is_empty() {
                    return Err(NodeError::file(
                        path,
                        format!("ROI `{}` has no contours (an empty structure)", roi.name),
                    ));
                }
                Ok(roi)
            })
            .collect(),
        None => {
            let empty: Vec<String> = ss
                .rois
                .iter()
                .filter(|r| r.contours.is_empty())
                .map(|r| format!("`{}`", r.name))
                .collect();
            if !empty.is_empty() {
                ctx.warn(&format!(
                    "load_rtstruct: ROIs without contours were skipped: {}",
                    empty.join(", ")
                ));
            }
            let rois: Vec<_> = ss.rois.iter().filter(|r| !r.contours.is_empty()).collect();
            if rois.is_empty() {
                return Err(NodeError::file(
                    path,
                    "no ROI of the structure set has contours",
                ));
            }
            Ok(rois)
        }
    }
}

/// The contour in the image's voxel indices: its slice `k` and its points `(i, j)`. Fails
/// when it is not on one of the image's slices.
fn on_slice(
    points: &[[f64; 3]],
    inverse: &[[f64; 4]; 4],
    depth: usize,
) -> Result<(usize, Vec<[f64; 2]>), String> {
    let idx: Vec<[f64; 3]> = points
        .iter()
        .map(|p| {
            [0, 1, 2].map(|r| {
                inverse[r][0] * p[0] + inverse[r][1] * p[1] + inverse[r][2] * p[2] + inverse[r][3]
            })
        })
        .collect();
    let Some(first) = idx.first() else {
        return Err("a contour has no points".into());
    };
    let k = first[2].round();
    if idx.iter().any(|p| (p[2] - first[2]).abs() > SLICE_TOL) {
        return Err(
            "a contour is not in one slice plane of the image (tilted, or the image \
                    is not the series it was drawn on)"
                .into(),
        );
    }
    if (first[2] - k).abs() > SLICE_TOL {
        return Err(format!(
            "a contour lies between the image's slices ({:.2} slices from slice {})",
            (first[2] - k).abs(),
            k
        ));
    }
    if k < 0.0 || k >= depth as f64 {
        return Err(format!(
            "a contour lies outside the image's {depth} slices (at slice {k})"
        ));
    }
    Ok((k as usize, idx.iter().map(|p| [p[0], p[1]]).collect()))
}
