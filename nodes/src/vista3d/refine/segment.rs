//! [`segment`]: clicks (and an optional prior label map) to a label map, the typed core that
//! `vista3d_refine` and `vista3d_zeroshot` both call.

use super::clicks::{self, Click};
use super::features::FeatureSource;
use super::inferer::{self, NetClick};
use super::{components, WindowParams, PRIOR_LOGIT};
use crate::node::{Ctx, NodeError};
use crate::spatial::{reorient, CropBox, Grid, Orientation};
use crate::value::{Geometry, LabelMap, Volume};
use crate::vista3d::classes::table;
use crate::vista3d::models::{self, Network};
use crate::vista3d::preprocess::{self, Prepared};
use std::collections::BTreeMap;
use std::path::PathBuf;
use tch::{Device, Kind, Tensor};

/// Everything [`segment`] needs besides the image, the prior and the clicks.
pub struct RefineOptions {
    /// The weights file (`.safetensors`, with its card when there is one).
    pub weights: PathBuf,
    pub network: Network,
    pub window: WindowParams,
}

fn invalid(m: String) -> NodeError {
    NodeError::Invalid(m)
}

/// Segments the clicked classes of `image` (CT in HU): each class's clicks go through the
/// point head in windows around them; with a `prior`, only regions connected to a click
/// change, elsewhere the prior stays. Returns the label map on the image's grid.
pub fn segment(
    ctx: &Ctx,
    image: &Volume,
    prior: Option<&LabelMap>,
    clicks: &[Click],
    opts: &RefineOptions,
) -> Result<LabelMap, NodeError> {
    let config = models::network_config(opts.network, &opts.weights)?;
    let spacing =
        models::card_of(&opts.weights)?.map_or(table().preprocess.spacing_mm, |c| c.spacing_mm);
    models::check_patch(&opts.window.patch, &config).map_err(invalid)?;
    let img = match image.data().dim() {
        4 if image.data().size()[0] == 1 => {
            Volume::new(image.data().squeeze_dim(0), *image.geometry()).map_err(invalid)?
        }
        _ => image.clone(),
    };
    if let Some(l) = prior {
        check_grid(&l.volume, &img)?;
    }
    let shape = img.spatial_shape();
    let shape_ijk = [shape[2], shape[1], shape[0]];
    let mut voxels = Vec::new();
    for (n, c) in clicks.iter().enumerate() {
        voxels.push(clicks::voxel_of(c, n, img.geometry(), shape_ijk).map_err(invalid)?);
    }
    let classes = clicked_classes(ctx, clicks, prior)?;

    let prepared = preprocess::prepare(&img, Some(spacing), ctx)?;
    let Some(net_image) = prepared.image.as_ref() else {
        return Err(invalid(
            "no voxel of the image is above 0 HU, so VISTA3D has nothing to work on; is it a \
             CT in Hounsfield units?"
                .into(),
        ));
    };
    let grid = NetGrid::new(&img, prior, &prepared, &classes)?;
    let net_clicks = grid.clicks(&img, clicks, &voxels)?;

    ctx.check_cancelled()?;
    let net = models::shared(&opts.weights, &config, ctx.device, Kind::Float)?;
    let keep = opts.window.cache_features.keep(ctx.device);
    let mut source = FeatureSource::new(
        &net,
        keep.then_some(ctx),
        format!(
            "point features v2 {} patch {:?}",
            opts.network, opts.window.patch
        ),
        opts.window.reuse_windows,
    );
    // Changed in place, box by box; `grid.labels` is not read again.
    let net_labels = grid.labels.shallow_clone();
    let total = net_clicks.len() as u64;
    let mut done = 0u64;
    for &cls in &classes {
        let these: Vec<NetClick> = net_clicks
            .iter()
            .filter(|(c, _)| *c == cls)
            .map(|(_, k)| *k)
            .collect();
        let prev = prior
            .map(|_| (net_labels.eq(cls as i64).to_kind(Kind::Float) * 2.0 - 1.0) * PRIOR_LOGIT);
        let base_done = done;
        let mut progress = |d: u64, _t: u64| -> Result<(), NodeError> {
            ctx.progress(base_done + d, total, "windows");
            ctx.check_cancelled()
        };
        let object = inferer::Object {
            clicks: &these,
            class: cls,
            prev: prev.as_ref(),
        };
        let inferred = inferer::infer(
            &net,
            &mut source,
            net_image,
            object,
            opts.window.patch,
            &mut progress,
        )?;
        done += these.len() as u64;
        let logits = inferred.logits;
        if prior.is_none() {
            keep_positive(&logits, inferred.start, inferred.end, &these)?;
        }
        // Only the windows' box can change: outside it the logits are the prior's (which
        // give the labels already there) or NaN (never > 0), with no `cls` voxels to clear.
        let boxed = |t: &Tensor| {
            (0..3).fold(t.shallow_clone(), |v, a| {
                v.narrow(
                    a as i64,
                    inferred.start[a],
                    inferred.end[a] - inferred.start[a],
                )
            })
        };
        let mask = boxed(&logits).gt(0.0); // NaN (never computed) is not > 0
        let mut dst = boxed(&net_labels);
        let cleared = dst.where_scalarother(&dst.ne(cls as i64), 0);
        dst.copy_(&Tensor::full_like(&cleared, cls as i64).where_self(&mask, &cleared));
    }
    grid.back_to_input(&img, net_labels)
}

/// The clicked classes in order of first appearance; a zero-shot class needs a positive
/// click, a class with only negative clicks and absent from the prior gets a warning.
fn clicked_classes(
    ctx: &Ctx,
    clicks: &[Click],
    prior: Option<&LabelMap>,
) -> Result<Vec<u32>, NodeError> {
    let mut classes: Vec<u32> = Vec::new();
    for c in clicks {
        if !classes.contains(&c.class) {
            classes.push(c.class);
        }
    }
    let last = table().last_supported;
    for &cls in &classes {
        let any_pos = clicks.iter().any(|c| c.class == cls && c.positive);
        if cls > last && !any_pos {
            return Err(invalid(format!(
                "class {cls} is a new (zero-shot) structure (ids above {last}) and has no \
                 positive click: add at least one `label: positive` click on it"
            )));
        }
        let in_prior =
            prior.is_some_and(|l| l.volume.data().eq(cls as i64).any().int64_value(&[]) != 0);
        if !any_pos && !in_prior {
            ctx.warn(&format!(
                "class {cls} has only negative clicks and is not in the prior: the result for \
                 it is whatever the network makes of them; add a positive click"
            ));
        }
    }
    Ok(classes)
}

/// The prior (or an empty map) on the network's grid: cropped to the foreground box as the
/// bundle's preprocessing crops the image, oriented to RAS, in [X, Y, Z] order.
struct NetGrid {
    /// The foreground box on the input's grid.
    bounds: CropBox,
    /// The prior (or zeros) on the input's grid, in its own dtype.
    base: Volume,
    /// The cropped box's own orientation, to orient results back.
    back_to: Orientation,
    ras_geom: Geometry,
    /// The output's classes: the prior's and the clicked ones.
    classes: BTreeMap<u32, String>,
    /// [X, Y, Z] on the CPU, in the output's kind (the prior's, wider when an id needs it).
    labels: Tensor,
}

/// The prior's kind, or a wider one when `max_id` does not fit it.
fn label_kind(prior: Kind, max_id: u32) -> Kind {
    match prior {
        Kind::Uint8 if max_id <= 255 => Kind::Uint8,
        Kind::Int8 if max_id <= 127 => Kind::Int8,
        Kind::Uint8 | Kind::Int8 | Kind::Int16 if max_id <= 32767 => Kind::Int16,
        Kind::Int64 => Kind::Int64,
        _ => Kind::Int,
    }
}

impl NetGrid {
    /// Through the crop and orientation `prepared` gave the image.
    fn new(
        img: &Volume,
        prior: Option<&LabelMap>,
        prepared: &Prepared,
        clicked: &[u32],
    ) -> Result<NetGrid, NodeError> {
        let mut classes = prior.map(|l| l.classes.clone()).unwrap_or_default();
        for (id, name) in table().class_table(clicked) {
            classes.insert(id, name);
        }
        let base = match prior {
            Some(l) => l.volume.clone(),
            None => Volume::new(
                Tensor::zeros(img.spatial_shape(), (Kind::Uint8, Device::Cpu)),
                *img.geometry(),
            )
            .map_err(invalid)?,
        };
        // A contiguous tensor of its own, in one pass: `segment` changes it in place, and
        // an int64 prior could otherwise come through as a view of the input's data.
        let net = prepared.forward(&base)?;
        let max_id = classes.keys().copied().max().unwrap_or(0);
        let kind = label_kind(base.kind(), max_id);
        let mut labels = Tensor::empty(net.size(), (kind, Device::Cpu));
        labels.copy_(&net);
        Ok(NetGrid {
            bounds: prepared.crop,
            base,
            back_to: prepared.original,
            ras_geom: prepared.oriented,
            classes,
            labels,
        })
    }

    /// The clicks in network voxels, with their point labels (2/3 for special classes).
    fn clicks(
        &self,
        img: &Volume,
        clicks: &[Click],
        voxels: &[[i64; 3]],
    ) -> Result<Vec<(u32, NetClick)>, NodeError> {
        let net_size = self.labels.size();
        let special = clicks::special_classes();
        let mut out = Vec::new();
        for (n, (c, v)) in clicks.iter().zip(voxels).enumerate() {
            let at = clicks::map_voxel(img.geometry(), &self.ras_geom, *v)
                .ok_or_else(|| invalid("the image's affine cannot be inverted".into()))?;
            if (0..3).any(|a| at[a] < 0 || at[a] >= net_size[a]) {
                return Err(invalid(format!(
                    "point {n} (voxel {v:?}) is in the air outside the body: VISTA3D works on \
                     the box around voxels above 0 HU (voxels {:?} to {:?}, [i, j, k]); click \
                     inside it",
                    self.bounds.start,
                    self.bounds.end.map(|e| e - 1)
                )));
            }
            let label = i64::from(c.positive) + if special.contains(&c.class) { 2 } else { 0 };
            out.push((c.class, NetClick { at, label }));
        }
        Ok(out)
    }

    /// The network's labels back on the input's grid; outside the box the prior stays.
    fn back_to_input(&self, img: &Volume, net_labels: Tensor) -> Result<LabelMap, NodeError> {
        let kind = self.labels.kind();
        let v = Volume::new(net_labels.permute([2, 1, 0]), self.ras_geom).map_err(invalid)?;
        let back = reorient(&v, self.back_to)?;
        let full = self.base.data().to_device(Device::Cpu).to_kind(kind).copy();
        let mut dst = full.shallow_clone();
        let b = &self.bounds;
        for a in 0..3 {
            dst = dst.narrow(2 - a as i64, b.start[a], b.end[a] - b.start[a]);
        }
        dst.copy_(back.data());
        let mut out_vol = Volume::new(full, *img.geometry()).map_err(invalid)?;
        out_vol.meta = self.base.meta.clone();
        LabelMap::new(out_vol, self.classes.clone()).map_err(invalid)
    }
}

/// `keep_components_with_positive_points` on an [X, Y, Z] logit volume, in place. Only the
/// box `start..end` the windows cover holds logits (NaN outside), so only it is looked at.
fn keep_positive(
    logits: &Tensor,
    start: [i64; 3],
    end: [i64; 3],
    clicks: &[NetClick],
) -> Result<(), NodeError> {
    let mut view = logits.shallow_clone();
    for a in 0..3 {
        view = view.narrow(a as i64, start[a], end[a] - start[a]);
    }
    let shape: [usize; 3] = std::array::from_fn(|a| (end[a] - start[a]) as usize);
    let mut v = Vec::<f32>::try_from(view.contiguous().reshape([-1]))
        .map_err(|e| NodeError::Torch(e.to_string()))?;
    let pos: Vec<[i64; 3]> = clicks
        .iter()
        .filter(|c| c.positive() && (0..3).all(|a| (start[a]..end[a]).contains(&c.at[a])))
        .map(|c| std::array::from_fn(|a| c.at[a] - start[a]))
        .collect();
    components::keep_positive(&mut v, shape, &pos);
    view.copy_(&Tensor::from_slice(&v).view([shape[0] as i64, shape[1] as i64, shape[2] as i64]));
    Ok(())
}

/// The prior must lie on the image's grid.
fn check_grid(labels: &Volume, img: &Volume) -> Result<(), NodeError> {
    if labels.data().dim() != 3 || !Grid::of(labels).matches(&Grid::of(img), 1e-3) {
        let s = labels.spatial_shape();
        let t = img.spatial_shape();
        return Err(NodeError::Invalid(format!(
            "the `labels` prior ({} x {} x {} voxels) is not on the image's grid ({} x {} x {} \
             voxels, or a different affine): put `resample` with the image as `reference` \
             (nearest) before vista3d_refine",
            s[2], s[1], s[0], t[2], t[1], t[0]
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_label_kind_widens_only_when_an_id_does_not_fit() {
        assert_eq!(label_kind(Kind::Uint8, 255), Kind::Uint8);
        assert_eq!(label_kind(Kind::Uint8, 256), Kind::Int16);
        // A signed byte holds ids up to 127: a zero-shot id (133) needs int16.
        assert_eq!(label_kind(Kind::Int8, 127), Kind::Int8);
        assert_eq!(label_kind(Kind::Int8, 133), Kind::Int16);
        assert_eq!(label_kind(Kind::Int16, 32767), Kind::Int16);
        assert_eq!(label_kind(Kind::Int16, 40000), Kind::Int);
        assert_eq!(label_kind(Kind::Int, 7), Kind::Int);
        assert_eq!(label_kind(Kind::Int64, 7), Kind::Int64);
    }
}
