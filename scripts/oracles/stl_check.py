#!/usr/bin/env python3
"""What trimesh says about STL files (oracle for nodes/tests/export_stl.rs).

Usage: stl_check.py SPEC.json

SPEC is a JSON list of {"path": "...stl", "affine_lps": 4x4 rows} (the affine of the volume
the mesh came from, voxel index (i, j, k, 1) -> LPS mm). Prints a JSON list, one object per
file, in order:

  header              the 80-byte header as text (trailing spaces and NULs stripped)
  triangles           triangle count in the file
  vertices            vertices after trimesh merged identical positions
  watertight          trimesh is_watertight (every edge shared by exactly two faces)
  winding_consistent  trimesh is_winding_consistent
  volume              trimesh volume (signed: negative when the normals point in), mm^3
  area                surface area, mm^2
  bodies              connected components
  bounds_lps          [[min x, y, z], [max x, y, z]] of the vertices, LPS mm
  bounds_index        the same for the vertices mapped back to voxel indices (i, j, k)
                      through the inverse affine

The script only measures; the Rust test decides what is acceptable.
"""

import json
import struct
import sys

import numpy as np
import trimesh


def check(entry):
    path = entry["path"]
    with open(path, "rb") as f:
        head = f.read(84)
    header = head[:80].rstrip(b"\0 ").decode("latin-1")
    (count,) = struct.unpack("<I", head[80:84])
    mesh = trimesh.load(path, file_type="stl", force="mesh", process=True)
    affine = np.array(entry["affine_lps"], dtype=np.float64)
    verts = np.asarray(mesh.vertices, dtype=np.float64)
    index = (np.linalg.inv(affine) @ np.c_[verts, np.ones(len(verts))].T).T[:, :3]
    return {
        "path": path,
        "header": header,
        "triangles": int(count),
        "vertices": int(len(verts)),
        "watertight": bool(mesh.is_watertight),
        "winding_consistent": bool(mesh.is_winding_consistent),
        "volume": float(mesh.volume),
        "area": float(mesh.area),
        "bodies": int(len(mesh.split(only_watertight=False))),
        "bounds_lps": [verts.min(0).tolist(), verts.max(0).tolist()],
        "bounds_index": [index.min(0).tolist(), index.max(0).tolist()],
    }


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    with open(sys.argv[1]) as f:
        spec = json.load(f)
    json.dump([check(e) for e in spec], sys.stdout)


if __name__ == "__main__":
    main()
