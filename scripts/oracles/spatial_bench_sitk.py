#!/usr/bin/env python3
"""SimpleITK side of the resample benchmark (nodes/tests/spatial.rs, ignored test `bench_...`).

    spatial_bench_sitk.py THREADS NI NJ NK SI SJ SK

Builds a synthetic int16 volume like the Rust side's, casts it to float32 (what vistaflow's
linear path computes in) and times ResampleImageFilter (linear) to 1.5 mm on the grid that
`resample` uses (same origin and direction, n' = round((n-1)*s/1.5)+1), best of 3. Prints one
line with the time and the peak RSS growth.
"""
import resource
import sys
import time

import numpy as np
import SimpleITK as sitk


def rss_peak_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def main():
    threads = int(sys.argv[1])
    ni, nj, nk = (int(x) for x in sys.argv[2:5])
    sp = [float(x) for x in sys.argv[5:8]]
    sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(threads)
    z = np.arange(nk, dtype=np.float32).reshape(nk, 1, 1)
    y = np.arange(nj, dtype=np.float32).reshape(1, nj, 1)
    x = np.arange(ni, dtype=np.float32).reshape(1, 1, ni)
    t = np.sin(x * 0.05) * np.cos(y * 0.031) * 400.0 + z * 0.5 - 300.0
    t = np.where(x + y > 0.4 * (ni + nj), t, -1024.0).astype(np.int16)
    img = sitk.GetImageFromArray(t)
    del t, x, y, z
    img.SetSpacing(sp)
    img.SetOrigin([-200.0, -180.0, -400.0])
    size = [int(round((n - 1) * s / 1.5)) + 1 for n, s in zip(img.GetSize(), sp)]
    base = rss_peak_mb()
    best = float("inf")
    for _ in range(3):
        t0 = time.perf_counter()
        f = sitk.Cast(img, sitk.sitkFloat32)
        r = sitk.ResampleImageFilter()
        r.SetSize(size)
        r.SetOutputOrigin(img.GetOrigin())
        r.SetOutputSpacing([1.5, 1.5, 1.5])
        r.SetOutputDirection(img.GetDirection())
        r.SetInterpolator(sitk.sitkLinear)
        r.SetDefaultPixelValue(-1024.0)
        out = r.Execute(f)
        best = min(best, time.perf_counter() - t0)
        del f, out
    print(
        f"SimpleITK {sitk.Version_VersionString()} ResampleImageFilter {[ni, nj, nk]} int16 -> "
        f"float32 -> 1.5 mm linear {size}: best of 3 {best:.3f} s (cast included), {threads} "
        f"threads, peak RSS growth {rss_peak_mb() - base:.0f} MB"
    )


if __name__ == "__main__":
    main()
