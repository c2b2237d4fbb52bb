//! Writing a file atomically: a temporary file in the same folder, fsynced and renamed into
//! place, so a crash never leaves half a file.

use super::messages::io_msg;
use crate::node::NodeError;
use std::fs;
use std::io::{self, BufWriter, Write};
use std::path::Path;

/// The folder `path` goes into (`.` for a bare name), created with any missing parents.
pub(crate) fn create_parent(path: &Path) -> Result<&Path, NodeError> {
    let dir = parent(path);
    fs::create_dir_all(dir).map_err(|e| {
        NodeError::file(
            path,
            format!("cannot create the folder {}: {}", dir.display(), io_msg(&e)),
        )
    })?;
    Ok(dir)
}

/// `cannot write: ...`, naming `path`.
pub(crate) fn write_error(path: &Path, e: io::Error) -> NodeError {
    NodeError::file(path, format!("cannot write: {}", io_msg(&e)))
}

/// Writes `path` through a temporary file in the same folder (which must exist) that is
/// fsynced and renamed into place. `body` writes the contents; the buffer is flushed after it.
pub(crate) fn write(
    path: &Path,
    body: impl FnOnce(&mut BufWriter<&fs::File>) -> Result<(), NodeError>,
) -> Result<(), NodeError> {
    let err = |msg: String| NodeError::file(path, msg);
    let dir = parent(path);
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("out");
    remove_dead_writers(dir, name, ".partial");
    let mut builder = tempfile::Builder::new();
    // The writer's pid in the name lets a later run tell a killed writer's leftover from a
    // file another process is still writing.
    let prefix = format!(".{name}.{}-", std::process::id());
    builder.prefix(&prefix).suffix(".partial");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        builder.permissions(fs::Permissions::from_mode(0o644));
    }
    let tmp = builder.tempfile_in(dir).map_err(|e| {
        err(format!(
            "cannot create a file in the folder {}: {}",
            dir.display(),
            io_msg(&e)
        ))
    })?;
    let mut w = BufWriter::with_capacity(1 << 20, tmp.as_file());
    body(&mut w)?;
    w.flush().map_err(|e| write_error(path, e))?;
    drop(w);
    tmp.as_file().sync_all().map_err(|e| write_error(path, e))?;
    tmp.persist(path).map_err(|e| {
        err(format!(
            "cannot rename the finished file into place: {}",
            io_msg(&e.error)
        ))
    })?;
    // Make the rename itself durable; best effort (not every file system allows it).
    if let Ok(d) = fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

/// Removes what writers of `name` that were killed (kill -9, power loss) left in `dir`:
/// `.NAME.<pid>...SUFFIX` files whose process is gone, and ones older than a day whose
/// writer cannot be told (another host on a shared file system, an older naming). Used for
/// outputs' `.partial` files here and for the cache's `.tmp` files.
pub fn remove_dead_writers(dir: &Path, name: &str, suffix: &str) {
    let prefix = format!(".{name}.");
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let file = e.file_name();
        let Some(rest) = file
            .to_str()
            .and_then(|f| f.strip_prefix(&prefix))
            .filter(|f| f.ends_with(suffix))
        else {
            continue;
        };
        let pid = rest
            .split(|c: char| !c.is_ascii_digit())
            .next()
            .and_then(|p| p.parse::<u32>().ok());
        let writer_gone = match pid {
            Some(pid) if cfg!(target_os = "linux") => {
                pid != std::process::id() && !Path::new("/proc").join(pid.to_string()).exists()
            }
            _ => false,
        };
        let old = e
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok())
            .is_some_and(|age| age.as_secs() > 24 * 3600);
        if writer_gone || old {
            let _ = fs::remove_file(e.path());
        }
    }
}

/// Writes `text` to `path` atomically, creating missing folders (tables, sidecars, reports).
pub fn write_text(path: &Path, text: &str) -> Result<(), NodeError> {
    create_parent(path)?;
    write(path, |w| {
        w.write_all(text.as_bytes())
            .map_err(|e| write_error(path, e))
    })
}

fn parent(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_killed_writers_partial_file_goes_at_the_next_write() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        // pid 4194304 is above Linux's pid_max: no such process.
        let dead = d.join(".seg.nii.gz.4194304-abc123.partial");
        let live = d.join(format!(".seg.nii.gz.{}-def456.partial", std::process::id()));
        let other = d.join(".other.nii.gz.4194304-abc123.partial");
        for p in [&dead, &live, &other] {
            fs::write(p, b"half").unwrap();
        }
        write_text(&d.join("seg.nii.gz"), "done").unwrap();
        assert!(!dead.exists() || !cfg!(target_os = "linux"));
        assert!(live.exists(), "a file this process is writing stays");
        assert!(other.exists(), "another output's files are not touched");
        assert_eq!(fs::read_to_string(d.join("seg.nii.gz")).unwrap(), "done");
    }
}
