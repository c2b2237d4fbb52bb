//! SAM's two-way transformer (`TwoWayTransformer`), as VISTA3D's point head uses it on
//! flattened 3D image tokens.

use super::layers::{LayerNorm, Linear};
use tch::{nn, Tensor};

/// Multi-head attention whose projections may shrink the width by `downsample`.
#[derive(Debug)]
struct Attention {
    q_proj: Linear,
    k_proj: Linear,
    v_proj: Linear,
    out_proj: Linear,
    heads: i64,
}

impl Attention {
    fn new(p: nn::Path, dim: i64, heads: i64, downsample: i64) -> Self {
        let inner = dim / downsample;
        Attention {
            q_proj: Linear::new(&p / "q_proj", dim, inner),
            k_proj: Linear::new(&p / "k_proj", dim, inner),
            v_proj: Linear::new(&p / "v_proj", dim, inner),
            out_proj: Linear::new(&p / "out_proj", inner, dim),
            heads,
        }
    }

    /// [B, N, C] -> [B, heads, N, C/heads]
    fn separate(&self, x: Tensor) -> Tensor {
        let s = x.size();
        x.reshape([s[0], s[1], self.heads, s[2] / self.heads])
            .transpose(1, 2)
    }

    fn forward(&self, q: &Tensor, k: &Tensor, v: &Tensor) -> Tensor {
        let q = self.separate(self.q_proj.forward(q));
        let k = self.separate(self.k_proj.forward(k));
        let v = self.separate(self.v_proj.forward(v));
        let c = q.size()[3] as f64;
        let out = if q.size()[2] > k.size()[2] {
            // Many queries (image tokens) on a few keys (clicks): the scores as [keys,
            // queries], so that the softmax runs over a leading axis; over a last axis of
            // a few elements libtorch takes 15x longer (half of the transformer's time).
            let attn = (k.matmul(&q.transpose(2, 3)) / c.sqrt()).softmax(2, q.kind());
            attn.transpose(2, 3).matmul(&v)
        } else {
            let attn = (q.matmul(&k.transpose(2, 3)) / c.sqrt()).softmax(-1, q.kind());
            attn.matmul(&v)
        };
        let out = out.transpose(1, 2); // [B, N, heads, c]
        let s = out.size();
        self.out_proj
            .forward(&out.reshape([s[0], s[1], s[2] * s[3]]))
    }
}

/// `MLPBlock` in "vista3d" mode: linear1 -> ReLU -> linear2, no dropout.
#[derive(Debug)]
struct MlpBlock {
    linear1: Linear,
    linear2: Linear,
}

impl MlpBlock {
    fn forward(&self, x: &Tensor) -> Tensor {
        self.linear2.forward(&self.linear1.forward(x).relu_())
    }
}

/// Self-attention of the tokens, tokens -> image, MLP, image -> tokens.
#[derive(Debug)]
struct TwoWayAttentionBlock {
    self_attn: Attention,
    norm1: LayerNorm,
    cross_attn_token_to_image: Attention,
    norm2: LayerNorm,
    mlp: MlpBlock,
    norm3: LayerNorm,
    norm4: LayerNorm,
    cross_attn_image_to_token: Attention,
    skip_first_layer_pe: bool,
}

impl TwoWayAttentionBlock {
    fn new(p: nn::Path, dim: i64, heads: i64, mlp_dim: i64, skip_first_layer_pe: bool) -> Self {
        TwoWayAttentionBlock {
            self_attn: Attention::new(&p / "self_attn", dim, heads, 1),
            norm1: LayerNorm::new(&p / "norm1", dim),
            cross_attn_token_to_image: Attention::new(
                &p / "cross_attn_token_to_image",
                dim,
                heads,
                2,
            ),
            norm2: LayerNorm::new(&p / "norm2", dim),
            mlp: MlpBlock {
                linear1: Linear::new(&p / "mlp" / "linear1", dim, mlp_dim),
                linear2: Linear::new(&p / "mlp" / "linear2", mlp_dim, dim),
            },
            norm3: LayerNorm::new(&p / "norm3", dim),
            norm4: LayerNorm::new(&p / "norm4", dim),
            cross_attn_image_to_token: Attention::new(
                &p / "cross_attn_image_to_token",
                dim,
                heads,
                2,
            ),
            skip_first_layer_pe,
        }
    }

    fn forward(
        &self,
        queries: &Tensor,
        keys: &Tensor,
        query_pe: &Tensor,
        key_pe: &Tensor,
    ) -> (Tensor, Tensor) {
        let queries = if self.skip_first_layer_pe {
            self.self_attn.forward(queries, queries, queries)
        } else {
            let q = queries + query_pe;
            queries + self.self_attn.forward(&q, &q, queries)
        };
        let queries = self.norm1.forward(&queries);

        let q = &queries + query_pe;
        let k = keys + key_pe;
        let queries = self
            .norm2
            .forward(&(&queries + self.cross_attn_token_to_image.forward(&q, &k, keys)));

        let queries = self.norm3.forward(&(&queries + self.mlp.forward(&queries)));

        let q = &queries + query_pe;
        let k = keys + key_pe;
        let keys = self
            .norm4
            .forward(&(keys + self.cross_attn_image_to_token.forward(&k, &q, &queries)));
        (queries, keys)
    }
}

/// The two-way transformer.
#[derive(Debug)]
pub struct TwoWayTransformer {
    layers: Vec<TwoWayAttentionBlock>,
    final_attn_token_to_image: Attention,
    norm_final_attn: LayerNorm,
}

impl TwoWayTransformer {
    pub fn new(p: nn::Path, depth: i64, dim: i64, heads: i64, mlp_dim: i64) -> Self {
        let lp = &p / "layers";
        TwoWayTransformer {
            layers: (0..depth)
                .map(|i| TwoWayAttentionBlock::new(&lp / i, dim, heads, mlp_dim, i == 0))
                .collect(),
            final_attn_token_to_image: Attention::new(
                &p / "final_attn_token_to_image",
                dim,
                heads,
                2,
            ),
            norm_final_attn: LayerNorm::new(&p / "norm_final_attn", dim),
        }
    }

    /// `image` [B, C, h, w, d], `image_pe` the same shape, `tokens` [B, N, C]; returns the
    /// processed tokens [B, N, C] and image tokens [B, h*w*d, C].
    pub fn forward(&self, image: &Tensor, image_pe: &Tensor, tokens: &Tensor) -> (Tensor, Tensor) {
        let image = image.flatten(2, -1).permute([0, 2, 1]);
        let image_pe = image_pe.flatten(2, -1).permute([0, 2, 1]);
        let mut queries = tokens.shallow_clone();
        let mut keys = image;
        for layer in &self.layers {
            let (q, k) = layer.forward(&queries, &keys, tokens, &image_pe);
            queries = q;
            keys = k;
        }
        let q = &queries + tokens;
        let k = &keys + &image_pe;
        let attn = self.final_attn_token_to_image.forward(&q, &k, &keys);
        let queries = self.norm_final_attn.forward(&(queries + attn));
        (queries, keys)
    }
}
