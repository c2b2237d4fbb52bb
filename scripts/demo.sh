#!/usr/bin/env bash
# Installs what is missing (libtorch, the real sample data), builds vistaflow, and runs the
# demo: the shipped demo model segments the TotalSegmentator sample DICOM series (held out
# from its training), scored against TotalSegmentator's labels; then the same with a click;
# then the first again, all from the content-hash cache.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

command -v cargo >/dev/null || { echo "demo: error: cargo not found; install Rust (https://rustup.rs)" >&2; exit 1; }
scripts/setup-libtorch.sh >/dev/null
scripts/fetch-data.sh
cargo build --release --locked
bin=target/release/vistaflow
echo; echo "== vistaflow run workflows/demo.yaml"; "$bin" run workflows/demo.yaml
echo; echo "== Dice, HD95 (mm), NSD (2 mm) against TotalSegmentator: out/demo/metrics.csv"
column -s, -t < out/demo/metrics.csv 2>/dev/null || cat out/demo/metrics.csv
echo; echo "== vistaflow run workflows/demo-click.yaml"; "$bin" run workflows/demo-click.yaml
column -s, -t < out/demo-click/metrics.csv 2>/dev/null || cat out/demo-click/metrics.csv
echo; echo "== again: everything is cached"; "$bin" run workflows/demo.yaml
echo; echo "outputs in out/demo/ and out/demo-click/; spans in .vistaflow/traces/"
