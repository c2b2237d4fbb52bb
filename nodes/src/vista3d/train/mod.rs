//! `vista3d_train`: trains or fine-tunes a VISTA3D network on labelled CT, both the class head
//! path (automatic segmentation) and, with `click_training`, the point head (clicks), with
//! MONAI's Dice + cross-entropy, and writes a model (safetensors + a JSON card) that
//! `vista3d_auto`, `vista3d_refine` and `vista3d_zeroshot` load.
//!
//! Deterministic for a fixed seed on the CPU: the network starts from `init::initialise`,
//! every random draw of step N comes from `Rng::new(seed, N)`, the optimiser is ours (its
//! moments are checkpointed), so a run killed and resumed from a checkpoint ends with the same
//! weights, bit for bit, as one that never stopped.

mod checkpoint;
mod config;
mod data;
mod fit;
mod init;
mod loss;
mod optim;
mod prompts;
mod rng;

pub use config::config_of;
pub use data::Augment;
pub use optim::Schedule;

use crate::node::Fallback;
use crate::node::{Ctx, Inputs, Node, NodeError, NodeSpec, Outputs, PortSpec};
use crate::params::{self, ParamSpec, ParamType, Params};
use crate::value::{PortType, Value};
use crate::vista3d::{net::Vista3d, weights};
use serde::Deserialize;
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

#[derive(Deserialize, serde::Serialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct TrainParams {
    pub classes: Json,
    pub config: Json,
    pub init: Option<PathBuf>,
    pub patch: [i64; 3],
    pub steps: i64,
    pub lr: f64,
    pub weight_decay: f64,
    pub warmup: i64,
    /// Not serialised when cosine (the default), so older runs keep their identity.
    #[serde(default, skip_serializing_if = "Schedule::is_cosine")]
    pub schedule: Schedule,
    pub ema: f64,
    pub seed: i64,
    pub pair_weights: Option<Vec<f64>>,
    pub augment: Augment,
    pub click_training: bool,
    pub max_foreprompt: i64,
    pub max_backprompt: i64,
    pub max_point: i64,
    pub background_patches: bool,
    pub error_click: f64,
    pub drop_label_prob: f64,
    pub drop_point_prob: f64,
    /// Parts of the network left as they are. Empty ones are not serialised, so the
    /// checkpoint identity of runs that predate the parameter is unchanged.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub freeze: Vec<String>,
    pub checkpoint_every: i64,
    pub path: PathBuf,
}

/// The parts of the network `freeze` can name (the weight names' first component).
pub const PARTS: [&str; 3] = ["image_encoder", "class_head", "point_head"];

fn check_freeze(v: &Json) -> Result<(), String> {
    let parts: Vec<String> = serde_json::from_value(v.clone())
        .map_err(|_| "freeze: a list of part names".to_string())?;
    for p in &parts {
        if !PARTS.contains(&p.as_str()) {
            return Err(format!(
                "freeze: unknown part `{p}`; the parts are {}",
                PARTS.join(", ")
            ));
        }
    }
    if PARTS.iter().all(|p| parts.iter().any(|q| q == p)) {
        return Err("freeze: every part is frozen, so nothing would train".into());
    }
    Ok(())
}

fn check_augment(v: &Json) -> Result<(), String> {
    let a: Augment = serde_json::from_value(v.clone()).map_err(|e| format!("augment: {e}"))?;
    if !(0.0..0.5).contains(&a.scale) || !(0.0..1.0).contains(&a.intensity) {
        return Err("augment: scale in [0, 0.5), intensity in [0, 1)".into());
    }
    if a.flip.iter().any(|&x| x > 2) {
        return Err("augment: flip lists axes 0, 1, 2".into());
    }
    if !(0.0..=1.0).contains(&a.slab) || !(0.0..=1.0).contains(&a.foreground) {
        return Err("augment: slab and foreground are probabilities".into());
    }
    if !(0.0..0.5).contains(&a.contrast) {
        return Err("augment: contrast in [0, 0.5) (1 = 2017 HU)".into());
    }
    Ok(())
}

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
                params: params_spec(),
                fallback: Fallback::Cpu,
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
        let p: TrainParams = params::parse(params)?;
        let pairs = pairs(&inputs)?;
        let maps = config::class_maps(&p.classes, pairs.len()).map_err(NodeError::Invalid)?;
        let cfg = config_of(&p.config).map_err(NodeError::Invalid)?;
        check_numbers(&p, &cfg, pairs.len())?;
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

fn params_spec() -> Vec<ParamSpec> {
    vec![
        ParamSpec::required(
            "classes",
            ParamType::Custom {
                describe: "{dataset id: VISTA3D class name or id}, or a list of them (one per \
                           pair)",
                check: config::check_classes,
            },
            "which label ids of the data to train, as which VISTA3D classes; ids above 132 \
             are zero-shot ids for new structures",
        ),
        ParamSpec::optional(
            "config",
            ParamType::Custom {
                describe: "full, small, demo, tiny or {encoder_embed_dim, blocks_down}",
                check: config::check_config,
            },
            json!("small"),
            "network size; `init` weights must be of this configuration",
        ),
        ParamSpec::optional(
            "init",
            ParamType::InputPath,
            Json::Null,
            "weights to start from (.safetensors; e.g. the official VISTA3D for fine-tuning); \
             none: a fresh network from `seed`",
        ),
        ParamSpec::optional(
            "patch",
            ParamType::Ints { len: Some(3) },
            json!([64, 64, 64]),
            "training patch in voxels, multiples of 2^(levels-1)",
        ),
        ParamSpec::optional("steps", ParamType::Int, json!(1000), "optimiser steps"),
        ParamSpec::optional(
            "lr",
            ParamType::Float,
            json!(1e-3),
            "peak learning rate (AdamW; 1e-4 to fine-tune official weights)",
        ),
        ParamSpec::optional("weight_decay", ParamType::Float, json!(1e-5), "AdamW decay"),
        ParamSpec::optional(
            "warmup",
            ParamType::Int,
            json!(50),
            "steps of linear warm-up to `lr`, then `schedule`",
        ),
        ParamSpec::optional(
            "schedule",
            ParamType::Choice(&["cosine", "constant"]),
            json!("cosine"),
            "the learning rate after warm-up: cosine decay to 5 % of `lr`, or constant",
        ),
        ParamSpec::optional(
            "ema",
            ParamType::Float,
            json!(0.0),
            "decay of a moving average of the weights after each step (e.g. 0.998); the model \
             written is that average; 0: the last weights",
        ),
        ParamSpec::optional("seed", ParamType::Int, json!(0), "seed of all random draws"),
        ParamSpec::optional(
            "pair_weights",
            ParamType::Floats { len: None },
            Json::Null,
            "how often each (image, labels) pair is drawn, one positive weight per pair; \
             none: equally often",
        ),
        ParamSpec::optional(
            "augment",
            ParamType::Custom {
                describe: "{scale, intensity, flip, slab, foreground, centre, contrast}",
                check: check_augment,
            },
            json!({}),
            "augmentation: scale 0.1 (zoom), intensity 0.1, flip [] (axes; off: flips swap \
             left and right), slab 0 (probability of a thin z band), foreground 0.67 \
             (probability of a patch centred on a labelled voxel), centre class (that voxel \
             drawn per class, or `voxel`: every labelled voxel alike), contrast 0 (largest \
             per-class intensity offset, 1 = 2017 HU, as contrast enhancement)",
        ),
        ParamSpec::optional(
            "click_training",
            ParamType::Bool,
            json!(true),
            "also train the point head with simulated clicks (MONAI's sample_prompt_pairs, \
             plus one click from the current error)",
        ),
        ParamSpec::optional(
            "max_foreprompt",
            ParamType::Int,
            json!(4),
            "classes present in a patch trained per step",
        ),
        ParamSpec::optional(
            "max_backprompt",
            ParamType::Int,
            json!(1),
            "absent classes per step (their target is empty)",
        ),
        ParamSpec::optional(
            "max_point",
            ParamType::Int,
            json!(5),
            "most random clicks per object and polarity",
        ),
        ParamSpec::optional(
            "background_patches",
            ParamType::Bool,
            json!(false),
            "also train on patches without any class of their pair, the class head on absent \
             prompts (fewer false positives far from the organs); false: draw another patch, \
             as MONAI",
        ),
        ParamSpec::optional(
            "error_click",
            ParamType::Float,
            json!(0.5),
            "probability of one more click from the class head's current error",
        ),
        ParamSpec::optional(
            "drop_label_prob",
            ParamType::Float,
            json!(0.2),
            "with clicks: share of steps that train the point head only (MONAI's name)",
        ),
        ParamSpec::optional(
            "drop_point_prob",
            ParamType::Float,
            json!(0.2),
            "with clicks: share of the other steps that train the class head only",
        ),
        ParamSpec::optional(
            "freeze",
            ParamType::Custom {
                describe: "a list of image_encoder, class_head, point_head",
                check: check_freeze,
            },
            json!([]),
            "parts of the network not updated (as the VISTA3D bundle's freeze options): e.g. \
             [image_encoder, class_head] trains the point head alone and leaves automatic \
             segmentation exactly as the init weights give it",
        ),
        ParamSpec::optional(
            "checkpoint_every",
            ParamType::Int,
            json!(100),
            "steps between checkpoints (in PATH.ckpt/; a killed run resumes from the last)",
        ),
        ParamSpec::required(
            "path",
            ParamType::OutputPath,
            "the model: weights (.safetensors) and its card next to it (.json)",
        ),
    ]
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

fn check_numbers(
    p: &TrainParams,
    cfg: &crate::vista3d::net::Config,
    n_pairs: usize,
) -> Result<(), NodeError> {
    let f = cfg.shape_factor();
    let bad = |m: String| Err(NodeError::Invalid(m));
    if p.patch.iter().any(|&s| s < f || s % f != 0) {
        return bad(format!(
            "patch {:?}: each size must be a positive multiple of {f} for this configuration",
            p.patch
        ));
    }
    if p.steps < 1 || p.warmup < 0 || p.checkpoint_every < 1 {
        return bad("steps and checkpoint_every must be >= 1, warmup >= 0".into());
    }
    if !(p.lr > 0.0 && p.lr < 1.0) || p.weight_decay < 0.0 {
        return bad(format!("lr {} must be in (0, 1), weight_decay >= 0", p.lr));
    }
    // Checked at load too; again here for callers that run the node directly.
    check_augment(&serde_json::to_value(&p.augment).expect("augment serialises"))
        .map_err(NodeError::Invalid)?;
    check_freeze(&json!(p.freeze)).map_err(NodeError::Invalid)?;
    if !(0.0..1.0).contains(&p.ema) {
        return bad(format!("ema {} must be in [0, 1) (0: off)", p.ema));
    }
    if p.max_foreprompt < 1 || p.max_foreprompt > cfg.max_prompt || p.max_backprompt < 0 {
        return bad(format!(
            "max_foreprompt must be 1..{} (the point head's limit), max_backprompt >= 0",
            cfg.max_prompt
        ));
    }
    let prob = |x: f64| (0.0..=1.0).contains(&x);
    if p.max_point < 1
        || ![p.error_click, p.drop_label_prob, p.drop_point_prob]
            .into_iter()
            .all(prob)
    {
        return bad(
            "max_point must be >= 1; error_click, drop_label_prob and drop_point_prob \
                    are probabilities"
                .into(),
        );
    }
    if let Some(w) = &p.pair_weights {
        if w.len() != n_pairs || w.iter().any(|&x| !(x > 0.0 && x.is_finite())) {
            return bad(format!(
                "pair_weights {w:?}: give one positive weight per (image, labels) pair ({n_pairs} \
                 connected)"
            ));
        }
    }
    if p.path.extension().and_then(|e| e.to_str()) != Some("safetensors") {
        return bad(format!(
            "path {}: the model is written as .safetensors (its card goes next to it as .json)",
            p.path.display()
        ));
    }
    Ok(())
}

/// Where checkpoints of a model go: `PATH.ckpt/`.
pub fn checkpoint_dir(path: &std::path::Path) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(".ckpt");
    PathBuf::from(s)
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

/// sha256 of a tensor's bytes (contiguous, on the CPU).
pub fn tensor_sha256(t: &tch::Tensor) -> String {
    let c = t.to_device(tch::Device::Cpu).contiguous();
    let n = c.numel() * c.kind().elt_size_in_bytes();
    // SAFETY: `c` is a contiguous CPU tensor of `n` bytes that outlives the slice.
    let bytes = unsafe { std::slice::from_raw_parts(c.data_ptr() as *const u8, n) };
    format!("{:x}", Sha256::digest(bytes))
}
