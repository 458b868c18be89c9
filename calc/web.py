"""Presentation for the book's calculators: shared by the build-time prerender (hooks/calculators.py, CPython)
and the live pages (a Web Worker running this module under Pyodide), so both show the very same thing.

    view("memory", {"model": "llama-3.1-70b", "weights": "fp8"}, "zh")
        -> {"ok": True, "result": <what `python -m calc memory --json` prints>, "rows": [...], "details": [...],
            "warnings": [...], "chart": <SVG node tree>}
    view("memory", {"batch": "-1"}, "en")
        -> {"ok": False, "errors": {"batch": "batch must be an integer ≥ 1 and ≤ 65536"}}

All validation stays in calc.api; this module only labels, formats and draws. Rows carry the raw JSON value
(pages put it in ``data-value``) next to the display text: GB and GiB side by side for byte counts. A chart is
a tree of plain SVG nodes ({"tag", "attrs", "children", "text"}) that the page turns into elements with
createElementNS/textContent and the prerender into escaped markup: no HTML is ever built from user input.
"""

from __future__ import annotations

import json
import math

from . import api, units

LANGS = ("zh", "en")
# calculator page -> calc command
PAGES = {"vram": "memory", "performance": "perf", "cost": "cost", "roi": "roi"}


def _t(zh: str, en: str) -> dict:
    return {"zh": zh, "en": en}


# ---------------------------------------------------------------------------------------------------------
# Output fields: labels in both languages, and how each is displayed.

LABELS = {
    # echo of the inputs
    "model": _t("模型", "Model"),
    "gpu": _t("GPU", "GPU"),
    "weights": _t("权重格式", "Weight format"),
    "kv_dtype": _t("KV 缓存精度", "KV cache dtype"),
    "batch": _t("批大小", "Batch size"),
    "prompt_len": _t("提示长度", "Prompt length"),
    "output_len": _t("输出长度", "Output length"),
    "tp": _t("张量并行 GPU 数", "Tensor-parallel GPUs"),
    "attention": _t("注意力结构", "Attention layout"),
    # memory
    "params_total": _t("参数量（总）", "Parameters (total)"),
    "params_active": _t("参数量（每 token 激活）", "Parameters (active per token)"),
    "weights_bytes": _t("权重", "Weights"),
    "weights_bytes_per_gpu": _t("权重（每块 GPU）", "Weights (per GPU)"),
    "kv_bytes_per_token": _t("每 token 的 KV 缓存", "KV cache per token"),
    "kv_bytes_per_token_per_gpu": _t("每 token 的 KV 缓存（每块 GPU）", "KV cache per token (per GPU)"),
    "kv_cache_bytes": _t("KV 缓存", "KV cache"),
    "kv_cache_bytes_per_gpu": _t("KV 缓存（每块 GPU）", "KV cache (per GPU)"),
    "activation_peak_bytes": _t("激活峰值", "Activation peak"),
    "activation_peak_bytes_per_gpu": _t("激活峰值（每块 GPU）", "Activation peak (per GPU)"),
    "overhead_bytes": _t("运行时开销", "Runtime overhead"),
    "overhead_bytes_per_gpu": _t("运行时开销（每块 GPU）", "Runtime overhead (per GPU)"),
    "total_bytes": _t("合计", "Total"),
    "total_bytes_per_gpu": _t("合计（每块 GPU）", "Total (per GPU)"),
    "gpu_memory_bytes": _t("GPU 显存容量", "GPU memory"),
    "fits": _t("放得下吗", "Fits?"),
    "fits_reason": _t("说明", "Reason"),
    "max_concurrency": _t("最大并发请求数（此长度）", "Max concurrent requests (this length)"),
    "engine_gpu_memory_utilization": _t("引擎显存利用率上限", "Engine GPU memory utilization"),
    "engine_block_size": _t("引擎 KV 块大小", "Engine KV block size"),
    "engine_max_model_len": _t("引擎最大模型长度", "Engine max model length"),
    "engine_max_num_batched_tokens": _t("引擎最大批处理 token 数", "Engine max batched tokens"),
    "engine_kv_budget_bytes_per_gpu": _t("引擎 KV 缓存预算（每块 GPU）", "Engine KV cache budget (per GPU)"),
    "engine_num_kv_blocks": _t("引擎 KV 块数", "Engine KV blocks"),
    "engine_max_tokens_in_cache": _t("引擎可缓存 token 数", "Engine tokens in cache"),
    "engine_max_concurrency_at_max_model_len": _t("引擎并发（按最大模型长度）", "Engine concurrency at max model length"),
    "engine_fits_one_max_len_request": _t("引擎放得下一个最长请求", "Engine fits one max-length request"),
    # perf
    "compute_dtype": _t("计算精度", "Compute dtype"),
    "peak_flops": _t("峰值算力（稠密）", "Peak FLOPS (dense)"),
    "effective_flops": _t("有效算力", "Effective FLOPS"),
    "effective_bandwidth_bytes_per_s": _t("有效显存带宽", "Effective memory bandwidth"),
    "memory_efficiency": _t("显存带宽效率", "Memory bandwidth efficiency"),
    "compute_efficiency": _t("算力效率", "Compute efficiency"),
    "prefill_flops": _t("预填充计算量", "Prefill FLOPs"),
    "prefill_bytes": _t("预填充读写字节", "Prefill bytes moved"),
    "prefill_s": _t("预填充时间", "Prefill time"),
    "prefill_bound": _t("预填充瓶颈", "Prefill bound"),
    "ttft_s": _t("TTFT（首 token 时延）", "TTFT (time to first token)"),
    "decode_flops_per_step": _t("每步解码计算量", "Decode FLOPs per step"),
    "decode_bytes_per_step": _t("每步解码读写字节", "Decode bytes per step"),
    "tpot_s": _t("TPOT（每输出 token 时间）", "TPOT (time per output token)"),
    "bound": _t("解码瓶颈", "Decode bound"),
    "decode_tok_per_s": _t("解码吞吐（整批）", "Decode throughput (whole batch)"),
    "decode_tok_per_s_per_request": _t("解码速度（每个请求）", "Decode speed (per request)"),
    "e2e_s": _t("端到端时延（E2EL）", "End-to-end latency (E2EL)"),
    "throughput_tok_per_s": _t("输出吞吐（含预填充）", "Output throughput (incl. prefill)"),
    "allreduce_s_per_step": _t("每步 all-reduce 时间", "All-reduce time per step"),
    "ridge_flops_per_byte": _t("屋脊点（标称）", "Ridge point (datasheet)"),
    "ridge_flops_per_byte_effective": _t("屋脊点（有效）", "Ridge point (effective)"),
    "critical_batch": _t("临界批大小", "Critical batch size"),
    "critical_batch_weights_only": _t("临界批大小（仅权重）", "Critical batch size (weights only)"),
    # cost
    "usd_per_gpu_hour": _t("每 GPU 小时价格", "Price per GPU-hour"),
    "usd_per_hour": _t("每小时费用（一个副本）", "Cost per hour (one replica)"),
    "utilization": _t("利用率", "Utilization"),
    "usd_per_million_input_tokens": _t("每百万输入 token 成本", "Cost per 1M input tokens"),
    "usd_per_million_output_tokens": _t("每百万输出 token 成本", "Cost per 1M output tokens"),
    "usd_per_request": _t("自建：每请求成本", "Self-hosted: cost per request"),
    "requests_per_s_per_replica": _t("每副本请求容量", "Requests per replica"),
    "requests_per_s": _t("请求速率", "Request rate"),
    "replicas_needed": _t("所需副本数", "Replicas needed"),
    "gpus_needed": _t("所需 GPU 数", "GPUs needed"),
    "monthly_cost_usd": _t("自建：每月费用", "Self-hosted: monthly cost"),
    "monthly_requests": _t("每月请求数", "Requests per month"),
    "gpu_price_source": _t("GPU 价格来源", "GPU price source"),
    "gpu_price_as_of": _t("GPU 价格日期", "GPU price as of"),
    "api": _t("对比的 API", "API compared"),
    "api_usd_per_request": _t("API：每请求费用", "API: cost per request"),
    "api_monthly_cost_usd": _t("API：每月费用", "API: monthly cost"),
    "monthly_savings_usd": _t("每月节省（API − 自建）", "Monthly savings (API − self-hosted)"),
    # roi
    "one_off_usd": _t("一次性投入", "One-off investment"),
    "payback_months": _t("回本时间", "Payback time"),
    "roi_12m": _t("12 个月 ROI", "ROI after 12 months"),
    "roi_24m": _t("24 个月 ROI", "ROI after 24 months"),
    "net_12m_usd": _t("12 个月净收益", "Net after 12 months"),
    "net_24m_usd": _t("24 个月净收益", "Net after 24 months"),
    "break_even_requests_per_month": _t("盈亏平衡请求量（每月）", "Break-even requests per month"),
}

# Output values that are words: shown translated.
VALUE_WORDS = {
    "memory": _t("显存带宽", "memory bandwidth"),
    "compute": _t("算力", "compute"),
    "gqa": _t("GQA（分组查询注意力）", "GQA (grouped-query attention)"),
    "mha": _t("MHA（多头注意力）", "MHA (multi-head attention)"),
    "mqa": _t("MQA（多查询注意力）", "MQA (multi-query attention)"),
    "mla": _t("MLA（多头潜在注意力）", "MLA (multi-head latent attention)"),
}

# The rows of the main result table, per command; every other scalar output goes into "all outputs".
MAIN_ROWS = {
    "memory": ["weights_bytes", "kv_cache_bytes", "activation_peak_bytes", "overhead_bytes", "total_bytes",
               "total_bytes_per_gpu", "gpu_memory_bytes", "fits", "max_concurrency", "kv_bytes_per_token",
               "params_total"],
    "perf": ["ttft_s", "tpot_s", "e2e_s", "decode_tok_per_s_per_request", "decode_tok_per_s",
             "throughput_tok_per_s", "bound", "prefill_bound", "critical_batch"],
    "cost": ["usd_per_million_input_tokens", "usd_per_million_output_tokens", "usd_per_request",
             "api_usd_per_request", "usd_per_hour", "gpus_needed", "monthly_cost_usd", "api_monthly_cost_usd",
             "monthly_savings_usd"],
    "roi": ["one_off_usd", "monthly_savings_usd", "payback_months", "net_12m_usd", "net_24m_usd", "roi_12m",
            "roi_24m", "break_even_requests_per_month", "monthly_cost_usd", "api_monthly_cost_usd"],
}
# Outputs shown elsewhere (chart, warnings) or folded into another row, and the inputs the CLI echoes back
# (already on the form; on a page their data-testid would clash with the input's).
NOT_ROWS = {"throughput_curve", "api_comparison", "warnings", "fits_reason",
            "model", "gpu", "weights", "kv_dtype", "batch", "prompt_len", "output_len", "tp", "api", "utilization",
            "requests_per_s"}

UI = {
    "yes": _t("是", "yes"),
    "no": _t("否", "no"),
    "none": _t("—", "—"),
    "months": _t("个月", "months"),
    "never": _t("不回本（每月没有节省）", "never (no monthly savings)"),
    "requests": _t("个请求", "requests"),
    "blocks": _t("块", "blocks"),
    "tokens": _t("token", "tokens"),
    "your_input": _t("你输入的价格", "your input"),
}

GB = units.GB


def label(field: str, lang: str) -> str:
    entry = LABELS.get(field)
    return entry[lang] if entry else field


def _num(x: float, digits: int) -> str:
    return units.format_number(x, f"num:{digits}")


def _usd(x: float) -> str:
    """Money with the digits its size needs: $1,234.50, $0.0123, $0.000045."""
    return units.format_number(x, "usd:" + ("2" if abs(x) >= 1 or x == 0 else ("4" if abs(x) >= 0.01 else "6")))


# FLOP counts: the largest unit the value reaches (the smallest when none)
_FLOP_UNITS = ((1e15, "PFLOP"), (1e12, "TFLOP"), (1e9, "GFLOP"), (1e6, "MFLOP"))


def _flop_count(x: float) -> str:
    unit = next((u for size, u in _FLOP_UNITS if abs(x) >= size), _FLOP_UNITS[-1][1])
    return units.format_number(x, f"{unit}:2")


def format_value(field: str, value, lang: str) -> tuple[str, str]:
    """(display, alternative) for one output: e.g. ("16.06 GB", "14.96 GiB"). Never NaN, Infinity or a sign
    on a size: a missing or non-finite number shows as an em dash. Numbers go through calc/units.py, the
    formatter the chapter text uses too; the unit follows the field's name."""
    if isinstance(value, dict) and set(value) >= {"en", "zh"}:
        return value[lang], ""
    if isinstance(value, bool):
        return UI["yes" if value else "no"][lang], ""
    if value is None:
        if field == "payback_months":
            return UI["never"][lang], ""
        return UI["none"][lang], ""
    if isinstance(value, str) and field.endswith("_source"):
        if value == "input":
            return UI["your_input"][lang], ""
        return (_host(value) if value.startswith("https://") else value), ""
    if isinstance(value, str):
        words = VALUE_WORDS.get(value)
        return (words[lang] if words and field in ("bound", "prefill_bound", "attention") else value), ""
    if not isinstance(value, (int, float)) or not math.isfinite(value):
        return UI["none"][lang], ""
    x, fmt = value, units.format_number
    if field.endswith("bytes_per_s"):
        return fmt(x, "GB/s:1"), ""
    if "bytes_per_token" in field:
        if x < 0:
            return UI["none"][lang], ""
        return fmt(x, "KB:2"), fmt(x, "KiB:2")
    if "bytes" in field:
        if x < 0:
            return UI["none"][lang], ""
        return fmt(x, "GB:2"), fmt(x, "GiB:2")
    if "tok_per_s" in field:
        return fmt(x, "tok/s:1"), ""
    if field.startswith("requests_per_s"):
        return fmt(x, "req/s:3"), ""
    if field.endswith("_s"):
        return fmt(x, "s:3") if abs(x) >= 1 else fmt(x, "ms:2"), ""
    if field in ("peak_flops", "effective_flops"):
        return fmt(x, "TFLOPS:1"), ""
    if "flops_per_byte" in field:
        return fmt(x, "FLOP/B:1"), ""
    if "flops" in field:
        return _flop_count(x), ""
    if "usd" in field:
        return _usd(x), ""
    if field.startswith("roi_"):
        return fmt(x, "%:1"), ""
    if "efficiency" in field or field in ("utilization", "engine_gpu_memory_utilization"):
        return fmt(x, "%:1"), ""
    if field.startswith("params"):
        return fmt(x, "params:2"), fmt(int(x), "int")
    if field == "payback_months":
        return f"{fmt(x, 'num:1')} {UI['months'][lang]}", ""
    if field in ("monthly_requests", "break_even_requests_per_month"):
        return f"{fmt(x, 'int')} {UI['requests'][lang]}", ""
    if field in ("engine_max_tokens_in_cache", "engine_block_size", "engine_max_model_len",
                 "engine_max_num_batched_tokens", "prompt_len", "output_len"):
        return f"{fmt(x, 'int')} {UI['tokens'][lang]}", ""
    if field == "engine_num_kv_blocks":
        return f"{fmt(x, 'int')} {UI['blocks'][lang]}", ""
    if isinstance(x, int):
        return fmt(x, "int"), ""
    return (fmt(x, "num:2") if abs(x) >= 1 else f"{x:.4g}"), ""


def _host(url: str) -> str:
    """"https://www.example.com/a/b" -> "example.com": a source link reads as where it points."""
    host = url.split("://", 1)[1].split("/", 1)[0]
    return host[4:] if host.startswith("www.") else host


def _link(field: str, value) -> str:
    """The address a source output links to ("" for anything else: only https URLs from the registry)."""
    return value if field.endswith("_source") and isinstance(value, str) and value.startswith("https://") else ""


def _row(field: str, result: dict, lang: str) -> dict:
    value = result[field]
    if field == "fits" and isinstance(result.get("fits_reason"), dict):
        display = result["fits_reason"][lang]
        alt = ""
    else:
        display, alt = format_value(field, value, lang)
    return {"field": field, "label": label(field, lang), "value": value, "display": display, "alt": alt,
            "href": _link(field, value)}


def rows(command: str, result: dict, lang: str) -> tuple[list[dict], list[dict]]:
    """(main rows, all other scalar outputs) for the result tables."""
    main = [_row(f, result, lang) for f in MAIN_ROWS[command] if f in result]
    shown = {r["field"] for r in main}
    rest = [_row(f, result, lang) for f, v in result.items()
            if f not in shown and f not in NOT_ROWS and not isinstance(v, (list, dict))]
    return main, rest


# ---------------------------------------------------------------------------------------------------------
# Charts: SVG node trees


def node(tag: str, attrs: dict | None = None, children: list | None = None, text: str | None = None) -> dict:
    out = {"tag": tag, "attrs": {k: (_raw(v) if k.startswith("data-") else _attr(v)) for k, v in (attrs or {}).items()}}
    if children:
        out["children"] = children
    if text is not None:
        out["text"] = text
    return out


def _raw(v) -> str:
    """A data-* attribute: the exact number (repr round-trips, as JavaScript's String() does)."""
    if isinstance(v, float):
        return repr(v) if math.isfinite(v) else "null"
    return "null" if v is None else str(v)


def _attr(v) -> str:
    if isinstance(v, float):
        return f"{v:.2f}".rstrip("0").rstrip(".") if math.isfinite(v) else "0"
    return str(v)


def nice_ticks(lo: float, hi: float, count: int = 5) -> list[float]:
    """Round tick values covering [lo, hi] (1, 2, 5 × 10^n steps)."""
    if not (math.isfinite(lo) and math.isfinite(hi)) or hi <= lo:
        hi = lo + 1
    raw = (hi - lo) / max(count, 1)
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 5, 10) if m * mag >= raw)
    first = math.floor(lo / step) * step
    ticks, t = [], first
    while t <= hi + step * 0.5 and len(ticks) < 50:
        ticks.append(round(t, 12))
        t += step
    return ticks


def _compact(x: float, prefix: str = "") -> str:
    sign = "-" if x < 0 else ""
    a = abs(x)
    for div, suf in ((1e12, "T"), (1e9, "B"), (1e6, "M"), (1e3, "k")):
        if a >= div:
            return f"{sign}{prefix}{a / div:g}{suf}" if (a / div) == round(a / div, 2) else f"{sign}{prefix}{a / div:.1f}{suf}"
    return f"{sign}{prefix}{a:g}"


W = 640  # every chart is 640 units wide and scales with the page


def _svg(height: int, title: str, children: list, testid: str) -> dict:
    return node("svg", {"viewBox": f"0 0 {W} {height}", "class": "calc-chart", "role": "img",
                        "aria-label": title, "data-testid": testid},
                [node("title", text=title), *children])


def _text(x, y, s, cls="calc-chart__label", anchor="start", **extra) -> dict:
    return node("text", {"x": x, "y": y, "class": cls, "text-anchor": anchor, **extra}, text=s)


MEMORY_PARTS = [
    ("weights", "weights_bytes_per_gpu", _t("权重", "Weights")),
    ("kv", "kv_cache_bytes_per_gpu", _t("KV 缓存", "KV cache")),
    ("activations", "activation_peak_bytes_per_gpu", _t("激活峰值", "Activations")),
    ("overhead", "overhead_bytes_per_gpu", _t("运行时开销", "Overhead")),
]


def memory_chart(result: dict, lang: str) -> dict:
    """One stacked bar: what one GPU holds, against the GPU's capacity."""
    capacity = result["gpu_memory_bytes"]
    parts = [(key, field, name, result.get(field) or 0) for key, field, name in MEMORY_PARTS]
    total = sum(p[3] for p in parts)
    top = max(total, capacity) * 1.05 or 1
    x0, x1, y, h = 20, W - 20, 58, 44
    scale = (x1 - x0) / top
    title = _t("每块 GPU 的显存构成（GB）", "Memory per GPU (GB)")[lang]
    kids = [_text(x0, 22, title, "calc-chart__title")]
    for t in nice_ticks(0, top / GB):
        if t * GB > top:
            break
        x = x0 + t * GB * scale
        kids.append(node("line", {"x1": x, "x2": x, "y1": y - 6, "y2": y + h + 6, "class": "calc-chart__grid"}))
        kids.append(_text(x, y + h + 22, f"{t:g}", "calc-chart__tick", "middle"))
    x = x0
    for key, field, name, value in parts:
        width = value * scale
        kids.append(node("rect", {"x": x, "y": y, "width": width, "height": h,
                                  "class": f"calc-chart__part calc-chart__part--{key}",
                                  "data-series": key, "data-value": value},
                         [node("title", text=f"{name[lang]}: {format_value(field, value, lang)[0]}")]))
        x += width
    cx = x0 + capacity * scale
    kids.append(node("line", {"x1": cx, "x2": cx, "y1": y - 14, "y2": y + h + 10, "class": "calc-chart__limit",
                              "data-series": "capacity", "data-value": capacity}))
    cap_label = _t("GPU 显存", "GPU memory")[lang] + f" {_num(capacity / GB, 1)} GB"
    kids.append(_text(cx, y - 18, cap_label, "calc-chart__note", "end" if cx > W / 2 else "start"))
    # legend
    lx, ly = x0, y + h + 52
    for key, _field, name, value in parts:
        kids.append(node("rect", {"x": lx, "y": ly - 10, "width": 12, "height": 12,
                                  "class": f"calc-chart__part calc-chart__part--{key}"}))
        entry = f"{name[lang]} {_num(value / GB, 2)}"
        kids.append(_text(lx + 16, ly, entry, "calc-chart__legend"))
        lx += 24 + 7.5 * len(entry) + (4 * len(name[lang]) if lang == "zh" else 0)
    return _svg(ly + 14, title, kids, "chart")


def _log2_axis(values: list[float], x0: float, x1: float):
    lo, hi = math.log2(min(values)), math.log2(max(values))
    span = (hi - lo) or 1
    return lambda v: x0 + (math.log2(v) - lo) / span * (x1 - x0)


def _panel(points, xs, ys_field, scale_y, x0, x1, y0, y1, title, fmt_tick, current, series, kids):
    ys = [p[ys_field] * scale_y for p in points]
    top = max(ys + [current[1] * scale_y if current[1] is not None else 0]) * 1.1 or 1
    ticks = nice_ticks(0, top, 4)
    top = max(top, ticks[-1])
    fx = _log2_axis([p["batch"] for p in points] + ([current[0]] if current[0] else []), x0, x1)

    def fy(v):
        return y1 - v / top * (y1 - y0)

    kids.append(_text(x0, y0 - 12, title, "calc-chart__title"))
    for t in ticks:
        kids.append(node("line", {"x1": x0, "x2": x1, "y1": fy(t), "y2": fy(t), "class": "calc-chart__grid"}))
        kids.append(_text(x0 - 6, fy(t) + 4, fmt_tick(t), "calc-chart__tick", "end"))
    for p in points:
        if p["batch"] in (1, 4, 16, 64, 256, 1024, 4096, 16384, 65536):
            kids.append(_text(fx(p["batch"]), y1 + 16, f"{p['batch']}", "calc-chart__tick", "middle"))
    pts = " ".join(f"{_attr(fx(p['batch']))},{_attr(fy(v))}" for p, v in zip(points, ys, strict=True))
    kids.append(node("polyline", {"points": pts, "class": f"calc-chart__line calc-chart__line--{series}",
                                  "data-series": series}))
    for p, v in zip(points, ys, strict=True):
        kids.append(node("circle", {"cx": fx(p["batch"]), "cy": fy(v), "r": 3,
                                    "class": f"calc-chart__dot calc-chart__dot--{p.get('bound', '')}",
                                    "data-series": series, "data-batch": p["batch"], "data-value": p[ys_field]}))
    if current[0] and current[1] is not None:
        kids.append(node("circle", {"cx": fx(current[0]), "cy": fy(current[1] * scale_y), "r": 6,
                                    "class": "calc-chart__current", "data-series": f"{series}-current",
                                    "data-batch": current[0], "data-value": current[1]}))


def perf_chart(result: dict, lang: str) -> dict:
    """TPOT and decode throughput against the batch size (log scale), the chosen batch marked."""
    curve = [p for p in result.get("throughput_curve") or [] if p.get("tpot_s") and p.get("decode_tok_per_s")]
    title = _t("批大小对时延与吞吐的影响", "Latency and throughput vs batch size")[lang]
    if not curve:
        return _svg(60, title, [_text(20, 30, UI["none"][lang])], "chart")
    kids = []
    batch = result.get("batch")
    _panel(curve, None, "tpot_s", 1e3, 64, 300, 44, 214, _t("TPOT（ms）", "TPOT (ms)")[lang], lambda t: f"{t:g}",
           (batch, result.get("tpot_s")), "tpot", kids)
    _panel(curve, None, "decode_tok_per_s", 1, 400, 620, 44, 214,
           _t("解码吞吐（tok/s）", "Decode throughput (tok/s)")[lang], _compact,
           (batch, result.get("decode_tok_per_s")), "throughput", kids)
    xlabel = _t("批大小（对数坐标）；空心点：显存带宽瓶颈，实心点：算力瓶颈；大圆点：当前输入",
                "Batch size (log scale); hollow: memory-bound, filled: compute-bound; large dot: your input")[lang]
    kids.append(_text(W / 2, 252, xlabel, "calc-chart__note", "middle"))
    return _svg(264, title, kids, "chart")


def cost_series(result: dict) -> list[dict]:
    """USD per 1M tokens at the request's prompt/output mix: self-hosted, then each API (cheapest first)."""
    tokens = (result.get("prompt_len") or 0) + (result.get("output_len") or 0)
    if not tokens:
        return []
    out = [{"key": "self", "name": None, "usd_per_million_tokens": result["usd_per_request"] / tokens * 1e6}]
    apis = sorted(result.get("api_comparison") or [], key=lambda c: c["usd_per_request"])
    out += [{"key": c["api"], "name": f"{c['provider']} {c['model']}",
             "usd_per_million_tokens": c["usd_per_request"] / tokens * 1e6} for c in apis]
    return out


def cost_chart(result: dict, lang: str) -> dict:
    series = [s for s in cost_series(result) if s["usd_per_million_tokens"] is not None]
    title = _t("每百万 token 成本（按本请求的输入/输出比例，美元）",
               "Cost per 1M tokens at this input/output mix (USD)")[lang]
    self_name = _t("自建", "Self-hosted")[lang] + f" ({result.get('gpu')} × {result.get('tp')})"
    row_h, x0, x1, y0 = 24, 250, W - 70, 40
    top = max([s["usd_per_million_tokens"] for s in series] + [0]) * 1.05 or 1
    kids = [_text(20, 22, title, "calc-chart__title")]
    for i, s in enumerate(series):
        y = y0 + i * row_h
        width = max(s["usd_per_million_tokens"], 0) / top * (x1 - x0)
        cls = "self" if s["key"] == "self" else ("chosen" if s["key"] == result.get("api") else "api")
        name = self_name if s["key"] == "self" else s["name"]
        if len(name) > 34:
            name = name[:33] + "…"
        kids.append(_text(x0 - 8, y + 15, name, "calc-chart__label", "end"))
        kids.append(node("rect", {"x": x0, "y": y + 3, "width": width, "height": row_h - 8,
                                  "class": f"calc-chart__bar calc-chart__bar--{cls}",
                                  "data-series": s["key"], "data-value": s["usd_per_million_tokens"]}))
        kids.append(_text(x0 + width + 6, y + 15, _usd(s["usd_per_million_tokens"]), "calc-chart__value"))
    return _svg(y0 + len(series) * row_h + 10, title, kids, "chart")


def roi_series(result: dict, months: int | None = None) -> dict:
    """Cumulative savings per month against the one-off investment."""
    savings = result.get("monthly_savings_usd") or 0.0
    invest = result.get("one_off_usd") or 0.0
    payback = result.get("payback_months")
    if months is None:
        months = 24 if payback is None else min(60, max(24, math.ceil(payback * 1.25)))
    return {"months": months, "investment": invest, "payback_months": payback,
            "cumulative": [m * savings for m in range(months + 1)]}


def roi_chart(result: dict, lang: str) -> dict:
    s = roi_series(result)
    months, invest, cum = s["months"], s["investment"], s["cumulative"]
    title = _t("累计节省与一次性投入（美元）", "Cumulative savings vs one-off investment (USD)")[lang]
    x0, x1, y0, y1 = 70, W - 20, 40, 230
    lo, hi = min(cum + [0, invest]), max(cum + [0, invest])
    ticks = nice_ticks(lo, hi if hi > lo else lo + 1, 5)
    lo, hi = min(lo, ticks[0]), max(hi, ticks[-1])

    def fx(m):
        return x0 + m / months * (x1 - x0)

    def fy(v):
        return y1 - (v - lo) / ((hi - lo) or 1) * (y1 - y0)

    kids = [_text(20, 22, title, "calc-chart__title")]
    for t in ticks:
        kids.append(node("line", {"x1": x0, "x2": x1, "y1": fy(t), "y2": fy(t), "class": "calc-chart__grid"}))
        kids.append(_text(x0 - 6, fy(t) + 4, _compact(t, "$"), "calc-chart__tick", "end"))
    step = 6 if months <= 36 else 12
    for m in range(0, months + 1, step):
        kids.append(_text(fx(m), y1 + 16, str(m), "calc-chart__tick", "middle"))
    kids.append(node("line", {"x1": x0, "x2": x1, "y1": fy(invest), "y2": fy(invest),
                              "class": "calc-chart__limit", "data-series": "investment", "data-value": invest}))
    kids.append(_text(x1, fy(invest) - 6, _t("一次性投入", "One-off investment")[lang] + " " + _usd(invest),
                      "calc-chart__note", "end"))
    pts = " ".join(f"{_attr(fx(m))},{_attr(fy(v))}" for m, v in enumerate(cum))
    kids.append(node("polyline", {"points": pts, "class": "calc-chart__line calc-chart__line--savings",
                                  "data-series": "savings", "data-value": cum[-1]}))
    if s["payback_months"] is not None and s["payback_months"] <= months:
        px = fx(s["payback_months"])
        kids.append(node("circle", {"cx": px, "cy": fy(invest), "r": 6, "class": "calc-chart__current",
                                    "data-series": "payback", "data-value": s["payback_months"]}))
        kids.append(_text(px, fy(invest) + 22, _t("回本", "Payback")[lang] + " "
                          + format_value("payback_months", s["payback_months"], lang)[0], "calc-chart__note", "middle"))
    kids.append(_text(W / 2, y1 + 36, _t("月份", "Months")[lang], "calc-chart__note", "middle"))
    return _svg(y1 + 46, title, kids, "chart")


CHARTS = {"memory": memory_chart, "perf": perf_chart, "cost": cost_chart, "roi": roi_chart}


def svg_markup(tree: dict) -> str:
    """Escaped SVG markup for a node tree (the build-time prerender)."""
    import html  # here, not at the top: the browser never needs it
    attrs = "".join(f' {k}="{html.escape(v, quote=True)}"' for k, v in tree.get("attrs", {}).items())
    if tree["tag"] == "svg":
        attrs = ' xmlns="http://www.w3.org/2000/svg"' + attrs
    inner = html.escape(tree["text"], quote=False) if tree.get("text") is not None else ""
    inner += "".join(svg_markup(child) for child in tree.get("children", []))
    return f"<{tree['tag']}{attrs}>{inner}</{tree['tag']}>"


# ---------------------------------------------------------------------------------------------------------
# The one call both sides make


def view(command: str, params: dict, lang: str = "zh") -> dict:
    """Everything a page shows for one set of inputs, in one language."""
    if lang not in LANGS:
        lang = "en"
    try:
        result = api.run(command, params)
    except api.InputError as e:
        return {"ok": False, "errors": {name: msg.get(lang) or msg.get("en", "") for name, msg in e.errors.items()}}
    main, rest = rows(command, result, lang)
    return {
        "ok": True,
        "result": result,
        "rows": main,
        "details": rest,
        "warnings": [w[lang] for w in result.get("warnings", [])],
        "chart": CHARTS[command](result, lang),
    }


def view_json(request: str) -> str:
    """The Web Worker's entry point: JSON in ({command, params, lang}), JSON out (a view)."""
    req = json.loads(request)
    params = {str(k): ("" if v is None else str(v)) for k, v in (req.get("params") or {}).items()}
    return json.dumps(view(req["command"], params, req.get("lang", "zh")), ensure_ascii=False, allow_nan=False)


def default_text(field: dict) -> str:
    """A field's default as the text a form input holds ("" for none)."""
    value = field.get("default")
    if value is None:
        return ""
    if isinstance(value, float) and math.isfinite(value) and value == int(value) and abs(value) < 2**53:
        return str(int(value))
    return str(value)
