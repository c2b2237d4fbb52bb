#!/usr/bin/env python3
"""MONAI's own VISTA3D click pipeline: the reference for the `vista3d_refine` node.

Usage:
  vista3d_refine_monai.py --image IN.nii.gz --weights W.safetensors --config config.json \\
      --points '[{"voxel": [i, j, k], "positive": true, "class": 1}, ...]' \\
      [--labels PRIOR.nii.gz] [--patch 128,128,128] --out OUT.nii.gz [--threads 2] [--prior-logit 1]
(run with the venv from scripts/setup-python.sh). Clicks are voxel indices of the input image
(nibabel's i, j, k) and global VISTA3D class ids; classes are done in order of first appearance.

Steps, as the model-zoo bundle `vista3d` without its Spacingd:
  LoadImaged(image[, labels]) + EnsureChannelFirstd
  CropForegroundd(source image, x > 0 on raw HU, margin 10, allow_smaller=True)
  ScaleIntensityRanged(image, -963.82.. 1053.68 -> 0..1, clip), Orientationd(RAS), EnsureTyped
  clicks: inv(affine after preprocessing) @ original affine, rounded to voxels
  point labels 1/0, VISTA3D.convert_point_label (2/3 for special classes)
  per class c: point_based_window_inferer(image, patch, model, point_coords, point_labels,
      class_vector=None, prompt_class=[[c]], prev_mask=(prior == c ? +L : -L) when a prior is
      given, transpose=True)   (point-only path of VISTA3D.forward: update_point_to_patch,
      point head, connected_components_combine with prev_mask)
  without a prior: VistaPostTransformd with points and no label_prompt
      (keep_components_with_positive_points, then > 0); NaN (no window) -> background
  with a prior: logits > 0; merged: class c where > 0, prior's c elsewhere cleared
  Invertd(nearest) to the input grid; outside the foreground crop the prior is kept.
Writes uint8/int16 labels under the input's header.
"""
import argparse
import json
import sys
import time

import nibabel as nib
import numpy as np
import torch
from safetensors.torch import load_file

from monai.apps.vista3d.inferer import point_based_window_inferer
from monai.apps.vista3d.transforms import VistaPostTransformd
from monai.data import MetaTensor
from monai.transforms import (
    Compose,
    CropForegroundd,
    EnsureChannelFirstd,
    EnsureTyped,
    Invertd,
    LoadImaged,
    Orientationd,
    ScaleIntensityRanged,
)
from vista3d_common import build as build_vista3d

HU_MIN = -963.8247715525971
HU_MAX = 1053.678477684517


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--image", required=True)
    ap.add_argument("--labels")
    ap.add_argument("--weights", required=True)
    ap.add_argument("--config", required=True)
    ap.add_argument("--points", required=True)
    ap.add_argument("--patch", default="128,128,128")
    ap.add_argument("--out", required=True)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--prior-logit", type=float, default=1.0)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    patch = [int(p) for p in args.patch.split(",")]
    points = json.loads(args.points)

    with open(args.config) as fh:
        model = build_vista3d(json.load(fh))
    model.load_state_dict(load_file(args.weights), strict=True)
    model.eval()

    keys = ["image"] + (["label"] if args.labels else [])
    pre = Compose(
        [
            LoadImaged(keys=keys, image_only=True),
            EnsureChannelFirstd(keys=keys),
            CropForegroundd(keys=keys, source_key="image", select_fn=lambda x: x > 0, margin=10, allow_smaller=True),
            ScaleIntensityRanged(keys="image", a_min=HU_MIN, a_max=HU_MAX, b_min=0.0, b_max=1.0, clip=True),
            Orientationd(keys=keys, axcodes="RAS"),
            EnsureTyped(keys="image", dtype=torch.float32),
        ]
    )
    src = {"image": args.image}
    if args.labels:
        src["label"] = args.labels
    data = pre(src)
    image = data["image"]
    after = np.asarray(image.affine, dtype=np.float64)
    orig = np.asarray(image.meta["original_affine"], dtype=np.float64)
    to_net = np.linalg.inv(after) @ orig

    t0 = time.perf_counter()
    labels = data["label"][0].round().long() if args.labels else torch.zeros(image.shape[1:], dtype=torch.long)
    classes = []
    for p in points:
        if p["class"] not in classes:
            classes.append(p["class"])
    for c in classes:
        mine = [p for p in points if p["class"] == c]
        coords = []
        for p in mine:
            v = to_net @ np.array([*p["voxel"], 1.0])
            coords.append(np.round(v[:3]).astype(int).tolist())
        point_coords = torch.tensor([coords], dtype=torch.float32)
        point_labels = torch.tensor([[1 if p["positive"] else 0 for p in mine]], dtype=torch.long)
        point_labels = model.convert_point_label(point_labels, label_set=[c])
        prev = None
        if args.labels:
            prev = torch.where(labels == c, args.prior_logit, -args.prior_logit).float()[None, None]
        with torch.no_grad():
            logits = point_based_window_inferer(
                inputs=image[None],
                roi_size=patch,
                predictor=model,
                point_coords=point_coords,
                point_labels=point_labels,
                class_vector=None,
                prompt_class=torch.tensor([[c]]),
                prev_mask=prev,
                transpose=True,
            )
        logits = logits.as_tensor() if isinstance(logits, MetaTensor) else logits
        if args.labels:
            mask = logits[0, 0] > 0
        else:
            d = {"pred": logits[0].clone(), "points": point_coords, "point_labels": point_labels}
            pred = VistaPostTransformd(keys="pred")(d)["pred"]
            mask = torch.nan_to_num(pred[0], nan=0.0) > 0
        print("vista3d_refine_monai: class %d, clicks %s, %d voxels" % (c, coords, int(mask.sum())), file=sys.stderr)
        labels = torch.where(mask, torch.tensor(c), torch.where(labels == c, torch.tensor(0), labels))
    t1 = time.perf_counter()

    data["pred"] = MetaTensor(labels[None].float(), affine=image.affine, meta=image.meta)
    data["inside"] = MetaTensor(torch.ones_like(labels)[None].float(), affine=image.affine, meta=image.meta)
    data = Invertd(keys=["pred", "inside"], transform=pre, orig_keys="image", nearest_interp=True, to_tensor=True)(data)
    seg = data["pred"].as_tensor()[0].round().long().numpy()
    inside = data["inside"].as_tensor()[0].round().long().numpy() > 0
    img = nib.load(args.image)
    if args.labels:
        prior = np.asarray(nib.load(args.labels).dataobj).round().astype(np.int64)
        seg = np.where(inside, seg, prior)
    if seg.shape != img.shape[:3]:
        sys.exit("vista3d_refine_monai: inverted shape %s != input shape %s" % (seg.shape, img.shape))
    inv_aff = np.asarray(data["pred"].affine, dtype=np.float64)
    if not np.allclose(inv_aff, img.affine, atol=1e-4):
        sys.exit("vista3d_refine_monai: inverted affine\n%s\n!= input affine\n%s" % (inv_aff, img.affine))
    dtype = np.uint8 if seg.max() <= 255 else np.int16
    hdr = img.header.copy()
    hdr.set_data_dtype(dtype)
    out = nib.Nifti1Image(seg.astype(dtype), img.affine, hdr)
    out.header.set_slope_inter(1, 0)
    nib.save(out, args.out)
    print("vista3d_refine_monai: wrote %s, inference %.2f s" % (args.out, t1 - t0))


if __name__ == "__main__":
    main()
