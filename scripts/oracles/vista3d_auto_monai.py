#!/usr/bin/env python3
"""MONAI's own VISTA3D automatic (class prompt) segmentation pipeline: the reference for the
`vista3d_auto` node.

Usage:
  vista3d_auto_monai.py --image IN.nii.gz --weights W.safetensors --config config.json \\
      --classes 1,3,5,14 [--patch 128,128,128] [--overlap 0.3] [--sw-batch 1] --out OUT.nii.gz \\
      [--threads 2] [--timing-json T.json] [--device cpu|cuda]
(run with the venv from scripts/setup-python.sh). --classes are global VISTA3D ids, already
expanded (kidney 2 -> 14,5 etc. is the caller's business); --config is the config.json written next
to the weights by scripts/oracles/vista3d_small.py / vista3d_full_parity.py.

Steps, as the model-zoo bundle `vista3d` (configs/inference.json) without its Spacingd (1.5 mm):
  LoadImaged(image, image_only) + EnsureChannelFirstd
  CropForegroundd(source image, select_fn x > 0 on raw HU, margin 10, allow_smaller=True)
  ScaleIntensityRanged(a_min -963.8247715525971, a_max 1053.678477684517, b 0..1, clip)
  Orientationd(RAS), EnsureTyped(float32)
  sliding_window_inference(image[None], roi=patch, sw_batch, model, overlap, mode gaussian,
      sigma_scale 0.125, padding constant 0, with_coord=True, transpose=True,
      class_vector=[[c] for c in classes])      -> logits [1, n_classes, H, W, D]
  VistaPostTransformd(pred = logits[0], label_prompt = classes)  -> [1, H, W, D] global ids
  Invertd(pred, the preprocessing Compose, orig_keys image, nearest_interp) -> original grid
  (voxels outside the foreground crop are 0: the inverse of the crop pads with zeros)
The result is written with nibabel under the input's own header/affine (uint8, or int16 when an
id exceeds 255), after checking that MONAI's inverted affine equals the input's.
Timing json: {"total_s" (load .. save), "sliding_window_s", "peak_rss_mib" (ru_maxrss), ...}.
"""
import argparse
import json
import resource
import sys
import time

import nibabel as nib
import numpy as np
import torch
from safetensors.torch import load_file

from monai.apps.vista3d.transforms import VistaPostTransformd
from monai.data import MetaTensor
from monai.inferers import sliding_window_inference
from vista3d_common import build as build_vista3d
from monai.transforms import (
    Compose,
    CropForegroundd,
    EnsureChannelFirstd,
    EnsureTyped,
    Invertd,
    LoadImaged,
    Orientationd,
    ScaleIntensityRanged,
    Spacingd,
)

HU_MIN = -963.8247715525971
HU_MAX = 1053.678477684517


def build_model(config_path, weights_path):
    with open(config_path) as fh:
        cfg = json.load(fh)
    model = build_vista3d(cfg)
    sd = load_file(weights_path)
    model.load_state_dict(sd, strict=True)
    model.eval()
    return model


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--image", required=True)
    ap.add_argument("--weights", required=True)
    ap.add_argument("--config", required=True)
    ap.add_argument("--classes", required=True, help="comma-separated global class ids")
    ap.add_argument("--patch", default="128,128,128")
    ap.add_argument("--overlap", type=float, default=0.3)
    ap.add_argument("--sw-batch", type=int, default=1)
    ap.add_argument("--out", required=True)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--timing-json")
    ap.add_argument("--device", default="cpu", help="cuda: the network, the stitching and the "
                    "post-processing on the GPU, as the bundle does there (sw_device = device = cuda)")
    ap.add_argument("--spacing", type=float, help="resample to this isotropic spacing first (Spacingd, "
                    "bilinear, as the bundle's first transform); default: no resampling")
    args = ap.parse_args()

    if args.classes == "everything":
        import os
        table = os.path.join(os.path.dirname(__file__), "../../nodes/src/vista3d/vista3d_labels.json")
        with open(table) as fh:
            classes = json.load(fh)["everything_labels"]
    else:
        classes = [int(c) for c in args.classes.split(",") if c.strip()]
    if not classes or any(c <= 0 for c in classes):
        sys.exit("vista3d_auto_monai: --classes must be positive global ids (0 is background)")
    patch = [int(p) for p in args.patch.split(",")]
    if len(patch) != 3:
        sys.exit("vista3d_auto_monai: --patch needs three sizes")
    torch.set_num_threads(args.threads)

    dev = torch.device(args.device)
    model = build_model(args.config, args.weights).to(dev)

    t0 = time.perf_counter()
    spacing = [Spacingd(keys="image", pixdim=[args.spacing] * 3, mode="bilinear")] if args.spacing else []
    preprocessing = Compose(
        [
            LoadImaged(keys="image", image_only=True),
            EnsureChannelFirstd(keys="image"),
            *spacing,
            CropForegroundd(keys="image", source_key="image", select_fn=lambda x: x > 0, margin=10, allow_smaller=True),
            ScaleIntensityRanged(keys="image", a_min=HU_MIN, a_max=HU_MAX, b_min=0.0, b_max=1.0, clip=True),
            Orientationd(keys="image", axcodes="RAS"),
            EnsureTyped(keys="image", dtype=torch.float32),
        ]
    )
    data = preprocessing({"image": args.image})
    image = data["image"]
    print("vista3d_auto_monai: input after preprocessing %s %s" % (list(image.shape), image.dtype), file=sys.stderr)

    class_vector = torch.tensor(classes, dtype=torch.int64)[:, None]
    t1 = time.perf_counter()
    with torch.no_grad():
        logits = sliding_window_inference(
            inputs=image[None],
            roi_size=patch,
            sw_batch_size=args.sw_batch,
            predictor=model,
            overlap=args.overlap,
            mode="gaussian",
            sigma_scale=0.125,
            padding_mode="constant",
            cval=0.0,
            with_coord=True,
            transpose=True,
            class_vector=class_vector.to(dev),
            sw_device=dev,
            device=dev,
        )
    if dev.type == "cuda":
        torch.cuda.synchronize()
    t2 = time.perf_counter()
    if tuple(logits.shape) != (1, len(classes), *image.shape[1:]):
        sys.exit("vista3d_auto_monai: sliding window gave %s, expected [1,%d,%s]" % (list(logits.shape), len(classes), list(image.shape[1:])))
    print("vista3d_auto_monai: logits %s, max|v| %.4g" % (list(logits.shape), logits.abs().max().item()), file=sys.stderr)

    data["pred"] = logits[0]
    data["label_prompt"] = torch.tensor(classes, dtype=torch.int64)
    data = VistaPostTransformd(keys="pred")(data)
    data["pred"] = data["pred"].cpu()
    data = Invertd(
        keys="pred", transform=preprocessing, orig_keys="image", nearest_interp=True, to_tensor=True
    )(data)
    pred = data["pred"]
    seg = pred.as_tensor() if isinstance(pred, MetaTensor) else pred
    seg = seg[0].round().to(torch.int64).numpy()

    orig = nib.load(args.image)
    if seg.shape != orig.shape[:3]:
        sys.exit("vista3d_auto_monai: inverted shape %s != input shape %s" % (seg.shape, orig.shape))
    if isinstance(pred, MetaTensor):
        inv_aff = np.asarray(pred.affine, dtype=np.float64)
        if not np.allclose(inv_aff, orig.affine, atol=1e-4):
            sys.exit("vista3d_auto_monai: inverted affine\n%s\n!= input affine\n%s" % (inv_aff, orig.affine))
    dtype = np.uint8 if seg.max() <= 255 else np.int16
    hdr = orig.header.copy()
    hdr.set_data_dtype(dtype)
    out_img = nib.Nifti1Image(seg.astype(dtype), orig.affine, hdr)
    out_img.header.set_slope_inter(1, 0)
    nib.save(out_img, args.out)
    t3 = time.perf_counter()

    peak_rss_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    ids, counts = np.unique(seg, return_counts=True)
    hist = {int(i): int(c) for i, c in zip(ids, counts)}
    print("vista3d_auto_monai: wrote %s %s %s" % (args.out, list(seg.shape), np.dtype(dtype).name))
    print("vista3d_auto_monai: label histogram %s" % json.dumps(hist))
    timing = {
        "total_s": t3 - t0,
        "sliding_window_s": t2 - t1,
        "peak_rss_mib": peak_rss_mib,
        "threads": args.threads,
        "device": args.device,
        "peak_gpu_mib": torch.cuda.max_memory_allocated() / 2**20 if dev.type == "cuda" else None,
        "patch": patch,
        "overlap": args.overlap,
        "sw_batch": args.sw_batch,
        "classes": classes,
        "preprocessed_shape": list(image.shape[1:]),
        "histogram": hist,
    }
    print("vista3d_auto_monai: total %.3f s, sliding window %.3f s, peak RSS %.0f MiB" % (t3 - t0, t2 - t1, peak_rss_mib))
    if args.timing_json:
        with open(args.timing_json, "w") as fh:
            json.dump(timing, fh, indent=1)
            fh.write("\n")


if __name__ == "__main__":
    main()
