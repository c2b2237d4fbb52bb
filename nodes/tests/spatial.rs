//! `resample` and `crop_foreground` against SimpleITK and nibabel, on real CT and labels.
//!
//! Needs `scripts/fetch-data.sh` (data/) and `scripts/setup-python.sh` (SimpleITK, nibabel;
//! python from VISTAFLOW_PYTHON or ~/.cache/vistaflow/venv/bin/python). The oracle
//! (`scripts/oracles/spatial_sitk.py`) runs once per test process and writes its results to a
//! temporary folder. Tests skip, with a message, only when data/ is absent.
//!
//! "Interior" below means output voxels at least 2 voxels from every face of the output grid.
//! "Relative" agreement of linear results: |ours - itk| <= 1e-3 * max(|itk|, 1).

mod common;

use common::{python, repo};
use serde_json::Value as Json;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex, OnceLock};
use tch::{Device, Kind, Tensor};
use vistaflow_nodes::io::nifti;
use vistaflow_nodes::node::{CancelToken, Ctx, Node, NodeError, ProgressSink};
use vistaflow_nodes::spatial::{
    self, grid, resample_value, Grid, Interp, InterpChoice, Orientation, Outside, Target,
};
use vistaflow_nodes::value::{Geometry, LabelMap, Value, Volume};

fn data_dir() -> Option<PathBuf> {
    let d = std::env::var_os("VISTAFLOW_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join("data"));
    if d.join("totalsegmentator/example_ct.nii.gz").is_file() {
        Some(d)
    } else {
        eprintln!(
            "skipped: {} has no TotalSegmentator sample; run scripts/fetch-data.sh",
            d.display()
        );
        None
    }
}

/// The oracle's output folder (run once per process) and its cases.json.
fn oracle(data: &Path) -> &'static (tempfile::TempDir, Json) {
    static O: OnceLock<(tempfile::TempDir, Json)> = OnceLock::new();
    O.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let out = Command::new(python())
            .arg(repo().join("scripts/oracles/spatial_sitk.py"))
            .arg(data)
            .arg(dir.path())
            .output()
            .expect("running the SimpleITK oracle");
        assert!(
            out.status.success(),
            "spatial_sitk.py failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let cases: Json =
            serde_json::from_slice(&std::fs::read(dir.path().join("cases.json")).unwrap()).unwrap();
        (dir, cases)
    })
}

fn ts(data: &Path, rel: &str) -> PathBuf {
    data.join("totalsegmentator").join(rel)
}

fn ctx() -> Ctx {
    Ctx::cpu()
}

fn image(p: &Path) -> Volume {
    match nifti::read(p, false, &ctx()).unwrap_or_else(|e| panic!("{}: {e}", p.display())) {
        Value::Image(v) => v,
        _ => unreachable!(),
    }
}

fn labels(p: &Path) -> LabelMap {
    match nifti::read(p, true, &ctx()).unwrap_or_else(|e| panic!("{}: {e}", p.display())) {
        Value::Labels(l) => l,
        _ => unreachable!(),
    }
}

/// The grid of an oracle case (ITK size/origin/spacing/direction, LPS).
fn case_grid(case: &Json) -> Grid {
    let g = &case["grid"];
    let f = |k: &str| -> Vec<f64> {
        g[k].as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap())
            .collect()
    };
    let (size, origin, spacing, dir) = (f("size"), f("origin"), f("spacing"), f("direction"));
    let mut a = [[0.0; 4]; 4];
    for r in 0..3 {
        for c in 0..3 {
            a[r][c] = dir[3 * r + c] * spacing[c];
        }
        a[r][3] = origin[r];
    }
    a[3][3] = 1.0;
    Grid {
        shape: [size[2] as i64, size[1] as i64, size[0] as i64],
        geometry: Geometry { affine_lps: a },
    }
}

fn assert_grid(what: &str, got: &Grid, want: &Grid, tol_mm: f64) {
    assert_eq!(got.shape, want.shape, "{what}: shape [k,j,i]");
    let (a, b) = (got.geometry.affine_lps, want.geometry.affine_lps);
    for r in 0..4 {
        for c in 0..4 {
            assert!(
                (a[r][c] - b[r][c]).abs() <= tol_mm,
                "{what}: affine[{r}][{c}] {} vs ITK {}\n ours {a:?}\n itk  {b:?}",
                a[r][c],
                b[r][c]
            );
        }
    }
}

/// Largest |a - b| and largest |a - b| / max(|b|, 1), over the interior (2 voxels in).
fn diff_stats(a: &Tensor, b: &Tensor, border: i64) -> (f64, f64) {
    let cut = |t: &Tensor| {
        let mut t = t.to_kind(Kind::Double);
        for d in 0..3 {
            let n = t.size()[d];
            t = t.narrow(d as i64, border, n - 2 * border);
        }
        t
    };
    let (a, b) = (cut(a), cut(b));
    let d = (&a - &b).abs();
    let rel = &d / b.abs().clamp_min(1.0);
    (d.max().double_value(&[]), rel.max().double_value(&[]))
}

fn resample(v: &Value, target: Target) -> Value {
    resample_value(v, &target, InterpChoice::Auto, None, &ctx()).unwrap()
}

fn spacing(s: [f64; 3]) -> Target {
    Target::Spacing {
        spacing: Some(s),
        orientation: None,
    }
}

fn vol(v: &Value) -> &Volume {
    v.volume()
}

/// Linear chain `src -> grid(case) -> back`, both legs against ITK.
fn linear_leg(what: &str, input: &Value, target: Target, case: &Json, itk_file: &Path) -> Value {
    let ours = resample(input, target);
    assert_grid(what, &Grid::of(vol(&ours)), &case_grid(case), 1e-4);
    let itk = image(itk_file);
    assert_eq!(
        vol(&ours).kind(),
        Kind::Float,
        "{what}: linear output is float32"
    );
    let (abs_in, rel_in) = diff_stats(vol(&ours).data(), itk.data(), 2);
    let (abs_all, _) = diff_stats(vol(&ours).data(), itk.data(), 0);
    eprintln!(
        "{what}: interior max |diff| {abs_in:.3e} (relative {rel_in:.3e}); whole grid {abs_all:.3e}"
    );
    assert!(
        rel_in <= 1e-3,
        "{what}: interior relative difference {rel_in}"
    );
    ours
}

#[test]
fn linear_matches_simpleitk_to_1_5mm_and_back() {
    let Some(data) = data_dir() else { return };
    let (dir, cases) = oracle(&data);
    let ct = Value::Image(image(&ts(&data, "example_ct.nii.gz")));
    let ct15 = linear_leg(
        "CT 3 mm -> 1.5 mm",
        &ct,
        spacing([1.5; 3]),
        &cases["ct_15"],
        &dir.path().join("ct_15.nii.gz"),
    );
    linear_leg(
        "CT 1.5 mm -> original grid",
        &ct15,
        Target::Grid(Grid::of(vol(&ct))),
        &cases["ct_15_back"],
        &dir.path().join("ct_15_back.nii.gz"),
    );
}

#[test]
fn linear_matches_simpleitk_on_uneven_downsampling_and_back() {
    let Some(data) = data_dir() else { return };
    let (dir, cases) = oracle(&data);
    let ct = Value::Image(image(&ts(&data, "aorta_report/example_ct.nii.gz")));
    let down = linear_leg(
        "contrast CT 1.5 mm -> [2.0, 2.3, 3.1] mm",
        &ct,
        spacing([2.0, 2.3, 3.1]),
        &cases["aorta_ct_down"],
        &dir.path().join("aorta_ct_down.nii.gz"),
    );
    linear_leg(
        "contrast CT [2.0, 2.3, 3.1] mm -> original grid",
        &down,
        Target::Grid(Grid::of(vol(&ct))),
        &cases["aorta_ct_down_back"],
        &dir.path().join("aorta_ct_down_back.nii.gz"),
    );
}

#[test]
fn linear_matches_simpleitk_on_an_oblique_grid() {
    let Some(data) = data_dir() else { return };
    let (dir, cases) = oracle(&data);
    let ct = Value::Image(image(&ts(&data, "example_ct.nii.gz")));
    let g = case_grid(&cases["ct_oblique"]);
    let ours = resample(&ct, Target::Grid(g));
    let itk = image(&dir.path().join("ct_oblique.nii.gz"));
    // Interior here: voxels whose source point is 2 voxels inside the input on every axis.
    let m = grid::out_to_in(&Grid::of(vol(&ct)), &g).unwrap();
    let [nk, nj, ni] = g.shape;
    let opts = (Kind::Double, Device::Cpu);
    let ii = Tensor::arange(ni, opts).reshape([1, 1, ni]);
    let jj = Tensor::arange(nj, opts).reshape([1, nj, 1]);
    let kk = Tensor::arange(nk, opts).reshape([nk, 1, 1]);
    let shape = vol(&ct).spatial_shape();
    let mut inner = Tensor::ones([nk, nj, ni], (Kind::Bool, Device::Cpu));
    for r in 0..3 {
        let c = &ii * m[r][0] + &jj * m[r][1] + &kk * m[r][2] + m[r][3];
        let n = shape[2 - r] as f64;
        inner = inner.logical_and(&c.ge(2.0)).logical_and(&c.le(n - 3.0));
    }
    let a = vol(&ours).data().to_kind(Kind::Double);
    let b = itk.data().to_kind(Kind::Double);
    let d = (&a - &b).abs();
    let rel = (&d / b.abs().clamp_min(1.0)).masked_select(&inner);
    let count = inner.sum(Kind::Int64).int64_value(&[]);
    let rel_max = rel.max().double_value(&[]);
    let all_max = d.max().double_value(&[]);
    eprintln!(
        "oblique CT (10 deg z, 5 deg x, 2.2 mm): {count} interior voxels, max relative \
         {rel_max:.3e}; whole grid max |diff| {all_max:.3e}"
    );
    assert!(count > 100_000);
    assert!(
        rel_max <= 1e-3,
        "oblique interior relative difference {rel_max}"
    );
}

/// Number of voxels that differ.
fn mismatches(a: &Tensor, b: &Tensor) -> i64 {
    assert_eq!(a.size(), b.size());
    a.to_kind(Kind::Int64)
        .ne_tensor(&b.to_kind(Kind::Int64))
        .sum(Kind::Int64)
        .int64_value(&[])
}

#[test]
fn nearest_matches_simpleitk_exactly() {
    let Some(data) = data_dir() else { return };
    let (dir, cases) = oracle(&data);
    let seg = Value::Labels(labels(&ts(&data, "example_seg_fast_force_split.nii.gz")));
    let ct_grid = Grid::of(vol(&seg));
    let s15_for_back = resample(&seg, spacing([1.5; 3]));
    let mask = Value::Labels(labels(&ts(
        &data,
        "aorta_report/test_result/models/aorta.nii.gz",
    )));
    let check = |what: &str, ours: &Value, case: &str| {
        let itk = labels(&dir.path().join(format!("{case}.nii.gz")));
        assert_grid(what, &Grid::of(vol(ours)), &case_grid(&cases[case]), 1e-4);
        let Value::Labels(l) = ours else {
            panic!("{what}: labels in, labels out")
        };
        assert_eq!(l.volume.kind(), Kind::Uint8, "{what}: dtype kept");
        let n = mismatches(l.volume.data(), itk.volume.data());
        // Where a source point is halfway between voxels ITK's pick depends on its rounding
        // (it steps along each row by adding a delta); ours always goes up. So: ITK must equal
        // one of the 8 results with every tie broken either way (grid nudged 1e-4 voxel).
        let mut ok = l.volume.data().eq_tensor(itk.volume.data());
        let g = Grid::of(&l.volume);
        for s in 0..8 {
            let mut h = g;
            for a in 0..3 {
                let d = if s >> a & 1 == 1 { 1e-4 } else { -1e-4 };
                for r in 0..3 {
                    h.geometry.affine_lps[r][3] += d * g.geometry.affine_lps[r][a];
                }
            }
            let src = match case {
                "seg_15_back" => &s15_for_back,
                "aorta_on_ct" => &mask,
                _ => &seg,
            };
            let alt = resample(src, Target::Grid(h));
            ok = ok.logical_or(&vol(&alt).data().eq_tensor(itk.volume.data()));
        }
        let bad = ok.logical_not().sum(Kind::Int64).int64_value(&[]);
        eprintln!(
            "{what}: equal to ITK on {} of {} voxels; the other {n} are halfway points where \
             ITK broke the tie the other way; {bad} differ otherwise",
            l.volume.data().numel() as i64 - n,
            l.volume.data().numel()
        );
        assert_eq!(
            bad, 0,
            "{what}: nearest must equal ITK (up to tie-breaking)"
        );
    };
    let s15 = resample(&seg, spacing([1.5; 3]));
    check(
        "seg 3 mm -> 1.5 mm (ties at every other voxel)",
        &s15,
        "seg_15",
    );
    let back = resample(&s15, Target::Grid(ct_grid));
    check("seg 1.5 mm -> original grid", &back, "seg_15_back");
    let ob = resample(&seg, Target::Grid(case_grid(&cases["seg_oblique"])));
    check("seg onto an oblique grid", &ob, "seg_oblique");

    let ct = image(&ts(&data, "aorta_report/example_ct.nii.gz"));
    let on_ct = resample(&mask, Target::Grid(Grid::of(&ct)));
    check(
        "aorta mask (cropped grid) onto its CT",
        &on_ct,
        "aorta_on_ct",
    );
}

/// `fill: border` against ITK on an edge-replicated input (scripts/oracles/spatial_sitk.py,
/// case 6): the whole grid, edges included, since the edges are what `border` changes.
#[test]
fn border_fill_matches_simpleitk_on_an_edge_padded_input() {
    let Some(data) = data_dir() else { return };
    let (dir, cases) = oracle(&data);
    let ct = Value::Image(image(&ts(&data, "example_ct.nii.gz")));
    let seg = Value::Labels(labels(&ts(&data, "example_seg_fast_force_split.nii.gz")));
    let border = |v: &Value, case: &str| {
        let g = case_grid(&cases[case]);
        resample_value(
            v,
            &Target::Grid(g),
            InterpChoice::Auto,
            Some(Outside::Border),
            &ctx(),
        )
        .unwrap()
    };
    for case in ["ct_15_border", "ct_oblique_border"] {
        let ours = border(&ct, case);
        let itk = image(&dir.path().join(format!("{case}.nii.gz")));
        assert!(
            itk.data().min().double_value(&[]) > -30000.0,
            "{case}: the oracle's padding did not reach"
        );
        let (abs, rel) = diff_stats(vol(&ours).data(), itk.data(), 0);
        // Without `border` the grid's outer voxels are the fill: the test can tell.
        let filled = resample(&ct, Target::Grid(case_grid(&cases[case])));
        let (abs_fill, _) = diff_stats(vol(&filled).data(), itk.data(), 0);
        eprintln!("{case}: whole grid max |diff| {abs:.3e} (relative {rel:.3e}); with the default fill {abs_fill:.1}");
        assert!(rel <= 1e-3, "{case}: relative difference {rel}");
        assert!(abs_fill > 100.0, "{case}: the grid never leaves the input");
    }
    let ours = border(&seg, "seg_oblique_border");
    let itk = labels(&dir.path().join("seg_oblique_border.nii.gz"));
    let Value::Labels(l) = &ours else {
        unreachable!()
    };
    let n = mismatches(l.volume.data(), itk.volume.data());
    let total = l.volume.data().numel();
    eprintln!("seg onto the oblique grid with border: {n} of {total} voxels differ from ITK");
    // An oblique grid meets exact halfway points (where ITK breaks ties its own way) almost
    // never: a handful at most.
    assert!(n <= 10, "{n} voxels differ");
}

#[test]
fn ras_reorientation_is_an_exact_permutation_like_nibabel() {
    let Some(data) = data_dir() else { return };
    let (dir, cases) = oracle(&data);
    let ct = image(&ts(&data, "aorta_report/example_ct.nii.gz"));
    assert_eq!(Orientation::of(&ct.geometry().affine_lps).code(), "LPS");
    let ras = resample(
        &Value::Image(ct.clone()),
        Target::Spacing {
            spacing: None,
            orientation: Some(Orientation::parse("RAS").unwrap()),
        },
    );
    let want = image(&dir.path().join("aorta_ct_ras.nii.gz"));
    assert_eq!(cases["aorta_ct_ras"]["axcodes"], "RAS");
    let got = vol(&ras);
    assert_eq!(got.kind(), ct.kind(), "reorientation keeps the dtype");
    assert_eq!(got.data().size(), want.data().size());
    assert!(
        got.data().equal(want.data()),
        "voxels differ from nibabel's"
    );
    assert_grid("RAS affine", &Grid::of(got), &Grid::of(&want), 1e-4);
    assert_eq!(Orientation::of(&got.geometry().affine_lps).code(), "RAS");
    // And back to LPS is the original, bit for bit.
    let lps = resample(
        &ras,
        Target::Spacing {
            spacing: None,
            orientation: Some(Orientation::parse("LPS").unwrap()),
        },
    );
    assert!(vol(&lps).data().equal(ct.data()));
    assert_grid("LPS again", &Grid::of(vol(&lps)), &Grid::of(&ct), 1e-9);
    // A permuting code: voxel (i,j,k) of the source is at (k, nj-1-j, i) for "SAL"... check by
    // world position of a corner voxel instead of by formula.
    let sal = resample(
        &Value::Image(ct.clone()),
        Target::Spacing {
            spacing: None,
            orientation: Some(Orientation::parse("SAL").unwrap()),
        },
    );
    let g = vol(&sal).geometry().affine_lps;
    assert_eq!(Orientation::of(&g).code(), "SAL");
    let [nk, nj, ni] = ct.spatial_shape();
    assert_eq!(vol(&sal).spatial_shape(), [ni, nj, nk]);
    // Every voxel keeps its world position: compare the world point of output voxel (1,2,3).
    let w = |a: &[[f64; 4]; 4], v: [f64; 3]| -> [f64; 3] {
        let mut o = [0.0; 3];
        for r in 0..3 {
            o[r] = a[r][0] * v[0] + a[r][1] * v[1] + a[r][2] * v[2] + a[r][3];
        }
        o
    };
    let p = w(&g, [1.0, 2.0, 3.0]);
    let inv = grid::inverse(&ct.geometry().affine_lps).unwrap();
    let src = w(&inv, p);
    let (si, sj, sk) = (
        src[0].round() as i64,
        src[1].round() as i64,
        src[2].round() as i64,
    );
    assert_eq!(
        vol(&sal).data().int64_value(&[3, 2, 1]),
        ct.data().int64_value(&[sk, sj, si])
    );
}

fn dice_per_class(a: &Tensor, b: &Tensor) -> Vec<(i64, f64)> {
    let a = a.to_kind(Kind::Int64).reshape([-1]);
    let b = b.to_kind(Kind::Int64).reshape([-1]);
    let top = a.max().int64_value(&[]).max(b.max().int64_value(&[])) + 1;
    let ca = a.bincount::<Tensor>(None, top);
    let cb = b.bincount::<Tensor>(None, top);
    let both = a
        .masked_select(&a.eq_tensor(&b))
        .bincount::<Tensor>(None, top);
    let (ca, cb, both) = (
        Vec::<i64>::try_from(ca).unwrap(),
        Vec::<i64>::try_from(cb).unwrap(),
        Vec::<i64>::try_from(both).unwrap(),
    );
    (1..top as usize)
        .filter(|&c| ca[c] > 0)
        .map(|c| (c as i64, 2.0 * both[c] as f64 / (ca[c] + cb[c]) as f64))
        .collect()
}

#[test]
fn seg_round_trip_through_1_5mm_ras_keeps_dice() {
    let Some(data) = data_dir() else { return };
    // The 61-label 3 mm seg (RAS on disk) and the same seg turned LPS first, so that "RAS"
    // really permutes axes on the way.
    let seg = labels(&ts(&data, "example_seg_fast_force_split.nii.gz"));
    let lps = spatial::reorient(&seg.volume, Orientation::parse("LPS").unwrap()).unwrap();
    for (what, start) in [
        ("as stored (RAS)", seg.volume.clone()),
        ("reoriented to LPS", lps),
    ] {
        let v = Value::Labels(LabelMap {
            volume: start.clone(),
            classes: seg.classes.clone(),
        });
        let iso = resample(
            &v,
            Target::Spacing {
                spacing: Some([1.5; 3]),
                orientation: Some(Orientation::parse("RAS").unwrap()),
            },
        );
        assert_eq!(
            Orientation::of(&vol(&iso).geometry().affine_lps).code(),
            "RAS"
        );
        let back = resample(&iso, Target::Grid(Grid::of(&start)));
        let Value::Labels(b) = &back else { panic!() };
        assert_eq!(b.classes, seg.classes, "class table kept");
        let d = dice_per_class(start.data(), b.volume.data());
        let min = d.iter().map(|x| x.1).fold(1.0, f64::min);
        let mean = d.iter().map(|x| x.1).sum::<f64>() / d.len() as f64;
        eprintln!(
            "seg round trip {what}: {} classes, Dice min {min:.4} mean {mean:.4}",
            d.len()
        );
        assert!(d.len() > 40);
        for (c, x) in &d {
            assert!(*x >= 0.98, "class {c}: Dice {x}");
        }
    }
    // A lossy trip for the record: 3 mm -> 4.1 x 4.6 x 5.2 mm -> back (down, then up).
    let v = Value::Labels(seg.clone());
    let odd = resample(&v, spacing([4.1, 4.6, 5.2]));
    let back = resample(&odd, Target::Grid(Grid::of(&seg.volume)));
    let d = dice_per_class(seg.volume.data(), vol(&back).data());
    let min = d.iter().map(|x| x.1).fold(1.0, f64::min);
    let mean = d.iter().map(|x| x.1).sum::<f64>() / d.len() as f64;
    eprintln!("seg round trip via [4.1, 4.6, 5.2] mm (lossy): Dice min {min:.4} mean {mean:.4}");
}

#[test]
fn crop_foreground_then_resample_to_reference_pastes_back_exactly() {
    let Some(data) = data_dir() else { return };
    // The sample CTs are already cut to the body (HU > 0 reaches every face), so put the
    // contrast CT into 25 voxels of air on every side first (itself a grid-aligned resample).
    let raw = image(&ts(&data, "aorta_report/example_ct.nii.gz"));
    let mut g = Grid::of(&raw);
    for a in 0..3 {
        g.shape[2 - a] += 50;
        for r in 0..3 {
            g.geometry.affine_lps[r][3] -= 25.0 * g.geometry.affine_lps[r][a];
        }
    }
    let ct = match resample_value(
        &Value::Image(raw.clone()),
        &Target::Grid(g),
        InterpChoice::Fixed(Interp::Nearest),
        Some(Outside::Fill(-1024.0)),
        &ctx(),
    )
    .unwrap()
    {
        Value::Image(v) => v,
        _ => unreachable!(),
    };
    assert_eq!(ct.kind(), raw.kind());
    let mask = labels(&ts(&data, "aorta_report/test_result/models/aorta.nii.gz"));
    let mask_on_ct = match resample(&Value::Labels(mask), Target::Grid(Grid::of(&ct))) {
        Value::Labels(l) => l,
        _ => unreachable!(),
    };
    // Through the node shells.
    let node = spatial::CropForeground;
    let params: vistaflow_nodes::params::Params =
        serde_json::from_value(serde_json::json!({"threshold": 0.0, "margin": 10})).unwrap();
    let inputs = vistaflow_nodes::Inputs::from([
        ("image".to_string(), Value::Image(ct.clone())),
        ("labels".to_string(), Value::Labels(mask_on_ct.clone())),
    ]);
    let out = node.run(&ctx(), inputs, &params).unwrap();
    let (Some(Value::Image(c)), Some(Value::Labels(cl))) = (out.get("image"), out.get("labels"))
    else {
        panic!("crop_foreground outputs image and labels")
    };
    // The box, computed the slow way: every voxel > 0, its index extremes, +-10, clamped.
    let idx = ct.data().gt(0.0).nonzero(); // [N, 3] as (k, j, i)
    let lo = Vec::<i64>::try_from(idx.amin(0, false)).unwrap();
    let hi = Vec::<i64>::try_from(idx.amax(0, false)).unwrap();
    let shape = ct.spatial_shape();
    let start: Vec<i64> = (0..3).map(|a| (lo[2 - a] - 10).max(0)).collect();
    let end: Vec<i64> = (0..3).map(|a| (hi[2 - a] + 11).min(shape[2 - a])).collect();
    let list = |v: &[i64]| format!("[{},{},{}]", v[0], v[1], v[2]);
    eprintln!(
        "crop_foreground: box {} .. {} of {:?} (i,j,k)",
        list(&start),
        list(&end),
        [shape[2], shape[1], shape[0]]
    );
    assert_eq!(c.meta[spatial::META_START], list(&start));
    assert_eq!(c.meta[spatial::META_END], list(&end));
    assert_eq!(
        c.meta[spatial::META_FROM_SHAPE],
        list(&[shape[2], shape[1], shape[0]])
    );
    assert!(
        end.iter()
            .zip(&start)
            .zip(&shape.iter().rev().collect::<Vec<_>>())
            .any(|((e, s), n)| e - s < **n),
        "the crop removes something"
    );
    assert_eq!(cl.volume.spatial_shape(), c.spatial_shape());
    // Voxel (0,0,0) of the crop sits where voxel `start` of the original does.
    let a = ct.geometry().affine_lps;
    for r in 0..3 {
        let w: f64 = (0..3).map(|q| a[r][q] * start[q] as f64).sum::<f64>() + a[r][3];
        assert!((c.geometry().affine_lps[r][3] - w).abs() < 1e-9);
    }

    // Paste back with resample onto the original (linear for the image, nearest for labels).
    let rnode = spatial::Resample;
    let rparams: vistaflow_nodes::params::Params = serde_json::from_value(serde_json::json!({
        "spacing": null, "orientation": null, "interpolation": "auto", "fill": -1024.0
    }))
    .unwrap();
    let back = rnode
        .run(
            &ctx(),
            vistaflow_nodes::Inputs::from([
                ("image".to_string(), Value::Image(c.clone())),
                ("reference".to_string(), Value::Image(ct.clone())),
            ]),
            &rparams,
        )
        .unwrap();
    let Some(Value::Image(b)) = back.get("image") else {
        panic!("image in, image out")
    };
    assert!(
        !b.meta.contains_key(spatial::META_START),
        "crop keys dropped"
    );
    let inside = |t: &Tensor| {
        t.narrow(0, start[2], end[2] - start[2])
            .narrow(1, start[1], end[1] - start[1])
            .narrow(2, start[0], end[0] - start[0])
    };
    assert!(
        inside(b.data()).equal(&inside(ct.data()).to_kind(Kind::Float)),
        "pasted image differs inside the box"
    );
    let outside = b.data().eq(-1024.0).sum(Kind::Int64).int64_value(&[]);
    let box_n: i64 = (0..3).map(|a| end[a] - start[a]).product();
    assert_eq!(
        outside,
        b.data().numel() as i64 - box_n
            + inside(ct.data())
                .eq(-1024.0)
                .sum(Kind::Int64)
                .int64_value(&[])
    );

    let lback = rnode
        .run(
            &ctx(),
            vistaflow_nodes::Inputs::from([
                ("image".to_string(), Value::Labels(cl.clone())),
                ("reference".to_string(), Value::Image(ct.clone())),
            ]),
            &serde_json::from_value(serde_json::json!({
                "spacing": null, "orientation": null, "interpolation": "auto", "fill": null
            }))
            .unwrap(),
        )
        .unwrap();
    let Some(Value::Labels(lb)) = lback.get("labels") else {
        panic!("labels in, labels out")
    };
    assert!(
        lb.volume.data().equal(mask_on_ct.volume.data()),
        "pasted labels differ"
    );
}

/// The tensor path (what a GPU runs) against the CPU kernel, on the real CT and seg: spacing
/// change, a permuting reorientation onto a reference, linear and nearest.
#[test]
fn tensor_path_matches_cpu_kernel() {
    let Some(data) = data_dir() else { return };
    let ct = image(&ts(&data, "example_ct.nii.gz"));
    let seg = labels(&ts(&data, "example_seg_fast_force_split.nii.gz"));
    let g = Grid::of(&ct);
    let mut grids = vec![
        ("1.5 mm", g.with_spacing([1.5; 3])),
        ("[4.1, 2.3, 3.7] mm", g.with_spacing([4.1, 2.3, 3.7])),
    ];
    // A "PIR" grid over the same region at 2 mm: permuted and flipped axes, so separable.
    let pir = spatial::reorient(&ct, Orientation::parse("PIR").unwrap()).unwrap();
    grids.push(("PIR 2 mm", Grid::of(&pir).with_spacing([2.0; 3])));
    for (what, grid) in grids {
        let cases = [
            (Interp::Linear, &ct, Outside::Fill(-7.5)),
            (Interp::Nearest, &seg.volume, Outside::Fill(0.0)),
            (Interp::Linear, &ct, Outside::Border),
            (Interp::Nearest, &seg.volume, Outside::Border),
        ];
        for (interp, v, outside) in cases {
            let a = spatial::resample_volume(v, &grid, interp, outside, &ctx()).unwrap();
            let b = spatial::resample_volume_on_tensors(v, &grid, interp, outside, &ctx()).unwrap();
            assert_eq!(a.kind(), b.kind());
            assert_eq!(a.geometry(), b.geometry());
            match interp {
                Interp::Nearest => {
                    assert_eq!(mismatches(a.data(), b.data()), 0, "{what} ({outside:?})")
                }
                Interp::Linear => {
                    let (abs, rel) = diff_stats(a.data(), b.data(), 0);
                    eprintln!(
                        "tensor path vs CPU kernel, {what} ({outside:?}): max |diff| {abs:.2e}"
                    );
                    // float32 lerps (tensor path) vs float64 (kernel): HU-sized rounding.
                    assert!(abs <= 1e-3 && rel <= 1e-4, "{what}: {abs} (relative {rel})");
                }
            }
        }
    }
}

#[derive(Default)]
struct Record(Mutex<Vec<(u64, u64)>>);
impl ProgressSink for Record {
    fn progress(&self, done: u64, total: u64, _: &str) {
        self.0.lock().unwrap().push((done, total));
    }
    fn warn(&self, _: &str) {}
}

fn synthetic(shape: [i64; 3], spacing: [f64; 3]) -> Volume {
    let [nk, nj, ni] = shape;
    let opts = (Kind::Float, Device::Cpu);
    let z = Tensor::arange(nk, opts).reshape([nk, 1, 1]);
    let y = Tensor::arange(nj, opts).reshape([1, nj, 1]);
    let x = Tensor::arange(ni, opts).reshape([1, 1, ni]);
    // Smooth structure plus a sharp edge, in an HU-like range.
    let t = ((&x * 0.05).sin() * (&y * 0.031).cos() * 400.0 + &z * 0.5 - 300.0)
        .where_self(
            &(&x + &y).gt(0.4 * (ni + nj) as f64),
            &Tensor::from(-1024.0f32),
        )
        .to_kind(Kind::Int16);
    Volume::new(t, Geometry::axis_aligned(spacing, [-200.0, -180.0, -400.0])).unwrap()
}

#[test]
fn progress_per_slab_and_cancellation() {
    let v = Value::Image(synthetic([40, 300, 300], [0.8, 0.8, 1.0]));
    let rec = Arc::new(Record::default());
    let c = Ctx::new(Device::Cpu, CancelToken::new(), rec.clone());
    let out = resample_value(&v, &spacing([0.5, 0.5, 0.5]), InterpChoice::Auto, None, &c).unwrap();
    let p = rec.0.lock().unwrap().clone();
    assert!(p.len() > 1, "several slabs: {p:?}");
    assert_eq!(p.last().unwrap().0, vol(&out).spatial_shape()[0] as u64);
    let token = CancelToken::new();
    token.cancel();
    let c = Ctx::new(Device::Cpu, token, rec);
    match resample_value(&v, &spacing([0.5; 3]), InterpChoice::Auto, None, &c) {
        Err(NodeError::Cancelled) => {}
        other => panic!("expected Cancelled, got {other:?}"),
    }
}

#[test]
fn bad_params_give_clear_errors() {
    let v = Value::Image(synthetic([10, 20, 30], [1.0, 1.0, 2.0]));
    let l = Value::Labels(LabelMap {
        volume: Volume::new(
            Tensor::zeros([10, 20, 30], (Kind::Uint8, Device::Cpu)),
            Geometry::axis_aligned([1.0; 3], [0.0; 3]),
        )
        .unwrap(),
        classes: Default::default(),
    });
    let err = |r: Result<Value, NodeError>| match r {
        Err(NodeError::Invalid(m)) => m,
        other => panic!("expected Invalid, got {other:?}"),
    };
    let m = err(resample_value(
        &v,
        &spacing([1.0, 0.0, 1.0]),
        InterpChoice::Auto,
        None,
        &ctx(),
    ));
    assert!(m.contains("spacing must be three positive"), "{m}");
    let m = err(resample_value(
        &v,
        &spacing([1.0, -2.0, 1.0]),
        InterpChoice::Auto,
        None,
        &ctx(),
    ));
    assert!(m.contains("positive"), "{m}");
    let m = match Orientation::parse("RAX") {
        Err(NodeError::Invalid(m)) => m,
        _ => panic!(),
    };
    assert!(m.contains("unknown orientation code `RAX`"), "{m}");
    assert!(Orientation::parse("RRS").is_err());
    let m = err(resample_value(
        &l,
        &spacing([2.0; 3]),
        InterpChoice::Fixed(Interp::Linear),
        None,
        &ctx(),
    ));
    assert!(m.contains("use `interpolation: nearest`"), "{m}");
    let m = err(resample_value(
        &l,
        &spacing([2.0; 3]),
        InterpChoice::Auto,
        Some(Outside::Fill(3.0)),
        &ctx(),
    ));
    assert!(m.contains("a number as `fill` applies to images"), "{m}");
    // Nearest keeps an integer image's dtype: the fill must fit it.
    let m = err(resample_value(
        &v,
        &spacing([2.0; 3]),
        InterpChoice::Fixed(Interp::Nearest),
        Some(Outside::Fill(1e6)),
        &ctx(),
    ));
    assert!(m.contains("not a int16 value"), "{m}");
    // A singular affine.
    let flat = Value::Image(
        Volume::new(
            Tensor::zeros([4, 4, 4], (Kind::Float, Device::Cpu)),
            Geometry::axis_aligned([1.0, 0.0, 1.0], [0.0; 3]),
        )
        .unwrap(),
    );
    let m = err(resample_value(
        &flat,
        &Target::Grid(Grid::of(vol(&v))),
        InterpChoice::Auto,
        None,
        &ctx(),
    ));
    assert!(m.contains("singular"), "{m}");
    // Node shell: no target, and reference + spacing together.
    let node = spatial::Resample;
    let run = |inputs: Vec<(&str, Value)>, p: Json| {
        node.run(
            &ctx(),
            inputs
                .into_iter()
                .map(|(k, v)| (k.to_string(), v))
                .collect(),
            &serde_json::from_value(p).unwrap(),
        )
    };
    let base = serde_json::json!({"spacing": null, "orientation": null, "interpolation": "auto", "fill": null});
    match run(vec![("image", v.clone())], base.clone()) {
        Err(NodeError::Invalid(m)) => assert!(m.contains("needs a target"), "{m}"),
        other => panic!("{other:?}"),
    }
    let mut both = base.clone();
    both["spacing"] = serde_json::json!([1.0, 1.0, 1.0]);
    match run(vec![("image", v.clone()), ("reference", v.clone())], both) {
        Err(NodeError::Invalid(m)) => assert!(m.contains("not both"), "{m}"),
        other => panic!("{other:?}"),
    }
    let mut edge = base.clone();
    edge["spacing"] = serde_json::json!([2.0, 2.0, 2.0]);
    edge["fill"] = serde_json::json!("edge");
    match run(vec![("image", v.clone())], edge.clone()) {
        Err(NodeError::Invalid(m)) => assert!(m.contains("or `border`"), "{m}"),
        other => panic!("{other:?}"),
    }
    // Through the node: `border` on a grid that ends past the last slice (MONAI's extent
    // rule rounds 5 * 1 mm / 3 mm up to 2 steps: 3 slices over 6 mm of a 6-slice input that
    // spans 5 mm) repeats the last slice where the default fills.
    let five = Value::Image(synthetic([6, 8, 8], [1.0, 1.0, 1.0]));
    edge["spacing"] = serde_json::json!([1.0, 1.0, 3.0]);
    edge["fill"] = serde_json::json!("border");
    let out = run(vec![("image", five.clone())], edge.clone()).unwrap();
    let last = |o: &vistaflow_nodes::Outputs| vol(&o["image"]).data().get(2).copy();
    let src = vol(&five).data().get(5).to_kind(Kind::Float);
    assert!(last(&out).equal(&src), "border repeats the last slice");
    edge["fill"] = serde_json::Value::Null;
    let filled = run(vec![("image", five.clone())], edge).unwrap();
    let min = vol(&five).data().min().to_kind(Kind::Float);
    assert!(last(&filled).eq_tensor(&min).all().int64_value(&[]) == 1);
    // A single-slice (2D) image resamples in plane; its one slice stays one slice.
    let one = Value::Image(synthetic([1, 64, 64], [0.5, 0.5, 5.0]));
    let r = resample(&one, spacing([1.0, 1.0, 1.0]));
    assert_eq!(vol(&r).spatial_shape(), [1, 33, 33]);
}

/// Peak resident memory (kB) since the last reset.
fn vm_hwm_kb() -> i64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap();
    s.lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(-1)
}

fn reset_hwm() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

/// `cargo test -p vistaflow-nodes --release --test spatial -- --ignored --nocapture bench`
/// Threads: VISTAFLOW_BENCH_THREADS (default 2), the same for SimpleITK.
#[test]
#[ignore]
fn bench_512x512x300_to_1_5mm_vs_simpleitk() {
    let threads: i32 = std::env::var("VISTAFLOW_BENCH_THREADS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(2);
    tch::set_num_threads(threads);
    for (shape, sp) in [
        ([300, 512, 512], [0.78, 0.78, 1.0]),
        ([1000, 512, 512], [0.78, 0.78, 0.7]),
    ] {
        let v = Value::Image(synthetic(shape, sp));
        let in_mb = vol(&v).nbytes() as f64 / 1e6;
        let mut best = f64::INFINITY;
        let mut peak = 0;
        let mut out_mb = 0.0;
        for _ in 0..3 {
            reset_hwm();
            let before = vm_hwm_kb();
            let t = std::time::Instant::now();
            let out = resample(&v, spacing([1.5; 3]));
            best = best.min(t.elapsed().as_secs_f64());
            peak = peak.max(vm_hwm_kb() - before);
            out_mb = vol(&out).nbytes() as f64 / 1e6;
        }
        eprintln!(
            "vistaflow resample {:?} int16 ({in_mb:.0} MB) -> 1.5 mm linear ({out_mb:.0} MB \
             float32): best of 3 {best:.3} s, {threads} threads, peak RSS above input {:.0} MB",
            [shape[2], shape[1], shape[0]],
            peak as f64 / 1024.0
        );
        if shape[0] == 300 {
            let out = Command::new(python())
                .arg(repo().join("scripts/oracles/spatial_bench_sitk.py"))
                .args([
                    threads.to_string(),
                    "512".into(),
                    "512".into(),
                    "300".into(),
                ])
                .args(sp.iter().map(|x| x.to_string()))
                .output()
                .unwrap();
            eprintln!("{}", String::from_utf8_lossy(&out.stdout).trim());
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
}
