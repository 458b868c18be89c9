"""The simulator against published serving benchmarks (calc/data/serving_benchmarks.json).

    rows = validate()            # one row per published point: published vs simulated median TTFT, ITL, tok/s

scripts/validate_simulator.py runs this and writes calc/data/simulator_validation.json, which the planner page
shows as a table (hooks/registry_tables.py, ``{{ registry validation }}``). Each benchmark is simulated with
its model, GPU, TP size, weights, length ranges, request count and rate, with the same number of requests the
benchmark sent, on the calc.engines profile of the engine that ran it (the benchmark's ``calc_engine``) or on
the one ``engine`` given (``ideal``: the plain roofline, no per-step overhead), or on a given StepCost.
"""

from __future__ import annotations

import json
import math
import os

from . import registry
from .simulate import StepCost, StepModel, requests, simulate, step_cost

DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data")
SIM_MAX_NUM_SEQS = 1024  # SGLang admits requests by free KV memory, with no small cap; 1024 stands in for that
# (it also sizes vLLM's sampler warm-up in the KV budget: a vLLM benchmark would need its own run's max_num_seqs)
SIM_MAX_NUM_BATCHED_TOKENS = 8192  # SGLang's chunked_prefill_size on the benchmarks' H200s (memory.sglang_chunked_prefill_size)


def benchmarks() -> list[dict]:
    with open(os.path.join(DATA, "serving_benchmarks.json"), encoding="utf-8") as fh:
        return json.load(fh)["benchmarks"]


def _error(sim, pub):
    return None if sim is None or not pub else (sim - pub) / pub


def validate(cost: StepCost | None = None, seed: int = 0, only: str | None = None, max_points: int | None = None,
             engine: str | None = None) -> list[dict]:
    out = []
    for b in benchmarks():
        if only and b["key"] != only:
            continue
        m, gpu = registry.get_model(b["model"]), registry.get_gpu(b["gpu"])
        c = cost or step_cost(engine or b["calc_engine"], b["weights"], gpu=gpu)
        sm = StepModel(m, gpu, b["weights"], b["kv_dtype"], b["tp"], c)
        # the run's own memory fraction (its release's default) for the run's engine; other profiles keep their rule's
        fraction = b.get("gpu_memory_utilization") if c.engine == b["calc_engine"] else None
        blocks = sm.kv_blocks(fraction, max_num_batched_tokens=SIM_MAX_NUM_BATCHED_TOKENS, max_num_seqs=SIM_MAX_NUM_SEQS)
        for p in b["points"][:max_points]:
            rate = math.inf if p["rate"] is None else p["rate"]
            reqs = requests(p["requests"], rate, p.get("prompt", b["prompt"]), p.get("output", b["output"]), seed=seed)
            sim = simulate(sm, reqs, max_num_seqs=SIM_MAX_NUM_SEQS, max_num_batched_tokens=SIM_MAX_NUM_BATCHED_TOKENS,
                           num_blocks=blocks)
            # kv_blocks counts the engine's own blocks (SGLang's pages of 1, vLLM's 16 tokens): kv_block_size says which
            row = {"benchmark": b["key"], "engine": c.engine, "kv_blocks": blocks, "kv_block_size": sm.block_size, "rate": p["rate"], "requests": p["requests"],
                   "prompt": p.get("prompt", b["prompt"]), "output": p.get("output", b["output"]),
                   "published_median_ttft_ms": p["median_ttft_ms"], "simulated_median_ttft_ms": sim["ttft_s"]["p50"] * 1e3,
                   "published_median_itl_ms": p["median_itl_ms"], "simulated_median_itl_ms": sim["itl_s"]["p50"] * 1e3,
                   "published_output_tok_per_s": p["output_tok_per_s"], "simulated_output_tok_per_s": sim["output_tok_per_s"],
                   "simulated_preemptions": sim["preemptions"]}
            for k in ("median_ttft_ms", "median_itl_ms", "output_tok_per_s"):
                row[f"error_{k}"] = _error(row[f"simulated_{k}"], row[f"published_{k}"])
            out.append(row)
    return out
