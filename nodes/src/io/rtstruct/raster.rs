//! Filling contours on a slice: the voxels whose centres are inside, by the even-odd rule
//! over all of a ROI's contours on the slice (an inner contour is a hole, an island in it is
//! filled again), as planning systems read them.

/// Toggles, in `mask` (`h` rows of `w`), the voxels whose centre `(i, j)` is inside `polygon`
/// (points in continuous voxel indices). Calling it for each contour of a slice gives the
/// even-odd fill of them all.
pub fn toggle(mask: &mut [bool], w: usize, h: usize, polygon: &[[f64; 2]]) {
    let n = polygon.len();
    if n < 3 {
        return;
    }
    let (lo, hi) = polygon.iter().fold((f64::MAX, f64::MIN), |(lo, hi), p| {
        (lo.min(p[1]), hi.max(p[1]))
    });
    let j0 = lo.ceil().max(0.0) as usize;
    let j1 = (hi.floor().min(h as f64 - 1.0)).max(-1.0);
    if j1 < 0.0 {
        return;
    }
    let mut xs = Vec::new();
    for j in j0..=j1 as usize {
        let y = j as f64;
        xs.clear();
        for e in 0..n {
            let (a, b) = (polygon[e], polygon[(e + 1) % n]);
            // half-open in y: a vertex on the scanline counts once
            if (a[1] > y) != (b[1] > y) {
                xs.push(a[0] + (y - a[1]) / (b[1] - a[1]) * (b[0] - a[0]));
            }
        }
        xs.sort_by(f64::total_cmp);
        for pair in xs.chunks_exact(2) {
            // centres i with pair[0] < i < pair[1] (a centre on an edge counts inside once)
            let i0 = pair[0].ceil().max(0.0);
            let i1 = (pair[1].ceil() - 1.0).min(w as f64 - 1.0);
            if i1 < i0 {
                continue;
            }
            for i in i0 as usize..=i1 as usize {
                mask[j * w + i] ^= true;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::export::rtstruct::contours::trace;

    /// The export's contours (pixel-edge corners, centres at +0.5) filled back: the mask
    /// again, exactly, rings and diagonal touches included.
    #[test]
    fn the_exports_contours_fill_back_exactly() {
        let mut s = 99u64;
        for _ in 0..300 {
            let (w, h) = (11, 8);
            let m: Vec<bool> = (0..w * h)
                .map(|_| {
                    s = s
                        .wrapping_mul(6364136223846793005)
                        .wrapping_add(1442695040888963407);
                    (s >> 33).is_multiple_of(3)
                })
                .collect();
            let mut back = vec![false; w * h];
            for c in trace(&m, w, h) {
                let poly: Vec<[f64; 2]> = c
                    .iter()
                    .map(|&(x, y)| [x as f64 - 0.5, y as f64 - 0.5])
                    .collect();
                toggle(&mut back, w, h, &poly);
            }
            assert_eq!(back, m);
        }
    }

    #[test]
    fn a_diamond_fills_the_centres_inside_it() {
        let mut m = vec![false; 25];
        toggle(
            &mut m,
            5,
            5,
            &[[2.0, -0.1], [4.1, 2.0], [2.0, 4.1], [-0.1, 2.0]],
        );
        let want: Vec<bool> = "..#...###.#####.###...#.."
            .bytes()
            .map(|b| b == b'#')
            .collect();
        assert_eq!(m, want);
    }
}
