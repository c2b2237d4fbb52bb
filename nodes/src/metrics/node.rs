//! The `metrics` node.

use super::distance::{assd, hausdorff, nsd};
use super::grid::LabelGrid;
use super::overlap::{id_stats, intersections, IdStats};
use super::pairs::{check_classes, pairs, Pair};
use super::qc::{qc_cells, COLUMNS as QC_COLUMNS};
use super::surface::surface_distances;
use crate::node::{Compute, Ctx, Inputs, Node, NodeError, NodeSpec, Outputs, PortSpec};
use crate::params::{self, NodeParams, ParamChoice, ParamError, ParamSchema, ParamType, Params};
use crate::spatial::{resample_volume, Grid, Interp};
use crate::value::{Cell, LabelMap, PortType, Table, Value};
use rayon::prelude::*;
use serde::Deserialize;
use serde_json::Value as Json;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

pub struct Metrics;

/// Every metric, in the order columns are written.
#[derive(ParamChoice, Clone, Copy, PartialEq, Eq, Debug)]
enum Metric {
    Dice,
    Iou,
    Hd95,
    Hd,
    Assd,
    Nsd,
}

const ALL: &[&str] = Metric::CHOICES;

#[derive(Deserialize, NodeParams)]
#[serde(deny_unknown_fields)]
#[params(check = MetricsParams::check_path)]
struct MetricsParams {
    /// classes to report (default: every class present in either map)
    #[param(ty = ParamType::Custom {
        describe: "a list of class names or ids",
        check: check_classes,
    })]
    #[param(default = Json::Null)]
    classes: Json,
    /// metrics with a reference: dice, iou, hd95, hd, assd, nsd
    #[param(
        default = vec![Metric::Dice, Metric::Hd95, Metric::Nsd],
        ty = ParamType::Custom {
            describe: "a list of dice, iou, hd95, hd, assd, nsd",
            check: check_metrics,
        }
    )]
    metrics: Vec<Metric>,
    /// surface Dice tolerance in mm
    #[param(default = 2.0, min = 0)]
    nsd_tolerance_mm: f64,
    /// pair prediction and reference classes by id, or by name when the two maps number
    /// classes differently
    #[param(default = MatchBy::Id)]
    r#match: MatchBy,
    /// QC: flag a class as fragmented when its largest connected component (26-connectivity)
    /// holds less than this fraction of its voxels
    #[param(default = 0.9, min = 0, max = 1)]
    fragmented_below: f64,
    /// also write the table here: .csv or .json
    #[param(output_path)]
    path: Option<PathBuf>,
}

/// How prediction and reference classes are paired.
#[derive(ParamChoice, Clone, Copy, PartialEq)]
enum MatchBy {
    Id,
    Name,
}

impl MetricsParams {
    fn check_path(&self) -> Result<(), ParamError> {
        match &self.path {
            Some(path) => table_format(path).map(|_| ()).map_err(|_| {
                ParamError::at("path", "end `path` in .csv or .json (the table's format)")
            }),
            None => Ok(()),
        }
    }
}

fn check_metrics(v: &Json) -> Result<(), String> {
    let a = v
        .as_array()
        .filter(|a| !a.is_empty())
        .ok_or("expected a non-empty list of metric names")?;
    for m in a {
        let s = m.as_str().ok_or(format!("`{m}` is not a metric name"))?;
        if !ALL.contains(&s) {
            let near = ALL
                .iter()
                .min_by_key(|c| crate::text::edit_distance(c, s))
                .copied()
                .unwrap_or("dice");
            return Err(format!(
                "unknown metric `{s}` (did you mean `{near}`?); metrics are {}",
                ALL.join(", ")
            ));
        }
    }
    Ok(())
}

impl Node for Metrics {
    fn spec(&self) -> &NodeSpec {
        static SPEC: OnceLock<NodeSpec> = OnceLock::new();
        SPEC.get_or_init(|| NodeSpec {
            kind: "metrics",
            version: "1",
            summary: "Per-class Dice, IoU, HD95, HD, ASSD and surface Dice against a reference \
                      (MONAI's definitions, mm), or QC figures of one label map",
            inputs: vec![
                PortSpec::input("prediction", PortType::Labels, "the label map to judge"),
                PortSpec::optional_input(
                    "reference",
                    PortType::Labels,
                    "the ground truth; without it the node reports QC figures only",
                ),
            ],
            exactly_one_input_of: vec![],
            outputs: vec![PortSpec::output(
                "table",
                PortType::Table,
                "one row per class",
            )],
            params: ParamSchema::of::<MetricsParams>(),
            compute: Compute::Cpu,
        })
    }

    fn run(&self, ctx: &Ctx, mut inputs: Inputs, params: &Params) -> Result<Outputs, NodeError> {
        let p: MetricsParams = params::load(params)?;
        let Some(Value::Labels(pred)) = inputs.remove("prediction") else {
            return Err(NodeError::Invalid(
                "metrics needs `prediction` labels".into(),
            ));
        };
        let table = match inputs.remove("reference") {
            Some(Value::Labels(reference)) => compare(ctx, pred, &reference, &p)?,
            _ => quality(ctx, &pred, &p)?,
        };
        if let Some(path) = &p.path {
            write_table(path, &table)?;
        }
        Ok(Outputs::from([("table".to_string(), Value::Table(table))]))
    }
}

/// `csv` or `json`, from the extension.
fn table_format(path: &Path) -> Result<&'static str, NodeError> {
    match path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_lowercase)
        .as_deref()
    {
        Some("csv") => Ok("csv"),
        Some("json") => Ok("json"),
        _ => Err(NodeError::file(
            path,
            "the table is written as CSV or JSON by extension: end `path` in .csv or .json",
        )),
    }
}

fn write_table(path: &Path, table: &Table) -> Result<(), NodeError> {
    let text = match table_format(path)? {
        "csv" => table.to_csv(),
        _ => serde_json::to_string_pretty(&table.to_json()).unwrap_or_default() + "\n",
    };
    crate::io::atomic::write_text(path, &text)
}

/// Spacing along the tensor's axes (k, j, i); notes when the axes are not orthogonal.
fn axis_spacing(l: &LabelMap, notes: &mut Vec<String>) -> [f64; 3] {
    let g = l.volume.geometry();
    let a = &g.affine_lps;
    let col = |c: usize| [a[0][c], a[1][c], a[2][c]];
    let dot = |x: [f64; 3], y: [f64; 3]| x[0] * y[0] + x[1] * y[1] + x[2] * y[2];
    let s = g.spacing();
    for (x, y) in [(0, 1), (0, 2), (1, 2)] {
        if dot(col(x), col(y)).abs() > 1e-6 * s[x] * s[y] {
            notes.push(
                "the voxel axes are not orthogonal (sheared grid): distances use the axis \
                 spacings as if they were"
                    .into(),
            );
            break;
        }
    }
    [s[2], s[1], s[0]]
}

/// The prediction on the reference's grid (nearest neighbour through both affines).
fn onto_reference(
    ctx: &Ctx,
    pred: LabelMap,
    reference: &LabelMap,
    notes: &mut Vec<String>,
) -> Result<LabelMap, NodeError> {
    let (a, b) = (Grid::of(&pred.volume), Grid::of(&reference.volume));
    if a.matches(&b, 1e-4) {
        return Ok(pred);
    }
    let note = format!(
        "the prediction ({:?} voxels) was resampled onto the reference's grid ({:?} voxels) \
         by nearest neighbour through both affines before comparing",
        a.shape, b.shape
    );
    ctx.warn(&note);
    notes.push(note);
    let volume = resample_volume(&pred.volume, &b, Interp::Nearest, 0.0, ctx)?;
    Ok(LabelMap {
        volume,
        classes: pred.classes,
    })
}

fn compare(
    ctx: &Ctx,
    pred: LabelMap,
    reference: &LabelMap,
    p: &MetricsParams,
) -> Result<Table, NodeError> {
    let mut notes = vec![];
    let pred = onto_reference(ctx, pred, reference, &mut notes)?;
    let spacing = axis_spacing(reference, &mut notes);
    let pg = LabelGrid::of(&pred, "prediction")?;
    let rg = LabelGrid::of(reference, "reference")?;
    let (ps, rs) = rayon::join(
        || id_stats(&pg, "prediction"),
        || id_stats(&rg, "reference"),
    );
    let (ps, rs) = (ps?, rs?);
    let rows = pairs(
        &p.classes,
        p.r#match == MatchBy::Name,
        &pred.classes,
        &reference.classes,
        &ps.present().collect::<Vec<_>>(),
        &rs.present().collect::<Vec<_>>(),
    )
    .map_err(NodeError::Invalid)?;
    ctx.check_cancelled()?;
    let ids: Vec<(i32, i32)> = rows.iter().map(|r| (r.pred, r.reference)).collect();
    let inter = intersections(&pg, &rg, &ids);
    let metrics: Vec<&str> = ALL
        .iter()
        .copied()
        .filter(|m| p.metrics.iter().any(|x| x.as_str() == *m))
        .collect();
    let needs_surface = metrics.iter().any(|m| !matches!(*m, "dice" | "iou"));
    let done = AtomicU64::new(0);
    let total = rows.len() as u64;
    let cells: Vec<Result<Vec<Cell>, NodeError>> = rows
        .par_iter()
        .zip(&inter)
        .map(|(row, &both)| {
            ctx.check_cancelled()?;
            let (np, nr) = (ps.count_of(row.pred), rs.count_of(row.reference));
            let surf = needs_surface.then(|| {
                let bbox = ps.bbox_of(row.pred).union(&rs.bbox_of(row.reference));
                surface_distances(&pg, row.pred, &rg, row.reference, &bbox, spacing)
            });
            let mut out = vec![Cell::Int(row.row_id as i64), Cell::Text(row.name.clone())];
            for m in &metrics {
                let v = match (*m, &surf) {
                    ("dice", _) => overlap(nr, 2 * both, np + nr),
                    ("iou", _) => overlap(nr, both, np + nr - both),
                    ("hd95", Some(s)) => hausdorff(s, Some(95.0)),
                    ("hd", Some(s)) => hausdorff(s, None),
                    ("assd", Some(s)) => assd(s),
                    ("nsd", Some(s)) => nsd(s, p.nsd_tolerance_mm),
                    _ => f64::NAN,
                };
                out.push(Cell::Float(v));
            }
            out.push(Cell::Int(np as i64));
            out.push(Cell::Int(nr as i64));
            let n = done.fetch_add(1, Ordering::Relaxed) + 1;
            ctx.progress(n, total, "classes");
            Ok(out)
        })
        .collect();
    let mut columns = vec!["class_id".to_string(), "class_name".to_string()];
    columns.extend(metrics.iter().map(|m| m.to_string()));
    columns.extend([
        "voxels_prediction".to_string(),
        "voxels_reference".to_string(),
    ]);
    let mut table = Table::new(columns);
    table.rows = cells.into_iter().collect::<Result<_, _>>()?;
    notes.extend(conventions(&rows, p));
    table.notes = notes;
    Ok(table)
}

/// Dice/IoU with MONAI's `ignore_empty=True`: `nan` when the reference class is empty.
fn overlap(reference: u64, num: u64, den: u64) -> f64 {
    if reference == 0 {
        f64::NAN
    } else {
        num as f64 / den as f64
    }
}

fn conventions(rows: &[Pair], p: &MetricsParams) -> Vec<String> {
    let mut n = vec![format!(
        "MONAI 1.6 definitions: surfaces are voxels with a 6-neighbour outside the mask; \
         distances are exact Euclidean in mm; hd95 is the larger of the two directed 95th \
         percentiles; assd averages both directed sets together; nsd counts surface voxels \
         within {} mm. Empty reference: dice/iou nan; empty prediction or reference: \
         distances inf, nsd 0; both empty: everything nan.",
        p.nsd_tolerance_mm
    )];
    if p.r#match == MatchBy::Name {
        let unmatched: Vec<&str> = rows
            .iter()
            .filter(|r| r.pred < 0 || r.reference < 0)
            .map(|r| r.name.as_str())
            .collect();
        n.push(format!(
            "classes paired by name; class_id is the reference's id{}",
            if unmatched.is_empty() {
                String::new()
            } else {
                format!("; present in one map only: {}", unmatched.join(", "))
            }
        ));
    }
    n
}

fn quality(ctx: &Ctx, pred: &LabelMap, p: &MetricsParams) -> Result<Table, NodeError> {
    let g = LabelGrid::of(pred, "prediction")?;
    let s: IdStats = id_stats(&g, "prediction")?;
    let present: Vec<i32> = s.present().collect();
    let rows = pairs(
        &p.classes,
        false,
        &pred.classes,
        &pred.classes,
        &present,
        &present,
    )
    .map_err(NodeError::Invalid)?;
    let geometry = *pred.volume.geometry();
    let done = AtomicU64::new(0);
    let total = rows.len() as u64;
    let body: Vec<Vec<Cell>> = rows
        .par_iter()
        .map(|row| {
            let mut out = vec![Cell::Int(row.row_id as i64), Cell::Text(row.name.clone())];
            out.extend(qc_cells(
                &g,
                row.pred,
                s.count_of(row.pred),
                &s.bbox_of(row.pred),
                &geometry,
                p.fragmented_below,
            ));
            let n = done.fetch_add(1, Ordering::Relaxed) + 1;
            ctx.progress(n, total, "classes");
            out
        })
        .collect();
    ctx.check_cancelled()?;
    let mut columns = vec!["class_id".to_string(), "class_name".to_string()];
    columns.extend(QC_COLUMNS.iter().map(|c| c.to_string()));
    let mut table = Table::new(columns);
    table.rows = body;
    table.notes.push(format!(
        "quality control without a reference: components use 26-connectivity; `fragmented` \
         when the largest component holds less than {} of the class",
        p.fragmented_below
    ));
    if p.metrics != [Metric::Dice, Metric::Hd95, Metric::Nsd] {
        table
            .notes
            .push("`metrics` needs a `reference`; only QC figures were computed".into());
    }
    Ok(table)
}
