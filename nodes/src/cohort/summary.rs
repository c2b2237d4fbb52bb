//! The per-class summary of a long table: for each (node, class, metric) the number of
//! subjects, of finite values, mean, median, quartiles and a bootstrap 95% CI of the mean,
//! with the subjects whose prediction was empty and the cohort's failed subjects; as CSV (full
//! precision) and as a Markdown table (3 decimals) to paste into a paper.

use super::gather::{csv_field, LongTable};
use super::stats::{bootstrap_ci_mean, mean, quantile, seed_of, BOOTSTRAP_RESAMPLES};
use crate::value::Cell;
use std::collections::BTreeMap;
use std::fmt::Write as _;

#[derive(Clone, Debug, PartialEq)]
pub struct SummaryRow {
    pub node: String,
    pub class_id: i64,
    pub class_name: String,
    pub metric: String,
    /// Subjects with a row for this class.
    pub subjects: usize,
    /// Finite values among them (Dice of an empty reference is `nan`, HD95 of an empty
    /// prediction `inf`/`nan`: counted in `undefined`, left out of the statistics).
    pub n: usize,
    pub undefined: usize,
    pub mean: Option<f64>,
    pub median: Option<f64>,
    pub q1: Option<f64>,
    pub q3: Option<f64>,
    pub ci_low: Option<f64>,
    pub ci_high: Option<f64>,
    /// Subjects whose prediction of this class is empty (from `voxels_prediction`).
    pub empty_prediction: usize,
    /// Subjects of the cohort that failed, so have no row at all.
    pub failed_subjects: usize,
}

/// Columns that describe a class rather than judge it: kept in the long table only.
fn is_count(metric: &str) -> bool {
    metric.starts_with("voxels_")
}

/// The summary of `long`, rows by node, class id, then metric in first-seen order.
pub fn summarise(long: &LongTable, failed_subjects: usize) -> Vec<SummaryRow> {
    let mut metric_order: Vec<&str> = Vec::new();
    for r in &long.rows {
        if !is_count(&r.metric) && !metric_order.contains(&r.metric.as_str()) {
            metric_order.push(&r.metric);
        }
    }
    // (node, class id) -> subjects with an empty prediction
    let mut empty: BTreeMap<(&str, i64), usize> = BTreeMap::new();
    for r in long.rows.iter().filter(|r| r.metric == "voxels_prediction") {
        if r.value == 0.0 {
            *empty.entry((&r.node, r.class_id)).or_default() += 1;
        }
    }
    let mut groups: BTreeMap<(&str, i64, usize), (&str, Vec<f64>)> = BTreeMap::new();
    for r in long.rows.iter().filter(|r| !is_count(&r.metric)) {
        let m = metric_order
            .iter()
            .position(|m| *m == r.metric)
            .unwrap_or(0);
        groups
            .entry((&r.node, r.class_id, m))
            .or_insert_with(|| (&r.class_name, Vec::new()))
            .1
            .push(r.value);
    }
    groups
        .into_iter()
        .map(|((node, class_id, m), (class_name, values))| {
            let mut finite: Vec<f64> = values.iter().copied().filter(|v| v.is_finite()).collect();
            finite.sort_by(f64::total_cmp);
            let metric = metric_order[m];
            let ci = bootstrap_ci_mean(&finite, seed_of(&format!("{node}/{class_id}/{metric}")));
            SummaryRow {
                node: node.to_string(),
                class_id,
                class_name: class_name.to_string(),
                metric: metric.to_string(),
                subjects: values.len(),
                n: finite.len(),
                undefined: values.len() - finite.len(),
                mean: mean(&finite),
                median: quantile(&finite, 0.5),
                q1: quantile(&finite, 0.25),
                q3: quantile(&finite, 0.75),
                ci_low: ci.map(|c| c.0),
                ci_high: ci.map(|c| c.1),
                empty_prediction: empty.get(&(node, class_id)).copied().unwrap_or(0),
                failed_subjects,
            }
        })
        .collect()
}

fn num(v: Option<f64>) -> String {
    v.map(|v| Cell::Float(v).text()).unwrap_or_default()
}

pub fn to_csv(rows: &[SummaryRow]) -> String {
    let mut s = String::from(
        "node,class_id,class_name,metric,subjects,n,undefined,mean,median,q1,q3,ci95_low,\
         ci95_high,empty_prediction,failed_subjects\n",
    );
    for r in rows {
        let _ = writeln!(
            s,
            "{},{},{},{},{},{},{},{},{},{},{},{},{},{},{}",
            csv_field(&r.node),
            r.class_id,
            csv_field(&r.class_name),
            csv_field(&r.metric),
            r.subjects,
            r.n,
            r.undefined,
            num(r.mean),
            num(r.median),
            num(r.q1),
            num(r.q3),
            num(r.ci_low),
            num(r.ci_high),
            r.empty_prediction,
            r.failed_subjects
        );
    }
    s
}

/// The summary as a Markdown table, 3 decimals: what a methods section quotes.
pub fn to_markdown(rows: &[SummaryRow]) -> String {
    let f = |v: Option<f64>| v.map(|v| format!("{v:.3}")).unwrap_or_else(|| "-".into());
    let mut s = String::from(
        "| node | class | metric | n | mean (95% CI) | median [IQR] | empty prediction |\n\
         |---|---|---|---|---|---|---|\n",
    );
    for r in rows {
        let ci = match (r.ci_low, r.ci_high) {
            (Some(a), Some(b)) => format!(" ({} to {})", f(Some(a)), f(Some(b))),
            _ => String::new(),
        };
        let n = if r.undefined > 0 {
            format!("{} ({} undefined)", r.n, r.undefined)
        } else {
            r.n.to_string()
        };
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {}{} | {} [{}, {}] | {} |",
            r.node,
            r.class_name.replace('|', "\\|"),
            r.metric,
            n,
            f(r.mean),
            ci,
            f(r.median),
            f(r.q1),
            f(r.q3),
            r.empty_prediction
        );
    }
    let failed = rows.first().map_or(0, |r| r.failed_subjects);
    let _ = writeln!(
        s,
        "\n95% CI: percentile bootstrap of the mean, {BOOTSTRAP_RESAMPLES} resamples; IQR: \
         linear quartiles (numpy's default). Undefined values (an empty reference or \
         prediction) are left out. Failed subjects (no result): {failed}."
    );
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cohort::gather::LongRow;

    fn row(subject: &str, metric: &str, value: f64) -> LongRow {
        LongRow {
            subject: subject.into(),
            node: "scores".into(),
            class_id: 1,
            class_name: "liver".into(),
            metric: metric.into(),
            value,
        }
    }

    #[test]
    fn statistics_leave_out_undefined_values_and_count_empty_predictions() {
        let mut l = LongTable::default();
        for (i, v) in [0.9, 0.8, 0.7, f64::NAN, 0.6].iter().enumerate() {
            let s = format!("s{i}");
            l.rows.push(row(&s, "dice", *v));
            l.rows.push(row(
                &s,
                "voxels_prediction",
                if v.is_nan() { 0.0 } else { 5.0 },
            ));
        }
        let rows = summarise(&l, 2);
        assert_eq!(rows.len(), 1, "voxel counts are not summarised");
        let r = &rows[0];
        assert_eq!(
            (r.subjects, r.n, r.undefined, r.empty_prediction),
            (5, 4, 1, 1)
        );
        assert!((r.mean.unwrap() - 0.75).abs() < 1e-12);
        assert!((r.median.unwrap() - 0.75).abs() < 1e-12);
        assert!((r.q1.unwrap() - 0.675).abs() < 1e-12);
        assert!((r.q3.unwrap() - 0.825).abs() < 1e-12);
        let (a, b) = (r.ci_low.unwrap(), r.ci_high.unwrap());
        assert!((0.6..0.75).contains(&a) && b > 0.75 && b <= 0.9, "{a} {b}");
        let csv = to_csv(&rows);
        let line = csv.lines().nth(1).unwrap();
        assert!(line.starts_with("scores,1,liver,dice,5,4,1,0.7"), "{line}");
        assert!(csv.trim_end().ends_with(",1,2"));
        let md = to_markdown(&rows);
        assert!(
            md.contains("| scores | liver | dice | 4 (1 undefined) | 0.750 ("),
            "{md}"
        );
        assert!(md.contains("0.750 [0.675, 0.825] | 1 |"), "{md}");
    }
}
