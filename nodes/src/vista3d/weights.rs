//! Loading VISTA3D weights: the MONAI state dict as a `.safetensors` file (the layout of
//! MONAI/VISTA3D-HF), checked key by key and shape by shape against the network, and
//! conversion of the bundle's pickled `model.pt`.

use super::net::{Config, Vista3d};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use tch::{Device, Kind, Tensor};

/// Why weights could not be used.
#[derive(Debug, thiserror::Error)]
pub enum WeightsError {
    #[error("cannot read weights {path}: {msg}")]
    Read { path: PathBuf, msg: String },
    #[error(
        "weights {path} do not fit the {expected} network:\n{details}\n  \
         hint: {hint}"
    )]
    Mismatch {
        path: PathBuf,
        expected: String,
        details: String,
        hint: String,
    },
}

/// Reads every tensor of a safetensors file (on the CPU).
fn read(path: &Path) -> Result<Vec<(String, Tensor)>, WeightsError> {
    let err = |msg: String| WeightsError::Read {
        path: path.to_path_buf(),
        msg,
    };
    let meta = std::fs::metadata(path).map_err(|e| {
        err(format!(
            "{e}; give the path of a .safetensors file (convert the bundle's model.pt with \
             `vistaflow convert-weights model.pt model.safetensors`)"
        ))
    })?;
    if meta.is_dir() {
        return Err(err("it is a folder, not a .safetensors file".into()));
    }
    Tensor::read_safetensors(path).map_err(|e| {
        // Only the first bytes: a zip (torch.save) or a raw pickle; not the whole model again.
        let mut head = [0u8; 4];
        let looks_pickled = std::fs::File::open(path)
            .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut head))
            .map(|_| head.starts_with(b"PK\x03\x04") || head[0] == 0x80)
            .unwrap_or(false);
        if looks_pickled {
            err(
                "this is a pickled PyTorch file, not safetensors; convert it with \
                 `vistaflow convert-weights model.pt model.safetensors`"
                    .into(),
            )
        } else {
            err(format!("not a valid safetensors file ({e})"))
        }
    })
}

/// The configuration a state dict was made for, read off its key names and shapes; `None`
/// when it is not a VISTA3D state dict at all.
pub fn infer_config(shapes: &BTreeMap<String, Vec<i64>>) -> Option<Config> {
    let &[embed, in_channels, ..] = shapes
        .get("image_encoder.encoder.conv_init.weight")?
        .as_slice()
    else {
        return None;
    };
    let mut blocks = Vec::new();
    loop {
        let level = blocks.len();
        let n = (0..)
            .take_while(|b| {
                shapes.contains_key(&format!(
                    "image_encoder.encoder.layers.{level}.blocks.{b}.conv1.weight"
                ))
            })
            .count() as i64;
        if n == 0 {
            break;
        }
        blocks.push(n);
    }
    let classes = shapes
        .get("class_head.class_embeddings.weight")
        .and_then(|s| s.first().copied())
        .unwrap_or(512);
    Some(Config {
        in_channels,
        encoder_embed_dim: embed,
        blocks_down: blocks,
        n_classes: classes,
        ..Config::vista3d132()
    })
}

fn list(items: &[String], what: &str) -> String {
    const SHOWN: usize = 6;
    let mut s = format!("  {} {what}: ", items.len());
    s += &items[..items.len().min(SHOWN)].join(", ");
    if items.len() > SHOWN {
        s += &format!(", ... ({} more)", items.len() - SHOWN);
    }
    s
}

/// Refuses, before allocating the network, a configuration that is not a VISTA3D one or
/// that needs more values than the file holds (half precision is the smallest there is).
fn fits_in_file(
    path: &Path,
    config: &Config,
    tensors: &[(String, Tensor)],
) -> Result<(), WeightsError> {
    let mismatch = |details: String, hint: &str| WeightsError::Mismatch {
        path: path.to_path_buf(),
        expected: config.describe(),
        details,
        hint: hint.to_string(),
    };
    config.check().map_err(|e| {
        mismatch(
            format!("  not a VISTA3D configuration: {e}"),
            "check the model card (NAME.json next to the weights) or the `network` setting",
        )
    })?;
    let held: u64 = tensors.iter().map(|(_, t)| t.numel() as u64).sum();
    let needed = config.min_parameters();
    // Up to this many values (1.6 GB as float32; the published network has 218 M) the
    // network is built and compared key by key, which names what differs; beyond, only a
    // file that holds them may make us allocate them.
    const BUILT_UNBACKED: u64 = 400_000_000;
    if held < needed && needed > BUILT_UNBACKED {
        return Err(mismatch(
            format!("  the file holds {held} values; this network has at least {needed}"),
            "the file is incomplete, or the model card or `network` setting names a larger \
             network than the weights",
        ));
    }
    Ok(())
}

/// Builds the network for `config` on `device` and fills it from the safetensors file at
/// `path`; every key of the network must be in the file with its exact shape, and the file
/// must hold nothing else.
pub fn load(path: &Path, config: &Config, device: Device) -> Result<Vista3d, WeightsError> {
    let tensors = read(path)?;
    fits_in_file(path, config, &tensors)?;
    let net = Vista3d::zeros(config, device);
    let vars = net.vs.variables();
    let file: BTreeMap<String, Vec<i64>> =
        tensors.iter().map(|(k, t)| (k.clone(), t.size())).collect();

    let missing: Vec<String> = vars
        .keys()
        .filter(|k| !file.contains_key(*k))
        .cloned()
        .collect();
    let unexpected: Vec<String> = file
        .keys()
        .filter(|k| !vars.contains_key(*k))
        .cloned()
        .collect();
    let misshaped: Vec<String> = vars
        .iter()
        .filter_map(|(k, v)| {
            let f = file.get(k)?;
            (*f != v.size()).then(|| format!("{k} is {f:?} in the file, {:?} here", v.size()))
        })
        .collect();
    if !(missing.is_empty() && unexpected.is_empty() && misshaped.is_empty()) {
        let mut details = Vec::new();
        for (items, what) in [
            (&missing, "missing from the file"),
            (&unexpected, "unexpected in the file"),
            (&misshaped, "with another shape"),
        ] {
            if !items.is_empty() {
                details.push(list(items, what));
            }
        }
        let hint = match infer_config(&file) {
            None => "this file does not hold a VISTA3D state dict (no \
                     image_encoder.encoder.conv_init.weight)"
                .to_string(),
            Some(found) if found != *config => format!(
                "the file holds a VISTA3D network with {} filters and blocks {:?}; use the \
                 matching `network` setting, or the weights made for {}",
                found.encoder_embed_dim,
                found.blocks_down,
                config.describe()
            ),
            Some(_) => "the file looks like this network but is incomplete or altered; \
                        download or convert it again"
                .to_string(),
        };
        return Err(WeightsError::Mismatch {
            path: path.to_path_buf(),
            expected: config.describe(),
            details: details.join("\n"),
            hint,
        });
    }
    let _guard = tch::no_grad_guard();
    for (k, t) in tensors {
        let mut v = vars[&k].shallow_clone();
        v.copy_(&t.to_kind(Kind::Float));
    }
    Ok(net)
}

/// The Python program `convert_pickle` falls back on: `torch.load` (weights only) then
/// `safetensors.torch.save_file`. Documented in the README for users who prefer to run it.
pub const PYTHON_CONVERTER: &str = "import sys, torch; from safetensors.torch import save_file; \
sd = torch.load(sys.argv[1], map_location='cpu', weights_only=True); \
sd = sd.get('model', sd.get('state_dict', sd)); \
save_file({k: v.contiguous() for k, v in sd.items()}, sys.argv[2])";

/// Converts a pickled PyTorch state dict (the bundle's `model.pt`, written by `torch.save`)
/// into a safetensors file; a dict wrapping the state dict under `model` or `state_dict` is
/// unwrapped. libtorch's own unpickler reads plain dicts but not the `OrderedDict` that
/// `torch.save(model.state_dict())` writes; for those, `python` (with torch and safetensors)
/// runs [`PYTHON_CONVERTER`]. Returns the number of tensors written.
pub fn convert_pickle(src: &Path, dst: &Path, python: &Path) -> Result<usize, WeightsError> {
    let read_err = |msg: String| WeightsError::Read {
        path: src.to_path_buf(),
        msg,
    };
    if !src.is_file() {
        return Err(read_err("no such file".into()));
    }
    let named = match Tensor::loadz_multi(src) {
        Ok(tensors) => unwrap_prefix(tensors),
        Err(_) => via_python(src, python)?,
    };
    let shapes = named.iter().map(|(k, t)| (k.clone(), t.size())).collect();
    if infer_config(&shapes).is_none() {
        return Err(read_err(
            "it holds tensors but no VISTA3D state dict \
             (no image_encoder.encoder.conv_init.weight)"
                .into(),
        ));
    }
    write_atomically(dst, &named).map_err(|msg| WeightsError::Read {
        path: dst.to_path_buf(),
        msg: format!("cannot write: {msg}"),
    })?;
    Ok(named.len())
}

/// `model.x` / `state_dict.x` / `module.x` keys (a wrapped or DataParallel state dict) lose
/// their common prefix.
fn unwrap_prefix(tensors: Vec<(String, Tensor)>) -> Vec<(String, Tensor)> {
    let keys: BTreeSet<&str> = tensors.iter().map(|(k, _)| k.as_str()).collect();
    let strip = ["model.", "state_dict.", "module."]
        .into_iter()
        .find(|p| !keys.is_empty() && keys.iter().all(|k| k.starts_with(p)));
    tensors
        .into_iter()
        .map(|(k, t)| {
            let k = strip.map_or(k.clone(), |p| k[p.len()..].to_string());
            (k, t.contiguous())
        })
        .collect()
}

/// Runs [`PYTHON_CONVERTER`] into a temporary file and reads it back.
fn via_python(src: &Path, python: &Path) -> Result<Vec<(String, Tensor)>, WeightsError> {
    let err = |msg: String| WeightsError::Read {
        path: src.to_path_buf(),
        msg,
    };
    let tmp = tempfile::Builder::new()
        .suffix(".safetensors")
        .tempfile()
        .map_err(|e| err(format!("cannot create a temporary file: {e}")))?;
    let out = std::process::Command::new(python)
        .arg("-c")
        .arg(PYTHON_CONVERTER)
        .arg(src)
        .arg(tmp.path())
        .output()
        .map_err(|e| {
            err(format!(
                "libtorch cannot read this pickle (an OrderedDict) and `{}` could not be run \
                 ({e}); install Python with torch and safetensors, or set VISTAFLOW_PYTHON",
                python.display()
            ))
        })?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        let last = stderr
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("");
        return Err(err(format!(
            "libtorch cannot read this pickle and the Python converter failed: {last}\n  \
             hint: it needs torch and safetensors (`pip install torch safetensors`); \
             set VISTAFLOW_PYTHON to an interpreter that has them"
        )));
    }
    Tensor::read_safetensors(tmp.path())
        .map(unwrap_prefix)
        .map_err(|e| {
            err(format!(
                "the Python converter wrote an unreadable file: {e}"
            ))
        })
}

/// tch writes safetensors only to a path: write a temporary file beside `dst`, fsync it and
/// rename it into place, so an interrupted conversion never leaves a truncated model.
fn write_atomically(dst: &Path, named: &[(String, Tensor)]) -> Result<(), String> {
    let dir = match dst.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
    let tmp = tempfile::Builder::new()
        .prefix(".convert-weights.")
        .suffix(".partial")
        .tempfile_in(dir)
        .map_err(|e| e.to_string())?;
    Tensor::write_safetensors(named, tmp.path()).map_err(|e| e.to_string())?;
    std::fs::File::open(tmp.path())
        .and_then(|f| f.sync_all())
        .map_err(|e| e.to_string())?;
    tmp.persist(dst).map_err(|e| e.error.to_string())?;
    Ok(())
}
