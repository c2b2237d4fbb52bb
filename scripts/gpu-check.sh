#!/usr/bin/env bash
# The GPU check (issue 20): vistaflow's GPU path on a real GPU, in one prepared run that needs
# no network. Built here by scripts/build-for-device.sh into .device/ (binaries for the machine's
# libtorch, MONAI and nibabel wheels); run there from the repository root:
#
#   scripts/gpu-check.sh [OUTDIR]      (default: $OUT, else target/gpu-check)
#
# Steps (STEPS="env fixture forward auto slots oom half monai" picks some; each records one JSON
# line per result in OUTDIR/gpu-check.jsonl, a failed step is recorded and the next one runs):
#   env      the GPU, the machine's torch, and whether vistaflow finds CUDA (libtorch_cuda.so
#            loaded from the folder of the libtorch it runs with): `validate` of a cuda node
#   fixture  full-size vista3d132 with random weights (MONAI, seed 0), one FWD_SIZE^3 input and
#            MONAI's logits on the CPU (the reference); MONAI's own GPU forward, timed
#   forward  vistaflow's forward of that input on the GPU in fp32, fp16 and bf16 against the
#            CPU logits: max abs error, label agreement, seconds per forward, peak GPU memory
#   auto     `vista3d_auto everything`, full size, on a SIZE volume made here (333x333x603,
#            1.5 mm), whole `vistaflow run` timed twice (cold, warm) and the node's own time
#   slots    two vista3d_auto nodes on one GPU (one slot per GPU): they must not overlap
#   oom      another process holds all GPU memory but a little; the run must still finish
#            through its fallbacks (sw_batch 1, stitching on the CPU, the node on the CPU),
#            with the same labels as without the cap
#   half     the auto run in bf16 and fp16, labels against fp32
#   monai    MONAI's bundle pipeline (scripts/oracles/vista3d_auto_monai.py) on the GPU on the
#            same volume: time, and label agreement with vistaflow's fp32 run
# Without a GPU the same steps run on the CPU with small sizes (the script's CPU half).
set -uo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
OUTDIR="${1:-${OUT:-$ROOT/target/gpu-check}}"
WORK="${GPU_CHECK_WORK:-/tmp/vistaflow-gpu-check}"
PY="${VISTAFLOW_PYTHON:-python3}"
NPROC="$(nproc)"
TOOLS="$ROOT/scripts/device/gpu_check_tools.py"
mkdir -p "$OUTDIR" "$WORK"
RESULTS="$OUTDIR/gpu-check.jsonl"
LOG="$OUTDIR/gpu-check.log"
: > "$RESULTS"
exec > >(tee -a "$LOG") 2>&1

# The binaries: the device build when there is one, else this checkout's release build.
BIN="${VISTAFLOW_BIN_DIR:-$ROOT/.device/bin}"
[ -x "$BIN/vistaflow" ] || BIN="$ROOT/target/release"
FWD="$BIN/vista3d_forward"; [ -x "$FWD" ] || FWD="$BIN/examples/vista3d_forward"
if [ "$BIN" = "$ROOT/.device/bin" ]; then
  # Built against this torch version's libtorch: run it with the machine's own torch/lib.
  TORCH_LIB="${TORCH_LIB:-$("$PY" -c 'import os, torch; print(os.path.join(os.path.dirname(torch.__file__), "lib"))')}"
  export LD_LIBRARY_PATH="$TORCH_LIB${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
fi
VF="$BIN/vistaflow"
# Pure-Python packages the machine lacks travel as wheels in .device/whl.
if ! "$PY" -c 'import monai, nibabel' 2>/dev/null; then
  "$PY" -m pip install -q --no-index --no-deps --no-compile --target "$WORK/site" "$ROOT"/.device/whl/*.whl \
    && export PYTHONPATH="$WORK/site${PYTHONPATH:+:$PYTHONPATH}"
fi
export PYTHONWARNINGS=ignore PYTHONUNBUFFERED=1

if nvidia-smi -L >/dev/null 2>&1 && "$PY" -c 'import torch, sys; sys.exit(not torch.cuda.is_available())'; then
  DEV=cuda; SIZE="${SIZE:-333x333x603}"; MID=200x200x200; ONE=120x120x120; FWD_SIZE="${FWD_SIZE:-128}"
else
  DEV=cpu; SIZE="${SIZE:-96x96x96}"; MID=96x96x96; ONE=96x96x96; FWD_SIZE="${FWD_SIZE:-64}"
fi
STEPS="${STEPS:-env fixture forward auto slots oom half monai}"
FULL="$WORK/full"
W="$FULL/weights.safetensors"
echo "gpu-check: device $DEV, $NPROC CPUs, binaries $BIN, results $RESULTS"

record() { echo "{\"step\": \"$1\", $2}" | tee -a "$RESULTS"; }
fail() { record "$1" "\"failed\": \"$2\""; }
now() { date +%s.%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", b - a }'; }
# Peak GPU memory (MiB, whole GPU, minus what was used before) while a command runs.
BASE_MIB=0
[ "$DEV" = cuda ] && BASE_MIB="$(nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits | head -1)"
mem_start() {
  [ "$DEV" = cuda ] || return 0
  nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits -lms 50 > "$WORK/mem.log" 2>/dev/null &
  MEM_PID=$!
}
mem_peak() {
  [ "$DEV" = cuda ] || { echo null; return; }
  kill "$MEM_PID" 2>/dev/null; wait "$MEM_PID" 2>/dev/null
  echo $(( $(sort -n "$WORK/mem.log" | tail -1) - BASE_MIB ))
}
volume() { [ -f "$WORK/vol-$1.nii.gz" ] || "$PY" "$TOOLS" volume "$WORK/vol-$1.nii.gz" "$1"; echo "$WORK/vol-$1.nii.gz"; }

# A workflow: load -> vista3d_auto (full size, on DEVICE) -> save; NODES=2 adds a second one.
workflow() { # FILE NODES
  {
    echo 'version: 1'
    echo 'name: gpu-check'
    echo 'nodes:'
    echo '  ct: { kind: load_nifti, params: { path: "${IMAGE}" } }'
    echo '  seg:'
    echo '    { kind: vista3d_auto, device: "${DEVICE}", inputs: { image: ct.image },'
    echo '      params: { classes: everything, model: "${MODEL}", network: vista3d132, precision: "${PRECISION}",
                sw_batch: "${SW_BATCH}" } }'
    echo '  out: { kind: save_nifti, inputs: { labels: seg.labels }, params: { path: "${OUTPUT}" } }'
    if [ "${2:-1}" = 2 ]; then
      echo '  seg2:'
      echo '    { kind: vista3d_auto, device: "${DEVICE}", inputs: { image: ct.image },'
      echo '      params: { classes: [liver, spleen, aorta], model: "${MODEL}", network: vista3d132 } }'
      echo '  out2: { kind: save_nifti, inputs: { labels: seg2.labels }, params: { path: "${OUTPUT}.2.nii.gz" } }'
    fi
  } > "$1"
}
workflow "$WORK/auto.yaml" 1
workflow "$WORK/two.yaml" 2

# `run_auto NAME IMAGE PRECISION [WORKFLOW] [DEVICE]`: one `vistaflow run`, recorded with its
# wall time, the seg node's time and device, the events, and peak GPU memory.
run_auto() {
  local name="$1" image="$2" precision="$3" wf="${4:-$WORK/auto.yaml}" device="${5:-$DEV}"
  local t0 t1 rc peak
  rm -f "$WORK/$name.trace"  # a trace file is appended to
  mem_start; t0="$(now)"
  timeout 180 "$VF" run --no-cache -q --trace "$WORK/$name.trace" "$wf" --set IMAGE="$image" --set MODEL="$W" \
    --set PRECISION="$precision" --set DEVICE="$device" --set SW_BATCH="${SW_BATCH:-1}" --set OUTPUT="$WORK/$name.nii.gz" > "$WORK/$name.log" 2>&1
  rc=$?; t1="$(now)"; peak="$(mem_peak)"
  if [ "$rc" != 0 ]; then tail -5 "$WORK/$name.log"; fail "$name" "exit $rc: $(tail -1 "$WORK/$name.log" | tr -d '"\\')"; return 1; fi
  local spans; spans="$("$PY" "$TOOLS" spans "$WORK/$name.trace")"
  record "$name" "\"image\": \"$(basename "$image")\", \"precision\": \"$precision\", \"wall_s\": $(secs "$t0" "$t1"), \"peak_gpu_mib\": $peak, \"trace\": $spans"
}

for step in $STEPS; do
  echo "== $step"
  case "$step" in
  env)
    gpu="$(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null | head -1)"
    torch_v="$("$PY" -c 'import torch; print(torch.__version__, torch.version.cuda, torch.cuda.is_available())')"
    printf 'version: 1\nname: cuda-probe\nnodes:\n  ct: { kind: load_nifti, device: cuda, params: { path: "%s" } }\n' "$(volume 8x8x8)" > "$WORK/probe.yaml"
    if "$VF" validate "$WORK/probe.yaml" > "$WORK/probe.log" 2>&1; then sees=true; else sees=false; fi
    head -3 "$WORK/probe.log"
    libs="$(ldd "$VF" | grep -o '/[^ ]*libtorch_cpu.so' | head -1)"
    record env "\"gpu\": \"$gpu\", \"torch\": \"$torch_v\", \"vistaflow\": \"$("$VF" --version)\", \"vistaflow_finds_cuda\": $sees, \"libtorch_cpu\": \"$libs\""
    ;;
  fixture)
    if [ ! -f "$FULL/golden.safetensors" ]; then
      out="$("$PY" scripts/oracles/vista3d_full_parity.py --weights-out "$W" --golden-out "$FULL/golden.safetensors" \
        --config-out "$FULL/config.json" --threads "$NPROC" --size "$FWD_SIZE" --device cpu | tail -1)" \
        && record fixture-monai-cpu "\"monai_cpu_forward\": $out" || fail fixture "vista3d_full_parity.py"
    fi
    if [ "$DEV" = cuda ]; then
      mem_start
      out="$(timeout 120 "$PY" scripts/oracles/vista3d_full_parity.py --bench-only 5 --size "$FWD_SIZE" --device cuda | tail -1)"
      record fixture-monai-gpu "\"monai_gpu_forward\": ${out:-null}, \"peak_gpu_mib\": $(mem_peak)"
    fi
    ;;
  forward)
    for p in fp32 fp16 bf16; do
      mem_start
      out="$(timeout 120 "$FWD" "$W" "$FULL/golden.safetensors" --device "$DEV" --precision "$p" \
        --repeat 6 --threads "$NPROC" | tail -1)"
      record "forward-$p" "\"result\": ${out:-null}, \"peak_gpu_mib\": $(mem_peak)"
    done
    ;;
  auto)
    big="$(volume "$SIZE")"
    run_auto auto-fp32-cold "$big" fp32
    run_auto auto-fp32-warm "$big" fp32
    ;;
  slots)
    run_auto slots "$(volume "$MID")" fp32 "$WORK/two.yaml"
    "$PY" - "$RESULTS" <<'PYEOF' | tee -a "$RESULTS"
import json, sys
r = [json.loads(l) for l in open(sys.argv[1])][-1]
n = {x["id"]: x for x in r.get("trace", {}).get("nodes", [])}
a, b = n.get("seg"), n.get("seg2")
if a and b:
    # Time both held the device: from when each got its GPU slot (its start on the CPU) to its end.
    start = lambda x: x["gpu_from_s"] if x["gpu_from_s"] is not None else x["start_s"]
    overlap = max(0.0, min(a["end_s"], b["end_s"]) - max(start(a), start(b)))
    print(json.dumps({"step": "slots-verdict", "devices": [a["device"], b["device"]], "overlap_s": round(overlap, 3),
                      "serialised": overlap == 0.0}))
PYEOF
    ;;
  oom)
    [ "$DEV" = cuda ] || { record oom "\"skipped\": \"no GPU\""; continue; }
    mid="$(volume "$MID")"; one="$(volume "$ONE")"
    run_auto oom-reference "$mid" fp32
    run_auto oom-reference-one "$one" fp32
    # Caps (NAME:VOLUME:MiB left free:sw_batch): tighter and tighter, from room for the
    # forward but not for stitching on the GPU or for batches of two, down to none for the
    # weights. Which fallback each one took is in its events.
    for cap in ${OOM_CAPS:-"batch:$mid:4500:2" "stitch:$mid:3200:1" "node:$one:700:1"}; do
      IFS=: read -r what image leave batch <<< "$cap"
      "$PY" "$TOOLS" hog "$leave" > "$WORK/hog.log" 2>&1 &
      hog=$!
      for _ in $(seq 60); do grep -q ready "$WORK/hog.log" && break; sleep 1; done
      cat "$WORK/hog.log"
      BASE_SAVE="$BASE_MIB"; BASE_MIB="$(nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits | head -1)"
      SW_BATCH="$batch" run_auto "oom-$what-cap${leave}mib" "$image" fp32
      BASE_MIB="$BASE_SAVE"
      kill "$hog"; wait "$hog" 2>/dev/null
      ref="$WORK/oom-reference.nii.gz"; [ "$image" = "$one" ] && ref="$WORK/oom-reference-one.nii.gz"
      [ -f "$WORK/oom-$what-cap${leave}mib.nii.gz" ] && \
        record "oom-$what-agreement" "\"against_uncapped\": $("$PY" "$TOOLS" agree "$ref" "$WORK/oom-$what-cap${leave}mib.nii.gz")"
    done
    ;;
  half)
    big="$(volume "$SIZE")"
    for p in bf16 fp16; do
      run_auto "auto-$p" "$big" "$p" && \
        record "auto-$p-agreement" "\"against_fp32\": $("$PY" "$TOOLS" agree "$WORK/auto-fp32-warm.nii.gz" "$WORK/auto-$p.nii.gz")"
    done
    ;;
  monai)
    big="$(volume "$SIZE")"
    t0="$(now)"
    timeout 200 "$PY" scripts/oracles/vista3d_auto_monai.py --image "$big" --weights "$W" --config "$FULL/config.json" \
      --classes everything --device "$DEV" --threads "$NPROC" --out "$WORK/monai.nii.gz" \
      --timing-json "$WORK/monai-timing.json" > "$WORK/monai.log" 2>&1 || { tail -5 "$WORK/monai.log"; fail monai "see monai.log"; continue; }
    t1="$(now)"
    timing="$("$PY" -c 'import json,sys; t=json.load(open(sys.argv[1])); t.pop("histogram"); t.pop("classes"); print(json.dumps(t))' "$WORK/monai-timing.json")"
    record monai "\"wall_s\": $(secs "$t0" "$t1"), \"timing\": $timing, \"against_vistaflow_fp32\": $("$PY" "$TOOLS" agree "$WORK/monai.nii.gz" "$WORK/auto-fp32-warm.nii.gz")"
    ;;
  *) fail "$step" "unknown step" ;;
  esac
done
# One archive of the logs (a device call returns at most 8 files).
tar -czf "$OUTDIR/logs.tar.gz" -C "$WORK" $(cd "$WORK" && ls *.log *.trace *.json 2>/dev/null) 2>/dev/null
"$PY" "$TOOLS" summary "$RESULTS" > "$OUTDIR/summary.md" && cat "$OUTDIR/summary.md"
