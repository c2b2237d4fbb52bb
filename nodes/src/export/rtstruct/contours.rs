//! Closed planar contours of one class on one slice: the outline of its pixels, traced along
//! the pixel edges (half a voxel from the centres).
//!
//! Why pixel edges and not an iso-line through the centres: planning systems and plastimatch
//! fill a contour by testing voxel centres against the polygon. Centres are never on a pixel
//! edge, so the filled mask is exactly the label map's, with no partial-voxel ambiguity.
//!
//! Holes and islands: each boundary is its own contour, outer ones clockwise and holes
//! counter-clockwise (as seen on the slice with i right and j down); a reader fills them by
//! the even-odd rule (a hole's voxels are inside two contours), which is what plastimatch,
//! Eclipse and SlicerRT do with several contours of one ROI on a slice. Pixels touching only
//! at a corner are separate contours (4-connectivity), so no contour crosses itself.

/// One contour: corner points `(x, y)` on the pixel-edge grid, the pixel `(i, j)` spanning
/// `x in i..i+1`, `y in j..j+1`; the voxel centre is at `(i + 0.5, j + 0.5)`. Closed (the
/// last point joins the first), without repeated or collinear points.
pub type Contour = Vec<(u32, u32)>;

const RIGHT: u8 = 1; // +x
const DOWN: u8 = 2; // +y
const LEFT: u8 = 4; // -x
const UP: u8 = 8; // -y

fn step(dir: u8) -> (i64, i64) {
    match dir {
        RIGHT => (1, 0),
        DOWN => (0, 1),
        LEFT => (-1, 0),
        _ => (0, -1),
    }
}

/// The turn to the right (clockwise on the slice) of `dir`.
fn right_of(dir: u8) -> u8 {
    match dir {
        RIGHT => DOWN,
        DOWN => LEFT,
        LEFT => UP,
        _ => RIGHT,
    }
}

/// Traces every boundary of `mask` (`h` rows of `w`, row-major; true = inside).
pub fn trace(mask: &[bool], w: usize, h: usize) -> Vec<Contour> {
    debug_assert_eq!(mask.len(), w * h);
    let at = |i: i64, j: i64| {
        i >= 0
            && j >= 0
            && (i as usize) < w
            && (j as usize) < h
            && mask[j as usize * w + i as usize]
    };
    // Directed edges leaving each corner, the inside on their right.
    let cw = w + 1;
    let mut out = vec![0u8; cw * (h + 1)];
    let mut any = false;
    for j in 0..h as i64 {
        for i in 0..w as i64 {
            if !at(i, j) {
                continue;
            }
            let c = |x: i64, y: i64| y as usize * cw + x as usize;
            if !at(i, j - 1) {
                out[c(i, j)] |= RIGHT;
                any = true;
            }
            if !at(i + 1, j) {
                out[c(i + 1, j)] |= DOWN;
                any = true;
            }
            if !at(i, j + 1) {
                out[c(i + 1, j + 1)] |= LEFT;
                any = true;
            }
            if !at(i - 1, j) {
                out[c(i, j + 1)] |= UP;
                any = true;
            }
        }
    }
    let mut contours = Vec::new();
    if !any {
        return contours;
    }
    for start in 0..out.len() {
        while out[start] != 0 {
            // Start on an edge; follow until back at its start.
            let first = out[start] & out[start].wrapping_neg(); // lowest bit
            let (mut x, mut y) = ((start % cw) as i64, (start / cw) as i64);
            let mut dir = first;
            let mut points: Contour = Vec::new();
            let mut prev_dir = 0u8;
            loop {
                let ci = y as usize * cw + x as usize;
                out[ci] &= !dir;
                if dir != prev_dir {
                    points.push((x as u32, y as u32));
                }
                prev_dir = dir;
                let (dx, dy) = step(dir);
                x += dx;
                y += dy;
                let ni = y as usize * cw + x as usize;
                if ni == start
                    && out[ni] & first == 0
                    && (x, y) == ((start % cw) as i64, (start / cw) as i64)
                {
                    // Closed: the start corner is reached again (its first edge is used).
                    break;
                }
                let outs = out[ni];
                debug_assert!(outs != 0, "an open boundary at ({x}, {y})");
                if outs == 0 {
                    break;
                }
                // At a corner shared by two diagonal pixels, two edges leave: turn right,
                // keeping to the pixel being walked round (4-connectivity).
                dir = if outs.count_ones() > 1 {
                    right_of(dir)
                } else {
                    outs
                };
                debug_assert!(outs & dir != 0);
            }
            // The start point is a corner unless the walk came back in the first direction.
            if prev_dir == first && points.len() > 1 {
                points.remove(0);
            }
            contours.push(points);
        }
    }
    contours
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mask(rows: &[&str]) -> (Vec<bool>, usize, usize) {
        let h = rows.len();
        let w = rows[0].len();
        (
            rows.iter()
                .flat_map(|r| r.bytes().map(|b| b == b'#'))
                .collect(),
            w,
            h,
        )
    }

    /// Even-odd fill of the contours at the voxel centres.
    fn fill(contours: &[Contour], w: usize, h: usize) -> Vec<bool> {
        let mut m = vec![false; w * h];
        for j in 0..h {
            for i in 0..w {
                let (px, py) = (i as f64 + 0.5, j as f64 + 0.5);
                let mut inside = false;
                for c in contours {
                    for n in 0..c.len() {
                        let (a, b) = (c[n], c[(n + 1) % c.len()]);
                        let (ax, ay, bx, by) = (a.0 as f64, a.1 as f64, b.0 as f64, b.1 as f64);
                        if (ay > py) != (by > py) && px < ax + (py - ay) / (by - ay) * (bx - ax) {
                            inside = !inside;
                        }
                    }
                }
                m[j * w + i] = inside;
            }
        }
        m
    }

    #[test]
    fn a_square_is_four_corners_on_the_pixel_edges() {
        let (m, w, h) = mask(&["....", ".##.", ".##.", "...."]);
        assert_eq!(trace(&m, w, h), vec![vec![(1, 1), (3, 1), (3, 3), (1, 3)]]);
    }

    #[test]
    fn rings_islands_and_diagonal_touches_fill_back_exactly() {
        let (m, w, h) = mask(&[
            "#######..#",
            "#.....#.#.",
            "#.###.#...",
            "#.#.#.#.##",
            "#.###.#.##",
            "#.....#...",
            "#######.#.",
        ]);
        let c = trace(&m, w, h);
        // outer ring + its hole, the island + its hole, 2 diagonal pixels top right, the
        // block, and the lone pixel at the bottom
        assert_eq!(c.len(), 8, "{c:?}");
        assert_eq!(fill(&c, w, h), m);
        for contour in &c {
            let mut seen = std::collections::BTreeSet::new();
            assert!(
                contour.iter().all(|p| seen.insert(*p)),
                "self-touching: {contour:?}"
            );
        }
    }

    #[test]
    fn random_masks_fill_back_exactly() {
        let mut s = 12345u64;
        for _ in 0..200 {
            let (w, h) = (13, 9);
            let m: Vec<bool> = (0..w * h)
                .map(|_| {
                    s = s
                        .wrapping_mul(6364136223846793005)
                        .wrapping_add(1442695040888963407);
                    (s >> 33) % 5 < 2
                })
                .collect();
            let c = trace(&m, w, h);
            assert_eq!(fill(&c, w, h), m);
        }
    }
}
