#!/usr/bin/env bash
# GPU exhaustive-token-search benchmark (benchmarks/gpu_ets.py) on random-init Llama-3.1-8B and
# Gemma-2-27B RMs: run from the repository root on a box with one >= 80 GB GPU.
#
#   benchmarks/gpu_ets.sh [extra gpu_ets.py options, e.g. --layers 23 --peak-tflops 989]
#
# Needs a python with torch + transformers (PYTHON=..., else .venv/bin/python, else python3); the
# package is installed with `pip install -e . --no-deps` only if it does not import. Nothing is
# downloaded: the tokenizers come from $RMVALUES_CACHE/assets/{llama3-tokenizer,gemma2-tokenizer,
# chat-templates} (13 MB; default: ./.cache/rmvalues when it exists, e.g. copied there from a
# machine that has run `rmvalues assets fetch`). The result is written to $OUT/gpu_ets.json
# ($OUT default: ./gpu-ets-out); the whole run is capped at $GPU_ETS_TIMEOUT seconds (480).
set -euo pipefail
cd "$(dirname "$0")/.."

if [[ -z "${PYTHON:-}" ]]; then
  if [[ -x .venv/bin/python ]]; then PYTHON=.venv/bin/python; else PYTHON=python3; fi
fi
if [[ -z "${RMVALUES_CACHE:-}" && -d .cache/rmvalues ]]; then
  export RMVALUES_CACHE="$PWD/.cache/rmvalues"
fi
export OUT="${OUT:-$PWD/gpu-ets-out}"
mkdir -p "$OUT"
# This checkout's source first, whatever else is installed.
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
if ! "$PYTHON" -c "import rmvalues.engines.score" 2>/dev/null; then
  "$PYTHON" -m pip install -q -e . --no-deps
fi
"$PYTHON" -c "import torch, transformers; print('torch', torch.__version__, '| transformers', \
transformers.__version__, '| cuda', torch.cuda.is_available() and torch.cuda.get_device_name())"
nvidia-smi --query-gpu=name,memory.total,clocks.max.sm --format=csv,noheader 2>/dev/null || true

timeout "${GPU_ETS_TIMEOUT:-480}" "$PYTHON" benchmarks/gpu_ets.py \
  --models llama-3.1-8b,gemma-2-27b --out "$OUT/gpu_ets.json" "$@"
