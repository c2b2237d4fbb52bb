//! Small building blocks whose variables are named as in PyTorch (`weight`, `bias`), created
//! under an `nn::Path` and filled from a state dict afterwards (see `weights.rs`).

use tch::{nn, Device, Kind, Tensor};

/// Variables are created as zeros: they are always overwritten by the loaded weights, and
/// zero-filling is far cheaper than a random init of 218 M parameters.
pub(crate) fn var(p: &nn::Path, name: &str, shape: &[i64]) -> Tensor {
    p.var(name, shape, nn::Init::Const(0.))
}

/// The axis orders that take a [B, C, ...] tensor of `dims` axes to channels-last
/// [B, ..., C] and back.
fn channels_last_orders(dims: usize) -> (Vec<i64>, Vec<i64>) {
    let d = dims as i64;
    let to = std::iter::once(0).chain(2..d).chain([1]).collect();
    let back = [0, d - 1].into_iter().chain(1..d - 1).collect();
    (to, back)
}

/// Whether a [B, C, H, W, D] tensor of several channels is stored channels-last
/// ([B, H, W, D, C] in memory).
pub(crate) fn is_channels_last(x: &Tensor) -> bool {
    let (s, st) = (x.size(), x.stride());
    s.len() == 5 && s[1] > 1 && st[1] == 1 && st[4] == s[1]
}

/// Whether `x` runs on oneDNN's channels-last path: on the CPU in fp32. (GPUs and half
/// precision keep the layout and kernels they were measured with.)
pub(crate) fn on_onednn(x: &Tensor) -> bool {
    x.device() == Device::Cpu && x.kind() == Kind::Float
}

/// `x` [B, C, H, W, D] stored channels-last (no copy when it already is). libtorch's
/// (oneDNN's) 3D convolutions keep that layout, and on the CPU they run 1.3-1.5x faster in
/// it, the deconvolutions up to 6x.
pub(crate) fn to_channels_last(x: &Tensor) -> Tensor {
    if is_channels_last(x) {
        return x.shallow_clone();
    }
    let (to, back) = channels_last_orders(5);
    x.permute(to.as_slice())
        .contiguous()
        .permute(back.as_slice())
}

/// A 3D convolution with a cubic kernel.
#[derive(Debug)]
pub struct Conv3d {
    weight: Tensor,
    bias: Option<Tensor>,
    stride: i64,
    padding: i64,
}

impl Conv3d {
    pub fn new(p: nn::Path, cin: i64, cout: i64, k: i64, stride: i64, bias: bool) -> Self {
        Conv3d {
            weight: var(&p, "weight", &[cout, cin, k, k, k]),
            bias: bias.then(|| var(&p, "bias", &[cout])),
            stride,
            padding: k / 2,
        }
    }
    pub fn forward(&self, x: &Tensor) -> Tensor {
        if on_onednn(x) {
            // oneDNN directly: libtorch's heuristics send a 1-channel input (`conv_init`),
            // 1x1 kernels on one thread and small inputs to an im2col path that is 3-5x
            // slower there and returns channels-first. The sums are the same.
            return x.mkldnn_convolution(
                &self.weight,
                self.bias.as_ref(),
                [self.padding; 3],
                [self.stride; 3],
                [1; 3],
                1,
            );
        }
        x.conv3d(
            &self.weight,
            self.bias.as_ref(),
            [self.stride; 3],
            [self.padding; 3],
            [1; 3],
            1,
        )
    }

    /// `v · conv(x)` over the output channels, for batch item b with `v[b]` ([B, cout]):
    /// [B, 1, ...]. The convolution is linear, so `v` folds into its weights and one
    /// cout-to-1 convolution per item does the work of a cout-to-cout one (1/cout of it).
    pub fn forward_dotted(&self, x: &Tensor, v: &Tensor) -> Tensor {
        let w = self.weight.size();
        let (b, cin) = (v.size()[0], w[1]);
        let folded = v
            .matmul(&self.weight.reshape([w[0], -1]))
            .reshape([b, cin, w[2], w[3], w[4]]);
        let bias = self.bias.as_ref().map(|bias| v.matmul(bias));
        let xs = x.size();
        let mut grouped = vec![1, b * cin];
        grouped.extend_from_slice(&xs[2..]);
        // One item as it is: reshaping even to its own shape can leave a batch stride that
        // libtorch no longer takes for channels-last, and it copies (3x slower here).
        let x = if b == 1 {
            x.shallow_clone()
        } else {
            x.reshape(grouped.as_slice())
        };
        let out = x.conv3d(
            &folded,
            bias.as_ref(),
            [self.stride; 3],
            [self.padding; 3],
            [1; 3],
            b,
        );
        let os = out.size();
        let mut shape = vec![b, 1];
        shape.extend_from_slice(&os[2..]);
        out.reshape(shape.as_slice())
    }
}

/// `ConvTranspose3d(k=3, stride=2, padding=1, output_padding=1)`: doubles each spatial size.
#[derive(Debug)]
pub struct Deconv3d {
    weight: Tensor,
    bias: Option<Tensor>,
}

impl Deconv3d {
    pub fn new(p: nn::Path, cin: i64, cout: i64, bias: bool) -> Self {
        Deconv3d {
            // PyTorch stores transposed-convolution weights as [in, out, k, k, k].
            weight: var(&p, "weight", &[cin, cout, 3, 3, 3]),
            bias: bias.then(|| var(&p, "bias", &[cout])),
        }
    }
    /// A channels-last `x` gives a channels-last result (libtorch's own path for small
    /// inputs returns channels-first).
    pub fn forward(&self, x: &Tensor) -> Tensor {
        let y = x.conv_transpose3d(
            &self.weight,
            self.bias.as_ref(),
            [2; 3],
            [1; 3],
            [1; 3],
            1,
            [1; 3],
        );
        if is_channels_last(x) {
            to_channels_last(&y)
        } else {
            y
        }
    }
}

/// Instance normalisation over the spatial axes (eps 1e-5), with or without affine terms.
#[derive(Debug)]
pub struct InstanceNorm {
    weight: Option<Tensor>,
    bias: Option<Tensor>,
}

impl InstanceNorm {
    pub fn affine(p: nn::Path, c: i64) -> Self {
        InstanceNorm {
            weight: Some(var(&p, "weight", &[c])),
            bias: Some(var(&p, "bias", &[c])),
        }
    }
    pub fn plain() -> Self {
        InstanceNorm {
            weight: None,
            bias: None,
        }
    }
    /// [`InstanceNorm::forward`] for an `x` stored channels-last ([B, ..., C] in memory,
    /// where libtorch's 3D convolutions run faster on the CPU), keeping that order:
    /// libtorch's kernel would convert it, which costs more than the convolutions around it.
    /// Two passes as its kernel does, the mean and then the mean square of the centred
    /// values (one pass of sums in float32 is not precise enough over 2 M voxels).
    fn forward_channels_last(&self, x: &Tensor) -> Tensor {
        let s = x.size();
        let (b, c) = (s[0], s[1]);
        let (to, back) = channels_last_orders(s.len());
        let rows = x.permute(to.as_slice()).reshape([b, -1, c]); // a view when channels-last
        let mut centred = &rows - rows.mean_dim(1, true, Kind::Float);
        let var = centred.square().mean_dim(1, true, Kind::Float);
        let inv_std = (var + 1e-5).rsqrt();
        let scale = match &self.weight {
            Some(w) => inv_std * w,
            None => inv_std,
        };
        // In place unless autograd needs the centred values (training).
        let y = if centred.requires_grad() || scale.requires_grad() {
            let y = centred * scale;
            match &self.bias {
                Some(bias) => y + bias,
                None => y,
            }
        } else {
            let _ = centred.g_mul_(&scale);
            if let Some(bias) = &self.bias {
                let _ = centred.g_add_(bias);
            }
            centred
        };
        let mut shape = vec![b];
        shape.extend_from_slice(&s[2..]);
        shape.push(c);
        y.reshape(shape.as_slice()).permute(back.as_slice())
    }

    /// Normalises `x` [B, C, ...]; a 3D `x` stored channels-last stays so.
    pub fn forward(&self, x: &Tensor) -> Tensor {
        if is_channels_last(x) {
            return self.forward_channels_last(x);
        }
        Tensor::instance_norm(
            x,
            self.weight.as_ref(),
            self.bias.as_ref(),
            None::<&Tensor>,
            None::<&Tensor>,
            true,
            0.1,
            1e-5,
            false,
        )
    }
}

/// A fully connected layer.
#[derive(Debug)]
pub struct Linear {
    weight: Tensor,
    bias: Tensor,
}

impl Linear {
    pub fn new(p: nn::Path, cin: i64, cout: i64) -> Self {
        Linear {
            weight: var(&p, "weight", &[cout, cin]),
            bias: var(&p, "bias", &[cout]),
        }
    }
    pub fn forward(&self, x: &Tensor) -> Tensor {
        x.linear(&self.weight, Some(&self.bias))
    }
}

/// `nn.LayerNorm(dim)`.
#[derive(Debug)]
pub struct LayerNorm {
    weight: Tensor,
    bias: Tensor,
    dim: i64,
}

impl LayerNorm {
    pub fn new(p: nn::Path, dim: i64) -> Self {
        LayerNorm {
            weight: var(&p, "weight", &[dim]),
            bias: var(&p, "bias", &[dim]),
            dim,
        }
    }
    pub fn forward(&self, x: &Tensor) -> Tensor {
        x.layer_norm(
            [self.dim],
            Some(&self.weight),
            Some(&self.bias),
            1e-5,
            false,
        )
    }
}

/// `nn.Embedding(n, dim)`: only its table is used here.
pub fn embedding(p: nn::Path, n: i64, dim: i64) -> Tensor {
    var(&p, "weight", &[n, dim])
}

#[cfg(test)]
mod tests {
    use super::*;

    impl InstanceNorm {
        fn shallow(&self) -> Self {
            InstanceNorm {
                weight: self.weight.as_ref().map(Tensor::shallow_clone),
                bias: self.bias.as_ref().map(Tensor::shallow_clone),
            }
        }
        fn params(&self) -> Vec<Tensor> {
            [&self.weight, &self.bias]
                .into_iter()
                .flatten()
                .map(Tensor::shallow_clone)
                .collect()
        }
    }

    fn max_diff(a: &Tensor, b: &Tensor) -> f64 {
        (a - b).abs().max().double_value(&[])
    }

    /// [`max_diff`] over `b`'s largest magnitude (gradients run to the hundreds).
    fn relative(a: &Tensor, b: &Tensor) -> f64 {
        max_diff(a, b) / b.abs().max().double_value(&[])
    }

    /// Values with a large mean against their spread: a one-pass variance in float32 would
    /// be off by far more than the tolerance.
    fn input(c: i64) -> Tensor {
        tch::manual_seed(7);
        Tensor::randn([2, c, 9, 8, 7], (Kind::Float, Device::Cpu)) * 3.0 + 40.0
    }

    #[test]
    fn channels_last_norm_equals_libtorchs_in_values_and_gradients() {
        let vs = nn::VarStore::new(Device::Cpu);
        let norm = InstanceNorm::affine(vs.root() / "n", 5);
        tch::no_grad(|| {
            let _ = norm
                .weight
                .as_ref()
                .unwrap()
                .shallow_clone()
                .uniform_(0.5, 1.5);
            let _ = norm
                .bias
                .as_ref()
                .unwrap()
                .shallow_clone()
                .uniform_(-1.0, 1.0);
        });
        let x = input(5);
        let cl = to_channels_last(&x);
        assert!(is_channels_last(&cl) && !is_channels_last(&x));
        assert!(max_diff(&cl, &x) == 0.0);

        // Inference (in place) and autograd (out of place) give libtorch's values, channels-last.
        let reference = norm.forward(&x);
        let fast = tch::no_grad(|| norm.forward(&cl));
        assert!(is_channels_last(&fast));
        assert!(
            max_diff(&fast, &reference) < 1e-5,
            "{}",
            max_diff(&fast, &reference)
        );
        for plain in [false, true] {
            let n = if plain {
                InstanceNorm::plain()
            } else {
                norm.shallow()
            };
            let xr = x.copy().set_requires_grad(true);
            let xc = to_channels_last(&x).set_requires_grad(true);
            let probe = Tensor::randn([2, 5, 9, 8, 7], (Kind::Float, Device::Cpu));
            (n.forward(&xr) * &probe).sum(Kind::Float).backward();
            let grads_ref: Vec<Tensor> = n.params().iter().map(|p| p.grad().copy()).collect();
            for p in n.params() {
                let _ = p.grad().zero_();
            }
            let out = n.forward(&xc);
            assert!(is_channels_last(&out));
            (out * &probe).sum(Kind::Float).backward();
            let d = relative(&xc.grad(), &xr.grad());
            assert!(d < 1e-4, "input gradient differs by {d} (relative)");
            for (g, p) in grads_ref.iter().zip(n.params()) {
                let d = relative(&p.grad(), g);
                assert!(d < 1e-5, "parameter gradient differs by {d} (relative)");
            }
            for p in n.params() {
                let _ = p.grad().zero_();
            }
        }
    }

    #[test]
    fn onednn_convolution_equals_libtorchs_and_keeps_channels_last() {
        let vs = nn::VarStore::new(Device::Cpu);
        tch::manual_seed(3);
        let conv = Conv3d::new(vs.root() / "c", 4, 6, 3, 1, true);
        let init = Conv3d::new(vs.root() / "i", 1, 4, 3, 1, false);
        let down = Conv3d::new(vs.root() / "d", 4, 6, 3, 2, false);
        tch::no_grad(|| {
            for v in vs.trainable_variables() {
                let _ = v.shallow_clone().uniform_(-0.3, 0.3);
            }
        });
        let x = input(4) / 40.0;
        for c in [&conv, &down] {
            let reference = x.conv3d(
                &c.weight,
                c.bias.as_ref(),
                [c.stride; 3],
                [c.padding; 3],
                [1; 3],
                1,
            );
            let out = c.forward(&to_channels_last(&x));
            assert!(is_channels_last(&out));
            assert!(max_diff(&out, &reference) < 1e-5);
        }
        // conv_init's 1-channel input, which libtorch would send to its im2col path.
        let one = x.narrow(1, 0, 1).contiguous();
        let reference = one.conv3d(&init.weight, None::<&Tensor>, [1; 3], [1; 3], [1; 3], 1);
        assert!(max_diff(&init.forward(&one), &reference) < 1e-5);
        // Gradients flow through oneDNN's convolution as through libtorch's.
        let xr = to_channels_last(&x).set_requires_grad(true);
        conv.forward(&xr).square().sum(Kind::Float).backward();
        let gw = conv.weight.grad().copy();
        let _ = conv.weight.grad().zero_();
        let xc = x.copy().set_requires_grad(true);
        xc.conv3d(&conv.weight, conv.bias.as_ref(), [1; 3], [1; 3], [1; 3], 1)
            .square()
            .sum(Kind::Float)
            .backward();
        let (dx, dw) = (
            relative(&xr.grad(), &xc.grad()),
            relative(&gw, &conv.weight.grad()),
        );
        assert!(
            dx < 1e-5 && dw < 1e-5,
            "gradients differ: input {dx}, weights {dw}"
        );
    }

    #[test]
    fn deconvolution_of_a_channels_last_input_stays_channels_last() {
        let vs = nn::VarStore::new(Device::Cpu);
        let up = Deconv3d::new(vs.root() / "u", 4, 3, true);
        tch::no_grad(|| {
            for v in vs.trainable_variables() {
                let _ = v.shallow_clone().uniform_(-0.3, 0.3);
            }
        });
        // Small inputs take libtorch's own path, which returns channels-first.
        let x = to_channels_last(&input(4).narrow(2, 0, 3));
        let y = up.forward(&x);
        assert!(is_channels_last(&y));
        assert_eq!(y.size(), [2, 3, 6, 16, 14]);
        let reference = x.contiguous().conv_transpose3d(
            &up.weight,
            up.bias.as_ref(),
            [2; 3],
            [1; 3],
            [1; 3],
            1,
            [1; 3],
        );
        assert!(max_diff(&y, &reference) < 1e-5);
    }
}
