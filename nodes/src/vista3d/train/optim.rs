//! AdamW (PyTorch's `torch.optim.AdamW` update, betas 0.9/0.999, eps 1e-8) with its moments
//! kept as named tensors, so a checkpoint can hold them and a resumed run continues bit for
//! bit (tch's built-in optimizers do not expose their state). Gradients are computed per
//! step, not accumulated into `.grad`: a parameter outside a step's graph (the point head in
//! a class-only step) gets no update, as PyTorch's `zero_grad(set_to_none=True)` gives, and
//! the same whether or not the process ran earlier steps. Plus the learning-rate schedule.

use std::collections::BTreeMap;
use tch::Tensor;

/// The learning rate after warm-up.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, crate::params::ParamChoice)]
pub enum Schedule {
    /// Cosine decay to 5 % of `lr` at the last step.
    #[default]
    Cosine,
    /// `lr` throughout.
    Constant,
}

impl Schedule {
    pub fn is_cosine(&self) -> bool {
        *self == Schedule::Cosine
    }
}

const BETA1: f64 = 0.9;
const BETA2: f64 = 0.999;
const EPS: f64 = 1e-8;

pub struct AdamW {
    params: BTreeMap<String, Tensor>,
    pub exp_avg: BTreeMap<String, Tensor>,
    pub exp_avg_sq: BTreeMap<String, Tensor>,
    pub weight_decay: f64,
    /// Updates done so far (bias correction uses it).
    pub steps: i64,
}

impl AdamW {
    /// Over the trainable `params` (name -> variable), moments zero.
    pub fn new(params: BTreeMap<String, Tensor>, weight_decay: f64) -> Self {
        let zeros = |m: &BTreeMap<String, Tensor>| {
            m.iter()
                .map(|(k, t)| (k.clone(), t.zeros_like().detach()))
                .collect()
        };
        AdamW {
            exp_avg: zeros(&params),
            exp_avg_sq: zeros(&params),
            params,
            weight_decay,
            steps: 0,
        }
    }

    /// Continues from a checkpoint: its moments (matched by name) after `steps` updates.
    pub fn restore(
        &mut self,
        steps: i64,
        exp_avg: &BTreeMap<String, Tensor>,
        exp_avg_sq: &BTreeMap<String, Tensor>,
    ) {
        copy_by_name(&self.exp_avg, exp_avg);
        copy_by_name(&self.exp_avg_sq, exp_avg_sq);
        self.steps = steps;
    }

    /// Backpropagates `loss` and applies one update with learning rate `lr`.
    /// A loss that no trainable parameter reaches (a class-only step with the class head and
    /// encoder frozen) still counts as an update, so that `steps` stays the step number a
    /// checkpoint restores.
    pub fn minimise(&mut self, loss: &Tensor, lr: f64) {
        let params: Vec<&Tensor> = self.params.values().collect();
        let grads = if loss.requires_grad() {
            Tensor::run_backward(&[loss], &params, false, false)
        } else {
            params.iter().map(|_| Tensor::new()).collect()
        };
        self.step(&grads, lr);
    }

    /// One update from `grads` (in the order of the parameters' names; undefined: the
    /// parameter was not used and is left alone).
    fn step(&mut self, grads: &[Tensor], lr: f64) {
        let _g = tch::no_grad_guard();
        self.steps += 1;
        let bc1 = 1.0 - BETA1.powi(self.steps as i32);
        let bc2 = 1.0 - BETA2.powi(self.steps as i32);
        for ((name, p), g) in self.params.iter_mut().zip(grads) {
            if !g.defined() {
                continue;
            }
            let m = self.exp_avg.get_mut(name).expect("moment per parameter");
            let v = self.exp_avg_sq.get_mut(name).expect("moment per parameter");
            let _ = p.g_mul_scalar_(1.0 - lr * self.weight_decay);
            let _ = m.g_mul_scalar_(BETA1).g_add_(&(g * (1.0 - BETA1)));
            let _ = v.g_mul_scalar_(BETA2).g_add_(&(g * g * (1.0 - BETA2)));
            let denom = (v.sqrt() / bc2.sqrt()) + EPS;
            let _ = p.g_sub_(&(&*m / &denom * (lr / bc1)));
        }
    }
}

/// Copies each tensor of `src` into the tensor of the same name in `dst` (in place, so
/// variables keep their identity); names missing from `src` are left alone.
pub fn copy_by_name<'a>(
    dst: impl IntoIterator<Item = (&'a String, &'a Tensor)>,
    src: &BTreeMap<String, Tensor>,
) {
    let _g = tch::no_grad_guard();
    for (k, t) in dst {
        if let Some(from) = src.get(k) {
            t.shallow_clone().copy_(from);
        }
    }
}

/// An exponential moving average of the weights (Polyak averaging), updated after every
/// step: `avg += (1 - decay) * (weights - avg)`, starting from the weights at step 0. With
/// one patch per step the weights jitter from step to step; their average often generalises
/// better than the last of them (not measured on the demo model).
pub struct Ema {
    decay: f64,
    params: BTreeMap<String, Tensor>,
    pub avg: BTreeMap<String, Tensor>,
}

impl Ema {
    pub fn new(params: BTreeMap<String, Tensor>, decay: f64) -> Self {
        let avg = params
            .iter()
            .map(|(k, t)| (k.clone(), t.detach().copy()))
            .collect();
        Ema { decay, params, avg }
    }

    pub fn update(&mut self) {
        let _g = tch::no_grad_guard();
        for (k, p) in &self.params {
            let a = self.avg.get_mut(k).expect("an average per parameter");
            let _ = a.lerp_(p, 1.0 - self.decay);
        }
    }

    /// Continues from a checkpoint's averages (matched by name).
    pub fn restore(&mut self, saved: &BTreeMap<String, Tensor>) {
        copy_by_name(&self.avg, saved);
    }

    /// Puts the averages into the parameters (the run is over).
    pub fn apply(&self) {
        let _g = tch::no_grad_guard();
        for (k, p) in &self.params {
            p.shallow_clone().copy_(&self.avg[k]);
        }
    }
}

/// Linear warm-up over `warmup` steps, then cosine decay to 5 % of `lr` at `total` (or `lr`
/// held, with `Schedule::Constant`).
pub fn learning_rate(lr: f64, step: i64, warmup: i64, total: i64, schedule: Schedule) -> f64 {
    if step < warmup {
        return lr * (step + 1) as f64 / warmup as f64;
    }
    if schedule == Schedule::Constant {
        return lr;
    }
    let span = (total - warmup).max(1) as f64;
    let t = ((step - warmup) as f64 / span).clamp(0.0, 1.0);
    lr * (0.05 + 0.95 * 0.5 * (1.0 + (std::f64::consts::PI * t).cos()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::Kind;

    /// Against PyTorch's AdamW (torch 2.x: `AdamW([p], lr=0.1, weight_decay=0.01)`, three
    /// steps of loss sum(p^2) from p = [1, -2]) -> [0.6989112, -1.6949446].
    #[test]
    fn ema_averages_and_applies() {
        let w = Tensor::from_slice(&[0.0f32, 4.0]);
        let mut params = BTreeMap::new();
        params.insert("w".to_string(), w.shallow_clone());
        let mut ema = Ema::new(params, 0.5);
        w.shallow_clone().copy_(&Tensor::from_slice(&[2.0f32, 0.0]));
        ema.update();
        w.shallow_clone().copy_(&Tensor::from_slice(&[2.0f32, 0.0]));
        ema.update();
        // 0 -> 1 -> 1.5; 4 -> 2 -> 1.
        let avg: Vec<f32> = Vec::try_from(&ema.avg["w"]).unwrap();
        assert_eq!(avg, vec![1.5, 1.0]);
        ema.apply();
        let now: Vec<f32> = Vec::try_from(&w).unwrap();
        assert_eq!(now, vec![1.5, 1.0]);
    }

    #[test]
    fn matches_torch_adamw_updates() {
        let p = Tensor::from_slice(&[1.0f32, -2.0]).set_requires_grad(true);
        let mut opt = AdamW::new(BTreeMap::from([("p".to_string(), p.shallow_clone())]), 0.01);
        for _ in 0..3 {
            let loss = (&p * &p).sum(Kind::Float);
            opt.minimise(&loss, 0.1);
        }
        let got: Vec<f32> = Vec::try_from(&p.detach()).unwrap();
        for (g, w) in got.iter().zip([0.6989112f32, -1.6949446]) {
            assert!((g - w).abs() < 1e-6, "{got:?}");
        }
    }

    #[test]
    fn schedule_warms_up_then_decays() {
        assert!((learning_rate(1.0, 0, 10, 100, Schedule::Cosine) - 0.1).abs() < 1e-12);
        assert!((learning_rate(1.0, 10, 10, 100, Schedule::Cosine) - 1.0).abs() < 1e-12);
        assert!((learning_rate(1.0, 100, 10, 100, Schedule::Cosine) - 0.05).abs() < 1e-12);
        assert!(learning_rate(1.0, 55, 10, 100, Schedule::Cosine) < 0.6);
        assert_eq!(learning_rate(1.0, 55, 10, 100, Schedule::Constant), 1.0);
        assert!((learning_rate(1.0, 4, 10, 100, Schedule::Constant) - 0.5).abs() < 1e-12);
    }
}
