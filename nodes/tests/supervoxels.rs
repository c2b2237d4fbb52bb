//! The `supervoxels` node (3D SLIC) on the TotalSegmentator example CT: tiling of the body,
//! count, connectivity, the effect of compactness, agreement with scikit-image
//! (scripts/oracles/slic_skimage.py), cancellation and param errors.

mod common;

use serde_json::{json, Value as Json};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::Instant;
use tch::{Kind, Tensor};
use vistaflow_nodes::io::nifti;
use vistaflow_nodes::node::{CancelToken, Ctx, Inputs, NoProgress, Node, NodeError};
use vistaflow_nodes::supervoxels::Supervoxels;
use vistaflow_nodes::value::{Geometry, Value, Volume};

/// The slab of the example CT the tests use, `[k0, k1)` of its 112 slices (all j, i): 24
/// slices keep scikit-image's run (the slow part) to about 3 s.
const SLAB: [i64; 2] = [44, 68];
const AIR: f32 = -800.0;

fn ct_path() -> Option<PathBuf> {
    Some(common::data_dir()?.join("totalsegmentator/example_ct.nii.gz"))
}

/// The slab as an image (its geometry moved to the slab's first voxel).
fn slab() -> Option<&'static Volume> {
    static V: OnceLock<Option<Volume>> = OnceLock::new();
    V.get_or_init(|| {
        let p = ct_path()?;
        let full = common::image(&p, nifti::read(&p, false, &Ctx::cpu()));
        let t = full.data().narrow(0, SLAB[0], SLAB[1] - SLAB[0]);
        let mut g = *full.geometry();
        for r in 0..3 {
            g.affine_lps[r][3] += g.affine_lps[r][2] * SLAB[0] as f64;
        }
        Some(Volume::new(t, g).unwrap())
    })
    .as_ref()
}

fn params(over: Json) -> vistaflow_nodes::params::Params {
    let mut p: vistaflow_nodes::params::Params = serde_json::from_value(over).unwrap();
    for spec in &Supervoxels.spec().params {
        if let Some(d) = &spec.default {
            p.entry(spec.name.to_string()).or_insert(d.clone());
        }
    }
    p
}

fn run_with(ctx: &Ctx, image: &Volume, over: Json) -> Result<Vec<i32>, NodeError> {
    let inputs = Inputs::from([("image".to_string(), Value::Image(image.clone()))]);
    let mut out = Supervoxels.run(ctx, inputs, &params(over))?;
    match out.remove("labels") {
        Some(Value::Labels(l)) => {
            assert_eq!(l.volume.kind(), Kind::Int);
            assert_eq!(l.volume.spatial_shape(), image.spatial_shape());
            assert_eq!(l.volume.geometry(), image.geometry());
            Ok(Vec::<i32>::try_from(&l.volume.data().view(-1)).unwrap())
        }
        other => panic!("no labels: {other:?}"),
    }
}

fn run(image: &Volume, over: Json) -> Vec<i32> {
    run_with(&Ctx::cpu(), image, over).unwrap()
}

fn hu(image: &Volume) -> Vec<f32> {
    Vec::<f32>::try_from(&image.data().to_kind(Kind::Float).view(-1)).unwrap()
}

/// The default run on the slab, shared by the tests that only read it.
fn default_labels() -> Option<&'static Vec<i32>> {
    static L: OnceLock<Option<Vec<i32>>> = OnceLock::new();
    L.get_or_init(|| {
        let v = slab()?;
        let t = Instant::now();
        let l = run(v, json!({}));
        eprintln!("supervoxels on {:?}: {:?}", v.spatial_shape(), t.elapsed());
        Some(l)
    })
    .as_ref()
}

fn count(labels: &[i32]) -> usize {
    labels.iter().copied().max().unwrap_or(0) as usize
}

#[test]
fn supervoxels_tile_the_body_and_number_about_n_segments() {
    let (Some(v), Some(l)) = (slab(), default_labels()) else {
        return;
    };
    let hu = hu(v);
    for (x, (&h, &id)) in hu.iter().zip(l).enumerate() {
        assert_eq!(h >= AIR, id > 0, "voxel {x}: {h} HU has id {id}");
    }
    // 1..N all present.
    let n = count(l);
    let mut seen = vec![false; n + 1];
    for &id in l {
        seen[id as usize] = true;
    }
    assert!(
        seen[1..].iter().all(|s| *s),
        "ids are not 1..{n} contiguous"
    );
    // Measured: 312 of 400 asked (318 on the whole volume): grid seeds that land on the
    // body, then small fragments merged away. scikit-image makes 303 on this slab.
    eprintln!("supervoxels: {n} of 400");
    assert!(
        (200..=800).contains(&n),
        "{n} supervoxels for n_segments 400"
    );
}

/// The 6-connected pieces of each id: 1 for every id.
#[test]
fn every_supervoxel_is_one_6_connected_piece() {
    let (Some(v), Some(l)) = (slab(), default_labels()) else {
        return;
    };
    let [d, h, w] = v.spatial_shape().map(|x| x as usize);
    let mut seen = vec![false; l.len()];
    let mut pieces = vec![0usize; count(l) + 1];
    for s in 0..l.len() {
        if l[s] == 0 || seen[s] {
            continue;
        }
        pieces[l[s] as usize] += 1;
        seen[s] = true;
        let mut stack = vec![s];
        while let Some(x) = stack.pop() {
            let (k, j, i) = (x / (h * w), (x / w) % h, x % w);
            let mut nb = Vec::with_capacity(6);
            if k > 0 {
                nb.push(x - h * w)
            }
            if k + 1 < d {
                nb.push(x + h * w)
            }
            if j > 0 {
                nb.push(x - w)
            }
            if j + 1 < h {
                nb.push(x + w)
            }
            if i > 0 {
                nb.push(x - 1)
            }
            if i + 1 < w {
                nb.push(x + 1)
            }
            for y in nb {
                if !seen[y] && l[y] == l[s] {
                    seen[y] = true;
                    stack.push(y);
                }
            }
        }
    }
    let split: Vec<usize> = (1..pieces.len()).filter(|&i| pieces[i] != 1).collect();
    assert!(split.is_empty(), "supervoxels in several pieces: {split:?}");
}

/// Mean over supervoxels of (bounding-box diagonal in voxels, HU standard deviation).
fn shape_stats(l: &[i32], hu: &[f32], shape: [usize; 3]) -> (f64, f64) {
    let [_, h, w] = shape;
    let n = count(l);
    let mut lo = vec![[usize::MAX; 3]; n + 1];
    let mut hi = vec![[0usize; 3]; n + 1];
    let mut m = vec![[0f64; 3]; n + 1];
    for (x, &id) in l.iter().enumerate() {
        let id = id as usize;
        let p = [x / (h * w), (x / w) % h, x % w];
        for a in 0..3 {
            lo[id][a] = lo[id][a].min(p[a]);
            hi[id][a] = hi[id][a].max(p[a]);
        }
        let v = hu[x] as f64;
        m[id][0] += 1.0;
        m[id][1] += v;
        m[id][2] += v * v;
    }
    let (mut diag, mut sd) = (0.0, 0.0);
    for id in 1..=n {
        let e: f64 = (0..3)
            .map(|a| ((hi[id][a] - lo[id][a] + 1) as f64).powi(2))
            .sum();
        diag += e.sqrt();
        let mean = m[id][1] / m[id][0];
        sd += (m[id][2] / m[id][0] - mean * mean).max(0.0).sqrt();
    }
    (diag / n as f64, sd / n as f64)
}

/// Compactness trades intensity homogeneity for shape: a larger one must give supervoxels
/// with smaller boxes but more mixed HU. A wrong weighting (e.g. compactness not squared, or
/// spatial distance not divided by the step) moves these far or the wrong way.
#[test]
fn larger_compactness_gives_compacter_less_homogeneous_supervoxels() {
    let (Some(v), Some(l)) = (slab(), default_labels()) else {
        return;
    };
    let hu = hu(v);
    let shape = v.spatial_shape().map(|x| x as usize);
    let (diag_lo, sd_lo) = shape_stats(l, &hu, shape);
    let hi = run(v, json!({ "compactness": 1.0 }));
    let (diag_hi, sd_hi) = shape_stats(&hi, &hu, shape);
    eprintln!(
        "compactness 0.01: box diagonal {diag_lo:.1} vox, HU sd {sd_lo:.1}; \
         1.0: {diag_hi:.1} vox, HU sd {sd_hi:.1}"
    );
    assert!(diag_hi < 0.9 * diag_lo, "{diag_hi} vs {diag_lo}");
    assert!(sd_hi > 1.2 * sd_lo, "{sd_hi} vs {sd_lo}");
}

/// Adjusted Rand index of two labelings over the voxels where `a` is > 0 (Hubert & Arabie).
fn ari(a: &[i32], b: &[i32]) -> f64 {
    let mut table: HashMap<(i32, i32), f64> = HashMap::new();
    let (mut ra, mut rb): (HashMap<i32, f64>, HashMap<i32, f64>) = Default::default();
    let mut n = 0.0;
    for (&x, &y) in a.iter().zip(b) {
        if x > 0 {
            *table.entry((x, y)).or_default() += 1.0;
            *ra.entry(x).or_default() += 1.0;
            *rb.entry(y).or_default() += 1.0;
            n += 1.0;
        }
    }
    let c2 = |x: f64| x * (x - 1.0) / 2.0;
    let index: f64 = table.values().map(|&v| c2(v)).sum();
    let sa: f64 = ra.values().map(|&v| c2(v)).sum();
    let sb: f64 = rb.values().map(|&v| c2(v)).sum();
    let expected = sa * sb / c2(n);
    (index - expected) / (0.5 * (sa + sb) - expected)
}

fn read_i32(p: &std::path::Path) -> Vec<i32> {
    let bytes = std::fs::read(p).unwrap();
    bytes
        .chunks_exact(4)
        .map(|b| i32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect()
}

/// Against scikit-image 0.25 with the same window, mask, smoothing and an equivalent
/// compactness (the oracle explains the mapping), two ways:
/// - its k-means core (`_slic_cython`) started from our grid seeds, both without
///   connectivity enforcement: this checks the distance, the spatial-then-intensity passes
///   and the centre updates. Not equal voxel for voxel: skimage's search windows come from a
///   grid over the whole crop (air included) rather than +-2S, and it stops only after
///   `max_iterations`; so the check is a high adjusted Rand index (ARI);
/// - the public `slic`, which seeds a masked image by k-means on random mask points: SLIC
///   depends on its seeds, so two runs of skimage itself with different random states agree
///   only to ARI ~0.40-0.43 here (measured), and we ask for less than that.
#[test]
fn agrees_with_scikit_image() {
    let (Some(p), Some(v), Some(ours)) = (ct_path(), slab(), default_labels()) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let stem = dir.path().join("skimage");
    let [_, h, w] = v.spatial_shape();
    let t = Instant::now();
    let out = std::process::Command::new(common::python())
        .arg(common::repo().join("scripts/oracles/slic_skimage.py"))
        .arg(&p)
        .args([SLAB[0], SLAB[1], 0, h, 0, w].map(|x| x.to_string()))
        .arg(&stem)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "oracle failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let info: Json = serde_json::from_slice(&out.stdout).unwrap();
    eprintln!("skimage ({:?}): {info}", t.elapsed());
    // Same voxels on both sides.
    let sum: f64 = hu(v).iter().map(|x| *x as f64).sum();
    assert_eq!(sum, info["hu_sum"].as_f64().unwrap(), "the crops differ");
    let theirs = read_i32(&stem.with_extension("slic.raw"));
    let core = read_i32(&stem.with_extension("core.raw"));
    assert_eq!(theirs.len(), ours.len());
    for (x, (&a, &b)) in ours.iter().zip(&theirs).enumerate() {
        assert_eq!(a > 0, b > 0, "voxel {x}: body masks differ ({a} vs {b})");
    }
    let loose = run(v, json!({ "enforce_connectivity": false }));
    let core_score = ari(&loose, &core);
    let score = ari(ours, &theirs);
    // A partition that ignores intensity, for scale.
    let cubes = ari(&run(v, json!({ "compactness": 1.0 })), &theirs);
    eprintln!(
        "ARI vs skimage core from our seeds: {core_score:.3}; vs skimage slic: {score:.3} \
         (grid-like compactness 1.0: {cubes:.3})"
    );
    assert!(core_score > 0.8, "ARI vs skimage's core {core_score}");
    assert!(score > 0.2, "ARI vs skimage's slic {score}");
}

#[test]
fn a_cancelled_run_stops() {
    let Some(v) = slab() else { return };
    let cancel = CancelToken::new();
    cancel.cancel();
    let ctx = Ctx::new(tch::Device::Cpu, cancel, std::sync::Arc::new(NoProgress));
    assert!(matches!(
        run_with(&ctx, v, json!({})),
        Err(NodeError::Cancelled)
    ));
}

#[test]
fn bad_params_and_inputs_are_refused_with_a_hint() {
    let small = Volume::new(
        Tensor::full([4, 5, 6], 40.0, (Kind::Float, tch::Device::Cpu)),
        Geometry::axis_aligned([1.0; 3], [0.0; 3]),
    )
    .unwrap();
    for (over, want) in [
        (json!({ "n_segments": 0 }), "n_segments must be at least 1"),
        (json!({ "window": [1000.0, -1000.0] }), "lo < hi"),
        (json!({ "compactness": -1.0 }), "compactness must be"),
        (json!({ "sigma": -0.5 }), "sigma must be"),
        (json!({ "max_iterations": 0 }), "max_iterations must be"),
    ] {
        match run_with(&Ctx::cpu(), &small, over.clone()) {
            Err(NodeError::Invalid(m)) => assert!(m.contains(want), "{over}: {m}"),
            other => panic!("{over}: expected Invalid, got {other:?}"),
        }
    }
    let two = Volume::new(
        Tensor::zeros([2, 4, 5, 6], (Kind::Float, tch::Device::Cpu)),
        Geometry::axis_aligned([1.0; 3], [0.0; 3]),
    )
    .unwrap();
    match run_with(&Ctx::cpu(), &two, json!({})) {
        Err(NodeError::Invalid(m)) => assert!(m.contains("one channel"), "{m}"),
        other => panic!("expected Invalid, got {other:?}"),
    }
    // A tiny all-soft-tissue block still works: every voxel gets an id.
    let l = run(&small, json!({ "n_segments": 4 }));
    assert!(l.iter().all(|x| *x > 0));
}

/// Timing on the whole example CT (not a check; run with `--ignored --nocapture`).
#[test]
#[ignore]
fn timing_on_the_whole_volume() {
    let Some(p) = ct_path() else { return };
    let full = common::image(&p, nifti::read(&p, false, &Ctx::cpu()));
    let t = Instant::now();
    let l = run(&full, json!({}));
    eprintln!(
        "whole {:?}: {} supervoxels in {:?}",
        full.spatial_shape(),
        count(&l),
        t.elapsed()
    );
}
