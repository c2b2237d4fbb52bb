//! scripts/gluster-local.sh from a test: a real GlusterFS volume with two client mounts,
//! `host1/` and `host2/` (the second from a network namespace of its own).

use std::path::{Path, PathBuf};
use std::process::Command;

/// The volume and its two mounts, stopped on drop.
pub struct Gluster {
    dir: PathBuf,
}

impl Gluster {
    /// Starts it in `dir`; `None` (with a message) where it cannot run: not root, no
    /// `/dev/fuse` or no glusterfs-server. Under CI those are failures.
    pub fn start(dir: &Path) -> Option<Gluster> {
        let root = super::is_root();
        let have = Path::new("/usr/sbin/glusterd").exists();
        let fuse = Path::new("/dev/fuse").exists();
        if !(root && have && fuse) {
            assert!(
                std::env::var_os("CI").is_none(),
                "CI: a GlusterFS volume needs root ({root}), /dev/fuse ({fuse}) and \
                 glusterfs-server ({have}; scripts/fetch-data.sh installs it)"
            );
            eprintln!(
                "no GlusterFS volume: needs root, /dev/fuse and glusterfs-server (scripts/fetch-data.sh)"
            );
            return None;
        }
        let out = Command::new(Self::script())
            .arg("start")
            .arg(dir)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "gluster-local.sh start: {}",
            super::text(&out)
        );
        Some(Gluster {
            dir: dir.to_path_buf(),
        })
    }

    fn script() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/gluster-local.sh")
    }

    /// Client mount `n` (1 or 2) of the volume.
    pub fn host(&self, n: u8) -> PathBuf {
        self.dir.join(format!("host{n}"))
    }
}

impl Drop for Gluster {
    fn drop(&mut self) {
        let _ = Command::new(Self::script())
            .arg("stop")
            .arg(&self.dir)
            .output();
    }
}
