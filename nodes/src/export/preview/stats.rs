//! One pass over the label map: which classes are present, how many voxels each has, and the
//! slices through its centre.

use super::views::Axes;
use crate::node::{Ctx, NodeError};
use std::collections::HashMap;
use tch::{Kind, Tensor};

/// A class present in the label map.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ClassStats {
    pub id: u32,
    pub voxels: u64,
    /// Display coordinates (see [`super::views`]) of the slices shown for x, y, z: the voxel
    /// centroid rounded half up, or, when the class has no voxel in that slice (a curved or
    /// split structure), the nearest slice that has one (the lower on a tie).
    pub centre: [usize; 3],
}

/// Ids up to this use a dense lookup table; larger ones a hash map.
const DENSE_IDS: i64 = 1 << 16;

/// Per-class running sums.
struct Acc {
    voxels: u64,
    /// Per world axis: voxels in each voxel-index plane along the matching voxel axis.
    planes: [Vec<u64>; 3],
}

/// The running sums of every class met so far.
struct Scan {
    /// id -> slot in `accs` (ids below [`DENSE_IDS`]; `u32::MAX` = not met yet).
    dense: Vec<u32>,
    /// id -> slot in `accs`, for larger ids.
    sparse: HashMap<i64, u32>,
    ids: Vec<u32>,
    accs: Vec<Acc>,
    /// Voxels along i, j, k.
    n: [usize; 3],
}

impl Scan {
    /// The slot of `id` (> 0), made on first sight.
    fn slot(&mut self, id: i64) -> usize {
        let next = self.accs.len() as u32;
        let s = if (id as usize) < self.dense.len() {
            &mut self.dense[id as usize]
        } else {
            self.sparse.entry(id).or_insert(u32::MAX)
        };
        if *s == u32::MAX {
            *s = next;
            self.ids.push(id as u32);
            self.accs.push(Acc {
                voxels: 0,
                planes: self.n.map(|n| vec![0; n]),
            });
        }
        *s as usize
    }

    /// Adds the voxels of slices `k0..` (`values` in memory order, i fastest). Runs of one
    /// id along i take one lookup.
    fn slab<T: Copy + PartialEq + Into<i64>>(&mut self, values: &[T], k0: usize) {
        let [ni, nj, _] = self.n;
        for (r, row) in values.chunks(ni).enumerate() {
            let (j, k) = (r % nj, k0 + r / nj);
            let mut i = 0;
            while i < ni {
                let v = row[i];
                let start = i;
                while i < ni && row[i] == v {
                    i += 1;
                }
                let id: i64 = v.into();
                if id == 0 {
                    continue;
                }
                let slot = self.slot(id);
                let acc = &mut self.accs[slot];
                let run = (i - start) as u64;
                acc.voxels += run;
                for c in &mut acc.planes[0][start..i] {
                    *c += 1;
                }
                acc.planes[1][j] += run;
                acc.planes[2][k] += run;
            }
        }
    }
}

/// The elements of `t` (of kind `kind`) in memory order.
fn values<T>(t: &Tensor, kind: Kind) -> Result<Vec<T>, NodeError>
where
    Vec<T>: TryFrom<Tensor, Error = tch::TchError>,
{
    let flat = t.f_to_kind(kind)?.f_contiguous()?.f_reshape([-1])?;
    Ok(Vec::<T>::try_from(flat)?)
}

/// The classes of `labels` (a `[nk, nj, ni]` integer tensor), in increasing id order.
/// Negative ids, or ids beyond u32, are an error. Checks for cancellation between slabs.
pub(crate) fn class_stats(
    labels: &Tensor,
    axes: &Axes,
    ctx: &Ctx,
) -> Result<Vec<ClassStats>, NodeError> {
    let [nk, nj, ni] = <[i64; 3]>::try_from(labels.size())
        .map_err(|s| NodeError::Invalid(format!("a label map must be 3D here, got shape {s:?}")))?;
    let (nk, nj, ni) = (nk as usize, nj as usize, ni as usize);
    let shape_vox = [ni, nj, nk];
    let min = labels.f_min()?.f_int64_value(&[])?;
    let max = labels.f_max()?.f_int64_value(&[])?;
    if min < 0 || max > i64::from(u32::MAX) {
        return Err(NodeError::Invalid(format!(
            "the label map holds values from {min} to {max}; class ids must be 0 (background) \
             to {}",
            u32::MAX
        )));
    }
    let mut scan = Scan {
        dense: if max < DENSE_IDS {
            vec![u32::MAX; max as usize + 1]
        } else {
            Vec::new()
        },
        sparse: HashMap::new(),
        ids: Vec::new(),
        accs: Vec::new(),
        n: [ni, nj, nk],
    };
    let slab = 8.max((1 << 22) / (ni * nj).max(1));
    let mut k0 = 0;
    while k0 < nk {
        ctx.check_cancelled()?;
        let len = slab.min(nk - k0);
        let t = labels.f_narrow(0, k0 as i64, len as i64)?;
        // Read in the stored integer kind (no widening copy) where Rust has it.
        match t.kind() {
            Kind::Uint8 => scan.slab(&values::<u8>(&t, Kind::Uint8)?, k0),
            Kind::Int8 => scan.slab(&values::<i8>(&t, Kind::Int8)?, k0),
            Kind::Int16 => scan.slab(&values::<i16>(&t, Kind::Int16)?, k0),
            Kind::Int => scan.slab(&values::<i32>(&t, Kind::Int)?, k0),
            _ => scan.slab(&values::<i64>(&t, Kind::Int64)?, k0),
        }
        k0 += len;
    }
    let Scan { ids, accs, .. } = scan;
    let mut out: Vec<ClassStats> = ids
        .iter()
        .zip(&accs)
        .map(|(&id, acc)| {
            let centre = [0, 1, 2].map(|w| {
                // This world axis's plane counts, in display order.
                let vox = &acc.planes[axes.vox[w]];
                let n = shape_vox[axes.vox[w]];
                let counts: Vec<u64> = (0..n).map(|d| vox[axes.flip(w, d)]).collect();
                centre_slice(&counts)
            });
            ClassStats {
                id,
                voxels: acc.voxels,
                centre,
            }
        })
        .collect();
    out.sort_by_key(|c| c.id);
    Ok(out)
}

/// The rounded centroid (half up) of a histogram over display coordinates, moved to the
/// nearest non-empty bin (the lower on a tie) when its own bin is empty.
fn centre_slice(counts: &[u64]) -> usize {
    let total: u128 = counts.iter().map(|&c| u128::from(c)).sum();
    if total == 0 {
        return counts.len() / 2;
    }
    let moment: u128 = counts
        .iter()
        .enumerate()
        .map(|(d, &c)| d as u128 * u128::from(c))
        .sum();
    let c = ((2 * moment + total) / (2 * total)) as usize;
    if counts[c] > 0 {
        return c;
    }
    (1..counts.len())
        .flat_map(|r| [c.checked_sub(r), Some(c + r)])
        .flatten()
        .find(|&d| d < counts.len() && counts[d] > 0)
        .unwrap_or(c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn centre_rounds_half_up_and_avoids_empty_slices() {
        assert_eq!(centre_slice(&[0, 1, 1, 0]), 2); // 1.5 -> 2
        assert_eq!(centre_slice(&[0, 1, 0, 1, 0]), 1); // 2 is empty: 1 and 3 tie, lower
        assert_eq!(centre_slice(&[3, 0, 0, 0, 0, 0, 1]), 0); // 1.5 -> 2 empty -> 0
        assert_eq!(centre_slice(&[0, 0, 5]), 2);
    }
}
