#!/usr/bin/env python3
# Picks the click of workflows/demo-click.yaml: a point (LPS mm) deep inside the largest part of
# an organ that the automatic result misses (the missed voxel farthest from that part's border).
#   $VENV/bin/python scripts/demo-click-point.py out/demo/seg.nii.gz \
#       data/totalsegmentator/example_seg_dicom.nii.gz VISTA3D_ID TOTALSEG_ID   (spleen: 3 1)
# (VENV: scripts/setup-python.sh; run workflows/demo.yaml first.)
import sys, numpy as np, nibabel as nib
from scipy import ndimage
seg_path, truth_path, vista_id, ts_id = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
seg = nib.load(seg_path); truth = nib.load(truth_path)
s = np.asarray(seg.dataobj); t = np.asarray(truth.dataobj)
# truth onto seg's grid (same physical grid, maybe another axis order/sign)
ijk = np.indices(s.shape).reshape(3, -1)
world = seg.affine @ np.vstack([ijk, np.ones(ijk.shape[1])])
tijk = np.rint(np.linalg.inv(truth.affine) @ world)[:3].astype(int)
ok = np.all((tijk >= 0) & (tijk < np.array(t.shape)[:, None]), axis=0)
tt = np.zeros(ijk.shape[1], t.dtype); tt[ok] = t[tuple(tijk[:, ok])]
tt = tt.reshape(s.shape)
missed = (tt == ts_id) & (s != vista_id)
print("organ voxels", (tt == ts_id).sum(), "missed", missed.sum())
lab, n = ndimage.label(missed)
sizes = ndimage.sum(missed, lab, range(1, n + 1))
big = lab == (1 + int(np.argmax(sizes)))
dist = ndimage.distance_transform_edt(np.pad(big, 1), sampling=seg.header.get_zooms()[:3])[1:-1, 1:-1, 1:-1]  # the slab's ends are borders too
v = np.unravel_index(np.argmax(dist), s.shape)
ras = seg.affine @ np.array([*v, 1.0])
print("largest missed component", int(sizes.max()), "voxel", v, "depth mm", dist.max())
print("lps_mm [%.1f, %.1f, %.1f]" % (-ras[0], -ras[1], ras[2]))
