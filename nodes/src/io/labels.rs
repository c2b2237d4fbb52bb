//! Label maps from float (or scaled) samples: whole numbers into the smallest integer kind.

use tch::{Kind, Tensor};

/// `values` (of any kind; computed in float64) as the smallest of uint8, int16, int32, int64
/// that holds their range. Values that are not whole numbers are an error; `note` follows
/// the example value in its message (e.g. ` after scl_slope/scl_inter`, or empty).
pub(crate) fn to_label_kind(values: Tensor, note: &str) -> Result<Tensor, String> {
    let t = |e: tch::TchError| format!("libtorch: {e}");
    let v = values.f_to_kind(Kind::Double).map_err(t)?;
    let bad = v
        .f_frac()
        .map_err(t)?
        .f_ne(0.0)
        .map_err(t)?
        .f_logical_or(&v.f_isfinite().map_err(t)?.f_logical_not().map_err(t)?)
        .map_err(t)?;
    let nbad = bad
        .f_sum(Kind::Int64)
        .map_err(t)?
        .f_int64_value(&[])
        .map_err(t)?;
    if nbad > 0 {
        let example = v
            .f_masked_select(&bad)
            .map_err(t)?
            .f_double_value(&[0])
            .map_err(t)?;
        return Err(format!(
            "labels: true, but {nbad} voxels are not whole numbers (e.g. {example}{note}); this \
             looks like an image, not a label map: load it with labels: false"
        ));
    }
    let min = v.f_min().map_err(t)?.f_double_value(&[]).map_err(t)?;
    let max = v.f_max().map_err(t)?.f_double_value(&[]).map_err(t)?;
    let kind = if min >= 0.0 && max <= 255.0 {
        Kind::Uint8
    } else if min >= i16::MIN as f64 && max <= i16::MAX as f64 {
        Kind::Int16
    } else if min >= i32::MIN as f64 && max <= i32::MAX as f64 {
        Kind::Int
    } else if min >= -(2f64.powi(63)) && max < 2f64.powi(63) {
        Kind::Int64
    } else {
        return Err(format!("label values span {min}..{max}, beyond int64"));
    };
    v.f_to_kind(kind).map_err(t)
}
