//! Surface meshes of label maps (one per class, LPS mm) and their STL files.
//!
//! For each class: its voxels are sampled inside their bounding box plus one empty sample on
//! every side (`decimate`), the surface is extracted by marching tetrahedra (`tetra`:
//! closed and consistently oriented for any input), placed in LPS millimetres through the
//! volume's affine (triangles reversed when the affine mirrors, so normals point out),
//! optionally smoothed (`smooth`), and written as binary STL (`stl`). Classes run in
//! parallel.
//!
//! Volumes: at step 1 without smoothing the surface crosses every inside/outside voxel pair
//! at its shared face, so organs come out within about 0.5% of voxel count x voxel volume;
//! structures a few voxels thick lose more where the surface cuts their edges (a single
//! voxel encloses exactly half its volume). A smoothed or decimated mesh is no longer tied to
//! voxel faces: afterwards its vertices are moved along their normals, by one common
//! distance (at most half a sample spacing), until it encloses voxel count x voxel volume.

mod decimate;
mod scan;
mod smooth;
mod stl;
mod surface;
#[cfg(test)]
mod tests;
mod tetra;

pub use decimate::MAX_STEP;
pub use scan::ClassExtent;
pub use smooth::{LAMBDA, MU};
pub use surface::Mesh;

use crate::io::atomic;
use crate::node::{Ctx, NodeError};
use crate::value::LabelMap;
use rayon::prelude::*;
use scan::{LabelGrid, LabelValue, Voxels};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// Runs `$body` with `$g` bound to the typed grid inside a [`Voxels`].
macro_rules! with_grid {
    ($v:expr, $g:ident => $body:expr) => {
        match $v {
            Voxels::U8($g) => $body,
            Voxels::I8($g) => $body,
            Voxels::I16($g) => $body,
            Voxels::I32($g) => $body,
            Voxels::I64($g) => $body,
        }
    };
}

/// How meshes are made.
///
/// Suggested defaults ([`MeshOptions::default`]): `smooth_iterations: 10`, `step: 1`. Ten
/// lambda/mu pairs take out most of the voxel staircase and barely move the volume (under
/// 0.3% on the TotalSegmentator example before it is set); `step: 2` cuts the triangle count about fourfold for
/// visualisation.
#[derive(Clone, Debug)]
pub struct MeshOptions {
    /// Smoothing iterations (0 = none): Taubin lambda/mu pairs (lambda = [`LAMBDA`], mu =
    /// [`MU`]), after which the enclosed volume is set to the class's voxel volume.
    pub smooth_iterations: u32,
    /// Sample every `step`-th voxel (1 = full resolution); larger steps decimate: each
    /// sample stands for a block of `step`^3 voxels and is inside when any of them is (so
    /// thin parts do not vanish); the enclosed volume is then set to the class's voxel
    /// volume. `1..=MAX_STEP`.
    pub step: u32,
}

impl Default for MeshOptions {
    fn default() -> Self {
        MeshOptions {
            smooth_iterations: 10,
            step: 1,
        }
    }
}

/// Writes one binary STL per class of `labels` into the folder `dir`; returns the files.
///
/// The folder is created when missing. Files are named `<id>_<name>.stl` (see
/// [`file_name`]) and written atomically. Which classes: those of the class table that occur
/// in the volume (a warning names ids that occur but are not in the table); with an empty
/// table, every id > 0 that occurs, named `label_<id>`. Coordinates are LPS millimetres
/// (`affine_lps`), and the header says so (`SPACE=LPS`, as 3D Slicer reads it).
///
/// Fails with [`NodeError::Invalid`] when the label map has no class voxel at all, when
/// none of the table's classes occurs, or on a bad `step` or affine.
pub fn write_stl(
    dir: &Path,
    labels: &LabelMap,
    opts: &MeshOptions,
    ctx: &Ctx,
) -> Result<Vec<PathBuf>, NodeError> {
    check(labels, opts)?;
    let voxels = scan::voxels(labels)?;
    ctx.check_cancelled()?;
    let extents = with_grid!(&voxels, g => scan::extents(g));
    let jobs = select(labels, &extents, ctx)?;
    atomic::create_parent(&dir.join(&jobs[0].file))?;
    let total = jobs.len() as u64;
    let done = AtomicU64::new(0);
    ctx.progress(0, total, "classes");
    let one = |job: &Job| -> Result<PathBuf, NodeError> {
        ctx.check_cancelled()?;
        let mesh = with_grid!(&voxels, g => mesh_class(g, job.id, &job.extent, labels, opts));
        let path = dir.join(&job.file);
        stl::write(&path, &mesh, &format!("class {} {}", job.id, job.name))?;
        ctx.progress(done.fetch_add(1, Ordering::Relaxed) + 1, total, "classes");
        Ok(path)
    };
    let mut written: Vec<(i64, PathBuf)> = jobs
        .par_iter()
        .map(|job| one(job).map(|p| (job.id, p)))
        .collect::<Result<_, _>>()?;
    written.sort();
    Ok(written.into_iter().map(|(_, p)| p).collect())
}

/// The mesh of class `class` of `labels` in LPS mm, or `None` when no voxel has that id.
pub fn class_mesh(
    labels: &LabelMap,
    class: u32,
    opts: &MeshOptions,
) -> Result<Option<Mesh>, NodeError> {
    check(labels, opts)?;
    let voxels = scan::voxels(labels)?;
    let extents = with_grid!(&voxels, g => scan::extents(g));
    let Some(extent) = extents.get(&(class as i64)) else {
        return Ok(None);
    };
    Ok(Some(
        with_grid!(&voxels, g => mesh_class(g, class as i64, extent, labels, opts)),
    ))
}

/// Voxel count and bounding box of every non-zero id present in `labels`.
pub fn class_extents(labels: &LabelMap) -> Result<BTreeMap<i64, ClassExtent>, NodeError> {
    let voxels = scan::voxels(labels)?;
    Ok(with_grid!(&voxels, g => scan::extents(g)))
}

/// `<id>_<name>.stl`, with white space in the name turned into `_` (and characters that
/// cannot be in a file name, `/ \ : * ? " < > |` and control characters, as well).
pub fn file_name(id: u32, name: &str) -> String {
    let clean: String = name
        .trim()
        .chars()
        .map(|c| {
            if c.is_whitespace() || c.is_control() || "/\\:*?\"<>|".contains(c) {
                '_'
            } else {
                c
            }
        })
        .collect();
    if clean.is_empty() {
        format!("{id}.stl")
    } else {
        format!("{id}_{clean}.stl")
    }
}

/// One class to mesh.
struct Job {
    id: i64,
    name: String,
    file: String,
    extent: ClassExtent,
}

/// Rejects options and geometry no mesh can be made with.
fn check(labels: &LabelMap, opts: &MeshOptions) -> Result<(), NodeError> {
    if !(1..=MAX_STEP).contains(&opts.step) {
        return Err(NodeError::Invalid(format!(
            "mesh step {} is out of range: use 1 (full resolution) up to {MAX_STEP}",
            opts.step
        )));
    }
    let a = &labels.volume.geometry().affine_lps;
    let det = surface::det3(a);
    if !det.is_finite() || det == 0.0 || a.iter().flatten().any(|x| !x.is_finite()) {
        return Err(NodeError::Invalid(format!(
            "the label map's affine {a:?} is singular or not finite; its voxels have no place \
             in the patient, so no mesh can be made"
        )));
    }
    Ok(())
}

/// The classes to mesh (largest first, for load balance) with their names and files.
fn select(
    labels: &LabelMap,
    extents: &BTreeMap<i64, ClassExtent>,
    ctx: &Ctx,
) -> Result<Vec<Job>, NodeError> {
    if extents.is_empty() {
        return Err(NodeError::Invalid(
            "the label map is empty: no voxel has a class id other than 0, so there is no \
             surface to mesh"
                .into(),
        ));
    }
    let negative: Vec<i64> = extents.keys().copied().filter(|&id| id < 0).collect();
    if !negative.is_empty() {
        ctx.warn(&format!(
            "negative label ids {negative:?} are not classes; no mesh is made for them"
        ));
    }
    let job = |id: u32, name: String, extent: ClassExtent| Job {
        id: id as i64,
        file: file_name(id, &name),
        name,
        extent,
    };
    let mut jobs: Vec<Job> = if labels.classes.is_empty() {
        extents
            .iter()
            .filter_map(|(&id, e)| {
                let id = u32::try_from(id).ok()?;
                Some(job(id, format!("label_{id}"), *e))
            })
            .collect()
    } else {
        let unlisted: Vec<i64> = extents
            .keys()
            .copied()
            .filter(|&id| {
                id > 0 && !u32::try_from(id).is_ok_and(|i| labels.classes.contains_key(&i))
            })
            .collect();
        if !unlisted.is_empty() {
            ctx.warn(&format!(
                "label ids {unlisted:?} occur in the label map but not in its class table; no \
                 mesh is made for them"
            ));
        }
        labels
            .classes
            .iter()
            .filter_map(|(&id, name)| Some(job(id, name.clone(), *extents.get(&(id as i64))?)))
            .collect()
    };
    if jobs.is_empty() {
        return Err(NodeError::Invalid(format!(
            "none of the {} classes of the class table occurs in the label map (ids present: \
             {:?}); check that the table belongs to these labels",
            labels.classes.len(),
            extents.keys().take(20).collect::<Vec<_>>()
        )));
    }
    jobs.sort_by(|a, b| b.extent.count.cmp(&a.extent.count).then(a.id.cmp(&b.id)));
    Ok(jobs)
}

/// The mesh of one class in LPS mm.
fn mesh_class<T: LabelValue>(
    g: &LabelGrid<T>,
    id: i64,
    extent: &ClassExtent,
    labels: &LabelMap,
    opts: &MeshOptions,
) -> Mesh {
    let Some(value) = T::from_id(id) else {
        return Mesh::default();
    };
    let field = decimate::Field::sample(g, value, extent, opts.step);
    let mut mesh = tetra::extract(&field);
    let geometry = labels.volume.geometry();
    mesh.transform(&geometry.affine_lps);
    if opts.step > 1 || opts.smooth_iterations > 0 {
        smooth::taubin(&mut mesh, opts.smooth_iterations);
        // The class's volume, to within half a block of normal offset.
        let target = extent.count as f64 * surface::det3(&geometry.affine_lps).abs();
        let spacing = geometry.spacing().into_iter().fold(f64::INFINITY, f64::min);
        smooth::restore_volume(&mut mesh, target, 0.5 * opts.step as f64 * spacing);
    }
    mesh
}
