# Sourced by scripts/bench-refine.sh and scripts/bench-serve.sh (with OUT set): the shared
# setting of the click benchmarks. Builds vistaflow, writes the real CT sample resampled to
# 1.5 mm to $OUT/ct_1p5.nii.gz, and sets ROOT, DATA, PY, THREADS, SMALL (the small
# configuration's weights), BIN and the clicks A and B (voxels of that image, 6 apart).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
DATA="${VISTAFLOW_DATA:-$ROOT/data}"
PY="${VISTAFLOW_PYTHON:-$HOME/.cache/vistaflow/venv/bin/python}"
THREADS="${THREADS:-2}"
SMALL="$DATA/vista3d/small"
rm -rf "$OUT"; mkdir -p "$OUT"
export OMP_NUM_THREADS="$THREADS" RAYON_NUM_THREADS="$THREADS" PYTHONWARNINGS=ignore
cargo build --release --locked --quiet --bin vistaflow
BIN="$ROOT/target/release/vistaflow"
A="[120, 100, 110]"; B="[126, 104, 112]"

cat > "$OUT/prep.yaml" <<YAML
version: 1
settings: { cache: $OUT/cache }
nodes:
  ct:  { kind: load_nifti, params: { path: $DATA/totalsegmentator/example_ct.nii.gz } }
  iso: { kind: resample, inputs: { image: ct.image }, params: { spacing: [1.5, 1.5, 1.5] } }
  out: { kind: save_nifti, inputs: { image: iso.image }, params: { path: $OUT/ct_1p5.nii.gz } }
YAML
"$BIN" run "$OUT/prep.yaml" > /dev/null
