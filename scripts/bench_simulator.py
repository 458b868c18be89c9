"""How long the serving simulator takes: 1,000 requests through one replica (target: ≤ 1 s in CPython on the
book's 2-core build machine), and one planner run with its defaults.

    python scripts/bench_simulator.py [--repeat 3] [--engine vllm]   # a calc.engines key; ideal: no per-step cost

Prints the best of ``--repeat`` wall-clock times per case; no test asserts on these numbers (timing on a shared
machine is noisy).
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from calc import api, engines, registry  # noqa: E402
from calc.simulate import StepModel, requests, simulate, step_cost  # noqa: E402

CASES = [
    # (label, model, gpu, rate, prompt, output)
    ("Llama-3.1-8B / H100, 1024→256, 2 req/s (light load: long decode-only stretches)", "llama-3.1-8b", "h100-sxm", 2.0, 1024, 256),
    ("Llama-3.1-8B / H100, 1024→256, 20 req/s (near saturation)", "llama-3.1-8b", "h100-sxm", 20.0, 1024, 256),
    ("Llama-3.1-8B / H100, 1024→256, all at once", "llama-3.1-8b", "h100-sxm", math.inf, 1024, 256),
    ("Llama-3.1-70B TP4 / H100, Azure conversation trace, 8 req/s", "llama-3.1-70b", "h100-sxm", 8.0, "azure-conv", "azure-conv"),
]


def best_of(repeat: int, fn) -> tuple[float, object]:
    best, out = math.inf, None
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t)
    return best, out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--requests", type=int, default=1000)
    ap.add_argument("--engine", default=engines.DEFAULT_ENGINE, choices=engines.ENGINES)
    args = ap.parse_args()
    print(f"Python {platform.python_version()} ({platform.python_implementation()}), {os.cpu_count()} CPUs, "
          f"engine {args.engine}")
    for label, model, gpu, rate, prompt, output in CASES:
        tp = 4 if "70b" in model else 1
        g = registry.get_gpu(gpu)
        sm = StepModel(registry.get_model(model), g, tp=tp, cost=step_cost(args.engine, "bf16", gpu=g))
        reqs = requests(args.requests, rate, prompt, output, seed=0)
        secs, r = best_of(args.repeat, lambda: simulate(sm, reqs))  # noqa: B023
        print(f"{secs:6.3f} s  {args.requests} requests, {r['steps']:>6} steps, {r['preemptions']} preemptions  {label}")
    secs, r = best_of(args.repeat, lambda: api.run("plan", {"engine": args.engine}))
    print(f"{secs:6.3f} s  planner defaults ({r['simulated_requests']} requests per simulation, runners-up "
          f"{r['runners_up']}, {len(r['load_curve'])}-point curve)")
    # long outputs: the saturation burst queues many requests behind the sequence cap for thousands of decode steps
    long_outputs = {"engine": args.engine, "prompt-len": 512, "output-len": 4000, "rate": 10}
    secs, r = best_of(args.repeat, lambda: api.run("plan", long_outputs))
    print(f"{secs:6.3f} s  planner, Llama-3.1-8B / H100, 512→4000 at 10 req/s ({r['simulated_requests']} requests per "
          f"simulation)")


if __name__ == "__main__":
    main()
