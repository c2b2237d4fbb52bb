//! Training cases (a CT and its labels prepared as for inference, labels mapped to VISTA3D
//! ids) and the random patches drawn from them, with augmentation.

use super::rng::Rng;
use crate::node::{Ctx, NodeError};
use crate::spatial::Grid;
use crate::value::{LabelMap, Volume};
use crate::vista3d::preprocess;
use serde::Deserialize;
use std::collections::BTreeMap;
use tch::{Device, Kind, Tensor};

/// One prepared (image, labels) pair.
pub struct Case {
    /// [X, Y, Z] in [0, 1], as `vista3d_auto` feeds the network.
    pub image: Tensor,
    /// [X, Y, Z] VISTA3D class ids (0: background or a structure this pair does not map).
    pub labels: Tensor,
    /// The VISTA3D ids this pair is labelled for (MONAI's `label_set`, without 0).
    pub label_set: Vec<i64>,
    /// Voxels of each class present, to centre patches on.
    pub voxels: Vec<(i64, Vec<[i64; 3]>)>,
    pub shape: [i64; 3],
}

/// Prepares a pair: the labels must be on the image's grid; `map` takes the pair's label ids
/// to VISTA3D ids.
pub fn prepare(
    image: &Volume,
    labels: &LabelMap,
    map: &BTreeMap<i64, i64>,
    pair: &str,
    ctx: &Ctx,
) -> Result<Case, NodeError> {
    let (gi, gl) = (Grid::of(image), Grid::of(&labels.volume));
    if !gi.matches(&gl, 1e-3) {
        return Err(NodeError::Invalid(format!(
            "{pair}: the labels are not on the image's grid; put `resample` with `reference` \
             (the image) and `interpolation: nearest` before vista3d_train"
        )));
    }
    let prepared = preprocess::prepare(image, None, ctx)?;
    let Some(img) = prepared.image.as_ref() else {
        return Err(NodeError::Invalid(format!(
            "{pair}: no voxel of the image is above 0 HU; is it CT in Hounsfield units?"
        )));
    };
    let raw = prepared.forward(&labels.volume)?.to_kind(Kind::Int64);
    let src: Vec<i64> = Vec::try_from(&raw.contiguous().view([-1]))
        .map_err(|e: tch::TchError| NodeError::Invalid(e.to_string()))?;
    let s = raw.size();
    let shape = [s[0], s[1], s[2]];
    let mut mapped = vec![0i64; src.len()];
    let mut voxels: BTreeMap<i64, Vec<[i64; 3]>> = BTreeMap::new();
    for (i, &v) in src.iter().enumerate() {
        if let Some(&id) = map.get(&v) {
            mapped[i] = id;
            let i = i as i64;
            let at = [
                i / (shape[1] * shape[2]),
                (i / shape[2]) % shape[1],
                i % shape[2],
            ];
            voxels.entry(id).or_default().push(at);
        }
    }
    let mut label_set: Vec<i64> = map.values().copied().collect();
    label_set.sort_unstable();
    label_set.dedup();
    for id in &label_set {
        if !voxels.contains_key(id) {
            ctx.warn(&format!(
                "{pair}: class {id} is mapped but has no voxel in this pair's labels"
            ));
        }
    }
    Ok(Case {
        image: img.to_device(Device::Cpu).to_kind(Kind::Float).contiguous(),
        labels: Tensor::from_slice(&mapped).view(shape),
        label_set,
        voxels: voxels.into_iter().collect(),
        shape,
    })
}

/// Augmentation settings (the `augment` parameter).
#[derive(Clone, Debug, Deserialize, serde::Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Augment {
    /// Zoom factor drawn in [1 - scale, 1 + scale].
    pub scale: f64,
    /// Intensity: x * (1 + U(+-intensity)) + U(+-intensity) (MONAI's RandScale/ShiftIntensity).
    pub intensity: f64,
    /// Axes (0 = x, 1 = y, 2 = z) flipped with probability 0.5 each. Off by default: a flip
    /// swaps left and right, and left/right classes would learn each other.
    pub flip: Vec<usize>,
    /// Probability of keeping only a random band of 8 to patch/2 slices along z (the rest
    /// padding), so the network learns thin series such as a 20-slice scan.
    pub slab: f64,
    /// Probability of centring a patch on a labelled voxel (MONAI's pos/neg sampling).
    pub foreground: f64,
    /// How that voxel is drawn: `class` (a class, then one of its voxels: small structures
    /// as often as large ones) or `voxel` (every labelled voxel equally likely, as MONAI's
    /// RandCropByPosNegLabeld: large organs fill most patches). Not serialised when
    /// `class`, so runs that predate it keep their checkpoint identity.
    #[serde(skip_serializing_if = "Centre::is_class")]
    pub centre: Centre,
    /// Largest per-class intensity offset (in the network's [0, 1] units, 1 = 2017 HU): with
    /// probability 0.5 each class present gets its own offset in [-contrast/2, contrast], as
    /// contrast enhancement brightens organs by different amounts (a non-contrast training CT
    /// then teaches shape more than the organs' exact intensities). 0: off.
    pub contrast: f64,
}

#[derive(Clone, Copy, Debug, Deserialize, serde::Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Centre {
    Class,
    Voxel,
}

impl Centre {
    fn is_class(&self) -> bool {
        *self == Centre::Class
    }
}

impl Default for Augment {
    fn default() -> Self {
        Augment {
            scale: 0.1,
            intensity: 0.1,
            flip: vec![],
            slab: 0.0,
            foreground: 0.67,
            centre: Centre::Class,
            contrast: 0.0,
        }
    }
}

/// A training patch: image [1, 1, X, Y, Z], labels [X, Y, Z] (VISTA3D ids).
pub struct Patch {
    pub image: Tensor,
    pub labels: Tensor,
    pub label_set: Vec<i64>,
}

/// Draws one augmented patch of size `patch` from a random case (uniformly, or in proportion
/// to `weights`, one per case).
// On tch `a op= b` is in place (add_, mul_); keep the allocating form.
#[expect(
    clippy::assign_op_pattern,
    reason = "on tch `a op= b` is in place; keep the allocating form"
)]
pub fn sample(
    cases: &[Case],
    weights: Option<&[f64]>,
    patch: [i64; 3],
    aug: &Augment,
    rng: &mut Rng,
) -> Patch {
    let case = &cases[match weights {
        Some(w) => pick_weighted(w, rng.uniform()),
        None => rng.below(cases.len()),
    }];
    let centre: [i64; 3] = if !case.voxels.is_empty() && rng.chance(aug.foreground) {
        match aug.centre {
            Centre::Class => {
                let (_, vox) = &case.voxels[rng.below(case.voxels.len())];
                vox[rng.below(vox.len())]
            }
            Centre::Voxel => {
                let total: usize = case.voxels.iter().map(|(_, v)| v.len()).sum();
                let mut i = rng.below(total);
                let mut at = [0; 3];
                for (_, vox) in &case.voxels {
                    if i < vox.len() {
                        at = vox[i];
                        break;
                    }
                    i -= vox.len();
                }
                at
            }
        }
    } else {
        std::array::from_fn(|a| rng.below(case.shape[a] as usize) as i64)
    };
    let zoom = if aug.scale > 0.0 {
        rng.range(1.0 - aug.scale, 1.0 + aug.scale)
    } else {
        1.0
    };
    let size: [i64; 3] = std::array::from_fn(|a| ((patch[a] as f64 * zoom).round() as i64).max(1));
    let lo: [i64; 3] = std::array::from_fn(|a| centre[a] - size[a] / 2);
    let mut image = crop_padded(&case.image, lo, size);
    let mut labels = crop_padded(&case.labels, lo, size);
    if size != patch {
        image = image
            .view([1, 1, size[0], size[1], size[2]])
            .upsample_trilinear3d(patch, false, None, None, None)
            .view(patch);
        labels = labels
            .to_kind(Kind::Float)
            .view([1, 1, size[0], size[1], size[2]])
            .upsample_nearest3d(patch, None, None, None)
            .view(patch)
            .to_kind(Kind::Int64);
    }
    if aug.intensity > 0.0 {
        let f = 1.0 + rng.range(-aug.intensity, aug.intensity);
        let o = rng.range(-aug.intensity, aug.intensity);
        image = image * f + o;
    }
    if aug.contrast > 0.0 && rng.chance(0.5) {
        for &id in &case.label_set {
            let offset = rng.range(-aug.contrast / 2.0, aug.contrast);
            image = image + labels.eq(id).to_kind(Kind::Float) * offset;
        }
    }
    for &a in &aug.flip {
        if rng.chance(0.5) {
            image = image.flip([a as i64]);
            labels = labels.flip([a as i64]);
        }
    }
    if aug.slab > 0.0 && rng.chance(aug.slab) {
        let most = (patch[2] / 2).max(8);
        let thick = 8 + rng.below((most - 8 + 1) as usize) as i64;
        let start = rng.below((patch[2] - thick + 1).max(1) as usize) as i64;
        let keep = Tensor::zeros(patch, (Kind::Bool, Device::Cpu));
        let _ = keep.narrow(2, start, thick.min(patch[2])).fill_(1);
        image = image * keep.to_kind(Kind::Float);
        labels = labels * keep.to_kind(Kind::Int64);
    }
    Patch {
        image: image.view([1, 1, patch[0], patch[1], patch[2]]),
        labels,
        label_set: case.label_set.clone(),
    }
}

/// The index whose share of `weights` (all positive) holds `u` in [0, 1).
fn pick_weighted(weights: &[f64], u: f64) -> usize {
    let total: f64 = weights.iter().sum();
    let mut acc = 0.0;
    for (i, w) in weights.iter().enumerate() {
        acc += w / total;
        if u < acc {
            return i;
        }
    }
    weights.len() - 1
}

/// `t[lo .. lo + size]` with zeros where the box leaves `t`.
fn crop_padded(t: &Tensor, lo: [i64; 3], size: [i64; 3]) -> Tensor {
    let shape = t.size();
    let out = Tensor::zeros(size, (t.kind(), Device::Cpu));
    let mut src = t.shallow_clone();
    let mut dst = out.shallow_clone();
    for a in 0..3 {
        let from = lo[a].max(0);
        let to = (lo[a] + size[a]).min(shape[a]);
        if to <= from {
            return out;
        }
        src = src.narrow(a as i64, from, to - from);
        dst = dst.narrow(a as i64, from - lo[a], to - from);
    }
    dst.copy_(&src);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weighted_pick_follows_the_shares() {
        assert_eq!(pick_weighted(&[3.0, 1.0], 0.0), 0);
        assert_eq!(pick_weighted(&[3.0, 1.0], 0.74), 0);
        assert_eq!(pick_weighted(&[3.0, 1.0], 0.76), 1);
        assert_eq!(pick_weighted(&[1.0, 1.0, 2.0], 0.49), 1);
        assert_eq!(pick_weighted(&[1.0, 1.0, 2.0], 0.999_999), 2);
    }

    /// Two classes in halves of a constant 0.5 image: with `contrast`, each class gets its
    /// own offset in [-c/2, c] on about half the draws, and the unlabelled voxels none.
    #[test]
    fn contrast_moves_each_class_by_its_own_offset() {
        let shape = [8, 8, 8];
        let labels = Tensor::zeros(shape, (Kind::Int64, Device::Cpu));
        let _ = labels.narrow(0, 0, 4).narrow(1, 0, 4).fill_(1);
        let _ = labels.narrow(0, 4, 4).narrow(1, 0, 4).fill_(2);
        let case = Case {
            image: Tensor::full(shape, 0.5, (Kind::Float, Device::Cpu)),
            labels,
            label_set: vec![1, 2],
            // Every patch centred on the middle: the patch is the whole volume.
            voxels: vec![(1, vec![[4, 4, 4]])],
            shape,
        };
        let aug = Augment {
            scale: 0.0,
            intensity: 0.0,
            foreground: 1.0,
            contrast: 0.1,
            ..Augment::default()
        };
        let (mut moved, mut differ) = (0, 0);
        for seed in 0..40 {
            let p = sample(
                std::slice::from_ref(&case),
                None,
                shape,
                &aug,
                &mut Rng::new(seed, 0),
            );
            let img = p.image.view(shape);
            let offset_of = |id: i64| {
                let m = p.labels.eq(id);
                let v = img.masked_select(&m);
                let (lo, hi) = (v.min().double_value(&[]), v.max().double_value(&[]));
                assert!((hi - lo).abs() < 1e-6, "one offset per class");
                lo - 0.5
            };
            let (a, b, bg) = (offset_of(1), offset_of(2), offset_of(0));
            assert!(bg.abs() < 1e-6, "unlabelled voxels moved by {bg}");
            for o in [a, b] {
                assert!((-0.05 - 1e-6..=0.1 + 1e-6).contains(&o), "offset {o}");
            }
            moved += (a.abs() > 1e-9) as i32;
            differ += ((a - b).abs() > 1e-6) as i32;
        }
        assert!((10..=30).contains(&moved), "applied on {moved} of 40 draws");
        assert_eq!(differ, moved, "the two classes drew the same offset");
    }

    /// `centre: voxel` centres patches on every labelled voxel equally often (a class holding
    /// 90 % of the voxels gets about 90 % of the patches); `class` on each class equally often.
    #[test]
    fn centre_by_voxel_or_by_class() {
        let shape = [20, 20, 20];
        let big: Vec<[i64; 3]> = (0..90).map(|i| [i / 10, i % 10, 0]).collect();
        let small: Vec<[i64; 3]> = (0..10).map(|i| [19, 19, i]).collect();
        let case = Case {
            image: Tensor::zeros(shape, (Kind::Float, Device::Cpu)),
            labels: Tensor::zeros(shape, (Kind::Int64, Device::Cpu)),
            label_set: vec![1, 2],
            voxels: vec![(1, big), (2, small)],
            shape,
        };
        // Which class a patch was centred on: the small class sits at x = 19. A 1-voxel patch
        // holds its centre's image value, so mark the small class's voxels in the image.
        let _ = case.image.narrow(0, 19, 1).fill_(1.0);
        let share_small = |centre: Centre| {
            let aug = Augment {
                scale: 0.0,
                intensity: 0.0,
                foreground: 1.0,
                centre,
                ..Augment::default()
            };
            let n = 2000;
            let hits = (0..n)
                .filter(|&s| {
                    let p = sample(
                        std::slice::from_ref(&case),
                        None,
                        [1, 1, 1],
                        &aug,
                        &mut Rng::new(s, 0),
                    );
                    p.image.double_value(&[0, 0, 0, 0, 0]) > 0.5
                })
                .count();
            hits as f64 / n as f64
        };
        let by_voxel = share_small(Centre::Voxel);
        let by_class = share_small(Centre::Class);
        assert!((0.07..0.13).contains(&by_voxel), "by voxel: {by_voxel}");
        assert!((0.45..0.55).contains(&by_class), "by class: {by_class}");
    }

    #[test]
    fn crop_pads_outside() {
        let t = Tensor::arange(27, (Kind::Int64, Device::Cpu)).view([3, 3, 3]);
        let c = crop_padded(&t, [-1, 1, 2], [2, 2, 2]);
        let v: Vec<i64> = Vec::try_from(&c.view([-1])).unwrap();
        // Rows x = -1 are padding; x = 0, y = 1..2, z = 2..3 -> 5, (pad), 8, (pad).
        assert_eq!(v, vec![0, 0, 0, 0, 5, 0, 8, 0]);
    }
}
