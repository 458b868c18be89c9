"""Cost and ROI arithmetic, checked by hand from the perf figures and the dated price entries."""

import math

import pytest

from calc import api, registry

BASE = {"model": "llama-3.1-8b", "gpu": "h100-sxm", "batch": 32, "prompt-len": 1000, "output-len": 200,
        "gpu-price": 2.0, "requests-per-s": 10}


def test_cost_per_token_and_request_by_hand():
    perf = api.run("perf", {k: v for k, v in BASE.items() if k not in ("gpu-price", "requests-per-s")})
    c = api.run("cost", BASE)
    usd_per_s = 2.0 / 3600
    decode_s = perf["e2e_s"] - perf["ttft_s"]
    # the engine's per-request latency off the GPU (front end) is in TTFT but holds no GPU: it costs nothing
    off_gpu_s = perf["request_latency_s"]
    assert off_gpu_s > 0
    assert c["usd_per_million_input_tokens"] == pytest.approx(usd_per_s * (perf["ttft_s"] - off_gpu_s) / (32 * 1000) * 1e6)
    assert c["usd_per_million_output_tokens"] == pytest.approx(usd_per_s * decode_s / (32 * 200) * 1e6)
    assert c["usd_per_request"] == pytest.approx(usd_per_s * (perf["e2e_s"] - off_gpu_s) / 32)
    # input + output cost add up to the request
    parts = (1000 * c["usd_per_million_input_tokens"] + 200 * c["usd_per_million_output_tokens"]) / 1e6
    assert parts == pytest.approx(c["usd_per_request"])


def test_utilization_scales_cost_and_tp_multiplies_gpus():
    full = api.run("cost", BASE)
    half = api.run("cost", {**BASE, "utilization": 0.5})
    assert half["usd_per_request"] == pytest.approx(2 * full["usd_per_request"])
    tp2 = api.run("cost", {**BASE, "tp": 2})
    assert tp2["usd_per_hour"] == 4.0


def test_monthly_cost_and_api_comparison_by_hand():
    c = api.run("cost", {**BASE, "api": "openai-gpt-4o"})
    perf = api.run("perf", {k: v for k, v in BASE.items() if k not in ("gpu-price", "requests-per-s")})
    capacity = 32 / (c["e2e_s"] - perf["request_latency_s"])  # GPU time per batch: the front end holds none
    replicas = math.ceil(10 / capacity)
    assert c["replicas_needed"] == replicas
    assert c["monthly_cost_usd"] == pytest.approx(replicas * 2.0 * 730)
    price = registry.get_price("openai-gpt-4o")
    per_request = (1000 * price["usd_per_million_input_tokens"] + 200 * price["usd_per_million_output_tokens"]) / 1e6
    assert per_request == pytest.approx((1000 * 2.50 + 200 * 10.00) / 1e6)
    assert c["api_usd_per_request"] == pytest.approx(per_request)
    assert c["api_monthly_cost_usd"] == pytest.approx(per_request * 10 * 730 * 3600)
    assert c["monthly_savings_usd"] == pytest.approx(c["api_monthly_cost_usd"] - c["monthly_cost_usd"])
    assert {row["api"] for row in c["api_comparison"]} == set(registry.list_prices())


def test_default_price_is_the_registry_midpoint():
    h100 = registry.get_gpu("h100-sxm")
    c = api.run("cost", {"model": "llama-3.1-8b", "gpu": "h100-sxm"})
    assert c["usd_per_gpu_hour"] == pytest.approx((h100.usd_per_hour_low + h100.usd_per_hour_high) / 2)
    assert c["gpu_price_as_of"] == h100.price_as_of


def test_gpu_without_a_price_needs_one():
    with pytest.raises(api.InputError) as err:
        api.run("cost", {"model": "llama-3.1-8b", "gpu": "l20"})
    assert set(err.value.errors) == {"gpu-price"}
    assert api.run("cost", {"model": "llama-3.1-8b", "gpu": "l20", "gpu-price": "0.8"})["usd_per_gpu_hour"] == 0.8


def test_roi_by_hand():
    r = api.run("roi", {**BASE, "engineering-cost": 30000, "hardware-cost": 6000, "monthly-savings": 4000})
    assert r["one_off_usd"] == 36000
    assert r["payback_months"] == pytest.approx(9.0)
    assert r["roi_12m"] == pytest.approx((12 * 4000 - 36000) / 36000)
    assert r["roi_24m"] == pytest.approx((24 * 4000 - 36000) / 36000)
    assert r["break_even_requests_per_month"] == pytest.approx(r["monthly_cost_usd"] / r["api_usd_per_request"])


def test_roi_without_savings_has_no_payback():
    r = api.run("roi", {**BASE, "monthly-savings": -100})
    assert r["payback_months"] is None and r["roi_12m"] < 0
    r = api.run("roi", {**BASE, "engineering-cost": 0, "monthly-savings": 100})
    assert r["roi_12m"] is None and r["payback_months"] == 0
