//! `ClassMappingClassify`: a class id's embedding dotted with per-voxel features.

use super::layers::{embedding, is_channels_last, Conv3d, InstanceNorm, Linear};
use super::Config;
use tch::{nn, Kind, Tensor};

/// MONAI's `UnetResBlock` (in `UnetrBasicBlock.layer`), same channels in and out:
/// `lrelu(IN(conv2(lrelu(IN(conv1(x))))) + x)`, norms without affine terms.
#[derive(Debug)]
struct UnetResBlock {
    conv1: Conv3d,
    conv2: Conv3d,
}

impl UnetResBlock {
    fn new(p: nn::Path, c: i64) -> Self {
        let p = &p / "layer";
        UnetResBlock {
            conv1: Conv3d::new(&p / "conv1" / "conv", c, c, 3, 1, false),
            conv2: Conv3d::new(&p / "conv2" / "conv", c, c, 3, 1, false),
        }
    }
    fn forward(&self, x: &Tensor) -> Tensor {
        let norm = InstanceNorm::plain();
        let h = norm.forward(&self.conv1.forward(x)).leaky_relu_();
        let mut h = norm.forward(&self.conv2.forward(&h));
        let _ = h.g_add_(x);
        h.leaky_relu_()
    }
}

/// The class head.
#[derive(Debug)]
pub struct ClassHead {
    post_mapping: Vec<UnetResBlock>,
    class_embeddings: Tensor,
    mlp0: Linear,
    mlp3: Linear,
    n_classes: i64,
}

impl ClassHead {
    pub fn new(p: nn::Path, cfg: &Config) -> Self {
        let c = cfg.encoder_embed_dim;
        let pm = &p / "image_post_mapping";
        ClassHead {
            post_mapping: (0..2).map(|i| UnetResBlock::new(&pm / i, c)).collect(),
            class_embeddings: embedding(&p / "class_embeddings", cfg.n_classes, c),
            mlp0: Linear::new(&p / "mlp" / 0, c, c),
            mlp3: Linear::new(&p / "mlp" / 3, c, c),
            n_classes: cfg.n_classes,
        }
    }

    pub fn n_classes(&self) -> i64 {
        self.n_classes
    }

    /// Per-voxel features [B, C, H, W, D] from the class decoder's output. Logits are linear
    /// in them, which lets sliding-window blending work on C channels instead of N classes.
    pub fn features(&self, decoded: &Tensor) -> Tensor {
        self.post_mapping
            .iter()
            .fold(decoded.shallow_clone(), |x, b| b.forward(&x))
    }

    /// Class embeddings [N, C] for class ids [N] (int64), after the MLP.
    pub fn embed(&self, ids: &Tensor) -> Tensor {
        let e = self.class_embeddings.index_select(0, ids).unsqueeze(1); // [N,1,C]
        let e = self.mlp0.forward(&e);
        // nn.InstanceNorm1d(1) on [N,1,C]: normalises each embedding over its C features.
        let e = InstanceNorm::plain().forward(&e).gelu("none");
        self.mlp3.forward(&e).squeeze_dim(1)
    }

    /// Logits [N, B, ...] = embeddings [N, C] . features [B, C, ...] (any spatial rank).
    pub fn logits(emb: &Tensor, features: &Tensor) -> Tensor {
        let s = features.size();
        let emb = emb.to_kind(features.kind());
        if is_channels_last(features) {
            // [B,V,C] . [C,N] with no copy of the features; the logits come out channels-last.
            let f = features.permute([0, 2, 3, 4, 1]).reshape([s[0], -1, s[1]]);
            let out = f.matmul(&emb.transpose(0, 1)); // [B,V,N]
            return out
                .reshape([s[0], s[2], s[3], s[4], -1])
                .permute([4, 0, 1, 2, 3]);
        }
        let f = features.reshape([s[0], s[1], -1]); // [B,C,V]
        let out = emb.matmul(&f); // [B,N,V]
        let mut shape = vec![s[0], -1];
        shape.extend_from_slice(&s[2..]);
        out.reshape(shape.as_slice()).transpose(0, 1)
    }

    /// MONAI's `class_head(decoded, class_vector)`: logits [N, B, H, W, D].
    pub fn forward(&self, decoded: &Tensor, ids: &Tensor) -> Tensor {
        let ids = ids.reshape([-1]).to_kind(Kind::Int64);
        Self::logits(&self.embed(&ids), &self.features(decoded))
    }
}
