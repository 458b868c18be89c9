#!/usr/bin/env bash
# Install what the site needs, then serve the book with live reload at http://127.0.0.1:8000/
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh site
export NO_MKDOCS_2_WARNING=1
exec .venv/bin/mkdocs serve -a 127.0.0.1:8000 "$@"
