//! NRRD names of the sample types (`type:` field).

/// The NRRD sample types vistaflow reads and writes (every scalar type but `block`).
pub(crate) use crate::io::sample::Sample as DataType;

/// The type of a `type:` value, in any of the spellings the NRRD format allows
/// (`short`, `signed short int`, `int16`, `int16_t`, ...). `block` and unknown names are
/// errors naming the type.
pub(crate) fn parse_type(name: &str) -> Result<DataType, String> {
    use DataType::*;
    let norm = name.split_whitespace().collect::<Vec<_>>().join(" ");
    Ok(match norm.as_str() {
        "signed char" | "int8" | "int8_t" => Int8,
        "uchar" | "unsigned char" | "uint8" | "uint8_t" => Uint8,
        "short" | "short int" | "signed short" | "signed short int" | "int16" | "int16_t" => Int16,
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
        "ulonglong" | "unsigned long long" | "unsigned long long int" | "uint64" | "uint64_t" => {
            Uint64
        }
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
pub(crate) fn type_name(d: DataType) -> &'static str {
    use DataType::*;
    match d {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spellings() {
        assert_eq!(parse_type("short").unwrap(), DataType::Int16);
        assert_eq!(parse_type("signed  short int").unwrap(), DataType::Int16);
        assert_eq!(parse_type("unsigned char").unwrap(), DataType::Uint8);
        assert_eq!(parse_type("ulonglong").unwrap(), DataType::Uint64);
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
            assert_eq!(parse_type(type_name(d)).unwrap(), d);
        }
        assert!(parse_type("block").unwrap_err().contains("block"));
        assert!(parse_type("complex").unwrap_err().contains("`complex`"));
    }
}
