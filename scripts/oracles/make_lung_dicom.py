#!/usr/bin/env python3
"""Writes data/pyradiomics/lung1_image.nrrd as a DICOM CT series: data/pyradiomics/lung1_dicom/.

Usage: make_lung_dicom.py  (run with the venv from scripts/setup-python.sh; scripts/fetch-data.sh
calls it after fetching the pyradiomics files). Idempotent: the series is written into
lung1_dicom.partial and renamed when complete, so an existing lung1_dicom/ is kept as it is
(no stamp file inside: the folder holds only the slices, as a scanner's export would).

The standard SimpleITK "write a DICOM series" recipe: one file per slice (k), int16 as read
from the NRRD (HU), with ImagePositionPatient from the image's own index -> LPS transform,
ImageOrientationPatient from its direction, PixelSpacing / SliceThickness from its spacing,
RescaleSlope 1 / RescaleIntercept 0, Modality CT, CT Image Storage. UIDs are derived from fixed
strings (pydicom's generate_uid with entropy sources), so reruns write the same files.
The test (nodes/tests/dicom.rs) loads this series with load_dicom and checks it against
dcm2niix (golden values from scripts/oracles/dicom_golden.py) and against the NRRD itself.
"""
import os
import shutil
import sys

import SimpleITK as sitk
from pydicom.uid import generate_uid

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
DATA = os.environ.get("VISTAFLOW_DATA", os.path.join(ROOT, "data"))
SRC = os.path.join(DATA, "pyradiomics", "lung1_image.nrrd")
OUT = os.path.join(DATA, "pyradiomics", "lung1_dicom")
SEED = "vistaflow pyradiomics lung1_image.nrrd"


def ds(x):
    """A DICOM DS value (at most 16 characters), exact to 1e-6 mm."""
    s = ("%.6f" % x).rstrip("0").rstrip(".")
    if s in ("-0", ""):
        s = "0"
    assert len(s) <= 16, s
    return s


def main():
    if os.path.isdir(OUT):
        print("make_lung_dicom: %s already written" % OUT, file=sys.stderr)
        return
    if not os.path.isfile(SRC):
        sys.exit("make_lung_dicom: missing %s: run scripts/fetch-data.sh" % SRC)
    img = sitk.ReadImage(SRC)
    if img.GetPixelID() != sitk.sitkInt16:
        sys.exit("make_lung_dicom: %s is %s, expected int16" % (SRC, img.GetPixelIDTypeAsString()))
    tmp = OUT + ".partial"
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    d = img.GetDirection()
    sp = img.GetSpacing()
    series = {
        "0008|0016": "1.2.840.10008.5.1.4.1.1.2",  # SOP Class: CT Image Storage
        "0008|0060": "CT",  # Modality
        "0008|0020": "20000101",  # Study Date
        "0008|0030": "000000",  # Study Time
        "0008|103e": "pyradiomics lung1 (from NRRD)",  # Series Description
        "0010|0010": "Lung1^Pyradiomics",  # Patient's Name
        "0010|0020": "LUNG1",  # Patient ID
        "0020|000d": generate_uid(entropy_srcs=[SEED, "study"]),  # Study Instance UID
        "0020|000e": generate_uid(entropy_srcs=[SEED, "series"]),  # Series Instance UID
        "0020|0052": generate_uid(entropy_srcs=[SEED, "frame of reference"]),
        "0020|0011": "1",  # Series Number
        "0020|0037": "\\".join(ds(x) for x in (d[0], d[3], d[6], d[1], d[4], d[7])),  # IOP
        "0028|0030": "%s\\%s" % (ds(sp[1]), ds(sp[0])),  # Pixel Spacing: row, column
        "0018|0050": ds(sp[2]),  # Slice Thickness
        "0028|1052": "0",  # Rescale Intercept
        "0028|1053": "1",  # Rescale Slope
        "0028|1054": "HU",  # Rescale Type
    }
    w = sitk.ImageFileWriter()
    w.KeepOriginalImageUIDOn()  # keep the UIDs set here instead of GDCM's fresh ones
    n = img.GetDepth()
    for k in range(n):
        s = img[:, :, k]
        for tag, v in series.items():
            s.SetMetaData(tag, v)
        s.SetMetaData("0008|0018", generate_uid(entropy_srcs=[SEED, "slice %d" % k]))
        s.SetMetaData("0020|0032", "\\".join(ds(x) for x in img.TransformIndexToPhysicalPoint((0, 0, k))))
        s.SetMetaData("0020|0013", str(k + 1))  # Instance Number
        w.SetFileName(os.path.join(tmp, "slice%03d.dcm" % k))
        w.Execute(s)
    os.rename(tmp, OUT)
    print("make_lung_dicom: wrote %d slices to %s" % (n, OUT), file=sys.stderr)


if __name__ == "__main__":
    main()
