//! Maintenance: [`Store::list`], [`Store::gc`], [`Store::verify`].

use super::format::{self, FORMAT};
use super::fsutil::TMP_SUFFIX;
use super::store::{read_sidecar, unix_ms};
use super::{CacheError, Store};
use crate::hash::Digest;
use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

/// Temp and entry-lock files older than this are garbage even if a writer could own them.
pub const STALE_TEMP: Duration = Duration::from_secs(3600);

/// One committed entry, as `vistaflow cache ls` shows it.
#[derive(Clone, Debug)]
pub struct EntrySummary {
    pub id: Digest,
    pub key: Option<Digest>,
    pub kind: String,
    pub node: String,
    pub port: String,
    pub port_type: String,
    /// Data file + sidecar.
    pub bytes: u64,
    /// Unix ms when written.
    pub created_unix_ms: u64,
    /// Unix ms when last written or read (the sidecar's mtime).
    pub last_used_unix_ms: u64,
}

/// A run digests its sources and reads its sink records before it writes its outputs: a memo
/// or record of a kept run may be older than that run's entries by as long as the run took.
pub const RUN_SLACK: Duration = Duration::from_secs(24 * 3600);

/// What [`Store::gc`] did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GcReport {
    pub removed_entries: usize,
    pub freed_bytes: u64,
    pub kept_entries: usize,
    pub kept_bytes: u64,
    /// Data files without a sidecar (left by a killed writer), unreadable sidecars, stale
    /// temp and lock files.
    pub removed_garbage: usize,
    /// Sink records and file-digest memos unused since well before every kept entry was used.
    pub removed_records: usize,
    pub removed_memos: usize,
}

/// What [`Store::verify`] found.
#[derive(Clone, Debug, Default)]
pub struct VerifyReport {
    pub checked: usize,
    pub ok_bytes: u64,
    /// Entries that failed and were removed, with the reason.
    pub corrupt: Vec<(Digest, String)>,
    /// Files that are not committed entries (left for `gc`).
    pub garbage_files: usize,
}

impl VerifyReport {
    pub fn is_clean(&self) -> bool {
        self.corrupt.is_empty()
    }
}

/// What a file in `objects/<xx>/` is.
enum FileClass {
    Sidecar(Digest),
    Data(Digest),
    Lock,
    Temp,
    Other,
}

fn classify(name: &str) -> FileClass {
    if name.ends_with(TMP_SUFFIX) {
        return FileClass::Temp;
    }
    let Some((stem, ext)) = name.split_once('.') else {
        return FileClass::Other;
    };
    let Some(d) = Digest::from_hex(stem) else {
        return FileClass::Other;
    };
    match ext {
        "json" => FileClass::Sidecar(d),
        "safetensors" => FileClass::Data(d),
        "lock" => FileClass::Lock,
        _ => FileClass::Other,
    }
}

/// Every file in the shards of `objects/` (or `records/`, `file-digests/`) with its class and
/// metadata.
fn scan(objects: &Path) -> Vec<(PathBuf, FileClass, fs::Metadata)> {
    let mut out = Vec::new();
    let Ok(shards) = fs::read_dir(objects) else {
        return out;
    };
    for shard in shards.flatten() {
        let Ok(files) = fs::read_dir(shard.path()) else {
            continue;
        };
        for f in files.flatten() {
            let Ok(meta) = f.metadata() else { continue };
            if !meta.is_file() {
                continue;
            }
            let class = classify(&f.file_name().to_string_lossy());
            out.push((f.path(), class, meta));
        }
    }
    out
}

/// Removes the files in `dir`'s shards last modified before `cutoff` (temp files too, once
/// stale); returns how many records or memos went.
fn sweep(dir: &Path, cutoff: SystemTime) -> usize {
    let mut removed = 0;
    for (path, class, meta) in scan(dir) {
        let used = meta.modified().unwrap_or(SystemTime::UNIX_EPOCH);
        match class {
            // `<hex>.json`, as both are named.
            FileClass::Sidecar(_) if used < cutoff && fs::remove_file(&path).is_ok() => {
                removed += 1
            }
            FileClass::Temp if older_than(&meta, STALE_TEMP) => {
                let _ = fs::remove_file(&path);
            }
            _ => {}
        }
    }
    removed
}

fn older_than(meta: &fs::Metadata, age: Duration) -> bool {
    meta.modified()
        .ok()
        .and_then(|m| SystemTime::now().duration_since(m).ok())
        .is_some_and(|a| a >= age)
}

impl Store {
    /// Committed entries (sidecars that parse), in no particular order. Does not hash.
    pub fn list(&self) -> Vec<EntrySummary> {
        let files = scan(&self.objects());
        let mut out = Vec::new();
        for (path, class, meta) in &files {
            let FileClass::Sidecar(id) = class else {
                continue;
            };
            let Ok(Some((sc, _))) = read_sidecar(path) else {
                continue;
            };
            out.push(EntrySummary {
                id: *id,
                key: Digest::from_hex(&sc.key),
                kind: sc.kind,
                node: sc.node,
                port: sc.port,
                port_type: sc.port_type,
                bytes: sc.bytes + meta.len(),
                created_unix_ms: sc.created_unix_ms,
                last_used_unix_ms: meta.modified().map(unix_ms).unwrap_or(0),
            });
        }
        out
    }

    /// Removes least recently used entries until the entries take at most `max_bytes`, plus
    /// garbage: data files without a sidecar, unparsable sidecars, and temp/lock files older
    /// than [`STALE_TEMP`]. Sink records and file-digest memos go when they were last used
    /// more than [`RUN_SLACK`] before the least recently used kept entry (all of them when no
    /// entry is kept): a lost record reruns its sink, a lost memo rehashes its file.
    ///
    /// Takes the cache lock exclusively (see [`super::lock`]): fails with
    /// [`CacheError::Busy`] when another process has the cache open.
    pub fn gc(&self, max_bytes: u64) -> Result<GcReport, CacheError> {
        let _g = self.local.write().unwrap_or_else(|p| p.into_inner());
        self.lock()
            .exclusive(self.root(), "cannot collect garbage while it runs")?;
        let report = self.gc_locked(max_bytes);
        self.lock().downgrade();
        Ok(report)
    }

    fn gc_locked(&self, max_bytes: u64) -> GcReport {
        let mut report = GcReport::default();
        let files = scan(&self.objects());
        let mut entries = Vec::new(); // (last used, id, bytes)
        for (path, class, meta) in &files {
            match class {
                FileClass::Sidecar(id) => match read_sidecar(path) {
                    Ok(Some(_)) => {
                        let data = fs::metadata(self.data_path(id))
                            .map(|m| m.len())
                            .unwrap_or(0);
                        entries.push((
                            meta.modified().unwrap_or(SystemTime::UNIX_EPOCH),
                            *id,
                            data + meta.len(),
                        ));
                    }
                    _ => {
                        let _ = fs::remove_file(path);
                        let _ = fs::remove_file(self.data_path(id));
                        report.removed_garbage += 1;
                    }
                },
                FileClass::Data(id) => {
                    if !self.sidecar_path(id).exists() && fs::remove_file(path).is_ok() {
                        report.removed_garbage += 1;
                    }
                }
                FileClass::Temp | FileClass::Lock => {
                    if older_than(meta, STALE_TEMP) && fs::remove_file(path).is_ok() {
                        report.removed_garbage += 1;
                    }
                }
                FileClass::Other => {}
            }
        }
        entries.sort();
        let mut total: u64 = entries.iter().map(|e| e.2).sum();
        let mut oldest_kept = None;
        for (used, id, bytes) in entries {
            if total > max_bytes {
                let _ = fs::remove_file(self.sidecar_path(&id));
                let _ = fs::remove_file(self.data_path(&id));
                total -= bytes;
                report.removed_entries += 1;
                report.freed_bytes += bytes;
            } else {
                oldest_kept.get_or_insert(used);
                report.kept_entries += 1;
                report.kept_bytes += bytes;
            }
        }
        let cutoff = match oldest_kept {
            Some(t) => t.checked_sub(RUN_SLACK).unwrap_or(SystemTime::UNIX_EPOCH),
            None => SystemTime::now(),
        };
        report.removed_records = sweep(&self.root().join("records"), cutoff);
        report.removed_memos = sweep(&self.root().join("file-digests"), cutoff);
        report
    }

    /// Re-reads and re-hashes every committed entry; removes and reports the corrupt ones.
    /// Takes the cache lock exclusively like [`Store::gc`].
    pub fn verify(&self) -> Result<VerifyReport, CacheError> {
        let _g = self.local.write().unwrap_or_else(|p| p.into_inner());
        self.lock()
            .exclusive(self.root(), "cannot verify it while it runs")?;
        let report = self.verify_locked();
        self.lock().downgrade();
        Ok(report)
    }

    fn verify_locked(&self) -> VerifyReport {
        let mut report = VerifyReport::default();
        for (path, class, _) in scan(&self.objects()) {
            let id = match class {
                FileClass::Sidecar(id) => id,
                FileClass::Data(id) if self.sidecar_path(&id).exists() => continue,
                FileClass::Other => continue,
                _ => {
                    report.garbage_files += 1;
                    continue;
                }
            };
            report.checked += 1;
            let outcome = match read_sidecar(&path) {
                Ok(None) => continue, // vanished
                Err(Ok(e)) => Err(format!("cannot read sidecar: {e}")),
                Err(Err(why)) => Err(why),
                Ok(Some((sc, _))) if sc.format > FORMAT => continue,
                Ok(Some((sc, _))) if sc.id != id.hex() => {
                    Err("sidecar names another entry".to_string())
                }
                Ok(Some((sc, _))) => match File::open(self.data_path(&id)) {
                    Err(e) => Err(format!("data file: {e}")),
                    Ok(mut f) => match format::read_data(&mut f, &sc, false) {
                        Ok(_) => Ok(sc.bytes),
                        Err(Ok(e)) => Err(format!("cannot read data: {e}")),
                        Err(Err(why)) => Err(why),
                    },
                },
            };
            match outcome {
                Ok(bytes) => report.ok_bytes += bytes,
                Err(why) => {
                    let _ = fs::remove_file(&path);
                    let _ = fs::remove_file(self.data_path(&id));
                    report.corrupt.push((id, why));
                }
            }
        }
        report
    }
}
