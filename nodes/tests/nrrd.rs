//! NRRD reading and writing against pynrrd and SimpleITK, on real files.
//!
//! Needs `scripts/fetch-data.sh` (data/pyradiomics) and `scripts/setup-python.sh` (pynrrd,
//! SimpleITK, nibabel; python from VISTAFLOW_PYTHON or ~/.cache/vistaflow/venv/bin/python).
//! The expected values in golden/nrrd.json come from `scripts/oracles/nrrd_golden.py`, which
//! checks that pynrrd and SimpleITK agree first. Every test skips, with a message, only when
//! data/ is absent; any other missing piece is a failure.

mod common;

use common::{ctx, data_dir, mat, python, repo, sha256};
use serde_json::Value as Json;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use tch::{Kind, Tensor};
use vistaflow_nodes::io::nifti;
use vistaflow_nodes::io::nrrd::{self, LoadNrrd, SaveNrrd};
use vistaflow_nodes::node::{CancelToken, Ctx, Node, NodeError, ProgressSink};
use vistaflow_nodes::value::{ClassTable, Geometry, LabelMap, Value, Volume};

const GOLDEN: &str = include_str!("golden/nrrd.json");

fn golden() -> serde_json::Map<String, Json> {
    common::golden_files(GOLDEN)
}

/// A pyradiomics sample file; missing (with data/ present) is a failure.
fn sample(data: &Path, name: &str) -> PathBuf {
    let p = data.join("pyradiomics").join(name);
    assert!(
        p.is_file(),
        "{} is missing: run scripts/fetch-data.sh",
        p.display()
    );
    p
}

fn oracle(script: &str, args: &[&Path]) -> Json {
    let out = Command::new(python())
        .arg(repo().join("scripts/oracles").join(script))
        .args(args)
        .output()
        .expect("running a python oracle");
    assert!(
        out.status.success(),
        "{script} failed on {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// What pynrrd and SimpleITK read from `path` (scripts/oracles/nrrd_readback.py).
fn readback(path: &Path) -> Json {
    oracle("nrrd_readback.py", &[path])
}

fn read(p: &Path, labels: bool) -> Value {
    nrrd::read(p, labels, &ctx()).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn read_image(p: &Path) -> Volume {
    common::image(p, nrrd::read(p, false, &ctx()))
}

fn read_labels(p: &Path) -> LabelMap {
    common::labels(p, read(p, true))
}

/// The message of a read that must fail with NodeError::File naming `p`.
fn read_error(p: &Path) -> String {
    common::file_error(p, nrrd::read(p, false, &ctx()))
}

fn assert_affine(what: &str, got: &[[f64; 4]; 4], want: &[[f64; 4]; 4], tol: f64) {
    common::assert_affine("the oracle", what, got, want, tol)
}

/// The tch kind whose bytes equal numpy `dtype`'s (unsigned types in the signed kind of their
/// width), and the kind vistaflow returns for it.
fn kinds_of(dtype: &str) -> (Kind, Kind) {
    match dtype {
        "uint8" => (Kind::Uint8, Kind::Uint8),
        "int8" => (Kind::Int8, Kind::Int8),
        "int16" => (Kind::Int16, Kind::Int16),
        "uint16" => (Kind::Int16, Kind::Int),
        "int32" => (Kind::Int, Kind::Int),
        "uint32" => (Kind::Int, Kind::Int64),
        "int64" | "uint64" => (Kind::Int64, Kind::Int64),
        "float32" => (Kind::Float, Kind::Float),
        "float64" => (Kind::Double, Kind::Double),
        d => panic!("unexpected dtype {d}"),
    }
}

/// Asserts that `vol` is what an oracle's facts say: shape, kind, samples, affine.
fn assert_facts(what: &str, vol: &Volume, f: &Json, tol: f64) {
    assert!(f.get("error").is_none(), "{what}: the oracle failed: {f}");
    let shape: Vec<i64> = f["shape"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_i64().unwrap())
        .collect();
    assert_eq!(vol.data().size(), shape, "{what}: shape");
    let (storage, returned) = kinds_of(f["dtype"].as_str().unwrap());
    assert_eq!(vol.kind(), returned, "{what}: kind");
    assert_eq!(
        sha256(&vol.data().to_kind(storage)),
        f["sha256"].as_str().unwrap(),
        "{what}: samples differ"
    );
    assert_affine(
        what,
        &vol.geometry().affine_lps,
        &mat(&f["affine_lps"]),
        tol,
    );
}

// ---------------------------------------------------------------------------------------------
// Reading the pyradiomics files.

#[test]
fn pyradiomics_files_match_pynrrd_and_simpleitk() {
    let Some(data) = data_dir() else { return };
    let g = golden();
    assert_eq!(g.len(), 10);
    for (key, f) in g {
        let rel = key.strip_prefix("data:").unwrap();
        let path = data.join(rel);
        assert!(
            path.is_file(),
            "{} is missing: run scripts/fetch-data.sh",
            path.display()
        );
        let labels = rel.ends_with("_label.nrrd");
        let vol = if labels {
            let l = read_labels(&path);
            assert!(
                l.classes.is_empty(),
                "{key}: no Slicer segment names in these files"
            );
            l.volume
        } else {
            read_image(&path)
        };
        // Bit for bit: both parse the same decimals with correctly rounded parsers.
        assert_facts(&key, &vol, &f, 0.0);
        assert_eq!(
            vol.meta.get("source_format").map(String::as_str),
            Some("nrrd")
        );
        assert_eq!(
            vol.meta.get("nrrd_space").map(String::as_str),
            Some("left-posterior-superior")
        );
        assert_eq!(
            vol.meta.len(),
            2,
            "{key}: no other metadata: {:?}",
            vol.meta
        );
    }
}

#[test]
fn lung1_tumour_spans_three_slices_inside_the_lung() {
    let Some(data) = data_dir() else { return };
    let ct = read_image(&sample(&data, "lung1_image.nrrd"));
    let seg = read_labels(&sample(&data, "lung1_label.nrrd"));
    assert_eq!(ct.geometry(), seg.volume.geometry());
    let mask = seg.volume.data().ne(0);
    let per_slice = mask.sum_dim_intlist([1i64, 2].as_slice(), false, Kind::Int64);
    let slices = per_slice.gt(0).sum(Kind::Int64).int64_value(&[]);
    assert_eq!(slices, 3, "data.md: the lung1 tumour spans 3 slices");
    // A solid tumour: mean HU inside the mask well above air.
    let hu = ct
        .data()
        .to_kind(Kind::Double)
        .masked_select(&mask)
        .mean(Kind::Double);
    let hu = hu.double_value(&[]);
    assert!(hu > -300.0 && hu < 200.0, "mean HU in the tumour {hu}");
}

// ---------------------------------------------------------------------------------------------
// Round trips through pynrrd and SimpleITK.

#[test]
fn round_trips_gzip_raw_and_detached_read_back_identical() {
    let Some(data) = data_dir() else { return };
    let dir = tempfile::tempdir().unwrap();
    for name in ["lung1_image.nrrd", "brain1_label.nrrd"] {
        let src = sample(&data, name);
        let labels = name.contains("label");
        let value = read(&src, labels);
        for (file, compress) in [
            ("gz.nrrd", true),
            ("raw.nrrd", false),
            ("gz.nhdr", true),
            ("raw.nhdr", false),
        ] {
            let out = dir.path().join(format!("{name}.{file}"));
            nrrd::write(&out, &value, compress, &ctx()).unwrap();
            let what = format!("{name} -> {file}");
            let rb = readback(&out);
            assert_facts(
                &format!("{what} (pynrrd)"),
                value.volume(),
                &rb["pynrrd"],
                0.0,
            );
            assert_facts(
                &format!("{what} (SimpleITK)"),
                value.volume(),
                &rb["sitk"],
                1e-12,
            );
            assert_eq!(
                rb["pynrrd"]["space"], "left-posterior-superior",
                "{what}: space"
            );
            // And by us: the same value, bit for bit.
            let back = read(&out, labels);
            assert_eq!(back.volume().data().size(), value.volume().data().size());
            assert!(back.volume().data().equal(value.volume().data()), "{what}");
            assert_eq!(
                back.volume().geometry(),
                value.volume().geometry(),
                "{what}"
            );
            if file.ends_with("nhdr") {
                let data_file = dir.path().join(format!(
                    "{name}.{}.raw{}",
                    file.trim_end_matches(".nhdr"),
                    if compress { ".gz" } else { "" }
                ));
                assert!(
                    data_file.is_file(),
                    "{what}: {} missing",
                    data_file.display()
                );
            }
        }
    }
    // Only finished files are left: no temporaries.
    for e in std::fs::read_dir(dir.path()).unwrap() {
        let n = e.unwrap().file_name().into_string().unwrap();
        assert!(!n.ends_with(".partial"), "left behind: {n}");
    }
}

/// An oblique affine with awkward decimals, every kind, and a 4D volume.
#[test]
fn oblique_affines_every_kind_and_channels_round_trip() {
    let Some(_) = data_dir() else { return };
    let dir = tempfile::tempdir().unwrap();
    let (c, s) = (0.3f64.cos(), 0.3f64.sin());
    let geom = Geometry {
        affine_lps: [
            [0.7 * c, -0.9 * s, 0.0, -123.456789012345],
            [0.7 * s, 0.9 * c, 0.1, 0.1 + 0.2],
            [0.0, 0.0, 2.5, 1e-7],
            [0.0, 0.0, 0.0, 1.0],
        ],
    };
    let base = Tensor::arange(4 * 5 * 6, (Kind::Int64, tch::Device::Cpu)).reshape([4, 5, 6]) - 50;
    for kind in [
        Kind::Uint8,
        Kind::Int8,
        Kind::Int16,
        Kind::Int,
        Kind::Int64,
        Kind::Float,
        Kind::Double,
    ] {
        let t = if matches!(kind, Kind::Float | Kind::Double) {
            base.to_kind(kind) / 7.0
        } else {
            base.to_kind(kind)
        };
        let vol = Volume::new(t, geom).unwrap();
        let out = dir.path().join(format!("{kind:?}.nrrd"));
        nrrd::write(&out, &Value::Image(vol.clone()), true, &ctx()).unwrap();
        let rb = readback(&out);
        assert_facts(&format!("{kind:?} (pynrrd)"), &vol, &rb["pynrrd"], 0.0);
        assert_facts(&format!("{kind:?} (SimpleITK)"), &vol, &rb["sitk"], 1e-12);
        assert_eq!(read_image(&out).geometry(), &geom, "{kind:?}: exact affine");
    }
    // [C, D, H, W]: the channel axis is written last (kind `list`); pynrrd puts it back first.
    let t = Tensor::arange(3 * 4 * 5 * 6, (Kind::Float, tch::Device::Cpu)).reshape([3, 4, 5, 6]);
    let vol = Volume::new(t, geom).unwrap();
    let out = dir.path().join("channels.nrrd");
    nrrd::write(&out, &Value::Image(vol.clone()), false, &ctx()).unwrap();
    let rb = readback(&out);
    assert_facts("4D (pynrrd)", &vol, &rb["pynrrd"], 0.0);
    let back = read_image(&out);
    assert!(back.data().equal(vol.data()));
}

#[test]
fn label_maps_keep_their_class_names_as_slicer_segments() {
    let Some(_) = data_dir() else { return };
    let dir = tempfile::tempdir().unwrap();
    let t = Tensor::from_slice(&[0u8, 1, 2, 5, 1, 0, 0, 2]).reshape([2, 2, 2]);
    let vol = Volume::new(t, Geometry::axis_aligned([1.0, 1.0, 2.0], [0.0, 0.0, 0.0])).unwrap();
    let classes = ClassTable::from([
        (1, "liver".to_string()),
        (2, "spleen".to_string()),
        (5, "left kidney".to_string()),
    ]);
    let labels = Value::Labels(LabelMap::new(vol, classes.clone()).unwrap());
    let out = dir.path().join("seg.seg.nrrd");
    nrrd::write(&out, &labels, true, &ctx()).unwrap();
    let bytes = std::fs::read(&out).unwrap();
    let end = bytes.windows(2).position(|w| w == b"\n\n").unwrap();
    let text = String::from_utf8_lossy(&bytes[..end]).to_string();
    assert!(
        text.contains("Segment2_Name:=left kidney\nSegment2_LabelValue:=5\n"),
        "{text}"
    );
    let back = read_labels(&out);
    assert_eq!(back.classes, classes);
    assert!(back.volume.data().equal(labels.volume().data()));
    assert_eq!(back.volume.geometry(), labels.volume().geometry());
    let rb = readback(&out);
    assert_facts("labels (pynrrd)", labels.volume(), &rb["pynrrd"], 0.0);
}

// ---------------------------------------------------------------------------------------------
// NRRD -> NIfTI: the same place in the patient, as nibabel reads it.

#[test]
fn nrrd_to_nifti_keeps_world_geometry_in_nibabel() {
    let Some(data) = data_dir() else { return };
    let dir = tempfile::tempdir().unwrap();
    let g = golden();
    for name in [
        "lung1_image.nrrd",
        "brain1_image.nrrd",
        "breast1_label.nrrd",
    ] {
        let src = sample(&data, name);
        let value = read(&src, name.contains("label"));
        let out = dir.path().join(format!("{name}.nii.gz"));
        nifti::write(&out, &value, &ctx()).unwrap();
        let nib = oracle("nifti_readback.py", &[&out]);
        // nibabel's RAS affine, turned into LPS (x and y rows negated), against the golden
        // LPS affine that pynrrd and SimpleITK agree on. NIfTI stores the sform in float32:
        // within 1e-4 of a millimetre at these coordinates.
        let mut lps = mat(&nib["affine"]);
        for row in lps.iter_mut().take(2) {
            for v in row.iter_mut() {
                *v = -*v;
            }
        }
        let want = mat(&g[&format!("data:pyradiomics/{name}")]["affine_lps"]);
        assert_affine(&format!("{name} via NIfTI"), &lps, &want, 1e-4);
        // The voxel at the centre of the volume is at the same world point both ways.
        let gf = &g[&format!("data:pyradiomics/{name}")];
        assert_eq!(nib["sha256"], gf["sha256"], "{name}: NIfTI samples differ");
    }
}

// ---------------------------------------------------------------------------------------------
// Synthetic files with the variants the samples lack, against pynrrd and SimpleITK.

/// Writes a NRRD header plus `data` to `p`.
fn write_nrrd(p: &Path, header: &str, data: &[u8]) -> PathBuf {
    let mut f = std::fs::File::create(p).unwrap();
    f.write_all(header.as_bytes()).unwrap();
    f.write_all(data).unwrap();
    p.to_path_buf()
}

fn gzip(b: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(b).unwrap();
    e.finish().unwrap()
}

const PYNRRD_BYTE_SKIP_END: bool = true;
const SITK_LIST_AXIS: bool = true;

#[test]
fn header_variants_read_as_pynrrd_and_simpleitk_do() {
    let Some(_) = data_dir() else { return };
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let n: i32 = 2 * 3 * 4;
    let u16_be: Vec<u8> = (0..n as u16)
        .flat_map(|v| (v * 2700).to_be_bytes())
        .collect();
    let f64_le: Vec<u8> = (0..n)
        .flat_map(|v| (v as f64 * 0.25 - 1.0).to_le_bytes())
        .collect();
    let i32_le: Vec<u8> = (0..n).flat_map(|v| (v - 7).to_le_bytes()).collect();
    let geo = "space directions: (0,1.5,0) (-0.5,0,0) (0,0,3)\nspace origin: (10,-20,30)\n";
    // (what, file, checked against pynrrd, checked against SimpleITK)
    let cases: Vec<(&str, PathBuf, bool, bool)> = vec![
        (
            "uint16, big endian, raw, RAS, C spelling",
            write_nrrd(
                &d.join("a.nrrd"),
                &format!(
                    "NRRD0005\ntype: unsigned short\ndimension: 3\nspace: right-anterior-superior\n\
                     sizes: 2 3 4\n{geo}endian: big\nencoding: raw\n\n"
                ),
                &u16_be,
            ),
            true,
            true,
        ),
        (
            "double, gz, left-anterior-superior, CRLF lines, comments",
            write_nrrd(
                &d.join("b.nrrd"),
                &format!(
                    "NRRD0004\r\n# c\r\ntype: double\r\ndimension: 3\r\nspace: left-anterior-superior\r\n\
                     sizes: 2 3 4\r\n{}endian: little\r\nencoding: gz\r\nkinds: domain domain domain\r\n\r\n",
                    geo.replace('\n', "\r\n")
                ),
                &gzip(&f64_le),
            ),
            true,
            true,
        ),
        (
            "int32 detached with line skip and byte skip",
            {
                let mut raw = b"junk line\nmore\n".to_vec();
                raw.extend_from_slice(&[9u8; 5]);
                raw.extend_from_slice(&i32_le);
                std::fs::write(d.join("c.bin"), &raw).unwrap();
                write_nrrd(
                    &d.join("c.nhdr"),
                    &format!(
                        "NRRD0004\ntype: int\ndimension: 3\nspace: LPS\nsizes: 2 3 4\n{geo}\
                         endian: little\nencoding: raw\nline skip: 2\nbyte skip: 5\ndata file: c.bin\n"
                    ),
                    b"",
                )
            },
            true,
            true,
        ),
        (
            "int32 raw with byte skip -1 (data at the end)",
            {
                let mut raw = vec![1u8; 11];
                raw.extend_from_slice(&i32_le);
                write_nrrd(
                    &d.join("d.nrrd"),
                    &format!(
                        "NRRD0004\ntype: int32\ndimension: 3\nspace: left-posterior-superior\n\
                         sizes: 2 3 4\n{geo}endian: little\nencoding: raw\nbyte skip: -1\n\n"
                    ),
                    &raw,
                )
            },
            PYNRRD_BYTE_SKIP_END,
            true,
        ),
        (
            "3D Slicer layered .seg.nrrd: uint8, list axis first",
            write_nrrd(
                &d.join("e.seg.nrrd"),
                "NRRD0004\ntype: unsigned char\ndimension: 4\nspace: right-anterior-superior\n\
                 sizes: 2 2 3 4\nspace directions: none (0,1.5,0) (-0.5,0,0) (0,0,3)\n\
                 kinds: list domain domain domain\nencoding: gzip\nspace origin: (10,-20,30)\n\
                 measurement frame: (1,0,0) (0,1,0) (0,0,1)\n\
                 Segment0_Name:=tumour\nSegment0_LabelValue:=1\nSegment0_Layer:=0\n\
                 Segment1_Name:=lung\nSegment1_LabelValue:=1\nSegment1_Layer:=1\n\n",
                &gzip(&(0..2 * n).map(|v| (v % 2) as u8).collect::<Vec<_>>()),
            ),
            true,
            SITK_LIST_AXIS,
        ),
    ];
    for (what, path, with_pynrrd, with_sitk) in cases {
        let rb = readback(&path);
        let vol = read_image(&path);
        if with_pynrrd {
            assert_facts(&format!("{what} (pynrrd)"), &vol, &rb["pynrrd"], 0.0);
        }
        if with_sitk {
            assert_facts(&format!("{what} (SimpleITK)"), &vol, &rb["sitk"], 1e-12);
        }
    }
    // RAS on disk is LPS here: (0,1.5,0) -> (0,-1.5,0), origin (-10,20,30).
    let a = read_image(&d.join("a.nrrd"));
    assert_eq!(a.geometry().affine_lps[1][0], -1.5);
    assert_eq!(a.geometry().affine_lps[0][3], -10.0);
    assert_eq!(a.meta["nrrd_space"], "right-anterior-superior");
    assert_eq!(a.kind(), Kind::Int, "uint16 widens to int32");
    assert_eq!(a.data().max().int64_value(&[]), 23 * 2700);
    // Layered segmentation as labels: [2, D, H, W], class table from the segments, with a
    // warning for the value shared across layers.
    let seg = match nrrd::read(&d.join("e.seg.nrrd"), true, &ctx()).unwrap() {
        Value::Labels(l) => l,
        _ => unreachable!(),
    };
    assert_eq!(seg.volume.data().size(), vec![2, 4, 3, 2]);
    assert_eq!(seg.classes, ClassTable::from([(1, "tumour".to_string())]));
}

#[test]
fn uint64_and_float_labels() {
    let Some(_) = data_dir() else { return };
    let dir = tempfile::tempdir().unwrap();
    let hdr = |t: &str, enc: &str| {
        format!(
            "NRRD0004\ntype: {t}\ndimension: 3\nspace: LPS\nsizes: 2 1 1\n\
             space directions: (1,0,0) (0,1,0) (0,0,1)\nendian: little\nencoding: {enc}\n\n"
        )
    };
    let ok = write_nrrd(
        &dir.path().join("u64.nrrd"),
        &hdr("uint64", "raw"),
        &[5u64, 1 << 40]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect::<Vec<_>>(),
    );
    let v = read_image(&ok);
    assert_eq!(v.kind(), Kind::Int64);
    assert_eq!(v.data().int64_value(&[0, 0, 1]), 1 << 40);
    let big = write_nrrd(
        &dir.path().join("u64big.nrrd"),
        &hdr("uint64", "raw"),
        &[5u64, u64::MAX]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect::<Vec<_>>(),
    );
    assert!(read_error(&big).contains("2^63"));
    let fl = write_nrrd(
        &dir.path().join("f.nrrd"),
        &hdr("float", "raw"),
        &[3.0f32, 300.0]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect::<Vec<_>>(),
    );
    let l = read_labels(&fl);
    assert_eq!(l.volume.kind(), Kind::Int16, "smallest kind holding 0..300");
    let frac = write_nrrd(
        &dir.path().join("g.nrrd"),
        &hdr("float", "raw"),
        &[3.5f32, 1.0]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect::<Vec<_>>(),
    );
    match nrrd::read(&frac, true, &ctx()) {
        Err(NodeError::File { msg, .. }) => assert!(msg.contains("not whole numbers"), "{msg}"),
        other => panic!("expected an error, got {other:?}"),
    }
}

// ---------------------------------------------------------------------------------------------
// Bad input: a NodeError::File naming the file and the problem, never a panic.

#[test]
fn bad_files_give_clear_errors() {
    let Some(data) = data_dir() else { return };
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let lung = std::fs::read(sample(&data, "lung1_image.nrrd")).unwrap();
    let header_end = lung.windows(2).position(|w| w == b"\n\n").unwrap() + 2;
    let header = std::str::from_utf8(&lung[..header_end])
        .unwrap()
        .to_string();

    // Truncated gzip.
    let p = d.join("truncated.nrrd");
    std::fs::write(&p, &lung[..lung.len() / 2]).unwrap();
    let m = read_error(&p);
    assert!(m.contains("gzip") && m.contains("truncated"), "{m}");

    // Corrupt gzip (bytes flipped in the middle).
    let mut bad = lung.clone();
    let mid = bad.len() / 2;
    for b in &mut bad[mid..mid + 64] {
        *b ^= 0x5a;
    }
    let p = d.join("corrupt.nrrd");
    std::fs::write(&p, &bad).unwrap();
    let m = read_error(&p);
    assert!(m.contains("gzip"), "{m}");

    // A bad header line.
    let p = d.join("badline.nrrd");
    let h = header.replace(
        "kinds: domain domain domain\n",
        "kinds domain domain domain\n",
    );
    write_nrrd(&p, &h, &lung[header_end..]);
    let m = read_error(&p);
    assert!(
        m.contains("header line 9") && m.contains("kinds domain"),
        "{m}"
    );

    // Sizes that do not match the data: gzip with too much data, gzip with too little, raw
    // with too little.
    let p = d.join("sizes_small.nrrd");
    write_nrrd(
        &p,
        &header.replace("sizes: 512 512 48", "sizes: 512 512 47"),
        &lung[header_end..],
    );
    let m = read_error(&p);
    assert!(
        m.contains("longer than the header says") && m.contains("sizes"),
        "{m}"
    );
    let p = d.join("sizes_big.nrrd");
    write_nrrd(
        &p,
        &header.replace("sizes: 512 512 48", "sizes: 512 512 49"),
        &lung[header_end..],
    );
    let m = read_error(&p);
    assert!(
        m.contains("shorter than the header says") && m.contains("49"),
        "{m}"
    );
    let p = d.join("raw_short.nrrd");
    write_nrrd(
        &p,
        "NRRD0004\ntype: short\ndimension: 3\nspace: LPS\nsizes: 4 4 4\n\
         space directions: (1,0,0) (0,1,0) (0,0,1)\nendian: little\nencoding: raw\n\n",
        &[0u8; 100],
    );
    let m = read_error(&p);
    assert!(
        m.contains("shorter") && m.contains("128 bytes") && m.contains("100"),
        "{m}"
    );

    // Unknown type, unsupported encoding, unsupported space, not NRRD, empty, missing field,
    // missing detached data file.
    for (name, h, want) in [
        (
            "type.nrrd",
            header.replace("type: short", "type: quaternion"),
            "quaternion",
        ),
        (
            "enc.nrrd",
            header.replace("encoding: gzip", "encoding: bzip2"),
            "bzip2",
        ),
        (
            "space.nrrd",
            header.replace("left-posterior-superior", "3D-left-handed"),
            "3D-left-handed",
        ),
        (
            "magic.nrrd",
            header.replace("NRRD0004", "NRRD0009"),
            "not a NRRD",
        ),
        (
            "nosizes.nrrd",
            header.replace("sizes: 512 512 48\n", ""),
            "`sizes`",
        ),
        (
            "nodata.nhdr",
            header.replace(
                "encoding: gzip\n",
                "encoding: gzip\ndata file: nowhere.raw.gz\n",
            ),
            "no such file",
        ),
    ] {
        let p = d.join(name);
        write_nrrd(&p, &h, &lung[header_end..header_end + 1000]);
        let m = match nrrd::read(&p, false, &ctx()) {
            Err(NodeError::File { path, msg }) => {
                // A detached file's errors name the data file and the header.
                assert!(
                    path == p || msg.contains(&p.display().to_string()),
                    "{name}: {path:?}: {msg}"
                );
                msg
            }
            other => panic!("{name}: expected a File error, got {other:?}"),
        };
        assert!(m.contains(want), "{name}: {m}");
    }
    let p = d.join("empty.nrrd");
    std::fs::write(&p, b"").unwrap();
    assert!(read_error(&p).contains("empty"));
    // A folder, a missing file.
    assert!(read_error(d).contains("folder") || read_error(d).contains("directory"));
    assert!(read_error(&d.join("missing.nrrd")).contains("no such file"));
}

#[test]
fn write_errors_name_the_problem() {
    let Some(_) = data_dir() else { return };
    let dir = tempfile::tempdir().unwrap();
    let vol = Volume::new(
        Tensor::zeros([2, 2, 2], (Kind::Int16, tch::Device::Cpu)),
        Geometry::axis_aligned([1.0; 3], [0.0; 3]),
    )
    .unwrap();
    let v = Value::Image(vol);
    let p = dir.path().join("x.nii.gz");
    match nrrd::write(&p, &v, true, &ctx()) {
        Err(NodeError::File { path, msg }) => {
            assert_eq!(path, p);
            assert!(msg.contains(".nrrd") && msg.contains(".nhdr"), "{msg}");
        }
        other => panic!("{other:?}"),
    }
    // A parent that is a file.
    let f = dir.path().join("file");
    std::fs::write(&f, b"x").unwrap();
    match nrrd::write(&f.join("sub/x.nrrd"), &v, true, &ctx()) {
        Err(NodeError::File { msg, .. }) => assert!(msg.contains("not a folder"), "{msg}"),
        other => panic!("{other:?}"),
    }
}

// ---------------------------------------------------------------------------------------------
// The nodes, called directly.

#[test]
fn load_and_save_nodes() {
    let Some(data) = data_dir() else { return };
    let dir = tempfile::tempdir().unwrap();
    let mut params = serde_json::Map::new();
    params.insert(
        "path".into(),
        Json::String(sample(&data, "breast1_label.nrrd").display().to_string()),
    );
    params.insert("labels".into(), Json::Bool(true));
    let out = LoadNrrd.run(&ctx(), Default::default(), &params).unwrap();
    assert_eq!(out.keys().collect::<Vec<_>>(), ["labels"]);
    let ports: Vec<_> = LoadNrrd
        .outputs(&params, &Default::default())
        .iter()
        .map(|p| p.name)
        .collect();
    assert_eq!(ports, ["labels"]);

    let target = dir.path().join("sub/out.nrrd");
    let mut sp = serde_json::Map::new();
    sp.insert("path".into(), Json::String(target.display().to_string()));
    sp.insert("compress".into(), Json::Bool(false));
    SaveNrrd.run(&ctx(), out.clone(), &sp).unwrap();
    let text = std::fs::read(&target).unwrap();
    assert!(String::from_utf8_lossy(&text[..400]).contains("encoding: raw"));
    assert_eq!(read_labels(&target).volume, out["labels"].volume().clone());
    sp.insert("bogus".into(), Json::Bool(true));
    assert!(matches!(
        SaveNrrd.run(&ctx(), out, &sp),
        Err(NodeError::Invalid(_))
    ));
}

// ---------------------------------------------------------------------------------------------
// Progress, cancellation, speed.

#[derive(Default)]
struct Recorder {
    events: Mutex<Vec<(u64, u64)>>,
    cancel_after: Option<(CancelToken, u64)>,
}

impl ProgressSink for Recorder {
    fn progress(&self, done: u64, total: u64, _unit: &str) {
        self.events.lock().unwrap().push((done, total));
        if let Some((t, after)) = &self.cancel_after {
            if done >= *after {
                t.cancel();
            }
        }
    }
    fn warn(&self, _: &str) {}
}

#[test]
fn large_reads_report_progress_and_honour_cancellation() {
    let Some(_) = data_dir() else { return };
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("big.nrrd"); // 40 MB of int16
    let t = Tensor::arange(64 * 512 * 640, (Kind::Int, tch::Device::Cpu)).to_kind(Kind::Int16);
    let vol = Volume::new(
        t.reshape([64, 512, 640]),
        Geometry::axis_aligned([1.0; 3], [0.0; 3]),
    );
    nrrd::write(&p, &Value::Image(vol.unwrap()), true, &ctx()).unwrap();
    let rec = Arc::new(Recorder::default());
    let c = Ctx::new(tch::Device::Cpu, CancelToken::new(), rec.clone());
    nrrd::read(&p, false, &c).unwrap();
    let ev = rec.events.lock().unwrap().clone();
    assert!(
        ev.len() >= 3 && ev.last().unwrap().0 == ev.last().unwrap().1,
        "{ev:?}"
    );

    let token = CancelToken::new();
    let rec = Arc::new(Recorder {
        cancel_after: Some((token.clone(), 8)),
        ..Default::default()
    });
    let c = Ctx::new(tch::Device::Cpu, token, rec);
    assert!(matches!(
        nrrd::read(&p, false, &c),
        Err(NodeError::Cancelled)
    ));
}

#[test]
#[ignore = "timing; run by hand: cargo test --release --test nrrd -- --ignored --nocapture"]
fn timing_lung_ct_vs_simpleitk() {
    let Some(data) = data_dir() else { return };
    let p = sample(&data, "lung1_image.nrrd");
    let dir = tempfile::tempdir().unwrap();
    let best = |f: &mut dyn FnMut()| {
        (0..5)
            .map(|_| {
                let t = std::time::Instant::now();
                f();
                t.elapsed().as_secs_f64()
            })
            .fold(f64::INFINITY, f64::min)
    };
    let v = read(&p, false);
    let read_s = best(&mut || {
        read(&p, false);
    });
    let gz = dir.path().join("ours_gz.nrrd");
    let raw = dir.path().join("ours_raw.nrrd");
    let write_gz = best(&mut || nrrd::write(&gz, &v, true, &ctx()).unwrap());
    let write_raw = best(&mut || nrrd::write(&raw, &v, false, &ctx()).unwrap());
    let sitk = oracle("nrrd_bench.py", &[&p, dir.path(), Path::new("5")]);
    println!(
        "lung1 512x512x48 int16 (12.5 MB gzip): read {read_s:.3}s (SimpleITK {:.3}s, pynrrd \
         {:.3}s); write gzip {write_gz:.3}s, {} bytes (SimpleITK {:.3}s, {} bytes); write raw \
         {write_raw:.3}s (SimpleITK {:.3}s)",
        sitk["sitk_read"].as_f64().unwrap(),
        sitk["pynrrd_read"].as_f64().unwrap(),
        std::fs::metadata(&gz).unwrap().len(),
        sitk["sitk_write_gzip"].as_f64().unwrap(),
        sitk["sitk_gzip_bytes"],
        sitk["sitk_write_raw"].as_f64().unwrap(),
    );
}
