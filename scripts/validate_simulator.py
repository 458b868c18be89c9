"""Simulated vs published serving benchmarks: writes calc/data/simulator_validation.json (the planner page's
table, via ``{{ registry validation }}``) and prints it.

    python scripts/validate_simulator.py                 # the ideal roofline engine (the default StepCost)
    python scripts/validate_simulator.py --quick         # the first point of each benchmark, printed only

The published points are in calc/data/serving_benchmarks.json, each with its source. Rerun this after changing
the step-time model (or, once engine profiles exist, pass one as the StepCost in calc.validate.validate).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from calc import validate as val  # noqa: E402
from calc.simulate import StepCost  # noqa: E402

OUT = os.path.join(ROOT, "calc", "data", "simulator_validation.json")


def _commit() -> str:
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "calc"], cwd=ROOT, capture_output=True, text=True).stdout
        return sha + ("-dirty" if dirty.strip() else "")
    except OSError:
        return "unknown"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="one point per benchmark; print, write nothing")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    cost = StepCost()
    rows = val.validate(cost, seed=args.seed, max_points=1 if args.quick else None)
    print(f"{'benchmark':<38} {'rate':>5} {'lengths':>14} | {'TTFT p50 ms pub/sim':>21} | {'ITL p50 ms pub/sim':>19} "
          f"| {'out tok/s pub/sim':>17}")
    for r in rows:
        rate = "inf" if r["rate"] is None else f"{r['rate']:g}"
        print(f"{r['benchmark']:<38} {rate:>5} {r['prompt'] + '/' + r['output']:>14} | "
              f"{r['published_median_ttft_ms']:>9.1f} {r['simulated_median_ttft_ms']:>9.1f}   | "
              f"{r['published_median_itl_ms']:>7.2f} {r['simulated_median_itl_ms']:>9.2f}   | "
              f"{r['published_output_tok_per_s']:>7.0f} {r['simulated_output_tok_per_s']:>8.0f}")
    if args.quick:
        return
    doc = {
        "note": "written by scripts/validate_simulator.py from calc/data/serving_benchmarks.json",
        "step_cost": {"name": cost.name, "memory_efficiency": cost.memory_efficiency,
                      "compute_efficiency": cost.compute_efficiency, "step_overhead_s": 0.0},
        "sim_max_num_seqs": val.SIM_MAX_NUM_SEQS, "sim_max_num_batched_tokens": val.SIM_MAX_NUM_BATCHED_TOKENS,
        "seed": args.seed, "calc_commit": _commit(), "date": datetime.date.today().isoformat(),
        "rows": rows,
    }
    with open(OUT, "w", encoding="utf-8") as fh:
        json.dump(doc, fh, indent=1, ensure_ascii=False)
        fh.write("\n")
    print(f"wrote {os.path.relpath(OUT, ROOT)}")


if __name__ == "__main__":
    main()
