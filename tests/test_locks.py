"""The Python locks (requirements/*.txt, written by scripts/lock.sh) cover pyproject.toml's groups, with hashes."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
LOCKS = {"site.txt": ["site"], "dev.txt": ["site", "labs", "dev"]}


def _name(requirement: str) -> str:
    return re.split(r"[<>=!~;\[ ]", requirement, maxsplit=1)[0].lower().replace("_", "-")


def _pins(lock: str) -> dict[str, tuple[str, int]]:
    """name -> (version, number of hashes) for each pinned requirement of a lock."""
    text = (ROOT / "requirements" / lock).read_text(encoding="utf-8")
    pins = {}
    for block in re.split(r"\n(?=[A-Za-z0-9])", text):
        found = re.match(r"([A-Za-z0-9._-]+)==(\S+)", block)
        if found:
            pins[found.group(1).lower().replace("_", "-")] = (found.group(2), block.count("--hash=sha256:"))
    return pins


@pytest.mark.parametrize("lock", LOCKS)
def test_every_dependency_of_the_groups_is_pinned_with_a_hash(lock):
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+, which the locks are for
    groups = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]["optional-dependencies"]
    pins = _pins(lock)
    wanted = {_name(r) for group in LOCKS[lock] for r in groups[group]}
    assert wanted <= set(pins), f"not in requirements/{lock}: {sorted(wanted - set(pins))}"
    assert all(hashes for _, hashes in pins.values()), [n for n, (_, h) in pins.items() if not h]


def test_the_locks_agree_and_take_the_fixed_material_and_the_cpu_torch():
    site, dev = _pins("site.txt"), _pins("dev.txt")
    assert {n: v for n, (v, _) in site.items()} == {n: dev[n][0] for n in site}
    major, minor, patch = (int(x) for x in site["mkdocs-material"][0].split(".")[:3])
    assert (major, minor, patch) >= (9, 7, 7)  # DOM XSS in search suggestions fixed in 9.7.7
    assert dev["torch"][0] == "2.13.0+cpu"
