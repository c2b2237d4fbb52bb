//! Headers that lie: a NIfTI or NRRD declaring far more voxels than its file can hold is
//! refused before anything is allocated (it asked libtorch for terabytes and failed with a
//! C++ backtrace), and a detached NRRD naming a data file outside its folder is refused and
//! never read, not even to digest it for the cache key.

mod common;

use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};
use vistaflow_nodes::io::{nifti, nrrd};
use vistaflow_nodes::node::Ctx;

fn gzip(b: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(b).unwrap();
    e.finish().unwrap()
}

/// A NIfTI-1 header (uint8, `dim` as given, no orientation) and `extra` zero bytes of data.
fn nifti1(dim: [i16; 3], extra: usize) -> Vec<u8> {
    let mut h = vec![0u8; 352];
    h[0..4].copy_from_slice(&348i32.to_le_bytes());
    let dims = [3, dim[0], dim[1], dim[2], 1, 1, 1, 1];
    for (i, d) in dims.iter().enumerate() {
        h[40 + 2 * i..42 + 2 * i].copy_from_slice(&d.to_le_bytes());
    }
    h[70..72].copy_from_slice(&2i16.to_le_bytes()); // DT_UINT8
    h[72..74].copy_from_slice(&8i16.to_le_bytes());
    for i in 0..8 {
        h[76 + 4 * i..80 + 4 * i].copy_from_slice(&1f32.to_le_bytes());
    }
    h[108..112].copy_from_slice(&352f32.to_le_bytes());
    h[344..348].copy_from_slice(b"n+1\0");
    h.extend(std::iter::repeat_n(0u8, extra));
    h
}

fn quick<T>(what: &str, f: impl FnOnce() -> T) -> T {
    let t = Instant::now();
    let r = f();
    assert!(
        t.elapsed() < Duration::from_secs(5),
        "{what} took {:?}",
        t.elapsed()
    );
    r
}

#[test]
fn a_gzip_nifti_declaring_32767_cubed_is_refused_before_allocating() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("huge.nii.gz");
    std::fs::write(&p, gzip(&nifti1([32767, 32767, 32767], 4096))).unwrap();
    let m = quick("huge.nii.gz", || {
        common::file_error(&p, nifti::read(&p, false, &Ctx::cpu()))
    });
    assert!(
        m.contains("declares 32.0 TiB of voxel data") && m.contains("header is corrupt"),
        "{m}"
    );
    // A small true volume in the same form still reads.
    let ok = dir.path().join("ok.nii.gz");
    std::fs::write(&ok, gzip(&nifti1([4, 5, 6], 120))).unwrap();
    let v = nifti::read(&ok, false, &Ctx::cpu()).unwrap();
    assert_eq!(v.volume().spatial_shape(), [6, 5, 4]);
}

#[test]
fn a_nrrd_declaring_100000_cubed_is_refused_raw_and_gzip() {
    let dir = tempfile::tempdir().unwrap();
    for (enc, data) in [("raw", vec![0u8; 4096]), ("gzip", gzip(&[0u8; 4096]))] {
        let p = dir.path().join(format!("huge-{enc}.nrrd"));
        let mut bytes = format!(
            "NRRD0004\ntype: uint8\ndimension: 3\nsizes: 100000 100000 100000\nencoding: {enc}\n\n"
        )
        .into_bytes();
        bytes.extend(&data);
        std::fs::write(&p, bytes).unwrap();
        let m = quick(enc, || {
            common::file_error(&p, nrrd::read(&p, false, &Ctx::cpu()))
        });
        assert!(
            m.contains("declares 909.5 TiB of voxel data") && m.contains("header is corrupt"),
            "{enc}: {m}"
        );
    }
}

#[test]
fn a_detached_data_file_outside_the_header_folder_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let inner = dir.path().join("scan");
    std::fs::create_dir(&inner).unwrap();
    std::fs::write(dir.path().join("outside.raw"), [7u8; 8]).unwrap();
    std::fs::write(inner.join("inside.raw"), [7u8; 8]).unwrap();
    for (name, target) in [
        ("abs.nhdr", "/etc/passwd".to_string()),
        ("up.nhdr", "../outside.raw".to_string()),
        ("ok.nhdr", "inside.raw".to_string()),
    ] {
        let p = inner.join(name);
        std::fs::write(
            &p,
            format!(
                "NRRD0004\ntype: uint8\ndimension: 3\nsizes: 2 2 2\nencoding: raw\ndata file: {target}\n"
            ),
        )
        .unwrap();
        let r = nrrd::read(&p, false, &Ctx::cpu());
        let digested = nrrd::data_files(&p);
        if name == "ok.nhdr" {
            assert!(r.is_ok(), "{r:?}");
            assert_eq!(digested, vec![inner.join("inside.raw")]);
            continue;
        }
        let m = common::file_error(&p, r);
        assert!(
            m.contains(&format!("`{target}` is outside the header's folder"))
                && m.contains("link or copy"),
            "{name}: {m}"
        );
        assert!(digested.is_empty(), "{name}: {digested:?} would be read");
        assert!(!Path::new(&target).starts_with(&inner));
    }
}
