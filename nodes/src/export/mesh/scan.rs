//! The voxels of a label map as a plain slice, and one pass over them that finds, for every
//! class id present, its voxel count and bounding box.

use crate::node::NodeError;
use crate::value::LabelMap;
use rayon::prelude::*;
use std::collections::BTreeMap;
use tch::{Device, Kind, Tensor};

/// An integer voxel type a label map can hold.
pub(crate) trait LabelValue: Copy + PartialEq + Send + Sync + 'static {
    /// The class id as a wide integer.
    fn id(self) -> i64;
    /// `id` in this type, or `None` when it cannot be represented (so it never occurs).
    fn from_id(id: i64) -> Option<Self>;
}

macro_rules! label_value {
    ($($t:ty),*) => {$(
        impl LabelValue for $t {
            fn id(self) -> i64 {
                self as i64
            }
            fn from_id(id: i64) -> Option<Self> {
                <$t>::try_from(id).ok()
            }
        }
    )*};
}
label_value!(u8, i8, i16, i32, i64);

/// The voxels of a label map in memory order (`i` fastest), with the volume's size.
pub(crate) struct LabelGrid<T> {
    pub data: Vec<T>,
    /// Size along `[i, j, k]`.
    pub dims: [usize; 3],
}

impl<T: LabelValue> LabelGrid<T> {
    /// The flat index of voxel `(i, j, k)`.
    pub fn index(&self, i: usize, j: usize, k: usize) -> usize {
        (k * self.dims[1] + j) * self.dims[0] + i
    }
}

/// The voxels of a label map in their own integer type.
pub(crate) enum Voxels {
    U8(LabelGrid<u8>),
    I8(LabelGrid<i8>),
    I16(LabelGrid<i16>),
    I32(LabelGrid<i32>),
    I64(LabelGrid<i64>),
}

/// Copies the voxels of `labels` to the CPU; a `[1, D, H, W]` volume counts as `[D, H, W]`.
pub(crate) fn voxels(labels: &LabelMap) -> Result<Voxels, NodeError> {
    let t = labels.volume.data();
    let size = t.size();
    if size.len() == 4 && size[0] != 1 {
        return Err(NodeError::Invalid(format!(
            "the label map has {} channels (shape {size:?}); meshes are made from a single \
             3D label map [D,H,W]: pick one channel first",
            size[0]
        )));
    }
    let [nk, nj, ni] = labels.volume.spatial_shape();
    let dims = [ni as usize, nj as usize, nk as usize];
    let flat = t
        .f_to_device(Device::Cpu)?
        .f_reshape([-1])?
        .f_contiguous()?;
    fn grid<T: LabelValue + tch::kind::Element>(
        flat: &Tensor,
        dims: [usize; 3],
    ) -> Result<LabelGrid<T>, NodeError> {
        let data = Vec::<T>::try_from(flat).map_err(|e| NodeError::Torch(e.to_string()))?;
        Ok(LabelGrid { data, dims })
    }
    Ok(match flat.kind() {
        Kind::Uint8 => Voxels::U8(grid(&flat, dims)?),
        Kind::Int8 => Voxels::I8(grid(&flat, dims)?),
        Kind::Int16 => Voxels::I16(grid(&flat, dims)?),
        Kind::Int => Voxels::I32(grid(&flat, dims)?),
        Kind::Int64 => Voxels::I64(grid(&flat, dims)?),
        k => {
            return Err(NodeError::Invalid(format!(
                "a label map needs an integer dtype, got {k:?}"
            )))
        }
    })
}

/// Where one class is: voxel count and inclusive bounding box along `[i, j, k]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClassExtent {
    pub count: u64,
    pub min: [usize; 3],
    pub max: [usize; 3],
}

impl ClassExtent {
    fn new(i0: usize, i1: usize, j: usize, k: usize) -> Self {
        ClassExtent {
            count: (i1 - i0 + 1) as u64,
            min: [i0, j, k],
            max: [i1, j, k],
        }
    }

    fn merge(&mut self, o: &ClassExtent) {
        self.count += o.count;
        for a in 0..3 {
            self.min[a] = self.min[a].min(o.min[a]);
            self.max[a] = self.max[a].max(o.max[a]);
        }
    }
}

/// Every non-zero id present (negative ones included) with its extent. Runs of equal
/// voxels along `i` are counted at once; slices along `k` are scanned in parallel.
pub(crate) fn extents<T: LabelValue>(g: &LabelGrid<T>) -> BTreeMap<i64, ClassExtent> {
    let [ni, nj, _] = g.dims;
    let plane = ni * nj;
    if plane == 0 {
        return BTreeMap::new();
    }
    let zero = T::from_id(0);
    g.data
        .par_chunks(plane)
        .enumerate()
        .map(|(k, slice)| {
            let mut out: BTreeMap<i64, ClassExtent> = BTreeMap::new();
            for (j, row) in slice.chunks(ni).enumerate() {
                let mut i = 0;
                while i < ni {
                    let v = row[i];
                    let start = i;
                    while i < ni && row[i] == v {
                        i += 1;
                    }
                    if Some(v) == zero {
                        continue;
                    }
                    let run = ClassExtent::new(start, i - 1, j, k);
                    out.entry(v.id())
                        .and_modify(|e| e.merge(&run))
                        .or_insert(run);
                }
            }
            out
        })
        .reduce(BTreeMap::new, |mut a, b| {
            for (id, e) in b {
                a.entry(id).and_modify(|x| x.merge(&e)).or_insert(e);
            }
            a
        })
}
