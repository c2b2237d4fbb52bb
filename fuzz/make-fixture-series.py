"""A tiny CT series (6 slices of 20x24, fixed UIDs) for the rtstruct and seg fuzz targets,
which load it once as the image their structure sets and segmentations are placed on, and a
label map on its grid (liver, left kidney) for fuzz/make-seeds.sh to make seeds from: as
NIfTI for vistaflow's exporters, and as raw ids with a spec for scripts/oracles/highdicom_seg.py.

    python fuzz/make-fixture-series.py SERIES_DIR WORK_DIR
    (WORK_DIR: labels.nii.gz, labels.raw, fractional.json)
"""
import json
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian

ROOT = "1.2.826.0.1.3680043.8.498.77"  # pydicom's UID root; fixed, so seeds keep matching
ROWS, COLS, SLICES = 20, 24, 6
ROW_MM, COL_MM, DZ = 1.5, 1.25, 2.0
ORIGIN = (-15.0, -12.0, -5.0)


def body_and_organs():
    """HU [slices, rows, cols] and labels: an air border, a soft-tissue body, a liver (1) and
    a left kidney (2)."""
    z, y, x = np.mgrid[:SLICES, :ROWS, :COLS]
    body = ((x - 11.5) / 10) ** 2 + ((y - 9.5) / 8) ** 2 <= 1
    liver = ((x - 7) / 4) ** 2 + ((y - 9) / 4) ** 2 + ((z - 2.5) / 2.2) ** 2 <= 1
    kidney = (abs(x - 17) <= 2) & (abs(y - 11) <= 3) & (z >= 1) & (z <= 3)
    hu = np.where(body, 40, -1000) + 20 * liver + 150 * kidney
    labels = np.zeros_like(hu, dtype=np.uint8)
    labels[liver] = 1
    labels[kidney & ~liver] = 2
    return hu.astype(np.int16), labels


def main(series_dir: Path, work: Path):
    series_dir.mkdir(parents=True, exist_ok=True)
    hu, labels = body_and_organs()
    for k in range(SLICES):
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.2"
        meta.MediaStorageSOPInstanceUID = f"{ROOT}.3.{k + 1}"
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds = Dataset()
        ds.file_meta = meta
        ds.SOPClassUID = meta.MediaStorageSOPClassUID
        ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
        ds.PatientName, ds.PatientID = "Fuzz^Fixture", "FUZZ1"
        ds.PatientBirthDate, ds.PatientSex = "", "O"
        ds.AccessionNumber, ds.ReferringPhysicianName = "", ""
        ds.StudyInstanceUID, ds.SeriesInstanceUID = f"{ROOT}.1", f"{ROOT}.2"
        ds.FrameOfReferenceUID = f"{ROOT}.4"
        ds.StudyDate, ds.StudyTime, ds.StudyID = "20260101", "120000", "1"
        ds.Modality, ds.SeriesNumber, ds.InstanceNumber = "CT", 1, k + 1
        ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
        ds.ImagePositionPatient = [ORIGIN[0], ORIGIN[1], ORIGIN[2] + k * DZ]
        ds.PixelSpacing, ds.SliceThickness = [ROW_MM, COL_MM], DZ
        ds.Rows, ds.Columns, ds.SamplesPerPixel = ROWS, COLS, 1
        ds.PhotometricInterpretation = "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
        ds.RescaleIntercept, ds.RescaleSlope = -1024, 1
        ds.PixelData = (hu[k] + 1024).astype("<u2").tobytes()
        ds.save_as(series_dir / f"ct{k + 1}.dcm", enforce_file_format=True)
    # NIfTI is RAS with data [i, j, k]; the series is LPS with pixels [k, j, i].
    affine = np.array([
        [-COL_MM, 0, 0, -ORIGIN[0]],
        [0, -ROW_MM, 0, -ORIGIN[1]],
        [0, 0, DZ, ORIGIN[2]],
        [0, 0, 0, 1],
    ])
    work.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(labels.transpose(2, 1, 0), affine), work / "labels.nii.gz")
    labels.astype("<i4").tofile(work / "labels.raw")
    spec = {
        "labels_raw": str(work / "labels.raw"),
        "shape": [SLICES, ROWS, COLS],
        "affine_lps": [[COL_MM, 0, 0, ORIGIN[0]], [0, ROW_MM, 0, ORIGIN[1]], [0, 0, DZ, ORIGIN[2]],
                       [0, 0, 0, 1]],
        "segments": [{"class": 1, "label": "liver"}, {"class": 2, "label": "left kidney"}],
        "type": "fractional",
    }
    (work / "fractional.json").write_text(json.dumps(spec))


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
