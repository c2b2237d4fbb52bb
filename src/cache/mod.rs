//! The content-addressed cache: node outputs, sink records and file digests, on disk.
//!
//! The engine computes every key before anything runs (design.md, "Content-hash cache");
//! this module only stores and finds things by those digests. It knows values only through
//! [`vistaflow_nodes::Value::encode`]/[`decode`](vistaflow_nodes::Value::decode).
//!
//! # Layout of `<root>`
//! ```text
//! lock                                 flock: shared by every open Store, exclusive for gc/verify
//! CACHEDIR.TAG                         tells backup tools to skip the directory
//! objects/<xx>/<id>.safetensors        an output's tensors (a plain safetensors file)
//! objects/<xx>/<id>.json               its sidecar: key, kind, node, port, port type, tensors'
//!                                      dtype/shape, the value's meta (geometry, classes;
//!                                      a DICOM identity only sealed, see [`sealed`]),
//!                                      byte size, sha256 of the data file, created time.
//!                                      Written last: it commits the entry. Its mtime is
//!                                      "last used" for gc.
//! objects/<xx>/<id>.lock               present only while an entry is written or removed
//! objects/<xx>/.<name>.<pid>.<n>.tmp   a file being written (renamed into place when done)
//! records/<xx>/<key>.json              what a sink node run wrote ({format, key, record})
//! file-digests/<xx>/<H(path)>.json     stat memo of one source file's sha256
//! ```
//! `<id>` is the 64-hex output identity H(key, port), `<xx>` its first two digits. Paths hold
//! only hex digests: no input file name, node id or patient identifier ever appears in one.
//!
//! # Guarantees
//! * Crash safety: every file is written to a temp file, fsynced, renamed, and the directory
//!   fsynced. Data first, sidecar last; data without a sidecar is garbage that `gc` removes.
//! * Never a wrong answer: [`Store::get`] checks size, header and sha256 of every byte, and
//!   that the value decodes; anything wrong removes the entry and reads as
//!   [`Lookup::Corrupt`] (then [`Lookup::Miss`]).
//! * Concurrency: entries are immutable once committed. Writers of the same id are
//!   serialised by a per-entry lock and the first one's entry is kept. Runs hold the cache
//!   lock shared; `gc`/`verify` need it exclusive and fail fast with [`CacheError::Busy`]
//!   (naming the pids) while another process has the cache open; see [`lock`].

mod digests;
mod error;
mod format;
mod fsutil;
pub mod lock;
mod maint;
mod recent;
mod sealed;
mod store;

pub use digests::{FileDigests, RACY_WINDOW_NS};
pub use error::CacheError;
pub use maint::{EntrySummary, GcReport, VerifyReport, STALE_TEMP};
pub use store::{ComputeLock, EntryInfo, Lookup, Store, OPEN_WAIT};
