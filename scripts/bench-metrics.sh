#!/usr/bin/env bash
# Segmentation-metrics benchmark, vistaflow's `metrics` node against MONAI 1.6.1 on CPU, same pair
# of label maps, same threads: dice, iou, hd95, hd, assd, nsd (2 mm) for 20 classes of a synthetic
# 512x512x300 pair (spacing 0.8 x 0.8 x 1.5 mm; see scripts/oracles/metrics_bench_monai.py for how
# it is made and how MONAI gets its one-hot inputs). Prints one JSON line per side (wall time and
# peak RSS of the whole process, and MONAI's own breakdown) and a side-by-side summary.
# Usage: scripts/bench-metrics.sh. THREADS (default 2). Needs scripts/setup-python.sh.
# Writes the pair once into target/bench-metrics/ (about 1 MB; made again when the generator
# changes), then MONAI's figures into target/bench-metrics/monai.json.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
PY="${VISTAFLOW_PYTHON:-$HOME/.cache/vistaflow/venv/bin/python}"
THREADS="${THREADS:-2}"
OUT="$ROOT/target/bench-metrics"
GEN="$ROOT/scripts/oracles/metrics_bench_monai.py"
mkdir -p "$OUT"
export OMP_NUM_THREADS="$THREADS" PYTHONWARNINGS=ignore

# --- the pair, written once -----------------------------------------------------------------------
GEN_SHA="$(sha256sum "$GEN" | cut -d' ' -f1)"
if [ ! -f "$OUT/prediction.nii.gz" ] || [ "$(cat "$OUT/.generator-sha256" 2>/dev/null)" != "$GEN_SHA" ]; then
  echo "bench-metrics: writing the 512x512x300 pair into $OUT" >&2
  rm -f "$OUT/reference.nii.gz" "$OUT/prediction.nii.gz" "$OUT/.generator-sha256"
  "$PY" "$GEN" --write-only "$OUT"
  echo "$GEN_SHA" > "$OUT/.generator-sha256"
fi

# `measure NAME CMD...`: wall seconds and peak RSS (MiB) of one process, as JSON on stdout.
measure() {
  local name="$1"; shift
  /usr/bin/time -f "%e %M" -o "$OUT/$name.time" "$@" > "$OUT/$name.log" 2>&1 \
    || { echo "bench-metrics: $name failed, see $OUT/$name.log" >&2; tail -5 "$OUT/$name.log" >&2; return 1; }
  read -r wall kib < "$OUT/$name.time"
  printf '{"bench": "%s", "wall_s": %s, "peak_rss_mib": %.0f}\n' "$name" "$wall" "$(echo "$kib / 1024" | bc -l)"
}

rm -f "$OUT"/*.time

# --- MONAI ----------------------------------------------------------------------------------------
# SKIP_MONAI=1 reuses the last MONAI figures (they take minutes) when comparing a change of ours.
if [ "${SKIP_MONAI:-0}" = 1 ] && [ -f "$OUT/monai.json" ] && [ -f "$OUT/monai.time.last" ]; then
  cp "$OUT/monai.time.last" "$OUT/monai.time"
else
  echo "== MONAI 1.6.1, 20 classes, $THREADS threads (takes minutes)" >&2
  measure monai "$PY" "$GEN" --dir "$OUT" --threads "$THREADS" --json "$OUT/monai.json"
  cp "$OUT/monai.time" "$OUT/monai.time.last"
  grep '^monai:' "$OUT/monai.log" >&2 || true
fi

# --- vistaflow ------------------------------------------------------------------------------------
# One workflow: both maps loaded, the full metric set, the table written as JSON. --no-cache so
# the node really runs; the process time includes loading the two gzipped files.
cargo build --release --locked --quiet --bin vistaflow
cat > "$OUT/metrics.yaml" <<YAML
version: 1
name: bench-metrics
settings: { cache: $OUT/cache }
nodes:
  ref:  { kind: load_nifti, params: { path: $OUT/reference.nii.gz, labels: true } }
  pred: { kind: load_nifti, params: { path: $OUT/prediction.nii.gz, labels: true } }
  m:    { kind: metrics, inputs: { prediction: pred.labels, reference: ref.labels },
          params: { metrics: [dice, iou, hd95, hd, assd, nsd], path: $OUT/vistaflow.json } }
YAML
RAYON_NUM_THREADS="$THREADS" measure vistaflow "$ROOT/target/release/vistaflow" run --no-cache "$OUT/metrics.yaml"

# --- side by side ---------------------------------------------------------------------------------
"$PY" - "$OUT" <<'PYEOF'
import json, os, sys
out = sys.argv[1]
def fig(name):
    p = os.path.join(out, name + ".time")
    if not os.path.exists(p):
        return None
    wall, kib = open(p).read().split()
    return float(wall), float(kib) / 1024
m = json.load(open(os.path.join(out, "monai.json")))
print("bench-metrics summary (%d classes, %s, spacing %s mm, %d threads)"
      % (m["classes"], "x".join(map(str, m["shape"])), m["spacing"], m["threads"]))
w, r = fig("monai")
print("  monai      process %7.1f s  peak RSS %6.0f MiB  (metrics %.1f s + one-hot %.1f s; load %.1f s)"
      % (w, r, m["metrics_s"], m["onehot_s"], m["load_s"]))
print("             per metric: " + ", ".join("%s %.1f s" % kv for kv in m["per_metric_s"].items()))
v = fig("vistaflow")
print("  vistaflow  process %7.1f s  peak RSS %6.0f MiB  -> %.1fx MONAI's process time, %.1fx its metrics alone"
      % (v[0], v[1], w / v[0], m["metrics_s"] / v[0]))
# The same numbers? (1e-6 for overlap, 1e-3 mm for distances; nan and inf must match.)
ours = {str(r["class_id"]): r for r in json.load(open(os.path.join(out, "vistaflow.json")))["rows"]}
theirs = dict(m["values"])
num = lambda x: float(x) if not isinstance(x, str) else float(x.replace("inf", "inf"))
worst, bad = {}, []
for cid, vals in theirs.items():
    for k, t in vals.items():
        o, t = num(ours[cid][k]), num(t)
        same = (o != o and t != t) or o == t or abs(o - t) <= (1e-6 if k in ("dice", "iou", "nsd") else 1e-3)
        if not same:
            bad.append((cid, k, o, t))
        if o == o and t == t and abs(o) != float("inf"):
            worst[k] = max(worst.get(k, 0.0), abs(o - t))
print("  values: %d classes x %d metrics compared, %d differ; worst |diff| %s"
      % (len(theirs), len(next(iter(theirs.values()))), len(bad), {k: float("%.2g" % v) for k, v in worst.items()}))
for b in bad[:10]:
    print("    differs:", b)
PYEOF
