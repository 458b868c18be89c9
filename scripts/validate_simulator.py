"""Simulated vs published serving benchmarks: writes calc/data/simulator_validation.json (the planner page's
table, via ``{{ registry validation }}``) and prints it.

    python scripts/validate_simulator.py                 # each benchmark's own engine profile, and the ideal one
    python scripts/validate_simulator.py --quick         # the first point of each benchmark, printed only

The published points are in calc/data/serving_benchmarks.json, each with its source and the calc.engines key of
the engine that ran it (``calc_engine``). Every point is simulated twice: with that engine's profile (its fixed
costs per step, efficiencies and KV budget rule; calc/data/engines.json) and with ``ideal`` (the plain roofline,
no per-step overhead). Rerun this after changing the step-time model or an engine profile.
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

OUT = os.path.join(ROOT, "calc", "data", "simulator_validation.json")


def _commit() -> str:
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "calc"], cwd=ROOT, capture_output=True, text=True).stdout
        return sha + ("-dirty" if dirty.strip() else "")
    except OSError:
        return "unknown"


def _median(xs: list[float]) -> float:
    xs = sorted(xs)
    n = len(xs)
    return (xs[n // 2] + xs[(n - 1) // 2]) / 2


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="one point per benchmark; print, write nothing")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    rows = val.validate(seed=args.seed, max_points=1 if args.quick else None)
    ideal = val.validate(seed=args.seed, max_points=1 if args.quick else None, engine="ideal")
    for r, i in zip(rows, ideal, strict=True):
        assert (r["benchmark"], r["rate"], r["prompt"], r["output"]) == (i["benchmark"], i["rate"], i["prompt"], i["output"])
        r["ideal_kv_blocks"], r["ideal_kv_block_size"] = i["kv_blocks"], i["kv_block_size"]
        for k in ("median_ttft_ms", "median_itl_ms", "output_tok_per_s"):
            r[f"ideal_simulated_{k}"] = i[f"simulated_{k}"]
            r[f"ideal_error_{k}"] = i[f"error_{k}"]
        r["ideal_simulated_preemptions"] = i["simulated_preemptions"]
    print(f"{'benchmark':<38} {'engine':>6} {'rate':>5} {'lengths':>14} | {'TTFT p50 ms pub/eng/ideal':>27} | "
          f"{'ITL p50 ms pub/eng/ideal':>26} | {'out tok/s pub/eng/ideal':>24}")
    for r in rows:
        rate = "inf" if r["rate"] is None else f"{r['rate']:g}"
        print(f"{r['benchmark']:<38} {r['engine']:>6} {rate:>5} {r['prompt'] + '/' + r['output']:>14} | "
              f"{r['published_median_ttft_ms']:>9.1f} {r['simulated_median_ttft_ms']:>8.1f} "
              f"{r['ideal_simulated_median_ttft_ms']:>8.1f} | "
              f"{r['published_median_itl_ms']:>8.2f} {r['simulated_median_itl_ms']:>8.2f} "
              f"{r['ideal_simulated_median_itl_ms']:>8.2f} | "
              f"{r['published_output_tok_per_s']:>7.0f} {r['simulated_output_tok_per_s']:>7.0f} "
              f"{r['ideal_simulated_output_tok_per_s']:>7.0f}")
    for name, prefix in (("engine", ""), ("ideal", "ideal_")):
        summary = ", ".join(
            f"{k} median |error| {_median([abs(r[prefix + 'error_' + k]) for r in rows]):.0%}"
            for k in ("median_ttft_ms", "median_itl_ms", "output_tok_per_s"))
        print(f"{name}: {summary}")
    if args.quick:
        return
    doc = {
        "note": "written by scripts/validate_simulator.py from calc/data/serving_benchmarks.json; simulated_* and "
                "error_* use each benchmark's engine profile (row 'engine'), ideal_* the ideal engine",
        "engines": sorted({r["engine"] for r in rows} | {"ideal"}),
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
