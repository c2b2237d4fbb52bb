//! `export` `format: rtstruct` on the real TotalSegmentator CT series and its organ labels,
//! checked by independent tools: dciodvfy (dicom3tools) finds no error, and plastimatch
//! turns the RT-STRUCT back into one mask per ROI on the CT grid, which must be the label
//! map's voxel for voxel, except that plastimatch fills holes (it unions a slice's contours;
//! the RT-STRUCT writes holes as inner contours, read by even-odd: see
//! `export::rtstruct::contours`). Needs `scripts/fetch-data.sh` (data, dicom3tools,
//! plastimatch); skips only when data/ is absent.

mod common;

use common::data_dir;
use common::dicom_export::*;
use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use vistaflow_nodes::export::rtstruct;
use vistaflow_nodes::value::Value;

/// Voxel flags (k, j, i order) of `labels == class`, and of the mask `> 0`.
fn flags(t: &tch::Tensor) -> Vec<bool> {
    Vec::<bool>::try_from(&t.flatten(0, -1)).unwrap()
}

/// `mask` with its holes filled slice by slice: background not connected to the slice's
/// border (8-connectivity, as the contour tracer separates pixels touching at a corner).
fn fill_holes(mask: &[bool], [d, h, w]: [usize; 3]) -> Vec<bool> {
    let mut out = mask.to_vec();
    for k in 0..d {
        let s = &mut out[k * h * w..(k + 1) * h * w];
        let mut outside = vec![false; h * w];
        let mut stack: Vec<(usize, usize)> = (0..h)
            .flat_map(|j| (0..w).map(move |i| (j, i)))
            .filter(|&(j, i)| j == 0 || i == 0 || j == h - 1 || i == w - 1)
            .filter(|&(j, i)| !s[j * w + i])
            .collect();
        while let Some((j, i)) = stack.pop() {
            if outside[j * w + i] {
                continue;
            }
            outside[j * w + i] = true;
            for (dj, di) in [
                (-1, -1),
                (-1, 0),
                (-1, 1),
                (0, -1),
                (0, 1),
                (1, -1),
                (1, 0),
                (1, 1),
            ] {
                let (nj, ni) = (j as i64 + dj, i as i64 + di);
                if nj >= 0 && ni >= 0 && (nj as usize) < h && (ni as usize) < w {
                    let n = nj as usize * w + ni as usize;
                    if !s[n] && !outside[n] {
                        stack.push((nj as usize, ni as usize));
                    }
                }
            }
        }
        for (v, o) in s.iter_mut().zip(outside) {
            *v = !o;
        }
    }
    out
}

/// `mask` grown by one pixel (8-neighbourhood) in each slice.
fn grow_in_plane(mask: &[bool], [d, h, w]: [usize; 3]) -> Vec<bool> {
    let mut out = mask.to_vec();
    for k in 0..d {
        for j in 0..h {
            for i in 0..w {
                if !mask[(k * h + j) * w + i] {
                    continue;
                }
                for (dj, di) in [
                    (-1i64, -1i64),
                    (-1, 0),
                    (-1, 1),
                    (0, -1),
                    (0, 1),
                    (1, -1),
                    (1, 0),
                    (1, 1),
                ] {
                    let (nj, ni) = (j as i64 + dj, i as i64 + di);
                    if nj >= 0 && ni >= 0 && (nj as usize) < h && (ni as usize) < w {
                        out[(k * h + nj as usize) * w + ni as usize] = true;
                    }
                }
            }
        }
    }
    out
}

fn dice(a: &[bool], b: &[bool]) -> (f64, usize, usize) {
    let inter = a.iter().zip(b).filter(|(x, y)| **x && **y).count();
    let (na, nb) = (
        a.iter().filter(|x| **x).count(),
        b.iter().filter(|x| **x).count(),
    );
    (2.0 * inter as f64 / (na + nb) as f64, na, nb)
}

/// plastimatch's masks of `rt` on the CT grid, by ROI name.
fn plastimatch(rt: &Path, ct_dir: &Path, out: &Path) -> BTreeMap<String, std::path::PathBuf> {
    let o = Command::new("plastimatch")
        .args(["convert", "--input"])
        .arg(rt)
        .arg("--referenced-ct")
        .arg(ct_dir)
        .arg("--output-prefix")
        .arg(out)
        .args(["--prefix-format", "nii.gz"])
        .output()
        .unwrap_or_else(|e| panic!("cannot run plastimatch ({e}): apt-get install plastimatch"));
    assert!(
        o.status.success(),
        "plastimatch convert failed:\n{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    std::fs::read_dir(out)
        .unwrap()
        .map(|e| e.unwrap().path())
        .map(|p| {
            let name = p.file_name().unwrap().to_str().unwrap();
            (name.trim_end_matches(".nii.gz").to_string(), p)
        })
        .collect()
}

/// In `dir`: the series with its UIDs (`decompress`: and native pixels) in `ct/`, its image
/// and labels, and vistaflow's RT-STRUCT of them (`rt.dcm`) with the writer's warnings and
/// time; `None`, with a message, when data/ is absent.
struct Written {
    ct_dir: std::path::PathBuf,
    ct: vistaflow_nodes::value::Volume,
    labels: vistaflow_nodes::value::LabelMap,
    rt: std::path::PathBuf,
    warnings: Vec<String>,
}

fn series_and_rtstruct(dir: &Path, decompress: bool) -> Option<Written> {
    let Some(data) = data_dir() else {
        eprintln!("skipped: data/ is absent (scripts/fetch-data.sh)");
        return None;
    };
    let ct_dir = dir.join("ct");
    series_with_uids(&need(data.join(TS_DICOM)), &ct_dir, decompress);
    let (ct, labels) = inputs(&ct_dir, &data);
    let rt = dir.join("rt.dcm");
    let (ctx, rec) = rec_ctx();
    let start = std::time::Instant::now();
    rtstruct::write(&rt, &labels, &[], &ct, false, &BTreeMap::new(), &ctx).unwrap();
    eprintln!("rtstruct::write: {:?}", start.elapsed());
    let warnings = rec.warnings.lock().unwrap().clone();
    Some(Written {
        ct_dir,
        ct,
        labels,
        rt,
        warnings,
    })
}

#[test]
fn rtstruct_of_the_real_series_validates_and_plastimatch_reads_it_back() {
    let tmp = tempfile::tempdir().unwrap();
    // plastimatch finds slices by SOP Instance UID and has no JPEG 2000 codec: the series
    // with its UIDs filled in and its pixels decompressed
    let Some(Written {
        ct_dir,
        ct,
        labels,
        rt,
        warnings,
    }) = series_and_rtstruct(tmp.path(), true)
    else {
        return;
    };
    assert!(warnings.is_empty(), "{warnings:?}");
    dciodvfy(&rt);

    let masks = plastimatch(&rt, &ct_dir, &tmp.path().join("masks"));
    let spacing = ct.geometry().spacing();
    let ml = spacing.iter().product::<f64>() / 1000.0;
    let mut checked = 0;
    for class in present(&labels) {
        let name = rtstruct::names::roi_name(
            class,
            labels.classes.get(&class).map(String::as_str),
            &BTreeMap::new(),
        );
        let path = masks
            .get(&name)
            .unwrap_or_else(|| panic!("plastimatch wrote no mask for ROI {name}: {masks:?}"));
        let Value::Labels(mask) = load_nifti(path, true) else {
            panic!("labels")
        };
        let mask = resample_onto(mask, &ct);
        let theirs = flags(&mask.volume.data().gt(0));
        let ours = flags(&labels.volume.data().eq(class as i64));
        let (d, ours_n, theirs_n) = dice(&ours, &theirs);
        let volume_ml = ours_n as f64 * ml;
        eprintln!("{name}: {volume_ml:.1} ml, dice {d:.4}, voxels {ours_n} vs {theirs_n}");
        // plastimatch 1.9.4 fills a ROI's contours on a slice by union, not even-odd: an
        // inner contour (a hole) is filled. So its mask must be ours with the holes filled,
        // voxel for voxel; where there are no holes that is ours exactly.
        let size = labels.volume.data().size();
        let shape = [size[0] as usize, size[1] as usize, size[2] as usize];
        let filled = fill_holes(&ours, shape);
        let wrong = filled.iter().zip(&theirs).filter(|(a, b)| a != b).count();
        assert_eq!(
            wrong, 0,
            "{name}: {wrong} voxels differ from the labels with holes filled"
        );
        if filled == ours {
            assert_eq!(theirs, ours, "{name}");
        } else {
            eprintln!(
                "  {name} has holes: {} voxels (plastimatch fills them)",
                filled.iter().filter(|x| **x).count() - ours_n
            );
        }
        checked += 1;
    }
    assert!(checked >= 5, "only {checked} ROIs");
    // A second reader, rt-utils 1.2.7 (its own rasterisation: OpenCV's fillPoly on vertices
    // rounded to pixels, which also fills the pixels the outline passes through). So it must
    // hold every voxel of the label map, and add only voxels next to it (one pixel in-plane).
    let rtu = tmp.path().join("rtutils");
    std::fs::create_dir(&rtu).unwrap();
    let o = Command::new(common::python())
        .arg(common::repo().join("scripts/oracles/rtstruct_rtutils.py"))
        .arg(&ct_dir)
        .arg(&rt)
        .arg(&rtu)
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "rtstruct_rtutils.py: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(ct.geometry().affine_lps[2][2] > 0.0, "slices ascend in z");
    let mut differ_total = 0;
    for class in present(&labels) {
        let name = rtstruct::names::roi_name(
            class,
            labels.classes.get(&class).map(String::as_str),
            &BTreeMap::new(),
        );
        let theirs: Vec<bool> = std::fs::read(rtu.join(format!("{name}.u8")))
            .unwrap_or_else(|e| panic!("rt-utils has no ROI {name}: {e}"))
            .iter()
            .map(|b| *b != 0)
            .collect();
        let ours = flags(&labels.volume.data().eq(class as i64));
        let (d, _, _) = dice(&ours, &theirs);
        let lost = ours
            .iter()
            .zip(&theirs)
            .filter(|(a, b)| **a && !**b)
            .count();
        let size = labels.volume.data().size();
        let near = grow_in_plane(
            &ours,
            [size[0] as usize, size[1] as usize, size[2] as usize],
        );
        let far = theirs
            .iter()
            .zip(&near)
            .filter(|(t, n)| **t && !**n)
            .count();
        let extra = theirs
            .iter()
            .zip(&ours)
            .filter(|(t, o)| **t && !**o)
            .count();
        eprintln!("rt-utils {name}: Dice {d:.4}, {extra} voxels added on the outline");
        assert_eq!(lost, 0, "rt-utils {name}: voxels of the label map missing");
        assert_eq!(
            far, 0,
            "rt-utils {name}: voxels added away from the outline"
        );
        differ_total += extra;
    }
    eprintln!("rt-utils: {differ_total} voxels added over all ROIs");
    // TG-263 names for the named classes
    for name in ["Liver", "Spleen", "Stomach", "Pancreas"] {
        assert!(masks.contains_key(name), "no ROI {name}: {masks:?}");
    }
}

/// The label map load_rtstruct makes of `rt` on `ct`'s grid, and the warnings.
fn load_rt(
    rt: &Path,
    ct: &vistaflow_nodes::value::Volume,
    rois: Option<&[String]>,
) -> Result<(vistaflow_nodes::value::LabelMap, Vec<String>), String> {
    let (ctx, rec) = rec_ctx();
    let labels =
        vistaflow_nodes::io::rtstruct::load(rt, ct, rois, &ctx).map_err(|e| e.to_string())?;
    let warnings = rec.warnings.lock().unwrap().clone();
    Ok((labels, warnings))
}

/// The class id of `name` in `labels`.
fn id_of(labels: &vistaflow_nodes::value::LabelMap, name: &str) -> i64 {
    *labels
        .classes
        .iter()
        .find(|(_, n)| *n == name)
        .unwrap_or_else(|| panic!("no class {name}: {:?}", labels.classes))
        .0 as i64
}

#[test]
fn load_rtstruct_reads_ours_back_voxel_for_voxel_and_plastimatchs_within_its_tolerance() {
    let tmp = tempfile::tempdir().unwrap();
    let Some(Written {
        ct_dir,
        ct,
        labels,
        rt,
        ..
    }) = series_and_rtstruct(tmp.path(), true)
    else {
        return;
    };

    // Ours: every ROI back exactly, holes included (even-odd).
    let (back, warnings) = load_rt(&rt, &ct, None).unwrap();
    assert!(warnings.is_empty(), "{warnings:?}");
    let classes = present(&labels);
    assert_eq!(back.classes.len(), classes.len());
    for class in &classes {
        let name = rtstruct::names::roi_name(
            *class,
            labels.classes.get(class).map(String::as_str),
            &BTreeMap::new(),
        );
        let ours = flags(&labels.volume.data().eq(*class as i64));
        let read = flags(&back.volume.data().eq(id_of(&back, &name)));
        assert!(ours == read, "{name}: not read back voxel for voxel");
    }

    // plastimatch's: its masks of our RT-STRUCT written as a new RT-STRUCT by plastimatch
    // (its own contour extraction), loaded back against those masks.
    let masks_dir = tmp.path().join("masks");
    let masks = plastimatch(&rt, &ct_dir, &masks_dir);
    let out = tmp.path().join("plast-rt");
    let o = Command::new("plastimatch")
        .args(["convert", "--input-prefix"])
        .arg(&masks_dir)
        .arg("--referenced-ct")
        .arg(&ct_dir)
        .arg("--output-dicom")
        .arg(&out)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let plast_rt = walk(&out)
        .into_iter()
        .find(|p| {
            dicom_object::open_file(p).is_ok_and(|f| {
                f.element(dicom_dictionary_std::tags::MODALITY)
                    .is_ok_and(|e| e.to_str().is_ok_and(|s| s.trim() == "RTSTRUCT"))
            })
        })
        .unwrap_or_else(|| panic!("plastimatch wrote no RTSTRUCT in {}", out.display()));
    // plastimatch's ROIs overlap where it filled holes (the liver's hold other organs), and
    // a label map holds one class per voxel: each ROI is loaded on its own (`rois`).
    let (all, warnings) = load_rt(&plast_rt, &ct, None).unwrap();
    assert_eq!(all.classes.len(), masks.len());
    assert!(
        warnings.iter().any(|w| w.contains("ROIs overlap")),
        "{warnings:?}"
    );
    let mut worst = 1.0f64;
    for (name, path) in &masks {
        let Value::Labels(mask) = load_nifti(path, true) else {
            panic!("labels")
        };
        let mask = flags(&resample_onto(mask, &ct).volume.data().gt(0));
        let (theirs, _) = load_rt(&plast_rt, &ct, Some(std::slice::from_ref(name))).unwrap();
        let read = flags(&theirs.volume.data().eq(id_of(&theirs, name)));
        let (d, a, b) = dice(&mask, &read);
        eprintln!("plastimatch's {name}: dice {d:.4} ({a} vs {b} voxels)");
        worst = worst.min(d);
        assert!(d >= 0.98, "{name}: Dice {d}");
    }
    eprintln!("worst Dice over {} ROIs: {worst:.4}", masks.len());
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

#[test]
fn load_rtstruct_refuses_bad_structure_sets_with_the_file_and_the_cause() {
    let tmp = tempfile::tempdir().unwrap();
    let Some(Written {
        ct_dir,
        ct,
        labels,
        rt,
        ..
    }) = series_and_rtstruct(tmp.path(), false)
    else {
        return;
    };
    use dicom_core::{DataElement, PrimitiveValue, VR};
    use dicom_dictionary_std::tags;
    let edit = |name: &str, f: &dyn Fn(&mut dicom_object::DefaultDicomObject)| {
        let mut obj = dicom_object::open_file(&rt).unwrap();
        f(&mut obj);
        let p = tmp.path().join(name);
        obj.write_to_file(&p).unwrap();
        p
    };

    let e = load_rt(&rt, &ct, Some(&["Lever".to_string()])).unwrap_err();
    assert!(
        e.contains("rt.dcm") && e.contains("no ROI `Lever`") && e.contains("`Liver`"),
        "{e}"
    );

    // another frame of reference
    let other = edit("other-for.dcm", &|o| {
        let mut items = items_of(o, tags::REFERENCED_FRAME_OF_REFERENCE_SEQUENCE);
        items[0].put(DataElement::new(
            tags::FRAME_OF_REFERENCE_UID,
            VR::UI,
            PrimitiveValue::from("2.25.9"),
        ));
        put_seq(o, tags::REFERENCED_FRAME_OF_REFERENCE_SEQUENCE, items);
    });
    let e = load_rt(&other, &ct, None).unwrap_err();
    assert!(
        e.contains("other-for.dcm") && e.contains("another frame of reference"),
        "{e}"
    );

    // the first contour of the first ROI moved by half a slice
    let shifted = edit("shifted.dcm", &|o| {
        let mut rois = items_of(o, tags::ROI_CONTOUR_SEQUENCE);
        let mut contours = items_of(&rois[0], tags::CONTOUR_SEQUENCE);
        let mut v = contours[0]
            .element(tags::CONTOUR_DATA)
            .unwrap()
            .to_multi_float64()
            .unwrap();
        for z in v.iter_mut().skip(2).step_by(3) {
            *z += 1.0; // the series' slices are 2 mm apart
        }
        let text: Vec<String> = v.iter().map(|x| x.to_string()).collect();
        contours[0].put(DataElement::new(
            tags::CONTOUR_DATA,
            VR::DS,
            PrimitiveValue::from(text.join("\\")),
        ));
        put_seq(&mut rois[0], tags::CONTOUR_SEQUENCE, contours);
        put_seq(o, tags::ROI_CONTOUR_SEQUENCE, rois);
    });
    let e = load_rt(&shifted, &ct, None).unwrap_err();
    assert!(
        e.contains("shifted.dcm") && e.contains("between the image's slices (0.50 slices"),
        "{e}"
    );

    // a ROI without contours: named error when asked for, warning otherwise
    let emptied = edit("empty.dcm", &|o| {
        let rois = items_of(o, tags::ROI_CONTOUR_SEQUENCE)[1..].to_vec();
        put_seq(o, tags::ROI_CONTOUR_SEQUENCE, rois);
    });
    let first = rtstruct::names::roi_name(
        present(&labels)[0],
        labels.classes.get(&present(&labels)[0]).map(String::as_str),
        &BTreeMap::new(),
    );
    let e = load_rt(&emptied, &ct, Some(std::slice::from_ref(&first))).unwrap_err();
    assert!(e.contains(&format!("ROI `{first}` has no contours")), "{e}");
    let (_, warnings) = load_rt(&emptied, &ct, None).unwrap();
    assert!(
        warnings
            .iter()
            .any(|w| w.contains("without contours") && w.contains(&first)),
        "{warnings:?}"
    );

    // not an RT-STRUCT at all
    let ct_file = walk(&ct_dir)[0].clone();
    let e = load_rt(&ct_file, &ct, None).unwrap_err();
    assert!(e.contains("not an RT Structure Set"), "{e}");
}

/// The items of sequence `tag` of `obj` (a copy to edit).
fn items_of(
    obj: &dicom_object::InMemDicomObject,
    tag: dicom_core::Tag,
) -> Vec<dicom_object::InMemDicomObject> {
    obj.element(tag).unwrap().items().unwrap().to_vec()
}

/// Replaces sequence `tag` of `obj` with `items`.
fn put_seq(
    obj: &mut dicom_object::InMemDicomObject,
    tag: dicom_core::Tag,
    items: Vec<dicom_object::InMemDicomObject>,
) {
    obj.put(dicom_core::DataElement::new(
        tag,
        dicom_core::VR::SQ,
        dicom_core::value::DataSetSequence::from(items),
    ));
}
