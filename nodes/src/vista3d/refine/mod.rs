//! The `vista3d_refine` node: segmentation from clicks, on its own or as a correction of a
//! previous label map, as MONAI's VISTA3D interactive path does it.
//!
//! Steps (MONAI 1.6.1 / the model-zoo bundle): the bundle's preprocessing (foreground crop,
//! HU scaling, RAS; [`preprocess`]); clicks mapped into that grid through the affines; per
//! class, `point_based_window_inferer` (a patch centred on each click, clamped to the image,
//! window outputs summed where they overlap) with the point head prompted by the class
//! (`prompt_class`: ids above 132 take the zero-shot token; special classes get point labels
//! 2/3); with a prior label map, each window merges the prior's logits with the point logits by
//! `connected_components_combine` (only regions connected to a click change) and voxels no
//! window covers keep the prior; without one, `keep_components_with_positive_points` keeps
//! only objects holding a positive click. Logits > 0 are the class. Classes run in turn, each
//! merged into the label map before the next.
//!
//! A prior label map becomes logits ±[`PRIOR_LOGIT`] (inside/outside the class).

mod clicks;
mod components;
mod features;
mod inferer;
mod points_file;

pub use clicks::{special_classes, Click, Place};

use super::classes::table;
use super::{models, preprocess};
use crate::node::{
    Ctx, Fallback, InputTypes, Inputs, Node, NodeError, NodeSpec, Outputs, PortSpec,
};
use crate::params::{self, ParamSpec, ParamType, Params};
use crate::spatial::{crop, foreground_box, reorient, Grid, Orientation};
use crate::value::{LabelMap, PortType, Value, Volume};
use features::FeatureSource;
use inferer::NetClick;
use serde::Deserialize;
use serde_json::{json, Value as Json};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use tch::{Device, Kind, Tensor};

/// The logit a prior label map stands for: +1 inside the refined class, -1 outside.
pub const PRIOR_LOGIT: f64 = 1.0;

/// Checks a `points` param as `vista3d_refine` does (null: the clicks are in `points_file`).
pub fn check_points(v: &Json) -> Result<(), String> {
    if v.is_null() {
        return Ok(());
    }
    clicks::check_param(v)
}

/// The params of the windows around clicks, shared by vista3d_refine and vista3d_zeroshot.
pub(crate) fn window_params() -> [ParamSpec; 3] {
    [
        ParamSpec::optional(
            "patch",
            ParamType::Ints { len: Some(3) },
            json!([128, 128, 128]),
            "window size in voxels around each click, each a multiple of 16",
        ),
        ParamSpec::optional(
            "cache_features",
            ParamType::Choice(&["auto", "on", "off"]),
            json!("auto"),
            "keep the image encoder's features per window in the cache, so a later click \
             in a window already seen runs only the point head (auto: on the CPU, where \
             the encoder is slow; off on a GPU)",
        ),
        ParamSpec::optional(
            "reuse_windows",
            ParamType::Bool,
            json!(true),
            "a click well inside a window an earlier run computed uses that window \
             instead of one centred on it (false: MONAI's placement exactly)",
        ),
    ]
}

/// The clicks from `points` or `points_file`: exactly one of them.
pub fn points_of(points: &Json, file: Option<&std::path::Path>) -> Result<Json, String> {
    match (points.is_null(), file) {
        (false, None) => Ok(points.clone()),
        (true, Some(f)) => points_file::read(f),
        (true, None) => Err(
            "give the clicks as `points` (a list) or `points_file` (a .json or \
             .csv file)"
                .into(),
        ),
        (false, Some(_)) => Err("give the clicks as `points` or `points_file`, not both".into()),
    }
}

/// `vista3d_refine`.
pub struct Vista3dRefine;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RefineParams {
    model: Option<PathBuf>,
    network: String,
    points: Json,
    points_file: Option<PathBuf>,
    patch: [i64; 3],
    cache_features: String,
    reuse_windows: bool,
}

impl Node for Vista3dRefine {
    fn spec(&self) -> &NodeSpec {
        static SPEC: OnceLock<NodeSpec> = OnceLock::new();
        SPEC.get_or_init(|| NodeSpec {
            kind: "vista3d_refine",
            version: "1",
            summary: "VISTA3D click segmentation/refinement: new structures from clicks, or a \
                      prior label map corrected by clicks; output on the input's grid",
            inputs: vec![
                PortSpec::input(
                    "image",
                    PortType::Image,
                    "CT in Hounsfield units, ideally resampled to 1.5 mm",
                ),
                PortSpec::optional_input(
                    "labels",
                    PortType::Labels,
                    "a prior label map on the image's grid (e.g. vista3d_auto's) to correct; \
                     only regions connected to a click change",
                ),
                models::model_input(),
            ],
            exactly_one_input_of: vec![],
            outputs: vec![PortSpec::output(
                "labels",
                PortType::Labels,
                "the prior with the clicked classes refined (or a new label map of the \
                 clicked classes), VISTA3D class ids",
            )],
            params: [
                models::model_params().to_vec(),
                vec![
                    ParamSpec::optional(
                        "points",
                        ParamType::Custom {
                            describe: "a list of clicks {voxel: [i,j,k] | lps_mm: [x,y,z] | \
                                       ras_mm: [x,y,z], label: positive|negative, class: NAME|ID}",
                            check: check_points,
                        },
                        Json::Null,
                        "the clicks; `class` is a VISTA3D class name or id (ids above 132 are new, \
                         zero-shot structures and need a positive click); one network call per \
                         class, classes in order of first appearance",
                    ),
                    ParamSpec::optional(
                        "points_file",
                        ParamType::InputPath,
                        Json::Null,
                        "the clicks from a file instead: .json (the `points` list) or .csv (columns \
                         space, x, y, z, label, class; space is voxel, lps_mm or ras_mm)",
                    ),
                ],
                window_params().to_vec(),
            ]
            .concat(),
            fallback: Fallback::Cpu,
        })
    }

    fn outputs(&self, _params: &Params, _inputs: &InputTypes) -> Vec<PortSpec> {
        self.spec().outputs.clone()
    }

    fn companions(&self, param: &str, path: &Path, _params: &Params) -> Vec<PathBuf> {
        models::model_companions(param, path)
    }

    fn run(&self, ctx: &Ctx, inputs: Inputs, params: &Params) -> Result<Outputs, NodeError> {
        let p: RefineParams = params::parse(params)?;
        let invalid = NodeError::Invalid;
        let Some(Value::Image(img)) = inputs.get("image") else {
            return Err(invalid(
                "vista3d_refine needs a CT image on its `image` input".into(),
            ));
        };
        let points = points_of(&p.points, p.points_file.as_deref()).map_err(invalid)?;
        let clicks = clicks::parse(&points).map_err(invalid)?;
        let weights = models::weights_path(p.model.as_deref(), &inputs, "vista3d_refine")?;
        let config = models::network_config(&p.network, &weights)?;
        let spacing = models::card_of(&weights)?.map_or(
            crate::vista3d::classes::table().preprocess.spacing_mm,
            |c| c.spacing_mm,
        );
        let f = config.shape_factor();
        if p.patch.iter().any(|&s| s < f || s % f != 0) {
            return Err(invalid(format!(
                "patch {:?}: each size must be a positive multiple of {f}; the default is \
                 [128, 128, 128]",
                p.patch
            )));
        }
        let img = match img.data().dim() {
            4 if img.data().size()[0] == 1 => {
                Volume::new(img.data().squeeze_dim(0), *img.geometry()).map_err(invalid)?
            }
            _ => img.clone(),
        };
        let shape = img.spatial_shape();
        let shape_ijk = [shape[2], shape[1], shape[0]];
        let prior = match inputs.get("labels") {
            None => None,
            Some(Value::Labels(l)) => {
                check_grid(&l.volume, &img)?;
                Some(l.clone())
            }
            Some(_) => {
                return Err(invalid(
                    "vista3d_refine's `labels` input takes a label map".into(),
                ))
            }
        };

        // Clicks on the input's grid, grouped by class in order of first appearance.
        let mut voxels = Vec::new();
        for (n, c) in clicks.iter().enumerate() {
            voxels.push(clicks::voxel_of(c, n, img.geometry(), shape_ijk).map_err(invalid)?);
        }
        let mut classes: Vec<u32> = Vec::new();
        for c in &clicks {
            if !classes.contains(&c.class) {
                classes.push(c.class);
            }
        }
        let last = table().last_supported;
        for &cls in &classes {
            let any_pos = clicks.iter().any(|c| c.class == cls && c.positive);
            if cls > last && !any_pos {
                return Err(invalid(format!(
                    "class {cls} is a new (zero-shot) structure (ids above {last}) and has no \
                     positive click: add at least one `label: positive` click on it"
                )));
            }
            let in_prior = prior
                .as_ref()
                .is_some_and(|l| l.volume.data().eq(cls as i64).any().int64_value(&[]) != 0);
            if !any_pos && !in_prior {
                ctx.warn(&format!(
                    "class {cls} has only negative clicks and is not in the prior: the result \
                     for it is whatever the network makes of them; add a positive click"
                ));
            }
        }

        // The bundle's preprocessing, and the same crop and orientation for the label map.
        let prepared = preprocess::prepare(&img, Some(spacing), ctx)?;
        let Some(net_image) = prepared.image.as_ref() else {
            return Err(invalid(
                "no voxel of the image is above 0 HU, so VISTA3D has nothing to work on; is it \
                 a CT in Hounsfield units?"
                    .into(),
            ));
        };
        let pre = &table().preprocess;
        let b = foreground_box(&img, 0.0, pre.crop_foreground_margin)?
            .ok_or_else(|| invalid("no voxel is above 0 HU".into()))?;
        let base = match &prior {
            Some(l) => l.volume.clone(),
            None => Volume::new(
                Tensor::zeros(shape, (Kind::Uint8, Device::Cpu)),
                *img.geometry(),
            )
            .map_err(invalid)?,
        };
        let cropped = crop(&base, &b)?;
        let back_to = Orientation::of(&cropped.geometry().affine_lps);
        let ras = reorient(&cropped, Orientation::parse("RAS")?)?;
        let ras_geom = *ras.geometry();
        let mut net_labels = ras
            .data()
            .permute([2, 1, 0])
            .to_kind(Kind::Int64)
            .to_device(Device::Cpu)
            .contiguous();
        let net_size = net_labels.size();

        // Clicks in network voxels.
        let mut net_clicks: Vec<(u32, NetClick)> = Vec::new();
        let special = clicks::special_classes();
        for (n, (c, v)) in clicks.iter().zip(&voxels).enumerate() {
            let at = clicks::map_voxel(img.geometry(), &ras_geom, *v)
                .ok_or_else(|| invalid("the image's affine cannot be inverted".into()))?;
            if (0..3).any(|a| at[a] < 0 || at[a] >= net_size[a]) {
                return Err(invalid(format!(
                    "point {n} (voxel {v:?}) is in the air outside the body: VISTA3D works on \
                     the box around voxels above 0 HU (voxels {:?} to {:?}, [i, j, k]); click \
                     inside it",
                    b.start,
                    b.end.map(|e| e - 1)
                )));
            }
            let label = i64::from(c.positive) + if special.contains(&c.class) { 2 } else { 0 };
            net_clicks.push((c.class, NetClick { at, label }));
        }

        ctx.check_cancelled()?;
        let net = models::shared(&weights, &config, ctx.device, Kind::Float)?;
        let keep = match p.cache_features.as_str() {
            "on" => true,
            "off" => false,
            // On a GPU the encoder is faster than writing and reading its features.
            _ => ctx.device == Device::Cpu,
        };
        let mut source = FeatureSource::new(
            &net,
            keep.then_some(ctx),
            format!("point features v1 {} patch {:?}", p.network, p.patch),
            p.reuse_windows,
        );
        let total = net_clicks.len() as u64;
        let mut done = 0u64;
        let mut new_ids = Vec::new();
        for &cls in &classes {
            let these: Vec<NetClick> = net_clicks
                .iter()
                .filter(|(c, _)| *c == cls)
                .map(|(_, k)| *k)
                .collect();
            let prev = prior.as_ref().map(|_| {
                (net_labels.eq(cls as i64).to_kind(Kind::Float) * 2.0 - 1.0) * PRIOR_LOGIT
            });
            let base_done = done;
            let mut progress = |d: u64, _t: u64| -> Result<(), NodeError> {
                ctx.progress(base_done + d, total, "windows");
                ctx.check_cancelled()
            };
            let mut logits = inferer::infer(
                &net,
                &mut source,
                net_image,
                inferer::Object {
                    clicks: &these,
                    class: cls,
                    prev: prev.as_ref(),
                },
                p.patch,
                &mut progress,
            )?;
            done += these.len() as u64;
            if prior.is_none() {
                logits = keep_positive(&logits, &these)?;
            }
            let mask = logits.gt(0.0); // NaN (never computed) is not > 0
            let cleared = net_labels.where_scalarother(&net_labels.ne(cls as i64), 0);
            net_labels = Tensor::full_like(&net_labels, cls as i64).where_self(&mask, &cleared);
            new_ids.push(cls);
        }

        // Back onto the input's grid; outside the crop the prior stays as it was.
        let mut table_out = prior
            .as_ref()
            .map(|l| l.classes.clone())
            .unwrap_or_default();
        for (id, name) in table().class_table(&new_ids) {
            table_out.insert(id, name);
        }
        let max_id = table_out.keys().copied().max().unwrap_or(0);
        let kind = match (base.kind(), max_id) {
            (Kind::Uint8, m) if m <= 255 => Kind::Uint8,
            (Kind::Uint8 | Kind::Int8, _) => Kind::Int16,
            (k, _) => k,
        };
        let v = Volume::new(net_labels.permute([2, 1, 0]), ras_geom).map_err(invalid)?;
        let back = reorient(&v, back_to)?;
        let full = base.data().to_device(Device::Cpu).to_kind(kind).copy();
        let mut dst = full.shallow_clone();
        for a in 0..3 {
            dst = dst.narrow(2 - a as i64, b.start[a], b.end[a] - b.start[a]);
        }
        dst.copy_(&back.data().to_kind(kind));
        let mut out_vol = Volume::new(full, *img.geometry()).map_err(invalid)?;
        out_vol.meta = base.meta.clone();
        let mut out = Outputs::new();
        out.insert(
            "labels".into(),
            Value::Labels(LabelMap::new(out_vol, table_out).map_err(invalid)?),
        );
        Ok(out)
    }
}

/// `keep_components_with_positive_points` on a whole [X, Y, Z] logit volume.
fn keep_positive(logits: &Tensor, clicks: &[NetClick]) -> Result<Tensor, NodeError> {
    let size = logits.size();
    let shape: [usize; 3] = std::array::from_fn(|a| size[a] as usize);
    let mut v =
        Vec::<f32>::try_from(logits.reshape([-1])).map_err(|e| NodeError::Torch(e.to_string()))?;
    let pos: Vec<[i64; 3]> = clicks
        .iter()
        .filter(|c| c.positive())
        .map(|c| c.at)
        .collect();
    components::keep_positive(&mut v, shape, &pos);
    Ok(Tensor::from_slice(&v).view(size.as_slice()))
}

/// The prior must lie on the image's grid.
fn check_grid(labels: &Volume, img: &Volume) -> Result<(), NodeError> {
    if labels.data().dim() != 3 || !Grid::of(labels).matches(&Grid::of(img), 1e-3) {
        let s = labels.spatial_shape();
        let t = img.spatial_shape();
        return Err(NodeError::Invalid(format!(
            "the `labels` prior ({} x {} x {} voxels) is not on the image's grid ({} x {} x {} \
             voxels, or a different affine): put `resample` with the image as `reference` \
             (nearest) before vista3d_refine",
            s[2], s[1], s[0], t[2], t[1], t[0]
        )));
    }
    Ok(())
}
