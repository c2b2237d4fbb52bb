//! The PNG preview sheet: axial, coronal and sagittal views through each class, coloured
//! overlays and a legend, for people who would rather look than read.
//!
//! One row per class present in the label map (increasing id): a colour swatch with the
//! class name, id, volume in ml and voxel count, then the three views through the class's
//! centre (its voxel centroid; see [`stats`]). Every class is drawn as a translucent overlay
//! (opacity 0.4, [`palette`]) and the row's own class is outlined in its opaque colour, over
//! the image when one is given (grey levels: [`window`]), on black otherwise.
//!
//! Views are in radiological convention whatever the voxel order ([`views`]): axial with
//! anterior up and the patient's right on the image's left, coronal with superior up and the
//! patient's right on the left, sagittal with superior up and anterior on the left. Each tile
//! is scaled to the physical size of the grid (one px-per-mm scale for the whole sheet, so
//! anisotropic voxels keep their proportions), sampled at the nearest voxel.
//!
//! The title line gives the class count, the grid size and the spacing in patient order
//! (R-L x A-P x S-I), so a grid stored in another axis order gives the very same sheet; a
//! second line names the grey window. The
//! layout (tile sizes, columns of rows for many classes, the 4000 px height cap) is in
//! [`layout`]. A label map with no class gives a small sheet that says so, not an error: a
//! workflow that found nothing still shows it.

pub mod layout;
pub mod palette;
pub mod stats;
pub mod views;
pub mod window;

pub(crate) mod canvas;
pub(crate) mod font;
pub mod render;

pub use palette::class_colour;

use crate::io::atomic::{create_parent, write};
use crate::node::{Ctx, NodeError};
use crate::value::{LabelMap, Volume};
use canvas::Canvas;
use font::{draw_text, fit, text_width, GLYPH};
use layout::{Layout, Rect, HEADER_H, MARGIN, SWATCH, TITLE_GAP, TITLE_H};
use render::Source;
use std::io::Write;
use std::path::Path;
use tch::{Device, Tensor};
use views::{Axes, View};
use window::Window;

/// Sheet background.
const BACKGROUND: [u8; 3] = [24, 24, 24];
/// Main text.
const TEXT: [u8; 3] = [235, 235, 235];
/// Secondary text.
const DIM: [u8; 3] = [150, 150, 150];

/// Writes the preview sheet of `labels` (over `image` when given, on its grid) to `path`.
///
/// `image` must be on the labels' grid (same shape and affine): resample it onto the labels
/// first otherwise. Errors: [`NodeError::Invalid`] for inputs it cannot show (other grid,
/// several channels, negative class ids), [`NodeError::File`] when `path` cannot be written
/// (the file is written atomically: never half a PNG), [`NodeError::Cancelled`].
pub fn write_png(
    path: &Path,
    labels: &LabelMap,
    image: Option<&Volume>,
    ctx: &Ctx,
) -> Result<(), NodeError> {
    let lab = single_channel(&labels.volume, "label map")?;
    let s = labels.volume.spatial_shape();
    if s.iter().any(|&n| n <= 0) {
        return Err(NodeError::Invalid(format!(
            "the label map is empty (shape {s:?}): nothing to preview"
        )));
    }
    let shape = s.map(|n| n as usize);
    let shape_vox = [shape[2], shape[1], shape[0]];
    let img = match image {
        Some(v) => {
            same_grid(v, &labels.volume)?;
            let t = single_channel(v, "image")?;
            let w = Window::of(v, &t)?;
            Some((t, w))
        }
        None => None,
    };
    let geometry = labels.volume.geometry();
    let axes = Axes::of(geometry, shape);
    let classes = stats::class_stats(&lab, &axes, ctx)?;

    let title = title(classes.len(), &axes);
    let over = match &img {
        _ if classes.is_empty() => "the label map holds no class: every voxel is 0".to_string(),
        Some((_, w)) => format!("over the image ({})", w.describe()),
        None => "no image".to_string(),
    };
    let subtitle = format!(
        "axes R-L x A-P x S-I; {over}; radiological views: patient right on the image's left"
    );
    let title_w = text_width(&title, 2).max(text_width(&subtitle, 1));
    let mut canvas;
    if classes.is_empty() {
        let (w, h) = layout::empty_size(title_w);
        canvas = Canvas::new(w, h, BACKGROUND);
        draw_title(&mut canvas, &title, &subtitle);
    } else {
        let l = Layout::new(classes.len(), axes.extent(), title_w);
        canvas = Canvas::new(l.width, l.height, BACKGROUND);
        draw_title(&mut canvas, &title, &subtitle);
        draw_headers(&mut canvas, &l);
        let src = Source {
            labels: &lab,
            image: img.as_ref().map(|(t, w)| (t, *w)),
            axes,
            shape_vox,
        };
        let voxel_ml = voxel_volume_mm3(&geometry.affine_lps) / 1000.0;
        for (q, c) in classes.iter().enumerate() {
            ctx.check_cancelled()?;
            let name = labels.classes.get(&c.id).cloned();
            draw_label(&mut canvas, l.label(q), c, name.as_deref(), voxel_ml);
            for view in View::ALL {
                let r = l.tile(q, view);
                let px = render::tile(&src, view, c.centre, (r.w, r.h), c.id)?;
                canvas.blit(r.x, r.y, r.w, &px);
            }
            ctx.progress(q as u64 + 1, classes.len() as u64, "classes");
        }
    }
    ctx.check_cancelled()?;
    save(path, &canvas)
}

/// The 3D `[D, H, W]` CPU tensor of `v`, taking the only channel of a `[1, D, H, W]` one.
fn single_channel(v: &Volume, what: &str) -> Result<Tensor, NodeError> {
    let t = v.data();
    let t = match t.size().as_slice() {
        [_, _, _] => t.shallow_clone(),
        [1, _, _, _] => t.f_select(0, 0)?,
        s => {
            return Err(NodeError::Invalid(format!(
                "the preview shows a single-channel {what}, got shape {s:?}: pick one channel \
                 first"
            )))
        }
    };
    Ok(t.f_to_device(Device::Cpu)?)
}

/// `Ok` when `image` has the labels' spatial shape and affine (to 1e-4 relative).
fn same_grid(image: &Volume, labels: &Volume) -> Result<(), NodeError> {
    let (si, sl) = (image.spatial_shape(), labels.spatial_shape());
    let (ai, al) = (image.geometry().affine_lps, labels.geometry().affine_lps);
    let mut worst: f64 = 0.0;
    let mut off = false;
    for r in 0..4 {
        for c in 0..4 {
            let d = (ai[r][c] - al[r][c]).abs();
            worst = worst.max(d);
            off |= d > 1e-4 * (1.0 + ai[r][c].abs().max(al[r][c].abs()));
        }
    }
    if si == sl && !off {
        return Ok(());
    }
    let what = if si != sl {
        format!("its shape [D, H, W] is {si:?}, the labels' {sl:?}")
    } else {
        format!("its affine differs from the labels' by up to {worst:.4} mm")
    };
    Err(NodeError::Invalid(format!(
        "the preview's image is not on the labels' grid ({what}): resample the image onto \
         the labels first, e.g. a node `{{ kind: resample, inputs: {{ image: <image>, \
         reference: <labels> }} }}`, and give its output as the image"
    )))
}

/// `N classes   grid X x Y x Z   spacing a x b x c mm`, in patient order (R-L, A-P, S-I).
fn title(n: usize, axes: &Axes) -> String {
    let plural = if n == 1 { "class" } else { "classes" };
    let [nx, ny, nz] = axes.n;
    let [sx, sy, sz] = axes.spacing.map(mm);
    format!("{n} {plural}   grid {nx} x {ny} x {nz}   spacing {sx} x {sy} x {sz} mm")
}

/// A length with at most 2 decimals and no trailing zeros: `3`, `0.78`, `1.5`.
fn mm(v: f64) -> String {
    let s = format!("{v:.2}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

fn draw_title(canvas: &mut Canvas, title: &str, subtitle: &str) {
    draw_text(canvas, MARGIN, MARGIN, title, 2, TEXT);
    draw_text(canvas, MARGIN, MARGIN + 2 * GLYPH + 4, subtitle, 1, DIM);
}

/// The view names above each column of rows, with the direction at the image's left.
fn draw_headers(canvas: &mut Canvas, l: &Layout) {
    let y = MARGIN + TITLE_H + TITLE_GAP;
    debug_assert_eq!(HEADER_H, GLYPH);
    for c in 0..l.columns {
        let q = c * l.rows;
        let label = l.label(q);
        draw_text(canvas, label.x, y, "class", 1, DIM);
        for view in View::ALL {
            let r = l.tile(q, view);
            let (left, right) = view.left_right();
            let long = format!("{} ({left} left, {right} right)", view.name());
            let mid = format!("{} ({left} left)", view.name());
            let text = [long, mid, view.name().to_string()]
                .into_iter()
                .find(|t| text_width(t, 1) <= r.w)
                .unwrap_or_else(|| fit(view.name(), r.w / GLYPH));
            draw_text(canvas, r.x, y, &text, 1, DIM);
        }
    }
}

/// Swatch, name, id, volume and voxel count in the class column.
fn draw_label(canvas: &mut Canvas, r: Rect, c: &stats::ClassStats, name: Option<&str>, ml: f64) {
    canvas.fill_rect(r.x, r.y, SWATCH, SWATCH, class_colour(c.id));
    let x = r.x + SWATCH + 6;
    let chars = (r.x + r.w - 6 - x) / GLYPH;
    let fallback = format!("class {}", c.id);
    let name = name.filter(|n| !n.trim().is_empty()).unwrap_or(&fallback);
    draw_text(canvas, x, r.y, &fit(name, chars), 1, TEXT);
    let line2 = format!("id {}  {:.1} ml", c.id, c.voxels as f64 * ml);
    draw_text(canvas, x, r.y + 10, &fit(&line2, chars), 1, DIM);
    let line3 = format!("{} voxels", c.voxels);
    draw_text(canvas, x, r.y + 20, &fit(&line3, chars), 1, DIM);
}

/// |det| of the affine's 3x3 part: one voxel's volume in mm^3.
fn voxel_volume_mm3(a: &[[f64; 4]; 4]) -> f64 {
    let det = a[0][0] * (a[1][1] * a[2][2] - a[1][2] * a[2][1])
        - a[0][1] * (a[1][0] * a[2][2] - a[1][2] * a[2][0])
        + a[0][2] * (a[1][0] * a[2][1] - a[1][1] * a[2][0]);
    det.abs()
}

/// Encodes `canvas` as an 8-bit RGB PNG and writes it atomically to `path`.
pub(crate) fn save(path: &Path, canvas: &Canvas) -> Result<(), NodeError> {
    let err = |e: png::EncodingError| NodeError::file(path, format!("cannot encode the PNG: {e}"));
    let (w, h) = (
        u32::try_from(canvas.width).map_err(|_| NodeError::Invalid("sheet too wide".into()))?,
        u32::try_from(canvas.height).map_err(|_| NodeError::Invalid("sheet too tall".into()))?,
    );
    create_parent(path)?;
    write(path, |out| {
        let mut enc = png::Encoder::new(out.by_ref(), w, h);
        enc.set_color(png::ColorType::Rgb);
        enc.set_depth(png::BitDepth::Eight);
        enc.set_compression(png::Compression::High);
        let mut wr = enc.write_header().map_err(err)?;
        wr.write_image_data(&canvas.rgb).map_err(err)?;
        wr.finish().map_err(err)
    })
}
