//! Node memos in the content-hash cache: a tensor a node keeps (VISTA3D's encoder features
//! per window) is found again by a later run whose params differ, and only then.

mod common;

use common::{load, run};
use std::sync::Arc;
use vistaflow::exec::{CachePolicy, RunOptions};
use vistaflow_nodes::node::{Compute, NodeSpec, PortSpec};
use vistaflow_nodes::params::{NodeParams, ParamSchema, Params};
use vistaflow_nodes::{Ctx, Inputs, Node, NodeError, Outputs, PortType, Value, Volume};

/// `probe`: "features" = image * 3, kept in the memo under the input `image` and the file
#[derive(serde::Deserialize, NodeParams)]
#[allow(dead_code, reason = "the node reads its params through the map")]
struct ProbeParams {
    /// not in the memo key
    #[param(default = 0)]
    click: i64,
    /// in the memo's identity
    #[param(input_path)]
    weights: std::path::PathBuf,
}

/// `weights`; output = features + click, with meta `memo` = hit | miss.
struct Probe(NodeSpec);

impl Probe {
    fn new() -> Self {
        Probe(NodeSpec {
            kind: "probe",
            version: "1",
            summary: "memo probe",
            inputs: vec![PortSpec::input("image", PortType::Image, "in")],
            exactly_one_input_of: vec![],
            outputs: vec![PortSpec::output("image", PortType::Image, "out")],
            params: ParamSchema::of::<ProbeParams>(),
            compute: Compute::Cpu,
        })
    }
}

impl Node for Probe {
    fn spec(&self) -> &NodeSpec {
        &self.0
    }
    fn run(&self, ctx: &Ctx, inputs: Inputs, params: &Params) -> Result<Outputs, NodeError> {
        let Some(Value::Image(v)) = inputs.get("image") else {
            return Err(NodeError::Invalid("no image".into()));
        };
        let (features, how) = match ctx.memo_get(&["image"], "features") {
            Some(f) => (f, "hit"),
            None => {
                let f = v.data().to_kind(tch::Kind::Float) * 3.0;
                ctx.memo_put(&["image"], "features", &f);
                (f, "miss")
            }
        };
        let out = features + params["click"].as_f64().unwrap_or(0.0);
        let vol = Volume::new(out, *v.geometry())
            .map_err(NodeError::Invalid)?
            .with_meta("memo", how);
        Ok(Outputs::from([("image".to_string(), Value::Image(vol))]))
    }
}

#[test]
fn memo_is_reused_across_params_and_dropped_when_inputs_change() {
    let Some(data) = common::data_dir() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::copy(data.join("nibabel/anatomical.nii"), d.join("img.nii")).unwrap();
    std::fs::write(d.join("w.bin"), b"weights one").unwrap();
    let mut reg = common::registry();
    reg.register(Arc::new(Probe::new()));
    let wf = d.join("wf.yaml");
    let write = |click: i64| {
        std::fs::write(
            &wf,
            format!(
                "version: 1\nnodes:\n  img: {{ kind: load_nifti, params: {{ path: img.nii }} }}\n  \
                 p: {{ kind: probe, inputs: {{ image: img.image }}, params: {{ click: {click}, weights: w.bin }} }}\n  \
                 out: {{ kind: save_nifti, inputs: {{ image: p.image }}, params: {{ path: out.nii }} }}\n"
            ),
        )
        .unwrap();
    };
    // Runs the workflow; returns the nodes that ran and the probe's memo outcome, read from
    // its cached output's meta.
    let outcome = |opts: RunOptions| -> (Vec<String>, String) {
        let plan = load(&wf, &reg);
        let r = run(plan, opts);
        assert_eq!(r.first_failure(), None);
        let store = vistaflow::cache::Store::open(&d.join(".vistaflow/cache")).unwrap();
        let plan = load(&wf, &reg);
        let (keys, _) =
            vistaflow::exec::plan_decisions(&store, &plan, &CachePolicy::default()).unwrap();
        let i = plan.index_of("p").unwrap();
        let how = match store
            .get(&keys.output(i, "image"), PortType::Image)
            .unwrap()
        {
            vistaflow::cache::Lookup::Hit(Value::Image(v)) => v.meta["memo"].clone(),
            other => panic!("probe output not cached: {other:?}"),
        };
        (r.ran().iter().map(|s| s.to_string()).collect(), how)
    };

    write(1);
    assert_eq!(outcome(RunOptions::default()).1, "miss");
    // Another click: the probe runs again (its key changed) and finds its features.
    write(2);
    let (ran, how) = outcome(RunOptions::default());
    assert!(ran.contains(&"p".to_string()));
    assert_eq!(how, "hit");
    // Other weights (same name, other bytes): a miss.
    std::fs::write(d.join("w.bin"), b"weights two").unwrap();
    write(3);
    assert_eq!(outcome(RunOptions::default()).1, "miss");
    write(4);
    assert_eq!(outcome(RunOptions::default()).1, "hit");
    // Another image: a miss.
    std::fs::copy(data.join("nibabel/functional.nii"), d.join("img.nii")).unwrap();
    write(5);
    assert_eq!(outcome(RunOptions::default()).1, "miss");
}
