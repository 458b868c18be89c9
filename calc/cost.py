"""Money: $/1M tokens and $/request from GPU time, monthly cost at a request rate, API comparison, and ROI.

GPU time is split the way it is spent: the prefill (TTFT) is charged to input tokens, the decode steps
after it to output tokens, so input + output cost add up to the request's cost exactly. The engine's per-request
latency off the GPU (perf's ``request_latency_s``: the front end) is in TTFT but holds no GPU
step, so it is charged to nobody and does not lower a replica's capacity (as in the capacity planner).
"""

from __future__ import annotations

import math

HOURS_PER_MONTH = 730  # 365 × 24 / 12
SECONDS_PER_MONTH = HOURS_PER_MONTH * 3600


def cost_report(perf: dict, batch: int, prompt_len: int, output_len: int, usd_per_gpu_hour: float, gpus: int,
                utilization: float = 1.0, requests_per_s: float = 1.0, api_prices: dict | None = None) -> dict:
    """Cost of serving with the latencies in ``perf`` (a perf_report) on ``gpus`` GPUs at ``usd_per_gpu_hour``.

    ``utilization`` is the share of paid GPU time spent serving (1 = always busy); idle time is paid for too,
    so every per-token figure is divided by it. ``api_prices``: {key: price entry} to compare against.
    """
    usd_per_s = usd_per_gpu_hour * gpus / 3600
    off_gpu_s = perf.get("request_latency_s") or 0.0
    prefill_s = perf["ttft_s"] - off_gpu_s
    decode_s = perf["e2e_s"] - perf["ttft_s"]
    usd_in = usd_per_s * prefill_s / utilization  # one batch's prefill
    usd_out = usd_per_s * decode_s / utilization
    per_request = (usd_in + usd_out) / batch
    # One replica (a TP group) serves `batch` requests every e2e_s seconds of GPU time.
    capacity = batch / (perf["e2e_s"] - off_gpu_s)
    replicas = max(1, math.ceil(requests_per_s / (capacity * utilization)))
    report = {
        "usd_per_gpu_hour": usd_per_gpu_hour,
        "usd_per_hour": usd_per_gpu_hour * gpus,
        "utilization": utilization,
        "usd_per_million_input_tokens": usd_in / (batch * prompt_len) * 1e6,
        "usd_per_million_output_tokens": usd_out / (batch * output_len) * 1e6,
        "usd_per_request": per_request,
        "requests_per_s_per_replica": capacity,
        "requests_per_s": requests_per_s,
        "replicas_needed": replicas,
        "gpus_needed": replicas * gpus,
        "monthly_cost_usd": replicas * usd_per_gpu_hour * gpus * HOURS_PER_MONTH,
        "monthly_requests": requests_per_s * SECONDS_PER_MONTH,
    }
    comparison = []
    for key, p in (api_prices or {}).items():
        api_request = (prompt_len * p["usd_per_million_input_tokens"] + output_len * p["usd_per_million_output_tokens"]) / 1e6
        api_monthly = api_request * report["monthly_requests"]
        comparison.append({
            "api": key, "provider": p["provider"], "model": p["model"],
            "usd_per_request": api_request, "monthly_cost_usd": api_monthly,
            "monthly_savings_usd": api_monthly - report["monthly_cost_usd"],
            "as_of": p["as_of"], "source": p["source"],
        })
    report["api_comparison"] = comparison
    return report


def roi_report(engineering_usd: float, hardware_usd: float, monthly_savings_usd: float,
               selfhost_monthly_usd: float | None = None, api_usd_per_request: float | None = None) -> dict:
    """Payback and return on the one-off costs of moving to self-hosting.

    payback = one-off / monthly savings; ROI(n months) = (n × savings − one-off) / one-off. Break-even volume:
    the monthly requests at which the API bill equals the self-hosted bill (below it, the API is cheaper).
    Undefined figures (no savings, no one-off cost) are None.
    """
    one_off = engineering_usd + hardware_usd
    saves = monthly_savings_usd > 0
    def roi(months: int):
        return (months * monthly_savings_usd - one_off) / one_off if one_off > 0 else None
    break_even = None
    if selfhost_monthly_usd is not None and api_usd_per_request:
        break_even = selfhost_monthly_usd / api_usd_per_request
    return {
        "one_off_usd": one_off,
        "monthly_savings_usd": monthly_savings_usd,
        "payback_months": one_off / monthly_savings_usd if saves else None,
        "roi_12m": roi(12),
        "roi_24m": roi(24),
        "net_12m_usd": 12 * monthly_savings_usd - one_off,
        "net_24m_usd": 24 * monthly_savings_usd - one_off,
        "break_even_requests_per_month": break_even,
    }
