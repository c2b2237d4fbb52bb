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
    let mut builder = tempfile::Builder::new();
    let prefix = format!(".{name}.");
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

/// Writes `text` to `path` atomically, creating missing folders (tables, sidecars, reports).
pub(crate) fn write_text(path: &Path, text: &str) -> Result<(), NodeError> {
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
