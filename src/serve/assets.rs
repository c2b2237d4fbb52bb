//! The page, built into the binary: a user needs neither npm nor the repository's files.

pub const INDEX_HTML: &str = include_str!("../../viewer/index.html");

/// An asset by its name under /assets/: (MIME type, bytes).
pub fn get(name: &str) -> Option<(&'static str, &'static [u8])> {
    Some(match name {
        "app.js" => (
            "text/javascript; charset=utf-8",
            include_bytes!("../../viewer/app.js"),
        ),
        "app.css" => (
            "text/css; charset=utf-8",
            include_bytes!("../../viewer/app.css"),
        ),
        // NiiVue's UMD bundle, vendored by scripts/vendor-niivue.sh (version and licence
        // beside it).
        "niivue.umd.js" => (
            "text/javascript; charset=utf-8",
            include_bytes!("../../viewer/vendor/niivue/niivue.umd.js"),
        ),
        _ => return None,
    })
}
