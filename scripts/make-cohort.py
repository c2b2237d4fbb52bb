#!/usr/bin/env python3
"""Makes a demo cohort from the TotalSegmentator sample CT and its label map (fetched by
scripts/fetch-data.sh): 12 subjects, each a crop of the CT along z (different lengths and
positions), some shifted in patient space (origin moved) and some stored flipped along x
(voxel order reversed, affine adjusted: the same anatomy in patient space), with the label
map cropped, shifted and flipped alike. Also three bad subjects for the bad-input check: a
row whose image is missing, a truncated (corrupt) CT, and an unreadable label map.

    scripts/make-cohort.py [OUT]      (default data/cohort-demo)

Writes OUT/sNN/ct.nii.gz + labels.nii.gz, OUT/subjects.csv (the 12 good ones) and
OUT/subjects-with-bad.csv (the 12 plus the 3 bad ones). Deterministic: the same bytes on
every run (gzip without a timestamp).
"""
import gzip
import io
import os
import sys

import nibabel as nib
import numpy as np

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
SRC = os.path.join(ROOT, "data", "totalsegmentator")
OUT = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "data", "cohort-demo")

# (first slice, slices, origin shift in mm (x, y, z), flip x)
SUBJECTS = [
    (40, 48, (0, 0, 0), False),
    (36, 48, (10, 0, 0), False),
    (44, 48, (0, -12, 0), True),
    (38, 56, (0, 0, 30), False),
    (42, 40, (-15, 6, 0), True),
    (34, 52, (0, 0, 0), True),
    (46, 44, (5, 5, -20), False),
    (40, 60, (0, 0, 0), False),
    (32, 48, (-8, 0, 12), True),
    (48, 40, (0, 9, 0), False),
    (37, 50, (3, -3, 3), True),
    (43, 46, (0, 0, -9), False),
]


def save(img, path):
    """NIfTI gzip with mtime 0, so the file's bytes (and cache keys) never change."""
    raw = img.to_bytes()
    with open(path, "wb") as f:
        with gzip.GzipFile(fileobj=f, mode="wb", mtime=0, filename="") as g:
            g.write(raw)


def subject(ct, seg, first, n, shift, flip):
    a = ct.affine.copy()
    sl = (slice(None), slice(None), slice(first, first + n))
    c, s = np.asarray(ct.dataobj)[sl], np.asarray(seg.dataobj)[sl]
    a[:3, 3] += a[:3, 2] * first + np.array(shift, dtype=float)
    if flip:
        # Reverse the voxel order along i: voxel i' = nx-1-i, the same point in space.
        nx = c.shape[0]
        a[:3, 3] += a[:3, 0] * (nx - 1)
        a[:3, 0] = -a[:3, 0]
        c, s = c[::-1].copy(), s[::-1].copy()
    ci = nib.Nifti1Image(c.astype(np.int16), a)
    si = nib.Nifti1Image(s.astype(np.uint8), a)
    for i in (ci, si):
        i.set_qform(a, code=1)
        i.set_sform(a, code=1)
    return ci, si


def main():
    ct = nib.load(os.path.join(SRC, "example_ct.nii.gz"))
    seg = nib.load(os.path.join(SRC, "example_seg_fast_force_split.nii.gz"))
    os.makedirs(OUT, exist_ok=True)
    rows = []
    for k, (first, n, shift, flip) in enumerate(SUBJECTS, 1):
        sid = f"s{k:02d}"
        d = os.path.join(OUT, sid)
        os.makedirs(d, exist_ok=True)
        ci, si = subject(ct, seg, first, n, shift, flip)
        save(ci, os.path.join(d, "ct.nii.gz"))
        save(si, os.path.join(d, "labels.nii.gz"))
        rows.append(f"{sid},{sid}/ct.nii.gz,{sid}/labels.nii.gz")
    header = "SUBJECT,IMAGE,LABELS"
    with open(os.path.join(OUT, "subjects.csv"), "w") as f:
        f.write("\n".join([header] + rows) + "\n")
    # The bad ones: a missing image, a CT cut off mid-data, a label map that is not gzip.
    os.makedirs(os.path.join(OUT, "bad-corrupt"), exist_ok=True)
    os.makedirs(os.path.join(OUT, "bad-labels"), exist_ok=True)
    good = open(os.path.join(OUT, "s01", "ct.nii.gz"), "rb").read()
    raw = gzip.decompress(good)
    with open(os.path.join(OUT, "bad-corrupt", "ct.nii.gz"), "wb") as f:
        with gzip.GzipFile(fileobj=f, mode="wb", mtime=0, filename="") as g:
            g.write(raw[: len(raw) // 2])
    with open(os.path.join(OUT, "bad-labels", "labels.nii.gz"), "wb") as f:
        f.write(b"\x1f\x8b this is not a gzip stream")
    bad = [
        "bad-missing,bad-missing/ct.nii.gz,s01/labels.nii.gz",
        "bad-corrupt,bad-corrupt/ct.nii.gz,s01/labels.nii.gz",
        "bad-labels,s02/ct.nii.gz,bad-labels/labels.nii.gz",
    ]
    with open(os.path.join(OUT, "subjects-with-bad.csv"), "w") as f:
        f.write("\n".join([header] + rows[:6] + bad + rows[6:]) + "\n")
    print(f"{len(SUBJECTS)} subjects (+3 bad) in {OUT}")


if __name__ == "__main__":
    main()
