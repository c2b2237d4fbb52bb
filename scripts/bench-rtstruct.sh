#!/usr/bin/env bash
# RT-STRUCT export (issue 18's target: at most plastimatch's time for the same label map):
# 20 organs on a 512x512x300 CT. The series is the real TotalSegmentator CT (20 slices)
# repeated to 300 uncompressed slices, 1 mm apart, with pydicom; the labels are its real
# TotalSegmentator organs repeated the same way, the 20 largest classes kept.
#   vistaflow: the `export` node with `format: rtstruct` (its span in the run's trace), and
#              the whole `vistaflow run` (reading the CT and the labels too, as plastimatch
#              does), best of 3 runs with --no-cache;
#   plastimatch: `plastimatch convert --input-prefix MASKS --referenced-ct CT
#              --output-dicom OUT` (it reads the CT and 20 masks itself), best of 3.
# Needs scripts/fetch-data.sh (data, plastimatch), scripts/setup-python.sh and a release build.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DATA="${VISTAFLOW_DATA:-$ROOT/data}"
PY="${VISTAFLOW_PYTHON:-$HOME/.cache/vistaflow/venv/bin/python}"
BIN="${VISTAFLOW_BIN:-$ROOT/target/release/vistaflow}"
TS="$DATA/totalsegmentator/example_ct_dicom"
SEG="$DATA/totalsegmentator/example_seg_dicom.nii.gz"
[ -d "$TS" ] || { echo "bench-rtstruct: $TS missing: run scripts/fetch-data.sh" >&2; exit 1; }
command -v plastimatch >/dev/null || { echo "bench-rtstruct: plastimatch missing (apt-get install plastimatch)" >&2; exit 1; }
[ -x "$BIN" ] || (cd "$ROOT" && cargo build --release -q)
TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT

"$PY" - "$TS" "$SEG" "$TMP" <<'PYEOF'
import sys, os, glob
import numpy as np, pydicom, SimpleITK as sitk
from pydicom.uid import ExplicitVRLittleEndian, generate_uid
src, seg, tmp = sys.argv[1:]
out = os.path.join(tmp, "ct"); os.makedirs(out)
r = sitk.ImageSeriesReader(); r.SetFileNames(r.GetGDCMSeriesFileNames(src))
img = r.Execute()
arr = sitk.GetArrayFromImage(img)                      # [k, j, i]
lab = sitk.Resample(sitk.ReadImage(seg), img, sitk.Transform(), sitk.sitkNearestNeighbor, 0)
lab = sitk.GetArrayFromImage(lab)
files = sorted(glob.glob(os.path.join(src, "*")))
tpl = pydicom.dcmread(files[0])
slope, inter = float(tpl.get("RescaleSlope", 1)), float(tpl.get("RescaleIntercept", 0))
x0, y0, z0 = [float(v) for v in tpl.ImagePositionPatient]
study, series, frame = generate_uid(), generate_uid(), generate_uid()
n = 300
for k in range(n):
    ds = tpl.copy()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.PixelData = np.round((arr[k % arr.shape[0]] - inter) / slope).astype(np.uint16).tobytes()
    ds["PixelData"].VR = "OW"
    ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.FrameOfReferenceUID = study, series, frame
    ds.SOPInstanceUID = generate_uid()
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.InstanceNumber = k + 1
    ds.ImagePositionPatient = [x0, y0, z0 + k * 1.0]
    ds.SliceLocation = z0 + k * 1.0
    ds.save_as(os.path.join(out, "IM%04d.dcm" % k), enforce_file_format=True)
r = sitk.ImageSeriesReader(); r.SetFileNames(r.GetGDCMSeriesFileNames(out))
big = r.Execute()
tiled = np.stack([lab[k % lab.shape[0]] for k in range(n)])
ids, counts = np.unique(tiled[tiled > 0], return_counts=True)
keep = ids[np.argsort(counts)[::-1][:20]]
tiled = np.where(np.isin(tiled, keep), tiled, 0).astype(np.uint8)
im = sitk.GetImageFromArray(tiled); im.CopyInformation(big)
sitk.WriteImage(im, os.path.join(tmp, "labels.nii.gz"))
os.makedirs(os.path.join(tmp, "masks"))
for c in keep:
    m = sitk.GetImageFromArray((tiled == c).astype(np.uint8)); m.CopyInformation(big)
    sitk.WriteImage(m, os.path.join(tmp, "masks", "class_%d.nii.gz" % c))
print("bench-rtstruct: %d slices of %dx%d, %d classes (%d labelled voxels)"
      % (n, arr.shape[1], arr.shape[2], len(keep), int((tiled > 0).sum())))
PYEOF

cat > "$TMP/w.yaml" <<YAML
version: 1
name: bench-rtstruct
settings: { cache: cache }
nodes:
  ct:  { kind: load_dicom, params: { path: ct } }
  raw: { kind: load_nifti, params: { path: labels.nii.gz, labels: true } }
  seg: { kind: resample, inputs: { image: raw.labels, reference: ct.image } }
  rt:  { kind: export, inputs: { labels: seg.labels, image: ct.image }, params: { format: rtstruct, path: out/rt.dcm } }
YAML
best() { sort -g | head -1; }
whole="$(for i in 1 2 3; do
  s=$(date +%s.%N); (cd "$TMP" && "$BIN" run -q --no-cache --trace "trace$i.jsonl" w.yaml); e=$(date +%s.%N)
  echo "$e - $s" | bc -l
done | best)"
ours="$(for i in 1 2 3; do
  "$PY" - "$TMP/trace$i.jsonl" <<'PYEOF'
import json, sys
for line in open(sys.argv[1]):
    for rs in json.loads(line).get("resourceSpans", []):
        for ss in rs["scopeSpans"]:
            for s in ss["spans"]:
                attrs = {a["key"]: list(a["value"].values())[0] for a in s.get("attributes", [])}
                if attrs.get("vistaflow.node.id") == "rt":
                    print((int(s["endTimeUnixNano"]) - int(s["startTimeUnixNano"])) / 1e9)
PYEOF
done | best)"
theirs="$(for i in 1 2 3; do
  rm -rf "$TMP/pout"
  s=$(date +%s.%N)
  plastimatch convert --input-prefix "$TMP/masks" --referenced-ct "$TMP/ct" --output-dicom "$TMP/pout" >/dev/null 2>&1
  e=$(date +%s.%N)
  echo "$e - $s" | bc -l
done | best)"
echo "bench-rtstruct: vistaflow export rtstruct ${ours} s (the node), ${whole} s (the whole run: CT and labels read too); plastimatch convert ${theirs} s"
echo "bench-rtstruct: ratio node/plastimatch $(echo "$ours / $theirs" | bc -l | cut -c1-5), whole run/plastimatch $(echo "$whole / $theirs" | bc -l | cut -c1-5)"
echo "bench-rtstruct: vistaflow's RT-STRUCT $(du -h "$TMP/out/rt.dcm" | cut -f1); dciodvfy errors: $(dciodvfy "$TMP/out/rt.dcm" 2>&1 | grep -c '^Error' || true)"
