//! The grey levels of the image under the overlays.
//!
//! - CT: when the image's `units` metadata is `HU` (DICOM CT), or when it has no `units` and
//!   its 1st percentile lies in [-3100, -500] (air; NIfTI carries no units), the fixed soft
//!   tissue window W400/L40: -160 HU is black, 240 HU white.
//! - Anything else: its 1st to 99th percentile.
//!
//! Percentiles are order statistics over every voxel (the `floor(p (N - 1))`-th smallest, no
//! interpolation), so they do not depend on the voxel order. Grey =
//! `floor(clamp((v - lo) / (hi - lo), 0, 1) * 255 + 0.5)`.

use crate::node::NodeError;
use crate::value::Volume;
use tch::{Kind, Tensor};

/// `units` metadata key (as the DICOM loader writes it).
const META_UNITS: &str = "units";

/// A grey-level window.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Window {
    pub lo: f64,
    pub hi: f64,
    pub hu: bool,
}

impl Window {
    /// The soft-tissue CT window, W400/L40.
    pub const CT: Window = Window {
        lo: -160.0,
        hi: 240.0,
        hu: true,
    };

    /// The window for `image` (its tensor already 3D `t`), as the module doc says.
    pub fn of(image: &Volume, t: &Tensor) -> Result<Window, NodeError> {
        let flat = t.f_reshape([-1])?.f_to_kind(Kind::Float)?;
        let units = image.meta.get(META_UNITS).map(String::as_str);
        if units == Some("HU") {
            return Ok(Window::CT);
        }
        if units.is_none() && p1_in(&flat, -3100.0, -500.0)? {
            return Ok(Window::CT);
        }
        let p1 = percentile(&flat, 0.01)?;
        let p99 = percentile(&flat, 0.99)?;
        Ok(Window {
            lo: p1,
            hi: p99,
            hu: false,
        })
    }

    /// The grey level of `v`.
    pub fn grey(&self, v: f32) -> u8 {
        let v = f64::from(v);
        if v.is_nan() {
            return 0;
        }
        if self.hi <= self.lo {
            return if v > self.lo { 255 } else { 0 };
        }
        let f = ((v - self.lo) / (self.hi - self.lo)).clamp(0.0, 1.0);
        (f * 255.0 + 0.5).floor() as u8
    }

    /// For the title line.
    pub fn describe(&self) -> String {
        if self.hu {
            "CT window W400/L40".to_string()
        } else {
            format!(
                "window {} to {} (1st-99th percentile)",
                num(self.lo),
                num(self.hi)
            )
        }
    }
}

/// Whether the 1st percentile (as [`percentile`] defines it) lies in `[lo, hi]`, by counting
/// (two comparisons over the voxels instead of a selection).
fn p1_in(flat: &Tensor, lo: f64, hi: f64) -> Result<bool, NodeError> {
    let n = flat.size()[0];
    if n == 0 {
        return Ok(false);
    }
    let k = ((0.01 * (n - 1) as f64).floor() as i64).clamp(0, n - 1);
    let count =
        |t: Tensor| -> Result<i64, NodeError> { Ok(t.f_sum(Kind::Int64)?.f_int64_value(&[])?) };
    // The k-th smallest (0-based) is <= hi iff more than k values are <= hi, and >= lo iff
    // at most k values are below lo.
    Ok(count(flat.f_le(hi)?)? > k && count(flat.f_lt(lo)?)? <= k)
}

/// The `floor(q (N - 1))`-th smallest value of the 1D tensor `flat` (0-based).
fn percentile(flat: &Tensor, q: f64) -> Result<f64, NodeError> {
    let n = flat.size()[0];
    if n == 0 {
        return Ok(0.0);
    }
    let k = ((q * (n - 1) as f64).floor() as i64).clamp(0, n - 1);
    let (v, _) = flat.f_kthvalue(k + 1, 0, false)?;
    Ok(v.f_double_value(&[])?)
}

/// A number short enough for the title: up to 4 significant digits.
fn num(v: f64) -> String {
    if v.abs() >= 1000.0 || v == v.trunc() {
        format!("{v:.0}")
    } else if v.abs() >= 1.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.3}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ct_window_grey_levels() {
        let w = Window::CT;
        assert_eq!(w.grey(-1000.0), 0);
        assert_eq!(w.grey(-160.0), 0);
        assert_eq!(w.grey(40.0), 128); // 127.5 rounds up
        assert_eq!(w.grey(240.0), 255);
        assert_eq!(w.grey(3000.0), 255);
    }

    #[test]
    fn p1_by_counting_agrees_with_the_selection() {
        let t = Tensor::arange(1001, (Kind::Float, tch::Device::Cpu)) - 1010.0; // -1010..-10
        let p1 = percentile(&t, 0.01).unwrap();
        assert_eq!(p1, -1000.0);
        assert!(p1_in(&t, -3100.0, -500.0).unwrap());
        assert!(p1_in(&t, -1000.0, -1000.0).unwrap());
        assert!(!p1_in(&t, -999.0, -500.0).unwrap());
        assert!(!p1_in(&t, -3100.0, -1001.0).unwrap());
    }

    #[test]
    fn percentiles_of_a_ramp() {
        let t = Tensor::arange(101, (Kind::Float, tch::Device::Cpu));
        assert_eq!(percentile(&t, 0.01).unwrap(), 1.0);
        assert_eq!(percentile(&t, 0.99).unwrap(), 99.0);
    }
}
