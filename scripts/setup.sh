#!/usr/bin/env bash
# Install what the book needs into ./.venv and ./node_modules. Sourced by serve.sh and test.sh.
# Usage: scripts/setup.sh site|all
#
# Python packages come from the locks in requirements/ (exact versions with their hashes; `bash scripts/lock.sh`
# refreshes them): site.txt for `site`, dev.txt (site + labs with the CPU torch + dev) for `all`. The locks are for
# CPython 3.11, and dev.txt's torch for x86-64 Linux; elsewhere the groups of pyproject.toml install unlocked.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
groups="${1:-site}"

if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
  .venv/bin/python -m pip install -q --upgrade pip
fi
lock=requirements/site.txt
extras=site
if [ "$groups" = all ]; then
  lock=requirements/dev.txt
  extras=site,labs,dev
fi
locked=$(.venv/bin/python -c 'import platform, sys
cpu_torch = sys.argv[1] == "site" or (sys.platform == "linux" and platform.machine() == "x86_64")
print("yes" if sys.version_info[:2] == (3, 11) and cpu_torch else "no")' "$groups")
if [ "$locked" = yes ]; then
  .venv/bin/python -m pip install -q --require-hashes -r "$lock"
else
  echo "setup.sh: $lock is for CPython 3.11 (x86-64 Linux for the CPU torch); installing [$extras] unlocked" >&2
  # The suite runs the labs' --quick mode on the CPU: take the CPU torch, not a multi-GB CUDA build. GPU users
  # install their own torch first.
  if [ "$groups" = all ]; then
    .venv/bin/python -c "import torch" 2>/dev/null || .venv/bin/python -m pip install -q torch==2.13.0
  fi
  .venv/bin/python -m pip install -q -e ".[$extras]"
fi
# calc itself (standard library only), importable from anywhere in the venv.
.venv/bin/python -m pip install -q --no-deps -e .
# KaTeX, Mermaid and Pyodide, served by the site itself (hooks/vendor_assets.py copies them in).
npm ci --no-audit --no-fund --loglevel=error
