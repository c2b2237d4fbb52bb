//! Loaded networks shared between nodes and runs of one process: loading the full model
//! takes seconds and 870 MB, so two `vista3d_auto` nodes with the same weights share one.

use super::net::{Config, Vista3d};
use super::weights;
use crate::node::NodeError;
use crate::params::{NodeParams, ParamChoice, ParamError};
use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;
use tch::{Device, Kind};

#[derive(Clone, PartialEq)]
struct Key {
    path: PathBuf,
    len: u64,
    modified: Option<SystemTime>,
    config: Config,
    device: Device,
    kind: Kind,
}

/// How many networks stay loaded (the most recently used ones).
const KEEP: usize = 2;

fn cache() -> &'static Mutex<Vec<(Key, Arc<Vista3d>)>> {
    static C: Mutex<Vec<(Key, Arc<Vista3d>)>> = Mutex::new(Vec::new());
    &C
}

/// The network for these weights, configuration, device and dtype, loaded once.
pub fn shared(
    path: &Path,
    config: &Config,
    device: Device,
    kind: Kind,
) -> Result<Arc<Vista3d>, NodeError> {
    let meta = std::fs::metadata(path).ok();
    let key = Key {
        path: path.canonicalize().unwrap_or_else(|_| path.to_path_buf()),
        len: meta.as_ref().map_or(0, |m| m.len()),
        modified: meta.and_then(|m| m.modified().ok()),
        config: config.clone(),
        device,
        kind,
    };
    let mut c = cache().lock().unwrap_or_else(|e| e.into_inner());
    if let Some(i) = c.iter().position(|(k, _)| *k == key) {
        let hit = c.remove(i);
        let net = hit.1.clone();
        c.push(hit);
        return Ok(net);
    }
    let mut net = weights::load(path, config, device).map_err(|e| match e {
        weights::WeightsError::Read { path, msg } => NodeError::File { path, msg },
        other => NodeError::Invalid(other.to_string()),
    })?;
    match kind {
        Kind::Half => net.vs.half(),
        Kind::BFloat16 => net.vs.bfloat16(),
        _ => {}
    }
    let net = Arc::new(net);
    c.push((key, net.clone()));
    if c.len() > KEEP {
        c.remove(0);
    }
    Ok(net)
}

/// What a model card (written by `vista3d_train` next to its weights, NAME.json) tells the
/// nodes that load the weights.
#[derive(Clone, Debug, serde::Deserialize)]
pub struct Card {
    pub config: Config,
    /// VISTA3D id (as text) -> class name: the classes the model was trained for.
    pub classes: std::collections::BTreeMap<String, String>,
    pub spacing_mm: [f64; 3],
}

/// Where the card of `weights` is: next to it, same name, .json.
pub fn card_path(weights: &Path) -> PathBuf {
    weights.with_extension("json")
}

/// The companion files of a node's `model` param: the weights' card, which the node reads
/// too (its classes and spacing), so a changed card must change the node's cache key.
pub fn model_companions(param: &str, weights: &Path) -> Vec<PathBuf> {
    match param {
        "model" => vec![card_path(weights)],
        _ => Vec::new(),
    }
}

/// The card next to `weights` (same name, .json), when there is one.
pub fn card_of(weights: &Path) -> Result<Option<Card>, NodeError> {
    let path = card_path(weights);
    let Ok(text) = std::fs::read_to_string(&path) else {
        return Ok(None);
    };
    let json: serde_json::Value = serde_json::from_str(&text)
        .map_err(|e| NodeError::file(&path, format!("model card is not valid JSON: {e}")))?;
    if !json["format"]
        .as_str()
        .is_some_and(|f| f.starts_with("vistaflow.vista3d.model/"))
    {
        return Ok(None);
    }
    let card: Card = serde_json::from_value(json)
        .map_err(|e| NodeError::file(&path, format!("model card: {e}")))?;
    card.config
        .check()
        .map_err(|e| NodeError::file(&path, format!("model card: config: {e}")))?;
    Ok(Some(card))
}

/// The `model` and `network` params of the nodes that load weights.
#[derive(Deserialize, NodeParams, Clone)]
pub struct ModelParams {
    /// the weights: a .safetensors state dict (MONAI/VISTA3D-HF layout; convert the bundle's
    /// model.pt with `vistaflow convert-weights`), e.g. models/vista3d-demo.safetensors; or
    /// connect a vista3d_train's `model` output to the `model` input instead
    #[param(input_path)]
    pub model: Option<PathBuf>,
    /// the architecture of the weights: auto (from the model card next to the weights, else
    /// from the file's tensor shapes), vista3d132 (published) or small (the test
    /// configuration)
    #[param(default = Network::Auto)]
    pub network: Network,
}

/// Which architecture the weights are.
#[derive(ParamChoice, Clone, Copy, PartialEq, Debug)]
pub enum Network {
    Auto,
    Vista3d132,
    Small,
}

impl ModelParams {
    /// `patch` against the network, at load: when the architecture is known before the run
    /// (named, or read off the weights' card or header); else the run checks it.
    pub fn check_patch(&self, param: &str, patch: &[i64; 3]) -> Result<(), ParamError> {
        let config = match (self.network, &self.model) {
            (Network::Auto, Some(path)) if path.is_file() => {
                network_config(Network::Auto, path).ok()
            }
            (Network::Auto, _) => None,
            (named, _) => network_config(named, Path::new("")).ok(),
        };
        match config {
            Some(c) => check_patch(patch, &c).map_err(|e| ParamError::at(param, e)),
            None => Ok(()),
        }
    }
}

/// Each patch size must be a positive multiple of what the network halves it by.
pub fn check_patch(patch: &[i64; 3], config: &Config) -> Result<(), String> {
    let f = config.shape_factor();
    if patch.iter().any(|&s| s < f || s % f != 0) {
        return Err(format!(
            "patch {patch:?}: each size must be a positive multiple of {f} (the network halves \
             the patch {} times)",
            config.levels() - 1
        ));
    }
    Ok(())
}

/// The network configuration for the `network` param: `vista3d132`, `small`, or `auto` (the
/// weights' card, else read off the tensor names and shapes in the file's header).
pub fn network_config(network: Network, weights: &Path) -> Result<Config, NodeError> {
    match network {
        Network::Vista3d132 => Ok(Config::vista3d132()),
        Network::Small => Ok(Config::small()),
        Network::Auto => {
            if let Some(card) = card_of(weights)? {
                return Ok(card.config);
            }
            let shapes = header_shapes(weights)?;
            let config = super::weights::infer_config(&shapes).ok_or_else(|| {
                NodeError::file(
                    weights,
                    "this file does not hold a VISTA3D state dict (no \
                     image_encoder.encoder.conv_init.weight)",
                )
            })?;
            config.check().map_err(|e| {
                NodeError::file(
                    weights,
                    format!("the tensor shapes are no VISTA3D network: {e}"),
                )
            })?;
            Ok(config)
        }
    }
}

/// Tensor shapes from a safetensors header (8-byte length, then JSON), without reading the
/// tensors.
fn header_shapes(path: &Path) -> Result<std::collections::BTreeMap<String, Vec<i64>>, NodeError> {
    use std::io::Read;
    let err = |m: String| NodeError::file(path, m);
    let mut f = std::fs::File::open(path).map_err(|e| {
        err(format!(
            "cannot read the weights: {e}; give a .safetensors file (see `vistaflow \
             convert-weights`)"
        ))
    })?;
    let mut len = [0u8; 8];
    f.read_exact(&mut len)
        .map_err(|e| err(format!("not a safetensors file ({e})")))?;
    let n = u64::from_le_bytes(len);
    if n > 100 << 20 {
        return Err(err(
            "not a safetensors file (header length out of range)".into()
        ));
    }
    let mut head = vec![0u8; n as usize];
    f.read_exact(&mut head)
        .map_err(|e| err(format!("not a safetensors file ({e})")))?;
    let json: serde_json::Value =
        serde_json::from_slice(&head).map_err(|e| err(format!("not a safetensors file ({e})")))?;
    let mut out = std::collections::BTreeMap::new();
    for (k, v) in json.as_object().into_iter().flatten() {
        if let Some(shape) = v["shape"].as_array() {
            out.insert(k.clone(), shape.iter().filter_map(|x| x.as_i64()).collect());
        }
    }
    Ok(out)
}

/// The optional `model` input of the nodes that load weights.
pub fn model_input() -> crate::node::PortSpec {
    crate::node::PortSpec::optional_input(
        "model",
        crate::value::PortType::Model,
        "a model from vista3d_train (instead of the `model` param)",
    )
}

/// The weights to load: the `model` input (a vista3d_train output) or the `model` param,
/// exactly one of them.
pub fn weights_path(
    param: Option<&Path>,
    inputs: &crate::node::Inputs,
    kind: &str,
) -> Result<PathBuf, NodeError> {
    match (param, inputs.get("model")) {
        (Some(_), Some(_)) => Err(NodeError::Invalid(format!(
            "{kind}: weights come from the `model` param or the `model` input, not both"
        ))),
        (Some(p), None) => Ok(p.to_path_buf()),
        (None, Some(crate::value::Value::Model(m))) => Ok(m.path.clone()),
        _ => Err(NodeError::Invalid(format!(
            "{kind} needs weights: `model: vista3d.safetensors` (the official VISTA3D \
             converted by `vistaflow convert-weights`, or models/vista3d-demo.safetensors), \
             or a vista3d_train node's `model` output on the `model` input"
        ))),
    }
}

#[cfg(test)]
mod tests {
    //! Weights and cards are outside input: shapes and configurations no VISTA3D network has
    //! are refused with the file named, before a network is allocated (fuzzing findings).
    use super::*;
    use tch::Tensor;

    fn weights(dir: &Path, tensors: &[(&str, &[i64])]) -> PathBuf {
        let path = dir.join("w.safetensors");
        let named: Vec<(&str, Tensor)> = tensors
            .iter()
            .map(|(k, s)| (*k, Tensor::zeros(*s, (Kind::Float, Device::Cpu))))
            .collect();
        Tensor::write_safetensors(&named, &path).unwrap();
        path
    }

    fn card(weights: &Path, config: serde_json::Value) {
        let card = serde_json::json!({"format": "vistaflow.vista3d.model/1", "config": config,
            "classes": {"1": "liver"}, "spacing_mm": [1.5, 1.5, 1.5]});
        std::fs::write(card_path(weights), card.to_string()).unwrap();
    }

    const INIT: &str = "image_encoder.encoder.conv_init.weight";

    #[test]
    fn a_header_without_levels_or_with_a_flat_first_conv_is_no_network() {
        let dir = tempfile::tempdir().unwrap();
        // conv_init but no encoder level: was an index underflow building the decoder
        let w = weights(dir.path(), &[(INIT, &[16, 1, 3, 3, 3])]);
        let e = network_config(Network::Auto, &w).unwrap_err().to_string();
        assert!(
            e.contains("w.safetensors") && e.contains("levels (length of blocks_down) is 0"),
            "{e}"
        );
        // a one-dimensional conv_init: was an index out of bounds reading its shape
        let w = weights(dir.path(), &[(INIT, &[16])]);
        let e = network_config(Network::Auto, &w).unwrap_err().to_string();
        assert!(e.contains("does not hold a VISTA3D state dict"), "{e}");
    }

    #[test]
    fn a_card_naming_an_impossible_network_is_refused_with_the_card_named() {
        let dir = tempfile::tempdir().unwrap();
        let w = weights(dir.path(), &[(INIT, &[16, 1, 3, 3, 3])]);
        card(
            &w,
            serde_json::json!({"encoder_embed_dim": 512, "blocks_down": [1, 1, 1, 1, 1, 1, 1, 1]}),
        );
        let e = network_config(Network::Auto, &w).unwrap_err().to_string();
        assert!(
            e.contains("w.json") && e.contains("filters of the deepest level is 65536"),
            "{e}"
        );
        card(
            &w,
            serde_json::json!({"encoder_embed_dim": 48, "blocks_down": [1, 2], "num_heads": 5}),
        );
        let e = network_config(Network::Auto, &w).unwrap_err().to_string();
        assert!(
            e.contains("num_heads 5 does not divide encoder_embed_dim 48"),
            "{e}"
        );
    }

    #[test]
    fn a_card_naming_a_network_larger_than_the_file_is_refused_before_allocating_it() {
        let dir = tempfile::tempdir().unwrap();
        let w = weights(dir.path(), &[(INIT, &[256, 1, 3, 3, 3])]);
        // 256 filters, 4 levels: 1.2e9 encoder values (4.8 GB) would be allocated for a
        // file of 7 kB
        card(
            &w,
            serde_json::json!({"encoder_embed_dim": 256, "blocks_down": [4, 4, 4, 4]}),
        );
        let config = network_config(Network::Auto, &w).unwrap();
        assert_eq!(config.min_parameters(), 1_203_240_960);
        let e = match weights::load(&w, &config, Device::Cpu) {
            Err(e) => e.to_string(),
            Ok(_) => panic!("loaded a network the file cannot hold"),
        };
        assert!(
            e.contains("the file holds 6912 values; this network has at least 1203240960"),
            "{e}"
        );
    }
}
