#!/usr/bin/env bash
# Coverage-guided fuzzing (cargo-fuzz / libFuzzer on the stable toolchain via RUSTC_BOOTSTRAP)
# of the loaders that take outside bytes: nifti, nrrd, dicom, workflow (YAML + --set), points,
# weights (safetensors + model card), cache (entry sidecar + data file, sink records), rtstruct
# and seg (RT Structure Sets and DICOM SEGs onto the CT series in fuzz/fixtures), and manifest
# (a cohort's CSV or YAML subject list).
#
#   scripts/fuzz.sh SECONDS [TARGET...]     each target for SECONDS (default: all targets)
#   FUZZ_SEED=N                             libFuzzer's seed (default 0: a new one each run)
#
# Seeds: fuzz/corpus/<target> (committed: minimised regressions and small hand-made files)
# plus the real files under data/ (scripts/fetch-data.sh). What libFuzzer adds goes to
# target/fuzz-corpus/<target> (not committed). A crash, panic, hang (> 10 s) or RSS > 4 GB
# stops the target with its input in fuzz/artifacts/<target>/ and fails the script.
# No sanitizer (`-s none`): libtorch is not instrumented; findings are panics, aborts, hangs
# and memory, which libFuzzer sees without one.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
SECONDS_EACH="${1:-60}"; shift || true
TARGETS=("$@"); [ ${#TARGETS[@]} -gt 0 ] || TARGETS=(nifti nrrd dicom workflow points weights cache rtstruct seg manifest)
DATA="${VISTAFLOW_DATA:-$ROOT/data}"
export RUSTC_BOOTSTRAP=1
if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "fuzz.sh: installing cargo-fuzz (once)" >&2
  cargo install --locked cargo-fuzz@0.13.2 >&2
fi
# The loaders link libtorch: the checkout's .libtorch (scripts/setup-libtorch.sh).
export LD_LIBRARY_PATH="$ROOT/.libtorch/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"

seed() { # TARGET: real files from data/ into the working corpus
  local t="$1" dir="target/fuzz-corpus/$1"
  mkdir -p "$dir"
  case "$t" in
    nifti) cp -n "$DATA"/nibabel/*.nii* "$DATA"/totalsegmentator/example_ct_sm.nii.gz "$DATA"/totalsegmentator/example_seg_roi_subset.nii.gz "$dir"/ 2>/dev/null || true ;;
    nrrd) find "$DATA/pyradiomics" -maxdepth 1 -name '*.nrrd' -size -400k -exec cp -n {} "$dir"/ \; ;;
    dicom) find "$DATA/pydicom" -name '*.dcm' -size -64k -exec cp -n {} "$dir"/ \;
      # whole series (small slices), the files joined by the target's separator
      for s in "$DATA"/pydicom/test_files/dicomdirtests/*/*/; do
        local out="$dir/series-$(basename "$(dirname "$s")")-$(basename "$s")" first=1
        [ -e "$out" ] && continue
        for f in $(find "$s" -maxdepth 1 -type f | sort | head -8); do
          [ $first = 1 ] || printf '\n--file--\n' >> "$out"; first=0
          cat "$f" >> "$out"
        done
      done ;;
    workflow) cp -n workflows/*.yaml "$dir"/ ;;
    rtstruct) cp -n "$DATA/pydicom/test_files/rtstruct.dcm" "$dir"/ 2>/dev/null || true ;; # another scan's
    points|weights|cache|seg|manifest) ;; # committed seeds only: fuzz/corpus/<target> (fuzz/make-seeds.sh)
  esac
}

status=0
for t in "${TARGETS[@]}"; do
  seed "$t"
  mkdir -p "fuzz/corpus/$t"
  echo "== fuzz $t for ${SECONDS_EACH}s ($(ls "target/fuzz-corpus/$t" "fuzz/corpus/$t" | wc -l) seeds)" >&2
  if ! cargo fuzz run -s none --release "$t" "target/fuzz-corpus/$t" "fuzz/corpus/$t" -- \
      -max_total_time="$SECONDS_EACH" -timeout=10 -rss_limit_mb=4096 -max_len=1048576 \
      -print_final_stats=1 -seed="${FUZZ_SEED:-0}" 2> "target/fuzz-$t.log"; then
    status=1
    echo "fuzz.sh: $t found a problem; input in fuzz/artifacts/$t/, log target/fuzz-$t.log" >&2
    grep -v -e "^\s*\[" -e "^Output of" "target/fuzz-$t.log" | tail -30 | cut -c1-400 >&2
  fi
  grep -E "^stat::(number_of_executed_units|peak_rss_mb)|^Done" "target/fuzz-$t.log" | sed "s/^/  $t: /" >&2 || true
done
exit $status
