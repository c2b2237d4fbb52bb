//! `PointMappingSAM`: the interactive head. Clicks become tokens (random-Fourier position
//! encoding + label embeddings), a two-way transformer attends between them and
//! half-resolution image tokens, and the mask token's MLP output is dotted with upscaled
//! features to give one logit map per object.

use super::layers::{embedding, var, Conv3d, Deconv3d, InstanceNorm, Linear};
use super::transformer::TwoWayTransformer;
use super::Config;
use std::f64::consts::PI;
use tch::{nn, Kind, Tensor};

/// `PositionEmbeddingRandom`: [sin, cos](2 pi (2c - 1) G) for coordinates c in [0, 1]^3.
#[derive(Debug)]
struct PositionEmbedding {
    gaussian: Tensor, // [3, C/2]
}

impl PositionEmbedding {
    fn encode(&self, coords01: &Tensor) -> Tensor {
        let c = (coords01 * 2.0 - 1.0).matmul(&self.gaussian) * (2.0 * PI);
        Tensor::cat(&[c.sin(), c.cos()], -1)
    }

    /// Encoding of every voxel centre of a grid [h, w, d] -> [C, h, w, d].
    fn grid(&self, size: [i64; 3]) -> Tensor {
        let dev = self.gaussian.device();
        let axis = |n: i64| (Tensor::arange(n, (Kind::Float, dev)) + 0.5) / n as f64;
        let [h, w, d] = size;
        let x = axis(h).view([h, 1, 1]).expand([h, w, d], false);
        let y = axis(w).view([1, w, 1]).expand([h, w, d], false);
        let z = axis(d).view([1, 1, d]).expand([h, w, d], false);
        self.encode(&Tensor::stack(&[x, y, z], -1))
            .permute([3, 0, 1, 2])
    }

    /// Encoding of points in voxel units of a grid of `size` -> [B, N, C].
    fn points(&self, coords: &Tensor, size: [i64; 3]) -> Tensor {
        let scale = Tensor::from_slice(&[size[0] as f32, size[1] as f32, size[2] as f32])
            .to_device(coords.device());
        self.encode(&(coords.to_kind(Kind::Float) / scale))
    }
}

/// The 3-layer MLP (`output_hypernetworks_mlps`), ReLU between layers.
#[derive(Debug)]
struct Mlp {
    layers: Vec<Linear>,
}

impl Mlp {
    fn forward(&self, x: &Tensor) -> Tensor {
        let last = self.layers.len() - 1;
        let mut x = x.shallow_clone();
        for (i, l) in self.layers.iter().enumerate() {
            x = l.forward(&x);
            if i < last {
                x = x.relu_();
            }
        }
        x
    }
}

/// The point head.
#[derive(Debug)]
pub struct PointHead {
    fd_conv0: Conv3d,
    fd_norm1: InstanceNorm,
    fd_conv3: Conv3d,
    fd_norm4: InstanceNorm,
    transformer: TwoWayTransformer,
    pe: PositionEmbedding,
    point_embeddings: [Tensor; 2],
    not_a_point_embed: Tensor,
    special_class_embed: Tensor,
    mask_tokens: Tensor,
    up_deconv: Deconv3d,
    up_norm: InstanceNorm,
    up_conv: Conv3d,
    hyper_mlp: Mlp,
    zeroshot_embed: Tensor,
    supported_embed: Tensor,
    last_supported: i64,
    max_prompt: i64,
}

impl PointHead {
    pub fn new(p: nn::Path, cfg: &Config) -> Self {
        let c = cfg.encoder_embed_dim;
        let fd = &p / "feat_downsample";
        let up = &p / "output_upscaling";
        let emb = |name: &str| embedding(&p / name, 1, c);
        // Unused by forward but part of the published state dict: created so loading checks
        // every key.
        let _mask_downsample = Conv3d::new(&p / "mask_downsample", 2, 2, 3, 2, true);
        let _class_embeddings = embedding(&p / "class_embeddings", cfg.n_classes, c);
        let hp = &p / "output_hypernetworks_mlps" / "layers";
        PointHead {
            fd_conv0: Conv3d::new(&fd / 0, c, c, 3, 2, true),
            fd_norm1: InstanceNorm::plain(),
            fd_conv3: Conv3d::new(&fd / 3, c, c, 3, 1, true),
            fd_norm4: InstanceNorm::plain(),
            transformer: TwoWayTransformer::new(
                &p / "transformer",
                cfg.depth,
                c,
                cfg.num_heads,
                cfg.mlp_dim,
            ),
            pe: PositionEmbedding {
                gaussian: var(
                    &(&p / "pe_layer"),
                    "positional_encoding_gaussian_matrix",
                    &[3, c / 2],
                ),
            },
            point_embeddings: [
                embedding(&p / "point_embeddings" / 0, 1, c),
                embedding(&p / "point_embeddings" / 1, 1, c),
            ],
            not_a_point_embed: emb("not_a_point_embed"),
            special_class_embed: emb("special_class_embed"),
            mask_tokens: emb("mask_tokens"),
            up_deconv: Deconv3d::new(&up / 0, c, c, true),
            up_norm: InstanceNorm::plain(),
            up_conv: Conv3d::new(&up / 3, c, c, 3, 1, true),
            hyper_mlp: Mlp {
                layers: (0..3).map(|i| Linear::new(&hp / i, c, c)).collect(),
            },
            zeroshot_embed: emb("zeroshot_embed"),
            supported_embed: emb("supported_embed"),
            last_supported: cfg.last_supported,
            max_prompt: cfg.max_prompt,
        }
    }

    /// Tokens [B, N, C] for clicks `coords` [B, N, 3] (voxels of the full-resolution patch
    /// `size`) with `labels` [B, N]: -1 padding, 0/1 negative/positive, 2/3 the same for
    /// special classes.
    fn point_tokens(&self, coords: &Tensor, labels: &Tensor, size: [i64; 3]) -> Tensor {
        let pe = self.pe.points(&(coords.to_kind(Kind::Float) + 0.5), size);
        let is = |v: i64| labels.eq(v).unsqueeze(-1).to_kind(Kind::Float);
        let pad = is(-1);
        let pe = pe * (1.0 - &pad) + &pad * &self.not_a_point_embed;
        let [neg, pos] = &self.point_embeddings;
        let special_neg = neg + &self.special_class_embed;
        let special_pos = pos + &self.special_class_embed;
        pe + is(0) * neg + is(1) * pos + is(2) * special_neg + is(3) * special_pos
    }

    /// Point logits [B, 1, H, W, D] from the point decoder's output `decoded` [1, C, H, W, D].
    /// `class_ids` [B] (optional) picks the zero-shot token for ids above the last supported.
    pub fn forward(
        &self,
        decoded: &Tensor,
        coords: &Tensor,
        labels: &Tensor,
        class_ids: Option<&Tensor>,
    ) -> Tensor {
        let s = decoded.size();
        let low = self.downsample(decoded);
        self.forward_low(&low, [s[2], s[3], s[4]], coords, labels, class_ids)
    }

    /// `feat_downsample`: the half-resolution image tokens [1, C, H/2, W/2, D/2] of the point
    /// decoder's output. It does not depend on the clicks, so clicks in one patch share it.
    pub fn downsample(&self, decoded: &Tensor) -> Tensor {
        let low = self.fd_conv0.forward(decoded);
        let low = self.fd_norm1.forward(&low).gelu("none");
        self.fd_norm4.forward(&self.fd_conv3.forward(&low))
    }

    /// [`PointHead::forward`] from [`PointHead::downsample`]'s tokens `low` of a patch of
    /// `size` voxels.
    pub fn forward_low(
        &self,
        low: &Tensor,
        size: [i64; 3],
        coords: &Tensor,
        labels: &Tensor,
        class_ids: Option<&Tensor>,
    ) -> Tensor {
        let points = self.point_tokens(coords, labels, size);
        let b = points.size()[0];
        let c = points.size()[2];

        let mask = self.mask_tokens.unsqueeze(0).expand([b, 1, c], false);
        let class_tok = match class_ids {
            None => self.supported_embed.unsqueeze(0).expand([b, 1, c], false),
            Some(ids) => {
                let zs = ids
                    .reshape([-1, 1, 1])
                    .gt(self.last_supported)
                    .to_kind(Kind::Float);
                &zs * &self.zeroshot_embed + (1.0 - &zs) * &self.supported_embed
            }
        };
        let tokens = Tensor::cat(&[mask, points, class_tok], 1);

        let ls = low.size();
        let pos = self.pe.grid([ls[2], ls[3], ls[4]]).unsqueeze(0);
        let mut masks = Vec::new();
        let mut start = 0;
        while start < b {
            let n = self.max_prompt.min(b - start);
            let tok = tokens.narrow(0, start, n);
            let src = low.expand([n, ls[1], ls[2], ls[3], ls[4]], false);
            let pos_src = pos.expand([n, ls[1], ls[2], ls[3], ls[4]], false);
            let (hs, keys) = self.transformer.forward(&src, &pos_src, &tok);
            let hyper = self.hyper_mlp.forward(&hs.narrow(1, 0, 1)); // [n, 1, C]

            // The image tokens [n, hwd, C] are already channels-last: the upscaling runs so.
            let src = keys
                .reshape([n, ls[2], ls[3], ls[4], ls[1]])
                .permute([0, 4, 1, 2, 3]);
            let up = self.up_deconv.forward(&src);
            let up = self.up_norm.forward(&up).gelu("none");
            // MONAI: hyper @ up_conv(up), the same sum in another order.
            masks.push(self.up_conv.forward_dotted(&up, &hyper.squeeze_dim(1)));
            start += n;
        }
        Tensor::cat(&masks, 0)
    }
}
