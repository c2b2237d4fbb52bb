#!/usr/bin/env python3
"""Times SimpleITK (and pynrrd) reading a NRRD file and SimpleITK writing it back (gzip and
raw), best of N runs, as one JSON object of seconds. Usage: nrrd_bench.py PATH OUTDIR [N]
"""
import json
import os
import sys
import time

import nrrd
import SimpleITK as sitk


def best(f, n):
    t = float("inf")
    for _ in range(n):
        s = time.perf_counter()
        f()
        t = min(t, time.perf_counter() - s)
    return t


def main():
    path, outdir = sys.argv[1], sys.argv[2]
    n = int(sys.argv[3]) if len(sys.argv) > 3 else 3
    img = sitk.ReadImage(path)
    gz = os.path.join(outdir, "sitk_gzip.nrrd")
    raw = os.path.join(outdir, "sitk_raw.nrrd")
    out = {
        "sitk_read": best(lambda: sitk.ReadImage(path), n),
        "pynrrd_read": best(lambda: nrrd.read(path), n),
        "sitk_write_gzip": best(lambda: sitk.WriteImage(img, gz, True), n),
        "sitk_write_raw": best(lambda: sitk.WriteImage(img, raw, False), n),
    }
    out["sitk_gzip_bytes"] = os.path.getsize(gz)
    print(json.dumps(out, sort_keys=True))


if __name__ == "__main__":
    main()
