#!/usr/bin/env bash
# Fetches the real medical images that the tests use into data/ (git-ignored), from package
# registries only. Idempotent: whatever is already in place is kept and not fetched again.
#
#   data/totalsegmentator/   TotalSegmentator 2.18.0 sdist tests/reference_files/ (CT, MR,
#                            segmentations as NIfTI, and the example_ct_dicom/ series)
#   data/nibabel/            NIfTI files from nibabel's own test data (NIfTI-2, 4D, ...)
#   data/pyradiomics/        pyradiomics 3.0.1 sdist data/{lung1,lung2,brain1,brain2,breast1}_
#                            {image,label}.nrrd (gzip NRRD: CT, MR, masks), and lung1_dicom/:
#                            lung1_image.nrrd as a DICOM CT series (scripts/oracles/make_lung_dicom.py,
#                            needs the venv of scripts/setup-python.sh)
#   data/vista3d/small/      golden fixtures for the VISTA3D network parity test: MONAI's VISTA3D
#                            in a small configuration with random weights (weights.safetensors,
#                            config.json, golden.safetensors), made by scripts/oracles/vista3d_small.py
#                            (needs the venv of scripts/setup-python.sh: torch + monai)
#   data/pydicom/            pydicom 3.0.2 test_files/ (all, 3 MB) and a selection of
#                            pydicom-data 1.0.0's data_store/data/ (DICOM CT/MR in many transfer
#                            syntaxes, Enhanced CT/MR, broken files); see PYDICOM_STORE_FILES
#   dcm2niix                 the DICOM -> NIfTI oracle, via apt (skipped with a message when apt
#                            is unavailable; the golden values are committed, so tests do not need it)
#   /usr/share/mricron/templates/{ch2,ch2bet,aal}.nii.gz   Colin27 via apt (mricron-data),
#                            skipped with a message when apt is unavailable
#
#   VISTAFLOW_DATA   target folder (default: data/ at the repository root)
#   PYTHON           interpreter whose pip downloads (default: python3)
# Exits non-zero with a message naming what failed.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DATA="${VISTAFLOW_DATA:-$ROOT/data}"
PY="${PYTHON:-python3}"
TS_VERSION=2.18.0
NIBABEL_VERSION=5.3.2
# nibabel test files we use (all NIfTI); keep in sync with scripts/oracles/nifti_golden.py.
NIBABEL_FILES=(anatomical.nii example4d.nii.gz example_nifti2.nii.gz functional.nii standard.nii.gz)
PYDICOM_VERSION=3.0.2
PYDICOM_DATA_VERSION=1.0.0
# pydicom-data files we use (the package is 56 MB; these are ~10 MB); keep in sync with
# scripts/oracles/dicom_golden.py.
PYDICOM_STORE_FILES=(693_J2KR.dcm 693_UNCI.dcm 693_UNCR.dcm MR2_J2KI.dcm MR2_J2KR.dcm MR2_UNCI.dcm
  MR2_UNCR.dcm JPEG-LL.dcm eCT_Supplemental.dcm emri_small.dcm emri_small_RLE.dcm
  emri_small_big_endian.dcm emri_small_jpeg_2k_lossless.dcm emri_small_jpeg_2k_lossless_too_short.dcm
  emri_small_jpeg_ls_lossless.dcm MR-SIEMENS-DICOM-WithOverlays.dcm explicit_VR-UN.dcm
  bad_sequence.dcm)

fail() { echo "fetch-data: error: $*" >&2; exit 1; }
mkdir -p "$DATA"
DL="$DATA/.downloads"
mkdir -p "$DL"

# --- TotalSegmentator reference files -------------------------------------------------------
TS="$DATA/totalsegmentator"
if [ -f "$TS/.complete" ]; then
  echo "fetch-data: totalsegmentator $TS_VERSION reference files already in $TS"
else
  sdist="$DL/totalsegmentator-$TS_VERSION.tar.gz"
  if [ ! -f "$sdist" ]; then
    echo "fetch-data: downloading the totalsegmentator $TS_VERSION sdist (about 37 MB)"
    "$PY" -m pip download --quiet --disable-pip-version-check --no-deps --no-binary totalsegmentator \
      "totalsegmentator==$TS_VERSION" -d "$DL" \
      || fail "pip download of totalsegmentator==$TS_VERSION failed (is PyPI reachable? set PYTHON to an interpreter with pip)"
  fi
  [ -f "$sdist" ] || fail "pip did not leave $sdist"
  tmp="$TS.partial"
  rm -rf "$tmp"
  mkdir -p "$tmp"
  tar -xzf "$sdist" -C "$tmp" --strip-components=3 "totalsegmentator-$TS_VERSION/tests/reference_files" \
    || fail "could not extract tests/reference_files from $sdist (corrupt download? delete it and rerun)"
  touch "$tmp/.complete"
  rm -rf "$TS"
  mv "$tmp" "$TS"
fi

# --- nibabel's test files -------------------------------------------------------------------
NB="$DATA/nibabel"
if [ -f "$NB/.complete" ]; then
  echo "fetch-data: nibabel $NIBABEL_VERSION test files already in $NB"
else
  wheel="$(ls "$DL"/nibabel-"$NIBABEL_VERSION"-*.whl 2>/dev/null | head -1 || true)"
  if [ -z "$wheel" ]; then
    echo "fetch-data: downloading the nibabel $NIBABEL_VERSION wheel for its test data"
    "$PY" -m pip download --quiet --disable-pip-version-check --no-deps --only-binary :all: \
      "nibabel==$NIBABEL_VERSION" -d "$DL" || fail "pip download of nibabel==$NIBABEL_VERSION failed"
    wheel="$(ls "$DL"/nibabel-"$NIBABEL_VERSION"-*.whl 2>/dev/null | head -1 || true)"
  fi
  [ -n "$wheel" ] || fail "pip left no nibabel wheel in $DL"
  tmp="$NB.partial"
  rm -rf "$tmp"
  mkdir -p "$tmp"
  "$PY" - "$wheel" "$tmp" "${NIBABEL_FILES[@]}" <<'PYEOF' || fail "could not extract nibabel test files from $wheel"
import sys, zipfile, os
wheel, out, names = sys.argv[1], sys.argv[2], sys.argv[3:]
with zipfile.ZipFile(wheel) as z:
    for n in names:
        data = z.read("nibabel/tests/data/" + n)
        with open(os.path.join(out, n), "wb") as f:
            f.write(data)
PYEOF
  touch "$tmp/.complete"
  rm -rf "$NB"
  mv "$tmp" "$NB"
fi

# --- pydicom's test files -------------------------------------------------------------------
PD="$DATA/pydicom"
if [ -f "$PD/.complete" ]; then
  echo "fetch-data: pydicom $PYDICOM_VERSION / pydicom-data $PYDICOM_DATA_VERSION test files already in $PD"
else
  for spec in "pydicom==$PYDICOM_VERSION" "pydicom-data==$PYDICOM_DATA_VERSION"; do
    name="${spec%%==*}"; ver="${spec##*==}"
    if ! ls "$DL"/"${name//-/_}"-"$ver"-*.whl >/dev/null 2>&1; then
      echo "fetch-data: downloading the $spec wheel for its test data"
      "$PY" -m pip download --quiet --disable-pip-version-check --no-deps --only-binary :all: \
        "$spec" -d "$DL" || fail "pip download of $spec failed (is PyPI reachable?)"
    fi
  done
  pd_wheel="$(ls "$DL"/pydicom-"$PYDICOM_VERSION"-*.whl 2>/dev/null | head -1 || true)"
  pdd_wheel="$(ls "$DL"/pydicom_data-"$PYDICOM_DATA_VERSION"-*.whl 2>/dev/null | head -1 || true)"
  [ -n "$pd_wheel" ] && [ -n "$pdd_wheel" ] || fail "pip left no pydicom/pydicom-data wheel in $DL"
  tmp="$PD.partial"
  rm -rf "$tmp"
  mkdir -p "$tmp"
  "$PY" - "$pd_wheel" "$pdd_wheel" "$tmp" "${PYDICOM_STORE_FILES[@]}" <<'PYEOF' || fail "could not extract pydicom test files"
import sys, zipfile, os
pd_wheel, pdd_wheel, out, names = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]
prefix = "pydicom/data/test_files/"
with zipfile.ZipFile(pd_wheel) as z:
    for n in z.namelist():
        if n.startswith(prefix) and not n.endswith("/"):
            dst = os.path.join(out, "test_files", n[len(prefix):])
            os.makedirs(os.path.dirname(dst), exist_ok=True)
            with open(dst, "wb") as f:
                f.write(z.read(n))
os.makedirs(os.path.join(out, "data_store"), exist_ok=True)
with zipfile.ZipFile(pdd_wheel) as z:
    for n in names:
        with open(os.path.join(out, "data_store", n), "wb") as f:
            f.write(z.read("data_store/data/" + n))
PYEOF
  touch "$tmp/.complete"
  rm -rf "$PD"
  mv "$tmp" "$PD"
fi

# --- Debian tools the oracles need, via apt ---------------------------------------------------
# apt_tool COMMAND PACKAGE WHY: installs PACKAGE unless COMMAND is there; without apt or root,
# says what is skipped (the test that needs it says so too).
apt_tool() {
  local cmd="$1" pkg="$2" why="$3"
  if command -v "$cmd" >/dev/null 2>&1; then
    echo "fetch-data: $cmd already installed"
  elif command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    echo "fetch-data: installing $pkg ($cmd) with apt-get"
    if ! { apt-get install -y -qq "$pkg" >/dev/null 2>&1 \
           || { apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq "$pkg" >/dev/null 2>&1; }; }; then
      fail "apt-get install $pkg failed (run 'apt-get update' and retry, or see apt's output)"
    fi
  else
    echo "fetch-data: skipped $cmd ($pkg): apt-get unavailable or not root; $why"
  fi
}
apt_tool dcm2niix dcm2niix "only scripts/oracles/dicom_golden.py needs it"
apt_tool dciodvfy dicom3tools "the DICOM SEG and RT-STRUCT export tests need it"
apt_tool plastimatch plastimatch "the RT-STRUCT tests need it (an independent reader)"
apt_tool munged munge "the Slurm cohort test needs it (Slurm's authentication)"
apt_tool slurmctld slurm-wlm "the Slurm cohort test needs it (scripts/slurm-local.sh starts it)"
apt_tool ip iproute2 "the two-node Slurm test needs it (the second node's network namespace)"
apt_tool glusterd glusterfs-server "the cache-between-hosts test needs it (scripts/gluster-local.sh: a real network file system)"
apt_tool chromium chromium "the viewer's browser test needs it (headless, software WebGL)"
apt_tool chromedriver chromium-driver "the viewer's browser test drives chromium through it"

# --- Colin27 (mricron-data) via apt -----------------------------------------------------------
COLIN=/usr/share/mricron/templates
if [ -f "$COLIN/ch2.nii.gz" ]; then
  echo "fetch-data: Colin27 templates already in $COLIN"
elif command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
  echo "fetch-data: installing mricron-data (Colin27 templates) with apt-get"
  if ! { apt-get install -y -qq mricron-data >/dev/null 2>&1 \
         || { apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq mricron-data >/dev/null 2>&1; }; }; then
    fail "apt-get install mricron-data failed (run 'apt-get update' and retry, or see apt's output)"
  fi
else
  echo "fetch-data: skipped Colin27 (mricron-data): apt-get unavailable or not root; tests that need it will say so"
fi

# --- pyradiomics 3.0.1 sample NRRD files (lung CT, brain MR, breast; image + label) ---------
# The sdist is the only package that ships them. pip must build its metadata to download an
# sdist, and pyradiomics' setup.py imports numpy and versioneer and needs wheel's bdist_wheel:
# that happens in a throwaway venv under data/.downloads, never in the system interpreter.
PR_VERSION=3.0.1
PR_FILES=(lung1 lung2 brain1 brain2 breast1)
PR="$DATA/pyradiomics"
if [ -f "$PR/.complete" ]; then
  echo "fetch-data: pyradiomics $PR_VERSION sample NRRD files already in $PR"
else
  sdist="$DL/pyradiomics-$PR_VERSION.tar.gz"
  if [ ! -f "$sdist" ]; then
    echo "fetch-data: downloading the pyradiomics $PR_VERSION sdist (about 35 MB)"
    bvenv="$DL/pyradiomics-build-venv"
    if [ ! -x "$bvenv/bin/python" ]; then
      "$PY" -m venv "$bvenv" \
        || fail "'$PY -m venv' failed; install python3-venv (apt-get install python3-venv) or set PYTHON"
    fi
    "$bvenv/bin/python" -m pip install --quiet --disable-pip-version-check numpy setuptools versioneer wheel \
      || fail "pip install of numpy setuptools versioneer wheel (needed to download the pyradiomics sdist) failed (is PyPI reachable?)"
    # (A plain `pip download --no-binary :all:` or one with build isolation fails: pyradiomics'
    # build needs numpy and versioneer, which its pyproject.toml does not declare.)
    "$bvenv/bin/python" -m pip download --quiet --disable-pip-version-check --no-deps \
      --no-binary pyradiomics --no-build-isolation "pyradiomics==$PR_VERSION" -d "$DL" \
      || fail "pip download of pyradiomics==$PR_VERSION failed (is PyPI reachable? pip must build the sdist's metadata with numpy, setuptools, versioneer and wheel from $bvenv)"
    rm -rf "$bvenv"  # only needed for the download (about 100 MB)
  fi
  [ -f "$sdist" ] || fail "pip did not leave $sdist"
  tmp="$PR.partial"
  rm -rf "$tmp"
  mkdir -p "$tmp"
  members=()
  for f in "${PR_FILES[@]}"; do
    members+=("pyradiomics-$PR_VERSION/data/${f}_image.nrrd" "pyradiomics-$PR_VERSION/data/${f}_label.nrrd")
  done
  tar -xzf "$sdist" -C "$tmp" --strip-components=2 "${members[@]}" \
    || fail "could not extract the data/*.nrrd files from $sdist (corrupt download? delete it and rerun)"
  touch "$tmp/.complete"
  rm -rf "$PR"
  mv "$tmp" "$PR"
fi
echo "  pyradiomics: $PR: $(find "$PR" -name '*.nrrd' | wc -l) NRRD files, $(du -sh "$PR" | cut -f1)"

# --- lung1 as a DICOM series (fixture for load_dicom against dcm2niix and the NRRD) -----------
# data/pyradiomics/lung1_dicom/: lung1_image.nrrd written once as a DICOM CT series (48 slices)
# by scripts/oracles/make_lung_dicom.py with SimpleITK from the oracle venv. That venv comes
# from scripts/setup-python.sh, which scripts/test.sh (and so CI) runs BEFORE this script; run
# alone without it, this step is skipped with a message instead of failing.
LUNG_DICOM="$PR/lung1_dicom"
VENV="${VISTAFLOW_VENV:-$HOME/.cache/vistaflow/venv}"
if [ -d "$LUNG_DICOM" ]; then
  echo "fetch-data: lung1 DICOM series already in $LUNG_DICOM"
elif [ -x "$VENV/bin/python" ]; then
  vpy="$("$ROOT/scripts/setup-python.sh" | tail -1)" || fail "scripts/setup-python.sh failed (needed for the lung1 DICOM series)"
  "$vpy" "$ROOT/scripts/oracles/make_lung_dicom.py" \
    || fail "scripts/oracles/make_lung_dicom.py could not write $LUNG_DICOM"
else
  echo "fetch-data: skipped the lung1 DICOM series: no oracle venv at $VENV yet (run scripts/setup-python.sh, then this script again)"
fi

# --- VISTA3D small-network golden fixtures (network parity test) ------------------------------
# data/vista3d/small/: MONAI's own VISTA3D (same architecture as vista3d132, 16 features, blocks
# (1,2,1,1,1)) with seeded random weights and its outputs on a seeded random input, written by
# scripts/oracles/vista3d_small.py (deterministic, a few seconds) with torch + monai from the
# oracle venv. Like the lung1 DICOM series: skipped with a message when there is no venv yet.
VISTA_SMALL="$DATA/vista3d/small"
# Made again whenever the generator changes (its sha256 is stamped beside the fixtures).
VISTA_GEN_SHA="$(sha256sum "$ROOT/scripts/oracles/vista3d_small.py" | cut -d' ' -f1)"
if [ -d "$VISTA_SMALL" ] && [ "$(cat "$VISTA_SMALL/.generator-sha256" 2>/dev/null)" != "$VISTA_GEN_SHA" ]; then
  echo "fetch-data: scripts/oracles/vista3d_small.py changed: making $VISTA_SMALL again"
  rm -rf "$VISTA_SMALL"
fi
if [ -d "$VISTA_SMALL" ]; then
  echo "fetch-data: VISTA3D small-network fixtures already in $VISTA_SMALL"
elif [ -x "$VENV/bin/python" ]; then
  vpy="$("$ROOT/scripts/setup-python.sh" | tail -1)" || fail "scripts/setup-python.sh failed (needed for the VISTA3D fixtures)"
  mkdir -p "$DATA/vista3d"
  "$vpy" "$ROOT/scripts/oracles/vista3d_small.py" "$VISTA_SMALL" \
    || fail "scripts/oracles/vista3d_small.py could not write $VISTA_SMALL"
  echo "$VISTA_GEN_SHA" > "$VISTA_SMALL/.generator-sha256"
else
  echo "fetch-data: skipped the VISTA3D small-network fixtures: no oracle venv at $VENV yet (run scripts/setup-python.sh, then this script again)"
fi

# --- metrics golden fixtures (MONAI + MedPy on the TotalSegmentator label map) ----------------
# data/metrics/: the TotalSegmentator sample's seg and a seeded perturbed copy (eroded, dilated,
# shifted, one class removed, false-positive blobs), an anisotropic flipped crop, tiny empty and
# border cases, with MONAI's and MedPy's per-class values, by scripts/oracles/metrics_golden.py
# (about 25 s). Made again whenever the generator changes.
METRICS_DIR="$DATA/metrics"
METRICS_GEN_SHA="$(sha256sum "$ROOT/scripts/oracles/metrics_golden.py" | cut -d' ' -f1)"
if [ -d "$METRICS_DIR" ] && [ "$(cat "$METRICS_DIR/.generator-sha256" 2>/dev/null)" != "$METRICS_GEN_SHA" ]; then
  echo "fetch-data: scripts/oracles/metrics_golden.py changed: making $METRICS_DIR again"
  rm -rf "$METRICS_DIR"
fi
if [ -d "$METRICS_DIR" ]; then
  echo "fetch-data: metrics fixtures already in $METRICS_DIR"
elif [ -x "$VENV/bin/python" ]; then
  vpy="$("$ROOT/scripts/setup-python.sh" | tail -1)" || fail "scripts/setup-python.sh failed (needed for the metrics fixtures)"
  "$vpy" "$ROOT/scripts/oracles/metrics_golden.py" "$METRICS_DIR" "$TS/example_seg.nii.gz" \
    || fail "scripts/oracles/metrics_golden.py could not write $METRICS_DIR"
  echo "$METRICS_GEN_SHA" > "$METRICS_DIR/.generator-sha256"
else
  echo "fetch-data: skipped the metrics fixtures: no oracle venv at $VENV yet (run scripts/setup-python.sh, then this script again)"
fi

echo "fetch-data: fetched:"
for d in "$TS" "$NB" "$PD"; do
  n="$(find "$d" -type f ! -name .complete | wc -l)"
  sz="$(du -sh "$d" | cut -f1)"
  echo "  $d: $n files, $sz"
done
if [ -d "$COLIN" ]; then
  for f in ch2 ch2bet aal; do [ -f "$COLIN/$f.nii.gz" ] && echo "  $COLIN/$f.nii.gz"; done
fi
exit 0
