//! Finding the files under `path` and reading their headers (in parallel).

use super::header::{probe, Instance, Probe};
use crate::node::{Ctx, NodeError};
use rayon::prelude::*;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// What a scan found.
pub struct Scan {
    /// Grey-level cross-sectional images, in path order.
    pub images: Vec<Instance>,
    /// Files without the DICOM `DICM` magic (skipped).
    pub not_dicom: Vec<PathBuf>,
    /// DICOM files that are not image volumes, with the reason (skipped).
    pub other: Vec<(PathBuf, String)>,
    /// DICOM files whose header could not be read, with the problem.
    pub broken: Vec<(PathBuf, String)>,
}

/// Every regular file under `root` (recursively, symlinks followed, sorted), or `root` itself.
fn list_files(root: &Path) -> Result<Vec<PathBuf>, NodeError> {
    let meta = std::fs::metadata(root).map_err(|e| {
        NodeError::file(
            root,
            if e.kind() == std::io::ErrorKind::NotFound {
                "no such file or folder; check the path".to_string()
            } else {
                format!("cannot read: {e}")
            },
        )
    })?;
    if meta.is_file() {
        return Ok(vec![root.to_path_buf()]);
    }
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let rd = std::fs::read_dir(&dir)
            .map_err(|e| NodeError::file(&dir, format!("cannot list the folder: {e}")))?;
        for entry in rd {
            let entry =
                entry.map_err(|e| NodeError::file(&dir, format!("cannot list the folder: {e}")))?;
            let p = entry.path();
            match std::fs::metadata(&p) {
                Ok(m) if m.is_dir() => stack.push(p),
                Ok(m) if m.is_file() => out.push(p),
                _ => {} // dangling links, sockets, ...
            }
        }
    }
    out.sort();
    Ok(out)
}

/// Lists and probes every file under `root`. Errors only when `root` cannot be read.
pub fn scan(root: &Path, ctx: &Ctx) -> Result<Scan, NodeError> {
    let files = list_files(root)?;
    let total = files.len() as u64;
    let done = AtomicU64::new(0);
    let probes: Vec<Option<Probe>> = files
        .par_iter()
        .map(|p| {
            if ctx.cancel.is_cancelled() {
                return None;
            }
            let r = probe(p);
            let n = done.fetch_add(1, Ordering::Relaxed) + 1;
            if n.is_multiple_of(16) || n == total {
                ctx.progress(n, total, "headers");
            }
            Some(r)
        })
        .collect();
    ctx.check_cancelled()?;
    let mut scan = Scan {
        images: vec![],
        not_dicom: vec![],
        other: vec![],
        broken: vec![],
    };
    for (p, r) in files.into_iter().zip(probes) {
        match r {
            Some(Probe::Image(i)) => scan.images.push(*i),
            Some(Probe::NotDicom) => scan.not_dicom.push(p),
            Some(Probe::Other(why)) => scan.other.push((p, why)),
            Some(Probe::Broken(why)) => scan.broken.push((p, why)),
            None => return Err(NodeError::Cancelled),
        }
    }
    Ok(scan)
}

/// The SeriesInstanceUIDs of the images among `files` (sorted, each once): what a folder scan
/// needs to make one subject per series. Files that are not images, or whose series has no
/// UID (anonymised data), give none.
pub fn series_uids(files: &[PathBuf]) -> Vec<String> {
    let mut uids: Vec<String> = files
        .par_iter()
        .filter_map(|p| match probe(p) {
            Probe::Image(i) => i.series_key.strip_prefix("uid|").map(str::to_string),
            _ => None,
        })
        .collect();
    uids.sort();
    uids.dedup();
    uids
}
