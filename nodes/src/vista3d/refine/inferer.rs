//! MONAI's `point_based_window_inferer` for one object, with VISTA3D's per-window handling
//! of clicks (`update_point_to_patch`) and of a previous mask (`connected_components_combine`).

use super::components::keep_merge;
use super::features::FeatureSource;
use crate::node::NodeError;
use crate::vista3d::net::Vista3d;
use crate::vista3d::window;
use tch::{Device, Kind, Tensor};

/// MONAI's constant for "no prompt in this window" (`VISTA3D.NINF_VALUE`).
const NINF: f64 = -9999.0;

/// One click in network voxels `[x, y, z]` with its network point label (0/1, or 2/3 for
/// special classes).
#[derive(Clone, Copy, Debug)]
pub struct NetClick {
    pub at: [i64; 3],
    pub label: i64,
}

impl NetClick {
    pub fn positive(&self) -> bool {
        self.label == 1 || self.label == 3
    }
}

/// MONAI's `_get_window_idx_c`: a `roi`-long window centred on `p`, clamped to `[0, s)`.
fn window_start(p: i64, roi: i64, s: i64) -> i64 {
    if p - roi / 2 < 0 {
        0
    } else if p + roi / 2 > s {
        s - roi
    } else {
        p - roi / 2
    }
}

/// What [`infer`] gives: the stitched logits and the box its windows cover.
pub struct Inferred {
    /// [X, Y, Z] float32 on the CPU.
    pub logits: Tensor,
    /// The union box of the windows, per axis of `logits`: `start` inclusive, `end`
    /// exclusive. Outside it the logits are the previous mask's, or NaN.
    pub start: [i64; 3],
    pub end: [i64; 3],
}

/// One object to segment: its clicks, its class and optionally its previous mask's logits.
pub struct Object<'a> {
    pub clicks: &'a [NetClick],
    pub class: u32,
    pub prev: Option<&'a Tensor>,
}

/// Stitched logits [X, Y, Z] (float32, CPU) for one object of class `class` over `image`
/// ([X, Y, Z], scaled, on the network's device): one `patch` window centred on each click,
/// window outputs summed where windows overlap (MONAI divides by a mask that is 1 wherever
/// a window was, so overlaps add up), and voxels no window covers taken from `prev` (logits
/// of a previous mask, [X, Y, Z]; not changed: a padded copy is merged into window by
/// window as MONAI does) or NaN without one. `progress(done, total)` after each
/// window; `Err` from it stops.
pub fn infer(
    net: &Vista3d,
    source: &mut FeatureSource,
    image: &Tensor,
    object: Object,
    patch: [i64; 3],
    progress: &mut dyn FnMut(u64, u64) -> Result<(), NodeError>,
) -> Result<Inferred, NodeError> {
    let Object {
        clicks,
        class,
        prev,
    } = object;
    let dev = net.device();
    let size: [i64; 3] = std::array::from_fn(|a| image.size()[a]);
    let pad = window::padding(size, patch);
    // F.pad order: last axis first.
    let pads = [pad[2].0, pad[2].1, pad[1].0, pad[1].1, pad[0].0, pad[0].1];
    let image = image.to_device(dev).f_constant_pad_nd(pads)?;
    let prev = match prev {
        Some(p) => Some(p.to_device(Device::Cpu).f_constant_pad_nd(pads)?),
        None => None,
    };
    let padded: [i64; 3] = std::array::from_fn(|a| image.size()[a]);
    let clicks: Vec<NetClick> = clicks
        .iter()
        .map(|c| NetClick {
            at: std::array::from_fn(|a| c.at[a] + pad[a].0),
            label: c.label,
        })
        .collect();
    let sum = Tensor::zeros(padded, (Kind::Float, Device::Cpu));
    let covered = Tensor::zeros(padded, (Kind::Bool, Device::Cpu));
    let class_t = Tensor::from_slice(&[class as i64])
        .view([1, 1])
        .to_device(dev);
    let total = clicks.len() as u64;
    // Point-head logits by window start: two clicks served by one window (a reused window)
    // see the same clicks in it, so the head's output is the same; computed once.
    let mut heads: Vec<([i64; 3], Tensor)> = Vec::new();
    let (mut start, mut end) = (padded, [0; 3]);
    for (w, c) in clicks.iter().enumerate() {
        let centred: [i64; 3] = std::array::from_fn(|a| window_start(c.at[a], patch[a], padded[a]));
        let lo = source.place(c.at, patch, centred);
        for a in 0..3 {
            start[a] = start[a].min(lo[a]);
            end[a] = end[a].max(lo[a] + patch[a]);
        }
        let win = |t: &Tensor| {
            t.narrow(0, lo[0], patch[0])
                .narrow(1, lo[1], patch[1])
                .narrow(2, lo[2], patch[2])
        };
        // `update_point_to_patch`: clicks strictly inside the window (a click on its first
        // voxel is dropped, as MONAI does), in window coordinates.
        let inside: Vec<NetClick> = clicks
            .iter()
            .filter(|k| (0..3).all(|a| k.at[a] - lo[a] > 0 && lo[a] + patch[a] - k.at[a] > 0))
            .map(|k| NetClick {
                at: std::array::from_fn(|a| k.at[a] - lo[a]),
                label: k.label,
            })
            .collect();
        let out = if inside.is_empty() {
            // No click: MONAI's forward returns its "no prompt" constant for the window.
            Tensor::full(patch, NINF, (Kind::Float, Device::Cpu))
        } else {
            let logits = match heads.iter().find(|(l, _)| *l == lo) {
                Some((_, t)) => t.shallow_clone(),
                None => {
                    let coords: Vec<f32> =
                        inside.iter().flat_map(|k| k.at.map(|x| x as f32)).collect();
                    let labels: Vec<i64> = inside.iter().map(|k| k.label).collect();
                    let n = inside.len() as i64;
                    let coords = Tensor::from_slice(&coords).view([1, n, 3]).to_device(dev);
                    let labels = Tensor::from_slice(&labels).view([1, n]).to_device(dev);
                    let features =
                        source.features(lo, patch, || win(&image).unsqueeze(0).unsqueeze(0))?;
                    let logits = tch::no_grad(|| {
                        net.point_logits_from(&features, patch, &coords, &labels, Some(&class_t))
                    });
                    let logits = logits
                        .f_view(patch)?
                        .to_device(Device::Cpu)
                        .to_kind(Kind::Float);
                    heads.push((lo, logits.shallow_clone()));
                    logits
                }
            };
            match &prev {
                None => logits,
                Some(p) => {
                    let merged = combine(&win(p), &logits, &inside)?;
                    // MONAI merges into a view of its (padded) previous mask, so each later
                    // window sees the windows before it as its previous mask.
                    win(p).copy_(&merged);
                    merged
                }
            }
        };
        let _ = win(&sum).f_add_(&out)?;
        let _ = win(&covered).fill_(1);
        progress(w as u64 + 1, total)?;
    }
    let fill = match &prev {
        Some(p) => p.shallow_clone(),
        None => Tensor::full(padded, f64::NAN, (Kind::Float, Device::Cpu)),
    };
    let out = sum.where_self(&covered, &fill);
    let logits = out
        .narrow(0, pad[0].0, size[0])
        .narrow(1, pad[1].0, size[1])
        .narrow(2, pad[2].0, size[2])
        .contiguous();
    // In the unpadded image (no click, no window: an empty box).
    let start: [i64; 3] = std::array::from_fn(|a| (start[a] - pad[a].0).clamp(0, size[a]));
    let end: [i64; 3] = std::array::from_fn(|a| (end[a] - pad[a].0).clamp(start[a], size[a]));
    Ok(Inferred { logits, start, end })
}

fn bools(t: &Tensor) -> Result<Vec<bool>, NodeError> {
    let v = Vec::<u8>::try_from(t.to_kind(Kind::Uint8).reshape([-1]))
        .map_err(|e| NodeError::Torch(e.to_string()))?;
    Ok(v.into_iter().map(|b| b != 0).collect())
}

/// MONAI's `connected_components_combine` for one window: the previous logits `prev`, except
/// in the regions the clicks changed (added or removed relative to `prev`) and that are
/// connected to a click of their sign, which take the point logits. `prev` holds no NaN.
fn combine(prev: &Tensor, point: &Tensor, clicks: &[NetClick]) -> Result<Tensor, NodeError> {
    let shape = prev.size();
    let shape_u: [usize; 3] = std::array::from_fn(|a| shape[a] as usize);
    // A click on the previous mask lets the click's object grow there, too.
    let inside = clicks.iter().any(|c| prev.double_value(&c.at) > 0.0);
    let prev_fg = prev.sigmoid().gt(0.5);
    let pos_region = point.sigmoid().gt(0.5);
    let diff_pos = if inside {
        pos_region.shallow_clone()
    } else {
        prev_fg.logical_not().logical_and(&pos_region)
    };
    let diff_neg = prev_fg.logical_and(&pos_region.logical_not());
    let marks: Vec<([i64; 3], bool)> = clicks.iter().map(|c| (c.at, c.positive())).collect();
    let cc = keep_merge(&bools(&diff_pos)?, &bools(&diff_neg)?, shape_u, &marks);
    let cc: Vec<u8> = cc.into_iter().map(u8::from).collect();
    let cc = Tensor::from_slice(&cc)
        .view(shape.as_slice())
        .to_kind(Kind::Bool);
    Ok(point.where_self(&cc, prev))
}
