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
mod node;
mod optim;
mod params;
mod prompts;
mod rng;

pub use config::config_of;
pub use data::Augment;
pub use node::{Vista3dTrain, MAX_PAIRS};
pub use optim::Schedule;
pub use params::{Part, TrainParams, PARTS};

use sha2::{Digest, Sha256};
use std::path::PathBuf;

/// Where checkpoints of a model go: `PATH.ckpt/`.
pub fn checkpoint_dir(path: &std::path::Path) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(".ckpt");
    PathBuf::from(s)
}

/// sha256 of a tensor's bytes (contiguous, on the CPU).
pub fn tensor_sha256(t: &tch::Tensor) -> String {
    let c = t.to_device(tch::Device::Cpu).contiguous();
    let n = c.numel() * c.kind().elt_size_in_bytes();
    // SAFETY: `c` is a contiguous CPU tensor of `n` bytes that outlives the slice.
    let bytes = unsafe { std::slice::from_raw_parts(c.data_ptr() as *const u8, n) };
    format!("{:x}", Sha256::digest(bytes))
}
