#![no_main]
//! A clicks file for vista3d_refine (`points_file`), .json or .csv by its first byte.
use libfuzzer_sys::fuzz_target;
use vistaflow_fuzz::file;
use vistaflow_nodes::vista3d::refine;

fuzz_target!(|data: &[u8]| {
    vistaflow_fuzz::init();
    let name = if data.first() == Some(&b'[') || data.first() == Some(&b'{') {
        "points.json"
    } else {
        "points.csv"
    };
    let p = file(name, data);
    if let Ok(points) = refine::points_of(&serde_json::Value::Null, Some(&p)) {
        let _ = refine::parse_clicks(&points);
    }
});
