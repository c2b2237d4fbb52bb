"""Planning structures computed with scipy, for the `structures` node's test
(nodes/tests/structures.rs): margins by scipy.ndimage.distance_transform_edt with the voxel
spacing (exact Euclidean), booleans with numpy.

usage: structures_scipy.py SPEC.json OUT_DIR
SPEC: {"labels_raw": int32 [D,H,W] file, "shape": [D,H,W], "spacing_dhw": [sk, sj, si] mm,
"structures": the node's definitions (names of classes are ids as text), "image_raw": float32
[D,H,W] file (for body_hu)}. A body: scipy.ndimage.label (6-connectivity) of image > body_hu,
its largest component, then binary_fill_holes on each slice [k, :, :] (4-connectivity).
Writes OUT_DIR/<name>.u8 (one byte per voxel) for every structure.
"""
import json
import sys
from pathlib import Path

import numpy as np
from scipy import ndimage

TIE = 5e-10  # the node compares squared distances with 1e-9 of slack


def grow(m, spacing, r_xyz):
    r = np.array([r_xyz[2], r_xyz[1], r_xyz[0]], dtype=float)  # (k, j, i)
    if not m.any():
        return np.zeros_like(m)
    # distance in units of the margin per axis; an axis without margin cannot be crossed
    sampling = np.where(r > 0, np.array(spacing) / np.where(r > 0, r, 1), 1e12)
    return ndimage.distance_transform_edt(~m, sampling=sampling) <= 1 + TIE


def shrink(m, spacing, r_xyz):
    return m & ~grow(~m, spacing, r_xyz)


def body(image, threshold):
    comp, n = ndimage.label(image > threshold)
    if n == 0:
        return np.zeros(image.shape, dtype=bool)
    sizes = np.bincount(comp.ravel())
    sizes[0] = 0
    m = comp == sizes.argmax()
    for k in range(m.shape[0]):
        m[k] = ndimage.binary_fill_holes(m[k])
    return m


def main(spec_path, out_dir):
    spec = json.loads(Path(spec_path).read_text())
    shape = spec["shape"]
    labels = np.fromfile(spec["labels_raw"], dtype="<i4").reshape(shape)
    spacing = spec["spacing_dhw"]
    made = {}

    def get(name):
        return made[name] if name in made else labels == int(name)

    for d in spec["structures"]:
        m = np.zeros(shape, dtype=bool)
        if "body_hu" in d:
            image = np.fromfile(spec["image_raw"], dtype="<f4").reshape(shape)
            m = body(image, d["body_hu"])
        for name in ([d["from"]] if "from" in d else []) + d.get("union", []):
            m |= get(name)
        if "margin_mm" in d:
            r = d["margin_mm"]
            r = [r, r, r] if isinstance(r, (int, float)) else r
            if all(x >= 0 for x in r):
                m = grow(m, spacing, r) if any(r) else m
            else:
                m = shrink(m, spacing, [-x for x in r])
        if "ring_mm" in d:
            inner, outer = d["ring_mm"]
            m = grow(m, spacing, [outer] * 3) & ~(grow(m, spacing, [inner] * 3) if inner > 0 else m)
        for name in d.get("intersect", []):
            m &= get(name)
        for name in d.get("subtract", []):
            m &= ~get(name)
        made[d["name"]] = m
        m.astype(np.uint8).tofile(Path(out_dir) / f"{d['name']}.u8")


if __name__ == "__main__":
    main(*sys.argv[1:])
