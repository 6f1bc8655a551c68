#!/usr/bin/env bash
# Make .gpu/ (git-ignored), what scripts/gpu_build_and_check.sh needs on a GPU machine that has
# CUDA, cmake, ninja, numpy and PyTorch but no package registry. Run it here, where pip reaches
# the registry, then carry .gpu to the GPU machine with the working tree:
#   .gpu/llama_src.tgz  llama.cpp as vendored in llama-cpp-python 0.3.36's sdist (the CPU and
#                       CUDA backends only, ~4 MB)
#   .gpu/py/llama_cpp/  llama-cpp-python's Python files (ctypes bindings; the library is built there)
#   .gpu/whl/           wheels of gguf, platformdirs, diskcache
#
#   scripts/prepare_gpu_bundle.sh            # then: scripts/gpu_build_and_check.sh on the GPU machine
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
VERSION=0.3.36
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"$PY" -m pip download --quiet --no-deps --no-binary :all: -d "$tmp" "llama-cpp-python==$VERSION"
tar xzf "$tmp"/llama_cpp_python-"$VERSION".tar.gz -C "$tmp"
src="$tmp/llama_cpp_python-$VERSION"
vendor="$src/vendor/llama.cpp"
[ -f "$vendor/CMakeLists.txt" ] || { echo "prepare_gpu_bundle: no vendor/llama.cpp in the sdist" >&2; exit 1; }
# Backends other than the CPU and CUDA ones are not built there; leaving them out keeps it small.
for d in "$vendor"/ggml/src/ggml-*/; do
  case "$(basename "$d")" in ggml-cpu|ggml-cuda|ggml-blas) ;; *) rm -rf "$d" ;; esac
done
rm -rf .gpu && mkdir -p .gpu/py .gpu/whl
tar czf .gpu/llama_src.tgz -C "$vendor" CMakeLists.txt cmake common ggml src include vendor
cp -r "$src/llama_cpp" .gpu/py/llama_cpp
rm -rf .gpu/py/llama_cpp/lib
"$PY" -m pip download --quiet --no-deps --only-binary=:all: -d .gpu/whl gguf==0.19.0 platformdirs diskcache
du -sh .gpu/llama_src.tgz .gpu/py .gpu/whl
