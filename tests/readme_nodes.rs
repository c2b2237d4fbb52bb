//! The README's node table keeps up with the code: a row for every node kind, naming each of
//! its ports and params (`vistaflow nodes` is the full reference; the table is what people
//! read first, so a param missing there is a param nobody finds).

use vistaflow_nodes::Registry;

/// The README row of `kind`: `| `kind` | inputs | outputs | params |`, split into its cells.
fn row<'a>(readme: &'a str, kind: &str) -> Option<Vec<&'a str>> {
    let start = format!("| `{kind}` |");
    let line = readme.lines().find(|l| l.starts_with(&start))?;
    Some(line.trim().trim_matches('|').split('|').collect())
}

#[test]
fn the_readme_node_table_names_every_kind_port_and_param() {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let mut missing = Vec::new();
    for node in Registry::builtin().iter() {
        let spec = node.spec();
        let Some(cells) = row(&readme, spec.kind) else {
            missing.push(format!("{}: no row", spec.kind));
            continue;
        };
        assert_eq!(
            cells.len(),
            4,
            "{}: the row has {} cells",
            spec.kind,
            cells.len()
        );
        let named = |cell: &str, name: &str| cell.contains(&format!("`{name}`"));
        for p in &spec.inputs {
            if !named(cells[1], p.name) {
                missing.push(format!("{}: input `{}`", spec.kind, p.name));
            }
        }
        for p in &spec.outputs {
            if !named(cells[2], p.name) {
                missing.push(format!("{}: output `{}`", spec.kind, p.name));
            }
        }
        for p in &spec.params {
            if !named(cells[3], p.name) {
                missing.push(format!("{}: param `{}`", spec.kind, p.name));
            }
        }
    }
    assert!(
        missing.is_empty(),
        "README's node table lacks:\n{}",
        missing.join("\n")
    );
}
