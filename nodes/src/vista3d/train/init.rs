//! A fresh network's weights, as PyTorch's and MONAI's module defaults set them: convolutions
//! and linear layers uniform in +-1/sqrt(fan_in) (PyTorch's kaiming_uniform(a=sqrt(5))), their
//! biases the same bound, norm scales 1 and shifts 0, embeddings and SAM's random positional
//! matrix N(0, 1). Each variable draws from its own stream of the seed (keyed by its name),
//! so the result does not depend on the order variables are visited.

use super::rng::Rng;
use crate::vista3d::net::Vista3d;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use tch::{Kind, Tensor};

/// Variables that are buffers in MONAI (not trained): SAM's random Fourier features.
pub fn is_buffer(name: &str) -> bool {
    name.ends_with("positional_encoding_gaussian_matrix")
}

fn is_embedding(name: &str) -> bool {
    let owner = name.trim_end_matches(".weight");
    owner.ends_with("embeddings")
        || owner.ends_with("_embed")
        || owner.ends_with("mask_tokens")
        || owner.contains("point_embeddings.")
}

fn is_norm(name: &str) -> bool {
    let owner = name.rsplit_once('.').map_or(name, |(o, _)| o);
    let last = owner.rsplit('.').next().unwrap_or(owner);
    last.starts_with("norm") || last.ends_with("_norm") || owner.ends_with("norm_final_attn")
}

/// PyTorch's fan-in of a weight: size(1) x receptive field (for transposed convolutions,
/// stored [in, out, k..], that is `out`, as PyTorch computes it too).
fn fan_in(shape: &[i64]) -> i64 {
    shape[1] * shape[2..].iter().product::<i64>()
}

fn stream(name: &str) -> u64 {
    let h = Sha256::digest(name.as_bytes());
    u64::from_le_bytes(h[..8].try_into().expect("8 bytes"))
}

/// Fills every variable of `net` for `seed`.
pub fn initialise(net: &Vista3d, seed: u64) {
    let vars: BTreeMap<String, Tensor> = net.vs.variables().into_iter().collect();
    let _g = tch::no_grad_guard();
    for (name, t) in &vars {
        let shape = t.size();
        let n: i64 = shape.iter().product();
        let mut rng = Rng::new(seed, stream(name));
        let values: Vec<f32> = if is_buffer(name) || is_embedding(name) {
            (0..n).map(|_| rng.normal() as f32).collect()
        } else if is_norm(name) {
            let v = if name.ends_with("weight") { 1.0 } else { 0.0 };
            vec![v; n as usize]
        } else {
            let bound = if shape.len() >= 2 {
                1.0 / (fan_in(&shape) as f64).sqrt()
            } else {
                // A bias: the bound of its layer's weight.
                let w = format!("{}weight", name.trim_end_matches("bias"));
                vars.get(&w)
                    .map(|w| 1.0 / (fan_in(&w.size()) as f64).sqrt())
                    .unwrap_or(0.0)
            };
            (0..n).map(|_| rng.range(-bound, bound) as f32).collect()
        };
        let src = Tensor::from_slice(&values)
            .view(shape.as_slice())
            .to_kind(Kind::Float)
            .to_device(t.device());
        t.shallow_clone().copy_(&src);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vista3d::net::Vista3d;
    use tch::Device;

    /// Training feeds the point head several objects at once (one per present class); each
    /// object's logits must be what it gets alone.
    #[test]
    fn point_head_batch_items_are_independent() {
        let cfg = super::super::config_of(&serde_json::json!("tiny")).unwrap();
        let net = Vista3d::zeros(&cfg, Device::Cpu);
        initialise(&net, 3);
        let f = cfg.encoder_embed_dim;
        let decoded = Tensor::randn([1, f, 16, 16, 16], (Kind::Float, Device::Cpu));
        let coords = Tensor::from_slice(&[2f32, 3., 4., 10., 12., 5., 7., 7., 7., 0., 0., 0.])
            .view([2, 2, 3]);
        let labels = Tensor::from_slice(&[1i64, 0, 1, -1]).view([2, 2]);
        let ids = Tensor::from_slice(&[1i64, 3]).view([2, 1]);
        let both = tch::no_grad(|| {
            net.point_head
                .forward(&decoded, &coords, &labels, Some(&ids))
        });
        for b in 0..2 {
            let one = tch::no_grad(|| {
                net.point_head.forward(
                    &decoded,
                    &coords.narrow(0, b, 1),
                    &labels.narrow(0, b, 1),
                    Some(&ids.narrow(0, b, 1)),
                )
            });
            let d = (both.narrow(0, b, 1) - &one).abs().max().double_value(&[]);
            assert!(d < 1e-4, "object {b}: batched logits differ by {d}");
        }
    }
}
