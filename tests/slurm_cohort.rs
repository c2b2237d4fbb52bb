//! A cohort through real Slurm: scripts/slurm-local.sh starts munged, slurmctld and two
//! slurmd in a temp folder, node n1 on this host and n2 in a network namespace of its own (one
//! node where that cannot be: not root); `vistaflow cohort submit --slurm` sends a job array
//! of 3 tasks over 15 subjects (3 of them bad) and a gather job; the tasks run on both nodes;
//! the gathered tables must equal a single-process `--cohort` run's byte for byte; `cohort
//! resume` then resubmits only the subjects that are not done. As root, the cohort, its
//! results and its cache are on a real network file system (scripts/gluster-local.sh): n1
//! reaches them through one GlusterFS client and n2 through another, mounted at the same
//! path in n2's own mount namespace, so the cache is shared between hosts as on a cluster.

mod common;

use common::gluster::Gluster;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// The local cluster, stopped on drop.
struct Cluster {
    dir: PathBuf,
    conf: PathBuf,
    nodes: usize,
}

impl Cluster {
    /// `n2_mount`: (SRC, DST) mounted for n2 only (SLURM_LOCAL_N2_MOUNT).
    fn start(dir: &Path, n2_mount: Option<(&Path, &Path)>) -> Option<Cluster> {
        let have = |t: &str| {
            ["/usr/sbin", "/usr/bin", "/sbin", "/bin"]
                .iter()
                .any(|d| Path::new(d).join(t).exists())
        };
        if !have("slurmctld") || !have("munged") {
            assert!(
                std::env::var_os("CI").is_none(),
                "CI: slurm-wlm and munge are missing (scripts/fetch-data.sh installs them)"
            );
            eprintln!("skipped: slurm-wlm/munge not installed (scripts/fetch-data.sh)");
            return None;
        }
        // Two nodes need root (a network namespace for the second one).
        let root = common::is_root();
        assert!(
            root || std::env::var_os("CI").is_none(),
            "CI: the two-node Slurm test needs root"
        );
        let nodes = if root { 2 } else { 1 };
        if !root {
            eprintln!("one Slurm node only: a second one needs root (a network namespace)");
        }
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/slurm-local.sh");
        let mut cmd = Command::new(&script);
        cmd.arg("start").arg(dir).arg(nodes.to_string());
        if let Some((src, dst)) = n2_mount {
            cmd.env(
                "SLURM_LOCAL_N2_MOUNT",
                format!("{}:{}", src.display(), dst.display()),
            );
        }
        let out = cmd.output().unwrap();
        assert!(
            out.status.success(),
            "slurm-local.sh start: {}",
            common::text(&out)
        );
        Some(Cluster {
            dir: dir.to_path_buf(),
            conf: dir.join("slurm.conf"),
            nodes,
        })
    }

    fn vistaflow(&self, args: &[&str], cwd: &Path) -> (Option<i32>, String) {
        let out = Command::new(env!("CARGO_BIN_EXE_vistaflow"))
            .args(args)
            .current_dir(cwd)
            .env("SLURM_CONF", &self.conf)
            .output()
            .unwrap();
        (out.status.code(), common::text(&out))
    }

    /// Waits until `cohort status` says submission `k`'s gather job has finished.
    fn wait_gathered(&self, results: &Path, k: usize) -> String {
        let start = Instant::now();
        loop {
            let (code, text) =
                self.vistaflow(&["cohort", "status", results.to_str().unwrap()], results);
            assert_eq!(code, Some(0), "{text}");
            let line = text
                .lines()
                .find(|l| l.contains(&format!("submission {k}:")))
                .unwrap_or("")
                .to_string();
            // "submission K: array A (finished), gather G (finished)"
            if line.matches("(finished)").count() == 2 {
                return text;
            }
            assert!(
                start.elapsed() < Duration::from_secs(180),
                "submission {k} not gathered after 3 min:\n{text}\n{}",
                std::fs::read_to_string(self.dir.join("slurmctld.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(500));
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/slurm-local.sh");
        let _ = Command::new(script).arg("stop").arg(&self.dir).output();
    }
}

/// major:minor of the file system mounted last at `at`, from a mountinfo file.
fn mount_device(mountinfo: &str, at: &Path) -> String {
    let at = at.to_str().unwrap();
    read(PathBuf::from(mountinfo))
        .lines()
        .rfind(|l| l.split(' ').nth(4) == Some(at))
        .unwrap_or_else(|| panic!("nothing mounted at {at} in {mountinfo}"))
        .split(' ')
        .nth(2)
        .unwrap()
        .to_string()
}

fn read(p: PathBuf) -> String {
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

#[test]
fn a_slurm_array_gathers_what_one_process_computes_and_resume_runs_only_what_is_missing() {
    let tmp = tempfile::tempdir().unwrap();
    if common::data_dir().is_none() {
        return;
    }
    // Declared before the cluster, so stopped after it (n2's slurmd holds a mount of it).
    let gluster = Gluster::start(&tmp.path().join("gluster"));
    let shared = gluster
        .as_ref()
        .map_or(tmp.path().to_path_buf(), |g| g.host(1));
    let work = shared.join("work");
    std::fs::create_dir(&work).unwrap();
    if common::make_cohort(&work).is_none() {
        return;
    }
    let host2 = gluster.as_ref().map(|g| g.host(2));
    let n2_mount = host2.as_deref().map(|h2| (h2, shared.as_path()));
    let Some(cluster) = Cluster::start(&tmp.path().join("slurm"), n2_mount) else {
        return;
    };
    if let Some(h2) = &host2 {
        // n2 sees the shared folder through the second client: another device there.
        let pid = read(cluster.dir.join("slurmd-n2.pid"));
        let n2 = mount_device(&format!("/proc/{}/mountinfo", pid.trim()), &shared);
        let n1 = mount_device("/proc/self/mountinfo", &shared);
        let client2 = mount_device("/proc/self/mountinfo", h2);
        assert!(
            n2 == client2 && n2 != n1,
            "n1 {n1}, n2 {n2}, host2 {client2}"
        );
    }

    let (code, text) = cluster.vistaflow(
        &[
            "cohort",
            "submit",
            "w.yaml",
            "--slurm",
            "--cohort",
            "cohort/subjects-with-bad.csv",
            "--results",
            "res",
            "--tasks",
            "3",
            "--array-max",
            "2",
        ],
        &work,
    );
    assert_eq!(code, Some(0), "{text}");
    common::assert_has(&text, &["(15 subjects in 3 tasks)", "gather job"]);
    let res = work.join("res");
    let status = cluster.wait_gathered(&res, 0);
    common::assert_has(
        &status,
        &[
            "15 subjects: 12 done, 3 failed, 0 pending",
            "bad-missing: invalid on ",
            "bad-corrupt: failed on ",
            "bad-labels: failed on ",
            "ran on: ",
        ],
    );
    // Three array tasks each ran their shard (5 subjects each, round robin).
    let logs = res.join("slurm/logs");
    let tasks: Vec<String> = std::fs::read_dir(&logs)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .filter(|n| !n.starts_with("gather"))
        .collect();
    assert_eq!(tasks.len(), 3, "{tasks:?}");
    for t in &tasks {
        common::assert_has(&read(logs.join(t)), &["5 subject(s):", "5 subjects,"]);
    }
    // Each node has one core, so tasks 0 and 1 start at once on n1 and n2; every record
    // says where it ran.
    let hosts: std::collections::BTreeSet<String> = (1..=12)
        .map(|i| {
            let r: serde_json::Value =
                serde_json::from_str(&read(res.join(format!("subjects/s{i:02}.json")))).unwrap();
            r["host"]
                .as_str()
                .expect("a host in the record")
                .to_string()
        })
        .collect();
    if cluster.nodes == 2 {
        // `cohort status` counts them per node
        // ("ran on: n1: 7 done, 1 not done; n2: 5 done, 2 not done").
        let ran_on = status.lines().find(|l| l.contains("ran on:")).unwrap();
        let per_node: Vec<(String, usize, usize)> = ran_on
            .split_once("ran on: ")
            .unwrap()
            .1
            .split("; ")
            .map(|p| {
                let w: Vec<&str> = p.split([' ', ',', ':']).filter(|w| !w.is_empty()).collect();
                (
                    w[0].to_string(),
                    w[1].parse().unwrap(),
                    w[3].parse().unwrap(),
                )
            })
            .collect();
        assert_eq!(
            per_node.iter().map(|p| p.0.as_str()).collect::<Vec<_>>(),
            ["n1", "n2"],
            "{ran_on}"
        );
        assert_eq!(per_node.iter().map(|p| p.1).sum::<usize>(), 12, "{ran_on}");
        assert_eq!(per_node.iter().map(|p| p.2).sum::<usize>(), 3, "{ran_on}");
        assert_eq!(
            hosts.into_iter().collect::<Vec<_>>(),
            ["n1", "n2"],
            "the array's tasks did not run on both nodes"
        );
    }

    // The same cohort in one process, in a cache of its own: the same bytes.
    let single = tmp.path().join("single");
    std::fs::create_dir(&single).unwrap();
    std::fs::write(single.join("w.yaml"), common::COHORT_WORKFLOW).unwrap();
    let manifest = work.join("cohort/subjects-with-bad.csv");
    let (code, text) = cluster.vistaflow(
        &[
            "run",
            "w.yaml",
            "-q",
            "--no-trace",
            "--cohort",
            manifest.to_str().unwrap(),
            "--results",
            "r",
        ],
        &single,
    );
    assert_eq!(code, Some(1), "{text}");
    for f in ["metrics_long.csv", "summary.csv", "summary.md"] {
        assert_eq!(
            read(res.join(f)),
            read(single.join("r").join(f)),
            "{f} differs"
        );
    }
    assert_eq!(
        read(res.join("metrics_long.csv")).lines().count(),
        1 + 12 * 5 * 4
    );

    // Resume after the corrupt CT is replaced: only the 3 subjects not done go again; the
    // good ones' records are untouched.
    let record = res.join("subjects/s01.json");
    let before = std::fs::metadata(&record).unwrap().modified().unwrap();
    std::fs::copy(
        work.join("cohort/s05/ct.nii.gz"),
        work.join("cohort/bad-corrupt/ct.nii.gz"),
    )
    .unwrap();
    let (code, text) = cluster.vistaflow(&["cohort", "resume", "res"], &work);
    assert_eq!(code, Some(0), "{text}");
    common::assert_has(&text, &["(3 subjects in 3 tasks)"]);
    let status = cluster.wait_gathered(&res, 1);
    common::assert_has(&status, &["15 subjects: 13 done, 2 failed, 0 pending"]);
    assert_eq!(
        std::fs::metadata(&record).unwrap().modified().unwrap(),
        before
    );
    let state: serde_json::Value =
        serde_json::from_str(&read(res.join("slurm/cohort.json"))).unwrap();
    assert_eq!(
        state["submissions"][1]["subjects"],
        serde_json::json!(["bad-missing", "bad-corrupt", "bad-labels"])
    );
    assert_eq!(
        read(res.join("metrics_long.csv")).lines().count(),
        1 + 13 * 5 * 4
    );
}
