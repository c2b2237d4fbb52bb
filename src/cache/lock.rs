//! The cache-wide lock, `<root>/lock` (flock(2)).
//!
//! * Every [`super::Store`] holds a **shared** lock for its whole life: runs can share a cache.
//! * `gc` and `verify` briefly convert it to **exclusive**, which succeeds only when no other
//!   process holds the cache open. They do not wait for runs to end: after
//!   [`MAINTENANCE_WAIT`] they fail with [`CacheError::Busy`] naming the pids that hold it
//!   (read from `/proc/locks`).
//! * Opening a store waits (up to the caller's timeout) while a `gc`/`verify` holds the
//!   exclusive lock; those are short.
//!
//! flock locks belong to the open file, so two `Store`s in one process on one root exclude
//! each other's maintenance: open one per process and share it.

use super::CacheError;
use std::fs::{File, OpenOptions, TryLockError};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// How long `gc`/`verify` retry to get the exclusive lock before giving up.
pub const MAINTENANCE_WAIT: Duration = Duration::from_secs(2);

pub(crate) struct RootLock {
    path: PathBuf,
    file: File,
}

impl RootLock {
    /// Opens `path` and takes a shared lock, waiting up to `wait` for an exclusive holder.
    pub(crate) fn shared(path: &Path, root: &Path, wait: Duration) -> Result<RootLock, CacheError> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .map_err(|e| CacheError::io("open the lock file", path, e))?;
        let lock = RootLock {
            path: path.to_path_buf(),
            file,
        };
        lock.retry(
            wait,
            true,
            root,
            "cannot open it while it is being cleaned or verified",
        )?;
        Ok(lock)
    }

    /// Converts to an exclusive lock (retrying for [`MAINTENANCE_WAIT`]).
    pub(crate) fn exclusive(&self, root: &Path, what: &'static str) -> Result<(), CacheError> {
        self.retry(MAINTENANCE_WAIT, false, root, what)
    }

    /// Back to shared after maintenance. Blocks only on another maintenance holder.
    pub(crate) fn downgrade(&self) {
        let _ = self.file.lock_shared();
    }

    fn retry(
        &self,
        wait: Duration,
        shared: bool,
        root: &Path,
        what: &'static str,
    ) -> Result<(), CacheError> {
        let start = Instant::now();
        let mut pause = Duration::from_millis(5);
        loop {
            let r = if shared {
                self.file.try_lock_shared()
            } else {
                self.file.try_lock()
            };
            match r {
                Ok(()) => return Ok(()),
                Err(TryLockError::Error(e)) => return Err(CacheError::io("lock", &self.path, e)),
                Err(TryLockError::WouldBlock) => {}
            }
            if start.elapsed() >= wait {
                if !shared {
                    // A failed conversion may have dropped our shared lock (flock converts
                    // by unlock + lock): take it back.
                    self.downgrade();
                }
                return Err(CacheError::Busy {
                    root: root.to_path_buf(),
                    holders: self.holders(),
                    what,
                });
            }
            std::thread::sleep(pause.min(wait.saturating_sub(start.elapsed())));
            pause = (pause * 2).min(Duration::from_millis(200));
        }
    }

    /// "pid 12, pid 34" for the other processes holding a lock on the lock file, from
    /// `/proc/locks` (Linux). A holder on another host of a network file system is in no
    /// table here: then [`UNSEEN_HOLDER`].
    fn holders(&self) -> String {
        let (dev, ino) = match self.file.metadata() {
            Ok(m) => (m.dev(), m.ino()),
            Err(_) => return UNSEEN_HOLDER.into(),
        };
        let me = std::process::id();
        let mut pids = holders_of(
            dev,
            ino,
            &std::fs::read_to_string("/proc/locks").unwrap_or_default(),
        );
        let mut own = false;
        pids.retain(|&p| {
            own |= p == me;
            p != me
        });
        match (pids.is_empty(), own) {
            (false, _) => pids
                .iter()
                .map(|p| format!("pid {p}"))
                .collect::<Vec<_>>()
                .join(", "),
            (true, true) => format!("another handle in this process, pid {me}"),
            (true, false) => UNSEEN_HOLDER.into(),
        }
    }
}

/// What [`RootLock::holders`] says when no process here holds the lock.
const UNSEEN_HOLDER: &str =
    "pid unknown: a process on another host sharing this file system, or one not visible here";

/// Pids holding (not waiting for) a flock on file `dev`/`ino`, parsed from `/proc/locks`
/// text: `1: FLOCK  ADVISORY  READ  1234 fd:01:5678 0 EOF` (major:minor in hex, inode).
/// The device matters: two mounts of one network file system give a file the same inode.
fn holders_of(dev: u64, ino: u64, proc_locks: &str) -> Vec<u32> {
    let want = format!("{:02x}:{:02x}:{ino}", libc::major(dev), libc::minor(dev));
    let mut pids: Vec<u32> = proc_locks
        .lines()
        .filter(|l| !l.contains("->"))
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            if f.len() < 6 || f[1] != "FLOCK" {
                return None;
            }
            (f[5] == want).then(|| f[4].parse().ok()).flatten()
        })
        .collect();
    pids.sort_unstable();
    pids.dedup();
    pids
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_proc_locks() {
        let text = "1: FLOCK  ADVISORY  READ  1234 fd:01:5678 0 EOF\n\
                    1: -> FLOCK  ADVISORY  WRITE 99 fd:01:5678 0 EOF\n\
                    2: POSIX  ADVISORY  WRITE 77 fd:01:5678 0 EOF\n\
                    3: FLOCK  ADVISORY  READ  4321 fd:01:5678 0 EOF\n\
                    4: FLOCK  ADVISORY  READ  1 fd:01:9 0 EOF\n\
                    5: FLOCK  ADVISORY  READ  55 00:28:5678 0 EOF\n";
        assert_eq!(
            holders_of(libc::makedev(0xfd, 1), 5678, text),
            vec![1234, 4321]
        );
        // The same inode on another device (a second mount of a network file system).
        assert_eq!(holders_of(libc::makedev(0, 0x28), 5678, text), vec![55]);
        assert!(holders_of(libc::makedev(0, 0x29), 5678, text).is_empty());
    }

    #[test]
    fn exclusive_fails_while_another_handle_is_shared() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("lock");
        let a = RootLock::shared(&p, dir.path(), Duration::ZERO).unwrap();
        let b = RootLock::shared(&p, dir.path(), Duration::ZERO).unwrap();
        let err = a.exclusive(dir.path(), "cannot test").unwrap_err();
        assert!(err.to_string().contains("in use by another run"), "{err}");
        assert!(
            err.to_string().contains(&std::process::id().to_string()),
            "{err}"
        );
        drop(b);
        a.exclusive(dir.path(), "cannot test").unwrap();
        // While exclusive, nobody can open.
        assert!(RootLock::shared(&p, dir.path(), Duration::from_millis(20)).is_err());
        a.downgrade();
        RootLock::shared(&p, dir.path(), Duration::ZERO).unwrap();
    }
}
