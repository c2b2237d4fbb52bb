#![no_main]
//! NRRD with attached data (raw, gzip, ascii encodings as the header says), image and labels.
use libfuzzer_sys::fuzz_target;
use vistaflow_fuzz::{ctx, file};
use vistaflow_nodes::io::nrrd;

fuzz_target!(|data: &[u8]| {
    vistaflow_fuzz::init();
    let p = file("in.nrrd", data);
    let _ = nrrd::read(&p, false, &ctx());
    let _ = nrrd::read(&p, true, &ctx());
});
