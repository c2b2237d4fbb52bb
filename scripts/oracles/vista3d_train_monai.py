#!/usr/bin/env python3
"""MONAI's VISTA3D training loop on CPU, timed: the reference steps/second for the Rust training
node's benchmark.

Usage:
  vista3d_train_monai.py [--image CT.nii.gz] [--labels SEG.nii.gz] [--steps 20] [--warmup 3] \\
      [--patch 64 64 64] [--threads 2] [--out result.json]
(run with the venv from scripts/setup-python.sh). Defaults: data/totalsegmentator/example_ct.nii.gz
and example_seg_fast_force_split.nii.gz (TotalSegmentator v2 ids, 3 mm).

Network: vista3d_common.build(DEMO) (16 features, blocks (1,2,1,1)), torch.manual_seed(0), train mode.
Once, untimed (as the bundle, without Spacingd): LoadImaged + EnsureChannelFirstd, labels mapped to
VISTA3D ids (liver 5->1, spleen 1->3, kidney R 2->5 / L 3->14, stomach 6->12, aorta 52->6, others 0),
CropForegroundd(source image, raw HU > 0, margin 10), ScaleIntensityRanged(-963.8..1053.7 -> 0..1,
clip), Orientationd(RAS), SpatialPadd(patch).
Each timed step, like the Rust loop:
  RandCropByPosNegLabeld(pos 2, neg 1, patch, 1 sample) + RandScaleIntensityd(0.1) + RandShiftIntensityd(0.1)
  sample_prompt_pairs(labels, [1,3,5,14,12,6], max_foreprompt 4, max_backprompt 1, max_point 5, no drops)
      -> label_prompt [N,1], point [N,P,3], point_label [N,P] (-1 rows: background prompts), prompt_class [N,1]
      (a patch with no foreground prompt is resampled, so every step runs both heads)
  out_point, out_auto = model.image_encoder(x, with_point=True, with_label=True)   each [1,16,X,Y,Z]
  class_logits, _ = model.class_head(out_auto, label_prompt)                        [N,1,X,Y,Z]
  point_logits = model.point_head(out_point, point[fg], point_label[fg], class_vector=prompt_class[fg])  [B,1,X,Y,Z]
  loss = DiceCE(class_logits, labels == label_prompt) + DiceCE(point_logits, labels == prompt_class[fg])
      with DiceCELoss(sigmoid, squared_pred, smooth_nr 0, smooth_dr 1e-5); AdamW(lr 1e-3, wd 1e-5) step.
Writes {"steps", "seconds", "steps_per_second", "patch", "threads", "config", "losses", "torch", "monai",
"resamples", "peak_rss_mb"}; prints the same summary.
"""
import argparse
import json
import os
import random
import resource
import sys
import time

import numpy as np
import torch

import monai
from monai.apps.vista3d.sampler import sample_prompt_pairs
from monai.losses import DiceCELoss
from monai.transforms import (Compose, CropForegroundd, EnsureChannelFirstd, EnsureTyped, Lambdad, LoadImaged,
                              Orientationd, RandCropByPosNegLabeld, RandScaleIntensityd, RandShiftIntensityd,
                              ScaleIntensityRanged, SpatialPadd)

from vista3d_common import build

DEMO = {"encoder_embed_dim": 16, "blocks_down": [1, 2, 1, 1], "n_classes": 512, "last_supported": 132,
        "max_prompt": 32, "mlp_dim": 512, "num_heads": 4, "depth": 2}
HU_MIN, HU_MAX = -963.8247715525971, 1053.678477684517
DATASET_TO_VISTA = {5: 1, 1: 3, 2: 5, 3: 14, 6: 12, 52: 6}  # liver, spleen, kidney R, kidney L, stomach, aorta
LABEL_SET = [1, 3, 5, 14, 12, 6]
ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")


def map_labels(seg):
    """TotalSegmentator ids -> VISTA3D ids; every other id -> 0."""
    out = torch.zeros_like(seg, dtype=torch.float32)  # keeps the MetaTensor's affine
    for src, dst in DATASET_TO_VISTA.items():
        out[seg == src] = dst
    return out


def preprocess(image_path, labels_path, patch):
    keys = ["image", "label"]
    return Compose([
        LoadImaged(keys=keys, image_only=True),
        EnsureChannelFirstd(keys=keys),
        Lambdad(keys="label", func=map_labels),
        CropForegroundd(keys=keys, source_key="image", select_fn=lambda x: x > 0, margin=10, allow_smaller=True),
        ScaleIntensityRanged(keys="image", a_min=HU_MIN, a_max=HU_MAX, b_min=0.0, b_max=1.0, clip=True),
        Orientationd(keys=keys, axcodes="RAS"),
        SpatialPadd(keys=keys, spatial_size=patch),
        EnsureTyped(keys=keys, dtype=torch.float32, track_meta=False),
    ])({"image": image_path, "label": labels_path})


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--image", default=os.path.join(ROOT, "data/totalsegmentator/example_ct.nii.gz"))
    ap.add_argument("--labels", default=os.path.join(ROOT, "data/totalsegmentator/example_seg_fast_force_split.nii.gz"))
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--patch", type=int, nargs=3, default=[64, 64, 64])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out")
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    random.seed(0)
    np.random.seed(0)
    torch.manual_seed(0)
    model = build(DEMO)
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=1e-5)
    dice_ce = DiceCELoss(sigmoid=True, squared_pred=True, smooth_nr=0, smooth_dr=1e-5)

    data = preprocess(args.image, args.labels, args.patch)
    print("vista3d_train_monai: volume %s, labels present %s" % (
        list(data["image"].shape), sorted(int(v) for v in data["label"].unique())), file=sys.stderr)
    augment = Compose([
        RandCropByPosNegLabeld(keys=["image", "label"], label_key="label", spatial_size=args.patch,
                               pos=2, neg=1, num_samples=1),
        RandScaleIntensityd(keys="image", factors=0.1, prob=1.0),
        RandShiftIntensityd(keys="image", offsets=0.1, prob=1.0),
    ]).set_random_state(seed=0)

    resamples = 0

    def sample():
        """A patch [1,1,X,Y,Z], its labels and prompts with at least one foreground prompt."""
        nonlocal resamples
        while True:
            patch = augment(data)[0]
            x, labels = patch["image"][None], patch["label"][None]
            label_prompt, point, point_label, prompt_class = sample_prompt_pairs(
                labels, label_set=LABEL_SET, max_prompt=None, max_foreprompt=4, max_backprompt=1, max_point=5,
                include_background=False, drop_label_prob=0, drop_point_prob=0)
            if label_prompt is not None:
                fg = (point_label != -1).any(dim=1)
                if fg.any():
                    return x, labels, label_prompt, point[fg], point_label[fg], prompt_class[fg]
            resamples += 1

    def step():
        x, labels, label_prompt, point, point_label, prompt_class = sample()
        out_point, out_auto = model.image_encoder(x, with_point=True, with_label=True)
        class_logits, _ = model.class_head(out_auto, label_prompt)  # [N,1,X,Y,Z]
        point_logits = model.point_head(out_point, point, point_label, class_vector=prompt_class)  # [B,1,X,Y,Z]
        class_target = (labels[0] == label_prompt.view(-1, 1, 1, 1)).float()[:, None]  # [N,1,X,Y,Z]
        point_target = (labels[0] == prompt_class.view(-1, 1, 1, 1)).float()[:, None]  # [B,1,X,Y,Z]
        loss = dice_ce(class_logits, class_target) + dice_ce(point_logits, point_target)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        return float(loss.detach())

    for i in range(args.warmup):
        print("vista3d_train_monai: warmup %d loss %.5f" % (i, step()), file=sys.stderr)
    losses = []
    t0 = time.perf_counter()
    for _ in range(args.steps):
        losses.append(step())
    seconds = time.perf_counter() - t0

    peak_rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux: KiB
    result = {"steps": args.steps, "seconds": seconds, "steps_per_second": args.steps / seconds,
              "patch": args.patch, "threads": args.threads, "config": DEMO, "losses": losses,
              "torch": torch.__version__, "monai": monai.__version__, "resamples": resamples,
              "peak_rss_mb": peak_rss_mb}
    print("vista3d_train_monai: %d steps in %.2f s = %.3f steps/s (patch %s, %d threads), peak RSS %.0f MB" % (
        args.steps, seconds, result["steps_per_second"], args.patch, args.threads, peak_rss_mb))
    print("vista3d_train_monai: losses %s" % " ".join("%.5f" % v for v in losses))
    if args.out:
        with open(args.out, "w") as fh:
            json.dump(result, fh, indent=1)


if __name__ == "__main__":
    main()
