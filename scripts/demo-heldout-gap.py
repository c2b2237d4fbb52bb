#!/usr/bin/env python3
"""Why the demo model misses the held-out Dice target: test-time probes of the explanations.

Each probe changes the held-out TotalSegmentator DICOM series in one way, runs the demo
model on it (load -> resample -> vista3d_auto -> back onto the series' grid -> metrics, as
workflows/demo.yaml) and prints Dice per organ. A probe that removes the cause of the gap
should raise Dice; one that does not rules that cause out.

  baseline     the series as it is (= workflows/demo.yaml)
  organ_hu     oracle: each organ's voxels lowered to the training CT's median HU (liver
               -47, spleen -45, aorta -110), using the reference labels
  soft_tissue  all 20..300 HU compressed towards 20 HU (contrast removed without labels)
  smooth       Gaussian (1.3, 1.3, 0.4) voxels before downsampling (anti-aliasing)
  spacing_3.6  resampled to 3.6 mm instead of 3 mm: organs look 17 % smaller to the model
  spacing_4.0  the same at 4.0 mm (25 % smaller)

Usage (after scripts/fetch-data.sh, scripts/setup-python.sh and a release build):
  ~/.cache/vistaflow/venv/bin/python scripts/demo-heldout-gap.py [--model M] [--out DIR]
Writes DIR/<probe>.{nii.gz,yaml,csv} (default out/heldout-gap/); about a minute per probe.
"""
import argparse
import csv
import glob
import os
import subprocess
import sys

import nibabel as nib
import numpy as np
import pydicom
from scipy.ndimage import gaussian_filter

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SERIES = os.path.join(ROOT, "data/totalsegmentator/example_ct_dicom")
TRUTH = os.path.join(ROOT, "data/totalsegmentator/example_seg_dicom.nii.gz")
ORGANS = ["liver", "spleen", "stomach", "aorta"]
TS_IDS = {"liver": 5, "spleen": 1, "stomach": 6, "aorta": 52}
# The training CT's median HU minus the held-out one's, per organ (README, "The demo model").
HU_SHIFT = {"liver": -47.0, "spleen": -45.0, "aorta": -110.0}

WORKFLOW = """version: 1
name: heldout-gap-{probe}
settings: {{ cache: {root}/.vistaflow/cache, device: auto }}
nodes:
  series:
    kind: load_dicom
    params: {{ path: {series} }}
  truth:
    kind: load_nifti
    params:
      path: {truth}
      labels: true
      class_names: {{ "5": liver, "1": spleen, "6": stomach, "52": aorta }}
  probe:
    kind: load_nifti
    params: {{ path: {image} }}
  grid:
    kind: resample
    inputs: {{ image: probe.image }}
    params: {{ spacing: [{mm}, {mm}, {mm}], fill: border }}
  seg:
    kind: vista3d_auto
    inputs: {{ image: grid.image }}
    params: {{ model: {model}, patch: [64, 64, 48], overlap: 0.5 }}
  back:
    kind: resample
    inputs: {{ image: seg.labels, reference: series.image }}
  scores:
    kind: metrics
    inputs: {{ prediction: back.labels, reference: truth.labels }}
    params: {{ match: name, classes: [liver, spleen, stomach, aorta], metrics: [dice], path: {csv} }}
"""


def read_series():
    """The series as HU in RAS voxel order with its RAS affine, from the DICOM tags alone."""
    slices = [pydicom.dcmread(f) for f in glob.glob(os.path.join(SERIES, "*"))]
    row, col = (np.array(slices[0].ImageOrientationPatient[i:i + 3], float) for i in (0, 3))
    normal = np.cross(row, col)
    slices.sort(key=lambda d: float(np.dot(normal, np.array(d.ImagePositionPatient, float))))
    hu = np.stack([d.pixel_array * float(d.RescaleSlope) + float(d.RescaleIntercept)
                   for d in slices], -1).transpose(1, 0, 2)  # [column, row, slice]
    dr, dc = (float(v) for v in slices[0].PixelSpacing)
    p0, p1 = (np.array(slices[i].ImagePositionPatient, float) for i in (0, 1))
    lps = np.eye(4)
    lps[:3, 0], lps[:3, 1], lps[:3, 2], lps[:3, 3] = row * dc, col * dr, p1 - p0, p0
    return hu.astype(np.float32), np.diag([-1.0, -1.0, 1.0, 1.0]) @ lps


def truth_on(affine, shape):
    """The reference labels in the series' voxel order (the file stores y flipped)."""
    img = nib.load(TRUTH)
    ornt = nib.orientations.ornt_transform(nib.io_orientation(img.affine), nib.io_orientation(affine))
    labels = nib.orientations.apply_orientation(np.asarray(img.dataobj), ornt)
    assert labels.shape == shape, (labels.shape, shape)
    return labels


def probes(hu, labels):
    organ_hu = hu.copy()
    for organ, shift in HU_SHIFT.items():
        organ_hu[labels == TS_IDS[organ]] += shift
    soft = hu.copy()
    m = (hu > 20) & (hu < 300)
    soft[m] = 20 + (hu[m] - 20) * 0.45
    return [("baseline", hu, 3), ("organ_hu", organ_hu, 3), ("soft_tissue", soft, 3),
            ("smooth", gaussian_filter(hu, (1.3, 1.3, 0.4)), 3), ("spacing_3.6", hu, 3.6),
            ("spacing_4.0", hu, 4.0)]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=os.path.join(ROOT, "models/vista3d-demo.safetensors"))
    ap.add_argument("--out", default=os.path.join(ROOT, "out/heldout-gap"))
    ap.add_argument("--vistaflow", default=os.path.join(ROOT, "target/release/vistaflow"))
    args = ap.parse_args()
    for need in (SERIES, TRUTH, args.model, args.vistaflow):
        if not os.path.exists(need):
            sys.exit(f"demo-heldout-gap: missing {need} (run scripts/fetch-data.sh and "
                     "cargo build --release first)")
    args.out = os.path.abspath(args.out)  # the workflows name files relative to their own folder
    os.makedirs(args.out, exist_ok=True)
    hu, affine = read_series()
    labels = truth_on(affine, hu.shape)
    rows = []
    for probe, image, mm in probes(hu, labels):
        base = os.path.join(args.out, probe)
        nib.save(nib.Nifti1Image(image, affine), base + ".nii.gz")
        with open(base + ".yaml", "w") as f:
            f.write(WORKFLOW.format(probe=probe, root=ROOT, series=SERIES, truth=TRUTH,
                                    image=base + ".nii.gz", mm=mm, model=os.path.abspath(args.model),
                                    csv=base + ".csv"))
        run = subprocess.run([args.vistaflow, "run", base + ".yaml"], capture_output=True, text=True)
        if run.returncode != 0:
            sys.exit(f"demo-heldout-gap: probe {probe} failed:\n{run.stderr[-2000:]}")
        with open(base + ".csv") as f:
            dice = {r["class_name"]: float(r["dice"]) for r in csv.DictReader(f)}
        rows.append((probe, [dice[o] for o in ORGANS]))
        print(f"{probe:12s} " + " ".join(f"{o} {d:.3f}" for o, d in zip(ORGANS, rows[-1][1]))
              + f"  mean(liver, spleen, stomach) {np.mean(rows[-1][1][:3]):.3f}", flush=True)


if __name__ == "__main__":
    main()
