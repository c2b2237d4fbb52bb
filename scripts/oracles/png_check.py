#!/usr/bin/env python3
"""Checks a vistaflow PNG preview sheet against an independent rendering with nibabel + numpy,
read back with pillow. Prints one JSON object.

Usage: png_check.py SHEET.png LABELS.nii.gz IMAGE.nii.gz|- < spec.json

spec.json: {"rows": [{"id": 5, "tiles": {"axial": [x, y, w, h], "coronal": [...],
"sagittal": [...]}}, ...], "colours": {"5": [r, g, b], ...}, "alpha": [2, 5],
"window": [lo, hi] (grey levels; ignored without an image), "ids": [only these classes, or
null for all]}

The rendering follows the sheet's documentation, written again from scratch: both volumes
are brought to RAS with nibabel's as_closest_canonical; display coordinates count from the
patient's right, anterior and inferior ends; each class's slices are its voxel centroid
(rounded half up) or the nearest slice holding the class (the lower on a tie); axial tiles
run patient right -> left across and anterior -> posterior down, coronal right -> left and
superior -> inferior, sagittal anterior -> posterior and superior -> inferior; a pixel takes
the voxel whose span holds its centre. A labelled pixel is (a*colour + (d-a)*grey + d//2)//d;
the row's class is outlined (opaque colour) where a pixel straight left, right, up or down
within 1 px (2 px when the tile's shorter side is >= 120 px) inside the tile is not the class.

Output: {"size": [w, h], "mode": ..., "compared": N, "mismatched": M, "max_err": E,
"examples": [...], "centres": {"5": [dx, dy, dz], ...}}
"""
import json
import sys

import nibabel as nib
import numpy as np
from PIL import Image


def display(path):
    """The volume as a numpy array indexed [dx, dy, dz] (towards patient L, P, S)."""
    img = nib.as_closest_canonical(nib.load(path))
    a = np.asarray(img.dataobj)
    return a[::-1, ::-1, :]


def centre(counts):
    total = int(counts.sum())
    moment = int((np.arange(len(counts), dtype=np.int64) * counts).sum())
    c = (2 * moment + total) // (2 * total)
    if counts[c] > 0:
        return c
    for r in range(1, len(counts)):
        for d in (c - r, c + r):
            if 0 <= d < len(counts) and counts[d] > 0:
                return d
    return c


def sample(n, length):
    return (((2 * np.arange(length) + 1) * n) // (2 * length)).clip(0, n - 1)


def plane(vol, view, c):
    """(2D array indexed [across, down-display-index], across n, down n, superior up)."""
    if view == "axial":
        return vol[:, :, c[2]], False
    if view == "coronal":
        return vol[:, c[1], :], True
    return vol[c[0], :, :], True


def main():
    sheet_path, labels_path, image_path = sys.argv[1:4]
    spec = json.load(sys.stdin)
    im = Image.open(sheet_path)
    mode = im.mode
    rgb = np.asarray(im.convert("RGB")).astype(np.int64)
    lab = display(labels_path).astype(np.int64)
    if spec.get("ids") is not None:
        lab = np.where(np.isin(lab, spec["ids"]), lab, 0)
    grey = None
    if image_path != "-":
        v = display(image_path).astype(np.float64)
        lo, hi = spec["window"]
        grey = np.floor(np.clip((v - lo) / (hi - lo), 0, 1) * 255 + 0.5).astype(np.int64)
    colours = {int(k): np.array(v) for k, v in spec["colours"].items()}
    a, d = spec["alpha"]
    out = {"size": [im.width, im.height], "mode": mode, "compared": 0, "mismatched": 0,
           "max_err": 0, "examples": [], "centres": {}}
    for row in spec["rows"]:
        cid = row["id"]
        mask = lab == cid
        c = [centre(mask.sum(axis=tuple(x for x in range(3) if x != w))) for w in range(3)]
        out["centres"][str(cid)] = [int(x) for x in c]
        for view, (x, y, w, h) in row["tiles"].items():
            lp, up = plane(lab, view, c)
            gp = plane(grey, view, c)[0] if grey is not None else np.zeros_like(lp)
            cols = sample(lp.shape[0], w)
            rows = sample(lp.shape[1], h)
            if up:
                rows = lp.shape[1] - 1 - rows
            L = lp[np.ix_(cols, rows)].T  # [v, u]
            G = gp[np.ix_(cols, rows)].T
            want = np.repeat(G[:, :, None], 3, axis=2)
            for k in np.unique(L):
                if k == 0:
                    continue
                m = L == k
                want[m] = (a * colours[int(k)][None, :] + (d - a) * G[m][:, None] + d // 2) // d
            me = L == cid
            edge = np.zeros_like(me)
            for t in range(1, 3 if min(w, h) >= 120 else 2):
                edge[:, t:] |= me[:, t:] & ~me[:, :-t]
                edge[:, :-t] |= me[:, :-t] & ~me[:, t:]
                edge[t:, :] |= me[t:, :] & ~me[:-t, :]
                edge[:-t, :] |= me[:-t, :] & ~me[t:, :]
            want[edge] = colours[cid]
            got = rgb[y:y + h, x:x + w]
            err = np.abs(got - want).max(axis=2)
            bad = err > 1
            out["compared"] += int(err.size)
            out["mismatched"] += int(bad.sum())
            out["max_err"] = max(out["max_err"], int(err.max()))
            if bad.any() and len(out["examples"]) < 5:
                vv, uu = np.argwhere(bad)[0]
                out["examples"].append({"id": cid, "view": view, "u": int(uu), "v": int(vv),
                                        "got": got[vv, uu].tolist(),
                                        "want": want[vv, uu].tolist()})
    print(json.dumps(out))


if __name__ == "__main__":
    main()
