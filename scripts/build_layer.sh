#!/usr/bin/env bash
# Builds the common Lambda layer (listing_vision + pinned runtime deps) into build/layer/python,
# with wheels for the Lambda platform (Python 3.12, x86_64, glibc 2.34 on Amazon Linux 2023),
# whatever machine this runs on.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-build/layer}
pip=${PIP:-.venv/bin/pip}
rm -rf "$out"
mkdir -p "$out/python"
platforms=()
for tag in manylinux2014_x86_64 manylinux_2_28_x86_64 manylinux_2_34_x86_64; do platforms+=(--platform "$tag"); done
"$pip" install --quiet --no-compile --implementation cp --python-version 3.12 --only-binary=:all: \
  "${platforms[@]}" --target "$out/python" -c constraints.txt -r layers/common/requirements.txt
"$pip" install --quiet --no-compile --no-deps --target "$out/python" layers/common
# Lambda's 250 MB limit covers the unzipped function plus all its layers.
size_mb=$(du -sm "$out" | cut -f1)
echo "Layer built at $out: ${size_mb} MB unzipped (Lambda limit: 250 MB with the function code)."
if [ "$size_mb" -ge 245 ]; then
  echo "The layer is too large for Lambda; split it or trim dependencies." >&2
  exit 1
fi
