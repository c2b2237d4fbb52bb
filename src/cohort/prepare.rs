//! Before anything runs: every subject's workflow loaded with its variables, the files it
//! reads checked, and no two subjects writing the same file. A subject that cannot run is
//! named with its cause and the others go on; a workflow that would make subjects overwrite
//! each other's outputs stops the cohort.

use super::manifest::{Manifest, Subject};
use crate::workflow::{self, Plan};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use vistaflow_nodes::Registry;

/// A subject ready to run, or why it cannot.
pub enum Prepared {
    Ready(Arc<Plan>),
    Invalid(String),
}

/// Loads `workflow` once per subject of `manifest`, with `common` (`--set`) and the
/// subject's own variables. `Err`: problems of the whole cohort (a variable both in `--set`
/// and the manifest, outputs shared between subjects), each a line.
pub fn prepare(
    workflow_path: &Path,
    manifest: &Manifest,
    common: &BTreeMap<String, String>,
) -> Result<Vec<(Subject, Prepared)>, Vec<String>> {
    let registry = Registry::builtin();
    let mut errors = Vec::new();
    let mut out = Vec::new();
    for s in &manifest.subjects {
        for k in s.vars.keys() {
            if common.contains_key(k)
                && !errors
                    .iter()
                    .any(|e: &String| e.contains(&format!("`{k}`")))
            {
                errors.push(format!(
                    "--set {k}=... and the manifest's column `{k}` both set `{k}`: keep one"
                ));
            }
        }
        let mut vars = common.clone();
        vars.extend(s.vars.clone());
        let prepared = match workflow::load(workflow_path, &vars, &registry) {
            Err(e) => Prepared::Invalid(format!("the workflow does not load:\n{e}")),
            Ok(plan) => match missing_source(&plan) {
                Some(why) => Prepared::Invalid(why),
                None => Prepared::Ready(Arc::new(plan)),
            },
        };
        out.push((s.clone(), prepared));
    }
    errors.extend(shared_outputs(&out));
    errors.extend(unselected_series(&out));
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(errors)
    }
}

/// The first file a node reads that is not there.
fn missing_source(plan: &Plan) -> Option<String> {
    plan.nodes.iter().find_map(|n| {
        n.source_paths()
            .into_iter()
            .find(|(_, p)| !p.exists())
            .map(|(param, p)| {
                format!(
                    "node `{}` ({}) param `{param}`: {} does not exist",
                    n.id,
                    n.kind(),
                    p.display()
                )
            })
    })
}

/// A folder scan made one subject per series of a folder holding several, but no
/// `load_dicom` of the workflow selects the subject's series: every such subject would load
/// the same series.
fn unselected_series(prepared: &[(Subject, Prepared)]) -> Option<String> {
    let var = super::manifest::SERIES_UID;
    prepared.iter().find_map(|(s, p)| {
        let (Some(uid), Prepared::Ready(plan)) = (s.vars.get(var), p) else {
            return None;
        };
        let selects = plan.nodes.iter().any(|n| {
            n.kind() == "load_dicom"
                && n.params.get("series_uid").and_then(|v| v.as_str()) == Some(uid)
        });
        (!selects).then(|| {
            format!(
                "subject `{}` ({}) is one series of a folder holding several, but no load_dicom \
                 node selects it, so its subjects would all load the same series: add \
                 `series_uid: ${{{var}}}` to the load_dicom node's params",
                s.id, s.origin
            )
        })
    })
}

/// Files two subjects would both write (a path without `${SUBJECT}`).
fn shared_outputs(prepared: &[(Subject, Prepared)]) -> Vec<String> {
    let mut writer: HashMap<PathBuf, (&str, &str)> = HashMap::new();
    let mut errors = Vec::new();
    for (s, p) in prepared {
        let Prepared::Ready(plan) = p else { continue };
        for n in &plan.nodes {
            for (param, path) in n.written_paths() {
                match writer.get(&path) {
                    Some((first, node)) if *first != s.id.as_str() => {
                        if !errors
                            .iter()
                            .any(|e: &String| e.contains(&format!("node `{node}`")))
                        {
                            errors.push(format!(
                                "node `{}` param `{param}` writes {} for subject `{first}` and \
                                 `{}` alike: put ${{SUBJECT}} in the path, e.g. \
                                 out/${{SUBJECT}}/...",
                                n.id,
                                path.display(),
                                s.id
                            ));
                        }
                    }
                    _ => {
                        writer.insert(path.clone(), (&s.id, &n.id));
                    }
                }
            }
        }
    }
    errors
}
