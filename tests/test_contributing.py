"""CONTRIBUTING.md describes the build as it is: every hook mkdocs.yml lists, in its order."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_contributing_names_every_hook_in_mkdocs_order():
    config = (ROOT / "mkdocs.yml").read_text(encoding="utf-8")
    block = re.search(r"^hooks:\n((?:  - .*\n)+)", config, re.M).group(1)
    hooks = [line.split("hooks/", 1)[1].strip() for line in block.splitlines()]
    text = (ROOT / "CONTRIBUTING.md").read_text(encoding="utf-8")
    table = re.findall(r"^\| (\d+) \| `([\w.]+\.py)` \|", text, re.M)
    assert [name for _, name in table] == hooks
    assert [int(n) for n, _ in table] == list(range(1, len(hooks) + 1))
    assert "```mermaid" in text
