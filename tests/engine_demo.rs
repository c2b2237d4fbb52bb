//! workflows/demo.yaml, the README's first command, through the engine on the held-out
//! TotalSegmentator DICOM series with the shipped demo model: the Dice per class that the
//! README reports (MONAI's definition, on the series' own grid). The target, a mean of
//! 0.8 over the large organs, is not met by this model (README, "The demo model").

mod common;

use common::run;
use std::collections::BTreeMap;
use vistaflow::exec::RunOptions;

/// The README's figures (Dice, demo model as committed); a changed model or pipeline that
/// does worse fails here.
// The stomach's 0.318 is a Dice, not an approximation of 1/pi.
#[expect(
    clippy::approx_constant,
    reason = "the stomach Dice of 0.318 is a measurement, not 1/pi"
)]
const README_DICE: [(&str, f64); 4] = [
    ("liver", 0.879),
    ("spleen", 0.784),
    ("stomach", 0.318),
    ("aorta", 0.694),
];

#[test]
fn demo_workflow_gives_the_readme_dice_on_the_held_out_series() {
    if common::data_dir().is_none() {
        return;
    }
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let text = std::fs::read_to_string(root.join("workflows/demo.yaml"))
        .unwrap()
        .replace("../out/", "out/")
        .replace("../.vistaflow/cache", ".cache")
        .replace(
            "../data/",
            &format!("{}/", common::data_dir().unwrap().display()),
        )
        .replace("../models/", &format!("{}/models/", root.display()));
    let wf = d.join("demo.yaml");
    std::fs::write(&wf, text).unwrap();
    let reg = common::registry();
    let plan = vistaflow::workflow::load(&wf, &BTreeMap::new(), &reg).unwrap();
    let report = run(plan, RunOptions::default());
    assert_eq!(report.first_failure(), None);

    let csv = std::fs::read_to_string(d.join("out/demo/metrics.csv")).unwrap();
    let mut lines = csv.lines();
    let head: Vec<&str> = lines.next().unwrap().split(',').collect();
    let col = |name: &str| head.iter().position(|c| *c == name).unwrap();
    let mut dice = BTreeMap::new();
    for l in lines {
        let cells: Vec<&str> = l.split(',').collect();
        dice.insert(
            cells[col("class_name")].trim_matches('"').to_string(),
            cells[col("dice")].parse::<f64>().unwrap(),
        );
    }
    eprintln!("{dice:?}");
    for (name, want) in README_DICE {
        let got = dice[name];
        assert!(
            (got - want).abs() < 0.005,
            "{name}: Dice {got:.4}, README says {want:.3}"
        );
    }
    for f in ["seg.nii.gz", "preview.png", "report.json"] {
        assert!(d.join("out/demo").join(f).is_file(), "{f}");
    }
}
