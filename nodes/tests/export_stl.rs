//! STL export of label maps: surface properties on synthetic volumes, and on the
//! TotalSegmentator example segmentation checked by trimesh (scripts/oracles/stl_check.py).
//!
//! The real-data tests skip, with a message, only when data/ is absent (scripts/fetch-data.sh);
//! they need the oracle python (scripts/setup-python.sh; VISTAFLOW_PYTHON or
//! ~/.cache/vistaflow/venv/bin/python) with trimesh.

mod common;

use common::{ctx, data_dir, python, repo};
use serde_json::{json, Value as Json};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Instant;
use tch::{Device, Tensor};
use vistaflow_nodes::export::mesh::{
    class_extents, class_mesh, file_name, write_stl, ClassExtent, Mesh, MeshOptions,
};
use vistaflow_nodes::io::LoadNifti;
use vistaflow_nodes::node::{CancelToken, Ctx, Node, NodeError, ProgressSink};
use vistaflow_nodes::value::{ClassTable, Geometry, LabelMap, Volume};

const RAW: MeshOptions = MeshOptions {
    smooth_iterations: 0,
    step: 1,
};
const SMOOTH: MeshOptions = MeshOptions {
    smooth_iterations: 10,
    step: 1,
};
const STEP2: MeshOptions = MeshOptions {
    smooth_iterations: 0,
    step: 2,
};

/// Some classes of example_seg.nii.gz: ids and names as in TotalSegmentator's class map
/// (the key order of data/totalsegmentator/example_seg_fast/statistics.json, from 1). The
/// adrenal gland (184 voxels of 3 mm, a few voxels thick) is the small structure.
const CLASSES: [(u32, &str); 6] = [
    (1, "spleen"),
    (2, "kidney_right"),
    (3, "kidney_left"),
    (5, "liver"),
    (7, "pancreas"),
    (9, "adrenal_gland_left"),
];

// ---------------------------------------------------------------------------------------------
// Helpers.

/// A label map of `voxels` (`[k][j][i]` order, i fastest) with `affine` and `classes`.
fn label_map(
    dims_kji: [i64; 3],
    voxels: &[u8],
    affine: [[f64; 4]; 4],
    classes: &[(u32, &str)],
) -> LabelMap {
    let t = Tensor::from_slice(voxels).reshape(dims_kji);
    let table: ClassTable = classes.iter().map(|(i, n)| (*i, n.to_string())).collect();
    LabelMap::new(
        Volume::new(t, Geometry { affine_lps: affine }).unwrap(),
        table,
    )
    .unwrap()
}

fn det3(a: &[[f64; 4]; 4]) -> f64 {
    a[0][0] * (a[1][1] * a[2][2] - a[1][2] * a[2][1])
        - a[0][1] * (a[1][0] * a[2][2] - a[1][2] * a[2][0])
        + a[0][2] * (a[1][0] * a[2][1] - a[1][1] * a[2][0])
}

/// An oblique, anisotropic, mirroring-free affine: rotation by 35 degrees about (1, 2, 3)
/// times spacing (0.8, 1.7, 2.5), origin (-20, 13, 140).
fn oblique_affine() -> [[f64; 4]; 4] {
    let (x, y, z) = {
        let n = (1.0f64 + 4.0 + 9.0).sqrt();
        (1.0 / n, 2.0 / n, 3.0 / n)
    };
    let (s, c) = 35f64.to_radians().sin_cos();
    let r = [
        [
            c + x * x * (1.0 - c),
            x * y * (1.0 - c) - z * s,
            x * z * (1.0 - c) + y * s,
        ],
        [
            y * x * (1.0 - c) + z * s,
            c + y * y * (1.0 - c),
            y * z * (1.0 - c) - x * s,
        ],
        [
            z * x * (1.0 - c) - y * s,
            z * y * (1.0 - c) + x * s,
            c + z * z * (1.0 - c),
        ],
    ];
    let sp = [0.8, 1.7, 2.5];
    let t = [-20.0, 13.0, 140.0];
    let mut a = [[0.0; 4]; 4];
    for row in 0..3 {
        for col in 0..3 {
            a[row][col] = r[row][col] * sp[col];
        }
        a[row][3] = t[row];
    }
    a[3][3] = 1.0;
    a
}

fn assert_closed(m: &Mesh, what: &str) {
    if let Err(e) = m.check_closed() {
        panic!("{what}: not closed: {e}");
    }
    assert!(
        m.signed_volume() > 0.0,
        "{what}: volume {}",
        m.signed_volume()
    );
}

/// example_seg.nii.gz through the `load_nifti` node.
fn load_seg(data: &Path) -> LabelMap {
    let path = data.join("totalsegmentator/example_seg.nii.gz");
    let params = json!({ "path": path, "labels": true });
    let out = LoadNifti
        .run(&ctx(), Default::default(), params.as_object().unwrap())
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let value = out.into_values().next().expect("load_nifti gave no output");
    common::labels(&path, value)
}

/// What trimesh says about `files` (each with the affine of its volume).
fn oracle(files: &[PathBuf], affine: &[[f64; 4]; 4], scratch: &Path) -> Vec<Json> {
    let spec: Vec<Json> = files
        .iter()
        .map(|p| json!({ "path": p, "affine_lps": affine }))
        .collect();
    let spec_path = scratch.join("stl_check_spec.json");
    std::fs::write(&spec_path, serde_json::to_vec(&spec).unwrap()).unwrap();
    let out = Command::new(python())
        .arg(repo().join("scripts/oracles/stl_check.py"))
        .arg(&spec_path)
        .output()
        .expect("running scripts/oracles/stl_check.py");
    assert!(
        out.status.success(),
        "stl_check.py failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice::<Vec<Json>>(&out.stdout).unwrap()
}

fn num(j: &Json, key: &str) -> f64 {
    j[key]
        .as_f64()
        .unwrap_or_else(|| panic!("{key} missing in {j}"))
}

fn bounds(j: &Json, key: &str) -> [[f64; 3]; 2] {
    let b = &j[key];
    let v = |r: usize| -> [f64; 3] { std::array::from_fn(|a| b[r][a].as_f64().unwrap()) };
    [v(0), v(1)]
}

/// Checks one file as trimesh reads it; returns its volume deviation from
/// voxel count x voxel volume (relative).
fn check_file(what: &str, r: &Json, e: &ClassExtent, voxel_mm3: f64, bbox_tol_voxels: f64) -> f64 {
    assert!(
        r["header"].as_str().unwrap().contains("SPACE=LPS"),
        "{what}: header {}",
        r["header"]
    );
    assert_eq!(
        r["watertight"], true,
        "{what}: not watertight per trimesh: {r}"
    );
    assert_eq!(
        r["winding_consistent"], true,
        "{what}: winding inconsistent per trimesh: {r}"
    );
    let vol = num(r, "volume");
    assert!(vol > 0.0, "{what}: trimesh volume {vol} is not positive");
    // The surface hugs the voxels: its extent, in voxel indices, is the class's bounding box
    // of voxel centres +- half a voxel, to within `bbox_tol_voxels`.
    let [lo, hi] = bounds(r, "bounds_index");
    for a in 0..3 {
        let (want_lo, want_hi) = (e.min[a] as f64 - 0.5, e.max[a] as f64 + 0.5);
        assert!(
            (lo[a] - want_lo).abs() <= bbox_tol_voxels
                && (hi[a] - want_hi).abs() <= bbox_tol_voxels,
            "{what}: axis {a}: mesh spans {}..{} voxels, the class {}..{}",
            lo[a],
            hi[a],
            want_lo,
            want_hi
        );
    }
    let want = e.count as f64 * voxel_mm3;
    (vol - want) / want
}

// ---------------------------------------------------------------------------------------------
// Synthetic volumes (the public API; the extraction's own unit tests are in the lib).

#[test]
fn all_2x2x2_configurations_are_closed_in_any_geometry() {
    let affines = [
        Geometry::axis_aligned([1.0, 1.0, 1.0], [0.0; 3]).affine_lps,
        // Mirrored (negative determinant): triangles must be reversed.
        Geometry::axis_aligned([-0.7, 0.7, 3.0], [5.0, -2.0, 1.0]).affine_lps,
        oblique_affine(),
    ];
    for affine in affines {
        let det = det3(&affine).abs();
        for config in 1..256u32 {
            let v: Vec<u8> = (0..8).map(|c| (config >> c & 1) as u8).collect();
            let lm = label_map([2, 2, 2], &v, affine, &[(1, "x")]);
            let m = class_mesh(&lm, 1, &RAW).unwrap().unwrap();
            assert_closed(&m, &format!("config {config:08b} affine {affine:?}"));
            if config.count_ones() == 1 {
                // A lone voxel encloses half a voxel.
                assert!((m.signed_volume() - 0.5 * det).abs() < 1e-9 * det);
            }
            let s = class_mesh(&lm, 1, &SMOOTH).unwrap().unwrap();
            assert_closed(&s, &format!("smoothed config {config:08b}"));
            assert_eq!(s.triangles, m.triangles, "smoothing changed the triangles");
        }
    }
}

#[test]
fn random_volumes_and_checkerboards_are_closed() {
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut rnd = |n: u64| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state % n
    };
    for case in 0..60 {
        let d = [1 + rnd(9) as i64, 1 + rnd(9) as i64, 1 + rnd(9) as i64];
        let n = (d[0] * d[1] * d[2]) as usize;
        let v: Vec<u8> = if case % 3 == 0 {
            (0..n)
                .map(|f| {
                    let (i, j, k) = (
                        f as i64 % d[2],
                        f as i64 / d[2] % d[1],
                        f as i64 / d[2] / d[1],
                    );
                    1 + ((i + j + k) % 2) as u8 // two interlocked classes
                })
                .collect()
        } else {
            (0..n).map(|_| rnd(3) as u8).collect()
        };
        let lm = label_map(d, &v, oblique_affine(), &[(1, "a"), (2, "b")]);
        for opts in [&RAW, &SMOOTH, &STEP2] {
            for class in [1, 2] {
                if let Some(m) = class_mesh(&lm, class, opts).unwrap() {
                    assert_closed(
                        &m,
                        &format!("case {case} dims {d:?} class {class} {opts:?}"),
                    );
                }
            }
        }
    }
}

#[test]
fn names_errors_progress_and_cancellation() {
    assert_eq!(file_name(5, "liver"), "5_liver.stl");
    assert_eq!(
        file_name(12, " left  kidney/cyst "),
        "12_left__kidney_cyst.stl"
    );
    let dir = tempfile::tempdir().unwrap();
    let eye = Geometry::axis_aligned([1.0; 3], [0.0; 3]).affine_lps;

    let empty = label_map([3, 3, 3], &[0; 27], eye, &[(1, "x")]);
    let err = write_stl(dir.path(), &empty, &RAW, &ctx()).unwrap_err();
    assert!(
        matches!(&err, NodeError::Invalid(m) if m.contains("empty")),
        "{err}"
    );

    let mut v = [0u8; 27];
    v[13] = 3;
    let other = label_map([3, 3, 3], &v, eye, &[(1, "x")]);
    let err = write_stl(dir.path(), &other, &RAW, &ctx()).unwrap_err();
    assert!(
        matches!(&err, NodeError::Invalid(m) if m.contains("class table")),
        "{err}"
    );

    let bad = MeshOptions {
        smooth_iterations: 0,
        step: 0,
    };
    assert!(matches!(
        write_stl(dir.path(), &other, &bad, &ctx()),
        Err(NodeError::Invalid(_))
    ));

    // Progress per class; a warning for ids the table does not name; class 7 (absent) skipped.
    #[derive(Default)]
    struct Rec(Mutex<Vec<(u64, u64)>>, Mutex<Vec<String>>);
    impl ProgressSink for Rec {
        fn progress(&self, d: u64, t: u64, _: &str) {
            self.0.lock().unwrap().push((d, t));
        }
        fn warn(&self, m: &str) {
            self.1.lock().unwrap().push(m.into());
        }
    }
    let mut v = [0u8; 27];
    v[0] = 1;
    v[26] = 2;
    v[13] = 4;
    let lm = label_map([3, 3, 3], &v, eye, &[(1, "a b"), (2, "c"), (7, "gone")]);
    let rec = Arc::new(Rec::default());
    let c = Ctx::new(Device::Cpu, CancelToken::new(), rec.clone());
    let out = dir.path().join("new/sub");
    let files = write_stl(&out, &lm, &RAW, &c).unwrap();
    assert_eq!(files, [out.join("1_a_b.stl"), out.join("2_c.stl")]);
    assert_eq!(rec.0.lock().unwrap().last(), Some(&(2, 2)));
    let warnings = rec.1.lock().unwrap();
    assert!(warnings.iter().any(|w| w.contains("[4]")), "{warnings:?}");
    // Leftover temporary files: none.
    assert_eq!(std::fs::read_dir(&out).unwrap().count(), 2);

    let token = CancelToken::new();
    token.cancel();
    let c = Ctx::new(
        Device::Cpu,
        token,
        Arc::new(vistaflow_nodes::node::NoProgress),
    );
    assert!(matches!(
        write_stl(&out, &lm, &RAW, &c),
        Err(NodeError::Cancelled)
    ));
}

// ---------------------------------------------------------------------------------------------
// TotalSegmentator example, checked by trimesh.

/// Exports CLASSES of `labels` with each option set; checks every file with trimesh; returns
/// per class the relative volume deviation of (raw, smoothed, step 2) and prints a table.
fn export_and_check(labels: &LabelMap, what: &str, scratch: &Path) -> BTreeMap<u32, [f64; 3]> {
    let extents = class_extents(labels).unwrap();
    let affine = labels.volume.geometry().affine_lps;
    let voxel_mm3 = det3(&affine).abs();
    let mut dev: BTreeMap<u32, [f64; 3]> = BTreeMap::new();
    let variants = [
        ("raw", &RAW, 1.0e-3),
        ("smoothed", &SMOOTH, 1.0),
        ("step2", &STEP2, 1.0),
    ];
    for (v, (name, opts, tol)) in variants.iter().enumerate() {
        let dir = scratch.join(format!("{what}-{name}"));
        let t0 = Instant::now();
        let files = write_stl(&dir, labels, opts, &ctx()).unwrap();
        let secs = t0.elapsed().as_secs_f64();
        let want: Vec<PathBuf> = CLASSES
            .iter()
            .map(|(i, n)| dir.join(file_name(*i, n)))
            .collect();
        assert_eq!(files, want);
        let report = oracle(&files, &affine, scratch);
        for ((id, cname), r) in CLASSES.iter().zip(&report) {
            let e = &extents[&(*id as i64)];
            let d = check_file(&format!("{what} {name} {cname}"), r, e, voxel_mm3, *tol);
            dev.entry(*id).or_default()[v] = d;
        }
        eprintln!("{what} {name}: {} classes in {secs:.3} s", files.len());
    }
    eprintln!("{what}: volume deviation from voxel count x {voxel_mm3:.3} mm^3 (raw / smoothed / step 2):");
    for (id, name) in CLASSES {
        let d = dev[&id];
        eprintln!(
            "  {id:>3} {name:<20} {:>6} voxels  {:+6.2}%  {:+6.2}%  {:+6.2}%",
            extents[&(id as i64)].count,
            100.0 * d[0],
            100.0 * d[1],
            100.0 * d[2]
        );
    }
    dev
}

/// Tolerances on the relative volume deviation (raw, smoothed, step 2). Large organs are
/// held to 3% at full resolution; the adrenal gland (a few voxels thick) loses more where
/// the surface cuts its edges, and the 2x decimation of it is coarse.
fn tolerance(id: u32) -> [f64; 3] {
    match id {
        9 => [0.10, 0.10, 0.25],
        7 => [0.03, 0.03, 0.10],
        _ => [0.03, 0.03, 0.05],
    }
}

#[test]
fn totalsegmentator_classes_are_watertight_and_in_place() {
    let Some(data) = data_dir() else { return };
    let scratch = tempfile::tempdir().unwrap();
    let seg = load_seg(&data);
    let table: ClassTable = CLASSES.iter().map(|(i, n)| (*i, n.to_string())).collect();
    let labels = LabelMap::new(seg.volume.clone(), table).unwrap();
    let dev = export_and_check(&labels, "axial", scratch.path());
    for (id, name) in CLASSES {
        for (v, what) in ["raw", "smoothed", "step 2"].iter().enumerate() {
            let (d, tol) = (dev[&id][v], tolerance(id)[v]);
            assert!(
                d.abs() <= tol,
                "{name} {what}: volume off by {:.2}% (> {:.0}%)",
                100.0 * d,
                100.0 * tol
            );
        }
    }

    // The same voxels on an oblique, anisotropic grid: volumes follow |det|, deviations are
    // the same (the mesh in voxel space does not change).
    let oblique = LabelMap::new(
        Volume::new(
            seg.volume.data().shallow_clone(),
            Geometry {
                affine_lps: oblique_affine(),
            },
        )
        .unwrap(),
        labels.classes.clone(),
    )
    .unwrap();
    let dev_o = export_and_check(&oblique, "oblique", scratch.path());
    for (id, name) in CLASSES {
        for v in 0..3 {
            let (a, b) = (dev[&id][v], dev_o[&id][v]);
            // Smoothing runs in mm, so anisotropy changes it a little; the rest is exact up to
            // f32 coordinates in the file.
            let tol = if v == 1 { 0.02 } else { 1e-4 };
            assert!(
                (a - b).abs() <= tol,
                "{name} variant {v}: axial {a:+.5} vs oblique {b:+.5}"
            );
            assert!(
                b.abs() <= tolerance(id)[v],
                "{name} oblique variant {v}: {:+.2}%",
                100.0 * b
            );
        }
    }
}

#[test]
fn whole_totalsegmentator_seg_exports_every_class() {
    let Some(data) = data_dir() else { return };
    let scratch = tempfile::tempdir().unwrap();
    let seg = load_seg(&data); // empty class table: every id present, as label_<id>
    let extents = class_extents(&seg).unwrap();
    let dir = scratch.path().join("all");
    let t0 = Instant::now();
    let files = write_stl(&dir, &seg, &MeshOptions::default(), &ctx()).unwrap();
    let secs = t0.elapsed().as_secs_f64();
    eprintln!(
        "whole seg ({:?} voxels, {} classes), default options {:?}: {secs:.3} s",
        seg.volume.spatial_shape(),
        files.len(),
        MeshOptions::default()
    );
    assert_eq!(files.len(), extents.len());
    for (f, id) in files.iter().zip(extents.keys()) {
        assert_eq!(
            f.file_name().unwrap().to_str().unwrap(),
            format!("{id}_label_{id}.stl")
        );
    }
    let affine = seg.volume.geometry().affine_lps;
    for r in oracle(&files, &affine, scratch.path()) {
        assert_eq!(r["watertight"], true, "{r}");
        assert_eq!(r["winding_consistent"], true, "{r}");
        assert!(num(&r, "volume") > 0.0, "{r}");
    }
}
