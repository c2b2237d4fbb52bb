#!/usr/bin/env bash
# Click latency of `vistaflow serve` (issue 19): the same setting as scripts/bench-refine.sh
# (small configuration, data/vista3d/small weights, 128^3 patch, the real CT sample at 1.5 mm).
#   serve:   the server's answer to a second click B near a first click A (6 voxels): from
#            POST /api/click to the new label map fetched by the page (GET /api/labels.nii),
#            waiting on /api/state?wait=1 as the page does. The process, libtorch, the
#            image and A's encoder features stay loaded or cached.
#   run:     the same clicks A+B as one `vistaflow run` (A's features in its cache: the best
#            case of a workflow run per click), whole process.
#   MONAI:   scripts/oracles/vista3d_refine_monai.py with A+B: its inference call and process.
# Each is measured ROUNDS times (default 5) with B moved by one voxel each round (a new
# computation every time, never a cached result; serve undoes B between rounds), and the
# median is compared: on a shared VM single timings vary by 10 %.
# The browser's part (NiiVue parsing the label map and drawing it with software WebGL) is not
# here: tests/viewer_browser.rs prints its click-to-overlay time. Usage: scripts/bench-serve.sh
set -euo pipefail
OUT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/target/bench-serve"
source "$(dirname "${BASH_SOURCE[0]}")/lib/click-bench-setup.sh"
ROUNDS="${ROUNDS:-5}"
# B moved by r voxels along j, as JSON (r = 0, 1, ...).
b_round() { "$PY" -c 'import json,sys; b=json.loads(sys.argv[1]); b[1]+=int(sys.argv[2]); print(json.dumps(b))' "$B" "$1"; }

workflow() { # FILE CACHE [POINTS]
  cat > "$1" <<YAML
version: 1
name: bench-serve
settings: { cache: $2 }
nodes:
  ct:  { kind: load_nifti, params: { path: $OUT/ct_1p5.nii.gz } }
  seg: { kind: vista3d_refine, inputs: { image: ct.image },
         params: { model: $SMALL/weights.safetensors, network: small${3:+, points: $3} } }
  out: { kind: save_nifti, inputs: { labels: seg.labels }, params: { path: $OUT/seg.nii.gz } }
YAML
}
seconds() { local t0 t1; t0=$(date +%s.%N); "$@" > "$OUT/last.log" 2>&1; t1=$(date +%s.%N); printf "%.3f" "$(echo "$t1 - $t0" | bc -l)"; }

# serve: its own cache, so nothing of the runs below helps it.
workflow "$OUT/serve.yaml" "$OUT/serve-cache"
"$BIN" serve "$OUT/serve.yaml" --port 0 > "$OUT/serve.out" 2> "$OUT/serve.err" &
SERVER=$!
trap 'kill $SERVER 2>/dev/null || true' EXIT
for _ in $(seq 100); do grep -q token= "$OUT/serve.out" 2>/dev/null && break; sleep 0.1; done
"$PY" - "$(grep -o 'http://[^ ]*' "$OUT/serve.out")" "$OUT/ct_1p5.nii.gz" "$A" "$B" "$ROUNDS" > "$OUT/serve.json" <<'PYEOF'
import json, sys, time, urllib.request, nibabel as nib, numpy as np
url, image, a, b = sys.argv[1], sys.argv[2], json.loads(sys.argv[3]), json.loads(sys.argv[4])
rounds = int(sys.argv[5])
base, token = url.split("/?")[0], url.split("token=")[1]
affine = nib.load(image).affine
def call(path, body=None):
    req = urllib.request.Request(base + path, data=None if body is None else json.dumps(body).encode(),
                                 headers={"x-vistaflow-token": token, "content-type": "application/json"})
    with urllib.request.urlopen(req) as r:
        return r.read()
def ready(after):
    while True:
        # As the page does: one request the server answers when it stops computing.
        s = json.loads(call("/api/state?wait=1"))
        if s["status"] == "ready" and s["version"] > after:
            return s
        if s["status"] == "failed" or s["error"]:
            sys.exit(f"serve failed: {s['error']}")
def click(voxel, positive):
    before = json.loads(call("/api/state"))["version"]
    mm = (affine @ np.array(voxel + [1.0]))[:3].tolist()
    t0 = time.perf_counter()
    call("/api/click", {"ras_mm": mm, "positive": positive, "class": 1})
    s = ready(before)
    n = len(call("/api/labels.nii"))
    return {"seconds": time.perf_counter() - t0, "server_seconds": s["last_seconds"], "bytes": n}
ready(0)
first = click(a, True)
second = []
for r in range(rounds):
    second.append(click([b[0], b[1] + r, b[2]], False))
    before = json.loads(call("/api/state"))["version"]
    call("/api/undo", {})
    ready(before)
print(json.dumps({"first": first, "second": second}))
PYEOF
kill $SERVER 2>/dev/null || true

workflow "$OUT/one.yaml" "$OUT/run-cache" "[{voxel: $A, label: positive, class: liver}]"
"$BIN" run "$OUT/one.yaml" > /dev/null
runs=()
for r in $(seq 0 $((ROUNDS - 1))); do
  workflow "$OUT/two.yaml" "$OUT/run-cache" "[{voxel: $A, label: positive, class: liver}, {voxel: $(b_round "$r"), label: negative, class: liver}]"
  runs+=("$(seconds "$BIN" run "$OUT/two.yaml")")
done
median() { printf '%s\n' "$@" | sort -g | awk '{v[NR]=$1} END {print (NR % 2) ? v[(NR+1)/2] : (v[NR/2] + v[NR/2+1]) / 2}'; }
run_next=$(median "${runs[@]}")

"$PY" scripts/oracles/vista3d_refine_monai.py --image "$OUT/ct_1p5.nii.gz" \
  --weights "$SMALL/weights.safetensors" --config "$SMALL/config.json" \
  --points "[{\"voxel\": $A, \"positive\": true, \"class\": 1}, {\"voxel\": $B, \"positive\": false, \"class\": 1}]" \
  --patch 128,128,128 --out "$OUT/monai.nii.gz" --threads "$THREADS" > "$OUT/monai.log" 2>&1
monai=$(grep -o 'inference [0-9.]*' "$OUT/monai.log" | cut -d' ' -f2)

serve_next=$("$PY" -c 'import json,sys,statistics; print(statistics.median(v["seconds"] for v in json.load(open(sys.argv[1]))["second"]))' "$OUT/serve.json")
printf 'bench-serve (small configuration, patch 128^3, %s threads; A then B, 6 voxels apart)\n' "$THREADS"
"$PY" -c '
import json, sys
d = json.load(open(sys.argv[1]))
v = d["first"]
print("  serve, first click to label map fetched: %6.2f s (server %.2f s, %.1f MB)"
      % (v["seconds"], v["server_seconds"], v["bytes"] / 1e6))
s = sorted(d["second"], key=lambda v: v["seconds"])
m = s[len(s) // 2]
print("  serve, next click, median of %d:         %6.2f s (server %.2f s; all: %s)"
      % (len(s), m["seconds"], m["server_seconds"], " ".join("%.2f" % v["seconds"] for v in d["second"])))
' "$OUT/serve.json"
printf '  vistaflow run A+B (A cached), median:    %6.2f s (all: %s)\n' "$run_next" "${runs[*]}"
printf '  MONAI A+B inference call:                %6.2f s\n' "$monai"
printf '  serve next click / run:   %.2f (goal <= 0.5)\n' "$(echo "$serve_next / $run_next" | bc -l)"
printf '  serve next click / MONAI: %.2f\n' "$(echo "$serve_next / $monai" | bc -l)"
