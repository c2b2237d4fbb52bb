//! `vista3d_zeroshot`: a structure outside VISTA3D's classes segmented from clicks alone.
//! The clicks go through `vista3d_refine`'s pipeline with a class id above 132, which the
//! point head serves with its zero-shot embedding; the mask can then be snapped to
//! supervoxels (see [`super::snap`] for what that adds and when).

use super::classes::table;
use super::models;
use super::refine::{window_params, Vista3dRefine};
use super::snap::snap_to_supervoxels;
use crate::node::{Ctx, Fallback, Inputs, Node, NodeError, NodeSpec, Outputs, PortSpec};
use crate::params::{self, ParamSpec, ParamType, Params};
use crate::value::{LabelMap, PortType, Value, Volume};
use serde::Deserialize;
use serde_json::{json, Value as Json};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use tch::Kind;

pub struct Vista3dZeroshot;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ZeroshotParams {
    model: Option<PathBuf>,
    network: String,
    points: Json,
    points_file: Option<PathBuf>,
    id: u32,
    name: String,
    patch: [i64; 3],
    cache_features: String,
    reuse_windows: bool,
}

/// The clicks with `class` set to `id`; a click that names a class is refused.
fn with_class(points: &Json, id: u32) -> Result<Json, String> {
    let items = points
        .as_array()
        .ok_or("`points` must be a list of clicks {voxel|lps_mm|ras_mm, label}")?;
    items
        .iter()
        .enumerate()
        .map(|(n, p)| {
            let mut o = p
                .as_object()
                .cloned()
                .ok_or_else(|| format!("point {n} is {p}, not an object"))?;
            if o.contains_key("class") {
                return Err(format!(
                    "point {n} names a class: zero-shot clicks are all on the one new \
                     structure (`id`); use vista3d_refine for VISTA3D's own classes"
                ));
            }
            o.insert("class".into(), json!(id));
            Ok(Json::Object(o))
        })
        .collect::<Result<Vec<_>, _>>()
        .map(Json::Array)
}

fn check_points(v: &Json) -> Result<(), String> {
    if v.is_null() {
        return Ok(());
    }
    super::refine::check_points(&with_class(v, table().last_supported + 1)?)
}

impl Node for Vista3dZeroshot {
    fn spec(&self) -> &NodeSpec {
        static SPEC: OnceLock<NodeSpec> = OnceLock::new();
        SPEC.get_or_init(|| NodeSpec {
            kind: "vista3d_zeroshot",
            version: "1",
            summary: "VISTA3D zero-shot: a structure outside its classes from clicks, \
                      optionally snapped to supervoxels",
            inputs: vec![
                PortSpec::input(
                    "image",
                    PortType::Image,
                    "CT in HU (1.5 mm as for vista3d_auto)",
                ),
                PortSpec::optional_input(
                    "supervoxels",
                    PortType::Labels,
                    "supervoxels of the same image (the `supervoxels` node): a supervoxel joins \
                     the mask when most of it is inside",
                ),
                super::models::model_input(),
            ],
            exactly_one_input_of: vec![],
            outputs: vec![PortSpec::output(
                "labels",
                PortType::Labels,
                "the structure as class `id`, 0 elsewhere",
            )],
            params: [
                models::model_params().to_vec(),
                vec![
                    ParamSpec::optional(
                        "points",
                        ParamType::Custom {
                            describe: "a list of clicks {voxel: [i,j,k] | lps_mm: [x,y,z] | ras_mm: \
                                       [x,y,z], label: positive|negative}, at least one positive",
                            check: check_points,
                        },
                        Json::Null,
                        "clicks on the new structure (no `class`)",
                    ),
                    ParamSpec::optional(
                        "points_file",
                        ParamType::InputPath,
                        Json::Null,
                        "the clicks from a .json or .csv file instead (as vista3d_refine's, without \
                         a class column)",
                    ),
                    ParamSpec::optional(
                        "id",
                        ParamType::Int,
                        json!(table().last_supported + 1),
                        "class id of the structure in the output, above 132 (VISTA3D's zero-shot ids)",
                    ),
                    ParamSpec::optional(
                        "name",
                        ParamType::Str,
                        json!("new structure"),
                        "its name in the output's class table",
                    ),
                ],
                window_params().to_vec(),
            ]
            .concat(),
            fallback: Fallback::Cpu,
        })
    }

    fn companions(&self, param: &str, path: &Path, _params: &Params) -> Vec<PathBuf> {
        models::model_companions(param, path)
    }

    fn run(&self, ctx: &Ctx, mut inputs: Inputs, params: &Params) -> Result<Outputs, NodeError> {
        let p: ZeroshotParams = params::parse(params)?;
        let last = table().last_supported;
        if p.id <= last || p.id >= table().num_class_embeddings {
            return Err(NodeError::Invalid(format!(
                "`id` {} is not a zero-shot id: use {}..{} (ids up to {last} are VISTA3D's own \
                 classes: segment those with vista3d_auto or vista3d_refine)",
                p.id,
                last + 1,
                table().num_class_embeddings - 1
            )));
        }
        let points = super::refine::points_of(&p.points, p.points_file.as_deref())
            .and_then(|pts| with_class(&pts, p.id))
            .map_err(NodeError::Invalid)?;
        let supervoxels = match inputs.remove("supervoxels") {
            Some(Value::Labels(s)) => Some(s),
            _ => None,
        };
        let image = inputs
            .remove("image")
            .ok_or_else(|| NodeError::Invalid("vista3d_zeroshot needs `image`".into()))?;
        let mut rp = Params::new();
        for (k, v) in [
            ("model", json!(p.model)),
            ("network", json!(p.network)),
            ("points", points),
            ("patch", json!(p.patch)),
            ("cache_features", json!(p.cache_features)),
            ("reuse_windows", json!(p.reuse_windows)),
        ] {
            rp.insert(k.into(), v);
        }
        let mut refine_inputs = Inputs::from([("image".to_string(), image)]);
        if let Some(m) = inputs.remove("model") {
            refine_inputs.insert("model".into(), m);
        }
        let mut out = Vista3dRefine.run(ctx, refine_inputs, &rp)?;
        let Some(Value::Labels(mut labels)) = out.remove("labels") else {
            return Err(NodeError::Invalid("vista3d_refine gave no labels".into()));
        };
        if let Some(sv) = supervoxels {
            let mask = labels.volume.data().eq(p.id as i64);
            let snapped = snap_to_supervoxels(&mask, &sv.volume.data().to_device(mask.device()))
                .map_err(NodeError::Invalid)?;
            let data = snapped.to_kind(Kind::Int16) * p.id as i64;
            let mut v = Volume::new(data, *labels.volume.geometry()).map_err(NodeError::Invalid)?;
            v.meta = labels.volume.meta.clone();
            labels = LabelMap::new(v, labels.classes).map_err(NodeError::Invalid)?;
        }
        labels.classes = [(p.id, p.name.clone())].into();
        Ok(Outputs::from([(
            "labels".to_string(),
            Value::Labels(labels),
        )]))
    }
}
