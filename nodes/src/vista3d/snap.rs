//! Snapping a mask to supervoxel boundaries: a supervoxel joins the mask when more than half
//! of its voxels are inside, and leaves it otherwise (air, supervoxel 0, never joins). The
//! mask's edges then follow intensity boundaries SLIC found in the image instead of the
//! network's smooth logit level set; it helps most for small structures with sharp edges
//! and a coarse (e.g. 1.5 mm, zero-shot) prediction, and costs detail where a supervoxel is
//! larger than the structure.

use tch::{Kind, Tensor};

/// `mask` (any integer or bool tensor, nonzero = inside) snapped to `supervoxels` (int ids,
/// same shape, 0 = not a supervoxel). Returns a bool tensor of the same shape.
pub fn snap_to_supervoxels(mask: &Tensor, supervoxels: &Tensor) -> Result<Tensor, String> {
    if mask.size() != supervoxels.size() {
        return Err(format!(
            "the supervoxels ({:?}) are not on the mask's grid ({:?}); compute them on the same \
             image",
            supervoxels.size(),
            mask.size()
        ));
    }
    let sv = supervoxels.flatten(0, -1).to_kind(Kind::Int64);
    if sv.numel() == 0 {
        return Ok(mask.ne(0));
    }
    if sv.min().int64_value(&[]) < 0 {
        return Err("supervoxel ids must be >= 0".into());
    }
    let inside = mask.flatten(0, -1).ne(0).to_kind(Kind::Double);
    let total = sv.bincount::<Tensor>(None, 0).to_kind(Kind::Double);
    let within = sv.bincount(Some(&inside), 0);
    let joins = within.gt_tensor(&(total * 0.5));
    let _ = joins.get(0).fill_(0);
    Ok(joins.index_select(0, &sv).view_as(mask))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn majority_inside_joins_minority_leaves() {
        // Supervoxel 1: 4 voxels, 3 inside -> joins; 2: 4 voxels, 2 inside (not most) ->
        // leaves; 0 (air): inside but never joins.
        let sv = Tensor::from_slice(&[1i32, 1, 1, 1, 2, 2, 2, 2, 0, 0]);
        let m = Tensor::from_slice(&[1u8, 1, 1, 0, 1, 1, 0, 0, 1, 1]);
        let got = Vec::<bool>::try_from(&snap_to_supervoxels(&m, &sv).unwrap()).unwrap();
        assert_eq!(
            got,
            [true, true, true, true, false, false, false, false, false, false]
        );
        let e = snap_to_supervoxels(&m, &sv.narrow(0, 0, 5)).unwrap_err();
        assert!(e.contains("not on the mask's grid"), "{e}");
    }
}
