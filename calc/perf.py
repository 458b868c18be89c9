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

from .memory import ACTIVATION_BYTES, WEIGHT_FORMATS, cached_tokens, kv_bytes_per_token_layer, weights_bytes
from .model import ModelSpec, matmul_params_per_token, param_counts
from .registry import GPU

MEMORY_EFFICIENCY = 2957.5e9 / 3.35e12  # 0.883
COMPUTE_EFFICIENCY = 755.4e12 / 989.5e12  # 0.763
ALLREDUCE_LATENCY_S = 10e-6  # per all-reduce call; an assumed NCCL small-message latency, not measured here


def compute_dtype(fmt: str, gpu: GPU) -> str:
    """The dtype the matmuls run in. W4A16 formats dequantize to 16 bits; formats whose tensor-core dtype
    the GPU lacks (FP8 on Ampere, FP4 before Blackwell) fall back to 16-bit math (weight-only kernels)."""
    dtype = WEIGHT_FORMATS[fmt].compute_dtype
    return dtype if gpu.peak_flops(dtype) else "bf16"


def _attention_pairs(context: int, window: int | None) -> float:
    """(query, key) pairs a causal pass over ``context`` tokens scores in one layer (window: sliding)."""
    if window is None or window >= context:
        return context * (context + 1) / 2
    return window * (window + 1) / 2 + (context - window) * window


def prefill_flops(m: ModelSpec, batch: int, prompt_len: int) -> float:
    """2 FLOPs per weight per token, plus attention: QKᵀ and PV cost 2·heads·(d_qk + d_v) per scored pair."""
    linear = 2 * matmul_params_per_token(m) * batch * prompt_len
    per_pair = 2 * m.num_attention_heads * (m.qk_head_dim + m.v_dim)
    attention = batch * per_pair * sum(_attention_pairs(prompt_len, w) for w in m.layer_windows)
    return linear + attention


def decode_flops(m: ModelSpec, batch: int, context: int) -> float:
    """FLOPs of one decode step: ``batch`` new tokens, each attending over ``context`` cached tokens.

    MLA decodes in the 'absorbed' form serving engines use: scores and values are computed against the cached
    latent directly, so a head costs (kv_lora_rank + rope) + kv_lora_rank per cached token.
    """
    if m.is_mla:
        per_key = 2 * m.num_attention_heads * (2 * m.kv_lora_rank + m.qk_rope_head_dim)
    else:
        per_key = 2 * m.num_attention_heads * (m.qk_head_dim + m.v_dim)
    attention = batch * per_key * sum(cached_tokens(m, context))
    return 2 * matmul_params_per_token(m) * batch + attention


def experts_touched_fraction(m: ModelSpec, tokens: int) -> float:
    """Expected share of a layer's routed experts that ``tokens`` tokens touch, with uniform routing:
    1 - (1 - k/E)^tokens. One token reads k of E experts; a large batch reads nearly all of them."""
    if not m.is_moe:
        return 1.0
    return 1.0 - (1.0 - m.num_experts_per_tok / m.num_experts) ** tokens


def weight_bytes_read(m: ModelSpec, fmt: str, tokens: int) -> float:
    """Weight bytes one step streams from memory for ``tokens`` tokens (whole model, all GPUs together).

    Every matrix is read once per step, except: the input embedding is a lookup of ``tokens`` rows (unless tied:
    then it is also lm_head and read whole), and a MoE layer reads only the experts its tokens were routed to.
    """
    total = weights_bytes(m, fmt)
    c = param_counts(m)
    bytes_per_param = total / c["total"]
    if not m.tie_word_embeddings:
        # embeddings stay 16-bit except in GGUF files, where the average bytes per weight is close enough
        emb_bytes = bytes_per_param if WEIGHT_FORMATS[fmt].gguf else 2
        total -= (c["embedding"] - min(tokens, m.vocab_size) * m.hidden_size) * emb_bytes
    expert_bytes = c["expert_linear"] * bytes_per_param
    return total - expert_bytes * (1.0 - experts_touched_fraction(m, tokens))


def kv_bytes_read(m: ModelSpec, kv_dtype: str, batch: int, context: int, tp: int = 1) -> float:
    """KV bytes one decode step reads on one GPU: every cached token of every layer, for each sequence."""
    return batch * kv_bytes_per_token_layer(m, kv_dtype, tp) * sum(cached_tokens(m, context))


def allreduce_s(m: ModelSpec, gpu: GPU, tokens: int, tp: int, latency_s: float = ALLREDUCE_LATENCY_S) -> float:
    """Tensor parallelism all-reduces the hidden state twice per layer (after attention and after the MLP).

    A ring all-reduce moves 2·(tp-1)/tp of the message over each GPU's link in one direction; datasheets quote
    GPU-to-GPU bandwidth for both directions together, hence the / 2. No overlap with compute is assumed.
    """
    if tp == 1:
        return 0.0
    message = tokens * m.hidden_size * ACTIVATION_BYTES
    link = (gpu.interconnect_bytes_per_s or 0) / 2
    if link <= 0:
        raise ValueError(f"{gpu.key} has no GPU-to-GPU bandwidth in the registry; tensor parallelism needs one")
    per_call = latency_s + 2 * (tp - 1) / tp * message / link
    return 2 * m.num_hidden_layers * per_call


def _roofline(flops: float, nbytes: float, peak: float, bandwidth: float) -> tuple[float, str]:
    t_compute, t_memory = flops / peak, nbytes / bandwidth
    return (t_compute, "compute") if t_compute > t_memory else (t_memory, "memory")


def perf_report(
    m: ModelSpec,
    gpu: GPU,
    weights: str = "bf16",
    kv_dtype: str = "bf16",
    batch: int = 1,
    prompt_len: int = 1024,
    output_len: int = 256,
    tp: int = 1,
    memory_efficiency: float = MEMORY_EFFICIENCY,
    compute_efficiency: float = COMPUTE_EFFICIENCY,
    curve_batches: tuple = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512),
) -> dict:
    """Latency and throughput of a static batch: ``batch`` requests prefilled together, then decoded together.

    TTFT = prefill time. TPOT = one decode step at the mean context (prompt + output/2); step time is linear in
    context, so this is the average over the generation. E2E = TTFT + (output - 1) × TPOT (the first token
    comes out of the prefill). All figures are per tensor-parallel group of ``tp`` GPUs.
    """
    dtype = compute_dtype(weights, gpu)
    peak = gpu.peak_flops(dtype) * compute_efficiency * tp
    bandwidth = gpu.memory_bandwidth_bytes_per_s * memory_efficiency * tp

    def step(b: int, context: int) -> tuple[float, str, float, float]:
        flops = decode_flops(m, b, context)
        nbytes = weight_bytes_read(m, weights, b) + kv_bytes_read(m, kv_dtype, b, context, tp) * tp
        t, bound = _roofline(flops, nbytes, peak, bandwidth)
        return t + allreduce_s(m, gpu, b, tp), bound, flops, nbytes

    # Prefill: all weights, the prompt's KV written once, 2·params·tokens + attention FLOPs.
    tokens = batch * prompt_len
    p_flops = prefill_flops(m, batch, prompt_len)
    p_bytes = weight_bytes_read(m, weights, tokens) + kv_bytes_read(m, kv_dtype, batch, prompt_len, tp) * tp
    prefill_s, prefill_bound = _roofline(p_flops, p_bytes, peak, bandwidth)
    prefill_s += allreduce_s(m, gpu, tokens, tp)

    mean_context = prompt_len + output_len / 2
    tpot, bound, d_flops, d_bytes = step(batch, round(mean_context))
    e2e = prefill_s + (output_len - 1) * tpot

    ridge = gpu.peak_flops(dtype) / gpu.memory_bandwidth_bytes_per_s
    curve = []
    for b in curve_batches:
        t, bnd, _, _ = step(b, round(mean_context))
        curve.append({"batch": b, "tpot_s": t, "decode_tok_per_s": b / t, "bound": bnd})
    return {
        "compute_dtype": dtype,
        "peak_flops": gpu.peak_flops(dtype) * tp,
        "effective_flops": peak,
        "effective_bandwidth_bytes_per_s": bandwidth,
        "memory_efficiency": memory_efficiency,
        "compute_efficiency": compute_efficiency,
        "prefill_flops": p_flops,
        "prefill_bytes": p_bytes,
        "prefill_s": prefill_s,
        "prefill_bound": prefill_bound,
        "ttft_s": prefill_s,
        "decode_flops_per_step": d_flops,
        "decode_bytes_per_step": d_bytes,
        # the weight part of one decode step of `batch` tokens, and (MoE) the share of routed experts they touch
        "decode_weight_bytes_per_step": weight_bytes_read(m, weights, batch),
        "experts_touched_fraction": experts_touched_fraction(m, batch),
        "tpot_s": tpot,
        "bound": bound,
        "decode_tok_per_s": batch / tpot,
        "decode_tok_per_s_per_request": 1 / tpot,
        "e2e_s": e2e,
        "throughput_tok_per_s": batch * output_len / e2e,
        "allreduce_s_per_step": allreduce_s(m, gpu, batch, tp),
        "ridge_flops_per_byte": ridge,
        "ridge_flops_per_byte_effective": peak / bandwidth,
        "critical_batch": critical_batch(step, round(mean_context)),
        # the textbook estimate without KV traffic: FLOPs per weight byte reach the (effective) ridge
        "critical_batch_weights_only": peak / bandwidth * weights_bytes(m, weights) / param_counts(m)["total"] / 2,
        "throughput_curve": curve,
    }


def critical_batch(step, context: int, limit: int = 1 << 16) -> int | None:
    """Smallest batch at which a decode step turns compute-bound (None if not below ``limit``).

    Ignoring the KV cache this is ≈ ridge × bytes_per_weight / 2: each weight byte read serves 2·batch/bytes
    FLOPs. The KV reads grow with the batch as fast as the attention FLOPs do, so at long contexts the step
    can stay memory-bound at any batch; then there is no critical batch.
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
