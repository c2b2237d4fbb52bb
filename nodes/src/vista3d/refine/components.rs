//! Connected components as MONAI's VISTA3D post-processing uses them (skimage
//! `measure.label` with connectivity 3: face, edge and corner neighbours), and the two rules
//! built on them: `keep_merge_components_with_points` (which clicked regions may change) and
//! `keep_components_with_positive_points` (point-only prompts keep only clicked objects).

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

fn at(shape: [usize; 3], p: [i64; 3]) -> usize {
    ((p[0] as usize * shape[1]) + p[1] as usize) * shape[2] + p[2] as usize
}

/// MONAI's `keep_merge_components_with_points` for one object: the union of the components
/// of `pos` hit by a positive click and of `neg` hit by a negative click. A click outside
/// its mask takes the component with the largest label within 1 (then 2) voxels.
pub fn keep_merge(
    pos: &[bool],
    neg: &[bool],
    shape: [usize; 3],
    clicks: &[([i64; 3], bool)],
) -> Vec<bool> {
    let fpos = label(pos, shape);
    let fneg = label(neg, shape);
    let mut keep_pos = Vec::new();
    let mut keep_neg = Vec::new();
    for &(p, positive) in clicks {
        let f = if positive { &fpos } else { &fneg };
        for margin in 0..3i64 {
            let lo: [i64; 3] = std::array::from_fn(|a| (p[a] - margin).max(0));
            let hi: [i64; 3] = std::array::from_fn(|a| (p[a] + margin + 1).min(shape[a] as i64));
            let mut best = 0u32;
            for x in lo[0]..hi[0] {
                for y in lo[1]..hi[1] {
                    for z in lo[2]..hi[2] {
                        best = best.max(f[at(shape, [x, y, z])]);
                    }
                }
            }
            if best > 0 {
                if positive {
                    keep_pos.push(best)
                } else {
                    keep_neg.push(best)
                }
                break;
            }
        }
    }
    (0..pos.len())
        .map(|i| {
            (fpos[i] > 0 && keep_pos.contains(&fpos[i]))
                || (fneg[i] > 0 && keep_neg.contains(&fneg[i]))
        })
        .collect()
}

/// MONAI's `keep_components_with_positive_points` for one object: positive regions of
/// `logits` (NaN: never computed) not connected to a positive click are set to the mean of
/// the logits outside the kept components. Nothing changes without a positive click.
pub fn keep_positive(logits: &mut [f32], shape: [usize; 3], positives: &[[i64; 3]]) {
    if positives.is_empty() {
        return;
    }
    let pos: Vec<bool> = logits.iter().map(|&v| v > 0.0).collect();
    let f = label(&pos, shape);
    let mut ids: Vec<u32> = positives.iter().map(|&p| f[at(shape, p)]).collect();
    ids.retain(|&i| i > 0);
    let kept = |i: usize| f[i] > 0 && ids.contains(&f[i]);
    let (mut sum, mut n) = (0f64, 0u64);
    for (i, &v) in logits.iter().enumerate() {
        if !kept(i) && !v.is_nan() {
            sum += v as f64;
            n += 1;
        }
    }
    // torch's mean of float32 values (NaN when nothing is left, as torch gives).
    let fill = if n == 0 {
        f32::NAN
    } else {
        (sum / n as f64) as f32
    };
    for i in 0..logits.len() {
        if pos[i] && !kept(i) {
            logits[i] = fill;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_follow_raster_order_and_corners_connect() {
        // 1x3x3: (0,0), (1,2) and (2,0) do not touch.
        let m = [true, false, false, false, false, true, true, false, false];
        assert_eq!(label(&m, [1, 3, 3]), vec![1, 0, 0, 0, 0, 2, 3, 0, 0]);
        // 2x2x2: (0,0,1) and (1,1,0) touch at a corner only; the later-started one merges.
        let mut m = [false; 8];
        m[1] = true;
        m[6] = true;
        assert_eq!(label(&m, [2, 2, 2])[6], 1);
        let kept = keep_merge(&m, &[false; 8], [2, 2, 2], &[([1, 1, 0], true)]);
        assert_eq!(kept.iter().filter(|&&k| k).count(), 2);
    }
}
