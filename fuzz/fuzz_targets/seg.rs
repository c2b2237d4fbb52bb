#![no_main]
//! A DICOM Segmentation through load_dicom_seg onto the fixture CT series (fuzz/fixtures):
//! the header checks, segments, functional groups, frame placement and the bit-packed or
//! fractional pixels.
use libfuzzer_sys::fuzz_target;
use vistaflow_fuzz::{ctx, file, fixture_series};
use vistaflow_nodes::io::seg;

fuzz_target!(|data: &[u8]| {
    vistaflow_fuzz::init();
    let p = file("seg.dcm", data);
    let _ = seg::load(&p, fixture_series(), 0.5, &ctx());
});
