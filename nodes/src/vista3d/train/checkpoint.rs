//! Checkpoints of a training run, so a killed run resumes where it stopped: the weights and
//! the optimiser's moments in `state-STEP.safetensors`, and `state.json` (written last,
//! atomically) naming that file, the step and the run's identity. A checkpoint of another run
//! (other data, parameters or code version) is never resumed.

use crate::io::atomic;
use crate::node::NodeError;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use tch::Tensor;

#[derive(Serialize, Deserialize)]
pub struct State {
    /// The digest of everything that determines the run (see `identity` in mod.rs).
    pub identity: String,
    /// Steps done.
    pub step: i64,
    pub tensors: String,
    /// The log rows so far.
    pub log: Vec<serde_json::Value>,
}

/// What a checkpoint restores.
pub struct Restored {
    pub step: i64,
    pub log: Vec<serde_json::Value>,
    pub weights: BTreeMap<String, Tensor>,
    pub exp_avg: BTreeMap<String, Tensor>,
    pub exp_avg_sq: BTreeMap<String, Tensor>,
    /// The moving average of the weights (empty when the run keeps none).
    pub ema: BTreeMap<String, Tensor>,
}

/// What a checkpoint holds besides the step and the log, by tensor-name prefix.
pub struct Saved<'a> {
    pub weights: &'a BTreeMap<String, Tensor>,
    pub exp_avg: &'a BTreeMap<String, Tensor>,
    pub exp_avg_sq: &'a BTreeMap<String, Tensor>,
    pub ema: &'a BTreeMap<String, Tensor>,
}

pub struct Checkpoints {
    pub dir: PathBuf,
}

impl Checkpoints {
    fn state_path(&self) -> PathBuf {
        self.dir.join("state.json")
    }

    /// The checkpoint of this run, if one is there.
    pub fn load(&self, identity: &str) -> Result<Option<Restored>, NodeError> {
        let Ok(text) = fs::read_to_string(self.state_path()) else {
            return Ok(None);
        };
        let Ok(state) = serde_json::from_str::<State>(&text) else {
            return Ok(None);
        };
        if state.identity != identity {
            return Ok(None);
        }
        let path = self.dir.join(&state.tensors);
        let tensors = Tensor::read_safetensors(&path)
            .map_err(|e| NodeError::file(&path, format!("cannot read the checkpoint: {e}")))?;
        let mut r = Restored {
            step: state.step,
            log: state.log,
            weights: BTreeMap::new(),
            exp_avg: BTreeMap::new(),
            exp_avg_sq: BTreeMap::new(),
            ema: BTreeMap::new(),
        };
        for (k, t) in tensors {
            if let Some(n) = k.strip_prefix("w.") {
                r.weights.insert(n.into(), t);
            } else if let Some(n) = k.strip_prefix("m.") {
                r.exp_avg.insert(n.into(), t);
            } else if let Some(n) = k.strip_prefix("v.") {
                r.exp_avg_sq.insert(n.into(), t);
            } else if let Some(n) = k.strip_prefix("e.") {
                r.ema.insert(n.into(), t);
            }
        }
        Ok(Some(r))
    }

    /// Saves step `step`; the previous checkpoint goes once this one is in place.
    pub fn save(
        &self,
        identity: &str,
        step: i64,
        log: &[serde_json::Value],
        saved: Saved,
    ) -> Result<(), NodeError> {
        fs::create_dir_all(&self.dir).map_err(|e| {
            NodeError::file(
                &self.dir,
                format!("cannot create the checkpoint folder: {e}"),
            )
        })?;
        let old: Option<State> = fs::read_to_string(self.state_path())
            .ok()
            .and_then(|t| serde_json::from_str(&t).ok());
        let name = format!("state-{step}.safetensors");
        let mut all: Vec<(String, Tensor)> = Vec::new();
        for (prefix, map) in [
            ("w.", saved.weights),
            ("m.", saved.exp_avg),
            ("v.", saved.exp_avg_sq),
            ("e.", saved.ema),
        ] {
            for (k, t) in map {
                all.push((format!("{prefix}{k}"), t.detach()));
            }
        }
        write_tensors(&self.dir.join(&name), &all)?;
        let state = State {
            identity: identity.into(),
            step,
            tensors: name.clone(),
            log: log.to_vec(),
        };
        let text = serde_json::to_string(&state).expect("state serialises");
        atomic::write_text(&self.state_path(), &text)?;
        if let Some(old) = old.filter(|o| o.tensors != name) {
            let _ = fs::remove_file(self.dir.join(old.tensors));
        }
        Ok(())
    }

    /// Removes the checkpoints once the model is written.
    pub fn clear(&self) {
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// Writes named tensors as safetensors through a temporary file renamed into place.
pub fn write_tensors(path: &Path, tensors: &[(String, Tensor)]) -> Result<(), NodeError> {
    let dir = atomic::create_parent(path)?;
    let mut builder = tempfile::Builder::new();
    builder.prefix(".vistaflow-").suffix(".safetensors.partial");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        builder.permissions(fs::Permissions::from_mode(0o644));
    }
    let tmp = builder
        .tempfile_in(dir)
        .map_err(|e| atomic::write_error(path, e))?
        .into_temp_path();
    Tensor::write_safetensors(tensors, &tmp)
        .map_err(|e| NodeError::file(path, format!("cannot write: {e}")))?;
    fs::File::open(&tmp)
        .and_then(|f| f.sync_all())
        .map_err(|e| atomic::write_error(path, e))?;
    tmp.persist(path)
        .map_err(|e| NodeError::file(path, format!("cannot rename into place: {}", e.error)))?;
    Ok(())
}
