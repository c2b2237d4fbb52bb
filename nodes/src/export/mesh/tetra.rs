//! Surface extraction by marching tetrahedra.
//!
//! Every cube of 8 neighbouring samples is split into 6 tetrahedra around its main diagonal
//! (corner 0 to corner 7: the Kuhn/Freudenthal triangulation). The split is the same in every
//! cube, so two cubes sharing a face split it along the same diagonal and the surface has no
//! cracks. Within a tetrahedron the surface is the level set of the linear interpolant of
//! inside = 1 / outside = 0 at 1/2: a triangle cutting off one corner (or three), or a quad
//! separating two from two. Such a level set is always a closed 2-manifold (no sample is on
//! the level), whatever the input: voxels touching only by an edge or a corner stay
//! separate, and no ambiguous case exists. Each surface vertex lies on one edge of the
//! triangulation and is shared (welded) by every triangle that crosses that edge.
//!
//! The triangles of each of the 256 cube configurations are generated once, in code: the
//! winding of each is chosen with exact integer arithmetic (vertices at edge midpoints, in
//! doubled coordinates) so that its normal points from the inside corners to the outside
//! ones. Vertex positions along the edges may then move (see [`extract`]) without changing
//! the connectivity or the orientation.

use super::decimate::Field;
use super::surface::Mesh;
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::OnceLock;

/// An edge of the triangulation inside a cube: (lower corner, upper corner). Corner `c` has
/// offset `(c & 1, c >> 1 & 1, c >> 2 & 1)`; along every edge of the 6 tetrahedra the upper
/// corner's bits contain the lower one's, so the edge is `lower + (upper ^ lower)`.
type CubeEdge = (u8, u8);

/// The surface triangles of each cube configuration (bit `c` set = corner `c` inside).
type CaseTable = Vec<Vec<[CubeEdge; 3]>>;

/// The 6 tetrahedra of a cube: corners 0, e_a, e_a + e_b, 7 for each order (a, b, c) of axes.
pub(crate) fn tetrahedra() -> [[u8; 4]; 6] {
    let orders = [
        [0, 1, 2],
        [0, 2, 1],
        [1, 0, 2],
        [1, 2, 0],
        [2, 0, 1],
        [2, 1, 0],
    ];
    orders.map(|[a, b, _]| {
        let v1 = 1u8 << a;
        [0, v1, v1 | 1 << b, 7]
    })
}

/// Corner offset in doubled integer coordinates.
fn corner2(c: u8) -> [i64; 3] {
    [
        2 * (c & 1) as i64,
        2 * (c >> 1 & 1) as i64,
        2 * (c >> 2 & 1) as i64,
    ]
}

/// Doubled coordinates of the midpoint of an edge.
fn mid2((a, b): CubeEdge) -> [i64; 3] {
    let (p, q) = (corner2(a), corner2(b));
    [(p[0] + q[0]) / 2, (p[1] + q[1]) / 2, (p[2] + q[2]) / 2]
}

fn edge(a: u8, b: u8) -> CubeEdge {
    (a.min(b), a.max(b))
}

/// `tri` wound so that its normal points away from corner `inside` (exact: `inside` is
/// never in the triangle's plane).
fn orient(mut tri: [CubeEdge; 3], inside: u8) -> [CubeEdge; 3] {
    let [p0, p1, p2] = tri.map(mid2);
    let d = |a: [i64; 3], b: [i64; 3]| [a[0] - b[0], a[1] - b[1], a[2] - b[2]];
    let (u, v) = (d(p1, p0), d(p2, p0));
    let n = [
        u[1] * v[2] - u[2] * v[1],
        u[2] * v[0] - u[0] * v[2],
        u[0] * v[1] - u[1] * v[0],
    ];
    // corner2 is already doubled; the midpoints are in the same doubled units.
    let a = d(corner2(inside), p0);
    let side = n[0] * a[0] + n[1] * a[1] + n[2] * a[2];
    debug_assert!(
        side != 0,
        "an inside corner lies in its surface triangle's plane"
    );
    if side > 0 {
        tri.swap(1, 2);
    }
    tri
}

/// The triangles one tetrahedron contributes for the configuration `config` of its cube.
fn tetra_triangles(tet: [u8; 4], config: u32, out: &mut Vec<[CubeEdge; 3]>) {
    let is_in = |c: u8| config >> c & 1 == 1;
    let ins: Vec<u8> = tet.iter().copied().filter(|&c| is_in(c)).collect();
    let outs: Vec<u8> = tet.iter().copied().filter(|&c| !is_in(c)).collect();
    match (ins.as_slice(), outs.as_slice()) {
        ([a], [b, c, d]) => out.push(orient([edge(*a, *b), edge(*a, *c), edge(*a, *d)], *a)),
        ([a, b, c], [d]) => out.push(orient([edge(*a, *d), edge(*b, *d), edge(*c, *d)], *a)),
        ([a, b], [c, d]) => {
            // The quad ac, ad, bd, bc (neighbours share a corner), cut along ac-bd.
            let (ac, ad, bd, bc) = (edge(*a, *c), edge(*a, *d), edge(*b, *d), edge(*b, *c));
            out.push(orient([ac, ad, bd], *a));
            out.push(orient([ac, bd, bc], *a));
        }
        _ => {} // all inside or all outside
    }
}

/// The case table, generated on first use.
pub(crate) fn case_table() -> &'static CaseTable {
    static TABLE: OnceLock<CaseTable> = OnceLock::new();
    TABLE.get_or_init(|| {
        let tets = tetrahedra();
        (0..256u32)
            .map(|config| {
                let mut tris = Vec::new();
                for tet in tets {
                    tetra_triangles(tet, config, &mut tris);
                }
                tris
            })
            .collect()
    })
}

/// Smallest fraction of an edge between an inside sample and the surface (keeps vertices
/// of different edges apart when a block is barely occupied; see [`extract`]).
pub const MIN_EDGE_FRACTION: f64 = 0.1;

/// The surface of `field` in voxel index coordinates.
///
/// The vertex on the edge from an inside sample `a` to an outside sample `b` is placed at
/// `a + t (b - a)` with `t = clamp(f - 1/2, MIN_EDGE_FRACTION, 1/2)`, `f` being the fraction
/// of `a`'s block in the class. For full blocks (always, at step 1) `t = 1/2`: the midpoint,
/// i.e. the voxel boundary for axis edges. A block filled to `f` from the far side puts the
/// class's boundary at `a + (f - 1/2)` block along the axis, hence the rule.
pub(crate) fn extract(field: &Field) -> Mesh {
    let table = case_table();
    let [nx, ny, nz] = field.dims;
    let mut mesh = Mesh::default();
    if nx < 2 || ny < 2 || nz < 2 {
        return mesh;
    }
    let mut welded: HashMap<u64, u32, BuildHasherDefault<EdgeKeyHasher>> = HashMap::default();
    // Flat-index offsets of the 8 corners of a cube.
    let offsets: [usize; 8] = std::array::from_fn(|c| field.index(c & 1, c >> 1 & 1, c >> 2 & 1));
    for z in 0..nz - 1 {
        for y in 0..ny - 1 {
            for x in 0..nx - 1 {
                let base = field.index(x, y, z);
                let mut config = 0usize;
                for (c, off) in offsets.iter().enumerate() {
                    if field.inside(base + off) {
                        config |= 1 << c;
                    }
                }
                if config == 0 || config == 255 {
                    continue;
                }
                for tri in &table[config] {
                    let ids = tri.map(|(lo, hi)| {
                        let from = base + offsets[lo as usize];
                        let key = (from as u64) << 3 | (hi ^ lo) as u64;
                        *welded.entry(key).or_insert_with(|| {
                            let to = base + offsets[hi as usize];
                            let at = |c: u8| {
                                [
                                    x + (c & 1) as usize,
                                    y + (c >> 1 & 1) as usize,
                                    z + (c >> 2 & 1) as usize,
                                ]
                            };
                            let (pi, po, fi) = if field.inside(from) {
                                (at(lo), at(hi), field.fraction(from))
                            } else {
                                (at(hi), at(lo), field.fraction(to))
                            };
                            let t = (fi - 0.5).clamp(MIN_EDGE_FRACTION, 0.5);
                            let (a, b) = (field.position(pi), field.position(po));
                            mesh.vertices.push([
                                a[0] + t * (b[0] - a[0]),
                                a[1] + t * (b[1] - a[1]),
                                a[2] + t * (b[2] - a[2]),
                            ]);
                            (mesh.vertices.len() - 1) as u32
                        })
                    });
                    mesh.triangles.push(ids);
                }
            }
        }
    }
    mesh
}

/// A fast hasher for edge keys (flat sample index * 8 + direction): one multiply, with the
/// high bits folded down so that the table's low-bit buckets see them.
#[derive(Default)]
pub(crate) struct EdgeKeyHasher(u64);

impl Hasher for EdgeKeyHasher {
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.write_u64(self.0 ^ b as u64);
        }
    }
    fn write_u64(&mut self, k: u64) {
        let h = (k ^ self.0.rotate_left(5)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        self.0 = h ^ (h >> 31);
    }
    fn finish(&self) -> u64 {
        self.0
    }
}
