#!/usr/bin/env bash
# Creates (once) the Python virtual environment that holds the test oracles (nibabel, MONAI, ...).
# These are independent tools the tests compare against, never dependencies of the product.
#
#   VISTAFLOW_VENV   where the venv lives (default: ~/.cache/vistaflow/venv)
#   PYTHON           the interpreter that creates it (default: python3)
#
# Idempotent: packages are installed only when the pinned list changed since the last run
# (a stamp file inside the venv holds the list). Prints the venv's python on its last line;
# tests find it through VISTAFLOW_PYTHON or the default location.
set -euo pipefail

VENV="${VISTAFLOW_VENV:-$HOME/.cache/vistaflow/venv}"
PY="${PYTHON:-python3}"

# One pinned requirement per line; add more here (monai, SimpleITK, ...) as oracles need them.
PACKAGES=(
  "numpy==2.2.6"
  "nibabel==5.3.2"
  "pynrrd==1.1.3"  # NRRD oracle (scripts/oracles/nrrd_*.py)
  "SimpleITK==2.5.7"  # NRRD oracle: ITK's reader/writer
  "pydicom==3.0.2"  # DICOM oracle (scripts/oracles/dicom_*.py)
  # VISTA3D oracle (scripts/oracles/vista3d_*.py): MONAI's own network, sliding window and
  # transforms on PyTorch. The first install downloads ~3.5 GB of CUDA wheels (pip caches them).
  "torch==2.13.0"
  "monai==1.6.1"
  "safetensors==0.8.0"  # VISTA3D oracle: weights and golden tensors for the Rust side
  "scipy==1.17.1"  # metrics oracle (MONAI's distance transforms run on scipy)
  "scikit-image==0.25.2"  # MONAI's point post-processing; marching cubes reference
  "MedPy==0.5.2"  # metrics oracle: a second, independent Hausdorff / surface distance
  "highdicom==0.28.2"  # DICOM SEG oracle: reads back what export writes, writes SEGs to load
  "rt-utils==1.2.7"  # RT-STRUCT oracle: a second reader of export's RT Structure Sets
  "opencv-python==5.1.0.95"  # rt-utils' rasteriser (pinned: rt-utils does not)
  "trimesh==5.2.0"  # STL oracle: watertightness and enclosed volume
  "pillow==13.0.0"  # PNG oracle: opens the preview sheet
)

want="$(printf '%s\n' "${PACKAGES[@]}")"
STAMP="$VENV/.vistaflow-packages"

if [ ! -x "$VENV/bin/python" ]; then
  echo "setup-python: creating venv at $VENV" >&2
  mkdir -p "$(dirname "$VENV")"
  if ! "$PY" -m venv "$VENV" >&2; then
    echo "setup-python: error: '$PY -m venv' failed; install python3-venv (apt-get install python3-venv) or set PYTHON" >&2
    exit 1
  fi
fi

if [ ! -f "$STAMP" ] || [ "$(cat "$STAMP")" != "$want" ]; then
  echo "setup-python: installing ${PACKAGES[*]}" >&2
  if ! "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check "${PACKAGES[@]}" >&2; then
    echo "setup-python: error: pip install failed (is PyPI reachable?)" >&2
    exit 1
  fi
  printf '%s' "$want" > "$STAMP"
fi

echo "$VENV/bin/python"
