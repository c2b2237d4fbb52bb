#!/usr/bin/env bash
# load_dicom against dcm2niix and SimpleITK's ImageSeriesReader, side by side in one run:
#   1. the real 20-slice JPEG 2000 TotalSegmentator series (data/totalsegmentator/example_ct_dicom)
#   2. a 300-slice uncompressed (Explicit VR Little Endian) series synthesised from it with
#      pydicom (the 20 decoded slices repeated, 1 mm apart), written to a temporary folder
# Each figure is the best of 3 runs. load_dicom and SimpleITK are timed inside their process
# (header scan + decode + rescale to float32 for ours; GetGDCMSeriesFileNames + Execute for
# SimpleITK); dcm2niix is timed as a whole command writing an uncompressed .nii.
# Needs scripts/fetch-data.sh, scripts/setup-python.sh and dcm2niix.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DATA="${VISTAFLOW_DATA:-$ROOT/data}"
PY="${VISTAFLOW_PYTHON:-$HOME/.cache/vistaflow/venv/bin/python}"
TS="$DATA/totalsegmentator/example_ct_dicom"
[ -d "$TS" ] || { echo "bench-dicom: $TS missing: run scripts/fetch-data.sh" >&2; exit 1; }
command -v dcm2niix >/dev/null || { echo "bench-dicom: dcm2niix missing (apt-get install dcm2niix)" >&2; exit 1; }
TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT

"$PY" - "$TS" "$TMP/s300" <<'PYEOF'
import sys, os, glob
import numpy as np, pydicom, SimpleITK as sitk
from pydicom.uid import ExplicitVRLittleEndian, generate_uid
src, out = sys.argv[1], sys.argv[2]
os.makedirs(out)
r = sitk.ImageSeriesReader(); r.SetFileNames(r.GetGDCMSeriesFileNames(src))
img = r.Execute()                       # HU, [k, j, i]
arr = sitk.GetArrayFromImage(img)
files = sorted(glob.glob(os.path.join(src, "*")))
tpl = pydicom.dcmread(files[0])
slope, inter = float(tpl.get("RescaleSlope", 1)), float(tpl.get("RescaleIntercept", 0))
x0, y0, z0 = [float(v) for v in tpl.ImagePositionPatient]
series = generate_uid()
for k in range(300):
    ds = tpl.copy()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    raw = np.round((arr[k % arr.shape[0]] - inter) / slope).astype(np.uint16)
    ds.PixelData = raw.tobytes()
    ds["PixelData"].VR = "OW"
    ds.SeriesInstanceUID = series
    ds.SOPInstanceUID = generate_uid()
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.InstanceNumber = k + 1
    ds.ImagePositionPatient = [x0, y0, z0 + k * 1.0]
    ds.SliceLocation = z0 + k * 1.0
    ds.save_as(os.path.join(out, "IM%04d.dcm" % k), enforce_file_format=True)
PYEOF
echo "bench-dicom: synthesised $(ls "$TMP/s300" | wc -l) uncompressed slices ($(du -sh "$TMP/s300" | cut -f1))"

cargo test -q -p vistaflow-nodes --release --test dicom --no-run 2>/dev/null
for dir in "$TS" "$TMP/s300"; do
  name="$(basename "$dir")"
  ours="$(cd "$ROOT" && VISTAFLOW_DICOM_BENCH="$dir" cargo test -q -p vistaflow-nodes --release --test dicom timing -- --ignored --nocapture 2>/dev/null | grep '^load_dicom' | sed 's/.*: //')"
  sitk_t="$("$PY" - "$dir" <<'PYEOF'
import sys, time, SimpleITK as sitk
best = 1e9
for _ in range(3):
    t = time.perf_counter()
    r = sitk.ImageSeriesReader(); r.SetFileNames(r.GetGDCMSeriesFileNames(sys.argv[1]))
    img = r.Execute()
    best = min(best, time.perf_counter() - t)
print("%.3f s" % best)
PYEOF
)"
  best=1e9
  for _ in 1 2 3; do
    rm -rf "$TMP/out" && mkdir -p "$TMP/out"
    s=$(date +%s.%N)
    dcm2niix -z n -b n -m y -o "$TMP/out" "$dir" >/dev/null 2>&1
    e=$(date +%s.%N)
    best=$(python3 -c "print(min($best, $e - $s))")
  done
  printf '%-20s load_dicom %-22s SimpleITK %-9s dcm2niix %.3f s\n' "$name" "$ours" "$sitk_t" "$best"
done
