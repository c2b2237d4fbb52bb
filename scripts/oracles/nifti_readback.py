#!/usr/bin/env python3
"""Prints, as one JSON object, what nibabel reads from a NIfTI file (e.g. one vistaflow wrote):
affine, codes, sform/qform, pixdim, shape, dtype (after nibabel's scaling) and the sha256 of
the data's little-endian bytes in Fortran (i fastest) order. Usage: nifti_readback.py PATH
"""
import json
import os
import sys

import nibabel as nib

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from nifti_common import file_facts  # noqa: E402


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: nifti_readback.py PATH")
    facts = file_facts(sys.argv[1])
    hdr = nib.load(sys.argv[1]).header
    facts["pixdim"] = [float(v) for v in hdr["pixdim"]]
    facts["xyzt_units"] = int(hdr["xyzt_units"])
    # The qform nibabel itself would store for this file's sform (set_qform strips shears):
    # a writer's qform must match it.
    h2 = hdr.copy()
    h2.set_qform(hdr.get_sform(), code=1)
    facts["qform_from_sform"] = [[float(v) for v in row] for row in h2.get_qform()]
    print(json.dumps(facts, sort_keys=True))


if __name__ == "__main__":
    main()
