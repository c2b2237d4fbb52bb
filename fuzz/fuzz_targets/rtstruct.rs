#![no_main]
//! An RT Structure Set through load_rtstruct onto the fixture CT series (fuzz/fixtures):
//! reading the ROIs and contours, the reference checks, placing each contour on a slice and
//! filling it. Once with every ROI, once asking for the first ROI by name.
use libfuzzer_sys::fuzz_target;
use vistaflow_fuzz::{ctx, file, fixture_series};
use vistaflow_nodes::io::rtstruct;

fuzz_target!(|data: &[u8]| {
    vistaflow_fuzz::init();
    let image = fixture_series();
    let p = file("rtstruct.dcm", data);
    let _ = rtstruct::load(&p, image, None, &ctx());
    let _ = rtstruct::load(&p, image, Some(&["Liver".to_string()]), &ctx());
});
