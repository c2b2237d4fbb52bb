#!/usr/bin/env bash
# Benchmark: what the content-hash cache costs and saves on a whole run.
# Workflow: load_nifti -> save_nifti on a 512x512x300 int16 CT-like volume (.nii.gz).
#   cold, cache on   : empty cache each time (keys, input digest, entries written + fsynced)
#   cold, --no-cache : nothing read or written
#   warm             : a second run, everything cached
# Targets (issue 2): cold overhead < 10 %, warm < 5 % of cold.
# Needs: a release build, hyperfine (apt-get install hyperfine), the oracle venv (numpy).
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BIN="$REPO/target/release/vistaflow"
WORK="${BENCH_DIR:-/tmp/vistaflow-bench}"
RUNS="${RUNS:-5}"
[ -x "$BIN" ] || { echo "bench: build first: cargo build --release" >&2; exit 1; }
command -v hyperfine >/dev/null || { echo "bench: installing hyperfine" >&2; apt-get install -y -qq hyperfine >/dev/null; }
PY="$("$REPO/scripts/setup-python.sh" | tail -n 1)"
mkdir -p "$WORK"
cd "$WORK"

if [ ! -f ct512.nii.gz ]; then
  echo "bench: making ct512.nii.gz (512x512x300 int16, real CT upsampled + noise)" >&2
  "$PY" - "$REPO/data/totalsegmentator/example_ct.nii.gz" <<'PYEOF'
import sys, numpy as np, nibabel as nib
src = nib.load(sys.argv[1])
a = np.asanyarray(src.dataobj).astype(np.int16)
idx = [np.linspace(0, a.shape[d] - 1, n).round().astype(int) for d, n in enumerate((512, 512, 300))]
big = a[np.ix_(*idx)]
big = big + np.random.default_rng(0).integers(-8, 9, size=big.shape, dtype=np.int16)
aff = src.affine.copy(); aff[:3, :3] = np.diag([0.8, 0.8, 1.25])
nib.save(nib.Nifti1Image(big.astype(np.int16), aff), "ct512.nii.gz")
PYEOF
fi
cat > bench.yaml <<'YAML'
version: 1
name: bench
settings: { cache: cache, device: cpu }
nodes:
  ct:  { kind: load_nifti, params: { path: ct512.nii.gz } }
  out: { kind: save_nifti, inputs: { image: ct.image }, params: { path: out/ct.nii.gz } }
YAML

run="$BIN run bench.yaml -q --no-trace"
hyperfine --runs "$RUNS" --export-json cold.json \
  --prepare 'rm -rf cache out' -n 'cold, cache on' "$run" \
  --prepare 'rm -rf cache out' -n 'cold, --no-cache' "$run --no-cache"
rm -rf cache out && $run
hyperfine --runs $((RUNS * 2)) --warmup 1 --export-json warm.json -n 'warm (all cached)' "$run"

"$PY" - <<'PYEOF'
import json
cold = {r["command"]: r for r in json.load(open("cold.json"))["results"]}
warm = json.load(open("warm.json"))["results"][0]
on, off = cold["cold, cache on"]["median"], cold["cold, --no-cache"]["median"]
print(f"\ncold with cache {on:.3f}s, --no-cache {off:.3f}s: overhead {100*(on-off)/off:+.1f}% (target < 10%)")
print(f"warm {warm['median']:.3f}s = {100*warm['median']/on:.1f}% of cold (target < 5%)")
PYEOF
