"""labs/run_gpu.sh, the one command a rented GPU machine runs: it runs the labs it is given (ch03 + ch04 by
default), and hands back only this run's data files, flat, plus its log (the device tool returns at most 8 files,
2 folders down). Exercised with a stand-in Python that writes a data file the way a lab does."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

STUB = """#!/usr/bin/env bash
# Stand-in for python: `-c ...` answers the version probe; `labs/<script> ...` writes that lab's data file.
if [ "$1" = "-c" ]; then echo "torch stub transformers stub GPU stub"; exit 0; fi
case "$1" in
  labs/ch03_prefill_decode.py) folder=ch03-prefill-decode; stem=ch03 ;;
  labs/ch04_gpu_basics.py) folder=ch04-gpu-basics; stem=ch04 ;;
  labs/ch06_kv_cache.py) folder=ch06-kv-cache; stem=ch06 ;;
  labs/ch07_batching.py) folder=ch07-batching; stem=ch07 ;;
  labs/ch08_quantization.py) folder=ch08-quantization; stem=ch08 ;;
  labs/ch09_speculative.py) folder=ch09-speculative; stem=ch09 ;;
  *) echo "unexpected $*" >&2; exit 3 ;;
esac
mkdir -p docs/assets/labs/$folder/data
echo '{"args": "'"$*"'"}' > docs/assets/labs/$folder/data/$stem-h200.json
"""


@pytest.fixture
def tree(tmp_path):
    """A copy of the script in a bare tree with one stale data file from an earlier run."""
    (tmp_path / "labs").mkdir()
    shutil.copy(ROOT / "labs" / "run_gpu.sh", tmp_path / "labs" / "run_gpu.sh")
    stub = tmp_path / "python-stub"
    stub.write_text(STUB)
    stub.chmod(0o755)
    old = tmp_path / "docs/assets/labs/ch03-prefill-decode/data/ch03-h100-sxm.json"
    old.parent.mkdir(parents=True)
    old.write_text("{}")
    os.utime(old, (time.time() - 3600, time.time() - 3600))
    return tmp_path


def run(tree, *labs, out=None):
    env = {**os.environ, "PYTHON": str(tree / "python-stub")}
    if out:
        env["OUT"] = str(out)
    return subprocess.run(["bash", str(tree / "labs" / "run_gpu.sh"), *labs], cwd=tree, env=env,
                          capture_output=True, text=True, timeout=120)


def test_default_run_hands_back_this_runs_data_flat(tree):
    out = tree / "out"
    out.mkdir()
    proc = run(tree, out=out)
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in out.iterdir()) == ["ch03-h200.json", "ch04-h200.json", "run_gpu.log"]
    log = (out / "run_gpu.log").read_text()
    assert "== ch03 exit code 0" in log and "== ch04 exit code 0" in log and "ch06" not in log
    assert "--budget-s 145" in (out / "ch03-h200.json").read_text()


def test_named_labs_only(tree):
    out = tree / "out"
    out.mkdir()
    assert run(tree, "ch06", out=out).returncode == 0
    assert sorted(p.name for p in out.iterdir()) == ["ch06-h200.json", "run_gpu.log"]


def test_ch07_runs_under_its_budget(tree):
    out = tree / "out"
    out.mkdir()
    assert run(tree, "ch07", out=out).returncode == 0
    assert sorted(p.name for p in out.iterdir()) == ["ch07-h200.json", "run_gpu.log"]
    assert "--budget-s 150" in (out / "ch07-h200.json").read_text()


def test_unknown_lab_is_refused_before_anything_runs(tree):
    proc = run(tree, "ch03", "ch99")
    assert proc.returncode == 2 and "unknown lab 'ch99'" in proc.stderr
    assert not (tree / "docs/assets/labs/ch03-prefill-decode/data/ch03-h200.json").exists()


def test_ch08_runs_alone_and_lands_in_out(tree):
    out = tree / "out"
    out.mkdir()
    assert run(tree, "ch08", out=out).returncode == 0
    assert sorted(p.name for p in out.iterdir()) == ["ch08-h200.json", "run_gpu.log"]
def test_ch09_joins_the_table(tree):
    out = tree / "out"
    out.mkdir()
    assert run(tree, "ch09", out=out).returncode == 0
    assert sorted(p.name for p in out.iterdir()) == ["ch09-h200.json", "run_gpu.log"]
    assert "--budget-s 150" in (out / "ch09-h200.json").read_text()


def test_within_starts_only_labs_whose_hard_stop_fits(tree):
    """RUN_GPU_WITHIN=150 with instant stand-in labs: ch03 (hard stop 165 s) cannot end inside it and is named as
    not started; the later ch06 (130 s) and ch04 (55 s) still run."""
    out = tree / "out"
    out.mkdir()
    env = {**os.environ, "PYTHON": str(tree / "python-stub"), "OUT": str(out), "RUN_GPU_WITHIN": "150"}
    proc = subprocess.run(["bash", str(tree / "labs" / "run_gpu.sh"), "ch03", "ch06", "ch04"], cwd=tree, env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in out.iterdir()) == ["ch04-h200.json", "ch06-h200.json", "run_gpu.log"]
    assert "== ch03: not started" in (out / "run_gpu.log").read_text()


def test_within_must_be_whole_seconds(tree):
    env = {**os.environ, "PYTHON": str(tree / "python-stub"), "RUN_GPU_WITHIN": "5m"}
    proc = subprocess.run(["bash", str(tree / "labs" / "run_gpu.sh"), "ch03"], cwd=tree, env=env,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "whole seconds" in proc.stderr


def test_labs_page_time_limits_are_run_gpu_sh_hard_stops():
    """docs/*/labs/index.md states each lab's time limit in run_gpu.sh: it must be the hard stop in the LABS
    table (the page drifted before: 250 s and 160 s for labs whose hard stops were 165 s and 55 s)."""
    import re
    script = (ROOT / "labs" / "run_gpu.sh").read_text()
    stops = {m["folder"]: int(m["stop"]) for m in
             re.finditer(r"^ch\d\d (?P<folder>ch\d\d-[\w-]+) \S+ \d+ (?P<stop>\d+) ", script, re.M)}
    assert len(stops) >= 7
    for lang, unit in (("zh", "秒"), ("en", "s")):
        page = (ROOT / "docs" / lang / "labs" / "index.md").read_text()
        stated = {m["folder"]: int(m["s"]) for m in
                  re.finditer(rf"^\| \[[^]]+\]\((?P<folder>ch\d\d-[\w-]+)\.md\).*\| (?P<s>\d+) {unit} \|$", page, re.M)}
        assert stated == stops, lang
