"""Pipeline (pp) and expert (ep) parallelism in calc's memory and speed models, the models added with them,
and the mxfp4-experts weight format. Every expected value is derived by hand from the published shapes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from calc import api, engines, registry
from calc.memory import (
    WEIGHT_FORMATS,
    check_parallel,
    memory_report,
    per_gpu_table,
    weight_parts,
    weights_bytes,
)
from calc.model import ModelSpec, from_hf_config, param_counts
from calc.perf import ALLREDUCE_LATENCY_S, perf_report

ROOT = Path(__file__).resolve().parent.parent
NEW_MODELS = ["llama-3.3-70b", "deepseek-r1", "qwen3-30b-a3b", "qwen3-14b", "qwen2.5-14b", "qwen2.5-32b", "mistral-7b-v0.3",
              "gpt-oss-20b", "gpt-oss-120b"]


# --- the models -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", NEW_MODELS)
def test_parameter_count_matches_the_model_card(name):
    """calc counts tensor by tensor; the model cards round to 0.1B (Qwen2.5-32B's card says 32.5B for the
    32.76B its safetensors hold, the largest gap, 0.8 %)."""
    c = param_counts(registry.get_model(name))
    published = registry.model_entry(name)["published_params"]
    assert c["total"] == pytest.approx(published["total"], rel=0.01)
    if "active" in published:
        assert c["active"] == pytest.approx(published["active"], rel=0.03)
    if "active_excluding_embedding" in published:  # OpenAI counts active parameters without the embedding lookup
        assert c["active"] - c["embedding"] == pytest.approx(published["active_excluding_embedding"], rel=0.03)
    if "non_embedding" in published:
        assert c["total"] - c["embedding"] - c["lm_head"] == pytest.approx(published["non_embedding"], rel=0.01)


def test_gpt_oss_20b_parameters_by_hand():
    """hidden 2880, 24 layers, 64 query / 8 KV heads of 64, 32 experts of width 2880, vocab 201,088, untied."""
    m = registry.get_model("gpt-oss-20b")
    h, v, e, n = 2880, 201088, 32, 24
    attention = h * 64 * 64 * 2 + 2 * h * 8 * 64 + (64 * 64 + 2 * 8 * 64 + h) + 64  # q, o, k, v, biases, sinks
    experts = e * (3 * h * 2880 + 2 * 2880 + h)  # gate_up + down, with biases
    router = h * e + e
    per_layer = attention + experts + router + 2 * h
    assert param_counts(m)["total"] == 2 * v * h + n * per_layer + h == 20_914_757_184
    assert m.layer_windows[:2] == (128, None)  # sliding 128 / full, alternating


def test_mxfp4_experts_keeps_attention_in_16_bits():
    """gpt-oss's checkpoint: routed experts MXFP4 (4 bits + one 8-bit scale per 32 = 4.25 bits), the rest BF16.
    Plain 'mxfp4' would also quantize attention; 'mxfp4-experts' does not. The published config says the same
    through quantization_config.modules_to_not_convert (model.layers.*.self_attn, ...), which calc honours for
    every quantized format: with it, plain 'mxfp4' keeps attention in 16 bits too; without it, it does not."""
    m = registry.get_model("gpt-oss-120b")
    c = param_counts(m)
    assert WEIGHT_FORMATS["mxfp4-experts"].experts_only
    expected = c["expert_linear"] * 4.25 / 8 + (c["total"] - c["expert_linear"]) * 2
    assert weights_bytes(m, "mxfp4-experts") == pytest.approx(expected, abs=1)
    assert weights_bytes(m, "mxfp4-experts") == weights_bytes(m, "mxfp4")  # the checkpoint's own list
    bare = ModelSpec(**{**{k: getattr(m, k) for k in ModelSpec._FIELDS}, "unquantized_modules": ()})
    assert weights_bytes(bare, "mxfp4-experts") == weights_bytes(m, "mxfp4-experts")
    assert weights_bytes(bare, "mxfp4-experts") > weights_bytes(bare, "mxfp4")
    parts = weight_parts(m, "mxfp4-experts")
    assert parts["embedding"] + parts["head"] + sum(r["dense"] + r["experts"] for r in parts["layers"]) \
        == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("fmt", ["bf16", "fp8", "int4", "q4_k_m"])
def test_weight_parts_add_up(fmt):
    for name in ("deepseek-v3", "llama-3.2-1b", "gemma-2-9b"):
        m = registry.get_model(name)
        parts = weight_parts(m, fmt)
        total = parts["embedding"] + parts["head"] + sum(r["dense"] + r["experts"] for r in parts["layers"])
        assert total == pytest.approx(weights_bytes(m, fmt), rel=1e-9)


# --- memory -------------------------------------------------------------------------------------------------


def test_pp_2_splits_the_layers_and_halves_the_per_gpu_weights():
    """Llama-3.1-70B in BF16, pp=2: stage 1 holds layers 0-39 + the embedding, stage 2 layers 40-79 + lm_head
    + final norm; each stage's layers are exactly half of all layer bytes."""
    m = registry.get_model("llama-3.1-70b")
    c = param_counts(m)
    table = per_gpu_table(m, "bf16", "bf16", 1, 1024, 1280, tp=1, pp=2)
    assert [(r["first_layer"], r["last_layer"]) for r in table] == [(0, 39), (40, 79)]
    layers = 2 * (c["total"] - c["embedding"] - c["lm_head"] - m.hidden_size)
    assert table[0]["weights_bytes"] == layers / 2 + 2 * c["embedding"]
    assert table[1]["weights_bytes"] == layers / 2 + 2 * c["lm_head"] + 2 * m.hidden_size
    # KV: each stage caches its own 40 layers; 2 x 8 heads x 128 x 2 B per token and layer
    assert table[0]["kv_cache_bytes"] == 1280 * 40 * 2 * 8 * 128 * 2
    r = memory_report(m, registry.get_gpu("h100-sxm").memory_bytes, tp=1, pp=2)
    assert r["gpus"] == 2 and r["weights_bytes_per_gpu"] == max(t["weights_bytes"] for t in table)
    assert r["total_bytes"] == sum(t["total_bytes"] for t in r["per_gpu_table"])


def test_pp_1_ep_1_is_unchanged():
    m = registry.get_model("qwen2.5-7b")
    r = memory_report(m, 80 * 2**30, tp=2)
    assert r["weights_bytes_per_gpu"] == -(-weights_bytes(m, "bf16") // 2)
    assert len(r["per_gpu_table"]) == 1 and r["gpus"] == 2


def test_ep_spreads_the_routed_experts_and_replicates_attention():
    """Qwen3-30B-A3B, tp=1, ep=8 (vLLM: --data-parallel-size 8 --enable-expert-parallel): each GPU holds 16 of
    the 128 experts of every layer and a whole copy of attention, embeddings and routers; the batch of 16 splits
    into 8 attention replicas of 2 sequences."""
    m = registry.get_model("qwen3-30b-a3b")
    c = param_counts(m)
    expert_bytes = 2 * c["expert_linear"]
    rest = 2 * (c["total"] - c["expert_linear"])
    table = per_gpu_table(m, "bf16", "bf16", 16, 1000, 1000, tp=1, ep=8)
    assert len(table) == 1 and table[0]["gpus"] == 8
    assert table[0]["weights_bytes"] == pytest.approx(rest + expert_bytes / 8, abs=1)
    assert table[0]["kv_cache_bytes"] == 2 * 48 * 2 * 4 * 128 * 2 * 1000  # 2 sequences, 48 layers, 4 KV heads
    # ep <= tp (SGLang's --ep-size): the same 1/tp of everything per GPU as plain tensor parallelism
    tp8 = per_gpu_table(m, "bf16", "bf16", 1, 1000, 1000, tp=4)[0]["weights_bytes"]
    assert per_gpu_table(m, "bf16", "bf16", 1, 1000, 1000, tp=4, ep=4)[0]["weights_bytes"] == pytest.approx(tp8, abs=1)


def test_deepseek_v3_fp8_on_eight_gpus_has_a_per_gpu_table():
    m = registry.get_model("deepseek-v3")
    r = memory_report(m, registry.get_gpu("h200").memory_bytes, "fp8", tp=8)
    assert r["gpus"] == 8 and r["fits"] and r["per_gpu_table"][0]["gpus"] == 8
    dp = memory_report(m, registry.get_gpu("h200").memory_bytes, "fp8", batch=64, tp=1, ep=8)
    # DP attention: MLA's latent cache is no longer copied on every rank, so 64 sequences cost 1/8 of TP-8's KV
    tp = memory_report(m, registry.get_gpu("h200").memory_bytes, "fp8", batch=64, tp=8)
    assert dp["kv_cache_bytes_per_gpu"] * 8 == tp["kv_cache_bytes_per_gpu"]
    assert dp["weights_bytes_per_gpu"] > tp["weights_bytes_per_gpu"]  # attention and dense layers replicated


# --- speed --------------------------------------------------------------------------------------------------


def test_pp_single_batch_is_the_sum_of_the_stages_plus_the_hand_off():
    """Memory-bound decode on one GPU per stage: two stages read the same bytes as one GPU holding everything,
    one after the other, plus one send of the hidden state (8192 x 2 B over 450 GB/s + latency)."""
    m, gpu = registry.get_model("llama-3.1-70b"), registry.get_gpu("h100-sxm")
    one = perf_report(m, gpu, batch=1, tp=1, engine="ideal")
    two = perf_report(m, gpu, batch=1, tp=1, pp=2, engine="ideal")
    hand = ALLREDUCE_LATENCY_S + 8192 * 2 / (gpu.interconnect_bytes_per_s / 2)
    assert two["pipeline_handoff_s_per_step"] == pytest.approx(hand)
    assert two["tpot_s"] == pytest.approx(one["tpot_s"] + hand, rel=1e-9)
    assert two["gpus"] == 2 and two["micro_batches"] == 1
    # An engine adds its fixed cost per step to every stage (the multi-GPU part once the deployment has 2 GPUs)
    eng = engines.profile("vllm")
    one_v = perf_report(m, gpu, batch=1, tp=1, engine="vllm")
    two_v = perf_report(m, gpu, batch=1, tp=1, pp=2, engine="vllm")
    assert two_v["tpot_s"] - one_v["tpot_s"] == pytest.approx(
        hand + 2 * eng.step_overhead_s(1, 2) - eng.step_overhead_s(1, 1), rel=1e-9)
    assert two_v["tpot_ideal_s"] == pytest.approx(two["tpot_s"], rel=1e-12)


def test_pp_micro_batches_and_bubbles():
    m, gpu = registry.get_model("llama-3.1-70b"), registry.get_gpu("h100-sxm")
    r = perf_report(m, gpu, batch=4, prompt_len=2048, tp=1, pp=4)
    assert r["micro_batches"] == 4
    # GPipe: (pp - 1) / (m + pp - 1) = 3/7 idle for equal stages; the last stage's lm_head makes it a bit more
    assert 3 / 7 <= r["prefill_pipeline_bubble"] < 0.5
    # decode is memory-bound: each micro-batch re-reads the stage's weights, so pp gives no throughput here
    assert r["tpot_s"] >= r["tpot_single_batch_s"] * 0.99


def test_ep_all_to_all_by_hand():
    """DeepSeek-V3, tp=1, ep=8, batch 64: per MoE layer each GPU dispatches its 8 tokens to 8 experts, 7/8 of
    them remote, 7168 x 2 B each, and combines as much back; 58 MoE layers."""
    m, gpu = registry.get_model("deepseek-v3"), registry.get_gpu("h200")
    r = perf_report(m, gpu, "fp8", batch=64, tp=1, ep=8)
    sent = 64 / 8 * 8 * 7 / 8 * 7168 * 2
    per_layer = 2 * (ALLREDUCE_LATENCY_S + sent / (gpu.interconnect_bytes_per_s / 2))
    assert r["all_to_all_s_per_step"] == pytest.approx(58 * per_layer)
    assert r["allreduce_s_per_step"] == 0  # tp = 1: no all-reduce
    assert r["attention_replicas"] == 8 and r["gpus"] == 8


def test_405b_on_eight_gpus_includes_its_communication():
    m, gpu = registry.get_model("llama-3.1-405b"), registry.get_gpu("h100-sxm")
    r = perf_report(m, gpu, "fp8", batch=8, tp=8)
    assert r["allreduce_s_per_step"] > 0 and r["gpus"] == 8
    assert memory_report(m, gpu.memory_bytes, "fp8", batch=8, tp=8)["fits"]
    r2 = perf_report(m, gpu, "fp8", batch=8, tp=8, pp=2)
    assert r2["gpus"] == 16 and r2["pipeline_handoff_s_per_step"] > 0


# --- input errors -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("params", "field", "words"), [
    ({"model": "llama-3.1-8b", "pp": 3}, "pp", "32 layers"),
    ({"model": "llama-3.1-8b", "ep": 2}, "ep", "dense"),
    ({"model": "deepseek-v3", "ep": 512}, "ep", "256 routed experts"),
    ({"model": "qwen3-30b-a3b", "ep": 3}, "ep", "128 routed experts"),
])
def test_bad_layouts_are_clear_errors(params, field, words):
    for command in ("memory", "perf"):
        with pytest.raises(api.InputError) as err:
            api.run(command, params)
        assert words in err.value.errors[field]["en"], err.value.errors
        assert err.value.errors[field]["zh"]


def test_ep_and_tp_must_divide_one_another():
    """Qwen1.5-MoE-A2.7B's shape (60 experts): ep=3 with tp=2 is neither a multiple nor a divisor."""
    cfg = {"model_type": "qwen2_moe", "hidden_size": 2048, "intermediate_size": 5632, "moe_intermediate_size": 1408,
           "num_attention_heads": 16, "num_key_value_heads": 16, "num_hidden_layers": 24, "num_experts": 60,
           "num_experts_per_tok": 4, "shared_expert_intermediate_size": 5632, "vocab_size": 151936}
    with pytest.raises(api.InputError) as err:
        api.run("perf", {"config": cfg, "tp": 2, "ep": 3})
    assert "must divide one another" in err.value.errors["ep"]["en"]
    with pytest.raises(ValueError, match="divide one another"):
        check_parallel(from_hf_config(cfg), tp=2, ep=3)


def test_cli_prints_the_per_gpu_table():
    out = subprocess.run([sys.executable, "-m", "calc", "memory", "--model", "llama-3.1-405b", "--weights", "fp8",
                          "--tp", "8", "--pp", "2"], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "stage 1 (layers 0-62), each of 8 GPUs" in out.stdout and "stage 2 (layers 63-125)" in out.stdout
    bad = subprocess.run([sys.executable, "-m", "calc", "perf", "--model", "llama-3.1-8b", "--ep", "2"], cwd=ROOT,
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "dense" in bad.stderr


def test_memory_chart_draws_one_bar_per_stage():
    from calc import web

    view = web.view("memory", {"model": "llama-3.1-405b", "weights": "fp8", "tp": "8", "pp": "2"}, "en")
    series = {n["attrs"]["data-series"]: n["attrs"]["data-value"] for n in view["chart"]["children"]
              if "data-series" in n["attrs"]}
    for row in view["result"]["per_gpu_table"]:
        assert series[f"weights-stage{row['stage']}"] == str(row["weights_bytes"])
        assert series[f"kv-stage{row['stage']}"] == str(row["kv_cache_bytes"])
    assert series["capacity"] == str(view["result"]["gpu_memory_bytes"])
    # the echoed inputs pp and ep are on the form, not in the result tables
    assert not {"pp", "ep", "per_gpu_table"} & {r["field"] for r in view["rows"] + view["details"]}


def test_deepseek_r1_tp8_weights_against_a_published_log():
    """vLLM (Habana fork) loading DeepSeek-R1's FP8 checkpoint at TP 8 logged "Pre-loading model weights on hpu:0
    took 79.41 GiB of device memory" on every rank (https://github.com/HabanaAI/vllm-fork/issues/809, 2025-02-07).
    calc splits every matrix over the 8 ranks and lands 1.3 % lower; vLLM replicates MLA's small q_a / kv_a
    projections on every rank (about 0.9 GB in FP8), which calc splits."""
    m = registry.get_model("deepseek-r1")
    per_gpu = per_gpu_table(m, "fp8", "bf16", 1, 1024, 1280, tp=8)[0]["weights_bytes"]
    assert per_gpu / 2**30 == pytest.approx(79.41, rel=0.02)
    assert per_gpu / 2**30 < 79.41


# --- engines × pp/ep, visible memory per stage, partial quantization per stage ------------------------------


def test_partial_quantization_composes_with_pp_and_ep():
    """modules_to_not_convert is counted layer by layer: the stages' weights add up to the whole model's, and the
    16-bit layers (the first and last MLPs here) land on the stages that hold them."""
    from calc.model import from_hf_config

    cfg = registry.hf_config("llama-3.1-405b")
    n = cfg["num_hidden_layers"]
    cfg["quantization_config"] = {"quant_method": "fbgemm_fp8", "modules_to_not_convert":
                                  ["self_attn", *(f"model.layers.{i}.mlp" for i in (0, n - 1))]}
    m, plain = from_hf_config(cfg), registry.get_model("llama-3.1-405b")
    parts = weight_parts(m, "fp8")
    total = parts["embedding"] + parts["head"] + sum(r["dense"] + r["experts"] for r in parts["layers"])
    assert total == pytest.approx(weights_bytes(m, "fp8"), rel=1e-12)
    rows, rows_plain = per_gpu_table(m, "fp8", "bf16", 1, 1024, 1280, tp=8, pp=2), \
        per_gpu_table(plain, "fp8", "bf16", 1, 1024, 1280, tp=8, pp=2)
    h, kv = 16384, 8 * 128
    extra = [(n // 2) * (2 * h * h + 2 * h * kv) + 3 * h * 53248] * 2  # attention of its layers + one MLP each
    for r, p, e in zip(rows, rows_plain, extra, strict=True):
        assert r["weights_bytes"] - p["weights_bytes"] == pytest.approx(e / 8, abs=1)
    # MoE: a listed expert block stays 16-bit across the ep GPUs too
    cfg = registry.hf_config("mixtral-8x7b")
    cfg["quantization_config"] = {"quant_method": "fp8", "ignore": ["model.layers.0.mlp.experts"]}
    moe = from_hf_config(cfg)
    rows = per_gpu_table(moe, "fp8", "bf16", 1, 1024, 1280, tp=1, pp=2, ep=8)
    rows_plain = per_gpu_table(registry.get_model("mixtral-8x7b"), "fp8", "bf16", 1, 1024, 1280, tp=1, pp=2, ep=8)
    assert rows[0]["weights_bytes"] - rows_plain[0]["weights_bytes"] == pytest.approx(8 * 3 * 4096 * 14336 / 8, abs=1)
    assert rows[1]["weights_bytes"] == rows_plain[1]["weights_bytes"]


def test_kv_budget_uses_visible_memory_per_stage():
    m, gpu = registry.get_model("llama-3.1-70b"), registry.get_gpu("h100-sxm")
    r = api.run("memory", {"model": "llama-3.1-70b", "gpu": "h100-sxm", "tp": 2, "pp": 2})
    table = per_gpu_table(m, "bf16", "bf16", 1, 1024, 1280, tp=2, pp=2)
    assert r["gpu_visible_memory_bytes"] == gpu.visible_memory_bytes
    from calc.memory import activation_peak_bytes
    budget = int(0.92 * gpu.visible_memory_bytes)
    # vLLM's rule (calc/data/engines.json): minus 0.16 GiB of non-torch memory and 0.52 GiB of CUDA graphs per GPU
    fixed = round(0.16 * 1024**3) + round(0.52 * 1024**3)
    stage = [budget - row["weights_bytes"] - activation_peak_bytes(m, 8192, 2) - fixed for row in table]
    assert r["engine_kv_budget_bytes_per_gpu"] == min(stage)
    assert r["engine_gpu_memory_utilization"] == 0.92 and r["engine"] == "vllm"


def test_new_gpus_use_their_visible_memory():
    for key in ("h100-nvl", "t4", "a10g", "rtx-a6000", "gh200", "l20"):
        gpu = registry.get_gpu(key)
        assert gpu.visible_memory_bytes and gpu.visible_memory_bytes <= gpu.memory_bytes
        r = api.run("memory", {"model": "qwen3-14b", "gpu": key, "weights": "int4"})
        assert r["gpu_visible_memory_bytes"] == gpu.visible_memory_bytes


@pytest.mark.parametrize("engine", ["ideal", "vllm", "sglang", "trt-llm", "llama.cpp", "hf"])
def test_new_models_and_layouts_run_with_every_engine(engine):
    for model, weights, tp, pp, ep in [("gpt-oss-120b", "mxfp4-experts", 1, 2, 4), ("gpt-oss-20b", "mxfp4-experts", 1, 1, 1),
                                       ("qwen3-30b-a3b", "fp8", 2, 1, 4), ("deepseek-r1", "fp8", 8, 1, 8)]:
        p = {"model": model, "gpu": "h200", "weights": weights, "tp": tp, "pp": pp, "ep": ep, "engine": engine,
             "batch": 16}
        r = api.run("perf", p)
        assert r["engine"] == engine and r["gpus"] == max(tp, ep) * pp
        assert r["tpot_s"] >= r["tpot_ideal_s"] * (0.999 if engine != "llama.cpp" else 0.5)
        assert r["ttft_s"] > 0 and r["e2e_s"] > r["ttft_s"]
        assert api.run("memory", p)["engine"] == engine
