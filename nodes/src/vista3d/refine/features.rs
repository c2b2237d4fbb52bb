//! The image encoder's features per window, kept between runs in the node's memo (the
//! engine's content-hash cache), so that the next click in a window already seen runs only
//! the point head.
//!
//! MONAI centres a window on every click, so a second click next to the first would get a
//! window of its own. With `reuse_windows`, a click that lies well inside (a quarter patch
//! from every face) a window an earlier run computed uses that window instead. Each computed
//! window registers the cells (a grid of quarter-patch cubes) of its inner half, so the
//! lookup is one memo probe per click. Without reuse (or without a cache) windows are placed
//! exactly as MONAI places them.

use crate::node::{Ctx, NodeError};
use crate::vista3d::net::Vista3d;
use tch::{Device, Tensor};

/// Where window features come from: the memo, or the encoder.
pub struct FeatureSource<'a> {
    net: &'a Vista3d,
    ctx: Option<&'a Ctx>,
    prefix: String,
    reuse: bool,
    pub hits: u64,
    pub misses: u64,
}

impl<'a> FeatureSource<'a> {
    /// `ctx`: `None` keeps nothing. `prefix` names what the features depend on besides the
    /// image and the weights (the network configuration and the patch).
    pub fn new(net: &'a Vista3d, ctx: Option<&'a Ctx>, prefix: String, reuse: bool) -> Self {
        FeatureSource {
            net,
            ctx,
            prefix,
            reuse,
            hits: 0,
            misses: 0,
        }
    }

    fn cell_key(&self, cell: [i64; 3]) -> String {
        format!("{} cell {:?}", self.prefix, cell)
    }

    /// The window start for a click at `at`: an earlier run's window that holds it well
    /// inside, when reuse is on and there is one; else `centred` (MONAI's placement).
    pub fn place(&self, at: [i64; 3], patch: [i64; 3], centred: [i64; 3]) -> [i64; 3] {
        let Some(ctx) = self.ctx.filter(|_| self.reuse) else {
            return centred;
        };
        let q = quarter(patch);
        let cell = std::array::from_fn(|a| at[a] / q[a]);
        match ctx.memo_get(&["image"], &self.cell_key(cell)) {
            Some(t) => match Vec::<i64>::try_from(&t) {
                Ok(v) if v.len() == 3 => [v[0], v[1], v[2]],
                _ => centred,
            },
            None => centred,
        }
    }

    /// Features of the window starting at `lo` (on the network's device); `window` gives the
    /// window's image when they must be computed.
    pub fn features(
        &mut self,
        lo: [i64; 3],
        patch: [i64; 3],
        window: impl FnOnce() -> Tensor,
    ) -> Result<Tensor, NodeError> {
        let key = format!("{} features at {:?}", self.prefix, lo);
        if let Some(ctx) = self.ctx {
            if let Some(f) = ctx.memo_get(&["image"], &key) {
                self.hits += 1;
                return Ok(f.to_device(self.net.device()));
            }
        }
        self.misses += 1;
        let f = tch::no_grad(|| self.net.point_features(&window()));
        if let Some(ctx) = self.ctx {
            ctx.memo_put(&["image"], &key, &f.to_device(Device::Cpu));
            if self.reuse {
                self.register(ctx, lo, patch);
            }
        }
        Ok(f)
    }

    /// Marks the cells of the window's inner half as served by the window at `lo`.
    fn register(&self, ctx: &Ctx, lo: [i64; 3], patch: [i64; 3]) {
        let q = quarter(patch);
        // Cells [c q, (c + 1) q) inside [lo + q, lo + patch - q).
        let range = |a: usize| {
            let first = (lo[a] + q[a] + q[a] - 1) / q[a];
            let last = (lo[a] + patch[a] - q[a]) / q[a]; // exclusive
            first..last
        };
        let at = Tensor::from_slice(&lo);
        for x in range(0) {
            for y in range(1) {
                for z in range(2) {
                    ctx.memo_put(&["image"], &self.cell_key([x, y, z]), &at);
                }
            }
        }
    }
}

fn quarter(patch: [i64; 3]) -> [i64; 3] {
    patch.map(|p| (p / 4).max(1))
}
