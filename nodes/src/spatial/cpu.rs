//! The CPU kernel for separable resampling: each output voxel reads its 8 (linear) or 1
//! (nearest) input voxels directly, at offsets precomputed per output axis, on
//! `tch::get_num_threads()` threads. Axis permutations and flips are folded into the offsets.
//! The same numbers as the tensor path in `resample.rs` (trilinear in float64, then cast),
//! without its full-size temporaries.

use crate::node::NodeError;
use tch::{Kind, Tensor};

/// Where output indices along one output axis read: element offsets into the input (already
/// multiplied by the input stride of the axis they run along), weight of the second, inside.
pub struct AxisOffsets {
    pub o0: Vec<usize>,
    pub o1: Vec<usize>,
    pub w: Vec<f64>,
    pub inside: Vec<bool>,
}

/// Input element types the kernel reads.
trait Elem: Copy + Send + Sync + 'static {
    const KIND: Kind;
    fn f(self) -> f64;
}
macro_rules! elem {
    ($t:ty, $k:expr) => {
        impl Elem for $t {
            const KIND: Kind = $k;
            #[inline(always)]
            fn f(self) -> f64 {
                self as f64
            }
        }
    };
}
elem!(u8, Kind::Uint8);
elem!(i8, Kind::Int8);
elem!(i16, Kind::Int16);
elem!(i32, Kind::Int);
elem!(i64, Kind::Int64);
elem!(f32, Kind::Float);
elem!(f64, Kind::Double);

/// Output element types of the linear kernel.
trait Out: Copy + Send + Sync + 'static {
    fn from(v: f64) -> Self;
}
impl Out for f32 {
    #[inline(always)]
    fn from(v: f64) -> Self {
        v as f32
    }
}
impl Out for f64 {
    #[inline(always)]
    fn from(v: f64) -> Self {
        v
    }
}

/// Whether the kernel handles a tensor of this kind.
pub fn supports(kind: Kind) -> bool {
    matches!(
        kind,
        Kind::Uint8
            | Kind::Int8
            | Kind::Int16
            | Kind::Int
            | Kind::Int64
            | Kind::Float
            | Kind::Double
    )
}

/// A read-only view of a contiguous CPU tensor's elements.
///
/// # Safety
/// `t` must be contiguous, on the CPU and of kind `T::KIND`; the slice lives as long as `t`.
unsafe fn view<T: Elem>(t: &Tensor) -> &[T] {
    std::slice::from_raw_parts(t.data_ptr() as *const T, t.numel())
}

/// Computes output slices `k` of one slab into `out` (`(k1 - k0) * nj * ni` elements per
/// channel, channels back to back in `out_all` with `plane_stride` between them).
///
/// `x`: contiguous CPU input `[C, ...]`; `y`: contiguous CPU output `[C, nk, nj, ni]`.
#[expect(
    clippy::too_many_arguments,
    reason = "one slab of a separable resampling: the plane, its strides and the weights of each axis"
)]
pub fn slab(
    x: &Tensor,
    y: &Tensor,
    ks: &AxisOffsets,
    js: &AxisOffsets,
    is: &AxisOffsets,
    k0: usize,
    linear: bool,
    fill: f64,
) -> Result<(), NodeError> {
    let size = y.size();
    let (c, nk, nj, ni) = (
        size[0] as usize,
        size[1] as usize,
        size[2] as usize,
        size[3] as usize,
    );
    let sk = ks.o0.len();
    let in_chan = x.numel() / c.max(1);
    let ok = x.is_contiguous() && y.is_contiguous() && x.device() == tch::Device::Cpu;
    if !ok || !supports(x.kind()) {
        return Err(NodeError::Torch(
            "internal: the CPU resample kernel needs contiguous CPU tensors".into(),
        ));
    }
    macro_rules! go {
        ($t:ty) => {{
            // SAFETY: kinds checked above, both tensors contiguous on the CPU; `y` is a fresh
            // tensor owned by the caller, written only here, in disjoint chunks per thread.
            let xs: &[$t] = unsafe { view::<$t>(x) };
            for ch in 0..c {
                let src = &xs[ch * in_chan..(ch + 1) * in_chan];
                let base = ch * nk * nj * ni + k0 * nj * ni;
                if linear {
                    match y.kind() {
                        Kind::Double => {
                            let ys = unsafe { out_slice::<f64>(y, base, sk * nj * ni) };
                            linear_slab(src, ys, ks, js, is, fill)
                        }
                        _ => {
                            let ys = unsafe { out_slice::<f32>(y, base, sk * nj * ni) };
                            linear_slab(src, ys, ks, js, is, fill)
                        }
                    }
                } else {
                    let ys = unsafe { out_slice::<$t>(y, base, sk * nj * ni) };
                    nearest_slab(src, ys, ks, js, is, fill_as::<$t>(fill))
                }
            }
        }};
    }
    match x.kind() {
        Kind::Uint8 => go!(u8),
        Kind::Int8 => go!(i8),
        Kind::Int16 => go!(i16),
        Kind::Int => go!(i32),
        Kind::Int64 => go!(i64),
        Kind::Float => go!(f32),
        Kind::Double => go!(f64),
        _ => unreachable!("checked by supports()"),
    }
    Ok(())
}

/// # Safety
/// `y` contiguous on the CPU with elements of type `T`, `base + len <= numel`, and no other
/// live reference to that range.
#[expect(
    clippy::mut_from_ref,
    reason = "disjoint output ranges written from several threads; the caller upholds the safety contract"
)]
unsafe fn out_slice<T>(y: &Tensor, base: usize, len: usize) -> &mut [T] {
    assert!(base + len <= y.numel());
    std::slice::from_raw_parts_mut((y.data_ptr() as *mut T).add(base), len)
}

fn fill_as<T: Elem>(fill: f64) -> T {
    // The output keeps the input's dtype: cast the fill the way torch's `full` does.
    let t = Tensor::from(fill).to_kind(T::KIND);
    // SAFETY: a 0-dim contiguous CPU tensor of kind T::KIND.
    unsafe { view::<T>(&t)[0] }
}

fn threads() -> usize {
    (tch::get_num_threads().max(1) as usize).min(64)
}

/// Splits the slab's output rows `(k, j)` over threads.
fn par_rows<O: Send>(ys: &mut [O], row_len: usize, f: impl Fn(usize, &mut [O]) + Sync) {
    let rows = ys.len() / row_len.max(1);
    let n = threads().min(rows).max(1);
    let per = rows.div_ceil(n);
    std::thread::scope(|s| {
        for (t, chunk) in ys.chunks_mut(per * row_len).enumerate() {
            let f = &f;
            s.spawn(move || {
                for (r, row) in chunk.chunks_mut(row_len).enumerate() {
                    f(t * per + r, row);
                }
            });
        }
    });
}

fn linear_slab<T: Elem, O: Out>(
    src: &[T],
    ys: &mut [O],
    ks: &AxisOffsets,
    js: &AxisOffsets,
    is: &AxisOffsets,
    fill: f64,
) {
    let (nj, ni) = (js.o0.len(), is.o0.len());
    let fill_o = O::from(fill);
    par_rows(ys, ni, |row, out| {
        let (k, j) = (row / nj, row % nj);
        if !(ks.inside[k] && js.inside[j]) {
            out.fill(fill_o);
            return;
        }
        let (wk, wj) = (ks.w[k], js.w[j]);
        let b00 = ks.o0[k] + js.o0[j];
        let b01 = ks.o0[k] + js.o1[j];
        let b10 = ks.o1[k] + js.o0[j];
        let b11 = ks.o1[k] + js.o1[j];
        for (i, o) in out.iter_mut().enumerate() {
            if !is.inside[i] {
                *o = fill_o;
                continue;
            }
            let (a, b, w) = (is.o0[i], is.o1[i], is.w[i]);
            let lerp = |p: f64, q: f64, t: f64| if t == 0.0 { p } else { p + t * (q - p) };
            let v00 = lerp(src[b00 + a].f(), src[b00 + b].f(), w);
            let v01 = lerp(src[b01 + a].f(), src[b01 + b].f(), w);
            let v10 = lerp(src[b10 + a].f(), src[b10 + b].f(), w);
            let v11 = lerp(src[b11 + a].f(), src[b11 + b].f(), w);
            let v0 = lerp(v00, v01, wj);
            let v1 = lerp(v10, v11, wj);
            *o = O::from(lerp(v0, v1, wk));
        }
    });
}

fn nearest_slab<T: Elem>(
    src: &[T],
    ys: &mut [T],
    ks: &AxisOffsets,
    js: &AxisOffsets,
    is: &AxisOffsets,
    fill: T,
) {
    let (nj, ni) = (js.o0.len(), is.o0.len());
    par_rows(ys, ni, |row, out| {
        let (k, j) = (row / nj, row % nj);
        if !(ks.inside[k] && js.inside[j]) {
            out.fill(fill);
            return;
        }
        let b = ks.o0[k] + js.o0[j];
        for (i, o) in out.iter_mut().enumerate() {
            *o = if is.inside[i] {
                src[b + is.o0[i]]
            } else {
                fill
            };
        }
    });
}
