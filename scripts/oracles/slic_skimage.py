#!/usr/bin/env python3
"""Oracle for the `supervoxels` node: scikit-image's 3D SLIC on the same windowed CT crop.

Usage: slic_skimage.py CT.nii.gz K0 K1 J0 J1 I0 I1 OUT --n-segments N --compactness C
       --sigma S --window LO HI --air-below-hu A --max-iterations M
       [--no-spacing] [--no-connectivity]

The crop is [K0:K1, J0:J1, I0:I1] of the volume in vistaflow's [k, j, i] order (nibabel's
array transposed). Writes two label volumes as little-endian int32 in that order:
- OUT.slic.raw: the public `skimage.segmentation.slic` (its own seeding, connectivity);
- OUT.core.raw: skimage's k-means core (`_slic_cython`, private) started from *our* grid
  seeds, spatial pass then intensity pass, without connectivity enforcement: this isolates
  the distance, windows and centre updates from the seeding, which cannot be matched;
and prints a JSON line with the figures the Rust test checks (label counts, HU sum, steps).

Params are mapped onto skimage's so that both minimise the same distance
(I - I_c)^2 + c^2 (d / S)^2, with I the [0, 1]-windowed intensity, d in mm, S our seed step:
- skimage rescales the masked image to [0, 1] again (range r of the windowed body values) and
  divides squared spatial distances (mm with `spacing=`) by its step in *voxels* (from its
  k-means seeding), so compactness_skimage = c * step_skimage / (S * r);
- a scalar sigma is divided by the spacing in skimage; we pass a per-axis list, which is not,
  so both smooth by `sigma` voxels.
What cannot be matched is the seeding: skimage seeds a masked image by k-means on random mask
points (RandomState(123)) and refines the seeds spatially first; we seed on a regular grid.
"""

import argparse
import json

import math

import nibabel as nib
import numpy as np
from scipy import ndimage
from skimage.segmentation import slic
from skimage.segmentation._slic import _slic_cython
from skimage.segmentation.slic_superpixels import _get_mask_centroids


def grid_seeds(mask, spacing, s):
    """vistaflow's seeds: a grid S apart over the body's bounding box, kept on the body."""
    nz = np.nonzero(mask)
    axes = []
    for a in range(3):
        lo, hi = int(nz[a].min()), int(nz[a].max()) + 1
        extent = float(hi - lo)
        n = max(1, math.floor(extent * spacing[a] / s + 0.5))
        axes.append([lo + int((m + 0.5) * extent / n) for m in range(n)])
    seeds = [(k, j, i) for k in axes[0] for j in axes[1] for i in axes[2] if mask[k, j, i]]
    if not seeds:
        seeds = [tuple(int(x[0]) for x in nz)]
    return np.array(seeds, dtype=np.float64)


def core(x, mask, a, spacing):
    """skimage's k-means from our seeds, our distance: (I - I_c)^2 / c^2 + (d_mm / S)^2."""
    sp = np.ones(3) if spacing is None else spacing
    s = (mask.sum() * float(np.prod(sp)) / a.n_segments) ** (1.0 / 3.0)
    seeds = grid_seeds(mask, sp, s)
    sm = ndimage.gaussian_filter(x, a.sigma, mode="reflect", truncate=4.0) if a.sigma > 0 else x
    ratio = 1.0 / a.compactness
    image = np.ascontiguousarray(sm[..., np.newaxis] * ratio)
    values = image[tuple(seeds.astype(int).T)]
    segments = np.ascontiguousarray(np.concatenate([seeds, values], axis=1))
    m8 = np.ascontiguousarray(mask.view("uint8"))
    sp = np.ascontiguousarray(sp, dtype=np.float64)
    # Keywords: the positional order of these flags differs between skimage versions.
    common = dict(slic_zero=False, start_label=1)
    _slic_cython(image, m8, segments, s, a.max_iterations, sp, ignore_color=True, **common)
    labels = _slic_cython(image, m8, segments, s, a.max_iterations, sp, ignore_color=False, **common)
    labels = np.where(mask, labels, 0)
    return labels, len(seeds)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("nifti")
    ap.add_argument("crop", type=int, nargs=6)
    ap.add_argument("out")
    ap.add_argument("--n-segments", type=int, default=400)
    ap.add_argument("--compactness", type=float, default=0.01)
    ap.add_argument("--sigma", type=float, default=3.0)
    ap.add_argument("--window", type=float, nargs=2, default=[-1000.0, 1000.0])
    ap.add_argument("--air-below-hu", type=float, default=-800.0)
    ap.add_argument("--max-iterations", type=int, default=10)
    ap.add_argument("--no-spacing", action="store_true")
    ap.add_argument("--no-connectivity", action="store_true")
    a = ap.parse_args()

    img = nib.load(a.nifti)
    hu = np.asarray(img.get_fdata(), dtype=np.float64).transpose(2, 1, 0)
    k0, k1, j0, j1, i0, i1 = a.crop
    hu = np.ascontiguousarray(hu[k0:k1, j0:j1, i0:i1])
    zooms = img.header.get_zooms()[:3]
    spacing = None if a.no_spacing else np.array([zooms[2], zooms[1], zooms[0]], float)

    mask = hu >= a.air_below_hu
    lo, hi = a.window
    x = np.clip((hu - lo) / (hi - lo), 0.0, 1.0)
    r = float(x[mask].max() - x[mask].min()) or 1.0

    # skimage's own seeding and step, to translate compactness (see above).
    _, steps = _get_mask_centroids(mask.view("uint8"), a.n_segments, False)
    step_sk = float(max(steps))
    cell = 1.0 if spacing is None else float(np.prod(spacing))
    s_ours = (mask.sum() * cell / a.n_segments) ** (1.0 / 3.0)
    c_sk = a.compactness * step_sk / (s_ours * r)

    labels = slic(
        x,
        n_segments=a.n_segments,
        compactness=c_sk,
        max_num_iter=a.max_iterations,
        sigma=[a.sigma] * 3,
        spacing=spacing,
        enforce_connectivity=not a.no_connectivity,
        mask=mask,
        start_label=1,
        channel_axis=None,
    )
    labels.astype("<i4").tofile(a.out + ".slic.raw")
    core_labels, n_seeds = core(x, mask, a, spacing)
    core_labels.astype("<i4").tofile(a.out + ".core.raw")
    print(
        json.dumps(
            {
                "shape": list(labels.shape),
                "n_labels": int(len(np.unique(labels[labels > 0]))),
                "hu_sum": float(hu.sum()),
                "body_voxels": int(mask.sum()),
                "step_skimage_voxels": step_sk,
                "step_ours": s_ours,
                "range": r,
                "compactness_skimage": c_sk,
                "core_seeds": n_seeds,
                "core_n_labels": int(len(np.unique(core_labels[core_labels > 0]))),
            }
        )
    )


if __name__ == "__main__":
    main()
