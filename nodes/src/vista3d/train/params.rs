//! `vista3d_train`'s params: one typed struct, checked at load.

use super::config::{self, config_of};
use super::data::Augment;
use super::optim::Schedule;
use crate::node::NodeError;
use crate::params::{NodeParams, ParamError, ParamType};
use serde::Deserialize;
use serde_json::{json, Value as Json};
use std::path::PathBuf;

/// The params of `vista3d_train`; serialised (less `checkpoint_every` and `path`) into the
/// identity that a checkpoint must match to be resumed.
#[derive(Deserialize, serde::Serialize, Clone, NodeParams)]
#[serde(deny_unknown_fields)]
#[params(check = check_values)]
pub struct TrainParams {
    /// which label ids of the data to train, as which VISTA3D classes; ids above 132 are
    /// zero-shot ids for new structures
    #[param(ty = ParamType::Custom {
        describe: "{dataset id: VISTA3D class name or id}, or a list of them (one per pair)",
        check: config::check_classes,
    })]
    pub classes: Json,
    /// network size; `init` weights must be of this configuration
    #[param(default = json!("small"), ty = ParamType::Custom {
        describe: "full, small, demo, tiny or {encoder_embed_dim, blocks_down}",
        check: config::check_config,
    })]
    pub config: Json,
    /// weights to start from (.safetensors; e.g. the official VISTA3D for fine-tuning); none:
    /// a fresh network from `seed`
    #[param(input_path)]
    pub init: Option<PathBuf>,
    /// training patch in voxels, multiples of 2^(levels-1)
    #[param(default = [64, 64, 64], positive)]
    pub patch: [i64; 3],
    /// optimiser steps
    #[param(default = 1000, min = 1)]
    pub steps: i64,
    /// peak learning rate (AdamW; 1e-4 to fine-tune official weights)
    #[param(default = 1e-3)]
    pub lr: f64,
    /// AdamW decay
    #[param(default = 1e-5, min = 0)]
    pub weight_decay: f64,
    /// steps of linear warm-up to `lr`, then `schedule`
    #[param(default = 50, min = 0)]
    pub warmup: i64,
    /// the learning rate after warm-up: cosine decay to 5 % of `lr`, or constant
    // Not serialised when cosine (the default), so older runs keep their identity.
    #[serde(default, skip_serializing_if = "Schedule::is_cosine")]
    #[param(default = Schedule::Cosine)]
    pub schedule: Schedule,
    /// decay of a moving average of the weights after each step (e.g. 0.998); the model
    /// written is that average; 0: the last weights
    #[param(default = 0.0)]
    pub ema: f64,
    /// seed of all random draws
    #[param(default = 0)]
    pub seed: i64,
    /// how often each (image, labels) pair is drawn, one positive weight per pair; none:
    /// equally often
    #[param(positive)]
    pub pair_weights: Option<Vec<f64>>,
    /// augmentation: scale 0.1 (zoom), intensity 0.1, flip [] (axes; off: flips swap left and
    /// right), slab 0 (probability of a thin z band), foreground 0.67 (probability of a patch
    /// centred on a labelled voxel), centre class (that voxel drawn per class, or `voxel`:
    /// every labelled voxel alike), contrast 0 (largest per-class intensity offset, 1 = 2017
    /// HU, as contrast enhancement)
    #[param(default_json = json!({}), ty = ParamType::Custom {
        describe: "{scale, intensity, flip, slab, foreground, centre, contrast}",
        check: check_augment,
    })]
    pub augment: Augment,
    /// also train the point head with simulated clicks (MONAI's sample_prompt_pairs, plus one
    /// click from the current error)
    #[param(default = true)]
    pub click_training: bool,
    /// classes present in a patch trained per step
    #[param(default = 4, min = 1)]
    pub max_foreprompt: i64,
    /// absent classes per step (their target is empty)
    #[param(default = 1, min = 0)]
    pub max_backprompt: i64,
    /// most random clicks per object and polarity
    #[param(default = 5, min = 1)]
    pub max_point: i64,
    /// also train on patches without any class of their pair, the class head on absent
    /// prompts (fewer false positives far from the organs); false: draw another patch, as
    /// MONAI
    #[param(default = false)]
    pub background_patches: bool,
    /// probability of one more click from the class head's current error
    #[param(default = 0.5, min = 0, max = 1)]
    pub error_click: f64,
    /// with clicks: share of steps that train the point head only (MONAI's name)
    #[param(default = 0.2, min = 0, max = 1)]
    pub drop_label_prob: f64,
    /// with clicks: share of the other steps that train the class head only
    #[param(default = 0.2, min = 0, max = 1)]
    pub drop_point_prob: f64,
    /// parts of the network not updated (as the VISTA3D bundle's freeze options): e.g.
    /// [image_encoder, class_head] trains the point head alone and leaves automatic
    /// segmentation exactly as the init weights give it
    // Empty ones are not serialised, so the checkpoint identity of runs that predate the
    // parameter is unchanged.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[param(default = Vec::<Part>::new(), ty = ParamType::Custom {
        describe: "a list of image_encoder, class_head, point_head",
        check: check_freeze,
    })]
    pub freeze: Vec<Part>,
    /// steps between checkpoints (in PATH.ckpt/; a killed run resumes from the last)
    #[param(default = 100, min = 1)]
    pub checkpoint_every: i64,
    /// the model: weights (.safetensors) and its card next to it (.json)
    #[param(output_path)]
    pub path: PathBuf,
}

/// The parts of the network `freeze` can name (the weight names' first component).
#[derive(crate::params::ParamChoice, Clone, Copy, PartialEq, Eq, Debug)]
pub enum Part {
    ImageEncoder,
    ClassHead,
    PointHead,
}

/// Their names, as in the weights.
pub const PARTS: &[&str] = Part::CHOICES;

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

/// The checks that bounds cannot express, at load.
fn check_values(p: &TrainParams) -> Result<(), ParamError> {
    let cfg = config_of(&p.config).map_err(|e| ParamError::at("config", e))?;
    crate::vista3d::models::check_patch(&p.patch, &cfg).map_err(|e| ParamError::at("patch", e))?;
    if !(p.lr > 0.0 && p.lr < 1.0) {
        return Err(ParamError::at(
            "lr",
            format!("lr {} must be in (0, 1)", p.lr),
        ));
    }
    if !(0.0..1.0).contains(&p.ema) {
        return Err(ParamError::at(
            "ema",
            format!("ema {} must be in [0, 1) (0: off)", p.ema),
        ));
    }
    if p.max_foreprompt > cfg.max_prompt {
        return Err(ParamError::at(
            "max_foreprompt",
            format!(
                "max_foreprompt must be 1..{} (the point head's limit)",
                cfg.max_prompt
            ),
        ));
    }
    if p.path.extension().and_then(|e| e.to_str()) != Some("safetensors") {
        return Err(ParamError::at(
            "path",
            format!(
                "path {}: the model is written as .safetensors (its card goes next to it as \
                 .json)",
                p.path.display()
            ),
        ));
    }
    Ok(())
}

/// `pair_weights` against the pairs connected (known only when the node runs).
pub(super) fn check_pair_weights(p: &TrainParams, n_pairs: usize) -> Result<(), NodeError> {
    if let Some(w) = &p.pair_weights {
        if w.len() != n_pairs {
            return Err(NodeError::Invalid(format!(
                "pair_weights {w:?}: give one positive weight per (image, labels) pair ({n_pairs} \
                 connected)"
            )));
        }
    }
    Ok(())
}
