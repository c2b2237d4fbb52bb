//! The engine embedded in a program: check a workflow given as text, run it, read the report.
//!
//!     cargo run --release --example embed_engine -- data/totalsegmentator/example_ct_sm.nii.gz

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;
use vistaflow::cache::Store;
use vistaflow::exec::{self, Devices, Engine, RunOptions};
use vistaflow::telemetry::{Telemetry, TraceSink};
use vistaflow::workflow;
use vistaflow_nodes::Registry;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let input = std::env::args()
        .nth(1)
        .ok_or("usage: embed_engine IMAGE.nii.gz")?;
    let out = std::env::temp_dir().join("vistaflow-embed");
    let text = format!(
        "version: 1\nname: embedded\nsettings: {{ cache: {cache} }}\nnodes:\n  \
         ct: {{ kind: load_nifti, params: {{ path: \"{input}\" }} }}\n  \
         out: {{ kind: save_nifti, inputs: {{ image: ct.image }}, params: {{ path: {dst} }} }}\n",
        cache = out.join("cache").display(),
        input = std::path::absolute(&input)?.display(),
        dst = out.join("copy.nii.gz").display(),
    );
    // Any registry works: a program can add its own node kinds before loading.
    let plan = workflow::load_str(
        Path::new("embedded.yaml"),
        &text,
        &BTreeMap::new(),
        &Registry::builtin(),
    )?;
    let engine = Engine {
        store: Arc::new(Store::open(&plan.settings.cache)?),
        devices: Arc::new(Devices::probe(1)),
        telemetry: Arc::new(Telemetry::new(TraceSink::None)?),
    };
    let report = exec::run(
        &engine,
        Arc::new(plan),
        &RunOptions::default(),
        CancellationToken::new(),
    )
    .await?;
    if let Some((id, kind, cause)) = report.first_failure() {
        return Err(format!("node `{id}` ({kind}) failed: {cause}").into());
    }
    println!(
        "ran {:?}, cached {:?} in {:.2}s; wrote {}",
        report.ran(),
        report.cached(),
        report.duration.as_secs_f64(),
        out.join("copy.nii.gz").display()
    );
    Ok(())
}
