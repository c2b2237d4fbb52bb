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

    /// Refuses a configuration no VISTA3D network has, before anything is allocated for it:
    /// a model card or a weights header is outside input.
    pub fn check(&self) -> Result<(), String> {
        let within = |name: &str, v: i64, lo: i64, hi: i64| {
            if (lo..=hi).contains(&v) {
                Ok(())
            } else {
                Err(format!("{name} is {v}, expected {lo}..={hi}"))
            }
        };
        within("in_channels", self.in_channels, 1, 16)?;
        within("encoder_embed_dim", self.encoder_embed_dim, 1, 512)?;
        within("levels (length of blocks_down)", self.levels() as i64, 1, 8)?;
        for &b in &self.blocks_down {
            within("blocks per level (blocks_down)", b, 1, 32)?;
        }
        let deepest = self.encoder_embed_dim << (self.levels() - 1);
        within("filters of the deepest level", deepest, 1, 4096)?;
        within("n_classes", self.n_classes, 1, 65536)?;
        within("last_supported", self.last_supported, 0, self.n_classes)?;
        within("max_prompt", self.max_prompt, 1, 4096)?;
        within("mlp_dim", self.mlp_dim, 1, 65536)?;
        within("depth", self.depth, 1, 32)?;
        within("num_heads", self.num_heads, 1, self.encoder_embed_dim)?;
        if self.encoder_embed_dim % self.num_heads != 0 {
            return Err(format!(
                "num_heads {} does not divide encoder_embed_dim {}",
                self.num_heads, self.encoder_embed_dim
            ));
        }
        Ok(())
    }

    /// A lower bound of the parameter count: the encoder's 3x3x3 convolutions alone (two
    /// per block, filters doubling per level). A weights file holds at least this many
    /// values, so a configuration that needs more than the file could hold is refused
    /// before its network is allocated.
    pub fn min_parameters(&self) -> u64 {
        (0..self.levels())
            .map(|l| {
                let c = (self.encoder_embed_dim as u64) << l;
                self.blocks_down[l] as u64 * 2 * c * c * 27
            })
            .sum()
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
