//! A DICOM folder as a workflow source: the folder's content digest keys the cache, and the
//! loaded series overlays the TotalSegmentator organ segmentation through the affines.

mod common;

use common::{load, run};
use vistaflow::exec::RunOptions;

#[test]
fn dicom_folder_source_is_cached_by_content() {
    let Some(data) = common::data_dir() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let series = dir.path().join("series");
    std::fs::create_dir(&series).unwrap();
    for e in std::fs::read_dir(data.join("totalsegmentator/example_ct_dicom"))
        .unwrap()
        .flatten()
    {
        std::fs::copy(e.path(), series.join(e.file_name())).unwrap();
    }
    let wf = dir.path().join("wf.yaml");
    std::fs::write(
        &wf,
        "version: 1\nnodes:\n  ct: { kind: load_dicom, params: { path: series } }\n  \
         out: { kind: save_nifti, inputs: { image: ct.image }, params: { path: out/ct.nii.gz } }\n",
    )
    .unwrap();
    let reg = common::registry();
    let first = run(load(&wf, &reg), RunOptions::default());
    assert_eq!(first.first_failure(), None);
    assert_eq!(first.ran().len(), 2);
    // nibabel sees the 20-slice 512x512 series with HU values.
    let nb = common::nibabel(&dir.path().join("out/ct.nii.gz"));
    assert_eq!(nb["shape"], serde_json::json!([512, 512, 20]), "{nb}");

    assert!(
        run(load(&wf, &reg), RunOptions::default()).ran().is_empty(),
        "second run all cached"
    );

    // A file added to the folder changes the folder's digest: the loader runs again (and
    // skips the non-DICOM file), and so does the save, whose input key changed.
    std::fs::write(series.join("README.txt"), "not DICOM").unwrap();
    let r = run(load(&wf, &reg), RunOptions::default());
    assert_eq!(r.first_failure(), None);
    assert_eq!(r.ran(), ["ct", "out"]);
}
