//! Connected components of one class (26-connectivity: voxels touching at a face, an edge
//! or a corner belong together, as MONAI's `get_largest_connected_component_mask` default).

use super::grid::{BBox, LabelGrid};

/// Number of components of `grid == id` inside `bbox` (which holds all of it) and the size
/// of the largest, in voxels.
pub fn components(grid: &LabelGrid, id: i32, bbox: &BBox) -> (usize, u64) {
    if bbox.is_empty() {
        return (0, 0);
    }
    let [bd, bh, bw] = bbox.shape();
    let [_, gh, gw] = grid.shape;
    let at = |z: usize, y: usize, x: usize| {
        grid.ids[((bbox.lo[0] + z) * gh + bbox.lo[1] + y) * gw + bbox.lo[2] + x] == id
    };
    let idx = |z: usize, y: usize, x: usize| (z * bh + y) * bw + x;
    let mut parent: Vec<u32> = vec![u32::MAX; bd * bh * bw];
    fn find(p: &mut [u32], mut a: u32) -> u32 {
        while p[a as usize] != a {
            let up = p[p[a as usize] as usize];
            p[a as usize] = up;
            a = up;
        }
        a
    }
    for z in 0..bd {
        for y in 0..bh {
            for x in 0..bw {
                if !at(z, y, x) {
                    continue;
                }
                let me = idx(z, y, x) as u32;
                parent[me as usize] = me;
                // The 13 neighbours already visited (earlier in raster order).
                for (dz, dy, dx) in BACKWARD {
                    let (nz, ny, nx) = (z as i64 + dz, y as i64 + dy, x as i64 + dx);
                    if nz < 0 || ny < 0 || nx < 0 || ny >= bh as i64 || nx >= bw as i64 {
                        continue;
                    }
                    let n = idx(nz as usize, ny as usize, nx as usize) as u32;
                    if parent[n as usize] == u32::MAX {
                        continue;
                    }
                    let (ra, rb) = (find(&mut parent, me), find(&mut parent, n));
                    if ra != rb {
                        parent[ra.max(rb) as usize] = ra.min(rb);
                    }
                }
            }
        }
    }
    let mut sizes = std::collections::HashMap::new();
    for v in 0..parent.len() {
        if parent[v] != u32::MAX {
            *sizes.entry(find(&mut parent, v as u32)).or_insert(0u64) += 1;
        }
    }
    (sizes.len(), sizes.values().copied().max().unwrap_or(0))
}

/// Offsets (dz, dy, dx) of the 26-neighbours that come before a voxel in raster order.
const BACKWARD: [(i64, i64, i64); 13] = [
    (-1, -1, -1),
    (-1, -1, 0),
    (-1, -1, 1),
    (-1, 0, -1),
    (-1, 0, 0),
    (-1, 0, 1),
    (-1, 1, -1),
    (-1, 1, 0),
    (-1, 1, 1),
    (0, -1, -1),
    (0, -1, 0),
    (0, -1, 1),
    (0, 0, -1),
];

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
