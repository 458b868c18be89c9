"""Time: prefill, decode steps, TTFT, TPOT and throughput, from a roofline model.

Each step takes max(FLOPs / achievable FLOPS, bytes / achievable bandwidth), plus the tensor-parallel
all-reduces. Decode at small batch reads every weight once per step for a handful of tokens, so it is
memory-bound; prefill pushes thousands of tokens through the same weights, so it is compute-bound.

"Achievable" = datasheet peak × an efficiency factor, calibrated on the H100 reference measurements in
tests/data/h100-llama1b-2026-11-26.json (one H100 SXM 80GB HBM3):
  - memory: a device-to-device copy moves 2957.5 GB/s (read + write) against the 3.35 TB/s datasheet;
  - compute: a bf16 8192³ matmul runs at 755.4 TFLOPS against 989.5 TFLOPS dense (1979 with sparsity / 2).
The same two factors are applied to every GPU by default (override them per run); they say how close real
kernels get to a datasheet, which is similar across recent NVIDIA parts but not identical.
"""

from __future__ import annotations

import math

from . import engines as engines_mod
from .memory import (
    ACTIVATION_BYTES,
    WEIGHT_FORMATS,
    attention_replicas,
    cached_tokens,
    check_parallel,
    gpus_per_stage,
    kv_bytes_per_token_layer,
    stage_layers,
    weight_parts,
    weights_bytes,
)
from .model import ModelSpec, lm_head_params, matmul_params_per_token, param_counts
from .registry import GPU

MEMORY_EFFICIENCY = 2957.5e9 / 3.35e12  # 0.883
COMPUTE_EFFICIENCY = 755.4e12 / 989.5e12  # 0.763
# Fixed cost of one collective or point-to-point call (all-reduce, all-to-all, pipeline send/recv): an
# ASSUMPTION, not measured here. For scale: NCCL 2.20.5 all_reduce_perf on 2 H100 SXM in an HGX node, with
# CUDA graphs and NVLSTree, took about 6 µs for small messages (https://github.com/NVIDIA/nccl/issues/1259,
# 2024-04-22); without CUDA graphs and across more ranks it is higher, and across nodes (InfiniBand) an
# all-reduce took about 46-48 µs (16 H20 in 2 nodes, https://github.com/NVIDIA/nccl/issues/1244). 10 µs is a
# round intra-node figure between those; override it with latency_s where you have a measurement.
ALLREDUCE_LATENCY_S = 10e-6


def compute_dtype(fmt: str, gpu: GPU) -> str:
    """The dtype the matmuls run in. W4A16 formats dequantize to 16 bits; formats whose tensor-core dtype
    the GPU lacks (FP8 on Ampere, FP4 before Blackwell) fall back to 16-bit math (weight-only kernels), in FP16
    where the GPU has no BF16 tensor cores (V100, T4)."""
    dtype = WEIGHT_FORMATS[fmt].compute_dtype
    if gpu.peak_flops(dtype):
        return dtype
    return "bf16" if gpu.peak_flops("bf16") else "fp16"  # Volta and Turing have FP16 but no BF16 tensor cores


def _attention_pairs(context: int, window: int | None) -> float:
    """(query, key) pairs a causal pass over ``context`` tokens scores in one layer (window: sliding)."""
    if window is None or window >= context:
        return context * (context + 1) / 2
    return window * (window + 1) / 2 + (context - window) * window


def prefill_flops(m: ModelSpec, batch: int, prompt_len: int, cached: int = 0) -> float:
    """2 FLOPs per weight per token, plus attention: QKᵀ and PV cost 2·heads·(d_qk + d_v) per scored pair.

    The lm_head runs once per sequence, on its last token: serving engines (vLLM's logits_indices, SGLang's logits
    processor, Hugging Face's logits_to_keep=1) compute logits only where a token is sampled. ``cached``: the first
    ``cached`` tokens of each prompt are a prefix-cache hit, so only the others are computed (each still attends
    over the whole prompt before it)."""
    head = lm_head_params(m)
    linear = 2 * (matmul_params_per_token(m) - head) * batch * (prompt_len - cached) + 2 * head * batch
    return linear + prefill_attention_flops(m, batch, range(m.num_hidden_layers), prompt_len, cached)


def prefill_attention_flops(m: ModelSpec, b: float, layers, prompt_len: int, cached: int = 0) -> float:
    """Attention FLOPs of a causal prefill of the last ``prompt_len - cached`` tokens of each prompt (the first
    ``cached`` already in the KV cache): the pairs of the whole prompt minus those of the cached prefix."""
    return (attention_flops(m, b, layers, prompt_len, prefill=True)
            - (attention_flops(m, b, layers, cached, prefill=True) if cached else 0.0))


def decode_flops(m: ModelSpec, batch: int, context: int) -> float:
    """FLOPs of one decode step: ``batch`` new tokens, each attending over ``context`` cached tokens.

    MLA decodes in the 'absorbed' form serving engines use: scores and values are computed against the cached
    latent directly, so a head costs (kv_lora_rank + rope) + kv_lora_rank per cached token.
    """
    return 2 * matmul_params_per_token(m) * batch + attention_flops(m, batch, range(m.num_hidden_layers), context,
                                                                   prefill=False)


def experts_touched_fraction(m: ModelSpec, tokens: int) -> float:
    """Expected share of a layer's routed experts that ``tokens`` tokens touch, with uniform routing:
    1 - (1 - k/E)^tokens. One token reads k of E experts; a large batch reads nearly all of them."""
    if not m.is_moe:
        return 1.0
    return 1.0 - (1.0 - m.num_experts_per_tok / m.num_experts) ** tokens


def expert_bytes_read(m: ModelSpec, fmt: str, tokens: float) -> float:
    """Routed-expert weight bytes one step reads for ``tokens`` tokens (only the experts they were routed to)."""
    if not m.is_moe:
        return 0.0
    c = param_counts(m)
    f = WEIGHT_FORMATS[fmt]
    # experts_only formats store the experts at their own width; otherwise the model's average bytes per weight
    per_param = f.bits / 8 if f.experts_only else weights_bytes(m, fmt) / c["total"]
    return c["expert_linear"] * per_param * experts_touched_fraction(m, tokens)


def weight_bytes_read(m: ModelSpec, fmt: str, tokens: float) -> float:
    """Weight bytes one step streams from memory for ``tokens`` tokens (whole model, all GPUs together).

    Every matrix is read once per step, except: the input embedding is a lookup of ``tokens`` rows (unless tied:
    then it is also lm_head and read whole), and a MoE layer reads only the experts its tokens were routed to.
    """
    total = weights_bytes(m, fmt)
    c = param_counts(m)
    f = WEIGHT_FORMATS[fmt]
    bytes_per_param = total / c["total"]
    if not m.tie_word_embeddings:
        # embeddings stay 16-bit except in GGUF files, where the average bytes per weight is close enough
        emb_bytes = bytes_per_param if f.gguf else 2
        total -= (c["embedding"] - min(tokens, m.vocab_size) * m.hidden_size) * emb_bytes
    per_expert_param = f.bits / 8 if f.experts_only else bytes_per_param
    expert_bytes = c["expert_linear"] * per_expert_param
    return total - expert_bytes * (1.0 - experts_touched_fraction(m, tokens))


def balance_batch(compute_bound, limit: float = 2.0**40) -> float | None:
    """The (real) batch at which ``compute_bound(batch)`` turns true: False for small batches, True from some batch
    on (a decode step's FLOPs grow with the batch, its weight bytes at most to the whole model). Bisection; None if
    it is still false at ``limit``."""
    lo, hi = 0.0, 1.0
    while not compute_bound(hi):
        if hi >= limit:
            return None
        lo, hi = hi, 2 * hi
    for _ in range(50):
        mid = (lo + hi) / 2
        lo, hi = (lo, mid) if compute_bound(mid) else (mid, hi)
    return hi


def kv_bytes_read(m: ModelSpec, kv_dtype: str, batch: int, context: int, tp: int = 1) -> float:
    """KV bytes one decode step reads on one GPU: every cached token of every layer, for each sequence."""
    return batch * kv_bytes_per_token_layer(m, kv_dtype, tp) * sum(cached_tokens(m, context))


def _link_bytes_per_s(gpu: GPU, group: int = 2) -> float:
    """One direction of the link the GPUs of a ``group`` talk over: datasheets quote both directions together, hence
    / 2. Where the GPU-to-GPU fabric joins pairs only (an NVLink bridge: registry linked_gpus) and the group is larger,
    a ring through the group crosses the host interface (PCIe), its slowest hop: that link's bandwidth."""
    both = gpu.interconnect_bytes_per_s or 0
    if gpu.linked_gpus and group > gpu.linked_gpus:
        both = gpu.host_interface_bytes_per_s or 0
    link = both / 2
    if link <= 0:
        raise ValueError(f"{gpu.key} has no GPU-to-GPU bandwidth in the registry; multi-GPU layouts need one")
    return link


def _allreduce_call_s(m: ModelSpec, gpu: GPU, tokens: float, tp: int, latency_s: float = ALLREDUCE_LATENCY_S) -> float:
    """One ring all-reduce of ``tokens`` hidden states over ``tp`` GPUs: 2·(tp-1)/tp of the message per link."""
    if tp == 1:
        return 0.0
    message = tokens * m.hidden_size * ACTIVATION_BYTES
    return latency_s + 2 * (tp - 1) / tp * message / _link_bytes_per_s(gpu, tp)


def allreduce_s(m: ModelSpec, gpu: GPU, tokens: int, tp: int, latency_s: float = ALLREDUCE_LATENCY_S) -> float:
    """Tensor parallelism all-reduces the hidden state twice per layer (after attention and after the MLP).

    A ring all-reduce moves 2·(tp-1)/tp of the message over each GPU's link in one direction; datasheets quote
    GPU-to-GPU bandwidth for both directions together, hence the / 2. No overlap with compute is assumed.
    """
    if tp == 1:
        return 0.0
    return 2 * m.num_hidden_layers * _allreduce_call_s(m, gpu, tokens, tp, latency_s)


def all_to_all_s(m: ModelSpec, gpu: GPU, tokens: float, ep: int, gpus: int,
                 latency_s: float = ALLREDUCE_LATENCY_S) -> float:
    """Expert parallelism in one MoE layer: dispatch every token to its top-k experts, then combine the results.

    Each of the ``gpus`` GPUs of a stage owns tokens/gpus tokens and sends each to k experts, of which
    (ep-1)/ep live on other GPUs (uniform routing); the combine returns as much. Both travel in 16 bits
    (DeepEP can dispatch in FP8; not modelled) over one direction of each GPU's link.
    """
    if ep == 1:
        return 0.0
    sent = tokens / gpus * m.num_experts_per_tok * (ep - 1) / ep * m.hidden_size * ACTIVATION_BYTES
    return 2 * (latency_s + sent / _link_bytes_per_s(gpu, gpus))


def handoff_s(m: ModelSpec, gpu: GPU, tokens: float, latency_s: float = ALLREDUCE_LATENCY_S, gpus: int = 2) -> float:
    """Pipeline parallelism: one stage sends the hidden states of ``tokens`` tokens to the next (send/recv), among
    ``gpus`` GPUs in all (beyond a bridged pair the hand-off crosses the host interface, _link_bytes_per_s)."""
    return latency_s + tokens * m.hidden_size * ACTIVATION_BYTES / _link_bytes_per_s(gpu, gpus)


# llama.cpp's MMQ_MAX_BATCH_SIZE in its 2023-10 to 2024-06 CUDA code: batches up to this many tokens used the
# quantized matmul kernels, larger ones FP16 cuBLAS on a dequantized copy (PR #3776; the llama.cpp@2024-01 variant)
LLAMA_CPP_MMQ_MAX_BATCH = 32


def _roofline(flops: float, nbytes: float, peak: float, bandwidth: float) -> tuple[float, str]:
    t_compute, t_memory = flops / peak, nbytes / bandwidth
    return (t_compute, "compute") if t_compute > t_memory else (t_memory, "memory")


def _stage_shares(m: ModelSpec, fmt: str, pp: int) -> list[dict]:
    """Each pipeline stage's share of the per-layer work: dense weight bytes, expert weight bytes, linear FLOPs
    per token, and its layers (for KV and attention, which depend on each layer's window)."""
    parts = weight_parts(m, fmt)["layers"]
    k_share = m.num_experts_per_tok / m.num_experts if m.is_moe else 0
    dense_all = sum(p["dense"] for p in parts) or 1
    expert_all = sum(p["experts"] for p in parts) or 1
    lin = [p["params_dense"] + p["params_experts"] * k_share for p in parts]
    lin_all = sum(lin) or 1
    out = []
    for layers in stage_layers(m, pp):
        out.append({"layers": layers,
                    "dense": sum(parts[i]["dense"] for i in layers) / dense_all,
                    "experts": sum(parts[i]["experts"] for i in layers) / expert_all,
                    "linear": sum(lin[i] for i in layers) / lin_all,
                    "moe_layers": sum(1 for i in layers if m.moe_layers[i])})
    return out


def speculative_tokens_per_call(accept_rate: float, gamma: int) -> float:
    """Expected tokens one target call yields with γ drafts, each accepted with probability ``accept_rate`` (α)
    independently of the others, the bonus token included: (1 − α^(γ+1)) / (1 − α), chapter 9's (9-1)
    (Leviathan et al., ICML 2023); γ + 1 at α = 1."""
    if not 0 <= accept_rate <= 1:
        raise ValueError("accept_rate must be from 0 to 1")
    if gamma < 0:
        raise ValueError("gamma must be at least 0")
    return gamma + 1.0 if accept_rate == 1 else (1 - accept_rate ** (gamma + 1)) / (1 - accept_rate)


def speculative_speedup(accept_rate: float, gamma: int, draft_cost: float, verify_ratio: float = 1.0) -> float:
    """Speedup of speculative decoding over plain decoding: tokens per target call over what one round costs in
    plain target steps, γ draft steps of ``draft_cost`` (c) plain steps each plus one verification of
    ``verify_ratio`` (v) plain steps. Chapter 9's (9-2) takes v = 1 (a verification as fast as one step, true while
    it stays bandwidth-bound); at large batches v is the ``verify_to_plain_ratio`` perf_report computes. c is a
    ratio of times in the same engine: how much of the engine's fixed cost per step a draft step pays depends on how
    the engine runs the draft (chapter 9), so it is the reader's to give, not calc's to derive."""
    if not (0 <= draft_cost < math.inf) or not (0 < verify_ratio < math.inf):
        raise ValueError("draft_cost must be finite and at least 0, verify_ratio finite and above 0")
    return speculative_tokens_per_call(accept_rate, gamma) / (gamma * draft_cost + verify_ratio)


def perf_report(
    m: ModelSpec,
    gpu: GPU,
    weights: str = "bf16",
    kv_dtype: str = "bf16",
    batch: int = 1,
    prompt_len: int = 1024,
    output_len: int = 256,
    tp: int = 1,
    memory_efficiency: float | None = None,
    compute_efficiency: float | None = None,
    curve_batches: tuple = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512),
    engine: str = engines_mod.DEFAULT_ENGINE,
    pp: int = 1,
    ep: int = 1,
    verify_tokens: int = 1,
    request_latency_s: float | None = None,
    cached_prompt_tokens: int = 0,
    accept_rate: float | None = None,
    draft_cost: float = 0.0,
) -> dict:
    """Latency and throughput of a static batch: ``batch`` requests prefilled together, then decoded together,
    as ``engine`` (a calc.engines key) runs them; the ``*_ideal*`` fields give the roofline bound ("ideal").

    Step time of a stage = max(FLOPs / achievable FLOPS, bytes / achievable bandwidth) + its communication + the
    engine's fixed cost per step; "achievable" uses the engine's efficiencies for the weight format
    (``memory_efficiency`` / ``compute_efficiency`` override both, for the engine and the ideal bound).
    TTFT = the prefill (in chunks where the engine chunks it, one step each) + the engine's decode steps before
    the first token comes out + the engine's per-request latency off the GPU (``request_latency_s``: the part of
    its fitted prefill cost beyond one engine step, calc/engines.py; ``request_latency_s`` replaces it, e.g. with a
    front-end latency measured on one's own stack), paid once per request, not per chunk (for SGLang that part is the
    prompt's forward, paid by every prompt step instead, chunks included: prompt_cost_in_step). TPOT = one decode step
    at the mean context (prompt + output/2); step time is linear in context, so this is the average over the generation. E2E = TTFT + (output - 1) × TPOT. All
    figures are for one deployment of max(tp, ep) × pp GPUs.

    Each pipeline stage runs its layers on max(tp, ep) GPUs: roofline time + its communication (tp all-reduces;
    with ep > tp an all-to-all dispatch + combine per MoE layer instead of the MLP's all-reduce). The batch is
    cut into min(pp, batch) micro-batches. Prefill is a GPipe schedule: sum of the stage times + hand-offs +
    (micro-batches − 1) × the slowest stage. A decode step (one token for every request) takes the longer of
    the slowest stage serving every micro-batch and one micro-batch's trip through all stages.
    Nothing overlaps: communication never hides behind compute, stages are perfectly balanced otherwise.
    Every stage pays the engine's fixed cost per step for each micro-batch it runs (each stage's workers launch
    their own kernels); the multi-GPU part of that cost applies whenever the deployment has more than one GPU.

    ``verify_tokens`` (speculative decoding, chapter 9): the ``verify_*`` fields describe one decode step in
    which each of the ``batch`` requests feeds ``verify_tokens`` consecutive tokens (a verification of γ drafts
    is γ + 1 tokens): weights are read once, FLOPs grow with batch × verify_tokens, but each request's KV cache
    is read once, since its tokens share it. ``verify_critical_batch`` is the smallest batch (in requests) at
    which that step turns compute-bound; with verify_tokens = 1 all of them equal the plain decode step's.
    With ``accept_rate`` (α) given, ``spec_tokens_per_call`` and ``spec_speedup`` (``spec_speedup_ideal``: at the
    roofline bound) add chapter 9's (9-1) and (9-2) for γ = verify_tokens − 1 drafts of ``draft_cost`` (c, a draft
    step's time over a plain target step's) each, with this step's verification ratio v in the denominator
    (speculative_speedup). The engine's cost per step is charged to the verification once, whatever the tokens per
    request, as to a plain step: some of the part of it that is per request (rejection sampling, stop checks) grows
    with the tokens each request verifies or emits in a real engine, so at large batches the engine figures flatter speculation.

    ``cached_prompt_tokens``: a prefix-cache hit of that many tokens on every prompt (an engine with prefix caching
    that has seen the prompts before): the prefill computes only the rest of each prompt, which still attends over
    all of it; the fixed costs per request and per step stay. 0 (default): no hit.
    """
    check_parallel(m, tp, pp, ep)
    if verify_tokens < 1:
        raise ValueError("verify_tokens must be at least 1")
    if accept_rate is not None:  # checked before the timings, so a bad value fails fast
        speculative_speedup(accept_rate, verify_tokens - 1, draft_cost)
    eng = engines_mod.profile(engine)
    if request_latency_s is not None and not (0 <= request_latency_s < math.inf):
        raise ValueError("request_latency_s must be a finite number of seconds, at least 0")
    if isinstance(cached_prompt_tokens, bool) or not isinstance(cached_prompt_tokens, int) \
            or not 0 <= cached_prompt_tokens < prompt_len:
        raise ValueError(f"cached_prompt_tokens must be a whole number from 0 to prompt_len - 1 ({prompt_len - 1}): "
                         "at least one prompt token is computed to produce the first token")
    run = _timings(m, gpu, weights, kv_dtype, batch, prompt_len, output_len, tp, pp, ep, eng, memory_efficiency,
                   compute_efficiency, curve_batches, verify_tokens, request_latency_s, cached_prompt_tokens)
    best = run if eng.key == "ideal" and request_latency_s is None else _timings(m, gpu, weights, kv_dtype, batch, prompt_len, output_len, tp, pp,
                                                   ep, engines_mod.profile("ideal"), memory_efficiency,
                                                   compute_efficiency, (), verify_tokens,
                                                   cached_prompt_tokens=cached_prompt_tokens)
    out = run["report"]
    out.update({
        "engine": eng.key,
        "engine_step_overhead_s": run["step_overhead_s"],
        "prefill_ideal_s": best["report"]["prefill_s"],
        "ttft_ideal_s": best["report"]["ttft_s"],
        "tpot_ideal_s": best["report"]["tpot_s"],
        "verify_step_ideal_s": best["report"]["verify_step_s"],
        "e2e_ideal_s": best["report"]["e2e_s"],
        "decode_tok_per_s_ideal": best["report"]["decode_tok_per_s"],
        "throughput_ideal_tok_per_s": best["report"]["throughput_tok_per_s"],
    })
    if accept_rate is not None:
        gamma = verify_tokens - 1
        ideal_ratio = best["report"]["verify_step_s"] / best["report"]["tpot_s"]
        out.update({
            "spec_tokens_per_call": speculative_tokens_per_call(accept_rate, gamma),
            "spec_speedup": speculative_speedup(accept_rate, gamma, draft_cost, out["verify_to_plain_ratio"]),
            "spec_speedup_ideal": speculative_speedup(accept_rate, gamma, draft_cost, ideal_ratio),
        })
    return out


def _timings(m, gpu, weights, kv_dtype, batch, prompt_len, output_len, tp, pp, ep, eng, memory_efficiency,
             compute_efficiency, curve_batches, verify_tokens: int = 1, request_latency_s: float | None = None,
             cached_prompt_tokens: int = 0) -> dict:
    g, dp = gpus_per_stage(tp, ep), attention_replicas(tp, ep)
    n_gpus = g * pp
    dtype = compute_dtype(weights, gpu)
    mem_eff = eng.memory_efficiency(weights, gpu) if memory_efficiency is None else memory_efficiency
    comp_eff = eng.compute_efficiency(weights, gpu) if compute_efficiency is None else compute_efficiency
    decode_eff = eng.decode_compute_efficiency(weights, gpu) if compute_efficiency is None else compute_efficiency
    # FP8/FP4 formats that fall back to 16-bit math on this GPU run weight-only kernels: use the 16-bit figure
    if dtype != WEIGHT_FORMATS[weights].compute_dtype and compute_efficiency is None:
        comp_eff, decode_eff = eng.compute_efficiency("bf16", gpu), eng.decode_compute_efficiency("bf16", gpu)
    stage_peak = eng.peak_flops(gpu, dtype, weights)  # the FP16-accumulate rate where the engine's GEMMs use it
    peak = stage_peak * comp_eff * g  # one stage
    decode_peak = stage_peak * decode_eff * g  # one stage, a step of decodes only (the same but for vLLM for ROCm)
    bandwidth = gpu.memory_bandwidth_bytes_per_s * mem_eff * g
    chunk = eng.prefill_chunk_for(gpu)
    shares = _stage_shares(m, weights, pp)
    c = param_counts(m)
    head_params = lm_head_params(m)
    fmt = WEIGHT_FORMATS[weights]
    head_bytes = head_params * (weights_bytes(m, weights) / c["total"] if fmt.gguf else 2)
    per_layer_kv = kv_bytes_per_token_layer(m, kv_dtype, tp)
    micro = max(1, min(pp, batch))
    # reported: the fixed cost of the stage with the most layers (profiles that pay it per layer)
    layers_per_stage = max(len(sh["layers"]) for sh in shares)

    def stages(b: float, context: int, prompt: int | None, q: int = 1) -> list[tuple[float, str, float, float, dict]]:
        """Per stage: (time, bound, flops, bytes, communication) for ``b`` sequences; prompt=None: a decode
        step at ``context`` feeding ``q`` tokens per sequence (they share its KV cache); else a prefill of
        ``prompt`` tokens each (less the prefix-cache hit: cached_prompt_tokens), in chunks of the engine's chunk
        size (weights read once per chunk, one engine step each)."""
        hit = cached_prompt_tokens if prompt is not None else 0
        tokens = b * ((prompt - hit) if prompt is not None else q)
        if prompt is None:
            flops = decode_flops(m, b * q, context)
            cached = cached_tokens(m, context)
            n_steps, per_read = 1, tokens

            def overhead(layers: int) -> float:
                return eng.step_overhead_s(b, n_gpus, layers, m.is_mla)
        else:
            flops = prefill_flops(m, b, prompt, hit)
            cached = cached_tokens(m, prompt)  # a hit's KV is read where a miss's is written: the same bytes
            n_steps = 1 if not chunk else math.ceil(tokens / chunk)
            per_read = min(tokens, chunk or tokens)

            def overhead(layers: int) -> float:
                return n_steps * eng.prefill_step_overhead_s(b, n_gpus, layers, m.is_mla)
        head_flops = 2 * head_params * (tokens if prompt is None else b)  # logits: every decoded token, a prompt's last
        w_read = weight_bytes_read(m, weights, per_read) * n_steps
        dequant_bytes = 0.0
        if (prompt is not None and eng.prefill_dequantizes_to_fp16 and fmt.gguf and fmt.bits < 16
                and per_read > LLAMA_CPP_MMQ_MAX_BATCH):
            # a prompt batch of more than 32 tokens first writes an FP16 copy of the quantized weights (reading
            # them), then the FP16 GEMM reads that copy: serial, memory-bound work before the matmul (engines.py);
            # smaller batches ran the quantized MMQ kernels. Whole-model bytes: exact for one dense stage; with
            # experts or pipeline stages the split below is approximate
            fp16_read = weight_bytes_read(m, "fp16", per_read) * n_steps
            dequant_bytes, w_read = w_read + fp16_read, fp16_read
        e_read = expert_bytes_read(m, weights, per_read) * n_steps
        dense_read = w_read - e_read - head_bytes * n_steps
        if pp > 1:  # attention FLOPs follow each layer's context (sliding windows): split by layer, the rest by share
            def attention(layers) -> float:
                if prompt is not None:
                    return prefill_attention_flops(m, b, layers, prompt, hit)
                return attention_flops(m, b * q, layers, context, prefill=False)
            linear_flops = flops - head_flops - attention(range(m.num_hidden_layers))
        out = []
        for s, sh in enumerate(shares):
            last = s == pp - 1
            f = (flops - head_flops) * sh["linear"] + (head_flops if last else 0)
            if pp > 1:
                f = linear_flops * sh["linear"] + attention(sh["layers"]) + (head_flops if last else 0)
            kv = b * per_layer_kv * sum(cached[i] for i in sh["layers"]) * tp
            if prompt is None and eng.decode_kv_reads_per_query_head:  # pre-XQA TensorRT-LLM (engines.py)
                kv *= m.num_attention_heads / m.num_key_value_heads
            if prompt is None and eng.decode_copies_kv_cache:  # torch.cat of the whole cache (engines.py)
                kv *= 3
            nbytes = dp * (dense_read * sh["dense"] + (head_bytes * n_steps if last else 0)) + e_read * sh["experts"] + kv
            t, bound = _roofline(f, nbytes, peak if prompt is not None else decode_peak, bandwidth)
            if prompt is None:  # a split-KV decode kernel slower than its KV read
                t += eng.split_kv_decode_beyond_read_s(m, gpu, b, context, len(sh["layers"]), tp, kv / bandwidth)
            t += dequant_bytes * sh["dense"] / bandwidth  # one stage: its share is 1
            n = len(sh["layers"])
            ar = _allreduce_call_s(m, gpu, tokens / dp, tp)
            if ep > tp:
                comm = {"allreduce": ar * (n + n - sh["moe_layers"]),
                        "all_to_all": sh["moe_layers"] * all_to_all_s(m, gpu, tokens, ep, g)}
            else:
                comm = {"allreduce": 2 * n * ar, "all_to_all": 0.0}
            # each stage pays the fixed cost for its own layers where the profile charges it per layer
            out.append((eng.step_time_s(t + comm["allreduce"] + comm["all_to_all"], overhead(n)), bound, f, nbytes, comm))
        return out

    def hand(tokens: float) -> float:
        return (pp - 1) * handoff_s(m, gpu, tokens, gpus=n_gpus) if pp > 1 else 0.0

    def decode(b: int, context: int, n_micro: int, q: int = 1) -> tuple[float, str, list]:
        st = stages(b / n_micro, context, None, q)
        times = [x[0] for x in st]
        cycle = sum(times) + hand(b / n_micro)
        slowest = max(range(pp), key=lambda i: times[i])
        return max(n_micro * times[slowest], cycle), st[slowest][1], st

    def step(b: int, context: int, q: int = 1) -> tuple[float, str, float, float]:
        n_micro = max(1, min(pp, b))
        t, bound, st = decode(b, context, n_micro, q)
        return t, bound, n_micro * sum(x[2] for x in st), n_micro * sum(x[3] for x in st)

    # Prefill: all weights, the prompt's KV written once, 2·params·tokens + attention FLOPs.
    p_st = stages(batch / micro, prompt_len, prompt_len)
    p_times = [x[0] for x in p_st]
    prefill_s = sum(p_times) + hand(batch / micro * (prompt_len - cached_prompt_tokens)) + (micro - 1) * max(p_times)
    prefill_bound = p_st[max(range(pp), key=lambda i: p_times[i])][1]
    p_flops, p_bytes = micro * sum(x[2] for x in p_st), micro * sum(x[3] for x in p_st)
    p_bubble = 1 - micro * sum(p_times) / (pp * prefill_s) if pp > 1 else 0.0

    mean_context = round(prompt_len + output_len / 2)
    tpot, bound, d_flops, d_bytes = step(batch, mean_context)
    weights_read = weight_bytes_read(m, weights, batch)
    v_s, v_bound, v_flops, v_bytes = step(batch, mean_context, verify_tokens)
    single, _, single_st = decode(batch, mean_context, 1)
    d_st = decode(batch, mean_context, micro)[2]
    request_latency = (eng.request_latency_for(m.num_hidden_layers, m.is_mla)  # a request passes every layer
                       if request_latency_s is None else request_latency_s)
    ttft = prefill_s + eng.ttft_decode_steps * step(batch, prompt_len)[0] + request_latency
    e2e = ttft + (output_len - 1) * tpot

    ridge = stage_peak / gpu.memory_bandwidth_bytes_per_s
    curve = []
    for b in curve_batches:
        t, bnd, _, _ = step(b, mean_context)
        curve.append({"batch": b, "tpot_s": t, "decode_tok_per_s": b / t, "bound": bnd})
    report = {
        "gpus": n_gpus,
        "pp": pp,
        "ep": ep,
        "attention_replicas": dp,
        "compute_dtype": dtype,
        "peak_flops": stage_peak * n_gpus,
        "effective_flops": peak * pp,
        "effective_bandwidth_bytes_per_s": bandwidth * pp,
        "memory_efficiency": mem_eff,
        "compute_efficiency": comp_eff,  # a prompt's; a decode step's may differ in a calibration variant (engines.py)
        "prefill_flops": p_flops,
        "prefill_bytes": p_bytes,
        "prefill_s": prefill_s,
        "prefill_bound": prefill_bound,
        # per micro-batch
        "prefill_chunks": 1 if not chunk else math.ceil(batch / micro * (prompt_len - cached_prompt_tokens) / chunk),
        "ttft_s": ttft,
        "request_latency_s": request_latency,
        "decode_flops_per_step": d_flops,
        "decode_bytes_per_step": d_bytes,
        # the weight part of one decode step of `batch` tokens, and (MoE) the share of routed experts they touch
        "decode_weight_bytes_per_step": weights_read,
        "decode_weight_bytes_per_token": weights_read / batch,
        "experts_touched_fraction": experts_touched_fraction(m, batch),
        "tpot_s": tpot,
        "bound": bound,
        "decode_tok_per_s": batch / tpot,
        "decode_tok_per_s_per_request": 1 / tpot,
        "e2e_s": e2e,
        "throughput_tok_per_s": batch * output_len / e2e,
        "allreduce_s_per_step": sum(x[4]["allreduce"] for x in single_st),
        "all_to_all_s_per_step": sum(x[4]["all_to_all"] for x in single_st),
        "pipeline_handoff_s_per_step": hand(batch),
        "comm_latency_s_per_call": ALLREDUCE_LATENCY_S,
        "micro_batches": micro,
        "tpot_single_batch_s": single,
        "prefill_pipeline_bubble": p_bubble,
        "decode_pipeline_bubble": 1 - micro * sum(x[0] for x in d_st) / (pp * tpot) if pp > 1 else 0.0,
        "ridge_flops_per_byte": ridge,
        "ridge_flops_per_byte_effective": decode_peak / bandwidth,  # where a decode step turns compute-bound
        "critical_batch": critical_batch(step, mean_context),
        "verify_tokens": verify_tokens,
        "verify_step_s": v_s,
        "verify_bound": v_bound,
        "verify_flops_per_step": v_flops,
        "verify_bytes_per_step": v_bytes,
        "verify_to_plain_ratio": v_s / tpot,
        "verify_critical_batch": critical_batch(lambda b, c: step(b, c, verify_tokens), mean_context),
        # the textbook estimate, KV left out: calc's own step at an empty context (micro-batches, attention
        # replicas and the experts a batch touches included), the batch where its FLOPs reach the ridge
        "critical_batch_weights_only": balance_batch(lambda b: step(b, 0)[1] == "compute"),
        "throughput_curve": curve,
    }
    return {"report": report, "step_overhead_s": eng.step_overhead_s(batch / micro, n_gpus, layers_per_stage, m.is_mla)}


def attention_flops(m: ModelSpec, b: float, layers, length: int, prefill: bool) -> float:
    """Attention FLOPs of ``layers`` for ``b`` sequences: a decode step at context ``length`` (one new token per
    sequence), or a causal prefill of ``length`` tokens (see decode_flops and prefill_flops). QKᵀ and PV cost
    2·heads·(d_qk + d_v) per scored (query, key) pair; MLA decodes in the absorbed form."""
    if not prefill:
        if m.is_mla:
            per_key = 2 * m.num_attention_heads * (2 * m.kv_lora_rank + m.qk_rope_head_dim)
        else:
            per_key = 2 * m.num_attention_heads * (m.qk_head_dim + m.v_dim)
        cached = cached_tokens(m, length)
        return b * per_key * sum(cached[i] for i in layers)
    per_pair = 2 * m.num_attention_heads * (m.qk_head_dim + m.v_dim)
    return b * per_pair * sum(_attention_pairs(length, m.layer_windows[i]) for i in layers)


def critical_batch(step, context: int, limit: int = 1 << 16) -> int | None:
    """Smallest batch at which a decode step turns compute-bound (None if not below ``limit``).

    Ignoring the KV cache (perf_report's critical_batch_weights_only) this is, for a dense model on one pipeline
    stage, about ridge × bytes_per_weight / 2: each weight byte read serves 2·batch/bytes FLOPs (with pp stages each
    micro-batch re-reads its stage's weights, so about pp times that). The KV reads grow with the batch
    as fast as the attention FLOPs do, so at long contexts the step can stay memory-bound at any batch; then there is
    no critical batch.
    """
    if step(limit, context)[1] != "compute":
        return None
    lo, hi = 1, limit
    if step(lo, context)[1] == "compute":
        return 1
    while hi - lo > 1:  # memory-bound at lo, compute-bound at hi
        mid = (lo + hi) // 2
        if step(mid, context)[1] == "compute":
            hi = mid
        else:
            lo = mid
    return hi
