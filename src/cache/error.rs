//! [`CacheError`]: what went wrong, on which path, and what to do about it.

use std::fmt;
use std::io;
use std::path::PathBuf;

/// An error of the cache store. Corrupt entries are *not* errors (see [`super::Lookup`]):
/// these are failures the user has to act on (permissions, full disk, a busy cache).
#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    /// A filesystem operation failed.
    #[error("cannot {op} `{}`: {source}{}", path.display(), Hint(hint_for(source)))]
    Io {
        /// What was being done ("create the cache directory", "write", ...).
        op: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// Another process holds the cache lock in a way that excludes this operation.
    #[error(
        "cache `{}` is in use by another run ({holders}); {what}{}",
        root.display(),
        Hint(Some("wait for the other run to finish, then try again"))
    )]
    Busy {
        root: PathBuf,
        /// "pid 1234, pid 5678", or "pid unknown: ..." when no holder is on this host.
        holders: String,
        /// What could not be done ("cannot collect garbage while it runs").
        what: &'static str,
    },
    /// The value cannot be stored (e.g. a tensor dtype safetensors has no name for).
    #[error("cannot cache output `{port}` of node `{node}`: {msg}")]
    Unsupported {
        node: String,
        port: String,
        msg: String,
    },
}

impl CacheError {
    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        CacheError::Io {
            op,
            path: path.into(),
            source,
        }
    }

    /// True when the error says the disk (or quota) is full.
    pub fn is_disk_full(&self) -> bool {
        matches!(self, CacheError::Io { source, .. } if is_full(source))
    }
}

fn is_full(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::StorageFull
        || matches!(e.raw_os_error(), Some(libc::ENOSPC) | Some(libc::EDQUOT))
}

fn hint_for(e: &io::Error) -> Option<&'static str> {
    if is_full(e) {
        return Some(
            "free space, or run `vistaflow cache gc --max-size <SIZE>` to shrink the cache",
        );
    }
    match e.kind() {
        io::ErrorKind::PermissionDenied | io::ErrorKind::ReadOnlyFilesystem => Some(
            "make the directory writable, or point `settings.cache` (or `--cache`) at a writable \
             directory",
        ),
        _ => None,
    }
}

struct Hint(Option<&'static str>);

impl fmt::Display for Hint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(h) => write!(f, "\n  hint: {h}"),
            None => Ok(()),
        }
    }
}
