#!/usr/bin/env python3
"""SimpleITK side of the resample benchmark (nodes/tests/spatial.rs, ignored test `bench_...`).

    spatial_bench_sitk.py THREADS NI NJ NK SI SJ SK

Builds a synthetic int16 volume like the Rust side's and times ResampleImageFilter (linear,
int16 in, float32 out, as vistaflow's `resample` does) to 1.5 mm on the grid that `resample`
uses (same origin and direction, n' = round((n-1)*s/1.5)+1), best of 3. Prints one line with
the time and the peak RSS above the input.
"""
import resource
import sys
import time

import numpy as np
import SimpleITK as sitk


def rss_peak_mb():
    """Peak resident memory since the last reset_peak() (Linux VmHWM)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def reset_peak():
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass


def main():
    threads = int(sys.argv[1])
    ni, nj, nk = (int(x) for x in sys.argv[2:5])
    sp = [float(x) for x in sys.argv[5:8]]
    sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(threads)
    y = np.arange(nj, dtype=np.float32).reshape(nj, 1)
    x = np.arange(ni, dtype=np.float32).reshape(1, ni)
    plane = np.sin(x * 0.05) * np.cos(y * 0.031) * 400.0 - 300.0
    air = x + y <= 0.4 * (ni + nj)
    t = np.empty((nk, nj, ni), dtype=np.int16)
    for k in range(nk):  # slice by slice: no volume-sized float temporaries
        t[k] = np.where(air, -1024.0, plane + k * 0.5).astype(np.int16)
    img = sitk.GetImageFromArray(t)
    del t
    img.SetSpacing(sp)
    img.SetOrigin([-200.0, -180.0, -400.0])
    size = [int(round((n - 1) * s / 1.5)) + 1 for n, s in zip(img.GetSize(), sp)]
    best = float("inf")
    grow = 0.0
    for _ in range(3):
        reset_peak()
        base = rss_peak_mb()
        t0 = time.perf_counter()
        r = sitk.ResampleImageFilter()
        r.SetSize(size)
        r.SetOutputOrigin(img.GetOrigin())
        r.SetOutputSpacing([1.5, 1.5, 1.5])
        r.SetOutputDirection(img.GetDirection())
        r.SetInterpolator(sitk.sitkLinear)
        r.SetDefaultPixelValue(-1024.0)
        r.SetOutputPixelType(sitk.sitkFloat32)
        out = r.Execute(img)
        best = min(best, time.perf_counter() - t0)
        grow = max(grow, rss_peak_mb() - base)
        del out
    print(
        f"SimpleITK {sitk.Version_VersionString()} ResampleImageFilter {[ni, nj, nk]} int16 -> "
        f"1.5 mm linear float32 {size}: best of 3 {best:.3f} s, {threads} threads, "
        f"peak RSS above input {grow:.0f} MB"
    )


if __name__ == "__main__":
    main()
