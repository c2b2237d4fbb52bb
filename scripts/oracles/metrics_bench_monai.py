#!/usr/bin/env python3
"""The `metrics` benchmark, MONAI side: a synthetic but realistic pair of 512x512x300 label maps
with 20 classes, and the time MONAI 1.6.1 takes for the full metric set on them (CPU).

Usage (the venv from scripts/setup-python.sh; scripts/bench-metrics.sh drives it):
  metrics_bench_monai.py --write-only DIR     writes DIR/reference.nii.gz, DIR/prediction.nii.gz
  metrics_bench_monai.py --dir DIR [--threads N] [--json FILE]
                                              times MONAI on them; JSON on stdout (and in FILE)

The pair (seeded, deterministic): uint8, 512x512x300, spacing 0.8 x 0.8 x 1.5 mm (array axes
i, j, k; affine diag(0.8, 0.8, 1.5) plus an origin), labels = 20 ids drawn from 1..117.
  reference   20 rotated ellipsoids with a lumpy surface (radius x (1 + 0.12 noise), the noise a
              trilinearly upsampled coarse Gaussian field), mean semi-axes from 4 to 80 mm (log-uniform),
              drawn largest first so that later (smaller) ones overwrite: touching and nested
              organs, some cut by the volume's faces
  prediction  each reference class, class by class in the same order: 8 shifted by up to 3 voxels
              per axis, 4 eroded by 1-2 voxels, 4 dilated by 1-2 voxels (6-connected cross), 2 with
              a disconnected false-positive ellipsoid added, 2 untouched

How MONAI gets its one-hot inputs (and why): one class at a time, as 2-channel one-hot float32
tensors [1, 2, 512, 512, 300]: channel 0 = (label != c), channel 1 = (label == c), for y (the
reference) and y_pred (the prediction), i.e. what AsDiscrete(to_onehot=2) gives for the binary
mask. include_background=False drops channel 0, so each call computes exactly the per-class value
that a [1, 21, ...] one-hot would give in its channel (MONAI computes every channel independently).
The 21-channel float32 one-hot would be 6.6 GB per tensor (13.2 GB for the pair, and MeanIoU
allocates another 6.3 GB product): more than a 23 GB machine can spare beside a build.
The conversion is timed apart ("onehot_s", all 20 classes); "metrics_s" sums the metric calls
only; "total_s" = onehot_s + metrics_s; loading the two NIfTI files ("load_s") is in neither.

Metrics (as in scripts/oracles/metrics_golden.py, reduction="none", include_background=False,
spacing=(0.8, 0.8, 1.5) from the header): DiceMetric, MeanIoU, HausdorffDistanceMetric(percentile=95),
HausdorffDistanceMetric(), SurfaceDistanceMetric(symmetric=True), SurfaceDiceMetric(class_thresholds
=[2.0]). Every distance metric extracts the surfaces and distances again (MONAI has no sharing).
Peak RSS: resource.getrusage(RUSAGE_SELF).ru_maxrss of this process (loading included).
"""
import argparse
import json
import os
import resource
import sys
import time
import warnings

import numpy as np

SHAPE = (512, 512, 300)
SPACING = (0.8, 0.8, 1.5)
N_CLASSES = 20
SEED = 7
NSD_TOLERANCE_MM = 2.0


# --- the synthetic pair ---------------------------------------------------------------------------
def random_rotation(rng):
    q, r = np.linalg.qr(rng.normal(size=(3, 3)))
    q = q * np.sign(np.diag(r))
    if np.linalg.det(q) < 0:
        q[:, 0] = -q[:, 0]
    return q


def coarse_noise(rng, shape, cell=12):
    """A smooth unit-variance field on `shape`: a coarse Gaussian grid, trilinearly upsampled."""
    from scipy import ndimage

    coarse = rng.normal(size=[max(2, s // cell + 2) for s in shape])
    zoom = [(s - 1) / (c - 1) if c > 1 else 1 for s, c in zip(shape, coarse.shape)]
    f = ndimage.zoom(coarse, zoom, order=1, prefilter=False)[: shape[0], : shape[1], : shape[2]]
    return f / max(f.std(), 1e-6)


def ellipsoid(rng, center, semi_mm, rot, lumpy=0.12, margin=2):
    """(slices, mask) of a lumpy rotated ellipsoid; center in voxels, semi-axes in mm."""
    sp = np.asarray(SPACING)
    half = np.ceil(max(semi_mm) * (1 + 3 * lumpy) / sp).astype(int) + margin
    lo = np.maximum(np.floor(center).astype(int) - half, 0)
    hi = np.minimum(np.floor(center).astype(int) + half + 1, SHAPE)
    if np.any(hi <= lo):
        return None
    sl = tuple(slice(int(a), int(b)) for a, b in zip(lo, hi))
    g = np.meshgrid(*[((np.arange(a, b) - c) * s).astype(np.float32) for a, b, c, s in zip(lo, hi, center, sp)],
                    indexing="ij")
    r2 = np.zeros(g[0].shape, np.float32)
    for ax in range(3):  # coordinates in the ellipsoid's frame, mm, scaled by the semi-axes
        u = g[0] * np.float32(rot[0, ax]) + g[1] * np.float32(rot[1, ax]) + g[2] * np.float32(rot[2, ax])
        r2 += (u / np.float32(semi_mm[ax])) ** 2
    r = np.sqrt(r2)
    noise = coarse_noise(rng, r.shape)
    return sl, r <= 1.0 + lumpy * noise


def shift_mask(m, d):
    """m moved by d voxels (zero fill)."""
    out = np.zeros_like(m)
    src = tuple(slice(max(-k, 0), n - max(k, 0)) for k, n in zip(d, m.shape))
    dst = tuple(slice(max(k, 0), n - max(-k, 0)) for k, n in zip(d, m.shape))
    out[dst] = m[src]
    return out


def make_pair():
    from scipy import ndimage

    rng = np.random.default_rng(SEED)
    ids = sorted(int(v) for v in rng.choice(np.arange(1, 118), N_CLASSES, replace=False))
    # Sizes: log-uniform mean semi-axis 4..80 mm, aspect up to 2:1; largest drawn first.
    means = np.exp(rng.uniform(np.log(4.0), np.log(80.0), N_CLASSES))
    order = np.argsort(-means)
    ref = np.zeros(SHAPE, np.uint8)
    specs = {}
    for n in order:
        c = ids[n]
        semi = means[n] * rng.uniform(0.6, 1.4, 3)
        # in a central "body" region so that organs touch and nest
        center = np.array([rng.uniform(0.25, 0.75) * SHAPE[0], rng.uniform(0.25, 0.75) * SHAPE[1],
                           rng.uniform(0.1, 0.9) * SHAPE[2]])
        if n % 7 == 0:  # a few cut by the volume's faces
            center[n % 3] = rng.uniform(0, 0.03) * SHAPE[n % 3]
        rot = random_rotation(rng)
        sl, m = ellipsoid(rng, center, semi, rot)
        ref[sl][m] = c
        specs[c] = (semi, center, rot)
    present = [c for c in ids if (ref == c).any()]
    assert len(present) == N_CLASSES, "a class was overwritten entirely; change SEED"

    cross = ndimage.generate_binary_structure(3, 1)
    kinds = ["shift"] * 8 + ["erode"] * 4 + ["dilate"] * 4 + ["fp"] * 2 + ["none"] * 2
    kinds = [kinds[i] for i in rng.permutation(len(kinds))]
    pred = np.zeros(SHAPE, np.uint8)
    notes = {}
    for n in order:
        c, kind = ids[n], kinds[n]
        idx = np.nonzero(ref == c)
        lo = np.maximum(np.array([a.min() for a in idx]) - 6, 0)
        hi = np.minimum(np.array([a.max() for a in idx]) + 7, SHAPE)
        sl = tuple(slice(int(a), int(b)) for a, b in zip(lo, hi))
        m = ref[sl] == c
        if kind == "shift":
            d = [int(v) for v in rng.integers(-3, 4, 3)]
            m = shift_mask(m, d)
            notes[c] = "shifted by %s voxels" % d
        elif kind == "erode":
            it = int(rng.integers(1, 3))
            m = ndimage.binary_erosion(m, cross, iterations=it)
            notes[c] = "eroded by %d" % it
        elif kind == "dilate":
            it = int(rng.integers(1, 3))
            m = ndimage.binary_dilation(m, cross, iterations=it)
            notes[c] = "dilated by %d" % it
        else:
            notes[c] = "untouched" if kind == "none" else "plus a false-positive blob"
        pred[sl][m] = c
        if kind == "fp":
            for _ in range(100):
                center = np.array([rng.uniform(0.05, 0.95) * s for s in SHAPE])
                if ref[tuple(center.astype(int))] == 0:
                    break
            sl2, m2 = ellipsoid(rng, center, np.array([4.0, 6.0, 5.0]), random_rotation(rng))
            pred[sl2][m2 & (ref[sl2] == 0)] = c
    return ref, pred, notes


def write_pair(out):
    import nibabel as nib

    os.makedirs(out, exist_ok=True)
    t0 = time.perf_counter()
    ref, pred, notes = make_pair()
    aff = np.diag(list(SPACING) + [1.0])
    aff[:3, 3] = [-204.4, -204.4, -450.0]
    for name, arr in (("reference", ref), ("prediction", pred)):
        img = nib.Nifti1Image(arr, aff)
        img.set_qform(aff, code=1)
        img.set_sform(aff, code=1)
        nib.save(img, os.path.join(out, name + ".nii.gz"))
    with open(os.path.join(out, "perturbation.json"), "w") as fh:
        json.dump({str(k): v for k, v in sorted(notes.items())}, fh, indent=1)
    sizes = {c: int((ref == c).sum()) for c in notes}
    print("metrics_bench_monai: wrote %s/{reference,prediction}.nii.gz in %.1f s; class voxels %d..%d"
          % (out, time.perf_counter() - t0, min(sizes.values()), max(sizes.values())), file=sys.stderr)


# --- the MONAI timing -----------------------------------------------------------------------------
def bench(d, threads):
    import nibabel as nib
    import torch
    from monai.metrics import (DiceMetric, HausdorffDistanceMetric, MeanIoU, SurfaceDiceMetric,
                               SurfaceDistanceMetric)

    torch.set_num_threads(threads)
    t0 = time.perf_counter()
    ri, pi = nib.load(os.path.join(d, "reference.nii.gz")), nib.load(os.path.join(d, "prediction.nii.gz"))
    ref = torch.from_numpy(np.asarray(ri.dataobj))
    pred = torch.from_numpy(np.asarray(pi.dataobj))
    spacing = [float(z) for z in ri.header.get_zooms()[:3]]  # array axis order (i, j, k)
    load_s = time.perf_counter() - t0
    classes = sorted(({int(v) for v in torch.unique(ref)} | {int(v) for v in torch.unique(pred)}) - {0})
    assert len(classes) == N_CLASSES, classes

    names = ("dice", "iou", "hd95", "hd", "assd", "nsd")
    times = {k: 0.0 for k in names}
    values = {}
    onehot_s = 0.0
    for c in classes:
        t = time.perf_counter()
        y = torch.stack([ref != c, ref == c]).to(torch.float32)[None]
        y_pred = torch.stack([pred != c, pred == c]).to(torch.float32)[None]
        onehot_s += time.perf_counter() - t
        metrics = {
            "dice": (DiceMetric(include_background=False, reduction="none"), {}),
            "iou": (MeanIoU(include_background=False, reduction="none"), {}),
            "hd95": (HausdorffDistanceMetric(include_background=False, percentile=95, reduction="none"),
                     {"spacing": spacing}),
            "hd": (HausdorffDistanceMetric(include_background=False, reduction="none"), {"spacing": spacing}),
            "assd": (SurfaceDistanceMetric(include_background=False, symmetric=True, reduction="none"),
                     {"spacing": spacing}),
            "nsd": (SurfaceDiceMetric(class_thresholds=[NSD_TOLERANCE_MM], include_background=False,
                                      reduction="none"), {"spacing": spacing}),
        }
        row = {}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for k in names:
                m, kw = metrics[k]
                t = time.perf_counter()
                v = m(y_pred, y, **kw)
                times[k] += time.perf_counter() - t
                row[k] = float(v.reshape(-1)[0])
        values[str(c)] = row
        del y, y_pred
        print("  class %3d: %s" % (c, "  ".join("%s %.4f" % (k, row[k]) for k in names)), file=sys.stderr)

    metrics_s = sum(times.values())
    return {
        "bench": "monai",
        "monai": __import__("monai").__version__,
        "torch": torch.__version__,
        "threads": threads,
        "shape": list(ref.shape),
        "spacing": spacing,
        "classes": len(classes),
        "load_s": round(load_s, 3),
        "onehot_s": round(onehot_s, 3),
        "metrics_s": round(metrics_s, 3),
        "total_s": round(onehot_s + metrics_s, 3),
        "per_metric_s": {k: round(v, 3) for k, v in times.items()},
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "values": values,
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    g = ap.add_mutually_exclusive_group(required=True)
    g.add_argument("--write-only", metavar="DIR", help="write the pair into DIR and stop")
    g.add_argument("--dir", metavar="DIR", help="time MONAI on DIR/{reference,prediction}.nii.gz")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", metavar="FILE", help="also write the result JSON here")
    a = ap.parse_args()
    if a.write_only:
        write_pair(a.write_only)
        return
    res = bench(a.dir, a.threads)
    text = json.dumps(res)
    print(text)
    if a.json:
        with open(a.json, "w") as fh:
            fh.write(text + "\n")
    print("monai: %d classes, %s, total %.1f s (one-hot %.1f s + metrics %.1f s; load %.1f s), peak RSS %.0f MiB"
          % (res["classes"], "x".join(map(str, res["shape"])), res["total_s"], res["onehot_s"], res["metrics_s"],
             res["load_s"], res["peak_rss_mib"]), file=sys.stderr)
    print("monai: per metric (s): " + ", ".join("%s %.1f" % kv for kv in res["per_metric_s"].items()),
          file=sys.stderr)


if __name__ == "__main__":
    main()
