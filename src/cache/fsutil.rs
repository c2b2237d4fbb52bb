//! Small filesystem helpers: atomic replace (temp file, fsync, rename, fsync dir) and
//! per-entry lock files.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// Suffix of every temp file the store writes; `gc` removes old ones.
pub(crate) const TMP_SUFFIX: &str = ".tmp";

/// A temp path next to `final_path`, unique across processes and threads:
/// `.<file name>.<pid>.<n>.tmp`.
pub(crate) fn temp_path(final_path: &Path) -> PathBuf {
    static SEQ: AtomicU64 = AtomicU64::new(0);
    let n = SEQ.fetch_add(1, Ordering::Relaxed);
    let name = final_path
        .file_name()
        .map(|s| s.to_string_lossy())
        .unwrap_or_default();
    final_path.with_file_name(format!(".{name}.{}.{n}{TMP_SUFFIX}", std::process::id()))
}

/// Writes `final_path` atomically: `fill` writes a fresh temp file in the same directory,
/// which is fsynced (when `durable`) and renamed over `final_path`. The directory itself is
/// *not* fsynced here (see [`sync_dir`]) so that callers can batch renames.
/// On any error the temp file is removed. Returns what `fill` returned.
pub(crate) fn write_atomic<T>(
    final_path: &Path,
    durable: bool,
    fill: impl FnOnce(&mut File) -> io::Result<T>,
) -> io::Result<T> {
    let tmp = temp_path(final_path);
    // A killed writer's temp file of this name goes now, not only at the next `gc`.
    if let (Some(dir), Some(name)) = (final_path.parent(), final_path.file_name()) {
        vistaflow_nodes::io::atomic::remove_dead_writers(dir, &name.to_string_lossy(), TMP_SUFFIX);
    }
    let result = (|| {
        let mut f = OpenOptions::new().write(true).create_new(true).open(&tmp)?;
        let out = fill(&mut f)?;
        if durable {
            f.sync_all()?;
        }
        drop(f);
        fs::rename(&tmp, final_path)?;
        Ok(out)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// fsyncs a directory so that renames and unlinks in it are durable.
pub(crate) fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// How long a lock file may go on answering ESTALE before that is an error (see
/// [`EntryLock::acquire`]); a network file system's name cache lives seconds at most.
const STALE_FOR_AT_MOST: std::time::Duration = std::time::Duration::from_secs(30);

/// An exclusive lock on one entry's lock file, held while the entry is written or removed.
/// The lock file is unlinked on drop (before unlocking).
pub(crate) struct EntryLock {
    path: PathBuf,
    _file: File,
}

impl EntryLock {
    /// Blocks until this handle holds the exclusive lock on `path` (created if missing).
    ///
    /// Lock files are removed when released, so a waiter may end up holding a lock on an
    /// unlinked file; it checks that `path` still names the inode it locked and retries
    /// otherwise (the usual lock-then-verify dance).
    pub(crate) fn acquire(path: &Path) -> io::Result<EntryLock> {
        Self::lock_with(path, |f| f.lock(), STALE_FOR_AT_MOST)
            .map(|l| l.expect("a blocking lock is always taken"))
    }

    /// As [`EntryLock::acquire`], but `None` at once when another handle holds the lock.
    pub(crate) fn try_acquire(path: &Path) -> io::Result<Option<EntryLock>> {
        Self::lock_with(
            path,
            |f| match f.try_lock() {
                Ok(()) => Ok(()),
                Err(fs::TryLockError::WouldBlock) => Err(io::ErrorKind::WouldBlock.into()),
                Err(fs::TryLockError::Error(e)) => Err(e),
            },
            STALE_FOR_AT_MOST,
        )
    }

    fn lock_with(
        path: &Path,
        lock: impl Fn(&File) -> io::Result<()>,
        stale_for_at_most: std::time::Duration,
    ) -> io::Result<Option<EntryLock>> {
        // On a network file system the file we opened may be unlinked by its holder on
        // another host before we lock or stat it: the server then answers ESTALE where a
        // local file system would let us lock the orphan. Both mean "gone, try again", but
        // the client keeps resolving the path to the dead file until its name cache expires
        // (about a second for GlusterFS and NFS): so pause between tries, and report a
        // handle that stays stale longer (a broken mount).
        let mut stale_since = None;
        let mut retry = |e: io::Error| {
            if e.raw_os_error() != Some(libc::ESTALE) {
                return Err(e);
            }
            let since = *stale_since.get_or_insert_with(std::time::Instant::now);
            if since.elapsed() > stale_for_at_most {
                return Err(e);
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
            Ok(())
        };
        loop {
            let file = match OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .open(path)
            {
                Ok(f) => f,
                Err(e) => {
                    retry(e)?;
                    continue;
                }
            };
            match lock(&file) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(None),
                Err(e) => {
                    retry(e)?;
                    continue;
                }
            }
            let held = match file.metadata() {
                Ok(m) => m,
                Err(e) => {
                    retry(e)?;
                    continue;
                }
            };
            match fs::metadata(path) {
                Ok(now) if now.dev() == held.dev() && now.ino() == held.ino() => {
                    return Ok(Some(EntryLock {
                        path: path.to_path_buf(),
                        _file: file,
                    }));
                }
                Ok(_) => continue,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => retry(e)?,
            }
        }
    }
}

impl Drop for EntryLock {
    fn drop(&mut self) {
        // Unlink while still locked: later lockers see either our inode (and retry because it
        // is unlinked) or a fresh one.
        let _ = fs::remove_file(&self.path);
    }
}

/// Marks a file used now (best effort): its mtime is `gc`'s "last used" for entries, sink
/// records and digest memos.
pub(crate) fn touch(path: &Path) {
    if let Ok(f) = fs::OpenOptions::new().write(true).open(path) {
        let _ = f.set_modified(std::time::SystemTime::now());
    }
}

/// Nanoseconds since the Unix epoch of a (seconds, nanoseconds) pair from `stat`.
pub(crate) fn ns(secs: i64, nsec: i64) -> i128 {
    secs as i128 * 1_000_000_000 + nsec as i128
}

/// Now, in nanoseconds since the Unix epoch.
pub(crate) fn now_ns() -> i128 {
    match std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH) {
        Ok(d) => d.as_nanos() as i128,
        Err(e) => -(e.duration().as_nanos() as i128),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_killed_writers_temp_file_goes_at_the_next_write_of_that_name() {
        let dir = tempfile::tempdir().unwrap();
        // pid 4194304 is above Linux's pid_max: no such process. The live one is ours.
        let dead = dir.path().join(".a.json.4194304.7.tmp");
        let live = dir
            .path()
            .join(format!(".a.json.{}.99.tmp", std::process::id()));
        let other = dir.path().join(".b.json.4194304.1.tmp");
        for f in [&dead, &live, &other] {
            fs::write(f, b"x").unwrap();
        }
        write_atomic(&dir.path().join("a.json"), false, |f| {
            io::Write::write_all(f, b"{}")
        })
        .unwrap();
        assert!(!dead.exists());
        assert!(live.exists() && other.exists());
    }

    #[test]
    fn atomic_write_replaces_and_cleans_up_on_error() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.json");
        write_atomic(&p, true, |f| io::Write::write_all(f, b"one")).unwrap();
        write_atomic(&p, true, |f| io::Write::write_all(f, b"two")).unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"two");
        let err = write_atomic(&p, true, |f| {
            io::Write::write_all(f, b"partial")?;
            Err::<(), _>(io::Error::other("boom"))
        });
        assert!(err.is_err());
        assert_eq!(fs::read(&p).unwrap(), b"two");
        let names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 1, "temp file left behind: {names:?}");
    }

    /// A lock that answers ESTALE `n` times (a network file system whose holder on another
    /// host unlinked the file), then locks.
    fn stale_then_lock(n: u32) -> impl Fn(&File) -> io::Result<()> {
        let left = std::sync::atomic::AtomicU32::new(n);
        move |f: &File| {
            if left
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |l| l.checked_sub(1))
                .is_ok()
            {
                return Err(io::Error::from_raw_os_error(libc::ESTALE));
            }
            f.lock()
        }
    }

    #[test]
    fn entry_lock_retries_a_stale_handle_for_a_while_then_reports_it() {
        use std::time::{Duration, Instant};
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.lock");
        let held = EntryLock::lock_with(&p, stale_then_lock(3), Duration::from_secs(5)).unwrap();
        assert!(held.is_some());
        drop(held);
        // Stale for longer than allowed: the error, not a hang.
        let start = Instant::now();
        let err = EntryLock::lock_with(&p, stale_then_lock(u32::MAX), Duration::from_millis(100))
            .err()
            .expect("a handle stale for good is an error");
        assert_eq!(err.raw_os_error(), Some(libc::ESTALE));
        assert!(start.elapsed() >= Duration::from_millis(100));
        // Any other error at once.
        let denied = |_: &File| Err(io::Error::from_raw_os_error(libc::EACCES));
        let err = EntryLock::lock_with(&p, denied, Duration::from_secs(5))
            .err()
            .unwrap();
        assert_eq!(err.raw_os_error(), Some(libc::EACCES));
    }

    #[test]
    fn entry_lock_excludes_and_removes_its_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.lock");
        let counter = std::sync::Arc::new(std::sync::atomic::AtomicU32::new(0));
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let (p, c) = (p.clone(), counter.clone());
                std::thread::spawn(move || {
                    for _ in 0..50 {
                        let _l = EntryLock::acquire(&p).unwrap();
                        assert_eq!(c.fetch_add(1, Ordering::SeqCst), 0, "two holders at once");
                        std::thread::yield_now();
                        c.fetch_sub(1, Ordering::SeqCst);
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert!(!p.exists());
    }
}
