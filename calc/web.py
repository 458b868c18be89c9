"""Presentation for the book's calculators: shared by the build-time prerender (hooks/calculators.py, CPython)
and the live pages (a Web Worker running this module under Pyodide), so both show the very same thing.

    view("memory", {"model": "llama-3.1-70b", "weights": "fp8"}, "zh")
        -> {"ok": True, "result": <what `python -m calc memory --json` prints>, "rows": [...], "details": [...],
            "warnings": [...], "chart": <SVG node tree>}
    view("memory", {"batch": "-1"}, "en")
        -> {"ok": False, "errors": {"batch": "batch must be an integer ≥ 1 and ≤ 65536"}}

This is the calculators' view model. All validation stays in calc.api; this module picks and labels the
outputs (words from calc/strings.py) and formats them (numbers by calc/units.py); calc/charts.py draws the
chart. Rows carry the raw JSON value (pages put it in ``data-value``) next to the display text: GB and GiB side
by side for byte counts. A chart is a tree of plain SVG nodes ({"tag", "attrs", "children", "text"}) that the
page turns into elements with createElementNS/textContent and the prerender into escaped markup: no HTML is
ever built from user input.
"""

from __future__ import annotations

import json
import math

from . import api, charts, units
from .strings import LABELS, LANGS, PAGE_SCRIPT, UI, VALUE_WORDS

# calculator page -> calc command
PAGES = {"vram": "memory", "performance": "perf", "cost": "cost", "roi": "roi", "planner": "plan"}


# ---------------------------------------------------------------------------------------------------------
# Output fields: which are shown where, and how each is displayed (their labels: calc/strings.py).

# The rows of the main result table, per command; every other scalar output goes into "all outputs".
MAIN_ROWS = {
    "memory": ["weights_bytes", "kv_cache_bytes", "activation_peak_bytes", "overhead_bytes", "total_bytes",
               "total_bytes_per_gpu", "gpu_memory_bytes", "gpu_visible_memory_bytes", "fits", "max_concurrency", "kv_bytes_per_token",
               "params_total"],
    "perf": ["ttft_s", "ttft_ideal_s", "tpot_s", "tpot_ideal_s", "e2e_s", "e2e_ideal_s",
             "decode_tok_per_s_per_request", "decode_tok_per_s", "decode_tok_per_s_ideal", "throughput_tok_per_s",
             "throughput_ideal_tok_per_s", "bound", "prefill_bound", "critical_batch"],
    "cost": ["usd_per_million_input_tokens", "usd_per_million_output_tokens", "usd_per_request",
             "api_usd_per_request", "usd_per_hour", "gpus_needed", "monthly_cost_usd", "api_monthly_cost_usd",
             "monthly_savings_usd"],
    "roi": ["one_off_usd", "monthly_savings_usd", "payback_months", "net_12m_usd", "net_24m_usd", "roi_12m",
            "roi_24m", "break_even_requests_per_month", "monthly_cost_usd", "api_monthly_cost_usd"],
    "plan": ["fits", "gpus", "replicas", "tp_size", "ttft_p90_s", "tpot_p90_s", "itl_p99_s", "e2e_p90_s",
             "utilization_per_replica", "slo_attainment", "requests_per_s_goodput", "monthly_cost_usd", "usd_per_million_output_tokens", "runners_up"],
}
# Outputs shown elsewhere (chart, warnings) or folded into another row, and the inputs the CLI echoes back
# (already on the form; on a page their data-testid would clash with the input's).
NOT_ROWS = {"throughput_curve", "curve_capacity", "api_comparison", "warnings", "fits_reason",
            "model", "gpu", "weights", "kv_dtype", "batch", "prompt_len", "output_len", "tp", "pp", "ep", "engine", "api",
            "utilization", "requests_per_s", "per_gpu_table", "candidates", "rejected", "load_curve", "ttft_p90_target_s",
            "tpot_p90_target_s", "verify_tokens"}


def label(field: str, lang: str) -> str:
    entry = LABELS.get(field)
    return entry[lang] if entry else field


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
        return (words[lang] if words and field in ("bound", "prefill_bound", "verify_bound", "attention", "engine_mxfp4_backend",
                                                                            "engine_sampler_path") else value), ""
    if not isinstance(value, (int, float)) or not math.isfinite(value):
        return UI["none"][lang], ""
    x, fmt = value, units.format_number
    if field.endswith("bytes_per_s"):
        return fmt(x, "GB/s:1"), ""
    if field.startswith("kv_bytes_per_token"):  # KV per token (per GPU too): kilobytes
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
    if field.endswith("_s_per_call"):
        return fmt(x, "us:1"), ""
    if field.endswith("_s") or field.endswith("_s_per_step"):
        return fmt(x, "s:3") if abs(x) >= 1 else fmt(x, "ms:2"), ""
    if field in ("peak_flops", "effective_flops"):
        return fmt(x, "TFLOPS:1"), ""
    if "flops_per_byte" in field:
        return fmt(x, "FLOP/B:1"), ""
    if "flops" in field:
        return _flop_count(x), ""
    if "usd" in field:
        return units.format_usd(x), ""
    if field.endswith("_pipeline_bubble"):
        return fmt(x, "%:1"), ""
    if field.startswith("roi_"):
        return fmt(x, "%:1"), ""
    if field.endswith("_fraction"):
        return fmt(x, "%:1"), ""
    if "efficiency" in field or field in ("utilization", "engine_gpu_memory_utilization", "utilization_per_replica",
                                           "kv_usage_peak", "slo_attainment"):
        return fmt(x, "%:1"), ""
    if field.endswith("bits_per_param"):
        return fmt(x, "num:3"), ""
    if field.startswith("params"):
        return fmt(x, "params:2"), fmt(int(x), "int")
    if field == "payback_months":
        return f"{fmt(x, 'num:1')} {UI['months'][lang]}", ""
    if field in ("monthly_requests", "break_even_requests_per_month"):
        return f"{fmt(x, 'int')} {UI['requests'][lang]}", ""
    if field in ("engine_max_tokens_in_cache", "engine_swa_pool_tokens", "engine_block_size", "engine_max_model_len", "engine_kv_in_flight_tokens",
                 "engine_max_num_batched_tokens", "prompt_len", "output_len", "mean_prompt_len", "mean_output_len"):
        if field.startswith("mean_"):
            return f"{fmt(x, 'num:1')} {UI['tokens'][lang]}", ""
        return f"{fmt(x, 'int')} {UI['token' if x == 1 else 'tokens'][lang]}", ""
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
        "chart": charts.chart(command, result, lang, format_value),
    }


def view_json(request: str) -> str:
    """The Web Worker's entry point: JSON in ({command, params, lang}), JSON out (a view)."""
    req = json.loads(request)
    params = {str(k): ("" if v is None else str(v)) for k, v in (req.get("params") or {}).items()}
    return json.dumps(view(req["command"], params, req.get("lang", "zh")), ensure_ascii=False, allow_nan=False)


def page_script_text(lang: str) -> dict:
    """The words the page script (calculators.js) shows, the status line, in one language: the hook hands
    them over in each widget's data-text attribute, so the script holds no text of its own."""
    return {key: UI[key][lang] for key in PAGE_SCRIPT}


def default_text(field: dict) -> str:
    """A field's default as the text a form input holds ("" for none)."""
    value = field.get("default")
    if value is None:
        return ""
    if isinstance(value, float) and math.isfinite(value) and value == int(value) and abs(value) < 2**53:
        return str(int(value))
    return str(value)
