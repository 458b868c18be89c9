"""The calculators' charts, as trees of plain SVG nodes: {"tag", "attrs", "children", "text"}.

calc/web.py's view() puts a chart next to the result tables. The page turns a tree into elements with
createElementNS/textContent (docs/assets/js/calculators/calculators.js), the build-time prerender into escaped
markup (svg_markup): no HTML is ever built from user input. Numbers are formatted by calc/units.py, words come
from calc/strings.py. Every chart is 640 units wide and scales with the page.
"""

from __future__ import annotations

import math

from . import units
from .strings import UI

GB = units.GB


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
    ("weights", "weights_bytes_per_gpu", UI["memory_weights"]),
    ("kv", "kv_cache_bytes_per_gpu", UI["memory_kv"]),
    ("activations", "activation_peak_bytes_per_gpu", UI["memory_activations"]),
    ("overhead", "overhead_bytes_per_gpu", UI["memory_overhead"]),
]


STAGE_PARTS = [("weights", "weights_bytes"), ("kv", "kv_cache_bytes"), ("activations", "activation_peak_bytes"),
               ("overhead", "overhead_bytes")]


def _stages_chart(result: dict, lang: str, fmt) -> dict:
    """Pipeline parallelism: one stacked bar per stage (what one GPU of that stage holds), against capacity.
    Series are named <part>-stage<n> (and "capacity")."""
    table = result["per_gpu_table"]
    capacity = result["gpu_memory_bytes"]
    names = {key: name for key, _field, name in MEMORY_PARTS}
    top = max([r["total_bytes"] for r in table] + [capacity]) * 1.05 or 1
    x0, x1, label_w, h, gap = 20, W - 20, 205, 26, 12
    bx0 = x0 + label_w
    scale = (x1 - bx0) / top
    title = UI["memory_title"][lang]
    kids = [_text(x0, 22, title, "calc-chart__title")]
    y = 44
    for row in table:
        label = UI["memory_stage"][lang].format(n=row["stage"], a=row["first_layer"], b=row["last_layer"])
        kids.append(_text(x0, y + h / 2 + 4, label, "calc-chart__legend"))
        x = bx0
        for key, field in STAGE_PARTS:
            value = row[field]
            width = value * scale
            kids.append(node("rect", {"x": x, "y": y, "width": width, "height": h,
                                      "class": f"calc-chart__part calc-chart__part--{key}",
                                      "data-series": f"{key}-stage{row['stage']}", "data-value": value},
                             [node("title", text=f"{label} · {names[key][lang]}: {fmt('bytes', value, lang)[0]}")]))
            x += width
        y += h + gap
    cx = bx0 + capacity * scale
    kids.append(node("line", {"x1": cx, "x2": cx, "y1": 36, "y2": y, "class": "calc-chart__limit",
                              "data-series": "capacity", "data-value": capacity}))
    cap_label = UI["memory_capacity"][lang] + " " + units.format_number(capacity, "GB:1")
    kids.append(_text(cx, 34, cap_label, "calc-chart__note", "end" if cx > W / 2 else "start"))
    lx, ly = x0, y + 16
    for key, _field in STAGE_PARTS:
        kids.append(node("rect", {"x": lx, "y": ly - 10, "width": 12, "height": 12,
                                  "class": f"calc-chart__part calc-chart__part--{key}"}))
        kids.append(_text(lx + 16, ly, names[key][lang], "calc-chart__legend"))
        lx += 40 + 7.5 * len(names[key][lang]) + (4 * len(names[key][lang]) if lang == "zh" else 0)
    return _svg(ly + 14, title, kids, "chart")


def memory_chart(result: dict, lang: str, fmt) -> dict:
    """One stacked bar: what one GPU holds, against the GPU's capacity (one bar per pipeline stage with pp > 1)."""
    if len(result.get("per_gpu_table") or []) > 1:
        return _stages_chart(result, lang, fmt)
    capacity = result["gpu_memory_bytes"]
    parts = [(key, field, name, result.get(field) or 0) for key, field, name in MEMORY_PARTS]
    total = sum(p[3] for p in parts)
    top = max(total, capacity) * 1.05 or 1
    x0, x1, y, h = 20, W - 20, 58, 44
    scale = (x1 - x0) / top
    title = UI["memory_title"][lang]
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
                         [node("title", text=f"{name[lang]}: {fmt(field, value, lang)[0]}")]))
        x += width
    cx = x0 + capacity * scale
    kids.append(node("line", {"x1": cx, "x2": cx, "y1": y - 14, "y2": y + h + 10, "class": "calc-chart__limit",
                              "data-series": "capacity", "data-value": capacity}))
    cap_label = UI["memory_capacity"][lang] + " " + units.format_number(capacity, "GB:1")
    kids.append(_text(cx, y - 18, cap_label, "calc-chart__note", "end" if cx > W / 2 else "start"))
    # legend
    lx, ly = x0, y + h + 52
    for key, _field, name, value in parts:
        kids.append(node("rect", {"x": lx, "y": ly - 10, "width": 12, "height": 12,
                                  "class": f"calc-chart__part calc-chart__part--{key}"}))
        entry = f"{name[lang]} {units.format_number(value / GB, 'num:2')}"
        kids.append(_text(lx + 16, ly, entry, "calc-chart__legend"))
        lx += 24 + 7.5 * len(entry) + (4 * len(name[lang]) if lang == "zh" else 0)
    return _svg(ly + 14, title, kids, "chart")


def _log2_axis(values: list[float], x0: float, x1: float):
    lo, hi = math.log2(min(values)), math.log2(max(values))
    span = (hi - lo) or 1
    return lambda v: x0 + (math.log2(v) - lo) / span * (x1 - x0)


def _text_width(s: str) -> float:
    """About how wide a line of the charts' 11 px notes is: CJK glyphs are about twice as wide as Latin ones."""
    return sum(11.5 if ord(c) > 0x2E80 else 6.6 for c in s)


def _label_beside(lx, label, curve, dots, x0, x1, y0, y1) -> list:
    """A note beside the vertical line at ``lx``: on one line, else on the two its "\n" marks, in the first corner
    (right of the line, top, then bottom; then left) that stays inside the panel and clear of the curve (its points
    and points along its segments, ``curve``: (x, y) pairs in drawing order) and of other ``dots``."""
    along = [(ax + (bx - ax) * k / 6, ay + (by - ay) * k / 6)
             for (ax, ay), (bx, by) in zip(curve, curve[1:], strict=False) for k in range(1, 6)]
    obstacles = curve + along + dots
    head, _, tail = label.partition("\n")
    # on one line Chinese joins its halves without a space, except before a number ("显存只容纳 17 个序列")
    glue = "" if head[-1:] > "\u2e80" and tail[:1] > "\u2e80" else " "
    forms = [[head + glue + tail], [head, tail]] if tail else [[head]]
    for lines in forms:
        w, h = max(_text_width(t) for t in lines), 13 * len(lines)
        for right, top in ((True, True), (True, False), (False, True), (False, False)):
            bx = lx + 5 if right else lx - 5 - w
            by = y0 + 2 if top else y1 - 4 - h
            if bx < x0 or bx + w > x1:
                continue
            if any(bx - 5 <= px <= bx + w + 5 and by - 5 <= py <= by + h + 5 for px, py in obstacles):
                continue
            return [_text(bx, by + 11 + 13 * k, t, "calc-chart__note calc-chart__note--limit") for k, t in enumerate(lines)]
    # nowhere clear: two lines at the top, on the side with more room, kept inside the panel (a halo in the page's
    # background colour, calc-chart__note--limit, keeps them legible over the curve)
    lines = forms[-1]
    w = max(_text_width(t) for t in lines)
    bx = min(lx + 5, x1 - w) if x1 - lx >= lx - x0 else max(lx - 5 - w, x0)
    return [_text(bx, y0 + 13 + 13 * k, t, "calc-chart__note calc-chart__note--limit") for k, t in enumerate(lines)]


def _panel(points, xs, ys_field, scale_y, x0, x1, y0, y1, title, fmt_tick, current, series, kids, limit=None):
    """One panel of the perf chart; ``limit``: (sequences, label or None) where memory runs out within the curve,
    drawn as a dashed line; the points beyond it are faint (calc-chart__dot--beyond)."""
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
    if limit is not None:  # at the count itself (log scale), or at the left edge where no sequence fits
        lx = fx(limit[0]) if limit[0] >= 1 else x0
        kids.append(node("line", {"x1": lx, "x2": lx, "y1": y0, "y2": y1, "class": "calc-chart__limit",
                                  "data-series": f"{series}-capacity", "data-value": limit[0]}))
        if limit[1]:
            curve = [(fx(p["batch"]), fy(v)) for p, v in zip(points, ys, strict=True)]
            dots = [(fx(current[0]), fy(current[1] * scale_y))] if current[0] and current[1] is not None else []
            kids.extend(_label_beside(lx, limit[1], curve, dots, x0, x1, y0, y1))
    for p, v in zip(points, ys, strict=True):
        out = " calc-chart__dot--beyond" if not p.get("fits_memory", True) else ""
        kids.append(node("circle", {"cx": fx(p["batch"]), "cy": fy(v), "r": 3,
                                    "class": f"calc-chart__dot calc-chart__dot--{p.get('bound', '')}{out}",
                                    "data-series": series, "data-batch": p["batch"], "data-value": p[ys_field]}))
    if current[0] and current[1] is not None:
        kids.append(node("circle", {"cx": fx(current[0]), "cy": fy(current[1] * scale_y), "r": 6,
                                    "class": "calc-chart__current", "data-series": f"{series}-current",
                                    "data-batch": current[0], "data-value": current[1]}))


def perf_chart(result: dict, lang: str, fmt) -> dict:
    """TPOT and decode throughput against the batch size (log scale), the chosen batch marked."""
    curve = [p for p in result.get("throughput_curve") or [] if p.get("tpot_s") and p.get("decode_tok_per_s")]
    title = UI["perf_title"][lang]
    if not curve:
        return _svg(60, title, [_text(20, 30, UI["none"][lang])], "chart")
    kids = []
    batch = result.get("batch")
    n = result.get("curve_capacity")
    limit = None
    if n is not None and any(not p.get("fits_memory", True) for p in curve):
        key = "perf_capacity_none" if n == 0 else ("perf_capacity_one" if n == 1 else "perf_capacity")
        limit = (n, UI[key][lang].format(n=units.format_number(n, "int")))
    _panel(curve, None, "tpot_s", 1e3, 64, 300, 44, 214, UI["perf_tpot"][lang], lambda t: f"{t:g}",
           (batch, result.get("tpot_s")), "tpot", kids, limit and (limit[0], None))  # labelled once, on the right
    _panel(curve, None, "decode_tok_per_s", 1, 400, 620, 44, 214,
           UI["perf_throughput"][lang], _compact,
           (batch, result.get("decode_tok_per_s")), "throughput", kids, limit)
    xlabel = UI["perf_note"][lang]
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


def cost_chart(result: dict, lang: str, fmt) -> dict:
    series = [s for s in cost_series(result) if s["usd_per_million_tokens"] is not None]
    title = UI["cost_title"][lang]
    self_name = UI["cost_self"][lang] + f" ({result.get('gpu')} × {result.get('tp')})"
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
        kids.append(_text(x0 + width + 6, y + 15, units.format_usd(s["usd_per_million_tokens"]), "calc-chart__value"))
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


def roi_chart(result: dict, lang: str, fmt) -> dict:
    s = roi_series(result)
    months, invest, cum = s["months"], s["investment"], s["cumulative"]
    title = UI["roi_title"][lang]
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
    kids.append(_text(x1, fy(invest) - 6, UI["roi_investment"][lang] + " " + units.format_usd(invest),
                      "calc-chart__note", "end"))
    pts = " ".join(f"{_attr(fx(m))},{_attr(fy(v))}" for m, v in enumerate(cum))
    kids.append(node("polyline", {"points": pts, "class": "calc-chart__line calc-chart__line--savings",
                                  "data-series": "savings", "data-value": cum[-1]}))
    if s["payback_months"] is not None and s["payback_months"] <= months:
        px = fx(s["payback_months"])
        kids.append(node("circle", {"cx": px, "cy": fy(invest), "r": 6, "class": "calc-chart__current",
                                    "data-series": "payback", "data-value": s["payback_months"]}))
        kids.append(_text(px, fy(invest) + 22, UI["roi_payback"][lang] + " "
                          + fmt("payback_months", s["payback_months"], lang)[0], "calc-chart__note", "middle"))
    kids.append(_text(W / 2, y1 + 36, UI["roi_months"][lang], "calc-chart__note", "middle"))
    return _svg(y1 + 46, title, kids, "chart")


def _rate_panel(curve, field, slo, rate, x0, x1, y0, y1, title, series, kids):
    """One latency (ms) against request rate panel: the simulated points, the target as a dashed line, the
    input rate as a vertical line."""
    xs = [p["requests_per_s"] for p in curve]
    ys = [p[field] * 1e3 for p in curve if p[field] is not None]
    x_hi = max(xs + [rate]) * 1.05 or 1
    top = max(ys + [slo * 1e3]) * 1.1 or 1
    ticks = nice_ticks(0, top, 4)
    top = max(top, ticks[-1])
    xticks = nice_ticks(0, x_hi, 4)
    x_hi = max(x_hi, xticks[-1])

    def fx(v):
        return x0 + v / x_hi * (x1 - x0)

    def fy(v):
        return y1 - v / top * (y1 - y0)

    kids.append(_text(x0, y0 - 12, title, "calc-chart__title"))
    for t in ticks:
        kids.append(node("line", {"x1": x0, "x2": x1, "y1": fy(t), "y2": fy(t), "class": "calc-chart__grid"}))
        kids.append(_text(x0 - 6, fy(t) + 4, _compact(t), "calc-chart__tick", "end"))
    for t in xticks:
        kids.append(_text(fx(t), y1 + 16, _compact(t), "calc-chart__tick", "middle"))
    kids.append(node("line", {"x1": x0, "x2": x1, "y1": fy(slo * 1e3), "y2": fy(slo * 1e3), "class": "calc-chart__limit",
                              "stroke-dasharray": "6 4", "data-series": f"{series}-slo", "data-value": slo}))
    kids.append(node("line", {"x1": fx(rate), "x2": fx(rate), "y1": y0, "y2": y1, "class": "calc-chart__grid",
                              "data-series": "rate", "data-value": rate}))
    pts = [(fx(p["requests_per_s"]), fy(p[field] * 1e3), p) for p in curve if p[field] is not None]
    kids.append(node("polyline", {"points": " ".join(f"{_attr(x)},{_attr(y)}" for x, y, _ in pts),
                                  "class": f"calc-chart__line calc-chart__line--{series}", "data-series": series}))
    for x, y, p in pts:
        kids.append(node("circle", {"cx": x, "cy": y, "r": 3, "class": "calc-chart__dot", "data-series": series,
                                    "data-rate": p["requests_per_s"], "data-value": p[field]}))


def plan_chart(result: dict, lang: str, fmt) -> dict:
    """p90 TTFT and p90 TPOT of the chosen configuration against the whole service's request rate."""
    curve = result.get("load_curve") or []
    title = UI["plan_title"][lang]
    if not curve:
        return _svg(60, title, [_text(20, 30, UI["none"][lang])], "chart")
    kids = []
    _rate_panel(curve, "ttft_p90_s", result["ttft_p90_target_s"], result["requests_per_s"], 64, 300, 44, 214, UI["plan_ttft"][lang],
                "ttft", kids)
    _rate_panel(curve, "tpot_p90_s", result["tpot_p90_target_s"], result["requests_per_s"], 400, 620, 44, 214, UI["plan_tpot"][lang],
                "tpot", kids)
    kids.append(_text(W / 2, 252, UI["plan_note"][lang], "calc-chart__note", "middle"))
    return _svg(264, title, kids, "chart")


CHARTS = {"memory": memory_chart, "perf": perf_chart, "cost": cost_chart, "roi": roi_chart, "plan": plan_chart}


def chart(command: str, result: dict, lang: str, fmt) -> dict:
    """The chart of one result. ``fmt(field, value, lang) -> (display, alternative)``: how the view model
    (calc/web.py's format_value) shows an output, for the few values a chart writes out as a table would."""
    return CHARTS[command](result, lang, fmt)


def svg_markup(tree: dict) -> str:
    """Escaped SVG markup for a node tree (the build-time prerender)."""
    import html  # here, not at the top: the browser never needs it
    attrs = "".join(f' {k}="{html.escape(v, quote=True)}"' for k, v in tree.get("attrs", {}).items())
    if tree["tag"] == "svg":
        attrs = ' xmlns="http://www.w3.org/2000/svg"' + attrs
    inner = html.escape(tree["text"], quote=False) if tree.get("text") is not None else ""
    inner += "".join(svg_markup(child) for child in tree.get("children", []))
    return f"<{tree['tag']}{attrs}>{inner}</{tree['tag']}>"
