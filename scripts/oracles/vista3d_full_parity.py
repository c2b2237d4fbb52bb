#!/usr/bin/env python3
"""Full-size VISTA3D parity fixture and CPU benchmark (not run in CI: one forward is about a minute
and the weights are 872 MB).

Usage (venv from scripts/setup-python.sh):
  vista3d_full_parity.py --weights-out W.safetensors --golden-out G.safetensors [--config-out C.json]
                         [--threads 2] [--size 128] [--device cpu]
  vista3d_full_parity.py --bench-only N [--threads 2] [--size 128] [--device cpu]

Builds MONAI's vista3d132() (217,964,982 parameters) with torch.manual_seed(0) default-init random
weights, eval mode, float32. The first form saves the whole state_dict (with the buffer
point_head.pe_layer.positional_encoding_gaussian_matrix) to --weights-out, runs one forward on
image = torch.randn(1,1,S,S,S) (seed 1, S = --size, default 128) with class_vector [[1],[3],[5]],
and saves `image` [1,1,S,S,S] f32, `class_vector` [3,1] i64 and `class_logits` [3,1,S,S,S] f32 to
--golden-out; --config-out writes the config.json that the Rust side and vista3d_auto_monai.py read.
It prints the forward's wall time. --bench-only N runs one warm-up forward, then times N forwards
and prints {"seconds_per_forward": ..., ...} as JSON; nothing is written.
"""
import argparse
import json
import os
import sys
import time

import torch
from safetensors.torch import save_file

from monai.networks.nets import vista3d132

from vista3d_common import FULL

CONFIG = FULL


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--weights-out")
    ap.add_argument("--golden-out")
    ap.add_argument("--config-out")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--size", type=int, default=128, help="input edge (multiple of 16)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--bench-only", type=int, metavar="N")
    args = ap.parse_args()
    if args.bench_only is None and not (args.weights_out and args.golden_out):
        ap.error("give --weights-out and --golden-out, or --bench-only N")
    if args.size % 16:
        ap.error("--size must be a multiple of 16")

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = vista3d132()
    model.eval()
    n_params = sum(p.numel() for p in model.parameters())
    print("vista3d_full_parity: vista3d132, %d parameters, %d state-dict entries" % (n_params, len(model.state_dict())), file=sys.stderr)

    torch.manual_seed(1)
    s = args.size
    image = torch.randn(1, 1, s, s, s, dtype=torch.float32)
    class_vector = torch.tensor([[1], [3], [5]], dtype=torch.int64)
    dev = torch.device(args.device)
    model = model.to(dev)

    def forward():
        with torch.no_grad():
            out = model(image.to(dev), class_vector=class_vector.to(dev))
        if dev.type == "cuda":
            torch.cuda.synchronize()
        return out

    if args.bench_only is not None:
        forward()  # warm-up
        t0 = time.perf_counter()
        for _ in range(args.bench_only):
            forward()
        dt = (time.perf_counter() - t0) / max(args.bench_only, 1)
        print(json.dumps({"seconds_per_forward": dt, "n": args.bench_only, "threads": args.threads,
                          "size": s, "classes": 3, "device": args.device}))
        return

    sd = {k: v.detach().to("cpu", torch.float32).contiguous() for k, v in model.state_dict().items()}
    t0 = time.perf_counter()
    logits = forward()
    dt = time.perf_counter() - t0
    logits = logits.detach().to("cpu").contiguous()
    assert logits.shape == (3, 1, s, s, s), logits.shape
    for path in (args.weights_out, args.golden_out, args.config_out):
        if path:
            os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    save_file(sd, args.weights_out, metadata={"format": "pt"})
    save_file({"image": image, "class_vector": class_vector, "class_logits": logits}, args.golden_out,
              metadata={"format": "pt"})
    if args.config_out:
        with open(args.config_out, "w") as fh:
            json.dump(CONFIG, fh)
            fh.write("\n")
    print(json.dumps({"forward_s": dt, "threads": args.threads, "size": s, "device": args.device,
                      "class_logits_max_abs": logits.abs().max().item()}))


if __name__ == "__main__":
    main()
