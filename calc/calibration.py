"""calc against published measurements: the error of the engine-adjusted model on data/calibration.json.

    points()                  -> the sourced measurements (each with URL, date, version, GPU, settings)
    errors()                  -> one row per point: predicted, measured, relative error
    table(rows)               -> kind × subset: count, median |error|, max |error|

Subsets: ``fit`` (the constants are fitted on these), ``holdout`` (not fitted on), ``unseen`` (the held-out points
that informed no modelling choice: a held-out point carries ``seen``, naming the choice, where a structural choice that
changes its figure was made after it had been computed) and ``all``.

Used by tests/test_calc_calibration.py (which asserts the targets) and scripts/bench_calibration.py.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from statistics import median

from . import engines as engines_mod
from . import memory as mem
from . import perf, registry, simulate
from .model import from_hf_config

_PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "calibration.json")
KINDS = ("tpot", "ttft", "throughput", "kv_tokens")
TARGETS = {"tpot": 0.10, "ttft": 0.10, "throughput": 0.10, "kv_tokens": 0.05}  # median |error|
MAX_ERROR = 0.30  # no single point beyond this


def _data() -> dict:
    with open(_PATH, encoding="utf-8") as fh:
        return json.load(fh)


def points() -> list[dict]:
    return _data()["points"]


def _model(p: dict, configs: dict):
    if p["model"] in configs:
        return from_hf_config(configs[p["model"]]["config"], name=p["model"])
    return registry.get_model(p["model"])


def predict(p: dict, configs: dict | None = None, engine: str | None = None) -> float:
    """calc's figure for one point, in the point's unit."""
    configs = _data()["configs"] if configs is None else configs
    m, gpu = _model(p, configs), registry.get_gpu(p["gpu"])
    # a point measured on an older release names its variant ("trt-llm" + "v0.6" -> profile "trt-llm@v0.6");
    # an engine given here (e.g. "ideal") replaces the point's engine, variant and all
    engine = engine or (f"{p['engine']}@{p['engine_variant']}" if p.get("engine_variant") else p["engine"])
    if p["kind"] == "kv_tokens":
        r = mem.memory_report(m, gpu.memory_bytes, p["weights"], p["kv_dtype"], tp=p["tp"],
                              visible_memory_bytes=gpu.visible_memory_bytes, engine=engine, linked_gpus=gpu.linked_gpus,
                              gpu_memory_utilization=p.get("gpu_memory_utilization"),
                              max_num_batched_tokens=p.get("max_num_batched_tokens", mem.VLLM_MAX_NUM_BATCHED_TOKENS),
                              max_num_seqs=p.get("max_num_seqs", mem.VLLM_MAX_NUM_SEQS), sampler_path=p.get("sampler_path"),
                              max_model_len=p.get("max_model_len"), kv_variant=p.get("kv_variant"),
                              compute_capability=gpu.compute_capability, mxfp4_backend=p.get("mxfp4_backend"))
        return r["engine_max_tokens_in_cache"]
    if p.get("closed_loop") and p["kind"] == "tpot":
        if p.get("prompt_cached_tokens"):  # the simulator draws distinct prompts: no prefix-cache hits
            raise ValueError(f"{p['id']}: prompt_cached_tokens is for static batches, not closed loops")
        return closed_loop_tpot(p, m, gpu, engine)
    # a benchmark that repeats its prompts with prefix caching on times them as cache hits (prompt_cached_tokens)
    r = perf.perf_report(m, gpu, p["weights"], p["kv_dtype"], p["batch"], p["prompt_len"], p["output_len"], p["tp"],
                         curve_batches=(), engine=engine, cached_prompt_tokens=p.get("prompt_cached_tokens", 0))
    return {"tpot": r["tpot_s"], "ttft": r["ttft_s"], "throughput": r["throughput_tok_per_s"]}[p["kind"]]


# the statistic a closed-loop point reports -> (simulator field, key)
_CLOSED_LOOP_STATISTICS = {"mean": ("tpot_s", "mean"), "median": ("tpot_s", "p50"), "itl_p50": ("itl_s", "p50")}
_CLOSED_LOOP_CACHE: dict = {}  # a simulation costs up to a second; the tests ask for the same points many times


def closed_loop_tpot(p: dict, m, gpu, engine: str) -> float:
    """A serving client's TPOT at ``max-concurrency`` = the point's batch (vllm bench serve, sglang bench_serving):
    calc.simulate runs the point's ``closed_loop.num_prompts`` requests, all queued at t = 0 (or, with request_rate
    below, arriving as a Poisson process), at most ``batch`` at a time, on a StepModel of the same engine profile perf
    uses. Unlike perf_report's static batch (all prompts prefilled, then all decoded), each request's decode steps then
    also carry the prompts of the requests that start while it runs, as in the measured run. With
    ``closed_loop.request_rate`` the client sent its prompts as a Poisson process at that rate without a concurrency
    cap (an open loop: vllm bench serve --request-rate R): the simulation draws the same process, and the point's batch
    is the engine's max_num_seqs as the source ran it."""
    cl = p["closed_loop"]
    prof = engines_mod.profile(engine)
    # keyed on the point, the model's and GPU's every field and the engine's current state (tests patch profiles and
    # their data); not on calc's module constants, which nothing changes at run time
    # (matmul_factor: derived from the registry's reference GPU and dead band, not in the GPU's own fields)
    key = hashlib.sha1(repr((json.dumps(p, sort_keys=True), engine, vars(m), vars(gpu), gpu.matmul_factor,
                             sorted(vars(prof).items()),
                             json.dumps(engines_mod._data()["engines"][engine.partition("@")[0]], sort_keys=True)))
                       .encode()).hexdigest()
    if key in _CLOSED_LOOP_CACHE:
        return _CLOSED_LOOP_CACHE[key]
    cost = simulate.StepCost.from_profile(prof, p["weights"], engine, gpu)
    model = simulate.StepModel(m, gpu, p["weights"], p["kv_dtype"], p["tp"], cost)
    # lengths: the source's generator where the point names it (e.g. "1-1000": uniform), else the point's, fixed
    reqs = simulate.requests(cl["num_prompts"], float(cl.get("request_rate", math.inf)), cl.get("prompt", p["prompt_len"]),
                             cl.get("output", p["output_len"]))
    chunk = prof.prefill_chunk_tokens
    if p.get("max_num_batched_tokens"):  # as the source ran it
        budget = p["max_num_batched_tokens"]
    elif engine in ("vllm", "vllm@rocm-0.9"):
        # `vllm serve`'s own default (V1) for the GPU: 2048 on A100s and under 70 GiB, else 8192. The 16384 tier of
        # 0.32 (from 160 GiB) is absent in ROCm/vllm v0.9.1+rocm and the 0.10.1.1 wheel; of these points only the MI300X
        # ones (0.9.1) ran on a GPU that large, and the others (0.9.1, main of August 2025, 0.11-0.25) on GPUs where the
        # tiers agree; 0.8.4 chose by the device's name (8192 on an H100/H200 for the API server, vLLM PR #12369), the
        # same on its H200 points. (V0, vllm@v0.6, had none of this.)
        budget = min(mem.vllm_max_num_batched_tokens(gpu), 8192)
    else:  # the engine's chunk for the GPU (SGLang's chunked_prefill_size), else 8192
        budget = prof.prefill_chunk_for(gpu) or 8192
    if not chunk:  # no chunked prefill (ideal, trt-llm@v0.6): a step must hold a whole request
        budget = max(budget, max(r.prompt_len + r.output_len for r in reqs))
    # closed_loop.reserve_full_prompt false: a vLLM V1 release before 0.19.0, whose scheduler admitted a waiting request
    # when its first chunk's blocks were free (calc.simulate's reserve_full_prompt)
    r = simulate.simulate(model, reqs, max_num_seqs=p["batch"], max_num_batched_tokens=budget,
                          chunked_prefill=bool(chunk), kv_samples=2,
                          reserve_full_prompt=cl.get("reserve_full_prompt", True),
                          gpu_memory_utilization=p.get("gpu_memory_utilization"))  # as the source ran it, else the engine's
    field, stat = _CLOSED_LOOP_STATISTICS[cl["statistic"]]
    _CLOSED_LOOP_CACHE[key] = r[field][stat]
    return r[field][stat]


def errors(engine: str | None = None) -> list[dict]:
    data = _data()
    rows = []
    for p in data["points"]:
        pred = predict(p, data["configs"], engine)
        rows.append({"id": p["id"], "kind": p["kind"], "engine": p["engine"], "subset": p["subset"],
                     "seen": p.get("seen"), "measured": p["value"], "predicted": pred, "error": pred / p["value"] - 1})
    return rows


SUBSETS = ("fit", "holdout", "unseen", "all")


def in_subset(row: dict, subset: str) -> bool:
    if subset == "all":
        return True
    if subset == "unseen":
        return row["subset"] == "holdout" and not row.get("seen")
    return row["subset"] == subset


def table(rows: list[dict]) -> list[dict]:
    """kind × subset (fit, holdout, unseen, all): n, median |error|, max |error|."""
    out = []
    for kind in KINDS:
        for subset in SUBSETS:
            errs = [abs(r["error"]) for r in rows if r["kind"] == kind and in_subset(r, subset)]
            if errs:
                out.append({"kind": kind, "subset": subset, "n": len(errs), "median_abs_error": median(errs),
                            "max_abs_error": max(errs)})
    return out


def format_table(rows: list[dict]) -> str:
    lines = [f"{'kind':<11}{'subset':<9}{'n':>4}{'median |err|':>14}{'max |err|':>11}"]
    for t in table(rows):
        lines.append(f"{t['kind']:<11}{t['subset']:<9}{t['n']:>4}{t['median_abs_error']:>13.1%}{t['max_abs_error']:>11.1%}")
    return "\n".join(lines)
