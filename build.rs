// Embeds libtorch's library directory as an rpath so `vistaflow` runs without LD_LIBRARY_PATH,
// and tells the engine where libtorch_cuda.so lives (it is loaded by hand on GPU machines).
fn main() {
    if let Ok(lib) = std::env::var("DEP_TCH_LIBTORCH_LIB") {
        println!("cargo:rustc-link-arg=-Wl,-rpath,{lib}");
        println!("cargo:rustc-env=VISTAFLOW_LIBTORCH_LIB={lib}");
    }
}
