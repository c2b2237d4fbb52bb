//! The on-disk form of one entry: a safetensors data file (readable by any safetensors
//! loader) and a JSON sidecar that commits it.
//!
//! The data file is laid out byte for byte as `safetensors::serialize` would lay it out (the
//! header is built with the crate's own `Metadata`/`TensorInfo`), but tensor bytes are
//! streamed straight from the tensors' memory into the file while being hashed, and read
//! straight from the file into freshly allocated tensors: no intermediate buffer of the
//! value's size is made either way.

use crate::hash::Digest;
use safetensors::tensor::{Metadata, TensorInfo};
use safetensors::Dtype;
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::AsRawFd;
use tch::{Device, Kind, Tensor};

/// Version of the sidecar (and entry) format. Entries of a newer format are left alone.
pub(crate) const FORMAT: u32 = 1;

/// Tensor bytes are hashed and moved in chunks of this size (fits in L2/L3).
pub(crate) const CHUNK: usize = 1 << 20;

/// Largest header the reader accepts (safetensors' own limit is 100 MB; ours are tiny).
const MAX_HEADER: u64 = 16 << 20;

#[cfg(target_endian = "big")]
compile_error!("the cache stores tensors in little-endian order (safetensors); big-endian hosts are not supported");

/// The JSON sidecar: describes and commits one entry.
#[derive(Serialize, Deserialize, Debug, Clone)]
pub(crate) struct Sidecar {
    pub format: u32,
    /// Output identity (hex): H(key, port).
    pub id: String,
    /// Key of the node run that produced it (hex).
    pub key: String,
    /// Node kind, e.g. `resample`.
    pub kind: String,
    /// Node id in the workflow that wrote it (informative only).
    pub node: String,
    pub port: String,
    /// `image` or `labels`.
    pub port_type: String,
    pub tensors: Vec<TensorDesc>,
    /// The value's metadata ([`vistaflow_nodes::Encoded::meta`]): geometry, class table, ...
    pub meta: serde_json::Value,
    /// Size of the data file in bytes.
    pub bytes: u64,
    /// sha256 of the whole data file (hex).
    pub sha256: String,
    pub created_unix_ms: u64,
}

/// One tensor of an entry, in file order.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub(crate) struct TensorDesc {
    pub name: String,
    /// safetensors dtype name: `F32`, `I16`, ...
    pub dtype: String,
    pub shape: Vec<u64>,
}

pub(crate) fn dtype_of(kind: Kind) -> Option<Dtype> {
    Some(match kind {
        Kind::Bool => Dtype::BOOL,
        Kind::Uint8 => Dtype::U8,
        Kind::Int8 => Dtype::I8,
        Kind::Int16 => Dtype::I16,
        Kind::Int => Dtype::I32,
        Kind::Int64 => Dtype::I64,
        Kind::Half => Dtype::F16,
        Kind::BFloat16 => Dtype::BF16,
        Kind::Float => Dtype::F32,
        Kind::Double => Dtype::F64,
        _ => return None,
    })
}

fn kind_of(dtype: Dtype) -> Option<Kind> {
    Some(match dtype {
        Dtype::BOOL => Kind::Bool,
        Dtype::U8 => Kind::Uint8,
        Dtype::I8 => Kind::Int8,
        Dtype::I16 => Kind::Int16,
        Dtype::I32 => Kind::Int,
        Dtype::I64 => Kind::Int64,
        Dtype::F16 => Kind::Half,
        Dtype::BF16 => Kind::BFloat16,
        Dtype::F32 => Kind::Float,
        Dtype::F64 => Kind::Double,
        _ => return None,
    })
}

fn dtype_name(d: Dtype) -> String {
    match serde_json::to_value(d) {
        Ok(serde_json::Value::String(s)) => s,
        _ => format!("{d:?}"),
    }
}

/// A tensor's bytes, borrowed from its memory. The tensor must be a dense CPU tensor.
fn bytes_of(t: &Tensor) -> &[u8] {
    let n = t.numel() * t.kind().elt_size_in_bytes();
    if n == 0 {
        return &[];
    }
    // SAFETY: `prepare` checked the tensor is a contiguous CPU tensor, so its `n` bytes start
    // at `data_ptr` and live as long as `t`; nobody mutates tensors held in values.
    unsafe { std::slice::from_raw_parts(t.data_ptr() as *const u8, n) }
}

/// The tensors of a value, in file order, ready to write.
pub(crate) struct Prepared {
    /// 8-byte length + padded JSON header, exactly as safetensors writes it.
    header: Vec<u8>,
    tensors: Vec<Tensor>,
    pub descs: Vec<TensorDesc>,
    /// Size of the data file.
    pub bytes: u64,
}

/// Orders the tensors as safetensors does (by descending dtype alignment, then name) and
/// builds the header. Non-contiguous or non-CPU tensors are made dense CPU copies first.
pub(crate) fn prepare(tensors: Vec<(String, Tensor)>) -> Result<Prepared, String> {
    let mut items = Vec::with_capacity(tensors.len());
    for (name, t) in tensors {
        let dtype = dtype_of(t.kind()).ok_or_else(|| {
            format!(
                "tensor `{name}` has dtype {:?}, which the cache cannot store",
                t.kind()
            )
        })?;
        let t = if t.device() != Device::Cpu || !t.is_contiguous() || t.is_sparse() {
            t.to_device(Device::Cpu).contiguous()
        } else {
            t
        };
        items.push((name, dtype, t));
    }
    items.sort_by(|(ln, ld, _), (rn, rd, _)| rd.cmp(ld).then(ln.cmp(rn)));

    let mut infos = Vec::with_capacity(items.len());
    let mut descs = Vec::with_capacity(items.len());
    let mut out = Vec::with_capacity(items.len());
    let mut offset = 0usize;
    for (name, dtype, t) in items {
        let shape: Vec<usize> = t.size().iter().map(|&s| s as usize).collect();
        let n = t.numel() * t.kind().elt_size_in_bytes();
        infos.push((
            name.clone(),
            TensorInfo {
                dtype,
                shape: shape.clone(),
                data_offsets: (offset, offset + n),
            },
        ));
        descs.push(TensorDesc {
            name,
            dtype: dtype_name(dtype),
            shape: shape.iter().map(|&s| s as u64).collect(),
        });
        offset += n;
        out.push(t);
    }
    let metadata = Metadata::new(None, infos).map_err(|e| format!("safetensors header: {e}"))?;
    let mut json = serde_json::to_string(&metadata)
        .map_err(|e| format!("safetensors header: {e}"))?
        .into_bytes();
    json.resize(json.len().next_multiple_of(8), b' ');
    let mut header = Vec::with_capacity(8 + json.len());
    header.extend_from_slice(&(json.len() as u64).to_le_bytes());
    header.extend_from_slice(&json);
    let bytes = (header.len() + offset) as u64;
    Ok(Prepared {
        header,
        tensors: out,
        descs,
        bytes,
    })
}

impl Prepared {
    /// Writes the data file into `w` while a second thread hashes the same tensor memory;
    /// `finish` (e.g. fsync) runs before the hash is awaited, so it overlaps too. Returns
    /// the sha256 of what was written.
    pub(crate) fn write_to<W: Write>(
        &self,
        w: &mut W,
        finish: impl FnOnce(&mut W) -> io::Result<()>,
    ) -> io::Result<Digest> {
        let parts: Vec<&[u8]> = std::iter::once(&self.header[..])
            .chain(self.tensors.iter().map(bytes_of))
            .collect();
        std::thread::scope(|s| {
            let hasher = s.spawn(|| {
                let mut h = Sha256::new();
                for part in &parts {
                    for chunk in part.chunks(CHUNK) {
                        h.update(chunk);
                    }
                }
                Digest(h.finalize().into())
            });
            let written = (|| {
                for part in &parts {
                    w.write_all(part)?;
                }
                finish(w)
            })();
            let sha = hasher.join().expect("hash thread panicked");
            written.map(|()| sha)
        })
    }
}

/// Why an entry's data file is unusable (becomes `Lookup::Corrupt`).
pub(crate) type Bad = String;

/// Reads and checks a data file against its sidecar. With `load`, returns the tensors (read
/// straight into their memory); without, only checks (for `verify`).
///
/// Checks, in order: file size, header length, header JSON, that the header's tensors are
/// exactly the sidecar's (names, dtypes, shapes, contiguous offsets covering the file), and
/// the sha256 of every byte. I/O errors other than "not found"/"truncated" are returned as
/// `Err(Ok(io::Error))` so the caller can report them rather than discard the entry.
pub(crate) fn read_data(
    file: &mut File,
    sidecar: &Sidecar,
    load: bool,
) -> Result<Vec<(String, Tensor)>, Result<io::Error, Bad>> {
    let size = file.metadata().map_err(Ok)?.len();
    if size != sidecar.bytes {
        return Err(Err(format!(
            "data file is {size} bytes, sidecar says {}",
            sidecar.bytes
        )));
    }
    let mut h = Sha256::new();
    let mut len8 = [0u8; 8];
    read_exact(file, &mut len8)?;
    h.update(len8);
    let n = u64::from_le_bytes(len8);
    if n > MAX_HEADER || 8 + n > size {
        return Err(Err(format!(
            "header length {n} does not fit a {size}-byte file"
        )));
    }
    let mut json = vec![0u8; n as usize];
    read_exact(file, &mut json)?;
    h.update(&json);
    let header: BTreeMap<String, serde_json::Value> =
        serde_json::from_slice(&json).map_err(|e| Err(format!("header is not JSON: {e}")))?;
    let mut infos = Vec::new();
    for (name, v) in header {
        if name == "__metadata__" {
            continue;
        }
        let info: TensorInfo =
            serde_json::from_value(v).map_err(|e| Err(format!("header entry `{name}`: {e}")))?;
        infos.push((name, info));
    }
    infos.sort_by_key(|(_, i)| i.data_offsets);
    let found: Vec<TensorDesc> = infos
        .iter()
        .map(|(name, i)| TensorDesc {
            name: name.clone(),
            dtype: dtype_name(i.dtype),
            shape: i.shape.iter().map(|&s| s as u64).collect(),
        })
        .collect();
    if found != sidecar.tensors {
        return Err(Err(format!(
            "header lists {found:?}, sidecar lists {:?}",
            sidecar.tensors
        )));
    }
    let mut expect = 0u64;
    for (name, i) in &infos {
        let numel = i
            .shape
            .iter()
            .try_fold(1u64, |a, &s| a.checked_mul(s as u64));
        let nbytes = numel.and_then(|e| e.checked_mul(i.dtype.bitsize() as u64 / 8));
        let (s, e) = (i.data_offsets.0 as u64, i.data_offsets.1 as u64);
        if s != expect || Some(e.wrapping_sub(s)) != nbytes || e < s {
            return Err(Err(format!(
                "tensor `{name}` has inconsistent offsets/shape"
            )));
        }
        expect = e;
    }
    if 8 + n + expect != size {
        return Err(Err(format!(
            "tensors cover {expect} bytes, file holds {}",
            size - 8 - n
        )));
    }

    let mut out = Vec::new();
    let h = if load {
        load_tensors(file, infos, h, &mut out)?
    } else {
        let mut buf = vec![0u8; CHUNK];
        let mut left = expect as usize;
        while left > 0 {
            let k = left.min(CHUNK);
            read_exact(file, &mut buf[..k])?;
            h.update(&buf[..k]);
            left -= k;
        }
        h
    };
    let got = Digest(h.finalize().into());
    if got.hex() != sidecar.sha256 {
        return Err(Err(format!(
            "sha256 of data is {}, sidecar says {}",
            got.short(12),
            short(&sidecar.sha256)
        )));
    }
    Ok(out)
}

/// Allocates each tensor and reads its bytes from `file` straight into its memory, while a
/// second thread hashes every chunk as soon as it has been read (so disk time and hashing
/// overlap). Returns the hasher, fed with everything read.
fn load_tensors(
    file: &mut File,
    infos: Vec<(String, TensorInfo)>,
    mut h: Sha256,
    out: &mut Vec<(String, Tensor)>,
) -> Result<Sha256, Result<io::Error, Bad>> {
    let mut regions = Vec::with_capacity(infos.len());
    for (name, i) in infos {
        let len = i.data_offsets.1 - i.data_offsets.0;
        let kind = kind_of(i.dtype)
            .ok_or_else(|| Err(format!("tensor `{name}` has dtype {:?}", i.dtype)))?;
        let shape: Vec<i64> = i.shape.iter().map(|&s| s as i64).collect();
        let t = Tensor::f_empty(shape.as_slice(), (kind, Device::Cpu))
            .map_err(|e| Ok(io::Error::other(format!("allocating tensor `{name}`: {e}"))))?;
        regions.push((t.data_ptr() as usize, len));
        out.push((name, t));
    }
    // The tensors in `out` outlive the scope, so every pointer sent to the hasher stays
    // valid until it is joined; the reader never touches a chunk after sending it.
    std::thread::scope(|s| {
        let (tx, rx) = std::sync::mpsc::sync_channel::<(usize, usize)>(8);
        let hasher = s.spawn(move || {
            for (ptr, len) in rx {
                // SAFETY: `len` bytes at `ptr` were filled by read(2) before being sent.
                h.update(unsafe { std::slice::from_raw_parts(ptr as *const u8, len) });
            }
            h
        });
        let read = (|| {
            for &(ptr, len) in &regions {
                let mut done = 0;
                while done < len {
                    let want = (len - done).min(CHUNK);
                    read_raw(file, (ptr + done) as *mut u8, want)?;
                    let _ = tx.send((ptr + done, want));
                    done += want;
                }
            }
            Ok(())
        })();
        drop(tx);
        let h = hasher.join().expect("hash thread panicked");
        read.map(|()| h)
    })
}

fn short(s: &str) -> &str {
    s.get(..12).unwrap_or(s)
}

fn read_exact(file: &mut File, buf: &mut [u8]) -> Result<(), Result<io::Error, Bad>> {
    file.read_exact(buf).map_err(|e| match e.kind() {
        io::ErrorKind::UnexpectedEof => Err("data file is truncated".to_string()),
        _ => Ok(e),
    })
}

/// Reads exactly `len` bytes from `file` into raw (possibly uninitialised) memory at `ptr`.
/// Uses `read(2)` directly so that no Rust reference to uninitialised bytes is ever made.
fn read_raw(file: &mut File, ptr: *mut u8, len: usize) -> Result<(), Result<io::Error, Bad>> {
    let fd = file.as_raw_fd();
    let mut filled = 0usize;
    while filled < len {
        // SAFETY: the caller guarantees `len` writable bytes at `ptr` (a fresh tensor's storage).
        let r = unsafe { libc::read(fd, ptr.add(filled) as *mut libc::c_void, len - filled) };
        if r < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(Ok(e));
        }
        if r == 0 {
            return Err(Err("data file is truncated".to_string()));
        }
        filled += r as usize;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Vec<(String, Tensor)> {
        vec![
            (
                "data".to_string(),
                Tensor::arange(24, (Kind::Int16, Device::Cpu)).reshape([2, 3, 4]),
            ),
            ("aux".to_string(), Tensor::from_slice(&[1.5f64, -2.0])),
            ("mask".to_string(), Tensor::from_slice(&[true, false, true])),
        ]
    }

    fn with_lib(tensors: &[(String, Tensor)]) -> Vec<u8> {
        struct V<'a>(&'a Tensor, Vec<usize>);
        impl safetensors::View for V<'_> {
            fn dtype(&self) -> Dtype {
                dtype_of(self.0.kind()).unwrap()
            }
            fn shape(&self) -> &[usize] {
                &self.1
            }
            fn data(&self) -> std::borrow::Cow<'_, [u8]> {
                bytes_of(self.0).into()
            }
            fn data_len(&self) -> usize {
                bytes_of(self.0).len()
            }
        }
        let views = tensors.iter().map(|(n, t)| {
            (
                n.clone(),
                V(t, t.size().iter().map(|&s| s as usize).collect()),
            )
        });
        safetensors::serialize(views, None).unwrap()
    }

    #[test]
    fn bytes_match_safetensors_serialize_and_read_back() {
        let tensors = sample();
        let expected = with_lib(&tensors);
        let p = prepare(
            tensors
                .iter()
                .map(|(n, t)| (n.clone(), t.shallow_clone()))
                .collect(),
        )
        .unwrap();
        let mut buf = Vec::new();
        let sha = p.write_to(&mut buf, |_| Ok(())).unwrap();
        assert_eq!(
            buf, expected,
            "file layout differs from safetensors::serialize"
        );
        assert_eq!(sha, Digest::of(&buf));
        assert_eq!(p.bytes, buf.len() as u64);
        // The safetensors crate parses it.
        let st = safetensors::SafeTensors::deserialize(&buf).unwrap();
        assert_eq!(st.len(), 3);

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("d");
        std::fs::write(&path, &buf).unwrap();
        let sc = Sidecar {
            format: FORMAT,
            id: String::new(),
            key: String::new(),
            kind: String::new(),
            node: String::new(),
            port: String::new(),
            port_type: "image".into(),
            tensors: p.descs.clone(),
            meta: serde_json::Value::Null,
            bytes: p.bytes,
            sha256: sha.hex(),
            created_unix_ms: 0,
        };
        let back = read_data(&mut File::open(&path).unwrap(), &sc, true).unwrap();
        for (name, t) in &tensors {
            let (_, b) = back.iter().find(|(n, _)| n == name).unwrap();
            assert_eq!(b.kind(), t.kind());
            assert!(b.equal(t), "{name} differs");
        }
        assert!(read_data(&mut File::open(&path).unwrap(), &sc, false)
            .unwrap()
            .is_empty());

        // One flipped bit in the tensor bytes is caught by the checksum.
        let mut bad = buf.clone();
        *bad.last_mut().unwrap() ^= 1;
        std::fs::write(&path, &bad).unwrap();
        let err = read_data(&mut File::open(&path).unwrap(), &sc, true)
            .unwrap_err()
            .unwrap_err();
        assert!(err.contains("sha256"), "{err}");
    }

    #[test]
    fn non_contiguous_tensors_are_stored_dense() {
        let t = Tensor::arange(12, (Kind::Float, Device::Cpu))
            .reshape([3, 4])
            .transpose(0, 1);
        assert!(!t.is_contiguous());
        let p = prepare(vec![("x".into(), t.shallow_clone())]).unwrap();
        let mut buf = Vec::new();
        p.write_to(&mut buf, |_| Ok(())).unwrap();
        let st = safetensors::SafeTensors::deserialize(&buf).unwrap();
        let v = st.tensor("x").unwrap();
        assert_eq!(v.shape(), &[4, 3]);
        let back = Tensor::from_data_size(v.data(), &[4, 3], Kind::Float);
        assert!(back.equal(&t));
    }

    #[test]
    fn complex_dtype_is_refused() {
        let t = Tensor::zeros([2], (Kind::ComplexFloat, Device::Cpu));
        assert!(prepare(vec![("x".into(), t)]).is_err());
    }
}
