"""Serving-engine profiles: what a real engine adds to (or takes from) the roofline in calc/perf.py.

A profile is read from data/engines.json (every value there carries its source: URL, date, engine version,
GPU, settings) and answers three questions the step-time model needs:

    profile("vllm").step_overhead_s(batch=8, tp=1)   -> seconds each engine step adds beyond the roofline
    profile("vllm").request_latency_s                -> seconds each request's TTFT adds off the GPU (front end)
    profile("vllm").memory_efficiency("int4")        -> share of datasheet bandwidth its kernels reach
    profile("vllm").compute_efficiency("fp8")        -> share of datasheet tensor-core FLOPS they reach

``ideal`` is the plain roofline (the efficiencies measured on the H100 reference: a device copy and a bf16
matmul), with no fixed cost per step: a lower bound on time that no engine beats.
"""

from __future__ import annotations

import json
import math
import os
from functools import cache

_PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "engines.json")
DEFAULT_ENGINE = "vllm"


@cache
def _data() -> dict:
    with open(_PATH, encoding="utf-8") as fh:
        return json.load(fh)


def _weight_only_4bit(fmt: str, gpu) -> bool:
    """Whether weights in ``fmt`` are 4-bit ones that run weight-only (dequantized to 16-bit math) on
    ``gpu`` (None: by the format's own compute dtype): NF4; MXFP4 and NVFP4 without FP4 tensor cores."""
    from .memory import WEIGHT_FORMATS  # noqa: PLC0415 (engines stays importable without the memory model)
    f = WEIGHT_FORMATS.get(fmt)
    if f is None or f.gguf or f.experts_only or f.bits >= 5:
        return False
    if f.compute_dtype != "fp4":
        return True
    return gpu is not None and not gpu.peak_flops("fp4")


class EngineProfile:
    """One engine. Attributes mirror data/engines.json; the methods are the interface perf.py (and the serving
    simulator) call. A plain class, like registry.GPU, to keep calc's import cheap in the browser."""

    def __init__(self, key: str, entry: dict, variant: dict | None = None):
        self.key = key
        variant = variant or {}
        # An older release's kernels (data/engines.json ``variants``, key "engine@variant"): TensorRT-LLM before its
        # XQA kernel ran generation-phase attention as one thread block per query head, so a GQA model's KV cache
        # was read once per query head instead of once per KV head
        self.decode_kv_reads_per_query_head = bool(variant.get("decode_kv_reads_per_query_head", False))
        # llama.cpp from Sep 2023 to Jun 2024 multiplied quantized weights in a prompt batch with FP16 cuBLAS after
        # dequantizing them into a temporary FP16 copy, every batch: that copy is read and written on top of the GEMM
        self.prefill_dequantizes_to_fp16 = bool(variant.get("prefill_dequantizes_to_fp16", False))
        # Hugging Face's dynamic cache appends each step's keys and values with torch.cat, which allocates a new
        # tensor and copies the whole cache into it: every decode step reads and writes the cache once more
        # beyond attention's read (3x the KV bytes instead of 1x)
        self.decode_copies_kv_cache = bool(entry.get("decode_copies_kv_cache", False))
        # SGLang's Triton attention backend (--attention-backend triton): an MLA model's decode attention runs as
        # batch x head groups x KV splits programs, each walking its split of the context alone (split_kv_decode_s)
        self.split_kv_decode = variant.get("split_kv_decode")
        self.name = entry["name"]
        self.version = entry.get("version")
        self.calibrated = entry.get("calibrated", False)
        # an older release may have had another fixed cost per step (vLLM's V0 engine): its keys replace the entry's
        o = {**entry.get("step_overhead", {}), **variant.get("step_overhead", {})}
        self.overhead_base_s = float(o.get("base_s", 0.0))
        self.overhead_per_seq_s = float(o.get("per_seq_s", 0.0))
        self.overhead_multi_gpu_s = float(o.get("multi_gpu_s", 0.0))
        # Where set, the base cost of a step is paid once per layer (kernel launches and the fixed start and tail
        # of each kernel: every layer runs the same kernels, however little work each has), and base_s was fitted
        # on models with this many layers: a model with L layers pays base_s × L / layers_fitted
        self.overhead_layers_fitted = o.get("layers_fitted")
        # True where the fixed cost is the host launching kernels one by one (eager PyTorch): the GPU runs the
        # kernels already launched meanwhile, so a step takes max(launch time, GPU time), not their sum
        self.overhead_overlaps_gpu = bool(o.get("overlaps_gpu", False))
        # the fitted fixed cost of a prefill, as measured (a single request's TTFT), and its split (see
        # prefill_step_overhead_s and request_latency_s)
        self.prefill_overhead_base_s = float(o.get("prefill_base_s", self.overhead_base_s))
        # Where the TTFT points have no front end (llama-bench), the whole fitted prefill cost is spent in the step
        # (``prefill_in_step``); otherwise what it adds beyond a decode step's base is per-request front-end latency
        self.prefill_in_step = bool(o.get("prefill_in_step", False))
        self.prefill_step_base_s = (self.prefill_overhead_base_s if self.prefill_in_step
                                    else min(self.prefill_overhead_base_s, self.overhead_base_s))
        rest_s = self.prefill_overhead_base_s - self.prefill_step_base_s
        # Where set (SGLang), that rest is not off the GPU: it is the prompt's forward itself (SGLang 0.5.6 launched
        # prefill kernels one by one), so the step that carries prompt tokens pays it, once per step however many
        # prompts the step batches, and a loaded replica's decodes wait for it (prefill_step_overhead_s)
        self.prompt_cost_in_step = bool(o.get("prompt_cost_in_step", False))
        self.prompt_step_s = rest_s if self.prompt_cost_in_step else 0.0
        self.request_latency_s = 0.0 if self.prompt_cost_in_step else rest_s
        # Where set (SGLang), that rest is paid per layer like the base cost (layers_fitted), with
        # mla_request_layer_weight for MLA layers: at concurrency 1 it grows with the model's depth, not the prompt
        self.request_latency_per_layer = bool(o.get("request_latency_per_layer", False))
        # Where set (SGLang), a layer of DeepSeek-V3's design (MLA attention, a shared expert beside the routed
        # ones; calc keys it on MLA) costs this many ordinary layers' fixed cost: in the step (decode and prompt
        # steps alike) and in the per-layer request latency. Fitted on DeepSeek-R1's concurrency-1 TPOT and TTFT
        # (data page); 1 elsewhere: no other engine's MLA points were found, so its MLA costs are not calibrated
        self.mla_step_layer_weight = float(o.get("mla_step_layer_weight", 1.0))
        self.mla_request_layer_weight = float(o.get("mla_request_layer_weight", 1.0))
        # an older or other build's kernels (vLLM for ROCm) may reach other shares of the datasheet: a variant's
        # memory_efficiency / compute_efficiency keys replace the entry's. A variant that sets the default bandwidth
        # share scales the entry's other formats' shares with it (those it sets itself replace them) (vLLM for ROCm: int4 0.659 x 0.547 / 0.812),
        # an assumption (no 4-bit point of such a build was found) that keeps a 4-bit format below the 16-bit share
        # there as it is in the entry, rather than above it
        vm, em = variant.get("memory_efficiency", {}), entry["memory_efficiency"]
        scale = vm["default"] / em["default"] if "default" in vm else 1.0
        self._mem = {**{k: v * scale for k, v in em.items()}, **vm}
        # The share of the memory_efficiency figures this engine's kernels keep on GPUs with HBM (fitted where the
        # calibration set shows the same kernels reaching a smaller share of an HBM GPU's bandwidth than of a GDDR
        # one's: llama.cpp's); 1 = the figures hold on every memory type
        self.hbm_bandwidth_factor = float(entry.get("hbm_bandwidth_factor", 1.0))
        # 16-bit matmuls accumulate in FP16 (llama.cpp's cuBLAS path): on GeForce cards that runs at twice the
        # FP32-accumulate rate calc takes as the peak (registry fp16_acc16_dense_flops); elsewhere at the same rate
        self.accumulates_in_fp16 = bool(entry.get("accumulates_in_fp16", False))
        self._comp = {**entry["compute_efficiency"], **variant.get("compute_efficiency", {})}
        # Where a variant sets it (vLLM for ROCm 0.9.1), the compute share of a step of decodes only: fitted on the rows
        # whose decode steps grow with the batch beyond their byte time, it stands for whatever does that (GEMM tiles at
        # small M, attention, per-sequence costs), not for the matmuls' rate; elsewhere decode steps take compute_efficiency
        self._decode_comp = dict(variant.get("decode_compute_efficiency", {}))
        # an older release's prompt steps where they differ (TensorRT-LLM's static-batch tables prefilled a whole batch)
        p = {**entry.get("prefill", {}), **variant.get("prefill", {})}
        self.prefill_chunk_tokens = p.get("chunk_tokens")  # None: the whole prompt batch in one step
        # "sglang_gpu_memory": the chunk is SGLang's chunked_prefill_size for the GPU (prefill_chunk_for)
        self.prefill_chunk_rule = p.get("chunk_rule")
        # True where the engine runs prompt tokens in steps of their own, first, with the decodes paused (SGLang's
        # scheduler without --enable-mixed-chunk); False where a step mixes them with the decodes (vLLM V1)
        self.prefill_alone = bool(p.get("alone", False))
        self.ttft_decode_steps = int(p.get("ttft_decode_steps", 0))
        kv = entry.get("kv_budget", {})
        self._kv = {k: v for k, v in kv.items() if k != "variants"}
        self._kv_variants = dict(kv.get("variants", {}))
        self.kv_variants = tuple(self._kv_variants)  # older versions' KV budget constants (see kv_budget)
        self.kv_rule = kv.get("rule", "fraction_of_visible")
        # How the engine stores MXFP4 routed experts: its default MoE backend per GPU (by compute capability) and
        # the multiples each backend rounds [hidden size, expert width per GPU] up to (None: not modelled)
        self._mxfp4_moe = entry.get("mxfp4_moe")
        self.kv_fraction = kv.get("fraction")
        self.note = entry.get("note", "")
        self.sources = entry.get("sources", [])

    def __repr__(self):
        return f"EngineProfile({self.key!r})"

    def _per_layer(self, base_s: float, layers: int | None, weight: float = 1.0) -> float:
        """``base_s`` for a model (or pipeline stage) of ``layers`` layers: scaled by layers × weight / layers_fitted
        where the profile charges its base cost per layer (``weight``: what one of these layers costs in ordinary
        layers), else as fitted (also when layers is None)."""
        if not self.overhead_layers_fitted or not layers:
            return base_s
        return base_s * layers * weight / self.overhead_layers_fitted

    def _prompt_part(self, part_s: float, layers: int | None, mla: bool) -> float:
        """The fitted prefill cost beyond the step's base (``part_s``: off the GPU or, with prompt_cost_in_step, in the
        step) for a model of ``layers`` layers (``mla``: of DeepSeek-V3's design): scaled by layers / layers_fitted where
        the profile charges it per layer (and by mla_request_layer_weight for MLA layers), else as fitted."""
        if not self.request_latency_per_layer:
            return part_s
        return self._per_layer(part_s, layers, self.mla_request_layer_weight if mla else 1.0)

    def request_latency_for(self, layers: int | None, mla: bool = False) -> float:
        """The per-request latency off the GPU (request_latency_s) for a model of ``layers`` layers (_prompt_part)."""
        return self._prompt_part(self.request_latency_s, layers, mla)

    def step_overhead_s(self, batch: int, tp: int, layers: int | None = None, mla: bool = False) -> float:
        """Fixed time per engine step beyond the roofline: launch, scheduling, sampling, output handling, plus
        a per-sequence term, plus one multi-GPU term when tp > 1 (synchronising the tensor-parallel workers;
        the all-reduces themselves are in perf.allreduce_s). Fitted at TP 1-2 only: a constant, not a slope
        in tp, so it does not blow up when extrapolated to TP 8-32. ``layers``: the layers the step runs on
        one GPU (a pipeline stage's), for profiles whose base cost is per layer (``layers_fitted``); ``mla``:
        they are of DeepSeek-V3's design (MLA), each costing mla_step_layer_weight ordinary layers."""
        return (self._per_layer(self.overhead_base_s, layers, self.mla_step_layer_weight if mla else 1.0)
                + self.overhead_per_seq_s * max(0, batch) + (self.overhead_multi_gpu_s if tp > 1 else 0.0))

    def step_time_s(self, gpu_s: float, overhead_s: float) -> float:
        """One step from its GPU time (roofline + communication) and its fixed cost: their sum where the fixed
        cost is serial with the GPU work (scheduling, sampling, synchronising: serving engines that replay CUDA
        graphs), their maximum where it is the host launching kernels that the GPU executes as they arrive
        (``overlaps_gpu``: eager PyTorch, whose launches run ahead of the GPU when kernels are long)."""
        return max(gpu_s, overhead_s) if self.overhead_overlaps_gpu else gpu_s + overhead_s

    def prefill_step_overhead_s(self, batch: int, tp: int, layers: int | None = None, mla: bool = False) -> float:
        """Fixed time of one engine step that holds prompt tokens (a prefill chunk, alone or mixed with decodes):
        the decode step's base cost (the same engine loop: schedule, prepare inputs, launch, sample), or the
        fitted prefill figure where that is smaller, plus the same per-sequence and per-GPU terms.

        The split: ``prefill_base_s`` in data/engines.json was fitted on the TTFT of one request alone, which
        cannot tell a cost paid once per engine step from one paid once per request. The decode figure
        ``base_s`` was fitted on inter-token latencies, where the front end (HTTP, tokenisation, request set-up)
        is not in the path, so it is the engine loop's own cost per step; what the TTFT fit adds beyond it
        is taken to be per-request work that does not hold the GPU (``request_latency_s``). For vLLM that
        front-end work runs in a separate API-server process, overlapping the engine core's GPU steps. The
        step's base scales with ``layers`` (and ``mla``) as in step_overhead_s; the per-request part does not.
        Where the profile says that part is the prompt's forward itself (``prompt_cost_in_step``: SGLang), the step
        pays it too (``prompt_step_s``, per layer as the request latency would have been), and nothing is off the
        GPU: one request alone gets the same TTFT either way."""
        return (self._per_layer(self.prefill_step_base_s, layers, self.mla_step_layer_weight if mla else 1.0)
                + self._prompt_part(self.prompt_step_s, layers, mla)
                + self.overhead_per_seq_s * max(0, batch) + (self.overhead_multi_gpu_s if tp > 1 else 0.0))

    def prefill_chunk_for(self, gpu=None) -> int | None:
        """Tokens per prompt step on ``gpu``: SGLang's default chunked_prefill_size for its memory where the profile says
        so (``chunk_rule``), else the profile's fixed chunk (None: a whole prompt batch in one step)."""
        if self.prefill_chunk_rule == "sglang_gpu_memory" and gpu is not None:
            from .memory import sglang_chunked_prefill_size  # noqa: PLC0415 (engines stays importable without it)
            return sglang_chunked_prefill_size(gpu)
        return self.prefill_chunk_tokens

    def kv_budget(self, variant: str | None = None) -> dict:
        """The KV budget rule and its sourced constants (data/engines.json ``kv_budget``), for the engine's current
        version or for an older ``variant`` listed under ``kv_budget.variants`` (e.g. vLLM's V0 worker, which
        start-up logs of 2024 come from): the variant's keys replace the current ones.

        Keys: ``rule`` ('vllm_profile', 'sglang_static', 'trtllm_profile' or 'fraction_of_visible'), ``fraction``
        (default gpu_memory_utilization / mem_fraction_static / free_gpu_memory_fraction, or None), per rule the bytes
        taken off per GPU: ``non_torch_bytes`` and ``cuda_graph_bytes`` (vllm_profile), ``startup_bytes_multi_gpu``
        (sglang_static), and the engine's default limits where sourced: ``max_num_tokens`` (the tokens of one step and
        of the profiling pass) and ``max_batch_size`` (the most requests running at once) for trtllm_profile."""
        out = dict(self._kv)
        if variant is not None:
            try:
                out.update(self._kv_variants[variant])
            except KeyError:
                raise KeyError(f"engine {self.key!r} has no KV budget variant {variant!r}; valid: "
                               f"{', '.join(self._kv_variants) or 'none'}") from None
        out.setdefault("rule", "fraction_of_visible")
        return {k: v for k, v in out.items() if not k.startswith("_")}

    def mxfp4_backend(self, compute_capability: str | None, model_type: str | None = None) -> str | None:
        """The MoE backend this engine picks by default for the MXFP4 experts of a model of ``model_type`` (config.json;
        vLLM's table is gpt-oss's) on a GPU of ``compute_capability`` (registry GPU.compute_capability), or None where
        the profile models none."""
        if not self._mxfp4_moe or compute_capability is None:
            return None
        if model_type not in self._mxfp4_moe.get("model_types", ()):
            return None
        return self._mxfp4_moe["backend"].get(compute_capability)

    def refuses_mxfp4(self, compute_capability: str | None) -> bool:
        """Whether this engine refuses MXFP4 checkpoints on an NVIDIA GPU of ``compute_capability`` (vLLM: below 8.0)."""
        least = (self._mxfp4_moe or {}).get("min_compute_capability")
        if least is None or not compute_capability or compute_capability.startswith("gfx"):
            return False
        as_tuple = lambda cc: tuple(int(x) for x in cc.split("."))  # noqa: E731
        return as_tuple(compute_capability) < as_tuple(least)

    def mxfp4_alignment(self, backend: str | None) -> tuple[int, int] | None:
        """The multiples ``backend`` rounds (hidden size, expert width per GPU) up to, or None (no padding modelled)."""
        if not self._mxfp4_moe or backend is None:
            return None
        try:
            hidden, width = self._mxfp4_moe["alignment"][backend]
        except KeyError:
            raise KeyError(f"engine {self.key!r} has no MXFP4 MoE backend {backend!r}; valid: "
                           f"{', '.join(self._mxfp4_moe['alignment'])}") from None
        return int(hidden), int(width)

    def split_kv_decode_s(self, m, gpu, batch: float, context: int, layers: int, tp: int = 1) -> float:
        """Seconds the decode attention of ``layers`` MLA layers takes on one GPU in one step of ``batch`` sequences
        at ``context`` tokens, where the profile runs it as a split-KV kernel that walks each split of the context
        alone (``split_kv_decode``: SGLang 0.5.7's Triton backend); 0 elsewhere (the roofline's KV read stands).

        SGLang's grouped decode kernel (triton_ops/decode_attention.py, _decode_grouped_att_m_fwd) launches, per
        sequence, ceil(heads / min(16, heads)) programs per split (the latent cache is one KV head shared by all the
        query heads); each walks its split 32 tokens at a time. The splits (triton_backend.py,
        get_num_kv_splits_triton, sequences of one length): min(max_kv_splits, ceil(SMs x max(log2(context / 64), 1)
        / token grid)), where the token grid counts the model config's KV heads, not the latent one:
        num_key_value_heads equals the heads in an MLA config, so it is batch x heads. The programs run in waves of
        SMs x programs_per_sm, a wave lasting s_per_program + one program's tokens x s_per_token per layer
        (effective times, fitted; the fixed one mostly stands for calc's miss on the fit model at short contexts). Heads
        are split across ``tp`` GPUs. Needs the GPU's SM count (registry GPU.sm_count)."""
        k = self.split_kv_decode
        if not k or not getattr(m, "is_mla", False) or batch <= 0 or context <= 0:
            return 0.0
        if not gpu.sm_count:
            raise ValueError(f"{self.name}'s split-KV decode model needs the GPU's SM count; {gpu.name} has none "
                             f"in the registry")
        seqs = math.ceil(batch)
        heads = math.ceil(m.num_attention_heads / tp)
        # the programs per split: the kernel groups up to heads_per_program query heads on the one latent KV head
        programs = seqs * math.ceil(heads / min(int(k["heads_per_program"]), heads))
        # the split rule's token grid, from the config's KV heads (SGLang's model_config.get_num_kv_heads(tp))
        kv_heads = max(1, m.num_key_value_heads // tp)
        group = heads // kv_heads
        token_grid = seqs * (heads if group == 1 else math.ceil(heads / min(int(k["heads_per_program"]), group)))
        cores = int(gpu.sm_count * max(math.log2(context / 64), 1.0))
        splits = min(int(k["max_kv_splits"]), math.ceil(cores / token_grid))
        block = int(k["min_block_kv"])
        per_program = math.ceil(math.ceil(context / splits) / block) * block
        waves = math.ceil(programs * splits / (gpu.sm_count * int(k["programs_per_sm"])))
        # each wave pays a fixed time per layer besides its walk (s_per_program: an effective time; the programs' start,
        # the splits' partial results and the reduce kernel SGLang launches after each layer's splits may be part of it)
        return layers * waves * (float(k["s_per_program"]) + per_program * float(k["s_per_token"]))

    def split_kv_decode_beyond_read_s(self, m, gpu, batch: float, context: int, layers: int, tp: int,
                                      kv_read_s: float) -> float:
        """What the split-KV decode kernel (split_kv_decode_s) takes beyond ``kv_read_s``, the roofline's read of the
        same KV cache, which the step already charges; never negative (a kernel faster than its read is bandwidth-bound).
        perf's step and the simulator's both add this."""
        return max(0.0, self.split_kv_decode_s(m, gpu, batch, context, layers, tp) - kv_read_s)

    def memory_efficiency(self, fmt: str, gpu=None) -> float:
        """Achieved / datasheet memory bandwidth for weights stored in ``fmt`` (a calc.memory WEIGHT_FORMATS key), on
        ``gpu`` (a registry.GPU) where given: × hbm_bandwidth_factor if its memory is HBM.

        A format without a share of its own that holds 4-bit weights and runs weight-only on this GPU
        (NF4 everywhere; MXFP4 and NVFP4 where the GPU has no FP4 tensor cores, so its kernels dequantize to 16-bit
        math, as GPTQ's and AWQ's do) takes the profile's ``int4`` share (W4A16, fitted on GPTQ/AWQ kernels), not the
        16-bit default: otherwise it would decode faster than INT4 with more bytes. gpt-oss's checkpoint as
        ``mxfp4-experts`` keeps the default, on which vLLM's gpt-oss runs were fitted; recorded as ``mxfp4`` (SGLang's
        runs of the same model) it takes the 4-bit share before Blackwell (data page: the same checkpoint read two ways)."""
        e = float(self._mem.get(fmt, self._mem.get("int4" if _weight_only_4bit(fmt, gpu) else "default",
                                                   self._mem["default"])))
        if gpu is not None and (gpu.memory_type or "").upper().startswith("HBM"):
            e *= self.hbm_bandwidth_factor
        return e

    def fp16_accumulate(self, fmt: str | None) -> bool:
        """Whether this engine's matmuls for weights in ``fmt`` run in FP16 with FP16 accumulation: for engines that
        accumulate in FP16, FP16 weights and GGUF formats (dequantized to FP16); BF16 math has no FP16-accumulate mode."""
        if not self.accumulates_in_fp16 or fmt is None:
            return False
        from .memory import WEIGHT_FORMATS  # noqa: PLC0415 (engines stays importable without the memory model)
        return fmt == "fp16" or WEIGHT_FORMATS[fmt].gguf

    def peak_flops(self, gpu, dtype: str, fmt: str | None = None) -> float | None:
        """The dense tensor peak this engine's matmuls in ``dtype`` for weights in ``fmt`` run against on ``gpu``."""
        return matmul_peak_flops(gpu, dtype, self.fp16_accumulate(fmt))

    def compute_efficiency(self, fmt: str, gpu=None) -> float:
        """Achieved / datasheet dense tensor-core FLOPS for the matmuls of weights in ``fmt`` (FP8 weights are
        calibrated separately from bf16 ones: an FP8 GEMM reaches a different share of its peak), on ``gpu`` (a
        registry.GPU) where given: × its matmul_factor, the share of its datasheet a plain large matmul measurably
        reaches there relative to the H100 SXM (GeForce cards above their spec clock, MI300X about half)."""
        e = float(self._comp.get(fmt, self._comp["default"]))
        return e * gpu.matmul_factor if gpu is not None else e

    def decode_compute_efficiency(self, fmt: str, gpu=None) -> float:
        """compute_efficiency for the matmuls of a step that holds no prompt tokens: the variant's own decode share
        for ``fmt`` where it has one (decode_compute_efficiency), else the same figure."""
        if fmt not in self._decode_comp:
            return self.compute_efficiency(fmt, gpu)
        e = float(self._decode_comp[fmt])
        return e * gpu.matmul_factor if gpu is not None else e


def matmul_peak_flops(gpu, dtype: str, fp16_accumulate: bool = False) -> float | None:
    """The dense tensor peak for matmuls in ``dtype`` on ``gpu``: with ``fp16_accumulate`` (FP16 math accumulated in
    FP16, EngineProfile.fp16_accumulate) the FP16-accumulate rate, twice the FP32-accumulate one on GeForce cards;
    else the registry's peak."""
    if fp16_accumulate:
        return gpu.fp16_accumulate_flops()
    return gpu.peak_flops(dtype)


ENGINES = tuple(k for k in _data()["engines"])


@cache
def profile(key: str = DEFAULT_ENGINE) -> EngineProfile:
    """The profile of an engine key, or of one of its older releases as "key@variant" (e.g. "trt-llm@v0.6": the
    same fitted figures with that release's kernel behaviour, from the entry's ``variants``)."""
    base, _, variant = key.partition("@")
    try:
        entry = _data()["engines"][base]
    except KeyError:
        raise KeyError(f"unknown engine {key!r}; valid: {', '.join(ENGINES)}") from None
    if not variant:
        return EngineProfile(key, entry)
    variants = entry.get("variants", {})
    if variant not in variants:
        raise KeyError(f"engine {base!r} has no variant {variant!r}; it has: {', '.join(variants) or 'none'}")
    return EngineProfile(key, entry, variants[variant])


def entry(key: str) -> dict:
    """The raw registry entry (with its sources), for the data page."""
    return _data()["engines"][key]
