//! The `vista3d_zeroshot` node: its params, spec and run.

use crate::node::{Compute, Ctx, Inputs, Node, NodeError, NodeSpec, Outputs, PortSpec};
use crate::params::{self, NodeParams, ParamError, ParamSchema, ParamType, Params};
use crate::value::{LabelMap, PortType, Value, Volume};
use crate::vista3d::classes::table;
use crate::vista3d::models::{self, ModelParams};
use crate::vista3d::refine::{self, RefineOptions, WindowParams};
use crate::vista3d::snap::snap_to_supervoxels;
use serde::Deserialize;
use serde_json::{json, Value as Json};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use tch::Kind;

pub struct Vista3dZeroshot;

#[derive(Deserialize, NodeParams)]
#[params(check = ZeroshotParams::check_values)]
struct ZeroshotParams {
    #[serde(flatten)]
    model: ModelParams,
    /// clicks on the new structure (no `class`)
    #[param(default = Json::Null, ty = ParamType::Custom {
        describe: "a list of clicks {voxel: [i,j,k] | lps_mm: [x,y,z] | ras_mm: [x,y,z], \
                   label: positive|negative}, at least one positive",
        check: check_points,
    })]
    points: Json,
    /// the clicks from a .json or .csv file instead (as vista3d_refine's, without a class
    /// column)
    #[param(input_path)]
    points_file: Option<PathBuf>,
    /// class id of the structure in the output, above 132 (VISTA3D's zero-shot ids)
    #[param(default = table().last_supported + 1)]
    id: u32,
    /// its name in the output's class table
    #[param(default = "new structure")]
    name: String,
    #[serde(flatten)]
    window: WindowParams,
}

impl ZeroshotParams {
    fn check_values(&self) -> Result<(), ParamError> {
        let last = table().last_supported;
        if self.id <= last || self.id >= table().num_class_embeddings {
            return Err(ParamError::at(
                "id",
                format!(
                    "`id` {} is not a zero-shot id: use {}..{} (ids up to {last} are VISTA3D's \
                     own classes: segment those with vista3d_auto or vista3d_refine)",
                    self.id,
                    last + 1,
                    table().num_class_embeddings - 1
                ),
            ));
        }
        if !self.points.is_null() && self.points_file.is_some() {
            return Err(ParamError::at(
                "points_file",
                "give the clicks as `points` or `points_file`, not both",
            ));
        }
        self.model.check_patch("patch", &self.window.patch)
    }
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
    refine::check_points(&with_class(v, table().last_supported + 1)?)
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
                crate::vista3d::models::model_input(),
            ],
            exactly_one_input_of: vec![],
            outputs: vec![PortSpec::output(
                "labels",
                PortType::Labels,
                "the structure as class `id`, 0 elsewhere",
            )],
            params: ParamSchema::of::<ZeroshotParams>(),
            compute: Compute::Gpu,
        })
    }

    fn companions(&self, param: &str, path: &Path, _params: &Params) -> Vec<PathBuf> {
        models::model_companions(param, path)
    }

    fn run(&self, ctx: &Ctx, mut inputs: Inputs, params: &Params) -> Result<Outputs, NodeError> {
        let p: ZeroshotParams = params::load(params)?;
        let points = refine::points_of(&p.points, p.points_file.as_deref())
            .and_then(|pts| with_class(&pts, p.id))
            .and_then(|pts| refine::parse_clicks(&pts))
            .map_err(NodeError::Invalid)?;
        let supervoxels = match inputs.remove("supervoxels") {
            Some(Value::Labels(s)) => Some(s),
            _ => None,
        };
        let Some(Value::Image(image)) = inputs.get("image") else {
            return Err(NodeError::Invalid("vista3d_zeroshot needs `image`".into()));
        };
        let opts = RefineOptions {
            weights: models::weights_path(p.model.model.as_deref(), &inputs, "vista3d_zeroshot")?,
            network: p.model.network,
            window: p.window,
        };
        let mut labels = refine::segment(ctx, image, None, &points, &opts)?;
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
