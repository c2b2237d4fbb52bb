#!/usr/bin/env python3
"""Reads a DICOM SEG back with highdicom and compares it with the label map it was made from
(nodes/tests/export_dicom_seg.rs runs it live).

    dicom_seg_readback.py SEG_FILE DICOM_DIR EXPECTED_JSON OUT_JSON

EXPECTED_JSON (written by the test) holds:
  labels_raw      path of the label map's voxels: little-endian int32, C order [D, H, W];
  shape           [D, H, W];
  affine_lps      4x4 voxel (i, j, k) -> LPS mm of the label map (= the source image);
  segments        [{number, class, label, category, type}] as the SEG should describe them;
  strict_uids     true when the source series has Study/Series UIDs the SEG must reuse.

Independently of vistaflow, each source file of DICOM_DIR is put on a slice k of the label
map through its ImagePositionPatient and the affine (k must come out a whole number, i = j =
0). Then for every segment highdicom's `get_pixels_by_source_instance` gives the SEG's mask
per source SOP Instance UID, and it is compared with `labels[k] == class`. OUT_JSON gets, per
segment, the number of mismatched voxels and of set voxels, plus the checks of labels, codes,
StudyInstanceUID and FrameOfReferenceUID, and a list of `problems` (empty when all is well).
"""
import json
import os
import sys

import highdicom as hd
import numpy as np
import pydicom


def source_slices(folder, affine):
    """{sop_instance_uid: (k, dataset)} for the files of `folder`."""
    inv = np.linalg.inv(np.asarray(affine, dtype=float))
    out = {}
    for name in sorted(os.listdir(folder)):
        ds = pydicom.dcmread(os.path.join(folder, name), stop_before_pixels=True)
        uid = (ds.get("SOPInstanceUID") or "").strip() or str(
            ds.file_meta.MediaStorageSOPInstanceUID
        )
        ipp = np.array([float(v) for v in ds.ImagePositionPatient] + [1.0])
        ijk = inv @ ipp
        k = int(round(ijk[2]))
        if abs(ijk[2] - k) > 1e-3 or abs(ijk[0]) > 1e-3 or abs(ijk[1]) > 1e-3:
            raise SystemExit(f"{name}: its position is not a slice of the label map: {ijk[:3]}")
        out[uid] = (k, ds)
    return out


def main():
    seg_path, dicom_dir, expected_path, out_path = sys.argv[1:5]
    with open(expected_path) as f:
        exp = json.load(f)
    d, h, w = exp["shape"]
    labels = np.fromfile(exp["labels_raw"], dtype="<i4").reshape(d, h, w)
    sources = source_slices(dicom_dir, exp["affine_lps"])
    first = next(iter(sources.values()))[1]
    problems = []

    seg = hd.seg.segread(seg_path)
    result = {"segments": [], "number_of_frames": int(seg.NumberOfFrames)}

    def check(cond, msg):
        if not cond:
            problems.append(msg)

    check(seg.SOPClassUID == "1.2.840.10008.5.1.4.1.1.66.4", "SOPClassUID is not SEG")
    check(seg.SegmentationType == "BINARY", "SegmentationType is not BINARY")
    check(int(seg.BitsAllocated) == 1, "BitsAllocated is not 1")
    check(
        seg.file_meta.TransferSyntaxUID == "1.2.840.10008.1.2.1",
        "transfer syntax is not Explicit VR Little Endian",
    )
    check(
        seg.FrameOfReferenceUID == first.FrameOfReferenceUID,
        "FrameOfReferenceUID differs from the source",
    )
    src_study = (first.get("StudyInstanceUID") or "").strip()
    result["source_has_study_uid"] = bool(src_study)
    if exp["strict_uids"]:
        check(seg.StudyInstanceUID == src_study, "StudyInstanceUID differs from the source")
        ref_series = seg.ReferencedSeriesSequence[0].SeriesInstanceUID
        check(
            ref_series == first.SeriesInstanceUID,
            "ReferencedSeriesSequence names another series",
        )
        check(seg.SeriesInstanceUID != first.SeriesInstanceUID, "the SEG reuses the series UID")
    else:
        check(bool(seg.StudyInstanceUID), "the SEG has no StudyInstanceUID")
    for attr in ("PatientName", "PatientID", "PatientBirthDate", "PatientSex", "StudyDate"):
        check(
            str(seg.get(attr, "")) == str(first.get(attr, "")),
            f"{attr} differs from the source",
        )
    referenced = {
        i.ReferencedSOPInstanceUID
        for s in seg.ReferencedSeriesSequence
        for i in s.ReferencedInstanceSequence
    }
    check(referenced == set(sources), "ReferencedInstanceSequence is not the source series")

    # Plane positions: each frame's position is that of the source slice it references.
    worst_mm = 0.0
    for item in seg.PerFrameFunctionalGroupsSequence:
        ref = item.DerivationImageSequence[0].SourceImageSequence[0].ReferencedSOPInstanceUID
        ipp = np.array([float(v) for v in item.PlanePositionSequence[0].ImagePositionPatient])
        src = np.array([float(v) for v in sources[ref][1].ImagePositionPatient])
        worst_mm = max(worst_mm, float(np.abs(ipp - src).max()))
    result["worst_plane_position_mm"] = worst_mm
    check(worst_mm < 1e-3, f"plane positions differ from the source by {worst_mm} mm")

    uids = sorted(sources, key=lambda u: sources[u][0])
    ks = [sources[u][0] for u in uids]
    present = sorted(int(c) for c in np.unique(labels) if c != 0)
    check(
        [s["class"] for s in exp["segments"]] == present,
        "the expected segments are not the classes present",
    )
    check(
        len(seg.SegmentSequence) == len(exp["segments"]),
        f"{len(seg.SegmentSequence)} segments in the SEG, {len(exp['segments'])} expected",
    )
    for s in exp["segments"]:
        n = s["number"]
        desc = seg.get_segment_description(n)
        got = {
            "number": n,
            "label": desc.segment_label,
            "category": desc.segmented_property_category.value,
            "type": desc.segmented_property_type.value,
        }
        for key in ("label", "category", "type"):
            check(got[key] == s[key], f"segment {n}: {key} {got[key]!r}, expected {s[key]!r}")
        pix = seg.get_pixels_by_source_instance(
            source_sop_instance_uids=uids,
            segment_numbers=[n],
            combine_segments=False,
            assert_missing_frames_are_empty=True,
        )
        mask = pix[..., 0].astype(bool)
        want = labels[ks] == s["class"]
        got["mismatched_voxels"] = int((mask != want).sum())
        got["voxels"] = int(want.sum())
        check(got["mismatched_voxels"] == 0, f"segment {n}: {got['mismatched_voxels']} voxels differ")
        result["segments"].append(got)
    result["problems"] = problems
    with open(out_path, "w") as f:
        json.dump(result, f, indent=1)


if __name__ == "__main__":
    main()
