#!/usr/bin/env bash
# VISTA3D benchmarks, tch (vistaflow) against MONAI 1.6.1, side by side in one run, same threads:
#   a) one 128^3 forward of the full-size vista3d132 network (random weights, 3 class prompts);
#      also the full-size parity check: max abs error of our logits against MONAI's
#   b) a whole automatic segmentation of the real CT sample (TotalSegmentator example_ct.nii.gz,
#      resampled to 1.5 mm, "everything") with the small configuration: `vistaflow run --no-cache`
#      (load -> resample -> vista3d_auto -> save) against the MONAI bundle pipeline
#      (scripts/oracles/vista3d_auto_monai.py --spacing 1.5), wall time and peak RSS of each process
#   c) peak memory of "everything" with the small configuration on a synthetic CT, 256x256x300
#      for both, then 512x512x600 for vistaflow (MONAI's [117, H, W, D] float32 map alone would
#      be 73.6 GB there, three times this machine's memory; its figure is computed, not run)
# vistaflow keeps freed memory in one heap (src/heap.rs); VISTAFLOW_MALLOC=default gives it
# glibc's policy, and GLIBC_TUNABLES=glibc.malloc.arena_max=1:glibc.malloc.mmap_max=0:\
# glibc.malloc.trim_threshold=2147483647 gives MONAI's Python the same one as ours.
# Usage: scripts/bench-vista3d.sh [a|b|c ...] (default: all). THREADS (default 2).
# Needs scripts/setup-libtorch.sh, scripts/setup-python.sh and scripts/fetch-data.sh.
# (a) downloads nothing but writes 870 MB of random full-size weights to target/bench-vista3d.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
DATA="${VISTAFLOW_DATA:-$ROOT/data}"
PY="${VISTAFLOW_PYTHON:-$HOME/.cache/vistaflow/venv/bin/python}"
THREADS="${THREADS:-2}"
OUT="$ROOT/target/bench-vista3d"
SMALL="$DATA/vista3d/small"
mkdir -p "$OUT"
WHAT=("$@"); [ ${#WHAT[@]} -gt 0 ] || WHAT=(a b c)
export OMP_NUM_THREADS="$THREADS" PYTHONWARNINGS=ignore

cargo build --release --locked --quiet --bin vistaflow --example vista3d_forward
BIN="$ROOT/target/release/vistaflow"

# `measure NAME CMD...`: wall seconds and peak RSS (MiB) of one process, as JSON on stdout.
measure() {
  local name="$1"; shift
  /usr/bin/time -f "%e %M" -o "$OUT/$name.time" "$@" > "$OUT/$name.log" 2>&1 \
    || { echo "bench-vista3d: $name failed, see $OUT/$name.log" >&2; tail -5 "$OUT/$name.log" >&2; return 1; }
  read -r wall kib < "$OUT/$name.time"
  printf '{"bench": "%s", "wall_s": %s, "peak_rss_mib": %.0f}\n' "$name" "$wall" "$(echo "$kib / 1024" | bc -l)"
}

# A NIfTI workflow: load -> [resample] -> vista3d_auto (small, everything) -> save.
workflow() { # FILE IMAGE RESAMPLE(yes|no)
  local r=""
  if [ "$3" = yes ]; then
    r="  iso: { kind: resample, inputs: { image: ct.image }, params: { spacing: [1.5, 1.5, 1.5] } }
"
  fi
  local src="ct"; [ "$3" = yes ] && src="iso"
  cat > "$1" <<YAML
version: 1
name: bench
nodes:
  ct: { kind: load_nifti, params: { path: "$2" } }
$r  seg:
    kind: vista3d_auto
    inputs: { image: $src.image }
    params: { classes: everything, model: "$SMALL/weights.safetensors", network: small }
  out: { kind: save_nifti, inputs: { labels: seg.labels }, params: { path: "$OUT/seg-$(basename "$1" .yaml).nii.gz" } }
YAML
}

for w in "${WHAT[@]}"; do case "$w" in
a)
  echo "== a) full-size vista3d132, one 128^3 forward, 3 classes, $THREADS threads" >&2
  if [ ! -f "$OUT/full/golden.safetensors" ]; then
    mkdir -p "$OUT/full"
    "$PY" scripts/oracles/vista3d_full_parity.py --weights-out "$OUT/full/weights.safetensors" \
      --golden-out "$OUT/full/golden.safetensors" --config-out "$OUT/full/config.json" --threads "$THREADS" >&2
  fi
  # Interleaved: MONAI, tch, MONAI, tch (each process: one warm-up forward, then 2 timed).
  for round in 1 2; do
    "$PY" scripts/oracles/vista3d_full_parity.py --bench-only 2 --threads "$THREADS" | sed 's/^/monai: /'
    target/release/examples/vista3d_forward "$OUT/full/weights.safetensors" "$OUT/full/golden.safetensors" \
      --threads "$THREADS" --repeat 3 | sed 's/^/tch:   /'
  done
  ;;
b)
  echo "== b) whole automatic segmentation, small configuration, everything, real CT" >&2
  workflow "$OUT/b.yaml" "$DATA/totalsegmentator/example_ct.nii.gz" yes
  for round in 1 2; do
    measure "b-monai-$round" "$PY" scripts/oracles/vista3d_auto_monai.py --image "$DATA/totalsegmentator/example_ct.nii.gz" \
      --weights "$SMALL/weights.safetensors" --config "$SMALL/config.json" --classes everything --spacing 1.5 \
      --patch 128,128,128 --overlap 0.3 --threads "$THREADS" --out "$OUT/b-monai.nii.gz"
    measure "b-vistaflow-$round" "$BIN" run --no-cache "$OUT/b.yaml"
  done
  ;;
c)
  echo "== c) peak memory, everything, small configuration, synthetic CT" >&2
  for size in 256x256x300 512x512x600; do
    f="$OUT/synthetic-$size.nii.gz"
    # The elliptic trunk with a spine of scripts/device/gpu_check_tools.py (gpu-check.sh uses it too).
    [ -f "$f" ] || "$PY" scripts/device/gpu_check_tools.py volume "$f" "$size"
    workflow "$OUT/c-$size.yaml" "$f" no
    measure "c-vistaflow-$size" "$BIN" run --no-cache "$OUT/c-$size.yaml"
    if [ "$size" = 256x256x300 ]; then
      measure "c-monai-$size" "$PY" scripts/oracles/vista3d_auto_monai.py --image "$f" \
        --weights "$SMALL/weights.safetensors" --config "$SMALL/config.json" --classes everything \
        --patch 128,128,128 --overlap 0.3 --threads "$THREADS" --out "$OUT/c-monai.nii.gz"
    else
      echo '{"bench": "c-monai-512x512x600", "not_run": "logit map alone = 117*512*512*600*4 B = 73.6 GB"}'
    fi
  done
  ;;
*) echo "bench-vista3d: unknown benchmark '$w' (a, b or c)" >&2; exit 2 ;;
esac; done
