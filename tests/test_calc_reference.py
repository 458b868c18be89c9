"""calc against real measurements: one H100 SXM (80GB HBM3), Llama-3.2-1B shape, bf16 (tests/data/README.md)."""

import json
from pathlib import Path

import pytest

from calc import api, perf, registry
from calc.memory import activation_peak_bytes, kv_cache_bytes, weights_bytes
from calc.model import from_hf_config

REF = json.loads((Path(__file__).parent / "data" / "h100-llama1b-2026-11-26.json").read_text())


def test_reference_shape_is_the_registry_preset():
    cfg = registry.hf_config("llama-3.2-1b")
    for key, value in REF["model_config"].items():
        if key != "dtype":
            assert cfg[key] == value, key
    assert registry.match_gpu(REF["env"]["gpu"]) == "h100-sxm"


def test_weights_within_half_a_percent():
    m = registry.get_model("llama-3.2-1b")
    assert weights_bytes(m, "bf16") == pytest.approx(REF["weights"]["torch_allocated_bytes"], rel=0.005)
    assert api.run("memory", {"model": "llama-3.2-1b"})["params_total"] == REF["weights"]["params"]


@pytest.mark.parametrize("case", REF["prefill_keep_kv_memory"], ids=lambda c: f"b{c['batch']}xp{c['prompt']}")
def test_kv_cache_within_one_percent(case):
    m = registry.get_model("llama-3.2-1b")
    measured_kv = case["after_bytes"] - case["weights_bytes"]
    assert kv_cache_bytes(m, "bf16", case["batch"], case["prompt"]) == pytest.approx(measured_kv, rel=0.01)


@pytest.mark.parametrize("case", REF["prefill_keep_kv_memory"], ids=lambda c: f"b{c['batch']}xp{c['prompt']}")
def test_prefill_peak_within_ten_percent(case):
    m = registry.get_model("llama-3.2-1b")
    b, p = case["batch"], case["prompt"]
    predicted = weights_bytes(m, "bf16") + kv_cache_bytes(m, "bf16", b, p) + activation_peak_bytes(m, b * p)
    assert predicted == pytest.approx(case["peak_bytes"], rel=0.10)
    # and the transient part alone (peak above weights + KV) is within 10 % as well
    transient = case["peak_bytes"] - case["after_bytes"]
    assert activation_peak_bytes(m, b * p) == pytest.approx(transient, rel=0.10)


def test_the_api_reproduces_the_peak():
    case = REF["prefill_keep_kv_memory"][0]
    r = api.run("memory", {"model": "llama-3.2-1b", "gpu": "h100-sxm", "batch": case["batch"],
                           "prompt-len": case["prompt"] - 1, "output-len": 1, "overhead-gib": 0})
    assert r["total_bytes"] == pytest.approx(case["peak_bytes"], rel=0.10)


def test_efficiency_factors_are_the_reference_ratios():
    h100 = registry.get_gpu("h100-sxm")
    assert perf.MEMORY_EFFICIENCY * h100.memory_bandwidth_bytes_per_s == pytest.approx(REF["device_copy_GBps_read_plus_write"] * 1e9)
    assert perf.COMPUTE_EFFICIENCY * h100.bf16_dense_flops == pytest.approx(REF["bf16_matmul_8192_TFLOPS"] * 1e12)


def test_reference_config_as_a_dict_gives_the_same_numbers():
    cfg = {**REF["model_config"], "model_type": "llama"}
    cfg.pop("dtype")
    m = from_hf_config(cfg)
    assert weights_bytes(m, "bf16") == weights_bytes(registry.get_model("llama-3.2-1b"), "bf16")
