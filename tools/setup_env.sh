#!/usr/bin/env bash
# Create (or reuse) the Python environment for mmvan and install the tested
# OpenMMLab stack into it.
#
#   tools/setup_env.sh [PYTHON_BIN]
#
# The environment is the active virtualenv ($VIRTUAL_ENV) when there is one,
# otherwise ``.venv`` in the repository. A stamp file records a finished
# install; when it is present and newer than the requirement files, nothing
# is done. mmcv is built from source once; pip's wheel cache makes later
# installs on the same machine take seconds.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
PYTHON_BIN=${1:-${PYTHON:-python3.11}}

if [ -n "${VIRTUAL_ENV:-}" ]; then
  VENV=$VIRTUAL_ENV
else
  VENV=$ROOT/.venv
fi
STAMP=$VENV/.mmvan-installed
PY=$VENV/bin/python

up_to_date() {
  [ -f "$STAMP" ] || return 1
  for f in requirements/*.txt setup.py; do
    [ "$f" -nt "$STAMP" ] && return 1
  done
  return 0
}

if up_to_date; then
  echo "mmvan environment at $VENV is up to date."
  exit 0
fi

start=$(date +%s)
if [ ! -x "$PY" ]; then
  if ! command -v "$PYTHON_BIN" >/dev/null 2>&1; then
    echo "error: $PYTHON_BIN not found. Install Python 3.11 or run" \
         "'make PYTHON=/path/to/python3.11 test'." >&2
    exit 1
  fi
  echo "Creating virtual environment at $VENV"
  "$PYTHON_BIN" -m venv "$VENV"
fi

PIP=("$PY" -m pip install --disable-pip-version-check -c requirements/constraints.txt)

# 1. torch first: mmcv compiles against it.
"${PIP[@]}" torch torchvision
# 2. Installing torch pulls a new setuptools back in; pin it after torch.
"${PIP[@]}" -r requirements/build.txt
# 3. mmengine, then mmcv with its compiled ops (no wheels exist for it).
"${PIP[@]}" mmengine
MMCV_WITH_OPS=1 MAX_JOBS=${MAX_JOBS:-$(nproc)} \
  "${PIP[@]}" --no-build-isolation mmcv
# 4. The OpenMMLab task libraries, test tools and mmvan itself.
"${PIP[@]}" -r requirements/runtime.txt -r requirements/optional.txt \
  -r requirements/tests.txt
# 5. xtcocotools (mmpose's COCO keypoint API) ships wheels built against
#    numpy 1, which fail to import under numpy 2: build it from source
#    against the installed numpy (about 12 s).
"${PIP[@]}" --no-binary xtcocotools --no-build-isolation --no-deps \
  --force-reinstall xtcocotools
# 6. panopticapi (COCO panoptic quality, mmdet's panoptic data loading) is
#    on PyPI only as panopticapi-lite, the cocodataset/panopticapi code,
#    whose metadata pins numpy<2 although the code needs only numpy and
#    Pillow: installed without its dependency pins.
"${PIP[@]}" --no-deps panopticapi-lite
"${PIP[@]}" --no-build-isolation --no-deps -e .

"$PY" - <<'PYEOF'
import mmcv.ops  # noqa: F401  compiled ops present
import mmdet.models  # noqa: F401
import mmpose.models  # noqa: F401
import panopticapi.evaluation  # noqa: F401
import xtcocotools.coco  # noqa: F401
import mmpretrain.models  # noqa: F401
import mmseg.models  # noqa: F401

import mmvan

print('mmvan', mmvan.__version__, 'environment ready')
PYEOF
touch "$STAMP"
echo "Installed in $(( $(date +%s) - start )) s."
