"""scripts/sync_notebook.py: the English notebook takes the Chinese run's code and outputs, keeps its own text."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _nb(markdown: str, code: str, output: str) -> dict:
    return {
        "cells": [
            {"cell_type": "markdown", "metadata": {}, "source": [markdown]},
            {"cell_type": "code", "metadata": {}, "execution_count": 3, "source": [code],
             "outputs": [{"output_type": "stream", "name": "stdout", "text": [output]}]},
        ],
        "metadata": {"kernelspec": {"name": "python3"}}, "nbformat": 4, "nbformat_minor": 5,
    }


def _run(tmp_path, zh: dict, en: dict):
    (tmp_path / "zh.ipynb").write_text(json.dumps(zh))
    (tmp_path / "en.ipynb").write_text(json.dumps(en))
    proc = subprocess.run([sys.executable, "scripts/sync_notebook.py", str(tmp_path / "zh.ipynb"), str(tmp_path / "en.ipynb")],
                          cwd=ROOT, capture_output=True, text=True, timeout=60)
    return proc, json.loads((tmp_path / "en.ipynb").read_text())


def test_code_and_outputs_follow_the_chinese_run_and_english_text_stays(tmp_path):
    proc, en = _run(tmp_path, _nb("## 预填充", "print(1 + 1)", "2\n"), _nb("## Prefill", "print(1)", "1\n"))
    assert proc.returncode == 0, proc.stderr
    assert en["cells"][0]["source"] == ["## Prefill"]
    assert en["cells"][1]["source"] == ["print(1 + 1)"]
    assert en["cells"][1]["outputs"][0]["text"] == ["2\n"]


def test_different_cell_sequences_are_refused(tmp_path):
    zh = _nb("## 预填充", "print(1 + 1)", "2\n")
    en = _nb("## Prefill", "print(1)", "1\n")
    en["cells"].append({"cell_type": "markdown", "metadata": {}, "source": ["extra"]})
    proc, after = _run(tmp_path, zh, en)
    assert proc.returncode == 2 and "cell sequences" in proc.stderr
    assert after["cells"][1]["source"] == ["print(1)"]  # untouched
