//! The `vista3d_train` node: its spec, and a run from the connected pairs to a written model.

use super::params::{check_pair_weights, TrainParams};
use super::{checkpoint, checkpoint_dir, config, config_of, data, fit, init, tensor_sha256};
use crate::node::{Compute, Ctx, Inputs, Node, NodeError, NodeSpec, Outputs, PortSpec};
use crate::params::{self, ParamSchema, Params};
use crate::value::{PortType, Value};
use crate::vista3d::{net::Vista3d, weights};
use serde_json::{json, Value as Json};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// `vista3d_train`.
pub struct Vista3dTrain;

/// How many (image, labels) pairs the node takes: `image`/`labels`, then `image_2`/... .
pub const MAX_PAIRS: usize = 4;
const IMAGE_PORTS: [&str; MAX_PAIRS] = ["image", "image_2", "image_3", "image_4"];
const LABEL_PORTS: [&str; MAX_PAIRS] = ["labels", "labels_2", "labels_3", "labels_4"];

impl Node for Vista3dTrain {
    fn spec(&self) -> &NodeSpec {
        static SPEC: OnceLock<NodeSpec> = OnceLock::new();
        SPEC.get_or_init(|| {
            let mut inputs = vec![
                PortSpec::input("image", PortType::Image, "training CT in Hounsfield units"),
                PortSpec::input(
                    "labels",
                    PortType::Labels,
                    "its label map, on the image's grid (ids mapped by `classes`)",
                ),
            ];
            inputs.push(PortSpec::optional_input(
                "init",
                PortType::Model,
                "a model to start from (e.g. another vista3d_train's `model`: training in \
                 stages); instead of the `init` param",
            ));
            for k in 1..MAX_PAIRS {
                inputs.push(PortSpec::optional_input(
                    IMAGE_PORTS[k],
                    PortType::Image,
                    "another training CT",
                ));
                inputs.push(PortSpec::optional_input(
                    LABEL_PORTS[k],
                    PortType::Labels,
                    "its label map",
                ));
            }
            NodeSpec {
                kind: "vista3d_train",
                version: "1",
                summary: "trains or fine-tunes VISTA3D (class head, and point head with \
                          simulated clicks) on labelled CT; writes a model + card",
                inputs,
                exactly_one_input_of: vec![],
                outputs: vec![
                    PortSpec::output(
                        "model",
                        PortType::Model,
                        "the trained model (the file at `path` and its card), for the `model` \
                         input of vista3d_auto, vista3d_refine and vista3d_zeroshot",
                    ),
                    PortSpec::output(
                        "log",
                        PortType::Table,
                        "the loss every 10 steps (step, loss, auto, point, lr, seconds)",
                    ),
                ],
                params: ParamSchema::of::<TrainParams>(),
                compute: Compute::Gpu,
            }
        })
    }

    /// The card written next to the weights: deleting it reruns the training.
    fn companions(&self, param: &str, path: &Path, _params: &Params) -> Vec<PathBuf> {
        match param {
            "path" => vec![crate::vista3d::models::card_path(path)],
            _ => Vec::new(),
        }
    }

    fn run(&self, ctx: &Ctx, inputs: Inputs, params: &Params) -> Result<Outputs, NodeError> {
        let p: TrainParams = params::load(params)?;
        let pairs = pairs(&inputs)?;
        let maps = config::class_maps(&p.classes, pairs.len()).map_err(NodeError::Invalid)?;
        let cfg = config_of(&p.config).map_err(NodeError::Invalid)?;
        check_pair_weights(&p, pairs.len())?;
        let mut cases = Vec::new();
        let mut data_card = Vec::new();
        for (k, ((img, lab), map)) in pairs.iter().zip(&maps).enumerate() {
            let name = format!("pair {} ({}/{})", k + 1, IMAGE_PORTS[k], LABEL_PORTS[k]);
            let case = data::prepare(img, lab, map, &name, ctx)?;
            data_card.push(json!({
                "pair": k + 1,
                "image_sha256": tensor_sha256(img.data()),
                "labels_sha256": tensor_sha256(lab.volume.data()),
                "shape": img.spatial_shape(),
                "spacing_mm": img.geometry().spacing(),
                "classes": map,
            }));
            cases.push(case);
        }
        let init = match (&p.init, inputs.get("init")) {
            (Some(_), Some(_)) => {
                return Err(NodeError::Invalid(
                    "init: give the `init` param or the `init` input, not both".into(),
                ))
            }
            (Some(path), None) => Some(path.clone()),
            (None, Some(Value::Model(m))) => Some(m.path.clone()),
            _ => None,
        };
        let net = match &init {
            Some(path) => weights::load(path, &cfg, ctx.device).map_err(|e| {
                NodeError::Invalid(format!(
                    "init: {e}\n  hint: `config` must be the configuration the weights were \
                     trained with"
                ))
            })?,
            None => {
                let net = Vista3d::zeros(&cfg, ctx.device);
                init::initialise(&net, p.seed as u64);
                net
            }
        };
        let init_sha256 = match &init {
            Some(path) => Some(file_sha256(path)?),
            None => None,
        };
        let identity = identity(&p, init_sha256.as_deref(), &data_card);
        let ckpt = checkpoint::Checkpoints {
            dir: checkpoint_dir(&p.path),
        };
        let run = fit::train(&net, &cases, &p, &identity, &ckpt, ctx)?;
        let mut card = fit::card(&net, &p, &cfg, &cases, data_card, &run, pairs[0].0);
        card["init_sha256"] = json!(init_sha256);
        let model = fit::write_model(&net, &p.path, &card)?;
        ckpt.clear();
        let mut out = Outputs::new();
        out.insert("model".into(), Value::Model(model));
        out.insert("log".into(), Value::Table(run.log_table()));
        Ok(out)
    }
}

fn pairs(
    inputs: &Inputs,
) -> Result<Vec<(&crate::value::Volume, &crate::value::LabelMap)>, NodeError> {
    let mut out = Vec::new();
    for k in 0..MAX_PAIRS {
        match (inputs.get(IMAGE_PORTS[k]), inputs.get(LABEL_PORTS[k])) {
            (Some(Value::Image(i)), Some(Value::Labels(l))) => out.push((i, l)),
            (None, None) => {}
            _ => {
                return Err(NodeError::Invalid(format!(
                    "`{}` and `{}` come together: connect both or neither",
                    IMAGE_PORTS[k], LABEL_PORTS[k]
                )))
            }
        }
    }
    Ok(out)
}

/// Everything that determines the trained weights: the parameters (except how often to
/// checkpoint), the data, the init weights and this code's version.
fn identity(p: &TrainParams, init_sha256: Option<&str>, data: &[Json]) -> String {
    let mut params = serde_json::to_value(p).expect("params serialise");
    let o = params.as_object_mut().expect("object");
    o.remove("checkpoint_every");
    o.remove("path");
    let init = init_sha256.unwrap_or("none");
    let all = json!({"version": 1, "params": params, "data": data, "init": init});
    format!("{:x}", Sha256::digest(all.to_string().as_bytes()))
}

fn file_sha256(path: &std::path::Path) -> Result<String, NodeError> {
    let bytes =
        std::fs::read(path).map_err(|e| NodeError::file(path, format!("cannot read: {e}")))?;
    Ok(format!("{:x}", Sha256::digest(&bytes)))
}
