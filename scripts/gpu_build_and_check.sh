#!/usr/bin/env bash
# The GPU check of issue 7 on a machine with a GPU, CUDA (nvcc, cuBLAS), cmake, ninja, numpy and
# PyTorch but no package registry and no prebuilt CUDA llama-cpp-python: builds llama.cpp's
# libraries with CUDA from the pinned llama-cpp-python sdist's vendored sources (for one GPU
# architecture, FlashAttention kernels off to keep the build short), points llama-cpp-python's
# ctypes bindings at them (LLAMA_CPP_LIB_PATH), writes r1-1.5b and r1-32b shape-true Q4_K_M models
# while the build runs, then runs `r2r bench` (R2R at the paper's share random:0.124, small-only,
# large-only), times the 32B's catch-up calls of 1..32 tokens (scripts/decode_time.py --catch-up)
# to project the ideal speed at exactly that share, runs R2R with and without --overlap with a
# reference-size ONNX router on the host CPU, and with --ahead (scripts/overlap_bench.py, when time
# is left: with random-weight models the large model never agrees, so this times what writing
# ahead costs the large model's calls on a GPU, not what it gains), and
# measures the router cost on the GPU.
#
# Bring along in .gpu/ (git-ignored), made on a machine with pip by scripts/prepare_gpu_bundle.sh:
#   .gpu/llama_src.tgz  the sdist's vendor/llama.cpp: CMakeLists.txt cmake ggml src include vendor
#                       (pip download --no-binary :all: --no-deps llama-cpp-python==0.3.36)
#   .gpu/py/llama_cpp/  the package's Python files (its lib/ left out)
#   .gpu/whl/           wheels of gguf, platformdirs, diskcache
# Usage: scripts/gpu_build_and_check.sh [CUDA_ARCH=90]; results under $OUT (default /tmp/gpu-out).
set -uo pipefail
cd "$(dirname "$0")/.."
ARCH=${1:-90}
OUT=${OUT:-/tmp/gpu-out}
WORK=${R2R_GPU_WORK:-/tmp/r2r-gpu}
DEADLINE=${R2R_DEADLINE_S:-570}
mkdir -p "$OUT" "$WORK"
start=$SECONDS
say() { echo "== [$((SECONDS - start))s] $*"; }
left() { echo $((DEADLINE - (SECONDS - start))); }

say "machine"
nvidia-smi --query-gpu=name,memory.total,memory.free,driver_version --format=csv,noheader
nproc; python3 --version; nvcc --version | tail -1; cmake --version | head -1
python3 -m pip install -q --no-index --no-deps --target "$WORK/site" .gpu/whl/*.whl || exit 1
export PYTHONPATH=$PWD:$PWD/.gpu/py:$WORK/site

say "shape models (in the background, while llama.cpp builds)"
( python3 scripts/make_shape_model.py --like r1-1.5b --quant Q4_K_M --out "$WORK/r1-1.5b.gguf" --force \
  && python3 scripts/make_shape_model.py --like r1-32b --quant Q4_K_M --out "$WORK/r1-32b.gguf" --force ) \
  > "$OUT/shapes.log" 2>&1 &
shapes=$!

say "configure llama.cpp (CUDA, sm_$ARCH)"
rm -rf "$WORK/src" "$WORK/build" && mkdir -p "$WORK/src" && tar xzf .gpu/llama_src.tgz -C "$WORK/src"
cmake -S "$WORK/src" -B "$WORK/build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DBUILD_SHARED_LIBS=ON \
  -DGGML_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES="$ARCH" -DGGML_CUDA_FA=OFF -DGGML_CUDA_NCCL=OFF -DGGML_NATIVE=ON \
  -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_TOOLS=OFF -DLLAMA_BUILD_SERVER=OFF \
  -DLLAMA_BUILD_COMMON=OFF -DLLAMA_BUILD_APP=OFF -DLLAMA_CURL=OFF > "$OUT/cmake.log" 2>&1 \
  || { tail -30 "$OUT/cmake.log"; exit 1; }
say "build"
timeout "$(( $(left) - 200 ))" ninja -C "$WORK/build" -j "$(nproc)" > "$OUT/build.log" 2>&1 \
  || { tail -20 "$OUT/build.log"; say "build failed or ran out of time"; exit 1; }
lib=$(dirname "$(find "$WORK/build" -name 'libllama.so' | head -1)")
export LLAMA_CPP_LIB_PATH=$lib
python3 -c "from r2r_local.backends.llama_cpp import supports_gpu_offload as s; print('gpu offload:', s())"

say "wait for the shape models"
wait $shapes || { tail -5 "$OUT/shapes.log"; exit 1; }
tail -2 "$OUT/shapes.log"; ls -la "$WORK"/*.gguf

say "smoke: each model alone on the GPU (python -X faulthandler: a crash shows where)"
timeout 120 python3 -X faulthandler - "$WORK/r1-1.5b.gguf" "$WORK/r1-32b.gguf" > "$OUT/smoke.log" 2>&1 <<'EOF'
import sys, time, numpy as np
from r2r_local.backends.llama_cpp import LlamaCppBackend
from r2r_local.config import ModelSpec
for path, hidden in ((sys.argv[1], False), (sys.argv[1], True), (sys.argv[2], False)):
    t = time.time()
    b = LlamaCppBackend(ModelSpec(path, n_ctx=1024, n_gpu_layers=-1, role="smoke"), want_hidden=hidden)
    print(f"SMOKE loaded {path.split('/')[-1]} hidden={hidden} in {time.time() - t:.1f}s", flush=True)
    out = b.decode(list(range(100, 140)), hidden=hidden)
    for _ in range(8):
        out = b.decode([int(np.argmax(out.logits))], hidden=hidden)
    print("SMOKE decoded; logits finite:", bool(np.isfinite(out.logits).all()), flush=True)
    b.close()
EOF
grep -E "SMOKE|Fatal|File \"|Error|error" "$OUT/smoke.log" | head -30

say "r2r bench: r1-1.5b + r1-32b shapes, random:0.124 (the paper's share), small-only, large-only"
# 5 prompts x 320 tokens: the random router's share lands within ~0.01 of 0.124 (384 tokens gave 0.102)
timeout "$(( $(left) - 90 ))" python3 -X faulthandler -m r2r_local.cli bench --small "$WORK/r1-1.5b.gguf" --large "$WORK/r1-32b.gguf" \
  --router random:0.124 --n 5 --max-tokens 320 --n-ctx 2048 --json --out "$OUT/bench" > "$OUT/bench.json" \
  2> "$OUT/bench.err"; rc=$?
tail -12 "$OUT/bench.err"
[ $rc -eq 0 ] && python3 - "$OUT/bench.json" <<'EOF'
import json, sys
d = json.load(open(sys.argv[1]))
for m, r in d["modes"].items():
    print(m, {k: round(v, 3) for k, v in r.items() if isinstance(v, float)})
r = d["modes"]["r2r"]
print(f"speedup over the 32B alone: {r['speedup_vs_large']:.2f}x; efficiency vs ideal: {r['efficiency']:.2f}")
EOF

say "the 32B's catch-up cost: one call of k new tokens, all layers on the GPU"
timeout "$(( $(left) > 60 ? 60 : 5 ))" python3 scripts/decode_time.py "$WORK/r1-32b.gguf" --gpu-layers -1 --n-ctx 1024 \
  --steps 10 --catch-up 1,2,4,6,8,9,12,16,24,32 --json "$OUT/catch_up.json" 2>&1 | grep -v '^{"config'
[ -s "$OUT/bench.json" ] && [ -s "$OUT/catch_up.json" ] \
  && python3 scripts/gpu_check_summary.py "$OUT/bench.json" --catch-up "$OUT/catch_up.json" | tee "$OUT/summary.txt"

say "overlap: the reference-size router (int8) on the host's CPU (8 onnxruntime threads) beside the GPU's steps"
[ "$(left)" -gt 150 ] && R2R_ROUTER_THREADS=8 timeout "$(( $(left) - 60 ))" python3 scripts/overlap_bench.py \
  --small "$WORK/r1-1.5b.gguf" --large "$WORK/r1-32b.gguf" --gpu-layers -1 --threads 4 --int8 --work "$WORK" \
  --modes small,large,r2r,overlap,ahead \
  --json "$OUT/overlap.json" 2>&1 | tail -3

say "router cost on the GPU (torch CUDA graph) and CPU (onnxruntime)"
timeout "$(( $(left) > 5 ? $(left) : 5 ))" python3 scripts/router_cost.py --router-only --torch-cuda --device cpu \
  --int8 --steps 200 --json "$OUT/router_cost.json" 2>&1 | tail -8
say "done"
