#!/usr/bin/env bash
# Training speed of vista3d_train against MONAI's training loop, same network (the demo
# configuration: 16 filters, blocks [1,2,1,1]), same patch (64^3), same data (TotalSegmentator's
# 3 mm CT, liver/spleen/kidneys/stomach/aorta), same prompts per step (<= 4 present classes + 1
# absent for the class head, their clicks for the point head, both heads every step), same
# threads. vistaflow: 30 steps, timed from step 10 to 30 (the log's clock); MONAI:
# scripts/oracles/vista3d_train_monai.py, 3 untimed + 20 timed steps.
# Usage: scripts/bench-train.sh   (THREADS, default 2; run on an idle machine)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
DATA="${VISTAFLOW_DATA:-$ROOT/data}"
PY="${VISTAFLOW_PYTHON:-$HOME/.cache/vistaflow/venv/bin/python}"
THREADS="${THREADS:-2}"
OUT="$ROOT/target/bench-train"
rm -rf "$OUT"; mkdir -p "$OUT"
export OMP_NUM_THREADS="$THREADS" RAYON_NUM_THREADS="$THREADS" PYTHONWARNINGS=ignore
cargo build --release --locked --quiet --bin vistaflow
BIN="$ROOT/target/release/vistaflow"

cat > "$OUT/train.yaml" <<YAML
version: 1
settings: { cache: $OUT/cache }
nodes:
  ct:  { kind: load_nifti, params: { path: $DATA/totalsegmentator/example_ct.nii.gz } }
  seg: { kind: load_nifti, params: { path: $DATA/totalsegmentator/example_seg_fast_force_split.nii.gz, labels: true } }
  train:
    kind: vista3d_train
    inputs: { image: ct.image, labels: seg.labels }
    params:
      classes: { "5": liver, "1": spleen, "2": right kidney, "3": left kidney, "6": stomach, "52": aorta }
      config: demo
      patch: [64, 64, 64]
      steps: 30
      lr: 0.001
      augment: { scale: 0, intensity: 0.1, foreground: 0.67 }
      drop_label_prob: 0
      drop_point_prob: 0
      path: $OUT/model.safetensors
YAML
/usr/bin/time -f "%M" -o "$OUT/rss.txt" "$BIN" run "$OUT/train.yaml" > "$OUT/run.txt" 2>&1
"$PY" scripts/oracles/vista3d_train_monai.py --steps 20 --warmup 3 --patch 64 64 64 \
    --threads "$THREADS" --out "$OUT/monai.json" > "$OUT/monai.txt" 2>&1
"$PY" - "$OUT" <<'PYEOF'
import json, sys
out = sys.argv[1]
card = json.load(open(out + "/model.json"))
t = {r["step"]: r["seconds"] for r in card["training"]["log"]}
ours = 20 / (t[30] - t[10])
rss = int(open(out + "/rss.txt").read().split()[-1]) / 1024
m = json.load(open(out + "/monai.json"))
print(f"vistaflow: {ours:.3f} steps/s ({1 / ours:.2f} s/step), peak RSS {rss:.0f} MB, "
      f"loss {card['training']['log'][0]['loss']:.3f} -> {card['training']['log'][-1]['loss']:.3f}")
print(f"MONAI {m['monai']} / torch {m['torch']}: {m['steps_per_second']:.3f} steps/s "
      f"({1 / m['steps_per_second']:.2f} s/step), peak RSS {m['peak_rss_mb']:.0f} MB")
print(f"ratio (vistaflow / MONAI steps per second): {ours / m['steps_per_second']:.2f}")
PYEOF
