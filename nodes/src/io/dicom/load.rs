//! `load_dicom`'s work: scan, choose a series, place it on a grid, decode, resample.

use super::identity::identity;
use super::layout::layout;
use super::pixels::{decode_file, Job};
use super::scan::{scan, Scan};
use super::series::{choose, stacks, Choice};
use crate::node::{Ctx, NodeError};
use crate::value::{Geometry, Volume};
use rayon::prelude::*;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use tch::{Device, Kind, Tensor};

/// Metadata keys set on the volume.
pub const META_SOURCE_FORMAT: &str = "source_format";
pub const META_MODALITY: &str = "modality";
pub const META_UNITS: &str = "units";
pub const META_RESAMPLED: &str = "dicom_slices_resampled";

/// Loads the chosen series under `root` as a float32 volume.
pub fn load(
    root: &Path,
    choice: &Choice,
    allow_irregular: bool,
    ctx: &Ctx,
) -> Result<Volume, NodeError> {
    let found = scan(root, ctx)?;
    report_skipped(root, &found, ctx)?;
    let Scan { images, .. } = found;
    let chosen = choose(stacks(&images), choice, root, ctx)?;
    let lay = layout(&chosen, allow_irregular, root)?;
    let (rows, cols) = (chosen.rows as i64, chosen.cols as i64);
    let nsrc = lay.order.len();
    let plane = (rows * cols) as usize;

    let data =
        Tensor::f_empty([nsrc as i64, rows, cols], (Kind::Float, Device::Cpu)).map_err(|e| {
            NodeError::file(
                root,
                format!(
                    "cannot allocate {} MB for the voxels: {e}",
                    (nsrc * plane * 4) >> 20
                ),
            )
        })?;
    // Jobs per file, so that each file is opened once.
    let mut per_file: BTreeMap<usize, Vec<Job>> = BTreeMap::new();
    for (k, f) in lay.order.iter().enumerate() {
        per_file.entry(f.inst).or_default().push(Job {
            frame: f.frame,
            slope: f.geom.slope,
            intercept: f.geom.intercept,
            k,
        });
    }
    let out = OutSlices {
        base: data.data_ptr() as *mut f32,
        plane,
        n: nsrc,
    };
    let done = AtomicU64::new(0);
    let total = nsrc as u64;
    let results: Vec<Result<(), (usize, String)>> = per_file
        .par_iter()
        .map(|(&inst, jobs)| {
            if ctx.cancel.is_cancelled() {
                return Ok(());
            }
            decode_file(&images[inst], jobs, |k, fill| {
                // SAFETY: `k` indexes `lay.order`, a permutation of the stack's frames, and
                // every frame is in exactly one job: each slice is written by one task only.
                let dst = unsafe { out.slice(k) };
                fill(dst)?;
                let n = done.fetch_add(1, Ordering::Relaxed) + 1;
                ctx.progress(n, total, "slices");
                Ok(())
            })
            .map_err(|m| (inst, m))
        })
        .collect();
    ctx.check_cancelled()?;
    if let Some(Err((inst, msg))) = results.into_iter().find(|r| r.is_err()) {
        return Err(NodeError::file(&images[inst].path, msg));
    }

    let data = match &lay.resample {
        None => data,
        Some(plan) => {
            let lo: Vec<i64> = plan.iter().map(|b| b.lo as i64).collect();
            let hi: Vec<i64> = plan.iter().map(|b| b.hi as i64).collect();
            let w: Vec<f32> = plan.iter().map(|b| b.w as f32).collect();
            let w = Tensor::from_slice(&w).view([-1, 1, 1]);
            let a = data.index_select(0, &Tensor::from_slice(&lo));
            let b = data.index_select(0, &Tensor::from_slice(&hi));
            ctx.warn(&format!(
                "uneven slices resampled onto a regular grid: {nsrc} slices became {} by linear \
                 interpolation along the slice normal (allow_irregular)",
                plan.len()
            ));
            a.lerp_tensor(&b, &w)
        }
    };
    let modality = chosen.modality.clone();
    let mut vol = Volume::new(
        data,
        Geometry {
            affine_lps: lay.affine,
        },
    )
    .map_err(|m| NodeError::file(root, m))?
    .with_meta(META_SOURCE_FORMAT, "dicom");
    if !modality.is_empty() {
        vol = vol.with_meta(META_MODALITY, modality.clone());
    }
    let rescale_type = images[lay.order[0].inst].rescale_type.clone();
    if modality == "CT" && rescale_type.as_deref().is_none_or(|t| t == "HU") {
        vol = vol.with_meta(META_UNITS, "HU");
    } else if let Some(t) = rescale_type.filter(|t| t != "US") {
        vol = vol.with_meta(META_UNITS, t);
    }
    if lay.resample.is_some() {
        vol = vol.with_meta(META_RESAMPLED, "true");
    }
    let mut id = identity(&images, &lay.order, lay.resample.is_some());
    // The grid as loaded: exports that reference the source slices (DICOM SEG) check that
    // the image they get is still on it (not cropped or resampled since).
    id["grid"] = serde_json::json!({
        "shape": vol.data().size(),
        "affine_lps": vol.geometry().affine_lps,
    });
    vol.identity = Some(Arc::new(id));
    Ok(vol)
}

/// Warns about skipped files; errors when nothing loadable was found.
fn report_skipped(root: &Path, s: &Scan, ctx: &Ctx) -> Result<(), NodeError> {
    if s.images.is_empty() {
        if root.is_file() {
            let msg = if let Some((_, why)) = s.broken.first() {
                why.clone()
            } else if let Some((_, why)) = s.other.first() {
                format!("not an image volume: {why}")
            } else {
                "not a DICOM file (no `DICM` magic at byte 128, nor a data set without one)".into()
            };
            return Err(NodeError::file(root, msg));
        }
        let total = s.not_dicom.len() + s.other.len() + s.broken.len();
        if total == 0 {
            return Err(NodeError::file(
                root,
                "the folder is empty: no files found (searched recursively)",
            ));
        }
        let mut msg = format!(
            "no DICOM image volume found among {total} file(s): {} not DICOM, {} DICOM but not \
             image volumes, {} unreadable",
            s.not_dicom.len(),
            s.other.len(),
            s.broken.len()
        );
        if let Some((p, why)) = s.broken.first() {
            msg.push_str(&format!("\n  first unreadable: {}: {why}", p.display()));
        }
        if let Some((p, why)) = s.other.first() {
            msg.push_str(&format!("\n  first non-volume: {}: {why}", p.display()));
        }
        return Err(NodeError::file(root, msg));
    }
    if !s.not_dicom.is_empty() {
        ctx.warn(&format!(
            "skipped {} file(s) that are not DICOM",
            s.not_dicom.len()
        ));
    }
    if !s.other.is_empty() {
        ctx.warn(&format!(
            "skipped {} DICOM file(s) that are not image volumes (DICOMDIR, SR, SEG, RT, colour, ...)",
            s.other.len()
        ));
    }
    for (p, why) in s.broken.iter().take(3) {
        ctx.warn(&format!(
            "skipped an unreadable DICOM file: {}: {why}",
            p.display()
        ));
    }
    if s.broken.len() > 3 {
        ctx.warn(&format!(
            "skipped {} more unreadable DICOM files",
            s.broken.len() - 3
        ));
    }
    Ok(())
}

/// The output tensor's memory, shared between decoding threads slice by slice.
struct OutSlices {
    base: *mut f32,
    plane: usize,
    n: usize,
}

// SAFETY: the pointer is to a tensor that outlives the parallel section; threads write
// disjoint slices (see `slice`).
unsafe impl Sync for OutSlices {}
unsafe impl Send for OutSlices {}

impl OutSlices {
    /// # Safety
    /// No two live references to the same `k` may exist at once.
    #[expect(
        clippy::mut_from_ref,
        reason = "one slice per thread; the caller upholds the safety contract"
    )]
    unsafe fn slice(&self, k: usize) -> &mut [f32] {
        assert!(k < self.n);
        std::slice::from_raw_parts_mut(self.base.add(k * self.plane), self.plane)
    }
}
