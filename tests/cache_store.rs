//! The content-addressed store against real tensors and real files.

use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Barrier};
use std::time::{Duration, SystemTime};

use tch::{Device, Kind, Tensor};
use vistaflow::cache::{CacheError, EntryInfo, FileDigests, Lookup, Store, RACY_WINDOW_NS};
use vistaflow::hash::{Digest, KeyHasher};
use vistaflow_nodes::{Geometry, LabelMap, PortType, Value, Volume};

fn image(seed: i64) -> Value {
    let data = (Tensor::arange(4 * 5 * 6, (Kind::Float, Device::Cpu)) * 0.25 + seed as f64)
        .reshape([4, 5, 6]);
    let vol = Volume::new(
        data,
        Geometry::axis_aligned([0.8, 0.8, 2.5], [-100.0, 20.5, 7.0]),
    )
    .unwrap()
    .with_meta("modality", "CT")
    .with_meta("units", "HU");
    Value::Image(vol)
}

fn labels() -> Value {
    let data = Tensor::from_slice(&[0i16, 1, 2, 0, 2, 1, 1, 0]).reshape([2, 2, 2]);
    let vol = Volume::new(
        data,
        Geometry::axis_aligned([1.5, 1.5, 1.5], [0.0, 0.0, 0.0]),
    )
    .unwrap();
    let classes = [(1, "liver".to_string()), (2, "spleen".to_string())]
        .into_iter()
        .collect();
    Value::Labels(LabelMap::new(vol, classes).unwrap())
}

fn id(name: &str) -> Digest {
    let mut h = KeyHasher::new("test");
    h.field("name", name.as_bytes());
    h.finish()
}

fn info(node: &str) -> EntryInfo {
    EntryInfo {
        key: id(&format!("key-{node}")),
        kind: "resample".into(),
        node: node.into(),
        port: "image".into(),
    }
}

fn hit(l: Lookup) -> Value {
    match l {
        Lookup::Hit(v) => v,
        other => panic!("expected a hit, got {other:?}"),
    }
}

fn data_path(root: &Path, id: &Digest) -> PathBuf {
    root.join("objects")
        .join(&id.hex()[..2])
        .join(format!("{id}.safetensors"))
}

fn sidecar_path(root: &Path, id: &Digest) -> PathBuf {
    root.join("objects")
        .join(&id.hex()[..2])
        .join(format!("{id}.json"))
}

fn all_files(p: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in fs::read_dir(p).unwrap() {
        let e = e.unwrap().path();
        if e.is_dir() {
            out.extend(all_files(&e));
        } else {
            out.push(e);
        }
    }
    out
}

fn set_age(path: &Path, age: Duration) {
    let f = fs::OpenOptions::new().write(true).open(path).unwrap();
    f.set_modified(SystemTime::now() - age).unwrap();
}

#[test]
fn round_trip_table_with_non_finite_numbers() {
    use vistaflow_nodes::value::{Cell, Table};
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let mut t = Table::new(vec!["class_id".into(), "hd95".into(), "dice".into()]);
    t.rows.push(vec![
        Cell::Int(3),
        Cell::Float(f64::INFINITY),
        Cell::Float(f64::NAN),
    ]);
    t.rows
        .push(vec![Cell::Int(5), Cell::Float(1.25), Cell::Float(0.5)]);
    t.notes.push("a note".into());
    let a = id("t");
    let mut ti = info("metrics");
    ti.port = "table".into();
    store.put(&a, &ti, &Value::Table(t.clone())).unwrap();
    match hit(store.get(&a, PortType::Table).unwrap()) {
        Value::Table(got) => {
            assert_eq!(got.rows[1], t.rows[1]);
            assert_eq!(got.rows[0][1], Cell::Float(f64::INFINITY));
            assert!(matches!(got.rows[0][2], Cell::Float(v) if v.is_nan()));
            assert_eq!(got.notes, t.notes);
        }
        other => panic!("got {other:?}"),
    }
}

#[test]
fn round_trip_image_and_labels() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let (a, b) = (id("a"), id("b"));
    assert!(!store.contains(&a));
    assert!(matches!(
        store.get(&a, PortType::Image).unwrap(),
        Lookup::Miss
    ));

    let img = image(3);
    let n = store.put(&a, &info("ct"), &img).unwrap();
    assert!(n > 4 * 5 * 6 * 4, "wrote {n} bytes");
    assert!(store.contains(&a));
    let back = hit(store.get(&a, PortType::Image).unwrap());
    assert_eq!(back.volume(), img.volume());
    assert_eq!(back.volume().kind(), Kind::Float);

    let lab = labels();
    let mut li = info("seg");
    li.port = "labels".into();
    store.put(&b, &li, &lab).unwrap();
    match (hit(store.get(&b, PortType::Labels).unwrap()), &lab) {
        (Value::Labels(got), Value::Labels(want)) => {
            assert_eq!(got, *want);
            assert_eq!(got.classes[&2], "spleen");
            assert_eq!(got.volume.kind(), Kind::Int16);
        }
        (other, _) => panic!("got {other:?}"),
    }

    // Existing entries are kept: a second put writes nothing and the first value stays.
    assert_eq!(store.put(&a, &info("ct"), &image(99)).unwrap(), 0);
    assert_eq!(
        hit(store.get(&a, PortType::Image).unwrap()).volume(),
        img.volume()
    );

    // The data file is a plain safetensors file.
    let bytes = fs::read(data_path(dir.path(), &a)).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    assert_eq!(st.tensor("data").unwrap().shape(), &[4, 5, 6]);

    let mut listed = store.list();
    listed.sort_by(|x, y| x.node.cmp(&y.node));
    assert_eq!(listed.len(), 2);
    assert_eq!(
        (listed[0].node.as_str(), listed[0].kind.as_str()),
        ("ct", "resample")
    );
    assert_eq!(listed[1].port_type, "labels");
    assert_eq!(listed[0].key, Some(id("key-ct")));

    // Paths hold only hex digests and fixed names.
    for f in all_files(dir.path()) {
        let name = f.file_name().unwrap().to_string_lossy().to_string();
        let stem = name.split('.').next().unwrap();
        assert!(
            ["lock", "CACHEDIR"].contains(&stem) || Digest::from_hex(stem).is_some(),
            "unexpected file {f:?}"
        );
    }
}

#[test]
fn records_round_trip_and_garbage_reads_as_absent() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let k = id("sink");
    assert_eq!(store.get_record(&k), None);
    let rec =
        serde_json::json!({ "files": [{ "path": "out/seg.nii.gz", "sha256": id("x").hex() }] });
    store.put_record(&k, &rec).unwrap();
    assert_eq!(store.get_record(&k), Some(rec.clone()));
    let rec2 = serde_json::json!({ "files": [] });
    store.put_record(&k, &rec2).unwrap();
    assert_eq!(store.get_record(&k), Some(rec2));
    let p = dir
        .path()
        .join("records")
        .join(&k.hex()[..2])
        .join(format!("{k}.json"));
    fs::write(&p, b"{\"format\": 1, \"key\": ").unwrap();
    assert_eq!(store.get_record(&k), None);
    assert!(!p.exists());
}

/// Damages a committed entry with `damage`, then expects Corrupt, then Miss, and no files.
fn expect_corrupt(name: &str, damage: impl FnOnce(&Path, &Path), ty: PortType, reason: &str) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let e = id(name);
    store.put(&e, &info(name), &image(1)).unwrap();
    let (data, sc) = (data_path(dir.path(), &e), sidecar_path(dir.path(), &e));
    damage(&data, &sc);
    match store.get(&e, ty).unwrap() {
        Lookup::Corrupt(why) => assert!(
            why.contains(reason),
            "{name}: reason `{why}` lacks `{reason}`"
        ),
        other => panic!("{name}: expected Corrupt, got {other:?}"),
    }
    assert!(!store.contains(&e), "{name}: entry still committed");
    assert!(!data.exists() && !sc.exists(), "{name}: files left behind");
    assert!(
        matches!(store.get(&e, ty).unwrap(), Lookup::Miss),
        "{name}: second get is not a miss"
    );
    // ...and it can be rewritten.
    assert!(store.put(&e, &info(name), &image(1)).unwrap() > 0);
    hit(store.get(&e, PortType::Image).unwrap());
}

#[test]
fn damaged_entries_are_corrupt_then_miss() {
    expect_corrupt(
        "truncated",
        |data, _| {
            let len = fs::metadata(data).unwrap().len();
            fs::OpenOptions::new()
                .write(true)
                .open(data)
                .unwrap()
                .set_len(len - 7)
                .unwrap();
        },
        PortType::Image,
        "bytes",
    );
    expect_corrupt(
        "flipped",
        |data, _| {
            let mut b = fs::read(data).unwrap();
            let i = b.len() - 30;
            b[i] ^= 0x10;
            fs::write(data, b).unwrap();
        },
        PortType::Image,
        "sha256",
    );
    expect_corrupt(
        "header-flipped",
        |data, _| {
            let mut b = fs::read(data).unwrap();
            b[8] = b'[';
            fs::write(data, b).unwrap();
        },
        PortType::Image,
        "header",
    );
    expect_corrupt(
        "data-deleted",
        |data, _| fs::remove_file(data).unwrap(),
        PortType::Image,
        "missing",
    );
    expect_corrupt(
        "sidecar-garbage",
        |_, sc| fs::write(sc, b"\x00not json").unwrap(),
        PortType::Image,
        "sidecar",
    );
    expect_corrupt(
        "sidecar-truncated",
        |_, sc| {
            let s = fs::read(sc).unwrap();
            fs::write(sc, &s[..s.len() / 2]).unwrap();
        },
        PortType::Image,
        "sidecar",
    );
    expect_corrupt(
        "meta-tampered",
        |_, sc| {
            let mut j: serde_json::Value = serde_json::from_slice(&fs::read(sc).unwrap()).unwrap();
            j["meta"]["affine_lps"] = serde_json::json!("nope");
            fs::write(sc, serde_json::to_vec(&j).unwrap()).unwrap();
        },
        PortType::Image,
        "rebuild",
    );
    expect_corrupt("wrong-type", |_, _| {}, PortType::Labels, "labels");
}

#[test]
fn killed_writer_leaves_only_garbage_that_gc_removes() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let good = id("good");
    store.put(&good, &info("good"), &image(2)).unwrap();

    // Writer 1 died after renaming its data file, before the sidecar.
    let dead = id("dead");
    store.put(&dead, &info("dead"), &image(5)).unwrap();
    fs::remove_file(sidecar_path(dir.path(), &dead)).unwrap();
    // Writer 2 died half way through its temp file, long ago; writer 3 is (maybe) alive.
    let shard = data_path(dir.path(), &id("tmp"))
        .parent()
        .unwrap()
        .to_path_buf();
    fs::create_dir_all(&shard).unwrap();
    let old_tmp = shard.join(format!(".{}.safetensors.4242.0.tmp", id("tmp")));
    fs::File::create(&old_tmp)
        .unwrap()
        .write_all(&[1u8; 1000])
        .unwrap();
    set_age(&old_tmp, Duration::from_secs(2 * 3600));
    let fresh_tmp = shard.join(format!(".{}.json.4243.0.tmp", id("tmp2")));
    fs::write(&fresh_tmp, b"{").unwrap();

    assert!(!store.contains(&dead));
    assert!(matches!(
        store.get(&dead, PortType::Image).unwrap(),
        Lookup::Miss
    ));
    let v = store.verify().unwrap();
    assert!(v.is_clean(), "{:?}", v.corrupt);
    assert_eq!(v.checked, 1);
    assert_eq!(v.garbage_files, 3);

    let r = store.gc(u64::MAX).unwrap();
    assert_eq!(r.removed_garbage, 2, "{r:?}");
    assert_eq!((r.removed_entries, r.kept_entries), (0, 1));
    assert!(!data_path(dir.path(), &dead).exists());
    assert!(!old_tmp.exists());
    assert!(
        fresh_tmp.exists(),
        "a recent temp file may belong to a live writer"
    );
    hit(store.get(&good, PortType::Image).unwrap());
}

#[test]
fn verify_removes_and_reports_corrupt_entries() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let (a, b) = (id("va"), id("vb"));
    store.put(&a, &info("a"), &image(1)).unwrap();
    store.put(&b, &info("b"), &image(2)).unwrap();
    let mut bytes = fs::read(data_path(dir.path(), &b)).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    fs::write(data_path(dir.path(), &b), bytes).unwrap();
    let r = store.verify().unwrap();
    assert_eq!(r.checked, 2);
    assert_eq!(r.corrupt.len(), 1);
    assert_eq!(r.corrupt[0].0, b);
    assert!(r.corrupt[0].1.contains("sha256"), "{}", r.corrupt[0].1);
    assert!(!store.contains(&b));
    assert!(store.verify().unwrap().is_clean());
    hit(store.get(&a, PortType::Image).unwrap());
}

#[test]
fn gc_removes_least_recently_used_first() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let ids: Vec<Digest> = ["x", "y", "z"].iter().map(|n| id(n)).collect();
    for (i, e) in ids.iter().enumerate() {
        store
            .put(e, &info(&format!("n{i}")), &image(i as i64))
            .unwrap();
        set_age(
            &sidecar_path(dir.path(), e),
            Duration::from_secs(3600 * (3 - i as u64)),
        );
    }
    // x is the oldest write but is read now: y becomes the least recently used.
    hit(store.get(&ids[0], PortType::Image).unwrap());
    let sizes: Vec<u64> = {
        let l = store.list();
        ids.iter()
            .map(|e| l.iter().find(|s| s.id == *e).unwrap().bytes)
            .collect()
    };
    let r = store.gc(sizes[0] + sizes[2]).unwrap();
    assert_eq!((r.removed_entries, r.freed_bytes), (1, sizes[1]), "{r:?}");
    assert!(store.contains(&ids[0]) && !store.contains(&ids[1]) && store.contains(&ids[2]));

    let r = store.gc(sizes[0]).unwrap();
    assert_eq!(r.removed_entries, 1);
    assert!(
        store.contains(&ids[0]) && !store.contains(&ids[2]),
        "z (older use) must go before x"
    );
    assert_eq!(store.gc(0).unwrap().removed_entries, 1);
    assert!(store.list().is_empty());
}

/// Where `store`'s file-digest memo of `file` lives.
fn memo_path(root: &Path, file: &Path) -> PathBuf {
    use std::os::unix::ffi::OsStrExt;
    let h = Digest::of(fs::canonicalize(file).unwrap().as_os_str().as_bytes()).hex();
    root.join("file-digests")
        .join(&h[..2])
        .join(format!("{h}.json"))
}

#[test]
fn gc_collects_records_and_memos_unused_long_before_every_kept_entry() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("cache");
    let store = Store::open(&root).unwrap();
    let entry = id("kept");
    store.put(&entry, &info("n"), &image(0)).unwrap();
    let rec = serde_json::json!({ "files": [] });
    let (stale_rec, read_rec, fresh_rec) = (id("r1"), id("r2"), id("r3"));
    let files: Vec<PathBuf> = (0..3)
        .map(|i| dir.path().join(format!("src{i}.bin")))
        .collect();
    for (i, f) in files.iter().enumerate() {
        fs::write(f, vec![i as u8; 100]).unwrap();
    }
    // Memos are trusted (read back, not rewritten) once the files have been quiet a while.
    std::thread::sleep(Duration::from_nanos(RACY_WINDOW_NS as u64) + Duration::from_millis(200));
    for f in &files {
        store.file_digests().digest_file(f).unwrap();
    }
    for k in [&stale_rec, &read_rec, &fresh_rec] {
        store.put_record(k, &rec).unwrap();
    }
    // Three days unused, then: a stale record and memo, and one of each read again now.
    let three_days = Duration::from_secs(3 * 24 * 3600);
    for r in [&stale_rec, &read_rec] {
        set_age(
            &root
                .join("records")
                .join(&r.hex()[..2])
                .join(format!("{r}.json")),
            three_days,
        );
    }
    for f in &files[..2] {
        set_age(&memo_path(&root, f), three_days);
    }
    assert_eq!(store.get_record(&read_rec), Some(rec.clone()));
    // A later process reads the memo from disk (this one holds it in memory).
    let later = FileDigests::new(root.join("file-digests"));
    assert_eq!(
        later.digest_file(&files[1]).unwrap(),
        Digest::of(&[1u8; 100])
    );

    let r = store.gc(u64::MAX).unwrap();
    assert_eq!(
        (r.kept_entries, r.removed_records, r.removed_memos),
        (1, 1, 1),
        "{r:?}"
    );
    assert_eq!(store.get_record(&stale_rec), None);
    assert_eq!(store.get_record(&read_rec), Some(rec.clone()));
    assert_eq!(store.get_record(&fresh_rec), Some(rec.clone()));
    assert!(!memo_path(&root, &files[0]).exists());
    assert!(memo_path(&root, &files[1]).exists() && memo_path(&root, &files[2]).exists());

    // Within a day of the oldest kept entry's use is a kept run's own: kept.
    set_age(&sidecar_path(&root, &entry), Duration::from_secs(3 * 3600));
    set_age(&memo_path(&root, &files[2]), Duration::from_secs(20 * 3600));
    assert_eq!(store.gc(u64::MAX).unwrap().removed_memos, 0);

    // No entry kept: nothing to keep them for.
    let r = store.gc(0).unwrap();
    assert_eq!(
        (r.removed_entries, r.removed_records, r.removed_memos),
        (1, 2, 2),
        "{r:?}"
    );
    assert!(all_files(&root.join("records")).is_empty());
    assert!(all_files(&root.join("file-digests")).is_empty());
}

#[test]
fn file_digests_follow_content() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("cache")).unwrap();
    let fd = store.file_digests();
    let f = dir.path().join("ct.nii");
    let body: Vec<u8> = (0..3_000_000u32).map(|i| (i * 7 % 251) as u8).collect();
    fs::write(&f, &body).unwrap();
    let d1 = fd.digest_file(&f).unwrap();
    assert_eq!(d1, Digest::of(&body));
    assert_eq!(fd.digest_file(&f).unwrap(), d1);

    // Same size, different bytes, mtime moved: new digest.
    let mut body2 = body.clone();
    body2[1_234_567] ^= 0xff;
    fs::write(&f, &body2).unwrap();
    set_age(&f, Duration::from_secs(3600));
    let d2 = fd.digest_file(&f).unwrap();
    assert_eq!(d2, Digest::of(&body2));
    assert_ne!(d1, d2);

    // Racy: rewritten within the same second with the same size and the *same* mtime.
    let g = dir.path().join("racy.bin");
    fs::write(&g, b"aaaa").unwrap();
    let mtime = fs::metadata(&g).unwrap().modified().unwrap();
    assert_eq!(fd.digest_file(&g).unwrap(), Digest::of(b"aaaa"));
    fs::write(&g, b"bbbb").unwrap();
    fs::OpenOptions::new()
        .write(true)
        .open(&g)
        .unwrap()
        .set_modified(mtime)
        .unwrap();
    assert_eq!(fd.digest_file(&g).unwrap(), Digest::of(b"bbbb"));
    // A second handle on the same memo directory agrees.
    let other = FileDigests::new(dir.path().join("cache/file-digests"));
    assert_eq!(other.digest_file(&g).unwrap(), Digest::of(b"bbbb"));
    assert_eq!(other.digest_file(&f).unwrap(), d2);
}

#[test]
fn concurrent_puts_of_one_id_leave_one_valid_entry() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_path_buf();
    for round in 0..6 {
        let e = id(&format!("race{round}"));
        let barrier = Arc::new(Barrier::new(3));
        let threads: Vec<_> = (0..3)
            .map(|t| {
                let (root, barrier) = (root.clone(), barrier.clone());
                std::thread::spawn(move || {
                    // A separate Store per thread, as separate processes would have.
                    let store = Store::open(&root).unwrap();
                    let v = image(100 * round + t);
                    barrier.wait();
                    let n = store.put(&e, &info("race"), &v).unwrap();
                    // A reader racing the writers never sees a corrupt entry.
                    match store.get(&e, PortType::Image).unwrap() {
                        Lookup::Hit(_) => {}
                        other => panic!("after put: {other:?}"),
                    }
                    n
                })
            })
            .collect();
        let written: Vec<u64> = threads.into_iter().map(|t| t.join().unwrap()).collect();
        assert_eq!(
            written.iter().filter(|&&n| n > 0).count(),
            1,
            "round {round}: {written:?}"
        );
        let store = Store::open(&root).unwrap();
        let got = hit(store.get(&e, PortType::Image).unwrap());
        assert!((0..3).any(|t| got.volume() == image(100 * round + t).volume()));
    }
    let store = Store::open(&root).unwrap();
    assert!(store.verify().unwrap().is_clean());
    let shard_files = all_files(&root.join("objects"));
    assert_eq!(shard_files.len(), 12, "leftovers: {shard_files:?}");
}

const HELPER_ENV: &str = "VISTAFLOW_CACHE_TEST_HOLD";

/// Not a test on its own: when run as a child with HELPER_ENV set, holds the cache open
/// until its stdin closes.
#[test]
fn helper_hold_store_open() {
    let Ok(root) = std::env::var(HELPER_ENV) else {
        return;
    };
    let store = Store::open(Path::new(&root)).unwrap();
    println!("HOLDING");
    std::io::stdout().flush().unwrap();
    let mut line = String::new();
    let _ = std::io::stdin().read_line(&mut line);
    drop(store);
}

#[test]
fn gc_refuses_while_another_process_uses_the_cache() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    store.put(&id("p"), &info("p"), &image(0)).unwrap();
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "helper_hold_store_open",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(HELPER_ENV, dir.path())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    while !line.contains("HOLDING") {
        line.clear();
        assert!(out.read_line(&mut line).unwrap() > 0, "helper exited early");
    }
    let err = store.gc(0).unwrap_err();
    assert!(matches!(err, CacheError::Busy { .. }), "{err}");
    let msg = err.to_string();
    assert!(
        msg.contains("in use by another run") && msg.contains(&format!("pid {}", child.id())),
        "{msg}"
    );
    assert!(store.verify().is_err());
    // Still usable by this run meanwhile.
    hit(store.get(&id("p"), PortType::Image).unwrap());

    drop(child.stdin.take());
    assert!(child.wait().unwrap().success());
    assert_eq!(store.gc(0).unwrap().removed_entries, 1);
}

#[test]
fn open_reports_the_path_it_cannot_create() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("plain-file");
    fs::write(&file, b"x").unwrap();
    let err = Store::open(&file.join("cache"))
        .err()
        .expect("opening under a file must fail");
    let msg = err.to_string();
    assert!(msg.contains("plain-file"), "{msg}");
    assert!(msg.contains("cannot create"), "{msg}");
}
