//! The scalar sample types NIfTI and NRRD store, and the tch kinds they are read into. Each
//! format names them its own way (`nifti::dtype`, `nrrd::dtype`).

use crate::value::Volume;
use tch::{Device, Kind, Tensor};

/// A scalar sample type on disk. NIfTI reads and writes all but `Uint64`. `pub` (in this
/// private module) because `nrrd::geometry::Layout::of` reaches the NRRD header that holds one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sample {
    Int8,
    Uint8,
    Int16,
    Uint16,
    Int32,
    Uint32,
    Int64,
    Uint64,
    Float32,
    Float64,
}

impl Sample {
    /// Bytes per sample.
    pub(crate) fn size(self) -> usize {
        use Sample::*;
        match self {
            Int8 | Uint8 => 1,
            Int16 | Uint16 => 2,
            Int32 | Uint32 | Float32 => 4,
            Int64 | Uint64 | Float64 => 8,
        }
    }

    /// The kind whose bytes equal the on-disk bytes (same width; unsigned 16/32/64-bit land
    /// in the signed kind of that width and are widened afterwards, see [`Sample::kind`]).
    pub(crate) fn storage_kind(self) -> Kind {
        use Sample::*;
        match self {
            Int8 => Kind::Int8,
            Uint8 => Kind::Uint8,
            Int16 | Uint16 => Kind::Int16,
            Int32 | Uint32 => Kind::Int,
            Int64 | Uint64 => Kind::Int64,
            Float32 => Kind::Float,
            Float64 => Kind::Double,
        }
    }

    /// The kind samples are returned in. tch has no uint16/uint32/uint64 kinds: uint16 widens
    /// to int32 and uint32 to int64 ([`widen_unsigned`]); uint64 is read as int64.
    pub(crate) fn kind(self) -> Kind {
        match self {
            Sample::Uint16 => Kind::Int,
            Sample::Uint32 => Kind::Int64,
            d => d.storage_kind(),
        }
    }

    pub(crate) fn is_float(self) -> bool {
        matches!(self, Sample::Float32 | Sample::Float64)
    }

    /// The type that stores tensors of `kind` exactly (the inverse of [`Sample::kind`] for
    /// the kinds that have a type of their own).
    pub(crate) fn for_kind(kind: Kind) -> Option<Sample> {
        Some(match kind {
            Kind::Uint8 => Sample::Uint8,
            Kind::Int8 => Sample::Int8,
            Kind::Int16 => Sample::Int16,
            Kind::Int => Sample::Int32,
            Kind::Int64 => Sample::Int64,
            Kind::Float => Sample::Float32,
            Kind::Double => Sample::Float64,
            _ => return None,
        })
    }
}

/// uint16 stored in int16 -> int32; uint32 stored in int32 -> int64; others as they are.
pub(crate) fn widen_unsigned(raw: Tensor, sample: Sample) -> Result<Tensor, tch::TchError> {
    match sample {
        Sample::Uint16 => raw.f_to_kind(Kind::Int)?.f_bitwise_and(0xFFFF),
        Sample::Uint32 => raw.f_to_kind(Kind::Int64)?.f_bitwise_and(0xFFFF_FFFFi64),
        _ => Ok(raw),
    }
}

/// The voxels as a contiguous CPU tensor of a kind the file stores, and that type: bool is
/// stored as uint8, half/bfloat16 as float32; other kinds are an error naming `format`.
pub(crate) fn storable(vol: &Volume, format: &str) -> Result<(Tensor, Sample), String> {
    let t = |e: tch::TchError| format!("libtorch: {e}");
    let data = vol.data();
    let (data, sample) = match Sample::for_kind(data.kind()) {
        Some(d) => (data.shallow_clone(), d),
        None => match data.kind() {
            Kind::Bool => (data.f_to_kind(Kind::Uint8).map_err(t)?, Sample::Uint8),
            Kind::Half | Kind::BFloat16 => {
                (data.f_to_kind(Kind::Float).map_err(t)?, Sample::Float32)
            }
            k => {
                return Err(format!(
                    "cannot write voxels of kind {k:?} as {format}; convert the volume to a real \
                     type"
                ))
            }
        },
    };
    let data = data
        .f_to_device(Device::Cpu)
        .map_err(t)?
        .f_contiguous()
        .map_err(t)?;
    Ok((data, sample))
}
