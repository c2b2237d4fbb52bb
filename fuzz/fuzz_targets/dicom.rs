#![no_main]
//! A series folder holding one DICOM file (Part 10, or legacy without preamble), through
//! load_dicom as a user runs it: scan, series choice, layout, pixel decoding.
use libfuzzer_sys::fuzz_target;
use vistaflow_fuzz::{ctx, scratch};
use vistaflow_nodes::io::dicom::LoadDicom;
use vistaflow_nodes::node::Node;

fuzz_target!(|data: &[u8]| {
    vistaflow_fuzz::init();
    let dir = scratch().join("series");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("1.dcm"), data).unwrap();
    let mut params = vistaflow_nodes::params::Params::new();
    params.insert("path".into(), serde_json::json!(dir));
    let _ = LoadDicom.run(&ctx(), Default::default(), &params);
});
