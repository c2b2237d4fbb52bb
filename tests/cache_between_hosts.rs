//! One cache shared by two hosts through a real network file system: scripts/gluster-local.sh
//! starts GlusterFS with one brick and two client mounts, `host1/` and `host2/`, the second
//! reaching the server from a network namespace of its own. The kernel sees two separate
//! file systems, so a lock taken through one mount excludes the other only through the
//! server's lock manager, as between two machines of a cluster. Checks what the README
//! promises for such a file system: a node is computed once when both hosts want it, an entry
//! committed on one host is read on the other, and `gc` refuses while the other host runs.

mod common;

use common::gluster::Gluster;
use common::{span_attr, text, trace_spans, vistaflow};
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};
use vistaflow::cache::Store;
use vistaflow::exec::{self, CachePolicy};
use vistaflow::workflow;

/// A running `vistaflow`, its stderr read line by line as it comes.
struct Log {
    child: Child,
    lines: mpsc::Receiver<String>,
    seen: RefCell<Vec<String>>,
}

impl Log {
    fn follow(mut child: Child) -> Log {
        let (tx, lines) = mpsc::channel();
        let err = BufReader::new(child.stderr.take().unwrap());
        std::thread::spawn(move || {
            for l in err.lines().map_while(Result::ok) {
                if tx.send(l).is_err() {
                    break;
                }
            }
        });
        Log {
            child,
            lines,
            seen: RefCell::new(Vec::new()),
        }
    }

    /// Blocks until a line contains `part` (one minute at most).
    fn wait_for(&self, part: &str) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while !self.seen.borrow().iter().any(|l| l.contains(part)) {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(l) => self.seen.borrow_mut().push(l),
                Err(_) => panic!(
                    "no line with {part:?} after a minute:\n{}",
                    self.seen.borrow().join("\n")
                ),
            }
        }
    }

    /// Waits for the exit: success, and stdout with all of stderr.
    fn finish(mut self) -> (bool, String) {
        let ok = self.child.wait().unwrap().success();
        let mut out = String::new();
        let _ = self.child.stdout.take().unwrap().read_to_string(&mut out);
        let mut seen = self.seen.into_inner();
        // The reader thread ends at the child's exit; take the rest of its lines.
        seen.extend(self.lines.iter());
        (ok, format!("{out}{}", seen.join("\n")))
    }
}

/// A 100 MB volume (long enough to load that both runs ask for it at once) and a workflow
/// `hostN.yaml` per host whose cache is that host's mount of the shared folder.
fn workflows(work: &Path, g: &Gluster) {
    common::write_big_nifti(&work.join("big.nii"));
    for n in [1, 2] {
        std::fs::write(
            work.join(format!("host{n}.yaml")),
            format!(
                "version: 1\nsettings: {{ cache: {} }}\nnodes:\n  ct: {{ kind: load_nifti, params: {{ path: big.nii }} }}\n  \
                 out: {{ kind: save_nifti, inputs: {{ image: ct.image }}, params: {{ path: out/host{n}.nii.gz }} }}\n",
                g.host(n).join("cache").display()
            ),
        )
        .unwrap();
    }
}

#[test]
fn two_hosts_share_one_cache_on_a_network_file_system() {
    let tmp = tempfile::tempdir().unwrap();
    let Some(g) = Gluster::start(&tmp.path().join("gluster")) else {
        return;
    };
    let work = tmp.path().join("work");
    std::fs::create_dir(&work).unwrap();
    workflows(&work, &g);

    // `ct`'s compute lock, taken here through host1 (as a run on host1 would): host2 cannot
    // take it, and both runs started meanwhile wait for it.
    let cache1 = g.host(1).join("cache");
    let cache2 = g.host(2).join("cache");
    let held = Store::open(&cache1).unwrap();
    let plan = workflow::load(
        &work.join("host1.yaml"),
        &BTreeMap::new(),
        &common::registry(),
    )
    .unwrap();
    let (keys, _) = exec::plan_decisions(&held, &plan, &CachePolicy::default()).unwrap();
    let ct_key = keys.node[plan.nodes.iter().position(|n| n.id == "ct").unwrap()];
    let lock = held
        .try_compute_lock(&ct_key)
        .unwrap()
        .expect("nobody holds it yet");
    assert!(
        Store::open(&cache2)
            .unwrap()
            .try_compute_lock(&ct_key)
            .unwrap()
            .is_none(),
        "host2 took a lock host1 holds"
    );
    let spawn = |n: u8| {
        Command::new(env!("CARGO_BIN_EXE_vistaflow"))
            .args(["run", &format!("host{n}.yaml")])
            .args(["--trace", &format!("host{n}.jsonl")])
            .current_dir(&work)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let runs = [spawn(1), spawn(2)];
    let logs: Vec<_> = runs.into_iter().map(Log::follow).collect();
    for log in &logs {
        log.wait_for("is computing it; waiting");
    }
    drop(lock);
    for log in logs {
        let (ok, out) = log.finish();
        assert!(ok, "{out}");
    }
    // `ct`'s span on each host: (cache miss or hit, ms waited for the lock).
    let ct = |file: &str| {
        let spans = trace_spans(&work.join(file));
        let s = spans
            .iter()
            .find(|s| span_attr(s, "vistaflow.node.id").as_deref() == Some("ct"))
            .unwrap_or_else(|| panic!("no `ct` span in {file}"));
        // An integer attribute: OTLP JSON writes it as a string.
        let waited: u64 = s["attributes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["key"] == "vistaflow.cache.waited_ms")
            .map_or(0, |a| {
                a["value"]["intValue"].as_str().unwrap().parse().unwrap()
            });
        (span_attr(s, "vistaflow.cache").unwrap(), waited)
    };
    let mut seen = [ct("host1.jsonl"), ct("host2.jsonl")];
    seen.sort();
    // One host computed it once the lock was free; the other waited on until it was
    // stored, then read it (a miss records no wait).
    assert!(
        seen[0].0 == "hit" && seen[0].1 > 0 && seen[1].0 == "miss",
        "`ct` on the two hosts (cache, waited ms): {seen:?}"
    );
    // Both wrote the same image, whichever host computed it.
    assert_eq!(
        std::fs::read(work.join("out/host1.nii.gz")).unwrap(),
        std::fs::read(work.join("out/host2.nii.gz")).unwrap()
    );

    // This process still holds the cache open through host1: host2's maintenance is kept
    // out, and says the holder is not a process it can see.
    let dir2 = cache2.to_str().unwrap();
    let gc = ["cache", "gc", "--dir", dir2, "--max-size", "0"];
    for args in [&gc[..], &["cache", "verify", "--dir", dir2]] {
        let o = vistaflow(args, &work);
        assert!(
            !o.status.success(),
            "{args:?} ran beside a run: {}",
            text(&o)
        );
        assert!(
            text(&o).contains("in use by another run") && text(&o).contains("another host"),
            "{}",
            text(&o)
        );
    }
    drop(held);

    // What one host committed, the other reads whole.
    let o = vistaflow(&["cache", "verify", "--dir", dir2], &work);
    assert!(
        o.status.success() && text(&o).contains("0 corrupt"),
        "{}",
        text(&o)
    );
    let o = vistaflow(&["run", "host2.yaml", "--no-trace"], &work);
    assert!(text(&o).contains("0 ran, 2 cached"), "{}", text(&o));
    // Collected on host2, gone for host1.
    let o = vistaflow(&gc, &work);
    assert!(o.status.success(), "{}", text(&o));
    let o = vistaflow(&["run", "host1.yaml", "--no-trace"], &work);
    assert!(text(&o).contains("2 ran, 0 cached"), "{}", text(&o));
}
