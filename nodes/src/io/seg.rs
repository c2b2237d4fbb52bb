//! The `load_dicom_seg` node: a DICOM Segmentation (binary or fractional; from highdicom,
//! dcmqi, vistaflow or a viewer) onto the grid of its source series (the `image` of the
//! load_dicom node that read it), one class per segment named by its Segment Label.
//!
//! Frames are placed by their Image Position (Patient) on the image's slices; a SEG whose
//! frames are not on the image's grid (another orientation, spacing or in-plane offset) is
//! refused rather than resampled.

use crate::export::dicom_seg::source::{self, SourceRef};
use crate::io::dicom::attrs::{self, Attr, Obj};
use crate::io::dicom::header::{self, Probe};
use crate::io::painter::Painter;
use crate::node::{Compute, Ctx, Inputs, Node, NodeError, NodeSpec, Outputs, PortSpec};
use crate::params::{self, NodeParams, ParamSchema, Params};
use crate::value::{LabelMap, PortType, Value, Volume};
use dicom_dictionary_std::tags;
use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use tch::Tensor;

pub struct LoadDicomSeg;

#[derive(Deserialize, NodeParams)]
#[serde(deny_unknown_fields)]
struct LoadDicomSegParams {
    /// the DICOM SEG file (.dcm)
    #[param(input_path)]
    path: PathBuf,
    /// fractional SEGs: a voxel belongs to a segment when its value is above this fraction
    /// of the maximum
    #[param(default = 0.5, min = 0.0, max = 1.0)]
    threshold: f64,
}

/// A frame's position may be this far (in voxels) from the image's grid.
const GRID_TOL: f64 = 0.01;

impl Node for LoadDicomSeg {
    fn spec(&self) -> &NodeSpec {
        static SPEC: OnceLock<NodeSpec> = OnceLock::new();
        SPEC.get_or_init(|| NodeSpec {
            kind: "load_dicom_seg",
            version: "1",
            summary: "Reads a DICOM Segmentation (binary or fractional) onto the grid of its \
                      source series, as a label map whose classes are the segment labels",
            inputs: vec![PortSpec::input(
                "image",
                PortType::Image,
                "the source series from load_dicom that the segmentation was made on",
            )],
            exactly_one_input_of: vec![],
            outputs: vec![PortSpec::output(
                "labels",
                PortType::Labels,
                "one class per segment (ids 1.. in segment order), named by Segment Label",
            )],
            params: ParamSchema::of::<LoadDicomSegParams>(),
            compute: Compute::Cpu,
        })
    }

    fn run(&self, ctx: &Ctx, inputs: Inputs, params: &Params) -> Result<Outputs, NodeError> {
        let p: LoadDicomSegParams = params::load(params)?;
        let Some(Value::Image(image)) = inputs.get("image") else {
            return Err(NodeError::Invalid(
                "load_dicom_seg needs its `image` input".into(),
            ));
        };
        let labels = load(&p.path, image, p.threshold, ctx)?;
        Ok(Outputs::from([(
            "labels".to_string(),
            Value::Labels(labels),
        )]))
    }
}

fn a(tag: dicom_core::Tag, kw: &'static str) -> Attr {
    Attr(tag, kw)
}

/// The SEG at `path` on `image`'s grid.
pub fn load(path: &Path, image: &Volume, threshold: f64, ctx: &Ctx) -> Result<LabelMap, NodeError> {
    let bad = |m: String| NodeError::file(path, m);
    let src = SourceRef::of(image, "load_dicom_seg")?;
    let obj = match header::open(path, true) {
        Ok(o) => o,
        Err(Probe::NotDicom) => return Err(bad("not a DICOM file".into())),
        Err(Probe::Broken(w)) | Err(Probe::Other(w)) => return Err(bad(w)),
        Err(Probe::Image(_)) => unreachable!("open does not probe"),
    };
    let class = attrs::text(&obj, a(tags::SOP_CLASS_UID, "SOPClassUID")).unwrap_or_default();
    if class != "1.2.840.10008.5.1.4.1.1.66.4" {
        return Err(bad(format!("not a DICOM Segmentation (SOP Class {class})")));
    }
    if let (Some(f), Some(mine)) = (
        attrs::text(&obj, a(tags::FRAME_OF_REFERENCE_UID, "FrameOfReferenceUID")),
        &src.frame_of_reference_uid,
    ) {
        if &f != mine {
            return Err(bad(
                "the segmentation is on another frame of reference than the image: it was made \
                 on another scan; connect the load_dicom node that read its source series"
                    .into(),
            ));
        }
    }
    let int = |o: &Obj, at: Attr| attrs::int(o, at).map_err(&bad);
    let rows = int(&obj, a(tags::ROWS, "Rows"))?.ok_or_else(|| bad("no Rows".into()))? as usize;
    let cols =
        int(&obj, a(tags::COLUMNS, "Columns"))?.ok_or_else(|| bad("no Columns".into()))? as usize;
    let frames = int(&obj, a(tags::NUMBER_OF_FRAMES, "NumberOfFrames"))?.unwrap_or(1) as usize;
    let bits = int(&obj, a(tags::BITS_ALLOCATED, "BitsAllocated"))?.unwrap_or(1);
    let kind =
        attrs::text(&obj, a(tags::SEGMENTATION_TYPE, "SegmentationType")).unwrap_or_default();
    let cutoff = match (kind.as_str(), bits) {
        ("BINARY", 1) => 0.0,
        ("FRACTIONAL", 8) => {
            let max = int(
                &obj,
                a(tags::MAXIMUM_FRACTIONAL_VALUE, "MaximumFractionalValue"),
            )?
            .unwrap_or(255) as f64;
            threshold * max
        }
        _ => {
            return Err(bad(format!(
                "SegmentationType {kind} with BitsAllocated {bits} is not a segmentation this \
                 reader knows (BINARY with 1 bit, FRACTIONAL with 8)"
            )))
        }
    };
    let [d, h, w] = image.spatial_shape().map(|n| n as usize);
    if (rows, cols) != (h, w) {
        return Err(bad(format!(
            "its frames are {rows}x{cols} and the image's slices {h}x{w}: it is not on the \
             image's grid (resample is not done for SEGs); connect its source series"
        )));
    }
    let names: Vec<(i64, String)> =
        attrs::items(&obj, a(tags::SEGMENT_SEQUENCE, "SegmentSequence"))
            .iter()
            .map(|s| {
                let n = int(s, a(tags::SEGMENT_NUMBER, "SegmentNumber"))?
                    .ok_or_else(|| bad("a segment has no SegmentNumber".into()))?;
                let label = attrs::text(s, a(tags::SEGMENT_LABEL, "SegmentLabel"))
                    .unwrap_or_else(|| format!("segment {n}"));
                Ok((n, label))
            })
            .collect::<Result<_, NodeError>>()?;
    let pixels = obj
        .element(tags::PIXEL_DATA)
        .map_err(|_| bad("no Pixel Data".into()))?
        .to_bytes()
        .map_err(|_| bad("its Pixel Data is not native (compressed SEGs are not read)".into()))?;
    let plane = rows * cols;
    let need = if bits == 1 {
        (frames * plane).div_ceil(8)
    } else {
        frames * plane
    };
    if pixels.len() < need {
        return Err(bad(format!(
            "its Pixel Data holds {} bytes; {frames} frames of {rows}x{cols} need {need}",
            pixels.len()
        )));
    }
    let inverse = crate::spatial::grid::inverse(&image.geometry().affine_lps).ok_or_else(|| {
        NodeError::Invalid("load_dicom_seg: the image's affine is singular".into())
    })?;
    let shared = attrs::items(
        &obj,
        a(
            tags::SHARED_FUNCTIONAL_GROUPS_SEQUENCE,
            "SharedFunctionalGroupsSequence",
        ),
    );
    let per_frame = attrs::items(
        &obj,
        a(
            tags::PER_FRAME_FUNCTIONAL_GROUPS_SEQUENCE,
            "PerFrameFunctionalGroupsSequence",
        ),
    );
    if per_frame.len() != frames {
        return Err(bad(format!(
            "{} per-frame functional groups for {frames} frames",
            per_frame.len()
        )));
    }
    let mut painter = Painter::new([d, h, w]);
    let mut mask = vec![false; plane];
    for (f, group) in per_frame.iter().enumerate() {
        ctx.check_cancelled()?;
        let segment = group_item(
            group,
            shared,
            a(
                tags::SEGMENT_IDENTIFICATION_SEQUENCE,
                "SegmentIdentificationSequence",
            ),
        )
        .and_then(|s| {
            int(
                s,
                a(tags::REFERENCED_SEGMENT_NUMBER, "ReferencedSegmentNumber"),
            )
            .transpose()
        })
        .transpose()?
        .ok_or_else(|| bad(format!("frame {} names no segment", f + 1)))?;
        let Some(n) = names.iter().position(|(s, _)| *s == segment) else {
            return Err(bad(format!(
                "frame {} is of segment {segment}, which the SEG does not list",
                f + 1
            )));
        };
        let position = group_item(
            group,
            shared,
            a(tags::PLANE_POSITION_SEQUENCE, "PlanePositionSequence"),
        )
        .map(|p| {
            attrs::floats_n(
                p,
                a(tags::IMAGE_POSITION_PATIENT, "ImagePositionPatient"),
                3,
            )
        })
        .transpose()
        .map_err(&bad)?
        .flatten()
        .ok_or_else(|| bad(format!("frame {} has no Image Position (Patient)", f + 1)))?;
        let idx = [0, 1, 2].map(|r| {
            inverse[r][0] * position[0]
                + inverse[r][1] * position[1]
                + inverse[r][2] * position[2]
                + inverse[r][3]
        });
        let k = idx[2].round();
        if idx[0].abs() > GRID_TOL
            || idx[1].abs() > GRID_TOL
            || (idx[2] - k).abs() > GRID_TOL
            || k < 0.0
            || k >= d as f64
        {
            return Err(bad(format!(
                "frame {} is not on one of the image's slices (at voxel {:.2}, {:.2}, {:.2}): \
                 the SEG is not on the image's grid; connect its source series",
                f + 1,
                idx[0],
                idx[1],
                idx[2]
            )));
        }
        for (p, m) in mask.iter_mut().enumerate() {
            let at = f * plane + p;
            *m = if bits == 1 {
                pixels[at / 8] >> (at % 8) & 1 == 1
            } else {
                pixels[at] as f64 > cutoff
            };
        }
        painter.paint(k as usize, &mask, n as i16 + 1, &names[n].1);
        ctx.progress(f as u64 + 1, frames as u64, "frames");
    }
    for (n, (_, name)) in names.iter().enumerate() {
        painter
            .classes
            .entry(n as u32 + 1)
            .or_insert_with(|| name.clone());
    }
    painter.warn_overlaps(ctx, "load_dicom_seg", "segments", "the SEG's segments");
    let data = Tensor::from_slice(&painter.ids).view([d as i64, h as i64, w as i64]);
    let mut volume = Volume::new(data, *image.geometry()).map_err(NodeError::Invalid)?;
    volume
        .meta
        .insert("source_format".into(), "dicom_seg".into());
    let labels = LabelMap::new(volume, painter.classes).map_err(NodeError::Invalid)?;
    source::check_grid(&labels, image, &src, "load_dicom_seg")?;
    Ok(labels)
}

/// A functional group's first item, per frame or else shared.
fn group_item<'a>(per_frame: &'a Obj, shared: &'a [Obj], seq: Attr) -> Option<&'a Obj> {
    attrs::first_item(per_frame, seq)
        .or_else(|| shared.first().and_then(|s| attrs::first_item(s, seq)))
}
