#!/usr/bin/env bash
# Click latency of vista3d_refine against MONAI's point_based_window_inferer, small
# configuration (data/vista3d/small weights), default 128^3 patch, same threads, on the real
# CT sample resampled to 1.5 mm (243 x 201 x 223 voxels after the crop):
#   first click:  `vistaflow run` with click A (its window's encoder features are computed and
#                 kept in the cache)
#   next click:   `vistaflow run` with clicks A and B (B 6 voxels from A): both windows come
#                 from the cache, only the point head runs
#   MONAI:        scripts/oracles/vista3d_refine_monai.py with the same clicks (every click
#                 runs the encoder on its window); its own inference time and its process
# Prints whole-process wall times (vistaflow's include libtorch's 0.4 s start and loading the
# image from the cache). Usage: scripts/bench-refine.sh. THREADS (default 2).
set -euo pipefail
OUT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/target/bench-refine"
source "$(dirname "${BASH_SOURCE[0]}")/lib/click-bench-setup.sh"

click_workflow() { # FILE POINTS
  cat > "$1" <<YAML
version: 1
settings: { cache: $OUT/cache }
nodes:
  ct:  { kind: load_nifti, params: { path: $OUT/ct_1p5.nii.gz } }
  seg: { kind: vista3d_refine, inputs: { image: ct.image },
         params: { model: $SMALL/weights.safetensors, network: small, points: $2 } }
  out: { kind: save_nifti, inputs: { labels: seg.labels }, params: { path: $OUT/seg.nii.gz } }
YAML
}
seconds() { local t0 t1; t0=$(date +%s.%N); "$@" > "$OUT/last.log" 2>&1; t1=$(date +%s.%N); echo "$t1 - $t0" | bc -l; }

click_workflow "$OUT/one.yaml" "[{voxel: $A, label: positive, class: liver}]"
click_workflow "$OUT/two.yaml" "[{voxel: $A, label: positive, class: liver}, {voxel: $B, label: negative, class: liver}]"
first=$(seconds "$BIN" run "$OUT/one.yaml")
next=$(seconds "$BIN" run "$OUT/two.yaml")
# Both clicks again, with the features gone (MONAI's work for the same two clicks).
click_workflow "$OUT/cold.yaml" "[{voxel: $A, label: positive, class: liver}, {voxel: $B, label: negative, class: liver}]"
sed -i 's/points:/cache_features: off, points:/' "$OUT/cold.yaml"
cold=$(seconds "$BIN" run "$OUT/cold.yaml")

monai() { # POINTS
  "$PY" scripts/oracles/vista3d_refine_monai.py --image "$OUT/ct_1p5.nii.gz" \
    --weights "$SMALL/weights.safetensors" --config "$SMALL/config.json" \
    --points "$1" --patch 128,128,128 --out "$OUT/monai.nii.gz" --threads "$THREADS"
}
m1_wall=$(seconds monai "[{\"voxel\": $A, \"positive\": true, \"class\": 1}]")
m1=$(grep -o 'inference [0-9.]*' "$OUT/last.log" | cut -d' ' -f2)
m2_wall=$(seconds monai "[{\"voxel\": $A, \"positive\": true, \"class\": 1}, {\"voxel\": $B, \"positive\": false, \"class\": 1}]")
m2=$(grep -o 'inference [0-9.]*' "$OUT/last.log" | cut -d' ' -f2)

printf 'bench-refine (small configuration, patch 128^3, %s threads, whole processes)\n' "$THREADS"
printf '  vistaflow first click (A):              %6.2f s\n' "$first"
printf '  vistaflow next click (A+B, features kept): %6.2f s\n' "$next"
printf '  vistaflow A+B without kept features:    %6.2f s\n' "$cold"
printf '  MONAI A:   inference %6.2f s, process %6.2f s\n' "$m1" "$m1_wall"
printf '  MONAI A+B: inference %6.2f s, process %6.2f s\n' "$m2" "$m2_wall"
printf '  next click / MONAI A+B inference: %.2f (target < 0.25)\n' "$(echo "$next / $m2" | bc -l)"
