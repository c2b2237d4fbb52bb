//! The bundle's preprocessing for automatic segmentation, and its inverse for the outputs:
//! foreground crop (HU > 0, margin 10) -> HU window scaled to [0, 1] -> orientation RAS ->
//! network axis order (MONAI's [x, y, z] array order, where our tensors are [k, j, i]).

use super::classes::table;
use crate::node::{Ctx, NodeError};
use crate::spatial::{crop, foreground_box, reorient, CropBox, Orientation};
use crate::value::{Geometry, Volume};
use tch::{Device, Kind, Tensor};

/// A prepared image and what is needed to put results back on the input's grid.
pub struct Prepared {
    /// [X, Y, Z] (RAS voxel axes), scaled to [0, 1], float32 on the input's device; `None`
    /// when no voxel is above 0 HU (nothing to segment).
    pub image: Option<Tensor>,
    input: Volume,
    pub(crate) crop: CropBox,
    /// Geometry of the cropped volume after orientation to RAS.
    pub(crate) oriented: Geometry,
    /// Orientation of the cropped input, to orient results back.
    pub(crate) original: Orientation,
}

/// Checks the input and prepares it; warnings go to `ctx`. `spacing_mm`: what the model was
/// trained at (a warning when the input is far from it); `None` checks nothing (training).
pub fn prepare(
    img: &Volume,
    spacing_mm: Option<[f64; 3]>,
    ctx: &Ctx,
) -> Result<Prepared, NodeError> {
    let img = single_channel(img)?;
    let [nk, nj, ni] = img.spatial_shape();
    if [nk, nj, ni].contains(&1) {
        return Err(NodeError::Invalid(format!(
            "vista3d_auto needs a 3D CT volume; this image is 2D ({ni} x {nj} x {nk} voxels). \
             Load the whole series (load_dicom on the folder) or a 3D NIfTI"
        )));
    }
    let sp = img.geometry().spacing();
    if let Some(want) = spacing_mm {
        if (0..3).any(|a| (sp[a] - want[a]).abs() > 0.25 * want[a]) {
            ctx.warn(&format!(
                "input spacing is {:.2} x {:.2} x {:.2} mm but the model was trained at {} x \
                 {} x {} mm: results will be poor. Put `resample` with `spacing: [{}, {}, {}]` \
                 before it",
                sp[0], sp[1], sp[2], want[0], want[1], want[2], want[0], want[1], want[2]
            ));
        }
    }
    let data = img.data();
    let (lo, hi) = (data.min().double_value(&[]), data.max().double_value(&[]));
    if hi - lo < 200.0 || lo > -200.0 {
        ctx.warn(&format!(
            "values range from {lo:.0} to {hi:.0}: VISTA3D expects CT in Hounsfield units \
             (air about -1000); check the input (rescale slope/intercept, modality)"
        ));
    }

    let pre = &table().preprocess;
    let shape = img.spatial_shape();
    let whole = CropBox {
        start: [0; 3],
        end: [shape[2], shape[1], shape[0]],
    };
    let Some(b) = foreground_box(&img, 0.0, pre.crop_foreground_margin)? else {
        ctx.warn("no voxel is above 0 HU: nothing to segment, the output is all background");
        let original = Orientation::of(&img.geometry().affine_lps);
        return Ok(Prepared {
            image: None,
            oriented: *img.geometry(),
            input: img,
            crop: whole,
            original,
        });
    };
    let cropped = crop(&img, &b)?;
    let original = Orientation::of(&cropped.geometry().affine_lps);
    // MONAI's ScaleIntensityRange: (x - a_min) / (a_max - a_min), clipped to [0, 1].
    let scaled = (cropped.data().to_kind(Kind::Float) - pre.hu_min)
        .f_div_scalar(pre.hu_max - pre.hu_min)?
        .clamp(0.0, 1.0);
    let scaled = Volume::new(scaled, *cropped.geometry()).map_err(NodeError::Invalid)?;
    let ras = reorient(&scaled, Orientation::parse("RAS")?)?;
    // A view: windows are copied out of it one by one, so no whole-volume copy is needed.
    let image = ras.data().permute([2, 1, 0]);
    Ok(Prepared {
        image: Some(image),
        oriented: *ras.geometry(),
        input: img,
        crop: b,
        original,
    })
}

fn single_channel(img: &Volume) -> Result<Volume, NodeError> {
    let s = img.data().size();
    match s.len() {
        3 => Ok(img.clone()),
        4 if s[0] == 1 => {
            let mut v = Volume::new(img.data().squeeze_dim(0), *img.geometry())
                .map_err(NodeError::Invalid)?;
            v.meta = img.meta.clone();
            v.identity = img.identity.clone();
            Ok(v)
        }
        _ => Err(NodeError::Invalid(format!(
            "vista3d_auto needs a single-channel CT volume, got {} channels",
            s[0]
        ))),
    }
}

impl Prepared {
    /// Another volume on the input's grid (its labels, for training) through the same crop
    /// and orientation: [X, Y, Z] in network order, its own kind.
    pub fn forward(&self, v: &Volume) -> Result<Tensor, NodeError> {
        let cropped = crop(v, &self.crop)?;
        let ras = reorient(&cropped, Orientation::parse("RAS")?)?;
        Ok(ras.data().permute([2, 1, 0]))
    }

    /// A result in network order ([X, Y, Z], or [C, X, Y, Z] when `channels` > 0) back on the
    /// input's grid as `kind`: orientation undone, pasted into the uncropped extent (0
    /// outside). `None` gives all zeros.
    pub fn restore(
        &self,
        t: Option<Tensor>,
        channels: i64,
        kind: Kind,
    ) -> Result<Volume, NodeError> {
        let [nk, nj, ni] = self.input.spatial_shape();
        let mut full_shape = vec![nk, nj, ni];
        if channels > 0 {
            full_shape.insert(0, channels);
        }
        let full = Tensor::zeros(full_shape.as_slice(), (kind, Device::Cpu));
        if let Some(t) = t {
            let lead = t.dim() as i64 - 3;
            let mut perm: Vec<i64> = (0..lead).collect();
            perm.extend([lead + 2, lead + 1, lead]);
            let v = Volume::new(t.permute(perm.as_slice()).to_kind(kind), self.oriented)
                .map_err(NodeError::Invalid)?;
            let back = reorient(&v, self.original)?;
            let mut dst = full.shallow_clone();
            for a in 0..3 {
                let b = &self.crop;
                dst = dst.narrow(lead + 2 - a as i64, b.start[a], b.end[a] - b.start[a]);
            }
            dst.copy_(&back.data().to_device(Device::Cpu));
        }
        let mut out = Volume::new(full, *self.input.geometry()).map_err(NodeError::Invalid)?;
        out.meta = self.input.meta.clone();
        out.identity = self.input.identity.clone();
        Ok(out)
    }
}
