//! Connected components of a 3D mask with 26-connectivity (face, edge and corner
//! neighbours: skimage `measure.label` with connectivity 3, MONAI's default), numbered as
//! skimage numbers them. Used by the click rules of `vista3d_refine` and by `metrics`' QC.

/// Component labels of a mask of `shape` (C order, last axis fastest): 0 outside, 1.. inside,
/// numbered by each component's first voxel in raster order, as skimage numbers them.
pub fn label(mask: &[bool], shape: [usize; 3]) -> Vec<u32> {
    let [_, h, w] = shape;
    let n = mask.len();
    let mut parent: Vec<u32> = vec![u32::MAX; n];
    fn find(p: &mut [u32], mut a: u32) -> u32 {
        while p[a as usize] != a {
            let up = p[p[a as usize] as usize];
            p[a as usize] = up;
            a = up;
        }
        a
    }
    let (hh, ww) = (h as i64, w as i64);
    for i in 0..n {
        if !mask[i] {
            continue;
        }
        parent[i] = i as u32;
        let (x, y, z) = ((i / (h * w)) as i64, ((i / w) % h) as i64, (i % w) as i64);
        // The 13 neighbours earlier in raster order.
        for (dx, dy, dz) in BACKWARD {
            let (nx, ny, nz) = (x + dx, y + dy, z + dz);
            if nx < 0 || ny < 0 || nz < 0 || ny >= hh || nz >= ww {
                continue;
            }
            let j = ((nx * hh + ny) * ww + nz) as usize;
            if mask[j] {
                let (a, b) = (find(&mut parent, i as u32), find(&mut parent, j as u32));
                if a != b {
                    // Keep the smaller index as root: roots are first voxels.
                    let (lo, hi) = if a < b { (a, b) } else { (b, a) };
                    parent[hi as usize] = lo;
                }
            }
        }
    }
    let mut out = vec![0u32; n];
    let mut next = 0u32;
    for i in 0..n {
        if !mask[i] {
            continue;
        }
        let r = find(&mut parent, i as u32) as usize;
        if r == i {
            next += 1;
            out[i] = next;
        } else {
            out[i] = out[r];
        }
    }
    out
}

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
