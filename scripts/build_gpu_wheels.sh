#!/usr/bin/env bash
# Build, on a CPU machine with nvcc, the wheels that scripts/gpu_check.sh installs on a GPU machine
# that has no package registry. Output: .whl/ in the repository root (git-ignored).
#
#   scripts/build_gpu_wheels.sh [CUDA_ARCH]      # default 90 (H100/H200); 89 = RTX 40xx, 86 = RTX 30xx
#
# llama-cpp-python's wheel is tagged py3-none-linux_x86_64 (ctypes bindings: any CPython 3);
# PyYAML's is per CPython version, so download with the GPU machine's Python (or set PYTHON);
# gpu_check.sh installs what matches and names what is missing. The CUDA build takes long on 2
# cores (one architecture only keeps it and the wheel small: what travels to the GPU machine
# should stay within tens of MB). Nothing here runs on a GPU.
set -euo pipefail
cd "$(dirname "$0")/.."
ARCH=${1:-90}
PY=${PYTHON:-python3}
mkdir -p .whl
command -v nvcc >/dev/null || { echo "build_gpu_wheels: nvcc not found (needs the CUDA toolkit)" >&2; exit 1; }

# llama-cpp-python with CUDA, compiled here for one GPU architecture; no multimodal part.
CMAKE_ARGS="-DGGML_CUDA=on -DCMAKE_CUDA_ARCHITECTURES=${ARCH} -DLLAVA_BUILD=OFF" \
  "$PY" -m pip wheel --no-deps --no-binary llama-cpp-python llama-cpp-python==0.3.36 -w .whl

# The runtime dependencies the GPU machine may lack (numpy comes with PyTorch there).
"$PY" -m pip download --no-deps --only-binary=:all: -d .whl \
  gguf==0.19.0 jinja2 MarkupSafe platformdirs diskcache typing-extensions pyyaml tqdm

ls -la .whl
du -sh .whl
