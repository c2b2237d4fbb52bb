//! One tile: a slice of the label map (and of the image) through a class's centre, sampled
//! to the tile's size (nearest voxel), with every class as a translucent overlay and the
//! row's class outlined (opaque, 1 or 2 px: [`outline_width`]).

use super::palette::{blend, class_colour};
use super::views::{nearest, Axes, View};
use super::window::Window;
use crate::node::NodeError;
use tch::{Kind, Tensor};

/// A 2D slice of a `[nk, nj, ni]` tensor, flattened, with the stride of each voxel axis
/// (0 for the fixed one).
struct Plane<T> {
    values: Vec<T>,
    stride: [usize; 3],
}

impl<T> Plane<T> {
    /// The slice `t[.., idx, ..]` fixing voxel axis `axis` (0 = i, 1 = j, 2 = k).
    fn take(
        t: &Tensor,
        shape_vox: [usize; 3],
        axis: usize,
        idx: usize,
        kind: Kind,
    ) -> Result<Plane<T>, NodeError>
    where
        Vec<T>: TryFrom<Tensor, Error = tch::TchError>,
    {
        let slice = t
            .f_select(2 - axis as i64, idx as i64)?
            .f_to_kind(kind)?
            .f_contiguous()?
            .f_reshape([-1])?;
        let values = Vec::<T>::try_from(slice)?;
        let mut free = (0..3).filter(|&a| a != axis);
        let (lo, hi) = match (free.next(), free.next()) {
            (Some(lo), Some(hi)) => (lo, hi),
            _ => unreachable!("two of three axes are free"),
        };
        let mut stride = [0; 3];
        stride[lo] = 1;
        stride[hi] = shape_vox[lo];
        Ok(Plane { values, stride })
    }
}

/// Outline thickness in pixels: 2 when the tile's shorter side is at least
/// [`THICK_OUTLINE_FROM`] pixels, else 1.
pub fn outline_width(w: usize, h: usize) -> usize {
    if w.min(h) >= THICK_OUTLINE_FROM {
        2
    } else {
        1
    }
}

/// See [`outline_width`].
pub const THICK_OUTLINE_FROM: usize = 120;

/// The volumes a row's tiles are cut from.
pub(crate) struct Source<'a> {
    /// Label map, `[nk, nj, ni]`, on the CPU.
    pub labels: &'a Tensor,
    /// Image on the same grid and its window, or none (black).
    pub image: Option<(&'a Tensor, Window)>,
    pub axes: Axes,
    /// `[ni, nj, nk]`.
    pub shape_vox: [usize; 3],
}

/// The `w` x `h` pixels (row-major) of `view` through display coordinates `centre`, with
/// class `outlined` outlined.
pub(crate) fn tile(
    src: &Source,
    view: View,
    centre: [usize; 3],
    (w, h): (usize, usize),
    outlined: u32,
) -> Result<Vec<[u8; 3]>, NodeError> {
    let axes = &src.axes;
    let fixed = view.fixed();
    let axis = axes.vox[fixed];
    let idx = axes.flip(fixed, centre[fixed]);
    let labels: Plane<i64> = Plane::take(src.labels, src.shape_vox, axis, idx, Kind::Int64)?;
    let grey: Option<Vec<u8>> = match &src.image {
        Some((t, window)) => {
            let p: Plane<f32> = Plane::take(t, src.shape_vox, axis, idx, Kind::Float)?;
            Some(p.values.iter().map(|&v| window.grey(v)).collect())
        }
        None => None,
    };
    // Offsets into the plane of each pixel column and row.
    let across = view.across();
    let (down, up) = view.down();
    let col_off: Vec<usize> = (0..w)
        .map(|u| {
            let d = nearest(u, w, axes.n[across]);
            axes.flip(across, d) * labels.stride[axes.vox[across]]
        })
        .collect();
    let row_off: Vec<usize> = (0..h)
        .map(|v| {
            let mut d = nearest(v, h, axes.n[down]);
            if up {
                d = axes.n[down] - 1 - d;
            }
            axes.flip(down, d) * labels.stride[axes.vox[down]]
        })
        .collect();
    let mut ids = Vec::with_capacity(w * h);
    let mut out = Vec::with_capacity(w * h);
    for &r in &row_off {
        for &c in &col_off {
            let o = r + c;
            let id = labels.values[o];
            let g = grey.as_ref().map_or(0, |g| g[o]);
            out.push(if id == 0 {
                [g, g, g]
            } else {
                blend(class_colour(id as u32), g)
            });
            ids.push(id);
        }
    }
    // Outline: pixels of the row's class with a pixel of another class within `thick`
    // pixels straight left, right, up or down (inside the tile).
    let me = i64::from(outlined);
    let colour = class_colour(outlined);
    let thick = outline_width(w, h);
    for v in 0..h {
        for u in 0..w {
            let p = v * w + u;
            if ids[p] != me {
                continue;
            }
            let edge = (1..=thick).any(|d| {
                (u >= d && ids[p - d] != me)
                    || (u + d < w && ids[p + d] != me)
                    || (v >= d && ids[p - d * w] != me)
                    || (v + d < h && ids[p + d * w] != me)
            });
            if edge {
                out[p] = colour;
            }
        }
    }
    Ok(out)
}
