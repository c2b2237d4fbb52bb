//! The NIfTI-1 (348-byte) and NIfTI-2 (540-byte) headers, parsed into one [`Header`] and
//! checked the way nibabel checks them on load.
//!
//! NIfTI-1 headers are parsed by the `nifti` crate (it detects byte order as nibabel does, from
//! `dim[0]`); that crate has no NIfTI-2 support, so the NIfTI-2 layout is read here at its
//! fixed offsets (nifti2.h). Both end up widened to `i64`/`f64` fields.

use super::dtype::{from_code, DataType};

/// Bytes of a NIfTI-1 header; the smallest legal `vox_offset` of a single file is this + 4.
pub const NIFTI1_SIZE: usize = 348;
/// Bytes of a NIfTI-2 header; the smallest legal `vox_offset` of a single file is this + 4.
pub const NIFTI2_SIZE: usize = 540;

/// Which of the two formats a header is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Version {
    Nifti1,
    Nifti2,
}

impl Version {
    pub fn name(self) -> &'static str {
        match self {
            Version::Nifti1 => "nifti1",
            Version::Nifti2 => "nifti2",
        }
    }

    pub fn header_size(self) -> usize {
        match self {
            Version::Nifti1 => NIFTI1_SIZE,
            Version::Nifti2 => NIFTI2_SIZE,
        }
    }
}

/// The header fields vistaflow uses, widened; after [`Header::parse`] they are checked and
/// fixed as nibabel's `check_fix` does (see [`Header::nibabel_fix`]).
#[derive(Clone, Debug, PartialEq)]
pub struct Header {
    pub version: Version,
    pub big_endian: bool,
    /// `dim[0]` is the number of dimensions; `dim[1..=dim[0]]` the sizes (i, j, k, t, ...).
    pub dim: [i64; 8],
    pub datatype: i16,
    /// `pixdim[0]` is qfac; `pixdim[1..4]` the voxel sizes.
    pub pixdim: [f64; 8],
    pub vox_offset: f64,
    pub scl_slope: f64,
    pub scl_inter: f64,
    pub qform_code: i32,
    pub sform_code: i32,
    /// Quaternion b, c, d.
    pub quatern: [f64; 3],
    pub qoffset: [f64; 3],
    /// `srow_x`, `srow_y`, `srow_z`.
    pub srow: [[f64; 4]; 3],
}

/// Looks at the first 4 bytes (`sizeof_hdr`): which format and byte order, or `None` when the
/// file is not NIfTI at all.
pub fn sniff(first4: [u8; 4]) -> Option<(Version, bool)> {
    for (big_endian, v) in [
        (false, i32::from_le_bytes(first4)),
        (true, i32::from_be_bytes(first4)),
    ] {
        match v {
            348 => return Some((Version::Nifti1, big_endian)),
            540 => return Some((Version::Nifti2, big_endian)),
            _ => {}
        }
    }
    None
}

impl Header {
    /// Parses a whole header (`bytes.len()` must be the version's header size). Errors say what
    /// is wrong with the file, in words for a user.
    pub fn parse(version: Version, big_endian: bool, bytes: &[u8]) -> Result<Header, String> {
        let mut h = match version {
            Version::Nifti1 => parse_nifti1(bytes)?,
            Version::Nifti2 => parse_nifti2(bytes, big_endian)?,
        };
        if h.big_endian != big_endian {
            // The crate takes the byte order from dim[0], sizeof_hdr gave the other one.
            let raw = [bytes[40], bytes[41]];
            let d0 = if big_endian {
                i16::from_be_bytes(raw)
            } else {
                i16::from_le_bytes(raw)
            };
            return Err(format!(
                "dim[0] (the number of dimensions) is {d0}; it must be 1 to 7, so the header is corrupt"
            ));
        }
        h.nibabel_fix();
        Ok(h)
    }

    /// The number of dimensions, `dim[0]`, checked to be 1..=7.
    pub fn ndim(&self) -> Result<usize, String> {
        match self.dim[0] {
            n @ 1..=7 => Ok(n as usize),
            n => Err(format!(
                "dim[0] (the number of dimensions) is {n}; it must be 1 to 7, so the header is corrupt"
            )),
        }
    }

    /// The sizes `dim[1..=ndim]` (i fastest), each checked to be >= 1.
    pub fn shape(&self) -> Result<Vec<i64>, String> {
        let n = self.ndim()?;
        let shape = self.dim[1..=n].to_vec();
        if let Some((i, d)) = shape.iter().enumerate().find(|(_, &d)| d <= 0) {
            return Err(format!(
                "dim[{}] is {d}, but every dimension must be at least 1 (shape {:?}); the header is corrupt",
                i + 1,
                shape
            ));
        }
        Ok(shape)
    }

    /// The voxel type; unsupported codes (RGB, complex, ...) are errors naming the code.
    pub fn data_type(&self) -> Result<DataType, String> {
        from_code(self.datatype)
    }

    /// Byte offset of the voxel data, checked to lie after the header and its 4-byte extension
    /// flag and to be a whole number.
    pub fn data_offset(&self) -> Result<u64, String> {
        let min = self.version.header_size() + 4;
        let off = self.vox_offset;
        if !off.is_finite() || off.fract() != 0.0 || off < min as f64 || off > 1e15 {
            return Err(format!(
                "vox_offset is {off}, but the voxel data of a single-file {} must start at a whole \
                 byte offset of at least {min} (after the header); the header is corrupt, or this \
                 is the .hdr of a .hdr/.img pair, which is not supported",
                match self.version {
                    Version::Nifti1 => "NIfTI-1",
                    Version::Nifti2 => "NIfTI-2",
                },
            ));
        }
        Ok(off as u64)
    }

    /// The checks and fixes nibabel applies on load (`Nifti1Header.check_fix`) that change how
    /// a file is read: zero voxel sizes become 1 and negative ones positive, a qfac other than
    /// +-1 becomes 1, unknown xform codes become 0.
    pub fn nibabel_fix(&mut self) {
        for p in &mut self.pixdim[1..4] {
            if *p == 0.0 {
                *p = 1.0;
            } else if *p < 0.0 {
                *p = -*p;
            }
        }
        if self.pixdim[0] != 1.0 && self.pixdim[0] != -1.0 {
            self.pixdim[0] = 1.0;
        }
        for code in [&mut self.qform_code, &mut self.sform_code] {
            if !(0..=5).contains(code) {
                *code = 0;
            }
        }
    }
}

/// NIfTI-1 through the `nifti` crate (byte order from `dim[0]`, magic checked there too).
fn parse_nifti1(bytes: &[u8]) -> Result<Header, String> {
    let n = nifti::NiftiHeader::from_reader(bytes).map_err(|e| match e {
        nifti::NiftiError::InvalidFormat => {
            let magic = String::from_utf8_lossy(&bytes[344..347]).into_owned();
            format!(
                "the NIfTI-1 magic is {magic:?}, expected \"n+1\"; the file is corrupt or not NIfTI"
            )
        }
        e => format!("cannot parse the NIfTI-1 header: {e}"),
    })?;
    if n.magic == *nifti::header::MAGIC_CODE_NI1 {
        return Err(
            "this is the header of a .hdr/.img pair (magic \"ni1\"); vistaflow reads \
                    single-file NIfTI (.nii, .nii.gz) only: convert it, e.g. with nibabel"
                .into(),
        );
    }
    let mut dim = [0i64; 8];
    for (d, &v) in dim.iter_mut().zip(&n.dim) {
        // The crate stores dims as u16; the format's are signed 16-bit.
        *d = v as i16 as i64;
    }
    let f = |v: f32| v as f64;
    Ok(Header {
        version: Version::Nifti1,
        big_endian: n.endianness == nifti::Endianness::Big,
        dim,
        datatype: n.datatype,
        pixdim: n.pixdim.map(f),
        vox_offset: f(n.vox_offset),
        scl_slope: f(n.scl_slope),
        scl_inter: f(n.scl_inter),
        qform_code: n.qform_code as i32,
        sform_code: n.sform_code as i32,
        quatern: [f(n.quatern_b), f(n.quatern_c), f(n.quatern_d)],
        qoffset: [f(n.quatern_x), f(n.quatern_y), f(n.quatern_z)],
        srow: [n.srow_x.map(f), n.srow_y.map(f), n.srow_z.map(f)],
    })
}

/// Little helper reading fixed offsets in one byte order.
struct Fields<'a> {
    b: &'a [u8],
    big: bool,
}

impl Fields<'_> {
    fn arr<const N: usize>(&self, at: usize) -> [u8; N] {
        let mut a = [0u8; N];
        a.copy_from_slice(&self.b[at..at + N]);
        if self.big {
            a.reverse();
        }
        a
    }
    fn i16(&self, at: usize) -> i16 {
        i16::from_le_bytes(self.arr(at))
    }
    fn i32(&self, at: usize) -> i32 {
        i32::from_le_bytes(self.arr(at))
    }
    fn i64(&self, at: usize) -> i64 {
        i64::from_le_bytes(self.arr(at))
    }
    fn f64(&self, at: usize) -> f64 {
        f64::from_le_bytes(self.arr(at))
    }
    fn f64s<const N: usize>(&self, at: usize) -> [f64; N] {
        std::array::from_fn(|i| self.f64(at + 8 * i))
    }
}

/// NIfTI-2 at the offsets of nifti2.h.
fn parse_nifti2(bytes: &[u8], big: bool) -> Result<Header, String> {
    let r = Fields { b: bytes, big };
    let magic = &bytes[4..12];
    if &magic[..3] == b"ni2" {
        return Err(
            "this is the header of a NIfTI-2 .hdr/.img pair (magic \"ni2\"); vistaflow \
                    reads single-file NIfTI (.nii, .nii.gz) only"
                .into(),
        );
    }
    if magic != b"n+2\0\r\n\x1a\n" {
        return Err(format!(
            "the NIfTI-2 magic is {:?}, expected \"n+2\\0\\r\\n\\x1a\\n\"; the file is corrupt, or was \
             transferred in text mode",
            String::from_utf8_lossy(magic)
        ));
    }
    Ok(Header {
        version: Version::Nifti2,
        big_endian: big,
        datatype: r.i16(12),
        dim: std::array::from_fn(|i| r.i64(16 + 8 * i)),
        pixdim: r.f64s(104),
        vox_offset: r.i64(168) as f64,
        scl_slope: r.f64(176),
        scl_inter: r.f64(184),
        qform_code: r.i32(344),
        sform_code: r.i32(348),
        quatern: r.f64s(352),
        qoffset: r.f64s(376),
        srow: [r.f64s(400), r.f64s(432), r.f64s(464)],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sniff_sizes_and_byte_orders() {
        assert_eq!(sniff(348i32.to_le_bytes()), Some((Version::Nifti1, false)));
        assert_eq!(sniff(348i32.to_be_bytes()), Some((Version::Nifti1, true)));
        assert_eq!(sniff(540i32.to_le_bytes()), Some((Version::Nifti2, false)));
        assert_eq!(sniff(540i32.to_be_bytes()), Some((Version::Nifti2, true)));
        assert_eq!(sniff(*b"GIF8"), None);
    }
}
