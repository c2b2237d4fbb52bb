//! NIfTI reading and writing against nibabel, on real files.
//!
//! Needs `scripts/fetch-data.sh` (data/ and the Colin27 templates) and, for the round trips,
//! `scripts/setup-python.sh` (nibabel; python from VISTAFLOW_PYTHON or
//! ~/.cache/vistaflow/venv/bin/python). The expected values in golden/nifti.json come from
//! `scripts/oracles/nifti_golden.py`. Every test skips, with a message, only when data/ is
//! absent; any other missing piece is a failure.

mod common;

use common::{ctx, data_dir, mat, python, repo, sha256};
use serde_json::Value as Json;
use std::path::{Path, PathBuf};
use std::process::Command;
use tch::{Kind, Tensor};
use vistaflow_nodes::io::nifti;
use vistaflow_nodes::node::{Ctx, NodeError};
use vistaflow_nodes::value::{ClassTable, Geometry, LabelMap, Value, Volume};

const GOLDEN: &str = include_str!("golden/nifti.json");
const COLIN: &str = "/usr/share/mricron/templates";

fn golden() -> serde_json::Map<String, Json> {
    common::golden_files(GOLDEN)
}

fn read_image(p: &Path) -> Volume {
    common::image(p, nifti::read(p, false, &ctx()))
}

fn read_labels(p: &Path) -> Result<LabelMap, NodeError> {
    Ok(common::labels(p, nifti::read(p, true, &ctx())?))
}

/// The error message of a read that must fail with NodeError::File for `p`.
fn read_error(p: &Path) -> String {
    common::file_error(p, nifti::read(p, false, &ctx()))
}

/// The file for a golden key ("data:<rel>" or "colin27:<name>"); missing is a failure.
fn resolve(data: &Path, key: &str) -> PathBuf {
    let (kind, rel) = key.split_once(':').unwrap();
    let p = if kind == "data" {
        data.join(rel)
    } else {
        Path::new(COLIN).join(rel)
    };
    assert!(
        p.is_file(),
        "{} is missing: run scripts/fetch-data.sh (Colin27 needs apt-get)",
        p.display()
    );
    p
}

/// What nibabel reads from `path` (scripts/oracles/nifti_readback.py).
fn nibabel_readback(path: &Path) -> Json {
    let out = Command::new(python())
        .arg(repo().join("scripts/oracles/nifti_readback.py"))
        .arg(path)
        .output()
        .expect("running the nibabel oracle");
    assert!(
        out.status.success(),
        "nibabel could not read {}: {}",
        path.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn assert_affine(what: &str, got: &[[f64; 4]; 4], want: &[[f64; 4]; 4], tol: f64) {
    common::assert_affine("nibabel", what, got, want, tol)
}

fn kind_name(k: Kind) -> &'static str {
    match k {
        Kind::Uint8 => "uint8",
        Kind::Int8 => "int8",
        Kind::Int16 => "int16",
        Kind::Int => "int32",
        Kind::Int64 => "int64",
        Kind::Float => "float32",
        Kind::Double => "float64",
        k => panic!("unexpected kind {k:?}"),
    }
}

/// nibabel shape (i, j, k[, t]) -> vistaflow tensor shape ([t,] k, j, i); t == 1 dropped.
fn tensor_shape(nib: &Json) -> Vec<i64> {
    let mut s: Vec<i64> = nib
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_i64().unwrap())
        .collect();
    if s.len() == 4 && s[3] == 1 {
        s.pop();
    }
    s.reverse();
    s
}

fn gunzip(p: &Path) -> Vec<u8> {
    use std::io::Read;
    let mut out = Vec::new();
    let raw = std::fs::read(p).unwrap();
    if raw.starts_with(&[0x1f, 0x8b]) {
        flate2::read::MultiGzDecoder::new(&raw[..])
            .read_to_end(&mut out)
            .unwrap();
        out
    } else {
        raw
    }
}

/// Writes header patches into an uncompressed copy of a NIfTI-1 file.
struct Patched {
    bytes: Vec<u8>,
    big: bool,
}

impl Patched {
    fn of(p: &Path) -> Self {
        let bytes = gunzip(p);
        let big = i32::from_le_bytes(bytes[0..4].try_into().unwrap()) != 348
            && i32::from_le_bytes(bytes[0..4].try_into().unwrap()) != 540;
        Patched { bytes, big }
    }
    fn put(&mut self, at: usize, mut b: Vec<u8>) -> &mut Self {
        if self.big {
            b.reverse();
        }
        self.bytes[at..at + b.len()].copy_from_slice(&b);
        self
    }
    fn i16(&mut self, at: usize, v: i16) -> &mut Self {
        self.put(at, v.to_le_bytes().to_vec())
    }
    fn i32(&mut self, at: usize, v: i32) -> &mut Self {
        self.put(at, v.to_le_bytes().to_vec())
    }
    fn f32(&mut self, at: usize, v: f32) -> &mut Self {
        self.put(at, v.to_le_bytes().to_vec())
    }
    fn save(&self, p: &Path) -> PathBuf {
        std::fs::write(p, &self.bytes).unwrap();
        p.to_path_buf()
    }
}

// ---------------------------------------------------------------------------------------------
// Reading: every golden file as nibabel reads it.

#[test]
fn golden_files_match_nibabel() {
    let Some(data) = data_dir() else { return };
    for (key, g) in golden() {
        let path = resolve(&data, &key);
        if let Some(e) = g.get("error") {
            let msg = read_error(&path);
            let code = g["datatype_code"].as_i64().unwrap().to_string();
            assert!(
                msg.contains(&code) && msg.contains("not supported"),
                "{key} ({e}): {msg}"
            );
            continue;
        }
        let vol = read_image(&path);
        let what = key.clone();
        // Geometry: nibabel's RAS affine, and its LPS form (x and y rows negated).
        let want = mat(&g["affine"]);
        assert_affine(&what, &vol.geometry().affine_ras(), &want, 1e-6);
        let lps = vol.geometry().affine_lps;
        for c in 0..4 {
            assert!(
                (lps[0][c] + want[0][c]).abs() <= 1e-6 && (lps[1][c] + want[1][c]).abs() <= 1e-6
            );
            assert!((lps[2][c] - want[2][c]).abs() <= 1e-6);
        }
        // Shape [k, j, i] (or [t, k, j, i]), the on-disk order.
        assert_eq!(
            vol.data().size(),
            tensor_shape(&g["shape"]),
            "{what}: shape"
        );
        // dtype and data.
        let nib_dtype = g["dtype"].as_str().unwrap();
        let t = vol.data();
        let sum = t.to_kind(Kind::Double).sum(Kind::Double).double_value(&[]);
        let sumsq = (t.to_kind(Kind::Double) * t.to_kind(Kind::Double))
            .sum(Kind::Double)
            .double_value(&[]);
        let (gsum, gsumsq) = (g["sum"].as_f64().unwrap(), g["sumsq"].as_f64().unwrap());
        if let Some(f32sha) = g.get("f32_sha256") {
            // Scaled data: nibabel float64, ours float32 = nibabel's values rounded once.
            assert_eq!(nib_dtype, "float64");
            assert_eq!(vol.kind(), Kind::Float, "{what}: scaled images are float32");
            assert_eq!(
                sha256(t),
                f32sha.as_str().unwrap(),
                "{what}: scaled voxels differ from nibabel's"
            );
            assert!(
                (sum - gsum).abs() <= 1e-6 * gsum.abs(),
                "{what}: sum {sum} vs {gsum}"
            );
        } else {
            assert_eq!(kind_name(vol.kind()), nib_dtype, "{what}: dtype");
            assert_eq!(
                sha256(t),
                g["sha256"].as_str().unwrap(),
                "{what}: voxel bytes differ from nibabel's"
            );
            if matches!(vol.kind(), Kind::Float | Kind::Double) {
                assert!(
                    (sum - gsum).abs() <= 1e-6 * gsum.abs().max(1.0),
                    "{what}: sum"
                );
                assert!(
                    (sumsq - gsumsq).abs() <= 1e-6 * gsumsq.abs().max(1.0),
                    "{what}: sumsq"
                );
            } else {
                assert_eq!(sum, gsum, "{what}: sum");
                assert_eq!(sumsq, gsumsq, "{what}: sum of squares");
            }
        }
        // Metadata: format and the code of the transform used; nothing else.
        let fmt = g["format"].as_str().unwrap();
        assert_eq!(
            vol.meta.get("source_format").map(String::as_str),
            Some(fmt),
            "{what}"
        );
        let code = if g["sform_code"] != 0 {
            &g["sform_code"]
        } else {
            &g["qform_code"]
        };
        assert_eq!(
            vol.meta.get("nifti_xform_code"),
            Some(&code.to_string()),
            "{what}"
        );
        assert_eq!(
            vol.meta.len(),
            2,
            "{what}: unexpected metadata {:?}",
            vol.meta
        );
        // Integer files also read as label maps, unchanged.
        if !matches!(vol.kind(), Kind::Float | Kind::Double) {
            let l = read_labels(&path).unwrap();
            assert_eq!(l.volume, vol, "{what}: labels differ from the image");
        }
    }
}

#[test]
fn the_special_files_are_what_the_tests_claim() {
    // Guards the golden list itself: the quirks the other tests rely on really are there.
    if data_dir().is_none() {
        return;
    }
    let g = golden();
    assert_eq!(
        g["data:totalsegmentator/example_ct_sm.nii.gz"]["dtype"],
        "int16"
    );
    let ch2 = &g["colin27:ch2.nii.gz"];
    assert_eq!(
        (ch2["sform_code"].as_i64(), ch2["qform_code"].as_i64()),
        (Some(4), Some(0))
    );
    assert_eq!(g["data:nibabel/example_nifti2.nii.gz"]["format"], "nifti2");
    assert_eq!(g["data:nibabel/anatomical.nii"]["big_endian"], true);
    assert_eq!(g["data:nibabel/example4d.nii.gz"]["shape"][3], 2);
    assert!(
        g["data:nibabel/functional.nii"].get("f32_sha256").is_some(),
        "functional.nii is scaled"
    );
    // example4d's qform is oblique (a rotation about x), so the quaternion math is exercised.
    assert!(mat(&g["data:nibabel/example4d.nii.gz"]["qform"])[1][2].abs() > 0.1);
}

#[test]
fn axis_order_is_k_j_i() {
    let Some(data) = data_dir() else { return };
    let p = resolve(&data, "data:totalsegmentator/example_ct_sm.nii.gz");
    let vol = read_image(&p);
    assert_eq!(vol.data().size(), [30, 101, 122]);
    // Voxel (i, j, k) = (5, 7, 3) sits at byte offset 352 + 2 * (5 + 122 * (7 + 101 * 3)).
    let raw = gunzip(&p);
    let at = 352 + 2 * (5 + 122 * (7 + 101 * 3));
    let want = i16::from_le_bytes([raw[at], raw[at + 1]]) as i64;
    assert_eq!(vol.data().int64_value(&[3, 7, 5]), want);
}

// ---------------------------------------------------------------------------------------------
// Affine choice: sform, then qform, then the base affine (values from nibabel).

#[test]
fn qform_and_base_affine_when_codes_are_zero() {
    let Some(data) = data_dir() else { return };
    let dir = tempfile::tempdir().unwrap();
    let g = golden();
    // (key, offset of sform_code, offset of qform_code, code width)
    for (key, s_at, q_at, wide) in [
        ("data:nibabel/anatomical.nii", 254, 252, false), // big endian, qfac -1
        ("data:nibabel/example4d.nii.gz", 254, 252, false), // oblique qform
        ("data:nibabel/example_nifti2.nii.gz", 348, 344, true), // NIfTI-2 qform
    ] {
        let gk = &g[key];
        let mut p = Patched::of(&resolve(&data, key));
        if wide {
            p.i32(s_at, 0)
        } else {
            p.i16(s_at, 0)
        };
        let f = p.save(&dir.path().join("q.nii"));
        let vol = read_image(&f);
        assert_affine(
            &format!("{key} with sform_code 0"),
            &vol.geometry().affine_ras(),
            &mat(&gk["qform"]),
            1e-6,
        );
        assert_eq!(vol.meta["nifti_xform_code"], gk["qform_code"].to_string());
        if wide {
            p.i32(q_at, 0)
        } else {
            p.i16(q_at, 0)
        };
        let f = p.save(&dir.path().join("base.nii"));
        let vol = read_image(&f);
        assert_affine(
            &format!("{key} with both codes 0"),
            &vol.geometry().affine_ras(),
            &mat(&gk["base_affine"]),
            1e-6,
        );
        assert_eq!(vol.meta["nifti_xform_code"], "0");
    }
    // Both codes set, transforms different: the sform wins (Colin27's unused qform fields hold
    // a y/z-flipped transform).
    let key = "colin27:ch2.nii.gz";
    let (sform, qform) = (mat(&g[key]["sform"]), mat(&g[key]["qform"]));
    assert!(
        (sform[1][1] - qform[1][1]).abs() > 1.0,
        "test premise: the two differ"
    );
    let f = Patched::of(&resolve(&data, key))
        .i16(252, 1)
        .save(&dir.path().join("both.nii"));
    assert_affine(
        "ch2 with qform_code 1",
        &read_image(&f).geometry().affine_ras(),
        &sform,
        1e-6,
    );
}

// ---------------------------------------------------------------------------------------------
// Scaling and labels.

#[test]
fn scaling_follows_nibabel() {
    let Some(data) = data_dir() else { return };
    let dir = tempfile::tempdir().unwrap();
    let src = resolve(&data, "data:totalsegmentator/example_ct_sm.nii.gz");
    let raw = read_image(&src);
    // slope 2.5, inter -1000: float32 of the float64 result, exactly what nibabel computes.
    let f = Patched::of(&src)
        .f32(112, 2.5)
        .f32(116, -1000.0)
        .save(&dir.path().join("s.nii"));
    let vol = read_image(&f);
    assert_eq!(vol.kind(), Kind::Float);
    let want = (raw.data().to_kind(Kind::Double) * 2.5 - 1000.0).to_kind(Kind::Float);
    assert!(vol.data().equal(&want), "scaled voxels");
    let nib = nibabel_readback(&f);
    assert_eq!(
        nib["f32_sha256"].as_str().unwrap(),
        sha256(vol.data()),
        "nibabel's scaled voxels"
    );
    // NaN slope (and inter) means no scaling: nibabel shows NaN for every loaded header, but
    // on disk these files hold 1/0, so the NaN case is made here.
    let f = Patched::of(&src)
        .f32(112, f32::NAN)
        .f32(116, f32::NAN)
        .save(&dir.path().join("nan.nii"));
    let vol = read_image(&f);
    assert_eq!(vol.kind(), Kind::Int16);
    assert!(vol.data().equal(raw.data()));
    let nib = nibabel_readback(&f);
    assert_eq!(
        (nib["dtype"].as_str(), nib["sha256"].as_str()),
        (Some("int16"), Some(sha256(raw.data()).as_str()))
    );
    // slope 0 means no scaling whatever the intercept.
    let f = Patched::of(&src)
        .f32(112, 0.0)
        .f32(116, 5.0)
        .save(&dir.path().join("z.nii"));
    let vol = read_image(&f);
    assert_eq!(vol.kind(), Kind::Int16);
    assert!(vol.data().equal(raw.data()));
    // slope 1, inter 0: unscaled, raw kind.
    let f = Patched::of(&src)
        .f32(112, 1.0)
        .f32(116, 0.0)
        .save(&dir.path().join("one.nii"));
    assert_eq!(read_image(&f).kind(), Kind::Int16);
    // A valid slope with an infinite intercept is refused (as nibabel does).
    let f = Patched::of(&src)
        .f32(112, 2.0)
        .f32(116, f32::INFINITY)
        .save(&dir.path().join("inf.nii"));
    assert!(read_error(&f).contains("scl_inter"));
}

#[test]
fn labels_from_integer_float_and_scaled_files() {
    let Some(data) = data_dir() else { return };
    let dir = tempfile::tempdir().unwrap();
    let src = resolve(&data, "data:totalsegmentator/example_seg.nii.gz");
    let seg = read_labels(&src).unwrap();
    assert_eq!(seg.volume.kind(), Kind::Uint8);
    let max = seg.volume.data().max().int64_value(&[]);
    assert!(max > 20, "example_seg has many classes, max {max}");
    // Scaled labels: exact when integral (2x+1 stays within uint8 here).
    let f = Patched::of(&src)
        .f32(112, 2.0)
        .f32(116, 1.0)
        .save(&dir.path().join("s.nii"));
    let l = read_labels(&f).unwrap();
    let want = (seg.volume.data().to_kind(Kind::Int64) * 2 + 1).to_kind(Kind::Uint8);
    assert!(l.volume.data().equal(&want));
    // Non-integral after scaling: refused, as labels.
    let f = Patched::of(&src)
        .f32(112, 0.5)
        .save(&dir.path().join("h.nii"));
    match nifti::read(&f, true, &ctx()) {
        Err(NodeError::File { msg, .. }) => assert!(msg.contains("whole numbers"), "{msg}"),
        other => panic!("expected an error, got {:?}", other.map(|v| v.port_type())),
    }
    // Float files of whole numbers become the smallest integer kind that holds them.
    let as_float = Volume::new(
        seg.volume.data().to_kind(Kind::Float),
        *seg.volume.geometry(),
    )
    .unwrap();
    let f = dir.path().join("f.nii.gz");
    nifti::write(&f, &Value::Image(as_float.clone()), &ctx()).unwrap();
    let l = read_labels(&f).unwrap();
    assert_eq!(l.volume.kind(), Kind::Uint8);
    assert!(l.volume.data().equal(seg.volume.data()));
    let neg = Volume::new(
        seg.volume.data().to_kind(Kind::Float) - 300.0,
        *seg.volume.geometry(),
    )
    .unwrap();
    nifti::write(&f, &Value::Image(neg), &ctx()).unwrap();
    assert_eq!(read_labels(&f).unwrap().volume.kind(), Kind::Int16);
    // A real image is not a label map.
    let ct = resolve(&data, "data:nibabel/functional.nii");
    match nifti::read(&ct, true, &ctx()) {
        Err(NodeError::File { msg, .. }) => assert!(msg.contains("labels: false"), "{msg}"),
        other => panic!("expected an error, got {:?}", other.map(|v| v.port_type())),
    }
}

// ---------------------------------------------------------------------------------------------
// Writing: nibabel reads what we wrote, and so do we.

fn check_written(what: &str, f: &Path, vol: &Volume) -> Json {
    let nib = nibabel_readback(f);
    assert_affine(
        &format!("{what}: nibabel's affine"),
        &mat(&nib["affine"]),
        &vol.geometry().affine_ras(),
        1e-5,
    );
    assert_eq!(
        tensor_shape(&nib["shape"]),
        vol.data().size(),
        "{what}: nibabel's shape"
    );
    assert_eq!(
        nib["dtype"].as_str().unwrap(),
        kind_name(vol.kind()),
        "{what}: nibabel's dtype"
    );
    assert_eq!(
        nib["sha256"].as_str().unwrap(),
        sha256(vol.data()),
        "{what}: nibabel's voxels"
    );
    assert_eq!(nib["format"], "nifti1");
    // The qform is the one nibabel itself would derive from the sform.
    assert_affine(
        &format!("{what}: qform"),
        &mat(&nib["qform"]),
        &mat(&nib["qform_from_sform"]),
        1e-5,
    );
    assert!(nib["qform_code"].as_i64().unwrap() > 0 && nib["sform_code"].as_i64().unwrap() > 0);
    nib
}

#[test]
fn round_trip_real_files_through_nibabel() {
    let Some(data) = data_dir() else { return };
    let dir = tempfile::tempdir().unwrap();
    for key in [
        "data:totalsegmentator/example_ct_sm.nii.gz",
        "data:totalsegmentator/example_ct.nii.gz",
        "data:totalsegmentator/example_seg_dicom.nii.gz",
        "data:nibabel/anatomical.nii",
        "data:nibabel/example4d.nii.gz",
        "data:nibabel/functional.nii",
        "data:nibabel/example_nifti2.nii.gz",
        "colin27:ch2.nii.gz",
    ] {
        let src = resolve(&data, key);
        let vol = read_image(&src);
        for name in ["out.nii.gz", "sub/dir/out.nii"] {
            let f = dir.path().join(name);
            nifti::write(&f, &Value::Image(vol.clone()), &ctx()).unwrap();
            let what = format!("{key} -> {name}");
            let gz = std::fs::read(&f).unwrap().starts_with(&[0x1f, 0x8b]);
            assert_eq!(gz, name.ends_with(".gz"), "{what}: compression");
            let nib = check_written(&what, &f, &vol);
            // The xform code survives (Colin27 stays MNI = 4).
            assert_eq!(
                nib["sform_code"].to_string(),
                vol.meta["nifti_xform_code"],
                "{what}"
            );
            let back = read_image(&f);
            if vol.meta["source_format"] == "nifti2" {
                // Written as NIfTI-1: same voxels and geometry, another format.
                assert_eq!(back.meta["source_format"], "nifti1");
                let mut back = back;
                back.meta.insert("source_format".into(), "nifti2".into());
                assert_affine(
                    &what,
                    &back.geometry().affine_lps,
                    &vol.geometry().affine_lps,
                    1e-5,
                );
                assert!(
                    back.data().equal(vol.data()) && back.kind() == vol.kind(),
                    "{what}"
                );
            } else {
                assert_eq!(back, vol, "{what}: read back differs");
            }
        }
    }
    // Nothing half-written is left behind.
    let leftovers: Vec<_> = walk(dir.path())
        .into_iter()
        .filter(|p| p.to_string_lossy().contains(".partial"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

fn walk(d: &Path) -> Vec<PathBuf> {
    let mut out = vec![];
    for e in std::fs::read_dir(d).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

#[test]
fn every_kind_and_oblique_sheared_affines_round_trip() {
    if data_dir().is_none() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    // An oblique, left-handed affine (qfac -1) and a sheared one (qform = nearest rotation).
    let (c, s) = (0.4f64.cos(), 0.4f64.sin());
    let oblique = [
        [0.8 * c, -1.1 * s, 0.0, -20.5],
        [0.8 * s, 1.1 * c, 0.0, 33.25],
        [0.0, 0.0, -2.5, 71.0],
        [0.0, 0.0, 0.0, 1.0],
    ];
    let sheared = [
        [1.0, 0.2, 0.0, 1.0],
        [0.0, 1.5, 0.1, 2.0],
        [0.05, 0.0, 2.0, 3.0],
        [0.0, 0.0, 0.0, 1.0],
    ];
    let base = Tensor::arange(4 * 5 * 6, (Kind::Int64, tch::Device::Cpu)).reshape([4, 5, 6]) - 40;
    for (i, kind) in [
        Kind::Uint8,
        Kind::Int8,
        Kind::Int16,
        Kind::Int,
        Kind::Int64,
        Kind::Float,
        Kind::Double,
    ]
    .into_iter()
    .enumerate()
    {
        let affine = if i % 2 == 0 { oblique } else { sheared };
        let data = if kind == Kind::Uint8 {
            (&base + 40).to_kind(kind)
        } else {
            base.to_kind(kind)
        };
        let vol = Volume::new(data, Geometry::from_ras(affine)).unwrap();
        let f = dir.path().join(format!("k{i}.nii.gz"));
        nifti::write(&f, &Value::Image(vol.clone()), &ctx()).unwrap();
        let what = format!("{kind:?}");
        check_written(&what, &f, &vol);
        let back = read_image(&f);
        assert_eq!(back.kind(), kind, "{what}");
        assert!(back.data().equal(vol.data()), "{what}");
        // The sform is stored as float32: within float32 rounding of the original.
        assert_affine(&what, &back.geometry().affine_ras(), &affine, 1e-5);
        assert_eq!(
            back.meta["nifti_xform_code"], "1",
            "{what}: new volumes are written as scanner space"
        );
    }
    // A 4D label map and a bool mask.
    let lab = LabelMap::new(
        Volume::new(
            base.remainder(3).to_kind(Kind::Uint8).reshape([2, 2, 5, 6]),
            Geometry::from_ras(oblique),
        )
        .unwrap(),
        ClassTable::new(),
    )
    .unwrap();
    let f = dir.path().join("l.nii");
    nifti::write(&f, &Value::Labels(lab.clone()), &ctx()).unwrap();
    check_written("4D labels", &f, &lab.volume);
    assert_eq!(read_labels(&f).unwrap().volume.data().size(), [2, 2, 5, 6]);
    let mask = Volume::new(base.gt(0), Geometry::from_ras(oblique)).unwrap();
    nifti::write(&f, &Value::Image(mask), &ctx()).unwrap();
    let back = read_image(&f);
    assert_eq!(back.kind(), Kind::Uint8);
    assert!(back.data().equal(&base.gt(0).to_kind(Kind::Uint8)));
}

#[test]
fn write_errors_name_the_problem() {
    if data_dir().is_none() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let vol = Volume::new(
        Tensor::zeros([2, 3, 4], (Kind::Int16, tch::Device::Cpu)),
        Geometry::axis_aligned([1.0; 3], [0.0; 3]),
    )
    .unwrap();
    let v = Value::Image(vol);
    let cases = [
        (dir.path().join("x.nrrd"), ".nii.gz"),
        (dir.path().join("file/inside.nii"), "folder"),
    ];
    std::fs::write(dir.path().join("file"), b"a file, not a folder").unwrap();
    for (p, want) in cases {
        match nifti::write(&p, &v, &ctx()) {
            Err(NodeError::File { path, msg }) => {
                assert_eq!(path, p);
                assert!(msg.contains(want), "{}: {msg}", p.display());
            }
            other => panic!("{}: expected an error, got {other:?}", p.display()),
        }
    }
    // A written file is readable by others (not the temp file's 0600).
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let p = dir.path().join("ok.nii");
        nifti::write(&p, &v, &ctx()).unwrap();
        assert_eq!(
            std::fs::metadata(&p).unwrap().permissions().mode() & 0o044,
            0o044
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Bad input: each a NodeError::File that says what is wrong.

#[test]
fn bad_files_give_clear_errors() {
    let Some(data) = data_dir() else { return };
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let gz_src = resolve(&data, "data:totalsegmentator/example_ct_sm.nii.gz");
    let gz = std::fs::read(&gz_src).unwrap();
    let raw = gunzip(&gz_src);
    let w = |name: &str, b: &[u8]| {
        let p = d.join(name);
        std::fs::write(&p, b).unwrap();
        p
    };
    let cases: Vec<(PathBuf, &[&str])> = vec![
        (
            w("truncated.nii.gz", &gz[..gz.len() / 2]),
            &["gzip stream ends early", "truncated"],
        ),
        (
            w("truncated.nii", &raw[..raw.len() - 1000]),
            &["shorter than the header says", "truncated"],
        ),
        (w("garbage.nii", &[0x5a; 2000]), &["not a NIfTI file"]),
        (w("empty.nii", b""), &["0 bytes"]),
        (
            w(
                "badgzip.nii.gz",
                &[&[0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3][..], &[0xff; 500][..]].concat(),
            ),
            &["gzip", "corrupt"],
        ),
        (
            w("tiny.nii", &raw[..100]),
            &["inside the 348-byte header", "truncated"],
        ),
        (
            Patched::of(&gz_src)
                .f32(108, 100.0)
                .save(&d.join("voxoff.nii")),
            &["vox_offset", "100"],
        ),
        (
            Patched::of(&gz_src)
                .f32(108, 352.5)
                .save(&d.join("voxfrac.nii")),
            &["vox_offset"],
        ),
        (
            Patched::of(&gz_src).i16(44, 0).save(&d.join("dim0.nii")),
            &["dim[2] is 0"],
        ),
        (
            Patched::of(&gz_src).i16(46, -5).save(&d.join("dimneg.nii")),
            &["dim[3] is -5"],
        ),
        (
            Patched::of(&gz_src).i16(40, 9).save(&d.join("ndim.nii")),
            &["dim[0]"],
        ),
        (
            Patched::of(&gz_src)
                .i16(70, 32)
                .save(&d.join("complex.nii")),
            &["datatype code 32", "complex"],
        ),
        (
            Patched::of(&gz_src)
                .put(344, b"xyz\0".to_vec())
                .save(&d.join("magic.nii")),
            &["magic"],
        ),
        (
            Patched::of(&gz_src)
                .i16(46, 300)
                .save(&d.join("bigger.nii")),
            &["shorter than the header says"],
        ),
        (d.join("missing.nii"), &["no such file"]),
    ];
    // A gzip stream with a broken CRC: the voxels decompress, the check at the end fails.
    let mut crc = gz.clone();
    let n = crc.len();
    crc[n - 8] ^= 0xff;
    let crc_case = w("crc.nii.gz", &crc);
    for (p, wants) in cases
        .iter()
        .chain([(crc_case, &["gzip", "corrupt"][..])].iter())
    {
        let msg = read_error(p);
        for want in wants.iter() {
            assert!(
                msg.contains(want),
                "{}: message {msg:?} lacks {want:?}",
                p.display()
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Speed: `cargo test -p vistaflow-nodes --test nifti timing -- --ignored --nocapture` (the
// dev profile already builds zlib-rs and libtorch calls at opt-level 3); set
// VISTAFLOW_TIMING_DIR to keep the files, e.g. to time nibabel on them.

#[test]
#[ignore = "timing; run by hand with --release"]
fn timing_512x512x300_int16() {
    let Some(data) = data_dir() else { return };
    // CT-like content (compresses like CT): a real CT scaled up to 300 x 512 x 512.
    let ct = read_image(&resolve(
        &data,
        "data:totalsegmentator/aorta_report/example_ct.nii.gz",
    ));
    let big = ct
        .data()
        .to_kind(Kind::Float)
        .unsqueeze(0)
        .unsqueeze(0)
        .upsample_trilinear3d([300, 512, 512], false, None, None, None);
    let big = big.squeeze_dim(0).squeeze_dim(0).to_kind(Kind::Int16);
    let vol = Volume::new(big, Geometry::axis_aligned([0.7, 0.7, 1.0], [0.0; 3])).unwrap();
    let out = std::env::var_os("VISTAFLOW_TIMING_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    for name in ["timing.nii.gz", "timing.nii"] {
        let f = out.join(name);
        let t = std::time::Instant::now();
        nifti::write(&f, &Value::Image(vol.clone()), &ctx()).unwrap();
        let w = t.elapsed();
        let t = std::time::Instant::now();
        let back = read_image(&f);
        let r = t.elapsed();
        assert!(back.data().equal(vol.data()));
        let mb = std::fs::metadata(&f).unwrap().len() as f64 / 1e6;
        println!(
            "{name}: write {:.3} s, read {:.3} s, {mb:.1} MB on disk",
            w.as_secs_f64(),
            r.as_secs_f64()
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Progress and cancellation.

#[derive(Default)]
struct Recorder(std::sync::Mutex<Vec<(u64, u64, String)>>);

impl vistaflow_nodes::ProgressSink for Recorder {
    fn progress(&self, done: u64, total: u64, unit: &str) {
        self.0.lock().unwrap().push((done, total, unit.to_string()));
    }
    fn warn(&self, _: &str) {}
}

#[test]
fn large_files_report_progress_and_honour_cancellation() {
    if data_dir().is_none() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("big.nii");
    // 48 MiB of int16.
    let vol = Volume::new(
        Tensor::ones([96, 512, 512], (Kind::Int16, tch::Device::Cpu)),
        Geometry::axis_aligned([1.0; 3], [0.0; 3]),
    )
    .unwrap();
    let rec = std::sync::Arc::new(Recorder::default());
    let c = Ctx::new(
        tch::Device::Cpu,
        vistaflow_nodes::CancelToken::new(),
        rec.clone(),
    );
    nifti::write(&f, &Value::Image(vol.clone()), &c).unwrap();
    assert_eq!(
        rec.0.lock().unwrap().last().cloned(),
        Some((48, 48, "MB".to_string())),
        "write progress"
    );
    rec.0.lock().unwrap().clear();
    assert!(
        matches!(nifti::read(&f, false, &c).unwrap(), Value::Image(v) if v.data().equal(vol.data()))
    );
    assert_eq!(
        rec.0.lock().unwrap().last().cloned(),
        Some((48, 48, "MB".to_string())),
        "read progress"
    );
    // Cancelled: both stop with NodeError::Cancelled, and the write leaves nothing behind.
    let token = vistaflow_nodes::CancelToken::new();
    token.cancel();
    let c = Ctx::new(tch::Device::Cpu, token, rec);
    assert!(matches!(
        nifti::read(&f, false, &c),
        Err(NodeError::Cancelled)
    ));
    let g = dir.path().join("cancelled.nii.gz");
    assert!(matches!(
        nifti::write(&g, &Value::Image(vol), &c),
        Err(NodeError::Cancelled)
    ));
    assert!(!g.exists());
    assert_eq!(
        walk(dir.path()).len(),
        1,
        "only big.nii: {:?}",
        walk(dir.path())
    );
}

// ---------------------------------------------------------------------------------------------
// Unsigned 16/32-bit and int8 files (none among the real files: made by retyping real ones).

#[test]
fn uint16_uint32_widen_and_int8_reads_as_nibabel() {
    let Some(data) = data_dir() else { return };
    let dir = tempfile::tempdir().unwrap();
    // (source, new datatype code, kind we return, kind with the on-disk width)
    for (key, code, kind, narrow) in [
        (
            "data:totalsegmentator/example_ct_sm.nii.gz",
            512,
            Kind::Int,
            Kind::Int16,
        ), // -> uint16
        (
            "data:totalsegmentator/example_ct.nii.gz",
            768,
            Kind::Int64,
            Kind::Int,
        ), // -> uint32
        (
            "data:totalsegmentator/example_seg.nii.gz",
            256,
            Kind::Int8,
            Kind::Int8,
        ), // -> int8
    ] {
        let src = resolve(&data, key);
        let orig = read_image(&src);
        let f = Patched::of(&src)
            .i16(70, code)
            .save(&dir.path().join(format!("t{code}.nii")));
        let vol = read_image(&f);
        assert_eq!(vol.kind(), kind, "{key} as datatype {code}");
        let nib = nibabel_readback(&f);
        // Same bit patterns as nibabel's unsigned array once narrowed back to the disk width.
        assert_eq!(
            nib["sha256"].as_str().unwrap(),
            sha256(&vol.data().to_kind(narrow)),
            "{key} as {code}"
        );
        assert_eq!(
            vol.data()
                .to_kind(Kind::Double)
                .sum(Kind::Double)
                .double_value(&[]),
            nib["sum"].as_f64().unwrap()
        );
        if code != 256 {
            // Unsigned: no negative values; negative originals wrapped to x + 2^bits.
            assert!(vol.data().min().int64_value(&[]) >= 0, "{key} as {code}");
            let bits = if code == 512 { 16 } else { 32 };
            let want = orig.data().to_kind(Kind::Int64).remainder(1i64 << bits);
            assert!(
                vol.data().to_kind(Kind::Int64).equal(&want),
                "{key} as {code}"
            );
        }
    }
}
