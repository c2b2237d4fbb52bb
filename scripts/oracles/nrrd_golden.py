#!/usr/bin/env python3
"""Writes nodes/tests/golden/nrrd.json: what pynrrd and SimpleITK read from each pyradiomics
sample NRRD file, after checking that the two agree (affine within 1e-9 mm, identical
samples).

Usage: nrrd_golden.py [OUT]  (run with the venv from scripts/setup-python.sh, after
scripts/fetch-data.sh). Keys are "data:<path under data/>". Rerun when the file list changes.
"""
import json
import os
import sys

import nrrd
import numpy as np
import SimpleITK as sitk

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from nrrd_common import pynrrd_facts, sitk_facts  # noqa: E402

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
DATA = os.environ.get("VISTAFLOW_DATA", os.path.join(ROOT, "data"))

# pyradiomics 3.0.1 sdist data/: gzip NRRD, LPS, int16 images; labels int16 or int32.
FILES = [
    f"data:pyradiomics/{case}_{what}.nrrd"
    for case in ("lung1", "lung2", "brain1", "brain2", "breast1")
    for what in ("image", "label")
]


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "nodes", "tests", "golden", "nrrd.json")
    golden = {"pynrrd_version": nrrd.__version__, "simpleitk_version": sitk.Version_VersionString(), "files": {}}
    for key in FILES:
        path = os.path.join(DATA, key.split(":", 1)[1])
        if not os.path.exists(path):
            sys.exit(f"nrrd_golden: missing {path}; run scripts/fetch-data.sh first")
        p, s = pynrrd_facts(path), sitk_facts(path)
        diff = float(np.max(np.abs(np.array(p["affine_lps"], dtype=float) - np.array(s["affine_lps"], dtype=float))))
        if diff > 1e-9 or p["sha256"] != s["sha256"] or p["shape"] != s["shape"] or p["dtype"] != s["dtype"]:
            sys.exit(f"nrrd_golden: pynrrd and SimpleITK disagree on {path}: affine diff {diff}, {p} vs {s}")
        p["sitk_affine_max_diff"] = diff
        golden["files"][key] = p
    with open(out, "w") as f:
        json.dump(golden, f, indent=1, sort_keys=True)
        f.write("\n")
    print(f"nrrd_golden: wrote {len(FILES)} entries to {out}")


if __name__ == "__main__":
    main()
