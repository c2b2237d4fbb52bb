//! The subjects of a cohort: a CSV manifest (a header of variable names, `SUBJECT` among
//! them, one row per subject), a YAML manifest (`subjects:`, a list of `{VAR: value}`, with
//! optional `defaults:`) or a folder scan (one subject per NIfTI/NRRD file or DICOM
//! series folder, named by a hash of its path, never by what is in it).

use sha2::{Digest as _, Sha256};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

/// One subject: its id and the `${NAME}` values its workflow run gets.
#[derive(Clone, Debug, PartialEq)]
pub struct Subject {
    pub id: String,
    pub vars: BTreeMap<String, String>,
    /// Where it was defined, for messages: `subjects.csv:4` or the scanned path.
    pub origin: String,
}

#[derive(Clone, Debug)]
pub struct Manifest {
    /// The manifest file, or the scanned folder.
    pub path: PathBuf,
    /// sha256 of the manifest file (of the scan's listing for a folder): the cohort report
    /// names exactly which list of subjects it is about.
    pub sha256: String,
    pub subjects: Vec<Subject>,
}

/// A subject id names files and cache records: letters, digits, `.`, `_`, `-`.
fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 128
        && !id.starts_with('.')
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
}

fn valid_var(name: &str) -> bool {
    let mut c = name.chars();
    c.next()
        .is_some_and(|f| f.is_ascii_alphabetic() || f == '_')
        && c.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// CSV records (RFC 4180: quoted fields, `""` inside quotes, CRLF or LF) with the line each
/// starts on. Blank lines and lines starting with `#` are skipped.
/// A CSV record: the line it starts on and its fields.
type Record = (usize, Vec<String>);

fn csv_records(text: &str) -> Result<Vec<Record>, (usize, String)> {
    let mut out = Vec::new();
    let mut chars = text.chars().peekable();
    let mut line = 1;
    while chars.peek().is_some() {
        let start = line;
        if chars.peek() == Some(&'#') {
            for c in chars.by_ref() {
                if c == '\n' {
                    line += 1;
                    break;
                }
            }
            continue;
        }
        let mut fields = vec![String::new()];
        let mut quoted = false;
        let mut quote_open_line = line;
        loop {
            let Some(c) = chars.next() else {
                if quoted {
                    return Err((quote_open_line, "a quoted field is never closed".into()));
                }
                break;
            };
            let field = fields.last_mut().expect("one field at least");
            match c {
                '"' if quoted && chars.peek() == Some(&'"') => {
                    chars.next();
                    field.push('"');
                }
                '"' if quoted => quoted = false,
                '"' if field.is_empty() => {
                    quoted = true;
                    quote_open_line = line;
                }
                ',' if !quoted => fields.push(String::new()),
                '\r' if !quoted && chars.peek() == Some(&'\n') => {}
                '\n' if !quoted => {
                    line += 1;
                    break;
                }
                '\n' => {
                    line += 1;
                    field.push(c);
                }
                _ => field.push(c),
            }
        }
        if fields.len() == 1 && fields[0].trim().is_empty() {
            continue;
        }
        out.push((start, fields));
    }
    Ok(out)
}

/// Reads a manifest: YAML for `.yaml`/`.yml`, CSV otherwise.
pub fn read(path: &Path) -> Result<Manifest, Vec<String>> {
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or("")
        .to_lowercase();
    if ext == "yaml" || ext == "yml" {
        read_yaml(path)
    } else {
        read_csv(path)
    }
}

/// The manifest's text (a spreadsheet's byte-order mark dropped).
fn read_text(path: &Path) -> Result<String, Vec<String>> {
    let name = path.display().to_string();
    let bytes = std::fs::read(path).map_err(|e| vec![format!("{name}: cannot read: {e}")])?;
    let text = String::from_utf8(bytes).map_err(|e| {
        vec![format!(
            "{name}: not UTF-8 text (byte {})",
            e.utf8_error().valid_up_to()
        )]
    })?;
    Ok(text
        .strip_prefix('\u{feff}')
        .map(str::to_string)
        .unwrap_or(text))
}

/// A subject as a manifest wrote it: its line and its (variable, value) pairs; an empty
/// value leaves the variable unset.
struct Row {
    line: usize,
    vars: Vec<(String, String)>,
}

/// Subjects from rows: ids checked (valid, once each), relative paths taken from the
/// manifest's folder. Problems go to `errors` as `FILE:LINE: what`.
fn subjects_of(name: &str, base: &Path, rows: Vec<Row>, errors: &mut Vec<String>) -> Vec<Subject> {
    let mut seen: HashMap<String, usize> = HashMap::new();
    let mut subjects = Vec::new();
    for Row { line, vars } in rows {
        let Some(id) = vars
            .iter()
            .find(|(k, _)| k == "SUBJECT")
            .map(|(_, v)| v.trim().to_string())
        else {
            errors.push(format!(
                "{name}:{line}: no SUBJECT: give each subject an id (it names files and records)"
            ));
            continue;
        };
        if !valid_id(&id) {
            errors.push(format!(
                "{name}:{line}: subject id `{id}`: use letters, digits, `.`, `_` and `-` \
                 (it names files), not starting with `.`"
            ));
            continue;
        }
        if let Some(first) = seen.insert(id.clone(), line) {
            errors.push(format!(
                "{name}:{line}: subject `{id}` again (first on line {first})"
            ));
            continue;
        }
        let vars = vars
            .into_iter()
            .filter(|(_, v)| !v.trim().is_empty()) // empty: the variable is unset
            .map(|(k, v)| {
                let v = from_manifest_folder(base, v.trim());
                (k, v)
            })
            .collect();
        subjects.push(Subject {
            id,
            vars,
            origin: format!("{name}:{line}"),
        });
    }
    if subjects.is_empty() && errors.is_empty() {
        errors.push(format!("{name}: no subjects in the manifest"));
    }
    subjects
}

/// Reads a CSV manifest. Every problem is reported, each as `FILE:LINE: what`. A relative
/// path in a cell is taken from the manifest's folder when it exists there (a manifest lists
/// files beside it, wherever the workflow is).
pub fn read_csv(path: &Path) -> Result<Manifest, Vec<String>> {
    let name = path.display().to_string();
    let text = read_text(path)?;
    let records = csv_records(&text).map_err(|(l, e)| vec![format!("{name}:{l}: {e}")])?;
    let Some(((header_line, header), rows)) = records.split_first() else {
        return Err(vec![format!(
            "{name}: empty manifest: write a header line (SUBJECT,IMAGE,...) and a row per subject"
        )]);
    };
    let mut errors = Vec::new();
    let header: Vec<String> = header.iter().map(|h| h.trim().to_string()).collect();
    for h in &header {
        if !valid_var(h) {
            errors.push(format!(
                "{name}:{header_line}: column `{h}` is not a variable name (letters, digits, _)"
            ));
        }
    }
    if !header.iter().any(|h| h == "SUBJECT") {
        errors.push(format!(
            "{name}:{header_line}: no SUBJECT column: the header must name one (a subject's \
             id, used in file names and records)"
        ));
        return Err(errors);
    }
    let mut good = Vec::new();
    for (line, fields) in rows {
        if fields.len() != header.len() {
            errors.push(format!(
                "{name}:{line}: {} fields, the header has {}",
                fields.len(),
                header.len()
            ));
            continue;
        }
        good.push(Row {
            line: *line,
            vars: header.iter().cloned().zip(fields.iter().cloned()).collect(),
        });
    }
    let base = path.parent().unwrap_or(Path::new("."));
    let subjects = subjects_of(&name, base, good, &mut errors);
    if !errors.is_empty() {
        return Err(errors);
    }
    Ok(Manifest {
        path: path.to_path_buf(),
        sha256: hex(&Sha256::digest(text.as_bytes())),
        subjects,
    })
}

/// A YAML scalar as a variable's value: text, a number or a bool (null: unset).
fn yaml_scalar(v: &serde_yaml::Value) -> Option<String> {
    use serde_yaml::Value as Y;
    match v {
        Y::Null => Some(String::new()),
        Y::Bool(b) => Some(b.to_string()),
        Y::Number(n) => Some(n.to_string()),
        Y::String(s) => Some(s.clone()),
        _ => None,
    }
}

/// Reads a YAML manifest:
///
/// ```yaml
/// defaults: { MODEL: models/vista3d.safetensors }   # optional: every subject's
/// subjects:
///   - { SUBJECT: s01, IMAGE: ct/s01.nii.gz, LABELS: seg/s01.nii.gz }
///   - SUBJECT: s02
///     IMAGE: ct/s02.nii.gz
/// ```
///
/// A subject's own value wins over `defaults`. Problems as `FILE:LINE: what`.
pub fn read_yaml(path: &Path) -> Result<Manifest, Vec<String>> {
    use crate::workflow::Locations;
    use serde_yaml::Value as Y;
    let name = path.display().to_string();
    let text = read_text(path)?;
    let doc: Y = serde_yaml::from_str(&text).map_err(|e| {
        let line = e.location().map_or(1, |l| l.line());
        vec![format!("{name}:{line}: not YAML: {e}")]
    })?;
    let locs = Locations::index(&text);
    let line_of = |p: &str| locs.value_pos(p).map_or(1, |pos| pos.line);
    let mut errors: Vec<String> = locs
        .duplicates
        .iter()
        .map(|d| {
            format!(
                "{name}:{}: `{}` again (first on line {})",
                d.second.line, d.key, d.first.line
            )
        })
        .collect();
    let Y::Mapping(top) = &doc else {
        return Err(vec![format!(
            "{name}:1: a YAML manifest is a mapping with `subjects:` (a list of {{SUBJECT: id, \
             VAR: value, ...}}) and optional `defaults:`"
        )]);
    };
    for k in top.keys() {
        let k = k.as_str().unwrap_or("?");
        if k != "subjects" && k != "defaults" {
            errors.push(format!(
                "{name}:{}: unknown key `{k}`: a manifest has `subjects` and `defaults`",
                line_of(k)
            ));
        }
    }
    // (variable, value) pairs of a mapping at `at`, each checked.
    let pairs = |m: &Y, at: &str, errors: &mut Vec<String>| -> Vec<(String, String)> {
        let Y::Mapping(m) = m else {
            errors.push(format!(
                "{name}:{}: expected a mapping of VARIABLE: value",
                line_of(at)
            ));
            return vec![];
        };
        let mut out = Vec::new();
        for (k, v) in m {
            let k = k.as_str().unwrap_or("?").to_string();
            let here = crate::workflow::join_path(at, &k);
            if !valid_var(&k) {
                errors.push(format!(
                    "{name}:{}: `{k}` is not a variable name (letters, digits, _)",
                    line_of(&here)
                ));
                continue;
            }
            match yaml_scalar(v) {
                Some(v) => out.push((k, v)),
                None => errors.push(format!(
                    "{name}:{}: `{k}`: a value must be text or a number, not a list or mapping",
                    line_of(&here)
                )),
            }
        }
        out
    };
    let defaults = match top.get("defaults") {
        None => vec![],
        Some(d) => pairs(d, "defaults", &mut errors),
    };
    let mut rows = Vec::new();
    match top.get("subjects") {
        Some(Y::Sequence(items)) => {
            for (n, item) in items.iter().enumerate() {
                let at = format!("subjects.{n}");
                let own = pairs(item, &at, &mut errors);
                let mut vars: Vec<(String, String)> = defaults
                    .iter()
                    .filter(|(k, _)| !own.iter().any(|(o, _)| o == k))
                    .cloned()
                    .collect();
                vars.extend(own);
                rows.push(Row {
                    line: line_of(&at),
                    vars,
                });
            }
        }
        Some(_) => errors.push(format!(
            "{name}:{}: `subjects` must be a list",
            line_of("subjects")
        )),
        None => errors.push(format!(
            "{name}:1: no `subjects:` list: write one item {{SUBJECT: id, VAR: value, ...}} \
             per subject"
        )),
    }
    let base = path.parent().unwrap_or(Path::new("."));
    let subjects = subjects_of(&name, base, rows, &mut errors);
    if !errors.is_empty() {
        return Err(errors);
    }
    Ok(Manifest {
        path: path.to_path_buf(),
        sha256: hex(&Sha256::digest(text.as_bytes())),
        subjects,
    })
}

/// A relative path in a cell, from the manifest's folder: a value that exists there, or
/// looks like a path (has a `/`, or a data file's extension) so that a missing file is named
/// where the manifest meant it.
fn from_manifest_folder(base: &Path, value: &str) -> String {
    let p = Path::new(value);
    let looks_like_path = value.contains('/')
        || [
            ".nii",
            ".nii.gz",
            ".nrrd",
            ".nhdr",
            ".dcm",
            ".json",
            ".csv",
            ".safetensors",
        ]
        .iter()
        .any(|e| value.to_lowercase().ends_with(e));
    if p.is_relative() && (looks_like_path || base.join(p).exists()) {
        std::path::absolute(base.join(p))
            .unwrap_or_else(|_| base.join(p))
            .display()
            .to_string()
    } else {
        value.to_string()
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// One subject per NIfTI/NRRD file and per folder holding DICOM files under `dir`
/// (recursively), each with `IMAGE` = its absolute path and `SUBJECT` = `s` + 12 hex digits
/// of sha256 of its path relative to `dir` (stable while the layout is, and free of the
/// patient names folder names often carry). A folder whose files hold several series (by
/// SeriesInstanceUID) gives one subject per series instead, with `SERIES_UID` set (for
/// load_dicom's `series_uid: ${SERIES_UID}`) and the UID in the hashed path.
pub fn scan_dir(dir: &Path) -> Result<Manifest, String> {
    let root = std::path::absolute(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    if !root.is_dir() {
        return Err(format!("--cohort-dir {}: not a folder", dir.display()));
    }
    let mut found: Vec<Found> = Vec::new();
    walk(&root, &root, &mut found, 0)?;
    if found.is_empty() {
        return Err(format!(
            "--cohort-dir {}: no NIfTI (.nii, .nii.gz), NRRD (.nrrd) or DICOM series found",
            dir.display()
        ));
    }
    found.sort();
    let mut listing = String::new();
    let subjects = found
        .into_iter()
        .map(|(rel, path, series)| {
            let (hashed, origin) = match &series {
                None => (rel.clone(), rel.clone()),
                // Origins name the series by its place, never by its UID.
                Some((uid, k, n)) => (format!("{rel}#{uid}"), format!("{rel} [series {k} of {n}]")),
            };
            let id = format!("s{}", &hex(&Sha256::digest(hashed.as_bytes()))[..12]);
            listing.push_str(&format!("{id}\t{hashed}\n"));
            let mut vars = BTreeMap::from([
                ("SUBJECT".to_string(), id.clone()),
                ("IMAGE".to_string(), path.display().to_string()),
            ]);
            if let Some((uid, _, _)) = series {
                vars.insert(SERIES_UID.to_string(), uid);
            }
            Subject { vars, id, origin }
        })
        .collect();
    Ok(Manifest {
        path: root,
        sha256: hex(&Sha256::digest(listing.as_bytes())),
        subjects,
    })
}

const MAX_DEPTH: usize = 16;

/// The variable a folder scan sets to a series' UID when a folder holds several.
pub const SERIES_UID: &str = "SERIES_UID";

/// What a scan found: its path under the root, the path, and for one series of a folder
/// holding several, (its UID, its place k of n in UID order).
type Found = (String, PathBuf, Option<(String, usize, usize)>);

fn walk(root: &Path, dir: &Path, found: &mut Vec<Found>, depth: usize) -> Result<(), String> {
    if depth > MAX_DEPTH {
        return Ok(());
    }
    let entries = std::fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let mut dicom_here = Vec::new();
    let mut subdirs = Vec::new();
    for e in entries.flatten() {
        let path = e.path();
        let name = e.file_name().to_string_lossy().to_lowercase();
        if name.starts_with('.') {
            continue;
        }
        if path.is_dir() {
            subdirs.push(path);
        } else if name.ends_with(".nii") || name.ends_with(".nii.gz") || name.ends_with(".nrrd") {
            found.push((relative(root, &path), path, None));
        } else if is_dicom(&path) {
            dicom_here.push(path);
        }
    }
    if !dicom_here.is_empty() {
        let rel = relative(root, dir);
        let uids = vistaflow_nodes::io::dicom::series_uids(&dicom_here);
        if uids.len() > 1 {
            let n = uids.len();
            for (k, uid) in uids.into_iter().enumerate() {
                found.push((rel.clone(), dir.to_path_buf(), Some((uid, k + 1, n))));
            }
        } else {
            found.push((rel, dir.to_path_buf(), None));
        }
    }
    for d in subdirs {
        walk(root, &d, found, depth + 1)?;
    }
    Ok(())
}

fn relative(root: &Path, p: &Path) -> String {
    p.strip_prefix(root)
        .map(|r| r.display().to_string())
        .unwrap_or_else(|_| p.display().to_string())
}

/// A Part 10 file (`DICM` after the 128-byte preamble).
fn is_dicom(path: &Path) -> bool {
    use std::io::Read;
    let mut b = [0u8; 132];
    std::fs::File::open(path)
        .and_then(|mut f| f.read_exact(&mut b))
        .is_ok()
        && &b[128..] == b"DICM"
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    #[test]
    fn rows_become_subjects_with_paths_from_the_manifest_folder() {
        let d = tempfile::tempdir().unwrap();
        write(d.path(), "a.nii.gz", "");
        let m = write(
            d.path(),
            "s.csv",
            "\u{feff}SUBJECT,IMAGE,NOTE\r\n# a comment\r\ns01,a.nii.gz,\"x, \"\"y\"\"\"\r\n\r\ns02,/abs/b.nii.gz,\r\ns03,c/missing.nii.gz,3\r\n",
        );
        let m = read_csv(&m).unwrap();
        assert_eq!(m.subjects.len(), 3);
        let missing = d.path().join("c/missing.nii.gz").display().to_string();
        assert_eq!(
            m.subjects[2].vars["IMAGE"], missing,
            "a path, though missing"
        );
        assert_eq!(m.subjects[2].vars["NOTE"], "3", "not a path");
        let s = &m.subjects[0];
        assert_eq!(s.id, "s01");
        assert!(s.origin.ends_with("s.csv:3"), "{}", s.origin);
        assert_eq!(
            s.vars["IMAGE"],
            d.path().join("a.nii.gz").display().to_string()
        );
        assert_eq!(s.vars["NOTE"], "x, \"y\"");
        assert_eq!(m.subjects[1].vars["IMAGE"], "/abs/b.nii.gz");
        assert!(
            !m.subjects[1].vars.contains_key("NOTE"),
            "empty cell: unset"
        );
        assert_eq!(m.sha256.len(), 64);
    }

    #[test]
    fn every_problem_is_named_with_its_line() {
        let d = tempfile::tempdir().unwrap();
        let m = write(
            d.path(),
            "s.csv",
            "SUBJECT,IMAGE,bad-name\ns01,a,1\ns01,b,2\n../x,c,3\ns04,d\n",
        );
        let e = read_csv(&m).unwrap_err().join("\n");
        for want in [
            "s.csv:1: column `bad-name`",
            "s.csv:3: subject `s01` again (first on line 2)",
            "s.csv:4: subject id `../x`",
            "s.csv:5: 2 fields, the header has 3",
        ] {
            assert!(e.contains(want), "{want} missing in:\n{e}");
        }
        let m = write(d.path(), "n.csv", "IMAGE\na\n");
        assert!(read_csv(&m).unwrap_err()[0].contains("no SUBJECT column"));
        let m = write(d.path(), "q.csv", "SUBJECT\n\"s1\n");
        assert!(read_csv(&m).unwrap_err()[0].contains("q.csv:2: a quoted field is never closed"));
    }

    #[test]
    fn a_yaml_manifest_gives_the_subjects_the_csv_gives() {
        let d = tempfile::tempdir().unwrap();
        write(d.path(), "a.nii.gz", "");
        let csv = write(
            d.path(),
            "s.csv",
            "SUBJECT,IMAGE,MODEL,N\ns01,a.nii.gz,m.safetensors,1\ns02,/abs/b.nii.gz,own.safetensors,\n",
        );
        let yaml = write(
            d.path(),
            "s.yaml",
            "# the same cohort\ndefaults: { MODEL: m.safetensors }\nsubjects:\n  - { SUBJECT: s01, IMAGE: a.nii.gz, N: 1 }\n  - SUBJECT: s02\n    IMAGE: /abs/b.nii.gz\n    MODEL: own.safetensors\n    N: null\n",
        );
        let (c, y) = (read(&csv).unwrap(), read(&yaml).unwrap());
        assert_eq!(c.subjects.len(), 2);
        for (a, b) in c.subjects.iter().zip(&y.subjects) {
            assert_eq!((&a.id, &a.vars), (&b.id, &b.vars));
        }
        assert!(
            y.subjects[0].origin.ends_with("s.yaml:4"),
            "{}",
            y.subjects[0].origin
        );
        assert!(
            y.subjects[1].origin.ends_with("s.yaml:5"),
            "{}",
            y.subjects[1].origin
        );
    }

    #[test]
    fn yaml_problems_are_named_with_their_lines() {
        let d = tempfile::tempdir().unwrap();
        let m = write(
            d.path(),
            "s.yml",
            "subjects:\n  - { SUBJECT: s01, IMAGE: a }\n  - { SUBJECT: s01, IMAGE: b }\n  - { IMAGE: c }\n  - { SUBJECT: s04, bad-name: 1, LIST: [1, 2] }\n  - just text\nextra: 1\n",
        );
        let e = read(&m).unwrap_err().join("\n");
        for want in [
            "s.yml:3: subject `s01` again (first on line 2)",
            "s.yml:4: no SUBJECT",
            "s.yml:5: `bad-name` is not a variable name",
            "s.yml:5: `LIST`: a value must be text or a number",
            "s.yml:6: expected a mapping",
            "s.yml:7: unknown key `extra`",
        ] {
            assert!(e.contains(want), "{want} missing in:\n{e}");
        }
        let m = write(d.path(), "t.yaml", "subjects: [\n");
        assert!(
            read(&m).unwrap_err()[0].contains("t.yaml:"),
            "parse errors have a line"
        );
        let m = write(d.path(), "u.yaml", "- SUBJECT: s1\n");
        assert!(read(&m).unwrap_err()[0].contains("a mapping with `subjects:`"));
    }

    #[test]
    fn a_folder_gives_one_subject_per_image_file_and_dicom_folder() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(d.path().join("Doe^John/series1")).unwrap();
        let mut dcm = vec![0u8; 128];
        dcm.extend(b"DICM");
        std::fs::write(d.path().join("Doe^John/series1/1.dcm"), &dcm).unwrap();
        std::fs::write(d.path().join("Doe^John/series1/2.dcm"), &dcm).unwrap();
        write(d.path(), "b.nii.gz", "");
        write(d.path(), "notes.txt", "");
        let m = scan_dir(d.path()).unwrap();
        assert_eq!(m.subjects.len(), 2);
        let origins: Vec<&str> = m.subjects.iter().map(|s| s.origin.as_str()).collect();
        assert_eq!(origins, ["Doe^John/series1", "b.nii.gz"]);
        for s in &m.subjects {
            assert!(s.id.starts_with('s') && s.id.len() == 13 && !s.id.contains("Doe"));
        }
        assert_eq!(scan_dir(d.path()).unwrap().sha256, m.sha256, "stable");
        assert!(scan_dir(&d.path().join("b.nii.gz")).is_err());
    }
}
