#!/usr/bin/env python3
"""Prints, as one JSON object {"pynrrd": {...}, "sitk": {...}}, what pynrrd and SimpleITK read
from a NRRD file (e.g. one vistaflow wrote): LPS affine, shape in vistaflow's [C,] k, j, i
order, dtype and the sha256 of the samples (see nrrd_common.py). A reader that fails is
reported as {"error": "..."} in its place. Usage: nrrd_readback.py PATH
"""
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from nrrd_common import pynrrd_facts, sitk_facts  # noqa: E402


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: nrrd_readback.py PATH")
    out = {}
    for name, f in (("pynrrd", pynrrd_facts), ("sitk", sitk_facts)):
        try:
            out[name] = f(sys.argv[1])
        except Exception as e:  # noqa: BLE001 - reported to the test
            out[name] = {"error": f"{type(e).__name__}: {e}"}
    print(json.dumps(out, sort_keys=True))


if __name__ == "__main__":
    main()
