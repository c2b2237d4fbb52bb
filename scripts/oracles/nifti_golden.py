#!/usr/bin/env python3
"""Writes nodes/tests/golden/nifti.json: what nibabel reads from each test NIfTI file.

Usage: nifti_golden.py [OUT]  (run with the venv from scripts/setup-python.sh, after
scripts/fetch-data.sh). Paths are keys of the form "data:<path under data/>" or
"colin27:<name>" (/usr/share/mricron/templates). Rerun when the file list changes.
"""
import json
import os
import sys

import nibabel as nib

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from nifti_common import file_facts  # noqa: E402

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
DATA = os.environ.get("VISTAFLOW_DATA", os.path.join(ROOT, "data"))
COLIN = "/usr/share/mricron/templates"

FILES = [
    # TotalSegmentator 2.18.0 reference files: sform 2, qform 0, scl_slope NaN.
    "data:totalsegmentator/example_ct.nii.gz",  # int32 CT, 3 mm
    "data:totalsegmentator/example_ct_sm.nii.gz",  # int16 CT
    "data:totalsegmentator/example_mr_sm.nii.gz",  # int16 MR
    "data:totalsegmentator/example_seg.nii.gz",  # uint8, 41 labels
    "data:totalsegmentator/example_seg_mr.nii.gz",
    "data:totalsegmentator/example_seg_dicom.nii.gz",  # y flipped in the sform only
    "data:totalsegmentator/example_seg_fast_force_split.nii.gz",
    "data:totalsegmentator/aorta_report/test_result/models/aorta.nii.gz",  # cropped grid
    "data:totalsegmentator/aorta_report/example_ct.nii.gz",
    "data:totalsegmentator/spine_report/example_ct_report/spine_report.nii.gz",  # RGB24
    # nibabel's test files.
    "data:nibabel/anatomical.nii",  # big endian, qform 2 + sform 2, qfac -1
    "data:nibabel/example4d.nii.gz",  # 4D, 2 volumes
    "data:nibabel/example_nifti2.nii.gz",  # NIfTI-2, 4D
    "data:nibabel/functional.nii",  # 4D, 20 volumes
    "data:nibabel/standard.nii.gz",
    # Colin27 (apt mricron-data): qform 0, sform 4 (MNI).
    "colin27:ch2.nii.gz",
    "colin27:ch2bet.nii.gz",
    "colin27:aal.nii.gz",
]


def resolve(key):
    kind, rel = key.split(":", 1)
    return os.path.join(DATA if kind == "data" else COLIN, rel)


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "nodes", "tests", "golden", "nifti.json")
    golden = {"nibabel_version": nib.__version__, "files": {}}
    for key in FILES:
        path = resolve(key)
        if not os.path.exists(path):
            sys.exit(f"nifti_golden: missing {path}; run scripts/fetch-data.sh first")
        golden["files"][key] = file_facts(path)
    with open(out, "w") as f:
        json.dump(golden, f, indent=1, sort_keys=True)
        f.write("\n")
    print(f"nifti_golden: wrote {len(FILES)} entries to {out}")


if __name__ == "__main__":
    main()
