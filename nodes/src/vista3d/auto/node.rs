//! The `vista3d_auto` node: its params, spec and run.

use crate::node::{Compute, Ctx, InputTypes, Inputs, Node, NodeError, NodeSpec, Outputs, PortSpec};
use crate::params::{self, NodeParams, ParamChoice, ParamError, ParamSchema, ParamType, Params};
use crate::value::{LabelMap, PortType, Value};
use crate::vista3d::classes::{self, table};
use crate::vista3d::models::{self, ModelParams};
use crate::vista3d::net::Config;
use crate::vista3d::preprocess;
use crate::vista3d::stream::{self, Hooks, Options};
use serde::Deserialize;
use serde_json::{json, Value as Json};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use tch::{Device, Kind};

/// `vista3d_auto`.
pub struct Vista3dAuto;

#[derive(Deserialize, NodeParams)]
#[params(check = AutoParams::check_values)]
struct AutoParams {
    /// `everything` (the bundle's 117 classes; for a model trained by vista3d_train, the
    /// classes on its card), or a list of class names (as in the VISTA3D label table, e.g.
    /// liver, `left kidney`) or ids; kidney, lung and bone are segmented through their parts
    /// as the bundle does
    #[param(default = json!("everything"), ty = ParamType::Custom {
        describe: "`everything` or a list of class names or ids",
        check: classes::check_param,
    })]
    classes: Json,
    #[serde(flatten)]
    model: ModelParams,
    /// sliding-window size in voxels, each a multiple of 16
    #[param(default = [128, 128, 128], positive)]
    patch: [i64; 3],
    /// window overlap in [0, 1) (bundle: 0.3; research code: 0.625)
    #[param(default = 0.3)]
    overlap: f64,
    /// windows per forward pass
    #[param(default = 1, min = 1)]
    sw_batch: i64,
    /// network dtype; fp16/bf16 on GPU only (fp32 on the CPU)
    #[param(default = Precision::Fp32)]
    precision: Precision,
    /// also output per-class probabilities (one float channel per class: large for
    /// `everything`)
    #[param(default = false)]
    probabilities: bool,
    /// skip windows that are all air (HU <= -964) after the crop; false runs every window as
    /// MONAI does
    #[param(default = true)]
    skip_empty: bool,
}

/// The network's dtype.
#[derive(ParamChoice, Clone, Copy, PartialEq, Debug)]
enum Precision {
    Fp32,
    Fp16,
    Bf16,
}

impl AutoParams {
    fn check_values(&self) -> Result<(), ParamError> {
        if !(0.0..1.0).contains(&self.overlap) {
            return Err(ParamError::at(
                "overlap",
                format!(
                    "overlap {} must be at least 0 and below 1 (the bundle uses 0.3)",
                    self.overlap
                ),
            ));
        }
        self.model.check_patch("patch", &self.patch)
    }
}

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
            params: ParamSchema::of::<AutoParams>(),
            compute: Compute::Gpu,
        })
    }

    fn outputs(&self, params: &Params, _inputs: &InputTypes) -> Vec<PortSpec> {
        let probs = params::read::<AutoParams>(params).is_ok_and(|p| p.probabilities);
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
        let p: AutoParams = params::load(params)?;
        let Some(Value::Image(img)) = inputs.get("image") else {
            return Err(NodeError::Invalid(
                "vista3d_auto needs a CT image on its `image` input".into(),
            ));
        };
        let weights = models::weights_path(p.model.model.as_deref(), &inputs, "vista3d_auto")?;
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
        let config = models::network_config(p.model.network, &weights)?;
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
    // Again here: with `network: auto` and weights from an input, only now is it known.
    models::check_patch(&p.patch, config).map_err(NodeError::Invalid)?;
    let kind = match (p.precision, ctx.device) {
        (Precision::Fp32, _) => Kind::Float,
        (other, Device::Cpu) => {
            ctx.warn(&format!(
                "precision {other} needs a GPU; running in fp32 on the CPU"
            ));
            Kind::Float
        }
        (Precision::Fp16, _) => Kind::Half,
        (Precision::Bf16, _) => Kind::BFloat16,
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
