#!/usr/bin/env python3
"""Writes the golden fixtures for the VISTA3D network parity test: MONAI's own VISTA3D in a small
configuration of the same architecture, random weights, and its outputs on a random input.

Usage: vista3d_small.py OUT_DIR  (run with the venv from scripts/setup-python.sh; scripts/fetch-data.sh
calls it with data/vista3d/small). Writes OUT_DIR.partial and renames it, so an existing OUT_DIR is
a complete one. Deterministic (fixed seeds, CPU, float32, 2 threads) and fast (a few seconds).

The network is monai.networks.nets.vista3d132 with only the sizes changed:
  SegResNetDS2(in_channels=1, blocks_down=(1,2,1,1,1), norm="instance", out_channels=16,
               init_filters=16, dsdepth=1)
  PointMappingSAM(feature_size=16, n_classes=512, last_supported=132)   (max_prompt 32, depth 2,
               4 heads, MLP 512, as vista3d132; attention internal dim 16/2 = 8)
  ClassMappingClassify(n_classes=512, feature_size=16, use_mlp=True)
torch.manual_seed(0) and MONAI/PyTorch default init; then, from a separate generator (seed 1234),
every norm affine weight (the encoder's InstanceNorm3d, the transformer's LayerNorm) becomes
1 + 0.1 N(0,1) and every bias gets + 0.1 N(0,1), so that swapped scale/shift or a dropped bias
shows (default init would leave norm weights 1 and biases 0).

OUT_DIR/weights.safetensors  the whole state_dict (with the buffer
                             point_head.pe_layer.positional_encoding_gaussian_matrix), float32
OUT_DIR/config.json          the sizes the Rust side needs to build the same network
OUT_DIR/golden.safetensors   image [1,1,32,48,32] f32 (randn, seed 1); class_vector [3,1] i64;
                             class_logits [3,1,32,48,32] = model(image, class_vector=class_vector);
                             enc_point, enc_auto [1,16,32,48,32] = model.image_encoder(image, True, True);
                             point_coords [2,3,3] f32; point_labels [2,3] i64; prompt_class [2,1] i64;
                             point_logits [2,1,32,48,32] = model.point_head(enc_point, point_coords,
                             point_labels, class_vector=prompt_class); point_logits_noclass (class_vector=None)
"""
import hashlib
import json
import os
import shutil
import sys

import torch
from safetensors.torch import save_file

from vista3d_common import SMALL as CONFIG, build as build_vista3d


def build():
    torch.manual_seed(0)
    model = build_vista3d(CONFIG)
    assert model.point_head.max_prompt == CONFIG["max_prompt"]

    # Perturb norm affines and biases (deterministically, independent of the init's RNG stream).
    g = torch.Generator().manual_seed(1234)
    n_norm = n_bias = 0
    with torch.no_grad():
        for name, m in model.named_modules():
            if isinstance(m, (torch.nn.modules.instancenorm._InstanceNorm, torch.nn.LayerNorm)):
                if getattr(m, "weight", None) is not None:
                    m.weight.copy_(1.0 + 0.1 * torch.randn(m.weight.shape, generator=g))
                    n_norm += 1
        for name, p in model.named_parameters():
            if name.endswith(".bias"):
                p.add_(0.1 * torch.randn(p.shape, generator=g))
                n_bias += 1
    print("vista3d_small: perturbed %d norm weights and %d biases" % (n_norm, n_bias), file=sys.stderr)
    model.eval()
    return model


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: vista3d_small.py OUT_DIR")
    out = sys.argv[1]
    if os.path.isdir(out):
        print("vista3d_small: %s already written" % out, file=sys.stderr)
        return
    torch.set_num_threads(2)
    torch.use_deterministic_algorithms(True)
    model = build()

    sd = {k: v.detach().to(torch.float32).contiguous() for k, v in model.state_dict().items()}
    assert "point_head.pe_layer.positional_encoding_gaussian_matrix" in sd

    torch.manual_seed(1)
    image = torch.randn(1, 1, 32, 48, 32, dtype=torch.float32)
    class_vector = torch.tensor([[1], [3], [140]], dtype=torch.int64)
    point_coords = torch.tensor(
        [[[4, 10, 20], [30, 5, 7], [0, 0, 0]], [[16, 24, 16], [2, 40, 30], [10, 10, 10]]], dtype=torch.float32
    )
    point_labels = torch.tensor([[1, 0, -1], [3, 2, 1]], dtype=torch.int64)
    prompt_class = torch.tensor([[5], [150]], dtype=torch.int64)

    with torch.no_grad():
        class_logits = model(image.clone(), class_vector=class_vector.clone())
        enc_point, enc_auto = model.image_encoder(image.clone(), with_point=True, with_label=True)
        point_logits = model.point_head(
            enc_point.clone(), point_coords.clone(), point_labels.clone(), class_vector=prompt_class.clone()
        )
        point_logits_noclass = model.point_head(
            enc_point.clone(), point_coords.clone(), point_labels.clone(), class_vector=None
        )

    golden = {
        "image": image,
        "class_vector": class_vector,
        "class_logits": class_logits,
        "enc_point": enc_point,
        "enc_auto": enc_auto,
        "point_coords": point_coords,
        "point_labels": point_labels,
        "prompt_class": prompt_class,
        "point_logits": point_logits,
        "point_logits_noclass": point_logits_noclass,
    }
    golden = {k: v.detach().contiguous() for k, v in golden.items()}
    assert golden["class_logits"].shape == (3, 1, 32, 48, 32)
    assert golden["enc_point"].shape == (1, 16, 32, 48, 32) and golden["enc_auto"].shape == (1, 16, 32, 48, 32)
    assert golden["point_logits"].shape == (2, 1, 32, 48, 32)
    assert golden["point_logits_noclass"].shape == (2, 1, 32, 48, 32)

    tmp = out.rstrip("/") + ".partial"
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    save_file(sd, os.path.join(tmp, "weights.safetensors"), metadata={"format": "pt"})
    save_file(golden, os.path.join(tmp, "golden.safetensors"), metadata={"format": "pt"})
    with open(os.path.join(tmp, "config.json"), "w") as fh:
        json.dump(CONFIG, fh)
        fh.write("\n")
    for f in ("weights.safetensors", "golden.safetensors"):
        os.chmod(os.path.join(tmp, f), 0o644)  # safetensors creates them 0600
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    os.rename(tmp, out)

    n_params = sum(v.numel() for v in sd.values())
    print("vista3d_small: %d state-dict entries, %d values" % (len(sd), n_params))
    for k, v in golden.items():
        if v.is_floating_point():
            print("  %-22s %-22s %-8s max|v| %.6g" % (k, list(v.shape), str(v.dtype)[6:], v.abs().max().item()))
        else:
            print("  %-22s %-22s %s" % (k, list(v.shape), str(v.dtype)[6:]))
    for f in ("weights.safetensors", "golden.safetensors", "config.json"):
        print("  sha256 %s  %s" % (sha256(os.path.join(out, f)), f))


if __name__ == "__main__":
    main()
