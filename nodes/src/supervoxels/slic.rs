//! SLIC k-means over (position, intensity) inside the body mask.
//!
//! Distance of voxel `v` to centre `c` (scikit-image's `_slic_cython` multiplied through by
//! `compactness^2`): `(I_v - I_c)^2 + compactness^2 * (d(v, c) / S)^2`, with `I` the windowed,
//! smoothed intensity in [0, 1], `d` in mm when spacing-aware (else in voxels) and `S` the
//! seed step in the same unit. Each centre only claims voxels within +-2S of it, which is what
//! makes SLIC linear in the volume rather than in volume x clusters.

use crate::node::{Ctx, NodeError};
use rayon::prelude::*;

/// What the clustering needs besides the image.
pub struct SlicParams {
    pub n_segments: usize,
    pub compactness: f64,
    /// Voxel size along k, j, i (mm when spacing-aware, else ones).
    pub spacing: [f64; 3],
    pub max_iterations: usize,
}

/// Cluster index per voxel (`-1`: air, or a body voxel no window reached).
pub struct Clustering {
    pub labels: Vec<i32>,
    /// Seeds placed (some may end up empty).
    pub n_clusters: usize,
}

/// A cluster centre: position in voxels (k, j, i) and mean intensity.
#[derive(Clone, Copy, Debug)]
struct Centre {
    pos: [f64; 3],
    value: f64,
}

/// The seed step `S` (in the unit of `spacing`): the edge of a cube holding 1/n_segments of
/// the body, so that a grid of step `S` puts about `n_segments` seeds inside the body.
fn step(n_body: usize, p: &SlicParams) -> f64 {
    let cell = p.spacing.iter().product::<f64>();
    (n_body as f64 * cell / p.n_segments as f64).cbrt()
}

/// Seeds on a regular grid over the body's bounding box, `S` apart (per axis
/// `S / spacing` voxels, evenly spread over the box), keeping those that land on the body.
fn seeds(image: &[f32], mask: &[bool], shape: [usize; 3], p: &SlicParams, s: f64) -> Vec<Centre> {
    let [_, nj, ni] = shape;
    let (mut lo, mut hi) = ([usize::MAX; 3], [0usize; 3]);
    for (idx, _) in mask.iter().enumerate().filter(|(_, m)| **m) {
        let v = [idx / (nj * ni), (idx / ni) % nj, idx % ni];
        for a in 0..3 {
            lo[a] = lo[a].min(v[a]);
            hi[a] = hi[a].max(v[a] + 1);
        }
    }
    // Positions along each axis: n = round(extent / step) >= 1 cells, a seed in each centre.
    let axis = |a: usize| -> Vec<usize> {
        let extent = (hi[a] - lo[a]) as f64;
        let n = ((extent * p.spacing[a] / s).round() as usize).max(1);
        (0..n)
            .map(|m| lo[a] + ((m as f64 + 0.5) * extent / n as f64) as usize)
            .collect()
    };
    let (ks, js, is) = (axis(0), axis(1), axis(2));
    let mut out = Vec::new();
    for &k in &ks {
        for &j in &js {
            for &i in &is {
                let idx = (k * nj + j) * ni + i;
                if mask[idx] {
                    out.push(Centre {
                        pos: [k as f64, j as f64, i as f64],
                        value: image[idx] as f64,
                    });
                }
            }
        }
    }
    if out.is_empty() {
        // A body too thin for the grid (every grid point in air): one seed on its first voxel.
        if let Some(idx) = mask.iter().position(|m| *m) {
            out.push(Centre {
                pos: [
                    (idx / (nj * ni)) as f64,
                    ((idx / ni) % nj) as f64,
                    (idx % ni) as f64,
                ],
                value: image[idx] as f64,
            });
        }
    }
    out
}

/// Clusters the body voxels of `image` (smoothed, windowed to [0, 1]); `ctx` gets progress
/// per iteration and may cancel between iterations.
///
/// Two stages, as scikit-image's masked SLIC (maskSLIC, Irving 2016): up to
/// `max_iterations` of purely spatial k-means inside the body first, which spreads the grid
/// seeds evenly over the body (grid points near its edge fall in air and are dropped, leaving
/// the rim under-seeded), then up to `max_iterations` of SLIC proper. Each stage stops early
/// once no voxel changes cluster: that is a fixed point, further iterations change nothing.
pub fn slic(
    image: &[f32],
    mask: &[bool],
    shape: [usize; 3],
    p: &SlicParams,
    ctx: &Ctx,
) -> Result<Clustering, NodeError> {
    let n_body = mask.iter().filter(|m| **m).count();
    let mut labels = vec![-1i32; image.len()];
    if n_body == 0 {
        return Ok(Clustering {
            labels,
            n_clusters: 0,
        });
    }
    let s = step(n_body, p);
    let mut centres = seeds(image, mask, shape, p, s);
    let k = Kmeans {
        image,
        mask,
        shape,
        half: std::array::from_fn(|a| 2.0 * s / p.spacing[a]),
        spatial_weight: (p.compactness / s).powi(2) as f32,
        sp2: std::array::from_fn(|a| (p.spacing[a] * p.spacing[a]) as f32),
    };
    let mut dist = vec![f32::INFINITY; image.len()];
    let total = 2 * p.max_iterations as u64;
    let mut done = 0u64;
    for intensity in [false, true] {
        labels.fill(-1);
        for _ in 0..p.max_iterations {
            ctx.check_cancelled()?;
            let changed = k.assign(&centres, &mut labels, &mut dist, intensity);
            done += 1;
            ctx.progress(done, total, "iterations");
            if changed == 0 {
                break;
            }
            update(&mut centres, &labels, image, shape);
        }
        // The spatial stage's early stop skips the rest of its iterations in the progress.
        done = p.max_iterations as u64;
    }
    Ok(Clustering {
        labels,
        n_clusters: centres.len(),
    })
}

/// The fixed inputs of the assignment step.
struct Kmeans<'a> {
    image: &'a [f32],
    mask: &'a [bool],
    shape: [usize; 3],
    /// Window half-widths in voxels per axis: 2S.
    half: [f64; 3],
    /// `(compactness / S)^2`, weighting squared distances against squared intensity.
    spatial_weight: f32,
    /// Squared voxel size per axis (k, j, i).
    sp2: [f32; 3],
}

impl Kmeans<'_> {
    /// Gives each body voxel the nearest centre among those whose window holds it (by
    /// position only when `!intensity`); returns how many voxels changed cluster. One k-plane
    /// per task; centres in index order so ties go to the first, as in scikit-image. A voxel
    /// no window reaches keeps its previous cluster.
    fn assign(
        &self,
        centres: &[Centre],
        labels: &mut [i32],
        dist: &mut [f32],
        intensity: bool,
    ) -> usize {
        let [_, nj, ni] = self.shape;
        let plane = nj * ni;
        // Each centre's window [lo, hi] (inclusive) per axis, clamped to the volume.
        let windows: Vec<[[usize; 2]; 3]> = centres
            .iter()
            .map(|c| {
                std::array::from_fn(|a| {
                    let n = self.shape[a] as f64;
                    let lo = (c.pos[a] - self.half[a]).ceil().clamp(0.0, n - 1.0) as usize;
                    let hi = (c.pos[a] + self.half[a]).floor().clamp(0.0, n - 1.0) as usize;
                    [lo, hi]
                })
            })
            .collect();
        // Spatial only: distance alone (any positive weight gives the same order).
        let (wv, ws) = if intensity {
            (1.0f32, self.spatial_weight)
        } else {
            (0.0, 1.0)
        };
        let sp2 = self.sp2;
        labels
            .par_chunks_mut(plane)
            .zip(dist.par_chunks_mut(plane))
            .enumerate()
            .map(|(k, (lab, dis))| {
                let before = lab.to_vec();
                dis.fill(f32::INFINITY);
                let base = k * plane;
                let mask = &self.mask[base..base + plane];
                let image = &self.image[base..base + plane];
                for (ci, (c, w)) in centres.iter().zip(&windows).enumerate() {
                    if k < w[0][0] || k > w[0][1] {
                        continue;
                    }
                    let dk = sp2[0] * (c.pos[0] as f32 - k as f32).powi(2);
                    let cv = c.value as f32;
                    for j in w[1][0]..=w[1][1] {
                        let dj = dk + sp2[1] * (c.pos[1] as f32 - j as f32).powi(2);
                        let row = j * ni;
                        for i in w[2][0]..=w[2][1] {
                            let o = row + i;
                            if !mask[o] {
                                continue;
                            }
                            let di = sp2[2] * (c.pos[2] as f32 - i as f32).powi(2);
                            let dv = image[o] - cv;
                            let d = wv * dv * dv + ws * (dj + di);
                            if d < dis[o] {
                                dis[o] = d;
                                lab[o] = ci as i32;
                            }
                        }
                    }
                }
                lab.iter().zip(&before).filter(|(a, b)| a != b).count()
            })
            .sum()
    }
}

/// Moves each centre to the mean position and intensity of its voxels; an empty cluster keeps
/// its centre (scikit-image would make it NaN, which claims nothing either).
fn update(centres: &mut [Centre], labels: &[i32], image: &[f32], shape: [usize; 3]) {
    let [_, nj, ni] = shape;
    let plane = nj * ni;
    let n = centres.len();
    let sums = labels
        .par_chunks(plane)
        .enumerate()
        .fold(
            || vec![[0f64; 5]; n],
            |mut acc, (k, lab)| {
                for (o, &l) in lab.iter().enumerate() {
                    if l < 0 {
                        continue;
                    }
                    let a = &mut acc[l as usize];
                    a[0] += 1.0;
                    a[1] += k as f64;
                    a[2] += (o / ni) as f64;
                    a[3] += (o % ni) as f64;
                    a[4] += image[k * plane + o] as f64;
                }
                acc
            },
        )
        .reduce(
            || vec![[0f64; 5]; n],
            |mut a, b| {
                for (x, y) in a.iter_mut().zip(&b) {
                    for t in 0..5 {
                        x[t] += y[t];
                    }
                }
                a
            },
        );
    for (c, s) in centres.iter_mut().zip(&sums) {
        if s[0] > 0.0 {
            c.pos = [s[1] / s[0], s[2] / s[0], s[3] / s[0]];
            c.value = s[4] / s[0];
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two flat halves of a block: with a small compactness no cluster straddles the edge.
    #[test]
    fn clusters_follow_an_intensity_edge() {
        let shape = [8, 8, 16];
        let n = 8 * 8 * 16;
        let image: Vec<f32> = (0..n).map(|x| if x % 16 < 8 { 0.2 } else { 0.8 }).collect();
        let mask = vec![true; n];
        let p = SlicParams {
            n_segments: 8,
            compactness: 0.01,
            spacing: [1.0; 3],
            max_iterations: 10,
        };
        let c = slic(&image, &mask, shape, &p, &Ctx::cpu()).unwrap();
        assert!(c.labels.iter().all(|l| *l >= 0));
        for l in 0..c.n_clusters as i32 {
            let sides: std::collections::BTreeSet<bool> = (0..n)
                .filter(|x| c.labels[*x] == l)
                .map(|x| x % 16 < 8)
                .collect();
            assert!(sides.len() <= 1, "cluster {l} straddles the edge");
        }
    }
}
