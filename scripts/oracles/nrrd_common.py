"""What pynrrd and SimpleITK read from a NRRD file, as plain JSON-able facts (shared by the
NRRD oracles).

Both are reduced to vistaflow's convention so that the facts compare directly:
- ``affine_lps``: (rows of decimal strings, exact) voxel (i, j, k, 1) -> LPS mm, where i, j, k are the file's spatial axes in
  order (i fastest). pynrrd gives the header as written: right-anterior-superior negates x
  and y, left-anterior-superior y; left-posterior-superior, scanner-xyz and 3D-right-handed
  are taken as LPS (as ITK does). SimpleITK's own direction/spacing/origin are already LPS.
- ``shape``: the tensor shape [k, j, i], or [C, k, j, i] with the non-spatial axis first (one
  of size 1 dropped).
- ``sha256``: of the samples' little-endian bytes in that tensor's C order (i fastest), in the
  file's own sample type (``dtype``).
"""
import hashlib

import numpy as np

FLIP = {
    "right-anterior-superior": [-1.0, -1.0, 1.0],
    "ras": [-1.0, -1.0, 1.0],
    "left-anterior-superior": [1.0, -1.0, 1.0],
    "las": [1.0, -1.0, 1.0],
}


def array_facts(arr):
    """Facts of an array already in vistaflow's [C,] k, j, i order."""
    arr = np.ascontiguousarray(arr)
    le = arr.astype(arr.dtype.newbyteorder("<"), copy=False)
    f64 = arr.astype(np.float64)
    return {
        "shape": [int(s) for s in arr.shape],
        "dtype": str(arr.dtype.newbyteorder("=").name),
        "sha256": hashlib.sha256(le.tobytes(order="C")).hexdigest(),
        "sum": float(f64.sum()),
        "min": float(f64.min()),
        "max": float(f64.max()),
    }


def _mat(a):
    # As repr strings: Python writes the shortest decimal that round-trips, and the Rust tests
    # parse it with a correctly rounded parser (serde_json's own float parsing may be 1 ulp
    # off), so affines compare bit for bit.
    return [[repr(float(v)) for v in row] for row in np.asarray(a, dtype=np.float64)]


def pynrrd_facts(path):
    import nrrd

    data, h = nrrd.read(path)  # index order F: data[i, j, k(, ...)] in file axis order
    n = data.ndim
    dirs = h.get("space directions")
    if dirs is not None:
        dirs = np.asarray(dirs, dtype=np.float64)
        spatial = [ax for ax in range(n) if not np.all(np.isnan(dirs[ax]))]
    else:
        spatial = list(range(n)) if n == 3 else None
    nonspatial = [ax for ax in range(n) if ax not in spatial]
    space = str(h.get("space", "")).lower()
    sign = np.array(FLIP.get(space, [1.0, 1.0, 1.0]))
    a = np.eye(4)
    if dirs is not None:
        for c, ax in enumerate(spatial):
            a[:3, c] = dirs[ax] * sign
        origin = np.asarray(h.get("space origin", [0.0, 0.0, 0.0]), dtype=np.float64)
        a[:3, 3] = origin * sign
    # To vistaflow's order: spatial axes reversed (k, j, i), channel first.
    order = list(reversed(spatial))
    arr = np.transpose(data, nonspatial + order) if nonspatial else np.transpose(data, order)
    if nonspatial and arr.shape[0] == 1:
        arr = arr[0]
    out = {"affine_lps": _mat(a), "space": space}
    out.update(array_facts(arr))
    return out


def sitk_facts(path):
    import SimpleITK as sitk

    img = sitk.ReadImage(path)
    d = np.asarray(img.GetDirection(), dtype=np.float64).reshape(3, 3)
    s = np.asarray(img.GetSpacing(), dtype=np.float64)
    a = np.eye(4)
    a[:3, :3] = d @ np.diag(s)
    a[:3, 3] = img.GetOrigin()
    arr = sitk.GetArrayFromImage(img)  # [k, j, i] or [k, j, i, c] for vector images
    if img.GetNumberOfComponentsPerPixel() > 1:
        arr = np.moveaxis(arr, -1, 0)
    out = {"affine_lps": _mat(a)}
    out.update(array_facts(arr))
    return out
