//! [`FileDigests`]: sha256 of files and folders that sources read, memoised by `stat`.
//!
//! A memo maps a canonical path to (size, mtime, ctime, device, inode) and the digest. It
//! is reused only when all of those match **and** the memo was recorded at least
//! [`RACY_WINDOW`] after the file's last change: a file rewritten within the same timestamp
//! tick as the recording could otherwise keep its old stat and a stale digest (the "racy
//! git" problem). Such a memo is ignored and the file rehashed (and the memo refreshed,
//! which then becomes trusted once the file has been quiet long enough).
//!
//! Memos live one small JSON file per path at `<root>/file-digests/<2 hex>/<H(path)>.json`,
//! written atomically (temp + rename); two processes racing lose at most one memo, which only
//! costs a rehash. Paths are hashed and never written, so no patient name that might be in a
//! folder name reaches the cache. An in-memory copy makes repeated look-ups in one process
//! cost a `stat` and a `realpath`.

use super::fsutil::{now_ns, ns, touch, write_atomic};
use crate::hash::{Digest, KeyHasher};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use std::collections::HashMap;
use std::fs::{self, File, Metadata};
use std::io::{self, Read};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// A memo recorded less than this long after the file's mtime/ctime is not trusted.
pub const RACY_WINDOW_NS: i128 = 2_000_000_000;

/// Read buffer of the cold path: files are streamed, never read whole into memory.
const BUF: usize = 1 << 20;

#[derive(Serialize, Deserialize, Clone, Copy, PartialEq, Eq, Debug)]
struct Stat {
    size: u64,
    mtime_ns: i128,
    ctime_ns: i128,
    dev: u64,
    ino: u64,
}

impl Stat {
    fn of(m: &Metadata) -> Stat {
        Stat {
            size: m.len(),
            mtime_ns: ns(m.mtime(), m.mtime_nsec()),
            ctime_ns: ns(m.ctime(), m.ctime_nsec()),
            dev: m.dev(),
            ino: m.ino(),
        }
    }
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug)]
struct Memo {
    stat: Stat,
    /// When the stat above was taken (before hashing began), ns since the epoch.
    recorded_ns: i128,
    #[serde(with = "hex_digest")]
    sha256: Digest,
}

impl Memo {
    fn trusted_for(&self, now: &Stat) -> bool {
        self.stat == *now
            && self.recorded_ns - self.stat.mtime_ns.max(self.stat.ctime_ns) >= RACY_WINDOW_NS
    }
}

/// Digests as hex strings in memo files.
mod hex_digest {
    use crate::hash::Digest;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &Digest, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&d.hex())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Digest, D::Error> {
        let s = String::deserialize(d)?;
        Digest::from_hex(&s).ok_or_else(|| serde::de::Error::custom("not a 64-digit hex sha256"))
    }
}

/// Digests of source files and folders, with a stat memo (see the module docs).
pub struct FileDigests {
    dir: Option<PathBuf>,
    mem: Mutex<HashMap<PathBuf, Memo>>,
}

impl FileDigests {
    /// Memoises under `memo_dir` (created on first write).
    pub fn new(memo_dir: impl Into<PathBuf>) -> FileDigests {
        FileDigests {
            dir: Some(memo_dir.into()),
            mem: Mutex::new(HashMap::new()),
        }
    }

    /// Memoises in memory only (for `--no-cache` runs).
    pub fn in_memory() -> FileDigests {
        FileDigests {
            dir: None,
            mem: Mutex::new(HashMap::new()),
        }
    }

    /// sha256 of the bytes of the file at `path` (symlinks followed).
    pub fn digest_file(&self, path: &Path) -> io::Result<Digest> {
        let canon = fs::canonicalize(path)?;
        let meta = fs::metadata(&canon)?;
        if !meta.is_file() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("`{}` is not a file", path.display()),
            ));
        }
        let stat = Stat::of(&meta);
        if let Some(m) = self.lookup(&canon) {
            if m.trusted_for(&stat) {
                return Ok(m.sha256);
            }
        }
        let recorded_ns = now_ns();
        let (sha256, after) = hash_file(&canon)?;
        // Record only if the file did not change while it was read.
        if after == stat {
            self.store(
                &canon,
                Memo {
                    stat,
                    recorded_ns,
                    sha256,
                },
            );
        }
        Ok(sha256)
    }

    /// Digest of a folder: every regular file below it (symlinks followed, cycles skipped),
    /// as sorted `/`-separated relative paths each with its file digest, hashed together.
    /// Renaming, adding or removing a file changes it; so does changing any byte.
    pub fn digest_dir(&self, path: &Path) -> io::Result<Digest> {
        let mut files = Vec::new();
        let mut seen = Vec::new();
        walk(
            &fs::canonicalize(path)?,
            &mut Vec::new(),
            &mut files,
            &mut seen,
        )?;
        files.sort_by(|a, b| a.0.cmp(&b.0));
        let mut h = KeyHasher::new("vistaflow.dir.v1");
        for (rel, abs) in &files {
            let d = self.digest_file(abs)?;
            h.field("path", rel).field("sha256", &d.0);
        }
        Ok(h.finish())
    }

    fn memo_path(&self, canon: &Path) -> Option<PathBuf> {
        let dir = self.dir.as_ref()?;
        let h = Digest::of(canon.as_os_str().as_bytes()).hex();
        Some(dir.join(&h[..2]).join(format!("{h}.json")))
    }

    fn lookup(&self, canon: &Path) -> Option<Memo> {
        if let Some(m) = self.mem.lock().ok()?.get(canon) {
            return Some(*m);
        }
        let path = self.memo_path(canon)?;
        let bytes = fs::read(&path).ok()?;
        let m: Memo = serde_json::from_slice(&bytes).ok()?;
        // Read from disk once per process: marks the memo used for `gc`.
        touch(&path);
        if let Ok(mut mem) = self.mem.lock() {
            mem.insert(canon.to_path_buf(), m);
        }
        Some(m)
    }

    fn store(&self, canon: &Path, memo: Memo) {
        if let Ok(mut mem) = self.mem.lock() {
            mem.insert(canon.to_path_buf(), memo);
        }
        // Best effort: a lost memo costs a rehash, never a wrong digest.
        if let Some(p) = self.memo_path(canon) {
            if let Some(parent) = p.parent() {
                let _ = fs::create_dir_all(parent);
            }
            if let Ok(json) = serde_json::to_vec(&memo) {
                let _ = write_atomic(&p, false, |f| io::Write::write_all(f, &json));
            }
        }
    }
}

/// Streams the file through sha256; returns the digest and the file's stat after reading.
fn hash_file(path: &Path) -> io::Result<(Digest, Stat)> {
    let mut f = File::open(path)?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; BUF];
    loop {
        match f.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => h.update(&buf[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    let after = Stat::of(&f.metadata()?);
    Ok((Digest(h.finalize().into()), after))
}

/// Collects (relative path bytes with `/`, absolute path) of regular files under `dir`.
fn walk(
    dir: &Path,
    rel: &mut Vec<u8>,
    out: &mut Vec<(Vec<u8>, PathBuf)>,
    seen: &mut Vec<(u64, u64)>,
) -> io::Result<()> {
    let m = fs::metadata(dir)?;
    if seen.contains(&(m.dev(), m.ino())) {
        return Ok(()); // a symlink loop
    }
    seen.push((m.dev(), m.ino()));
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let abs = entry.path();
        let m = fs::metadata(&abs)?; // follows symlinks
        let len = rel.len();
        if !rel.is_empty() {
            rel.push(b'/');
        }
        rel.extend_from_slice(entry.file_name().as_bytes());
        if m.is_dir() {
            walk(&abs, rel, out, seen)?;
        } else if m.is_file() {
            out.push((rel.clone(), abs));
        }
        rel.truncate(len);
    }
    seen.pop();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Writes a memo whose stat matches the file but whose digest is bogus, recorded `lag`
    /// ns after the file's last change.
    fn plant(fd: &FileDigests, path: &Path, lag: i128) -> Digest {
        let canon = fs::canonicalize(path).unwrap();
        let stat = Stat::of(&fs::metadata(&canon).unwrap());
        let bogus = Digest([7; 32]);
        let memo = Memo {
            stat,
            recorded_ns: stat.mtime_ns.max(stat.ctime_ns) + lag,
            sha256: bogus,
        };
        let p = fd.memo_path(&canon).unwrap();
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(&p, serde_json::to_vec(&memo).unwrap()).unwrap();
        bogus
    }

    #[test]
    fn memo_is_used_only_outside_the_racy_window() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("a.bin");
        fs::write(&f, b"hello").unwrap();
        let real = Digest::of(b"hello");

        // Recorded 0.5 s after the change: racy, ignored, file rehashed.
        let fd = FileDigests::new(dir.path().join("memo"));
        plant(&fd, &f, 500_000_000);
        assert_eq!(fd.digest_file(&f).unwrap(), real);

        // Recorded 3 s after: trusted (which is how we know the memo is really used).
        let fd = FileDigests::new(dir.path().join("memo"));
        let bogus = plant(&fd, &f, 3_000_000_000);
        assert_eq!(fd.digest_file(&f).unwrap(), bogus);
    }

    #[test]
    fn memo_files_hold_no_paths() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("Doe^John");
        fs::write(&f, b"x").unwrap();
        let fd = FileDigests::new(dir.path().join("memo"));
        fd.digest_file(&f).unwrap();
        for e in walk_all(&dir.path().join("memo")) {
            assert!(!e.to_string_lossy().contains("Doe"), "{e:?}");
            assert!(!fs::read_to_string(&e).unwrap().contains("Doe"));
        }
    }

    fn walk_all(p: &Path) -> Vec<PathBuf> {
        let mut out = Vec::new();
        for e in fs::read_dir(p).unwrap() {
            let e = e.unwrap().path();
            if e.is_dir() {
                out.extend(walk_all(&e));
            } else {
                out.push(e);
            }
        }
        out
    }

    #[test]
    fn dir_digest_sees_names_and_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().join("series");
        fs::create_dir_all(d.join("sub")).unwrap();
        fs::write(d.join("1.dcm"), b"one").unwrap();
        fs::write(d.join("sub/2.dcm"), b"two").unwrap();
        let fd = FileDigests::in_memory();
        let a = fd.digest_dir(&d).unwrap();
        assert_eq!(a, fd.digest_dir(&d).unwrap());
        fs::rename(d.join("1.dcm"), d.join("3.dcm")).unwrap();
        let b = fd.digest_dir(&d).unwrap();
        assert_ne!(a, b);
        fs::write(d.join("sub/2.dcm"), b"TWO").unwrap();
        assert_ne!(b, fd.digest_dir(&d).unwrap());
        std::os::unix::fs::symlink(&d, d.join("sub/loop")).unwrap();
        fd.digest_dir(&d).unwrap();
    }
}
