#!/usr/bin/env python3
# Picks the clicks of workflows/demo-click.yaml (LPS mm), each the voxel farthest from the border
# of the largest part of an error of the segmentation:
#   missed (positive click): the organ where the segmentation does not label it;
#   spread (negative click): the segmentation's label of the organ where the organ is not.
#   $VENV/bin/python scripts/demo-click-point.py SEG TRUTH VISTA3D_ID TOTALSEG_ID [missed|spread]
# The demo's: spleen (3 1) missed in out/demo/seg.nii.gz (after workflows/demo.yaml), then with
# only that click in place, spleen spread in out/demo-click/seg.nii.gz (after demo-click.yaml).
# (VENV: scripts/setup-python.sh.)
import sys, numpy as np, nibabel as nib
from scipy import ndimage
seg_path, truth_path, vista_id, ts_id = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
mode = sys.argv[5] if len(sys.argv) > 5 else "missed"
assert mode in ("missed", "spread"), mode
seg = nib.load(seg_path); truth = nib.load(truth_path)
s = np.asarray(seg.dataobj); t = np.asarray(truth.dataobj)
# truth onto seg's grid (same physical grid, maybe another axis order/sign)
ijk = np.indices(s.shape).reshape(3, -1)
world = seg.affine @ np.vstack([ijk, np.ones(ijk.shape[1])])
tijk = np.rint(np.linalg.inv(truth.affine) @ world)[:3].astype(int)
ok = np.all((tijk >= 0) & (tijk < np.array(t.shape)[:, None]), axis=0)
tt = np.zeros(ijk.shape[1], t.dtype); tt[ok] = t[tuple(tijk[:, ok])]
tt = tt.reshape(s.shape)
if mode == "missed":
    missed = (tt == ts_id) & (s != vista_id)
else:
    missed = (s == vista_id) & (tt != ts_id)
print("organ voxels", (tt == ts_id).sum(), mode, missed.sum())
lab, n = ndimage.label(missed)
sizes = ndimage.sum(missed, lab, range(1, n + 1))
big = lab == (1 + int(np.argmax(sizes)))
dist = ndimage.distance_transform_edt(np.pad(big, 1), sampling=seg.header.get_zooms()[:3])[1:-1, 1:-1, 1:-1]  # the slab's ends are borders too
v = np.unravel_index(np.argmax(dist), s.shape)
ras = seg.affine @ np.array([*v, 1.0])
print("largest %s component" % mode, int(sizes.max()), "voxel", v, "depth mm", dist.max())
print("lps_mm [%.1f, %.1f, %.1f]" % (-ras[0], -ras[1], ras[2]))
