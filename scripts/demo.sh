#!/usr/bin/env bash
# Installs what is missing (libtorch, the real sample data), builds vistaflow, and runs the
# demo workflow twice: the second run comes entirely from the content-hash cache.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

command -v cargo >/dev/null || { echo "demo: error: cargo not found; install Rust (https://rustup.rs)" >&2; exit 1; }
scripts/setup-libtorch.sh >/dev/null
scripts/fetch-data.sh
cargo build --release --locked
bin=target/release/vistaflow
wf=workflows/ct-preprocess.yaml
echo; echo "== vistaflow plan $wf"; "$bin" plan "$wf"
echo; echo "== vistaflow run $wf"; "$bin" run "$wf"
echo; echo "== again: everything is cached"; "$bin" run "$wf"
echo; echo "outputs in out/demo/; spans in .vistaflow/traces/"
