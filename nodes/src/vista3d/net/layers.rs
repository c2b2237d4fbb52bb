//! Small building blocks whose variables are named as in PyTorch (`weight`, `bias`), created
//! under an `nn::Path` and filled from a state dict afterwards (see `weights.rs`).

use tch::{nn, Tensor};

/// Variables are created as zeros: they are always overwritten by the loaded weights, and
/// zero-filling is far cheaper than a random init of 218 M parameters.
pub(crate) fn var(p: &nn::Path, name: &str, shape: &[i64]) -> Tensor {
    p.var(name, shape, nn::Init::Const(0.))
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
        x.conv3d(
            &self.weight,
            self.bias.as_ref(),
            [self.stride; 3],
            [self.padding; 3],
            [1; 3],
            1,
        )
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
    pub fn forward(&self, x: &Tensor) -> Tensor {
        x.conv_transpose3d(
            &self.weight,
            self.bias.as_ref(),
            [2; 3],
            [1; 3],
            [1; 3],
            1,
            [1; 3],
        )
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
    pub fn forward(&self, x: &Tensor) -> Tensor {
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
