"""Benchmark (not a timed test): a cold import of calc plus a full memory + perf report, in a fresh CPython.

    .venv/bin/python scripts/bench_calc.py [--runs 20]

The browser calculators re-run reports on every input change, so this should stay well under 50 ms.
Each run starts a new interpreter so the import (including reading the registry JSON files) is counted.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SNIPPET = """
import time
t0 = time.perf_counter()
from calc import api
api.run("memory", {"model": "llama-3.1-8b", "gpu": "h100-sxm"})
api.run("perf", {"model": "llama-3.1-8b", "gpu": "h100-sxm"})
t1 = time.perf_counter()
api.run("memory", {"model": "deepseek-v3", "gpu": "h200", "tp": 8})
api.run("perf", {"model": "deepseek-v3", "gpu": "h200", "tp": 8})
t2 = time.perf_counter()
print((t1 - t0) * 1e3, (t2 - t1) * 1e3)
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args()
    cold, warm = [], []
    for _ in range(args.runs):
        out = subprocess.run([sys.executable, "-c", SNIPPET], cwd=ROOT, capture_output=True, text=True, check=True)
        a, b = map(float, out.stdout.split())
        cold.append(a)
        warm.append(b)
    print(f"python {sys.version.split()[0]}, {args.runs} fresh interpreters")
    print(f"import + memory + perf (llama-3.1-8b, h100-sxm): median {statistics.median(cold):.1f} ms, max {max(cold):.1f} ms")
    print(f"a further memory + perf (deepseek-v3, h200, tp 8), warm: median {statistics.median(warm):.1f} ms")
    print("budget: 50 ms ->", "OK" if statistics.median(cold) < 50 else "OVER")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
