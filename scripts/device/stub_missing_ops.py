#!/usr/bin/env python3
"""Makes tch's C wrapper compile against an older libtorch (scripts/build-for-device.sh).

tch 0.26's libtch/torch_api_generated.cpp wraps every operator of PyTorch 2.13; built against
2.11's headers, the few operators that 2.11 lacks (or whose signature changed) fail to compile.
Given the compiler's log, this replaces the body of each failing `atg_*` function with one that
reports the operator as missing at run time (the PROTECT macro turns the exception into tch's
error). vistaflow calls none of them; a call would fail with that message, never silently.

Usage: stub_missing_ops.py TORCH_API_GENERATED_CPP BUILD_LOG  -> prints how many it stubbed.
"""
import re
import sys


def main():
    cpp_path, log_path = sys.argv[1], sys.argv[2]
    lines = open(cpp_path).read().split("\n")
    log = open(log_path, errors="replace").read()
    bad = sorted({int(m) for m in re.findall(r"torch_api_generated\.cpp:(\d+):\d+: error:", log)})
    starts = set()
    for line_no in bad:
        i = line_no - 1
        while i >= 0 and not re.match(r"^\w.*\batg_\w+\(.*\) \{$", lines[i]):
            i -= 1
        if i < 0:
            sys.exit("stub_missing_ops: no function around line %d" % line_no)
        starts.add(i)
    for i in sorted(starts, reverse=True):
        head = lines[i]
        if not head.startswith("void "):
            sys.exit("stub_missing_ops: cannot stub a non-void function: " + head[:80])
        name = re.search(r"\b(atg_\w+)\(", head).group(1)
        j = i + 1
        while lines[j] != "}":
            j += 1
        lines[i + 1 : j] = [
            '  PROTECT(throw std::runtime_error("%s: this operator is not in the libtorch this '
            'binary was built against");)' % name
        ]
    open(cpp_path, "w").write("\n".join(lines))
    print(len(starts))


if __name__ == "__main__":
    main()
