//! The image encoder: MONAI's `SegResNetDS2` (a SegResNet encoder and two identical
//! decoders, `up_layers` feeding the point head and `up_layers_auto` the class head).

use super::layers::{on_onednn, to_channels_last, Conv3d, Deconv3d, InstanceNorm};
use super::Config;
use tch::{nn, Tensor};

/// Pre-activation residual block: `x + conv2(relu(IN2(conv1(relu(IN1(x))))))`.
#[derive(Debug)]
struct SegResBlock {
    norm1: InstanceNorm,
    conv1: Conv3d,
    norm2: InstanceNorm,
    conv2: Conv3d,
}

impl SegResBlock {
    fn new(p: nn::Path, c: i64) -> Self {
        SegResBlock {
            norm1: InstanceNorm::affine(&p / "norm1", c),
            conv1: Conv3d::new(&p / "conv1", c, c, 3, 1, false),
            norm2: InstanceNorm::affine(&p / "norm2", c),
            conv2: Conv3d::new(&p / "conv2", c, c, 3, 1, false),
        }
    }
    fn forward(&self, x: &Tensor) -> Tensor {
        let h = self.conv1.forward(&self.norm1.forward(x).relu_());
        let mut h = self.conv2.forward(&self.norm2.forward(&h).relu_());
        // In place, as MONAI's `x += identity`: at 128^3 x 48 channels a fresh tensor is
        // 400 MB of new pages.
        let _ = h.g_add_(x);
        h
    }
}

fn run_blocks(blocks: &[SegResBlock], x: Tensor) -> Tensor {
    blocks.iter().fold(x, |x, b| b.forward(&x))
}

/// One encoder level: its blocks, then (except the deepest) a stride-2 conv doubling channels.
#[derive(Debug)]
struct EncoderLevel {
    blocks: Vec<SegResBlock>,
    downsample: Option<Conv3d>,
}

/// `SegResEncoder`: `conv_init` then the levels; returns each level's output (the skips).
#[derive(Debug)]
pub struct Encoder {
    conv_init: Conv3d,
    layers: Vec<EncoderLevel>,
}

impl Encoder {
    fn new(p: nn::Path, cfg: &Config) -> Self {
        let mut filters = cfg.encoder_embed_dim;
        let conv_init = Conv3d::new(&p / "conv_init", cfg.in_channels, filters, 3, 1, false);
        let lp = &p / "layers";
        let mut layers = Vec::new();
        for (i, &n) in cfg.blocks_down.iter().enumerate() {
            let level = &lp / i;
            let bp = &level / "blocks";
            let blocks = (0..n).map(|j| SegResBlock::new(&bp / j, filters)).collect();
            let downsample = (i + 1 < cfg.levels())
                .then(|| Conv3d::new(&level / "downsample", filters, 2 * filters, 3, 2, false));
            layers.push(EncoderLevel { blocks, downsample });
            filters *= 2;
        }
        Encoder { conv_init, layers }
    }

    /// Skips from the finest level to the deepest.
    fn forward(&self, x: &Tensor) -> Vec<Tensor> {
        let mut x = self.conv_init.forward(x);
        // On oneDNN's path, channels-last from here on: every convolution, norm and addition
        // keeps it.
        if on_onednn(&x) {
            x = to_channels_last(&x);
        }
        let mut outs = Vec::with_capacity(self.layers.len());
        for level in &self.layers {
            x = run_blocks(&level.blocks, x);
            let next = level.downsample.as_ref().map(|d| d.forward(&x));
            outs.push(x);
            match next {
                Some(n) => x = n,
                None => break,
            }
        }
        outs
    }
}

/// One decoder level: deconv (2C -> C), add the skip, one SegResBlock; the last level has a
/// 1x1 `head` conv (deep supervision depth 1).
#[derive(Debug)]
struct DecoderLevel {
    upsample: Deconv3d,
    blocks: Vec<SegResBlock>,
    head: Option<Conv3d>,
}

/// `up_layers` or `up_layers_auto`.
#[derive(Debug)]
pub struct Decoder {
    levels: Vec<DecoderLevel>,
}

impl Decoder {
    fn new(p: nn::Path, cfg: &Config) -> Self {
        let n_up = cfg.levels() - 1;
        let mut filters = cfg.encoder_embed_dim << n_up;
        let mut levels = Vec::with_capacity(n_up);
        for i in 0..n_up {
            filters /= 2;
            let lp = &p / i;
            let upsample = Deconv3d::new(&lp / "upsample" / "deconv", 2 * filters, filters, false);
            let blocks = vec![SegResBlock::new(&lp / "blocks" / 0, filters)];
            let head = (i + 1 == n_up)
                .then(|| Conv3d::new(&lp / "head", filters, cfg.encoder_embed_dim, 1, 1, true));
            levels.push(DecoderLevel {
                upsample,
                blocks,
                head,
            });
        }
        Decoder { levels }
    }

    /// `skips` as the encoder returns them (finest first).
    fn forward(&self, skips: &[Tensor]) -> Tensor {
        let (deepest, rest) = skips.split_last().expect("the encoder has levels");
        let mut x = deepest.shallow_clone();
        for (i, level) in self.levels.iter().enumerate() {
            // The skip is added in place into the fresh upsampled tensor.
            let mut up = level.upsample.forward(&x);
            let _ = up.g_add_(&rest[rest.len() - 1 - i]);
            x = up;
            x = run_blocks(&level.blocks, x);
            if let Some(h) = &level.head {
                x = h.forward(&x);
            }
        }
        x
    }
}

/// `SegResNetDS2`.
#[derive(Debug)]
pub struct ImageEncoder {
    encoder: Encoder,
    up_layers: Decoder,
    up_layers_auto: Decoder,
    shape_factor: i64,
}

/// Which decoder outputs to compute.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Branches {
    pub point: bool,
    pub class: bool,
}

impl ImageEncoder {
    pub fn new(p: nn::Path, cfg: &Config) -> Self {
        ImageEncoder {
            encoder: Encoder::new(&p / "encoder", cfg),
            up_layers: Decoder::new(&p / "up_layers", cfg),
            up_layers_auto: Decoder::new(&p / "up_layers_auto", cfg),
            shape_factor: cfg.shape_factor(),
        }
    }

    /// `x` [B, in, H, W, D] with each spatial size a multiple of 2^(levels-1); returns the
    /// (point, class) branch features [B, C, H, W, D] for the branches asked for.
    pub fn forward(&self, x: &Tensor, b: Branches) -> (Option<Tensor>, Option<Tensor>) {
        let size = x.size();
        assert!(
            size[2..].iter().all(|s| s % self.shape_factor == 0),
            "patch {:?} is not a multiple of {}",
            &size[2..],
            self.shape_factor
        );
        let skips = self.encoder.forward(x);
        let point = b.point.then(|| self.up_layers.forward(&skips));
        let class = b.class.then(|| self.up_layers_auto.forward(&skips));
        (point, class)
    }
}
