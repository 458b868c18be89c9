"""Fit an engine profile's speed parameters on the 'fit' subset of calc/data/calibration.json.

    .venv/bin/python scripts/fit_engine_profiles.py trt-llm hf vllm@v0.6

Minimises the mean squared log error (calc / measured) over the engine's fit points by coordinate descent
(stdlib only; where the entry weighs MLA layers, in two stages: the other parameters on the other points, then the
weights on the MLA points; vLLM's front-end latency is not fitted so but set to the median of its fit sources,
FRONT_END_MEDIAN) and prints the parameters and the fit/holdout table; it does not write data/engines.json (copy
the figures there by hand, so every change to a profile is a reviewed diff). The holdout points are never
looked at while fitting.
"""

from __future__ import annotations

import math
import re
import statistics
import sys
from functools import cache
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from calc import calibration, engines, perf, registry  # noqa: E402

# (path in the profile entry, lower bound, upper bound). The efficiencies stop at the ideal profile's (a device
# copy and a large bf16 matmul on the H100 reference): an engine's kernels do not beat them, so "ideal" stays a
# bound; the fixed costs stop at zero.
_MEM, _COMP = engines.profile("ideal").memory_efficiency("bf16"), engines.profile("ideal").compute_efficiency("bf16")
PARAMS = [
    (("step_overhead", "base_s"), 0.0, 0.05),
    (("step_overhead", "prefill_base_s"), 0.0, 0.05),
    (("step_overhead", "per_seq_s"), 0.0, 0.001),
    (("step_overhead", "multi_gpu_s"), 0.0, 0.01),
    (("memory_efficiency", "default"), 0.3, _MEM),
    (("memory_efficiency", "fp8"), 0.3, _MEM),
    (("compute_efficiency", "default"), 0.2, _COMP),
    (("compute_efficiency", "fp8"), 0.2, _COMP),
    (("memory_efficiency", "q8_0"), 0.3, _MEM),
    (("memory_efficiency", "q4_k_m"), 0.3, _MEM),
    (("memory_efficiency", "int4"), 0.3, _MEM),
    (("hbm_bandwidth_factor",), 0.3, 1.0),
    (("step_overhead", "mla_step_layer_weight"), 1.0, 10.0),
    (("step_overhead", "mla_request_layer_weight"), 1.0, 10.0),
]
# parameters only some engines' calibration points can identify: fitted where the entry already has the key (an MLA
# layer's weight: where the engine has fit points on an MLA model)
OPTIONAL = {("hbm_bandwidth_factor",), ("step_overhead", "mla_step_layer_weight"),
            ("step_overhead", "mla_request_layer_weight")}
# the formats whose own efficiency is fitted only where fit points use them
PER_FORMAT = {"fp8", "q8_0", "q4_k_m", "int4"}
# An older release with its own fixed cost per step (a variant with ``step_overhead`` in data/engines.json) is
# fitted on its own points: its base cost, and the efficiency of the formats only its points use (the kernels are
# taken to be the same in both releases); the base fit leaves those points out.
VARIANT_PARAMS = [(("step_overhead", "base_s"), 0.0, 0.05)]
# Parameters of the base entry that only a variant's points identify, fitted with that variant (and used by the base
# profile as fitted there). llama.cpp: the current builds' one fit point is generation on one GDDR card, which sets
# their cost per token only; the bandwidth share, the prompt cost, the compute share and the HBM factor come from the
# 2024 runs (variant 2024-01).
FROM_VARIANT: dict = {"llama.cpp": {("memory_efficiency", "default"), ("step_overhead", "prefill_base_s"),
                                    ("compute_efficiency", "default"), ("hbm_bandwidth_factor",)}}
# Parameters kept as committed, not fitted, because the fit points do not identify them. llama.cpp's 2024 prompt
# points (all 512 tokens) cannot separate the prompt step's fixed cost from the compute share: along a line towards
# the share's upper bound the loss falls by under 1 % and coordinate descent creeps on without converging. The
# committed pair is where one fit with both free ended (2026-11-30, after the prompt's lm_head became one token's):
# started from the earlier (14.9 ms, 0.51) it stopped at (18.95 ms, 0.530); restarted there it creeps on to
# (20.5 ms, 0.551) for 0.5 % less loss.
HELD: dict = {"llama.cpp": {("step_overhead", "prefill_base_s"), ("compute_efficiency", "default")}}
# Per-engine upper bounds that differ from PARAMS'. hf: its generate() decode fit points run at batch 1, where a
# cost per sequence cannot be told from the base cost, and at batch 32, which sets the bandwidth share; a cost per
# sequence is held at zero (the held-out batch-8 and batch-16 points check what the GPU time alone predicts).
# llama.cpp needs none: its FP16-accumulate GEMMs are measured against the FP16-accumulate peak (engines.json
# accumulates_in_fp16).
LIMITS: dict = {"hf": {("step_overhead", "per_seq_s"): 0.0}}
# Parameters an engine borrows from another engine's fit and does not fit on its own points (its few points cannot
# identify them): SGLang's bandwidth and compute shares and cost per sequence are vLLM's (engines.json note).
BORROWED: dict = {"sglang": {("step_overhead", "per_seq_s"), ("memory_efficiency", "default"),
                             ("compute_efficiency", "default"), ("compute_efficiency", "fp8"),
                             ("memory_efficiency", "fp8"), ("memory_efficiency", "int4")}}


# vLLM's per-request front-end latency (prefill_base_s - base_s: HTTP, tokenisation, the client) belongs to the host,
# not to the model: the concurrency-1 TTFTs read spend from about 0 to 52 ms beyond calc's GPU time. Least squares
# with the other constants would let one host set it; it is set instead to the median, over the fit subset's SOURCES
# (one value per source, a repository or page, the median of its rows: a sweep does not outvote a single run), of what
# their TTFTs of one request with a prompt of at most FRONT_END_MAX_PROMPT tokens spent beyond calc's GPU time. The cap
# keeps most of the compute share's error out, not all of it: a prompt above the GPU's ridge point is compute-bound in
# calc, and its residual carries that error too (the RTX 4090 fit source's -0.6 ms, -2.2 ms while calc charged the lm_head to every
# prompt token). With the two fit sources of today
# the median is their midpoint. The rule and the split of sources into fit and holdout were fixed before the new
# held-out rows were computed; the two fit sources' residuals were known then (data page).
FRONT_END_MEDIAN = {"vllm"}
FRONT_END_MAX_PROMPT = 512


def _get(entry, path):
    for k in path[:-1]:
        entry = entry[k]
    return entry.get(path[-1])


def _set(entry, path, value):
    for k in path[:-1]:
        entry = entry[k]
    entry[path[-1]] = value
    engines.profile.cache_clear()


def _own_cost_variants(base: str) -> set:
    """The variants with a cost of their own: a fixed cost per step (``step_overhead.base_s``) or a split-KV decode
    kernel's times (``split_kv_decode``: per program and per token), fitted on their own points. A variant that only changes
    how the cost is charged (trt-llm@v0.6: its prefill cost spent in the step) is not one."""
    return {name for name, v in engines._data()["engines"][base].get("variants", {}).items()
            if "base_s" in v.get("step_overhead", {}) or "split_kv_decode" in v}


# A variant whose decode attention is a latency-bound split-KV kernel (sglang@triton) fits that kernel's fixed time per
# program and its time per token on its own points (the concurrency-1 TPOTs); every other constant is the base
# engine's. The two move those points almost alike (three points nearly on a line), so coordinate descent stalls in
# their narrow valley wherever it starts: they are solved jointly (_gauss_newton_2).
SPLIT_KV_PARAMS = [(("split_kv_decode", "s_per_program"), 0.0, 5e-5), (("split_kv_decode", "s_per_token"), 0.0, 2e-6)]


# Parameters that only some points can identify are fitted after the others, on those points alone; the others are
# fitted first on the remaining points. The weights of an MLA layer touch only the points on MLA models (every engine's
# fixed cost is set by its ordinary models; fitted jointly, coordinate descent stalls: moving the base cost alone moves
# the MLA points too, which only a simultaneous move of the weights would undo). vLLM's multi-GPU cost per step touches
# only its tensor-parallel points, while its one-GPU points pin the base cost and the shares: fitted jointly on one
# TP 8 point, five constants would bend to fit six points.
MLA_PARAMS = {("step_overhead", "mla_step_layer_weight"), ("step_overhead", "mla_request_layer_weight")}
MULTI_GPU_PARAMS = {("step_overhead", "multi_gpu_s")}
MULTI_GPU_STAGED = {"vllm"}  # SGLang's fit points are all TP 8: its base and multi-GPU costs are fitted together


# A variant that is another build's kernels (vLLM for ROCm: ``memory_efficiency`` / ``compute_efficiency`` /
# ``decode_compute_efficiency`` keys of its own) is fitted on its own points in two stages: its fixed cost and bandwidth
# shares on the rows of at most OWN_KERNELS_SMALL_BATCH sequences (decode bound by the weights' bytes), then its compute
# shares on all its rows with those held. Fitted jointly, the large batches' residual (calc's attention and matmul
# costs, which these rows alone cannot separate) would bend the bandwidth share the small ones pin. The stages were
# fixed before the variant was applied to any held-out point (data page). vLLM for ROCm's rows time cached prompts
# (calibration.json prompt_cached_tokens), so they set only a decode share.
OWN_KERNELS_SMALL_BATCH = 4


def _own_kernels(key: str) -> dict | None:
    """The variant entry of ``key`` where it carries efficiencies of its own, else None."""
    base, _, variant = key.partition("@")
    v = engines._data()["engines"][base].get("variants", {}).get(variant) if variant else None
    return v if v and any(k in v for k in ("memory_efficiency", "compute_efficiency", "decode_compute_efficiency")) else None


def _stage(key: str, p: dict, m) -> str:
    """Which fit stage a point belongs to: 'front_end' (a short-prompt TTFT of one request, for the engines in
    FRONT_END_MEDIAN: it sets the median front-end latency and nothing else), 'mla' (an MLA model), 'multi_gpu'
    (tensor-parallel, for the engines in MULTI_GPU_STAGED) or 'base'."""
    if _own_kernels(key):
        return "small_batch" if p["batch"] <= OWN_KERNELS_SMALL_BATCH else "large_batch"
    if (key.partition("@")[0] in FRONT_END_MEDIAN and p["kind"] == "ttft" and p["batch"] == 1
            and p["prompt_len"] <= FRONT_END_MAX_PROMPT):
        return "front_end"
    if m.is_mla:
        return "mla"
    if key.partition("@")[0] in MULTI_GPU_STAGED and p["tp"] > 1:
        return "multi_gpu"
    return "base"


@cache
def _fit_points(key: str, stage: str | None = None) -> tuple:
    """The fit points of ``key`` ("engine" or "engine@variant"): a variant with its own fixed cost takes its own
    points; the base engine takes the others. ``stage``: only the points of that fit stage (see _stage). Chosen once:
    which points belong where does not change while the constants move."""
    base, _, variant = key.partition("@")
    own = _own_cost_variants(base)
    data = calibration._data()
    return tuple(p for p in data["points"] if p["engine"] == base and p["subset"] == "fit" and p["kind"] != "kv_tokens"
                 and (p.get("engine_variant") == variant if variant else p.get("engine_variant") not in own)
                 and (stage is None or _stage(key, p, calibration._model(p, data["configs"])) == stage))


def _fit_rows(key: str, stage: str | None = None) -> list[dict]:
    """calc's error on each of those points with the profile's constants as they are now."""
    configs = calibration._data()["configs"]
    return [{"id": p["id"], "error": calibration.predict(p, configs) / p["value"] - 1} for p in _fit_points(key, stage)]


def loss(key: str, stage: str | None = None) -> float:
    rows = _fit_rows(key, stage)
    return sum(math.log1p(r["error"]) ** 2 for r in rows) / max(1, len(rows))


def _descend(key: str, entry: dict, params: list, stage: str | None, rounds: int) -> float:
    """Coordinate descent on ``params`` of ``entry`` (key's profile) over the fit points of ``stage`` (see _fit_rows)."""
    best = loss(key, stage)
    for _ in range(rounds):
        for path, lo, hi in params:
            step = (hi - lo) / 8
            while step > (hi - lo) / 2000:
                improved = False
                for sign in (1, -1):
                    old = _get(entry, path)
                    new = min(hi, max(lo, old + sign * step))
                    _set(entry, path, new)
                    value = loss(key, stage)
                    if value < best - 1e-12:
                        best, improved = value, True
                        break
                    _set(entry, path, old)
                if not improved:
                    step /= 2
    return best


def _gauss_newton_2(key: str, entry: dict, params: list, iterations: int = 30) -> float:
    """Least squares of the fit points' log errors (``loss``) over two parameters, by Gauss-Newton steps with a
    finite-difference Jacobian, each kept inside its bounds. For constants that act almost linearly on the points
    (SPLIT_KV_PARAMS); start it inside the region where they act (after _descend)."""
    (path_a, lo_a, hi_a), (path_b, lo_b, hi_b) = params

    def residuals(a: float, b: float) -> list[float]:
        _set(entry, path_a, a)
        _set(entry, path_b, b)
        return [math.log1p(r["error"]) for r in _fit_rows(key, None)]

    a, b = _get(entry, path_a), _get(entry, path_b)
    for _ in range(iterations):
        r = residuals(a, b)
        da, db = (hi_a - lo_a) * 1e-4, (hi_b - lo_b) * 1e-4
        ja = [(x - y) / da for x, y in zip(residuals(a + da, b), r, strict=True)]
        jb = [(x - y) / db for x, y in zip(residuals(a, b + db), r, strict=True)]
        saa, sbb, sab = sum(x * x for x in ja), sum(x * x for x in jb), sum(x * y for x, y in zip(ja, jb, strict=True))
        ga, gb = sum(x * y for x, y in zip(ja, r, strict=True)), sum(x * y for x, y in zip(jb, r, strict=True))
        det = saa * sbb - sab * sab
        if det <= 0:
            break
        a = min(hi_a, max(lo_a, a - (sbb * ga - sab * gb) / det))
        b = min(hi_b, max(lo_b, b - (saa * gb - sab * ga) / det))
    residuals(a, b)
    return loss(key)


def _source(url: str) -> str:
    """A source: a GitHub issue, pull request or discussion (each its own author's run), else a GitHub repository (its
    files and runs are one host's), else the page."""
    m = re.match(r"https://github\.com/([^/]+/[^/]+)(/(?:issues|pull|discussions)/\d+)?", url)
    return m.group(1) + (m.group(2) or "") if m else url


def front_end_latency(key: str) -> tuple[float, dict]:
    """The median front-end latency of ``key``'s fit sources (see FRONT_END_MEDIAN), and each source's value."""
    data = calibration._data()
    by_source: dict[str, list[float]] = {}
    for p in _fit_points(key, "front_end"):
        m = calibration._model(p, data["configs"])
        gpu_s = perf.perf_report(m, registry.get_gpu(p["gpu"]), p["weights"], p["kv_dtype"], 1, p["prompt_len"],
                                 p["output_len"], p["tp"], curve_batches=(), engine=key, request_latency_s=0.0)["ttft_s"]
        by_source.setdefault(_source(p["source"]["url"]), []).append(p["value"] - gpu_s)
    per_source = {url: statistics.median(v) for url, v in by_source.items()}
    return statistics.median(per_source.values()), per_source


def fit(key: str, rounds: int = 6) -> dict:
    base, _, variant = key.partition("@")
    if variant and variant not in _own_cost_variants(base):
        raise SystemExit(f"{key}: this variant has no cost of its own (step_overhead.base_s, split_kv_decode); its points are "
                         f"fitted with {base}")
    entry = engines._data()["engines"][base]
    if variant and "split_kv_decode" in entry["variants"][variant]:
        params = [(("variants", variant) + path, lo, hi) for path, lo, hi in SPLIT_KV_PARAMS]
        _descend(key, entry, params, None, rounds)
        _gauss_newton_2(key, entry, params)
        return {"loss": loss(key), **{"/".join(p[0]): _get(entry, p[0]) for p in params}}
    own = _own_kernels(key)
    if own:
        v = ("variants", variant)
        small = [(v + ("step_overhead", "base_s"), 0.0, 0.05)]
        small += [(v + ("memory_efficiency", k), 0.3, _MEM) for k in own.get("memory_efficiency", {})]
        # a lower floor than PARAMS' 0.2: these rows' large batches want less (data page)
        large = [(v + (shares, k), 0.05, _COMP) for shares in ("compute_efficiency", "decode_compute_efficiency")
                 for k in own.get(shares, {})]
        _descend(key, entry, small, "small_batch", rounds)
        _descend(key, entry, large, None, rounds)
        return {"loss": loss(key), **{"/".join(p[0]): _get(entry, p[0]) for p in small + large}}
    used = {p["weights"] for p in _fit_points(key)}
    if variant:  # the variant's fixed cost, and the formats none of the base engine's own fit points use
        base_used = {p["weights"] for p in _fit_points(base)}
        params = [(("variants", variant) + path, lo, hi) for path, lo, hi in VARIANT_PARAMS]
        params += [(path, lo, hi) for path, lo, hi in PARAMS
                   if ((path[0] == "memory_efficiency" and path[1] in PER_FORMAT and path[1] in used - base_used)
                       or path in FROM_VARIANT.get(base, ())) and path not in HELD.get(base, ())]
    else:
        params = [(path, lo, LIMITS.get(key, {}).get(path, hi)) for path, lo, hi in PARAMS
                  if (path[-1] not in PER_FORMAT or path[-1] in used)
                  and (path not in OPTIONAL or _get(entry, path) is not None)
                  and path not in BORROWED.get(key, ()) and path not in FROM_VARIANT.get(key, ())
                  and path not in HELD.get(key, ())
                  and not (key in FRONT_END_MEDIAN and path == ("step_overhead", "prefill_base_s"))]
    for path, _, _ in params:
        if _get(entry, path) is None:
            _set(entry, path, _get(entry, (path[0], "base_s" if path[1] == "prefill_base_s" else "default"))
                 if len(path) == 2 else 0.0)
    staged = {"mla": [p for p in params if p[0] in MLA_PARAMS],
              "multi_gpu": [p for p in params if p[0] in MULTI_GPU_PARAMS and base in MULTI_GPU_STAGED]}
    if any(staged.values()):
        later = {p[0] for ps in staged.values() for p in ps}
        _descend(key, entry, [p for p in params if p[0] not in later], "base", rounds)
        for stage, ps in staged.items():
            if ps:
                _descend(key, entry, ps, stage, rounds)
    else:
        _descend(key, entry, params, None, rounds)
    out = {"/".join(p[0]): _get(entry, p[0]) for p in params}
    if key in FRONT_END_MEDIAN:
        latency, _ = front_end_latency(key)
        _set(entry, ("step_overhead", "prefill_base_s"), _get(entry, ("step_overhead", "base_s")) + max(0.0, latency))
        out["step_overhead/prefill_base_s"] = _get(entry, ("step_overhead", "prefill_base_s"))
    return {"loss": loss(key), **out}


if __name__ == "__main__":
    for key in sys.argv[1:] or ["trt-llm", "hf"]:
        print(key, fit(key))
        print(calibration.format_table([r for r in calibration.errors() if r["engine"] == key.partition("@")[0]]))
