//! The `resample` and `crop_foreground` node kinds: thin shells over [`resample_value`] and
//! [`foreground_box`]/[`crop`].

use super::crop::{crop, foreground_box, CropBox};
use super::grid::Grid;
use super::orient::{Orientation, CODES};
use super::resample::{Interp, Outside};
use super::target::{resample_value, InterpChoice, Target};
use crate::node::{Compute, Ctx, InputTypes, Inputs, Node, NodeError, NodeSpec, Outputs, PortSpec};
use crate::params::{self, NodeParams, ParamChoice, ParamKind, ParamSchema, ParamType, Params};
use crate::value::{LabelMap, PortType, Value};
use serde::Deserialize;
use std::sync::OnceLock;

const BOTH: &[PortType] = &[PortType::Image, PortType::Labels];

/// `resample`: onto a spacing and/or orientation, or onto a reference's grid.
pub struct Resample;

#[derive(Deserialize, NodeParams)]
#[serde(deny_unknown_fields)]
struct ResampleParams {
    /// voxel size [i, j, k] in mm; the grid keeps its orientation and first voxel centre and
    /// covers the input's voxel centres: n' = round((n-1)*s/s')+1 (MONAI's Spacing)
    #[param(positive)]
    spacing: Option<[f64; 3]>,
    /// where voxel axes i, j, k point, as nibabel's axcodes (RAS = Right, Anterior, Superior;
    /// LPS = DICOM/ITK); axes are permuted and flipped, never interpolated; applied after
    /// `spacing`
    #[param(ty = ParamType::Choice(CODES))]
    orientation: Option<String>,
    /// auto: linear for images, nearest for label maps (linear is refused for label maps)
    #[param(default = Interpolation::Auto)]
    interpolation: Interpolation,
    /// what the grid gets outside the input: a number (images only; default: the image's
    /// minimum, e.g. air in CT; label maps get 0), or `border`: the nearest edge voxel's
    /// value, as MONAI's Spacing and the VISTA3D bundle, so a coarser grid that ends past the
    /// last slice repeats it
    fill: Option<Outside>,
}

#[derive(ParamChoice, Clone, Copy)]
enum Interpolation {
    Auto,
    Linear,
    Nearest,
}

impl From<Interpolation> for InterpChoice {
    fn from(i: Interpolation) -> Self {
        match i {
            Interpolation::Auto => InterpChoice::Auto,
            Interpolation::Linear => InterpChoice::Fixed(Interp::Linear),
            Interpolation::Nearest => InterpChoice::Fixed(Interp::Nearest),
        }
    }
}

/// `fill`: a number, or `border`.
impl<'de> Deserialize<'de> for Outside {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match serde_json::Value::deserialize(d)? {
            serde_json::Value::Number(n) => Ok(Outside::Fill(n.as_f64().unwrap_or(f64::NAN))),
            serde_json::Value::String(s) if s == "border" => Ok(Outside::Border),
            other => Err(serde::de::Error::custom(format!(
                "fill: a number (the value outside the input) or `border` (the nearest edge \
                 voxel's value), got {other}"
            ))),
        }
    }
}

impl ParamKind for Outside {
    fn param_type() -> ParamType {
        ParamType::Custom {
            describe: "a number or `border`",
            check: params::check_by_serde::<Outside>,
        }
    }
}

impl Node for Resample {
    fn spec(&self) -> &NodeSpec {
        static SPEC: OnceLock<NodeSpec> = OnceLock::new();
        SPEC.get_or_init(|| NodeSpec {
            kind: "resample",
            version: "1",
            summary: "Resamples an image or label map to a spacing and/or orientation, or onto \
                      a reference's grid (ITK semantics; linear for images, nearest for labels)",
            inputs: vec![
                PortSpec::input(
                    "image",
                    PortType::Image,
                    "the image or label map to resample",
                )
                .any_of(BOTH),
                PortSpec::optional_input(
                    "reference",
                    PortType::Image,
                    "resample onto this volume's grid (its affine and shape)",
                )
                .any_of(BOTH),
            ],
            exactly_one_input_of: vec![],
            outputs: vec![
                PortSpec::output(
                    "image",
                    PortType::Image,
                    "the resampled image (image input)",
                ),
                PortSpec::output(
                    "labels",
                    PortType::Labels,
                    "the resampled label map (labels input)",
                ),
            ],
            params: ParamSchema::of::<ResampleParams>(),
            compute: Compute::Gpu,
        })
    }

    fn outputs(&self, _params: &Params, inputs: &InputTypes) -> Vec<PortSpec> {
        let want = match inputs.get("image") {
            Some(PortType::Labels) => "labels",
            _ => "image",
        };
        self.spec()
            .outputs
            .iter()
            .filter(|p| p.name == want)
            .cloned()
            .collect()
    }

    fn run(&self, ctx: &Ctx, inputs: Inputs, params: &Params) -> Result<Outputs, NodeError> {
        let p: ResampleParams = params::load(params)?;
        let value = inputs
            .get("image")
            .ok_or_else(|| NodeError::Invalid("resample needs its `image` input".into()))?;
        let target = match inputs.get("reference") {
            Some(r) => {
                if p.spacing.is_some() || p.orientation.is_some() {
                    return Err(NodeError::Invalid(
                        "give either a `reference` input or `spacing`/`orientation`, not both: \
                         the reference fixes the whole grid"
                            .into(),
                    ));
                }
                Target::Grid(Grid::of(r.volume()))
            }
            None => {
                if p.spacing.is_none() && p.orientation.is_none() {
                    return Err(NodeError::Invalid(
                        "resample needs a target: `spacing: [x, y, z]` (mm), `orientation` \
                         (e.g. RAS) or a `reference` input"
                            .into(),
                    ));
                }
                let orientation = p
                    .orientation
                    .as_deref()
                    .map(Orientation::parse)
                    .transpose()?;
                Target::Spacing {
                    spacing: p.spacing,
                    orientation,
                }
            }
        };
        let out = resample_value(value, &target, p.interpolation.into(), p.fill, ctx)?;
        let port = match out {
            Value::Labels(_) => "labels",
            Value::Image(_) | Value::Table(_) | Value::Model(_) => "image",
        };
        Ok(Outputs::from([(port.to_string(), out)]))
    }
}

/// `crop_foreground`: the box around voxels above a threshold plus a margin (VISTA3D bundle).
pub struct CropForeground;

#[derive(Deserialize, NodeParams)]
#[serde(deny_unknown_fields)]
struct CropParams {
    /// foreground is voxels > threshold, on raw values (HU for CT)
    #[param(default = 0.0)]
    threshold: f64,
    /// voxels added on each side of the box (clamped to the image)
    #[param(default = 10, min = 0)]
    margin: i64,
}

impl Node for CropForeground {
    fn spec(&self) -> &NodeSpec {
        static SPEC: OnceLock<NodeSpec> = OnceLock::new();
        SPEC.get_or_init(|| NodeSpec {
            kind: "crop_foreground",
            version: "1",
            summary: "Crops to the box around voxels above a threshold plus a margin (MONAI \
                      CropForeground); the affine keeps voxels in place and meta records the box",
            inputs: vec![
                PortSpec::input(
                    "image",
                    PortType::Image,
                    "the image whose foreground sets the box",
                ),
                PortSpec::optional_input(
                    "labels",
                    PortType::Labels,
                    "a label map on the same grid, cropped with the same box",
                ),
            ],
            exactly_one_input_of: vec![],
            outputs: vec![
                PortSpec::output("image", PortType::Image, "the cropped image"),
                PortSpec::output(
                    "labels",
                    PortType::Labels,
                    "the cropped label map (when `labels` is connected)",
                ),
            ],
            params: ParamSchema::of::<CropParams>(),
            compute: Compute::Gpu,
        })
    }

    fn outputs(&self, _params: &Params, inputs: &InputTypes) -> Vec<PortSpec> {
        let labels = inputs.contains_key("labels");
        self.spec()
            .outputs
            .iter()
            .filter(|p| p.name == "image" || labels)
            .cloned()
            .collect()
    }

    fn run(&self, ctx: &Ctx, inputs: Inputs, params: &Params) -> Result<Outputs, NodeError> {
        let p: CropParams = params::load(params)?;
        let Some(Value::Image(img)) = inputs.get("image") else {
            return Err(NodeError::Invalid(
                "crop_foreground needs an `image` input".into(),
            ));
        };
        let shape = img.spatial_shape();
        let b = match foreground_box(img, p.threshold, p.margin)? {
            Some(b) => b,
            None => {
                ctx.warn(&format!(
                    "crop_foreground: no voxel is above {}; the image is passed whole",
                    p.threshold
                ));
                CropBox {
                    start: [0; 3],
                    end: [shape[2], shape[1], shape[0]],
                }
            }
        };
        let mut out = Outputs::new();
        out.insert("image".into(), Value::Image(crop(img, &b)?));
        if let Some(v) = inputs.get("labels") {
            let Value::Labels(l) = v else {
                return Err(NodeError::Invalid("`labels` must be a label map".into()));
            };
            let (a, g) = (l.volume.geometry().affine_lps, img.geometry().affine_lps);
            let same_place = (0..3).all(|r| (0..4).all(|c| (a[r][c] - g[r][c]).abs() < 1e-3));
            if Grid::of(&l.volume).shape != Grid::of(img).shape || !same_place {
                return Err(NodeError::Invalid(format!(
                    "`labels` (shape [k,j,i] {:?}) is not on the image's grid ({:?}, or another \
                     affine); resample it onto the image first (resample with `reference`)",
                    l.volume.spatial_shape(),
                    shape
                )));
            }
            let cropped = LabelMap {
                volume: crop(&l.volume, &b)?,
                classes: l.classes.clone(),
            };
            out.insert("labels".into(), Value::Labels(cropped));
        }
        Ok(out)
    }
}
