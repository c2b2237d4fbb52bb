//! One VISTA3D forward pass, checked against MONAI and timed: the full-size parity check and
//! the tch side of the forward benchmark (scripts/bench-vista3d.sh).
//!
//!   cargo run --release --example vista3d_forward -- WEIGHTS GOLDEN [--network vista3d132|small]
//!       [--threads N] [--repeat N] [--device cpu|cuda] [--precision fp32|fp16|bf16]
//!
//! GOLDEN is a safetensors file with `image`, `class_vector` and MONAI's `class_logits`
//! (scripts/oracles/vista3d_full_parity.py writes one for random full-size weights). Prints
//! one JSON line: max abs error against MONAI, the agreement of the labels (VISTA3D's
//! post-processing: the argmax of the classes where a logit is positive, else background) and
//! seconds per forward (after one warm-up). scripts/gpu-check.sh runs it on a GPU.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Instant;
use tch::{Device, Kind, Tensor};
use vistaflow_nodes::vista3d::net::Config;
use vistaflow_nodes::vista3d::weights;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let flag = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .map(|i| args[i + 1].clone())
    };
    let positional: Vec<&String> = args
        .iter()
        .enumerate()
        .filter(|(i, a)| !a.starts_with("--") && (*i == 0 || !args[i - 1].starts_with("--")))
        .map(|(_, a)| a)
        .collect();
    let [w, g] = positional[..] else {
        eprintln!("usage: vista3d_forward WEIGHTS GOLDEN [--network vista3d132|small] [--threads N] [--repeat N] [--device cpu|cuda] [--precision fp32|fp16|bf16]");
        std::process::exit(2);
    };
    let (weights_path, golden_path) = (PathBuf::from(w), PathBuf::from(g));
    let config = match flag("--network").as_deref() {
        Some("small") => Config::small(),
        _ => Config::vista3d132(),
    };
    if let Some(t) = flag("--threads") {
        tch::set_num_threads(t.parse().expect("--threads N"));
    }
    let repeat: usize = flag("--repeat").map_or(1, |r| r.parse().expect("--repeat N"));
    let device = match flag("--device").as_deref() {
        Some("cuda") => {
            // The engine's probe loads libtorch's CUDA backend (tch issue 980).
            if vistaflow::exec::Devices::probe(1).gpu_count() == 0 {
                eprintln!("error: --device cuda, but libtorch sees no CUDA device");
                std::process::exit(1);
            }
            Device::Cuda(0)
        }
        _ => Device::Cpu,
    };
    let kind = match flag("--precision").as_deref() {
        Some("fp16") => Kind::Half,
        Some("bf16") => Kind::BFloat16,
        _ => Kind::Float,
    };

    let t = Instant::now();
    let mut net = weights::load(&weights_path, &config, device).unwrap_or_else(|e| {
        eprintln!("error: {e}");
        std::process::exit(1)
    });
    match kind {
        Kind::Half => net.vs.half(),
        Kind::BFloat16 => net.vs.bfloat16(),
        _ => {}
    }
    let load_s = t.elapsed().as_secs_f64();
    let golden: HashMap<String, Tensor> = Tensor::read_safetensors(&golden_path)
        .expect("golden file")
        .into_iter()
        .collect();
    let image = golden["image"].to_device(device).to_kind(kind);
    let ids = golden["class_vector"].to_device(device);
    let _guard = tch::no_grad_guard();
    let forward = || {
        let out = net.class_logits(&image, &ids).to_kind(Kind::Float);
        if let Device::Cuda(_) = device {
            tch::Cuda::synchronize(0);
        }
        out
    };
    let t = Instant::now();
    let logits = forward();
    let first_s = t.elapsed().as_secs_f64();
    let mut times = Vec::new();
    for _ in 1..repeat.max(1) {
        let t = Instant::now();
        let _ = forward();
        times.push(t.elapsed().as_secs_f64());
    }
    let err = (logits.to_device(Device::Cpu) - &golden["class_logits"])
        .abs()
        .max()
        .double_value(&[]);
    let scale = golden["class_logits"].abs().max().double_value(&[]);
    let agreement = label_agreement(&logits.to_device(Device::Cpu), &golden["class_logits"]);
    let per = if times.is_empty() {
        first_s
    } else {
        times.iter().sum::<f64>() / times.len() as f64
    };
    println!(
        "{{\"network\": \"{}\", \"device\": \"{:?}\", \"precision\": \"{:?}\", \"threads\": {}, \
         \"load_s\": {load_s:.2}, \"first_forward_s\": {first_s:.2}, \
         \"seconds_per_forward\": {per:.2}, \"timed_forwards\": {}, \
         \"max_abs_error\": {err:.3e}, \"max_abs_logit\": {scale:.3}, \
         \"label_agreement\": {agreement:.6}}}",
        config.describe(),
        device,
        kind,
        tch::get_num_threads(),
        times.len().max(1)
    );
}

/// The fraction of voxels whose label is the same: logits [n_classes, 1, D, H, W], label =
/// 1 + argmax over classes where the largest logit is positive, else 0.
fn label_agreement(ours: &Tensor, reference: &Tensor) -> f64 {
    let labels = |l: &Tensor| {
        let (best, index) = l.max_dim(0, false);
        (index + 1) * best.gt(0.0).to_kind(Kind::Int64)
    };
    labels(ours)
        .eq_tensor(&labels(reference))
        .to_kind(Kind::Double)
        .mean(Kind::Double)
        .double_value(&[])
}
