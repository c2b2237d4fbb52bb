//! [`Mesh`]: an indexed triangle mesh (welded vertices) and the measures the export and its
//! tests need: enclosed volume, area, closedness, bounds, placement through an affine.

use std::collections::HashMap;

/// A triangle mesh with shared vertices.
///
/// Triangles are wound counter-clockwise seen from outside (normals point out), so the
/// signed volume of a closed mesh is positive.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Mesh {
    /// Vertex positions (index space while extracting, LPS mm once placed).
    pub vertices: Vec<[f64; 3]>,
    /// Vertex indices of each triangle.
    pub triangles: Vec<[u32; 3]>,
}

impl Mesh {
    /// The three corners of triangle `t`.
    pub fn corners(&self, t: &[u32; 3]) -> [[f64; 3]; 3] {
        [
            self.vertices[t[0] as usize],
            self.vertices[t[1] as usize],
            self.vertices[t[2] as usize],
        ]
    }

    /// Enclosed volume by the divergence theorem: positive for a closed mesh whose normals
    /// point out (in the cube of the vertices' unit).
    pub fn signed_volume(&self) -> f64 {
        // Relative to the first vertex, so far-from-origin coordinates lose no precision.
        let Some(&o) = self.vertices.first() else {
            return 0.0;
        };
        let v: f64 = self
            .triangles
            .iter()
            .map(|t| {
                let [a, b, c] = self.corners(t).map(|p| sub(p, o));
                dot(a, cross(b, c))
            })
            .sum();
        v / 6.0
    }

    /// Total triangle area.
    pub fn area(&self) -> f64 {
        self.triangles
            .iter()
            .map(|t| norm(triangle_normal(self.corners(t))) / 2.0)
            .sum()
    }

    /// Ok when every undirected edge is used by exactly two triangles, once in each direction
    /// (a closed, consistently oriented 2-manifold surface); otherwise the first bad edge.
    pub fn check_closed(&self) -> Result<(), String> {
        let mut directed: HashMap<(u32, u32), u32> = HashMap::new();
        for (i, t) in self.triangles.iter().enumerate() {
            if t[0] == t[1] || t[1] == t[2] || t[0] == t[2] {
                return Err(format!("triangle {i} {t:?} repeats a vertex"));
            }
            if t.iter().any(|&v| v as usize >= self.vertices.len()) {
                return Err(format!("triangle {i} {t:?} names a missing vertex"));
            }
            for e in 0..3 {
                *directed.entry((t[e], t[(e + 1) % 3])).or_default() += 1;
            }
        }
        for (&(a, b), &n) in &directed {
            if n != 1 {
                return Err(format!("edge {a}->{b} is used {n} times in one direction"));
            }
            if !directed.contains_key(&(b, a)) {
                return Err(format!("edge {a}->{b} has no triangle on its other side"));
            }
        }
        Ok(())
    }

    /// Smallest and largest coordinate along each axis; `None` for an empty mesh.
    pub fn bounds(&self) -> Option<([f64; 3], [f64; 3])> {
        let first = *self.vertices.first()?;
        let mut lo = first;
        let mut hi = first;
        for p in &self.vertices {
            for a in 0..3 {
                lo[a] = lo[a].min(p[a]);
                hi[a] = hi[a].max(p[a]);
            }
        }
        Some((lo, hi))
    }

    /// Maps every vertex through the affine `m` (rows of a 4x4 matrix, last row 0 0 0 1) and,
    /// when `m` mirrors space (negative determinant), reverses every triangle so that normals
    /// still point out.
    pub fn transform(&mut self, m: &[[f64; 4]; 4]) {
        for p in &mut self.vertices {
            let q = *p;
            for (r, out) in p.iter_mut().enumerate() {
                *out = m[r][0] * q[0] + m[r][1] * q[1] + m[r][2] * q[2] + m[r][3];
            }
        }
        if det3(m) < 0.0 {
            for t in &mut self.triangles {
                t.swap(1, 2);
            }
        }
    }
}

/// Determinant of the upper-left 3x3 block of `m`.
pub(crate) fn det3(m: &[[f64; 4]; 4]) -> f64 {
    dot(
        [m[0][0], m[1][0], m[2][0]],
        cross([m[0][1], m[1][1], m[2][1]], [m[0][2], m[1][2], m[2][2]]),
    )
}

/// Twice the area-weighted normal of a triangle (not normalised).
pub(crate) fn triangle_normal([a, b, c]: [[f64; 3]; 3]) -> [f64; 3] {
    cross(sub(b, a), sub(c, a))
}

pub(crate) fn sub(a: [f64; 3], b: [f64; 3]) -> [f64; 3] {
    [a[0] - b[0], a[1] - b[1], a[2] - b[2]]
}

pub(crate) fn dot(a: [f64; 3], b: [f64; 3]) -> f64 {
    a[0] * b[0] + a[1] * b[1] + a[2] * b[2]
}

pub(crate) fn cross(a: [f64; 3], b: [f64; 3]) -> [f64; 3] {
    [
        a[1] * b[2] - a[2] * b[1],
        a[2] * b[0] - a[0] * b[2],
        a[0] * b[1] - a[1] * b[0],
    ]
}

pub(crate) fn norm(a: [f64; 3]) -> f64 {
    dot(a, a).sqrt()
}
