//! The `supervoxels` node: checks params and input, windows the CT, then smooth -> SLIC ->
//! connectivity.

use super::connectivity::{enforce, renumber};
use super::slic::{slic, SlicParams};
use super::smooth::gaussian;
use crate::node::{Compute, Ctx, Inputs, Node, NodeError, NodeSpec, Outputs, PortSpec};
use crate::params::{self, NodeParams, ParamError, ParamSchema, Params};
use crate::value::{ClassTable, LabelMap, PortType, Value, Volume};
use serde::Deserialize;
use std::sync::OnceLock;
use tch::{Kind, Tensor};

/// `supervoxels`: 3D SLIC supervoxels of a CT (see the module docs).
pub struct Supervoxels;

#[derive(Deserialize, NodeParams)]
#[serde(deny_unknown_fields)]
#[params(check = SupervoxelParams::check_values)]
struct SupervoxelParams {
    /// about how many supervoxels to make in the body (seeds on a grid)
    #[param(default = 400)]
    n_segments: i64,
    /// weight of distance against intensity, in units of the windowed [0, 1] intensity as
    /// scikit-image's slic: higher gives more cube-like supervoxels
    #[param(default = 0.01)]
    compactness: f64,
    /// Gaussian smoothing before clustering, in voxels on every axis (0: none)
    #[param(default = 3.0)]
    sigma: f64,
    /// [lo, hi] HU: intensities are clipped to it and scaled to [0, 1]
    #[param(default = [-1000.0, 1000.0])]
    window: [f64; 2],
    /// voxels below this HU are air: id 0 and left out of the clustering
    #[param(default = -800.0)]
    air_below_hu: f64,
    /// measure distances in mm using the voxel spacing (else in voxels)
    #[param(default = true)]
    spacing_aware: bool,
    /// k-means iterations at most (stops early once nothing moves)
    #[param(default = 10)]
    max_iterations: i64,
    /// make every supervoxel one 6-connected piece: fragments under half the mean size are
    /// merged into a neighbour, pieces over 3x are split
    #[param(default = true)]
    enforce_connectivity: bool,
}

impl SupervoxelParams {
    /// Refuses values SLIC cannot work with, saying what to give instead (at load).
    fn check_values(&self) -> Result<(), ParamError> {
        if self.n_segments < 1 {
            return bad(
                "n_segments",
                format!(
                    "n_segments must be at least 1, got {}; the paper uses 400",
                    self.n_segments
                ),
            );
        }
        if !(self.compactness >= 0.0 && self.compactness.is_finite()) {
            return bad(
                "compactness",
                format!(
                    "compactness must be a finite number >= 0, got {}; try 0.01 (the paper's) and \
                 explore on a log scale",
                    self.compactness
                ),
            );
        }
        if !(self.sigma >= 0.0 && self.sigma.is_finite()) {
            return bad(
                "sigma",
                format!(
                    "sigma must be a finite number >= 0 (voxels; 0 = no smoothing), got {}",
                    self.sigma
                ),
            );
        }
        let [lo, hi] = self.window;
        if !(lo.is_finite() && hi.is_finite() && lo < hi) {
            return bad(
                "window",
                format!(
                    "window must be [lo, hi] HU with lo < hi, got [{lo}, {hi}]; e.g. [-1000, 1000]"
                ),
            );
        }
        if !self.air_below_hu.is_finite() {
            return bad(
                "air_below_hu",
                "air_below_hu must be a finite HU value, e.g. -800",
            );
        }
        if self.max_iterations < 1 {
            return bad(
                "max_iterations",
                format!(
                    "max_iterations must be at least 1, got {}; 10 is usual",
                    self.max_iterations
                ),
            );
        }
        Ok(())
    }
}

fn bad(param: &str, message: impl Into<String>) -> Result<(), ParamError> {
    Err(ParamError::at(param, message))
}

impl Node for Supervoxels {
    fn spec(&self) -> &NodeSpec {
        static SPEC: OnceLock<NodeSpec> = OnceLock::new();
        SPEC.get_or_init(|| NodeSpec {
            kind: "supervoxels",
            version: "1",
            summary: "3D SLIC supervoxels of a CT inside the body (air zeroed), the VISTA3D \
                      paper's zero-shot pseudo-labels",
            inputs: vec![PortSpec::input(
                "image",
                PortType::Image,
                "a single-channel 3D CT in HU",
            )],
            exactly_one_input_of: vec![],
            outputs: vec![PortSpec::output(
                "labels",
                PortType::Labels,
                "supervoxel ids 1..N (int32, numbered in raster order), 0 for air; empty \
                 class table",
            )],
            params: ParamSchema::of::<SupervoxelParams>(),
            compute: Compute::Cpu,
        })
    }

    fn run(&self, ctx: &Ctx, mut inputs: Inputs, params: &Params) -> Result<Outputs, NodeError> {
        let p: SupervoxelParams = params::load(params)?;
        let Some(Value::Image(image)) = inputs.remove("image") else {
            return Err(NodeError::Invalid(
                "supervoxels needs a CT on its `image` input".into(),
            ));
        };
        let labels = supervoxels(ctx, &image, &p)?;
        Ok(Outputs::from([(
            "labels".to_string(),
            Value::Labels(labels),
        )]))
    }
}

/// The CT's voxels as f32 in `[k, j, i]` order, with its spatial shape.
fn voxels(image: &Volume) -> Result<(Vec<f32>, [usize; 3]), NodeError> {
    let t = image.data();
    let size = t.size();
    if t.dim() == 4 && size[0] != 1 {
        return Err(NodeError::Invalid(format!(
            "supervoxels works on one channel, got {} channels (shape {size:?}); select one \
             channel first",
            size[0]
        )));
    }
    if t.dim() != 3 && t.dim() != 4 {
        return Err(NodeError::Invalid(format!(
            "supervoxels needs a 3D image [D,H,W], got shape {size:?}"
        )));
    }
    let [d, h, w] = image.spatial_shape();
    let flat = t
        .to_device(tch::Device::Cpu)
        .to_kind(Kind::Float)
        .contiguous()
        .view(-1);
    let v = Vec::<f32>::try_from(&flat).map_err(NodeError::from)?;
    Ok((v, [d as usize, h as usize, w as usize]))
}

fn supervoxels(ctx: &Ctx, image: &Volume, p: &SupervoxelParams) -> Result<LabelMap, NodeError> {
    let (hu, shape) = voxels(image)?;
    let [lo, hi] = p.window;
    // NaN counts as air (the comparison is false) and as intensity 0.
    let mask: Vec<bool> = hu.iter().map(|v| *v as f64 >= p.air_below_hu).collect();
    let scaled: Vec<f32> = hu
        .iter()
        .map(|v| {
            let x = ((*v as f64 - lo) / (hi - lo)).clamp(0.0, 1.0);
            if x.is_nan() {
                0.0
            } else {
                x as f32
            }
        })
        .collect();
    drop(hu);
    let smooth = gaussian(&scaled, shape, [p.sigma; 3]);
    drop(scaled);
    let s = image.geometry().spacing();
    let spacing = if p.spacing_aware {
        [s[2], s[1], s[0]]
    } else {
        [1.0; 3]
    };
    if spacing.iter().any(|x| !(*x > 0.0 && x.is_finite())) {
        return Err(NodeError::Invalid(format!(
            "the image's voxel spacing {s:?} mm is not usable for distances; fix the file's \
             affine or set spacing_aware: false"
        )));
    }
    let n_body = mask.iter().filter(|m| **m).count();
    if n_body == 0 {
        ctx.warn(&format!(
            "supervoxels: no voxel is at or above air_below_hu ({} HU); the output is all 0 \
             (is the image in HU?)",
            p.air_below_hu
        ));
    }
    let sp = SlicParams {
        n_segments: p.n_segments as usize,
        compactness: p.compactness,
        spacing,
        max_iterations: p.max_iterations as usize,
    };
    let c = slic(&smooth, &mask, shape, &sp, ctx)?;
    ctx.check_cancelled()?;
    // scikit-image's sizes with a mask: the body divided by the seeds placed.
    let mean = n_body as f64 / c.n_clusters.max(1) as f64;
    let ids = if p.enforce_connectivity {
        let (min_size, max_size) = ((0.5 * mean) as usize, ((3.0 * mean) as usize).max(1));
        enforce(&c.labels, &mask, shape, min_size, max_size)
    } else {
        renumber(&c.labels, &mask)
    };
    let [d, h, w] = shape;
    let t = Tensor::from_slice(&ids).view([d as i64, h as i64, w as i64]);
    let mut volume = Volume::new(t, *image.geometry()).map_err(NodeError::Invalid)?;
    volume.meta = image.meta.clone();
    volume.identity = image.identity.clone();
    LabelMap::new(volume, ClassTable::new()).map_err(NodeError::Invalid)
}
