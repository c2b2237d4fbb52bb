#!/usr/bin/env python3
"""A DICOM series with canaries in its identifiers, for tests/phi_canary.rs.

Usage: phi_canary_series.py SRC_DIR OUT_DIR TAG
Copies every DICOM file of SRC_DIR into OUT_DIR as CANARYFILE_<TAG>_<n>.dcm (pydicom), with
  PatientName     CANARYPN<TAG>^Test      PatientID        CANARYID<TAG>
  PatientBirthDate 19070311               AccessionNumber  CANARYAN<TAG>
  InstitutionName CANARYINST<TAG>
Pixel data and geometry are untouched. OUT_DIR's own name is the caller's (put a canary in it).
"""
import os
import sys

import pydicom


def main():
    src, out, tag = sys.argv[1], sys.argv[2], sys.argv[3]
    os.makedirs(out, exist_ok=True)
    names = sorted(n for n in os.listdir(src) if os.path.isfile(os.path.join(src, n)))
    for i, name in enumerate(names):
        ds = pydicom.dcmread(os.path.join(src, name))
        ds.PatientName = "CANARYPN%s^Test" % tag
        ds.PatientID = "CANARYID%s" % tag
        ds.PatientBirthDate = "19070311"
        ds.AccessionNumber = "CANARYAN%s" % tag
        ds.InstitutionName = "CANARYINST%s" % tag
        ds.save_as(os.path.join(out, "CANARYFILE_%s_%03d.dcm" % (tag, i)), enforce_file_format=True)
    print(len(names))


if __name__ == "__main__":
    main()
