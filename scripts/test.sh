#!/usr/bin/env bash
# Installs what is missing (libtorch, the Python oracles, the real test data) and runs the
# whole test suite. Safe to rerun: every step skips what is already in place.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

command -v cargo >/dev/null || { echo "test: error: cargo not found; install Rust (https://rustup.rs)" >&2; exit 1; }
scripts/setup-libtorch.sh >/dev/null
VISTAFLOW_PYTHON="$(scripts/setup-python.sh | tail -n 1)"
export VISTAFLOW_PYTHON
scripts/fetch-data.sh
cargo test --workspace --release --locked "$@"
