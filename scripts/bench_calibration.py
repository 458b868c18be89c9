"""Report calc's error against the published measurements in calc/data/calibration.json.

    .venv/bin/python scripts/bench_calibration.py [--points] [--engine ENGINE]

Prints kind × subset (fit / holdout / all): n, median |error|, max |error|; --points adds one line per point;
--engine computes every point with one profile (e.g. ideal: how optimistic the plain roofline is).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from calc import calibration  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--points", action="store_true", help="one line per measurement")
    ap.add_argument("--engine", help="compute every point with this profile instead of its own engine's")
    args = ap.parse_args()
    rows = calibration.errors(args.engine)
    if args.points:
        for r in rows:
            print(f"{r['id']:<42}{r['engine']:<10}{r['subset']:<8}{r['measured']:>12.4g}{r['predicted']:>12.4g}"
                  f"{r['error']:>+9.1%}")
        print()
    print(calibration.format_table(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
