"""Engine profiles (calc/engines.py, calc/data/engines.json): the interface the simulator calls, sources, and what
perf_report does with a profile."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from calc import api, engines, perf, registry
from calc.memory import WEIGHT_FORMATS

REPO = Path(__file__).resolve().parents[1]


def test_interface():
    assert engines.ENGINES == ("ideal", "vllm", "sglang", "trt-llm", "llama.cpp", "hf")
    assert engines.DEFAULT_ENGINE == "vllm"
    for key in engines.ENGINES:
        p = engines.profile(key)
        assert p.key == key
        for batch, tp in ((1, 1), (64, 1), (8, 4)):
            assert p.step_overhead_s(batch, tp) >= 0
        for fmt in WEIGHT_FORMATS:
            assert 0 < p.memory_efficiency(fmt) <= 1 and 0 < p.compute_efficiency(fmt) <= 1
    ideal = engines.profile("ideal")
    assert ideal.step_overhead_s(256, 8) == 0
    assert ideal.memory_efficiency("int4") == pytest.approx(perf.MEMORY_EFFICIENCY)
    assert ideal.compute_efficiency("fp8") == pytest.approx(perf.COMPUTE_EFFICIENCY)
    with pytest.raises(KeyError, match="valid: ideal"):
        engines.profile("tgi")


def test_every_profile_is_sourced():
    for key in engines.ENGINES:
        e = engines.entry(key)
        assert e["sources"] and e["note"], key
        for s in e["sources"]:
            assert s["url"] and s["date"] and s["version"] and s["gpu"] and s["settings"], (key, s)
    assert engines.profile("vllm").kv_fraction == 0.92  # vllm/config/cache.py at commit 002f10e0
    # speed figures that are not the engine's own fit say so
    assert "borrow" in engines.entry("sglang")["note"] and not engines.entry("sglang")["calibrated"]


def test_ideal_reproduces_the_plain_roofline_and_engines_are_slower():
    m, g = registry.get_model("llama-3.1-8b"), registry.get_gpu("h100-sxm")
    ideal = perf.perf_report(m, g, engine="ideal")
    assert ideal["memory_efficiency"] == perf.MEMORY_EFFICIENCY and ideal["ttft_s"] == ideal["prefill_s"]
    for key in engines.ENGINES:
        r = perf.perf_report(m, g, batch=8, engine=key)
        assert r["tpot_ideal_s"] == pytest.approx(perf.perf_report(m, g, batch=8, engine="ideal")["tpot_s"])
        if key != "llama.cpp":  # FP16-accumulate GEMMs beat the FP32-accumulate peak on compute-bound prefill
            assert r["ttft_s"] >= r["ttft_ideal_s"] and r["tpot_s"] >= r["tpot_ideal_s"], key
            assert r["throughput_tok_per_s"] <= r["throughput_ideal_tok_per_s"], key
    v = perf.perf_report(m, g, engine="vllm")
    assert v["tpot_s"] == pytest.approx(v["tpot_ideal_s"] * 0.8828358 / 0.812 + engines.profile("vllm").step_overhead_s(1, 1),
                                        rel=1e-3)
    # TTFT = prefill + the engine's fixed cost of a prefill step (scheduling, input preparation, first sample)
    assert v["ttft_s"] == v["prefill_s"] and v["prefill_s"] > v["prefill_ideal_s"] + 0.02


def test_explicit_efficiencies_override_the_profile():
    r = api.run("perf", {"engine": "trt-llm", "mem-efficiency": "0.5", "compute-efficiency": "0.5"})
    assert r["memory_efficiency"] == 0.5 and r["compute_efficiency"] == 0.5


def test_fp8_uses_its_own_compute_share():
    t = engines.profile("trt-llm")
    assert t.compute_efficiency("fp8") < t.compute_efficiency("bf16")
    r = api.run("perf", {"engine": "trt-llm", "weights": "fp8", "prompt-len": 8192})
    assert r["compute_efficiency"] == t.compute_efficiency("fp8")
    ampere = api.run("perf", {"engine": "trt-llm", "weights": "fp8", "gpu": "a100-80gb"})  # no FP8 tensor cores
    assert ampere["compute_efficiency"] == t.compute_efficiency("bf16")


def test_cli_engine_flag():
    out = subprocess.run([sys.executable, "-m", "calc", "perf", "--engine", "ideal", "--json"], cwd=REPO,
                         capture_output=True, text=True, check=True).stdout
    assert json.loads(out)["engine"] == "ideal"
    assert json.loads(out)["tpot_s"] == json.loads(out)["tpot_ideal_s"]
    bad = subprocess.run([sys.executable, "-m", "calc", "perf", "--engine", "tgi"], cwd=REPO, capture_output=True, text=True)
    assert bad.returncode == 2 and "engine" in bad.stderr
