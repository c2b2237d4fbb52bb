//! Taubin lambda/mu smoothing, and setting a mesh's enclosed volume.
//!
//! Only vertex positions change, never the triangles: a closed, consistently oriented mesh
//! stays so. Each iteration is a shrinking Laplacian step (`lambda`) followed by an
//! inflating one (`mu`), which removes the voxel staircase without the shrinkage of plain
//! Laplacian smoothing (Taubin, "A signal processing approach to fair surface design",
//! SIGGRAPH 1995). What shrinkage remains is undone by [`restore_volume`]: every vertex moves
//! along its normal by one common distance, solved so that the volume reaches a target.

use super::surface::{norm, triangle_normal, Mesh};
use rayon::prelude::*;

/// Shrinking step.
pub const LAMBDA: f64 = 0.5;
/// Inflating step (|mu| > lambda; pass-band 1/lambda + 1/mu ~ 0.11).
pub const MU: f64 = -0.53;

/// Smooths `mesh` in place for `iterations` lambda/mu pairs (the volume shrinks slightly;
/// see [`restore_volume`]).
pub(crate) fn taubin(mesh: &mut Mesh, iterations: u32) {
    if iterations == 0 || mesh.triangles.is_empty() {
        return;
    }
    let ring = Neighbours::of(mesh);
    let mut next = mesh.vertices.clone();
    for _ in 0..iterations {
        for f in [LAMBDA, MU] {
            next.par_iter_mut().enumerate().for_each(|(v, out)| {
                let p = mesh.vertices[v];
                let ns = ring.of_vertex(v);
                if ns.is_empty() {
                    *out = p;
                    return;
                }
                let mut c = [0.0; 3];
                for &n in ns {
                    let q = mesh.vertices[n as usize];
                    for a in 0..3 {
                        c[a] += q[a];
                    }
                }
                let inv = 1.0 / ns.len() as f64;
                for a in 0..3 {
                    out[a] = p[a] + f * (c[a] * inv - p[a]);
                }
            });
            std::mem::swap(&mut mesh.vertices, &mut next);
        }
    }
}

/// Moves every vertex along its (area-weighted) normal by one common distance so that the
/// enclosed volume becomes `target`: Newton steps with dV/dd ~ area (vertex normals are
/// not face normals, so the estimate is a little high and convergence linear but fast).
/// The total distance is capped at `max_offset` (so a target far from the mesh's volume
/// cannot fold thin parts inside out); returns the distance moved.
pub(crate) fn restore_volume(mesh: &mut Mesh, target: f64, max_offset: f64) -> f64 {
    let mut moved = 0.0;
    for _ in 0..12 {
        let v = mesh.signed_volume();
        let area = mesh.area();
        if area <= 0.0 || (v - target).abs() <= 1e-9 * target.abs() {
            break;
        }
        let d = ((target - v) / area).clamp(-max_offset - moved, max_offset - moved);
        if d == 0.0 {
            break;
        }
        moved += d;
        let normals = vertex_normals(mesh);
        for (p, n) in mesh.vertices.iter_mut().zip(&normals) {
            for a in 0..3 {
                p[a] += d * n[a];
            }
        }
    }
    moved
}

/// Unit vertex normals: the area-weighted sum of the normals of the triangles around.
fn vertex_normals(mesh: &Mesh) -> Vec<[f64; 3]> {
    let mut n = vec![[0.0; 3]; mesh.vertices.len()];
    for t in &mesh.triangles {
        let tn = triangle_normal(mesh.corners(t));
        for &v in t {
            for a in 0..3 {
                n[v as usize][a] += tn[a];
            }
        }
    }
    for v in &mut n {
        let l = norm(*v);
        if l > 0.0 {
            *v = v.map(|x| x / l);
        }
    }
    n
}

/// The vertices joined to each vertex by an edge (compressed rows).
struct Neighbours {
    start: Vec<usize>,
    list: Vec<u32>,
}

impl Neighbours {
    fn of(mesh: &Mesh) -> Self {
        let mut pairs: Vec<(u32, u32)> = Vec::with_capacity(mesh.triangles.len() * 6);
        for t in &mesh.triangles {
            for e in 0..3 {
                let (a, b) = (t[e], t[(e + 1) % 3]);
                pairs.push((a, b));
                pairs.push((b, a));
            }
        }
        pairs.par_sort_unstable();
        pairs.dedup();
        let mut start = vec![0usize; mesh.vertices.len() + 1];
        for &(a, _) in &pairs {
            start[a as usize + 1] += 1;
        }
        for v in 0..mesh.vertices.len() {
            start[v + 1] += start[v];
        }
        Neighbours {
            start,
            list: pairs.into_iter().map(|(_, b)| b).collect(),
        }
    }

    fn of_vertex(&self, v: usize) -> &[u32] {
        &self.list[self.start[v]..self.start[v + 1]]
    }
}
