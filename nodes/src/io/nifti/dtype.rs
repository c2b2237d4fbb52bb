//! NIfTI voxel types and the tch kinds they are read into.

use tch::Kind;

/// The NIfTI datatypes vistaflow reads and writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DataType {
    Uint8,
    Int8,
    Int16,
    Uint16,
    Int32,
    Uint32,
    Int64,
    Float32,
    Float64,
}

impl DataType {
    /// The type of NIfTI datatype code `code`; RGB, complex, 128-bit and unknown codes are
    /// errors naming the code.
    pub fn from_code(code: i16) -> Result<DataType, String> {
        use DataType::*;
        Ok(match code {
            2 => Uint8,
            256 => Int8,
            4 => Int16,
            512 => Uint16,
            8 => Int32,
            768 => Uint32,
            1024 => Int64,
            16 => Float32,
            64 => Float64,
            _ => {
                let what = match code {
                    0 => "unknown (0)",
                    1 => "binary (1)",
                    32 => "complex64 (32)",
                    128 => "RGB24 (128)",
                    1280 => "uint64 (1280)",
                    1536 => "float128 (1536)",
                    1792 => "complex128 (1792)",
                    2048 => "complex256 (2048)",
                    2304 => "RGBA32 (2304)",
                    _ => "not a NIfTI datatype",
                };
                return Err(format!(
                    "datatype code {code} ({what}) is not supported; vistaflow reads scalar \
                     uint8, int8, int16, uint16, int32, uint32, int64, float32 and float64 \
                     volumes: convert the file (e.g. split RGB channels) first"
                ));
            }
        })
    }

    /// The NIfTI datatype code.
    pub fn code(self) -> i16 {
        use DataType::*;
        match self {
            Uint8 => 2,
            Int8 => 256,
            Int16 => 4,
            Uint16 => 512,
            Int32 => 8,
            Uint32 => 768,
            Int64 => 1024,
            Float32 => 16,
            Float64 => 64,
        }
    }

    /// Bytes per voxel on disk.
    pub fn size(self) -> usize {
        use DataType::*;
        match self {
            Uint8 | Int8 => 1,
            Int16 | Uint16 => 2,
            Int32 | Uint32 | Float32 => 4,
            Int64 | Float64 => 8,
        }
    }

    /// The kind whose bytes equal the on-disk bytes (same width; uint16/uint32 land in
    /// int16/int32 and are widened afterwards, as tch has no unsigned 16/32-bit kinds).
    pub fn storage_kind(self) -> Kind {
        use DataType::*;
        match self {
            Uint8 => Kind::Uint8,
            Int8 => Kind::Int8,
            Int16 | Uint16 => Kind::Int16,
            Int32 | Uint32 => Kind::Int,
            Int64 => Kind::Int64,
            Float32 => Kind::Float,
            Float64 => Kind::Double,
        }
    }

    /// The kind the voxels are returned in: uint16 widens to int32, uint32 to int64.
    pub fn kind(self) -> Kind {
        match self {
            DataType::Uint16 => Kind::Int,
            DataType::Uint32 => Kind::Int64,
            d => d.storage_kind(),
        }
    }

    pub fn is_float(self) -> bool {
        matches!(self, DataType::Float32 | DataType::Float64)
    }

    /// The type that stores tensors of `kind` (the inverse of [`DataType::kind`] for the
    /// kinds that have a NIfTI type of their own).
    pub fn for_kind(kind: Kind) -> Option<DataType> {
        Some(match kind {
            Kind::Uint8 => DataType::Uint8,
            Kind::Int8 => DataType::Int8,
            Kind::Int16 => DataType::Int16,
            Kind::Int => DataType::Int32,
            Kind::Int64 => DataType::Int64,
            Kind::Float => DataType::Float32,
            Kind::Double => DataType::Float64,
            _ => return None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip_and_rgb_is_named() {
        for code in [2, 256, 4, 512, 8, 768, 1024, 16, 64] {
            assert_eq!(DataType::from_code(code).unwrap().code(), code);
        }
        let e = DataType::from_code(128).unwrap_err();
        assert!(e.contains("128") && e.contains("RGB24"), "{e}");
    }
}
