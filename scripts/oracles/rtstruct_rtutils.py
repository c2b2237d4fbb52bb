"""A second, independent RT-STRUCT reader for export's rtstruct test
(nodes/tests/export_rtstruct.rs): rt-utils (PyPI) rasterises each ROI on the CT series.

usage: rtstruct_rtutils.py SERIES_DIR RTSTRUCT.dcm OUT_DIR
Writes OUT_DIR/<roi name>.u8: the ROI's mask, one byte per voxel, slices in ascending
z (ImagePositionPatient), rows, columns; and OUT_DIR/rois.json: the ROI names.
"""
import json
import sys
from pathlib import Path

import numpy as np
import pydicom
from rt_utils import RTStructBuilder


def main(series_dir, rt_path, out_dir):
    rt = RTStructBuilder.create_from(dicom_series_path=series_dir, rt_struct_path=rt_path)
    # rt-utils' slice order is its series list's; put the masks in ascending z
    zs = [float(ds.ImagePositionPatient[2]) for ds in rt.series_data]
    order = np.argsort(zs)
    names = rt.get_roi_names()
    for name in names:
        mask = rt.get_roi_mask_by_name(name)  # (rows, cols, slices)
        mask = np.transpose(mask, (2, 0, 1))[order]
        mask.astype(np.uint8).tofile(Path(out_dir) / f"{name}.u8")
    (Path(out_dir) / "rois.json").write_text(json.dumps(names))


if __name__ == "__main__":
    main(*sys.argv[1:])
