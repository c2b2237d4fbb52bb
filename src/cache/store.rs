//! [`Store`]: output entries and sink records, addressed by digests.

use super::digests::FileDigests;
use super::format::{self, Sidecar, FORMAT};
use super::fsutil::{sync_dir, touch, write_atomic, EntryLock};
use super::lock::RootLock;
use super::recent::Recent;
use super::sealed;
use super::CacheError;
use crate::hash::Digest;
use std::fs::{self, File};
use std::io::{self, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{OnceLock, RwLock, RwLockReadGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use vistaflow_nodes::{Encoded, PortType, Value};

/// How long [`Store::open`] waits for a running `gc`/`verify` to finish.
pub const OPEN_WAIT: Duration = Duration::from_secs(600);

/// What is recorded about an output besides its value (all informative except `key`).
#[derive(Clone, Debug)]
pub struct EntryInfo {
    /// Key of the node run that produced the output.
    pub key: Digest,
    /// Node kind, e.g. `resample`.
    pub kind: String,
    /// Node id in the workflow (as written in the YAML).
    pub node: String,
    /// Output port name.
    pub port: String,
}

/// The answer of [`Store::get`].
#[derive(Debug)]
pub enum Lookup {
    Hit(Value),
    Miss,
    /// The entry was unusable and has been removed; the string says why (for the log).
    Corrupt(String),
}

/// A content-addressed cache directory (layout in the [module docs](super)).
///
/// Holds a shared lock on `<root>/lock` until dropped. Methods take `&self`; a `Store` is
/// `Sync`, share one per process (e.g. in an `Arc`).
/// Held while this process computes a node (see [`Store::try_compute_lock`]).
pub struct ComputeLock {
    _held: EntryLock,
}

pub struct Store {
    root: PathBuf,
    lock: RootLock,
    /// put/get/records hold it shared; gc/verify exclusive, so maintenance never runs under
    /// a writer of this same process (the flock cannot tell our own threads apart).
    pub(crate) local: RwLock<()>,
    digests: FileDigests,
    /// Values kept in memory, when [`Store::keep_recent`] asked for it.
    recent: OnceLock<Recent>,
}

impl Store {
    /// Opens (creating if needed) the cache at `root`, waiting up to [`OPEN_WAIT`] if a
    /// `gc`/`verify` is running.
    pub fn open(root: &Path) -> Result<Store, CacheError> {
        Store::open_timeout(root, OPEN_WAIT)
    }

    /// [`Store::open`] with a chosen wait for the shared lock.
    pub fn open_timeout(root: &Path, wait: Duration) -> Result<Store, CacheError> {
        for sub in ["objects", "records", "file-digests"] {
            let dir = root.join(sub);
            fs::create_dir_all(&dir)
                .map_err(|e| CacheError::io("create the cache directory", &dir, e))?;
        }
        let tag = root.join("CACHEDIR.TAG");
        if !tag.exists() {
            let text = "Signature: 8a477f597d28d172789f06886806bc55\n\
                        # This is vistaflow's cache (see https://bford.info/cachedir/).\n";
            write_atomic(&tag, false, |f| f.write_all(text.as_bytes()))
                .map_err(|e| CacheError::io("write", &tag, e))?;
        }
        let lock = RootLock::shared(&root.join("lock"), root, wait)?;
        Ok(Store {
            root: root.to_path_buf(),
            lock,
            local: RwLock::new(()),
            digests: FileDigests::new(root.join("file-digests")),
            recent: OnceLock::new(),
        })
    }

    /// From now on keeps up to `limit` bytes of the values read and written in memory, so
    /// that reading one again skips its file (see [`Recent`]). Later calls change nothing.
    pub fn keep_recent(&self, limit: u64) {
        let _ = self.recent.set(Recent::new(limit));
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// File digests memoised in this cache.
    pub fn file_digests(&self) -> &FileDigests {
        &self.digests
    }

    pub(crate) fn lock(&self) -> &RootLock {
        &self.lock
    }

    pub(crate) fn objects(&self) -> PathBuf {
        self.root.join("objects")
    }

    fn shard(&self, base: &str, d: &Digest) -> PathBuf {
        self.root.join(base).join(&d.hex()[..2])
    }

    pub(crate) fn data_path(&self, id: &Digest) -> PathBuf {
        self.shard("objects", id).join(format!("{id}.safetensors"))
    }

    pub(crate) fn sidecar_path(&self, id: &Digest) -> PathBuf {
        self.shard("objects", id).join(format!("{id}.json"))
    }

    fn entry_lock_path(&self, id: &Digest) -> PathBuf {
        self.shard("objects", id).join(format!("{id}.lock"))
    }

    /// Takes the lock that says "this process is computing the node with key `key`", or
    /// `None` when another process (or run) holds it: a run that finds a node being computed
    /// elsewhere waits for it and takes its outputs from the cache instead of computing them
    /// again. Released on drop.
    pub fn try_compute_lock(&self, key: &Digest) -> Result<Option<ComputeLock>, CacheError> {
        let dir = self.root.join("computing");
        fs::create_dir_all(&dir).map_err(|e| CacheError::io("create", &dir, e))?;
        let path = dir.join(format!("{key}.lock"));
        EntryLock::try_acquire(&path)
            .map(|l| l.map(|held| ComputeLock { _held: held }))
            .map_err(|e| CacheError::io("lock", &path, e))
    }

    fn shared(&self) -> RwLockReadGuard<'_, ()> {
        self.local.read().unwrap_or_else(|p| p.into_inner())
    }

    /// True when a committed entry (its sidecar) exists. One `stat`, no hashing: for
    /// planning. A later [`Store::get`] may still find it corrupt.
    pub fn contains(&self, id: &Digest) -> bool {
        self.sidecar_path(id).is_file()
    }

    /// Stores `value` as output `id`. Returns the bytes written (data + sidecar), or 0 when
    /// a committed entry already exists (it is kept: entries are immutable).
    ///
    /// The data file is written to a temp file, fsynced and renamed, then the sidecar the
    /// same way; the directory is fsynced after each rename. The sidecar commits the entry:
    /// a crash at any point leaves at worst garbage for `gc`, never a half entry. Concurrent
    /// writers of one id are serialised by a per-entry lock file; the second finds the entry
    /// committed and returns 0.
    pub fn put(&self, id: &Digest, info: &EntryInfo, value: &Value) -> Result<u64, CacheError> {
        let written = self.put_file(id, info, value)?;
        if let Some(r) = self.recent.get() {
            r.put(id, value);
        }
        Ok(written)
    }

    fn put_file(&self, id: &Digest, info: &EntryInfo, value: &Value) -> Result<u64, CacheError> {
        let _g = self.shared();
        if self.contains(id) {
            return Ok(0);
        }
        let Encoded { tensors, mut meta } = value.encode();
        let unsupported = |msg| CacheError::Unsupported {
            node: info.node.clone(),
            port: info.port.clone(),
            msg,
        };
        sealed::seal(&mut meta).map_err(|e| unsupported(e.to_string()))?;
        let prepared = format::prepare(tensors).map_err(unsupported)?;

        let dir = self.shard("objects", id);
        fs::create_dir_all(&dir).map_err(|e| CacheError::io("create", &dir, e))?;
        let lock_path = self.entry_lock_path(id);
        let _entry =
            EntryLock::acquire(&lock_path).map_err(|e| CacheError::io("lock", &lock_path, e))?;
        if self.contains(id) {
            return Ok(0);
        }

        let data = self.data_path(id);
        // fsync inside `fill` so that it overlaps the hashing thread.
        let sha = write_atomic(&data, false, |f| prepared.write_to(f, |f| f.sync_all()))
            .map_err(|e| CacheError::io("write", &data, e))?;
        sync_dir(&dir).map_err(|e| CacheError::io("sync", &dir, e))?;

        let sidecar = Sidecar {
            format: FORMAT,
            id: id.hex(),
            key: info.key.hex(),
            kind: info.kind.clone(),
            node: info.node.clone(),
            port: info.port.clone(),
            port_type: value.port_type().name().to_string(),
            tensors: prepared.descs.clone(),
            meta,
            bytes: prepared.bytes,
            sha256: sha.hex(),
            created_unix_ms: unix_ms(SystemTime::now()),
        };
        let json = serde_json::to_vec_pretty(&sidecar).map_err(|e| CacheError::Unsupported {
            node: info.node.clone(),
            port: info.port.clone(),
            msg: format!("metadata is not JSON: {e}"),
        })?;
        let sc = self.sidecar_path(id);
        if let Err(e) = write_atomic(&sc, true, |f| f.write_all(&json)) {
            let _ = fs::remove_file(&data);
            return Err(CacheError::io("write", &sc, e));
        }
        sync_dir(&dir).map_err(|e| CacheError::io("sync", &dir, e))?;
        Ok(prepared.bytes + json.len() as u64)
    }

    /// Loads output `id` as a value of type `ty`.
    ///
    /// Every byte is checked against the sidecar's sha256 and size, the header against the
    /// sidecar's tensor list, and the value must decode as `ty`. Anything wrong (truncated,
    /// flipped, missing data, unparsable sidecar, wrong type) removes the entry and answers
    /// [`Lookup::Corrupt`]; the next `get` is a [`Lookup::Miss`]. A hit refreshes the
    /// sidecar's mtime, which `gc` uses as "last used". Errors are only for I/O failures the
    /// user must see (e.g. permission denied).
    ///
    /// With [`Store::keep_recent`], a value kept in memory comes from there.
    pub fn get(&self, id: &Digest, ty: PortType) -> Result<Lookup, CacheError> {
        let Some(r) = self.recent.get() else {
            return self.get_file(id, ty);
        };
        if let Some(v) = r.get(id, ty) {
            return Ok(Lookup::Hit(v));
        }
        let got = self.get_file(id, ty)?;
        if let Lookup::Hit(v) = &got {
            r.put(id, v);
        }
        Ok(got)
    }

    fn get_file(&self, id: &Digest, ty: PortType) -> Result<Lookup, CacheError> {
        let _g = self.shared();
        let sc_path = self.sidecar_path(id);
        let (sidecar, sc_ino) = match read_sidecar(&sc_path) {
            Ok(Some(x)) => x,
            Ok(None) => return Ok(Lookup::Miss),
            Err(Ok(e)) => return Err(CacheError::io("read", &sc_path, e)),
            Err(Err(why)) => return Ok(self.discard(id, None, why)),
        };
        if sidecar.format > FORMAT {
            // Written by a newer vistaflow: not ours to judge or remove.
            return Ok(Lookup::Miss);
        }
        match check_sidecar(&sidecar, id, ty) {
            Ok(()) => {}
            Err(why) => return Ok(self.discard(id, Some(sc_ino), why)),
        }
        let data_path = self.data_path(id);
        let mut file = match File::open(&data_path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Ok(self.discard(id, Some(sc_ino), "data file is missing".into()))
            }
            Err(e) => return Err(CacheError::io("open", &data_path, e)),
        };
        let tensors = match format::read_data(&mut file, &sidecar, true) {
            Ok(t) => t,
            Err(Ok(e)) => return Err(CacheError::io("read", &data_path, e)),
            Err(Err(why)) => return Ok(self.discard(id, Some(sc_ino), why)),
        };
        let mut meta = sidecar.meta;
        if sealed::unseal(&mut meta).is_err() {
            // Sealed under another user's key (a shared cache): computed again here.
            return Ok(Lookup::Miss);
        }
        match Value::decode(ty, Encoded { tensors, meta }) {
            Ok(v) => {
                touch(&sc_path);
                Ok(Lookup::Hit(v))
            }
            Err(e) => Ok(self.discard(id, Some(sc_ino), format!("cannot rebuild the value: {e}"))),
        }
    }

    /// Removes entry `id` (sidecar first, so it stops being committed, then data) and
    /// answers `Corrupt(why)`. When `seen_ino` is given, removes only if the sidecar is still
    /// the one that was judged (another process may have rewritten it meanwhile).
    fn discard(&self, id: &Digest, seen_ino: Option<u64>, why: String) -> Lookup {
        let lock_path = self.entry_lock_path(id);
        let _entry = EntryLock::acquire(&lock_path).ok();
        let sc = self.sidecar_path(id);
        let same = match (seen_ino, fs::metadata(&sc)) {
            (Some(ino), Ok(m)) => m.ino() == ino,
            _ => true,
        };
        if same {
            let _ = fs::remove_file(&sc);
            let _ = fs::remove_file(self.data_path(id));
            if let Some(dir) = sc.parent() {
                let _ = sync_dir(dir);
            }
        }
        Lookup::Corrupt(why)
    }

    fn record_path(&self, key: &Digest) -> PathBuf {
        self.shard("records", key).join(format!("{key}.json"))
    }

    /// Stores the record of sink node run `key` (e.g. paths and digests of written files),
    /// replacing any previous one atomically and durably.
    pub fn put_record(&self, key: &Digest, record: &serde_json::Value) -> Result<(), CacheError> {
        let _g = self.shared();
        let path = self.record_path(key);
        let dir = self.shard("records", key);
        fs::create_dir_all(&dir).map_err(|e| CacheError::io("create", &dir, e))?;
        let doc = serde_json::json!({ "format": FORMAT, "key": key.hex(), "record": record });
        let bytes = serde_json::to_vec_pretty(&doc)
            .map_err(|e| CacheError::io("write", &path, e.into()))?;
        write_atomic(&path, true, |f| f.write_all(&bytes))
            .map_err(|e| CacheError::io("write", &path, e))?;
        sync_dir(&dir).map_err(|e| CacheError::io("sync", &dir, e))
    }

    /// The record of sink node run `key`, if one was stored. An unreadable record is removed
    /// and reads as absent.
    pub fn get_record(&self, key: &Digest) -> Option<serde_json::Value> {
        let _g = self.shared();
        let path = self.record_path(key);
        let bytes = fs::read(&path).ok()?;
        let parsed = serde_json::from_slice::<serde_json::Value>(&bytes)
            .ok()
            .and_then(|mut doc| {
                (doc.get("key")?.as_str()? == key.hex()
                    && doc.get("format")?.as_u64()? == FORMAT as u64)
                    .then(|| doc.get_mut("record").map(serde_json::Value::take))
                    .flatten()
            });
        match parsed {
            // Used now: `gc` keeps records as recently used as the entries it keeps.
            Some(_) => touch(&path),
            None => {
                let _ = fs::remove_file(&path);
            }
        }
        parsed
    }
}

/// `Ok(None)`: no sidecar. `Err(Ok)`: I/O error to report. `Err(Err)`: unusable sidecar.
pub(crate) fn read_sidecar(
    path: &Path,
) -> Result<Option<(Sidecar, u64)>, Result<io::Error, String>> {
    let mut f = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Ok(e)),
    };
    let ino = f.metadata().map_err(Ok)?.ino();
    let mut bytes = Vec::new();
    io::Read::read_to_end(&mut f, &mut bytes).map_err(Ok)?;
    let sc: Sidecar =
        serde_json::from_slice(&bytes).map_err(|e| Err(format!("sidecar is not valid: {e}")))?;
    Ok(Some((sc, ino)))
}

fn check_sidecar(sc: &Sidecar, id: &Digest, ty: PortType) -> Result<(), String> {
    if sc.id != id.hex() {
        return Err(format!(
            "sidecar belongs to entry {}",
            sc.id.get(..12).unwrap_or(&sc.id)
        ));
    }
    if sc.port_type != ty.name() {
        return Err(format!(
            "entry holds a {} value, {} was asked for",
            sc.port_type,
            ty.name()
        ));
    }
    Ok(())
}

pub(crate) fn unix_ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}
