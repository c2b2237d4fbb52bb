//! Resampling a volume onto another grid, in slabs along the output's k axis, on the device
//! of the context.
//!
//! Semantics follow ITK's `ResampleImageFilter` (so SimpleITK is the oracle):
//! - an output voxel centre is mapped to a continuous input index through the two affines
//!   (`inv(A_in) * A_out`);
//! - it is *inside* the input when every index lies in `[-0.5, n - 0.5)`; outside it gets
//!   `fill`;
//! - linear: trilinear between the 8 neighbours, neighbours past the edge clamped to the edge
//!   voxel (ITK's `LinearInterpolateImageFunction`); nearest: the voxel at `floor(c + 0.5)`
//!   (ITK rounds halves up).
//!
//! When each output axis runs along one input axis (every resampling that keeps or permutes
//! axis directions: spacing changes, reorientation, crops and paste-backs) the interpolation
//! is done separably, one axis at a time (the same numbers as trilinear, far fewer
//! operations), and indices within 1e-6 of an integer are snapped so that grid-aligned
//! resampling copies voxels exactly. Other (oblique) mappings gather from the part of the
//! input that each slab needs (8 gathers weighted in float64 for linear, one for nearest).
//! Nearest: points within 1e-6 voxel of a half-integer count as exactly halfway and go up.

// Small fixed-size matrix code reads best with explicit indices.

use super::cpu;
use super::grid::{out_to_in, separable, snap, Grid, Separable};
use crate::node::{Ctx, NodeError};
use crate::value::Volume;
use tch::{Device, Kind, Tensor};

/// How values between voxel centres are computed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Interp {
    /// Trilinear; output float32 (float64 for float64 input).
    Linear,
    /// Nearest voxel; output keeps the input's dtype (exact for label maps).
    Nearest,
}

/// Output voxels computed per slab (bounds temporary memory: about 100 bytes a voxel on the
/// oblique path, far less on the separable one; the oblique path also holds the part of the
/// input a slab reads, in the input's dtype).
const SLAB_VOXELS: i64 = 1 << 22;

/// What output voxels outside the input get.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Outside {
    /// This value (cast to the output dtype), as ITK's default pixel value.
    Fill(f64),
    /// The value at the nearest point of the input's edge (its index clamped into the
    /// input), as MONAI's `Spacing` (`padding_mode="border"`, the VISTA3D bundle's
    /// resampling): a coarser grid that ends past the last input voxel repeats the edge
    /// instead of adding a slice of `fill`.
    Border,
}

impl From<f64> for Outside {
    fn from(fill: f64) -> Self {
        Outside::Fill(fill)
    }
}

/// Resamples `v` onto `out`; the result lives on `ctx.device`, carries `out`'s geometry, the
/// input's metadata (less `crop_*` keys, which no longer hold) and identity. Outside the
/// input, voxels are as `outside` says (a number: that fill value).
pub fn resample_volume(
    v: &Volume,
    out: &Grid,
    interp: Interp,
    outside: impl Into<Outside>,
    ctx: &Ctx,
) -> Result<Volume, NodeError> {
    resample_impl(v, out, interp, outside.into(), ctx, true)
}

/// [`resample_volume`] without the CPU kernel: the tensor ops a GPU runs, on any device
/// (tests compare the two paths on machines without a GPU).
#[doc(hidden)]
pub fn resample_volume_on_tensors(
    v: &Volume,
    out: &Grid,
    interp: Interp,
    outside: impl Into<Outside>,
    ctx: &Ctx,
) -> Result<Volume, NodeError> {
    resample_impl(v, out, interp, outside.into(), ctx, false)
}

fn resample_impl(
    v: &Volume,
    out: &Grid,
    interp: Interp,
    outside: Outside,
    ctx: &Ctx,
    cpu_kernel: bool,
) -> Result<Volume, NodeError> {
    // With `Border` every output voxel counts as inside: the indices are clamped anyway.
    let (fill, border) = match outside {
        Outside::Fill(f) => (f, false),
        Outside::Border => (0.0, true),
    };
    let input = Grid::of(v);
    if out.voxels() <= 0 {
        return Err(NodeError::Invalid(format!(
            "the target grid is empty (shape [k,j,i] = {:?})",
            out.shape
        )));
    }
    let m = out_to_in(&input, out).map_err(NodeError::Invalid)?;
    let device = ctx.device;
    let x = v.data().f_to_device(device)?;
    let lead = x.dim() == 4;
    let x = if lead { x } else { x.f_unsqueeze(0)? };
    let c = x.size()[0];
    let out_kind = match interp {
        Interp::Nearest => x.kind(),
        Interp::Linear if x.kind() == Kind::Double => Kind::Double,
        Interp::Linear => Kind::Float,
    };
    if !border {
        check_fill(out_kind, fill)?;
    }
    let [nk, nj, ni] = out.shape;
    let y = Tensor::f_empty([c, nk, nj, ni], (out_kind, device))?;
    let slab = (SLAB_VOXELS / (nj * ni).max(1)).clamp(1, nk);
    let sep = separable(&m, out.shape);
    let fill_t = Tensor::f_full([], fill, (out_kind, device))?;
    // On the CPU, separable mappings go through the direct kernel (no big temporaries).
    let kernel = match &sep {
        Some(s) if cpu_kernel && device == Device::Cpu && cpu::supports(x.kind()) => {
            let xc = x.f_contiguous()?;
            let offsets = |a: usize, lo: i64, hi: i64| {
                let p = s.axis[a];
                let stride: i64 = input.shape[3 - p..].iter().product();
                let coords = (lo..hi).map(|idx| s.scale[a] * idx as f64 + s.offset[a]);
                let smp = axis_samples(coords, input.shape[2 - p], interp, border);
                cpu::AxisOffsets {
                    o0: smp.i0.iter().map(|&i| (i * stride) as usize).collect(),
                    o1: smp.i1.iter().map(|&i| (i * stride) as usize).collect(),
                    w: smp.w,
                    inside: smp.inside,
                }
            };
            Some((xc, offsets(0, 0, ni), offsets(1, 0, nj), offsets))
        }
        _ => None,
    };
    let mut k0 = 0;
    while k0 < nk {
        ctx.check_cancelled()?;
        let k1 = (k0 + slab).min(nk);
        if let Some((xc, is, js, offsets)) = &kernel {
            let ks = offsets(2, k0, k1);
            cpu::slab(
                xc,
                &y,
                &ks,
                js,
                is,
                k0 as usize,
                interp == Interp::Linear,
                fill,
            )?;
            ctx.progress(k1 as u64, nk as u64, "slices");
            k0 = k1;
            continue;
        }
        let job = SlabJob {
            in_shape: input.shape,
            out_shape: out.shape,
            range: (k0, k1),
            interp,
            kind: out_kind,
            border,
        };
        let part = match &sep {
            Some(s) => separable_slab(&x, s, &job)?,
            None => oblique_slab(&x, &m, &job)?,
        };
        let part = match part.mask {
            Some(mask) => part.values.f_where_self(&mask, &fill_t)?,
            None => part.values,
        };
        y.f_narrow(1, k0, k1 - k0)?.f_copy_(&part)?;
        ctx.progress(k1 as u64, nk as u64, "slices");
        k0 = k1;
    }
    let y = if lead { y } else { y.f_squeeze_dim(0)? };
    let mut vol = Volume::new(y, out.geometry).map_err(NodeError::Invalid)?;
    vol.meta = v
        .meta
        .iter()
        .filter(|(k, _)| !k.starts_with("crop_"))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    vol.identity = v.identity.clone();
    Ok(vol)
}

/// Nearest keeps integer dtypes, so the fill must be a value of that dtype.
fn check_fill(kind: Kind, fill: f64) -> Result<(), NodeError> {
    let range = match kind {
        Kind::Uint8 => Some((0.0, 255.0, "uint8")),
        Kind::Int8 => Some((-128.0, 127.0, "int8")),
        Kind::Int16 => Some((-32768.0, 32767.0, "int16")),
        Kind::Int => Some((-2147483648.0, 2147483647.0, "int32")),
        Kind::Int64 => Some((-9.2e18, 9.2e18, "int64")),
        _ => None,
    };
    match range {
        Some((lo, hi, name)) if !(fill >= lo && fill <= hi && fill.fract() == 0.0) => {
            Err(NodeError::Invalid(format!(
                "fill {fill} is not a {name} value, and nearest-neighbour resampling keeps the \
                 image's {name} dtype: give an integer fill in [{lo}, {hi}] or use linear"
            )))
        }
        _ => Ok(()),
    }
}

/// One slab's values `[C, sk, nj, ni]` and, when some voxels fall outside the input, the mask
/// of those inside (broadcastable to the values).
struct Part {
    values: Tensor,
    mask: Option<Tensor>,
}

/// Per output index along one axis: where to read in the input.
struct AxisSamples {
    i0: Vec<i64>,
    i1: Vec<i64>,
    w: Vec<f64>,
    inside: Vec<bool>,
}

fn axis_samples(
    coords: impl Iterator<Item = f64>,
    n: i64,
    interp: Interp,
    border: bool,
) -> AxisSamples {
    let mut s = AxisSamples {
        i0: vec![],
        i1: vec![],
        w: vec![],
        inside: vec![],
    };
    let nf = n as f64;
    for c in coords {
        let inside = border || (c >= -0.5 && c < nf - 0.5);
        s.inside.push(inside);
        match interp {
            Interp::Nearest => {
                let i = ((snap_half(c) + 0.5).floor() as i64).clamp(0, n - 1);
                s.i0.push(i);
                s.i1.push(i);
                s.w.push(0.0);
            }
            Interp::Linear => {
                let cc = snap(c).clamp(0.0, nf - 1.0);
                let f = cc.floor();
                let i0 = (f as i64).clamp(0, n - 1);
                if i0 >= n - 1 {
                    s.i0.push(n - 1);
                    s.i1.push(n - 1);
                    s.w.push(0.0);
                } else {
                    s.i0.push(i0);
                    s.i1.push(i0 + 1);
                    s.w.push(cc - f);
                }
            }
        }
    }
    s
}

/// Moves values within 1e-6 of a half-integer onto it, so that a point equidistant from two
/// voxels always goes to the upper one (ITK's own choice there depends on its rounding).
fn snap_half(c: f64) -> f64 {
    let h = (c - 0.5).round() + 0.5;
    if (c - h).abs() < 1e-6 {
        h
    } else {
        c
    }
}

/// Takes output samples `s` along tensor dim `d` of `t`, converting to `kind` on the way.
fn take_along(t: &Tensor, d: i64, s: &AxisSamples, kind: Kind) -> Result<Tensor, NodeError> {
    let dev = t.device();
    let i0 = Tensor::from_slice(&s.i0).f_to_device(dev)?;
    let a = t.f_index_select(d, &i0)?.f_to_kind(kind)?;
    if s.w.iter().all(|&w| w == 0.0) {
        return Ok(a);
    }
    let i1 = Tensor::from_slice(&s.i1).f_to_device(dev)?;
    let b = t.f_index_select(d, &i1)?.f_to_kind(kind)?;
    let mut shape = vec![1i64; t.dim()];
    shape[d as usize] = s.w.len() as i64;
    let w = Tensor::from_slice(&s.w)
        .f_to_kind(kind)?
        .f_to_device(dev)?
        .f_reshape(&shape)?;
    Ok(a.f_lerp_tensor(&b, &w)?)
}

fn bool_tensor(v: &[bool], dev: Device) -> Result<Tensor, NodeError> {
    let u: Vec<u8> = v.iter().map(|&b| b as u8).collect();
    Ok(Tensor::from_slice(&u)
        .f_to_device(dev)?
        .f_to_kind(Kind::Bool)?)
}

/// What one slab computes: from an input of `in_shape` onto output slices `range` of
/// `out_shape` ([k, j, i]), sampled by `interp` into `kind`, with `border` or a fill outside.
struct SlabJob {
    in_shape: [i64; 3],
    out_shape: [i64; 3],
    range: (i64, i64),
    interp: Interp,
    kind: Kind,
    border: bool,
}

fn separable_slab(x: &Tensor, s: &Separable, job: &SlabJob) -> Result<Part, NodeError> {
    let &SlabJob {
        in_shape,
        out_shape,
        range: (k0, k1),
        interp,
        kind,
        border,
    } = job;
    // Output voxel axis a (0 = i, 1 = j, 2 = k) reads input axis s.axis[a], at tensor dim
    // 3 - s.axis[a] of x ([C, k, j, i]). Start with the slab axis: it shrinks the most.
    let range = |a: usize| -> (i64, i64) {
        if a == 2 {
            (k0, k1)
        } else {
            (0, out_shape[2 - a])
        }
    };
    let mut t = x.shallow_clone();
    let mut inside: [Vec<bool>; 3] = Default::default();
    for a in [2usize, 1, 0] {
        let p = s.axis[a];
        let (lo, hi) = range(a);
        let coords = (lo..hi).map(|idx| s.scale[a] * idx as f64 + s.offset[a]);
        let samples = axis_samples(coords, in_shape[2 - p], interp, border);
        t = take_along(&t, 3 - p as i64, &samples, kind)?;
        inside[a] = samples.inside;
    }
    // Now tensor dim 3 - s.axis[a] holds output axis a; put output axis a at dim 3 - a.
    let perm = [
        0,
        3 - s.axis[2] as i64,
        3 - s.axis[1] as i64,
        3 - s.axis[0] as i64,
    ];
    let values = if perm == [0, 1, 2, 3] {
        t
    } else {
        t.f_permute(perm)?
    };
    let mask = if inside.iter().all(|v| v.iter().all(|&b| b)) {
        None
    } else {
        let dev = x.device();
        let mk = bool_tensor(&inside[2], dev)?.f_reshape([1, -1, 1, 1])?;
        let mj = bool_tensor(&inside[1], dev)?.f_reshape([1, 1, -1, 1])?;
        let mi = bool_tensor(&inside[0], dev)?.f_reshape([1, 1, 1, -1])?;
        Some(mk.f_logical_and(&mj)?.f_logical_and(&mi)?)
    };
    Ok(Part { values, mask })
}

fn oblique_slab(x: &Tensor, m: &super::grid::Mat4, job: &SlabJob) -> Result<Part, NodeError> {
    let &SlabJob {
        in_shape,
        out_shape,
        range: (k0, k1),
        interp,
        kind,
        border,
    } = job;
    let dev = x.device();
    let c = x.size()[0];
    let [_, nj, ni] = out_shape;
    let sk = k1 - k0;
    let n_in = |r: usize| in_shape[2 - r];
    // The part of the input this slab reads: the box around its 8 corners, one voxel wider.
    let mut lo = [0i64; 3];
    let mut hi = [0i64; 3];
    for r in 0..3 {
        let mut mn = f64::INFINITY;
        let mut mx = f64::NEG_INFINITY;
        for &i in &[0, ni - 1] {
            for &j in &[0, nj - 1] {
                for &k in &[k0, k1 - 1] {
                    let v = m[r][0] * i as f64 + m[r][1] * j as f64 + m[r][2] * k as f64 + m[r][3];
                    mn = mn.min(v);
                    mx = mx.max(v);
                }
            }
        }
        lo[r] = ((mn.floor() as i64) - 1).clamp(0, n_in(r) - 1);
        hi[r] = ((mx.ceil() as i64) + 1).clamp(0, n_in(r) - 1);
    }
    let opts = (Kind::Double, dev);
    let ii = Tensor::f_arange(ni, opts)?.f_reshape([1, 1, ni])?;
    let jj = Tensor::f_arange(nj, opts)?.f_reshape([1, nj, 1])?;
    let kk = Tensor::f_arange_start(k0, k1, opts)?.f_reshape([sk, 1, 1])?;
    let mut coords = Vec::with_capacity(3);
    let mut mask: Option<Tensor> = None;
    for r in 0..3 {
        let cr = ((&ii * m[r][0])
            .f_add(&(&jj * m[r][1]))?
            .f_add(&(&kk * m[r][2]))?
            + m[r][3])
            .f_expand([sk, nj, ni], false)?;
        let inside = cr
            .f_ge(-0.5)?
            .f_logical_and(&cr.f_lt(n_in(r) as f64 - 0.5)?)?;
        mask = Some(match mask {
            None => inside,
            Some(mk) => mk.f_logical_and(&inside)?,
        });
        coords.push(cr);
    }
    let bx = x
        .f_narrow(1, lo[2], hi[2] - lo[2] + 1)?
        .f_narrow(2, lo[1], hi[1] - lo[1] + 1)?
        .f_narrow(3, lo[0], hi[0] - lo[0] + 1)?;
    let size = |r: usize| hi[r] - lo[r] + 1;
    let values = match interp {
        Interp::Linear => {
            // Trilinear as 8 gathers from the box in its own dtype, weights and sum in
            // float64 like ITK (float32 coordinates, as grid_sample takes them, are off by
            // ~1e-5 voxel at 200 voxels: 0.01 HU next to a bone edge).
            let flat = bx.f_contiguous()?.f_reshape([c, -1])?;
            let mut i0 = Vec::with_capacity(3);
            let mut i1 = Vec::with_capacity(3);
            let mut w = Vec::with_capacity(3);
            for r in 0..3 {
                let cr = &coords[r];
                let snapped = cr.f_round()?;
                let cr = snapped.f_where_self(&(cr - &snapped).f_abs()?.f_lt(1e-6)?, cr)?;
                let cc = cr.f_clamp(lo[r] as f64, hi[r] as f64)? - lo[r] as f64;
                let f = cc.f_floor()?.f_clamp(0.0, (size(r) - 1) as f64)?;
                w.push(&cc - &f);
                let a = f.f_to_kind(Kind::Int64)?;
                i1.push((&a + 1).f_clamp_max(size(r) - 1)?);
                i0.push(a);
            }
            let mut acc = Tensor::f_zeros([c, sk, nj, ni], (Kind::Double, dev))?;
            for corner in 0..8 {
                let pick = |r: usize| corner >> r & 1 == 1;
                let ix = |r: usize| if pick(r) { &i1[r] } else { &i0[r] };
                let lin = (ix(2) * size(1) + ix(1)) * size(0) + ix(0);
                let mut wt = Tensor::f_ones([sk, nj, ni], (Kind::Double, dev))?;
                for r in 0..3 {
                    wt = if pick(r) {
                        wt * &w[r]
                    } else {
                        wt * (1.0 - &w[r])
                    };
                }
                let v = flat
                    .f_index_select(1, &lin.f_reshape([-1])?)?
                    .f_reshape([c, sk, nj, ni])?
                    .f_to_kind(Kind::Double)?;
                acc += v * wt.f_unsqueeze(0)?;
            }
            acc.f_to_kind(kind)?
        }
        Interp::Nearest => {
            let mut idx = Vec::with_capacity(3);
            for r in 0..3 {
                let c = &coords[r];
                let h = (c - 0.5).f_round()? + 0.5;
                let c = c.f_where_self(&(c - &h).f_abs()?.f_ge(1e-6)?, &h)?;
                let i = (c + 0.5).f_floor()?.f_clamp(lo[r] as f64, hi[r] as f64)? - lo[r] as f64;
                idx.push(i.f_to_kind(Kind::Int64)?);
            }
            let lin = (&idx[2] * size(1) + &idx[1]) * size(0) + &idx[0];
            let flat = bx.f_contiguous()?.f_reshape([c, -1])?;
            flat.f_index_select(1, &lin.f_reshape([-1])?)?
                .f_reshape([c, sk, nj, ni])?
        }
    };
    // Border: the gathers above clamp into the input, which is the border value.
    let mask = if border { None } else { mask };
    let mask = mask.map(|m| m.f_unsqueeze(0)).transpose()?;
    let all_inside = match &mask {
        Some(mk) => mk.f_all()?.f_int64_value(&[])? == 1,
        None => true,
    };
    Ok(Part {
        values,
        mask: if all_inside { None } else { mask },
    })
}
