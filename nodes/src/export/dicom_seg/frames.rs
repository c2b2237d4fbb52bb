//! The label map's voxels on the CPU, which classes each slice holds, and binary frames packed
//! as DICOM wants them (1 bit per pixel, the first pixel in the lowest bit, frames one after
//! another with no padding between them).

use crate::node::NodeError;
use crate::value::LabelMap;
use sha2::{Digest, Sha256};
use std::collections::BTreeSet;
use tch::{Device, Kind, Tensor};

/// Class ids, `[D, H, W]` in memory order, in the label map's own integer type.
enum Ints {
    U8(Vec<u8>),
    I8(Vec<i8>),
    I16(Vec<i16>),
    I32(Vec<i32>),
    I64(Vec<i64>),
}

/// Runs `$body` with `$v` bound to the voxel slice, whatever its type.
macro_rules! with_ints {
    ($ints:expr, $v:ident => $body:expr) => {
        match $ints {
            Ints::U8($v) => $body,
            Ints::I8($v) => $body,
            Ints::I16($v) => $body,
            Ints::I32($v) => $body,
            Ints::I64($v) => $body,
        }
    };
}

/// A label map's class ids, read once from its tensor.
pub struct Voxels {
    ints: Ints,
    /// `[D, H, W]`.
    pub shape: [usize; 3],
}

/// Converts the voxel types to i64 for comparisons, and to little-endian bytes for hashing.
trait Id: Copy + Into<i64> {
    fn le(v: &[Self], h: &mut Sha256);
}

macro_rules! id_impl {
    ($($t:ty),*) => {$(
        impl Id for $t {
            fn le(v: &[Self], h: &mut Sha256) {
                let mut buf = Vec::with_capacity(v.len().min(1 << 16) * std::mem::size_of::<$t>());
                for chunk in v.chunks(1 << 16) {
                    buf.clear();
                    for x in chunk {
                        buf.extend_from_slice(&x.to_le_bytes());
                    }
                    h.update(&buf);
                }
            }
        }
    )*};
}
id_impl!(u8, i8, i16, i32, i64);

/// The elements of a contiguous CPU tensor of `T`'s kind.
fn vec_of<T: tch::kind::Element>(t: &Tensor) -> Result<Vec<T>, NodeError> {
    let n = t.numel();
    let mut v = vec![T::ZERO; n];
    t.f_copy_data(&mut v, n)?;
    Ok(v)
}

impl Voxels {
    /// Copies the label map's tensor to the CPU (one copy, in its own type).
    pub fn of(labels: &LabelMap) -> Result<Voxels, NodeError> {
        let t = labels.volume.data();
        let size = t.size();
        let [d, h, w] = match size[..] {
            [d, h, w] => [d as usize, h as usize, w as usize],
            _ => {
                return Err(NodeError::Invalid(format!(
                    "dicom_seg: the label map must be 3D [D,H,W], got shape {size:?}"
                )))
            }
        };
        let flat = t.f_to_device(Device::Cpu)?.f_contiguous()?.f_view([-1])?;
        let ints = match flat.kind() {
            Kind::Uint8 => Ints::U8(vec_of(&flat)?),
            Kind::Int8 => Ints::I8(vec_of(&flat)?),
            Kind::Int16 => Ints::I16(vec_of(&flat)?),
            Kind::Int => Ints::I32(vec_of(&flat)?),
            Kind::Int64 => Ints::I64(vec_of(&flat)?),
            k => {
                return Err(NodeError::Invalid(format!(
                    "dicom_seg: a label map needs an integer dtype, got {k:?}"
                )))
            }
        };
        Ok(Voxels {
            ints,
            shape: [d, h, w],
        })
    }

    fn plane(&self) -> usize {
        self.shape[1] * self.shape[2]
    }

    /// The classes (ids > 0) present in each slice `k`. Fails on negative ids.
    pub fn classes_per_slice(&self) -> Result<Vec<BTreeSet<u32>>, NodeError> {
        let plane = self.plane();
        with_ints!(&self.ints, v => classes_per_slice(v, plane, self.shape[0]))
    }

    /// Feeds the voxel values (little-endian, in their type, with the type's name) to `h`.
    pub fn hash_into(&self, h: &mut Sha256) {
        let name = match &self.ints {
            Ints::U8(_) => "u8",
            Ints::I8(_) => "i8",
            Ints::I16(_) => "i16",
            Ints::I32(_) => "i32",
            Ints::I64(_) => "i64",
        };
        h.update(name.as_bytes());
        for n in self.shape {
            h.update((n as u64).to_le_bytes());
        }
        with_ints!(&self.ints, v => Id::le(&v[..], h))
    }

    /// Slice `k`'s class ids (as i64) into `out` (cleared first).
    pub fn slice_ids(&self, k: usize, out: &mut Vec<i64>) {
        let plane = self.plane();
        out.clear();
        with_ints!(&self.ints, v => out.extend(v[k * plane..(k + 1) * plane].iter().map(|&x| Into::<i64>::into(x))))
    }

    /// Appends slice `k`'s mask of `class` to `out`.
    pub fn pack_slice(&self, k: usize, class: u32, out: &mut PixelBits) {
        let plane = self.plane();
        let range = k * plane..(k + 1) * plane;
        with_ints!(&self.ints, v => out.push_mask(&v[range], class as i64))
    }
}

fn classes_per_slice<T: Id>(
    v: &[T],
    plane: usize,
    depth: usize,
) -> Result<Vec<BTreeSet<u32>>, NodeError> {
    let mut out = Vec::with_capacity(depth);
    for k in 0..depth {
        let mut set = BTreeSet::new();
        // Label maps come in long runs: only value changes need a look-up.
        let mut last = 0i64;
        for &x in &v[k * plane..(k + 1) * plane] {
            let x: i64 = x.into();
            if x != last {
                last = x;
                if x != 0 {
                    let id = u32::try_from(x).map_err(|_| {
                        NodeError::Invalid(format!(
                            "dicom_seg: the label map holds the value {x} in slice {k}: class \
                             ids must be 0 (background) or positive, below 2^32"
                        ))
                    })?;
                    set.insert(id);
                }
            }
        }
        out.push(set);
    }
    Ok(out)
}

/// DICOM 1-bit pixel data being built: bits in order, the first in the lowest bit of a byte.
#[derive(Default)]
pub struct PixelBits {
    bytes: Vec<u8>,
    nbits: usize,
}

impl PixelBits {
    /// Appends one frame: a bit per voxel, set where the voxel is `class`.
    fn push_mask<T: Id>(&mut self, v: &[T], class: i64) {
        self.bytes.reserve(v.len() / 8 + 2);
        if !self.nbits.is_multiple_of(8) {
            // Frames of rows x columns not a multiple of 8 leave the next one unaligned.
            for &x in v {
                self.push_bit(x.into() == class);
            }
            return;
        }
        let mut chunks = v.chunks_exact(8);
        for c in &mut chunks {
            let mut b = 0u8;
            for (j, &x) in c.iter().enumerate() {
                b |= ((x.into() == class) as u8) << j;
            }
            self.bytes.push(b);
        }
        self.nbits += v.len() - chunks.remainder().len();
        for &x in chunks.remainder() {
            self.push_bit(x.into() == class);
        }
    }

    fn push_bit(&mut self, bit: bool) {
        let o = self.nbits % 8;
        if o == 0 {
            self.bytes.push(0);
        }
        if bit {
            // `bytes` is never empty here: a byte was pushed above when `o == 0`, and
            // otherwise the current byte already exists.
            let last = self.bytes.len() - 1;
            self.bytes[last] |= 1 << o;
        }
        self.nbits += 1;
    }

    /// The Pixel Data value: padded with a zero byte to an even length.
    pub fn finish(mut self) -> Vec<u8> {
        if self.bytes.len() % 2 == 1 {
            self.bytes.push(0);
        }
        self.bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_pack_without_padding() {
        let mut p = PixelBits::default();
        // Two frames of 3x3 = 9 bits: the second starts at bit 9.
        p.push_mask(&[1u8, 0, 0, 0, 0, 0, 0, 0, 1], 1);
        p.push_mask(&[0u8, 1, 0, 0, 0, 0, 0, 0, 1], 1);
        assert_eq!(p.nbits, 18);
        assert_eq!(p.finish(), vec![0b0000_0001, 0b0000_0101, 0b0000_0010, 0]);
    }
}
