//! Exact squared Euclidean distance transform with anisotropic spacing (Felzenszwalb &
//! Huttenlocher's lower envelope of parabolas, one axis at a time): exact, O(voxels).

use rayon::prelude::*;

/// Squared distance (mm^2) of every voxel of a `[d, h, w]` grid to the nearest site.
/// `sites[v]` marks the sites; `spacing` is mm per step along (d, h, w). Voxels of a grid
/// without sites are `f64::INFINITY`.
pub fn squared_edt(sites: &[bool], shape: [usize; 3], spacing: [f64; 3]) -> Vec<f64> {
    let [d, h, w] = shape;
    let mut f: Vec<f64> = sites
        .iter()
        .map(|&s| if s { 0.0 } else { f64::INFINITY })
        .collect();
    let w2 = spacing[2] * spacing[2];
    let h2 = spacing[1] * spacing[1];
    let d2 = spacing[0] * spacing[0];
    // Along i (contiguous rows).
    f.par_chunks_mut(w)
        .for_each_init(|| Scratch::new(w), |s, row| s.transform_in_place(row, w2));
    // Along j: each k-plane independently, columns gathered into a buffer.
    f.par_chunks_mut(h * w).for_each_init(
        || (Scratch::new(h), vec![0.0; h]),
        |(s, col), plane| {
            for i in 0..w {
                for j in 0..h {
                    col[j] = plane[j * w + i];
                }
                s.transform_in_place(col, h2);
                for j in 0..h {
                    plane[j * w + i] = col[j];
                }
            }
        },
    );
    // Along k: one j at a time; the [d, w] slab of that j is gathered, transformed column by
    // column and written back. Slabs of different j are disjoint, so they run in parallel.
    let plane = h * w;
    let slabs: Vec<(usize, Vec<f64>)> = (0..h)
        .into_par_iter()
        .map_init(
            || Scratch::new(d),
            |s, j| {
                let mut slab = vec![0.0; d * w];
                for k in 0..d {
                    slab[k * w..(k + 1) * w]
                        .copy_from_slice(&f[k * plane + j * w..k * plane + j * w + w]);
                }
                let mut col = vec![0.0; d];
                for i in 0..w {
                    for k in 0..d {
                        col[k] = slab[k * w + i];
                    }
                    s.transform_in_place(&mut col, d2);
                    for k in 0..d {
                        slab[k * w + i] = col[k];
                    }
                }
                (j, slab)
            },
        )
        .collect();
    for (j, slab) in slabs {
        for k in 0..d {
            f[k * plane + j * w..k * plane + j * w + w].copy_from_slice(&slab[k * w..(k + 1) * w]);
        }
    }
    f
}

/// Buffers for the 1D transform of one line.
struct Scratch {
    /// Positions of the parabolas in the lower envelope.
    v: Vec<usize>,
    /// Boundaries between envelope parabolas.
    z: Vec<f64>,
    out: Vec<f64>,
}

impl Scratch {
    fn new(n: usize) -> Self {
        Scratch {
            v: vec![0; n],
            z: vec![0.0; n + 1],
            out: vec![0.0; n],
        }
    }

    /// `line[q] = min_p s2 (q - p)^2 + line[p]`; a line without finite values is left as is.
    fn transform_in_place(&mut self, line: &mut [f64], s2: f64) {
        let n = line.len();
        let Some(first) = line.iter().position(|x| x.is_finite()) else {
            return;
        };
        let (v, z) = (&mut self.v, &mut self.z);
        let mut k = 0usize;
        v[0] = first;
        z[0] = f64::NEG_INFINITY;
        z[1] = f64::INFINITY;
        for q in first + 1..n {
            let fq = line[q];
            if !fq.is_finite() {
                continue;
            }
            let qf = q as f64;
            loop {
                let p = v[k];
                let pf = p as f64;
                let s = ((fq + s2 * qf * qf) - (line[p] + s2 * pf * pf)) / (2.0 * s2 * (qf - pf));
                if s <= z[k] && k > 0 {
                    k -= 1;
                    continue;
                }
                if s <= z[k] {
                    // k == 0 and the new parabola is below the first everywhere.
                    v[0] = q;
                    z[0] = f64::NEG_INFINITY;
                    z[1] = f64::INFINITY;
                } else {
                    k += 1;
                    v[k] = q;
                    z[k] = s;
                    z[k + 1] = f64::INFINITY;
                }
                break;
            }
        }
        let mut k = 0usize;
        for q in 0..n {
            let qf = q as f64;
            while z[k + 1] < qf {
                k += 1;
            }
            let p = v[k];
            let dq = qf - p as f64;
            self.out[q] = s2 * dq * dq + line[p];
        }
        line.copy_from_slice(&self.out[..n]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Brute force over all sites.
    fn brute(sites: &[bool], shape: [usize; 3], sp: [f64; 3]) -> Vec<f64> {
        let [d, h, w] = shape;
        let pts: Vec<[usize; 3]> = (0..d * h * w)
            .filter(|&v| sites[v])
            .map(|v| [v / (h * w), (v / w) % h, v % w])
            .collect();
        (0..d * h * w)
            .map(|v| {
                let c = [v / (h * w), (v / w) % h, v % w];
                pts.iter()
                    .map(|p| {
                        (0..3)
                            .map(|a| ((c[a] as f64 - p[a] as f64) * sp[a]).powi(2))
                            .sum::<f64>()
                    })
                    .fold(f64::INFINITY, f64::min)
            })
            .collect()
    }

    #[test]
    fn equals_brute_force_on_random_anisotropic_grids() {
        let mut seed = 12345u64;
        let mut rnd = || {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (seed >> 33) as f64 / (1u64 << 31) as f64
        };
        for (shape, density) in [
            ([7, 9, 11], 0.02),
            ([5, 13, 6], 0.2),
            ([9, 4, 8], 0.5),
            ([3, 3, 3], 0.0),
        ] {
            let n = shape.iter().product();
            let sites: Vec<bool> = (0..n).map(|_| rnd() < density).collect();
            let sp = [2.5, 0.7, 1.1];
            let got = squared_edt(&sites, shape, sp);
            let want = brute(&sites, shape, sp);
            for (g, w) in got.iter().zip(&want) {
                assert!(
                    (g == w) || (g - w).abs() < 1e-9 * w.max(1.0),
                    "{shape:?}: {g} vs {w}"
                );
            }
        }
    }
}
