"""Lab for chapter 11: attention kernels and mixture-of-experts layers, measured.

Measures, on one GPU (or a CPU, labelled as such):
  - attention: PyTorch's scaled_dot_product_attention with each backend forced in turn (math, memory-efficient,
    flash, cuDNN; torch.nn.attention.sdpa_kernel), over sequence length at fixed batch and heads, prefill-shaped
    (N queries over N keys, causal) and decode-shaped (1 query over N keys, at batch 1 and at --attn-batch), with
    grouped-query attention when --attn-kv-heads < --attn-heads: time (p10 and median of the repeats; on a GPU a
    decode sample is --decode-inner back-to-back calls between two CUDA events, sdpa_kernel entered outside the
    timed region), the K+V bandwidth a decode call achieves, and the memory the call allocates (GPU: peak
    allocated above the inputs; CPU: bytes the profiler sees allocated during the call, frees ignored).
    A backend this build or device lacks is recorded as unsupported, never silently replaced; the backend
    PyTorch picks by itself (torch._fused_sdp_choice) is recorded for every shape, and for each backend the one
    whose aten op a profiled call shows ("ran"; on a GPU also its top CUDA kernels) and how K/V reached it ("kv").
    A backend that refuses enable_gqa (torch 2.11's memory-efficient kernel) is run again on K/V repeated to H
    heads inside the timed call, its time and memory including the copies ("kv": "repeated"). On the same axes, calc's byte
    counts (calc.memory.attention_scores_bytes, attention_io_bytes): the score matrix the math path
    materializes, B x H x N_q x N_k x element size (on CUDA the math path upcasts fp16/bf16 to fp32 first: a
    second line at 4 bytes), and the inputs + output, B x (2 H N_q + 2 H_kv N_k) x d x element size;
  - moe-time: one MoE layer (top-k softmax router, SwiGLU experts, optional shared expert; Mixtral-8x7B- and
    DeepSeek-V3-like shapes, scaled to fit) against a dense SwiGLU layer with the same active parameters:
    tokens/s over the number of tokens in the batch, from the p10 and the median of --moe-repeats timings
    (weights drawn directly in the target dtype on the device); on a GPU the figure draws each layer's datasheet
    roofline beside it (the weights it reads: the MoE layer only the experts the step touched);
  - moe-bytes: bytes of expert weights one decode step must read vs batch: the distinct experts the routed
    tokens touch (counted), with calc's expected fraction 1 - (1 - k/E)^batch (calc.perf.experts_touched_fraction
    for the model in calc's registry) on the same axes, for uniform and for skewed routing;
  - moe-load: tokens per expert for a batch of tokens under random and skewed routing (the load histogram).
Data goes to <out>/data/ch11-<device>.json (with provenance), figures to <out>/figures/ch11-<device>-<name>_{zh,en}.svg.
The router here is a plain softmax top-k on random weights (DeepSeek-V3 itself scores with a sigmoid, limits
each token to 4 of 8 expert groups and adds a bias per expert); the expert loop is plain PyTorch, not a fused
grouped GEMM: the shapes and bytes are right, the speeds are PyTorch's, not a serving engine's.

    python labs/ch11_attention_moe.py                 # H100/H200 sizes, bf16, on the GPU (budget: under 3 minutes)
    python labs/ch11_attention_moe.py --quick         # tiny shapes on the CPU, under a minute (the tests run this)
    python labs/ch11_attention_moe.py --plot-only     # re-render figures from the data files in <out>/data/
"""

from __future__ import annotations

import sys
from pathlib import Path

import common
import torch
import torch.nn.functional as F

LAB = "ch11-attention-moe"
DEFAULT_OUT = common.REPO / "docs" / "assets" / "labs" / LAB
QUICK_OUT = common.REPO / "labs" / ".quick-out" / LAB
PARTS = ("attention", "moe-time", "moe-bytes", "moe-load")
BACKENDS = ("math", "efficient", "flash", "cudnn")
SHAPES = ("prefill", "decode")
ROUTINGS = ("random", "skewed")

# MoE layer shapes: experts E and top-k as in the real models (routing statistics depend only on them); hidden
# and expert widths from calc's registry on a GPU, divided by `scale` on a CPU. calc_model: the registry key
# whose E and k give calc's prediction.
MOE_SHAPES = {
    "mixtral": {"calc_model": "mixtral-8x7b", "label": "Mixtral-8x7B"},
    "deepseek": {"calc_model": "deepseek-v3", "label": "DeepSeek-V3"},
}


def moe_shape(name: str, scale: int) -> dict:
    """E, k, hidden, expert width, shared width of a registry model, widths divided by `scale`."""
    from calc import registry

    m = registry.get_model(MOE_SHAPES[name]["calc_model"])
    return {"name": name, "label": MOE_SHAPES[name]["label"], "calc_model": MOE_SHAPES[name]["calc_model"],
            "experts": m.num_experts, "top_k": m.num_experts_per_tok, "hidden": max(8, m.hidden_size // scale),
            "expert_width": max(8, m.moe_intermediate_size // scale),
            "shared_width": m.shared_expert_intermediate_size // scale, "scale": scale}


# ---------------------------------------------------------------------------------------------------------
# Attention


def sdpa_backend(name: str):
    """The SDPBackend enum member of a backend name, or None when this torch build does not have it."""
    from torch.nn.attention import SDPBackend

    member = {"math": "MATH", "efficient": "EFFICIENT_ATTENTION", "flash": "FLASH_ATTENTION",
              "cudnn": "CUDNN_ATTENTION"}[name]
    return getattr(SDPBackend, member, None)


def default_choice(q, k, v, causal: bool) -> str | None:
    """The backend PyTorch would pick with every backend enabled (its private _fused_sdp_choice), by name."""
    try:
        from torch.nn.attention import SDPBackend

        idx = torch._fused_sdp_choice(q, k, v, is_causal=causal)
        for name in BACKENDS:
            member = sdpa_backend(name)
            if member is not None and int(member) == int(idx):
                return name
        return {int(SDPBackend.ERROR): "error"}.get(int(idx), str(int(idx)))
    except Exception as e:  # a private function: gone or changed in some version
        return f"unknown ({type(e).__name__})"


def math_elem_bytes(dtype, device: torch.device) -> int:
    """Bytes per score element the math path really materializes: on CUDA it upcasts fp16/bf16 inputs to fp32
    before QK^T unless torch.backends.cuda.allow_fp16_bf16_reduction_math_sdp(True) (PyTorch attention.cpp)."""
    elem = torch.empty((), dtype=dtype).element_size()
    if device.type == "cuda" and dtype in (torch.float16, torch.bfloat16):
        allowed = getattr(torch.backends.cuda, "fp16_bf16_reduction_math_sdp_allowed", lambda: False)()
        return elem if allowed else 4
    return elem


def attention_bytes(batch: int, heads: int, kv_heads: int, n_q: int, n_k: int, head_dim: int, elem: int,
                    math_elem: int | None = None) -> dict:
    """calc's byte counts the figure draws (calc.memory): the score matrix S = Q K^T the math path materializes
    (softmax(S) is a second one of the same size), at the input element size and at the one the math path uses,
    and the inputs + output every path must hold (K + V alone: what decode must read)."""
    from calc import memory

    return {"scores_bytes": memory.attention_scores_bytes(batch, heads, n_q, n_k, elem),
            "scores_bytes_math": memory.attention_scores_bytes(batch, heads, n_q, n_k, math_elem or elem),
            "qkvo_bytes": memory.attention_io_bytes(batch, heads, kv_heads, n_q, n_k, head_dim, elem),
            "kv_bytes": 2 * batch * kv_heads * n_k * head_dim * elem}


def allocated_during(fn, device: torch.device) -> int:
    """GPU: peak bytes allocated above what was allocated before the call. CPU: bytes the profiler sees allocated
    during the call (each allocation counted once, frees ignored): an upper bound on the peak, and what grows."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        base = torch.cuda.memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
        out = fn()
        torch.cuda.synchronize(device)
        peak = torch.cuda.max_memory_allocated(device) - base
        del out
        return int(peak)
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        fn()
    return int(sum(max(0, e.self_cpu_memory_usage) for e in prof.events()))


def time_calls(fn, device: torch.device, warmup: int, repeats: int, inner: int) -> list[float]:
    """Seconds per call: on a GPU each sample is `inner` back-to-back calls between two CUDA events, divided by
    `inner` (the host work of one call is hidden behind the previous call's kernels, as in a serving loop); on a
    CPU one call per sample (common.time_it)."""
    if device.type != "cuda" or inner <= 1:
        return common.time_it(fn, device, warmup=warmup, repeats=repeats)
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize(device)
    times = []
    for _ in range(repeats):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        for _ in range(inner):
            fn()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end) / 1e3 / inner)
    return times


# the aten op each backend dispatches to (torch/_C/_VariableFunctions, aten/src/ATen/native/transformers): what a
# profiled call shows is the backend that really ran, whatever was asked for
RAN_OPS = (("_scaled_dot_product_cudnn_attention", "cudnn"), ("_scaled_dot_product_efficient_attention", "efficient"),
           ("_scaled_dot_product_flash_attention", "flash"), ("_scaled_dot_product_attention_math", "math"))


def what_ran(fn, device: torch.device) -> dict:
    """Profile one call: the SDPA backend whose aten op ran ("ran"), those ops, and on a GPU the names of the CUDA
    kernels that took the most device time (at most 3, names cut at 120 characters)."""
    from torch.profiler import ProfilerActivity, profile

    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    with profile(activities=activities) as prof:
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
    ops = sorted({e.name for e in prof.events() if "scaled_dot_product" in e.name or "_attention_forward" in e.name})
    ran = next((name for op, name in RAN_OPS if any(op in o for o in ops)), None)
    out = {"ran": ran, "ops": ops}
    if device.type == "cuda":
        times = {}
        for e in prof.events():
            t = getattr(e, "self_device_time_total", None) or getattr(e, "self_cuda_time_total", 0)
            if t and e.device_type.name == "CUDA":
                times[e.name] = times.get(e.name, 0) + t
        out["gpu_kernels"] = [n[:120] for n, _ in sorted(times.items(), key=lambda kv: -kv[1])[:3]]
    return out


def warning_texts(caught) -> list[str]:
    """The distinct warning messages PyTorch raised while refusing a call (why each backend said no), shortened."""
    texts = []
    for w in caught:
        text = str(w.message).split(" (Triggered internally")[0].strip()[:200]
        if text and text not in texts:
            texts.append(text)
    return texts[:6]


def measure_attention(shape: str, n: int, batch: int, heads: int, head_dim: int, dtype, device, backends, repeats,
                      warmup, kv_heads: int | None = None, inner: int = 1) -> dict:
    """One sequence length, one shape: every backend forced in turn. kv_heads < heads: grouped-query attention,
    as Llama-3 and most current models decode. Each backend is first called with the kv_heads K/V and
    enable_gqa=True; a backend that refuses that (in torch 2.11 the memory-efficient kernel accepts only equal head
    counts) is called again on K/V repeated to `heads` heads by repeat_interleave inside the timed call, as an eager
    model without enable_gqa does (time and memory then include the copy; "kv": "repeated", with why it refused).
    A profiled call records which backend really ran ("ran", from the aten op) and, on a GPU, its kernels."""
    import warnings

    from torch.nn.attention import sdpa_kernel

    kv_heads = kv_heads or heads
    gqa = kv_heads != heads
    n_q = n if shape == "prefill" else 1
    causal = shape == "prefill"
    g = torch.Generator(device=device).manual_seed(n)  # drawn on the device: no host RNG, no host copy
    q = torch.randn(batch, heads, n_q, head_dim, generator=g, device=device, dtype=dtype)
    k = torch.randn(batch, kv_heads, n, head_dim, generator=g, device=device, dtype=dtype)
    v = torch.randn(batch, kv_heads, n, head_dim, generator=g, device=device, dtype=dtype)
    try:
        choice = default_choice(q, k, v, causal) if not gqa else default_choice_gqa(q, k, v, causal)
    except Exception as e:
        choice = f"unknown ({type(e).__name__})"
    out = {"n_q": n_q, "n_k": n, "causal": causal, "kv_heads": kv_heads, "default_backend": choice,
           **attention_bytes(batch, heads, kv_heads, n_q, n, head_dim, q.element_size(), math_elem_bytes(dtype, device)),
           "by_backend": {}}
    if gqa:  # the K/V copies a call on repeated heads makes: H/H_kv times K and V
        out["repeated_kv_bytes"] = 2 * batch * heads * n * head_dim * q.element_size()
    group = heads // kv_heads

    def native():
        return F.scaled_dot_product_attention(q, k, v, is_causal=causal, **({"enable_gqa": True} if gqa else {}))

    def repeated():
        return F.scaled_dot_product_attention(q, k.repeat_interleave(group, dim=1), v.repeat_interleave(group, dim=1),
                                              is_causal=causal)

    reference = None
    for name in backends:
        member = sdpa_backend(name)
        if member is None:
            out["by_backend"][name] = {"unsupported": f"torch {torch.__version__} has no {name} backend"}
            continue
        row, refused, call = {}, None, native
        try:
            with sdpa_kernel([member]):  # entered once, outside the timed region
                with warnings.catch_warnings(record=True) as caught:
                    warnings.simplefilter("always")
                    try:
                        result = call()
                    except torch.cuda.OutOfMemoryError:
                        raise
                    except RuntimeError as e:  # "No available kernel": this backend refuses this call
                        refused = {"error": str(e).splitlines()[0][:200], "because": warning_texts(caught)}
                        if not gqa or name == "math":
                            raise
                        common.free_memory(device)
                        call = repeated
                        result = call()
                row["kv"] = "repeated" if call is repeated else ("enable_gqa" if gqa else "same_heads")
                if refused:
                    row["native_refused"] = refused
                if reference is None:
                    reference = result.float()
                    err = 0.0
                else:
                    err = float((result.float() - reference).abs().max())
                del result
                try:
                    row.update(what_ran(call, device))
                except Exception as e:  # the profiler is missing or broken here: say so, measure anyway
                    row.update({"ran": None, "ran_error": f"{type(e).__name__}: {str(e)[:160]}"})
                times = time_calls(call, device, warmup, repeats, inner)
                alloc = allocated_during(call, device)
        except torch.cuda.OutOfMemoryError as e:
            common.free_memory(device)
            out["by_backend"][name] = {**row, "oom": True, "error": str(e).splitlines()[0][:200]}
            continue
        except RuntimeError as e:  # "No viable backend": this device, dtype or shape is not supported by it
            common.free_memory(device)
            entry = {"unsupported": str(e).splitlines()[0][:200]}
            if refused and call is repeated:  # refused enable_gqa, then refused the repeated K/V as well
                entry.update({"native_refused": refused, "repeated_refused": True})
            elif refused:
                entry["because"] = refused["because"]
            out["by_backend"][name] = entry
            continue
        summary = common.summarize(times)
        row.update({"time_s": summary, "allocated_bytes": alloc, "max_abs_diff_vs_first": err})
        if shape == "decode":  # decode reads K and V once: achieved bandwidth at the best (p10) time
            row["kv_read_bytes_per_s"] = out["kv_bytes"] / summary["p10"]
        out["by_backend"][name] = row
    return out


def default_choice_gqa(q, k, v, causal: bool) -> str | None:
    """_fused_sdp_choice with enable_gqa=True where this torch accepts it."""
    try:
        from torch.nn.attention import SDPBackend

        idx = torch._fused_sdp_choice(q, k, v, is_causal=causal, enable_gqa=True)
        for name in BACKENDS:
            member = sdpa_backend(name)
            if member is not None and int(member) == int(idx):
                return name
        return {int(SDPBackend.ERROR): "error"}.get(int(idx), str(int(idx)))
    except Exception as e:
        return f"unknown ({type(e).__name__})"


# ---------------------------------------------------------------------------------------------------------
# Mixture of experts


class MoELayer(torch.nn.Module):
    """Top-k softmax router over E SwiGLU experts (+ an always-on shared expert when shared_width > 0).

    forward() loops over the experts a batch touches: gather its tokens, run the expert, scatter-add the
    weighted output. The weights of an expert no token chose are never read."""

    def __init__(self, hidden, expert_width, experts, top_k, shared_width=0, skew=0.0, dtype=None):
        super().__init__()
        self.top_k = top_k
        self.router = torch.nn.Linear(hidden, experts, bias=False, dtype=dtype)
        # drawn directly in the target dtype (on the current default device) and scaled in place: a full-size
        # DeepSeek-V3 layer is 11 B numbers, 22.5 GB in bf16, with no fp32 copy or temporary on the way
        self.w_gate = torch.nn.Parameter(torch.randn(experts, hidden, expert_width, dtype=dtype).mul_(hidden ** -0.5))
        self.w_up = torch.nn.Parameter(torch.randn(experts, hidden, expert_width, dtype=dtype).mul_(hidden ** -0.5))
        self.w_down = torch.nn.Parameter(torch.randn(experts, expert_width, hidden, dtype=dtype)
                                         .mul_(expert_width ** -0.5))
        self.shared = DenseMLP(hidden, shared_width, dtype=dtype) if shared_width else None
        # skewed routing: a fixed bias that favours low-numbered experts, -skew * ln(1 + e)
        self.register_buffer("bias", -skew * torch.log1p(torch.arange(experts, dtype=torch.float32)))

    def route(self, x):
        logits = self.router(x).float() + self.bias
        weights, chosen = torch.topk(torch.softmax(logits, dim=-1), self.top_k, dim=-1)
        return weights / weights.sum(-1, keepdim=True), chosen

    def forward(self, x):
        weights, chosen = self.route(x)
        out = torch.zeros_like(x)
        flat = chosen.flatten()
        for e in torch.unique(flat).tolist():
            token, slot = torch.nonzero(chosen == e, as_tuple=True)
            h = x[token]
            y = (F.silu(h @ self.w_gate[e]) * (h @ self.w_up[e])) @ self.w_down[e]
            out.index_add_(0, token, y * weights[token, slot].unsqueeze(-1).to(y.dtype))
        if self.shared is not None:
            out = out + self.shared(x)
        return out

    def expert_bytes(self) -> int:
        """Bytes of one routed expert's three matrices."""
        return (self.w_gate[0].numel() + self.w_up[0].numel() + self.w_down[0].numel()) * self.w_gate.element_size()

    def always_read_bytes(self) -> int:
        """Router + shared expert: read by every step whatever the routing."""
        shared = sum(p.numel() * p.element_size() for p in self.shared.parameters()) if self.shared else 0
        return self.router.weight.numel() * self.router.weight.element_size() + shared


class DenseMLP(torch.nn.Module):
    def __init__(self, hidden, width, dtype=None):
        super().__init__()
        self.gate = torch.nn.Linear(hidden, width, bias=False, dtype=dtype)
        self.up = torch.nn.Linear(hidden, width, bias=False, dtype=dtype)
        self.down = torch.nn.Linear(width, hidden, bias=False, dtype=dtype)

    def forward(self, x):
        return self.down(F.silu(self.gate(x)) * self.up(x))


def params_of(module) -> int:
    return sum(p.numel() for p in module.parameters())


def calc_touched_fraction(calc_model: str, tokens: int) -> float | None:
    """calc's expected share of a layer's routed experts that `tokens` tokens touch (uniform routing)."""
    try:
        from calc import perf, registry

        return perf.experts_touched_fraction(registry.get_model(calc_model), tokens)
    except Exception:
        return None


def measure_moe_time(shape: dict, tokens_list, dtype, device, repeats, warmup) -> dict:
    """Tokens/s of the MoE layer and of a dense layer with the MoE layer's active parameters, over batch size."""
    torch.manual_seed(0)
    with torch.device(device):  # random weights drawn on the device, in the target dtype
        moe = MoELayer(shape["hidden"], shape["expert_width"], shape["experts"], shape["top_k"],
                       shape["shared_width"], dtype=dtype)
        dense_width = shape["top_k"] * shape["expert_width"] + shape["shared_width"]
        dense = DenseMLP(shape["hidden"], dense_width, dtype=dtype)
    # active per token: the router, k routed experts, the shared expert
    active = params_of(moe.router) + shape["top_k"] * 3 * shape["hidden"] * shape["expert_width"] + (
        params_of(moe.shared) if moe.shared is not None else 0)
    out = {"moe_shape": shape, "params_total": params_of(moe), "params_active": active, "params_dense": params_of(dense),
           "weight_bytes_total": params_of(moe) * moe.w_gate.element_size(), "by_tokens": []}
    for tokens in tokens_list:
        x = torch.randn(tokens, shape["hidden"], device=device, dtype=dtype)
        row = {"tokens": tokens}
        for name, layer in (("moe", moe), ("dense", dense)):
            try:
                with torch.inference_mode():
                    times = common.time_it(lambda layer=layer, x=x: layer(x), device, warmup=warmup, repeats=repeats)
                summary = common.summarize(times)
                # median and p10: on a shared CPU a repeat that loses a scheduler slice takes ~10 ms longer, and
                # the median of few repeats can land on such samples; p10 is the undisturbed speed
                row[name] = {"time_s": summary, "tokens_per_s": tokens / summary["median"],
                             "tokens_per_s_p10": tokens / summary["p10"], "tokens_per_s_p90": tokens / summary["p90"]}
            except torch.cuda.OutOfMemoryError as e:
                common.free_memory(device)
                row[name] = {"oom": True, "error": str(e).splitlines()[0][:200]}
        with torch.inference_mode():
            _, chosen = moe.route(x)
        row["experts_touched"] = int(torch.unique(chosen).numel())
        out["by_tokens"].append(row)
        print(f" {tokens}", end="", flush=True)
    del moe, dense
    common.free_memory(device)
    return out


def router_only(shape: dict, routing: str, skew: float, device) -> MoELayer:
    """A MoE layer whose experts are 1 wide: only the router matters for counting (same E, k, hidden)."""
    torch.manual_seed(1)
    return MoELayer(shape["hidden"], 1, shape["experts"], shape["top_k"],
                    skew=skew if routing == "skewed" else 0.0, dtype=torch.float32).to(device)


def calc_touched(shape: dict, batch: int, expert_bytes: int) -> dict | None:
    """calc's expectation for `batch` tokens under uniform routing: the share of a layer's experts touched, how many,
    and their bytes at the full-size expert size (None where calc cannot say)."""
    frac = calc_touched_fraction(shape["calc_model"], batch)
    if frac is None:
        return None
    return {"touched_fraction": frac, "touched": frac * shape["experts"],
            "expert_bytes": frac * shape["experts"] * expert_bytes}


def full_expert_bytes_bf16(calc_model: str) -> int:
    """The bytes of one routed expert (gate, up and down projections) of calc's full-size model, in bf16."""
    from calc import registry

    m = registry.get_model(calc_model)
    return 3 * m.hidden_size * m.moe_intermediate_size * 2


def measure_moe_bytes(shape: dict, batches, trials, skew, device) -> dict:
    """Distinct experts a decode step of `batch` tokens touches (mean over trials), per routing, and the bytes of
    expert weights that makes at the full-size shape; calc's expectation for uniform routing beside it."""
    expert_bytes_bf16 = full_expert_bytes_bf16(shape["calc_model"])
    out = {"moe_shape": shape, "experts": shape["experts"], "top_k": shape["top_k"], "expert_bytes_full_bf16": expert_bytes_bf16,
           "by_batch": []}
    layers = {r: router_only(shape, r, skew, device) for r in ROUTINGS}
    g = torch.Generator(device="cpu").manual_seed(2)
    for batch in batches:
        row = {"batch": batch}
        for routing, layer in layers.items():
            counts = []
            for _ in range(trials):
                x = torch.randn(batch, shape["hidden"], generator=g).to(device)
                with torch.inference_mode():
                    _, chosen = layer.route(x)
                counts.append(int(torch.unique(chosen).numel()))
            mean = sum(counts) / len(counts)
            row[routing] = {"touched_mean": mean, "touched_min": min(counts), "touched_max": max(counts),
                            "expert_bytes": mean * expert_bytes_bf16}
        predicted = calc_touched(shape, batch, expert_bytes_bf16)
        if predicted is not None:
            row["predicted"] = predicted
        out["by_batch"].append(row)
    return out


def refresh_prediction(point, prov) -> None:
    """--repredict: calc's byte counts of an attention point; calc's expert size, and the expected touched share,
    for each batch of an experts-touched point (the measured touched counts are kept, their bytes re-derived)."""
    if point.get("kind") == "attention" and "scores_bytes" in point:
        s = prov["settings"]
        elem = torch.empty((), dtype=common.DTYPES[s["dtype"]]).element_size()
        math_elem = round(point["scores_bytes_math"] / point["scores_bytes"] * elem)  # as the run's math path had it
        point.update(attention_bytes(point["batch"], s["attn_heads"], point["kv_heads"], point["n_q"], point["n_k"],
                                     s["attn_head_dim"], elem, math_elem))
        return
    shape = point.get("moe_shape")
    if not shape or "by_batch" not in point:
        return
    point["expert_bytes_full_bf16"] = full_expert_bytes_bf16(shape["calc_model"])
    for row in point["by_batch"]:
        for routing in ROUTINGS:
            if routing in row:
                row[routing]["expert_bytes"] = row[routing]["touched_mean"] * point["expert_bytes_full_bf16"]
        row.pop("predicted", None)
        predicted = calc_touched(shape, row["batch"], point["expert_bytes_full_bf16"])
        if predicted is not None:
            row["predicted"] = predicted


def measure_moe_load(shape: dict, tokens: int, skew: float, device) -> dict:
    """Tokens routed to each expert (each token counts once per chosen expert) for random and skewed routing."""
    out = {"moe_shape": shape, "tokens": tokens, "ideal_per_expert": tokens * shape["top_k"] / shape["experts"]}
    g = torch.Generator(device="cpu").manual_seed(3)
    x = torch.randn(tokens, shape["hidden"], generator=g).to(device)
    for routing in ROUTINGS:
        layer = router_only(shape, routing, skew, device)
        with torch.inference_mode():
            _, chosen = layer.route(x)
        hist = torch.bincount(chosen.flatten(), minlength=shape["experts"]).tolist()
        out[routing] = {"per_expert": hist, "max_over_mean": max(hist) / out["ideal_per_expert"],
                        "idle_experts": sum(1 for h in hist if h == 0)}
    return out


# ---------------------------------------------------------------------------------------------------------
# Figures

TEXT = {
    "seq_len": {"zh": "序列长度 N（token）", "en": "sequence length N (tokens)"},
    "time_ms": {"zh": "时间（毫秒；线：p10，带：p10–p90）", "en": "time (ms; line: p10, band: p10–p90)"},
    "alloc": {"zh": "调用期间分配的内存（字节）", "en": "memory allocated by the call (bytes)"},
    "alloc_gpu": {"zh": "调用期间的峰值显存（字节）", "en": "peak memory during the call (bytes)"},
    "scores": {"zh": "calc：分数矩阵 B·H·N_q·N_k·元素字节", "en": "calc: score matrix B·H·N_q·N_k·bytes"},
    "scores_math": {"zh": "calc：分数矩阵，math 路径升为 fp32", "en": "calc: score matrix, math path upcast to fp32"},
    "qkvo": {"zh": "calc：Q、K、V、O 本身", "en": "calc: Q, K, V, O themselves"},
    "kv_rep": {"zh": "K、V 复制到 H 个头（math 路径的元素字节）", "en": "K, V repeated to H heads (math path's bytes/element)"},
    "b1": {"zh": "B=1", "en": "B=1"},
    "kv_bound": {"zh": "K+V 字节 ÷ 数据手册带宽 {bw:.1f} TB/s（虚线 B=1）",
                 "en": "K+V bytes ÷ datasheet {bw:.1f} TB/s (dashed: B=1)"},
    "flop_bound": {"zh": "因果注意力 FLOPs ÷ 数据手册 {dt} 稠密 {pf:.1f} TFLOPS",
                   "en": "causal attention FLOPs ÷ datasheet dense {dt} {pf:.1f} TFLOPS"},
    "prefill": {"zh": "预填充形状（N 个查询，因果）", "en": "prefill-shaped (N queries, causal)"},
    "decode": {"zh": "解码形状（1 个查询）", "en": "decode-shaped (1 query)"},
    "attn_title": {"zh": "注意力后端：B={b}，H={h}，H_kv={hkv}，d={d}，{dt}",
                   "en": "Attention backends: B={b}, H={h}, H_kv={hkv}, d={d}, {dt}"},
    "oom": {"zh": "显存不足", "en": "OOM"},
    "not_run": {"zh": "{name}：未运行（没有可用的内核）", "en": "{name}: not run (no kernel for this call)"},
    "repeated": {"zh": "（K/V 先复制到 H 个头）", "en": " (K/V repeated to H heads first)"},
    "ran_other": {"zh": "（实际运行：{ran}）", "en": " (actually ran: {ran})"},
    "tokens": {"zh": "一步的 token 数（批大小）", "en": "tokens in the step (batch size)"},
    "tok_s": {"zh": "吞吐（token/秒；实线：p10 时间，点线：中位数）", "en": "tokens/s (solid: p10 time, dotted: median)"},
    "moe": {"zh": "MoE 层（{e} 专家选 {k}）", "en": "MoE layer ({k} of {e} experts)"},
    "dense": {"zh": "同激活参数的稠密层", "en": "dense layer, same active parameters"},
    "moe_roof": {"zh": "屋顶线：读被用到的专家 ÷ 带宽，或 FLOPs ÷ 峰值",
                 "en": "roofline: experts touched read / bandwidth, or FLOPs / peak"},
    "dense_roof": {"zh": "屋顶线：读全部权重 ÷ 带宽，或 FLOPs ÷ 峰值",
                   "en": "roofline: all weights read / bandwidth, or FLOPs / peak"},
    "moe_time_title": {"zh": "MoE 层与稠密层：{label} 形状 ÷{s}", "en": "MoE vs dense layer: {label} shape ÷{s}"},
    "moe_time_title_full": {"zh": "MoE 层与稠密层：{label} 形状", "en": "MoE vs dense layer: {label} shape"},
    "batch": {"zh": "批大小（解码一步的 token 数）", "en": "batch (tokens in one decode step)"},
    "expert_gb": {"zh": "一层要读的专家权重（GB，全尺寸，bf16）", "en": "expert weights read per layer (GB, full size, bf16)"},
    "random": {"zh": "随机路由（计数）", "en": "random routing (counted)"},
    "skewed": {"zh": "偏斜路由（计数）", "en": "skewed routing (counted)"},
    "calc": {"zh": "calc：1 − (1 − k/E)^批大小", "en": "calc: 1 − (1 − k/E)^batch"},
    "bytes_title": {"zh": "解码一步读多少专家权重", "en": "Expert weights one decode step reads"},
    "expert": {"zh": "专家编号", "en": "expert"},
    "expert_sorted": {"zh": "专家（按负载从高到低排序）", "en": "experts, sorted by load"},
    "load": {"zh": "分到的 token 数", "en": "tokens routed"},
    "ideal": {"zh": "均匀时 = N·k/E", "en": "uniform = N·k/E"},
    "load_title": {"zh": "{label}：{n} 个 token 的专家负载", "en": "{label}: expert load for {n} tokens"},
    "rand_short": {"zh": "随机（最大/均值 {r:.2f}）", "en": "random (max/mean {r:.2f})"},
    "skew_short": {"zh": "偏斜（最大/均值 {r:.2f}）", "en": "skewed (max/mean {r:.2f})"},
}
BACKEND_NAMES = {"math": {"zh": "math（朴素）", "en": "math (naive)"},
                 "efficient": {"zh": "memory-efficient", "en": "memory-efficient"},
                 "flash": {"zh": "flash", "en": "flash"}, "cudnn": {"zh": "cuDNN", "en": "cuDNN"}}
COLORS = {"math": "#C44E52", "efficient": "#DD8452", "flash": "#4C72B0", "cudnn": "#55A868",
          "random": "#4C72B0", "skewed": "#C44E52", "moe": "#8172B2", "dense": "#55A868"}


def t(key, lang, **kw):
    return TEXT[key][lang].format(**kw)


def roofline_tokens_per_s(point: dict, name: str, rows: list[dict], prov: dict) -> list[float] | None:
    """The datasheet roofline of one layer, as tokens/s per row: tokens / max(weight bytes read / bandwidth,
    2 x active parameters x tokens / dense peak). The dense layer reads all its weights; the MoE layer reads the
    router, the shared expert and the experts the step touched (the row's own count). From the data at render
    time; None without a datasheet (a CPU run)."""
    sheet = prov.get("datasheet") or {}
    dtype = prov.get("settings", {}).get("dtype")
    peak, bandwidth = sheet.get(f"{dtype}_dense_flops"), sheet.get("memory_bandwidth_bytes_per_s")
    if not (peak and bandwidth and point.get("params_total")):
        return None
    sh = point["moe_shape"]
    elem = point["weight_bytes_total"] / point["params_total"]
    expert = 3 * sh["hidden"] * sh["expert_width"]
    always = point["params_active"] - sh["top_k"] * expert  # router + shared expert
    out = []
    for r in rows:
        if name == "dense":
            params_read, active = point["params_dense"], point["params_dense"]
        else:
            params_read, active = always + r["experts_touched"] * expert, point["params_active"]
        seconds = max(params_read * elem / bandwidth, 2 * active * r["tokens"] / peak)
        out.append(r["tokens"] / seconds)
    return out


def backend_label(name: str, rows: list[dict], lang: str) -> str:
    """A backend's legend entry, from what its rows record: K/V repeated before the call, or another backend that
    really ran (data from before the lab recorded these has neither, and gets the plain name)."""
    label = BACKEND_NAMES[name][lang]
    if any(r.get("kv") == "repeated" for r in rows):
        label += t("repeated", lang)
    ran = sorted({r["ran"] for r in rows if r.get("ran") and r["ran"] != name})
    if ran:
        label += t("ran_other", lang, ran=", ".join(ran))
    return label


def plot(data, lang):
    import matplotlib.pyplot as plt

    prov, points = data["provenance"], data["points"]
    footer = common.describe_run(prov, lang)
    s = prov["settings"]
    gpu = prov["device"]["kind"] == "cuda"
    figures = {}

    att = [p for p in points if p.get("kind") == "attention" and common.succeeded(p)]
    if att:
        fig, axes = plt.subplots(2, 2, figsize=(11, 11))  # tall: each legend sits below its axes
        for col, shape in enumerate(SHAPES):
            main_b = s["attn_batch"]
            pts = sorted((p for p in att if p["shape"] == shape and p.get("batch", main_b) == main_b),
                         key=lambda p: p["n"])
            if not pts:
                continue
            ax_t, ax_m = axes[0][col], axes[1][col]
            b1 = sorted((p for p in att if p["shape"] == shape and p.get("batch") == 1 and main_b != 1),
                        key=lambda p: p["n"])
            for name in BACKENDS:
                ok = [p for p in pts if "time_s" in p["by_backend"].get(name, {})]
                label = backend_label(name, [p["by_backend"][name] for p in ok], lang)
                if ok:
                    xs = [p["n"] for p in ok]
                    ts = [p["by_backend"][name]["time_s"] for p in ok]
                    ax_t.plot(xs, [1e3 * x["p10"] for x in ts], marker="o", ms=4, color=COLORS[name], label=label)
                    ax_t.fill_between(xs, [1e3 * x["p10"] for x in ts], [1e3 * x["p90"] for x in ts],
                                      color=COLORS[name], alpha=0.2, lw=0)
                    ax_m.plot(xs, [max(1, p["by_backend"][name]["allocated_bytes"]) for p in ok],
                              marker="o", ms=4, color=COLORS[name], label=label)
                elif any("unsupported" in p["by_backend"].get(name, {}) for p in pts):
                    # no point ran: say so in the legend rather than leave the reader to look for a missing line
                    ax_t.plot([], [], ls="none", marker="x", color=COLORS[name],
                              label=t("not_run", lang, name=BACKEND_NAMES[name][lang]))
                ok1 = [p for p in b1 if "time_s" in p["by_backend"].get(name, {})]
                if ok1:
                    ax_t.plot([p["n"] for p in ok1], [1e3 * p["by_backend"][name]["time_s"]["p10"] for p in ok1],
                              marker="^", ms=3, ls="--", lw=0.8, color=COLORS[name],
                              label=f"{BACKEND_NAMES[name][lang]}, {t('b1', lang)}")
                for p in pts:
                    if p["by_backend"].get(name, {}).get("oom"):
                        ax_m.annotate(t("oom", lang), (p["n"], p.get("scores_bytes_math", p["scores_bytes"])),
                                      color=COLORS[name], fontsize=7)
            ax_m.plot([p["n"] for p in pts], [p["scores_bytes"] for p in pts], ls="--", color="#333", lw=1,
                      label=t("scores", lang))
            if any(p.get("scores_bytes_math", p["scores_bytes"]) != p["scores_bytes"] for p in pts):
                ax_m.plot([p["n"] for p in pts], [p["scores_bytes_math"] for p in pts], ls="-.", color="#C44E52",
                          lw=1, label=t("scores_math", lang))
            ax_m.plot([p["n"] for p in pts], [p["qkvo_bytes"] for p in pts], ls=":", color="#333", lw=1,
                      label=t("qkvo", lang))
            if any(p.get("kv_heads", s["attn_heads"]) != s["attn_heads"] for p in pts):
                # GQA: the math path repeats K and V to H heads (after its fp32 upcast on CUDA); the bytes of those
                # copies, from the point's own K/V bytes, heads and element sizes
                ax_m.plot([p["n"] for p in pts],
                          [p["kv_bytes"] * s["attn_heads"] / p["kv_heads"] * p["scores_bytes_math"] / p["scores_bytes"]
                           for p in pts], ls=(0, (1, 3)), color="#C44E52", lw=1, label=t("kv_rep", lang))
            for ax in (ax_t, ax_m):
                common.log_axis(ax, "x", [p["n"] for p in pts], base=2)
                common.log_axis(ax, "y")
                ax.set_xlabel(t("seq_len", lang))
            sheet = prov.get("datasheet") or {}
            peak = sheet.get(f"{s['dtype']}_dense_flops")
            bandwidth = sheet.get("memory_bandwidth_bytes_per_s")
            if shape == "decode" and bandwidth:  # the K/V read bound: K + V bytes / the datasheet's bandwidth
                for rows, ls in ((pts, "-"), (b1, "--")):
                    if rows:
                        ax_t.plot([p["n"] for p in rows], [1e3 * p["kv_bytes"] / bandwidth for p in rows], ls=ls,
                                  color="#333", lw=0.8, label=t("kv_bound", lang, bw=bandwidth / 1e12) if ls == "-"
                                  else None)
            if shape == "prefill" and peak:  # the compute bound: calc.perf's count for a causal pass,
                # its scored pairs (N(N+1)/2) × 2·H·(d_qk + d_v) FLOPs each, over the datasheet's dense peak
                from calc import perf as calc_perf

                flops = [p.get("batch", main_b) * calc_perf._attention_pairs(p["n"], None) * 2 * s["attn_heads"]
                         * 2 * s["attn_head_dim"] for p in pts]
                ax_t.plot([p["n"] for p in pts], [1e3 * f / peak for f in flops], ls="-", color="#333", lw=0.8,
                          label=t("flop_bound", lang, pf=peak / 1e12, dt=s["dtype"]))
            ax_t.set_title(t(shape, lang))
            ax_t.set_ylabel(t("time_ms", lang))
            ax_m.set_ylabel(t("alloc_gpu" if gpu else "alloc", lang))
            for ax in (ax_t, ax_m):  # below the axes: inside, the legends hid lines and points
                ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=2)
        fig.suptitle(t("attn_title", lang, b=s["attn_batch"], h=s["attn_heads"],
                       hkv=s.get("attn_kv_heads") or s["attn_heads"], d=s["attn_head_dim"], dt=s["dtype"]))
        fig.tight_layout()
        figures["attention"] = (fig, footer)

    mt = [p for p in points if p.get("kind") == "moe-time" and common.succeeded(p)]
    if mt:
        fig, axes = plt.subplots(1, len(mt), figsize=(5.5 * len(mt), 4.8), squeeze=False)
        for ax, p in zip(axes[0], mt, strict=True):
            sh = p["moe_shape"]
            for name in ("moe", "dense"):
                rows = [r for r in p["by_tokens"] if "tokens_per_s" in r.get(name, {})]
                label = t("moe", lang, e=sh["experts"], k=sh["top_k"]) if name == "moe" else t("dense", lang)
                xs = [r["tokens"] for r in rows]
                p10 = [r["tokens"] / r[name]["time_s"]["p10"] for r in rows]
                p90 = [r["tokens"] / r[name]["time_s"]["p90"] for r in rows]
                ax.plot(xs, p10, marker="o", ms=4, color=COLORS[name], label=label)
                ax.plot(xs, [r[name]["tokens_per_s"] for r in rows], ls=":", lw=1, color=COLORS[name])
                ax.fill_between(xs, p90, p10, color=COLORS[name], alpha=0.2, lw=0)
                bound = roofline_tokens_per_s(p, name, rows, prov)
                if bound:
                    ax.plot(xs, bound, ls="--", lw=0.8, color=COLORS[name],
                            label=t("moe_roof" if name == "moe" else "dense_roof", lang))
            common.log_axis(ax, "x", [r["tokens"] for r in p["by_tokens"]], base=2)
            common.log_axis(ax, "y")
            ax.set_xlabel(t("tokens", lang))
            ax.set_ylabel(t("tok_s", lang))
            ax.set_title(t("moe_time_title" if sh["scale"] != 1 else "moe_time_title_full", lang, label=sh["label"],
                           s=sh["scale"]), fontsize=10)
            # below the axes: inside, the legend hid points at small batches
            ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.2))
        fig.tight_layout()
        figures["moe-throughput"] = (fig, footer)

    mb = [p for p in points if p.get("kind") == "moe-bytes" and common.succeeded(p)]
    if mb:
        fig, axes = plt.subplots(1, len(mb), figsize=(5 * len(mb), 3.8), squeeze=False)
        for ax, p in zip(axes[0], mb, strict=True):
            rows = p["by_batch"]
            xs = [r["batch"] for r in rows]
            for routing in ROUTINGS:
                ax.plot(xs, [r[routing]["expert_bytes"] / 1e9 for r in rows], marker="o", ms=4, ls="none",
                        color=COLORS[routing], label=t(routing, lang))
            pred = [(r["batch"], r["predicted"]["expert_bytes"] / 1e9) for r in rows if r.get("predicted")]
            if pred:
                ax.plot(*zip(*pred, strict=True), ls="--", color="#333", lw=1, label=t("calc", lang))
            full = p["experts"] * p["expert_bytes_full_bf16"] / 1e9
            ax.axhline(full, color="#999", lw=0.8)
            common.log_axis(ax, "x", xs, base=2)
            ax.set_ylim(0, full * 1.08)
            ax.set_xlabel(t("batch", lang))
            ax.set_ylabel(t("expert_gb", lang))
            ax.set_title(f"{p['moe_shape']['label']}: k={p['top_k']}, E={p['experts']}", fontsize=10)
            ax.legend(fontsize=7, loc="lower right")
        fig.suptitle(t("bytes_title", lang))
        fig.tight_layout()
        figures["moe-bytes"] = (fig, footer + (" · 路由器为随机权重" if lang == "zh" else " · random router weights"))

    ml = [p for p in points if p.get("kind") == "moe-load" and common.succeeded(p)]
    if ml:
        fig, axes = plt.subplots(1, len(ml), figsize=(5 * len(ml), 3.6), squeeze=False)
        for ax, p in zip(axes[0], ml, strict=True):
            n_exp = len(p["random"]["per_expert"])
            xs = list(range(n_exp))
            labels = {r: t("rand_short" if r == "random" else "skew_short", lang, r=p[r]["max_over_mean"])
                      for r in ROUTINGS}
            if n_exp <= 16:  # side by side bars per expert
                for routing, dx in (("random", -0.2), ("skewed", 0.2)):
                    ax.bar([x + dx for x in xs], p[routing]["per_expert"], width=0.4, color=COLORS[routing],
                           alpha=0.8, label=labels[routing])
                ax.set_xlabel(t("expert", lang))
            else:  # many experts: each routing's loads sorted high to low, as a line (bars would hide each other)
                for routing in ROUTINGS:
                    ax.step(xs, sorted(p[routing]["per_expert"], reverse=True), where="mid", color=COLORS[routing],
                            label=labels[routing])
                ax.set_yscale("symlog", linthresh=10)
                ax.set_xlabel(t("expert_sorted", lang))
            ax.axhline(p["ideal_per_expert"], color="#333", ls="--", lw=1, label=t("ideal", lang))
            ax.set_ylabel(t("load", lang))
            ax.set_title(t("load_title", lang, label=p["moe_shape"]["label"], n=p["tokens"]), fontsize=10)
            ax.legend(fontsize=7)
        fig.tight_layout()
        figures["moe-load"] = (fig, footer + (" · 路由器为随机权重" if lang == "zh" else " · random router weights"))
    return figures


# ---------------------------------------------------------------------------------------------------------


def parse_args(argv):
    ap = common.lab_parser(__doc__, DEFAULT_OUT, QUICK_OUT)
    ap.add_argument("--parts", default=",".join(PARTS), help=f"what to measure, from {','.join(PARTS)}")
    ap.add_argument("--backends", default=",".join(BACKENDS), help=f"attention backends, from {','.join(BACKENDS)}")
    ap.add_argument("--prefill-lens", type=common.int_list, default=[1024, 2048, 4096, 8192, 16384, 32768])
    ap.add_argument("--decode-lens", type=common.int_list, default=[4096, 16384, 65536, 131072])
    ap.add_argument("--attn-batch", type=int, default=4)
    ap.add_argument("--attn-heads", type=int, default=32)
    ap.add_argument("--attn-head-dim", type=int, default=128)
    ap.add_argument("--attn-kv-heads", type=int, default=8,
                    help="K/V heads (fewer than --attn-heads: grouped-query attention, enable_gqa=True)")
    ap.add_argument("--decode-batches", type=common.int_list,
                    help="batch sizes of the decode sweep (default: 1 and --attn-batch)")
    ap.add_argument("--decode-inner", type=int, default=10,
                    help="GPU: back-to-back calls per timed sample of a decode point (hides per-call host work)")
    ap.add_argument("--moe-shapes", default="mixtral,deepseek", help=f"from {','.join(MOE_SHAPES)}")
    ap.add_argument("--moe-scale", type=int, default=1, help="divide hidden and expert widths by this")
    ap.add_argument("--moe-tokens", type=common.int_list, default=[1, 4, 16, 64, 256, 1024, 4096],
                    help="tokens per step of the throughput sweep")
    ap.add_argument("--bytes-batches", type=common.int_list, default=[1, 2, 4, 8, 16, 32, 64, 128, 256, 512])
    ap.add_argument("--bytes-trials", type=int, default=20, help="random batches per point of the bytes sweep")
    ap.add_argument("--load-tokens", type=int, default=4096, help="tokens of the load histogram")
    ap.add_argument("--skew", type=float, default=0.5, help="skewed routing: router bias -skew*ln(1+expert)")
    ap.add_argument("--repeats", type=int, default=5, help="timed repeats per attention point")
    ap.add_argument("--moe-repeats", type=int, default=15, help="timed repeats per point of the MoE throughput sweep")
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--threads", type=int, help="CPU runs: torch threads (1 keeps timings steadier on a shared machine)")
    args = common.finish_lab_args(ap, ap.parse_args(argv), dict(
        prefill_lens=[64, 128], decode_lens=[64, 256], attn_batch=1, attn_heads=2, attn_kv_heads=1,
        attn_head_dim=16, moe_scale=64, moe_tokens=[1, 8], bytes_batches=[1, 4, 16], bytes_trials=3, load_tokens=256,
        repeats=2, moe_repeats=3, warmup=1, dtype="fp32"), DEFAULT_OUT, QUICK_OUT)
    for name in ("parts", "backends", "moe_shapes"):
        valid = {"parts": PARTS, "backends": BACKENDS, "moe_shapes": tuple(MOE_SHAPES)}[name]
        chosen = [v for v in getattr(args, name).split(",") if v]
        unknown = sorted(set(chosen) - set(valid))
        if unknown or not chosen:
            ap.error(f"--{name.replace('_', '-')}: unknown or empty {', '.join(unknown)}; choose from {', '.join(valid)}")
        setattr(args, name, chosen)
    if args.decode_batches is None:
        args.decode_batches = sorted({1, args.attn_batch})
    if min(args.attn_batch, args.attn_heads, args.attn_kv_heads, args.attn_head_dim, args.moe_scale, args.bytes_trials,
           args.load_tokens, args.repeats, args.moe_repeats, args.decode_inner, *args.decode_batches) < 1 \
            or args.warmup < 0 or args.skew < 0:
        ap.error("sizes, --repeats, --bytes-trials and --load-tokens must be >= 1; --warmup and --skew >= 0")
    if args.attn_heads % args.attn_kv_heads:
        ap.error("--attn-heads must be a multiple of --attn-kv-heads")
    return args


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parse_args(argv)
    if args.plot_only:
        return common.plot_only(args.out, LAB, plot, refresh_prediction if args.repredict else None)
    device = common.pick_device(args.device)
    if args.threads and device.type == "cpu":
        torch.set_num_threads(args.threads)
    dtype = common.DTYPES[args.dtype]
    prov = common.provenance(LAB, Path(__file__).name, argv, device, args.note)
    prov["model"] = {"label": {"zh": "注意力与 MoE 层", "en": "attention and MoE layers"}, "weights": args.dtype,
                     "random_weights": True}
    prov["datasheet"] = common.gpu_datasheet(prov["calc_gpu_key"])
    prov["settings"] = {k: v for k, v in vars(args).items()
                        if k not in ("out", "plot_only", "repredict", "note", "model", "model_preset")}
    prov["sdpa_backends_in_build"] = [b for b in BACKENDS if sdpa_backend(b) is not None]
    data_path = args.out / "data" / f"{common.data_stem(prov)}.json"
    data = common.DataFile(data_path, prov, args.budget_s)
    print(f"data: {data_path}", flush=True)
    shapes = {name: moe_shape(name, args.moe_scale) for name in args.moe_shapes}

    def measure(point, fn, *fn_args):
        return data.measure(point, lambda: fn(*fn_args), device, progress=f"[{len(data.doc['points']) + 1}]")

    with data.running():
        if "moe-bytes" in args.parts:  # counting only: first, cheap
            for shape in shapes.values():
                measure({"kind": "moe-bytes", "shape": shape["name"]}, measure_moe_bytes, shape, args.bytes_batches,
                        args.bytes_trials, args.skew, device)
        if "moe-load" in args.parts:
            for shape in shapes.values():
                measure({"kind": "moe-load", "shape": shape["name"], "skew": args.skew}, measure_moe_load, shape,
                        args.load_tokens, args.skew, device)
        if "attention" in args.parts:
            sweeps = [("prefill", args.attn_batch, n) for n in args.prefill_lens]
            sweeps += [("decode", b, n) for b in args.decode_batches for n in args.decode_lens]
            for shape, batch, n in sweeps:
                measure({"kind": "attention", "shape": shape, "n": n, "batch": batch}, measure_attention, shape, n,
                        batch, args.attn_heads, args.attn_head_dim, dtype, device, args.backends, args.repeats,
                        args.warmup, args.attn_kv_heads, args.decode_inner if shape == "decode" else 1)
        if "moe-time" in args.parts:
            for shape in shapes.values():
                measure({"kind": "moe-time", "shape": shape["name"]}, measure_moe_time, shape, args.moe_tokens, dtype, device,
                        args.moe_repeats, args.warmup)
    common.plot_safely(plot, data_path, args.out / "figures")
    return 130 if data.doc["status"] == "interrupted" else 0


if __name__ == "__main__":
    sys.exit(main())
