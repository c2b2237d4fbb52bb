#!/usr/bin/env bash
# Seeds for the fuzz targets whose inputs vistaflow itself writes or needs made to match
# (weights, cache, rtstruct, seg): made from the real files under data/ and real runs, so anyone
# can regenerate fuzz/corpus/{weights,cache,rtstruct,seg} and fuzz/fixtures.
#   fuzz/make-seeds.sh            (needs data/ from scripts/fetch-data.sh and a release build)
# weights: safetensors + "\n--card--\n" + model card; cache: 1 flag byte (odd: the target makes
# the checksum match) + sidecar + "\n--data--\n" + data file.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
DATA="${VISTAFLOW_DATA:-$ROOT/data}"
PY="${VISTAFLOW_PYTHON:-$HOME/.cache/vistaflow/venv/bin/python}"
BIN="${VISTAFLOW_BIN:-$ROOT/target/release/vistaflow}"
W="fuzz/corpus/weights"; C="fuzz/corpus/cache"
mkdir -p "$W" "$C"

"$PY" - "$DATA/vista3d/small" "$W" <<'PY'
import json, struct, sys
from pathlib import Path
import numpy as np
from safetensors.numpy import save
small, out = Path(sys.argv[1]), Path(sys.argv[2])
raw = (small / "weights.safetensors").read_bytes()
n = struct.unpack("<Q", raw[:8])[0]
header = json.loads(raw[8:8 + n])
# 1: the real header, no tensor data (network: auto reads the header; loading must fail cleanly)
(out / "header-only.safetensors").write_bytes(raw[:8 + n])
# 2: the first encoder tensors with their data, as a truncated download would leave them
keys = [k for k in header if k.startswith("image_encoder.encoder.conv_init")]
keys += [k for k in header if k.startswith("image_encoder.encoder.layers.0.blocks.0.")][:4]
part = {}
for k in keys:
    info = header[k]
    a, b = info["data_offsets"]
    part[k] = np.frombuffer(raw[8 + n + a:8 + n + b], dtype="<f4").reshape(info["shape"])
(out / "encoder-start.safetensors").write_bytes(save(part))
# 3: the same with the card of the small network
card = {"format": "vistaflow.vista3d.model/1",
        "config": json.loads((small / "config.json").read_text()),
        "classes": {"1": "liver", "3": "spleen"}, "spacing_mm": [1.5, 1.5, 1.5]}
(out / "encoder-start-card.bin").write_bytes(save(part) + b"\n--card--\n" + json.dumps(card).encode())
PY

# Real cache entries (image, labels, table) from a run on tiny files.
tmp="$(mktemp -d)"; trap 'rm -rf "$tmp"' EXIT
cat > "$tmp/w.yaml" <<YAML
version: 1
name: fuzz-seeds
settings: { cache: cache }
nodes:
  img: {kind: load_nifti, params: {path: $DATA/metrics/border_prediction.nii.gz}}
  pred: {kind: load_nifti, params: {path: $DATA/metrics/border_prediction.nii.gz, labels: true}}
  ref: {kind: load_nifti, params: {path: $DATA/metrics/border_reference.nii.gz, labels: true}}
  m: {kind: metrics, inputs: {prediction: pred.labels, reference: ref.labels}}
  sm: {kind: resample, inputs: {image: img.image}, params: {spacing: [2, 2, 2]}}
YAML
"$BIN" run -q --no-trace "$tmp/w.yaml" >/dev/null
for sc in "$tmp"/cache/objects/*/*.json; do
  data="${sc%.json}.safetensors"
  name="$(python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(d["node"]+"-"+d["port"])' "$sc")"
  { printf '\x01'; cat "$sc"; printf '\n--data--\n'; cat "$data"; } > "$C/$name.bin"
done

# rtstruct, seg: the fixture CT series (fuzz/fixtures/series, which the targets load) and what
# is made on it: vistaflow's RT-STRUCT (with a PTV margin structure) and binary SEG, and
# highdicom's fractional SEG.
R="fuzz/corpus/rtstruct"; S="fuzz/corpus/seg"
mkdir -p "$R" "$S"
rm -rf fuzz/fixtures/series
"$PY" fuzz/make-fixture-series.py fuzz/fixtures/series "$tmp/fixture"
cat > "$tmp/x.yaml" <<YAML
version: 1
name: fuzz-seeds-rt
settings: { cache: cache }
nodes:
  ct: {kind: load_dicom, params: {path: $ROOT/fuzz/fixtures/series}}
  lab: {kind: load_nifti, params: {path: $tmp/fixture/labels.nii.gz, labels: true, class_names: {"1": liver, "2": left kidney}}}
  rt: {kind: export, inputs: {labels: lab.labels, image: ct.image}, params: {format: rtstruct, path: $ROOT/$R/organs-ptv.dcm, structures: [{name: PTV, from: liver, margin_mm: 3}]}}
  seg: {kind: export, inputs: {labels: lab.labels, image: ct.image}, params: {format: dicom_seg, path: $ROOT/$S/organs-binary.dcm}}
YAML
"$BIN" run -q --no-trace "$tmp/x.yaml" >/dev/null
"$PY" scripts/oracles/highdicom_seg.py fuzz/fixtures/series "$tmp/fixture/fractional.json" "$S/organs-fractional.dcm"
ls -la "$W" "$C" "$R" "$S"
