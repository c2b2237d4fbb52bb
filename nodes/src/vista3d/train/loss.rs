//! The reference's training loss: MONAI `DiceCELoss(sigmoid=True, squared_pred=True,
//! smooth_nr=0, smooth_dr=1e-5)` on [N, 1, X, Y, Z] logits, one binary target per prompt.

use tch::{Kind, Reduction, Tensor};

/// Dice (per prompt over its voxels, then the mean) + binary cross-entropy (mean over all).
pub fn dice_ce(logits: &Tensor, target: &Tensor) -> Tensor {
    let p = logits.sigmoid();
    let dims: &[i64] = &[2, 3, 4];
    let inter = (&p * target).sum_dim_intlist(dims, false, Kind::Float);
    let denom = p.square().sum_dim_intlist(dims, false, Kind::Float)
        + target.square().sum_dim_intlist(dims, false, Kind::Float);
    let dice: Tensor = 1.0 - (inter * 2.0) / (denom + 1e-5);
    let ce = logits.binary_cross_entropy_with_logits::<Tensor>(target, None, None, Reduction::Mean);
    dice.mean(Kind::Float) + ce
}

/// Hard Dice of the thresholded prediction per prompt (for the log): [N]; NaN where both are
/// empty.
pub fn hard_dice(logits: &Tensor, target: &Tensor) -> Vec<f64> {
    let _g = tch::no_grad_guard();
    let pred = logits.gt(0.0).to_kind(Kind::Float);
    let dims: &[i64] = &[1, 2, 3, 4];
    let inter = (&pred * target).sum_dim_intlist(dims, false, Kind::Double);
    let sum = pred.sum_dim_intlist(dims, false, Kind::Double)
        + target.sum_dim_intlist(dims, false, Kind::Double);
    let d = inter * 2.0 / sum;
    Vec::<f64>::try_from(&d).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Against MONAI 1.6.1: `DiceCELoss(sigmoid=True, squared_pred=True, smooth_nr=0,
    /// smooth_dr=1e-5)(x, y)` for x = arange(16).view(2,1,2,2,2)/4 - 2, y = the voxels with an
    /// even index = 1.3682928.
    #[test]
    fn matches_monai_dice_ce() {
        let x =
            Tensor::arange(16, (Kind::Float, tch::Device::Cpu)).view([2, 1, 2, 2, 2]) / 4.0 - 2.0;
        let y = Tensor::arange(16, (Kind::Int64, tch::Device::Cpu))
            .remainder(2)
            .eq(0)
            .to_kind(Kind::Float)
            .view([2, 1, 2, 2, 2]);
        let got = dice_ce(&x, &y).double_value(&[]);
        assert!((got - MONAI).abs() < 1e-5, "{got}");
    }
    const MONAI: f64 = 1.3682928;
}
