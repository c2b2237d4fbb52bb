#![no_main]
//! A cache entry as another process (or a damaged disk) may leave it: the JSON sidecar, then
//! after the separator `\n--data--\n` the safetensors data file. When the first byte is odd
//! and the sidecar is a JSON object, its `id`, `bytes` and `sha256` are made to match, so
//! that the fuzzer gets past the checksum to the header and value decoding. The entry is read
//! as every port type, as a sink record, and by `cache verify`.
use libfuzzer_sys::fuzz_target;
use sha2::{Digest as _, Sha256};
use std::sync::OnceLock;
use vistaflow::cache::Store;
use vistaflow::hash::Digest;
use vistaflow_fuzz::{scratch, split_at_marker};
use vistaflow_nodes::PortType;

fn store() -> &'static Store {
    static S: OnceLock<Store> = OnceLock::new();
    S.get_or_init(|| Store::open(&scratch().join("cache")).expect("scratch cache"))
}

fuzz_target!(|data: &[u8]| {
    vistaflow_fuzz::init();
    let fix = data.first().is_some_and(|b| b & 1 == 1);
    let (sidecar, payload) = split_at_marker(data.get(1..).unwrap_or_default(), b"\n--data--\n");
    let payload = payload.unwrap_or_default();
    let id = Digest::of(b"fuzzed entry");
    let mut sidecar = sidecar.to_vec();
    if fix {
        if let Ok(serde_json::Value::Object(mut m)) = serde_json::from_slice(&sidecar) {
            m.insert("id".into(), id.hex().into());
            m.insert("bytes".into(), (payload.len() as u64).into());
            m.insert("sha256".into(), hex(&Sha256::digest(payload)).into());
            sidecar = serde_json::to_vec(&m).unwrap();
        }
    }
    let hexid = id.hex();
    let shard = store().root().join("objects").join(&hexid[..2]);
    let records = store().root().join("records").join(&hexid[..2]);
    std::fs::create_dir_all(&shard).unwrap();
    std::fs::create_dir_all(&records).unwrap();
    let write = || {
        std::fs::write(shard.join(format!("{hexid}.json")), &sidecar).unwrap();
        std::fs::write(shard.join(format!("{hexid}.safetensors")), payload).unwrap();
    };
    for ty in [
        PortType::Image,
        PortType::Labels,
        PortType::Table,
        PortType::Model,
    ] {
        write(); // a corrupt entry is removed by the read before
        let _ = store().get(&id, ty);
    }
    write();
    let _ = store().verify();
    std::fs::write(records.join(format!("{hexid}.json")), &sidecar).unwrap();
    let _ = store().get_record(&id);
});

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
