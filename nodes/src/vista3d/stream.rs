//! Streaming sliding-window inference for the class head.
//!
//! MONAI keeps a [classes, H, W, D] float map and a weight map over the whole volume; with
//! "everything" (117 classes) that is tens of GB. Here windows are visited slab by slab along
//! the longest axis and only a band one patch thick is kept: once no later window reaches a
//! row of that axis, its blended values are final and it is turned into labels at once.
//! When there are more classes than feature channels the band blends the class head's
//! C-channel features instead of the logits: logits are linear in them (embedding . feature),
//! so the blend of logits equals the logit of the blended features.

use super::net::{Branches, ClassHead, Vista3d};
use super::window;
use crate::node::NodeError;
use tch::{Device, Kind, Tensor};

/// How to run the windows.
#[derive(Clone, Debug)]
pub struct Options {
    pub patch: [i64; 3],
    pub overlap: f64,
    pub sw_batch: i64,
    /// Skip windows whose input is all air (0 after scaling): they add nothing but time.
    pub skip_empty: bool,
    /// Also return per-class probabilities (sigmoid of the blended logits).
    pub probabilities: bool,
    /// Network input dtype (Float, Half, BFloat16).
    pub kind: Kind,
}

/// Hooks into the node's context.
pub trait Hooks {
    fn progress(&self, done: u64, total: u64);
    fn warn(&self, msg: &str);
    fn cancelled(&self) -> bool;
}

/// The result on the (unpadded) input grid.
pub struct AutoOutput {
    /// Class ids [H, W, D] (Int16 on the CPU); 0 = background.
    pub labels: Tensor,
    /// Probabilities [N, H, W, D] float32 on the CPU, when asked for.
    pub probabilities: Option<Tensor>,
    /// Windows run and skipped.
    pub windows_run: usize,
    pub windows_skipped: usize,
}

/// Runs `f`, turning a libtorch panic (tch's infallible ops panic) into an error; CUDA out of
/// memory becomes [`NodeError::OutOfMemory`] so that callers can fall back.
pub fn guarded<T>(what: &str, f: impl FnOnce() -> T) -> Result<T, NodeError> {
    crate::node::catch_quietly(f).map_err(|p| NodeError::from_panic(what, &*p))
}

/// The band of rows still being blended, in slab-first axis order.
struct Band {
    /// [K, L, A, B]: weighted sums (K = features or classes).
    acc: Tensor,
    /// [L, A, B]: summed weights.
    weight: Tensor,
    /// First row of the band along the slab axis.
    base: i64,
}

/// Segments `image` [H, W, D] (scaled to [0, 1], RAS, net axis order; on any device) for
/// class `ids`.
pub fn segment(
    model: &Vista3d,
    image: &Tensor,
    ids: &[u32],
    opts: &Options,
    hooks: &dyn Hooks,
) -> Result<AutoOutput, NodeError> {
    let dev = model.device();
    let size: [i64; 3] = image.size().try_into().map_err(|_| {
        NodeError::Invalid(format!("expected a 3D image, got shape {:?}", image.size()))
    })?;
    let pad = window::padding(size, opts.patch);
    let image = image.to_kind(Kind::Float).to_device(Device::Cpu);
    // No copy when the image is already at least a patch on every axis.
    let padded = if pad.iter().all(|&(a, b)| a == 0 && b == 0) {
        image
    } else {
        image.constant_pad_nd([pad[2].0, pad[2].1, pad[1].0, pad[1].1, pad[0].0, pad[0].1])
    };
    let psize: [i64; 3] = padded.size().try_into().expect("3D");
    let starts = window::starts(psize, opts.patch, opts.overlap);

    // The slab axis: the longest one (smallest band); permutation to slab-first order.
    let slab = (0..3)
        .max_by_key(|&a| (psize[a], -(a as i64)))
        .expect("3 axes");
    let perm: Vec<i64> = std::iter::once(slab as i64)
        .chain((0..3).filter(|&a| a != slab).map(|a| a as i64))
        .collect();
    let mut order: Vec<usize> = (0..starts.len()).collect();
    order.sort_by_key(|&w| starts[w][slab]); // stable: MONAI's order within a slab

    let ids_t = Tensor::from_slice(&ids.iter().map(|&i| i as i64).collect::<Vec<_>>());
    let emb = guarded("class embeddings", || {
        let _g = tch::no_grad_guard();
        // float32 like the blended features, also when the network runs in half precision.
        model
            .class_head
            .embed(&ids_t.to_device(dev))
            .to_kind(Kind::Float)
    })?;
    let n_classes = ids.len() as i64;
    let n_feat = emb.size()[1];
    let blend_features = n_classes > n_feat;
    let k = if blend_features { n_feat } else { n_classes };

    let gauss_cpu = window::gaussian(opts.patch, Device::Cpu);
    let mut stitch = dev;
    let mut sw_batch = opts.sw_batch.max(1);

    let p_s = opts.patch[slab];
    let others: Vec<usize> = (0..3).filter(|&a| a != slab).collect();
    let (len_a, len_b) = (psize[others[0]], psize[others[1]]);
    let band_on = |d: Device| {
        guarded("band buffers", || Band {
            acc: Tensor::zeros([k, p_s, len_a, len_b], (Kind::Float, d)),
            weight: Tensor::zeros([p_s, len_a, len_b], (Kind::Float, d)),
            base: 0,
        })
    };
    let mut band = match band_on(stitch) {
        Err(NodeError::OutOfMemory { msg, .. }) if stitch != Device::Cpu => {
            hooks.warn(&format!(
                "out of GPU memory ({msg}); stitching windows on the CPU from now on"
            ));
            stitch = Device::Cpu;
            band_on(stitch)?
        }
        other => other?,
    };
    // Class ids are below 512: 16 bits per voxel, not 64.
    let mut labels = Tensor::zeros([psize[slab], len_a, len_b], (Kind::Int16, Device::Cpu));
    let mut probs = opts.probabilities.then(|| {
        Tensor::zeros(
            [n_classes, psize[slab], len_a, len_b],
            (Kind::Float, Device::Cpu),
        )
    });
    let ids_dev = |d: Device| ids_t.to_device(d);

    // Rows [band.base, upto) are final: blended values -> logits -> labels.
    let finalize = |band: &Band,
                    upto: i64,
                    labels: &mut Tensor,
                    probs: &mut Option<Tensor>|
     -> Result<(), NodeError> {
        let d = band.acc.device();
        let ids_d = ids_dev(d);
        let emb_d = emb.to_device(d);
        guarded("stitching", || {
            let _g = tch::no_grad_guard();
            let rows = (upto - band.base).min(p_s);
            // A few rows at a time: about 256 k voxels, so that the [voxels, classes] logits
            // stay near 100 MB even for `everything`.
            let step = ((1i64 << 18) / (len_a * len_b)).max(1);
            let mut r0 = 0;
            while r0 < rows {
                let n = step.min(rows - r0);
                let w = band.weight.narrow(0, r0, n).clamp_min(1e-30); // [n, A, B]
                let v = band.acc.narrow(1, r0, n) / &w; // [K, n, A, B]
                                                        // Logits as [voxels, classes]: features [V, C] . embeddings^T [C, N].
                let logits = if blend_features {
                    v.permute([1, 2, 3, 0])
                        .reshape([-1, n_feat])
                        .matmul(&emb_d.transpose(0, 1))
                } else {
                    v.permute([1, 2, 3, 0]).reshape([-1, n_classes])
                };
                let (best, arg) = logits.max_dim(1, false);
                let id = ids_d.index_select(0, &arg);
                let lab = id
                    .where_self(&best.gt(0.0), &id.zeros_like())
                    .to_kind(Kind::Int16);
                labels
                    .narrow(0, band.base + r0, n)
                    .copy_(&lab.reshape([n, len_a, len_b]).to_device(Device::Cpu));
                if let Some(p) = probs.as_mut() {
                    let pr = logits
                        .sigmoid()
                        .transpose(0, 1)
                        .reshape([-1, n, len_a, len_b]);
                    p.narrow(1, band.base + r0, n)
                        .copy_(&pr.to_device(Device::Cpu));
                }
                r0 += n;
            }
        })
    };

    let total = order.len();
    let mut done = 0usize;
    let mut skipped = 0usize;
    let mut i = 0;
    while i < total {
        if hooks.cancelled() {
            return Err(NodeError::Cancelled);
        }
        let s0 = starts[order[i]][slab];
        if s0 != band.base {
            finalize(&band, s0, &mut labels, &mut probs)?;
            band = shift(band, s0, stitch)?;
        }
        // A batch: windows of this slab only.
        let mut batch = Vec::new();
        while i < total && batch.len() < sw_batch as usize && starts[order[i]][slab] == s0 {
            batch.push(starts[order[i]]);
            i += 1;
        }
        let crops: Vec<Tensor> = batch
            .iter()
            .map(|s| {
                padded
                    .narrow(0, s[0], opts.patch[0])
                    .narrow(1, s[1], opts.patch[1])
                    .narrow(2, s[2], opts.patch[2])
            })
            .collect();
        let keep: Vec<usize> = (0..batch.len())
            .filter(|&j| !opts.skip_empty || crops[j].max().double_value(&[]) > 0.0)
            .collect();
        if !keep.is_empty() {
            let input =
                Tensor::stack(&keep.iter().map(|&j| &crops[j]).collect::<Vec<_>>(), 0).unsqueeze(1);
            let out = loop {
                match run_windows(model, &input, &emb, blend_features, opts.kind) {
                    Ok(o) => break o,
                    Err(NodeError::OutOfMemory { msg, .. }) if sw_batch > 1 => {
                        hooks.warn(&format!(
                            "out of GPU memory with sw_batch {sw_batch} ({msg}); retrying one \
                             window at a time"
                        ));
                        sw_batch = 1;
                        // Rewind to run this batch's windows one by one.
                        i -= batch.len();
                        break Tensor::new();
                    }
                    Err(NodeError::OutOfMemory { msg, .. }) if stitch != Device::Cpu => {
                        hooks.warn(&format!(
                            "out of GPU memory ({msg}); stitching windows on the CPU from now on"
                        ));
                        stitch = Device::Cpu;
                        band = Band {
                            acc: band.acc.to_device(Device::Cpu),
                            weight: band.weight.to_device(Device::Cpu),
                            base: band.base,
                        };
                    }
                    Err(e) => return Err(e),
                }
            };
            if !out.defined() {
                continue; // rewound: this batch runs again, one window at a time
            }
            guarded("blending", || {
                let _g = tch::no_grad_guard();
                let g = gauss_cpu.to_device(stitch);
                let gp = g.permute(perm.as_slice());
                let out = out.to_device(stitch);
                for (n, &j) in keep.iter().enumerate() {
                    let s = batch[j];
                    let (a0, b0) = (s[others[0]], s[others[1]]);
                    let (pa, pb) = (opts.patch[others[0]], opts.patch[others[1]]);
                    let mut perm_k = vec![0i64];
                    perm_k.extend(perm.iter().map(|p| p + 1));
                    let contrib = (out.get(n as i64) * &g).permute(perm_k.as_slice());
                    let mut acc = band.acc.narrow(2, a0, pa).narrow(3, b0, pb);
                    let _ = acc.g_add_(&contrib);
                    let mut w = band.weight.narrow(1, a0, pa).narrow(2, b0, pb);
                    let _ = w.g_add_(&gp);
                }
            })?;
        }
        skipped += batch.len() - keep.len();
        done += batch.len();
        hooks.progress(done as u64, total as u64);
    }
    finalize(&band, band.base + p_s, &mut labels, &mut probs)?;

    // Back to the input's axis order and extent.
    let mut inv = [0i64; 3];
    for (pos, &a) in perm.iter().enumerate() {
        inv[a as usize] = pos as i64;
    }
    let unpad = |t: Tensor, lead: i64| {
        let mut t = t;
        for a in 0..3 {
            t = t.narrow(lead + a as i64, pad[a].0, size[a]);
        }
        t.contiguous()
    };
    let labels = unpad(labels.permute(inv.as_slice()), 0);
    let probabilities = probs.map(|p| {
        let mut pk = vec![0i64];
        pk.extend(inv.iter().map(|x| x + 1));
        unpad(p.permute(pk.as_slice()), 1)
    });
    Ok(AutoOutput {
        labels,
        probabilities,
        windows_run: total - skipped,
        windows_skipped: skipped,
    })
}

/// Blended values for a batch of windows [b, 1, P, P, P]: class-head features [b, C, ...]
/// or logits [b, N, ...], float32.
fn run_windows(
    model: &Vista3d,
    input: &Tensor,
    emb: &Tensor,
    blend_features: bool,
    kind: Kind,
) -> Result<Tensor, NodeError> {
    guarded("forward", || {
        let _g = tch::no_grad_guard();
        let x = input.to_device(model.device()).to_kind(kind);
        let (_, dec) = model.image_encoder.forward(
            &x,
            Branches {
                point: false,
                class: true,
            },
        );
        let feats = model
            .class_head
            .features(&dec.expect("class branch"))
            .to_kind(Kind::Float);
        if blend_features {
            feats
        } else {
            ClassHead::logits(emb, &feats).transpose(0, 1)
        }
    })
}

/// The band moved so that it starts at row `to`: rows already in it are kept, new rows zero.
fn shift(band: Band, to: i64, d: Device) -> Result<Band, NodeError> {
    guarded("band shift", || {
        let _g = tch::no_grad_guard();
        let Band {
            mut acc,
            mut weight,
            base,
        } = band;
        let l = weight.size()[0];
        let by = to - base;
        // Copy the kept rows out first (source and target overlap), then zero and put back.
        let kept = (by < l).then(|| {
            let keep = l - by;
            (
                keep,
                acc.narrow(1, by, keep).copy(),
                weight.narrow(0, by, keep).copy(),
            )
        });
        let _ = acc.zero_();
        let _ = weight.zero_();
        if let Some((keep, a, w)) = kept {
            acc.narrow(1, 0, keep).copy_(&a);
            weight.narrow(0, 0, keep).copy_(&w);
        }
        Band {
            acc: acc.to_device(d),
            weight: weight.to_device(d),
            base: to,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn libtorch_panics_become_errors_and_cuda_oom_is_recognised() {
        // What tch's infallible ops panic with: a Debug-printed TchError with a C++ trace.
        let tch_panic = "called `Result::unwrap()` on an `Err` value: Torch(\"CUDA out of memory. \
                         Tried to allocate 2.00 GiB\\nException raised from malloc at ...\\nframe #0\")";
        let e = guarded("forward", || -> () { panic!("{tch_panic}") }).unwrap_err();
        match e {
            NodeError::OutOfMemory { msg, .. } => {
                assert_eq!(
                    msg,
                    "forward: CUDA out of memory. Tried to allocate 2.00 GiB"
                )
            }
            other => panic!("expected OutOfMemory, got {other:?}"),
        }
        let e = guarded("stitching", || -> () {
            panic!("called `Result::unwrap()` on an `Err` value: Torch(\"index out of range in self\\nframe #0\")")
        })
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "libtorch: stitching: index out of range in self"
        );
        // A panic that is not libtorch's (a bug) keeps its message and is no libtorch error.
        let e = guarded("weights", || -> () {
            panic!("index 3 is out of bounds\nmore")
        })
        .unwrap_err();
        assert!(matches!(&e, NodeError::Invalid(m) if m == "weights: index 3 is out of bounds"));
        assert_eq!(guarded("ok", || 3).unwrap(), 3);
    }
}
