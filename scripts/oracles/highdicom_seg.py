"""A DICOM SEG made by highdicom (an independent writer) from a label map, for
load_dicom_seg's test (nodes/tests/export_dicom_seg.rs).

usage: highdicom_seg.py SERIES_DIR SPEC.json OUT.dcm
SPEC: {"labels_raw": int32 [D,H,W] file, "shape": [D,H,W], "affine_lps": 4x4 (voxel (i,j,k)
-> LPS mm), "segments": [{"class": id, "label": name}], "type": "binary" | "fractional"}
Fractional: 0.8 inside each class, 0.3 in a one-voxel ring around it (in-plane), so that a
reader thresholding at 0.5 gets the class back exactly.
"""
import json
import sys
from pathlib import Path

import highdicom as hd
import numpy as np
import pydicom
from pydicom.sr.codedict import codes
from scipy import ndimage


def main(series_dir, spec_path, out_path):
    spec = json.loads(Path(spec_path).read_text())
    d, h, w = spec["shape"]
    labels = np.fromfile(spec["labels_raw"], dtype="<i4").reshape(d, h, w)
    inv = np.linalg.inv(np.array(spec["affine_lps"], dtype=float))
    dsets = [pydicom.dcmread(p) for p in sorted(Path(series_dir).iterdir())]
    ks = []
    for ds in dsets:
        ijk = inv[:3, :3] @ np.array(ds.ImagePositionPatient, dtype=float) + inv[:3, 3]
        ks.append(int(round(ijk[2])))
    fractional = spec["type"] == "fractional"
    segs = spec["segments"]
    pixels = np.zeros((len(dsets), h, w, len(segs)), dtype=np.float32 if fractional else bool)
    ring = ndimage.generate_binary_structure(3, 1)
    ring[0] = ring[2] = False  # in-plane only
    for s, seg in enumerate(segs):
        m = labels == seg["class"]
        for f, k in enumerate(ks):
            if fractional:
                grown = ndimage.binary_dilation(m, structure=ring)[k]
                pixels[f, :, :, s] = np.where(m[k], 0.8, np.where(grown, 0.3, 0.0))
            else:
                pixels[f, :, :, s] = m[k]
    descriptions = [
        hd.seg.SegmentDescription(
            segment_number=n + 1,
            segment_label=seg["label"],
            segmented_property_category=codes.SCT.Tissue,
            segmented_property_type=codes.SCT.Tissue,
            algorithm_type=hd.seg.SegmentAlgorithmTypeValues.MANUAL,
        )
        for n, seg in enumerate(segs)
    ]
    kind = hd.seg.SegmentationTypeValues.FRACTIONAL if fractional else hd.seg.SegmentationTypeValues.BINARY
    seg = hd.seg.Segmentation(
        source_images=dsets,
        pixel_array=pixels,
        segmentation_type=kind,
        segment_descriptions=descriptions,
        series_instance_uid=hd.UID(),
        series_number=100,
        sop_instance_uid=hd.UID(),
        instance_number=1,
        manufacturer="highdicom",
        manufacturer_model_name="oracle",
        software_versions=hd.__version__,
        device_serial_number="1",
        max_fractional_value=255,
        omit_empty_frames=True,
    )
    seg.save_as(out_path)


if __name__ == "__main__":
    main(*sys.argv[1:])
