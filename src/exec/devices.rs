//! Devices: what `auto|cpu|cuda|cuda:N` mean on this machine, and one slot per GPU so that
//! two heavy nodes never share a GPU's memory by accident.

use crate::workflow::DeviceSpec;
use std::sync::Arc;
use tch::Device;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// The CUDA devices of this process and a concurrency limit on each; in a cohort, also a
/// limit on heavy nodes on the CPU (as many as the threads were split for: more would only
/// thrash the caches and multiply the memory).
pub struct Devices {
    gpus: Vec<Arc<Semaphore>>,
    cpu_heavy: Option<Arc<Semaphore>>,
}

/// A device held for one node run; the GPU slot is released on drop.
pub struct Lease {
    pub device: Device,
    _permit: Option<OwnedSemaphorePermit>,
}

#[derive(Debug, thiserror::Error)]
pub enum DeviceError {
    #[error("device `{0}` asked for, but no CUDA device is available (libtorch sees none)")]
    NoCuda(DeviceSpec),
    #[error("device `cuda:{0}` asked for, but this machine has {1} CUDA device(s)")]
    NoSuchGpu(usize, usize),
}

impl Devices {
    /// Probes CUDA once. `slots_per_gpu` nodes may hold one GPU at a time (default 1).
    pub fn probe(slots_per_gpu: usize) -> Devices {
        load_cuda_backend();
        let n = if tch::Cuda::is_available() {
            tch::Cuda::device_count().max(0) as usize
        } else {
            0
        };
        Devices {
            gpus: (0..n)
                .map(|_| Arc::new(Semaphore::new(slots_per_gpu.max(1))))
                .collect(),
            cpu_heavy: None,
        }
    }

    /// Lets `n` heavy nodes run on the CPU at once (a cohort's subjects, each given
    /// cores / n of libtorch's threads).
    /// The same GPUs and slots (no second CUDA probe).
    pub fn with_cpu_heavy_slots(&self, n: usize) -> Devices {
        Devices {
            gpus: self.gpus.clone(),
            cpu_heavy: Some(Arc::new(Semaphore::new(n.max(1)))),
        }
    }

    /// A machine with no GPU (tests, `--device cpu`).
    pub fn cpu_only() -> Devices {
        Devices {
            gpus: vec![],
            cpu_heavy: None,
        }
    }

    pub fn gpu_count(&self) -> usize {
        self.gpus.len()
    }

    /// Checks a spec against this machine before a run starts.
    pub fn check(&self, spec: DeviceSpec) -> Result<(), DeviceError> {
        match spec {
            DeviceSpec::Cuda(_) if self.gpus.is_empty() => Err(DeviceError::NoCuda(spec)),
            DeviceSpec::Cuda(Some(n)) if n >= self.gpus.len() => {
                Err(DeviceError::NoSuchGpu(n, self.gpus.len()))
            }
            _ => Ok(()),
        }
    }

    /// Waits for a device. `auto` and `cuda` take the GPU with a free slot (the least busy),
    /// `auto` falls back to the CPU when there is no GPU at all. A `heavy` node that lands
    /// on the CPU waits for a CPU heavy slot when there are such slots (a cohort).
    pub async fn acquire(&self, spec: DeviceSpec, heavy: bool) -> Result<Lease, DeviceError> {
        self.check(spec)?;
        let index = match spec {
            DeviceSpec::Cpu => return Ok(self.cpu(heavy).await),
            DeviceSpec::Auto if self.gpus.is_empty() => return Ok(self.cpu(heavy).await),
            DeviceSpec::Cuda(Some(n)) => n,
            DeviceSpec::Auto | DeviceSpec::Cuda(None) => (0..self.gpus.len())
                .max_by_key(|&i| self.gpus[i].available_permits())
                .unwrap_or(0),
        };
        let permit = self.gpus[index]
            .clone()
            .acquire_owned()
            .await
            .expect("device semaphores are never closed");
        Ok(Lease {
            device: Device::Cuda(index),
            _permit: Some(permit),
        })
    }
}

impl Devices {
    async fn cpu(&self, heavy: bool) -> Lease {
        let permit = match (&self.cpu_heavy, heavy) {
            (Some(slots), true) => Some(
                slots
                    .clone()
                    .acquire_owned()
                    .await
                    .expect("device semaphores are never closed"),
            ),
            _ => None,
        };
        Lease {
            device: Device::Cpu,
            _permit: permit,
        }
    }
}

/// libtorch registers its CUDA backend only when libtorch_cuda.so is loaded; the linker drops
/// it as unused (tch issue 980), so load it by hand, from the folder of the libtorch_cpu.so this
/// process actually loaded (a binary built here may run against another install's libtorch via
/// LD_LIBRARY_PATH, scripts/build-for-device.sh), else from the folder it was built against.
/// On a CPU-only install it is absent or lacks its CUDA libraries: then nothing happens.
fn load_cuda_backend() {
    let built = option_env!("VISTAFLOW_LIBTORCH_LIB").map(std::path::PathBuf::from);
    for dir in loaded_libtorch_dir().into_iter().chain(built) {
        let path = dir.join("libtorch_cuda.so");
        if !path.exists() {
            continue;
        }
        let Ok(c) = std::ffi::CString::new(path.to_string_lossy().as_bytes()) else {
            continue;
        };
        // SAFETY: dlopen with a valid C string; the handle is deliberately never closed.
        let handle = unsafe { libc::dlopen(c.as_ptr(), libc::RTLD_NOW | libc::RTLD_GLOBAL) };
        if !handle.is_null() {
            return;
        }
    }
}

/// The folder of the libtorch_cpu.so mapped into this process (from /proc/self/maps).
fn loaded_libtorch_dir() -> Option<std::path::PathBuf> {
    let maps = std::fs::read_to_string("/proc/self/maps").ok()?;
    maps.lines()
        .filter_map(|l| l.split_whitespace().nth(5))
        .find(|p| p.ends_with("/libtorch_cpu.so"))
        .and_then(|p| std::path::Path::new(p).parent().map(|d| d.to_path_buf()))
}
