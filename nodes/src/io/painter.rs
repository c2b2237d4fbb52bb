//! Painting structures (RT-STRUCT ROIs, SEG segments) into one label map: a label map holds
//! one class per voxel, so where structures overlap the later one keeps the voxel, and the
//! overlaps are counted for a warning.

use crate::node::Ctx;
use crate::value::ClassTable;
use std::collections::BTreeMap;

pub struct Painter {
    /// Class ids `[D, H, W]`, row-major.
    pub ids: Vec<i16>,
    pub classes: ClassTable,
    plane: usize,
    overlaps: BTreeMap<(String, String), u64>,
}

impl Painter {
    pub fn new([d, h, w]: [usize; 3]) -> Self {
        Painter {
            ids: vec![0; d * h * w],
            classes: ClassTable::new(),
            plane: h * w,
            overlaps: BTreeMap::new(),
        }
    }

    /// Paints `class` (named `name`) where `mask` (one slice) is true on slice `k`.
    pub fn paint(&mut self, k: usize, mask: &[bool], class: i16, name: &str) {
        self.classes.insert(class as u32, name.to_string());
        let plane = &mut self.ids[k * self.plane..(k + 1) * self.plane];
        for (v, inside) in plane.iter_mut().zip(mask) {
            if *inside {
                if *v != 0 && *v != class {
                    let under = self.classes[&(*v as u32)].clone();
                    *self.overlaps.entry((name.to_string(), under)).or_default() += 1;
                }
                *v = class;
            }
        }
    }

    /// Warns (once, naming `node` and `what` it paints) about the overlaps seen.
    pub fn warn_overlaps(&self, ctx: &Ctx, node: &str, what: &str, param: &str) {
        if self.overlaps.is_empty() {
            return;
        }
        ctx.warn(&format!(
            "{node}: {what} overlap, and a label map holds one class per voxel: the later one \
             keeps the voxel ({}); choose and order them with `{param}`",
            {
                const SHOWN: usize = 6;
                let mut pairs: Vec<_> = self.overlaps.iter().collect();
                pairs.sort_by(|a, b| b.1.cmp(a.1));
                let mut s = pairs
                    .iter()
                    .take(SHOWN)
                    .map(|((top, under), n)| format!("`{top}` over `{under}`: {n} voxels"))
                    .collect::<Vec<_>>()
                    .join(", ");
                if pairs.len() > SHOWN {
                    s += &format!(", and {} more pairs", pairs.len() - SHOWN);
                }
                s
            }
        ));
    }
}
