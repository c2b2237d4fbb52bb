//! Figures of one label map without a reference: volume, components, extent, flags.

use super::components::components;
use super::grid::{BBox, LabelGrid};
use crate::value::{Cell, Geometry};

/// The QC columns after `class_id`, `class_name`.
pub const COLUMNS: [&str; 8] = [
    "voxels",
    "volume_ml",
    "components",
    "largest_component_fraction",
    "bbox_min_mm",
    "bbox_max_mm",
    "extent_mm",
    "flags",
];

/// QC cells of class `id` (all of it inside `bbox`, `count` voxels).
pub fn qc_cells(
    grid: &LabelGrid,
    id: i32,
    count: u64,
    bbox: &BBox,
    geometry: &Geometry,
    fragmented_below: f64,
) -> Vec<Cell> {
    let voxel_ml = voxel_volume_mm3(geometry) / 1000.0;
    if count == 0 {
        let mut cells = vec![Cell::Int(0), Cell::Float(0.0), Cell::Int(0)];
        cells.extend([Cell::Empty, Cell::Empty, Cell::Empty, Cell::Empty]);
        cells.push(Cell::Text("empty".into()));
        return cells;
    }
    let (n, largest) = components(grid, id, bbox);
    let fraction = largest as f64 / count as f64;
    let (lo, hi) = lps_box(bbox, geometry);
    let extent = [0, 1, 2].map(|a| hi[a] - lo[a]);
    let flags = if fraction < fragmented_below {
        "fragmented"
    } else {
        ""
    };
    vec![
        Cell::Int(count as i64),
        Cell::Float(count as f64 * voxel_ml),
        Cell::Int(n as i64),
        Cell::Float(fraction),
        Cell::Text(triple(lo)),
        Cell::Text(triple(hi)),
        Cell::Text(triple(extent)),
        Cell::Text(flags.into()),
    ]
}

/// |det| of the affine's 3x3 part: one voxel's volume in mm^3.
pub fn voxel_volume_mm3(g: &Geometry) -> f64 {
    let a = &g.affine_lps;
    (a[0][0] * (a[1][1] * a[2][2] - a[1][2] * a[2][1])
        - a[0][1] * (a[1][0] * a[2][2] - a[1][2] * a[2][0])
        + a[0][2] * (a[1][0] * a[2][1] - a[1][1] * a[2][0]))
        .abs()
}

/// The LPS box (mm) around the centres of the voxels in `bbox`: the corners of the index box
/// mapped through the affine (the tensor's axes are k, j, i).
fn lps_box(bbox: &BBox, g: &Geometry) -> ([f64; 3], [f64; 3]) {
    let mut lo = [f64::INFINITY; 3];
    let mut hi = [f64::NEG_INFINITY; 3];
    for c in 0..8 {
        let pick = |axis: usize, bit: usize| {
            (if c >> bit & 1 == 1 {
                bbox.hi[axis] - 1
            } else {
                bbox.lo[axis]
            }) as f64
        };
        let (i, j, k) = (pick(2, 0), pick(1, 1), pick(0, 2));
        for r in 0..3 {
            let a = &g.affine_lps[r];
            let x = a[0] * i + a[1] * j + a[2] * k + a[3];
            lo[r] = lo[r].min(x);
            hi[r] = hi[r].max(x);
        }
    }
    (lo, hi)
}

fn triple(v: [f64; 3]) -> String {
    format!("{:.2} {:.2} {:.2}", v[0], v[1], v[2])
}
