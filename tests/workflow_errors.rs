//! Every class of workflow error is reported with file:line:column and a hint.

mod common;

use common::{assert_has, load_errors as errors};
use std::collections::BTreeMap;
use std::path::Path;
use vistaflow::workflow::load_str;

const HEAD: &str = "version: 1\nname: t\nnodes:\n";

#[test]
fn unknown_kind_suggests_nearest() {
    let out = errors(&format!(
        "{HEAD}  ct: {{ kind: load_nifty, params: {{ path: a.nii }} }}\n"
    ));
    assert_has(
        &out,
        &[
            "error: unknown node kind `load_nifty`",
            "--> wf.yaml:4:15",
            "did you mean `load_nifti`?",
            "^^^^^^^^^^",
        ],
    );
}

#[test]
fn unknown_param_suggests_nearest() {
    let out = errors(&format!(
        "{HEAD}  ct:\n    kind: load_nifti\n    params:\n      paht: a.nii\n"
    ));
    assert_has(
        &out,
        &[
            "unknown param `paht` for `load_nifti`",
            "--> wf.yaml:7:7",
            "did you mean `path`?",
        ],
    );
}

#[test]
fn wrong_param_type() {
    let out = errors(&format!(
        "{HEAD}  ct: {{ kind: load_nifti, params: {{ path: a.nii, labels: yes-please }} }}\n"
    ));
    assert_has(
        &out,
        &[
            "param `labels` of `load_nifti`: expected bool, found \"yes-please\"",
            "--> wf.yaml:4:58",
        ],
    );
}

#[test]
fn missing_required_param() {
    let out = errors(&format!("{HEAD}  ct: {{ kind: load_nifti }}\n"));
    assert_has(
        &out,
        &[
            "node `ct` (load_nifti) is missing required param `path`",
            "--> wf.yaml:4:3",
        ],
    );
}

#[test]
fn unknown_node_in_input() {
    let out = errors(&format!(
        "{HEAD}  ct: {{ kind: load_nifti, params: {{ path: a.nii }} }}\n  out: {{ kind: save_nifti, inputs: {{ image: cx.image }}, params: {{ path: o.nii }} }}\n"
    ));
    assert_has(
        &out,
        &[
            "unknown node `cx`",
            "--> wf.yaml:5:45",
            "did you mean `ct`?",
        ],
    );
}

#[test]
fn unknown_output_port() {
    let out = errors(&format!(
        "{HEAD}  ct: {{ kind: load_nifti, params: {{ path: a.nii }} }}\n  out: {{ kind: save_nifti, inputs: {{ image: ct.labels }}, params: {{ path: o.nii }} }}\n"
    ));
    // load_nifti without `labels: true` has only `image`.
    assert_has(
        &out,
        &[
            "node `ct` has no output `labels`",
            "--> wf.yaml:5:45",
            "has outputs: image",
        ],
    );
}

#[test]
fn unknown_input_port() {
    let out = errors(&format!(
        "{HEAD}  ct: {{ kind: load_nifti, params: {{ path: a.nii }} }}\n  out: {{ kind: save_nifti, inputs: {{ imgae: ct.image }}, params: {{ path: o.nii }} }}\n"
    ));
    assert_has(
        &out,
        &[
            "unknown input port `imgae` for `save_nifti`",
            "--> wf.yaml:5:38",
            "did you mean `image`?",
            "1 problem in",
        ],
    );
}

#[test]
fn port_type_mismatch() {
    let out = errors(&format!(
        "{HEAD}  seg: {{ kind: load_nifti, params: {{ path: s.nii, labels: true }} }}\n  out: {{ kind: save_nifti, inputs: {{ image: seg.labels }}, params: {{ path: o.nii }} }}\n"
    ));
    assert_has(&out, &["port type mismatch: `seg.labels` is labels but input `image` of `save_nifti` takes image", "--> wf.yaml:5:45", "connect it to input `labels` instead"]);
}

#[test]
fn duplicate_id() {
    let out = errors(&format!(
        "{HEAD}  ct: {{ kind: load_nifti, params: {{ path: a.nii }} }}\n  ct: {{ kind: load_nifti, params: {{ path: b.nii }} }}\n"
    ));
    assert_has(
        &out,
        &[
            "duplicate node id `ct`",
            "--> wf.yaml:5:3",
            "first defined at line 4",
        ],
    );
}

#[test]
fn cycle_is_named() {
    let out = errors(&format!(
        "{HEAD}  a: {{ kind: scale, inputs: {{ image: c.image }} }}\n  b: {{ kind: scale, inputs: {{ image: a.image }} }}\n  c: {{ kind: scale, inputs: {{ image: b.image }} }}\n"
    ));
    assert_has(
        &out,
        &["error: cycle: ", "a -> b", "b -> c", "c -> a", "wf.yaml:"],
    );
}

#[test]
fn missing_input() {
    let out = errors(&format!("{HEAD}  s: {{ kind: scale }}\n"));
    assert_has(
        &out,
        &[
            "node `s` (scale) is missing input `image`",
            "--> wf.yaml:4:3",
        ],
    );
    let out = errors(&format!(
        "{HEAD}  o: {{ kind: save_nifti, params: {{ path: o.nii }} }}\n"
    ));
    assert_has(
        &out,
        &["needs exactly one of the inputs image, labels, got 0"],
    );
}

#[test]
fn malformed_yaml_and_structure() {
    let out = errors("version: 1\nnodes:\n  ct: { kind: load_nifti, params: { path: a.nii }\n");
    assert_has(&out, &["not valid YAML", "wf.yaml:"]);
    let out = errors("version: 2\nnodes:\n  ct: { kind: load_nifti, params: { path: a.nii } }\n");
    assert_has(&out, &["unsupported workflow version", "--> wf.yaml:1:10"]);
    let out = errors(&format!("{HEAD}  ct: {{ knd: load_nifti }}\n"));
    assert_has(
        &out,
        &["unknown field `knd` in a node", "did you mean `kind`?"],
    );
    let out = errors(&format!(
        "{HEAD}  ct: {{ kind: load_nifti, params: {{ path: a.nii }}, device: tpu }}\n"
    ));
    assert_has(&out, &["unknown device", "use auto, cpu, cuda or cuda:N"]);
    let out = errors(&format!(
        "{HEAD}  ct: {{ kind: load_nifti, params: {{ path: a.nii }}, timeout: soon }}\n"
    ));
    assert_has(&out, &["not a duration"]);
}

#[test]
fn unset_variable_is_located() {
    let out = errors(&format!(
        "{HEAD}  ct: {{ kind: load_nifti, params: {{ path: \"data/${{SUBJECT}}/ct.nii\" }} }}\n"
    ));
    assert_has(
        &out,
        &[
            "`${SUBJECT}` is not set",
            "--> wf.yaml:4:43",
            "--set SUBJECT=VALUE",
        ],
    );
}

#[test]
fn several_problems_are_all_reported() {
    let out = errors(&format!(
        "{HEAD}  ct: {{ kind: load_nifti, params: {{ paht: a.nii }} }}\n  out: {{ kind: save_nifti, inputs: {{ image: zz.image }}, params: {{ path: o.nii }} }}\n"
    ));
    assert_has(
        &out,
        &[
            "unknown param `paht`",
            "missing required param `path`",
            "2 problems in wf.yaml",
        ],
    );
}

#[test]
fn valid_workflow_has_canonical_params_and_order() {
    let text = format!(
        "{HEAD}  out: {{ kind: save_nifti, inputs: {{ image: s.image }}, params: {{ path: o/../out.nii.gz }} }}\n  s: {{ kind: scale, inputs: {{ image: ct.image }}, params: {{ factor: 3 }} }}\n  ct: {{ kind: load_nifti, params: {{ path: ./a.nii }} }}\n"
    );
    let plan = load_str(
        Path::new("/w/wf.yaml"),
        &text,
        &BTreeMap::new(),
        &common::registry(),
    )
    .unwrap();
    let ids: Vec<&str> = plan.nodes.iter().map(|n| n.id.as_str()).collect();
    assert_eq!(ids, ["ct", "s", "out"], "producers first");
    assert_eq!(
        plan.nodes[1].params["factor"],
        serde_json::json!(3.0),
        "ints canonical as floats for float params"
    );
    assert_eq!(
        plan.nodes[0].params["path"],
        serde_json::json!("/w/a.nii"),
        "paths resolved against the workflow's folder"
    );
    assert_eq!(
        plan.nodes[2].params["path"],
        serde_json::json!("/w/out.nii.gz")
    );
    assert_eq!(
        plan.nodes[0].params["labels"],
        serde_json::json!(false),
        "defaults filled in"
    );
}

#[test]
fn output_types_follow_input_types() {
    let head = format!("{HEAD}  seg: {{ kind: load_nifti, params: {{ path: s.nii, labels: true }} }}\n  p: {{ kind: pass, inputs: {{ value: seg.labels }} }}\n");
    // `pass` fed labels has a `labels` output, typed labels, and no `image`.
    let out = errors(&format!("{head}  o: {{ kind: save_nifti, inputs: {{ image: p.labels }}, params: {{ path: o.nii }} }}\n"));
    assert_has(&out, &["port type mismatch: `p.labels` is labels but input `image` of `save_nifti` takes image", "connect it to input `labels` instead"]);
    let out = errors(&format!("{head}  o: {{ kind: save_nifti, inputs: {{ image: p.image }}, params: {{ path: o.nii }} }}\n"));
    assert_has(
        &out,
        &["node `p` has no output `image`", "has outputs: labels"],
    );
    let ok = format!("{head}  o: {{ kind: save_nifti, inputs: {{ labels: p.labels }}, params: {{ path: o.nii }} }}\n");
    let plan = load_str(
        Path::new("wf.yaml"),
        &ok,
        &BTreeMap::new(),
        &common::registry(),
    )
    .unwrap();
    assert_eq!(
        plan.nodes[1].outputs[0].ty,
        vistaflow_nodes::PortType::Labels
    );
    // A port that takes several types says so.
    let out = errors(&format!("{HEAD}  p: {{ kind: pass }}\n"));
    assert_has(&out, &["missing input `value`", "(image|labels)"]);
}
