#!/usr/bin/env bash
# GPU verification kit: prove lib-deepfake's GPU paths on an NVIDIA machine in about 6 minutes, offline.
#
#   bash bench/gpu_check.sh --out bench/results/gpu-check [--wheels DIR] [--budget 330] [--steps a,b] [--skip a,b]
#   bash bench/gpu_check.sh --dry-run --out /tmp/gpu-check        # the same steps on CPU, small, under 2 minutes
#
# 1. With --wheels DIR: joins split wheels (NAME.whl.part-00, -01, ... -> NAME.whl, checked against NAME.whl.sha256
#    or SHA256SUMS), then installs every wheel in DIR with `pip install --no-index --no-deps` (never torch: the
#    machine's CUDA build stays). onnxruntime-gpu replaces a CPU onnxruntime (both own the `onnxruntime` package).
# 2. Makes lib_deepfake importable from this checkout without touching dependencies: nothing when it already is,
#    else `pip install --no-deps --no-build-isolation -e .`, else PYTHONPATH=src.
# 3. Runs `lib-bench gpu-check` (as python -m lib_deepfake.cli.bench gpu-check, which needs click): env, native,
#    pytest, engines, crops, decode, infer; each step in its own process with a time limit; results in
#    OUT/gpu-check-<card>.json + .md, a table last.
# Exit status: 0 when no step failed (skips are fine), 1 when one did, 2 on bad usage or a broken setup.
# docs/gpu-check.md has the details, including how to prepare the wheel folder (bench/gpu_check_wheels.sh).
set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
OUT="bench/results/gpu-check"
WHEELS=""
DRY=0
INSTALL=1
PY="${PYTHON:-}"
PIP_ARGS=()
DRIVER_ARGS=()

usage() { sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'; }

while [ $# -gt 0 ]; do
  case "$1" in
    --out) OUT="$2"; shift 2 ;;
    --wheels) WHEELS="$2"; shift 2 ;;
    --dry-run) DRY=1; shift ;;
    --python) PY="$2"; shift 2 ;;
    --no-install) INSTALL=0; shift ;;
    --pip-arg) PIP_ARGS+=("$2"); shift 2 ;;
    --budget|--steps|--skip|--work) DRIVER_ARGS+=("$1" "$2"); shift 2 ;;
    -h|--help) usage; exit 0 ;;
    *) echo "gpu_check.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done

cd "$ROOT" || exit 2
if [ -z "$PY" ]; then
  if [ -x "$ROOT/.venv/bin/python" ]; then PY="$ROOT/.venv/bin/python"; else PY="$(command -v python3 || true)"; fi
fi
if [ -z "$PY" ] || ! "$PY" -c 'import sys; assert sys.version_info >= (3, 10)' 2>/dev/null; then
  echo "gpu_check.sh: need Python >= 3.10 (set --python or \$PYTHON)" >&2; exit 2
fi
mkdir -p "$OUT" || exit 2
OUT="$(cd "$OUT" && pwd)"
LOG="$OUT/install.log"
: > "$LOG"
T0=$(date +%s)
say() { echo "[setup] $*"; echo "[setup] $*" >> "$LOG"; }

JOINED=()
BAD_SUMS=()
INSTALLED=()
EXCLUDED=()
PIP_STATUS="not run"
PROJECT="unchanged"

# --- 1. wheels ------------------------------------------------------------------------------------------------
check_sum() {  # check_sum DIR FILE -> 0 ok or no checksum known, 1 mismatch
  local dir="$1" f="$2" want="" got
  if [ -f "$dir/$f.sha256" ]; then want="$(awk '{print $1; exit}' "$dir/$f.sha256")"
  elif [ -f "$dir/SHA256SUMS" ]; then want="$(awk -v n="$f" '$2 == n || $2 == "*"n {print $1; exit}' "$dir/SHA256SUMS")"; fi
  [ -z "$want" ] && return 0
  got="$(sha256sum "$dir/$f" | awk '{print $1}')"
  [ "$got" = "$want" ]
}

if [ -n "$WHEELS" ] && [ "$INSTALL" = 1 ]; then
  if [ ! -d "$WHEELS" ]; then echo "gpu_check.sh: --wheels $WHEELS is not a folder" >&2; exit 2; fi
  WHEELS="$(cd "$WHEELS" && pwd)"
  # Join NAME.whl.part-00 NAME.whl.part-01 ... (split -b 60M -d) back into NAME.whl; the glob sorts the parts.
  for first in "$WHEELS"/*.whl.part-00 "$WHEELS"/*.whl.part-aa; do
    [ -e "$first" ] || continue
    base="${first%.part-*}"
    name="$(basename "$base")"
    if [ -f "$base" ] && check_sum "$WHEELS" "$name"; then say "already joined: $name"; continue; fi
    cat "$base".part-* > "$base.tmp" && mv "$base.tmp" "$base"
    if check_sum "$WHEELS" "$name"; then
      JOINED+=("$name"); say "joined $(ls "$base".part-* | wc -l) parts -> $name"
    else
      BAD_SUMS+=("$name"); rm -f "$base"; say "CHECKSUM MISMATCH after joining $name: removed (parts incomplete?)"
    fi
  done
  WHL=()
  for w in "$WHEELS"/*.whl; do
    [ -e "$w" ] || continue
    n="$(basename "$w")"
    case "$n" in
      torch-*|torchvision-*|torchaudio-*|triton-*) EXCLUDED+=("$n"); say "not installing $n: the machine's torch stays"; continue ;;
    esac
    if ! check_sum "$WHEELS" "$n"; then BAD_SUMS+=("$n"); say "CHECKSUM MISMATCH: $n (skipped)"; continue; fi
    WHL+=("$w")
  done
  if [ ${#WHL[@]} -gt 0 ]; then
    if ! "$PY" -m pip --version >/dev/null 2>&1; then
      say "pip is not available for $PY: wheels not installed"; PIP_STATUS="no pip"
    else
      if printf '%s\n' "${WHL[@]}" | grep -q '/onnxruntime_gpu-' && "$PY" -m pip show onnxruntime >/dev/null 2>&1; then
        # Both distributions own the onnxruntime/ package; installing one over the other leaves a broken mix.
        say "removing the CPU onnxruntime before installing onnxruntime-gpu"
        "$PY" -m pip uninstall -y onnxruntime >> "$LOG" 2>&1
      fi
      say "installing ${#WHL[@]} wheel(s) from $WHEELS (pip --no-index --no-deps)"
      if "$PY" -m pip install --no-index --no-deps --find-links "$WHEELS" "${PIP_ARGS[@]}" "${WHL[@]}" >> "$LOG" 2>&1; then
        PIP_STATUS="ok"
      else
        PIP_STATUS="failed (see install.log)"; say "pip install failed: $(tail -n 2 "$LOG" | tr '\n' ' ')"
      fi
      for w in "${WHL[@]}"; do INSTALLED+=("$(basename "$w")"); done
      "$PY" -m pip check >> "$LOG" 2>&1 || say "pip check reports missing requirements (install.log); steps that need them skip"
    fi
  fi
fi

# --- 2. the project itself --------------------------------------------------------------------------------------
where="$("$PY" -c 'import lib_deepfake, os; print(os.path.realpath(lib_deepfake.__file__))' 2>/dev/null || true)"
case "$where" in
  "$ROOT"/src/*) PROJECT="already importable from $ROOT/src" ;;
  *)
    if [ "$INSTALL" = 1 ] && "$PY" -m pip install --no-deps --no-build-isolation --no-index -e "$ROOT" >> "$LOG" 2>&1 \
       && "$PY" -c 'import lib_deepfake' 2>/dev/null; then
      PROJECT="pip install --no-deps -e ."
    else
      export PYTHONPATH="$ROOT/src${PYTHONPATH:+:$PYTHONPATH}"
      PROJECT="PYTHONPATH=$ROOT/src (editable install not possible here: no setuptools or pip?)"
    fi ;;
esac
say "lib_deepfake: $PROJECT"
if ! "$PY" -c 'import lib_deepfake.cli.bench, lib_deepfake.cli.bench_gpu_check' 2>>"$LOG"; then
  echo "gpu_check.sh: cannot import lib-bench gpu-check with $PY (click missing? add it to --wheels; see $LOG)" >&2
  exit 2
fi

# --- install.json: what this script did, picked up by the report ------------------------------------------------
"$PY" - "$OUT/install.json" "$PY" "$WHEELS" "$PIP_STATUS" "$PROJECT" "$(( $(date +%s) - T0 ))" \
  "${JOINED[*]-}" "${BAD_SUMS[*]-}" "${INSTALLED[*]-}" "${EXCLUDED[*]-}" <<'EOF'
import json, sys
path, py, wheels, pip_status, project, secs, joined, bad, installed, excluded = sys.argv[1:11]
split = lambda s: [x for x in s.split(" ") if x]
json.dump({"python": py, "wheels_dir": wheels or None, "pip": pip_status, "project": project, "seconds": int(secs),
           "joined": split(joined), "checksum_mismatch": split(bad), "installed": split(installed),
           "excluded": split(excluded)}, open(path, "w"), indent=2)
EOF

# --- 3. the checks ------------------------------------------------------------------------------------------------
ARGS=(--out "$OUT")
[ "$DRY" = 1 ] && ARGS+=(--dry-run)
exec "$PY" -m lib_deepfake.cli.bench gpu-check "${ARGS[@]}" "${DRIVER_ARGS[@]}"
