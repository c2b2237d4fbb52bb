//! The NRRD header: the magic line, `field: value` lines, `key:=value` pairs and comments, up
//! to the blank line that starts attached data (or the end of a detached `.nhdr`).
//!
//! Parsing checks each field on its own (numbers, counts against `dimension`, vectors); the
//! meaning of the fields together (which axes are spatial, the affine) is in
//! [`super::geometry`]. Every error names the header line.

use super::dtype::{parse_type, type_name, DataType};
use std::io::{self, BufRead, Read};

/// Longest header line accepted (Slicer's key/value lines are long, but not this long).
const MAX_LINE: u64 = 1 << 20;
/// Largest header accepted, all lines together.
const MAX_HEADER: u64 = 64 << 20;

/// `encoding:`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Encoding {
    Raw,
    Gzip,
}

/// A named `space:` (or a bare `space dimension: 3`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Space {
    /// left-posterior-superior (DICOM, ITK): taken as it is.
    Lps,
    /// right-anterior-superior (NIfTI, Slicer's default): x and y negated.
    Ras,
    /// left-anterior-superior: y negated.
    Las,
    /// scanner-xyz: taken as LPS, as ITK does (DICOM patient space is the scanner's frame).
    ScannerXyz,
    /// 3D-right-handed: taken as LPS, as ITK does.
    RightHanded3D,
    /// `space dimension: 3` with no named space: taken as LPS, as ITK does.
    Unnamed3D,
}

impl Space {
    fn parse(v: &str) -> Result<Space, String> {
        Ok(match v.to_ascii_lowercase().as_str() {
            "left-posterior-superior" | "lps" => Space::Lps,
            "right-anterior-superior" | "ras" => Space::Ras,
            "left-anterior-superior" | "las" => Space::Las,
            "scanner-xyz" => Space::ScannerXyz,
            "3d-right-handed" => Space::RightHanded3D,
            "3d-left-handed" => {
                return Err("space `3D-left-handed` has no defined relation to patient \
                            (LPS) space; vistaflow refuses to guess: rewrite the file in \
                            left-posterior-superior or right-anterior-superior"
                    .into())
            }
            s if s.ends_with("-time") || s.ends_with("-handed-time") => {
                return Err(format!(
                    "space `{v}` has a time axis (4 space dimensions), which is not supported; \
                     vistaflow reads 3D spaces (left-posterior-superior, \
                     right-anterior-superior, left-anterior-superior, scanner-xyz, \
                     3D-right-handed)"
                ))
            }
            _ => {
                return Err(format!(
                    "unknown space `{v}`; vistaflow reads left-posterior-superior, \
                     right-anterior-superior, left-anterior-superior, scanner-xyz and \
                     3D-right-handed"
                ))
            }
        })
    }

    /// The name as written in NRRD headers (or `space dimension: 3`).
    pub fn name(self) -> &'static str {
        match self {
            Space::Lps => "left-posterior-superior",
            Space::Ras => "right-anterior-superior",
            Space::Las => "left-anterior-superior",
            Space::ScannerXyz => "scanner-xyz",
            Space::RightHanded3D => "3D-right-handed",
            Space::Unnamed3D => "space dimension 3",
        }
    }

    /// Signs that turn this space's x, y, z into LPS.
    pub fn to_lps(self) -> [f64; 3] {
        match self {
            Space::Ras => [-1.0, -1.0, 1.0],
            Space::Las => [1.0, -1.0, 1.0],
            _ => [1.0, 1.0, 1.0],
        }
    }
}

/// Where the data is.
#[derive(Clone, Debug, PartialEq)]
pub enum DataFiles {
    /// After the header's blank line, in the same file.
    Attached,
    /// In these files (relative to the header's folder unless absolute), one after another.
    Detached(Vec<String>),
}

/// A parsed header.
#[derive(Clone, Debug)]
pub struct Header {
    pub dtype: DataType,
    pub dimension: usize,
    /// Axis sizes, fastest axis first.
    pub sizes: Vec<u64>,
    pub encoding: Encoding,
    /// `None` when absent (allowed only for 1-byte types).
    pub big_endian: Option<bool>,
    pub space: Option<Space>,
    /// Per axis: a direction vector, or `None` for `none` (a non-spatial axis).
    pub space_directions: Option<Vec<Option<[f64; 3]>>>,
    pub space_origin: Option<[f64; 3]>,
    /// Per axis; NaN for non-spatial axes.
    pub spacings: Option<Vec<f64>>,
    pub axis_mins: Option<Vec<f64>>,
    pub kinds: Option<Vec<String>>,
    pub data: DataFiles,
    pub line_skip: u64,
    /// -1: the data is the last bytes of the (raw) file.
    pub byte_skip: i64,
    /// `key:=value` pairs in file order.
    pub key_values: Vec<(String, String)>,
    /// Bytes from the start of the file to the first data byte (attached data).
    pub len: u64,
}

impl Header {
    /// Number of samples, or an error when the sizes overflow.
    pub fn numel(&self) -> Result<u64, String> {
        self.sizes
            .iter()
            .try_fold(1u64, |a, &d| a.checked_mul(d))
            .filter(|n| n.checked_mul(self.dtype.size() as u64).is_some())
            .ok_or_else(|| format!("sizes {:?} are impossibly large", self.sizes))
    }

    /// The value of a `key:=value` pair.
    pub fn value(&self, key: &str) -> Option<&str> {
        self.key_values
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// Reads and checks a header from the start of `r`, leaving `r` at the first data byte
    /// (attached data) or at the end (detached header).
    pub fn read(r: &mut impl BufRead) -> Result<Header, String> {
        let mut lines = Lines { r, n: 0, len: 0 };
        let magic = match lines.next()? {
            Some(l) => l,
            None => return Err("the file is empty".into()),
        };
        let version = magic
            .strip_prefix("NRRD000")
            .and_then(|v| v.parse::<u8>().ok())
            .filter(|v| (1..=5).contains(v));
        if version.is_none() {
            let shown: String = magic.chars().take(16).collect();
            return Err(format!(
                "not a NRRD file: it starts with `{}` instead of `NRRD0001`..`NRRD0005`",
                shown.escape_debug()
            ));
        }

        let mut b = Builder::default();
        let mut ended_blank = false;
        while let Some(line) = lines.next()? {
            let at = lines.n;
            if line.is_empty() {
                ended_blank = true;
                break;
            }
            if line.starts_with('#') {
                continue;
            }
            let ctx = |e: String| format!("header line {at} (`{}`): {e}", short(&line));
            if let Some((k, v)) = split_key_value(&line) {
                b.key_values.push((k.to_string(), v.to_string()));
                continue;
            }
            let Some((field, desc)) = line.split_once(':') else {
                return Err(ctx(
                    "not a `field: value`, `key:=value` or `#` comment line; the header is \
                     malformed (is a blank line missing before the data?)"
                        .into(),
                ));
            };
            let field = field.trim().to_ascii_lowercase();
            let desc = desc.trim();
            b.field(&field, desc).map_err(ctx)?;
            if std::mem::take(&mut b.pending_list) {
                // `data file: LIST`: every following line names a file.
                let mut files = Vec::new();
                while let Some(l) = lines.next()? {
                    if l.is_empty() {
                        break;
                    }
                    files.push(l.trim().to_string());
                }
                if files.is_empty() {
                    return Err(ctx("`data file: LIST` but no file names follow".into()));
                }
                b.data = Some(DataFiles::Detached(files));
                break;
            }
        }
        let mut h = b.finish()?;
        if h.data == DataFiles::Attached && !ended_blank {
            return Err(
                "the header ends without the blank line that starts the data, and has \
                        no `data file` field: the file is truncated or holds no data"
                    .into(),
            );
        }
        h.len = lines.len;
        Ok(h)
    }
}

/// `key:=value`, when the line is one (a `:=` before any `: `).
fn split_key_value(line: &str) -> Option<(&str, &str)> {
    let at = line.find(":=")?;
    match line.find(": ") {
        Some(f) if f < at => None,
        _ => Some((&line[..at], &line[at + 2..])),
    }
}

fn short(s: &str) -> String {
    if s.chars().count() > 80 {
        format!("{}...", s.chars().take(77).collect::<String>())
    } else {
        s.to_string()
    }
}

/// Header lines, without their `\n` or `\r\n`, counting lines and bytes.
struct Lines<'a, R: BufRead> {
    r: &'a mut R,
    n: usize,
    len: u64,
}

impl<R: BufRead> Lines<'_, R> {
    fn next(&mut self) -> Result<Option<String>, String> {
        let mut buf = Vec::new();
        let got = self
            .r
            .by_ref()
            .take(MAX_LINE + 1)
            .read_until(b'\n', &mut buf)
            .map_err(|e| read_err(&e))?;
        if got == 0 {
            return Ok(None);
        }
        self.n += 1;
        self.len += got as u64;
        if buf.len() as u64 > MAX_LINE {
            return Err(format!(
                "header line {} is over {} bytes long: this is not a NRRD header (or the blank \
                 line before the data is missing)",
                self.n, MAX_LINE
            ));
        }
        if self.len > MAX_HEADER {
            return Err(format!(
                "the header is over {} MB: this is not a NRRD header (or the blank line before \
                 the data is missing)",
                MAX_HEADER >> 20
            ));
        }
        if buf.last() == Some(&b'\n') {
            buf.pop();
            if buf.last() == Some(&b'\r') {
                buf.pop();
            }
        }
        String::from_utf8(buf).map(Some).map_err(|_| {
            format!(
                "header line {} is not text (UTF-8): the header is corrupt, or the blank line \
                 before the data is missing",
                self.n
            )
        })
    }
}

fn read_err(e: &io::Error) -> String {
    format!("cannot read the header: {e}")
}

#[derive(Default)]
struct Builder {
    seen: Vec<String>,
    dtype: Option<DataType>,
    dimension: Option<usize>,
    sizes: Option<Vec<u64>>,
    encoding: Option<Encoding>,
    big_endian: Option<bool>,
    space: Option<Space>,
    space_dimension: Option<usize>,
    space_directions: Option<Vec<Option<[f64; 3]>>>,
    space_origin: Option<[f64; 3]>,
    spacings: Option<Vec<f64>>,
    axis_mins: Option<Vec<f64>>,
    kinds: Option<Vec<String>>,
    data: Option<DataFiles>,
    /// `data file: LIST` seen: the file names follow.
    pending_list: bool,
    line_skip: Option<u64>,
    byte_skip: Option<i64>,
    key_values: Vec<(String, String)>,
}

impl Builder {
    fn field(&mut self, field: &str, v: &str) -> Result<(), String> {
        let canonical = match field {
            "datafile" => "data file",
            "lineskip" => "line skip",
            "byteskip" => "byte skip",
            "axismins" => "axis mins",
            "centerings" => "centers",
            f => f,
        };
        if self.seen.iter().any(|s| s == canonical) {
            return Err(format!("field `{canonical}` is given twice"));
        }
        self.seen.push(canonical.to_string());
        match canonical {
            "type" => self.dtype = Some(parse_type(v)?),
            "dimension" => {
                let d: usize = v
                    .parse()
                    .map_err(|_| format!("dimension `{v}` is not a whole number"))?;
                if d == 0 {
                    return Err("dimension 0".into());
                }
                self.dimension = Some(d);
            }
            "sizes" => {
                let s = v
                    .split_whitespace()
                    .map(|t| t.parse::<u64>().ok().filter(|&n| n > 0))
                    .collect::<Option<Vec<_>>>()
                    .ok_or_else(|| "sizes must be whole numbers of at least 1".to_string())?;
                self.sizes = Some(s);
            }
            "encoding" => {
                self.encoding = Some(match v.to_ascii_lowercase().as_str() {
                    "raw" => Encoding::Raw,
                    "gzip" | "gz" => Encoding::Gzip,
                    "bzip2" | "bz2" | "ascii" | "text" | "txt" | "hex" | "zrl" => {
                        return Err(format!(
                            "encoding `{v}` is not supported; vistaflow reads raw and gzip NRRD: \
                             convert the file (e.g. `unu save -e gzip` or SimpleITK)"
                        ))
                    }
                    _ => return Err(format!("unknown encoding `{v}`")),
                })
            }
            "endian" => {
                self.big_endian = Some(match v.to_ascii_lowercase().as_str() {
                    "little" => false,
                    "big" => true,
                    _ => return Err(format!("endian must be `little` or `big`, not `{v}`")),
                })
            }
            "space" => self.space = Some(Space::parse(v)?),
            "space dimension" => {
                let d: usize = v
                    .parse()
                    .map_err(|_| format!("space dimension `{v}` is not a whole number"))?;
                if d != 3 {
                    return Err(format!(
                        "space dimension {d} is not supported; vistaflow reads 3D spaces"
                    ));
                }
                self.space_dimension = Some(d);
            }
            "space directions" => {
                let mut out = Vec::new();
                let mut rest = v.trim();
                while !rest.is_empty() {
                    if let Some(r) = rest.strip_prefix("none") {
                        out.push(None);
                        rest = r.trim_start();
                    } else {
                        let (vec, r) = parse_vector(rest)?;
                        out.push(Some(vec));
                        rest = r.trim_start();
                    }
                }
                self.space_directions = Some(out);
            }
            "space origin" => {
                let (vec, rest) = parse_vector(v)?;
                if !rest.trim().is_empty() {
                    return Err("space origin must be one vector `(x,y,z)`".into());
                }
                self.space_origin = Some(vec);
            }
            "spacings" => self.spacings = Some(parse_floats(v, "spacings")?),
            "axis mins" => self.axis_mins = Some(parse_floats(v, "axis mins")?),
            "kinds" => {
                self.kinds = Some(
                    v.split_whitespace()
                        .map(|s| s.to_ascii_lowercase())
                        .collect(),
                )
            }
            "data file" => {
                let words: Vec<&str> = v.split_whitespace().collect();
                if words.first() == Some(&"LIST") {
                    if words.len() > 1 {
                        return Err(
                            "`data file: LIST` with a sub-dimension is not supported".into()
                        );
                    }
                    self.pending_list = true;
                } else if words.len() >= 4 && words[0].contains('%') {
                    self.data = Some(DataFiles::Detached(pattern_files(&words)?));
                } else if v.is_empty() {
                    return Err("`data file` names no file".into());
                } else {
                    self.data = Some(DataFiles::Detached(vec![v.to_string()]));
                }
            }
            "line skip" => {
                self.line_skip = Some(
                    v.parse()
                        .map_err(|_| format!("line skip `{v}` is not a whole number >= 0"))?,
                )
            }
            "byte skip" => {
                let s: i64 = v
                    .parse()
                    .map_err(|_| format!("byte skip `{v}` is not a whole number"))?;
                if s < -1 {
                    return Err(format!("byte skip {s}: only -1 or >= 0 mean anything"));
                }
                self.byte_skip = Some(s);
            }
            // Fields that do not change the voxels or their place in space, and free text
            // (content, labels, units) that may hold patient data: skipped.
            _ => {}
        }
        Ok(())
    }

    fn finish(self) -> Result<Header, String> {
        let need = |what: &str| format!("the header has no `{what}` field, which NRRD requires");
        let dtype = self.dtype.ok_or_else(|| need("type"))?;
        let dimension = self.dimension.ok_or_else(|| need("dimension"))?;
        let sizes = self.sizes.ok_or_else(|| need("sizes"))?;
        let encoding = self.encoding.ok_or_else(|| need("encoding"))?;
        let per_axis = |what: &str, n: usize| {
            if n == dimension {
                Ok(())
            } else {
                Err(format!(
                    "`{what}` has {n} entries but `dimension` is {dimension}; the header is \
                     inconsistent"
                ))
            }
        };
        per_axis("sizes", sizes.len())?;
        if let Some(d) = &self.space_directions {
            per_axis("space directions", d.len())?;
        }
        if let Some(s) = &self.spacings {
            per_axis("spacings", s.len())?;
        }
        if let Some(s) = &self.axis_mins {
            per_axis("axis mins", s.len())?;
        }
        if let Some(k) = &self.kinds {
            per_axis("kinds", k.len())?;
        }
        if self.space.is_some() && self.space_dimension.is_some() {
            return Err(
                "the header has both `space` and `space dimension`; NRRD allows one".into(),
            );
        }
        let space = self
            .space
            .or(self.space_dimension.map(|_| Space::Unnamed3D));
        if space.is_none() && (self.space_directions.is_some() || self.space_origin.is_some()) {
            return Err(
                "`space directions` or `space origin` without `space` (or `space \
                        dimension`); the header is incomplete"
                    .into(),
            );
        }
        if dtype.size() > 1 && self.big_endian.is_none() {
            return Err(format!(
                "the header has no `endian` field, which NRRD requires for {}-byte samples ({})",
                dtype.size(),
                type_name(dtype)
            ));
        }
        Ok(Header {
            dtype,
            dimension,
            sizes,
            encoding,
            big_endian: self.big_endian,
            space,
            space_directions: self.space_directions,
            space_origin: self.space_origin,
            spacings: self.spacings,
            axis_mins: self.axis_mins,
            kinds: self.kinds,
            data: self.data.unwrap_or(DataFiles::Attached),
            line_skip: self.line_skip.unwrap_or(0),
            byte_skip: self.byte_skip.unwrap_or(0),
            key_values: self.key_values,
            len: 0,
        })
    }
}

/// `(x,y,z)` at the start of `s`: the vector and what follows it.
fn parse_vector(s: &str) -> Result<([f64; 3], &str), String> {
    let s = s.trim_start();
    let body = s.strip_prefix('(').ok_or_else(|| {
        format!(
            "expected a vector `(x,y,z)` or `none`, found `{}`",
            short(s)
        )
    })?;
    let end = body
        .find(')')
        .ok_or_else(|| format!("vector `{}` has no closing `)`", short(s)))?;
    let parts: Vec<&str> = body[..end].split(',').map(str::trim).collect();
    if parts.len() != 3 {
        return Err(format!(
            "vector `({})` has {} components; vistaflow reads 3D spaces",
            &body[..end],
            parts.len()
        ));
    }
    let mut v = [0.0; 3];
    for (o, p) in v.iter_mut().zip(&parts) {
        *o = p
            .parse::<f64>()
            .ok()
            .filter(|x| x.is_finite())
            .ok_or_else(|| format!("vector component `{p}` is not a finite number"))?;
    }
    Ok((v, &body[end + 1..]))
}

/// Numbers, with `nan` allowed (non-spatial axes).
fn parse_floats(v: &str, what: &str) -> Result<Vec<f64>, String> {
    v.split_whitespace()
        .map(|t| {
            t.parse::<f64>()
                .map_err(|_| format!("{what}: `{t}` is not a number"))
        })
        .collect()
}

/// `data file: <format> <min> <max> <step>`: the file names, printf-style `%d` (with an
/// optional zero flag and width) replaced by each number.
fn pattern_files(words: &[&str]) -> Result<Vec<String>, String> {
    if words.len() > 4 {
        return Err("`data file` with a sub-dimension is not supported".into());
    }
    let num = |w: &str| {
        w.parse::<i64>()
            .map_err(|_| format!("data file: `{w}` is not a whole number"))
    };
    let (min, max, step) = (num(words[1])?, num(words[2])?, num(words[3])?);
    if step == 0 || (max - min) / step < 0 || (max - min) / step > 1_000_000 {
        return Err(format!(
            "data file: min {min}, max {max}, step {step} give no sensible list of files"
        ));
    }
    let fmt = words[0];
    let start = fmt.find('%').unwrap_or(0);
    let spec_end = fmt[start + 1..]
        .find('d')
        .map(|e| start + 1 + e)
        .ok_or_else(|| format!("data file: format `{fmt}` has no `%d`"))?;
    let spec = &fmt[start + 1..spec_end];
    if !spec.chars().all(|c| c.is_ascii_digit()) {
        return Err(format!(
            "data file: format `{fmt}`: only %d, %Nd and %0Nd are supported"
        ));
    }
    let zero = spec.starts_with('0');
    let width: usize = spec.parse().unwrap_or(0);
    let mut out = Vec::new();
    let mut i = min;
    while (step > 0 && i <= max) || (step < 0 && i >= max) {
        let n = if zero {
            format!("{i:0width$}")
        } else {
            format!("{i:width$}")
        };
        out.push(format!("{}{n}{}", &fmt[..start], &fmt[spec_end + 1..]));
        i += step;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Header, String> {
        Header::read(&mut text.as_bytes())
    }

    #[test]
    fn pyradiomics_style_header() {
        let h = parse(
            "NRRD0004\n# comment\ntype: short\ndimension: 3\nspace: left-posterior-superior\n\
             sizes: 512 512 48\nspace directions: (0.5703125,0,0) (0,0.5703125,0) (0,0,5)\n\
             kinds: domain domain domain\nendian: little\nencoding: gzip\n\
             space origin: (-146,-325,-777.4999999999998)\n\nDATA",
        )
        .unwrap();
        assert_eq!(h.dtype, DataType::Int16);
        assert_eq!(h.sizes, vec![512, 512, 48]);
        assert_eq!(h.encoding, Encoding::Gzip);
        assert_eq!(h.space, Some(Space::Lps));
        assert_eq!(h.space_origin, Some([-146.0, -325.0, -777.4999999999998]));
        assert_eq!(h.data, DataFiles::Attached);
    }

    #[test]
    fn slicer_seg_header() {
        let h = parse(
            "NRRD0004\ntype: unsigned char\ndimension: 4\nspace: right-anterior-superior\n\
             sizes: 2 10 11 12\nspace directions: none (1,0,0) (0,1,0) (0,0,2)\n\
             kinds: list domain domain domain\nencoding: gzip\nspace origin: (1,2,3)\n\
             Segment0_Name:=liver\nSegment0_LabelValue:=1\n\n",
        )
        .unwrap();
        assert_eq!(h.space_directions.as_ref().unwrap()[0], None);
        assert_eq!(h.value("Segment0_Name"), Some("liver"));
        assert_eq!(h.big_endian, None);
    }

    #[test]
    fn detached_list_and_pattern() {
        let h = parse(
            "NRRD0004\ntype: uint8\ndimension: 3\nsizes: 2 2 2\nencoding: raw\n\
             data file: LIST\na.raw\nb.raw\n",
        )
        .unwrap();
        assert_eq!(
            h.data,
            DataFiles::Detached(vec!["a.raw".into(), "b.raw".into()])
        );
        let h = parse(
            "NRRD0004\ntype: uint8\ndimension: 3\nsizes: 2 2 2\nencoding: raw\n\
             data file: s%03d.raw 1 2 1\n",
        )
        .unwrap();
        assert_eq!(
            h.data,
            DataFiles::Detached(vec!["s001.raw".into(), "s002.raw".into()])
        );
    }

    #[test]
    fn errors_name_the_line() {
        let e = parse("NRRD0004\ntype: short\nthis is junk\n\n").unwrap_err();
        assert!(
            e.contains("header line 3") && e.contains("this is junk"),
            "{e}"
        );
        let e = parse("NRRD0004\ntype: quaternion\n\n").unwrap_err();
        assert!(e.contains("line 2") && e.contains("quaternion"), "{e}");
        let e = parse(
            "NRRD0004\ntype: short\ndimension: 3\nsizes: 2 2\nencoding: raw\nendian: little\n\n",
        )
        .unwrap_err();
        assert!(e.contains("sizes") && e.contains("dimension"), "{e}");
        let e =
            parse("NRRD0004\ntype: short\ndimension: 1\nsizes: 2\nencoding: raw\n\n").unwrap_err();
        assert!(e.contains("endian"), "{e}");
        let e = parse("P5\n").unwrap_err();
        assert!(e.contains("not a NRRD"), "{e}");
        let e =
            parse("NRRD0004\ntype: short\ndimension: 1\nsizes: 2\nencoding: raw\nendian: little\n")
                .unwrap_err();
        assert!(e.contains("blank line"), "{e}");
    }
}
