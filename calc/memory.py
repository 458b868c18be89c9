"""GPU memory: weights by format, KV cache, the activation peak of a forward pass, runtime overhead, and the
KV-cache budget of a serving engine that follows vLLM's rules.

All byte counts are exact integers where the inputs allow; "per GPU" figures account for tensor parallelism.
"""

from __future__ import annotations

import math

from . import engines as engines_mod
from .model import ModelSpec, _attention_params, param_counts, unquantized_linear_params
from .strings import t
from .units import GiB, format_number


class WeightFormat:
    """How one weight is stored. ``bits`` includes the format's scale/zero-point overhead, per weight;
    ``compute_dtype`` is the tensor-core dtype the matmuls run in (bf16, fp16, fp8, int8 or fp4); ``gguf``:
    a llama.cpp GGUF recipe, where embeddings and lm_head are quantized too and norms stay fp32."""

    def __init__(self, bits: float, compute_dtype: str, label: str, gguf: bool = False, experts_only: bool = False):
        self.bits, self.compute_dtype, self.label, self.gguf = bits, compute_dtype, label, gguf
        self.experts_only = experts_only  # only the routed experts use this format; the rest stays 16-bit


# llama.cpp's K-quant block sizes (ggml-common.h), which the GGUF recipes below mix
_Q4_K_BITS = 144 * 8 / 256  # Q4_K: 256-weight super-block = 128 B of 4-bit quants + 12 B scales/mins + 4 B
_Q6_K_BITS = 210 * 8 / 256  # Q6_K: 256-weight super-block = 192 B of 6-bit quants + 16 B scales + 2 B

# Policy for embeddings and lm_head: the non-GGUF quantized formats (fp8, int8, int4, nf4, mxfp4, nvfp4)
# quantize the linear layers inside the transformer blocks and keep the input embedding, lm_head, norms,
# biases and MoE routers in 16 bits, as vLLM, AutoAWQ, GPTQ and bitsandbytes checkpoints do by default.
# GGUF files quantize the embedding and output matrices too (llama.cpp's recipes, see _gguf_bytes).
WEIGHT_FORMATS = {
    "bf16": WeightFormat(16, "bf16", "BF16"),
    "fp16": WeightFormat(16, "fp16", "FP16"),
    # FP8 E4M3 with per-tensor or per-channel scales: the scales are < 0.01 % of the bytes and left out.
    "fp8": WeightFormat(8, "fp8", "FP8 (W8A8)"),
    "int8": WeightFormat(8, "int8", "INT8 (W8A8, per-channel scales)"),
    # GPTQ/AWQ group-wise INT4, group size 128: one fp16 scale and one packed 4-bit zero point per group.
    "int4": WeightFormat(4 + (16 + 4) / 128, "bf16", "INT4 group-wise g128 (W4A16, GPTQ/AWQ)"),
    # bitsandbytes NF4, blocksize 64 with one fp32 absmax per block (the default, without double quant).
    "nf4": WeightFormat(4 + 32 / 64, "bf16", "NF4 (bitsandbytes, blocksize 64)"),
    # GGUF Q8_0: blocks of 32 int8 weights plus one fp16 scale = 34 bytes per 32 weights.
    "q8_0": WeightFormat(34 * 8 / 32, "bf16", "GGUF Q8_0", gguf=True),
    # GGUF Q4_0: blocks of 32 4-bit weights plus one fp16 scale = 18 bytes per 32 weights (output.weight Q6_K,
    # see _gguf_bytes). The format of llama.cpp's own benchmarks ("llama 8B Q4_0").
    "q4_0": WeightFormat(18 * 8 / 32, "bf16", "GGUF Q4_0", gguf=True),
    # GGUF Q4_K_M: a mix of Q4_K and Q6_K tensors (see _gguf_bytes); its nominal bits are Q4_K's, the bulk.
    "q4_k_m": WeightFormat(_Q4_K_BITS, "bf16", "GGUF Q4_K_M", gguf=True),
    # OCP Microscaling MXFP4: blocks of 32 FP4 (E2M1) values share one 8-bit power-of-two scale.
    "mxfp4": WeightFormat(4 + 8 / 32, "fp4", "MXFP4 (OCP MX, block 32)"),
    # NVIDIA NVFP4: blocks of 16 FP4 values share one FP8 (E4M3) scale (+ one fp32 per tensor, negligible).
    "nvfp4": WeightFormat(4 + 8 / 16, "fp4", "NVFP4 (block 16)"),
    # gpt-oss as OpenAI publishes it: quantization_config {"quant_method": "mxfp4", "modules_to_not_convert":
    # [self_attn, router, embed_tokens, lm_head]}: the routed experts in MXFP4, everything else BF16. On GPUs
    # without FP4 tensor cores (before Blackwell) engines dequantize the experts to 16 bits (W4A16).
    "mxfp4-experts": WeightFormat(4 + 8 / 32, "bf16", "MXFP4 experts + BF16 rest (gpt-oss checkpoint)",
                                  experts_only=True),
}

# KV-cache element sizes. fp8 / int8 caches keep per-tensor scales whose size is negligible.
KV_DTYPES = {"bf16": 2, "fp16": 2, "fp8": 1, "int8": 1, "fp32": 4}

ACTIVATION_BYTES = 2  # bf16/fp16 activations

# Runtime overhead outside the PyTorch allocator: CUDA context and kernels (~0.5 GiB with lazy loading),
# cuBLAS/NCCL workspaces and allocator slack. An assumption, not a measurement: override it per run.
DEFAULT_OVERHEAD_BYTES = 1 * GiB

# vLLM defaults (vllm/config/cache.py: CacheConfig.DEFAULT_BLOCK_SIZE, gpu_memory_utilization; SchedulerConfig).
# gpu_memory_utilization: 0.92 in vllm-project/vllm at commit 002f10e0 (2026), applied to what CUDA reports as
# the GPU's total memory; the engine profile (data/engines.json) carries it with its source.
VLLM_BLOCK_SIZE = 16
VLLM_GPU_MEMORY_UTILIZATION = 0.92
VLLM_MAX_NUM_BATCHED_TOKENS = 8192
# max_num_seqs: vLLM 0.32's API-server default on A100s and GPUs under 70 GiB (1,024 on larger ones,
# EngineArgs.get_batch_defaults); calc's default on every GPU (the planner and the calculators)
VLLM_MAX_NUM_SEQS = 256


def vllm_max_num_batched_tokens(gpu) -> int:
    """The max_num_batched_tokens `vllm serve` picks for a GPU when it is not set: vLLM 0.32's
    EngineArgs.get_batch_defaults for the OpenAI-compatible server, by the GPU's total memory in GiB and its device name:
    16384 from 160 GiB; 8192 from 70 GiB on GPUs other than A100s (a large token budget lowers A100 throughput, PR
    #17885); 2048 otherwise. vLLM reads NVML's total (79.65 GiB on an H100), calc the registry's CUDA-visible one (79.18);
    no registry GPU sits near a threshold, so both give the same tier. Not modelled: `--performance-mode throughput`
    doubles the default, and without chunked prefill vLLM raises it to max_model_len (the planner does that itself)."""
    total = gpu.visible_memory_bytes or gpu.memory_bytes
    if total >= 160 * GiB:
        return 16384
    if total >= 70 * GiB and "a100" not in gpu.name.lower():
        return 8192
    return 2048


def vllm_max_num_seqs(gpu) -> int:
    """The max_num_seqs `vllm serve` picks for a GPU when it is not set, the most sequences it runs at once: 1024 from
    70 GiB on GPUs other than A100s, 256 otherwise (EngineArgs.get_batch_defaults for the OpenAI-compatible server, read
    in vLLM 0.22.1's and 0.32.0's vllm/engine/arg_utils.py; 0.32.0's tier from 160 GiB, for any device name, keeps 1024).
    `--performance-mode throughput` doubles it; not modelled."""
    total = gpu.visible_memory_bytes or gpu.memory_bytes
    return 1024 if total >= 70 * GiB and "a100" not in gpu.name.lower() else 256


def sglang_max_running_requests(tokens_in_cache: int, context_len: int) -> int:
    """The most requests SGLang runs at once per attention data-parallel worker when --max-running-requests is not
    set: its KV pool's tokens over the model's context length × 512, kept between 2,048 and 4,096, and at most half the
    pool's tokens (model_runner init_memory_pool and max_running_requests in 0.5.8; kv_cache_configurator
    resolve_max_num_reqs in 0.5.23). ``tokens_in_cache``: the (full) pool's tokens, ``context_len``: the context
    length SGLang serves (the model's, or --context-length)."""
    estimated = min(max(int(tokens_in_cache / context_len * 512), 2048), 4096)
    return min(estimated, tokens_in_cache // 2)


# Which release's heuristic sets SGLang's default mem_fraction_static (data/engines.json kv_budget ``fraction_rule``):
# "0.5.8" (0.5.8 and 0.5.9, and the releases since the formula came in, 2025-09), "0.5.10" (a reserve for prefill CUDA
# graphs, on by default from 0.5.10: exact for 0.5.10 to 0.5.14; 0.5.15 to 0.5.19 differ for MLA models, pipeline
# parallelism and DP attention, see sglang_mem_fraction_static) and "0.5.20" (from 0.5.20: new defaults for GPUs of 20
# to 35 GiB). Read in the wheels' server_args.py (0.5.8 to 0.5.18) and arg_groups/memory_hook.py (0.5.19 to 0.5.23).
SGLANG_FRACTION_RULES = ("0.5.8", "0.5.10", "0.5.20")


def _sglang_small_gpu_defaults(rule: str) -> tuple[int, int, int]:
    """SGLang's chunked_prefill_size and CUDA-graph batch limit (below TP 4, from TP 4) on GPUs of 20 to 35 GiB (the A10,
    L4, RTX 4090 and 5090): 2,048 and 24 / 80 up to 0.5.19, 4,096 and 48 / 160 from 0.5.20."""
    return (4096, 48, 160) if rule == "0.5.20" else (2048, 24, 80)


def sglang_prefill_graph_sizes(max_tokens: int) -> list[int]:
    """The token counts SGLang captures prefill CUDA graphs for, up to ``max_tokens`` (its chunked_prefill_size):
    4 to 32 by 4, 48 to 256 by 16, 288 to 512 by 32, 576 to 1,024 by 64, 1,280 to 4,096 by 256, then by 512
    (generate_prefill_cuda_graph_batch_sizes, 0.5.9 to 0.5.23)."""
    sizes = (list(range(4, 33, 4)) + list(range(48, 257, 16)) + list(range(288, 513, 32)) + list(range(576, 1025, 64))
             + list(range(1280, 4097, 256)) + list(range(4608, max_tokens + 1, 512)))
    return [n for n in sizes if n <= max_tokens]


def sglang_mem_fraction_static(gpu_memory_bytes: int, tp: int, pp: int, chunk: int, dp: int = 1, *,
                               rule: str = "0.5.20", mla: bool = False, amd: bool = False) -> float:
    """The mem_fraction_static SGLang picks when it is not set (handle_gpu_memory_settings): it reserves, in MiB,
    512 + 1.5 × max(chunked_prefill_size, 2,048) for activations + 2 × cuda_graph_max_bs for decode CUDA graphs +
    tp × pp / 8 × 1,024 for large parallel sizes (+ 3 × cuda_graph_max_bs per attention data-parallel worker, 1.5 more
    above 300, with DP attention), and from 0.5.10 (``rule`` "0.5.10", "0.5.20") the prefill CUDA graphs it captures
    by default: 8 MiB per captured size up to the chunk (sglang_prefill_graph_sizes), 1,536 with MLA. At least 10 GiB
    on GPUs over 60 GiB; it keeps the rest: round((memory − reserved) / memory, 3). cuda_graph_max_bs goes by the GPU's
    memory: 8 under 20 GiB, 24 (80 from TP 4) under 35 GiB (48 and 160 from 0.5.20), 32 (160) under 60 GiB, 256 (512)
    under 160 GiB, else 512.

    No prefill graphs, so no reserve, where SGLang turns them off before the heuristic runs: with pipeline parallelism
    (0.5.10 to 0.5.14 and 0.5.19 on; 0.5.15 to 0.5.18 reserved them), on AMD GPUs (``amd``), and with DP attention up to 0.5.16 (rule
    "0.5.10"; from 0.5.17 it keeps them). 0.5.15 to 0.5.17 turned them off for MLA models (no 1,536 there); on the B200
    SGLang reserves them for DeepSeek-V3/R1 and then turns them off (trtllm_mla), as calc counts them.
    ``gpu_memory_bytes``: what CUDA shows (SGLang reads nvidia-smi's total, a few hundred MiB more); ``tp``: the GPUs of
    a stage; ``chunk``: its chunked_prefill_size (with chunked prefill off, max_prefill_tokens)."""
    if rule not in SGLANG_FRACTION_RULES:
        raise ValueError(f"unknown SGLang fraction rule {rule!r}; valid: {', '.join(SGLANG_FRACTION_RULES)}")
    mib = gpu_memory_bytes / 2**20
    if mib < 20 * 1024:
        max_bs = 8
    elif mib < 35 * 1024:
        _, below, above = _sglang_small_gpu_defaults(rule)
        max_bs = below if tp < 4 else above
    elif mib < 60 * 1024:
        max_bs = 32 if tp < 4 else 160
    elif mib < 160 * 1024:
        max_bs = 256 if tp < 4 else 512
    else:
        max_bs = 512
    reserved = 512 + max(chunk, 2048) * 1.5 + max_bs * 2 + tp * pp / 8 * 1024
    if dp > 1:
        reserved += max_bs * dp * 3 + (max_bs * dp * 1.5 if max_bs > 300 else 0)
    prefill_graphs = rule != "0.5.8" and pp == 1 and not amd and not (rule == "0.5.10" and dp > 1)
    if prefill_graphs:
        reserved += 1536 if mla else len(sglang_prefill_graph_sizes(chunk)) * 8
    if mib > 60 * 1024:
        reserved = max(reserved, 10 * 1024)
    return max(0.0, round((mib - reserved) / mib, 3))


SGLANG_MAX_PREFILL_TOKENS = 16384  # server_args max_prefill_tokens: what a prefill batch holds with chunked prefill off


def sglang_aiter_scales_fraction(m: ModelSpec, compute_capability: str | None, tp: int, context_len: int) -> bool:
    """Whether SGLang multiplies its memory fraction, given or default, by 0.85: on AMD GPUs with its default attention
    backend there, aiter (MHA models; MLA models where each GPU has 16 or 128 heads, else triton), for a context
    length over 8,192 (server_args 0.5.8; arg_groups/attention_hook.py 0.5.23, where an environment variable can
    turn it off for a given fraction)."""
    if compute_capability is None or not compute_capability.startswith("gfx") or context_len <= 8192:
        return False
    return not m.is_mla or m.num_attention_heads // tp in (16, 128)


def sglang_chunked_prefill_size(gpu, rule: str = "0.5.20") -> int:
    """The chunked_prefill_size SGLang picks for a GPU when it is not set (handle_gpu_memory_settings, by the GPU's
    memory in MiB: 2048 below 20 GiB, 4096 below 60 GiB (2048 below 35 GiB up to 0.5.19, ``rule`` "0.5.8" and
    "0.5.10"), 8192 below 160 GiB, 16384 from there, as chapter 7 cites). It is also the most prompt tokens calc lets
    one of SGLang's prompt steps hold (its max_prefill_tokens, 16384 by default, is not modelled apart: where it equals
    the chunk, SGLang stops a batch rather than cutting a new prompt into it, so calc packs those steps slightly
    tighter)."""
    total = gpu.visible_memory_bytes or gpu.memory_bytes
    if total < 20 * GiB:
        return 2048
    if total < 35 * GiB:
        return _sglang_small_gpu_defaults(rule)[0]
    if total < 60 * GiB:
        return 4096
    return 8192 if total < 160 * GiB else 16384


# ----------------------------------------------------------------------------------------------------------
# Weights


def _use_more_bits(i: int, n: int) -> bool:
    """llama.cpp's rule (src/llama-quant.cpp) for which layers get Q6_K in the *_K_M recipes."""
    return i < n // 8 or i >= 7 * n // 8 or (i - n // 8) % 3 == 2


def _gguf_bytes(m: ModelSpec, fmt_name: str) -> float:
    """Bytes of a GGUF file's tensors. Norms and biases are fp32; routers (ffn_gate_inp) fp32 too.

    Q8_0 stores every matrix as Q8_0. Q4_0 stores every matrix as Q4_0 except output.weight (lm_head, or the tied
    embedding), which llama.cpp's quantizer raises to Q6_K (src/llama-quant.cpp: "else if (new_type !=
    GGML_TYPE_Q8_0) new_type = GGML_TYPE_Q6_K" for the output tensor). Q4_K_M stores matrices as Q4_K except: output.weight (lm_head, or the
    tied embedding) as Q6_K, and attn_v / ffn_down as Q6_K in the layers picked by ``_use_more_bits``.
    (llama.cpp has a few model-specific extra rules, e.g. for 70B-class attn_v; they change < 1 %.)
    """
    c = param_counts(m)
    small = 4 * (c["norms"] + c["biases"] + c["router"])
    if fmt_name == "q8_0":
        bits = WEIGHT_FORMATS["q8_0"].bits
        return small + bits / 8 * (c["embedding"] + c["lm_head"] + c["layer_linear"] + c["expert_linear"])
    if fmt_name == "q4_0":
        q4 = WEIGHT_FORMATS["q4_0"].bits * (c["layer_linear"] + c["expert_linear"])
        if m.tie_word_embeddings:  # the embedding doubles as output.weight and is quantized as such
            return small + (q4 + _Q6_K_BITS * c["embedding"]) / 8
        return small + (q4 + WEIGHT_FORMATS["q4_0"].bits * c["embedding"] + _Q6_K_BITS * c["lm_head"]) / 8
    # q4_k_m: each layer's attn_v and ffn_down at Q6_K where _use_more_bits says so, every other matrix Q4_K
    h, n = m.hidden_size, m.num_hidden_layers
    v_per_layer = 0 if m.is_mla else h * m.num_key_value_heads * m.head_dim
    total_bits, v_down_all = 0.0, 0
    for i, moe in enumerate(m.moe_layers):
        down = h * (m.num_experts * m.moe_intermediate_size + m.shared_expert_intermediate_size) if moe \
            else h * m.intermediate_size
        total_bits += (v_per_layer + down) * (_Q6_K_BITS if _use_more_bits(i, n) else _Q4_K_BITS)
        v_down_all += v_per_layer + down
    total_bits += (c["layer_linear"] + c["expert_linear"] - v_down_all) * _Q4_K_BITS
    if m.tie_word_embeddings:  # the embedding doubles as output.weight and is quantized as such
        total_bits += c["embedding"] * _Q6_K_BITS
    else:
        total_bits += c["embedding"] * _Q4_K_BITS + c["lm_head"] * _Q6_K_BITS
    return small + total_bits / 8


def weights_bytes(m: ModelSpec, fmt: str = "bf16") -> int:
    """Bytes to hold all weights (every expert of a MoE) in the given format. See WEIGHT_FORMATS for the policy."""
    f = WEIGHT_FORMATS[fmt]
    if f.gguf:
        return math.ceil(_gguf_bytes(m, fmt))
    c = param_counts(m)
    # a checkpoint's quantization_config may keep some of the quantized modules in 16 bits
    u = unquantized_linear_params(m) if f.bits < 16 else {"layer": 0, "expert": 0}
    quantized = c["expert_linear"] - u["expert"]
    if not f.experts_only:
        quantized += c["layer_linear"] - u["layer"]
    kept_16bit = c["total"] - quantized
    return math.ceil(quantized * f.bits / 8 + kept_16bit * 2)


def weights_bytes_per_gpu(m: ModelSpec, fmt: str, tp: int) -> int:
    """Tensor parallelism splits every matrix (embedding and lm_head vocab-parallel) across ``tp`` GPUs;
    norms are replicated but tiny, so they are split here too (< 0.01 % error)."""
    return math.ceil(weights_bytes(m, fmt) / tp)


def mxfp4_expert_padding(m: ModelSpec, alignment: tuple[int, int] | None, tp: int = 1, ep: int = 1) -> float:
    """How much an engine's MXFP4 MoE kernels grow the routed experts' bytes on one GPU: vLLM rounds the hidden
    size and each GPU's expert width (moe_intermediate_size sliced over tp/ep GPUs, see gpus_per_stage) up to the
    ``alignment`` multiples of the backend it picks, and allocates and loads the padded matrices (weights and
    scales alike). gpt-oss's 2,880 under Marlin (256, 128): 3,072 × 2,944, 9.0 % more expert bytes. 1.0 without
    an alignment. vLLM's expert parallelism holds whole experts (ep ≥ tp); a width that tp/ep does not divide,
    which vLLM refuses, is rounded up. Not modelled: vLLM's plain data parallelism, which spreads the experts
    over dp × tp GPUs, and DeepEP's batched format, which takes Marlin's layout."""
    if alignment is None or not m.is_moe:
        return 1.0
    a_hidden, a_width = alignment
    h = m.hidden_size
    width = -(-m.moe_intermediate_size // max(1, tp // ep))
    return (-(-h // a_hidden) * a_hidden) * (-(-width // a_width) * a_width) / (h * width)


# ----------------------------------------------------------------------------------------------------------
# KV cache


def kv_heads_per_gpu(m: ModelSpec, tp: int) -> int:
    """K/V heads each tensor-parallel rank stores. With tp > num_key_value_heads the heads are replicated
    (vLLM gives every rank at least one), so the per-GPU cache stops shrinking."""
    return max(1, m.num_key_value_heads // tp)


def kv_bytes_per_token_layer(m: ModelSpec, kv_dtype: str, tp: int = 1) -> int:
    """Cache bytes one token adds to one layer on one GPU.

    MHA/GQA/MQA: K and V, each kv_heads × head_dim.  MLA (DeepSeek): one latent vector of kv_lora_rank plus
    the shared RoPE key of qk_rope_head_dim (576 values for V3); it is not split by TP, every rank keeps it.
    """
    elem = KV_DTYPES[kv_dtype]
    if m.is_mla:
        return (m.kv_lora_rank + m.qk_rope_head_dim) * elem
    return 2 * kv_heads_per_gpu(m, tp) * m.head_dim * elem


def kv_bytes_per_token(m: ModelSpec, kv_dtype: str = "bf16", tp: int = 1) -> int:
    """Cache bytes per token summed over all layers, per GPU (tp=1: the whole model).

    This is the growth rate while the context is within every sliding window; past a window, that layer's
    cache stops growing (see kv_cache_bytes)."""
    return m.num_hidden_layers * kv_bytes_per_token_layer(m, kv_dtype, tp)


def cached_tokens(m: ModelSpec, context: int) -> list[int]:
    """Tokens each layer keeps for one sequence of ``context`` tokens (a sliding-window layer keeps its window)."""
    return [context if w is None else min(context, w) for w in m.layer_windows]


def kv_cache_bytes(m: ModelSpec, kv_dtype: str, batch: int, context: int, tp: int = 1) -> int:
    """KV cache of ``batch`` sequences of ``context`` tokens each, per GPU."""
    per_layer = kv_bytes_per_token_layer(m, kv_dtype, tp)
    return batch * per_layer * sum(cached_tokens(m, context))


def vllm_kv_groups(windows: list) -> tuple[int, list]:
    """vLLM's KV cache groups for layers with these attention windows (None: full attention), as its hybrid KV cache
    manager forms them (v1/core/kv_cache_utils.py, _get_kv_cache_groups_uniform_page_size): layers bucketed by
    window; every group holds the same number of layers, the smallest bucket's (the largest's where that is under
    1.5 times the smallest), a bucket's last group padded; a bucket's layers go round-robin into its groups.
    Returns (layers per group, [(window, [layer indices]) per group]). One window for every layer: one group of all
    the layers. gpt-oss (18 windowed, 18 full, alternating): (18, [(128, [0, 2, ...]), (None, [1, 3, ...])])."""
    buckets: dict = {}
    for i, w in enumerate(windows):
        buckets.setdefault(w, []).append(i)
    lo, hi = min(len(v) for v in buckets.values()), max(len(v) for v in buckets.values())
    size = hi if hi < 1.5 * lo else lo
    groups = []
    for w, layers in buckets.items():
        n = -(-len(layers) // size)
        groups += [(w, layers[j::n]) for j in range(n)]
    return size, groups


def vllm_blocks_per_request(windows: list, tokens: int, block_size: int, in_flight: int, bound: bool = False) -> int:
    """KV blocks a request of ``tokens`` tokens holds, summed over vLLM's KV cache groups (``windows``: each group's
    attention window, None for full attention): a full-attention group one per ``block_size`` tokens; a sliding-window
    group no more than the window and the tokens in flight need, window − 1 + ``in_flight`` tokens plus one block for a
    window that starts mid-block (v1/kv_cache_interface.py, SlidingWindowSpec.max_admission_blocks_per_request), and
    never more than the request's own blocks. ``bound``: vLLM's start-up bound (max_memory_usage_bytes), which
    keeps that extra block even for a request shorter than the window (it sets the logged concurrency)."""
    b = -(-tokens // block_size)
    total = 0
    for w in windows:
        if w is None:
            total += b
        else:
            cap = -(-min(w - 1 + in_flight, tokens) // block_size) + 1
            total += cap if bound else min(b, cap)
    return total


def sglang_hybrid_swa(kv_budget: dict, m: ModelSpec, compute_capability: str | None) -> dict | None:
    """SGLang's hybrid SWA pool settings (data/engines.json kv_budget ``hybrid_swa``) where they apply to this model on
    this GPU, else None. SGLang gives the sliding-window layers of the models on its list (here gpt-oss) a pool of
    their own, ``swa_full_tokens_ratio`` × the full pool's tokens; where the pool is off (SGLang before 0.5.8; 0.5.8-0.5.9
    on compute capability 10.x, whose default trtllm_mha backend lacked it) every layer is sized at full length."""
    swa = kv_budget.get("hybrid_swa")
    if not swa or m.model_type not in swa["model_types"] or not m.sliding_window_layers:
        return None
    if _cc_major(compute_capability) in swa.get("off_compute_capability_majors", ()):
        return None
    return swa


def _cc_major(compute_capability: str | None) -> str | None:
    """"10.0" -> "10" (SGLang's checks go by the major version); "gfx942" stays itself."""
    return None if compute_capability is None else compute_capability.split(".")[0]


def engine_block_size(kvb: dict, m: ModelSpec, compute_capability: str | None, kv_dtype: str | None = None,
                      given: int | None = None) -> int:
    """The tokens per KV block (page) an engine's KV budget rule ``kvb`` uses by default for model ``m`` on a GPU of
    ``compute_capability`` with a KV cache of ``kv_dtype``: kv_budget ``block_tokens``, {"default": n, <compute-capability
    major>: n, "mla": {...}, "mla_fp8_kv": {...}}, the "mla" entries (same keys) taking precedence for MLA models and
    "mla_fp8_kv" for MLA models with an FP8 KV cache (``kv_dtype`` "fp8"; vLLM's MLA backends take no int8 KV cache); 16, vLLM's old default, where the rule gives none. The engines
    pick it by their default attention backend, which depends on the GPU, the model and the KV dtype (vLLM 0.32 sets it
    after loading the model, SGLang from its arguments and the model, TensorRT-LLM when it builds its executor); a block
    is what a request's KV is counted in, so a request of n tokens holds ceil(n / block) of them. A block size ``given``
    is used as given, unless the rule's ``allowed`` sizes for this GPU (and MLA) leave it out: the engine then replaces
    it with its default (SGLang's B200 backends turn a page of 1 into 64)."""
    spec = kvb.get("block_tokens") or {}
    major = _cc_major(compute_capability)
    size = spec.get(major, spec.get("default", VLLM_BLOCK_SIZE))
    if m.is_mla and "mla" in spec:
        size = spec["mla"].get(major, spec["mla"].get("default", size))
    if m.is_mla and kv_dtype == "fp8" and "mla_fp8_kv" in spec:
        size = spec["mla_fp8_kv"].get(major, size)
    if given is None:
        return int(size)
    allowed = spec.get("allowed") or {}
    sizes = (allowed.get("mla") or {}).get(major) if m.is_mla else None
    sizes = sizes if sizes is not None else allowed.get(major)
    return int(given) if sizes is None or given in sizes else int(size)


def sglang_swa_tokens_per_request(swa: dict, prompt: int, output: int, window: int, chunk: int, page: int) -> int:
    """Slots a running request holds in SGLang's sliding-window pool, by its radix cache (on by default): the part of
    its prompt that stays locked there while it runs (``prompt_held``: from 0.5.18 the prompt's last window; through
    0.5.15 the radix-tree nodes locked from the last back until they cover a window, the prompt inserted one prefill
    ``chunk`` at a time: its last chunk, and the one before where that is shorter than the window), the tokens it has
    decoded until they leave the window (at most the window, the ``eviction_interval_tokens`` between evictions and a
    page) and the page for the next decode. ``page``: the tokens per page of the full pool (engine_block_size, or the
    block size given), which the window pool shares (64 where trtllm_mha is the default backend, else 1)."""
    if swa["prompt_held"] == "chunk":
        last = (prompt - 1) % chunk + 1 if prompt else 0
        held = last if last >= window or prompt <= chunk else last + chunk
    else:
        held = min(prompt, window)
    return held + min(output, window + swa["eviction_interval_tokens"] + page) + page


# ----------------------------------------------------------------------------------------------------------
# Activations


def activation_bytes_per_token(m: ModelSpec, tp: int = 1) -> float:
    """Transient bytes per token at the peak of a plain PyTorch (Hugging Face transformers) forward pass.

    The peak sits in the MLP: gate(x), up(x), act(gate) and act(gate)·up are alive together, four tensors of
    ``intermediate_size`` each. Calibrated on the H100 reference (tests/data): Llama-3.2-1B over 65,536
    tokens peaks 4.312 GB above weights + KV; 4 × 8192 × 2 B × 65,536 = 4.295 GB (-0.4 %).
    MoE layers (an estimate, not calibrated): the routed tokens of the top-k experts, 4 × moe width × k, plus
    any shared expert. Column-parallel TP splits the intermediate width across ranks.
    """
    widths = []
    if not all(m.moe_layers):
        widths.append(m.intermediate_size)
    if any(m.moe_layers):
        widths.append(m.moe_intermediate_size * m.num_experts_per_tok + m.shared_expert_intermediate_size)
    return 4 * max(widths) * ACTIVATION_BYTES / tp


def activation_peak_bytes(m: ModelSpec, tokens: int, tp: int = 1) -> int:
    """Peak transient memory of one forward pass over ``tokens`` (= batch × prompt) tokens, per GPU, with no
    chunking (the whole prompt in one pass; logits only for the last position, as generate() does)."""
    return math.ceil(tokens * activation_bytes_per_token(m, tp))


def vllm_sampler_warmup_bytes(m: ModelSpec, max_num_seqs: int, max_num_batched_tokens: int,
                              bytes_per_logit: float, tp: int = 1) -> int:
    """Peak memory of vLLM's sampler warm-up in its profiling run, per GPU (the model runner's _dummy_sampler_run).
    The forward pass over ``max_num_batched_tokens`` tokens has returned by then, its activations freed but its output
    hidden states held; the logits of min(``max_num_seqs``, ``max_num_batched_tokens``) dummy requests are computed and
    sampled, holding ``bytes_per_logit`` per request × vocabulary entry (engines.json kv_budget.sampler_bytes_per_logit:
    a count of what that path allocates). On CUDA vLLM all-gathers the logits, so every tensor-parallel rank holds the
    whole vocabulary and samples (TP does not divide this), and at TP > 1 the gather itself briefly holds this rank's
    shard, the gathered buffer and its reshaped copy (base_device_communicator.all_gather): 2 + 1/tp activation-sized
    values, 4 + 2/tp bytes, per entry, which sets the peak where the sampler holds less. The profiling peak vLLM measures
    is the larger of this and the forward pass's (persistent workspaces that outlive the forward pass, such as MoE
    kernels', and a final logit soft-cap's temporaries are not counted)."""
    requests = min(max_num_seqs, max_num_batched_tokens)
    held = max_num_batched_tokens * m.hidden_size * ACTIVATION_BYTES
    gather = ACTIVATION_BYTES * (2 + 1 / tp) if tp > 1 else 0
    return math.ceil(held + requests * m.vocab_size * max(bytes_per_logit, gather))


# ----------------------------------------------------------------------------------------------------------
# Several GPUs: tensor (tp), pipeline (pp) and expert (ep) parallelism


def gpus_per_stage(tp: int, ep: int) -> int:
    """GPUs in one pipeline stage: ``max(tp, ep)``.

    ep ≤ tp (SGLang's ``--ep-size``): the tp GPUs of a stage split the routed experts into ep groups, and each
    group's experts are tensor-sliced over tp/ep GPUs. ep > tp (vLLM's ``--enable-expert-parallel`` with
    ``--data-parallel-size ep/tp``): attention and dense layers run as ep/tp data-parallel replicas of tp GPUs
    each, and every GPU holds num_experts/ep whole experts. Either way a GPU holds 1/max(tp, ep) of the experts.
    """
    return max(tp, ep)


def attention_replicas(tp: int, ep: int) -> int:
    """Data-parallel replicas of attention and the dense layers within a stage (1 unless ep > tp)."""
    return max(1, ep // tp)


def stage_layers(m: ModelSpec, pp: int) -> list[range]:
    """The layers of each pipeline stage: an even split (``pp`` must divide num_hidden_layers)."""
    n = m.num_hidden_layers
    if pp < 1 or n % pp:
        raise ValueError(f"pp {pp} does not divide the model's {n} layers")
    size = n // pp
    return [range(s * size, (s + 1) * size) for s in range(pp)]


def check_parallel(m: ModelSpec, tp: int = 1, pp: int = 1, ep: int = 1) -> None:
    """Raise ValueError with a clear message when a (tp, pp, ep) layout cannot run this model."""
    stage_layers(m, pp)
    if ep < 1:
        raise ValueError(f"ep must be ≥ 1, got {ep}")
    if ep > 1:
        if not m.is_moe:
            raise ValueError("ep > 1 needs a mixture-of-experts model; this model is dense")
        if ep > m.num_experts:
            raise ValueError(f"ep {ep} exceeds the model's {m.num_experts} routed experts")
        if m.num_experts % ep:
            raise ValueError(f"ep {ep} does not divide the model's {m.num_experts} routed experts")
        if ep % tp and tp % ep:
            raise ValueError(f"ep {ep} and tp {tp} must divide one another")


def weight_parts(m: ModelSpec, fmt: str) -> dict:
    """Weight bytes by where they live: ``embedding`` (first stage), ``head`` (lm_head and the final norm,
    last stage; a tied model keeps the embedding matrix there too when pp > 1 splits them apart: see
    per_gpu_table), and per layer ``dense`` (attention, dense MLP or shared expert, router, norms, biases) and
    ``experts`` (the routed experts). The parts add up to weights_bytes(m, fmt) (before rounding up).

    GGUF: the embedding and lm_head follow llama.cpp's recipe (see _gguf_bytes); the layers share the rest in
    proportion to their parameters (per-layer Q6_K choices move < 1 % between layers).
    """
    c = param_counts(m)
    f = WEIGHT_FORMATS[fmt]
    h = m.hidden_size
    att_lin, att_bias, att_norm = _attention_params(m)
    n_moe = sum(m.moe_layers)
    per_layer_small = att_bias + m.norms_per_layer * h + att_norm
    dense_small = 2 * m.intermediate_size + h if m.mlp_bias else 0
    router = c["router"] // n_moe if n_moe else 0
    if m.expert_bias:  # gpt-oss's per-expert biases stay 16-bit; counted with the router (< 0.1 % of a layer)
        router += m.num_experts * (2 * m.moe_intermediate_size + h)
    dense_mlp = 3 * h * m.intermediate_size
    shared = 3 * h * m.shared_expert_intermediate_size
    experts = m.num_experts * 3 * h * m.moe_intermediate_size
    q_bits, e_bits = _linear_bits(f)
    # modules the checkpoint keeps in 16 bits (quantization_config.modules_to_not_convert / ignore), per layer
    unq = unquantized_linear_params(m, per_layer=True) if f.bits < 16 else [{"layer": 0, "expert": 0}] * len(m.moe_layers)
    layers = []
    for i, moe in enumerate(m.moe_layers):
        lin = att_lin + (shared if moe else dense_mlp)
        small = per_layer_small + (router if moe else dense_small)
        ex = experts if moe else 0
        u_lin = 0 if f.experts_only else unq[i]["layer"]
        u_ex = unq[i]["expert"]
        layers.append({"dense": (lin - u_lin) * q_bits / 8 + (u_lin + small) * 2,
                       "experts": (ex - u_ex) * e_bits / 8 + u_ex * 2,
                       "params_dense": lin + small, "params_experts": ex})
    emb, head = c["embedding"] * 2, c["lm_head"] * 2 + h * 2
    if f.gguf:
        emb = c["embedding"] * (_Q6_K_BITS if m.tie_word_embeddings else _Q4_K_BITS) / 8
        head = c["lm_head"] * _Q6_K_BITS / 8 + 4 * h
        rest = _gguf_bytes(m, fmt) - emb - head
        params = sum(r["params_dense"] + r["params_experts"] for r in layers)
        for r in layers:
            r["dense"], r["experts"] = rest * r["params_dense"] / params, rest * r["params_experts"] / params
    return {"embedding": emb, "head": head, "layers": layers}


def _linear_bits(f: WeightFormat) -> tuple[float, float]:
    """Bits per weight of (attention/dense linear layers, routed experts) in a non-GGUF format."""
    if f.experts_only:
        return 16, f.bits
    return f.bits, f.bits


def per_gpu_table(m: ModelSpec, fmt: str, kv_dtype: str, batch: int, prompt_len: int, context: int,
                  tp: int = 1, pp: int = 1, ep: int = 1, overhead_bytes: int = DEFAULT_OVERHEAD_BYTES,
                  expert_padding: float = 1.0) -> list[dict]:
    """What one GPU of each pipeline stage holds (every GPU of a stage holds the same), one row per stage.

    Weights: the stage's layers, dense parts split over tp, routed experts over max(tp, ep); the first stage adds
    the embedding, the last the lm_head and final norm (both split over tp, vocab-parallel); the routed experts
    grow by ``expert_padding`` (an engine's kernel layout, mxfp4_expert_padding), the growth listed apart as
    ``weights_padding_bytes``. KV cache: the stage's
    layers only, for the ceil(batch / replicas) sequences of one attention replica. Activations: the peak of a
    prefill over all batch × prompt tokens, spread like the experts (see activation_peak_bytes).
    """
    check_parallel(m, tp, pp, ep)
    g, dp = gpus_per_stage(tp, ep), attention_replicas(tp, ep)
    parts = weight_parts(m, fmt)
    seqs = -(-batch // dp)
    per_layer_kv = kv_bytes_per_token_layer(m, kv_dtype, tp)
    cached = cached_tokens(m, context)
    act = activation_peak_bytes(m, batch * prompt_len, g)
    rows = []
    for s, layers in enumerate(stage_layers(m, pp)):
        w = sum(parts["layers"][i]["dense"] / tp + parts["layers"][i]["experts"] / g for i in layers)
        if s == 0:
            w += parts["embedding"] / tp
        if s == pp - 1:
            w += parts["head"] / tp
            if m.tie_word_embeddings and pp > 1:  # the last stage needs its own copy of the tied matrix
                w += parts["embedding"] / tp
        if pp == 1 and g == tp:
            w = weights_bytes_per_gpu(m, fmt, tp)  # the same figure as without pp/ep, to the byte
        pad = math.ceil(sum(parts["layers"][i]["experts"] for i in layers) / g * (expert_padding - 1))
        w = math.ceil(w) + pad
        kv = seqs * per_layer_kv * sum(cached[i] for i in layers)
        rows.append({"stage": s + 1, "first_layer": layers[0], "last_layer": layers[-1], "gpus": g,
                     "weights_bytes": w, "weights_padding_bytes": pad, "kv_cache_bytes": kv, "activation_peak_bytes": act,
                     "overhead_bytes": overhead_bytes, "total_bytes": w + kv + act + overhead_bytes})
    return rows


# ----------------------------------------------------------------------------------------------------------
# The whole picture


def memory_report(
    m: ModelSpec,
    gpu_memory_bytes: int,
    weights: str = "bf16",
    kv_dtype: str = "bf16",
    batch: int = 1,
    prompt_len: int = 1024,
    output_len: int = 256,
    tp: int = 1,
    overhead_bytes: int = DEFAULT_OVERHEAD_BYTES,
    gpu_memory_utilization: float | None = None,
    block_size: int | None = None,
    max_model_len: int | None = None,
    max_num_batched_tokens: int = VLLM_MAX_NUM_BATCHED_TOKENS,
    max_num_seqs: int = VLLM_MAX_NUM_SEQS,
    pp: int = 1,
    ep: int = 1,
    visible_memory_bytes: int | None = None,
    engine: str | None = None,
    kv_variant: str | None = None,
    linked_gpus: int | None = None,
    compute_capability: str | None = None,
    mxfp4_backend: str | None = None,
    sampler_path: str | None = None,
) -> dict:
    """Everything that must fit: weights + KV for batch × (prompt + output) tokens + the prefill activation
    peak over batch × prompt tokens + runtime overhead; per GPU and in total (all GPUs). Then the engine view.

    Several GPUs: ``tp`` splits every matrix, ``pp`` gives each pipeline stage an even share of the layers,
    ``ep`` spreads the routed experts (see gpus_per_stage); the deployment uses max(tp, ep) × pp GPUs.
    ``per_gpu_table`` lists what one GPU of each stage holds; the ``*_per_gpu`` figures are those of the
    fullest stage, the one that decides whether the model fits.

    ``gpu_memory_bytes`` is the datasheet capacity (shown); ``visible_memory_bytes`` what CUDA reports (the
    driver and ECC keep the rest), from which whether each stage fits and the KV budget are computed (default:
    the datasheet figure). The engine view follows the ``engine`` profile's KV budget rule (data/engines.json
    ``kv_budget``; ``kv_variant`` picks an older version's rule listed there), per GPU:

    - ``vllm_profile`` (vLLM's worker, determine_available_memory): ``gpu_memory_utilization`` (None: the
      profile's default) × the visible total, minus the weights, the activation peak of the profiling forward
      pass over ``max_num_batched_tokens`` tokens, the non-torch memory that pass adds (``non_torch_bytes``) and,
      from vLLM 0.21 on, the CUDA-graph pool (``cuda_graph_bytes``). Both constants are sourced start-up-log
      figures, not functions of the model: the caller's ``overhead_bytes`` is not used here.
    - ``sglang_static`` (SGLang's mem_fraction_static): the fraction × the memory free after the CUDA context and
      the distributed set-up (the visible total minus ``startup_bytes_multi_gpu`` when more than one GPU, or
      ``startup_bytes_multi_gpu_pcie`` when a stage has more GPUs than one fabric links, ``linked_gpus``: registry
      GPU.linked_gpus, None for a node-wide fabric), minus the weights; activations and CUDA graphs live in the
      rest, so no profiling pass is taken off. For gpt-oss the sliding-window layers get a pool of their own
      (kv_budget ``hybrid_swa``, sglang_hybrid_swa): a token of the full pool then costs the full layers' bytes and
      ``swa_full_tokens_ratio`` × the window layers', and the window pool (``engine_swa_pool_tokens``) bounds the
      concurrency too, by what a running request keeps there (sglang_swa_tokens_per_request).
    - ``trtllm_profile`` (TensorRT-LLM's PyTorch backend from 1.0, KvCacheCreator): after loading the weights it runs a
      dry prefill of ``max_num_batched_tokens`` tokens (its max_num_tokens, 8,192 by default) and gives the KV cache
      ``gpu_memory_utilization`` (its free_gpu_memory_fraction, 0.9) of what that run's peak left: the fraction × (the
      visible total − the weights − the pass's activation peak − the memory outside PyTorch, NCCL and CUDA graphs,
      taken as ``overhead_bytes`` since no start-up log of it was read). The fraction applies to what is left, not to
      the total as in vLLM's rule.
    - ``fraction_of_visible`` (engines without a sourced rule): the fraction × the visible total, minus the
      weights, the profiling pass and ``overhead_bytes``.

    MXFP4 routed experts take the engine's kernel padding (data/engines.json ``mxfp4_moe``, vLLM's for gpt-oss): the
    backend the engine picks on a GPU of ``compute_capability`` (registry GPU.compute_capability), or
    ``mxfp4_backend`` where a run names the one it used; the padded bytes are part of the weights (``weights_bytes``
    too), per GPU and in the KV budget.

    What is left becomes KV blocks of ``block_size`` tokens (None: the engine's default for the model and GPU,
    engine_block_size). With pipeline stages every stage keeps the same
    number of blocks (the smallest any stage can afford), as vLLM does; each attention replica (ep > tp) has a
    cache of its own. vLLM's hybrid KV cache manager (kv_budget ``hybrid_kv_groups``: models that mix attention
    windows, such as gpt-oss and Gemma-2, or slide a window in every layer) groups the layers (vllm_kv_groups); a
    request holds full blocks in full-attention groups and only its window's in the others
    (vllm_blocks_per_request), which sets the concurrency; ``engine_max_tokens_in_cache`` is what vLLM logs as its
    KV cache size (kv_budget ``tokens_reported``: the max_model_len requests that fit, in tokens, or, before, the
    blocks shared out evenly over the groups).
    """
    eng = engines_mod.profile(engine or engines_mod.DEFAULT_ENGINE)
    kvb = eng.kv_budget(kv_variant)
    rule = kvb["rule"]
    if block_size is None:
        block_size = engine_block_size(kvb, m, compute_capability, kv_dtype)
    elif block_size < 1:
        raise ValueError(f"block_size must be ≥ 1, got {block_size}")
    else:
        block_size = engine_block_size(kvb, m, compute_capability, kv_dtype, given=block_size)
    capacity = gpu_memory_bytes if visible_memory_bytes is None else visible_memory_bytes
    counts = param_counts(m)
    context = prompt_len + output_len
    backend = None
    if weights in ("mxfp4", "mxfp4-experts") and m.is_moe:
        backend = mxfp4_backend or eng.mxfp4_backend(compute_capability, m.model_type)
    alignment = eng.mxfp4_alignment(backend)
    backend = backend if alignment else None  # a backend only where the engine's padding is modelled
    padding = mxfp4_expert_padding(m, alignment, tp, ep)
    table = per_gpu_table(m, weights, kv_dtype, batch, prompt_len, context, tp, pp, ep, overhead_bytes, padding)
    g, dp = gpus_per_stage(tp, ep), attention_replicas(tp, ep)
    fullest = max(table, key=lambda r: r["total_bytes"])
    w_gpu, kv_gpu = fullest["weights_bytes"], fullest["kv_cache_bytes"]
    act_gpu, total_gpu = fullest["activation_peak_bytes"], fullest["total_bytes"]
    n_gpus = g * pp

    # Engine (vLLM) view
    if max_model_len is None:
        max_model_len = m.max_position_embeddings
    if gpu_memory_utilization is None:
        if kvb.get("fraction") is not None:
            gpu_memory_utilization = kvb["fraction"]
        elif rule == "sglang_static":  # SGLang derives its default from the GPU and its own settings
            # its prefill chunk; with chunked prefill off (a budget of a whole context) its max_prefill_tokens
            chunk = min(max_num_batched_tokens, SGLANG_MAX_PREFILL_TOKENS)
            gpu_memory_utilization = sglang_mem_fraction_static(
                capacity, g, pp, chunk, dp, rule=kvb.get("fraction_rule", "0.5.20"), mla=m.is_mla,
                amd=bool(compute_capability and compute_capability.startswith("gfx")))
        else:
            gpu_memory_utilization = VLLM_GPU_MEMORY_UTILIZATION
    if rule == "sglang_static" and sglang_aiter_scales_fraction(m, compute_capability, g, max_model_len):
        gpu_memory_utilization *= 0.85  # given or default, as SGLang does
    startup = 0
    if rule == "sglang_static" and n_gpus > 1:
        pcie = linked_gpus is not None and g > linked_gpus and "startup_bytes_multi_gpu_pcie" in kvb
        key = "startup_bytes_multi_gpu_pcie" if pcie else "startup_bytes_multi_gpu"
        startup = int(kvb.get(key, 0))
    budget = int(gpu_memory_utilization * (capacity - startup))
    profile_act = 0 if rule == "sglang_static" else activation_peak_bytes(m, max_num_batched_tokens * dp, g)
    # vLLM's sampler warm-up (last pipeline stage only): the profiling peak is the larger of it and the forward pass
    sampler, path = 0, None
    if rule == "vllm_profile":
        per_logit = kvb.get("sampler_bytes_per_logit", {})
        path = sampler_path or kvb.get("sampler_path")
        if sampler_path is not None and sampler_path not in per_logit:
            raise ValueError(f"unknown sampler path {sampler_path!r}; valid: {', '.join(per_logit) or 'none'}")
        if max_num_seqs < 1:
            raise ValueError(f"max_num_seqs must be ≥ 1, got {max_num_seqs}")
        if path is not None:
            sampler = vllm_sampler_warmup_bytes(m, max_num_seqs, max_num_batched_tokens, per_logit[path], tp)
    last_stage_profile = max(profile_act, sampler)
    if rule == "vllm_profile":
        non_torch, cuda_graph = int(kvb.get("non_torch_bytes", 0)), int(kvb.get("cuda_graph_bytes", 0))
    elif rule == "sglang_static":
        non_torch, cuda_graph = 0, 0
    else:  # TensorRT-LLM's memory outside PyTorch, and the generic rule's overhead
        non_torch, cuda_graph = overhead_bytes, 0
    # A block holds block_size tokens of every layer of a KV cache group. vLLM's hybrid KV cache manager (kv_budget
    # ``hybrid_kv_groups``) puts layers with different attention windows in groups of equal size that draw blocks
    # from one pool, and a sliding-window group keeps only the blocks its window needs; elsewhere (SGLang, vLLM's V0)
    # one group holds all the stage's layers, sliding-window layers sized like full ones unless SGLang's window pool
    # takes them (sglang_hybrid_swa).
    per_layer_kv = kv_bytes_per_token_layer(m, kv_dtype, tp)
    swa = sglang_hybrid_swa(kvb, m, compute_capability)
    hybrid = rule == "vllm_profile" and bool(kvb.get("hybrid_kv_groups"))
    if hybrid:  # groups over the whole model, projected onto each stage (kv_cache_utils, as vLLM does with PP)
        _, groups = vllm_kv_groups(list(m.layer_windows))
    else:
        groups = [(None, list(range(m.num_hidden_layers)))]
    windows = [w for w, _ in groups]
    sliding = any(w is not None for w in windows)
    # the tokens a sliding-window group keeps room for: one max_num_batched_tokens per batch in flight (vLLM 0.32:
    # pp + 1 with async scheduling, its default; one before, in_flight_batches)
    batches = kvb.get("in_flight_batches") or pp + int(kvb.get("in_flight_batches_beyond_pp", 0))
    in_flight = int(batches) * max_num_batched_tokens if sliding else 0
    stage_blocks = []
    for row in table:
        stage = set(range(row["first_layer"], row["last_layer"] + 1))
        per_block_layers = max(len(stage.intersection(layers)) for _, layers in groups)
        if swa:  # SGLang's hybrid SWA pool: a token of the full pool also pays for the ratio's share of a window slot
            windowed = sum(m.layer_windows[i] is not None for i in stage)
            per_block_layers = per_block_layers - windowed + swa["swa_full_tokens_ratio"] * windowed
        peak = last_stage_profile if row is table[-1] else profile_act
        if rule == "trtllm_profile":  # the fraction of what the dry run left
            stage_budget = max(0, int(gpu_memory_utilization * (capacity - row["weights_bytes"] - peak - non_torch)))
        else:
            stage_budget = max(0, budget - row["weights_bytes"] - peak - non_torch - cuda_graph)
        block_bytes = block_size * per_layer_kv * per_block_layers
        stage_blocks.append((int(stage_budget // block_bytes), stage_budget))
        row["engine_num_kv_blocks"] = int(stage_budget // block_bytes)
    num_blocks, kv_budget = min(stage_blocks)
    per_max_len = vllm_blocks_per_request(windows, max_model_len, block_size, in_flight, bound=True)
    if kvb.get("tokens_reported") == "concurrency":
        # vLLM 0.32 logs "GPU KV cache size" as the requests of max_model_len tokens that fit, in tokens
        # (kv_cache_utils.get_kv_cache_capacity, from 0.21.0); up to 0.20, the blocks shared out evenly over the groups
        concurrency_max_len = num_blocks / per_max_len
        max_tokens = int(concurrency_max_len * max_model_len)
    else:
        max_tokens = num_blocks // len(groups) * block_size
        concurrency_max_len = num_blocks / per_max_len if hybrid else max_tokens / max_model_len
    # a request of this length once it decodes: one token per batch in flight, so a window group holds only the
    # window's blocks (what the planner's simulator counts). vLLM admits a request only when its whole prompt's blocks
    # are free, a window group's up to window - 1 + the tokens in flight: for windowed models the last request
    # admitted may need more than this, so the count is an upper bound there
    decode_in_flight = int(batches) if sliding else 0
    blocks_per_request = vllm_blocks_per_request(windows, min(context, max_model_len), block_size, decode_in_flight)
    max_concurrency = dp * (num_blocks // blocks_per_request) if blocks_per_request else 0
    swa_tokens = 0
    if swa:  # the window pool holds swa_full_tokens_ratio × the full pool's tokens, which can bind for short sequences
        swa_tokens = int(num_blocks * block_size * swa["swa_full_tokens_ratio"])
        prompt = min(prompt_len, max_model_len)
        held = sglang_swa_tokens_per_request(swa, prompt, min(context, max_model_len) - prompt,
                                             max(w for w in m.layer_windows if w is not None), max_num_batched_tokens,
                                             block_size)
        max_concurrency = min(max_concurrency, dp * (swa_tokens // held))

    fits = all(r["total_bytes"] <= capacity for r in table)
    for row in table:
        row["fits"] = row["total_bytes"] <= capacity
    return {
        "gpus": n_gpus,
        "pp": pp,
        "ep": ep,
        "attention_replicas": dp,
        "params_total": counts["total"],
        "params_active": counts["active"],
        # as loaded on all GPUs: the checkpoint's bytes plus any kernel padding (weights_padding_bytes per stage)
        "weights_bytes": weights_bytes(m, weights) + sum(r["weights_padding_bytes"] for r in table) * g,
        "weights_bytes_per_gpu": w_gpu,
        # the format's bits per quantized weight, scales included (GGUF: the recipe's main type)
        "weights_bits_per_param": WEIGHT_FORMATS[weights].bits,
        "kv_bytes_per_token": kv_bytes_per_token(m, kv_dtype),
        "kv_bytes_per_token_per_gpu": per_layer_kv * (fullest["last_layer"] - fullest["first_layer"] + 1),
        "kv_cache_bytes": sum(r["kv_cache_bytes"] for r in table) * g,
        "kv_cache_bytes_per_gpu": kv_gpu,
        "activation_peak_bytes": act_gpu * n_gpus,
        "activation_peak_bytes_per_gpu": act_gpu,
        "overhead_bytes": overhead_bytes * n_gpus,
        "overhead_bytes_per_gpu": overhead_bytes,
        "total_bytes": sum(r["total_bytes"] for r in table) * g,
        "total_bytes_per_gpu": total_gpu,
        "gpu_memory_bytes": gpu_memory_bytes,
        "gpu_visible_memory_bytes": capacity,
        "fits": fits,
        "fits_reason": _why(fits, w_gpu, kv_gpu, act_gpu, overhead_bytes, capacity),
        "max_concurrency": max_concurrency,
        "engine": eng.key,
        "engine_gpu_memory_utilization": gpu_memory_utilization,
        "engine_kv_rule": rule,
        "engine_profile_activation_bytes_per_gpu": profile_act,
        # vLLM's sampler warm-up on the last stage (0 where not counted) and the profiling peak taken off there
        "engine_max_num_seqs": max_num_seqs,
        "engine_sampler_path": path,
        "engine_sampler_warmup_bytes_per_gpu": sampler,
        "engine_profile_peak_bytes_per_gpu": last_stage_profile,
        "engine_non_torch_bytes_per_gpu": non_torch,
        "engine_cuda_graph_bytes_per_gpu": cuda_graph,
        "engine_startup_bytes_per_gpu": startup,
        "engine_mxfp4_backend": backend,
        "engine_weight_padding_bytes_per_gpu": fullest["weights_padding_bytes"],
        "engine_block_size": block_size,
        "engine_max_model_len": max_model_len,
        "engine_max_num_batched_tokens": max_num_batched_tokens,
        "engine_kv_budget_bytes_per_gpu": kv_budget,
        "engine_num_kv_blocks": num_blocks,
        "engine_kv_cache_groups": len(groups),
        "engine_kv_group_windows": windows,  # each group's attention window (None: full), for the simulator
        "engine_kv_in_flight_tokens": in_flight,
        "engine_max_tokens_in_cache": max_tokens * dp,
        # SGLang's sliding-window pool beside the full one (0 where the engine keeps one pool), all replicas
        "engine_swa_pool_tokens": swa_tokens * dp,
        "engine_max_concurrency_at_max_model_len": concurrency_max_len * dp,
        # vLLM keeps one block aside as its null block (kv_cache_utils, block_pool.py)
        "engine_fits_one_max_len_request": num_blocks - (rule == "vllm_profile") >= per_max_len,
        "per_gpu_table": table,
    }


def _gb(n: int) -> str:
    return format_number(n, "GB:2")


def _why(fits: bool, w: int, kv: int, act: int, overhead: int, capacity: int) -> dict:
    """A one-sentence reason, in both languages."""
    if fits:
        free = capacity - (w + kv + act + overhead)
        return t(f"放得下，每块 GPU 还剩 {_gb(free)}", f"fits with {_gb(free)} to spare per GPU")
    if w > capacity:
        return t(f"仅权重（每块 GPU {_gb(w)}）就超过显存（{_gb(capacity)}）：请换更小的权重格式或增加 GPU 数（tp、pp）",
                 f"the weights alone ({_gb(w)} per GPU) exceed GPU memory ({_gb(capacity)}): use a smaller weight "
                 "format or more GPUs (tp, pp)")
    if w + overhead + kv > capacity:
        return t(f"权重（{_gb(w)}）+ KV 缓存（{_gb(kv)}）+ 运行时开销超过显存（{_gb(capacity)}）：请缩短上下文、减小批大小或使用 fp8 KV 缓存",
                 f"weights ({_gb(w)}) + KV cache ({_gb(kv)}) + overhead exceed GPU memory ({_gb(capacity)}): "
                 "shorten the context, lower the batch or use an fp8 KV cache")
    return t(f"预填充的激活峰值（{_gb(act)}）使总量超过显存（{_gb(capacity)}）：请分块预填充或减小批大小",
             f"the prefill activation peak ({_gb(act)}) tips it over GPU memory ({_gb(capacity)}): prefill in chunks "
             "or lower the batch")


def attention_scores_bytes(batch: int, heads: int, n_q: int, n_k: int, elem_bytes: float = 2) -> int:
    """Bytes of the score matrix S = Q K^T that naive (unfused) attention writes to memory: B x H x N_q x N_k
    elements (softmax(S) is a second matrix of the same size). Fused kernels (FlashAttention) never hold it."""
    return int(batch * heads * n_q * n_k * elem_bytes)


def attention_io_bytes(batch: int, heads: int, kv_heads: int, n_q: int, n_k: int, head_dim: int,
                       elem_bytes: float = 2) -> int:
    """Bytes of Q and the output (B x H x N_q x d each) plus K and V (B x H_kv x N_k x d each): what every
    attention implementation reads or writes at least once; with one query (decode) it is about K + V."""
    return int(batch * (2 * heads * n_q + 2 * kv_heads * n_k) * head_dim * elem_bytes)
