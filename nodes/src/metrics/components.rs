//! Connected components of one class (26-connectivity: voxels touching at a face, an edge
//! or a corner belong together, as MONAI's `get_largest_connected_component_mask` default).

use super::grid::{BBox, LabelGrid};
use crate::spatial::components::label;

/// Number of components of `grid == id` inside `bbox` (which holds all of it) and the size
/// of the largest, in voxels.
pub fn components(grid: &LabelGrid, id: i32, bbox: &BBox) -> (usize, u64) {
    if bbox.is_empty() {
        return (0, 0);
    }
    let shape = bbox.shape();
    let [_, gh, gw] = grid.shape;
    let mut mask = Vec::with_capacity(shape.iter().product());
    for k in bbox.lo[0]..bbox.hi[0] {
        for j in bbox.lo[1]..bbox.hi[1] {
            let row = (k * gh + j) * gw;
            mask.extend(
                grid.ids[row + bbox.lo[2]..row + bbox.hi[2]]
                    .iter()
                    .map(|&v| v == id),
            );
        }
    }
    let labels = label(&mask, shape);
    let n = labels.iter().copied().max().unwrap_or(0) as usize;
    let mut sizes = vec![0u64; n + 1];
    for &l in &labels {
        sizes[l as usize] += 1;
    }
    (n, sizes.iter().skip(1).copied().max().unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn corner_contact_joins_and_gaps_split() {
        // (0,0,0)-(1,1,1) touch at a corner, (1,1,1)-(2,2,0) at an edge: one component.
        let mut ids = vec![0; 27];
        let set = |ids: &mut Vec<i32>, z: usize, y: usize, x: usize| ids[(z * 3 + y) * 3 + x] = 7;
        set(&mut ids, 0, 0, 0);
        set(&mut ids, 1, 1, 1);
        set(&mut ids, 2, 2, 0);
        let g = LabelGrid {
            ids: ids.clone(),
            shape: [3, 3, 3],
        };
        let mut bb = BBox::empty();
        bb.add([0, 0, 0]);
        bb.add([2, 2, 2]);
        assert_eq!(components(&g, 7, &bb), (1, 3));
        // Remove the middle voxel: the two corners no longer touch.
        let mut ids2 = ids;
        ids2[13] = 0;
        let g2 = LabelGrid {
            ids: ids2,
            shape: [3, 3, 3],
        };
        assert_eq!(components(&g2, 7, &bb), (2, 1));
    }
}
