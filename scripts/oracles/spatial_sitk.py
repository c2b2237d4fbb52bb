#!/usr/bin/env python3
"""SimpleITK oracle for the `resample` node (nodes/tests/spatial.rs runs it live).

    spatial_sitk.py DATA_DIR OUT_DIR

Resamples real TotalSegmentator files with ITK's ResampleImageFilter onto grids computed here,
independently of vistaflow, and writes each result as OUT_DIR/<case>.nii.gz plus
OUT_DIR/cases.json: per case the output grid (size i,j,k; origin, spacing, direction row-major,
all LPS as ITK has them) and the fill value used.

Conventions the Rust side must match (documented in nodes/src/spatial):
- spacing-only grids keep direction and origin (first voxel centre), size
  round((n-1)*s/s') + 1 per axis (MONAI Spacing, scale_extent=False);
- images are cast to float32 and filled with their minimum outside; label maps nearest, 0.
Inputs are read with nibabel and handed to ITK with nibabel's affine (RAS -> LPS), so that
ITK's own NIfTI orientation rules cannot make the two sides start from different geometry.
"""
import json
import math
import os
import sys

import nibabel as nib
import numpy as np
import SimpleITK as sitk

LPS = np.diag([-1.0, -1.0, 1.0, 1.0])


def load(path, pixel):
    img = nib.load(path)
    a = LPS @ img.affine
    data = np.asarray(img.dataobj)
    arr = np.ascontiguousarray(data.transpose(2, 1, 0)).astype(pixel)  # [k, j, i]
    s = sitk.GetImageFromArray(arr)
    sp = np.linalg.norm(a[:3, :3], axis=0)
    s.SetSpacing([float(x) for x in sp])
    s.SetOrigin([float(x) for x in a[:3, 3]])
    s.SetDirection([float(x) for x in (a[:3, :3] / sp).flatten()])
    return s


def grid_of(img):
    return {
        "size": list(img.GetSize()),
        "origin": list(img.GetOrigin()),
        "spacing": list(img.GetSpacing()),
        "direction": list(img.GetDirection()),
    }


def spacing_grid(img, spacing):
    size = [
        int(round((n - 1) * s / t)) + 1
        for n, s, t in zip(img.GetSize(), img.GetSpacing(), spacing)
    ]
    return {
        "size": size,
        "origin": list(img.GetOrigin()),
        "spacing": list(spacing),
        "direction": list(img.GetDirection()),
    }


def resample(img, grid, interp, fill):
    f = sitk.ResampleImageFilter()
    f.SetSize([int(x) for x in grid["size"]])
    f.SetOutputOrigin(grid["origin"])
    f.SetOutputSpacing(grid["spacing"])
    f.SetOutputDirection(grid["direction"])
    f.SetInterpolator(sitk.sitkLinear if interp == "linear" else sitk.sitkNearestNeighbor)
    f.SetDefaultPixelValue(float(fill))
    f.SetOutputPixelType(img.GetPixelID())
    return f.Execute(img)


def main():
    data, out = sys.argv[1], sys.argv[2]
    ts = os.path.join(data, "totalsegmentator")
    os.makedirs(out, exist_ok=True)
    cases = {}

    def save(name, img, fill, interp, source):
        sitk.WriteImage(img, os.path.join(out, name + ".nii.gz"))
        cases[name] = {"grid": grid_of(img), "fill": float(fill), "interp": interp, "source": source}

    # 1. The 3 mm CT and its 61-label seg: to 1.5 mm and back onto the original grid.
    ct = load(os.path.join(ts, "example_ct.nii.gz"), np.float32)
    seg = load(os.path.join(ts, "example_seg_fast_force_split.nii.gz"), np.uint8)
    fill = float(sitk.GetArrayViewFromImage(ct).min())
    g15 = spacing_grid(ct, [1.5, 1.5, 1.5])
    ct15 = resample(ct, g15, "linear", fill)
    save("ct_15", ct15, fill, "linear", "example_ct")
    fill15 = float(sitk.GetArrayViewFromImage(ct15).min())
    save("ct_15_back", resample(ct15, grid_of(ct), "linear", fill15), fill15, "linear", "ct_15")
    seg15 = resample(seg, g15, "nearest", 0)
    save("seg_15", seg15, 0, "nearest", "example_seg")
    save("seg_15_back", resample(seg15, grid_of(seg), "nearest", 0), 0, "nearest", "seg_15")

    # 2. The 1.5 mm contrast CT down to an uneven spacing and back (non-integer ratios).
    act = load(os.path.join(ts, "aorta_report/example_ct.nii.gz"), np.float32)
    afill = float(sitk.GetArrayViewFromImage(act).min())
    gd = spacing_grid(act, [2.0, 2.3, 3.1])
    ad = resample(act, gd, "linear", afill)
    save("aorta_ct_down", ad, afill, "linear", "aorta_ct")
    dfill = float(sitk.GetArrayViewFromImage(ad).min())
    save("aorta_ct_down_back", resample(ad, grid_of(act), "linear", dfill), dfill, "linear",
         "aorta_ct_down")

    # 3. The aorta mask (cropped grid, other origin) onto the CT as reference.
    mask = load(os.path.join(ts, "aorta_report/test_result/models/aorta.nii.gz"), np.uint8)
    save("aorta_on_ct", resample(mask, grid_of(act), "nearest", 0), 0, "nearest", "aorta_mask")

    # 4. An oblique grid: the 3 mm CT's grid rotated 10 degrees about z and 5 about x,
    #    2.2 mm, shifted: exercises the general (non-separable) path.
    d = np.array(ct.GetDirection()).reshape(3, 3)
    t, u = math.radians(10), math.radians(5)
    rz = np.array([[math.cos(t), -math.sin(t), 0], [math.sin(t), math.cos(t), 0], [0, 0, 1]])
    rx = np.array([[1, 0, 0], [0, math.cos(u), -math.sin(u)], [0, math.sin(u), math.cos(u)]])
    gob = {
        "size": [150, 130, 140],
        "origin": list(np.array(ct.GetOrigin()) + np.array([-20.0, 15.0, -10.0])),
        "spacing": [2.2, 2.2, 2.2],
        "direction": [float(x) for x in (rz @ rx @ d).flatten()],
    }
    save("ct_oblique", resample(ct, gob, "linear", fill), fill, "linear", "example_ct")
    save("seg_oblique", resample(seg, gob, "nearest", 0), 0, "nearest", "example_seg")

    # 6. `fill: border` (MONAI Spacing's padding_mode): outside the input, the nearest edge
    #    value. ITK has no such mode for resampling, so the input is first padded by
    #    replicating its edge voxels (ZeroFluxNeumannPad, wider than any grid below reaches)
    #    and then resampled as usual. The 1.5 mm grid grown by 3 voxels at both ends of each
    #    axis (separable path) and the oblique grid above (general path).
    pad = [40, 40, 40]
    ct_pad = sitk.ZeroFluxNeumannPad(ct, pad, pad)
    seg_pad = sitk.ZeroFluxNeumannPad(seg, pad, pad)
    gx = dict(g15)
    dmat = np.array(ct.GetDirection()).reshape(3, 3)
    gx["origin"] = list(np.array(g15["origin"]) - dmat @ (3 * np.array(g15["spacing"])))
    gx["size"] = [n + 6 for n in g15["size"]]
    never = -30000.0  # the fill ITK would use past the padding: must not appear
    save("ct_15_border", resample(ct_pad, gx, "linear", never), never, "linear", "example_ct")
    save("ct_oblique_border", resample(ct_pad, gob, "linear", never), never, "linear", "example_ct")
    save("seg_oblique_border", resample(seg_pad, gob, "nearest", 255), 255, "nearest", "example_seg")

    # 5. Reorientation LPS -> RAS of the contrast CT by nibabel (exact permutation/flip).
    a = nib.load(os.path.join(ts, "aorta_report/example_ct.nii.gz"))
    ras = nib.as_closest_canonical(a)
    nib.save(nib.Nifti1Image(np.asarray(ras.dataobj), ras.affine), os.path.join(out, "aorta_ct_ras.nii.gz"))
    cases["aorta_ct_ras"] = {"axcodes": "".join(nib.aff2axcodes(ras.affine)),
                             "affine_ras": ras.affine.tolist()}

    with open(os.path.join(out, "cases.json"), "w") as f:
        json.dump(cases, f, indent=1)


if __name__ == "__main__":
    main()
