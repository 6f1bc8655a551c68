#!/usr/bin/env bash
# The prepared GPU check of issue 7: R1-1.5B/R1-32B-shape models on one GPU, R2R at the paper's
# large-model share (random:0.124) against the 32B alone.
#
# For a GPU machine with the NVIDIA driver, CUDA, nvcc, cmake and PyTorch but NO package registry;
# meant to finish within 10 minutes. Bring along (git-ignored, built on a CPU machine):
#   .whl/   wheels from scripts/build_gpu_wheels.sh (a CUDA build of llama-cpp-python 0.3.36 for
#           this GPU's architecture, plus gguf, jinja2, platformdirs, ... ; keep it to tens of MB)
#
#   scripts/gpu_check.sh                       # figures on stdout, files in $OUT (default /tmp/r2r-gpu-check/out)
#
# Environment: R2R_WHEELS (default .whl), R2R_GPU_WORK (scratch, needs ~22 GB free disk),
# OUT, R2R_CHECK_TOKENS (max tokens per prompt, default 320:
# 4 prompts x 320 tokens put the random router's share within ~0.01 of 0.124), R2R_CHECK_BUDGET_S (default 570).
#
# DEPENDS ON ISSUE 6, NOT YET IN THIS TREE WHEN THIS WAS WRITTEN (the script stops with a clear
# message where they are missing):
#   - scripts/make_shape_model.py --like r1-1.5b|r1-32b --quant Q4_K_M --out PATH
#   - `r2r bench` with --small/--large/--router random:P/--prompts FILE/--max-tokens/--json, the
#     model flags of `r2r generate`, and `modes.{small,large,r2r}` with tokens_per_s, large_share
#     and (r2r) ideal_tokens_per_s in its JSON (one run covers R2R, small-only and large-only).
# Everything else (fit plan, r2r doctor, router cost, the summary) is in this tree.
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD
WHEELS=${R2R_WHEELS:-$REPO/.whl}
WORK=${R2R_GPU_WORK:-/tmp/r2r-gpu-check}
OUT=${OUT:-$WORK/out}
TOKENS=${R2R_CHECK_TOKENS:-320}
BUDGET=${R2R_CHECK_BUDGET_S:-570}
PY=${PYTHON:-python3}
mkdir -p "$WORK" "$OUT"
export PYTHONPATH=$REPO${PYTHONPATH:+:$PYTHONPATH}
start=$SECONDS

step() { echo "== [$((SECONDS - start))s] $*"; }
fail() { echo "gpu_check: FAILED: $*" >&2; exit 1; }
left() { echo $((BUDGET - (SECONDS - start))); }
need_time() { [ "$(left)" -ge "$1" ] || fail "only $(left)s of the ${BUDGET}s budget left before: $2"; }

step "preflight"
command -v nvidia-smi >/dev/null || fail "nvidia-smi not found: no NVIDIA driver on this machine"
nvidia-smi --query-gpu=name,memory.total,memory.free,driver_version --format=csv | tee "$OUT/nvidia-smi.csv"
[ -d "$WHEELS" ] || fail "no wheel directory $WHEELS: build it with scripts/build_gpu_wheels.sh and bring it along"
step "install the carried wheels (no registry: --no-index, each wheel on its own)"
"$PY" -m venv --system-site-packages "$WORK/venv"
. "$WORK/venv/bin/activate"
PY=python
for whl in "$WHEELS"/*.whl; do
  pip install --no-index --no-deps --quiet "$whl" 2>/dev/null || echo "  skipped $(basename "$whl") (not for this Python/platform)"
done
python - <<'EOF' || fail "a runtime dependency is missing (see above): add its wheel to .whl with scripts/build_gpu_wheels.sh"
import importlib, sys
bad = [m for m in ("llama_cpp", "gguf", "jinja2", "platformdirs", "numpy") if importlib.util.find_spec(m) is None]
if bad:
    print("gpu_check: missing modules:", ", ".join(bad), file=sys.stderr)
    sys.exit(1)
EOF
python -c "from r2r_local.backends.llama_cpp import supports_gpu_offload as s; import sys; sys.exit(0 if s() else 1)" \
  || fail "the installed llama-cpp-python cannot offload to a GPU: the carried wheel is not a CUDA build"

missing6=()
[ -f scripts/make_shape_model.py ] || missing6+=("scripts/make_shape_model.py")
python -m r2r_local.cli bench --help >/dev/null 2>&1 || missing6+=("r2r bench")

step "r2r doctor"
python -m r2r_local.cli doctor | tee "$OUT/doctor.txt"

step "router cost on the GPU (reference size, torch)"
python scripts/router_cost.py --router-only --torch-cuda --device cpu --int8 --steps 200 --json "$OUT/router_cost.json" \
  || echo "  router cost not measured (torch without CUDA?)"

if [ ${#missing6[@]} -gt 0 ]; then
  fail "missing issue-6 pieces: ${missing6[*]} (shape-true models and r2r bench); the figures above are all this tree can give"
fi

step "shape-true models (issue 6's scripts/make_shape_model.py)"
need_time 240 "making the shape models"
for like in r1-1.5b r1-32b; do
  [ -s "$WORK/$like.gguf" ] || python scripts/make_shape_model.py --like "$like" --quant Q4_K_M --out "$WORK/$like.gguf"
done
ls -la "$WORK"/r1-*.gguf

step "fit plan on this GPU"
python -m r2r_local.cli doctor --small "$WORK/r1-1.5b.gguf" --large "$WORK/r1-32b.gguf" --n-ctx 2048 --json > "$OUT/fit.json"
read -r SMALL_L LARGE_L < <(python - "$OUT/fit.json" <<'EOF'
import json, sys
fit = json.load(open(sys.argv[1]))["fit"]
if not fit or "lines" not in fit:
    sys.exit(f"gpu_check: no fit plan: {fit and fit.get('error')}")
print("\n".join(fit["lines"]), file=sys.stderr)
flag = lambda p: -1 if p["gpu_layers"] > p["n_layer"] else p["gpu_layers"]
print(flag(fit["small"]), flag(fit["large"]))
EOF
)
[ -n "${LARGE_L:-}" ] || fail "no fit plan for the shape models (see above)"
echo "  layers: small $SMALL_L, large $LARGE_L"

step "r2r bench: random:0.124 (the paper's share) with small-only and large-only in the same run"
need_time 120 "r2r bench"
cat > "$WORK/prompts.txt" <<'EOF'
Prove that the square root of 2 is irrational.
How many positive divisors does 360 have? Explain step by step.
Write a Python function that returns the n-th Fibonacci number in O(log n) time.
A train leaves at 3 pm at 80 km/h; another leaves the same station at 4 pm at 100 km/h. When does the second catch up?
EOF
timeout "$(left)" python -m r2r_local.cli bench --small "$WORK/r1-1.5b.gguf" --large "$WORK/r1-32b.gguf" \
  --router random:0.124 --prompts "$WORK/prompts.txt" --max-tokens "$TOKENS" --n-ctx 2048 \
  --small-gpu-layers "$SMALL_L" --large-gpu-layers "$LARGE_L" --json > "$OUT/bench.json" \
  || fail "r2r bench failed or ran out of time (exit $?)"

step "the large model's catch-up cost: one call of k new tokens"
timeout "$(( $(left) > 60 ? 60 : 5 ))" python scripts/decode_time.py "$WORK/r1-32b.gguf" --gpu-layers "$LARGE_L" \
  --n-ctx 1024 --steps 10 --catch-up 1,2,4,6,8,9,12,16,24,32 --json "$OUT/catch_up.json" | grep -v '^{"config' \
  || echo "  catch-up cost not measured"
catch=(); [ -s "$OUT/catch_up.json" ] && catch=(--catch-up "$OUT/catch_up.json")

step "figures"
python scripts/gpu_check_summary.py "$OUT/bench.json" "$OUT/router_cost.json" "${catch[@]}" | tee "$OUT/summary.txt"
step "done in $((SECONDS - start))s; files in $OUT"
