//! The `vista3d_refine` node: its params, spec, and the call into [`segment`].

use super::{check_points, parse_clicks, points_of, segment, RefineOptions, WindowParams};
use crate::node::{Compute, Ctx, Inputs, Node, NodeError, NodeSpec, Outputs, PortSpec};
use crate::params::{self, NodeParams, ParamError, ParamSchema, ParamType, Params};
use crate::value::{PortType, Value};
use crate::vista3d::models::{self, ModelParams};
use serde::Deserialize;
use serde_json::Value as Json;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// `vista3d_refine`.
pub struct Vista3dRefine;

#[derive(Deserialize, NodeParams)]
#[params(check = RefineParams::check_values)]
struct RefineParams {
    #[serde(flatten)]
    model: ModelParams,
    /// the clicks; `class` is a VISTA3D class name or id (ids above 132 are new, zero-shot
    /// structures and need a positive click); one network call per class, classes in order
    /// of first appearance
    #[param(default = Json::Null, ty = ParamType::Custom {
        describe: "a list of clicks {voxel: [i,j,k] | lps_mm: [x,y,z] | ras_mm: [x,y,z], \
                   label: positive|negative, class: NAME|ID}",
        check: check_points,
    })]
    points: Json,
    /// the clicks from a file instead: .json (the `points` list) or .csv (columns space, x, y,
    /// z, label, class; space is voxel, lps_mm or ras_mm)
    #[param(input_path)]
    points_file: Option<PathBuf>,
    #[serde(flatten)]
    window: WindowParams,
}

impl RefineParams {
    fn check_values(&self) -> Result<(), ParamError> {
        if !self.points.is_null() && self.points_file.is_some() {
            return Err(ParamError::at(
                "points_file",
                "give the clicks as `points` or `points_file`, not both",
            ));
        }
        self.model.check_patch("patch", &self.window.patch)
    }
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
            params: ParamSchema::of::<RefineParams>(),
            compute: Compute::Gpu,
        })
    }

    fn companions(&self, param: &str, path: &Path, _params: &Params) -> Vec<PathBuf> {
        models::model_companions(param, path)
    }

    fn run(&self, ctx: &Ctx, inputs: Inputs, params: &Params) -> Result<Outputs, NodeError> {
        let p: RefineParams = params::load(params)?;
        let Some(Value::Image(img)) = inputs.get("image") else {
            return Err(NodeError::Invalid(
                "vista3d_refine needs a CT image on its `image` input".into(),
            ));
        };
        let points = points_of(&p.points, p.points_file.as_deref()).map_err(NodeError::Invalid)?;
        let clicks = parse_clicks(&points).map_err(NodeError::Invalid)?;
        let prior = match inputs.get("labels") {
            None => None,
            Some(Value::Labels(l)) => Some(l),
            Some(_) => {
                return Err(NodeError::Invalid(
                    "vista3d_refine's `labels` input takes a label map".into(),
                ))
            }
        };
        let opts = RefineOptions {
            weights: models::weights_path(p.model.model.as_deref(), &inputs, "vista3d_refine")?,
            network: p.model.network,
            window: p.window,
        };
        let labels = segment(ctx, img, prior, &clicks, &opts)?;
        Ok(Outputs::from([(
            "labels".to_string(),
            Value::Labels(labels),
        )]))
    }
}
