//! A tensor's bytes to and from byte streams: reading (and gunzipping) straight into a new
//! tensor's memory, and writing a tensor out, in chunks with progress and cancellation.

use super::atomic::write_error;
use super::messages::io_msg;
use crate::node::{Ctx, NodeError};
use flate2::write::GzEncoder;
use flate2::Compression;
use std::io::{self, Read, Write};
use std::path::Path;
use tch::{Device, Kind, Tensor};

/// Reports progress in MB for files over this size.
pub(crate) const PROGRESS_MIN_BYTES: usize = 32 << 20;
/// Bytes read or written between progress reports and cancellation checks.
pub(crate) const CHUNK_BYTES: usize = 8 << 20;
/// gzip level 2. zlib-rs's level 1 is a "quick" mode (static Huffman codes only): on a
/// 512x512x300 int16 CT it wrote 132 MB in 2.8 s, level 2 99 MB in 4.1 s (the size of
/// nibabel's default, zlib level 1, which took 5.3 s), level 6 97 MB in 5.9 s.
const GZIP_LEVEL: u32 = 2;

/// How a format's messages name gzip trouble.
pub(crate) struct GzipWords {
    /// What ends early: `the gzip {noun} ends early ...`.
    pub noun: &'static str,
    /// After `the file is corrupt` in the message for invalid gzip data.
    pub corrupt_hint: &'static str,
}

/// The byte source, counting the (decompressed) bytes read for error messages.
pub(crate) struct Stream {
    inner: Box<dyn Read>,
    gz: bool,
    pos: u64,
    words: GzipWords,
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.pos += n as u64;
        Ok(n)
    }
}

/// Why [`Stream::fill_chunks`] stopped.
pub(crate) enum ReadError {
    /// A read error, in words ([`Stream::describe`]).
    Io(String),
    Cancelled,
}

impl ReadError {
    /// As a node error: `err` turns the words into a file error.
    pub(crate) fn into_node(self, err: impl FnOnce(String) -> NodeError) -> NodeError {
        match self {
            ReadError::Io(msg) => err(msg),
            ReadError::Cancelled => NodeError::Cancelled,
        }
    }
}

impl Stream {
    /// `inner` is gzip-decompressed data when `gz` (for messages only).
    pub(crate) fn new(inner: Box<dyn Read>, gz: bool, words: GzipWords) -> Stream {
        Stream {
            inner,
            gz,
            pos: 0,
            words,
        }
    }

    /// The (decompressed) bytes read so far.
    pub(crate) fn pos(&self) -> u64 {
        self.pos
    }

    /// Reads until `buf` is full or the stream ends; the count read.
    pub(crate) fn fill(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let mut n = 0;
        while n < buf.len() {
            match self.read(&mut buf[n..]) {
                Ok(0) => break,
                Ok(k) => n += k,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(n)
    }

    /// Fills `dst` in chunks, checking for cancellation before each and reporting progress
    /// after each as `done_before` plus the bytes read so far, out of `total` (reported only
    /// when `total` is at least [`PROGRESS_MIN_BYTES`]). The count read: less than
    /// `dst.len()` when the stream ended early.
    pub(crate) fn fill_chunks(
        &mut self,
        dst: &mut [u8],
        ctx: &Ctx,
        done_before: usize,
        total: usize,
    ) -> Result<usize, ReadError> {
        let report = total >= PROGRESS_MIN_BYTES;
        let mut done = 0;
        for chunk in dst.chunks_mut(CHUNK_BYTES) {
            if ctx.cancel.is_cancelled() {
                return Err(ReadError::Cancelled);
            }
            let n = self
                .fill(chunk)
                .map_err(|e| ReadError::Io(self.describe(&e)))?;
            done += n;
            if n < chunk.len() {
                return Ok(done);
            }
            if report {
                ctx.progress(
                    ((done_before + done) >> 20) as u64,
                    (total >> 20) as u64,
                    "MB",
                );
            }
        }
        Ok(done)
    }

    /// A read error in words: gzip trouble is named as such.
    pub(crate) fn describe(&self, e: &io::Error) -> String {
        if !self.gz {
            return format!("cannot read: {}", io_msg(e));
        }
        if e.kind() == io::ErrorKind::UnexpectedEof {
            format!(
                "the gzip {} ends early (after {} decompressed bytes): the file is truncated \
                 (an interrupted download or copy?)",
                self.words.noun, self.pos
            )
        } else {
            format!(
                "not a valid gzip stream ({e}) after {} decompressed bytes: the file is \
                 corrupt{}; fetch or export it again",
                self.pos, self.words.corrupt_hint
            )
        }
    }
}

/// A new, uninitialised CPU tensor to read raw bytes into.
pub(crate) struct RawTensor(Tensor);

impl RawTensor {
    /// An empty tensor of `shape` and `kind` on the CPU; `nbytes` (its size) is for the
    /// message when it cannot be allocated.
    pub(crate) fn alloc(shape: &[i64], kind: Kind, nbytes: u64) -> Result<RawTensor, String> {
        let t = Tensor::f_empty(shape, (kind, Device::Cpu))
            .map_err(|e| format!("cannot allocate {} MB for the voxels: {e}", nbytes >> 20))?;
        debug_assert_eq!((t.numel() * kind.elt_size_in_bytes()) as u64, nbytes);
        Ok(RawTensor(t))
    }

    /// The tensor's memory, numel * element size bytes.
    pub(crate) fn bytes_mut(&mut self) -> &mut [u8] {
        let len = self.0.numel() * self.0.kind().elt_size_in_bytes();
        if len == 0 {
            return &mut [];
        }
        // SAFETY: the tensor was allocated by `alloc` on the CPU by `empty` and never shared
        // (this type hands it out only by value, in `into_tensor`), so it is contiguous, owns
        // exactly numel * element size = `len` bytes starting at `data_ptr`, and the `&mut
        // self` borrow keeps any other access out while the slice lives. Any byte pattern is
        // a valid value of the kinds used here (integers and IEEE floats).
        unsafe { std::slice::from_raw_parts_mut(self.0.data_ptr() as *mut u8, len) }
    }

    pub(crate) fn into_tensor(self) -> Tensor {
        self.0
    }
}

/// Reverses the byte order of each `size`-byte sample in `buf` (sizes 2, 4, 8; others are
/// left alone).
pub(crate) fn swap_bytes(buf: &mut [u8], size: usize) {
    match size {
        2 => buf.chunks_exact_mut(2).for_each(|c| c.swap(0, 1)),
        4 => buf.chunks_exact_mut(4).for_each(|c| {
            let v = u32::from_ne_bytes([c[0], c[1], c[2], c[3]]).swap_bytes();
            c.copy_from_slice(&v.to_ne_bytes())
        }),
        8 => buf.chunks_exact_mut(8).for_each(|c| c.reverse()),
        _ => {}
    }
}

/// Runs `body` on `w` through a gzip encoder (level 2) when `gz`, else on `w` itself;
/// write errors name `path`.
pub(crate) fn gzip_or_raw(
    w: &mut dyn Write,
    gz: bool,
    path: &Path,
    body: impl FnOnce(&mut dyn Write) -> Result<(), NodeError>,
) -> Result<(), NodeError> {
    if gz {
        let mut enc = GzEncoder::new(w, Compression::new(GZIP_LEVEL));
        body(&mut enc)?;
        enc.finish().map_err(|e| write_error(path, e))?;
        Ok(())
    } else {
        body(w)
    }
}

/// Writes the bytes of the contiguous tensor `data` in chunks, checking for cancellation
/// before each and reporting progress (for [`PROGRESS_MIN_BYTES`] or more) after each; write
/// errors name `path`.
pub(crate) fn write_tensor(
    w: &mut dyn Write,
    data: &Tensor,
    ctx: &Ctx,
    path: &Path,
) -> Result<(), NodeError> {
    let flat = data.f_reshape([-1])?;
    let numel = flat.size()[0] as usize;
    let esize = flat.kind().elt_size_in_bytes();
    let total = numel * esize;
    let per_chunk = (CHUNK_BYTES / esize).max(1);
    let mut buf = vec![0u8; per_chunk.min(numel) * esize];
    let mut s = 0;
    while s < numel {
        ctx.check_cancelled()?;
        let n = per_chunk.min(numel - s);
        flat.f_narrow(0, s as i64, n as i64)?
            .f_copy_data_u8(&mut buf[..n * esize], n)?;
        w.write_all(&buf[..n * esize])
            .map_err(|e| write_error(path, e))?;
        s += n;
        if total >= PROGRESS_MIN_BYTES {
            ctx.progress(((s * esize) >> 20) as u64, (total >> 20) as u64, "MB");
        }
    }
    Ok(())
}
