//! The `structures` node: planning structures derived from a label map's classes, margins
//! (grow, shrink, per axis), rings, unions, intersections and subtractions, added to the
//! label map as new named classes.
//!
//! Every structure is computed as its own mask, so definitions that chain (a ring around a
//! PTV grown from a CTV) are exact; only the output, a label map with one class per voxel,
//! paints them in order, the later structure keeping a voxel where two overlap (a warning
//! names them). `export` with `format: rtstruct` takes the same definitions (`structures:`)
//! and keeps each structure whole as a ROI of its own.

pub mod ops;

use crate::io::painter::Painter;
use crate::node::{Compute, Ctx, Inputs, Node, NodeError, NodeSpec, Outputs, PortSpec};
use crate::params::{self, NodeParams, ParamSchema, ParamType, Params};
use crate::value::{LabelMap, PortType, Value, Volume};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::sync::OnceLock;
use tch::{Device, Kind, Tensor};

pub struct Structures;

#[derive(Deserialize, NodeParams)]
#[serde(deny_unknown_fields)]
struct StructuresParams {
    /// the structures to make, in order, each {name, from or union (or body_hu: HU, the body
    /// contour from the `image`), then optionally
    /// margin_mm (a number, or [x, y, z] along the image's i, j, k axes; negative shrinks) or
    /// ring_mm ([inner, outer]), intersect: [...], subtract: [...]}; names refer to the label
    /// map's classes (by name or id) or to structures above, e.g.
    /// [{name: PTV, from: CTV, margin_mm: 5}, {name: Ring_PTV, from: PTV, ring_mm: [2, 20]}]
    #[param(ty = ParamType::Custom {
        describe: "a list of structure definitions",
        check: check_defs,
    })]
    structures: Vec<Def>,
    /// keep the label map's own classes under the new structures (false: only the new ones)
    #[param(default = true)]
    keep_inputs: bool,
}

/// One structure definition (the items of `structures:`, here and in `export`'s rtstruct).
#[derive(Deserialize, Clone, Debug)]
#[serde(deny_unknown_fields)]
pub(crate) struct Def {
    name: String,
    from: Option<String>,
    union: Option<Vec<String>>,
    /// The body contour made from the image: voxels above this HU, their largest connected
    /// part, holes filled slice by slice.
    body_hu: Option<f64>,
    margin_mm: Option<Margin>,
    ring_mm: Option<[f64; 2]>,
    intersect: Option<Vec<String>>,
    subtract: Option<Vec<String>>,
}

#[derive(Deserialize, Clone, Copy, Debug)]
#[serde(untagged)]
enum Margin {
    Same(f64),
    PerAxis([f64; 3]),
}

impl Margin {
    fn axes(self) -> [f64; 3] {
        match self {
            Margin::Same(m) => [m; 3],
            Margin::PerAxis(a) => a,
        }
    }
}

pub(crate) fn check_defs(v: &serde_json::Value) -> Result<(), String> {
    let defs: Vec<Def> = serde_json::from_value(v.clone()).map_err(|e| {
        format!("structures: {e} (each item: {{name, from or union, margin_mm, ring_mm, intersect, subtract}})")
    })?;
    if defs.is_empty() {
        return Err("structures: give at least one structure".into());
    }
    let mut seen: Vec<&str> = Vec::new();
    for d in &defs {
        let at = format!("structure `{}`", d.name);
        if d.name.trim().is_empty() {
            return Err("structures: a structure without a name".into());
        }
        if seen.contains(&d.name.as_str()) {
            return Err(format!("{at} is defined twice"));
        }
        if d.from.is_none() && d.union.as_ref().is_none_or(|u| u.is_empty()) && d.body_hu.is_none()
        {
            return Err(format!(
                "{at}: say what it is made from (`from: NAME`, `union: [...]` or `body_hu: -500`)"
            ));
        }
        if d.body_hu.is_some() && (d.from.is_some() || d.union.is_some()) {
            return Err(format!(
                "{at}: body_hu makes the body from the image; grow or crop it in a structure of its own"
            ));
        }
        if d.body_hu.is_some_and(|t| !t.is_finite()) {
            return Err(format!("{at}: body_hu must be a number of HU, e.g. -500"));
        }
        if d.margin_mm.is_some() && d.ring_mm.is_some() {
            return Err(format!(
                "{at}: margin_mm and ring_mm together; make the ring from a grown structure"
            ));
        }
        if let Some(m) = d.margin_mm {
            let a = m.axes();
            if a.iter().any(|x| !x.is_finite())
                || (a.iter().any(|x| *x > 0.0) && a.iter().any(|x| *x < 0.0))
            {
                return Err(format!(
                    "{at}: margin_mm {a:?} grows along some axes and shrinks along others; use one sign"
                ));
            }
        }
        if let Some([inner, outer]) = d.ring_mm {
            if !(inner >= 0.0 && outer > inner && outer.is_finite()) {
                return Err(format!("{at}: ring_mm [{inner}, {outer}] must be [inner, outer] with 0 <= inner < outer"));
            }
        }
        if d.refs().any(|r| *r == d.name) {
            return Err(format!("{at} refers to itself"));
        }
        seen.push(&d.name);
    }
    Ok(())
}

impl Def {
    fn refs(&self) -> impl Iterator<Item = &String> {
        self.from
            .iter()
            .chain(self.union.iter().flatten())
            .chain(self.intersect.iter().flatten())
            .chain(self.subtract.iter().flatten())
    }
}

impl Node for Structures {
    fn spec(&self) -> &NodeSpec {
        static SPEC: OnceLock<NodeSpec> = OnceLock::new();
        SPEC.get_or_init(|| NodeSpec {
            kind: "structures",
            version: "1",
            summary: "Derives planning structures from a label map's classes: margins (exact \
                      Euclidean, per axis), rings, unions, intersections, subtractions",
            inputs: vec![
                PortSpec::input("labels", PortType::Labels, "the classes to derive from"),
                PortSpec::optional_input(
                    "image",
                    PortType::Image,
                    "the CT on the labels' grid, for a body contour (`body_hu`)",
                ),
            ],
            exactly_one_input_of: vec![],
            outputs: vec![PortSpec::output(
                "labels",
                PortType::Labels,
                "the label map with the new structures as named classes, painted in order",
            )],
            params: ParamSchema::of::<StructuresParams>(),
            compute: Compute::Cpu,
        })
    }

    fn run(&self, ctx: &Ctx, inputs: Inputs, params: &Params) -> Result<Outputs, NodeError> {
        let p: StructuresParams = params::load(params)?;
        let Some(Value::Labels(labels)) = inputs.get("labels") else {
            return Err(NodeError::Invalid(
                "structures needs its `labels` input".into(),
            ));
        };
        let image = match inputs.get("image") {
            Some(Value::Image(v)) => Some(v),
            _ => None,
        };
        let out = derive(labels, &p.structures, image, p.keep_inputs, ctx)?;
        Ok(Outputs::from([("labels".to_string(), Value::Labels(out))]))
    }
}

/// The label map's class ids as i64, one per voxel.
fn ids_of(labels: &LabelMap) -> Result<Vec<i64>, NodeError> {
    let t = labels
        .volume
        .data()
        .f_to_device(Device::Cpu)?
        .f_to_kind(Kind::Int64)?
        .f_flatten(0, -1)?;
    Ok(Vec::<i64>::try_from(&t)?)
}

/// Each structure of `defs` as its own whole mask over the label map's voxels (in its data
/// order), in the order defined: nothing is painted over, so they may overlap.
pub(crate) fn masks(
    labels: &LabelMap,
    defs: &[Def],
    image: Option<&Volume>,
    ctx: &Ctx,
) -> Result<Vec<(String, Vec<bool>)>, NodeError> {
    let [d, h, w] = labels.volume.spatial_shape().map(|n| n as usize);
    let shape = [d, h, w];
    let s = labels.volume.geometry().spacing();
    let spacing = [s[2], s[1], s[0]];
    let ids = ids_of(labels)?;
    let mut made: BTreeMap<String, Vec<bool>> = BTreeMap::new();
    let class_mask = |name: &str| -> Option<Vec<bool>> {
        let id = labels
            .classes
            .iter()
            .find(|(_, n)| n.as_str() == name)
            .or_else(|| {
                labels
                    .classes
                    .iter()
                    .find(|(_, n)| n.eq_ignore_ascii_case(name))
            })
            .map(|(id, _)| *id as i64)
            .or_else(|| name.parse::<i64>().ok().filter(|id| *id > 0))?;
        Some(ids.iter().map(|v| *v == id).collect())
    };
    for (n, def) in defs.iter().enumerate() {
        ctx.check_cancelled()?;
        let get = |name: &String| -> Result<Vec<bool>, NodeError> {
            made.get(name)
                .cloned()
                .or_else(|| class_mask(name))
                .ok_or_else(|| {
                    NodeError::Invalid(format!(
                    "structures: structure `{}` refers to `{name}`, which is neither a class of \
                     the label map ({}) nor a structure defined above it",
                    def.name,
                    labels.classes.values().map(|c| format!("`{c}`")).collect::<Vec<_>>().join(", ")
                ))
                })
        };
        let mut mask = match def.body_hu {
            Some(t) => ops::body(&image_values(image, labels, &def.name)?, shape, t),
            None => vec![false; d * h * w],
        };
        for name in def.from.iter().chain(def.union.iter().flatten()) {
            ops::union(&mut mask, &get(name)?);
        }
        if let Some(m) = def.margin_mm {
            mask = ops::margin(&mask, shape, spacing, m.axes());
        }
        if let Some([inner, outer]) = def.ring_mm {
            let mut ring = ops::margin(&mask, shape, spacing, [outer; 3]);
            ops::subtract(&mut ring, &ops::margin(&mask, shape, spacing, [inner; 3]));
            mask = ring;
        }
        for name in def.intersect.iter().flatten() {
            ops::intersect(&mut mask, &get(name)?);
        }
        for name in def.subtract.iter().flatten() {
            ops::subtract(&mut mask, &get(name)?);
        }
        if !mask.iter().any(|v| *v) {
            ctx.warn(&format!("structures: structure `{}` is empty", def.name));
        }
        made.insert(def.name.clone(), mask);
        ctx.progress(n as u64 + 1, defs.len() as u64, "structures");
    }
    Ok(defs
        .iter()
        .map(|def| (def.name.clone(), made.remove(&def.name).unwrap_or_default()))
        .collect())
}

/// The CT's values on the label map's grid, for a `body_hu` structure.
fn image_values(
    image: Option<&Volume>,
    labels: &LabelMap,
    name: &str,
) -> Result<Vec<f32>, NodeError> {
    let image = image.ok_or_else(|| {
        NodeError::Invalid(format!(
            "structures: structure `{name}` (body_hu) needs the CT: connect `image` (in export: \
             the `image` input)"
        ))
    })?;
    if !crate::spatial::Grid::of(image).matches(&crate::spatial::Grid::of(&labels.volume), 1e-4) {
        return Err(NodeError::Invalid(format!(
            "structures: structure `{name}` (body_hu): the image is not on the label map's grid; \
             resample the labels onto it (`resample` with `reference`)"
        )));
    }
    let t = image
        .data()
        .f_to_device(Device::Cpu)?
        .f_to_kind(Kind::Float)?
        .f_flatten(0, -1)?;
    Ok(Vec::<f32>::try_from(&t)?)
}

fn derive(
    labels: &LabelMap,
    defs: &[Def],
    image: Option<&Volume>,
    keep_inputs: bool,
    ctx: &Ctx,
) -> Result<LabelMap, NodeError> {
    let [d, h, w] = labels.volume.spatial_shape().map(|n| n as usize);
    let shape = [d, h, w];
    let made = masks(labels, defs, image, ctx)?;
    let ids = ids_of(labels)?;
    let mut painter = Painter::new(shape);
    let plane = h * w;
    let mut next = 1i16;
    if keep_inputs {
        for (id, name) in &labels.classes {
            painter.classes.insert(*id, name.clone());
        }
        for (v, out) in ids.iter().zip(painter.ids.iter_mut()) {
            *out = i16::try_from(*v).map_err(|_| {
                NodeError::Invalid(format!("structures: class id {v} does not fit 16 bits"))
            })?;
        }
        let top_class = labels.classes.keys().max().map_or(0, |m| *m as i64);
        let top_voxel = ids.iter().copied().max().unwrap_or(0);
        next = i16::try_from(top_class.max(top_voxel) + 1).map_err(|_| {
            NodeError::Invalid("structures: no class id left under 32768 for new structures".into())
        })?;
    }
    for (name, mask) in &made {
        for k in 0..d {
            painter.paint(k, &mask[k * plane..(k + 1) * plane], next, name);
        }
        painter
            .classes
            .entry(next as u32)
            .or_insert_with(|| name.clone());
        next += 1;
    }
    painter.warn_overlaps(ctx, "structures", "structures and classes", "structures");
    let data = Tensor::from_slice(&painter.ids).view([d as i64, h as i64, w as i64]);
    let mut volume = Volume::new(data, *labels.volume.geometry()).map_err(NodeError::Invalid)?;
    volume.meta = labels.volume.meta.clone();
    volume.identity = labels.volume.identity.clone();
    LabelMap::new(volume, painter.classes).map_err(NodeError::Invalid)
}
