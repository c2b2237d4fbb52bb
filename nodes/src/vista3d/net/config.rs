//! The hyper-parameters of a VISTA3D network.

use serde::{Deserialize, Serialize};

/// Everything that shapes the network's weights. `vista3d132()` is the published model;
/// `small()` is the same architecture with fewer filters and blocks, for tests.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Input channels (1 for CT).
    #[serde(default = "one")]
    pub in_channels: i64,
    /// Filters of the first encoder level, also the width of both heads.
    pub encoder_embed_dim: i64,
    /// SegResBlocks per encoder level; the number of levels is its length.
    pub blocks_down: Vec<i64>,
    /// Rows of the class embedding tables.
    #[serde(default = "n_classes")]
    pub n_classes: i64,
    /// Class ids above this one are zero-shot for the point head.
    #[serde(default = "last_supported")]
    pub last_supported: i64,
    /// Objects the point head processes at once.
    #[serde(default = "max_prompt")]
    pub max_prompt: i64,
    /// Hidden width of the two-way transformer's MLP.
    #[serde(default = "mlp_dim")]
    pub mlp_dim: i64,
    #[serde(default = "num_heads")]
    pub num_heads: i64,
    /// Two-way transformer layers.
    #[serde(default = "depth")]
    pub depth: i64,
}

fn one() -> i64 {
    1
}
fn n_classes() -> i64 {
    512
}
fn last_supported() -> i64 {
    132
}
fn max_prompt() -> i64 {
    32
}
fn mlp_dim() -> i64 {
    512
}
fn num_heads() -> i64 {
    4
}
fn depth() -> i64 {
    2
}

impl Config {
    /// MONAI's `vista3d132(encoder_embed_dim=48, in_channels=1)`: the published model.
    pub fn vista3d132() -> Self {
        Config {
            in_channels: 1,
            encoder_embed_dim: 48,
            blocks_down: vec![1, 2, 2, 4, 4],
            n_classes: 512,
            last_supported: 132,
            max_prompt: 32,
            mlp_dim: 512,
            num_heads: 4,
            depth: 2,
        }
    }

    /// The test configuration: the same architecture, 16 filters, blocks (1,2,1,1,1).
    /// `scripts/oracles/vista3d_small.py` builds the same network in MONAI.
    pub fn small() -> Self {
        Config {
            encoder_embed_dim: 16,
            blocks_down: vec![1, 2, 1, 1, 1],
            ..Self::vista3d132()
        }
    }

    /// Encoder levels.
    pub fn levels(&self) -> usize {
        self.blocks_down.len()
    }

    /// Each spatial size of a patch must be a multiple of this (2^(levels-1)).
    pub fn shape_factor(&self) -> i64 {
        1 << (self.levels() - 1)
    }

    /// A short human name: `vista3d132` or `custom(16 filters, blocks [1,2,1,1,1])`.
    pub fn describe(&self) -> String {
        if *self == Self::vista3d132() {
            "vista3d132".into()
        } else {
            format!(
                "{} filters, blocks {:?}",
                self.encoder_embed_dim, self.blocks_down
            )
        }
    }
}
