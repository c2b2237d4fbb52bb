#![no_main]
//! A series folder through load_dicom as a user runs it: scan, series choice, slice order and
//! spacing, pixel decoding. The input is up to 8 files (Part 10, or legacy without preamble)
//! separated by `\n--file--\n`: one file, a series, or slices of mixed series.
use libfuzzer_sys::fuzz_target;
use vistaflow_fuzz::{ctx, scratch, split_at_marker};
use vistaflow_nodes::io::dicom::LoadDicom;
use vistaflow_nodes::node::Node;

fuzz_target!(|data: &[u8]| {
    vistaflow_fuzz::init();
    let dir = scratch().join("series");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let mut rest = Some(data);
    let mut n = 0;
    while let Some(bytes) = rest.filter(|_| n < 8) {
        let (file, after) = split_at_marker(bytes, b"\n--file--\n");
        std::fs::write(dir.join(format!("{n}.dcm")), file).unwrap();
        rest = after;
        n += 1;
    }
    let mut params = vistaflow_nodes::params::Params::new();
    params.insert("path".into(), serde_json::json!(dir));
    let _ = LoadDicom.run(&ctx(), Default::default(), &params);
});
