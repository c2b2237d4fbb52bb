//! Loaded networks shared between nodes and runs of one process: loading the full model
//! takes seconds and 870 MB, so two `vista3d_auto` nodes with the same weights share one.

use super::net::{Config, Vista3d};
use super::weights;
use crate::node::NodeError;
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
