#!/usr/bin/env python3
"""Writes nodes/tests/golden/dicom.json: what dcm2niix and SimpleITK make of each DICOM case.

Usage: dicom_golden.py [OUT]  (run with the venv from scripts/setup-python.sh, after
scripts/fetch-data.sh, which also installs dcm2niix). Rerun when the case list changes.

Each case is a folder or a file under data/. For each oracle the golden entry holds, in the
oracle's own axis order (tensor [k, j, i], i fastest): the shape, the voxel -> LPS affine, the
sha256 of the voxels as little-endian float32 (rescale applied, computed in float64, rounded
once), and sum / sum of squares / min / max. The Rust test maps its own volume onto the
oracle's axes through the two affines (a signed axis permutation) before comparing, so an
oracle that flips or reorders axes (dcm2niix flips rows) is compared voxel for voxel and
corner for corner in world coordinates.

- dcm2niix (Debian package): run on a folder holding only the case's files
  (`-z n -b n -l o -x n -i n -m y`: merge 2D slices, or it splits the TotalSegmentator series on its varying exposure); its RAS NIfTI is read with nibabel (scl_slope/inter
  applied) and the affine converted to LPS. Cases where it writes more or fewer than one
  3D file record the reason instead.
- SimpleITK: ImageSeriesReader over the case's files sorted by the reader's own
  GDCMSeriesFileNames (folders), ReadImage for single files; output cast to float32.
"""
import glob
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile

import nibabel as nib
import numpy as np
import SimpleITK as sitk

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
DATA = os.environ.get("VISTAFLOW_DATA", os.path.join(ROOT, "data"))
TF = "pydicom/test_files/"
DS = "pydicom/data_store/"
DD = TF + "dicomdirtests/"

CASES = [
    # Real Siemens CT, JPEG 2000 lossless, empty UIDs, InstanceNumber against z.
    "totalsegmentator/example_ct_dicom",
    # pyradiomics' lung CT (lung1_image.nrrd, 48 slices) written as a DICOM series with
    # SimpleITK by scripts/oracles/make_lung_dicom.py (run by scripts/fetch-data.sh).
    "pyradiomics/lung1_dicom",
    # pydicom single files (CT/MR, many transfer syntaxes).
    TF + "CT_small.dcm",
    TF + "MR_small.dcm",
    TF + "MR_small_RLE.dcm",
    TF + "MR_small_bigendian.dcm",
    TF + "MR_small_expb.dcm",
    TF + "MR_small_implicit.dcm",
    TF + "MR_small_jp2klossless.dcm",
    TF + "MR_small_padded.dcm",
    TF + "693_J2KI.dcm",
    TF + "J2K_pixelrep_mismatch.dcm",
    TF + "examples_overlay.dcm",
    DS + "693_J2KR.dcm",
    DS + "693_UNCI.dcm",
    DS + "693_UNCR.dcm",
    DS + "MR2_J2KI.dcm",
    DS + "MR2_J2KR.dcm",
    DS + "MR2_UNCI.dcm",
    DS + "MR2_UNCR.dcm",
    DS + "MR-SIEMENS-DICOM-WithOverlays.dcm",
    DS + "explicit_VR-UN.dcm",
    DS + "bad_sequence.dcm",
    # Enhanced multi-frame CT/MR.
    DS + "eCT_Supplemental.dcm",
    # (emri_small*.dcm are Enhanced MR with their functional groups stripped, so without any
    # geometry: load_dicom refuses them, see nodes/tests/dicom.rs; dicomdirtests' other
    # folders mix orientations or hold a distant slice: bad-input cases there.)
    # A shrunk real series (16x16).
    DD + "98892001/CT5N",
]


def facts(vol_kji, affine_lps):
    v = np.ascontiguousarray(vol_kji, dtype="<f4")
    d = v.astype(np.float64)
    return {
        "shape": list(v.shape),
        "affine_lps": [[float(x) for x in row] for row in affine_lps],
        "sha256": hashlib.sha256(v.tobytes()).hexdigest(),
        "sum": float(d.sum()),
        "sumsq": float((d * d).sum()),
        "min": float(d.min()),
        "max": float(d.max()),
    }


def files_of(path):
    if os.path.isfile(path):
        return [path]
    return sorted(p for p in glob.glob(os.path.join(path, "**", "*"), recursive=True) if os.path.isfile(p))


def dcm2niix(path):
    with tempfile.TemporaryDirectory() as tmp:
        src = os.path.join(tmp, "in")
        out = os.path.join(tmp, "out")
        os.makedirs(src)
        os.makedirs(out)
        for i, f in enumerate(files_of(path)):
            shutil.copy(f, os.path.join(src, "%05d.dcm" % i))
        r = subprocess.run(
            ["dcm2niix", "-z", "n", "-b", "n", "-l", "o", "-x", "n", "-i", "n", "-m", "y",
             "-f", "%s_%e", "-o", out, src],
            capture_output=True, text=True)
        niis = sorted(glob.glob(os.path.join(out, "*.nii")))
        if len(niis) != 1:
            return {"skipped": "dcm2niix wrote %d NIfTI files (rc %d)" % (len(niis), r.returncode)}
        img = nib.load(niis[0])
        data = np.asarray(img.dataobj, dtype=np.float64)  # scl_slope/inter applied
        if data.ndim == 2:
            data = data[:, :, None]
        if data.ndim != 3:
            return {"skipped": "dcm2niix wrote a %dD image %s" % (data.ndim, data.shape)}
        aff = np.diag([-1.0, -1.0, 1.0, 1.0]) @ img.affine
        return facts(data.astype(np.float32).transpose(2, 1, 0), aff)


def simpleitk(path):
    try:
        if os.path.isdir(path):
            r = sitk.ImageSeriesReader()
            names = r.GetGDCMSeriesFileNames(path)
            if not names:
                return {"skipped": "SimpleITK found no series"}
            r.SetFileNames(names)
            img = r.Execute()
        else:
            img = sitk.ReadImage(path)
    except RuntimeError as e:
        return {"skipped": "SimpleITK failed: " + str(e).strip().splitlines()[-1][:200]}
    if img.GetNumberOfComponentsPerPixel() != 1 or img.GetDimension() != 3:
        return {"skipped": "SimpleITK read a %dD image with %d components" % (img.GetDimension(), img.GetNumberOfComponentsPerPixel())}
    arr = sitk.GetArrayFromImage(img).astype(np.float32)  # [k, j, i]
    d = np.array(img.GetDirection()).reshape(3, 3)
    aff = np.eye(4)
    aff[:3, :3] = d @ np.diag(img.GetSpacing())
    aff[:3, 3] = img.GetOrigin()
    return facts(arr, aff)


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "nodes", "tests", "golden", "dicom.json")
    r = subprocess.run(["dcm2niix", "-v"], capture_output=True, text=True)
    version = (r.stdout or r.stderr).strip().splitlines()[-1]
    cases = {}
    for rel in CASES:
        p = os.path.join(DATA, rel)
        if not os.path.exists(p):
            sys.exit("missing %s: run scripts/fetch-data.sh" % p)
        cases[rel] = {"dcm2niix": dcm2niix(p), "simpleitk": simpleitk(p)}
        print(rel, *("%s: %s" % (k, v.get("skipped", v.get("shape"))) for k, v in cases[rel].items()), file=sys.stderr)
    doc = {
        "made_by": "scripts/oracles/dicom_golden.py",
        "dcm2niix": version,
        "simpleitk": sitk.Version_VersionString(),
        "cases": cases,
    }
    with open(out, "w") as f:
        json.dump(doc, f, indent=1, sort_keys=True)
        f.write("\n")


if __name__ == "__main__":
    main()
