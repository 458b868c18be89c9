#!/usr/bin/env bash
# Refresh the Python locks, exact versions with their hashes, from pyproject.toml's groups:
#   requirements/site.txt  the site (serve.sh)          requirements/dev.txt  site + labs (CPU torch) + dev (test.sh)
# Extra arguments go to pip-compile, e.g. `bash scripts/lock.sh --upgrade-package mkdocs-material` or `--upgrade`.
# The locks are for CPython 3.11 (this project's machines and CI); dev.txt's torch is the x86-64 Linux CPU wheel.
set -euo pipefail
cd "$(dirname "$0")/.."
python="${PYTHON:-python3}"
"$python" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' \
  || { echo "lock.sh: run it with CPython 3.11 (PYTHON=python3.11 bash scripts/lock.sh)" >&2; exit 1; }

# pip-tools in a throwaway venv, so the locks do not depend on what .venv holds.
tools="$(mktemp -d)"
trap 'rm -rf "$tools"' EXIT
"$python" -m venv "$tools"
"$tools/bin/python" -m pip install -q pip==26.3 pip-tools==7.6.2

export CUSTOM_COMPILE_COMMAND="bash scripts/lock.sh"  # the command the locks' headers name
compile=("$tools/bin/pip-compile" -q --generate-hashes --allow-unsafe --strip-extras --no-emit-index-url
         --no-emit-find-links)
"${compile[@]}" --extra site -o requirements/site.txt "$@" pyproject.toml
# The same versions as site.txt for what both hold.
"${compile[@]}" --extra site,labs,dev -c requirements/site.txt -o requirements/dev.txt "$@" \
  pyproject.toml requirements/torch-cpu.in
