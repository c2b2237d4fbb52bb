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

#[test]
fn rtstruct_of_the_real_series_validates_and_plastimatch_reads_it_back() {
    let Some(data) = data_dir() else {
        eprintln!("skipped: data/ is absent (scripts/fetch-data.sh)");
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    // plastimatch finds slices by SOP Instance UID and has no JPEG 2000 codec: the series
    // with its UIDs filled in and its pixels decompressed
    let ct_dir = tmp.path().join("ct");
    series_with_uids(&need(data.join(TS_DICOM)), &ct_dir, true);
    let (ct, labels) = inputs(&ct_dir, &data);
    let rt = tmp.path().join("out/rt.dcm");
    let (ctx, rec) = rec_ctx();
    let start = std::time::Instant::now();
    rtstruct::write(&rt, &labels, &ct, false, &BTreeMap::new(), &ctx).unwrap();
    eprintln!("rtstruct::write: {:?}", start.elapsed());
    assert!(rec.warnings.lock().unwrap().is_empty());
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
    // TG-263 names for the named classes
    for name in ["Liver", "Spleen", "Stomach", "Pancreas"] {
        assert!(masks.contains_key(name), "no ROI {name}: {masks:?}");
    }
}
