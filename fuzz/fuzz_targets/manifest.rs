#![no_main]
//! A cohort manifest (`vistaflow run --cohort FILE`): YAML when the input starts with `#`,
//! `subjects:` or `defaults:`, CSV otherwise (quoting, a byte-order mark, ragged rows,
//! subject ids and variable names, paths relative to the manifest).
use libfuzzer_sys::fuzz_target;
use vistaflow::cohort::manifest;
use vistaflow_fuzz::file;

fuzz_target!(|data: &[u8]| {
    vistaflow_fuzz::init();
    let yaml = [&b"#"[..], b"subjects:", b"defaults:"]
        .iter()
        .any(|p| data.starts_with(p));
    let p = file(
        if yaml {
            "subjects.yaml"
        } else {
            "subjects.csv"
        },
        data,
    );
    let _ = manifest::read(&p);
});
