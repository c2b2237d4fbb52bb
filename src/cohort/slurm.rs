//! A cohort on a Slurm cluster: an sbatch job array whose tasks each run a shard of the
//! subjects (`vistaflow cohort shard`), all with the workflow's one cache folder on the
//! shared file system, then a gather job (`--dependency=afterany`) that builds the cohort's
//! tables, plot and report from the subject records. The submissions are kept in
//! `RESULTS/slurm/cohort.json`, which `cohort status` and `cohort resume` read.

use super::spec::CohortSpec;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

pub const FORMAT: &str = "vistaflow.cohort.slurm/1";

/// What sbatch is told for every array task.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct SlurmOptions {
    pub partition: Option<String>,
    pub gres: Option<String>,
    /// Tasks running at once (`--array=...%K`).
    pub array_max: Option<usize>,
    pub time: Option<String>,
    pub mem: Option<String>,
    pub cpus_per_task: Option<usize>,
    /// Passed to sbatch as they are (e.g. `--account=lab`).
    pub extra: Vec<String>,
    /// `--device` for the subjects' runs.
    pub device: Option<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Submission {
    pub array_job: String,
    pub gather_job: String,
    pub tasks: usize,
    /// The subjects this submission runs (all of them first; the missing ones on resume).
    pub subjects: Vec<String>,
    pub submitted_unix_s: u64,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct SlurmState {
    pub format: String,
    pub spec: CohortSpec,
    /// The vistaflow binary the jobs run (this one, by absolute path).
    pub binary: PathBuf,
    pub options: SlurmOptions,
    pub submissions: Vec<Submission>,
}

pub fn state_path(results: &Path) -> PathBuf {
    results.join("slurm").join("cohort.json")
}

impl SlurmState {
    pub fn read(results: &Path) -> Result<SlurmState, String> {
        let path = state_path(results);
        let text = std::fs::read_to_string(&path).map_err(|e| {
            format!(
                "{}: {e} (is {} the --results folder of a `vistaflow cohort submit`?)",
                path.display(),
                results.display()
            )
        })?;
        let s: SlurmState = serde_json::from_str(&text)
            .map_err(|e| format!("{}: not a cohort submission: {e}", path.display()))?;
        if s.format != FORMAT {
            return Err(format!(
                "{}: format `{}`, expected {FORMAT}",
                path.display(),
                s.format
            ));
        }
        Ok(s)
    }

    pub fn write(&self) -> Result<(), String> {
        let text = serde_json::to_string_pretty(self).map_err(|e| e.to_string())? + "\n";
        vistaflow_nodes::io::atomic::write_text(&state_path(&self.spec.results), &text)
            .map_err(|e| e.to_string())
    }

    /// The subjects of task `task` of submission `k`: every `tasks`-th one from `task` on.
    pub fn shard(&self, k: usize, task: usize) -> Result<Vec<String>, String> {
        let s = self.submissions.get(k).ok_or_else(|| {
            format!(
                "no submission {k} in {}",
                state_path(&self.spec.results).display()
            )
        })?;
        if task >= s.tasks {
            return Err(format!(
                "task {task}: submission {k} has tasks 0..{}",
                s.tasks
            ));
        }
        Ok(s.subjects
            .iter()
            .enumerate()
            .filter(|(i, _)| i % s.tasks == task)
            .map(|(_, id)| id.clone())
            .collect())
    }
}

fn quote(s: &str) -> String {
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "/._-=:,+@%".contains(c))
    {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

/// The array script of submission `k` with `tasks` tasks.
pub fn array_script(state: &SlurmState, k: usize, tasks: usize, name: &str) -> String {
    let o = &state.options;
    let logs = state.spec.results.join("slurm").join("logs");
    let mut s = String::from("#!/bin/bash\n");
    let _ = writeln!(s, "#SBATCH --job-name={}", quote(&format!("vf-{name}")));
    let max = o.array_max.map(|m| format!("%{m}")).unwrap_or_default();
    let _ = writeln!(s, "#SBATCH --array=0-{}{max}", tasks.saturating_sub(1));
    let _ = writeln!(
        s,
        "#SBATCH --output={}",
        quote(&logs.join("%A_%a.out").display().to_string())
    );
    for (flag, v) in [
        ("partition", &o.partition),
        ("gres", &o.gres),
        ("time", &o.time),
        ("mem", &o.mem),
    ] {
        if let Some(v) = v {
            let _ = writeln!(s, "#SBATCH --{flag}={}", quote(v));
        }
    }
    if let Some(c) = o.cpus_per_task {
        let _ = writeln!(s, "#SBATCH --cpus-per-task={c}");
    }
    let _ = writeln!(
        s,
        "# One shard of the cohort's subjects per task; they share the workflow's cache.\n\
         exec {} cohort shard {} --submission {k} --task \"$SLURM_ARRAY_TASK_ID\"",
        quote(&state.binary.display().to_string()),
        quote(&state.spec.results.display().to_string())
    );
    s
}

/// The gather job's script.
pub fn gather_script(state: &SlurmState, name: &str) -> String {
    let logs = state.spec.results.join("slurm").join("logs");
    let mut s = String::from("#!/bin/bash\n");
    let _ = writeln!(
        s,
        "#SBATCH --job-name={}",
        quote(&format!("vf-{name}-gather"))
    );
    let _ = writeln!(
        s,
        "#SBATCH --output={}",
        quote(&logs.join("gather_%j.out").display().to_string())
    );
    if let Some(p) = &state.options.partition {
        let _ = writeln!(s, "#SBATCH --partition={}", quote(p));
    }
    let _ = writeln!(
        s,
        "exec {} cohort gather {}",
        quote(&state.binary.display().to_string()),
        quote(&state.spec.results.display().to_string())
    );
    s
}

/// `sbatch --parsable ARGS SCRIPT`: the job id.
pub fn sbatch(script: &Path, args: &[String]) -> Result<String, String> {
    let out = Command::new("sbatch")
        .arg("--parsable")
        .args(args)
        .arg(script)
        .output()
        .map_err(|e| format!("cannot run sbatch: {e} (is Slurm installed and on PATH?)"))?;
    if !out.status.success() {
        return Err(format!(
            "sbatch {} failed: {}",
            script.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    // `--parsable` prints `jobid[;cluster]`.
    let id = text.trim().split(';').next().unwrap_or("").to_string();
    if id.is_empty() || !id.chars().all(|c| c.is_ascii_digit()) {
        return Err(format!("sbatch printed `{}`, not a job id", text.trim()));
    }
    Ok(id)
}

/// The Slurm state of each job still known to squeue (PENDING, RUNNING, ...); finished jobs
/// leave squeue, and are absent here.
pub fn queue_states(jobs: &[&str]) -> BTreeMap<String, String> {
    let mut states = BTreeMap::new();
    if jobs.is_empty() {
        return states;
    }
    let Ok(out) = Command::new("squeue")
        .args(["-h", "-o", "%i %T", "-j", &jobs.join(",")])
        .output()
    else {
        return states;
    };
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        if let Some((id, state)) = line.split_once(' ') {
            // Array tasks print as 12_3 (or 12_[4-5] while pending): keep the job id.
            let job = id.split('_').next().unwrap_or(id).to_string();
            states
                .entry(job)
                .and_modify(|s: &mut String| {
                    if !s.contains(state) {
                        s.push('+');
                        s.push_str(state);
                    }
                })
                .or_insert_with(|| state.to_string());
        }
    }
    states
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state() -> SlurmState {
        SlurmState {
            format: FORMAT.into(),
            spec: CohortSpec::new(
                Path::new("/w/wf.yaml"),
                Some(Path::new("/d/s.csv")),
                None,
                BTreeMap::new(),
                Path::new("/r it"),
            ),
            binary: "/bin/vistaflow".into(),
            options: SlurmOptions {
                partition: Some("gpu".into()),
                gres: Some("gpu:1".into()),
                array_max: Some(4),
                cpus_per_task: Some(8),
                ..Default::default()
            },
            submissions: vec![Submission {
                array_job: "7".into(),
                gather_job: "8".into(),
                tasks: 3,
                subjects: (1..=7).map(|i| format!("s{i}")).collect(),
                submitted_unix_s: 0,
            }],
        }
    }

    #[test]
    fn shards_deal_subjects_round_robin() {
        let s = state();
        assert_eq!(s.shard(0, 0).unwrap(), ["s1", "s4", "s7"]);
        assert_eq!(s.shard(0, 2).unwrap(), ["s3", "s6"]);
        assert!(s.shard(0, 3).is_err());
        assert!(s.shard(1, 0).is_err());
    }

    #[test]
    fn the_array_script_asks_for_what_was_given_and_quotes_paths() {
        let text = array_script(&state(), 0, 3, "demo");
        for want in [
            "#SBATCH --array=0-2%4\n",
            "#SBATCH --partition=gpu\n",
            "#SBATCH --gres=gpu:1\n",
            "#SBATCH --cpus-per-task=8\n",
            "#SBATCH --output='/r it/slurm/logs/%A_%a.out'\n",
            "exec /bin/vistaflow cohort shard '/r it' --submission 0 --task \"$SLURM_ARRAY_TASK_ID\"",
        ] {
            assert!(text.contains(want), "{want} missing in\n{text}");
        }
        assert!(!text.contains("--time"));
        assert!(
            gather_script(&state(), "demo").contains("exec /bin/vistaflow cohort gather '/r it'")
        );
    }
}
