//! What the fuzz targets share: each input is written to a file of this process (the loaders
//! read paths, as users give them) and handed to the real loader. Errors are the expected
//! outcome; a panic, a hang or an allocation beyond the limits is a finding.

use std::path::PathBuf;
use vistaflow_nodes::node::Ctx;

/// A scratch folder of this process.
pub fn scratch() -> PathBuf {
    let d = std::env::temp_dir().join(format!("vistaflow-fuzz-{}", std::process::id()));
    std::fs::create_dir_all(&d).expect("scratch folder");
    d
}

/// Writes `data` to `name` in the scratch folder and returns its path.
pub fn file(name: &str, data: &[u8]) -> PathBuf {
    let p = scratch().join(name);
    std::fs::write(&p, data).expect("scratch file");
    p
}

pub fn ctx() -> Ctx {
    Ctx::cpu()
}

/// gzip magic: the input is a .gz file.
pub fn is_gzip(data: &[u8]) -> bool {
    data.starts_with(&[0x1f, 0x8b])
}

/// libfuzzer-sys's panic hook aborts at every panic, also one that vistaflow catches (a
/// third-party decoder's, which the loader turns into an error). This hook only prints: a
/// panic that vistaflow does not catch still reaches libfuzzer-sys's `catch_unwind` and
/// aborts, so only those are findings. Call at the start of every target. With
/// `RUST_BACKTRACE=1` it prints where each panic happened (to reproduce a finding).
pub fn init() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        std::panic::set_hook(Box::new(|info| {
            eprintln!("{info}");
            if std::env::var_os("RUST_BACKTRACE").is_some_and(|v| v != "0") {
                eprintln!("{}", std::backtrace::Backtrace::force_capture());
            }
        }))
    });
}

/// `data` cut at the first `marker`: (before, Some(after)), or (data, None) without one.
pub fn split_at_marker<'a>(data: &'a [u8], marker: &[u8]) -> (&'a [u8], Option<&'a [u8]>) {
    match data.windows(marker.len()).position(|w| w == marker) {
        Some(i) => (&data[..i], Some(&data[i + marker.len()..])),
        None => (data, None),
    }
}

/// The CT series of `fuzz/fixtures/series` (6 slices of 20x24, made by
/// fuzz/make-fixture-series.py) as load_dicom gives it, loaded once: the image that the
/// rtstruct and seg targets place their structure sets and segmentations on. The seeds in
/// fuzz/corpus/{rtstruct,seg} reference its UIDs, so mutations get past the reference checks.
pub fn fixture_series() -> &'static vistaflow_nodes::value::Volume {
    use vistaflow_nodes::node::Node;
    use vistaflow_nodes::value::Value;
    static IMAGE: std::sync::OnceLock<vistaflow_nodes::value::Volume> = std::sync::OnceLock::new();
    IMAGE.get_or_init(|| {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/series");
        let mut params = vistaflow_nodes::params::Params::new();
        params.insert("path".into(), serde_json::json!(dir));
        let mut out = vistaflow_nodes::io::dicom::LoadDicom
            .run(&ctx(), Default::default(), &params)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        match out.remove("image") {
            Some(Value::Image(v)) => v,
            _ => panic!("load_dicom gave no image"),
        }
    })
}
