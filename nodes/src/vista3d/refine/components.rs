//! The two component rules of MONAI's VISTA3D post-processing, on 26-connected components
//! (skimage `measure.label` with connectivity 3, [`crate::spatial::components::label`]):
//! `keep_merge_components_with_points` (which clicked regions may change) and
//! `keep_components_with_positive_points` (point-only prompts keep only clicked objects).

use crate::spatial::components::label;

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
