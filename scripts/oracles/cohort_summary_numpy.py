#!/usr/bin/env python3
"""Checks a cohort's summary.csv against numpy and scipy, from its metrics_long.csv:
n, undefined, mean, median, quartiles (numpy's linear quantiles), empty predictions, and
the 95% CI against scipy.stats.bootstrap (percentile method, 2000 resamples, another random
stream: the two intervals must agree within 15% of their width).

    cohort_summary_numpy.py RESULTS_DIR      (prints `ok N rows`, exits 1 on a mismatch)
"""
import csv
import math
import os
import sys

import numpy as np
from scipy import stats

d = sys.argv[1]
groups, empty = {}, {}
with open(os.path.join(d, "metrics_long.csv")) as f:
    for r in csv.DictReader(f):
        key = (r["node"], int(r["class_id"]))
        v = float(r["value"])
        if r["metric"] == "voxels_prediction":
            empty[key] = empty.get(key, 0) + (v == 0)
        if r["metric"].startswith("voxels_"):
            continue
        groups.setdefault(key + (r["metric"],), []).append(v)

bad, rows = [], 0
with open(os.path.join(d, "summary.csv")) as f:
    for r in csv.DictReader(f):
        rows += 1
        key = (r["node"], int(r["class_id"]), r["metric"])
        vals = np.array(groups.pop(key))
        fin = vals[np.isfinite(vals)]
        want = {
            "subjects": len(vals), "n": len(fin), "undefined": len(vals) - len(fin),
            "empty_prediction": empty.get(key[:2], 0),
        }
        for k, w in want.items():
            if int(r[k]) != w:
                bad.append(f"{key} {k}: {r[k]} != {w}")
        if len(fin) == 0:
            continue
        q1, med, q3 = np.quantile(fin, [0.25, 0.5, 0.75])
        for k, w in {"mean": fin.mean(), "median": med, "q1": q1, "q3": q3}.items():
            if not math.isclose(float(r[k]), w, rel_tol=1e-9, abs_tol=1e-12):
                bad.append(f"{key} {k}: {r[k]} != {w!r}")
        if len(fin) >= 2 and np.ptp(fin) > 0:
            ci = stats.bootstrap((fin,), np.mean, n_resamples=2000, method="percentile",
                                 confidence_level=0.95, rng=np.random.default_rng(0))
            lo, hi = ci.confidence_interval
            tol = 0.15 * (hi - lo)
            if abs(float(r["ci95_low"]) - lo) > tol or abs(float(r["ci95_high"]) - hi) > tol:
                bad.append(f"{key} CI: [{r['ci95_low']}, {r['ci95_high']}] vs scipy [{lo}, {hi}]")
if groups:
    bad.append(f"groups missing from summary.csv: {sorted(groups)}")
if bad:
    print("\n".join(bad))
    sys.exit(1)
print(f"ok {rows} rows")
