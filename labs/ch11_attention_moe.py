"""Lab for chapter 11: attention kernels and mixture-of-experts layers, measured.

Measures, on one GPU (or a CPU, labelled as such):
  - attention: PyTorch's scaled_dot_product_attention with each backend forced in turn (math, memory-efficient,
    flash, cuDNN; torch.nn.attention.sdpa_kernel), over sequence length at fixed batch and heads, prefill-shaped
    (N queries over N keys, causal) and decode-shaped (1 query over N keys): time, and the memory the call
    allocates (GPU: peak allocated above the inputs; CPU: bytes the profiler sees allocated during the call).
    A backend this build or device lacks is recorded as unsupported, never silently replaced; the backend
    PyTorch picks by itself (torch._fused_sdp_choice) is recorded for every shape. On the same axes: the bytes
    of the score matrix the math path materializes, B x H x N_q x N_k x element size (formula stated here, no
    calc function covers it), and the inputs + output, B x H x (2 N_q + 2 N_k) x d x element size;
  - moe-time: one MoE layer (top-k softmax router, SwiGLU experts, optional shared expert; Mixtral-8x7B- and
    DeepSeek-V3-like shapes, scaled to fit) against a dense SwiGLU layer with the same active parameters:
    tokens/s over the number of tokens in the batch;
  - moe-bytes: bytes of expert weights one decode step must read vs batch: the distinct experts the routed
    tokens touch (counted), with calc's expected fraction 1 - (1 - k/E)^batch (calc.perf.experts_touched_fraction
    for the model in calc's registry) on the same axes, for uniform and for skewed routing;
  - moe-load: tokens per expert for a batch of tokens under random and skewed routing (the load histogram).
Data goes to <out>/data/ch11-<device>.json (with provenance), figures to <out>/figures/ch11-<device>-<name>_{zh,en}.svg.
The router here is a plain softmax top-k on random weights (DeepSeek-V3 itself scores with a sigmoid, limits
each token to 4 of 8 expert groups and adds a bias per expert); the expert loop is plain PyTorch, not a fused
grouped GEMM: the shapes and bytes are right, the speeds are PyTorch's, not a serving engine's.

    python labs/ch11_attention_moe.py                 # H100/H200 sizes, bf16, on the GPU (about 2 minutes)
    python labs/ch11_attention_moe.py --quick         # tiny shapes on the CPU, seconds (the test suite runs this)
    python labs/ch11_attention_moe.py --plot-only     # re-render figures from the data files in <out>/data/
"""

from __future__ import annotations

import math
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


def attention_bytes(batch: int, heads: int, n_q: int, n_k: int, head_dim: int, elem: int) -> dict:
    """The formulas the figure draws: the score matrix S = Q K^T the math path materializes (softmax(S) is a
    second one of the same size), and the inputs + output every path must hold."""
    return {"scores_bytes": batch * heads * n_q * n_k * elem,
            "qkvo_bytes": batch * heads * (2 * n_q + 2 * n_k) * head_dim * elem}


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


def measure_attention(shape: str, n: int, batch: int, heads: int, head_dim: int, dtype, device, backends, repeats,
                      warmup) -> dict:
    """One sequence length, one shape: every backend forced in turn."""
    from torch.nn.attention import sdpa_kernel

    n_q = n if shape == "prefill" else 1
    causal = shape == "prefill"
    g = torch.Generator(device="cpu").manual_seed(n)
    q = torch.randn(batch, heads, n_q, head_dim, generator=g).to(device, dtype)
    k = torch.randn(batch, heads, n, head_dim, generator=g).to(device, dtype)
    v = torch.randn(batch, heads, n, head_dim, generator=g).to(device, dtype)
    out = {"n_q": n_q, "n_k": n, "causal": causal, "default_backend": default_choice(q, k, v, causal),
           **attention_bytes(batch, heads, n_q, n, head_dim, q.element_size()), "by_backend": {}}
    reference = None
    for name in backends:
        member = sdpa_backend(name)
        if member is None:
            out["by_backend"][name] = {"unsupported": f"torch {torch.__version__} has no {name} backend"}
            continue

        def call(member=member):
            with sdpa_kernel([member]):
                return F.scaled_dot_product_attention(q, k, v, is_causal=causal)

        try:
            result = call()
        except torch.cuda.OutOfMemoryError as e:
            common.free_memory(device)
            out["by_backend"][name] = {"oom": True, "error": str(e).splitlines()[0][:200]}
            continue
        except RuntimeError as e:  # "No viable backend": this device, dtype or shape is not supported by it
            out["by_backend"][name] = {"unsupported": str(e).splitlines()[0][:200]}
            continue
        if reference is None:
            reference = result.float()
            err = 0.0
        else:
            err = float((result.float() - reference).abs().max())
        del result
        try:
            times = common.time_it(call, device, warmup=warmup, repeats=repeats)
            alloc = allocated_during(call, device)
        except torch.cuda.OutOfMemoryError as e:
            common.free_memory(device)
            out["by_backend"][name] = {"oom": True, "error": str(e).splitlines()[0][:200]}
            continue
        out["by_backend"][name] = {"time_s": common.summarize(times), "allocated_bytes": alloc,
                                   "max_abs_diff_vs_first": err}
    return out


# ---------------------------------------------------------------------------------------------------------
# Mixture of experts


class MoELayer(torch.nn.Module):
    """Top-k softmax router over E SwiGLU experts (+ an always-on shared expert when shared_width > 0).

    forward() loops over the experts a batch touches: gather its tokens, run the expert, scatter-add the
    weighted output. The weights of an expert no token chose are never read."""

    def __init__(self, hidden, expert_width, experts, top_k, shared_width=0, skew=0.0):
        super().__init__()
        self.top_k = top_k
        self.router = torch.nn.Linear(hidden, experts, bias=False)
        self.w_gate = torch.nn.Parameter(torch.randn(experts, hidden, expert_width) / math.sqrt(hidden))
        self.w_up = torch.nn.Parameter(torch.randn(experts, hidden, expert_width) / math.sqrt(hidden))
        self.w_down = torch.nn.Parameter(torch.randn(experts, expert_width, hidden) / math.sqrt(expert_width))
        self.shared = DenseMLP(hidden, shared_width) if shared_width else None
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
    def __init__(self, hidden, width):
        super().__init__()
        self.gate = torch.nn.Linear(hidden, width, bias=False)
        self.up = torch.nn.Linear(hidden, width, bias=False)
        self.down = torch.nn.Linear(width, hidden, bias=False)

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
    with torch.device(device):  # random weights drawn on the device: a full-size DeepSeek-V3 layer is 11 B numbers
        moe = MoELayer(shape["hidden"], shape["expert_width"], shape["experts"], shape["top_k"],
                       shape["shared_width"]).to(dtype)
        dense_width = shape["top_k"] * shape["expert_width"] + shape["shared_width"]
        dense = DenseMLP(shape["hidden"], dense_width).to(dtype)
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
                row[name] = {"time_s": common.summarize(times),
                             "tokens_per_s": tokens / common.summarize(times)["median"]}
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
                    skew=skew if routing == "skewed" else 0.0).to(device)


def measure_moe_bytes(shape: dict, batches, trials, skew, device) -> dict:
    """Distinct experts a decode step of `batch` tokens touches (mean over trials), per routing, and the bytes of
    expert weights that makes at the full-size shape; calc's expectation for uniform routing beside it."""
    from calc import registry

    m = registry.get_model(shape["calc_model"])
    expert_bytes_bf16 = 3 * m.hidden_size * m.moe_intermediate_size * 2  # one full-size expert in bf16
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
        frac = calc_touched_fraction(shape["calc_model"], batch)
        if frac is not None:
            row["predicted"] = {"touched_fraction": frac, "touched": frac * shape["experts"],
                                "expert_bytes": frac * shape["experts"] * expert_bytes_bf16}
        out["by_batch"].append(row)
    return out


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
    "time_ms": {"zh": "时间（毫秒，中位数）", "en": "time (ms, median)"},
    "alloc": {"zh": "调用期间分配的内存（字节）", "en": "memory allocated by the call (bytes)"},
    "alloc_gpu": {"zh": "调用期间的峰值显存（字节）", "en": "peak memory during the call (bytes)"},
    "scores": {"zh": "公式：分数矩阵 B·H·N_q·N_k·元素字节", "en": "formula: score matrix B·H·N_q·N_k·bytes"},
    "qkvo": {"zh": "公式：Q、K、V、O 本身", "en": "formula: Q, K, V, O themselves"},
    "prefill": {"zh": "预填充形状（N 个查询，因果）", "en": "prefill-shaped (N queries, causal)"},
    "decode": {"zh": "解码形状（1 个查询）", "en": "decode-shaped (1 query)"},
    "attn_title": {"zh": "注意力后端：B={b}，H={h}，d={d}，{dt}", "en": "Attention backends: B={b}, H={h}, d={d}, {dt}"},
    "oom": {"zh": "显存不足", "en": "OOM"},
    "tokens": {"zh": "一步的 token 数（批大小）", "en": "tokens in the step (batch size)"},
    "tok_s": {"zh": "吞吐（token/秒）", "en": "throughput (tokens/s)"},
    "moe": {"zh": "MoE 层（{e} 专家选 {k}）", "en": "MoE layer ({k} of {e} experts)"},
    "dense": {"zh": "同激活参数的稠密层", "en": "dense layer, same active parameters"},
    "moe_time_title": {"zh": "MoE 层与稠密层：{label} 形状 ÷{s}", "en": "MoE vs dense layer: {label} shape ÷{s}"},
    "batch": {"zh": "批大小（解码一步的 token 数）", "en": "batch (tokens in one decode step)"},
    "expert_gb": {"zh": "一层要读的专家权重（GB，全尺寸，bf16）", "en": "expert weights read per layer (GB, full size, bf16)"},
    "random": {"zh": "随机路由（计数）", "en": "random routing (counted)"},
    "skewed": {"zh": "偏斜路由（计数）", "en": "skewed routing (counted)"},
    "calc": {"zh": "calc：1 − (1 − k/E)^批大小", "en": "calc: 1 − (1 − k/E)^batch"},
    "bytes_title": {"zh": "解码一步读多少专家权重", "en": "Expert weights one decode step reads"},
    "expert": {"zh": "专家编号", "en": "expert"},
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


def plot(data, lang):
    import matplotlib.pyplot as plt

    prov, points = data["provenance"], data["points"]
    footer = common.describe_run(prov, lang)
    s = prov["settings"]
    gpu = prov["device"]["kind"] == "cuda"
    figures = {}

    att = [p for p in points if p.get("kind") == "attention" and common.succeeded(p)]
    if att:
        fig, axes = plt.subplots(2, 2, figsize=(10, 7))
        for col, shape in enumerate(SHAPES):
            pts = sorted((p for p in att if p["shape"] == shape), key=lambda p: p["n"])
            if not pts:
                continue
            ax_t, ax_m = axes[0][col], axes[1][col]
            for name in BACKENDS:
                ok = [p for p in pts if "time_s" in p["by_backend"].get(name, {})]
                if ok:
                    ax_t.plot([p["n"] for p in ok], [1e3 * p["by_backend"][name]["time_s"]["median"] for p in ok],
                              marker="o", ms=4, color=COLORS[name], label=BACKEND_NAMES[name][lang])
                    ax_m.plot([p["n"] for p in ok], [max(1, p["by_backend"][name]["allocated_bytes"]) for p in ok],
                              marker="o", ms=4, color=COLORS[name], label=BACKEND_NAMES[name][lang])
                for p in pts:
                    if p["by_backend"].get(name, {}).get("oom"):
                        ax_m.annotate(t("oom", lang), (p["n"], p["scores_bytes"]), color=COLORS[name], fontsize=7)
            ax_m.plot([p["n"] for p in pts], [p["scores_bytes"] for p in pts], ls="--", color="#333", lw=1,
                      label=t("scores", lang))
            ax_m.plot([p["n"] for p in pts], [p["qkvo_bytes"] for p in pts], ls=":", color="#333", lw=1,
                      label=t("qkvo", lang))
            for ax in (ax_t, ax_m):
                common.log_axis(ax, "x", [p["n"] for p in pts], base=2)
                common.log_axis(ax, "y")
                ax.set_xlabel(t("seq_len", lang))
            ax_t.set_title(t(shape, lang))
            ax_t.set_ylabel(t("time_ms", lang))
            ax_m.set_ylabel(t("alloc_gpu" if gpu else "alloc", lang))
            ax_t.legend(fontsize=7)
            ax_m.legend(fontsize=7)
        fig.suptitle(t("attn_title", lang, b=s["attn_batch"], h=s["attn_heads"], d=s["attn_head_dim"], dt=s["dtype"]))
        fig.tight_layout()
        figures["attention"] = (fig, footer)

    mt = [p for p in points if p.get("kind") == "moe-time" and common.succeeded(p)]
    if mt:
        fig, axes = plt.subplots(1, len(mt), figsize=(5 * len(mt), 3.8), squeeze=False)
        for ax, p in zip(axes[0], mt, strict=True):
            sh = p["moe_shape"]
            for name in ("moe", "dense"):
                rows = [r for r in p["by_tokens"] if "tokens_per_s" in r.get(name, {})]
                label = t("moe", lang, e=sh["experts"], k=sh["top_k"]) if name == "moe" else t("dense", lang)
                ax.plot([r["tokens"] for r in rows], [r[name]["tokens_per_s"] for r in rows], marker="o", ms=4,
                        color=COLORS[name], label=label)
            common.log_axis(ax, "x", [r["tokens"] for r in p["by_tokens"]], base=2)
            common.log_axis(ax, "y")
            ax.set_xlabel(t("tokens", lang))
            ax.set_ylabel(t("tok_s", lang))
            ax.set_title(t("moe_time_title", lang, label=sh["label"], s=sh["scale"]), fontsize=10)
            ax.legend(fontsize=7)
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
            width = 0.4 if n_exp <= 16 else 1.0
            ax.bar([x - width / 2 for x in xs] if n_exp <= 16 else xs, p["random"]["per_expert"], width=width,
                   color=COLORS["random"], alpha=0.8 if n_exp <= 16 else 0.5,
                   label=t("rand_short", lang, r=p["random"]["max_over_mean"]))
            ax.bar([x + width / 2 for x in xs] if n_exp <= 16 else xs, p["skewed"]["per_expert"], width=width,
                   color=COLORS["skewed"], alpha=0.8 if n_exp <= 16 else 0.5,
                   label=t("skew_short", lang, r=p["skewed"]["max_over_mean"]))
            ax.axhline(p["ideal_per_expert"], color="#333", ls="--", lw=1, label=t("ideal", lang))
            ax.set_xlabel(t("expert", lang))
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
    ap.add_argument("--moe-shapes", default="mixtral,deepseek", help=f"from {','.join(MOE_SHAPES)}")
    ap.add_argument("--moe-scale", type=int, default=1, help="divide hidden and expert widths by this")
    ap.add_argument("--moe-tokens", type=common.int_list, default=[1, 4, 16, 64, 256, 1024, 4096],
                    help="tokens per step of the throughput sweep")
    ap.add_argument("--bytes-batches", type=common.int_list, default=[1, 2, 4, 8, 16, 32, 64, 128, 256, 512])
    ap.add_argument("--bytes-trials", type=int, default=20, help="random batches per point of the bytes sweep")
    ap.add_argument("--load-tokens", type=int, default=4096, help="tokens of the load histogram")
    ap.add_argument("--skew", type=float, default=0.5, help="skewed routing: router bias -skew*ln(1+expert)")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--threads", type=int, help="CPU runs: torch threads (1 keeps timings steadier on a shared machine)")
    args = common.finish_lab_args(ap, ap.parse_args(argv), dict(
        prefill_lens=[64, 128], decode_lens=[64, 256], attn_batch=1, attn_heads=2, attn_head_dim=16, moe_scale=64,
        moe_tokens=[1, 8], bytes_batches=[1, 4, 16], bytes_trials=3, load_tokens=256, repeats=2, warmup=1,
        dtype="fp32"), DEFAULT_OUT, QUICK_OUT)
    for name in ("parts", "backends", "moe_shapes"):
        valid = {"parts": PARTS, "backends": BACKENDS, "moe_shapes": tuple(MOE_SHAPES)}[name]
        chosen = [v for v in getattr(args, name).split(",") if v]
        unknown = sorted(set(chosen) - set(valid))
        if unknown or not chosen:
            ap.error(f"--{name.replace('_', '-')}: unknown or empty {', '.join(unknown)}; choose from {', '.join(valid)}")
        setattr(args, name, chosen)
    if min(args.attn_batch, args.attn_heads, args.attn_head_dim, args.moe_scale, args.bytes_trials, args.load_tokens,
           args.repeats) < 1 or args.warmup < 0 or args.skew < 0:
        ap.error("sizes, --repeats, --bytes-trials and --load-tokens must be >= 1; --warmup and --skew >= 0")
    return args


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parse_args(argv)
    if args.plot_only:
        return common.plot_only(args.out, LAB, plot)
    device = common.pick_device(args.device)
    if args.threads and device.type == "cpu":
        torch.set_num_threads(args.threads)
    dtype = common.DTYPES[args.dtype]
    prov = common.provenance(LAB, Path(__file__).name, argv, device, args.note)
    prov["model"] = {"label": "attention + MoE layers", "weights": args.dtype, "random_weights": True}
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
            for shape, lens in (("prefill", args.prefill_lens), ("decode", args.decode_lens)):
                for n in lens:
                    measure({"kind": "attention", "shape": shape, "n": n, "batch": args.attn_batch},
                            measure_attention, shape, n, args.attn_batch, args.attn_heads, args.attn_head_dim, dtype,
                            device, args.backends, args.repeats, args.warmup)
        if "moe-time" in args.parts:
            for shape in shapes.values():
                measure({"kind": "moe-time", "shape": shape["name"]}, measure_moe_time, shape, args.moe_tokens, dtype, device,
                        args.repeats, args.warmup)
    common.plot_safely(plot, data_path, args.out / "figures")
    return 130 if data.doc["status"] == "interrupted" else 0


if __name__ == "__main__":
    sys.exit(main())
