//! Parity of the tch VISTA3D network with MONAI's: golden tensors made by
//! scripts/oracles/vista3d_small.py (MONAI 1.6.1, small configuration, fixed seeds).

mod common;

use std::collections::HashMap;
use std::path::PathBuf;
use tch::{Device, Kind, Tensor};
use vistaflow_nodes::vista3d::net::{Branches, Config};
use vistaflow_nodes::vista3d::weights;

fn fixture_dir() -> Option<PathBuf> {
    let d = common::data_dir()?.join("vista3d/small");
    assert!(
        d.join("golden.safetensors").exists(),
        "{} has no golden.safetensors: run scripts/fetch-data.sh",
        d.display()
    );
    Some(d)
}

fn golden(d: &std::path::Path) -> HashMap<String, Tensor> {
    Tensor::read_safetensors(d.join("golden.safetensors"))
        .unwrap()
        .into_iter()
        .collect()
}

fn max_abs_diff(a: &Tensor, b: &Tensor) -> f64 {
    assert_eq!(a.size(), b.size());
    (a.to_kind(Kind::Double) - b.to_kind(Kind::Double))
        .abs()
        .max()
        .double_value(&[])
}

fn check(name: &str, got: &Tensor, want: &Tensor) {
    let err = max_abs_diff(got, want);
    let scale = want.abs().max().double_value(&[]);
    eprintln!("{name}: max abs error {err:.3e} (max |value| {scale:.3})");
    assert!(err <= 1e-4, "{name}: max abs error {err} > 1e-4");
    // A network that outputs nothing would pass a tolerance on tiny values: make sure the
    // golden values are not trivial.
    assert!(
        scale > 1e-2,
        "{name}: golden values are trivially small ({scale})"
    );
}

#[test]
fn small_network_matches_monai() {
    let Some(d) = fixture_dir() else { return };
    tch::set_num_threads(2);
    let g = golden(&d);
    let cfg: Config =
        serde_json::from_str(&std::fs::read_to_string(d.join("config.json")).unwrap()).unwrap();
    assert_eq!(cfg, Config::small());
    let net = weights::load(&d.join("weights.safetensors"), &cfg, Device::Cpu).unwrap();
    let _guard = tch::no_grad_guard();

    let image = &g["image"];
    let (point, auto) = net.image_encoder.forward(
        image,
        Branches {
            point: true,
            class: true,
        },
    );
    let (point, auto) = (point.unwrap(), auto.unwrap());
    check("encoder point branch", &point, &g["enc_point"]);
    check("encoder class branch", &auto, &g["enc_auto"]);

    let logits = net.class_logits(image, &g["class_vector"]);
    check("class logits", &logits, &g["class_logits"]);

    let pl = net.point_head.forward(
        &point,
        &g["point_coords"],
        &g["point_labels"],
        Some(&g["prompt_class"]),
    );
    check("point logits (with classes)", &pl, &g["point_logits"]);
    let pl = net
        .point_head
        .forward(&point, &g["point_coords"], &g["point_labels"], None);
    check("point logits (no class)", &pl, &g["point_logits_noclass"]);
}

#[test]
fn weights_of_another_configuration_are_refused_with_what_the_file_holds() {
    let Some(d) = fixture_dir() else { return };
    let err = weights::load(
        &d.join("weights.safetensors"),
        &Config::vista3d132(),
        Device::Cpu,
    )
    .unwrap_err()
    .to_string();
    eprintln!("{err}");
    assert!(err.contains("vista3d132"), "{err}");
    assert!(err.contains("with another shape"), "{err}");
    assert!(
        err.contains("16 filters and blocks [1, 2, 1, 1, 1]"),
        "{err}"
    );
    // vista3d132 has more blocks than the file: those keys are missing.
    assert!(
        err.contains("image_encoder.encoder.layers.2.blocks.1.conv1.weight")
            || err.contains("missing from the file"),
        "{err}"
    );
}

#[test]
fn missing_corrupt_and_foreign_weight_files_are_clear_errors() {
    let Some(d) = fixture_dir() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let cfg = Config::small();

    let missing = tmp.path().join("nope.safetensors");
    let err = weights::load(&missing, &cfg, Device::Cpu)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("nope.safetensors") && err.contains("convert-weights"),
        "{err}"
    );

    let truncated = tmp.path().join("cut.safetensors");
    let bytes = std::fs::read(d.join("weights.safetensors")).unwrap();
    std::fs::write(&truncated, &bytes[..bytes.len() / 2]).unwrap();
    let err = weights::load(&truncated, &cfg, Device::Cpu)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("cut.safetensors") && err.contains("not a valid safetensors"),
        "{err}"
    );

    // A valid safetensors file that is not VISTA3D.
    let foreign = tmp.path().join("other.safetensors");
    Tensor::write_safetensors(
        &[(
            "fc.weight",
            Tensor::zeros([2, 2], (Kind::Float, Device::Cpu)),
        )],
        &foreign,
    )
    .unwrap();
    let err = weights::load(&foreign, &cfg, Device::Cpu)
        .unwrap_err()
        .to_string();
    assert!(err.contains("does not hold a VISTA3D state dict"), "{err}");

    // One tensor dropped: named as missing.
    let mut t = Tensor::read_safetensors(d.join("weights.safetensors")).unwrap();
    t.retain(|(k, _)| k != "class_head.mlp.3.bias");
    let partial = tmp.path().join("partial.safetensors");
    Tensor::write_safetensors(&t, &partial).unwrap();
    let err = weights::load(&partial, &cfg, Device::Cpu)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("1 missing from the file: class_head.mlp.3.bias"),
        "{err}"
    );
}
