//! The cohort plot: one row per class, one panel per metric (Dice and HD95 when the tables
//! have them, else their first two metrics), each subject a dot over a box of the quartiles
//! with the median marked and whiskers from the smallest to the largest value.

use super::gather::LongTable;
use super::stats::{quantile, seed_of, SplitMix64};
use crate::export::preview::canvas::Canvas;
use crate::export::preview::font::{draw_text, fit, text_width, GLYPH};
use crate::node::NodeError;
use std::path::Path;

const BACKGROUND: [u8; 3] = [255, 255, 255];
const TEXT: [u8; 3] = [20, 20, 20];
const GRID: [u8; 3] = [225, 225, 225];
const BOX: [u8; 3] = [70, 110, 170];
const DOT: [u8; 3] = [200, 80, 40];
const MARGIN: usize = 16;
/// Between panels: room for the tick labels of both axes' ends.
const PANEL_GAP: usize = 48;
const LABEL_W: usize = 180;
const PANEL_W: usize = 360;
const ROW_H: usize = 30;
const TITLE_H: usize = 40;
const AXIS_H: usize = 36;

/// The metrics the plot shows: Dice and HD95 when present, else the first two.
fn chosen_metrics(long: &LongTable) -> Vec<String> {
    let mut seen: Vec<String> = Vec::new();
    for r in long
        .rows
        .iter()
        .filter(|r| !r.metric.starts_with("voxels_"))
    {
        if !seen.contains(&r.metric) {
            seen.push(r.metric.clone());
        }
    }
    let wanted: Vec<String> = ["dice", "hd95"]
        .iter()
        .filter(|m| seen.iter().any(|s| s == *m))
        .map(|m| m.to_string())
        .collect();
    if wanted.is_empty() {
        seen.into_iter().take(2).collect()
    } else {
        wanted
    }
}

/// A round axis end at or above `max` (1, 2 or 5 times a power of ten).
fn nice_ceiling(max: f64) -> f64 {
    if max <= 0.0 || !max.is_finite() {
        return 1.0;
    }
    let p = 10f64.powf(max.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * p)
        .find(|v| *v >= max)
        .unwrap_or(10.0 * p)
}

fn tick_text(v: f64) -> String {
    let s = format!("{v:.2}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// Draws the plot of `long` and writes it as PNG to `path` (atomically).
pub fn write_plot(path: &Path, long: &LongTable, title: &str) -> Result<(), NodeError> {
    let metrics = chosen_metrics(long);
    let several_nodes = long.rows.windows(2).any(|w| w[0].node != w[1].node);
    let mut classes: Vec<(String, i64, String)> = Vec::new();
    for r in &long.rows {
        let key = (r.node.clone(), r.class_id, r.class_name.clone());
        if !classes.contains(&key) {
            classes.push(key);
        }
    }
    classes.sort_by(|a, b| (&a.0, a.1).cmp(&(&b.0, b.1)));
    let width = MARGIN * 2 + LABEL_W + metrics.len().max(1) * (PANEL_W + PANEL_GAP);
    let height = TITLE_H + classes.len().max(1) * ROW_H + AXIS_H + MARGIN;
    let mut c = Canvas::new(width, height, BACKGROUND);
    draw_text(
        &mut c,
        MARGIN,
        10,
        &fit(title, (width - 2 * MARGIN) / GLYPH),
        1,
        TEXT,
    );
    if classes.is_empty() {
        draw_text(
            &mut c,
            MARGIN,
            TITLE_H,
            "no metrics table in any subject",
            1,
            TEXT,
        );
    }
    for (row, (node, _, name)) in classes.iter().enumerate() {
        let label = if several_nodes {
            format!("{node}: {name}")
        } else {
            name.clone()
        };
        let y = TITLE_H + row * ROW_H + ROW_H / 2 - GLYPH / 2;
        draw_text(
            &mut c,
            MARGIN,
            y,
            &fit(&label, LABEL_W / GLYPH - 1),
            1,
            TEXT,
        );
    }
    for (p, metric) in metrics.iter().enumerate() {
        let x0 = MARGIN + LABEL_W + p * (PANEL_W + PANEL_GAP);
        let values = |node: &str, id: i64| -> Vec<f64> {
            let mut v: Vec<f64> = long
                .rows
                .iter()
                .filter(|r| r.node == node && r.class_id == id && &r.metric == metric)
                .map(|r| r.value)
                .filter(|v| v.is_finite())
                .collect();
            v.sort_by(f64::total_cmp);
            v
        };
        let max = classes
            .iter()
            .flat_map(|(n, id, _)| values(n, *id))
            .fold(0.0f64, f64::max);
        let end = if metric == "dice" || metric == "iou" || metric == "nsd" {
            1.0
        } else {
            nice_ceiling(max)
        };
        let x_of = |v: f64| x0 + ((v / end).clamp(0.0, 1.0) * (PANEL_W - 1) as f64) as usize;
        let plot_h = classes.len().max(1) * ROW_H;
        for t in 0..=4 {
            let v = end * t as f64 / 4.0;
            let x = x_of(v);
            c.fill_rect(x, TITLE_H, 1, plot_h, GRID);
            let label = tick_text(v);
            let lx = x.saturating_sub(text_width(&label, 1) / 2);
            draw_text(&mut c, lx, TITLE_H + plot_h + 4, &label, 1, TEXT);
        }
        let name = metric.to_string() + if end == 1.0 { "" } else { " (mm)" };
        let nx = x0 + PANEL_W / 2 - text_width(&name, 1) / 2;
        draw_text(&mut c, nx, TITLE_H + plot_h + 20, &name, 1, TEXT);
        for (row, (node, id, _)) in classes.iter().enumerate() {
            let v = values(node, *id);
            let mid = TITLE_H + row * ROW_H + ROW_H / 2;
            let (Some(lo), Some(q1), Some(med), Some(q3), Some(hi)) = (
                v.first().copied(),
                quantile(&v, 0.25),
                quantile(&v, 0.5),
                quantile(&v, 0.75),
                v.last().copied(),
            ) else {
                continue;
            };
            c.fill_rect(x_of(lo), mid, x_of(hi) - x_of(lo) + 1, 1, BOX);
            let (bx, bw) = (x_of(q1), x_of(q3) - x_of(q1) + 1);
            let (top, h) = (mid - ROW_H / 3, 2 * (ROW_H / 3) + 1);
            c.fill_rect(bx, top, bw, 1, BOX);
            c.fill_rect(bx, top + h - 1, bw, 1, BOX);
            c.fill_rect(bx, top, 1, h, BOX);
            c.fill_rect(bx + bw - 1, top, 1, h, BOX);
            c.fill_rect(x_of(med), top, 2, h, BOX);
            // Dots jittered up and down by a fixed stream: the same picture every run.
            let mut rng = SplitMix64(seed_of(&format!("{node}/{id}/{metric}")));
            for &x in &v {
                let dy = rng.below(ROW_H / 2) as isize - (ROW_H / 4) as isize;
                let y = (mid as isize + dy).max(0) as usize;
                c.fill_rect(x_of(x).saturating_sub(1), y.saturating_sub(1), 3, 3, DOT);
            }
        }
    }
    crate::export::preview::save(path, &c)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cohort::gather::LongRow;

    #[test]
    fn axis_ends_are_round() {
        assert_eq!(nice_ceiling(0.0), 1.0);
        assert_eq!(nice_ceiling(3.2), 5.0);
        assert_eq!(nice_ceiling(17.0), 20.0);
        assert_eq!(nice_ceiling(50.0), 50.0);
        assert_eq!(tick_text(12.5), "12.5");
        assert_eq!(tick_text(0.25), "0.25");
        assert_eq!(tick_text(20.0), "20");
    }

    #[test]
    fn the_plot_shows_dice_and_hd95_with_a_dot_per_subject() {
        let mut l = LongTable::default();
        for (s, dice, hd) in [("a", 0.5, 4.0), ("b", 0.9, 12.0), ("c", 0.7, f64::NAN)] {
            for (m, v) in [("dice", dice), ("iou", 0.1), ("hd95", hd)] {
                l.rows.push(LongRow {
                    subject: s.into(),
                    node: "scores".into(),
                    class_id: 1,
                    class_name: "liver".into(),
                    metric: m.into(),
                    value: v,
                });
            }
        }
        assert_eq!(chosen_metrics(&l), ["dice", "hd95"]);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.png");
        write_plot(&path, &l, "test").unwrap();
        let decoder =
            png::Decoder::new(std::io::BufReader::new(std::fs::File::open(&path).unwrap()));
        let mut reader = decoder.read_info().unwrap();
        let mut buf = vec![0; reader.output_buffer_size().unwrap()];
        let info = reader.next_frame(&mut buf).unwrap();
        assert_eq!(
            info.width as usize,
            MARGIN * 2 + LABEL_W + 2 * (PANEL_W + PANEL_GAP)
        );
        let px = |x: usize, y: usize| {
            let o = (y * info.width as usize + x) * 3;
            [buf[o], buf[o + 1], buf[o + 2]]
        };
        // Dice 0.9 on the dice panel: a dot somewhere in its column within the row.
        let x0 = MARGIN + LABEL_W;
        let x = x0 + (0.9 * (PANEL_W - 1) as f64) as usize;
        let rows = TITLE_H..TITLE_H + ROW_H;
        assert!(rows.clone().any(|y| px(x, y) == DOT), "no dot at dice 0.9");
        // HD95 12 of an axis to 20 on the second panel; the undefined one has no dot.
        let x1 = x0 + PANEL_W + PANEL_GAP;
        let x = x1 + (12.0 / 20.0 * (PANEL_W - 1) as f64) as usize;
        assert!(rows.clone().any(|y| px(x, y) == DOT), "no dot at hd95 12");
        let dots = (x1..x1 + PANEL_W)
            .flat_map(|x| rows.clone().map(move |y| (x, y)))
            .filter(|&(x, y)| px(x, y) == DOT)
            .count();
        assert_eq!(dots, 2 * 9, "two 3x3 dots on the hd95 panel");
    }
}
