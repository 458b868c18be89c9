"""Engine profiles (calc/engines.py, calc/data/engines.json): the interface the simulator calls, sources, and what
perf_report does with a profile."""

from __future__ import annotations

import json
import math
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
    # SGLang's fixed costs are its own fit; its shares are vLLM's, and the note says so
    assert "borrowed from vLLM" in engines.entry("sglang")["note"] and engines.entry("sglang")["calibrated"]


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
    # TTFT = prefill (each step pays the engine loop's cost per step) + the per-request front-end latency, which
    # together give the fitted prefill cost for one request
    p = engines.profile("vllm")
    assert p.prefill_step_overhead_s(1, 1) == pytest.approx(p.step_overhead_s(1, 1))
    assert v["ttft_s"] == pytest.approx(v["prefill_s"] + p.request_latency_s) and p.request_latency_s > 0.005
    assert p.prefill_step_overhead_s(1, 1) + p.request_latency_s == pytest.approx(
        p.prefill_overhead_base_s + p.overhead_per_seq_s)


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


def test_the_fitted_prefill_cost_splits_into_a_step_part_and_a_request_part():
    """The fitted prefill_base_s = the GPU-side cost of a step that holds prompt tokens (the decode step's base,
    or the fitted figure where that is smaller) + a per-request latency off the GPU (never negative); a single
    request's TTFT is unchanged by the split, a long prompt in several chunks pays the request part once. Where the
    profile says that part is the prompt's forward itself (prompt_cost_in_step: SGLang), the step pays it instead and
    nothing is off the GPU."""
    for key in engines.ENGINES:
        p = engines.profile(key)
        assert p.request_latency_s >= 0 and (p.prefill_in_step or p.prefill_step_base_s <= p.overhead_base_s), key
        assert p.prefill_step_base_s + p.prompt_step_s + p.request_latency_s == \
            pytest.approx(p.prefill_overhead_base_s), key
        assert p.prompt_step_s == 0 or p.request_latency_s == 0, key  # one place or the other, never both
    assert engines.profile("sglang").prompt_cost_in_step and not engines.profile("vllm").prompt_cost_in_step
    hf = engines.profile("hf")  # its fitted prefill figure is below its decode one: no request part
    assert hf.request_latency_s == 0 and hf.prefill_step_base_s == hf.prefill_overhead_base_s
    m, g = registry.get_model("llama-3.1-8b"), registry.get_gpu("h100-sxm")
    v, p = perf.perf_report(m, g, prompt_len=4 * 8192, engine="vllm"), engines.profile("vllm")
    assert v["prefill_chunks"] == 4
    assert v["ttft_s"] - v["prefill_s"] == pytest.approx(p.request_latency_s)


def test_a_launch_bound_profile_overlaps_its_fixed_cost_with_the_gpu():
    """overlaps_gpu: a step is max(GPU time, fixed cost), as when eager PyTorch launches kernels that the GPU runs
    as they arrive; otherwise their sum (a serving engine's scheduling and sampling between CUDA-graph replays)."""
    from calc.engines import EngineProfile
    from calc.simulate import StepCost

    entry = {"name": "x", "memory_efficiency": {"default": 0.8}, "compute_efficiency": {"default": 0.6},
             "step_overhead": {"base_s": 0.02}}
    serial = EngineProfile("serial", entry)
    eager = EngineProfile("eager", {**entry, "step_overhead": {"base_s": 0.02, "overlaps_gpu": True}})
    assert serial.step_time_s(0.005, 0.02) == pytest.approx(0.025)
    assert eager.step_time_s(0.005, 0.02) == pytest.approx(0.02)  # launch-bound: the GPU waits for the host
    assert eager.step_time_s(0.05, 0.02) == pytest.approx(0.05)  # GPU-bound: the launches hide under the work
    assert StepCost.from_profile(eager, "bf16").step_time_s(0.05, 0.02) == pytest.approx(0.05)
    assert StepCost.from_profile(serial, "bf16").step_time_s(0.05, 0.02) == pytest.approx(0.07)


def test_hf_decode_at_batch_one_is_its_launch_cost_on_any_gpu():
    """generate() at batch 1 is launch-bound for an 8B model: the hf profile's TPOT is its fixed cost, the same on an
    H100 and an H200, while the ideal roofline differs by the bandwidth ratio; the launches are per layer, so a
    40-layer model that is still launch-bound on an H200 pays 40/32 of a 32-layer one's."""
    from calc import api

    def tpot(gpu, engine, model="llama-3.1-8b"):
        return api.run("perf", {"model": model, "gpu": gpu, "batch": 1, "engine": engine})["tpot_s"]

    assert tpot("h100-sxm", "hf") == pytest.approx(tpot("h200", "hf"))
    assert tpot("h100-sxm", "ideal") > 1.3 * tpot("h200", "ideal")
    assert tpot("h200", "hf", "qwen3-14b") == pytest.approx(tpot("h200", "hf") * 40 / 32)


def test_hf_decode_moves_the_kv_cache_three_times():
    """transformers' dynamic cache appends with torch.cat, copying the whole cache each step: a decode step's bytes
    are the weights plus three times the KV cache attention reads (once without the copy)."""
    m, g = registry.get_model("llama-3.1-8b"), registry.get_gpu("h200")

    def step(engine):
        r = perf.perf_report(m, g, "bf16", "bf16", 32, 4096, 2, 1, curve_batches=(), engine=engine)
        return r["decode_bytes_per_step"], r["decode_weight_bytes_per_step"]

    ideal, ideal_w = step("ideal")
    hf, hf_w = step("hf")
    assert hf_w == ideal_w and ideal - ideal_w > 10e9  # 32 × 4,097 tokens × 128 KiB of KV: over 10 GB
    assert hf - hf_w == pytest.approx(3 * (ideal - ideal_w))
    assert not engines.profile("vllm").decode_copies_kv_cache  # paged engines write the new token in place


def test_pre_xqa_tensorrt_llm_reads_a_gqa_cache_once_per_query_head():
    """trt-llm@v0.6 (calibration only: points from v0.5/v0.6.1 tables): generation attention with one thread block
    per query head reads Llama-3.1-70B's KV cache 64/8 = 8 times per step, so a long-context decode step slows; an
    MHA model (as many KV heads as query heads) decodes as fast as with the base profile."""
    from calc import engines, perf, registry
    from calc import model as model_mod

    gpu = registry.get_gpu("h100-sxm")
    m70 = registry.get_model("llama-3.1-70b")
    new = perf.perf_report(m70, gpu, batch=64, prompt_len=2048, output_len=2048, tp=4, engine="trt-llm")
    old = perf.perf_report(m70, gpu, batch=64, prompt_len=2048, output_len=2048, tp=4, engine="trt-llm@v0.6")
    assert old["tpot_s"] > 1.5 * new["tpot_s"]
    mha = model_mod.from_hf_config({"model_type": "llama", "hidden_size": 4096, "intermediate_size": 11008,
                                              "num_attention_heads": 32, "num_key_value_heads": 32,
                                              "num_hidden_layers": 32, "vocab_size": 32000})
    assert perf.perf_report(mha, gpu, engine="trt-llm@v0.6")["tpot_s"] == pytest.approx(
        perf.perf_report(mha, gpu, engine="trt-llm")["tpot_s"])
    with pytest.raises(KeyError, match="no variant 'v9'"):
        engines.profile("trt-llm@v9")


def test_tensorrt_llm_v06_spends_its_whole_prefill_cost_in_the_step_per_layer():
    """trt-llm@v0.6 (first-token latencies from gptSessionBenchmark, no front end): the fitted prefill cost is all
    spent in the prompt step and scales with the layers, with no per-request part; for the 32 layers it was fitted on
    that gives the base profile's TTFT, for 80 layers a longer one, by the 80/32 share of the per-request part less
    that part."""
    from calc import engines, perf, registry

    base, v06 = engines.profile("trt-llm"), engines.profile("trt-llm@v0.6")
    assert v06.request_latency_s == 0 and v06.request_latency_for(80) == 0 and base.request_latency_s > 1e-3
    assert v06.prefill_step_base_s == base.prefill_overhead_base_s == v06.prefill_overhead_base_s
    gpu = registry.get_gpu("h100-sxm")
    m8, m70 = registry.get_model("llama-3.1-8b"), registry.get_model("llama-3.1-70b")
    assert m8.num_hidden_layers == 32 and m70.num_hidden_layers == 80

    def ttft(m, key, tp):
        return perf.perf_report(m, gpu, batch=1, prompt_len=128, output_len=1, tp=tp, engine=key)["ttft_s"]

    assert ttft(m8, "trt-llm@v0.6", 1) == pytest.approx(ttft(m8, "trt-llm", 1), abs=1e-12)
    extra = ttft(m70, "trt-llm@v0.6", 4) - ttft(m70, "trt-llm", 4)
    assert extra == pytest.approx(base.request_latency_s * (80 / 32 - 1), rel=1e-9)


def test_early_2024_llama_cpp_dequantizes_quantized_weights_before_each_prompt_batch():
    """llama.cpp@2024-01: a Q8_0 prefill costs the FP16 GEMM plus a memory-bound pass that reads the Q8_0 weights
    and writes an FP16 copy; F16 prefill is unchanged, and a decode step differs only by those builds' larger fixed
    cost per token."""
    from calc import perf, registry

    gpu, m = registry.get_gpu("rtx-4090"), registry.get_model("llama-3.1-8b")

    def ttft(weights, engine):
        return perf.perf_report(m, gpu, weights, batch=1, prompt_len=512, output_len=2, engine=engine)["ttft_s"]

    extra = (perf.weight_bytes_read(m, "q8_0", 512) + perf.weight_bytes_read(m, "fp16", 512)) \
        / (gpu.memory_bandwidth_bytes_per_s * engines.profile("llama.cpp").memory_efficiency("q8_0"))  # the stage streams at Q8_0's share
    assert ttft("q8_0", "llama.cpp@2024-01") == pytest.approx(ttft("fp16", "llama.cpp") + extra, rel=0.02)
    assert ttft("fp16", "llama.cpp@2024-01") == pytest.approx(ttft("fp16", "llama.cpp"))
    tpot = [perf.perf_report(m, gpu, "q8_0", engine=e)["tpot_s"] for e in ("llama.cpp", "llama.cpp@2024-01")]
    now, old = engines.profile("llama.cpp"), engines.profile("llama.cpp@2024-01")
    assert old.overhead_base_s > 2 * now.overhead_base_s > 0  # 2.29 ms per token in 2024, 0.78 ms in 2026
    assert tpot[1] - tpot[0] == pytest.approx(old.overhead_base_s - now.overhead_base_s, rel=1e-9)


def test_early_2024_llama_cpp_dequantizes_only_gguf_batches_above_32_tokens():
    """Batches of up to 32 tokens ran the quantized MMQ kernels (no FP16 copy), and formats llama.cpp has no
    kernel for (int4 checkpoints, FP8) are never dequantized by this variant."""
    from calc import perf, registry

    gpu, m = registry.get_gpu("rtx-4090"), registry.get_model("llama-3.1-8b")

    def ttft(weights, engine, prompt):
        return perf.perf_report(m, gpu, weights, batch=1, prompt_len=prompt, output_len=2, engine=engine)["ttft_s"]

    assert ttft("q8_0", "llama.cpp@2024-01", 32) == pytest.approx(ttft("q8_0", "llama.cpp", 32))
    assert ttft("q8_0", "llama.cpp@2024-01", 33) > ttft("q8_0", "llama.cpp", 33) * 1.2
    assert ttft("int4", "llama.cpp@2024-01", 512) == pytest.approx(ttft("int4", "llama.cpp", 512))


def test_the_simulator_refuses_calibration_variants():
    from calc import simulate

    with pytest.raises(ValueError, match="calibration variant"):
        simulate.step_cost("trt-llm@v0.6")


def test_a_per_layer_base_cost_follows_the_layers_a_gpu_runs():
    """layers_fitted (TensorRT-LLM): base_s was fitted on 32-layer models and is paid per layer, so an 80-layer model
    pays 2.5 × base_s per step, a pipeline stage of 40 layers 1.25 ×; the per-sequence and multi-GPU terms and the
    per-request latency do not scale. Profiles without it (vLLM) pay base_s whatever the depth."""
    from calc.engines import EngineProfile

    entry = {"name": "x", "memory_efficiency": {"default": 0.8}, "compute_efficiency": {"default": 0.6},
             "step_overhead": {"base_s": 0.002, "prefill_base_s": 0.005, "per_seq_s": 1e-5, "multi_gpu_s": 0.001,
                               "layers_fitted": 32}}
    p = EngineProfile("x", entry)
    assert p.step_overhead_s(4, 1, 80) == pytest.approx(0.002 * 80 / 32 + 4e-5)
    assert p.step_overhead_s(4, 2, 16) == pytest.approx(0.001 + 4e-5 + 0.001)
    assert p.step_overhead_s(4, 1) == pytest.approx(0.002 + 4e-5)  # no layer count: as fitted
    assert p.prefill_step_overhead_s(1, 1, 64) == pytest.approx(0.002 * 2 + 1e-5)
    assert p.request_latency_s == pytest.approx(0.003)  # prefill_base_s − base_s, once per request, not per layer
    vllm = engines.profile("vllm")
    assert vllm.step_overhead_s(1, 1, 80) == vllm.step_overhead_s(1, 1, 24)

    trt = engines.profile("trt-llm")
    assert trt.overhead_layers_fitted == 32
    m, gpu = registry.get_model("llama-3.3-70b"), registry.get_gpu("h100-sxm")
    assert m.num_hidden_layers == 80
    one = perf.perf_report(m, gpu, "fp8", "bf16", 1, 512, 64, tp=2, curve_batches=(), engine="trt-llm")
    assert one["engine_step_overhead_s"] == pytest.approx(trt.overhead_base_s * 2.5 + trt.overhead_per_seq_s
                                                          + trt.overhead_multi_gpu_s)
    staged = perf.perf_report(m, gpu, "fp8", "bf16", 1, 512, 64, tp=2, pp=2, curve_batches=(), engine="trt-llm")
    assert staged["engine_step_overhead_s"] == pytest.approx(trt.overhead_base_s * 1.25 + trt.overhead_per_seq_s
                                                             + trt.overhead_multi_gpu_s)


def test_the_simulator_charges_a_per_layer_base_cost_for_the_model_it_runs():
    from calc.simulate import StepModel, step_cost

    gpu, trt = registry.get_gpu("h100-sxm"), engines.profile("trt-llm")
    for key, layers in (("llama-3.1-8b", 32), ("llama-3.3-70b", 80)):
        sm = StepModel(registry.get_model(key), gpu, "fp8", tp=2, cost=step_cost("trt-llm", "fp8", gpu=gpu))
        assert sm.cost.step_overhead_s(8, 2) == pytest.approx(trt.step_overhead_s(8, 2, layers))
        assert sm.cost.prefill_step_overhead_s(8, 2) == pytest.approx(trt.prefill_step_overhead_s(8, 2, layers))
    cost = step_cost("trt-llm", "fp8", gpu=gpu)
    assert cost.layers is None and cost.per_layer  # the StepCost itself is model-free until a StepModel binds it


def test_llama_cpp_reaches_a_smaller_share_of_hbm_bandwidth():
    """hbm_bandwidth_factor: llama.cpp's fitted bandwidth share holds on GDDR cards and shrinks by that factor on HBM
    ones (the A100 and H100 runs of the calibration set); other profiles keep one share on every memory type."""
    lc, vllm = engines.profile("llama.cpp"), engines.profile("vllm")
    gddr, hbm = registry.get_gpu("rtx-4090"), registry.get_gpu("a100-80gb")
    assert gddr.memory_type.startswith("GDDR") and hbm.memory_type.startswith("HBM")
    assert 0 < lc.hbm_bandwidth_factor < 1
    assert lc.memory_efficiency("q4_k_m", hbm) == pytest.approx(lc.memory_efficiency("q4_k_m", gddr) * lc.hbm_bandwidth_factor)
    assert lc.memory_efficiency("q4_k_m", gddr) == lc.memory_efficiency("q4_k_m")
    assert vllm.memory_efficiency("bf16", hbm) == vllm.memory_efficiency("bf16", gddr)
    m = registry.get_model("llama-3.1-8b")
    tpot = {g.key: perf.perf_report(m, g, "q4_k_m", "fp16", 1, 1, 512, curve_batches=(), engine="llama.cpp")["tpot_s"]
            for g in (gddr, hbm)}
    # twice the bandwidth, yet hardly faster, as measured (Llama-3-8B Q4_K_M: 7.41 vs 7.66 ms per token)
    assert 1 < tpot["rtx-4090"] / tpot["a100-80gb"] < 1.2


def test_fp16_accumulate_runs_at_twice_the_rate_on_geforce_only():
    """accumulates_in_fp16 (llama.cpp's cuBLAS path): GeForce cards halve the FP32-accumulate tensor rate calc takes as
    their peak, so FP16-accumulate math runs at twice it (Ada whitepaper: 330.3 vs 165.2 TFLOPS on the RTX 4090); on
    workstation and datacenter cards both rates are the same. Only FP16 math has that mode: FP16 weights and GGUF
    formats (dequantized to FP16), not BF16 weights or FP8."""
    from calc.simulate import StepModel, step_cost

    lc, vllm = engines.profile("llama.cpp"), engines.profile("vllm")
    g4090, l40s = registry.get_gpu("rtx-4090"), registry.get_gpu("l40s")
    assert lc.peak_flops(g4090, "fp16", "fp16") == 330.3e12 == 2 * g4090.peak_flops("fp16") - 0.1e12
    assert lc.peak_flops(g4090, "bf16", "q4_k_m") == 330.3e12  # GGUF: dequantized to FP16
    assert lc.peak_flops(g4090, "bf16", "bf16") == g4090.peak_flops("bf16")  # BF16 accumulates in FP32
    assert lc.peak_flops(g4090, "fp8", "fp8") == g4090.peak_flops("fp8")
    assert vllm.peak_flops(g4090, "fp16", "fp16") == g4090.peak_flops("fp16")
    assert lc.peak_flops(l40s, "fp16", "fp16") == l40s.peak_flops("fp16") and l40s.fp16_acc16_dense_flops is None
    m = registry.get_model("llama-3.1-8b")
    sm = StepModel(m, g4090, "fp16", "fp16", cost=step_cost("llama.cpp", "fp16", gpu=g4090))
    # × the card's measured matmul share relative to the H100's (registry GPU.matmul_factor)
    assert sm.peak == pytest.approx(330.3e12 * lc.compute_efficiency("fp16") * g4090.matmul_factor)
    for w in ("fp16", "bf16", "q4_k_m"):  # the report's peak is the one its effective rate is a share of
        r = perf.perf_report(m, g4090, w, "fp16", 1, 512, 64, curve_batches=(), engine="llama.cpp")
        assert r["effective_flops"] == pytest.approx(r["peak_flops"] * lc.compute_efficiency(w, g4090)), w
        assert r["compute_efficiency"] == pytest.approx(lc.compute_efficiency(w) * g4090.matmul_factor), w
        assert r["ridge_flops_per_byte"] == pytest.approx(r["peak_flops"] / g4090.memory_bandwidth_bytes_per_s), w


def test_an_older_release_may_have_its_own_fixed_cost_and_4_bit_weights_their_own_share():
    """vllm@v0.6 (the V0 engine): its own base cost per step, multi-GPU cost (the one vLLM borrowed from
    TensorRT-LLM before its own was fitted on a V1 run) and prompt cost (the one V1 had before its front-end latency
    became the median of several hosts), everything else the current profile's; W4A16 weights (GPTQ/AWQ int4) reach a
    smaller share of bandwidth than 16-bit ones in vLLM (and SGLang, which borrows it)."""
    v1, v0 = engines.profile("vllm"), engines.profile("vllm@v0.6")
    assert v0.overhead_base_s > v1.overhead_base_s
    assert v0.overhead_multi_gpu_s == 0.00192 > v1.overhead_multi_gpu_s  # kept when V1's own was fitted
    assert v0.prefill_overhead_base_s == 0.0229 > v1.prefill_overhead_base_s  # kept when V1's was re-estimated
    assert v0.overhead_per_seq_s == v1.overhead_per_seq_s
    assert v0.memory_efficiency("int4") == v1.memory_efficiency("int4") < v1.memory_efficiency("bf16")
    assert engines.profile("sglang").memory_efficiency("int4") == v1.memory_efficiency("int4")
    assert engines.profile("trt-llm").overhead_base_s == engines.profile("trt-llm@v0.6").overhead_base_s


def test_sglang_prompt_cost_is_per_layer_in_the_step_and_the_same_in_perf_and_the_simulator():
    """SGLang's prompt cost beyond the step's base is paid per layer (request_latency_per_layer) by the step that
    carries the prompt (prompt_cost_in_step), nothing off the GPU: a 32-layer model pays the fitted prefill_base_s, an
    80-layer one 80/32 of it, and perf's TTFT of one short prompt equals the simulator's for one request alone."""
    from calc.simulate import StepModel, requests, simulate, step_cost

    p = engines.profile("sglang")
    assert p.request_latency_per_layer and p.prompt_cost_in_step and p.request_latency_s == 0
    assert p.prefill_step_overhead_s(1, 1, 32) - p.overhead_per_seq_s == pytest.approx(p.prefill_overhead_base_s)
    assert p.prefill_step_overhead_s(1, 1, 80) - p.overhead_per_seq_s == \
        pytest.approx(p.prefill_overhead_base_s * 80 / 32)
    assert p.request_latency_for(80) == 0 and engines.profile("vllm").request_latency_for(80) > 0
    g = registry.get_gpu("h200")
    # pipeline stages: each pays the prompt cost for its own layers, so a second stage adds only its per-sequence and
    # multi-GPU terms beyond what the roofline adds (the whole model's layers pay the per-layer cost once)
    m70, h200 = registry.get_model("llama-3.1-70b"), registry.get_gpu("h200")
    fixed = [perf.perf_report(m70, h200, "bf16", "bf16", 1, 512, 2, 4, curve_batches=(), engine=e, pp=pp)["ttft_s"]
             for pp in (1, 2) for e in ("sglang", "ideal")]
    assert (fixed[2] - fixed[3]) - (fixed[0] - fixed[1]) == pytest.approx(p.overhead_per_seq_s + p.overhead_multi_gpu_s)
    # a prompt's steps are SGLang's chunked_prefill_size for the GPU (16,384 on a B200, 8,192 on an H200), in perf too
    big = registry.get_model("llama-3.1-8b")
    assert [perf.perf_report(big, registry.get_gpu(x), prompt_len=16384, output_len=2, curve_batches=(),
                             engine="sglang")["prefill_chunks"] for x in ("b200", "h200")] == [1, 2]
    # once per step, however many prompts it holds: two prompts of 256 tokens cost one of 512 plus one more sequence
    sm = StepModel(registry.get_model("llama-3.1-8b"), g, cost=step_cost("sglang", "bf16", gpu=g))
    one, two = sm.step_s([(0, 512)], 0, 0), sm.step_s([(0, 256), (0, 256)], 0, 0)
    assert one > p.prefill_overhead_base_s and abs(two - one) < p.prefill_overhead_base_s / 20
    for name, tp in (("llama-3.1-70b", 4), ("llama-3.1-8b", 1)):
        m = registry.get_model(name)
        r = perf.perf_report(m, g, "bf16", "bf16", 1, 512, 2, tp, curve_batches=(), engine="sglang")
        assert r["request_latency_s"] == 0
        sm = StepModel(m, g, "bf16", "bf16", tp, step_cost("sglang", "bf16", gpu=g))
        assert sm.cost.request_latency_s == 0
        alone = simulate(sm, requests(1, math.inf, 512, 2))
        assert alone["ttft_s"]["p50"] == pytest.approx(r["ttft_s"], rel=2e-3), name


def test_sglang_charges_an_mla_layer_as_several_ordinary_ones_in_perf_and_the_simulator():
    """SGLang's per-layer fixed costs weigh a layer of DeepSeek-V3's design (MLA) more: the step's base by
    mla_step_layer_weight, the request latency by mla_request_layer_weight; the same in perf and the simulator, and
    nothing changes for GQA models or for engines whose costs are not per layer."""
    from calc.simulate import StepModel, step_cost

    p = engines.profile("sglang")
    assert p.mla_step_layer_weight > 1 and p.mla_request_layer_weight > 1
    ordinary, mla = p.step_overhead_s(1, 1, 61), p.step_overhead_s(1, 1, 61, mla=True)
    assert mla - p.overhead_per_seq_s == pytest.approx((ordinary - p.overhead_per_seq_s) * p.mla_step_layer_weight)
    # the prompt's step: the step base weighed as in a decode step, the prompt cost by the request weight: 61 MLA layers
    # cost (1.99 x 1.22 + 1.5 x 27.23) ms x 61 / 32 = 82.5 ms more than 61 ordinary ones (data page: 1.22 ms per step
    # and 28.45 ms per prompt per 32 layers, weights 2.99 and 2.5)
    assert round((p.prefill_step_overhead_s(1, 8, 61, mla=True) - p.prefill_step_overhead_s(1, 8, 61)) * 1e3, 1) == 82.5
    vllm = engines.profile("vllm")  # one fixed cost per step, not per layer: the weight has nothing to scale
    assert vllm.step_overhead_s(1, 1, 61, mla=True) == vllm.step_overhead_s(1, 1, 61)
    assert vllm.request_latency_for(61, mla=True) == vllm.request_latency_for(61)

    m, g = registry.get_model("deepseek-r1"), registry.get_gpu("h200")
    assert m.is_mla
    r = perf.perf_report(m, g, "fp8", "bf16", 4, 512, 64, 8, curve_batches=(), engine="sglang")
    assert r["engine_step_overhead_s"] == pytest.approx(p.step_overhead_s(4, 8, m.num_hidden_layers, mla=True))
    sm = StepModel(m, g, "fp8", "bf16", 8, step_cost("sglang", "fp8", gpu=g))
    assert sm.cost.step_overhead_s(4, 8) == pytest.approx(p.step_overhead_s(4, 8, m.num_hidden_layers, mla=True))
    assert sm.cost.prefill_step_overhead_s(4, 8) == pytest.approx(
        p.prefill_step_overhead_s(4, 8, m.num_hidden_layers, mla=True))
    gqa = registry.get_model("qwen3-235b-a22b")
    assert StepModel(gqa, g, "bf16", "bf16", 8, step_cost("sglang", "bf16", gpu=g)).cost.step_overhead_s(4, 8) == \
        pytest.approx(p.step_overhead_s(4, 8, gqa.num_hidden_layers))


def test_compute_shares_are_read_against_the_h100s_measured_matmul():
    """An engine's compute share on a GPU is its fitted share × the GPU's matmul_factor (registry), in the performance
    calculator's report and in the simulator's step alike; a share given by the user is taken as is; memory shares do
    not move."""
    from calc.simulate import StepModel, step_cost

    vllm, m = engines.profile("vllm"), registry.get_model("llama-3.1-8b")
    for key, factor in (("h100-sxm", 1.0), ("rtx-4090", 1.252), ("mi300x", 0.640), ("l4", 0.733), ("a10", 1.0)):
        g = registry.get_gpu(key)
        assert round(g.matmul_factor, 3) == factor
        assert vllm.compute_efficiency("bf16", g) == pytest.approx(vllm.compute_efficiency("bf16") * g.matmul_factor)
        assert vllm.memory_efficiency("bf16", g) == vllm.memory_efficiency("bf16")
        r = perf.perf_report(m, g, "bf16", "bf16", 1, 2048, 64, curve_batches=(), engine="vllm")
        assert r["effective_flops"] == pytest.approx(g.bf16_dense_flops * vllm.compute_efficiency("bf16") * g.matmul_factor)
        sm = StepModel(m, g, "bf16", "bf16", cost=step_cost("vllm", "bf16", gpu=g))
        assert sm.peak == pytest.approx(r["effective_flops"])
        mine = perf.perf_report(m, g, "bf16", "bf16", 1, 2048, 64, curve_batches=(), engine="vllm", compute_efficiency=0.5)
        assert mine["effective_flops"] == pytest.approx(g.bf16_dense_flops * 0.5)
        assert step_cost("vllm", "bf16", compute_efficiency=0.5, gpu=g).compute_efficiency == 0.5
    # a prefill on the RTX 4090 takes less time than at its datasheet's share, a decode step the same
    g = registry.get_gpu("rtx-4090")
    fast = perf.perf_report(m, g, "bf16", "bf16", 1, 4096, 64, curve_batches=(), engine="vllm")
    slow = perf.perf_report(m, g, "bf16", "bf16", 1, 4096, 64, curve_batches=(), engine="vllm",
                            compute_efficiency=vllm.compute_efficiency("bf16"))
    assert fast["prefill_s"] < 0.85 * slow["prefill_s"] and fast["tpot_s"] == pytest.approx(slow["tpot_s"], rel=1e-3)


def test_a_compute_share_above_one_is_allowed_where_a_card_beats_its_datasheet():
    """The ideal bound on an RTX 5090 runs above the datasheet's dense peak (its measured matmul: 114 % of it), so
    the compute-efficiency input accepts shares above 1 on such a card, up to its measured share, and only there; the
    report says what it used; the simulator's and the planner's default cost is the same ideal engine on that GPU."""
    from calc.simulate import StepModel, step_cost

    g = registry.get_gpu("rtx-5090")
    r = api.run("perf", {"model": "llama-3.1-8b", "gpu": "rtx-5090", "engine": "ideal"})
    ideal = engines.profile("ideal").compute_efficiency("bf16")
    assert r["compute_efficiency"] == pytest.approx(ideal * g.matmul_factor) and r["compute_efficiency"] > 1
    assert r["effective_flops"] < g.matmul_measured_flops  # still below what the card measurably does
    assert api.run("perf", {"model": "llama-3.1-8b", "gpu": "rtx-5090", "compute-efficiency": "1.13"})["compute_efficiency"] == 1.13
    for gpu, share, most in (("rtx-5090", "1.2", "1.13"), ("h100-sxm", "1.01", "1"), ("l4", "1.2", "1")):
        with pytest.raises(api.InputError) as e:
            api.run("perf", {"model": "llama-3.1-8b", "gpu": gpu, "compute-efficiency": share})
        assert f"at most {most}" in e.value.errors["compute-efficiency"]["en"], gpu
    assert api.run("perf", {"model": "llama-3.1-8b", "gpu": "h100-sxm", "compute-efficiency": "1"})["compute_efficiency"] == 1
    m = registry.get_model("llama-3.1-8b")
    assert StepModel(m, g).peak == pytest.approx(StepModel(m, g, cost=step_cost("ideal", "bf16", gpu=g)).peak)
    from calc.plan import plan
    args = (m, g, "bf16", "bf16", 2.0, "256", "64", 5.0, 1.0, 1.0)
    bare, ideal = plan(*args, n_requests=40), plan(*args, cost=step_cost("ideal", "bf16", gpu=g), n_requests=40)
    assert bare["best"] and bare["best"] == ideal["best"]


def test_vllm_for_rocm_has_its_own_fp8_share_for_decode_steps_only():
    """vllm@rocm-0.9's FP8 share comes from AMD's latency table, whose prompts were cache hits (data page): it is the
    share of steps of decodes only (decode_compute_efficiency); a step that holds prompt tokens takes the CUDA
    profile's FP8 share, in perf and in the simulator alike. Every other profile has one share for both."""
    from calc.simulate import StepCost, StepModel

    rocm, cuda, g = engines.profile("vllm@rocm-0.9"), engines.profile("vllm"), registry.get_gpu("mi300x")
    variant = engines._data()["engines"]["vllm"]["variants"]["rocm-0.9"]
    assert rocm.decode_compute_efficiency("fp8") == variant["decode_compute_efficiency"]["fp8"] < cuda.compute_efficiency("fp8")
    assert rocm.compute_efficiency("fp8") == cuda.compute_efficiency("fp8")
    assert rocm.decode_compute_efficiency("fp8", g) == pytest.approx(rocm.decode_compute_efficiency("fp8") * g.matmul_factor)
    assert rocm.decode_compute_efficiency("bf16", g) == rocm.compute_efficiency("bf16", g)
    for key in engines.ENGINES:
        p = engines.profile(key)
        assert all(p.decode_compute_efficiency(f, g) == p.compute_efficiency(f, g) for f in ("bf16", "fp8", "int4")), key
    # perf: a compute-bound decode step follows the decode share, the prompt the other; halving the decode share
    # doubles the matmul part of a large batch's step and leaves the prefill as it was
    m = registry.get_model("llama-3.1-70b")
    r = perf.perf_report(m, g, "fp8", "bf16", 256, 1024, 64, 1, curve_batches=(), engine="vllm@rocm-0.9")
    assert r["bound"] == "compute"
    assert r["compute_efficiency"] == cuda.compute_efficiency("fp8", g)
    with pytest.MonkeyPatch.context() as mp:
        mp.setitem(variant, "decode_compute_efficiency", {"fp8": variant["decode_compute_efficiency"]["fp8"] / 2})
        engines.profile.cache_clear()
        half = perf.perf_report(m, g, "fp8", "bf16", 256, 1024, 64, 1, curve_batches=(), engine="vllm@rocm-0.9")
    engines.profile.cache_clear()
    assert half["prefill_s"] == r["prefill_s"]
    base = rocm.step_overhead_s(256, 1, m.num_hidden_layers)
    assert (half["tpot_s"] - base) == pytest.approx(2 * (r["tpot_s"] - base), rel=1e-9)
    # the simulator: a step of decodes only at the decode share, a step with a prompt chunk at the other
    cost = StepCost.from_profile(rocm, "fp8", "vllm@rocm-0.9", g)
    assert (cost.decode_compute_efficiency, cost.compute_efficiency) == (rocm.decode_compute_efficiency("fp8", g),
                                                                         rocm.compute_efficiency("fp8", g))
    sm = StepModel(m, g, "fp8", "bf16", 1, cost)
    assert sm.decode_peak == pytest.approx(sm.peak * cost.decode_compute_efficiency / cost.compute_efficiency)
    assert sm.step_s([], 256, 256 * 1056) == pytest.approx(sm.decode_step_s(256, 256 * 1056), rel=1e-12)
    assert sm.decode_step_s(256, 256 * 1056) == pytest.approx(r["tpot_s"], rel=1e-9)
    plain = StepModel(m, g, "fp8", "bf16", 1, StepCost.from_profile(cuda, "fp8", "vllm", g))
    assert plain.decode_peak == plain.peak and plain.cost.decode_compute_efficiency == plain.cost.compute_efficiency


def test_four_bit_formats_that_run_weight_only_take_the_w4a16_share():
    """vLLM's profile fits one bandwidth share for 4-bit weight-only kernels (int4: GPTQ/AWQ) and one for 16-bit
    weights. NF4 everywhere, and NVFP4 / MXFP4 on GPUs without FP4 tensor cores (A100, H100), also dequantize to
    16-bit math, so they take the 4-bit share: NVFP4 (4.5 bits) must not decode faster than INT4 (4.16 bits) there.
    With FP4 tensor cores (B200) NVFP4 keeps the default; gpt-oss's MXFP4 experts keep it everywhere (the profile's
    gpt-oss runs were fitted on it); a profile without a 4-bit share (ideal, TensorRT-LLM) is unchanged."""
    vllm, a100, h100, b200 = engines.profile("vllm"), registry.get_gpu("a100-80gb"), registry.get_gpu("h100-sxm"), \
        registry.get_gpu("b200")
    mi300x, rtx5090 = registry.get_gpu("mi300x"), registry.get_gpu("rtx-5090")
    w4a16, default = vllm.memory_efficiency("int4"), vllm.memory_efficiency("bf16")
    assert w4a16 < default
    for gpu in (a100, h100, mi300x):  # no FP4 tensor cores (the MI300X's gfx942 has none either)
        assert not gpu.peak_flops("fp4")
        for fmt in ("nvfp4", "mxfp4", "nf4"):
            assert vllm.memory_efficiency(fmt, gpu) == pytest.approx(w4a16 * vllm.memory_efficiency("bf16", gpu) / default)
        assert vllm.memory_efficiency("mxfp4-experts", gpu) == pytest.approx(vllm.memory_efficiency("bf16", gpu))
    for gpu in (b200, rtx5090):  # FP4 tensor cores: NVFP4 and MXFP4 run as FP4, NF4 still dequantizes
        assert gpu.peak_flops("fp4")
        for fmt in ("nvfp4", "mxfp4"):
            assert vllm.memory_efficiency(fmt, gpu) == pytest.approx(vllm.memory_efficiency("bf16", gpu))
        assert vllm.memory_efficiency("nf4", gpu) == pytest.approx(vllm.memory_efficiency("int4", gpu))
    # vLLM for ROCm 0.9.1 sets its own 16-bit share (0.547) only: its 4-bit share scales with it, so 4-bit weights
    # on an MI300X decode at a smaller share than 16-bit ones there too, as in the profile it varies
    rocm = engines.profile("vllm@rocm-0.9")
    assert rocm.memory_efficiency("bf16", mi300x) == pytest.approx(0.547)
    for fmt in ("int4", "nvfp4", "mxfp4", "nf4"):
        assert rocm.memory_efficiency(fmt, mi300x) == pytest.approx(0.547 * w4a16 / default)
    for name in ("ideal", "trt-llm"):
        p = engines.profile(name)
        assert p.memory_efficiency("nvfp4", h100) == p.memory_efficiency("bf16", h100)
    m = registry.get_model("llama-3.1-8b")
    tpot = {f: perf.perf_report(m, a100, f, "bf16", 1, 128, 128, engine="vllm")["tpot_s"] for f in ("int4", "nvfp4")}
    assert tpot["nvfp4"] > tpot["int4"]
