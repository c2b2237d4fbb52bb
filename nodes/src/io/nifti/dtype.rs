//! NIfTI datatype codes of the sample types.

/// The NIfTI datatypes vistaflow reads and writes: every sample type but `Uint64`, whose code
/// [`from_code`] refuses.
pub(crate) use crate::io::sample::Sample as DataType;

/// The type of NIfTI datatype code `code`; RGB, complex, 128-bit and unknown codes are
/// errors naming the code.
pub(crate) fn from_code(code: i16) -> Result<DataType, String> {
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

/// The NIfTI datatype code (`Uint64`'s is never written: no tensor kind maps to it).
pub(crate) fn code_of(d: DataType) -> i16 {
    use DataType::*;
    match d {
        Uint8 => 2,
        Int8 => 256,
        Int16 => 4,
        Uint16 => 512,
        Int32 => 8,
        Uint32 => 768,
        Int64 => 1024,
        Uint64 => 1280,
        Float32 => 16,
        Float64 => 64,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip_and_rgb_is_named() {
        for code in [2, 256, 4, 512, 8, 768, 1024, 16, 64] {
            assert_eq!(code_of(from_code(code).unwrap()), code);
        }
        let e = from_code(128).unwrap_err();
        assert!(e.contains("128") && e.contains("RGB24"), "{e}");
    }
}
