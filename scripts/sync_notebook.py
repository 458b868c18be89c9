"""Copy a re-executed Chinese notebook's code cells and outputs into its English twin.

Notebooks are executed once, in Chinese (the original), and the English twin takes the very same code and
outputs, so both languages show one run (tests/test_parity.py checks that they match). To refresh chapter 3's:

    .venv/bin/jupyter nbconvert --to notebook --execute --inplace docs/zh/ch03/practice.ipynb
    .venv/bin/python scripts/sync_notebook.py docs/zh/ch03/practice.ipynb docs/en/ch03/practice.ipynb

Markdown cells of the English notebook are kept as they are (translate them by hand when the Chinese changes);
the two notebooks must have the same sequence of cell types.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def sync(source: dict, target: dict) -> dict:
    kinds = [c["cell_type"] for c in source["cells"]], [c["cell_type"] for c in target["cells"]]
    if kinds[0] != kinds[1]:
        raise ValueError("the notebooks have different cell sequences; add or remove the same cells in both first")
    for src, dst in zip(source["cells"], target["cells"], strict=True):
        if src["cell_type"] == "code":
            dst["source"] = src["source"]
            dst["outputs"] = src["outputs"]
            dst["execution_count"] = src["execution_count"]
    target["metadata"] = source["metadata"]
    return target


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("source", type=Path, help="the executed notebook (Chinese)")
    parser.add_argument("target", type=Path, help="its twin to update (English)")
    args = parser.parse_args(argv)
    try:
        source = json.loads(args.source.read_text(encoding="utf-8"))
        target = json.loads(args.target.read_text(encoding="utf-8"))
        synced = sync(source, target)
    except (OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    args.target.write_text(json.dumps(synced, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
