#!/usr/bin/env bash
# GPU check on one CUDA GPU (within 9 minutes on an H100/H200): the CUDA tests, inference MP/s and
# compute floor of every shipped model, training samples/s of each recipe, a 4-minute training burst.
#
#   OUT=DIR scripts/gpu_check.sh [--dry-run]      (default OUT=./gpu-check-out)
#
# Installs the package with its test extras first when it is not importable. Writes
# $OUT/gpu_check.json and $OUT/gpu_check.md (and each phase's logs); see scripts/gpu_check.py.
# --dry-run: the same phases and outputs on the CPU at tiny sizes. PYTHON (default: python).
set -uo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(dirname "$here")
python=${PYTHON:-python}
export OUT=${OUT:-./gpu-check-out}
mkdir -p "$OUT"

began=$(date +%s)
if "$python" -c 'import irestore, pytest' 2>/dev/null; then
    export GPU_CHECK_INSTALL=present
elif timeout 50 "$python" -m pip install -q -e "$root[test]" >"$OUT/install.log" 2>&1; then
    export GPU_CHECK_INSTALL=installed
else
    export GPU_CHECK_INSTALL="failed: pip install -e .[test] (see $OUT/install.log)"
fi
export GPU_CHECK_INSTALL_S=$(( $(date +%s) - began ))

exec "$python" "$here/gpu_check.py" --out "$OUT" "$@"
