//! Throughput of the cache store: put/get of CT-sized volumes, and file digests cold vs
//! memoised. `cargo bench --bench cache_store` (set VISTAFLOW_BENCH_DIR to pick the disk).

use std::fs::{self, File};
use std::os::fd::AsRawFd;
use std::path::Path;
use std::time::{Duration, Instant};

use tch::{Device, Kind, Tensor};
use vistaflow::cache::{EntryInfo, FileDigests, Lookup, Store};
use vistaflow::hash::{Digest, KeyHasher};
use vistaflow_nodes::{Geometry, PortType, Value, Volume};

const ROUNDS: usize = 3;

fn id(s: &str) -> Digest {
    let mut h = KeyHasher::new("bench");
    h.field("id", s.as_bytes());
    h.finish()
}

/// Drops a file's pages from the page cache so the next read comes from the disk.
fn evict(path: &Path) {
    if let Ok(f) = File::open(path) {
        let _ = f.sync_all();
        unsafe {
            libc::posix_fadvise(f.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED);
        }
    }
}

fn mbps(bytes: u64, d: Duration) -> f64 {
    bytes as f64 / 1e6 / d.as_secs_f64()
}

fn report(what: &str, bytes: u64, times: &[Duration]) {
    let best = times.iter().min().unwrap();
    let mean = times.iter().sum::<Duration>() / times.len() as u32;
    println!(
        "{what:<44} {:>8.1} MB  best {:>7.3} s {:>8.0} MB/s   mean {:>7.3} s {:>8.0} MB/s",
        bytes as f64 / 1e6,
        best.as_secs_f64(),
        mbps(bytes, *best),
        mean.as_secs_f64(),
        mbps(bytes, mean)
    );
}

fn bench_volume(store: &Store, name: &str, kind: Kind) {
    let shape = [300i64, 512, 512];
    let data = Tensor::arange(shape.iter().product::<i64>(), (Kind::Int64, Device::Cpu))
        .remainder(4093)
        .to_kind(kind)
        .reshape(shape);
    let vol = Volume::new(
        data,
        Geometry::axis_aligned([0.7, 0.7, 1.0], [0.0, 0.0, 0.0]),
    )
    .unwrap();
    let value = Value::Image(vol);
    let bytes = value.nbytes();
    let info = EntryInfo {
        key: id(name),
        kind: "bench".into(),
        node: name.into(),
        port: "image".into(),
    };

    let mut put_t = Vec::new();
    let mut ids = Vec::new();
    for r in 0..ROUNDS {
        let e = id(&format!("{name}-{r}"));
        let t = Instant::now();
        let n = store.put(&e, &info, &value).unwrap();
        put_t.push(t.elapsed());
        assert!(n >= bytes);
        ids.push(e);
    }
    report(&format!("put {name} (fsync'd)"), bytes, &put_t);

    let mut get_t = Vec::new();
    for e in &ids {
        let t = Instant::now();
        let v = store.get(e, PortType::Image).unwrap();
        get_t.push(t.elapsed());
        assert!(matches!(v, Lookup::Hit(_)));
    }
    report(&format!("get {name} (page cache warm)"), bytes, &get_t);

    let mut cold_t = Vec::new();
    for e in &ids {
        let p = store
            .root()
            .join("objects")
            .join(&e.hex()[..2])
            .join(format!("{e}.safetensors"));
        evict(&p);
        let t = Instant::now();
        let v = store.get(e, PortType::Image).unwrap();
        cold_t.push(t.elapsed());
        assert!(matches!(v, Lookup::Hit(_)));
    }
    report(
        &format!("get {name} (evicted from page cache)"),
        bytes,
        &cold_t,
    );
    let t = Instant::now();
    let v = store.verify().unwrap();
    assert!(v.is_clean());
    report(
        &format!("verify {name} x{ROUNDS} (warm)"),
        v.ok_bytes,
        &[t.elapsed()],
    );
    store.gc(0).unwrap();
}

fn bench_digest(dir: &Path) {
    let path = dir.join("big.bin");
    let size = 300usize << 20;
    let block: Vec<u8> = (0..1u32 << 20)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    {
        use std::io::Write;
        let mut f = File::create(&path).unwrap();
        for _ in 0..(size >> 20) {
            f.write_all(&block).unwrap();
        }
    }
    // Let the file become older than the racy window so that its memo is trusted.
    std::thread::sleep(Duration::from_millis(2100));
    let memo = dir.join("memo");

    let mut cold = Vec::new();
    let mut warm = Vec::new();
    let mut first = None;
    for _ in 0..ROUNDS {
        evict(&path);
        let fd = FileDigests::in_memory();
        let t = Instant::now();
        let d = fd.digest_file(&path).unwrap();
        cold.push(t.elapsed());
        assert_eq!(*first.get_or_insert(d), d);
        let fd = FileDigests::in_memory();
        let t = Instant::now();
        fd.digest_file(&path).unwrap();
        warm.push(t.elapsed());
    }
    report("digest_file 300 MiB, no memo, evicted", size as u64, &cold);
    report(
        "digest_file 300 MiB, no memo, page cache warm",
        size as u64,
        &warm,
    );

    let fd = FileDigests::new(&memo);
    fd.digest_file(&path).unwrap(); // records the memo
    let n = 10_000;
    let t = Instant::now();
    for _ in 0..n {
        fd.digest_file(&path).unwrap();
    }
    println!(
        "{:<44} {:>8.2} us per call",
        "digest_file memoised (in-process)",
        t.elapsed().as_secs_f64() * 1e6 / n as f64
    );
    let n = 2_000;
    let t = Instant::now();
    for _ in 0..n {
        let fresh = FileDigests::new(&memo);
        assert_eq!(fresh.digest_file(&path).unwrap(), first.unwrap());
    }
    println!(
        "{:<44} {:>8.2} us per call",
        "digest_file memoised (new process: memo file)",
        t.elapsed().as_secs_f64() * 1e6 / n as f64
    );
}

fn main() {
    let base = std::env::var_os("VISTAFLOW_BENCH_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    fs::create_dir_all(&base).unwrap();
    let dir = tempfile::tempdir_in(&base).unwrap();
    let buf = vec![7u8; 256 << 20];
    let t = Instant::now();
    let _ = Digest::of(&buf);
    report(
        "sha256 in memory (reference)",
        buf.len() as u64,
        &[t.elapsed()],
    );
    drop(buf);
    println!("cache store benchmark in {}", dir.path().display());
    let store = Store::open(&dir.path().join("cache")).unwrap();
    bench_volume(&store, "int16 512x512x300", Kind::Int16);
    bench_volume(&store, "float32 512x512x300", Kind::Float);
    bench_digest(dir.path());
}
