#![no_main]
//! A workflow file (any bytes) with a `--set` value, checked as `vistaflow validate` does.
use libfuzzer_sys::fuzz_target;
use std::collections::BTreeMap;
use vistaflow::nodes::Registry;
use vistaflow_fuzz::file;

fuzz_target!(|data: &[u8]| {
    vistaflow_fuzz::init();
    // The last line, when short, is a --set value.
    let (text, set) = match data.iter().rposition(|&b| b == b'\n') {
        Some(i) if data.len() - i < 64 => (&data[..i], &data[i + 1..]),
        _ => (data, &b""[..]),
    };
    let p = file("wf.yaml", text);
    let vars = BTreeMap::from([("X".to_string(), String::from_utf8_lossy(set).into_owned())]);
    let _ = vistaflow::workflow::load(&p, &vars, &Registry::builtin());
});
