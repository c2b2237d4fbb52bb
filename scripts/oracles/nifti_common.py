"""What nibabel reads from a NIfTI file, as plain JSON-able facts (shared by the oracles).

The data facts are of ``np.asanyarray(img.dataobj)``: nibabel's own scaling semantics
(scl_slope 0 or NaN = no scaling; slope 1 / inter 0 = raw dtype; otherwise scaled floats).
Array bytes are hashed little-endian in Fortran (i fastest) order, which is the memory
order of vistaflow's [k, j, i] tensors, so a reader that keeps the on-disk order matches.
"""
import hashlib

import nibabel as nib
import numpy as np


def _mat(a):
    return [[float(v) for v in row] for row in np.asarray(a, dtype=np.float64)]


def array_facts(arr):
    arr = np.asarray(arr)
    le = arr.astype(arr.dtype.newbyteorder("<"), copy=False)
    f64 = arr.astype(np.float64)
    return {
        "shape": [int(s) for s in arr.shape],
        "dtype": str(arr.dtype.newbyteorder("=").name),
        "sha256": hashlib.sha256(le.tobytes(order="F")).hexdigest(),
        "sum": float(f64.sum()),
        "sumsq": float((f64 * f64).sum()),
        "min": float(f64.min()),
        "max": float(f64.max()),
    }


def file_facts(path):
    """Header and data facts; an unreadable data type is reported as {"error": ...}."""
    img = nib.load(path)
    hdr = img.header
    out = {
        "format": "nifti2" if isinstance(img, nib.Nifti2Image) else "nifti1",
        "affine": _mat(img.affine),
        "sform_code": int(hdr["sform_code"]),
        "qform_code": int(hdr["qform_code"]),
        "sform": _mat(hdr.get_sform()),
        "base_affine": _mat(hdr.get_base_affine()),
        "big_endian": hdr.endianness == ">",
        "on_disk_dtype": str(hdr.get_data_dtype()),
        "datatype_code": int(hdr["datatype"]),
    }
    try:
        out["qform"] = _mat(hdr.get_qform())
    except Exception as e:  # noqa: BLE001 - recorded, not fatal
        out["qform_error"] = str(e)
    try:
        arr = np.asanyarray(img.dataobj)
        out.update(array_facts(arr))
        if arr.dtype == np.float64 and hdr.get_data_dtype() != np.float64:
            # Scaled data: nibabel computes in float64, vistaflow keeps float32 images.
            # Rounding nibabel's values once to float32 must give vistaflow's bytes exactly.
            out["f32_sha256"] = array_facts(arr.astype(np.float32))["sha256"]
    except Exception as e:  # noqa: BLE001
        out["error"] = str(e)
    if hdr.get_data_dtype().fields is not None:  # RGB and other records: no plain array
        out.pop("sha256", None)
        out["error"] = "structured dtype " + str(hdr.get_data_dtype())
    return out
