#!/usr/bin/env bash
# Install what the book needs into ./.venv and ./node_modules. Sourced by serve.sh and test.sh.
# Usage: scripts/setup.sh site|all
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
groups="${1:-site}"

if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
  .venv/bin/python -m pip install -q --upgrade pip
fi
if [ "$groups" = all ]; then
  # The suite runs the labs' --quick mode on the CPU. Pin torch so pip takes the CPU build this machine kind
  # keeps on disk instead of pulling a multi-GB CUDA build; GPU users install their own torch first.
  .venv/bin/python -c "import torch" 2>/dev/null || .venv/bin/python -m pip install -q torch==2.13.0
  .venv/bin/python -m pip install -q -e ".[site,labs,dev]"
else
  .venv/bin/python -m pip install -q -e ".[site]"
fi
# KaTeX, Mermaid and Pyodide, served by the site itself (hooks/vendor_assets.py copies them in).
npm ci --no-audit --no-fund --loglevel=error
