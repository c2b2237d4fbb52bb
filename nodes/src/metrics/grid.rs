//! Label maps as plain arrays, and boxes inside them.

use crate::node::NodeError;
use crate::value::LabelMap;
use tch::Kind;

/// A label map's ids as `i32`, `[d, h, w]` with `w` fastest (the tensor's `[k, j, i]`).
pub struct LabelGrid {
    pub ids: Vec<i32>,
    pub shape: [usize; 3],
}

impl LabelGrid {
    pub fn of(l: &LabelMap, what: &str) -> Result<Self, NodeError> {
        let t = l.volume.data();
        if t.dim() != 3 {
            return Err(NodeError::Invalid(format!(
                "metrics needs a 3D {what} label map, got shape {:?}",
                t.size()
            )));
        }
        let s = t.size();
        let flat = t
            .to_device(tch::Device::Cpu)
            .to_kind(Kind::Int)
            .contiguous()
            .view(-1);
        let ids = Vec::<i32>::try_from(&flat).map_err(NodeError::from)?;
        Ok(LabelGrid {
            ids,
            shape: [s[0] as usize, s[1] as usize, s[2] as usize],
        })
    }

    pub fn len(&self) -> usize {
        self.ids.len()
    }
}

/// An index box `[lo, hi)` per axis (d, h, w).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BBox {
    pub lo: [usize; 3],
    pub hi: [usize; 3],
}

impl BBox {
    /// The box that holds nothing yet.
    pub fn empty() -> Self {
        BBox {
            lo: [usize::MAX; 3],
            hi: [0; 3],
        }
    }
    pub fn is_empty(&self) -> bool {
        (0..3).any(|a| self.lo[a] >= self.hi[a])
    }
    pub fn add(&mut self, p: [usize; 3]) {
        self.lo = [0, 1, 2].map(|a| self.lo[a].min(p[a]));
        self.hi = [0, 1, 2].map(|a| self.hi[a].max(p[a] + 1));
    }
    pub fn union(&self, o: &BBox) -> BBox {
        if self.is_empty() {
            return *o;
        }
        if o.is_empty() {
            return *self;
        }
        BBox {
            lo: [0, 1, 2].map(|a| self.lo[a].min(o.lo[a])),
            hi: [0, 1, 2].map(|a| self.hi[a].max(o.hi[a])),
        }
    }
    pub fn shape(&self) -> [usize; 3] {
        [0, 1, 2].map(|a| self.hi[a].saturating_sub(self.lo[a]))
    }
}
