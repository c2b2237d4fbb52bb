//! What a cohort is, in absolute paths: the workflow, where its subjects come from, the
//! `--set` variables and the results folder. Saved with a Slurm submission so that every
//! array task and the gather job see the same cohort wherever they start.

use super::manifest::{self, Manifest};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct CohortSpec {
    pub workflow: PathBuf,
    /// A CSV or YAML manifest, or (exactly one of the two) a folder to scan.
    pub cohort: Option<PathBuf>,
    pub cohort_dir: Option<PathBuf>,
    pub set: BTreeMap<String, String>,
    pub results: PathBuf,
}

fn absolute(p: &Path) -> PathBuf {
    std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf())
}

impl CohortSpec {
    pub fn new(
        workflow: &Path,
        cohort: Option<&Path>,
        cohort_dir: Option<&Path>,
        set: BTreeMap<String, String>,
        results: &Path,
    ) -> CohortSpec {
        CohortSpec {
            workflow: absolute(workflow),
            cohort: cohort.map(absolute),
            cohort_dir: cohort_dir.map(absolute),
            set,
            results: absolute(results),
        }
    }

    /// The subjects, each problem a line.
    pub fn manifest(&self) -> Result<Manifest, Vec<String>> {
        match (&self.cohort, &self.cohort_dir) {
            (Some(file), _) => manifest::read(file),
            (None, Some(dir)) => manifest::scan_dir(dir).map_err(|e| vec![e]),
            (None, None) => Err(vec!["no --cohort or --cohort-dir given".into()]),
        }
    }
}
