#!/usr/bin/env bash
# Builds vistaflow here for a GPU machine that has PyTorch but no Rust and no network (the
# project's device machine: torch 2.11 + CUDA 13 under /opt/torch/.venv), into .device/ (git-
# ignored, carried with a device call; scripts/gpu-check.sh runs it there).
#
# How: tch 0.26 expects libtorch 2.13, and a C++ binary must be built against the libtorch it
# runs with. So the build uses PyTorch DEVICE_TORCH_VERSION's own headers and libraries (the
# PyPI wheel, which is the CUDA build: the same files as the machine's torch), with
# LIBTORCH_BYPASS_VERSION_CHECK, a copy of torch-sys whose C wrapper has the operators that the
# older libtorch lacks stubbed out (scripts/device/stub_missing_ops.py; vistaflow uses none of
# them), and libtorch_cuda.so hidden from the link: the engine loads it at start-up from the
# folder of the libtorch_cpu.so it runs with (src/exec/devices.rs). There, gpu-check.sh puts
# the machine's torch/lib on LD_LIBRARY_PATH. The binaries are stripped to fit a call's 64 MiB.
# Also puts the pure-Python wheels the check needs there (MONAI, nibabel) into .device/whl.
#
# Usage: scripts/build-for-device.sh     (about 6 min the first time on 2 cores; 2 GB of cache)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
V="${DEVICE_TORCH_VERSION:-2.11.0}"
CACHE="${VISTAFLOW_DEVICE_HOME:-$HOME/.cache/vistaflow/device-$V}"
DEST="$ROOT/.device"
PY="${PYTHON:-python3}"
say() { echo "build-for-device: $*" >&2; }
mkdir -p "$CACHE"

# 1. libtorch $V: headers and the CPU-side libraries of the wheel (libtorch_cuda.so left out).
LT="$CACHE/libtorch"
if [ ! -f "$LT/.complete" ]; then
  say "downloading torch $V (the wheel, about 530 MB, once)"
  rm -rf "$CACHE/wheel" "$LT"
  "$PY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 -d "$CACHE/wheel" "torch==$V"
  mkdir -p "$LT.partial"
  unzip -q -o "$CACHE"/wheel/torch-*.whl 'torch/include/*' 'torch/lib/libc10.so' \
    'torch/lib/libtorch_cpu.so' 'torch/lib/libtorch.so' 'torch/lib/libgomp.so*' 'torch/version.py' \
    -d "$LT.partial"
  mv "$LT.partial/torch" "$LT" && rm -rf "$LT.partial" "$CACHE/wheel"
  touch "$LT/.complete"
fi

# 2. A copy of the workspace (its working-tree files) that patches torch-sys with the copy in 3.
SRC="$CACHE/src"
rm -rf "$SRC" && mkdir -p "$SRC"
(cd "$ROOT" && git ls-files -z --cached --others --exclude-standard | xargs -0 cp --parents -t "$SRC" 2>/dev/null || true)
rm -rf "$SRC/.cargo"
TS_REG="$(ls -d "${CARGO_HOME:-$HOME/.cargo}"/registry/src/*/torch-sys-0.26.0 | head -1)"
TS="$CACHE/torch-sys"
if [ ! -f "$TS/.stubbed" ]; then
  rm -rf "$TS" && cp -r "$TS_REG" "$TS"
fi
printf '\n[patch.crates-io]\ntorch-sys = { path = "%s" }\n' "$TS" >> "$SRC/Cargo.toml"

export LIBTORCH="$LT" LIBTORCH_BYPASS_VERSION_CHECK=1 CARGO_TARGET_DIR="$ROOT/target/device"
# libtorch_cpu.so needs CUDA's runtime libraries, which only the device machine has.
export RUSTFLAGS="-C link-arg=-Wl,--allow-shlib-undefined"

# 3. torch-sys against libtorch $V: stub what fails to compile, at most three rounds.
if [ ! -f "$TS/.stubbed" ]; then
  for round in 1 2 3; do
    if (cd "$SRC" && cargo build --release -p torch-sys) > "$CACHE/torch-sys.log" 2>&1; then
      touch "$TS/.stubbed"; break
    fi
    n=$("$PY" "$ROOT/scripts/device/stub_missing_ops.py" "$TS/libtch/torch_api_generated.cpp" "$CACHE/torch-sys.log")
    say "round $round: stubbed $n wrapper functions that libtorch $V lacks"
    [ "$n" -gt 0 ] || { tail -30 "$CACHE/torch-sys.log" >&2; exit 1; }
  done
  [ -f "$TS/.stubbed" ] || { say "torch-sys still fails, see $CACHE/torch-sys.log"; exit 1; }
fi

# 4. The binaries, stripped.
say "building vistaflow and the vista3d_forward example against libtorch $V"
(cd "$SRC" && cargo build --release --bin vistaflow --example vista3d_forward)
mkdir -p "$DEST/bin" "$DEST/whl"
strip -o "$DEST/bin/vistaflow" "$CARGO_TARGET_DIR/release/vistaflow"
strip -o "$DEST/bin/vista3d_forward" "$CARGO_TARGET_DIR/release/examples/vista3d_forward"

# 5. The Python packages gpu-check.sh needs beyond the machine's own (pure Python wheels).
"$PY" -m pip download -q --no-deps --only-binary=:all: -d "$DEST/whl" monai==1.6.1 nibabel==5.3.2
echo "$V" > "$DEST/torch-version"
say "done: $(du -sh "$DEST" | cut -f1) in $DEST ($(readelf -d "$DEST/bin/vistaflow" | grep -c NEEDED) shared libraries needed)"
