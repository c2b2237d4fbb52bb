//! The `vista3d_auto` node: automatic segmentation of the classes asked for.
//!
//! The bundle's preprocessing (foreground crop at HU > 0 with a 10-voxel margin, HU window
//! scaling to [0, 1], orientation to RAS), streaming sliding-window inference, its
//! post-processing (argmax over the classes, background where no logit is positive), and the
//! inverse of the preprocessing so that labels land on the input's own grid.

use super::classes::{self, table};
use super::net::Config;
use super::stream::{self, Hooks, Options};
use super::{models, preprocess};
use crate::node::{
    Ctx, Fallback, InputTypes, Inputs, Node, NodeError, NodeSpec, Outputs, PortSpec,
};
use crate::params::{self, ParamSpec, ParamType, Params};
use crate::value::{LabelMap, PortType, Value};
use serde::Deserialize;
use serde_json::{json, Value as Json};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use tch::{Device, Kind};

/// `vista3d_auto`.
pub struct Vista3dAuto;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AutoParams {
    classes: Json,
    model: Option<PathBuf>,
    network: String,
    patch: [i64; 3],
    overlap: f64,
    sw_batch: i64,
    precision: String,
    probabilities: bool,
    skip_empty: bool,
}

/// The `model` param's doc, shared by the nodes that load weights.
pub const MODEL_DOC: &str = "the weights: a .safetensors state dict (MONAI/VISTA3D-HF layout; \
    convert the bundle's model.pt with `vistaflow convert-weights`), e.g. \
    models/vista3d-demo.safetensors; or connect a vista3d_train's `model` output to the `model` \
    input instead";

/// The `network` choices and their doc, shared by the nodes that load weights.
pub const NETWORKS: &[&str] = &["auto", "vista3d132", "small"];
pub const NETWORK_DOC: &str = "the architecture of the weights: auto (from the model card \
    next to the weights, else from the file's tensor shapes), vista3d132 (published) or small \
    (the test configuration)";

const CLASSES_DOC: &str = "`everything` (the bundle's 117 classes; for a model trained by \
    vista3d_train, the classes on its card), or a list of class names \
    (as in the VISTA3D label table, e.g. liver, `left kidney`) or ids; kidney, lung and bone \
    are segmented through their parts as the bundle does";

impl Node for Vista3dAuto {
    fn spec(&self) -> &NodeSpec {
        static SPEC: OnceLock<NodeSpec> = OnceLock::new();
        SPEC.get_or_init(|| NodeSpec {
            kind: "vista3d_auto",
            version: "1",
            summary: "VISTA3D automatic segmentation of CT classes (sliding window, streaming \
                      argmax); output on the input's grid",
            inputs: vec![
                PortSpec::input(
                    "image",
                    PortType::Image,
                    "CT in Hounsfield units, resampled to the model's spacing (1.5 mm for the \
                     official weights)",
                ),
                models::model_input(),
            ],
            exactly_one_input_of: vec![],
            outputs: vec![
                PortSpec::output(
                    "labels",
                    PortType::Labels,
                    "class ids of the VISTA3D label table (0 = background)",
                ),
                PortSpec::output(
                    "probabilities",
                    PortType::Image,
                    "with `probabilities: true`: one channel per class asked for (sigmoid of \
                     the blended logits), in the order of `classes` after expansion",
                ),
            ],
            params: [
                vec![ParamSpec::optional(
                    "classes",
                    ParamType::Custom {
                        describe: "`everything` or a list of class names or ids",
                        check: classes::check_param,
                    },
                    json!("everything"),
                    CLASSES_DOC,
                )],
                models::model_params().to_vec(),
                vec![
                    ParamSpec::optional(
                        "patch",
                        ParamType::Ints { len: Some(3) },
                        json!([128, 128, 128]),
                        "sliding-window size in voxels, each a multiple of 16",
                    ),
                    ParamSpec::optional(
                        "overlap",
                        ParamType::Float,
                        json!(0.3),
                        "window overlap in [0, 1) (bundle: 0.3; research code: 0.625)",
                    ),
                    ParamSpec::optional(
                        "sw_batch",
                        ParamType::Int,
                        json!(1),
                        "windows per forward pass",
                    ),
                    ParamSpec::optional(
                        "precision",
                        ParamType::Choice(&["fp32", "fp16", "bf16"]),
                        json!("fp32"),
                        "network dtype; fp16/bf16 on GPU only (fp32 on the CPU)",
                    ),
                    ParamSpec::optional(
                        "probabilities",
                        ParamType::Bool,
                        json!(false),
                        "also output per-class probabilities (one float channel per class: large \
                         for `everything`)",
                    ),
                    ParamSpec::optional(
                        "skip_empty",
                        ParamType::Bool,
                        json!(true),
                        "skip windows that are all air (HU <= -964) after the crop; false runs \
                         every window as MONAI does",
                    ),
                ],
            ]
            .concat(),
            fallback: Fallback::Cpu,
        })
    }

    fn outputs(&self, params: &Params, _inputs: &InputTypes) -> Vec<PortSpec> {
        let probs = params.get("probabilities").and_then(Json::as_bool) == Some(true);
        self.spec()
            .outputs
            .iter()
            .filter(|p| probs || p.name == "labels")
            .cloned()
            .collect()
    }

    fn companions(&self, param: &str, path: &Path, _params: &Params) -> Vec<PathBuf> {
        models::model_companions(param, path)
    }

    fn run(&self, ctx: &Ctx, inputs: Inputs, params: &Params) -> Result<Outputs, NodeError> {
        let p: AutoParams = params::parse(params)?;
        let Some(Value::Image(img)) = inputs.get("image") else {
            return Err(NodeError::Invalid(
                "vista3d_auto needs a CT image on its `image` input".into(),
            ));
        };
        let weights = models::weights_path(p.model.as_deref(), &inputs, "vista3d_auto")?;
        let card = models::card_of(&weights)?;
        let classes = match &card {
            // A trained model's "everything" is what it was trained for.
            Some(c) if p.classes == json!("everything") => {
                json!(c
                    .classes
                    .keys()
                    .filter_map(|k| k.parse::<u32>().ok())
                    .collect::<Vec<_>>())
            }
            _ => p.classes.clone(),
        };
        let resolved = table().resolve(&classes).map_err(NodeError::Invalid)?;
        for w in &resolved.warnings {
            ctx.warn(w);
        }
        let config = models::network_config(&p.network, &weights)?;
        let opts = options(&p, &config, ctx)?;
        let spacing = card.map_or(table().preprocess.spacing_mm, |c| c.spacing_mm);
        let prepared = preprocess::prepare(img, Some(spacing), ctx)?;
        let ids = resolved.ids;
        let (labels, probs) = match &prepared.image {
            None => (None, None),
            Some(net_image) => {
                ctx.check_cancelled()?;
                let net = models::shared(&weights, &config, ctx.device, opts.kind)?;
                let out = stream::segment(&net, net_image, &ids, &opts, &CtxHooks(ctx))?;
                if out.windows_skipped > 0 {
                    ctx.warn(&format!(
                        "{} of {} windows were all air and skipped",
                        out.windows_skipped,
                        out.windows_run + out.windows_skipped
                    ));
                }
                (Some(out.labels), out.probabilities)
            }
        };
        let id_kind = if ids.iter().all(|&i| i <= 255) {
            Kind::Uint8
        } else {
            Kind::Int16
        };
        let labels = prepared.restore(labels, 0, id_kind)?;
        let mut out = Outputs::new();
        let table = table().class_table(&ids);
        out.insert(
            "labels".into(),
            Value::Labels(LabelMap::new(labels, table).map_err(NodeError::Invalid)?),
        );
        if p.probabilities {
            let probs = prepared.restore(probs, ids.len() as i64, Kind::Float)?;
            out.insert("probabilities".into(), Value::Image(probs));
        }
        Ok(out)
    }
}

fn options(p: &AutoParams, config: &Config, ctx: &Ctx) -> Result<Options, NodeError> {
    let f = config.shape_factor();
    if p.patch.iter().any(|&s| s < f || s % f != 0) {
        return Err(NodeError::Invalid(format!(
            "patch {:?}: each size must be a positive multiple of {f} (the network halves the \
             patch {} times); the default is [128, 128, 128]",
            p.patch,
            config.levels() - 1
        )));
    }
    if !(0.0..1.0).contains(&p.overlap) {
        return Err(NodeError::Invalid(format!(
            "overlap {} must be at least 0 and below 1 (the bundle uses 0.3)",
            p.overlap
        )));
    }
    if p.sw_batch < 1 {
        return Err(NodeError::Invalid(format!(
            "sw_batch {} must be 1 or more",
            p.sw_batch
        )));
    }
    let kind = match (p.precision.as_str(), ctx.device) {
        ("fp32", _) => Kind::Float,
        (other, Device::Cpu) => {
            ctx.warn(&format!(
                "precision {other} needs a GPU; running in fp32 on the CPU"
            ));
            Kind::Float
        }
        ("fp16", _) => Kind::Half,
        _ => Kind::BFloat16,
    };
    Ok(Options {
        patch: p.patch,
        overlap: p.overlap,
        sw_batch: p.sw_batch,
        skip_empty: p.skip_empty,
        probabilities: p.probabilities,
        kind,
    })
}

struct CtxHooks<'a>(&'a Ctx);

impl Hooks for CtxHooks<'_> {
    fn progress(&self, done: u64, total: u64) {
        self.0.progress(done, total, "windows")
    }
    fn warn(&self, msg: &str) {
        self.0.warn(msg)
    }
    fn cancelled(&self) -> bool {
        self.0.cancel.is_cancelled()
    }
}
