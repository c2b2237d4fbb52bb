#![no_main]
//! VISTA3D weights as a node loads them: a .safetensors file and, after the separator
//! `\n--card--\n`, its model card (NAME.json next to it). `network: auto` reads the card or
//! the header, then the weights are loaded into that network.
use libfuzzer_sys::fuzz_target;
use vistaflow_fuzz::{file, scratch, split_at_marker};
use vistaflow_nodes::vista3d::models::{self, Network};
use vistaflow_nodes::vista3d::weights;

fuzz_target!(|data: &[u8]| {
    vistaflow_fuzz::init();
    let (tensors, card) = split_at_marker(data, b"\n--card--\n");
    let path = file("w.safetensors", tensors);
    let card_path = scratch().join("w.json");
    match card {
        Some(c) => std::fs::write(&card_path, c).unwrap(),
        None => {
            let _ = std::fs::remove_file(&card_path);
        }
    }
    if let Ok(config) = models::network_config(Network::Auto, &path) {
        let _ = weights::load(&path, &config, tch::Device::Cpu);
    }
});
