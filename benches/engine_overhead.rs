//! What the engine and its cache cost inside one process (no libtorch start-up), on the
//! issue's case: load_nifti -> save_nifti of a 512x512x300 int16 volume (.nii.gz).
//!
//!     cargo bench --bench engine_overhead            (RUNS=3 by default)
//!
//! Whole-process figures (with libtorch's ~0.4 s start-up) come from
//! scripts/bench-cache-overhead.sh.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;
use tch::{Kind, Tensor};
use tokio_util::sync::CancellationToken;
use vistaflow::cache::Store;
use vistaflow::exec::{self, CachePolicy, Devices, Engine, RunOptions};
use vistaflow::telemetry::{Telemetry, TraceSink};
use vistaflow::workflow;
use vistaflow_nodes::{Ctx, Geometry, Registry, Value, Volume};

fn main() {
    let runs: usize = std::env::var("RUNS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(3);
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // CT-like: smooth structure plus noise, so gzip behaves as on real CT.
    let z = Tensor::arange(300, (Kind::Float, tch::Device::Cpu)).view([300, 1, 1]);
    let y = Tensor::arange(512, (Kind::Float, tch::Device::Cpu)).view([1, 512, 1]);
    let x = Tensor::arange(512, (Kind::Float, tch::Device::Cpu)).view([1, 1, 512]);
    let body = ((&x - 256).square() + (&y - 256).square())
        .sqrt()
        .lt(200)
        .to_kind(Kind::Float);
    let organ: Tensor =
        ((&z / 20).sin() * (&y / 30).cos() * 300.0 + 40.0) * &body - (1.0 - &body) * 1000.0;
    let noise = Tensor::randint_low(-8, 9, [300, 512, 512], (Kind::Float, tch::Device::Cpu));
    let ct = (organ + noise).to_kind(Kind::Int16);
    let vol = Volume::new(ct, Geometry::axis_aligned([0.8, 0.8, 1.25], [0.0; 3])).unwrap();
    vistaflow_nodes::io::nifti::write(&d.join("ct.nii.gz"), &Value::Image(vol), &Ctx::cpu())
        .unwrap();
    std::fs::write(
        d.join("bench.yaml"),
        "version: 1\nsettings: { cache: cache, device: cpu }\nnodes:\n  ct: { kind: load_nifti, params: { path: ct.nii.gz } }\n  out: { kind: save_nifti, inputs: { image: ct.image }, params: { path: out/ct.nii.gz } }\n",
    )
    .unwrap();

    let rt = tokio::runtime::Runtime::new().unwrap();
    let run_once = |no_cache: bool| -> f64 {
        let plan = workflow::load(
            &d.join("bench.yaml"),
            &BTreeMap::new(),
            &Registry::builtin(),
        )
        .unwrap();
        let t = Instant::now();
        let engine = Engine {
            store: Arc::new(Store::open(&plan.settings.cache).unwrap()),
            devices: Arc::new(Devices::cpu_only()),
            telemetry: Arc::new(Telemetry::new(TraceSink::None).unwrap()),
        };
        let opts = RunOptions {
            cache: CachePolicy {
                no_cache,
                refresh: vec![],
            },
            ..Default::default()
        };
        let r = rt
            .block_on(exec::run(
                &engine,
                Arc::new(plan),
                &opts,
                CancellationToken::new(),
            ))
            .unwrap();
        assert!(r.first_failure().is_none());
        t.elapsed().as_secs_f64()
    };
    let clean = |p: &Path| {
        let _ = std::fs::remove_dir_all(p.join("cache"));
        let _ = std::fs::remove_dir_all(p.join("out"));
    };
    let median = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let (mut on, mut off, mut warm) = (vec![], vec![], vec![]);
    for _ in 0..runs {
        // Interleaved, so that drift on a shared machine hits both alike.
        clean(d);
        off.push(run_once(true));
        clean(d);
        on.push(run_once(false));
        warm.push(run_once(false));
    }
    let (on, off, warm) = (median(on), median(off), median(warm));
    println!("load_nifti -> save_nifti, 512x512x300 int16 .nii.gz, in-process, median of {runs}:");
    println!("  cold, --no-cache : {off:.3} s");
    println!(
        "  cold, cache on   : {on:.3} s  (overhead {:+.1}%, target < 10%)",
        100.0 * (on - off) / off
    );
    println!(
        "  warm, all cached : {warm:.4} s  ({:.2}% of cold, target < 5%)",
        100.0 * warm / on
    );
}
