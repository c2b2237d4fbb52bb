//! The PNG preview sheet (`export::preview::write_png`) on real data: TotalSegmentator's
//! example segmentation over its CT.
//!
//! Needs `scripts/fetch-data.sh` (data/) and `scripts/setup-python.sh` (pillow, nibabel; the
//! oracle is `scripts/oracles/png_check.py`, an independent numpy rendering of the documented
//! sheet). Skips, with a message, only when data/ is absent.
//!
//! The image is `example_ct_sm.nii.gz`: slices 82-111 of `example_ct.nii.gz` with the same
//! header, i.e. exactly the grid of `example_seg.nii.gz` (the full CT is on another grid,
//! which the sheet must refuse). `VISTAFLOW_UPDATE_DOCS=1` rewrites docs/preview.png.

mod common;

use common::{ctx, data_dir, python, repo};
use serde_json::{json, Value as Json};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use tch::{Kind, Tensor};
use vistaflow_nodes::export::preview::{class_colour, write_png};
use vistaflow_nodes::io::LoadNifti;
use vistaflow_nodes::node::{Inputs, Node, NodeError};
use vistaflow_nodes::spatial::{reorient, Orientation};
use vistaflow_nodes::value::{ClassTable, Geometry, LabelMap, Value, Volume};

/// TotalSegmentator's names for the 41 classes of example_seg.nii.gz.
const NAMES: &[(u32, &str)] = &[
    (1, "spleen"),
    (2, "kidney_right"),
    (3, "kidney_left"),
    (4, "gallbladder"),
    (5, "liver"),
    (6, "stomach"),
    (7, "pancreas"),
    (8, "adrenal_gland_right"),
    (9, "adrenal_gland_left"),
    (10, "lung_upper_lobe_left"),
    (11, "lung_lower_lobe_left"),
    (13, "lung_middle_lobe_right"),
    (14, "lung_lower_lobe_right"),
    (18, "small_bowel"),
    (19, "duodenum"),
    (20, "colon"),
    (30, "vertebrae_L2"),
    (31, "vertebrae_L1"),
    (32, "vertebrae_T12"),
    (33, "vertebrae_T11"),
    (52, "aorta"),
    (63, "inferior_vena_cava"),
    (64, "portal_vein_and_splenic_vein"),
    (79, "spinal_cord"),
    (86, "autochthon_left"),
    (87, "autochthon_right"),
    (88, "iliopsoas_left"),
    (89, "iliopsoas_right"),
    (98, "rib_left_7"),
    (99, "rib_left_8"),
    (100, "rib_left_9"),
    (101, "rib_left_10"),
    (102, "rib_left_11"),
    (103, "rib_left_12"),
    (110, "rib_right_7"),
    (111, "rib_right_8"),
    (112, "rib_right_9"),
    (113, "rib_right_10"),
    (114, "rib_right_11"),
    (115, "rib_right_12"),
    (117, "costal_cartilages"),
];

const LIVER: u32 = 5;
const L1: u32 = 31;
/// The classes of docs/preview.png.
const DOCS_IDS: &[u32] = &[1, 2, 3, 5, 6, 20, 31, 52];

// Layout of the full sheet (41 classes, 122 x 101 x 30 voxels of 3 mm, the documented rules
// in export/preview/layout.rs worked by hand): 2 columns of 21 rows; room per row
// floor((4000 - 60 - 12 + 6) / 21) - 6 = 181 px; scale min(256/366, 181/303) px/mm; tiles
// axial 219x181, coronal 219x54, sagittal 181x54; column 232 + 219 + 219 + 181 + 8 = 859.
const FULL_SIZE: (u32, u32) = (12 + 859 + 24 + 859 + 12, 60 + 21 * 181 + 20 * 6 + 12);
const FULL_TILES: [(usize, usize); 3] = [(219, 181), (219, 54), (181, 54)];
const VIEWS: [&str; 3] = ["axial", "coronal", "sagittal"];

/// The tile (x, y, w, h) of view `v` in the row of the `q`-th class of the full sheet.
fn full_tile(q: usize, v: usize) -> [usize; 4] {
    let x0 = 12 + (q / 21) * (859 + 24) + 232;
    let x = x0 + FULL_TILES[..v].iter().map(|t| t.0 + 4).sum::<usize>();
    let y = 60 + (q % 21) * (181 + 6);
    [x, y, FULL_TILES[v].0, FULL_TILES[v].1]
}

fn ts(data: &Path, name: &str) -> PathBuf {
    let p = data.join("totalsegmentator").join(name);
    assert!(
        p.is_file(),
        "{} is missing: run scripts/fetch-data.sh",
        p.display()
    );
    p
}

/// Runs the `load_nifti` node.
fn load(path: &Path, labels: bool) -> Value {
    let mut p = serde_json::Map::new();
    p.insert("path".into(), Json::String(path.display().to_string()));
    p.insert("labels".into(), Json::Bool(labels));
    let mut out = LoadNifti
        .run(&ctx(), Inputs::new(), &p)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    out.remove(if labels { "labels" } else { "image" })
        .expect("load_nifti gives its port")
}

/// The example segmentation with TotalSegmentator's names, and the CT on its grid.
fn example(data: &Path) -> (LabelMap, Volume) {
    let labels = match load(&ts(data, "example_seg.nii.gz"), true) {
        Value::Labels(l) => l,
        other => panic!("expected labels, got {:?}", other.port_type()),
    };
    let classes: ClassTable = NAMES.iter().map(|&(i, n)| (i, n.to_string())).collect();
    let labels = LabelMap::new(labels.volume, classes).unwrap();
    let image = match load(&ts(data, "example_ct_sm.nii.gz"), false) {
        Value::Image(v) => v,
        other => panic!("expected an image, got {:?}", other.port_type()),
    };
    (labels, image)
}

/// `labels` with every class but `ids` set to 0.
fn subset(labels: &LabelMap, ids: &[u32]) -> LabelMap {
    let t = labels.volume.data();
    let mut keep = t.zeros_like().to_kind(Kind::Bool);
    for &id in ids {
        keep = keep.logical_or(&t.eq(id as i64));
    }
    let data = t.where_self(&keep, &t.zeros_like());
    let vol = Volume::new(data, *labels.volume.geometry()).unwrap();
    LabelMap::new(vol, labels.classes.clone()).unwrap()
}

/// Copies `sheet` to `$VISTAFLOW_KEEP_PNG/name` when that variable is set (to look at it).
fn keep(sheet: &Path, name: &str) {
    if let Some(d) = std::env::var_os("VISTAFLOW_KEEP_PNG") {
        std::fs::create_dir_all(&d).unwrap();
        std::fs::copy(sheet, Path::new(&d).join(name)).unwrap();
    }
}

/// Reads a PNG back with the `png` crate: (width, height, RGB bytes).
fn read_png(path: &Path) -> (u32, u32, Vec<u8>) {
    let dec = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(path).unwrap()));
    let mut r = dec.read_info().unwrap();
    let mut buf = vec![0; r.output_buffer_size().unwrap()];
    let info = r.next_frame(&mut buf).unwrap();
    assert_eq!(
        info.color_type,
        png::ColorType::Rgb,
        "the sheet is 8-bit RGB"
    );
    assert_eq!(info.bit_depth, png::BitDepth::Eight);
    buf.truncate(info.buffer_size());
    (info.width, info.height, buf)
}

fn pixel(img: &(u32, u32, Vec<u8>), x: usize, y: usize) -> [u8; 3] {
    let o = (y * img.0 as usize + x) * 3;
    [img.2[o], img.2[o + 1], img.2[o + 2]]
}

/// The voxel centroid (i, j, k) of class `id`, rounded.
fn centroid(labels: &LabelMap, id: u32) -> [usize; 3] {
    let idx = labels.volume.data().eq(id as i64).nonzero(); // [N, 3] as (k, j, i)
    let m =
        Vec::<f64>::try_from(idx.to_kind(Kind::Double).mean_dim(0, false, Kind::Double)).unwrap();
    [
        m[2].round() as usize,
        m[1].round() as usize,
        m[0].round() as usize,
    ]
}

/// W400/L40, as documented.
fn ct_grey(hu: f64) -> u32 {
    ((hu + 160.0) / 400.0)
        .clamp(0.0, 1.0)
        .mul_add(255.0, 0.5)
        .floor() as u32
}

fn blend(c: [u8; 3], grey: u32) -> [u8; 3] {
    c.map(|c| ((2 * c as u32 + 3 * grey + 2) / 5) as u8)
}

/// Pixels of exactly `colour` (the opaque outline) in a tile: (count, mean x, mean y) in
/// tile coordinates.
fn outline(img: &(u32, u32, Vec<u8>), t: [usize; 4], colour: [u8; 3]) -> (usize, f64, f64) {
    let (mut n, mut sx, mut sy) = (0, 0.0, 0.0);
    for y in 0..t[3] {
        for x in 0..t[2] {
            if pixel(img, t[0] + x, t[1] + y) == colour {
                n += 1;
                sx += x as f64;
                sy += y as f64;
            }
        }
    }
    (n, sx / n.max(1) as f64, sy / n.max(1) as f64)
}

/// What png_check.py (pillow + an independent numpy rendering) says about `sheet`.
fn oracle(sheet: &Path, labels: &Path, image: Option<&Path>, spec: &Json) -> Json {
    let mut child = Command::new(python())
        .arg(repo().join("scripts/oracles/png_check.py"))
        .arg(sheet)
        .arg(labels)
        .arg(image.map_or("-".into(), |p| p.display().to_string()))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("running the pillow oracle");
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(spec.to_string().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "png_check.py failed on {}: {}",
        sheet.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// The oracle's spec for rows `qs` (of the present `ids`, sorted) of a full-layout sheet.
fn spec(ids: &[u32], qs: &[usize], only: Option<&[u32]>) -> Json {
    let rows: Vec<Json> = qs
        .iter()
        .map(|&q| {
            let tiles: serde_json::Map<String, Json> = (0..3)
                .map(|v| (VIEWS[v].to_string(), json!(full_tile(q, v))))
                .collect();
            json!({"id": ids[q], "tiles": tiles})
        })
        .collect();
    let colours: serde_json::Map<String, Json> = ids
        .iter()
        .map(|&i| (i.to_string(), json!(class_colour(i))))
        .collect();
    json!({"rows": rows, "colours": colours, "alpha": [2, 5], "window": [-160.0, 240.0],
           "ids": only})
}

fn present_ids() -> Vec<u32> {
    NAMES.iter().map(|n| n.0).collect()
}

#[test]
fn sheet_over_ct_matches_layout_colours_and_orientation() {
    let Some(data) = data_dir() else { return };
    let (labels, image) = example(&data);
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("sub/preview.png");
    write_png(&out, &labels, Some(&image), &ctx()).unwrap();
    keep(&out, "full.png");
    let img = read_png(&out);
    assert_eq!(
        (img.0, img.1),
        FULL_SIZE,
        "size differs from the documented layout"
    );

    let ids = present_ids();
    let liver_q = ids.iter().position(|&i| i == LIVER).unwrap();
    // The liver centroid, drawn in the liver row's axial tile: patient right (voxel i grows
    // towards R in this RAS file) on the image's left, anterior (j grows towards A) up.
    let [ci, cj, ck] = centroid(&labels, LIVER);
    let t = full_tile(liver_q, 0);
    let (ni, nj) = (122usize, 101usize);
    let u = ((2 * (ni - 1 - ci) + 1) * t[2]) / (2 * ni);
    let v = ((2 * (nj - 1 - cj) + 1) * t[3]) / (2 * nj);
    assert_eq!((2 * u + 1) * ni / (2 * t[2]), ni - 1 - ci);
    let hu = image
        .data()
        .double_value(&[ck as i64, cj as i64, ci as i64]);
    let want = blend(class_colour(LIVER), ct_grey(hu));
    let got = pixel(&img, t[0] + u, t[1] + v);
    assert_eq!(
        got, want,
        "liver centroid ({ci},{cj},{ck}) at {hu} HU: pixel ({u},{v}) of the axial tile"
    );
    assert!(
        u < t[2] / 2,
        "the liver (patient right) must be on the axial tile's left"
    );
    // The liver's outline (opaque colour) is in the left half of its axial tile too.
    let (n, mx, _) = outline(&img, t, class_colour(LIVER));
    assert!(
        n > 100 && mx < t[2] as f64 / 2.0,
        "liver outline: {n} px, mean x {mx}"
    );
    // The spine is posterior: right half of the sagittal tile (anterior on the left).
    let l1_q = ids.iter().position(|&i| i == L1).unwrap();
    let t = full_tile(l1_q, 2);
    let (n, mx, _) = outline(&img, t, class_colour(L1));
    assert!(
        n > 20 && mx > 0.6 * t[2] as f64,
        "L1 outline: {n} px, mean x {mx} of {}",
        t[2]
    );
    // Superior up: the liver's outline in its coronal tile sits in the upper half
    // (the liver is the most cranial organ of this abdominal slab).
    let t = full_tile(liver_q, 1);
    let (n, _, my) = outline(&img, t, class_colour(LIVER));
    assert!(
        n > 20 && my < t[3] as f64 / 2.0,
        "liver coronal outline: {n} px, mean y {my}"
    );

    // Every pixel of every tile of a few rows, against pillow + an independent rendering.
    let qs: Vec<usize> = vec![0, liver_q, l1_q, 20, 21, 40];
    let r = oracle(
        &out,
        &ts(&data, "example_seg.nii.gz"),
        Some(&ts(&data, "example_ct_sm.nii.gz")),
        &spec(&ids, &qs, None),
    );
    eprintln!("png_check: {r}");
    assert_eq!(r["size"], json!([FULL_SIZE.0, FULL_SIZE.1]));
    assert_eq!(r["mode"], "RGB");
    assert!(r["compared"].as_u64().unwrap() > 200_000, "{r}");
    assert_eq!(r["mismatched"], 0, "{r}");
}

/// `v` with voxel axis i reversed in the tensor and the affine changed to match: the same
/// voxels in the same places.
fn flip_i(v: &Volume) -> Volume {
    let mut a = v.geometry().affine_lps;
    let ni = v.spatial_shape()[2] as f64;
    for row in a.iter_mut().take(3) {
        row[3] += row[0] * (ni - 1.0);
        row[0] = -row[0];
    }
    Volume::new(v.data().flip([-1]), Geometry { affine_lps: a }).unwrap()
}

fn relabel(l: &LabelMap, vol: Volume) -> LabelMap {
    LabelMap::new(vol, l.classes.clone()).unwrap()
}

#[test]
fn reoriented_copies_give_the_same_sheet() {
    let Some(data) = data_dir() else { return };
    let (labels, image) = example(&data);
    let dir = tempfile::tempdir().unwrap();
    let sheet = |name: &str, l: &LabelMap, i: &Volume| {
        let p = dir.path().join(name);
        write_png(&p, l, Some(i), &ctx()).unwrap();
        std::fs::read(p).unwrap()
    };
    let base = sheet("ras.png", &labels, &image);
    let flipped = sheet(
        "flip.png",
        &relabel(&labels, flip_i(&labels.volume)),
        &flip_i(&image),
    );
    assert!(base == flipped, "flipping voxel axis i changed the sheet");
    // A permutation too: i towards P, j towards I, k towards L.
    let o = Orientation::parse("PIL").unwrap();
    let pl = reorient(&labels.volume, o).unwrap();
    assert_eq!(pl.spatial_shape(), [122, 30, 101]);
    let permuted = sheet(
        "pil.png",
        &relabel(&labels, pl),
        &reorient(&image, o).unwrap(),
    );
    assert!(
        base == permuted,
        "storing the grid as PIL changed the sheet"
    );
}

#[test]
fn image_on_another_grid_is_refused_with_a_hint() {
    let Some(data) = data_dir() else { return };
    let (labels, image) = example(&data);
    let full_ct = match load(&ts(&data, "example_ct.nii.gz"), false) {
        Value::Image(v) => v,
        _ => unreachable!(),
    };
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("p.png");
    let msg = match write_png(&out, &labels, Some(&full_ct), &ctx()) {
        Err(NodeError::Invalid(m)) => m,
        other => panic!("expected Invalid, got {other:?}"),
    };
    assert!(
        msg.contains("[112, 101, 122]") && msg.contains("[30, 101, 122]"),
        "{msg}"
    );
    assert!(
        msg.contains("resample") && msg.contains("reference"),
        "{msg}"
    );
    // Same shape, moved by 1.5 mm.
    let mut a = image.geometry().affine_lps;
    a[2][3] += 1.5;
    let moved = Volume::new(image.data().shallow_clone(), Geometry { affine_lps: a }).unwrap();
    match write_png(&out, &labels, Some(&moved), &ctx()) {
        Err(NodeError::Invalid(m)) => assert!(m.contains("affine") && m.contains("1.5"), "{m}"),
        other => panic!("expected Invalid, got {other:?}"),
    }
    assert!(!out.exists(), "nothing is written on error");
}

#[test]
fn labels_alone_on_black() {
    let Some(data) = data_dir() else { return };
    let (labels, _) = example(&data);
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("labels_only.png");
    write_png(&out, &labels, None, &ctx()).unwrap();
    let img = read_png(&out);
    assert_eq!((img.0, img.1), FULL_SIZE);
    let ids = present_ids();
    let liver_q = ids.iter().position(|&i| i == LIVER).unwrap();
    let t = full_tile(liver_q, 0);
    assert_eq!(
        pixel(&img, t[0], t[1]),
        [0, 0, 0],
        "outside the body is black"
    );
    let qs = vec![liver_q, 40];
    let r = oracle(
        &out,
        &ts(&data, "example_seg.nii.gz"),
        None,
        &spec(&ids, &qs, None),
    );
    assert_eq!(r["mismatched"], 0, "{r}");
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        1,
        "a temporary file was left behind"
    );
}

#[test]
fn docs_sheet_of_eight_classes() {
    let Some(data) = data_dir() else { return };
    let (labels, image) = example(&data);
    let labels = subset(&labels, DOCS_IDS);
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("preview.png");
    write_png(&out, &labels, Some(&image), &ctx()).unwrap();
    keep(&out, "docs.png");
    // 8 rows, 1 column: scale 256/366 px/mm; tiles 256x212, 256x63, 212x63; column
    // 232 + 256 + 256 + 212 + 8 = 964.
    let img = read_png(&out);
    assert_eq!((img.0, img.1), (12 + 964 + 12, 60 + 8 * 212 + 7 * 6 + 12));
    let size = std::fs::metadata(&out).unwrap().len();
    assert!(size < 400_000, "docs sheet is {size} bytes");
    let tiles = [(256, 212), (256, 63), (212, 63)];
    let rows: Vec<Json> = (0..8)
        .map(|q| {
            let mut x = 12 + 232;
            let mut m = serde_json::Map::new();
            for (v, (w, h)) in tiles.iter().enumerate() {
                m.insert(VIEWS[v].into(), json!([x, 60 + q * 218, w, h]));
                x += w + 4;
            }
            json!({"id": DOCS_IDS[q], "tiles": m})
        })
        .collect();
    let mut s = spec(DOCS_IDS, &[], Some(DOCS_IDS));
    s["rows"] = Json::Array(rows);
    let r = oracle(
        &out,
        &ts(&data, "example_seg.nii.gz"),
        Some(&ts(&data, "example_ct_sm.nii.gz")),
        &s,
    );
    assert_eq!(r["mismatched"], 0, "{r}");
    if std::env::var_os("VISTAFLOW_UPDATE_DOCS").is_some() {
        std::fs::copy(&out, repo().join("docs/preview.png")).unwrap();
    }
}

/// A synthetic LPS label map of `ids.len()` 2x2x1 blocks on a grid of 24 x 20 x 10 voxels
/// of 1 x 2 x 5 mm (i towards L, j towards P, k towards S).
fn blocks(n: usize) -> LabelMap {
    let mut v = vec![0i16; 10 * 20 * 24];
    for q in 0..n {
        let (i, j, k) = ((q % 12) * 2, (q / 12 % 10) * 2, q / 120);
        for (dj, di) in [(0, 0), (0, 1), (1, 0), (1, 1)] {
            v[(k * 20 + j + dj) * 24 + i + di] = q as i16 + 1;
        }
    }
    let t = Tensor::from_slice(&v).reshape([10, 20, 24]);
    let g = Geometry::axis_aligned([1.0, 2.0, 5.0], [0.0, 0.0, 0.0]);
    LabelMap::new(Volume::new(t, g).unwrap(), ClassTable::new()).unwrap()
}

#[test]
fn many_classes_fold_into_columns_under_4000_px() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("many.png");
    write_png(&out, &blocks(120), None, &ctx()).unwrap();
    keep(&out, "many.png");
    // 3 columns of 40; extent 24 x 40 x 50 mm; room floor(3934 / 40) - 6 = 92 px, so
    // 1.84 px/mm: tiles axial 44x74, coronal 44x92, sagittal 74x92 (anisotropic voxels keep
    // their proportions); column 232 + 44 + 44 + 74 + 8 = 402.
    let img = read_png(&out);
    assert_eq!(
        (img.0, img.1),
        (12 + 3 * 402 + 2 * 24 + 12, 60 + 40 * 92 + 39 * 6 + 12)
    );
    // Class 1 sits at the patient's right anterior corner (i, j = 0, 1): the top-left of
    // its axial tile, outlined in its colour; row 1 of column 1 is class 41.
    let (x0, y0) = (12 + 232, 60);
    let c1 = class_colour(1);
    let (n, mx, my) = outline(&img, [x0, y0, 44, 74], c1);
    assert!(n > 0 && mx < 6.0 && my < 10.0, "{n} {mx} {my}");
    let x41 = 12 + 402 + 24 + 232;
    let (n, ..) = outline(&img, [x41, y0, 44, 74], class_colour(41));
    assert!(n > 0, "class 41 heads the second column");
}

#[test]
fn empty_label_map_gives_a_small_sheet() {
    let l = blocks(0);
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("empty.png");
    write_png(&out, &l, None, &ctx()).unwrap();
    keep(&out, "empty.png");
    let img = read_png(&out);
    assert_eq!(img.1, 12 + 28 + 12);
    assert!(img.0 > 400 && img.0 < 1600, "{}", img.0);
}

#[test]
fn cancelled_and_negative_ids() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("c.png");
    let c = ctx();
    c.cancel.cancel();
    assert!(matches!(
        write_png(&out, &blocks(3), None, &c),
        Err(NodeError::Cancelled)
    ));
    assert!(!out.exists());
    let t = Tensor::from_slice(&[0i16, -2, 1, 1]).reshape([1, 2, 2]);
    let l = LabelMap::new(
        Volume::new(t, Geometry::axis_aligned([1.0; 3], [0.0; 3])).unwrap(),
        ClassTable::new(),
    )
    .unwrap();
    match write_png(&out, &l, None, &ctx()) {
        Err(NodeError::Invalid(m)) => assert!(m.contains("-2"), "{m}"),
        other => panic!("expected Invalid, got {other:?}"),
    }
}

/// Time on a CT-sized grid (512 x 512 x 400, 24 classes): run with `--ignored`. About 1.7 s
/// over an image (the first call pays libtorch's warm-up), 0.5 s for labels alone, on 2 cores.
#[test]
#[ignore]
fn large_volume_timing() {
    let (nk, nj, ni) = (400i64, 512i64, 512i64);
    let opts = (Kind::Int64, tch::Device::Cpu);
    let k = Tensor::arange(nk, opts).view([nk, 1, 1]);
    let j = Tensor::arange(nj, opts).view([1, nj, 1]);
    let i = Tensor::arange(ni, opts).view([1, 1, ni]);
    let inside = (&i - 256).square() + (&j - 256).square();
    let id = (&k / 50) * 3 + (&i / 171) + 1;
    let labels = id
        .where_self(&inside.lt(200 * 200), &Tensor::zeros([1], opts))
        .to_kind(Kind::Uint8);
    let image = (&i + &j + &k).to_kind(Kind::Float) - 1000.0;
    let g = Geometry::axis_aligned([0.7, 0.7, 1.25], [0.0; 3]);
    let l = LabelMap::new(Volume::new(labels, g).unwrap(), ClassTable::new()).unwrap();
    let im = Volume::new(image, g).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let t = std::time::Instant::now();
    write_png(&dir.path().join("big.png"), &l, Some(&im), &ctx()).unwrap();
    eprintln!("over the image: {:.2} s", t.elapsed().as_secs_f64());
    let t = std::time::Instant::now();
    write_png(&dir.path().join("big2.png"), &l, None, &ctx()).unwrap();
    eprintln!("labels alone: {:.2} s", t.elapsed().as_secs_f64());
}
