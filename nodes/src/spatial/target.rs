//! What `resample` does with a value: picks the target grid (a spacing and/or an orientation,
//! or a reference's grid), the interpolation (linear for images, nearest for label maps) and
//! the value outside the input, then calls [`resample_volume`] and [`reorient`].

use super::grid::Grid;
use super::orient::{reorient, Orientation};
use super::resample::{resample_volume, Interp, Outside};
use crate::node::{Ctx, NodeError};
use crate::value::{LabelMap, Value};

/// Where to resample to.
#[derive(Clone, Debug)]
pub enum Target {
    /// Onto this grid (a reference volume's affine and shape).
    Grid(Grid),
    /// A new spacing `[si, sj, sk]` mm (same orientation, MONAI's extent rule, see
    /// [`Grid::with_spacing`]) and/or a new orientation (exact axis permutation and flips),
    /// in that order, as the VISTA3D bundle's Spacing -> Orientation.
    Spacing {
        spacing: Option<[f64; 3]>,
        orientation: Option<Orientation>,
    },
}

/// `auto`, `linear` or `nearest`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InterpChoice {
    Auto,
    Fixed(Interp),
}

/// Resamples an image or a label map. Label maps: nearest only (anything else is refused),
/// 0 outside (or the border), class table kept. Images: `outside`, default the image's
/// minimum value.
pub fn resample_value(
    value: &Value,
    target: &Target,
    interp: InterpChoice,
    outside: Option<Outside>,
    ctx: &Ctx,
) -> Result<Value, NodeError> {
    let vol = value.as_volume().ok_or_else(|| {
        NodeError::Invalid("resample takes an image or a label map, not a table".into())
    })?;
    let dims = vol.data().dim();
    if vol.spatial_shape().iter().any(|&n| n < 1) {
        return Err(NodeError::Invalid(format!(
            "cannot resample an empty volume (shape {:?})",
            vol.data().size()
        )));
    }
    if dims != 3 && dims != 4 {
        return Err(NodeError::Invalid(format!(
            "resample needs a 3D volume, got shape {:?}",
            vol.data().size()
        )));
    }
    let (interp, outside) = match value {
        Value::Table(_) | Value::Model(_) => unreachable!("checked above"),
        Value::Labels(_) => {
            if interp == InterpChoice::Fixed(Interp::Linear) {
                return Err(NodeError::Invalid(
                    "linear interpolation of a label map would invent class ids between \
                     neighbours; use `interpolation: nearest` (or `auto`)"
                        .into(),
                ));
            }
            match outside {
                Some(Outside::Fill(_)) => {
                    return Err(NodeError::Invalid(
                        "a number as `fill` applies to images; a label map is filled with 0 \
                         (background) outside its grid, or with `fill: border` takes the \
                         nearest edge label: remove `fill` or use `border`"
                            .into(),
                    ))
                }
                Some(Outside::Border) => (Interp::Nearest, Outside::Border),
                None => (Interp::Nearest, Outside::Fill(0.0)),
            }
        }
        Value::Image(v) => {
            let interp = match interp {
                InterpChoice::Auto => Interp::Linear,
                InterpChoice::Fixed(i) => i,
            };
            let outside = match outside {
                Some(o) => o,
                None => Outside::Fill(v.data().f_min()?.f_double_value(&[])?),
            };
            (interp, outside)
        }
    };
    let out = match target {
        Target::Grid(g) => resample_volume(vol, g, interp, outside, ctx)?,
        Target::Spacing {
            spacing,
            orientation,
        } => {
            let mut v = match spacing {
                Some(s) => {
                    if s.iter().any(|&x| !(x > 0.0 && x.is_finite())) {
                        return Err(NodeError::Invalid(format!(
                            "spacing must be three positive numbers of mm, got {s:?}"
                        )));
                    }
                    let g = Grid::of(vol).with_spacing(*s);
                    resample_volume(vol, &g, interp, outside, ctx)?
                }
                None => vol.to_device(ctx.device),
            };
            if let Some(o) = orientation {
                v = reorient(&v, *o)?;
            }
            v
        }
    };
    Ok(match value {
        Value::Labels(l) => Value::Labels(LabelMap {
            volume: out,
            classes: l.classes.clone(),
        }),
        Value::Image(_) | Value::Table(_) | Value::Model(_) => Value::Image(out),
    })
}
