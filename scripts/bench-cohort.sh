#!/usr/bin/env bash
# Cohort throughput (issue 17's targets: `--cohort` at most 0.6 of a shell loop of
# `vistaflow run`, and a warm re-run at most 5% of the cold run).
# The cohort: 12 subjects made from the TotalSegmentator sample CT and labels by
# scripts/make-cohort.py (z crops of 40-60 slices at 3 mm, shifted and flipped copies);
# the workflow: workflows/cohort-demo.yaml (load CT and labels, vista3d_auto with the demo
# model, metrics, NIfTI export). Each variant starts from an empty cache of its own:
#   loop:      `vistaflow run --set SUBJECT=.. --set IMAGE=.. --set LABELS=..` per subject
#   cohort:    `vistaflow run --cohort subjects.csv` (default --jobs), and with --jobs 1
#   warm:      the same --cohort again (everything cached)
# Needs scripts/fetch-data.sh, scripts/setup-python.sh (nibabel) and a release build.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PY="${VISTAFLOW_PYTHON:-$HOME/.cache/vistaflow/venv/bin/python}"
BIN="${VISTAFLOW_BIN:-$ROOT/target/release/vistaflow}"
[ -x "$BIN" ] || (cd "$ROOT" && cargo build --release -q)
TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT
"$PY" "$ROOT/scripts/make-cohort.py" "$TMP/subjects" >/dev/null
MANIFEST="$TMP/subjects/subjects.csv"

workflow() { # NAME [CACHE]: a copy of the cohort workflow with its own cache and outputs
  sed -e "s#\.\./\.vistaflow/cache#${2:-$TMP/$1/cache}#" -e "s#\.\./models#$ROOT/models#" \
      -e "s#\.\./out#$TMP/$1/out#" "$ROOT/workflows/cohort-demo.yaml" > "$TMP/$1.yaml"
  echo "$TMP/$1.yaml"
}
now() { date +%s.%N; }
secs() { echo "$2 - $1" | bc -l | xargs printf '%.2f'; }

WF="$(workflow loop)"
t0="$(now)"
tail -n +2 "$MANIFEST" | while IFS=, read -r s image labels; do
  "$BIN" run "$WF" -q --no-trace --set "SUBJECT=$s" --set "IMAGE=$TMP/subjects/$image" \
    --set "LABELS=$TMP/subjects/$labels"
done
loop="$(secs "$t0" "$(now)")"

WF="$(workflow cohort)"
t0="$(now)"
"$BIN" run "$WF" -q --no-trace --cohort "$MANIFEST" --results "$TMP/results"
cohort="$(secs "$t0" "$(now)")"
t0="$(now)"
"$BIN" run "$WF" -q --no-trace --cohort "$MANIFEST" --results "$TMP/results"
warm="$(secs "$t0" "$(now)")"

WF="$(workflow jobs1)"
t0="$(now)"
"$BIN" run "$WF" -q --no-trace --cohort "$MANIFEST" --results "$TMP/results1" --jobs 1
jobs1="$(secs "$t0" "$(now)")"

# The same cohort through a real Slurm (scripts/slurm-local.sh), from submit until the gather
# job has written the tables. slurm_cohort NAME NODES ARRAY_MAX [CACHE] sets SECS.
slurm_cohort() {
  local name="$1" nodes="$2" max="$3" t0 wf
  "$ROOT/scripts/slurm-local.sh" start "$TMP/$name" "$nodes" >/dev/null
  trap '"$ROOT/scripts/slurm-local.sh" stop "$TMP/'"$name"'"; "$ROOT/scripts/gluster-local.sh" stop "$TMP/gluster"; rm -rf "$TMP"' EXIT
  export SLURM_CONF="$TMP/$name/slurm.conf"
  wf="$(workflow "$name" "${4:-}")"
  t0="$(now)"
  "$BIN" cohort submit "$wf" --slurm --cohort "$MANIFEST" --results "$TMP/results-$name" \
    --tasks 3 --array-max "$max" >/dev/null
  until "$BIN" cohort status "$TMP/results-$name" | grep -q "submission 0: .*(finished), gather .*(finished)"; do
    sleep 0.2
  done
  SECS="$(secs "$t0" "$(now)")"
  cmp "$TMP/results/metrics_long.csv" "$TMP/results-$name/metrics_long.csv"
  "$ROOT/scripts/slurm-local.sh" stop "$TMP/$name"
}
slurm=skipped
slurm2=skipped
slurm2g=skipped
if command -v slurmctld >/dev/null 2>&1 || [ -x /usr/sbin/slurmctld ]; then
  # One node, 3 array tasks at most 1 at a time (this machine's cores are the one process's
  # too); then two nodes of one core each (n2 in a network namespace; root only), 2 at a time.
  slurm_cohort slurm 1 1; slurm="$SECS"
  if [ "$(id -u)" = 0 ]; then slurm_cohort slurm2 2 2; slurm2="$SECS"; fi
  # The same two nodes with the cache on a GlusterFS volume, each node through its own
  # client (scripts/gluster-local.sh; n2's mounted at host1's path in its own namespace).
  if [ "$(id -u)" = 0 ] && command -v glusterd >/dev/null 2>&1; then
    "$ROOT/scripts/gluster-local.sh" start "$TMP/gluster" >/dev/null
    SLURM_LOCAL_N2_MOUNT="$TMP/gluster/host2:$TMP/gluster/host1" \
      slurm_cohort slurm2g 2 2 "$TMP/gluster/host1/cache"
    slurm2g="$SECS"
    "$ROOT/scripts/gluster-local.sh" stop "$TMP/gluster"
  fi
fi

cmp "$TMP/results/metrics_long.csv" "$TMP/results1/metrics_long.csv"
echo "12 subjects, $(nproc) cores:"
echo "  shell loop of vistaflow run:  ${loop}s"
echo "  --cohort (default jobs):      ${cohort}s  ($(echo "$cohort / $loop" | bc -l | xargs printf '%.2f') of the loop)"
echo "  --cohort --jobs 1:            ${jobs1}s  ($(echo "$jobs1 / $loop" | bc -l | xargs printf '%.2f') of the loop)"
echo "  --cohort warm re-run:         ${warm}s  ($(echo "100 * $warm / $cohort" | bc -l | xargs printf '%.1f')% of cold)"
echo "  Slurm array (3 tasks, 1 at a time), submit to gathered: ${slurm}s"
echo "  Slurm array on two 1-core nodes (3 tasks, 2 at a time): ${slurm2}s"
echo "  the same, cache on GlusterFS (a client per node):       ${slurm2g}s"
echo "  cache per subject: $(echo "$(du -sb "$TMP/cohort/cache" | cut -f1) / 12 / 1000000" | bc -l | xargs printf '%.1f') MB"
echo "  gathered tables of --jobs 1, default jobs and Slurm (one and two nodes, GlusterFS): identical"
