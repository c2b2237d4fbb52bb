//! File errors in words for a user.

use std::io;

/// An I/O error in words for a user, with what to do where that is clear.
pub(crate) fn io_msg(e: &io::Error) -> String {
    match (e.kind(), e.raw_os_error()) {
        (io::ErrorKind::NotFound, _) => "no such file or folder; check the path".into(),
        (io::ErrorKind::PermissionDenied, _) => {
            "permission denied; check the permissions or choose another path".into()
        }
        (_, Some(28)) => "the disk is full (no space left on device); free some space or write \
                          elsewhere"
            .into(),
        (_, Some(30)) => "the file system is read-only; choose a writable folder".into(),
        (_, Some(20)) => "a part of the path is a file, not a folder; check the path".into(),
        (_, Some(21)) => "the path is a folder, not a file".into(),
        _ => e.to_string(),
    }
}
