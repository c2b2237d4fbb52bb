#![no_main]
//! NIfTI-1/2, plain or gzip (by the magic bytes), as an image and as labels.
use libfuzzer_sys::fuzz_target;
use vistaflow_fuzz::{ctx, file, is_gzip};
use vistaflow_nodes::io::nifti;

fuzz_target!(|data: &[u8]| {
    vistaflow_fuzz::init();
    let name = if is_gzip(data) { "in.nii.gz" } else { "in.nii" };
    let p = file(name, data);
    let _ = nifti::read(&p, false, &ctx());
    let _ = nifti::read(&p, true, &ctx());
});
