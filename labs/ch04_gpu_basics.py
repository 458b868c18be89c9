"""Lab for chapter 4: what one GPU delivers, measured against its datasheet and against calc.

Measures, on one GPU (or a CPU with --quick, labelled as such):
  - matmul TFLOPS: square bf16 matmuls over size, and the model's MLP matmul (K = hidden, N = intermediate)
    over the number of tokens M; FP8 too (torch._scaled_mm) where the GPU has FP8 tensor cores. Compared
    with the dense datasheet FLOPS from calc's GPU registry;
  - memory bandwidth over buffer size, copy (read + write) and read-only: the L2 plateau and the HBM level;
  - memory of a model at several batch x context points: calc's prediction vs torch's allocator vs NVML;
  - an NVML trace (utilization, power, clocks, memory) over a prefill-heavy and a decode-heavy phase.
Data goes to <out>/data/ch04-<device>.json (with provenance), figures to <out>/figures/ch04-<device>-<name>_{zh,en}.svg.

    python labs/ch04_gpu_basics.py                 # Llama-3.1-8B shape, random weights, bf16, on the GPU
    python labs/ch04_gpu_basics.py --quick         # tiny model on the CPU, seconds (the test suite runs this)
    python labs/ch04_gpu_basics.py --plot-only     # re-render figures from the data files in <out>/data/
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from statistics import median

import common
import torch

LAB = "ch04-gpu-basics"
DEFAULT_OUT = common.REPO / "docs" / "assets" / "labs" / LAB
QUICK_OUT = common.REPO / "labs" / ".quick-out" / LAB
PARTS = ("matmul", "bandwidth", "memory", "trace")


# ---------------------------------------------------------------------------------------------------------
# Measurements: each returns the measured fields of one data point


def has_fp8(device) -> bool:
    """FP8 tensor cores: compute capability 8.9 (Ada) and later."""
    return device.type == "cuda" and torch.cuda.get_device_capability(device) >= (8, 9)


def repeat_to(fn, seconds_each: float, device):
    """`fn` repeated enough times that one timed call lasts about `seconds_each`; a CUDA graph on a GPU, so
    kernel-launch time does not hide how fast small kernels really are. Returns (callable, count)."""
    fn()  # warm: the first call picks kernels and allocates workspaces, and would make the count far too small
    common.sync(device)
    t0 = time.perf_counter()
    fn()
    common.sync(device)
    count = max(1, min(1000, int(seconds_each / max(time.perf_counter() - t0, 1e-6))))

    def many():
        for _ in range(count):
            fn()

    if device.type != "cuda":
        return many, count
    many()  # warm-up outside the graph (cuBLAS picks its kernels and workspaces here)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        many()
    return graph.replay, count


@torch.inference_mode()
def measure_matmul(m, n, k, precision, device, repeats):
    """y = x @ W^T for x [m, k] and W [n, k], as a linear layer computes it; 2*m*n*k FLOPs."""
    x = torch.randn(m, k, device=device, dtype=torch.bfloat16)
    w = torch.randn(n, k, device=device, dtype=torch.bfloat16)
    if precision == "fp8":
        # Per-tensor scales of 1: values from randn fit e4m3's range. _scaled_mm wants W^T column-major.
        x, w = x.to(torch.float8_e4m3fn), w.to(torch.float8_e4m3fn)
        one = torch.ones((), device=device, dtype=torch.float32)

        def fn():
            return torch._scaled_mm(x, w.t(), scale_a=one, scale_b=one, out_dtype=torch.bfloat16)
    else:
        def fn():
            return x @ w.t()
    many, count = repeat_to(fn, 0.02 if device.type == "cuda" else 0.005, device)
    times = [t / count for t in common.time_it(many, device, warmup=1, repeats=repeats)]
    return {"seconds": common.summarize(times), "TFLOPS": 2 * m * n * k / min(times) / 1e12}


@torch.inference_mode()
def measure_bandwidth(nbytes, op, device, repeats):
    """GB/s of a copy (read + write counted, as STREAM does) or a read (a sum) over a buffer of `nbytes`:
    the median repeat (`GBps`) and the best one (`GBps_best`)."""
    fn, moved = common.bandwidth_op(nbytes, op, device)
    many, count = repeat_to(fn, 0.02 if device.type == "cuda" else 0.005, device)
    times = [t / count for t in common.time_it(many, device, warmup=1, repeats=repeats)]
    stats = common.summarize(times)
    return {"bytes_moved": moved, "seconds": stats, "GBps": moved / stats["median"] / 1e9,
            "GBps_best": moved / stats["min"] / 1e9}


def cache_tensor_bytes(cache) -> int:
    """Bytes held by the key/value tensors of a transformers cache (works on any device)."""
    total = 0
    for layer in getattr(cache, "layers", []):
        for name in ("keys", "values"):
            tensor = getattr(layer, name, None)
            if isinstance(tensor, torch.Tensor):
                total += tensor.numel() * tensor.element_size()
    return total


@torch.inference_mode()
def measure_memory(model, batch, context, device):
    """Prefill `batch` prompts of `context` tokens, keeping the KV cache: memory before, at peak and after."""
    common.free_memory(device)
    cuda = device.type == "cuda"
    if cuda:
        torch.cuda.reset_peak_memory_stats(device)
    before = torch.cuda.memory_allocated(device) if cuda else None
    prompt = torch.randint(0, model.config.vocab_size, (batch, context), device=device)
    out = model(input_ids=prompt, use_cache=True, logits_to_keep=1)
    cache = getattr(out, "cache", None) or out.past_key_values  # renamed `cache` in transformers 5.2x
    fields = {"kv_cache_tensor_bytes": cache_tensor_bytes(cache)}
    if cuda:
        common.sync(device)
        fields.update(
            allocated_before_bytes=before,
            allocated_after_bytes=torch.cuda.memory_allocated(device),  # weights + KV cache (+ tiny logits)
            peak_allocated_bytes=torch.cuda.max_memory_allocated(device),
            peak_reserved_bytes=torch.cuda.max_memory_reserved(device),
        )
        try:  # NVML sees the whole process: CUDA context, allocator cache, everything
            nv = common._nvml()
            fields["nvml_used_bytes"] = nv.nvmlDeviceGetMemoryInfo(nv.nvmlDeviceGetHandleByIndex(device.index or 0)).used
        except Exception as e:
            fields["nvml_used_bytes"] = None
            fields["nvml"] = f"unavailable: {type(e).__name__}"
    else:
        fields["allocator"] = "unavailable on CPU: only the KV cache tensors are counted"
    del out, cache
    common.free_memory(device)
    return fields


@torch.inference_mode()
def measure_trace(model, device, phase_s, prefill_shape, decode_tokens):
    """NVML samples while the GPU idles, runs prefill passes, then decodes with generate() (eager)."""
    batch, length = prefill_shape
    long_prompt = torch.randint(0, model.config.vocab_size, (batch, length), device=device)
    short_prompt = torch.randint(0, model.config.vocab_size, (1, 32), device=device)
    counts = {}
    with common.NvmlSampler(device.index or 0) as sampler:
        for phase in ("idle", "prefill", "decode", "idle-after"):
            sampler.mark(phase)
            end, n = time.perf_counter() + (phase_s / 4 if phase.startswith("idle") else phase_s), 0
            while time.perf_counter() < end:
                if phase == "prefill":
                    model(input_ids=long_prompt, use_cache=True, logits_to_keep=1)
                elif phase == "decode":
                    model.generate(short_prompt, attention_mask=torch.ones_like(short_prompt),
                                   max_new_tokens=decode_tokens, do_sample=False, eos_token_id=None)
                else:
                    time.sleep(0.05)
                common.sync(device)
                n += 1
            counts[phase] = n
        sampler.mark("end")
    return {"phase_calls": counts, "prefill_shape": list(prefill_shape), "decode_tokens": decode_tokens,
            "nvml": sampler.result()}


FITTING_POINTS = [(1, 4096), (1, 32768), (8, 4096), (16, 8192)]


def memory_points(prov, model_params) -> list[tuple[int, int]]:
    """The default batch x context points: four that fit any 80 GB+ GPU, and one at batch 32 that calc says
    needs at least 15 % more than this GPU shows, so the comparison always shows where the wall is (an OOM
    point) whatever the GPU's size (80 GB H100, 141 GB H200)."""
    capacity = prov["device"].get("memory_bytes")
    if capacity:
        for context in range(4096, 131072 + 1, 2048):
            pred = common.calc_predict("memory", {**model_params, "gpu": prov.get("calc_gpu_key") or "h100-sxm",
                                                  "batch": 32, "prompt-len": context, "output-len": 1,
                                                  "weights": prov["model"]["weights"], "kv-dtype": prov["model"]["weights"]})
            if pred and pred["total_bytes_per_gpu"] > 1.15 * capacity:
                return [*FITTING_POINTS, (32, context)]
    return [*FITTING_POINTS, (32, 16384)]


def predict_memory(point, prov):
    """calc's memory breakdown for a point. Without a GPU calc knows (a CPU run), only the device-independent
    parts are kept: the weights and the KV cache formulas (4.3.1, 4.3.2); activations and runtime overhead
    model a GPU's allocator and CUDA context."""
    if point.get("kind") != "memory":
        return None
    gpu = prov.get("calc_gpu_key")
    weights = prov["model"]["weights"]
    pred = common.calc_predict("memory", {**prov["model"]["calc_params"], "gpu": gpu or "h100-sxm",
                                          "batch": point["batch"], "prompt-len": point["context"], "output-len": 1,
                                          "weights": weights, "kv-dtype": weights})
    if pred and not gpu:
        pred = {"weights_bytes": pred["weights_bytes"], "kv_cache_bytes": pred["kv_cache_bytes"],
                "basis": "formulas only (no GPU): weights and KV cache"}
    return pred


# ---------------------------------------------------------------------------------------------------------
# Figures, from the data file alone

TEXT = {
    "tflops": {"zh": "TFLOPS（稠密）", "en": "TFLOPS (dense)"},
    "square": {"zh": "方阵乘法 n×n×n", "en": "square matmul n×n×n"},
    "n": {"zh": "矩阵边长 n", "en": "matrix size n"},
    "tokens": {"zh": "token 数 M（即批大小 × 序列长度）", "en": "tokens M (batch × sequence length)"},
    "mlp": {"zh": "MLP 矩阵乘 M×{k} 乘 {k}×{n}", "en": "MLP matmul M×{k} by {k}×{n}"},
    "sheet": {"zh": "{p} 标称 {v:g}", "en": "{p} datasheet {v:g}"},
    "roof": {"zh": "{p} 屋顶线（标称算力与带宽）", "en": "{p} roofline (datasheet compute and bandwidth)"},
    "weights_gbps": {"zh": "M={m}：{v:.0f} GB/s 读权重", "en": "M={m}: weights read at {v:.0f} GB/s"},
    "phase_median": {"zh": "中位数 {v}", "en": "median {v}"},
    "powercap": {"zh": "SwPowerCap（功率上限降频）", "en": "SwPowerCap (clocks held down by the power limit)"},
    "bw_title": {"zh": "显存带宽随缓冲区大小", "en": "GPU memory bandwidth vs buffer size"},
    "bw_title_cpu": {"zh": "内存带宽随缓冲区大小（CPU）", "en": "Host memory bandwidth vs buffer size (CPU)"},
    "buffer": {"zh": "缓冲区大小（MiB）", "en": "buffer size (MiB)"},
    "gbps": {"zh": "带宽（GB/s）", "en": "bandwidth (GB/s)"},
    "copy": {"zh": "拷贝（读 + 写）", "en": "copy (read + write)"},
    "read": {"zh": "只读（求和）", "en": "read only (sum)"},
    "bw_sheet": {"zh": "标称带宽 {v:.0f} GB/s", "en": "datasheet {v:.0f} GB/s"},
    "l2": {"zh": "L2 缓存 {v:.0f} MiB", "en": "L2 cache {v:.0f} MiB"},
    "l2_half": {"zh": "L2 的一半：拷贝读写两倍缓冲区", "en": "half of L2: a copy touches 2 × the buffer"},
    "mem_title": {"zh": "显存：calc 预测与实测（{model}）", "en": "GPU memory: calc prediction vs measured ({model})"},
    "mem_title_cpu": {"zh": "内存：calc 公式与实测（{model}，CPU）", "en": "Host memory: calc formulas vs measured ({model}, CPU)"},
    "gb": {"zh": "显存（GB）", "en": "GPU memory (GB)"},
    "gb_cpu": {"zh": "内存（GB）", "en": "memory (GB)"},
    "formula_only": {"zh": "无 GPU：calc 只给出权重与 KV 缓存的公式值（激活与运行时开销属于 GPU 分配器）",
                     "en": "no GPU: calc gives the weights and KV cache formulas only (activations and runtime overhead are a GPU allocator's)"},
    "point": {"zh": "批大小 × 上下文", "en": "batch × context"},
    "weights": {"zh": "权重", "en": "weights"},
    "kv": {"zh": "KV 缓存", "en": "KV cache"},
    "act": {"zh": "激活（峰值）", "en": "activations (peak)"},
    "overhead": {"zh": "运行时开销", "en": "runtime overhead"},
    "pred_bar": {"zh": "左：calc 预测", "en": "left: calc prediction"},
    "meas_bar": {"zh": "右：torch 实测", "en": "right: measured by torch"},
    "meas_only": {"zh": "实测（斜线）", "en": "measured (hatched)"},
    "nvml_used": {"zh": "NVML 已用显存", "en": "NVML memory used"},
    "capacity": {"zh": "CUDA 报告的显存 {v:.2f} GB", "en": "memory CUDA reports, {v:.2f} GB"},
    "non_torch": {"zh": "NVML − 保留 {v:.2f}", "en": "NVML − reserved {v:.2f}"},
    "non_torch_note": {"zh": "黑线上方的数：NVML 已用显存减去 torch 分配器保留的峰值（GB），即 CUDA 上下文等 PyTorch 以外的显存，由本图从数据算出",
                       "en": "number above each black tick: NVML memory used minus the torch allocator's peak reserved (GB), the memory outside PyTorch (CUDA context and the like), computed here from the data"},
    "oom": {"zh": "显存不足", "en": "OOM"},
    "trace_title": {"zh": "NVML 采样：空闲、预填充、解码", "en": "NVML trace: idle, prefill, decode"},
    "util": {"zh": "GPU 利用率（%）", "en": "GPU util. (%)"},
    "power": {"zh": "功率（W）", "en": "power (W)"},
    "clock": {"zh": "SM 频率（MHz）", "en": "SM clock (MHz)"},
    "used": {"zh": "已用显存（GB）", "en": "memory used (GB)"},
    "time": {"zh": "时间（秒）", "en": "time (s)"},
    "idle": {"zh": "空闲", "en": "idle"},
    "prefill": {"zh": "预填充", "en": "prefill"},
    "decode": {"zh": "解码", "en": "decode"},
    "no_sheet": {"zh": "无标称值：{why}", "en": "no datasheet value: {why}"},
    "no_pred": {"zh": "无 calc 预测：{why}", "en": "no calc prediction: {why}"},
    "why_cpu": {"zh": "CPU 运行", "en": "CPU run"},
    "why_gpu": {"zh": "calc 的登记表里没有这块 GPU", "en": "this GPU is not in calc's registry"},
}


POWER_CAP = 0x4  # nvmlClocksEventReasonSwPowerCap: the clocks are lowered to stay under the power limit


def roofline_tflops(point, peak_flops, bandwidth):
    """The datasheet roofline for an MLP matmul point: FLOPs over max(compute time, bytes / bandwidth)."""
    m, n, k = point["m"], point["n"], point["k"]
    width = 1 if point["precision"] == "fp8" else 2  # x and W in fp8 or bf16; y is bf16 either way
    moved = width * (n * k + m * k) + 2 * m * n
    flops = 2 * m * n * k
    return flops / max(flops / peak_flops, moved / bandwidth) / 1e12


def weights_gbps(point):
    """Bytes of W read per second in the best repeat: at small M the matmul is a stream of the weights."""
    width = 1 if point["precision"] == "fp8" else 2
    return point["n"] * point["k"] * width / point["seconds"]["min"]


def t(key, lang, **kw):
    return TEXT[key][lang].format(**kw)


def plot(data, lang):
    import matplotlib.pyplot as plt

    prov, points = data["provenance"], data["points"]
    sheet = prov.get("datasheet") or {}
    device_kind = prov["device"]["kind"]
    why = t("why_cpu", lang) if device_kind == "cpu" else t("why_gpu", lang)
    footer = common.describe_run(prov, lang)
    figures = {}
    colors = {"bf16": "#4C72B0", "fp8": "#DD8452"}

    # 1. Matmul TFLOPS vs the datasheet
    if common.measured(points, "matmul"):
        fig, axes = plt.subplots(1, 2, figsize=(11, 4.6))
        for ax, shape in zip(axes, ("square", "mlp"), strict=True):
            for precision in ("bf16", "fp8"):
                pts = sorted(common.measured(points, "matmul", shape=shape, precision=precision), key=lambda p: p["m"])
                if pts:
                    ax.plot([p["m"] for p in pts], [p["TFLOPS"] for p in pts], marker="o", color=colors[precision],
                            label=precision.upper())
                peak = sheet.get(f"{precision}_dense_flops")
                if peak and pts:
                    ax.axhline(peak / 1e12, ls="--", color=colors[precision], alpha=0.7,
                               label=t("sheet", lang, p=precision.upper(), v=peak / 1e12))
                bw = sheet.get("memory_bandwidth_bytes_per_s")
                if shape == "mlp" and pts and peak and bw:
                    # the roofline from the datasheet: at M tokens the matmul reads W (N*K), x (M*K) and writes y
                    # (M*N, bf16), so below the ridge its time is at least those bytes / bandwidth
                    ax.plot([p["m"] for p in pts], [roofline_tflops(p, peak, bw) for p in pts], ls=":",
                            color=colors[precision], alpha=0.9, label=t("roof", lang, p=precision.upper()))
                if shape == "mlp" and pts and device_kind != "cpu":
                    first = pts[0]  # the smallest M, the decode case: how fast the weights stream from memory
                    ax.annotate(t("weights_gbps", lang, m=first["m"], v=weights_gbps(first) / 1e9),
                                (first["m"], first["TFLOPS"]), textcoords="offset points", fontsize=7,
                                xytext=(8, -10 if precision == "bf16" else 4), color=colors[precision])
            xs = [p["m"] for p in common.measured(points, "matmul", shape=shape)]
            if xs:
                common.log_axis(ax, "x", xs, base=2)
            common.log_axis(ax, "y")
            ax.set_ylabel(t("tflops", lang))
            # below the axes, so no legend covers a point or a roofline
            ax.legend(fontsize=6.5, loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=2, frameon=False)
        mlp = next(iter(common.measured(points, "matmul", shape="mlp")), None)
        axes[0].set_title(t("square", lang))
        axes[0].set_xlabel(t("n", lang))
        if mlp:
            axes[1].set_title(t("mlp", lang, k=mlp["k"], n=mlp["n"]))
        axes[1].set_xlabel(t("tokens", lang))
        note = footer if sheet else footer + "\n" + t("no_sheet", lang, why=why)
        figures["matmul-tflops"] = (fig, note)

    # 2. Bandwidth vs buffer size
    if common.measured(points, "bandwidth"):
        fig, ax = plt.subplots(figsize=(8, 4))
        for op, color in (("copy", "#4C72B0"), ("read", "#55A868")):
            pts = sorted(common.measured(points, "bandwidth", op=op), key=lambda p: p["buffer_bytes"])
            ax.plot([p["buffer_bytes"] / 2**20 for p in pts], [p["GBps"] for p in pts], marker="o", color=color,
                    label=t(op, lang))
        if sheet.get("memory_bandwidth_bytes_per_s"):
            bw = sheet["memory_bandwidth_bytes_per_s"] / 1e9
            ax.axhline(bw, ls="--", color="#8C8C8C", label=t("bw_sheet", lang, v=bw))
        l2 = prov["device"].get("l2_cache_bytes")
        if l2:
            ax.axvline(l2 / 2**20, ls=":", color="#C44E52", label=t("l2", lang, v=l2 / 2**20))
            ax.axvline(l2 / 2**21, ls=(0, (1, 3)), color="#C44E52", alpha=0.6, label=t("l2_half", lang))
        sizes = sorted({p["buffer_bytes"] / 2**20 for p in common.measured(points, "bandwidth")})
        common.log_axis(ax, "x", sizes[:: 1 + len(sizes) // 10], base=2)
        common.log_axis(ax, "y")
        ax.set_xlabel(t("buffer", lang))
        ax.set_ylabel(t("gbps", lang))
        cpu = prov["device"]["kind"] == "cpu"
        ax.set_title(t("bw_title_cpu" if cpu else "bw_title", lang))
        ax.legend(fontsize=7)
        note = footer if sheet else footer + "\n" + t("no_sheet", lang, why=why)
        figures["bandwidth"] = (fig, note)

    # 3. Memory: calc's prediction vs measurement, per batch x context point
    mem_points = [p for p in points if p.get("kind") == "memory" and not p.get("skipped")]
    if mem_points:
        fig, ax = plt.subplots(figsize=(max(6, 1.3 * len(mem_points) + 2), 4.2))
        colors = {"weights": "#4C72B0", "kv": "#DD8452", "act": "#55A868", "overhead": "#8C8C8C"}
        labelled = set()  # the legend names each part once, and only parts that are drawn (height > 0)

        def stack(x, values, **bar):
            bottom = 0
            for key, v in values:
                if v > 0:
                    ax.bar(x, v, 0.38, bottom=bottom, color=colors[key], label=None if key in labelled else t(key, lang), **bar)
                    labelled.add(key)
                    bottom += v

        any_prediction = any(p.get("predicted") for p in mem_points)
        for i, p in enumerate(mem_points):
            pred = p.get("predicted") or {}
            if pred:
                stack(i - 0.2, [(key, (pred.get(field) or 0) / 1e9) for key, field in (
                    ("weights", "weights_bytes"), ("kv", "kv_cache_bytes"), ("act", "activation_peak_bytes"),
                    ("overhead", "overhead_bytes"))])
            x = i + 0.2 if any_prediction else i
            if p.get("oom"):
                ax.text(x, 0, " " + t("oom", lang), ha="center", va="bottom", color="#C44E52", rotation=90)
                continue
            if p.get("peak_allocated_bytes") is not None:
                weights = p["allocated_before_bytes"] / 1e9
                kv = (p["allocated_after_bytes"] - p["allocated_before_bytes"]) / 1e9
                act = (p["peak_allocated_bytes"] - p["allocated_after_bytes"]) / 1e9
            else:  # CPU: only the KV tensors are known
                weights, kv, act = prov["model"]["weight_bytes"] / 1e9, p["kv_cache_tensor_bytes"] / 1e9, 0
            stack(x, [("weights", weights), ("kv", kv), ("act", act)], hatch="//", edgecolor="white")
            if p.get("nvml_used_bytes"):
                ax.plot(x, p["nvml_used_bytes"] / 1e9, marker="_", markersize=18, color="black",
                        label=None if "nvml" in labelled else t("nvml_used", lang))
                labelled.add("nvml")
                if p.get("peak_reserved_bytes") is not None:  # derived here, never stored: memory outside PyTorch
                    ax.annotate(t("non_torch", lang, v=(p["nvml_used_bytes"] - p["peak_reserved_bytes"]) / 1e9),
                                (x, p["nvml_used_bytes"] / 1e9), textcoords="offset points", xytext=(0, 4),
                                ha="center", va="bottom", fontsize=6)
                    labelled.add("non_torch")
        capacity = prov["device"].get("memory_bytes")
        if capacity:
            ax.axhline(capacity / 1e9, ls="--", color="#C44E52", label=t("capacity", lang, v=capacity / 1e9))
        ax.set_xlim(-0.6, len(mem_points) - 0.4)
        ax.set_xticks(range(len(mem_points)), [f"{p['batch']}×{p['context']}" for p in mem_points])
        ax.set_xlabel(t("point", lang) + (" · " + t("pred_bar", lang) + " · " + t("meas_bar", lang) if any_prediction
                                          else " · " + t("meas_only", lang)))
        cpu = prov["device"]["kind"] == "cpu"
        ax.set_ylabel(t("gb_cpu" if cpu else "gb", lang))
        ax.set_title(t("mem_title_cpu" if cpu else "mem_title", lang, model=prov["model"]["label"]))
        ax.legend(fontsize=7)
        note = footer if any_prediction else footer + "\n" + t("no_pred", lang, why=why)
        if "non_torch" in labelled:
            note += "\n" + t("non_torch_note", lang)
        if any((p.get("predicted") or {}).get("basis") for p in mem_points):
            note += "\n" + t("formula_only", lang)
        figures["memory"] = (fig, note)

    # 4. NVML trace (GPU only)
    trace = next(iter(common.measured(points, "trace")), None)
    samples = (trace or {}).get("nvml", {}).get("samples") or []
    if samples:
        marks = trace["nvml"]["marks"]
        ts = [s["t"] for s in samples]
        rows = (("util", [s["gpu_util_pct"] for s in samples]), ("power", [s["power_w"] for s in samples]),
                ("clock", [s["sm_clock_mhz"] for s in samples]), ("used", [s["mem_used_bytes"] / 1e9 for s in samples]))
        fig, axes = plt.subplots(len(rows), 1, figsize=(8, 6), sharex=True)
        shade = {"prefill": "#4C72B0", "decode": "#DD8452"}
        fmt = {"util": "{:.0f}%", "power": "{:.0f} W", "clock": "{:.0f} MHz", "used": "{:.1f} GB"}
        for ax, (key, ys) in zip(axes, rows, strict=True):
            ax.plot(ts, ys, lw=1, color="black")
            ax.set_ylabel(t(key, lang), fontsize=7)
            for a, b in zip(marks, marks[1:], strict=False):
                if a["label"] in shade:
                    ax.axvspan(a["t"], b["t"], color=shade[a["label"]], alpha=0.15,
                               label=t(a["label"], lang) if key == "util" else None)
                    inside = [y for x, y in zip(ts, ys, strict=True) if a["t"] <= x < b["t"]]
                    if inside:  # the phase's median, computed here from the samples (the data file keeps them all)
                        lo, hi = ax.get_ylim()
                        mid = median(inside)
                        # put the label in the half of the panel away from the phase's median, off the trace
                        y = 0.2 if (mid - lo) / ((hi - lo) or 1) > 0.5 else 0.8
                        ax.text((a["t"] + b["t"]) / 2, y, t("phase_median", lang, v=fmt[key].format(mid)),
                                transform=ax.get_xaxis_transform(), ha="center", va="center", fontsize=7,
                                bbox={"facecolor": "white", "alpha": 0.8, "edgecolor": "none"})
            if key == "clock":
                capped = [x for x, s in zip(ts, samples, strict=True) if (s.get("throttle_reasons") or 0) & POWER_CAP]
                if capped:
                    ax.plot(capped, [min(ys)] * len(capped), "|", color="#C44E52", markersize=6,
                            label=t("powercap", lang))
                    # outside the panel, so it covers neither the trace nor a phase's median
                    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
        axes[0].legend(fontsize=7, loc="upper right")
        axes[-1].set_xlabel(t("time", lang))
        fig.suptitle(t("trace_title", lang))
        figures["nvml-trace"] = (fig, footer)
    return figures


# ---------------------------------------------------------------------------------------------------------


def shape_list(text: str) -> list[tuple[int, int]]:
    """argparse type for "1x4096,8x4096": batch x context pairs."""
    try:
        pairs = [tuple(int(v) for v in item.lower().split("x")) for item in text.split(",") if item.strip()]
    except ValueError:
        pairs = []
    if not pairs or any(len(p) != 2 or min(p) < 1 for p in pairs):
        raise argparse.ArgumentTypeError(f"expected batch x context pairs like 1x4096,8x4096, got {text!r}")
    return pairs


def parse_args(argv):
    ap = common.lab_parser(__doc__, DEFAULT_OUT, QUICK_OUT)
    ap.add_argument("--parts", default=",".join(PARTS), help=f"what to measure, from {','.join(PARTS)}")
    ap.add_argument("--square-sizes", type=common.int_list, default=[256, 512, 1024, 2048, 4096, 8192, 16384])
    ap.add_argument("--token-counts", type=common.int_list, default=[1, 4, 16, 64, 256, 1024, 4096, 16384],
                    help="M of the MLP matmul sweep")
    ap.add_argument("--min-buffer-kib", type=int, default=64)
    ap.add_argument("--max-buffer-mib", type=int, default=4096)
    ap.add_argument("--memory-points", type=shape_list,
                    help="batch x context points of the memory comparison; default: 1x4096,1x32768,8x4096,16x8192 and "
                         "one at batch 32 that calc says exceeds this GPU's memory (recorded as OOM)")
    ap.add_argument("--phase-s", type=float, default=5.0, help="seconds of each phase of the NVML trace")
    ap.add_argument("--repeats", type=int, default=5)
    args = common.finish_lab_args(ap, ap.parse_args(argv), dict(
        square_sizes=[16, 32, 64], token_counts=[1, 8, 32], min_buffer_kib=64, max_buffer_mib=1,
        memory_points=[(1, 16), (2, 32)], phase_s=0.2, repeats=2), DEFAULT_OUT, QUICK_OUT)
    args.parts = [p for p in args.parts.split(",") if p]
    unknown = sorted(set(args.parts) - set(PARTS))
    if unknown:
        ap.error(f"--parts: unknown part(s) {', '.join(unknown)}; choose from {', '.join(PARTS)}")
    if args.repeats < 1 or args.phase_s <= 0:
        ap.error("--repeats must be >= 1 and --phase-s > 0")
    if args.min_buffer_kib < 1 or args.max_buffer_mib * 1024 < args.min_buffer_kib:
        ap.error("--min-buffer-kib must be >= 1 and not above --max-buffer-mib")
    return args


def refresh_prediction(point, prov) -> None:
    if point.get("kind") == "memory":
        point["predicted"] = predict_memory(point, prov)


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parse_args(argv)
    if args.plot_only:
        return common.plot_only(args.out, LAB, plot, refresh_prediction if args.repredict else None)
    device = common.pick_device(args.device)
    torch.manual_seed(0)
    prov = common.provenance(LAB, Path(__file__).name, argv, device, args.note)
    if device.type == "cuda":
        prov["device"]["l2_cache_bytes"] = getattr(torch.cuda.get_device_properties(device), "L2_cache_size", None)
    prov["datasheet"] = common.gpu_datasheet(prov["calc_gpu_key"])
    prov["settings"] = {k: v for k, v in vars(args).items() if k not in ("out", "plot_only", "repredict", "note")}
    data_path = args.out / "data" / f"{common.data_stem(prov)}.json"
    data = common.DataFile(data_path, prov, args.budget_s)
    print(f"data: {data_path}", flush=True)

    def measure(point, fn, *fn_args):
        return data.measure(point, lambda: fn(*fn_args), device, progress=f"[{len(data.doc['points']) + 1}]")

    with data.running():
        model = None
        if "memory" in args.parts or "trace" in args.parts or "matmul" in args.parts:
            model, prov["model"] = common.load_lab_model(args, device)
            data.write()
        if "matmul" in args.parts:
            precisions = ["bf16"] + (["fp8"] if has_fp8(device) else [])
            hidden, inter = model.config.hidden_size, model.config.intermediate_size
            shapes = [("square", n, n, n) for n in args.square_sizes] + [("mlp", m, inter, hidden) for m in args.token_counts]
            for precision in precisions:
                for shape, m, n, k in shapes:
                    # a shape _scaled_mm does not support becomes a point with "error", and the sweep goes on
                    measure({"kind": "matmul", "precision": precision, "shape": shape, "m": m, "n": n, "k": k},
                            measure_matmul, m, n, k, precision, device, args.repeats)
        if "bandwidth" in args.parts:
            sizes, nbytes = [], args.min_buffer_kib * 1024
            while nbytes <= args.max_buffer_mib * 2**20:
                sizes.append(nbytes)
                nbytes *= 2
            for nbytes in sizes:
                for op in ("copy", "read"):
                    measure({"kind": "bandwidth", "op": op, "buffer_bytes": nbytes}, measure_bandwidth, nbytes, op,
                            device, args.repeats)
        if "memory" in args.parts:
            prov["settings"]["memory_points"] = points = args.memory_points or memory_points(prov, prov["model"]["calc_params"])
            for batch, context in points:
                point = measure({"kind": "memory", "batch": batch, "context": context}, measure_memory, model, batch,
                                context, device)
                point["predicted"] = predict_memory(point, prov)
                data.write()
        if "trace" in args.parts:
            prefill_shape = (1, 32) if args.quick else (4, 2048)
            point = measure({"kind": "trace"}, measure_trace, model, device, args.phase_s, prefill_shape,
                            4 if args.quick else 64)
            nvml = point.get("nvml") or {}
            if not nvml.get("available", True):
                print(f"    NVML unavailable ({nvml.get('reason')}): phases ran, nothing was sampled", flush=True)
    common.plot_safely(plot, data_path, args.out / "figures")
    return 130 if data.doc["status"] == "interrupted" else 0


if __name__ == "__main__":
    sys.exit(main())
