//! The `export` node: one format per use, chosen by `format`.

use super::mesh::{write_stl, MeshOptions};
use super::{dicom_seg, nifti, preview, report, rtstruct};
use crate::node::{Compute, Ctx, Inputs, Node, NodeError, NodeSpec, Outputs, PortSpec};
use crate::params::{self, NodeParams, ParamChoice, ParamSchema, ParamType, Params};
use crate::spatial::{resample_volume, Grid, Interp};
use crate::value::{LabelMap, PortType, Value, Volume};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

pub struct Export;

#[derive(Deserialize, NodeParams)]
#[serde(deny_unknown_fields)]
struct ExportParams {
    /// nifti | dicom_seg | rtstruct | stl | png | report
    format: Format,
    /// file to write (stl: a folder, one file per class)
    #[param(output_path)]
    path: PathBuf,
    /// stl: Taubin smoothing iterations (0: none)
    #[param(default = 10u32)]
    smooth: u32,
    /// stl: sample every step-th voxel (2 or more: fewer triangles)
    #[param(default = 1u32, min = 1)]
    step: u32,
    /// dicom_seg, rtstruct: leave out the patient and study identifiers and dates (DICOM PS3.15 Basic
    /// Profile with the Retain UIDs Option); by default they are copied from the source as
    /// DICOM requires
    #[param(default = false)]
    deidentify: bool,
    /// rtstruct: ROI names by class name or id, e.g. {liver: Liver_AI, 5: Kidney_R}, over the
    /// AAPM TG-263 names vistaflow gives VISTA3D's classes
    #[param(ty = ParamType::Custom {
        describe: "{class name or id: ROI name}",
        check: check_names,
    })]
    names: Option<BTreeMap<String, String>>,
    /// rtstruct: planning structures derived from the labels' classes, each a ROI of its own
    /// after them and whole where it overlaps them or another (a PTV over its CTV): the
    /// `structures` node's definitions, e.g. [{name: PTV, from: CTV, margin_mm: 5}]
    #[param(ty = ParamType::Custom {
        describe: "a list of structure definitions",
        check: crate::structures::check_defs,
    })]
    structures: Option<Vec<crate::structures::Def>>,
}

fn check_names(v: &serde_json::Value) -> Result<(), String> {
    let Some(o) = v.as_object() else {
        return Err("names: an object {class name or id: ROI name}".into());
    };
    for (k, name) in o {
        match name.as_str() {
            Some(n) if !n.trim().is_empty() && n.chars().count() <= 64 && !n.contains('\\') => {}
            _ => {
                return Err(format!(
                    "names: {k} -> a ROI name (text, 1 to 64 characters, no backslash)"
                ))
            }
        }
    }
    Ok(())
}

#[derive(ParamChoice, Clone, Copy, PartialEq)]
enum Format {
    Nifti,
    DicomSeg,
    Rtstruct,
    Stl,
    Png,
    Report,
}

impl Node for Export {
    fn spec(&self) -> &NodeSpec {
        static SPEC: OnceLock<NodeSpec> = OnceLock::new();
        SPEC.get_or_init(|| NodeSpec {
            kind: "export",
            version: "1",
            summary: "Writes labels for people and tools: NIfTI + class tables, DICOM SEG, DICOM \
                      RT Structure Set, STL meshes, a PNG preview sheet, or the run's JSON \
                      provenance report",
            inputs: vec![
                PortSpec::optional_input(
                    "labels",
                    PortType::Labels,
                    "the label map (required by every format but report)",
                ),
                PortSpec::optional_input(
                    "image",
                    PortType::Image,
                    "dicom_seg, rtstruct: the source series from load_dicom (required); nifti: \
                     the grid to write on; png: the image under the overlays",
                ),
            ],
            exactly_one_input_of: vec![],
            outputs: vec![],
            params: ParamSchema::of::<ExportParams>(),
            compute: Compute::Cpu,
        })
    }

    fn finalises(&self, params: &Params) -> bool {
        params::read::<ExportParams>(params).is_ok_and(|p| p.format == Format::Report)
    }

    /// A NIfTI's class tables beside it: deleting one reruns the export.
    fn companions(&self, param: &str, path: &Path, params: &Params) -> Vec<PathBuf> {
        match (
            param,
            params::read::<ExportParams>(params).map(|p| p.format),
        ) {
            ("path", Ok(Format::Nifti)) => crate::io::nifti::sidecars(path).to_vec(),
            _ => Vec::new(),
        }
    }

    fn run(&self, ctx: &Ctx, mut inputs: Inputs, params: &Params) -> Result<Outputs, NodeError> {
        let p: ExportParams = params::load(params)?;
        let labels = match inputs.remove("labels") {
            Some(Value::Labels(l)) => Some(l),
            _ => None,
        };
        let image = match inputs.remove("image") {
            Some(Value::Image(v)) => Some(v),
            _ => None,
        };
        if p.structures.is_some() && p.format != Format::Rtstruct {
            return Err(NodeError::Invalid(format!(
                "`structures:` is for format `rtstruct` (ROIs that may overlap); for format \
                 `{}` derive them with a `structures` node",
                p.format
            )));
        }
        if p.format == Format::Report {
            report::write_report(&p.path, labels.as_ref(), ctx)?;
            return Ok(Outputs::new());
        }
        let labels = labels.ok_or_else(|| {
            NodeError::Invalid(format!(
                "format `{}` needs `labels` (e.g. `labels: seg.labels`)",
                p.format
            ))
        })?;
        match p.format {
            Format::Nifti => {
                let labels = match &image {
                    Some(img) => on_grid(ctx, labels, img)?,
                    None => labels,
                };
                nifti::write_labels(&p.path, &labels, ctx)
            }
            Format::DicomSeg => {
                let img = image.ok_or_else(|| {
                    NodeError::Invalid(
                        "format `dicom_seg` needs `image`: the series from load_dicom, whose \
                         instances the segmentation references (e.g. `image: ct.image`)"
                            .into(),
                    )
                })?;
                dicom_seg::write(&p.path, &labels, &img, p.deidentify, ctx)
            }
            Format::Rtstruct => {
                let img = image.ok_or_else(|| {
                    NodeError::Invalid(
                        "format `rtstruct` needs `image`: the CT series from load_dicom, whose \
                         slices the contours reference (e.g. `image: ct.image`)"
                            .into(),
                    )
                })?;
                let names = p.names.unwrap_or_default();
                let structures = match &p.structures {
                    Some(defs) => crate::structures::masks(&labels, defs, Some(&img), ctx)?,
                    None => Vec::new(),
                };
                rtstruct::write(
                    &p.path,
                    &labels,
                    &structures,
                    &img,
                    p.deidentify,
                    &names,
                    ctx,
                )
            }
            Format::Stl => {
                let opts = MeshOptions {
                    smooth_iterations: p.smooth,
                    step: p.step,
                };
                write_stl(&p.path, &labels, &opts, ctx).map(|_| ())
            }
            Format::Png => preview::write_png(&p.path, &labels, image.as_ref(), ctx),
            Format::Report => unreachable!("written above"),
        }?;
        Ok(Outputs::new())
    }
}

/// `labels` on `image`'s grid: as they are when already there, else nearest-neighbour
/// resampled through both affines (with a warning).
fn on_grid(ctx: &Ctx, labels: LabelMap, image: &Volume) -> Result<LabelMap, NodeError> {
    let (a, b) = (Grid::of(&labels.volume), Grid::of(image));
    if a.matches(&b, 1e-4) {
        return Ok(labels);
    }
    ctx.warn(&format!(
        "the labels ({:?} voxels) are not on the image's grid ({:?}); writing them resampled \
         onto it by nearest neighbour",
        a.shape, b.shape
    ));
    Ok(LabelMap {
        volume: resample_volume(&labels.volume, &b, Interp::Nearest, 0.0, ctx)?,
        classes: labels.classes,
    })
}
