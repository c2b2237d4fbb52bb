//! NRRD sample types (`type:` field) and the tch kinds they are read into.

use tch::Kind;

/// The NRRD sample types vistaflow reads and writes (every scalar type but `block`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DataType {
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

impl DataType {
    /// The type of a `type:` value, in any of the spellings the NRRD format allows
    /// (`short`, `signed short int`, `int16`, `int16_t`, ...). `block` and unknown names are
    /// errors naming the type.
    pub fn parse(name: &str) -> Result<DataType, String> {
        use DataType::*;
        let norm = name.split_whitespace().collect::<Vec<_>>().join(" ");
        Ok(match norm.as_str() {
            "signed char" | "int8" | "int8_t" => Int8,
            "uchar" | "unsigned char" | "uint8" | "uint8_t" => Uint8,
            "short" | "short int" | "signed short" | "signed short int" | "int16" | "int16_t" => {
                Int16
            }
            "ushort" | "unsigned short" | "unsigned short int" | "uint16" | "uint16_t" => Uint16,
            "int" | "signed int" | "int32" | "int32_t" => Int32,
            "uint" | "unsigned int" | "uint32" | "uint32_t" => Uint32,
            "longlong"
            | "long long"
            | "long long int"
            | "signed long long"
            | "signed long long int"
            | "int64"
            | "int64_t" => Int64,
            "ulonglong"
            | "unsigned long long"
            | "unsigned long long int"
            | "uint64"
            | "uint64_t" => Uint64,
            "float" => Float32,
            "double" => Float64,
            "block" => {
                return Err(
                    "type `block` (opaque records) is not supported; vistaflow reads \
                            scalar int8..uint64, float and double samples"
                        .into(),
                )
            }
            _ => {
                return Err(format!(
                    "unknown sample type `{name}`; NRRD types are int8, uint8, int16, uint16, \
                     int32, uint32, int64, uint64, float and double (or their C spellings such \
                     as `short` or `unsigned char`)"
                ))
            }
        })
    }

    /// The canonical NRRD name written in headers.
    pub fn name(self) -> &'static str {
        use DataType::*;
        match self {
            Int8 => "int8",
            Uint8 => "uint8",
            Int16 => "int16",
            Uint16 => "uint16",
            Int32 => "int32",
            Uint32 => "uint32",
            Int64 => "int64",
            Uint64 => "uint64",
            Float32 => "float",
            Float64 => "double",
        }
    }

    /// Bytes per sample.
    pub fn size(self) -> usize {
        use DataType::*;
        match self {
            Int8 | Uint8 => 1,
            Int16 | Uint16 => 2,
            Int32 | Uint32 | Float32 => 4,
            Int64 | Uint64 | Float64 => 8,
        }
    }

    /// The kind whose bytes equal the on-disk bytes (same width; unsigned 16/32/64-bit land
    /// in the signed kind of that width and are widened afterwards, see [`DataType::kind`]).
    pub fn storage_kind(self) -> Kind {
        use DataType::*;
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

    /// The kind voxels are returned in. tch has no uint16/uint32/uint64 kinds: uint16 widens
    /// to int32 and uint32 to int64 (as the NIfTI reader does); uint64 is read as int64 and
    /// values of 2^63 and above are refused.
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

    /// The type that stores tensors of `kind` exactly, if NRRD has one.
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
    fn spellings() {
        assert_eq!(DataType::parse("short").unwrap(), DataType::Int16);
        assert_eq!(
            DataType::parse("signed  short int").unwrap(),
            DataType::Int16
        );
        assert_eq!(DataType::parse("unsigned char").unwrap(), DataType::Uint8);
        assert_eq!(DataType::parse("ulonglong").unwrap(), DataType::Uint64);
        for d in [
            DataType::Int8,
            DataType::Uint8,
            DataType::Int16,
            DataType::Uint16,
            DataType::Int32,
            DataType::Uint32,
            DataType::Int64,
            DataType::Uint64,
            DataType::Float32,
            DataType::Float64,
        ] {
            assert_eq!(DataType::parse(d.name()).unwrap(), d);
        }
        assert!(DataType::parse("block").unwrap_err().contains("block"));
        assert!(DataType::parse("complex")
            .unwrap_err()
            .contains("`complex`"));
    }
}
