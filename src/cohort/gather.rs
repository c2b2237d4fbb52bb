//! The cohort's outputs from its subject records: the long table of every `metrics` table,
//! the per-class summary (CSV and Markdown), the plot, a table of subjects and the cohort
//! report. Only records are read, so this runs the same after one process or a Slurm array.

use super::manifest::Manifest;
use super::record::{self, Record, Status};
use serde_json::json;
use sha2::{Digest as _, Sha256};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;
use vistaflow_nodes::cohort::{gather::csv_field, plot, summary, LongTable};
use vistaflow_nodes::io::atomic::write_text;

/// What the gather found.
pub struct Gathered {
    pub done: usize,
    /// (subject, origin, cause) of failed, invalid and cancelled subjects.
    pub failed: Vec<(String, String, String)>,
    /// Subjects without a record yet.
    pub pending: Vec<String>,
}

/// Reads the records of `manifest`'s subjects under `results` and writes the cohort files
/// there. `title` heads the plot (the workflow's name).
pub fn gather(
    results: &Path,
    manifest: &Manifest,
    workflow: &Path,
    vars: &BTreeMap<String, String>,
    title: &str,
) -> Result<Gathered, String> {
    let mut records: Vec<Record> = Vec::new();
    let mut pending = Vec::new();
    for s in &manifest.subjects {
        match record::read(results, &s.id)? {
            Some(r) => records.push(r),
            None => pending.push(s.id.clone()),
        }
    }
    let mut long = LongTable::default();
    for r in records.iter().filter(|r| r.status == Status::Done) {
        for t in &r.tables {
            long.add(&r.subject, &t.node, &t.table)
                .map_err(|e| format!("subject `{}`: {e}", r.subject))?;
        }
    }
    long.sort();
    let failed: Vec<(String, String, String)> = records
        .iter()
        .filter(|r| r.status != Status::Done)
        .map(|r| {
            (
                r.subject.clone(),
                r.origin.clone(),
                r.cause.clone().unwrap_or_default(),
            )
        })
        .collect();
    let rows = summary::summarise(&long, failed.len());
    let put =
        |name: &str, text: &str| write_text(&results.join(name), text).map_err(|e| e.to_string());
    put("metrics_long.csv", &long.to_csv())?;
    put("summary.csv", &summary::to_csv(&rows))?;
    put("summary.md", &summary::to_markdown(&rows))?;
    put("subjects.csv", &subjects_csv(&records, &pending))?;
    let done = records.iter().filter(|r| r.status == Status::Done).count();
    let plot_title = format!(
        "{title}: {done} subjects{}",
        if failed.is_empty() {
            String::new()
        } else {
            format!(" ({} failed)", failed.len())
        }
    );
    plot::write_plot(&results.join("summary.png"), &long, &plot_title)
        .map_err(|e| e.to_string())?;
    let report = report(manifest, workflow, vars, &records, &pending)?;
    put(
        "cohort_report.json",
        &(serde_json::to_string_pretty(&report).map_err(|e| e.to_string())? + "\n"),
    )?;
    Ok(Gathered {
        done,
        failed,
        pending,
    })
}

fn subjects_csv(records: &[Record], pending: &[String]) -> String {
    let mut s = String::from("subject,origin,status,seconds,ran,cached,cause\n");
    for r in records {
        let status = serde_json::to_value(r.status)
            .ok()
            .and_then(|v| v.as_str().map(String::from))
            .unwrap_or_default();
        let _ = writeln!(
            s,
            "{},{},{status},{:.2},{},{},{}",
            csv_field(&r.subject),
            csv_field(&r.origin),
            r.seconds,
            r.ran,
            r.cached,
            csv_field(r.cause.as_deref().unwrap_or(""))
        );
    }
    for p in pending {
        let _ = writeln!(s, "{},,pending,,,,", csv_field(p));
    }
    s
}

fn sha256_file(path: &Path) -> Result<String, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(Sha256::digest(&bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect())
}

/// Provenance of the whole cohort: which list of subjects, which workflow file, which
/// software, and per subject its status and node keys (each key's provenance record is in
/// the cache: `vistaflow cache show KEY`).
fn report(
    manifest: &Manifest,
    workflow: &Path,
    vars: &BTreeMap<String, String>,
    records: &[Record],
    pending: &[String],
) -> Result<serde_json::Value, String> {
    Ok(json!({
        "format": "vistaflow.cohort.report/1",
        "manifest": {
            "path": manifest.path,
            "sha256": manifest.sha256,
            "subjects": manifest.subjects.len(),
        },
        "workflow": { "path": workflow, "sha256": sha256_file(workflow)? },
        "set": vars,
        "software": crate::exec::provenance::software(),
        "created_unix_s": std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0),
        "subjects": records,
        "pending": pending,
    }))
}
