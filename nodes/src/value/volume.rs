//! [`Volume`]: a tensor plus the geometry that places it in the patient.

use std::collections::BTreeMap;
use std::sync::Arc;
use tch::{Device, Kind, Tensor};

/// Where a volume's voxels are in the patient.
///
/// Convention (one for the whole project): the tensor is indexed `[k, j, i]` (`[D, H, W]`,
/// `i` fastest in memory, as NIfTI and DICOM store pixels), and `affine_lps` maps the voxel
/// index `(i, j, k, 1)` to **LPS** millimetres (DICOM/ITK patient space: +x left, +y
/// posterior, +z superior). NIfTI's RAS affines are converted at the file edge.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Geometry {
    pub affine_lps: [[f64; 4]; 4],
}

impl Geometry {
    /// Converts a RAS affine (NIfTI, nibabel) into this LPS geometry.
    pub fn from_ras(affine_ras: [[f64; 4]; 4]) -> Self {
        Geometry {
            affine_lps: flip_xy(affine_ras),
        }
    }

    /// The voxel -> RAS mm affine, as NIfTI stores it.
    pub fn affine_ras(&self) -> [[f64; 4]; 4] {
        flip_xy(self.affine_lps)
    }

    /// Voxel spacing in mm along i, j, k: the lengths of the affine's first three columns.
    pub fn spacing(&self) -> [f64; 3] {
        let a = &self.affine_lps;
        let mut s = [0.0; 3];
        for (c, out) in s.iter_mut().enumerate() {
            *out = (a[0][c] * a[0][c] + a[1][c] * a[1][c] + a[2][c] * a[2][c]).sqrt();
        }
        s
    }

    /// An axis-aligned geometry with the given spacing and origin (LPS mm).
    pub fn axis_aligned(spacing: [f64; 3], origin_lps: [f64; 3]) -> Self {
        let mut a = [[0.0; 4]; 4];
        for r in 0..3 {
            a[r][r] = spacing[r];
            a[r][3] = origin_lps[r];
        }
        a[3][3] = 1.0;
        Geometry { affine_lps: a }
    }
}

/// Negates the first two rows: LPS <-> RAS, the same operation both ways.
fn flip_xy(mut a: [[f64; 4]; 4]) -> [[f64; 4]; 4] {
    for row in a.iter_mut().take(2) {
        for v in row.iter_mut() {
            *v = -*v;
        }
    }
    a
}

/// A 3D image (`[D, H, W]`) or a multi-channel one (`[C, D, H, W]`) with its geometry.
///
/// Tensors are shared between values, never mutated in place: a node that wants to change
/// voxels makes a new tensor. That contract is what makes sharing a `Volume` between threads
/// sound (see the `Sync` impl below).
pub struct Volume {
    data: Tensor,
    geometry: Geometry,
    /// Small non-identifying facts about the source (modality, units). Shown and logged.
    pub meta: BTreeMap<String, String>,
    /// Identifying attributes of the source (e.g. DICOM study/series/frame-of-reference UIDs
    /// and the patient module) kept only so that exports such as DICOM SEG can reference it.
    /// Never logged, traced or shown: `Debug` prints only whether it is present.
    pub identity: Option<Arc<serde_json::Value>>,
}

impl std::fmt::Debug for Volume {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Volume")
            .field("shape", &self.data.size())
            .field("kind", &self.data.kind())
            .field("device", &self.data.device())
            .field("geometry", &self.geometry)
            .field("meta", &self.meta)
            .field("identity", &self.identity.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

// SAFETY: tch marks `Tensor` Send but not Sync because `&Tensor` could in principle reach an
// in-place op through `shallow_clone`. Nodes never mutate a tensor they received (documented
// contract above); libtorch's refcounting is atomic and read-only ops are thread-safe.
unsafe impl Sync for Volume {}

impl Volume {
    /// Wraps a tensor; fails unless it is 3D `[D,H,W]` or 4D `[C,D,H,W]` on the CPU or a GPU.
    pub fn new(data: Tensor, geometry: Geometry) -> Result<Self, String> {
        let dim = data.dim();
        if dim != 3 && dim != 4 {
            return Err(format!(
                "a volume must be 3D [D,H,W] or 4D [C,D,H,W], got shape {:?}",
                data.size()
            ));
        }
        Ok(Volume {
            data,
            geometry,
            meta: BTreeMap::new(),
            identity: None,
        })
    }

    pub fn with_meta(mut self, key: &str, value: impl Into<String>) -> Self {
        self.meta.insert(key.to_string(), value.into());
        self
    }

    pub fn data(&self) -> &Tensor {
        &self.data
    }

    pub fn geometry(&self) -> &Geometry {
        &self.geometry
    }

    /// Spatial shape `[D, H, W]` (= `[nk, nj, ni]`).
    pub fn spatial_shape(&self) -> [i64; 3] {
        let s = self.data.size();
        let n = s.len();
        [s[n - 3], s[n - 2], s[n - 1]]
    }

    pub fn kind(&self) -> Kind {
        self.data.kind()
    }

    pub fn device(&self) -> Device {
        self.data.device()
    }

    pub fn nbytes(&self) -> u64 {
        (self.data.numel() * self.data.kind().elt_size_in_bytes()) as u64
    }

    /// The same volume with its tensor moved to `device` (shared when already there).
    pub fn to_device(&self, device: Device) -> Volume {
        Volume {
            data: self.data.to_device(device),
            geometry: self.geometry,
            meta: self.meta.clone(),
            identity: self.identity.clone(),
        }
    }
}

impl Clone for Volume {
    fn clone(&self) -> Self {
        Volume {
            data: self.data.shallow_clone(),
            geometry: self.geometry,
            meta: self.meta.clone(),
            identity: self.identity.clone(),
        }
    }
}

impl PartialEq for Volume {
    /// Same geometry, metadata, dtype, shape and voxel values.
    fn eq(&self, other: &Self) -> bool {
        self.geometry == other.geometry
            && self.meta == other.meta
            && self.identity == other.identity
            && self.data.kind() == other.data.kind()
            && self.data.size() == other.data.size()
            && self.data.equal(&other.data)
    }
}
