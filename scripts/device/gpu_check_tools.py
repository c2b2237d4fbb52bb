#!/usr/bin/env python3
"""Helpers of scripts/gpu-check.sh, one subcommand each (numpy, nibabel, torch):

  volume PATH NXxNYxNZ        a synthetic CT (int16 HU, 1.5 mm): an elliptic trunk and a spine,
                              the volume of scripts/bench-vista3d.sh (c)
  hog LEAVE_MIB               take all GPU memory but LEAVE_MIB MiB, print `ready`, hold it
                              until killed: a memory cap for another process
  spans TRACE                 the node spans and events of a vistaflow trace (OTLP JSON lines)
                              as JSON: id, kind, device, start, GPU slot taken, end (s), events
  agree A.nii.gz B.nii.gz     label agreement of two label maps: all voxels, and the voxels
                              that either labels (foreground)
  summary RESULTS.jsonl       the results as a Markdown table
"""
import json
import sys
import time


def volume(path, size):
    import nibabel as nib
    import numpy as np

    nx, ny, nz = [int(s) for s in size.split("x")]
    rng = np.random.default_rng(0)
    x, y = np.meshgrid(np.arange(nx) - nx / 2, np.arange(ny) - ny / 2, indexing="ij")
    body = (x / (0.42 * nx)) ** 2 + (y / (0.36 * ny)) ** 2 <= 1.0
    bone = (x / (0.05 * nx)) ** 2 + ((y + 0.25 * ny) / (0.05 * ny)) ** 2 <= 1.0
    vol = np.full((nx, ny, nz), -1000, np.int16)
    for k in range(nz):
        sl = np.where(body, 40 + rng.normal(0, 20, body.shape), -1000)
        sl[bone] = 700
        vol[:, :, k] = sl.astype(np.int16)
    nib.save(nib.Nifti1Image(vol, np.diag([1.5, 1.5, 1.5, 1.0])), path)


def hog(leave_mib):
    import torch

    free, _ = torch.cuda.mem_get_info()
    take = free - int(leave_mib) * 2**20
    held = torch.empty(max(take, 0), dtype=torch.uint8, device="cuda")
    free_after, _ = torch.cuda.mem_get_info()
    print("ready: holding %d MiB, %d MiB left free" % (held.numel() >> 20, free_after >> 20), flush=True)
    while True:
        time.sleep(60)


def _attrs(items):
    out = {}
    for a in items or []:
        v = a["value"]
        out[a["key"]] = next(iter(v.values())) if v else None
    return out


def spans(path):
    nodes, events = [], []
    with open(path) as fh:
        for line in fh:
            for rs in json.loads(line)["resourceSpans"]:
                for ss in rs["scopeSpans"]:
                    for s in ss["spans"]:
                        a = _attrs(s.get("attributes"))
                        acquired = None
                        for e in s.get("events", []):
                            if e["name"] == "vistaflow.device.acquired":
                                acquired = int(e["timeUnixNano"]) / 1e9
                            else:
                                events.append({"name": e["name"], **_attrs(e.get("attributes"))})
                        if s["name"] != "vistaflow.node":
                            continue
                        nodes.append({
                            "id": a.get("vistaflow.node.id"),
                            "kind": a.get("vistaflow.node.kind"),
                            "device": a.get("vistaflow.device"),
                            "start_s": int(s["startTimeUnixNano"]) / 1e9,
                            "gpu_from_s": acquired,
                            "end_s": int(s["endTimeUnixNano"]) / 1e9,
                        })
    t0 = min((n["start_s"] for n in nodes), default=0.0)
    for n in nodes:
        for k in ("start_s", "gpu_from_s", "end_s"):
            if n[k] is not None:
                n[k] = round(n[k] - t0, 3)
    print(json.dumps({"nodes": nodes, "events": events}))


def agree(a_path, b_path):
    import nibabel as nib
    import numpy as np

    a = np.asarray(nib.load(a_path).dataobj)
    b = np.asarray(nib.load(b_path).dataobj)
    if a.shape != b.shape:
        sys.exit("agree: shapes differ: %s vs %s" % (a.shape, b.shape))
    fg = (a > 0) | (b > 0)
    print(json.dumps({
        "agreement": float((a == b).mean()),
        "foreground_agreement": float((a == b)[fg].mean()) if fg.any() else None,
        "foreground_voxels": [int((a > 0).sum()), int((b > 0).sum())],
        "classes": [len(np.unique(a)) - 1, len(np.unique(b)) - 1],
    }))


def summary(path):
    rows = [json.loads(l) for l in open(path) if l.strip()]
    print("| step | result |\n|---|---|")
    for r in rows:
        step = r.pop("step", "?")
        trace = r.pop("trace", None)
        if trace:  # the nodes' times and devices, and the events' messages, in short
            r["nodes"] = " ".join("%s@%s %.2fs" % (n["id"], n["device"], n["end_s"] - (n.get("gpu_from_s") or n["start_s"]))
                                  for n in trace["nodes"])
            r["events"] = [e.get("message") or e.get("reason") or e["name"] for e in trace["events"]]
        print("| %s | %s |" % (step, ", ".join("%s: %s" % (k, v) for k, v in r.items())))


if __name__ == "__main__":
    cmd, args = sys.argv[1], sys.argv[2:]
    {"volume": volume, "hog": hog, "spans": spans, "agree": agree, "summary": summary}[cmd](*args)
