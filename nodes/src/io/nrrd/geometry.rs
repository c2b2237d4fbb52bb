//! From a NRRD header to vistaflow's tensor layout and LPS affine, and back.
//!
//! - The three axes with a `space directions` vector are i, j, k in file order (i fastest);
//!   the affine's columns are those vectors and its translation the `space origin` (0 when
//!   absent, as ITK), all turned into LPS by the signs of the header's
//!   [`Space`](super::header::Space).
//! - At most one axis may be non-spatial (`none` in `space directions`; without a space, a
//!   kind other than `domain`/`space` or a NaN spacing): it becomes the channel axis C of a
//!   `[C, D, H, W]` tensor wherever it is in the file (Slicer puts it first, i.e. fastest).
//!   A channel axis of size 1 is dropped.
//! - Without `space` (old-style files), `spacings` give an axis-aligned affine (1 where not
//!   finite) and `axis mins` the origin (0 where absent).

use super::header::Header;

pub type Mat4 = [[f64; 4]; 4];

/// Where the voxels go and where they are in the patient.
#[derive(Clone, Debug)]
pub struct Layout {
    /// The on-disk sample order as a C-order tensor shape: sizes reversed.
    pub disk_shape: Vec<i64>,
    /// The index in `disk_shape` of the non-spatial axis (moved to the front), if there is
    /// one of size > 1.
    pub channel: Option<usize>,
    /// The index in `disk_shape` of a non-spatial axis of size 1, dropped.
    pub dropped: Option<usize>,
    pub affine_lps: Mat4,
}

impl Layout {
    pub fn of(h: &Header) -> Result<Layout, String> {
        if !(3..=4).contains(&h.dimension) {
            return Err(format!(
                "dimension {} is not supported; vistaflow reads 3D volumes and 4D ones with one \
                 non-spatial (channel) axis",
                h.dimension
            ));
        }
        let (spatial, nonspatial) = split_axes(h)?;
        let mut a = [[0.0; 4]; 4];
        a[3][3] = 1.0;
        match (&h.space, &h.space_directions) {
            (Some(space), Some(dirs)) => {
                let s = space.to_lps();
                for (c, &ax) in spatial.iter().enumerate() {
                    let v = dirs[ax].expect("spatial axes have a direction");
                    for r in 0..3 {
                        a[r][c] = v[r] * s[r];
                    }
                }
                let o = h.space_origin.unwrap_or([0.0; 3]);
                for r in 0..3 {
                    a[r][3] = o[r] * s[r];
                }
            }
            (Some(space), None) => {
                return Err(format!(
                    "the header names a space ({}) but has no `space directions`; the geometry \
                     is incomplete",
                    space.name()
                ))
            }
            (None, _) => {
                for (c, &ax) in spatial.iter().enumerate() {
                    let sp = h
                        .spacings
                        .as_ref()
                        .map(|s| s[ax])
                        .filter(|v| v.is_finite() && *v != 0.0)
                        .unwrap_or(1.0);
                    a[c][c] = sp;
                    a[c][3] = h
                        .axis_mins
                        .as_ref()
                        .map(|m| m[ax])
                        .filter(|v| v.is_finite())
                        .unwrap_or(0.0);
                }
            }
        }
        let det = det3(&a);
        if !det.is_finite() || det.abs() < 1e-12 {
            return Err(format!(
                "the space directions {:?} are degenerate (a zero or repeated direction): no \
                 voxel-to-patient mapping",
                spatial
                    .iter()
                    .map(|&ax| h.space_directions.as_ref().and_then(|d| d[ax]))
                    .collect::<Vec<_>>()
            ));
        }
        let n = h.dimension;
        let disk_shape: Vec<i64> = h.sizes.iter().rev().map(|&s| s as i64).collect();
        let (channel, dropped) = match nonspatial {
            Some(ax) if h.sizes[ax] > 1 => (Some(n - 1 - ax), None),
            Some(ax) => (None, Some(n - 1 - ax)),
            None => (None, None),
        };
        Ok(Layout {
            disk_shape,
            channel,
            dropped,
            affine_lps: a,
        })
    }

    /// The shape of the tensor handed out: `[C, D, H, W]` or `[D, H, W]`.
    pub fn tensor_shape(&self) -> Vec<i64> {
        let mut s = Vec::new();
        if let Some(c) = self.channel {
            s.push(self.disk_shape[c]);
        }
        for (i, &d) in self.disk_shape.iter().enumerate() {
            if Some(i) != self.channel && Some(i) != self.dropped {
                s.push(d);
            }
        }
        s
    }
}

/// The spatial axes (file order) and the non-spatial one, if any.
fn split_axes(h: &Header) -> Result<([usize; 3], Option<usize>), String> {
    let n = h.dimension;
    let nonspatial: Vec<usize> = match (&h.space, &h.space_directions) {
        (Some(_), Some(dirs)) => (0..n).filter(|&ax| dirs[ax].is_none()).collect(),
        _ if n == 3 => vec![],
        _ => {
            let by_kind: Vec<usize> = h
                .kinds
                .as_ref()
                .map(|k| {
                    (0..n)
                        .filter(|&ax| !matches!(k[ax].as_str(), "domain" | "space"))
                        .collect()
                })
                .unwrap_or_default();
            let by_spacing: Vec<usize> = h
                .spacings
                .as_ref()
                .map(|s| (0..n).filter(|&ax| s[ax].is_nan()).collect())
                .unwrap_or_default();
            if by_kind.len() == 1 {
                by_kind
            } else if by_spacing.len() == 1 {
                by_spacing
            } else {
                return Err(
                    "a 4D file without `space directions`: cannot tell which axis is the \
                     channel (non-spatial) one; give it a non-domain `kinds` entry (e.g. \
                     `list`) or `space directions` with `none`"
                        .into(),
                );
            }
        }
    };
    if nonspatial.len() + 3 != n {
        return Err(format!(
            "{} of the {n} axes have a space direction; vistaflow needs exactly 3 spatial axes \
             (2D images are not supported) and at most one non-spatial (channel) axis",
            n - nonspatial.len()
        ));
    }
    let spatial: Vec<usize> = (0..n).filter(|ax| !nonspatial.contains(ax)).collect();
    Ok((
        [spatial[0], spatial[1], spatial[2]],
        nonspatial.first().copied(),
    ))
}

fn det3(a: &Mat4) -> f64 {
    a[0][0] * (a[1][1] * a[2][2] - a[1][2] * a[2][1])
        - a[0][1] * (a[1][0] * a[2][2] - a[1][2] * a[2][0])
        + a[0][2] * (a[1][0] * a[2][1] - a[1][1] * a[2][0])
}

/// `(x,y,z)` with each number in Rust's shortest round-trip form (exact on re-read).
pub fn vector(v: [f64; 3]) -> String {
    format!("({},{},{})", num(v[0]), num(v[1]), num(v[2]))
}

/// A number as written in headers: shortest round-trip decimal, `-0` written as `0`.
fn num(x: f64) -> String {
    if x == 0.0 {
        "0".into()
    } else {
        format!("{x}")
    }
}

/// The header lines (without `space:`) that place a volume of `affine_lps` in LPS space:
/// `space directions` (with `none` last for a channel axis) and `space origin`.
pub fn space_fields(affine_lps: &Mat4, channels: bool) -> Result<String, String> {
    if affine_lps.iter().flatten().any(|v| !v.is_finite()) {
        return Err(format!("the volume's affine is not finite: {affine_lps:?}"));
    }
    let col = |c: usize| [affine_lps[0][c], affine_lps[1][c], affine_lps[2][c]];
    let mut dirs: Vec<String> = (0..3).map(|c| vector(col(c))).collect();
    if channels {
        dirs.push("none".into());
    }
    Ok(format!(
        "space directions: {}\nspace origin: {}\n",
        dirs.join(" "),
        vector(col(3))
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(text: &str) -> Header {
        Header::read(&mut text.as_bytes()).unwrap()
    }

    #[test]
    fn ras_is_flipped_to_lps() {
        let h = header(
            "NRRD0004\ntype: uint8\ndimension: 3\nspace: right-anterior-superior\nsizes: 2 3 4\n\
             space directions: (-1,0,0) (0,-2,0) (0,0,3)\nencoding: raw\nspace origin: (10,20,30)\n\n",
        );
        let l = Layout::of(&h).unwrap();
        assert_eq!(l.affine_lps[0], [1.0, 0.0, 0.0, -10.0]);
        assert_eq!(l.affine_lps[1], [0.0, 2.0, 0.0, -20.0]);
        assert_eq!(l.affine_lps[2], [0.0, 0.0, 3.0, 30.0]);
        assert_eq!(l.tensor_shape(), vec![4, 3, 2]);
    }

    #[test]
    fn channel_axis_first_or_last() {
        let h = header(
            "NRRD0004\ntype: uint8\ndimension: 4\nspace: LPS\nsizes: 5 2 3 4\n\
             space directions: none (1,0,0) (0,1,0) (0,0,1)\nencoding: raw\n\n",
        );
        let l = Layout::of(&h).unwrap();
        assert_eq!(l.disk_shape, vec![4, 3, 2, 5]);
        assert_eq!(l.channel, Some(3));
        assert_eq!(l.tensor_shape(), vec![5, 4, 3, 2]);
        let h = header(
            "NRRD0004\ntype: uint8\ndimension: 4\nspace: LPS\nsizes: 2 3 4 1\n\
             space directions: (1,0,0) (0,1,0) (0,0,1) none\nencoding: raw\n\n",
        );
        let l = Layout::of(&h).unwrap();
        assert_eq!(l.channel, None);
        assert_eq!(l.tensor_shape(), vec![4, 3, 2]);
    }

    #[test]
    fn no_space_uses_spacings_and_kinds() {
        let h = header(
            "NRRD0004\ntype: uint8\ndimension: 4\nsizes: 3 2 3 4\nkinds: vector domain domain domain\n\
             spacings: nan 0.5 0.5 2\naxis mins: nan 1 2 3\nencoding: raw\n\n",
        );
        let l = Layout::of(&h).unwrap();
        assert_eq!(l.affine_lps[0], [0.5, 0.0, 0.0, 1.0]);
        assert_eq!(l.affine_lps[2], [0.0, 0.0, 2.0, 3.0]);
        assert_eq!(l.tensor_shape(), vec![3, 4, 3, 2]);
    }

    #[test]
    fn two_d_and_degenerate_are_refused() {
        let h = header(
            "NRRD0004\ntype: uint8\ndimension: 3\nspace: LPS\nsizes: 2 3 4\n\
             space directions: none (1,0,0) (0,1,0)\nencoding: raw\n\n",
        );
        assert!(Layout::of(&h).unwrap_err().contains("2D"));
        let h = header(
            "NRRD0004\ntype: uint8\ndimension: 3\nspace: LPS\nsizes: 2 3 4\n\
             space directions: (1,0,0) (1,0,0) (0,0,1)\nencoding: raw\n\n",
        );
        assert!(Layout::of(&h).unwrap_err().contains("degenerate"));
    }

    #[test]
    fn fields_round_trip_exactly() {
        let a = [
            [0.1 + 0.2, 0.0, 0.0, -146.0],
            [0.0, -0.7812499999999999, 0.0, 99.60937499999999],
            [0.0, 0.0, 5.0, -777.4999999999998],
            [0.0, 0.0, 0.0, 1.0],
        ];
        let text = format!(
            "NRRD0004\ntype: uint8\ndimension: 3\nspace: left-posterior-superior\nsizes: 2 3 4\n{}\
             encoding: raw\n\n",
            space_fields(&a, false).unwrap()
        );
        assert_eq!(Layout::of(&header(&text)).unwrap().affine_lps, a);
    }
}
