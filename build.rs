// Embeds libtorch's library directory as an rpath so `vistaflow` runs without LD_LIBRARY_PATH,
// tells the engine where libtorch_cuda.so lives (it is loaded by hand on GPU machines), and
// records libtorch's version for run reports.
fn main() {
    if let Ok(lib) = std::env::var("DEP_TCH_LIBTORCH_LIB") {
        println!("cargo:rustc-link-arg=-Wl,-rpath,{lib}");
        println!("cargo:rustc-env=VISTAFLOW_LIBTORCH_LIB={lib}");
        // A pip wheel's torch/version.py sits beside torch/lib.
        let version_py = std::path::Path::new(&lib).join("../version.py");
        if let Ok(text) = std::fs::read_to_string(&version_py) {
            let v = text
                .lines()
                .find_map(|l| l.strip_prefix("__version__ = "))
                .map(|v| v.trim().trim_matches('\'').trim_matches('"').to_string());
            if let Some(v) = v {
                println!("cargo:rustc-env=VISTAFLOW_LIBTORCH_VERSION={v}");
            }
        }
    }
}
