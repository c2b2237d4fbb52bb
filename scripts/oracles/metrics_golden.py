#!/usr/bin/env python3
"""Writes the golden fixtures for the `metrics` node: label-map pairs as NIfTI and MONAI 1.6.1's
per-class dice, iou, hd95, hd, assd, nsd on them (with MedPy's hd, hd95, assd as a second opinion).

Usage: metrics_golden.py OUT_DIR [REFERENCE]   (run with the venv from scripts/setup-python.sh;
scripts/fetch-data.sh calls it with data/metrics and data/totalsegmentator/example_seg.nii.gz;
REFERENCE defaults to OUT_DIR/../totalsegmentator/example_seg.nii.gz).
Writes OUT_DIR.partial and renames it, so an existing OUT_DIR is a complete one. Deterministic
(seeded, CPU, 2 threads): byte-identical on reruns; 25 s on 2 idle cores (a minute under load);
OUT_DIR is about 190 kB.

Cases (files in OUT_DIR; every prediction has the reference's affine and header):
  real        reference.nii.gz   = REFERENCE (TotalSegmentator example_seg: 122x101x30 uint8,
                                   3 mm isotropic, 41 classes), re-saved as uint8
              prediction.nii.gz  = a seeded perturbation of it, class by class (see PLAN and the
                                   "perturbation" field in golden.json): eroded by 1 or 2 voxels,
                                   dilated by 1 voxel (into background only), shifted by a few
                                   voxels (into background only, vacated voxels become 0), removed entirely,
                                   a disconnected 3x3x2 false-positive blob added, a label that
                                   the reference does not have (FP_ONLY_LABEL) added as a blob;
                                   the remaining classes untouched
  aniso       aniso_{reference,prediction}.nii.gz: a crop of the real pair (I_CROP x J_CROP x all k)
              with spacing ANISO_SPACING and axis 1 (j) flipped: data reversed along j, affine
              column j negated, origin moved so that voxel centres keep their world positions
              (the affine is diag(0.7, -1.1, 2.5) + translation, axis aligned)
  empty_both, empty_reference, empty_prediction
              tiny 12x10x8 int16 pairs (spacing 1.0, 1.5, 2.0) for the empty conventions of class 1:
              absent from both maps / absent from the reference only / absent from the prediction
              only; these list class 1 explicitly ("requested_classes")
  border      a tiny pair (spacing 0.8, 1.0, 1.7) whose objects touch the array faces (outside the
              array counts as background for the surface), single-voxel classes, a class one voxel
              thick, and surface distances of exactly the NSD tolerance (2.0 mm: counted, d <= tau)

MONAI inputs (as its docs ask): y_pred, y = one-hot, batch-first float32 tensors [1, 1 + C, I, J, K]:
channel 0 = background (label 0), channel 1 + n = (label == classes[n]) for the case's sorted class
list (the ids present in either map, 0 excluded, plus any requested ones). Metrics:
  DiceMetric(include_background=False, reduction="none")        (ignore_empty=True, the default)
  MeanIoU(include_background=False, reduction="none")           (ignore_empty=True, the default)
  HausdorffDistanceMetric(include_background=False, percentile=95, reduction="none")   -> hd95
  HausdorffDistanceMetric(include_background=False, reduction="none")                  -> hd
  SurfaceDistanceMetric(include_background=False, symmetric=True, reduction="none")    -> assd
  SurfaceDiceMetric(class_thresholds=[2.0] * C, include_background=False, reduction="none") -> nsd
all called with spacing = the voxel spacing in mm IN THE ARRAY AXIS ORDER [i, j, k] of nibabel's
array (the header pixdim[1:4] as float32 widened to float64). vistaflow holds volumes as [k, j, i]
tensors: reverse the spacing for those. MedPy 0.5.2: medpy.metric.binary.hd/hd95/assd(pred, ref,
voxelspacing=spacing); null where MedPy raises (an empty mask).

OUT_DIR/golden.json: {case: {"files": {"reference", "prediction"}, "shape": [I, J, K],
  "spacing": [si, sj, sk], "spacing_axes": "...", "affine": 4x4, "requested_classes": [...] (only
  the empty cases), "classes": {"id": {"dice", "iou", "hd95", "hd", "assd", "nsd", "medpy_hd",
  "medpy_hd95", "medpy_assd", "ref_voxels", "pred_voxels", "perturbation"}}}, "monai": version, ...}
NaN and infinities are the strings "nan", "inf", "-inf" (JSON has none).
"""
import hashlib
import json
import os
import shutil
import sys
import time
import warnings

import nibabel as nib
import numpy as np
import torch
from scipy import ndimage

SEED = 20240617
NSD_TOLERANCE_MM = 2.0
ANISO_SPACING = (0.7, 1.1, 2.5)
I_CROP = slice(20, 100)   # 80 of 122
J_CROP = slice(10, 80)    # 70 of 101
FP_ONLY_LABEL = 200       # a label the reference does not have (appears only in the prediction)
TINY_SHAPE = (12, 10, 8)


def perturb(ref, rng):
    """The seeded prediction: returns (pred, {label: description})."""
    labels = [int(v) for v in np.unique(ref) if v != 0]
    sizes = {c: int((ref == c).sum()) for c in labels}
    big = [c for c in labels if sizes[c] >= 400]   # erosion / shift targets keep something
    order = list(rng.permutation(big))
    plan = {}
    for c in order[0:3]:
        plan[int(c)] = ("erode", 1)
    for c in order[3:5]:
        plan[int(c)] = ("erode", 2)
    for c in order[5:7]:
        plan[int(c)] = ("dilate", 1)
    for n, c in enumerate(order[7:13]):
        axis = n % 3
        shift = [0, 0, 0]
        shift[axis] = int(rng.integers(1, 5)) * (1 if rng.integers(0, 2) else -1)
        if n >= 3:  # the second three are shifted along two axes
            other = (axis + 1) % 3
            shift[other] = int(rng.integers(1, 4)) * (1 if rng.integers(0, 2) else -1)
        plan[int(c)] = ("shift", tuple(shift))
    plan[int(order[13])] = ("remove", None)
    plan[int(order[14])] = ("fp_blob", None)

    pred = ref.copy()
    cross = ndimage.generate_binary_structure(3, 1)
    notes = {}
    # Geometric changes first (in a fixed order), then the removal and the blobs.
    for c in sorted(plan):
        kind, arg = plan[c]
        m = ref == c
        if kind == "erode":
            keep = ndimage.binary_erosion(m, structure=cross, iterations=arg, border_value=0)
            pred[m & ~keep & (pred == c)] = 0
            notes[c] = "eroded by %d voxel(s) (6-connected cross)" % arg
        elif kind == "dilate":
            grown = ndimage.binary_dilation(m, structure=cross, iterations=arg)
            pred[grown & (pred == 0)] = c
            notes[c] = "dilated by %d voxel (6-connected cross) into background" % arg
        elif kind == "shift":
            pred[(pred == c)] = 0
            idx = np.nonzero(m)
            new = [idx[a] + arg[a] for a in range(3)]
            ok = np.ones(len(new[0]), bool)
            for a in range(3):
                ok &= (new[a] >= 0) & (new[a] < ref.shape[a])
            new = [v[ok] for v in new]
            free = pred[new[0], new[1], new[2]] == 0
            pred[new[0][free], new[1][free], new[2][free]] = c
            notes[c] = "shifted by %s voxels (i, j, k), into background only" % (list(arg),)
    for c in sorted(plan):
        kind, _ = plan[c]
        if kind == "remove":
            pred[pred == c] = 0
            notes[c] = "removed from the prediction"
    # Blobs go where both maps are background, away from everything labelled, seeded.
    dist_to_fg = ndimage.distance_transform_edt((ref == 0) & (pred == 0))
    for label, note in (
        ([c for c in plan if plan[c][0] == "fp_blob"][0], "plus a disconnected 3x3x2 false-positive blob"),
        (FP_ONLY_LABEL, "only in the prediction: a 3x3x2 blob"),
    ):
        cand = np.argwhere(dist_to_fg[1:-2, 1:-2, 1:-1] >= 6) + 1
        i, j, k = cand[int(rng.integers(0, len(cand)))]
        pred[i : i + 3, j : j + 3, k : k + 2] = label
        dist_to_fg[max(i - 6, 0) : i + 9, max(j - 6, 0) : j + 9, max(k - 6, 0) : k + 8] = 0
        notes[int(label)] = note
    for c in labels:
        notes.setdefault(c, "untouched")
    return pred, notes


def flip_j(arr, affine):
    """Reverse axis j of the data and change the affine so that world positions stay."""
    out = arr[:, ::-1, :].copy()
    aff = affine.copy()
    nj = arr.shape[1]
    aff[:3, 3] = affine[:3, 3] + affine[:3, 1] * (nj - 1)
    aff[:3, 1] = -affine[:3, 1]
    return out, aff


def tiny_cases():
    """The synthetic pairs: {name: (ref, pred, spacing, requested_classes, notes)}."""
    z = np.zeros(TINY_SHAPE, np.int16)
    box = z.copy()
    box[3:8, 2:7, 2:6] = 1
    cases = {
        "empty_both": (z.copy(), z.copy(), (1.0, 1.5, 2.0), [1], {1: "absent from both"}),
        "empty_reference": (z.copy(), box.copy(), (1.0, 1.5, 2.0), [1], {1: "only in the prediction"}),
        "empty_prediction": (box.copy(), z.copy(), (1.0, 1.5, 2.0), [1], {1: "only in the reference"}),
    }
    ref = z.copy()
    pred = z.copy()
    ref[0:4, 0:5, 0:8] = 1          # touches the i=0, j=0, k=0 and k=7 faces
    pred[0:5, 0:4, 0:8] = 1
    ref[11, 9, 7] = 2               # a single voxel in a corner
    pred[10, 9, 6] = 2
    ref[6:9, 0:10, 3] = 3           # one voxel thick in k, spans j
    pred[6:9, 1:10, 3:5] = 3
    ref[7, 5, 6] = 4                # single voxel in both, same place
    pred[7, 5, 6] = 4
    ref[9:11, 2:4, 0:2] = 5         # 2x2x2; the prediction's is 2 voxels (exactly 2.0 mm) along j
    pred[9:11, 4:6, 0:2] = 5
    cases["border"] = (ref, pred, (0.8, 1.0, 1.7), None, {
        1: "slab touching the i=0, j=0, k faces; prediction one voxel longer in i, shorter in j",
        2: "single voxel in the (11,9,7) corner; prediction's at (10,9,6)",
        3: "one voxel thick in k, spanning j; prediction two thick, one shorter in j",
        4: "the same single voxel in both",
        5: "2x2x2 cube; prediction's moved by 2 voxels along j: distances of exactly 2.0 mm = the NSD tolerance",
    })
    return cases


def jsonable(v):
    v = float(v)
    if np.isnan(v):
        return "nan"
    if np.isinf(v):
        return "inf" if v > 0 else "-inf"
    return v


def one_hot(labels, classes):
    """[1, 1 + C, I, J, K] float32: channel 0 background, channel 1 + n = (labels == classes[n])."""
    t = torch.from_numpy(np.ascontiguousarray(labels).astype(np.int64))
    chans = [t == 0] + [t == c for c in classes]
    return torch.stack(chans).to(torch.float32)[None]


def monai_metrics(ref, pred, classes, spacing):
    from monai.metrics import (DiceMetric, HausdorffDistanceMetric, MeanIoU, SurfaceDiceMetric,
                               SurfaceDistanceMetric)

    y = one_hot(ref, classes)
    y_pred = one_hot(pred, classes)
    sp = [float(s) for s in spacing]
    metrics = {
        "dice": (DiceMetric(include_background=False, reduction="none"), False),
        "iou": (MeanIoU(include_background=False, reduction="none"), False),
        "hd95": (HausdorffDistanceMetric(include_background=False, percentile=95, reduction="none"), True),
        "hd": (HausdorffDistanceMetric(include_background=False, reduction="none"), True),
        "assd": (SurfaceDistanceMetric(include_background=False, symmetric=True, reduction="none"), True),
        "nsd": (SurfaceDiceMetric(class_thresholds=[NSD_TOLERANCE_MM] * len(classes),
                                  include_background=False, reduction="none"), True),
    }
    out = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # empty-mask warnings are expected in some cases
        for name, (m, needs_spacing) in metrics.items():
            v = m(y_pred, y, spacing=sp) if needs_spacing else m(y_pred, y)
            v = v.reshape(-1)
            assert v.numel() == len(classes), (name, v.shape)
            out[name] = [float(x) for x in v]
    return out


def medpy_metrics(ref, pred, c, spacing):
    from medpy.metric import binary

    r, p = ref == c, pred == c
    out = {}
    for name, fn in (("medpy_hd", binary.hd), ("medpy_hd95", binary.hd95), ("medpy_assd", binary.assd)):
        try:
            out[name] = jsonable(fn(p, r, voxelspacing=list(spacing)))
        except RuntimeError:  # an empty mask
            out[name] = None
    return out


def evaluate(name, ref, pred, affine, spacing, files, requested, notes):
    classes = sorted({int(v) for v in np.unique(ref)} | {int(v) for v in np.unique(pred)} | set(requested or []))
    classes = [c for c in classes if c != 0]
    t0 = time.time()
    m = monai_metrics(ref, pred, classes, spacing)
    t_monai = time.time() - t0
    per = {}
    for n, c in enumerate(classes):
        row = {k: jsonable(m[k][n]) for k in ("dice", "iou", "hd95", "hd", "assd", "nsd")}
        row.update(medpy_metrics(ref, pred, c, spacing))
        row["ref_voxels"] = int((ref == c).sum())
        row["pred_voxels"] = int((pred == c).sum())
        row["perturbation"] = notes.get(c, "")
        per[str(c)] = row
    case = {
        "files": files,
        "shape": [int(s) for s in ref.shape],
        "spacing": [float(s) for s in spacing],
        "spacing_axes": "nibabel array axes [i, j, k] (header pixdim[1:4], mm); reverse for [k, j, i] tensors",
        "affine": [[float(v) for v in row] for row in affine],
    }
    if requested is not None:
        case["requested_classes"] = list(requested)
    case["classes"] = per
    print("  %-17s %s  spacing %s  %2d classes  MONAI %.1f s" % (
        name, "x".join(str(s) for s in ref.shape), [round(s, 4) for s in spacing], len(classes), t_monai))
    return case


def save(path, arr, affine, dtype, like=None):
    hdr = like.header.copy() if like is not None else None
    img = nib.Nifti1Image(np.asarray(arr, dtype=dtype), affine, header=hdr)
    img.set_data_dtype(dtype)
    img.header["scl_slope"] = 1.0
    img.header["scl_inter"] = 0.0
    img.set_qform(affine, code=1)
    img.set_sform(affine, code=1)
    nib.save(img, path)
    back = nib.load(path)  # what a reader gets: the data and the (float32) stored geometry
    data = np.asarray(back.dataobj)
    assert np.array_equal(data, np.asarray(arr)), path
    return data, back.affine, tuple(float(z) for z in back.header.get_zooms()[:3])


def main():
    if len(sys.argv) not in (2, 3):
        sys.exit("usage: metrics_golden.py OUT_DIR [REFERENCE_SEG.nii.gz]")
    out = sys.argv[1]
    if len(sys.argv) == 3:
        src = sys.argv[2]
    else:
        src = os.path.join(os.path.dirname(os.path.abspath(out.rstrip("/"))), "totalsegmentator", "example_seg.nii.gz")
    if not os.path.isfile(src):
        sys.exit("metrics_golden: no reference label map at %s (run scripts/fetch-data.sh)" % src)
    if os.path.isdir(out):
        print("metrics_golden: %s already written" % out, file=sys.stderr)
        return
    t_start = time.time()
    torch.set_num_threads(2)
    import monai
    import medpy

    tmp = out.rstrip("/") + ".partial"
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    golden = {}

    # --- real: TotalSegmentator's example_seg and its perturbed copy ---------------------------
    img = nib.load(src)
    ref0 = np.asarray(img.dataobj)
    assert ref0.ndim == 3 and np.issubdtype(ref0.dtype, np.integer) and ref0.min() >= 0 and ref0.max() < 256
    ref0 = ref0.astype(np.uint8)
    pred0, notes = perturb(ref0, np.random.default_rng(SEED))
    ref, aff, sp = save(os.path.join(tmp, "reference.nii.gz"), ref0, img.affine, np.uint8, img)
    pred, aff_p, sp_p = save(os.path.join(tmp, "prediction.nii.gz"), pred0, img.affine, np.uint8, img)
    assert np.allclose(aff, aff_p) and sp == sp_p
    golden["real"] = evaluate("real", ref, pred, aff, sp,
                              {"reference": "reference.nii.gz", "prediction": "prediction.nii.gz"}, None, notes)

    # --- aniso: a crop with anisotropic spacing and axis j flipped ------------------------------
    rc, pc = ref0[I_CROP, J_CROP, :], pred0[I_CROP, J_CROP, :]
    a = np.diag(list(ANISO_SPACING) + [1.0])
    a[:3, 3] = img.affine[:3, 3] + img.affine[:3, :3] @ np.array([I_CROP.start, J_CROP.start, 0.0])
    rc, a2 = flip_j(rc, a)
    pc, _ = flip_j(pc, a)
    ref, aff, sp = save(os.path.join(tmp, "aniso_reference.nii.gz"), rc, a2, np.uint8)
    pred, _, _ = save(os.path.join(tmp, "aniso_prediction.nii.gz"), pc, a2, np.uint8)
    assert aff[1, 1] < 0
    golden["aniso"] = evaluate("aniso", ref, pred, aff, sp,
                               {"reference": "aniso_reference.nii.gz", "prediction": "aniso_prediction.nii.gz"},
                               None, notes)

    # --- tiny synthetic cases: the empty conventions and surfaces at the array faces ----------
    for name, (r, p, spacing, requested, tnotes) in tiny_cases().items():
        aff0 = np.diag(list(spacing) + [1.0])
        aff0[:3, 3] = [-5.0, 3.0, 10.0]
        fr, fp = "%s_reference.nii.gz" % name, "%s_prediction.nii.gz" % name
        ref, aff, sp = save(os.path.join(tmp, fr), r, aff0, np.int16)
        pred, _, _ = save(os.path.join(tmp, fp), p, aff0, np.int16)
        golden[name] = evaluate(name, ref, pred, aff, sp, {"reference": fr, "prediction": fp}, requested, tnotes)

    golden["_about"] = {
        "monai": monai.__version__,
        "medpy": getattr(medpy, "__version__", "0.5.2"),
        "torch": torch.__version__,
        "nsd_tolerance_mm": NSD_TOLERANCE_MM,
        "encoding": "NaN and infinities as the strings nan, inf, -inf; medpy_* null where MedPy raises (empty mask)",
        "generator": "scripts/oracles/metrics_golden.py",
    }
    with open(os.path.join(tmp, "golden.json"), "w") as fh:
        json.dump(golden, fh, indent=1, sort_keys=False)
        fh.write("\n")
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    os.rename(tmp, out)

    # --- summary --------------------------------------------------------------------------------
    total = sum(os.path.getsize(os.path.join(out, f)) for f in os.listdir(out))
    print("metrics_golden: wrote %s (%d files, %.0f kB) in %.1f s" % (out, len(os.listdir(out)), total / 1024,
                                                                        time.time() - t_start))
    for case in ("real", "aniso"):
        cls = golden[case]["classes"]
        kinds = {}
        for c, row in cls.items():
            kinds.setdefault(row["perturbation"].split(" ")[0], []).append(c)
        for c in [v[0] for v in kinds.values()]:
            row = cls[c]
            print("  %-6s class %3s %-9s dice %-9s hd95 %-9s hd %-9s assd %-9s nsd %-9s | medpy hd95 %s assd %s" % (
                case, c, row["perturbation"].split(" ")[0], fmt(row["dice"]), fmt(row["hd95"]), fmt(row["hd"]),
                fmt(row["assd"]), fmt(row["nsd"]), fmt(row["medpy_hd95"]), fmt(row["medpy_assd"])))
    for case in ("empty_both", "empty_reference", "empty_prediction"):
        row = golden[case]["classes"]["1"]
        print("  %-17s class 1: %s" % (case, ", ".join("%s %s" % (k, fmt(row[k]))
                                                      for k in ("dice", "iou", "hd95", "hd", "assd", "nsd"))))
    for f in sorted(os.listdir(out)):
        h = hashlib.sha256(open(os.path.join(out, f), "rb").read()).hexdigest()
        print("  sha256 %s  %s" % (h, f))


def fmt(v):
    if v is None:
        return "-"
    return v if isinstance(v, str) else "%.4f" % v


if __name__ == "__main__":
    main()
