#!/usr/bin/env bash
# Installs the libtorch that tch 0.26 links against (PyTorch 2.13.0), once per machine.
# Idempotent: a finished install is marked by a stamp file and never downloaded again.
# Prints the libtorch directory (the value for LIBTORCH) on its last line.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TORCH_VERSION=2.13.0
ROOT="${VISTAFLOW_LIBTORCH_HOME:-$HOME/.cache/vistaflow/libtorch-$TORCH_VERSION}"
STAMP="$ROOT/.complete"

# .cargo/config.toml points LIBTORCH at the checkout's .libtorch link.
link() { ln -sfn "$ROOT/torch" "$REPO/.libtorch"; echo "$ROOT/torch"; }

if [ -f "$STAMP" ]; then
  link
  exit 0
fi

PY="${PYTHON:-python3}"
pkgs=("torch==$TORCH_VERSION" "nvidia-cuda-runtime==13.0.96" "nvidia-cuda-cupti==13.0.85")
if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
  # A GPU machine needs the full CUDA wheels that torch depends on.
  echo "setup-libtorch: GPU found, installing torch $TORCH_VERSION with its CUDA dependencies" >&2
  tmp="$ROOT.partial"
  rm -rf "$tmp"
  "$PY" -m pip install --quiet --target "$tmp" "torch==$TORCH_VERSION" >&2
else
  echo "setup-libtorch: installing CPU-capable libtorch $TORCH_VERSION into $ROOT (about 540 MB, once)" >&2
  tmp="$ROOT.partial"
  rm -rf "$tmp"
  "$PY" -m pip install --quiet --no-deps --target "$tmp" "${pkgs[@]}" >&2
fi
# Rename only when complete, so a killed download never looks installed.
rm -rf "$ROOT"
mv "$tmp" "$ROOT"
touch "$STAMP"
link
