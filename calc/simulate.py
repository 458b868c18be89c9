"""A discrete-event simulation of one serving replica with continuous batching.

    sim = simulate(StepModel(spec, gpu, "bf16", "bf16", tp=1), requests(500, rate=4.0, prompt=1024, output=256))
    sim["ttft_s"]["p90"], sim["tpot_s"]["p90"], sim["output_tok_per_s"], sim["preemptions"]

What it models (the scheduler of vLLM's V1 engine, simplified):
  - FCFS: requests wait in arrival order; a step first gives every running sequence its next token (decode),
    then spends what is left of ``max_num_batched_tokens`` on prompts, at most ``max_num_seqs`` sequences at once.
  - Chunked prefill on: a prompt longer than the budget is split across steps, in the same steps as the decodes.
    Off: a step either prefills whole prompts (and nothing else) or decodes, as vLLM's V0 scheduler did; a long
    prompt that arrives mid-decode then stalls every running sequence for a whole prefill.
  - Prompts alone (the engine profile's ``prefill.alone``: SGLang's scheduler, without --enable-mixed-chunk): a step
    of prompt tokens holds no decodes and runs first whenever a prompt can start or one is part-way through; with
    chunked prefill a long prompt runs in several such steps, ahead of any new one.
  - Admission: a waiting request starts only when the blocks its whole prompt needs are free (vLLM's
    --scheduler-reserve-full-isl, the default since 0.19.0; SGLang also reserves room for part of the outputs, which
    is not modelled), so a long prompt waits rather than starting and preempting others halfway through; nothing is
    reserved for outputs, so decodes can still preempt. No request is admitted in a step that preempted one.
  - KV cache: blocks of the engine's default size for the model, GPU and KV dtype (memory.engine_block_size: vLLM's
    16, SGLang's pages of 1, TensorRT-LLM's 32, ...), as many as the engine's KV budget leaves on the GPU's CUDA-visible
    memory (calc/memory.py's engine view, with the engine profile's rule: vLLM's, SGLang's or TensorRT-LLM's). A
    sequence holds ceil(tokens / block) blocks; when a decode needs a block and
    none is free, the most recently admitted sequence is preempted: its blocks are freed and it goes back to the
    head of the queue, to be prefilled again from scratch (recompute) with the tokens it had already generated.
  - Step time: a roofline over the batch the step actually holds (calc/perf.py's primitives, see StepModel),
    at the engine profile's achievable bandwidth and FLOPS, plus its fixed cost per step (calc/engines.py), the
    GPU-side part: the engine loop's cost per step (the decode figure) whether or not the step holds prompt
    tokens. The rest of the profile's fitted prefill cost is per-request work off the GPU (HTTP, tokenisation:
    EngineProfile.request_latency_s); it is added to every request's TTFT and E2E latency and holds no step. Where
    the profile says that rest is the prompt's forward itself (SGLang: prompt_cost_in_step), the step that carries
    prompt tokens pays it, once however many prompts it batches.

What it leaves out: prefix caching, speculative decoding, network time, and anything the engine profile does
not carry. With the ``ideal`` engine (no per-step overhead) expect it to be optimistic.

Seeded and deterministic: all randomness goes through one ``random.Random(seed)``.
"""

from __future__ import annotations

import bisect
import math
import random
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

from . import perf
from .memory import (
    VLLM_MAX_NUM_SEQS,
    engine_block_size,
    kv_bytes_per_token,
    memory_report,
    vllm_blocks_per_request,
)
from .model import ModelSpec, lm_head_params, matmul_params_per_token
from .registry import GPU

DEFAULT_MAX_NUM_SEQS = VLLM_MAX_NUM_SEQS  # vLLM 0.32's API-server default on A100s and GPUs under 70 GiB (1,024 on larger ones)
PERCENTILES = (50, 90, 99)


# ----------------------------------------------------------------------------------------------------------
# Step cost: the three engine-dependent parameters


@dataclass(frozen=True)
class StepCost:
    """How close an engine gets to the roofline: achievable fractions of peak bandwidth and FLOPS, and a fixed
    cost per step (scheduling, kernel launches, sampling) as a function of (sequences in the step, tp): one for
    a step of decodes only, one (``prefill_overhead``, default: the same) for a step that holds prompt tokens;
    and ``request_latency_s``, a per-request latency added to each request's TTFT (and E2E) that holds no step
    (the engine's front end: HTTP, tokenisation, request set-up).

    The default is the ideal engine (calc/engines.py ``ideal``): calc/perf.py's MEMORY_EFFICIENCY and
    COMPUTE_EFFICIENCY (measured on one H100 SXM, see perf.py) and no per-step overhead. ``from_profile`` takes
    an engine profile (calc.engines.profile(key)): ``memory_efficiency(fmt)``, ``compute_efficiency(fmt)``,
    ``step_overhead_s(batch, tp)`` and, where it has them, ``prefill_step_overhead_s(batch, tp)`` and
    ``request_latency_s``. ``engine`` is
    the calc.engines key whose KV budget rule sizes the cache (StepModel.kv_blocks).
    """

    memory_efficiency: float = perf.MEMORY_EFFICIENCY
    compute_efficiency: float = perf.COMPUTE_EFFICIENCY
    overhead: Callable[[int, int], float] | None = None
    name: str = "ideal"
    prefill_overhead: Callable[[int, int], float] | None = None
    engine: str = "ideal"
    request_latency_s: float = 0.0
    overlaps_gpu: bool = False  # the fixed cost overlaps the GPU work: a step takes the max, not the sum
    # profiles whose base cost is per layer (EngineProfile.overhead_layers_fitted): their overhead callables take
    # the model's layer count as a third argument and whether its layers are MLA as a fourth, which StepModel
    # fills in (``layers``, ``mla``)
    per_layer: bool = False
    layers: int | None = None
    fp16_accumulate: bool = False  # the matmuls run at the FP16-accumulate rate (EngineProfile.fp16_accumulate)
    # a request latency that depends on the model's depth (EngineProfile.request_latency_for, where the profile pays
    # it per layer): StepModel binds it to the model's layer count into request_latency_s
    request_latency_for: Callable[[int, bool], float] | None = None
    mla: bool = False  # the model's layers are of DeepSeek-V3's design (EngineProfile.mla_step_layer_weight)
    prefill_alone: bool = False  # prompt tokens run in steps of their own, decodes paused (EngineProfile.prefill_alone)
    # where the decode attention is a latency-bound split-KV kernel, its time beyond the roofline's KV read
    # (EngineProfile.split_kv_decode_beyond_read_s: model, GPU, sequences, context, layers, tp, the read's seconds ->
    # seconds on one GPU), else None: the roofline's KV read stands
    split_kv_beyond_read: Callable | None = None
    # the share a step of decodes only reaches (EngineProfile.decode_compute_efficiency); None: compute_efficiency
    decode_compute_efficiency: float | None = None

    def step_time_s(self, gpu_s: float, overhead_s: float) -> float:
        return max(gpu_s, overhead_s) if self.overlaps_gpu else gpu_s + overhead_s

    def _call(self, fn, batch: int, tp: int) -> float:
        return fn(batch, tp, self.layers, self.mla) if self.per_layer else fn(batch, tp)

    def step_overhead_s(self, batch: int, tp: int) -> float:
        return self._call(self.overhead, batch, tp) if self.overhead else 0.0

    def prefill_step_overhead_s(self, batch: int, tp: int) -> float:
        if self.prefill_overhead:
            return self._call(self.prefill_overhead, batch, tp)
        return self.step_overhead_s(batch, tp)

    @classmethod
    def from_profile(cls, profile, fmt: str, name: str | None = None, gpu: GPU | None = None,
                     memory_efficiency: float | None = None, compute_efficiency: float | None = None) -> StepCost:
        """The profile's figures for weights in ``fmt``. On a ``gpu`` without tensor cores for the format's
        compute type (FP8 before Hopper) the engine runs weight-only kernels: its 16-bit compute share applies,
        as in calc/perf.py. Pass the ``gpu`` the StepModel will run on: without it the format's own compute type is
        assumed to run (FP8, FP4), so NVFP4 and MXFP4 keep the 16-bit bandwidth share instead of the 4-bit one they
        take without FP4 tensor cores, and the result differs from calc/perf.py's on an A100 or H100 (every caller in
        calc passes it). ``memory_efficiency`` / ``compute_efficiency`` override the profile's."""
        comp_fmt = fmt
        if gpu is not None and perf.compute_dtype(fmt, gpu) != perf.WEIGHT_FORMATS[fmt].compute_dtype:
            comp_fmt = "bf16"
        key = getattr(profile, "key", name or "engine")
        # engine profiles take the GPU: its memory type (hbm_bandwidth_factor), its measured matmul share (matmul_factor)
        on = (gpu,) if gpu is not None and hasattr(profile, "hbm_bandwidth_factor") else ()
        if memory_efficiency is None:
            memory_efficiency = profile.memory_efficiency(fmt, *on)
        decode_compute_efficiency = compute_efficiency
        if compute_efficiency is None:
            compute_efficiency = profile.compute_efficiency(comp_fmt, *on)
            decode = getattr(profile, "decode_compute_efficiency", None)
            decode_compute_efficiency = decode(comp_fmt, *on) if decode else None
        return cls(memory_efficiency, compute_efficiency,
                   profile.step_overhead_s, name or key, getattr(profile, "prefill_step_overhead_s", None), key,
                   float(getattr(profile, "request_latency_s", 0.0)),
                   bool(getattr(profile, "overhead_overlaps_gpu", False)),
                   bool(getattr(profile, "overhead_layers_fitted", None)), None,
                   bool(getattr(profile, "fp16_accumulate", lambda f: False)(fmt)),
                   profile.request_latency_for if getattr(profile, "request_latency_per_layer", False) else None,
                   False, bool(getattr(profile, "prefill_alone", False)),
                   profile.split_kv_decode_beyond_read_s if getattr(profile, "split_kv_decode", None) else None,
                   decode_compute_efficiency)


def step_cost(engine: str = "ideal", fmt: str = "bf16", memory_efficiency: float | None = None,
              compute_efficiency: float | None = None, gpu: GPU | None = None) -> StepCost:
    """The StepCost of a calc.engines key (calc/data/engines.json): its per-format efficiencies (the two
    arguments override them), its fixed costs per decode step and per prefill step (with the multi-GPU term
    when tp > 1), and its KV budget rule. ``ideal`` is the plain roofline with no per-step overhead. Pass ``gpu``
    (StepCost.from_profile says why)."""
    from . import engines  # noqa: PLC0415 (imported where used, like the other engine-dependent paths)
    if "@" in engine:  # variants (older releases, other kernels) describe calibration runs; the calibration set
        # builds their StepCost from the profile itself (calibration.closed_loop_tpot), the calculators never do
        raise ValueError(f"the simulator runs current engine releases; {engine!r} is a calibration variant "
                         f"(calc/data/engines.json 'variants'), not one of {', '.join(engines.ENGINES)}")
    return StepCost.from_profile(engines.profile(engine), fmt, engine, gpu, memory_efficiency, compute_efficiency)


class StepModel:
    """Time of one engine step for the batch it holds, from calc/perf.py's primitives.

    A step that runs ``T`` tokens (prefill chunks + one per decoding sequence) costs
      FLOPs = 2 · matmul params · T + attention (each chunk's new (query, key) pairs; each decode over its context)
      bytes = weight bytes read for T tokens + KV read (each decode its context; each chunk its context so far)
      t     = max(FLOPs / (peak · compute_efficiency · tp), bytes / (bandwidth · memory_efficiency · tp))
              (a step of decodes only: decode_compute_efficiency where the profile has one)
              + tensor-parallel all-reduces for T tokens, combined with step_overhead_s(sequences, tp) by
              StepCost.step_time_s: their sum, or the larger of the two where the profile's fixed cost overlaps
              the GPU's work (overlaps_gpu: eager PyTorch)
    Decodes are costed at their mean context, which is exact where attention cost is linear in the context
    (every layer global) and a slight overestimate with sliding-window layers.
    """

    def __init__(self, m: ModelSpec, gpu: GPU, weights: str = "bf16", kv_dtype: str = "bf16", tp: int = 1,
                 cost: StepCost | None = None):
        self.m, self.gpu, self.weights, self.kv_dtype, self.tp = m, gpu, weights, kv_dtype, tp
        if cost is not None and cost.per_layer:  # a per-layer fixed cost needs the model's layer count
            cost = replace(cost, layers=m.num_hidden_layers, mla=m.is_mla)
        if cost is not None and cost.request_latency_for:  # and so does a per-layer request latency
            cost = replace(cost, request_latency_s=cost.request_latency_for(m.num_hidden_layers, m.is_mla),
                           request_latency_for=None)
        # no cost given: the ideal engine on this GPU, at its measured matmul share (registry GPU.matmul_factor)
        self.cost = cost or StepCost(compute_efficiency=perf.COMPUTE_EFFICIENCY * gpu.matmul_factor)
        dtype = perf.compute_dtype(weights, gpu)
        from .engines import ENGINES, matmul_peak_flops, profile  # noqa: PLC0415 (engines reads its JSON on import)
        peak = matmul_peak_flops(gpu, dtype, self.cost.fp16_accumulate) * tp
        self.peak = peak * self.cost.compute_efficiency
        decode_eff = self.cost.decode_compute_efficiency
        self.decode_peak = self.peak if decode_eff is None else peak * decode_eff  # a step without prompt tokens
        self.bandwidth = gpu.memory_bandwidth_bytes_per_s * self.cost.memory_efficiency * tp
        self.linear_flops_per_token = 2 * matmul_params_per_token(m)
        self.head_flops_per_token = 2 * lm_head_params(m)  # logits: each decoded token, each prompt chunk's last
        self._wbytes: dict[int, float] = {}
        self._allreduce: dict[int, float] = {}
        self._layers = range(m.num_hidden_layers)
        self._dec_attn: dict[int, float] = {}
        self._kv: dict[int, float] = {}
        self._pre_attn: dict[int, float] = {}
        # the tokens per KV block of the engine's default attention backend for this model, GPU and KV dtype
        # (memory.engine_block_size); a cost of an engine engines.json does not list: vLLM's old default. Only an
        # unknown engine falls back: a misspelt variant of a known one ("vllm@nosuch") is refused here.
        base = self.cost.engine.split("@")[0]
        self._kvb = profile(self.cost.engine).kv_budget() if base in ENGINES else {}
        self.block_size = engine_block_size(self._kvb, m, gpu.compute_capability, kv_dtype)

    def block_size_given(self, size: int) -> int:
        """The block size the engine runs when ``size`` is asked for: as given, unless its default backend on this
        GPU takes no such size (memory.engine_block_size; SGLang on a B200 turns a page of 1 into 64), as the memory
        report counts it."""
        return engine_block_size(self._kvb, self.m, self.gpu.compute_capability, self.kv_dtype, given=size)

    # memoised primitives (a run asks for the same few hundred values thousands of times)
    def _weight_bytes(self, tokens: int) -> float:
        v = self._wbytes.get(tokens)
        if v is None:
            v = self._wbytes[tokens] = perf.weight_bytes_read(self.m, self.weights, tokens)
        return v

    def _allreduce_s(self, tokens: int) -> float:
        v = self._allreduce.get(tokens)
        if v is None:
            v = self._allreduce[tokens] = perf.allreduce_s(self.m, self.gpu, tokens, self.tp)
        return v

    def _decode_attention_flops(self, context: int) -> float:
        v = self._dec_attn.get(context)
        if v is None:
            v = self._dec_attn[context] = perf.attention_flops(self.m, 1, self._layers, context, prefill=False)
        return v

    def _kv_bytes(self, context: int) -> float:
        """KV bytes one sequence reads at ``context`` tokens, all tp GPUs together."""
        v = self._kv.get(context)
        if v is None:
            v = self._kv[context] = perf.kv_bytes_read(self.m, self.kv_dtype, 1, context, self.tp) * self.tp
        return v

    def _prefill_attention_flops(self, n: int) -> float:
        """Attention FLOPs of a causal pass over the first ``n`` tokens (cumulative, so chunks subtract)."""
        v = self._pre_attn.get(n)
        if v is None:
            v = self._pre_attn[n] = perf.attention_flops(self.m, 1, self._layers, n, prefill=True)
        return v

    def _split_kv_extra_s(self, n_decode: int, ctx: int) -> float:
        """What a latency-bound split-KV decode kernel (StepCost.split_kv_beyond_read) takes beyond the roofline's read of
        the same KV bytes: 0 without one, or where the read is the longer."""
        if self.cost.split_kv_beyond_read is None:
            return 0.0
        return self.cost.split_kv_beyond_read(self.m, self.gpu, n_decode, ctx, self.m.num_hidden_layers, self.tp,
                                              n_decode * self._kv_bytes(ctx) / self.bandwidth)

    def step_s(self, chunks: Sequence[tuple[int, int]], n_decode: int, decode_context_sum: int) -> float:
        """``chunks``: (tokens already computed, tokens computed now) per prefilling sequence; ``n_decode``
        sequences decode one token each over ``decode_context_sum`` context tokens in total."""
        tokens = n_decode
        flops = 0.0
        nbytes = 0.0
        for start, n in chunks:
            tokens += n
            flops += self._prefill_attention_flops(start + n) - self._prefill_attention_flops(start)
            nbytes += self._kv_bytes(start + n)
        extra = 0.0
        if n_decode:
            ctx = decode_context_sum // n_decode
            flops += n_decode * self._decode_attention_flops(ctx)
            nbytes += n_decode * self._kv_bytes(ctx)
            extra = self._split_kv_extra_s(n_decode, ctx)
        flops += (self.linear_flops_per_token - self.head_flops_per_token) * tokens \
            + self.head_flops_per_token * (n_decode + len(chunks))
        nbytes += self._weight_bytes(tokens)
        t = max(flops / (self.peak if chunks else self.decode_peak), nbytes / self.bandwidth) + extra
        seqs = n_decode + len(chunks)
        overhead = (self.cost.prefill_step_overhead_s(seqs, self.tp) if chunks
                    else self.cost.step_overhead_s(seqs, self.tp))
        return self.cost.step_time_s(t + self._allreduce_s(tokens), overhead)

    def decode_step_s(self, n_decode: int, decode_context_sum: int) -> float:
        """step_s for a step of decodes only (the simulator's fast path)."""
        ctx = decode_context_sum // n_decode
        flops = n_decode * (self.linear_flops_per_token + self._decode_attention_flops(ctx))
        nbytes = self._weight_bytes(n_decode) + n_decode * self._kv_bytes(ctx)
        t = max(flops / self.decode_peak, nbytes / self.bandwidth) + self._split_kv_extra_s(n_decode, ctx)
        return self.cost.step_time_s(t + self._allreduce_s(n_decode), self.cost.step_overhead_s(n_decode, self.tp))

    def kv_blocks(self, gpu_memory_utilization: float | None = None, max_num_batched_tokens: int = 8192,
                  block_size: int | None = None, max_num_seqs: int = DEFAULT_MAX_NUM_SEQS) -> int:
        """KV blocks per replica, from the memory model's engine view (blocks are per GPU, sharded by tp): the
        StepCost's engine budget rule (None: its default fraction) applied to the GPU's CUDA-visible memory
        (``max_num_seqs`` sizes vLLM's sampler warm-up in its profiling run). ``block_size`` here and below: tokens
        per block, None for the engine's default (``self.block_size``)."""
        r = self._engine_view(max_num_batched_tokens, block_size, gpu_memory_utilization=gpu_memory_utilization,
                              max_num_seqs=max_num_seqs)
        return int(r["engine_num_kv_blocks"])

    def kv_blocks_held(self, max_num_batched_tokens: int = 8192, block_size: int | None = None):
        """(held, batches): held(n, in_flight) is the KV blocks a sequence of n tokens holds while ``in_flight`` of its
        tokens are scheduled but not yet settled, summed over the engine's KV cache groups (the memory model's engine
        view): n / block_size, rounded up, per full-attention group; in a sliding-window group of vLLM's hybrid KV
        cache manager only the window and those tokens (window − 1 + in_flight, plus one block), since vLLM frees the
        blocks that leave the window at every step. ``batches``: the steps in flight (2 with vLLM 0.32's async
        scheduling: a sequence's previous step's tokens and this step's). One group of full attention (most models,
        other engines): ceil(n / block_size). SGLang's window pool for gpt-oss (memory.sglang_hybrid_swa) shows here
        as a larger full pool; the window pool itself is not simulated: from 0.5.18, the release modelled, it binds only
        sequences of a few hundred tokens, which the memory model's max_concurrency counts."""
        r = self._engine_view(max_num_batched_tokens, block_size)
        windows, block_size = r["engine_kv_group_windows"], r["engine_block_size"]
        batches = max(1, r["engine_kv_in_flight_tokens"] // max_num_batched_tokens)

        def held(n: int, in_flight: int = 1) -> int:
            return vllm_blocks_per_request(windows, n, block_size, in_flight)
        return held, batches

    def kv_has_windows(self, max_num_batched_tokens: int = 8192, block_size: int | None = None) -> bool:
        """Whether the engine keeps sliding-window KV cache groups (vLLM's hybrid manager), whose blocks a sequence
        frees as they leave its window: there a sequence's blocks can shrink, as when its prompt's chunks in flight
        settle into decoding."""
        return any(w is not None for w in self._engine_view(max_num_batched_tokens, block_size)["engine_kv_group_windows"])

    def _engine_view(self, max_num_batched_tokens: int, block_size: int | None, **kw) -> dict:
        """The memory model's engine view of one replica (calc.memory.memory_report) under this StepCost's engine, on
        the GPU's CUDA-visible memory; ``kw``: further memory_report settings."""
        return memory_report(self.m, self.gpu.memory_bytes, self.weights, self.kv_dtype, 1, 1, 1, self.tp,
                             block_size=self.block_size if block_size is None else block_size,
                             max_num_batched_tokens=max_num_batched_tokens,
                             visible_memory_bytes=self.gpu.visible_memory_bytes, engine=self.cost.engine,
                             linked_gpus=self.gpu.linked_gpus, compute_capability=self.gpu.compute_capability, **kw)

    def kv_bytes_per_token(self) -> int:
        return kv_bytes_per_token(self.m, self.kv_dtype, self.tp)


# ----------------------------------------------------------------------------------------------------------
# Workload: arrivals and lengths

# Named length distributions: percentiles of public traces, computed by scripts/trace_lengths.py from the files
# named in ``source`` (each at a commit); a request's length is drawn from the piecewise-linear quantile function
# through these points (p0 .. p100 of the trace), so the draws follow the trace's distribution.
LENGTH_PROFILES = {
    # filled in below from calc/data/length_profiles.json
}


def _load_profiles() -> dict:
    import json
    import os
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "length_profiles.json")
    with open(path, encoding="utf-8") as fh:
        return json.load(fh)["profiles"]


LENGTH_PROFILES.update(_load_profiles())


@dataclass(frozen=True)
class Lengths:
    """A length distribution: ``fixed`` (lo), ``uniform`` integers in [lo, hi], or a named trace ``profile``
    whose prompt or output side (``side``) is drawn from its quantiles."""

    kind: str = "fixed"
    lo: int = 1
    hi: int = 1
    profile: str = ""
    side: str = "prompt"

    def sampler(self, rng: random.Random) -> Callable[[], int]:
        if self.kind == "fixed":
            return lambda: self.lo
        if self.kind == "uniform":
            return lambda: rng.randint(self.lo, self.hi)
        q = LENGTH_PROFILES[self.profile][self.side]["quantiles"]  # 101 values, p0..p100
        def draw() -> int:
            u = rng.random() * 100
            i = int(u)
            f = u - i
            return max(1, round(q[i] + (q[min(i + 1, 100)] - q[i]) * f))
        return draw

    @property
    def mean(self) -> float:
        if self.kind == "fixed":
            return float(self.lo)
        if self.kind == "uniform":
            return (self.lo + self.hi) / 2
        return float(LENGTH_PROFILES[self.profile][self.side]["mean"])


def parse_lengths(spec, side: str = "prompt") -> Lengths:
    """``1024`` (fixed), ``"128-2048"`` (uniform), or a profile name (``"azure-conv"``)."""
    if isinstance(spec, Lengths):
        return spec
    if isinstance(spec, int) and not isinstance(spec, bool):
        if spec < 1:
            raise ValueError(f"length must be ≥ 1, got {spec}")
        return Lengths("fixed", spec, spec)
    s = str(spec).strip()
    if s in LENGTH_PROFILES:
        return Lengths("profile", profile=s, side=side)
    if "-" in s:
        a, _, b = s.partition("-")
        lo, hi = int(a), int(b)
        if lo < 1 or hi < lo:
            raise ValueError(f"a uniform length range needs 1 ≤ lo ≤ hi, got {s!r}")
        return Lengths("uniform", lo, hi)
    n = int(s)
    if n < 1:
        raise ValueError(f"length must be ≥ 1, got {s!r}")
    return Lengths("fixed", n, n)


@dataclass(frozen=True)
class Request:
    id: int
    arrival: float
    prompt_len: int
    output_len: int


def requests(n: int, rate: float, prompt=1024, output=256, seed: int = 0,
             arrivals: Sequence[float] | None = None, max_len: int | None = None) -> list[Request]:
    """``n`` requests: Poisson arrivals at ``rate`` per second (``rate`` = inf: all at t = 0), or the given
    arrival times; lengths fixed, uniform or drawn from a named trace profile. ``max_len`` caps prompt + output.

    The same seed gives the same lengths and the same unit-rate arrival gaps at every rate (gaps are scaled by
    1/rate), so a sweep over rates compares like with like.
    """
    rng = random.Random(seed)
    p, o = parse_lengths(prompt, "prompt"), parse_lengths(output, "output")
    draw_p, draw_o = p.sampler(rng), o.sampler(rng)
    out, t = [], 0.0
    for i in range(n):
        if arrivals is not None:
            t = float(arrivals[i])
        elif math.isinf(rate):
            t = 0.0
        else:
            t += rng.expovariate(1.0) / rate
        pl, ol = draw_p(), draw_o()
        if max_len is not None and pl + ol > max_len:
            pl = max(1, min(pl, max_len - 1))
            ol = max(1, max_len - pl) if pl + ol > max_len else ol
        out.append(Request(i, t, pl, ol))
    out.sort(key=lambda r: (r.arrival, r.id))
    return out


# ----------------------------------------------------------------------------------------------------------
# The simulation


class _Seq:
    __slots__ = ("req", "computed", "target", "generated", "blocks", "first", "last", "done_prefill", "order", "prev")

    def __init__(self, req: Request):
        self.req = req
        self.computed = 0  # tokens whose KV is in the cache
        self.target = req.prompt_len  # tokens to prefill before the next token comes out
        self.generated = 0
        self.blocks = 0
        self.first = None  # time of the first token
        self.last = None  # time of the latest token
        self.done_prefill = False
        self.order = 0
        self.prev = 0  # tokens scheduled in its previous step (still in flight under async scheduling)


def percentiles(xs: list[float], ps=PERCENTILES) -> dict:
    """Nearest-rank-free linear interpolation (numpy's default), plus the mean; None for an empty list."""
    if not xs:
        return {"mean": None, **{f"p{p}": None for p in ps}}
    s = sorted(xs)
    n = len(s)
    out = {"mean": sum(s) / n}
    for p in ps:
        k = (n - 1) * p / 100
        i = int(k)
        j = min(i + 1, n - 1)
        out[f"p{p}"] = s[i] + (s[j] - s[i]) * (k - i)
    return out


def simulate(model: StepModel, reqs: Sequence[Request], max_num_seqs: int = DEFAULT_MAX_NUM_SEQS,
             max_num_batched_tokens: int = 8192, chunked_prefill: bool = True, num_blocks: int | None = None,
             block_size: int | None = None, slo_ttft_s: float | None = None, slo_tpot_s: float | None = None,
             gpu_memory_utilization: float | None = None, kv_samples: int = 200, max_steps: int = 2_000_000,
             fast_path: bool = True, warmup_s: float = 0.0, reserve_full_prompt: bool = True,
             prefill_alone: bool | None = None) -> dict:
    """Serve ``reqs`` on one replica; return latency percentiles, throughput, goodput, KV usage, preemptions.
    ``fast_path=False`` runs every step through the scheduler (the tests compare both). ``warmup_s``: a warm-up
    window left out of the latency statistics: TTFT, TPOT, E2EL and SLO attainment count only requests arriving
    at or after it, ITL only tokens emitted after it (throughput and KV figures count the whole run).
    ``reserve_full_prompt``: with chunked prefill, admit a waiting sequence only when the blocks its whole prompt
    needs are free, not just its first chunk's (vLLM's --scheduler-reserve-full-isl, on by default since 0.19.0;
    False is the first-chunk check of 0.18 and earlier, which admits long prompts that later preempt others; read in
    the 0.8.4, 0.9.1, 0.11.0, 0.16.0, 0.18.1, 0.19.0, 0.20.0 and 0.32.0 wheels). A sliding-window group counts up to
    vLLM's admission cap, as from 0.20.0 (0.19.x counted its whole prompt, so long prompts of such models could wait
    forever: vLLM issue #39734, fixed by PR #40946). Either way, as in vLLM, no waiting request is admitted in a step
    that preempted one.
    ``prefill_alone`` (default: the engine profile's, StepCost.prefill_alone): prompt tokens run in steps of their own,
    first, decodes paused meanwhile, as SGLang's scheduler does without --enable-mixed-chunk; with chunked prefill a
    long prompt runs in several such steps of at most ``max_num_batched_tokens``. Without chunked prefill steps are
    always of this kind (vLLM's V0 scheduler). With prompts alone the whole prompt is always reserved at admission
    (``reserve_full_prompt`` is then ignored), as SGLang does."""
    if max_num_seqs < 1 or max_num_batched_tokens < 1:
        raise ValueError("max_num_seqs and max_num_batched_tokens must be ≥ 1")
    if block_size is None:  # the engine's default for this model and GPU
        block_size = model.block_size
    else:  # as the engine would run it, the size the memory report counts the pool in
        block_size = model.block_size_given(block_size)
    alone = not chunked_prefill or (model.cost.prefill_alone if prefill_alone is None else prefill_alone)
    # prompts alone always reserve the whole prompt (SGLang admits a request only when its whole input, and room for part
    # of its output, fits): a prompt part-way through then always finds its next chunk's blocks, as no decode runs
    # between its steps, and never has to share a step with decodes to preempt for them
    reserve_full_prompt = reserve_full_prompt or alone
    if num_blocks is None:
        num_blocks = model.kv_blocks(gpu_memory_utilization, max_num_batched_tokens, block_size, max_num_seqs)
    held, batches = model.kv_blocks_held(max_num_batched_tokens, block_size)  # blocks a sequence holds
    # with full attention only, a sequence's blocks never shrink while it runs, so free blocks only fall between
    # finishes and a waiting request that cannot be admitted now cannot be before one (the fast path's test)
    monotone = not model.kv_has_windows(max_num_batched_tokens, block_size)

    def in_flight(s: _Seq, n: int) -> int:  # a sequence's tokens not yet settled once it schedules n more
        return n + (s.prev if batches > 1 else 0)

    def admission(s: _Seq, budget: int) -> tuple[int, int] | None:
        """(tokens, blocks) a waiting sequence schedules if admitted with ``budget`` tokens left in the step, or None
        where it cannot be: without chunked prefill its whole prompt must fit the budget and its blocks be free; with
        it, its first chunk's blocks must be free and, from vLLM 0.19 (``reserve_full_prompt``), its whole prompt's, or
        prompt + generated tokens for a preempted request (a window group: up to vLLM's cap, window - 1 + the tokens in
        flight, + 1 block; kv_cache_manager.allocate_slots, full_sequence_must_fit)."""
        n = min(s.target - s.computed, budget) if chunked_prefill else s.target - s.computed
        if n > budget:
            return None
        need = held(s.computed + n, in_flight(s, n)) - s.blocks
        whole = held(s.target, batches * max_num_batched_tokens) if chunked_prefill and reserve_full_prompt else 0
        return None if need > free or whole > free else (n, need)

    def head_blocked() -> bool:
        """Below the sequence cap (the caller checks it), the first waiting sequence cannot be admitted now, nor before
        a running one finishes: ``admission`` refuses it with what a step of decodes leaves of the token budget, and the
        free blocks it is refused for only shrink under decode steps where every KV group is full attention
        (``monotone``, which the caller requires). Admission is first come, first served, so the rest wait behind it,
        and decode-only steps may then run back to back while others wait."""
        budget = max_num_batched_tokens if alone else max_num_batched_tokens - len(running)
        return budget <= 0 or admission(waiting[0], budget) is None

    longest = max((r.prompt_len + r.output_len for r in reqs), default=0)
    worst = held(longest, batches * max_num_batched_tokens)
    if worst > num_blocks:
        raise ValueError(f"the KV cache holds {num_blocks} blocks, fewer than one request of {longest} tokens needs "
                         f"({worst}): the model does not fit with room for a request")
    if not chunked_prefill:
        too_long = max((r.prompt_len + r.output_len for r in reqs), default=0)
        if too_long > max_num_batched_tokens:
            raise ValueError(f"without chunked prefill max_num_batched_tokens ({max_num_batched_tokens}) must be ≥ "
                             f"the longest prompt + output ({too_long}), as vLLM requires")

    pending = deque(sorted(reqs, key=lambda r: (r.arrival, r.id)))
    waiting: deque[_Seq] = deque()
    running: list[_Seq] = []
    free = num_blocks
    now = 0.0
    itl: list[float] = []
    itl_weighted: list[tuple[float, int]] = []  # (ITL, how many tokens had it): the fast path's equal ITLs
    synced = False  # every running sequence is decoding and got its latest token at `now`
    finished: list[_Seq] = []
    preemptions = 0
    steps = 0
    kv_trace: list[tuple[float, float]] = []
    kv_peak = 0.0  # the largest share of blocks held, at the end of a step before finished sequences free theirs
    busy = 0.0
    in_system_area = 0.0  # ∫ (waiting + running) dt over steps, for Little's law
    order = 0
    step_step = 1

    while pending or waiting or running:
        # arrivals up to now join the queue; an idle engine jumps to the next arrival
        if not waiting and not running and pending and pending[0].arrival > now:
            now = pending[0].arrival
        while pending and pending[0].arrival <= now:
            waiting.append(_Seq(pending.popleft()))

        n_run = len(running)
        # (with sliding windows, the step after a prompt's last chunk frees the window blocks its chunk held in flight:
        # that step goes through the scheduler, so the KV peak is taken where the step-by-step run takes it)
        settled = monotone or all(s.prev == 1 for s in running)
        # (the sequence cap holds the queue back whatever the blocks do, so it does not need ``monotone``; the token
        # budget and the free blocks do only where they cannot grow, head_blocked)
        if fast_path and synced and settled and n_run <= max_num_batched_tokens and (
                not waiting or n_run >= max_num_seqs or monotone and head_blocked()):
            # Fast path: every running sequence is decoding and got its last token at `now`, and nobody waits or
            # nobody waiting can be admitted before a running sequence finishes (head_blocked). Run decode steps back
            # to back, without the scheduler, until the first request finishes, the next one arrives, or the cache
            # might run short of blocks; every step gives n_run equal ITLs.
            k = min(s.req.output_len - s.generated for s in running)
            groups = held(block_size)  # a block per KV cache group for the first block_size tokens
            if n_run * groups * -(-k // block_size) > free:
                k = min(k, free // (n_run * groups) * block_size)
            if k >= 2:
                ctx_sum = 0
                for s in running:
                    ctx_sum += s.computed + 1
                next_arrival = pending[0].arrival if pending else math.inf
                start = now
                j = 0
                while j < k:
                    dt = model.decode_step_s(n_run, ctx_sum + j * n_run)
                    now += dt
                    if now >= warmup_s:
                        itl_weighted.append((dt, n_run))
                    j += 1
                    if now >= next_arrival:
                        break
                busy += now - start
                in_system_area += (n_run + len(waiting)) * (now - start)
                steps += j
                if steps > max_steps:
                    raise ValueError(f"simulation exceeded {max_steps} steps; reduce the requests or their lengths")
                for s in running:
                    s.computed += j
                    s.generated += j
                    s.last = now
                    need = held(s.computed, batches) - s.blocks  # decodes: one token per step in flight
                    s.prev = 1
                    free -= need
                    s.blocks += need
                kv_peak = max(kv_peak, 1.0 - free / num_blocks)  # blocks only grew over the stretch
                running, free = _finish(running, finished, free)
                synced = True
                kv_trace.append((now, 1.0 - free / num_blocks))
                continue

        budget = max_num_batched_tokens
        chunks: list[tuple[_Seq, int]] = []
        decodes: list[_Seq] = []
        joined: list[_Seq] = []  # waiting sequences admitted into a step of prompts
        prefill_step = False

        if alone:
            # prompts first, in a step of their own, decodes paused meanwhile (vLLM V0: whole prompts; SGLang: a
            # prompt longer than the budget goes on in the next steps, ahead of any new one), then waiting sequences
            # join while the budget, the free blocks and the sequence cap allow
            for s in running:
                if s.done_prefill or budget <= 0:
                    continue
                n = min(s.target - s.computed, budget)
                need = held(s.computed + n, in_flight(s, n)) - s.blocks
                if need > free:  # cannot happen: its whole prompt was reserved at admission (reserve_full_prompt)
                    break
                free -= need
                s.blocks += need
                s.prev = n
                budget -= n
                chunks.append((s, n))
            while waiting and budget > 0 and len(running) + len(joined) < max_num_seqs:
                s = waiting[0]
                admitted = admission(s, budget)
                if admitted is None:
                    break
                n, need = admitted
                waiting.popleft()
                free -= need
                s.blocks += need
                s.prev = n
                budget -= n
                order += 1
                s.order = order
                chunks.append((s, n))
                joined.append(s)
            prefill_step = bool(chunks)

        if not prefill_step:
            # decodes (and, with chunked prefill, unfinished prompts) of running sequences, in admission order
            i = 0
            preempted_now = False
            while i < len(running):
                s = running[i]
                n = 1 if s.done_prefill else min(s.target - s.computed, budget)
                if n <= 0 or budget <= 0 or alone and not s.done_prefill:  # (alone: prompts go in their own steps)
                    i += 1
                    continue
                need = held(s.computed + n, in_flight(s, n)) - s.blocks
                preempted_self = False
                while need > free:
                    victim = running.pop()  # the most recently admitted
                    free += victim.blocks
                    victim.blocks = 0
                    victim.prev = 0
                    victim.computed = 0
                    victim.target = victim.req.prompt_len + victim.generated
                    victim.done_prefill = False
                    waiting.appendleft(victim)
                    preemptions += 1
                    preempted_now = True
                    if victim is s:
                        preempted_self = True
                        break
                if preempted_self:  # nothing left to schedule behind it
                    break
                free -= need
                s.blocks += need
                s.prev = n
                budget -= n
                if s.done_prefill:
                    decodes.append(s)
                else:
                    chunks.append((s, n))
                i += 1
            if chunked_prefill and not alone and not preempted_now:  # vLLM admits none in a step that preempted
                while waiting and budget > 0 and len(running) < max_num_seqs:
                    s = waiting[0]
                    admitted = admission(s, budget)
                    if admitted is None:
                        break
                    n, need = admitted
                    waiting.popleft()
                    free -= need
                    s.blocks += need
                    s.prev = n
                    budget -= n
                    order += 1
                    s.order = order
                    running.append(s)
                    chunks.append((s, n))

        if not chunks and not decodes:
            if pending:  # nothing schedulable until the next arrival (cannot happen with requests running)
                now = max(now, pending[0].arrival)
                continue
            raise RuntimeError("scheduler stalled: no sequence can run")  # pragma: no cover

        ctx_sum = 0
        for s in decodes:
            ctx_sum += s.computed + 1
        dt = model.step_s([(s.computed, n) for s, n in chunks], len(decodes), ctx_sum)
        in_system_area += (len(waiting) + len(running) + len(joined)) * dt
        now += dt
        busy += dt
        steps += 1
        if steps > max_steps:
            raise ValueError(f"simulation exceeded {max_steps} steps; reduce the requests or their lengths")

        # tokens come out at the end of the step
        keep_itl = now >= warmup_s
        for s in decodes:
            s.computed += 1
            s.generated += 1
            if keep_itl:
                itl.append(now - s.last)
            s.last = now
        for s, n in chunks:
            s.computed += n
            if s.computed >= s.target:
                s.done_prefill = True
                s.generated += 1
                if s.first is None:
                    s.first = now
                elif keep_itl:
                    itl.append(now - s.last)
                s.last = now
        running.extend(joined)
        kv_peak = max(kv_peak, 1.0 - free / num_blocks)
        running, free = _finish(running, finished, free)
        synced = all(s.done_prefill and s.last == now for s in running)
        if steps % step_step == 0:
            kv_trace.append((now, 1.0 - free / num_blocks))
            if len(kv_trace) >= 2 * kv_samples:
                kv_trace = kv_trace[::2]
                step_step *= 2

    itl.sort()
    return _report(finished, _merge(itl, itl_weighted), preemptions, steps, busy, in_system_area, kv_trace, num_blocks, block_size,
                   slo_ttft_s, slo_tpot_s, model.cost.request_latency_s, warmup_s, kv_peak)


def _finish(running: list, finished: list, free: int) -> tuple[list, int]:
    """Move sequences that produced their last token to ``finished``; free their blocks."""
    if not any(s.generated >= s.req.output_len for s in running):
        return running, free
    keep = []
    for s in running:
        if s.generated >= s.req.output_len:
            free += s.blocks
            s.blocks = 0
            finished.append(s)
        else:
            keep.append(s)
    return keep, free


def _merge(single: list[float], weighted: list[tuple[float, int]]) -> list[tuple[float, int]]:
    pairs = [(x, 1) for x in single] + weighted
    pairs.sort()
    return pairs


def weighted_percentiles(pairs: list[tuple[float, int]], ps=PERCENTILES) -> dict:
    """percentiles() of the list in which each (value, count) pair stands for count copies of value."""
    total = sum(w for _, w in pairs)
    if not total:
        return {"mean": None, **{f"p{p}": None for p in ps}}
    out = {"mean": sum(x * w for x, w in pairs) / total}
    cum, acc = [], 0
    for _, w in pairs:
        acc += w
        cum.append(acc)  # elements with index < cum[i] are pairs[0..i]

    def at(index: int) -> float:
        return pairs[bisect.bisect_right(cum, index)][0]

    for p in ps:
        k = (total - 1) * p / 100
        i = int(k)
        lo, hi = at(i), at(min(i + 1, total - 1))
        out[f"p{p}"] = lo + (hi - lo) * (k - i)
    return out


def _report(finished, itl, preemptions, steps, busy, in_system_area, kv_trace, num_blocks, block_size,
            slo_ttft_s, slo_tpot_s, latency: float = 0.0, warmup_s: float = 0.0, kv_peak: float = 0.0) -> dict:
    """``latency``: the per-request front-end latency (StepCost.request_latency_s), paid by every request on top
    of its engine-side times; it shifts each first and last token by the same amount, so TPOT and ITL keep."""
    n = len(finished)
    measured = [s for s in finished if s.req.arrival >= warmup_s] if warmup_s > 0 else finished
    ttft = [s.first - s.req.arrival + latency for s in measured]
    e2e = [s.last - s.req.arrival + latency for s in measured]
    tpot = [(s.last - s.first) / (s.req.output_len - 1) for s in measured if s.req.output_len > 1]
    first_arrival = min(s.req.arrival for s in finished) if n else 0.0
    end = max(s.last for s in finished) + latency if n else 0.0
    span = end - first_arrival
    out_tokens = sum(s.req.output_len for s in finished)
    good = n
    if slo_ttft_s is not None or slo_tpot_s is not None:
        good = 0
        for s in measured:
            t = s.first - s.req.arrival + latency
            p = (s.last - s.first) / (s.req.output_len - 1) if s.req.output_len > 1 else 0.0
            if (slo_ttft_s is None or t <= slo_ttft_s) and (slo_tpot_s is None or p <= slo_tpot_s):
                good += 1
    ends = sorted(s.last for s in finished)
    lo, hi = n // 10, n - 1 - n // 10
    steady = (hi - lo) / (ends[hi] - ends[lo]) if n >= 10 and ends[hi] > ends[lo] else (n / span if span > 0 else None)
    return {
        "requests": n,
        "duration_s": span,
        "ttft_s": percentiles(ttft),
        "tpot_s": percentiles(tpot),
        "itl_s": weighted_percentiles(itl),
        "e2e_s": percentiles(e2e),
        "requests_per_s": n / span if span > 0 else None,
        # completions per second between the 10th and the 90th percentile of finish times: with every request
        # queued from the start (a burst) this is the replica's saturated rate, without the ramp and the drain
        "requests_per_s_steady": steady,
        "output_tok_per_s": out_tokens / span if span > 0 else None,
        # with a warm-up window: the measured requests' SLO attainment × the whole run's completion rate
        "goodput_requests_per_s": good / len(measured) * n / span if span > 0 and measured else None,
        "slo_attainment": good / len(measured) if measured else None,
        "measured_requests": len(measured),
        "preemptions": preemptions,
        "steps": steps,
        "busy_fraction": busy / span if span > 0 else None,
        "mean_in_system": in_system_area / span if span > 0 else None,
        "kv_blocks": num_blocks,
        "kv_block_size": block_size,
        # the peak over every step (the trace is thinned to kv_samples points and taken after finished sequences free)
        "kv_usage_peak": kv_peak,
        "kv_usage": [{"t_s": t, "used": u} for t, u in kv_trace],
    }
