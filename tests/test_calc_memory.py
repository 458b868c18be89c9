"""Memory formulas, with expected values computed here from published config.json shapes and datasheets.

Includes the book plan's worked example 4.3.3 (Llama-3-70B at 8k context) in bf16, fp8 and int4.
"""

import math

import pytest

from calc import api, engines, registry
from calc import memory as mem
from calc.memory import (
    activation_peak_bytes,
    kv_bytes_per_token,
    kv_cache_bytes,
    memory_report,
    weights_bytes,
)

GiB = 2**30

# Meta-Llama-3-70B config.json: hidden 8192, 80 layers, 64 heads, 8 KV heads of 128, MLP 28672, vocab 128256
L70 = dict(h=8192, layers=80, kv=8, hd=128, inter=28672, vocab=128256)
L70_TOTAL = 80 * (8192 * 8192 * 2 + 2 * 8192 * 1024 + 3 * 8192 * 28672 + 2 * 8192) + 2 * 128256 * 8192 + 8192
L70_EMB = 2 * 128256 * 8192  # embedding + untied lm_head, kept in 16 bits by the quantized formats
L70_NORMS = 80 * 2 * 8192 + 8192
L70_LINEAR = L70_TOTAL - L70_EMB - L70_NORMS


class TestWorkedExample433:
    """Llama-3-70B: how much GPU memory at 8k context?"""

    def test_weights_bf16_fp8_int4(self):
        m = registry.get_model("llama-3-70b")
        assert weights_bytes(m, "bf16") == 2 * L70_TOTAL  # 141.1 GB
        assert weights_bytes(m, "fp8") == L70_LINEAR * 1 + (L70_EMB + L70_NORMS) * 2  # 72.6 GB
        # int4, group 128: 4 bits + a 16-bit scale and a 4-bit zero per 128 weights = 4.15625 bits
        assert weights_bytes(m, "int4") == math.ceil(L70_LINEAR * 4.15625 / 8 + (L70_EMB + L70_NORMS) * 2)
        assert 141.0e9 < weights_bytes(m, "bf16") < 141.2e9
        assert 72.5e9 < weights_bytes(m, "fp8") < 72.8e9
        assert 39.6e9 < weights_bytes(m, "int4") < 40.0e9

    def test_kv_cache_at_8k(self):
        m = registry.get_model("llama-3-70b")
        per_token = 2 * L70["layers"] * L70["kv"] * L70["hd"] * 2  # K and V, bf16
        assert per_token == 327_680 == kv_bytes_per_token(m, "bf16")
        assert kv_cache_bytes(m, "bf16", 1, 8192) == 8192 * per_token == 2_684_354_560
        assert kv_cache_bytes(m, "fp8", 1, 8192) == 8192 * per_token // 2

    @pytest.mark.parametrize("weights, fits_h100", [("bf16", False), ("fp8", True), ("int4", True)])
    def test_fits_on_one_h100(self, weights, fits_h100):
        r = api.run("memory", {"model": "llama-3-70b", "gpu": "h100-sxm", "weights": weights,
                               "prompt-len": 8192 - 256, "output-len": 256})
        assert r["kv_cache_bytes"] == 2_684_354_560
        assert r["gpu_memory_bytes"] == 80 * GiB  # the datasheet's "80 GB" of HBM3 is 80 GiB
        expected = weights_bytes(registry.get_model("llama-3-70b"), weights) + 2_684_354_560 \
            + (8192 - 256) * 4 * 28672 * 2 + 1 * GiB
        assert r["total_bytes"] == expected
        assert r["fits"] is fits_h100
        if not fits_h100:
            assert "weights alone" in r["fits_reason"]["en"] and "权重" in r["fits_reason"]["zh"]

    def test_bf16_needs_two_h100s(self):
        r = api.run("memory", {"model": "llama-3-70b", "gpu": "h100-sxm", "tp": 2, "prompt-len": 7936, "output-len": 256})
        assert r["weights_bytes_per_gpu"] == L70_TOTAL  # half of 2 bytes × params
        assert r["kv_cache_bytes_per_gpu"] == 2_684_354_560 // 2  # 4 of 8 KV heads per GPU
        assert r["fits"] is True


def test_kv_per_token_mha_gqa_mqa_mla():
    cfg = registry.hf_config("llama-3.1-8b")  # 32 layers, 32 heads of 128
    from calc.model import from_hf_config
    mha = from_hf_config({**cfg, "num_key_value_heads": 32})
    mqa = from_hf_config({**cfg, "num_key_value_heads": 1})
    assert kv_bytes_per_token(mha) == 2 * 32 * 32 * 128 * 2 == 524_288
    assert kv_bytes_per_token(registry.get_model("llama-3.1-8b")) == 2 * 32 * 8 * 128 * 2 == 131_072
    assert kv_bytes_per_token(mqa) == 2 * 32 * 1 * 128 * 2
    # DeepSeek-V3 MLA: a 512-wide latent plus a 64-wide RoPE key per layer, 61 layers
    assert kv_bytes_per_token(registry.get_model("deepseek-v3"), "bf16") == 61 * (512 + 64) * 2 == 70_272
    assert kv_bytes_per_token(registry.get_model("deepseek-v3"), "fp8") == 61 * 576


def test_sliding_window_caps_the_cache():
    mistral = registry.get_model("mistral-7b")  # every layer: 4096-token window
    per_layer_token = 2 * 8 * 128 * 2
    assert kv_cache_bytes(mistral, "bf16", 1, 32768) == 32 * 4096 * per_layer_token
    assert kv_cache_bytes(mistral, "bf16", 1, 1000) == 32 * 1000 * per_layer_token
    gemma = registry.get_model("gemma-2-9b")  # 21 local layers (window 4096) + 21 global, 8 KV heads of 256
    per_layer_token = 2 * 8 * 256 * 2
    assert kv_cache_bytes(gemma, "bf16", 2, 8192) == 2 * per_layer_token * (21 * 4096 + 21 * 8192)


def test_tensor_parallel_kv_split_and_replication():
    m = registry.get_model("llama-3.1-70b")  # 8 KV heads
    one = kv_bytes_per_token(m, "bf16", tp=1)
    assert kv_bytes_per_token(m, "bf16", tp=8) == one // 8
    assert kv_bytes_per_token(m, "bf16", tp=16) == one // 8  # 16 ranks, 8 heads: each keeps one (replicated)
    ds = registry.get_model("deepseek-v3")  # MLA latent is not split across ranks
    assert kv_bytes_per_token(ds, "bf16", tp=8) == kv_bytes_per_token(ds, "bf16", tp=1)


def test_activation_peak_rule():
    m = registry.get_model("llama-3.1-8b")
    assert activation_peak_bytes(m, 4096) == 4096 * 4 * 14336 * 2
    assert activation_peak_bytes(m, 4096, tp=2) == 4096 * 4 * 14336 * 2 // 2


def test_gguf_sizes_against_published_files():
    # Llama-3.1-8B GGUF: "A 16-bit Llama-3.1-8B weighs 14.96 GB. The Q4_K_M build ... is 4.57 GB"
    # (https://www.runyard.dev/blog/q4-k-m-vs-q5-k-m-vs-q6-k-vs-q8-0-quantization-quality-loss; their GB are
    # GiB: 8.03e9 params × 2 B = 14.96 GiB).
    m = registry.get_model("llama-3.1-8b")
    assert weights_bytes(m, "bf16") / GiB == pytest.approx(14.96, abs=0.005)
    assert weights_bytes(m, "q4_k_m") / GiB == pytest.approx(4.57, rel=0.02)
    # Q8_0 is 34 bytes per 32 weights for every matrix, norms in fp32
    c = 8_030_261_248 - 65 * 4096
    assert weights_bytes(m, "q8_0") == math.ceil(c * 34 / 32 + 65 * 4096 * 4)
    # Q4_0 is 18 bytes per 32 weights except output.weight at Q6_K (210 bytes per 256). llama-bench prints the file
    # sizes: "llama 8B Q4_0 | 4.33 GiB | 8.03 B", "llama 70B Q4_0 | 37.22 GiB | 70.55 B" (one public README's ROCm
    # runs of build 72272b83 (3265), read through the stored GitHub index)
    embedding = 128256 * 4096
    q4_0 = math.ceil((c - embedding) * 18 / 32 + embedding * 210 / 256 + 65 * 4096 * 4)
    assert weights_bytes(m, "q4_0") == q4_0 and round(q4_0 / GiB, 2) == 4.33
    assert round(weights_bytes(registry.get_model("llama-3-70b"), "q4_0") / GiB, 2) == 37.22


def test_fp4_formats_and_nf4_overheads():
    m = registry.get_model("llama-3.1-8b")
    kept = 2 * 128256 * 4096 + 65 * 4096
    linear = 8_030_261_248 - kept
    for fmt, bits in (("mxfp4", 4.25), ("nvfp4", 4.5), ("nf4", 4.5), ("int8", 8)):
        assert weights_bytes(m, fmt) == math.ceil(linear * bits / 8 + kept * 2)


def test_vllm_engine_view_by_hand():
    """vLLM's worker (vllm/v1/worker/gpu_worker.py): utilization × total − weights − the activation peak of the
    profiling pass − non-torch memory (0.16 GiB, a start-up log) − CUDA graphs (0.52 GiB, vLLM ≥ 0.21); the
    caller's runtime overhead is not part of vLLM's rule."""
    m = registry.get_model("llama-3.1-8b")
    cap = 80 * GiB
    r = memory_report(m, cap, prompt_len=1000, output_len=1000, max_model_len=8192, overhead_bytes=GiB,
                      gpu_memory_utilization=0.9)
    budget = int(0.9 * cap) - 16_060_522_496 - 8192 * 4 * 14336 * 2 - 171_798_692 - 558_345_748
    assert r["engine_kv_rule"] == "vllm_profile"
    assert (r["engine_non_torch_bytes_per_gpu"], r["engine_cuda_graph_bytes_per_gpu"]) == (171_798_692, 558_345_748)
    blocks = budget // (16 * 131_072)
    assert r["engine_kv_budget_bytes_per_gpu"] == budget
    assert r["engine_num_kv_blocks"] == blocks
    assert r["engine_max_tokens_in_cache"] == blocks * 16
    assert r["max_concurrency"] == blocks // math.ceil(2000 / 16)
    assert r["engine_max_concurrency_at_max_model_len"] == pytest.approx(blocks * 16 / 8192)


def test_moe_memory_counts_every_expert():
    r = api.run("memory", {"model": "mixtral-8x7b", "gpu": "h100-sxm"})
    assert r["weights_bytes"] == 2 * 46_702_792_704  # all 8 experts must be resident
    assert r["params_active"] < r["params_total"] / 3
    assert r["fits"] is False and "weights alone" in r["fits_reason"]["en"]


def test_weights_bits_per_param_is_the_formats_bits():
    """memory reports the format's bits per quantized weight, scales included: INT4 g128 = 4 + (16 + 4)/128."""
    from calc import api

    assert api.run("memory", {"weights": "int4"})["weights_bits_per_param"] == 4 + 20 / 128
    assert api.run("memory", {"weights": "bf16"})["weights_bits_per_param"] == 16
    assert api.run("memory", {"weights": "nvfp4"})["weights_bits_per_param"] == 4.5


def test_budget_starts_from_visible_memory_and_the_engine_default():
    """vLLM multiplies gpu_memory_utilization (default 0.92 in its source, vllm/config/cache.py) by the total
    memory CUDA reports (79.18 GiB on an H100 SXM), not by the datasheet's 80 GiB."""
    m, g = registry.get_model("llama-3.1-8b"), registry.get_gpu("h100-sxm")
    r = memory_report(m, g.memory_bytes, visible_memory_bytes=g.visible_memory_bytes, overhead_bytes=GiB)
    assert r["gpu_memory_bytes"] == 80 * GiB and r["gpu_visible_memory_bytes"] == 85_017_493_504
    assert r["engine_gpu_memory_utilization"] == 0.92 and r["engine"] == "vllm"
    assert r["engine_kv_budget_bytes_per_gpu"] == (int(0.92 * 85_017_493_504) - 16_060_522_496 - 8192 * 4 * 14336 * 2
                                                   - 171_798_692 - 558_345_748)
    via_api = api.run("memory", {"model": "llama-3.1-8b", "gpu": "h100-sxm"})
    assert via_api["engine_kv_budget_bytes_per_gpu"] == r["engine_kv_budget_bytes_per_gpu"]


def test_vllm_v0_variant_and_sglang_rule_by_hand():
    """vLLM's 0.6.x V0 worker (calibration logs of 2024): 0.90 default, non-torch memory counted from the start
    (0.39 GiB), no CUDA-graph term. SGLang: mem_fraction_static × (visible − the distributed set-up, 2.01 GiB on
    more than one GPU) − weights, with no profiling pass."""
    m, g = registry.get_model("llama-3.1-8b"), registry.get_gpu("rtx-3090")
    assert g.visible_memory_bytes == round(23.70 * GiB)
    r = memory_report(m, g.memory_bytes, visible_memory_bytes=g.visible_memory_bytes, kv_variant="v0",
                      max_num_batched_tokens=20000)
    budget = int(0.9 * round(23.70 * GiB)) - 16_060_522_496 - 20000 * 4 * 14336 * 2 - 418_759_311
    assert r["engine_gpu_memory_utilization"] == 0.9 and r["engine_kv_budget_bytes_per_gpu"] == budget
    assert r["engine_max_tokens_in_cache"] == budget // (16 * 131_072) * 16
    with pytest.raises(KeyError, match="no KV budget variant"):
        memory_report(m, g.memory_bytes, kv_variant="v9")
    h = registry.get_gpu("h100-sxm")
    for tp, startup in ((1, 0), (2, 2_158_221_066)):
        s = memory_report(m, h.memory_bytes, visible_memory_bytes=h.visible_memory_bytes, engine="sglang", tp=tp,
                          gpu_memory_utilization=0.88)
        w = s["weights_bytes_per_gpu"]
        assert s["engine_kv_budget_bytes_per_gpu"] == int(0.88 * (85_017_493_504 - startup)) - w
        assert s["engine_profile_activation_bytes_per_gpu"] == 0 and s["engine_startup_bytes_per_gpu"] == startup
    # GPUs a fabric does not all link: SGLang's PCIe-only reading, 0.26 GiB (issue #16920), through the API as the
    # registry's interconnect says (PCIe only; an NVLink bridge links pairs; NVLink/NVSwitch and Infinity Fabric the node)
    l4 = registry.get_gpu("l4")
    assert (l4.linked_gpus, registry.get_gpu("rtx-3090").linked_gpus, registry.get_gpu("rtx-a6000").linked_gpus,
            registry.get_gpu("h100-nvl").linked_gpus, h.linked_gpus, registry.get_gpu("mi300x").linked_gpus) == \
        (0, 0, 2, 2, None, None)
    nvlink, pcie = 2_158_221_066, round(0.26 * GiB)
    for gpu, tp, startup in (("l4", 2, pcie), ("l4", 4, pcie), ("rtx-a6000", 2, nvlink), ("rtx-a6000", 4, pcie),
                             ("h100-nvl", 8, pcie), ("h100-sxm", 8, nvlink), ("l4", 1, 0)):
        r = api.run("memory", {"model": "llama-3.1-8b", "gpu": gpu, "engine": "sglang", "tp": tp,
                               "gpu-memory-utilization": 0.88})
        assert r["engine_startup_bytes_per_gpu"] == startup, (gpu, tp)
    r = api.run("memory", {"model": "llama-3.1-8b", "gpu": "l4", "engine": "sglang", "tp": 2,
                           "gpu-memory-utilization": 0.88})
    assert r["engine_kv_budget_bytes_per_gpu"] == int(0.88 * (l4.visible_memory_bytes - pcie)) - r["weights_bytes_per_gpu"]


def test_vllm_pads_mxfp4_experts_as_its_default_backend_on_each_gpu_does():
    """vLLM rounds the hidden size and each GPU's expert width up to its MoE backend's multiples and loads the padded
    experts (vLLM 0.32 fused_moe/oracle/mxfp4.py). gpt-oss-120b: hidden 2,880, expert width 2,880, 36 layers of 128
    experts. The backends and padded shapes below are written from reading vLLM's source, not from calc's table."""
    oss = registry.get_model("gpt-oss-120b")
    assert (oss.hidden_size, oss.moe_intermediate_size, oss.num_experts, oss.num_hidden_layers) == (2880, 2880, 128, 36)
    # the routed experts' MXFP4 bytes: 36 x 128 x 3 matrices of 2,880 x 2,880 at 4.25 bits
    experts = 36 * 128 * 3 * 2880 * 2880 * 4.25 / 8
    vllm = engines.profile("vllm")
    cases = {  # gpu, tp, ep -> backend, padded hidden, padded width per GPU
        ("a100-80gb", 1, 1): ("marlin", 3072, 2944), ("rtx-4090", 1, 1): ("marlin", 3072, 2944),
        ("rtx-5090", 1, 1): ("marlin", 3072, 2944), ("b200", 1, 1): ("flashinfer_trtllm", 3072, 2944),
        ("b200", 8, 1): ("flashinfer_trtllm", 3072, 384), ("b200", 8, 8): ("flashinfer_trtllm", 3072, 2944),
        ("h100-sxm", 1, 1): ("triton", 2880, 2880), ("h100-sxm", 2, 1): ("triton", 2880, 1472),
        ("h200", 4, 1): ("triton", 2880, 768), ("h100-sxm", 8, 8): ("triton", 2880, 2880),
        ("mi300x", 1, 1): ("triton_rocm", 3072, 3072),
        # vLLM refuses MXFP4 below compute capability 8.0: no backend, no padding (and a warning, below)
        ("t4", 1, 1): (None, 2880, 2880), ("v100-sxm2-32gb", 1, 1): (None, 2880, 2880),
    }
    for (gpu, tp, ep), (backend, hidden, width) in cases.items():
        g = registry.get_gpu(gpu)
        r = memory_report(oss, g.memory_bytes, "mxfp4-experts", "bf16", tp=tp, ep=ep, visible_memory_bytes=g.visible_memory_bytes,
                          engine="vllm", compute_capability=g.compute_capability)
        unpadded = 2880 // max(1, tp // ep)
        want = experts / max(tp, ep) * (hidden * width / (2880 * unpadded) - 1)
        assert r["engine_mxfp4_backend"] == backend, gpu
        assert abs(r["engine_weight_padding_bytes_per_gpu"] - want) <= 1, (gpu, tp, ep)
        # the padding is part of the weights, and so comes out of the KV budget
        bare = memory_report(oss, g.memory_bytes, "mxfp4-experts", "bf16", tp=tp, ep=ep,
                             visible_memory_bytes=g.visible_memory_bytes, engine="vllm")
        assert r["weights_bytes_per_gpu"] - bare["weights_bytes_per_gpu"] == r["engine_weight_padding_bytes_per_gpu"]
        assert r["weights_bytes"] - bare["weights_bytes"] == r["engine_weight_padding_bytes_per_gpu"] * max(tp, ep)
        if bare["engine_kv_budget_bytes_per_gpu"] > want:
            assert bare["engine_kv_budget_bytes_per_gpu"] - r["engine_kv_budget_bytes_per_gpu"] == \
                r["engine_weight_padding_bytes_per_gpu"], gpu
    # pipeline stages: each stage pads its own layers' experts; the total is the sum over the stages' GPUs
    r = memory_report(oss, 80 * GiB, "mxfp4-experts", tp=2, pp=2, engine="vllm", compute_capability="8.0")
    stage = experts / 2 / 2 * (3072 * 1536 / (2880 * 1440) - 1)
    assert [abs(row["weights_padding_bytes"] - stage) <= 1 for row in r["per_gpu_table"]] == [True, True]
    assert r["weights_bytes"] == mem.weights_bytes(oss, "mxfp4-experts") + sum(row["weights_padding_bytes"] for row in r["per_gpu_table"]) * 2
    # MXFP4 in every linear layer: the experts are padded the same (the dense layers are not)
    for fmt in ("mxfp4", "mxfp4-experts"):
        r = memory_report(oss, 80 * GiB, fmt, engine="vllm", compute_capability="8.0")
        assert abs(r["engine_weight_padding_bytes_per_gpu"] - experts * (3072 * 2944 / 2880**2 - 1)) <= 1, fmt
    # Marlin on one GPU: 3,072 x 2,944 / 2,880^2 = 1.0904, about 9 % more expert bytes (5.13 GiB)
    assert round(mem.mxfp4_expert_padding(oss, vllm.mxfp4_alignment("marlin")), 4) == 1.0904
    # what the API and the planner's simulator see: the GPU's compute capability from the registry
    r = api.run("memory", {"model": "gpt-oss-120b", "gpu": "a100-80gb", "weights": "mxfp4-experts"})
    assert r["engine_mxfp4_backend"] == "marlin" and round(r["engine_weight_padding_bytes_per_gpu"] / GiB, 2) == 5.13
    assert not any("refuses MXFP4" in w["en"] for w in r["warnings"])
    # below compute capability 8.0 vLLM refuses the checkpoint: the calculators say so, in both languages
    for gpu in ("t4", "v100-sxm2-32gb"):
        r = api.run("memory", {"model": "gpt-oss-20b", "gpu": gpu, "weights": "mxfp4-experts"})
        assert [w for w in r["warnings"] if "refuses MXFP4" in w["en"] and "MXFP4" in w["zh"]], gpu
    r = api.run("memory", {"model": "gpt-oss-20b", "gpu": "t4", "weights": "mxfp4-experts", "engine": "llama.cpp"})
    assert not any("refuses MXFP4" in w["en"] for w in r["warnings"])
    # no padding: the ideal engine, engines whose padding is not modelled, other MoE models (vLLM picks their MXFP4
    # backend another way), dense models, other formats
    for params in ({"engine": "ideal"}, {"engine": "sglang", "gpu-memory-utilization": 0.88}):
        r = api.run("memory", {"model": "gpt-oss-120b", "gpu": "a100-80gb", "weights": "mxfp4-experts", **params})
        assert r["engine_weight_padding_bytes_per_gpu"] == 0 and r["engine_mxfp4_backend"] is None
    for model, weights in (("qwen3-30b-a3b", "mxfp4-experts"), ("qwen3-30b-a3b", "bf16"), ("llama-3.1-8b", "mxfp4")):
        r = api.run("memory", {"model": model, "gpu": "a100-80gb", "weights": weights})
        assert r["engine_weight_padding_bytes_per_gpu"] == 0 and r["engine_mxfp4_backend"] is None, model
    # a backend named by a run is used as named; where the engine has no rounding for it, none is reported
    r = memory_report(oss, 80 * GiB, "mxfp4-experts", engine="vllm", mxfp4_backend="marlin", compute_capability="9.0")
    assert r["engine_mxfp4_backend"] == "marlin" and r["engine_weight_padding_bytes_per_gpu"] > 0
    r = memory_report(oss, 80 * GiB, "mxfp4-experts", engine="ideal", mxfp4_backend="marlin")
    assert r["engine_mxfp4_backend"] is None and r["engine_weight_padding_bytes_per_gpu"] == 0
    with pytest.raises(KeyError, match="no MXFP4 MoE backend 'cutlass'"):
        memory_report(oss, 80 * GiB, "mxfp4-experts", engine="vllm", mxfp4_backend="cutlass")


def test_gpt_oss_weights_match_what_vllm_logs_loaded():
    """Two vLLM logs read after the padding was modelled (data page): 0.19.0 on an A100 loaded gpt-oss-20b in 13.72 GiB
    (Marlin pads; unpadded it would be about 12.8 GiB); 0.25.1 on an H100 with the Triton backend loaded gpt-oss-120b
    in 61.29 GiB from a 60.77 GiB checkpoint (Triton does not pad at TP 1)."""
    a100, h100 = registry.get_gpu("a100-80gb"), registry.get_gpu("h100-sxm")
    small = memory_report(registry.get_model("gpt-oss-20b"), a100.memory_bytes, "mxfp4-experts", engine="vllm",
                          compute_capability=a100.compute_capability)
    assert abs(small["weights_bytes_per_gpu"] / GiB / 13.72 - 1) < 0.005
    assert round(weights_bytes(registry.get_model("gpt-oss-20b"), "mxfp4-experts") / GiB, 2) == 12.82
    big = memory_report(registry.get_model("gpt-oss-120b"), h100.memory_bytes, "mxfp4-experts", engine="vllm",
                        compute_capability=h100.compute_capability)
    assert round(big["weights_bytes_per_gpu"] / GiB, 2) == 60.77 and abs(big["weights_bytes_per_gpu"] / GiB / 61.29 - 1) < 0.01


def test_every_gpu_has_its_compute_capability_and_vllm_a_decision_for_it():
    """The registry's compute capabilities, written here from NVIDIA's CUDA GPU Compute Capability pages (and AMD's
    LLVM target for the MI300X); vLLM's MXFP4 table covers every one that vLLM accepts MXFP4 on (8.0 and up)."""
    want = {"h100-sxm": "9.0", "h100-pcie": "9.0", "h100-nvl": "9.0", "h200": "9.0", "gh200": "9.0", "gh200-144g": "9.0",
            "h20": "9.0", "a100-40gb": "8.0", "a100-80gb": "8.0", "a100-80gb-pcie": "8.0", "l40s": "8.9", "l20": "8.9", "l4": "8.9", "a10": "8.6",
            "rtx-4090": "8.9", "rtx-5090": "12.0", "b200": "10.0", "mi300x": "gfx942", "t4": "7.5", "v100-sxm2-32gb": "7.0",
            "a10g": "8.6", "rtx-3090": "8.6", "rtx-a6000": "8.6", "rtx-6000-ada": "8.9"}
    assert {k: registry.get_gpu(k).compute_capability for k in registry.list_gpus()} == want
    mx = engines.entry("vllm")["mxfp4_moe"]
    vllm = engines.profile("vllm")
    for cc in set(want.values()):
        assert (cc in mx["backend"]) != vllm.refuses_mxfp4(cc), cc
    assert set(mx["backend"].values()) == set(mx["alignment"])


def test_partial_quantization_keeps_listed_modules_in_16_bits():
    """Meta's Llama-3.1-405B FP8 checkpoint keeps attention and the first and last layers' MLPs in bf16
    (quantization_config.modules_to_not_convert); calc counts those at 2 bytes per weight."""
    from calc.model import from_hf_config

    cfg = registry.hf_config("llama-3.1-405b")
    n = cfg["num_hidden_layers"]
    cfg["quantization_config"] = {"quant_method": "fbgemm_fp8", "modules_to_not_convert":
                                  ["self_attn", *(f"model.layers.{i}.mlp" for i in (0, n - 1))]}
    m, plain = from_hf_config(cfg), registry.get_model("llama-3.1-405b")
    h, kv = 16384, 8 * 128
    attention = n * (2 * h * h + 2 * h * kv)
    mlps = 2 * 3 * h * 53248
    assert weights_bytes(m, "fp8") - weights_bytes(plain, "fp8") == attention + mlps  # 1 extra byte per weight
    assert weights_bytes(m, "bf16") == weights_bytes(plain, "bf16")  # nothing to keep in an unquantized model
    per_gpu = api.run("memory", {"config": cfg, "gpu": "h100-sxm", "tp": 8, "weights": "fp8"})["weights_bytes_per_gpu"]
    assert 56 * GiB < per_gpu < 58 * GiB  # vLLM reported 57.8 GiB loaded per GPU (issue 12); plain FP8: 47.7 GiB
    regex = dict(cfg["quantization_config"], modules_to_not_convert=None, ignore=["lm_head", "re:.*self_attn.*"])
    cfg["quantization_config"] = regex
    assert weights_bytes(from_hf_config(cfg), "fp8") - weights_bytes(plain, "fp8") == attention


def test_vllm_groups_layers_by_attention_window_and_a_window_caps_a_requests_blocks():
    """vLLM's hybrid KV cache manager (v1/core/kv_cache_utils.py, kv_cache_interface.py, read in 0.32): layers bucketed
    by window into groups of equal size drawing from one block pool; a sliding-window group holds at most
    cdiv(window - 1 + tokens in flight, block) + 1 blocks of a request. Expected values worked by hand."""
    def shape(windows):
        size, groups = mem.vllm_kv_groups(windows)
        return size, [(w, len(layers)) for w, layers in groups]
    # one window for all layers: one group of all layers
    assert shape([None] * 32) == (32, [(None, 32)])
    assert shape([4096] * 32) == (32, [(4096, 32)])
    # gpt-oss: 18 + 18 alternating (windowed first), the layers round-robin; Gemma-2-9B: 21 + 21
    oss, gemma = registry.get_model("gpt-oss-120b"), registry.get_model("gemma-2-9b")
    size, groups = mem.vllm_kv_groups(list(oss.layer_windows))
    assert size == 18 and groups == [(128, list(range(0, 36, 2))), (None, list(range(1, 36, 2)))]
    assert shape(list(gemma.layer_windows)) == (21, [(4096, 21), (None, 21)])
    # vLLM's docstring example: 10 full + 20 sliding -> three groups of 10 (round-robin); 12 sliding + 13 full -> 13
    size, groups = mem.vllm_kv_groups([None] * 10 + [512] * 20)
    assert size == 10 and groups == [(None, list(range(10))), (512, list(range(10, 30, 2))), (512, list(range(11, 30, 2)))]
    assert shape([512] * 12 + [None] * 13) == (13, [(512, 12), (None, 13)])
    # blocks of one request at 131,072 tokens, 16-token blocks, 2 x 8,192 tokens in flight: 8,192 full + 1,033 sliding
    assert mem.vllm_blocks_per_request([128, None], 131072, 16, 16384, bound=True) == 8192 + (127 + 16384 + 15) // 16 + 1
    assert mem.vllm_blocks_per_request([128, None], 131072, 16, 16384) == 8192 + 1033
    # a request shorter than the window's room holds its own blocks; vLLM's start-up bound keeps one more
    assert mem.vllm_blocks_per_request([128, None], 100, 16, 16384) == 7 + 7
    assert mem.vllm_blocks_per_request([128, None], 100, 16, 16384, bound=True) == 7 + 8
    # the engine view: gpt-oss-120b on one H100, 10.69 GiB of budget in blocks of 16 tokens x 18 layers x 2 KiB
    h100 = registry.get_gpu("h100-sxm")
    r = memory_report(oss, h100.memory_bytes, "mxfp4-experts", visible_memory_bytes=h100.visible_memory_bytes,
                      engine="vllm", compute_capability=h100.compute_capability)
    blocks = r["engine_kv_budget_bytes_per_gpu"] // (16 * 18 * 2 * 8 * 64 * 2)
    assert r["engine_num_kv_blocks"] == blocks and r["engine_kv_cache_groups"] == 2
    assert r["engine_kv_in_flight_tokens"] == 2 * 8192
    per = 8192 + 1033
    assert abs(r["engine_max_concurrency_at_max_model_len"] - blocks / per) < 1e-9
    assert r["engine_max_tokens_in_cache"] == int(blocks / per * 131072)
    # against counting every layer at full length (SGLang's view here, and vLLM's V0): half the bytes per block,
    # 9,225 blocks a request instead of 8,192: 1.78 times the requests
    flat = r["engine_kv_budget_bytes_per_gpu"] // (16 * 36 * 2048) / 8192
    assert round(r["engine_max_concurrency_at_max_model_len"], 2) == 2.11 and round(flat, 2) == 1.19
    assert abs(r["engine_max_concurrency_at_max_model_len"] / flat - 2 * 8192 / 9225) < 0.01
    # the request this report is for (1,280 tokens), decoding: 80 full-attention blocks and cdiv(127 + 2, 16) + 1 = 10
    # in the window group
    assert r["max_concurrency"] == blocks // (80 + 10)
    # pipeline stages: pp + 1 batches in flight; the groups are the whole model's, each stage holding half of each
    r2 = memory_report(oss, h100.memory_bytes, "mxfp4-experts", pp=2, visible_memory_bytes=h100.visible_memory_bytes,
                       engine="vllm", compute_capability=h100.compute_capability)
    assert r2["engine_kv_in_flight_tokens"] == 3 * 8192 and r2["engine_kv_cache_groups"] == 2
    assert r2["engine_num_kv_blocks"] == min(row["engine_num_kv_blocks"] for row in r2["per_gpu_table"])
    # here the sampler's warm-up stays under the forward pass, so every stage affords the same blocks of 9 layers
    assert r2["engine_sampler_warmup_bytes_per_gpu"] < r2["engine_profile_activation_bytes_per_gpu"]
    assert {row["engine_num_kv_blocks"] for row in r2["per_gpu_table"]} == {r2["engine_num_kv_blocks"]}
    block = 16 * 9 * 2048
    assert r2["engine_num_kv_blocks"] * block <= r2["engine_kv_budget_bytes_per_gpu"] < (r2["engine_num_kv_blocks"] + 1) * block
    # vLLM 0.10-0.20 (variant v1-pre0.21): one batch in flight, and the logged size is the blocks shared out over
    # the groups, in tokens
    old = memory_report(oss, h100.memory_bytes, "mxfp4-experts", visible_memory_bytes=h100.visible_memory_bytes,
                        engine="vllm", kv_variant="v1-pre0.21", compute_capability=h100.compute_capability)
    b_old = old["engine_num_kv_blocks"]
    assert old["engine_max_tokens_in_cache"] == b_old // 2 * 16
    assert abs(old["engine_max_concurrency_at_max_model_len"] - b_old / (8192 + (127 + 8192 + 15) // 16 + 1)) < 1e-9
    # V0 and SGLang: one group (SGLang's own window pool: test_sglang_gives_gpt_oss_window_layers_a_pool_of_their_own)
    for kw in ({"engine": "vllm", "kv_variant": "v0"}, {"engine": "sglang"}):
        v = memory_report(oss, h100.memory_bytes, "mxfp4-experts", visible_memory_bytes=h100.visible_memory_bytes, **kw)
        assert v["engine_kv_cache_groups"] == 1
        # vLLM's V0 counts blocks of 16, SGLang pages of one token (no compute capability given: the default)
        assert v["engine_block_size"] == {"vllm": 16, "sglang": 1}[kw["engine"]]
        assert v["engine_max_tokens_in_cache"] == v["engine_num_kv_blocks"] * v["engine_block_size"]
        assert v["engine_kv_in_flight_tokens"] == 0
    # a model of full attention only is as before: blocks x block size, nothing in flight to keep room for
    llama = memory_report(registry.get_model("llama-3.1-8b"), h100.memory_bytes, visible_memory_bytes=h100.visible_memory_bytes)
    assert llama["engine_max_tokens_in_cache"] == llama["engine_num_kv_blocks"] * 16
    assert llama["engine_kv_in_flight_tokens"] == 0
    # Gemma-2 at its 8,192-token maximum gains nothing: the window's room (4,095 + 16,384 tokens) exceeds the request,
    # so its sliding-window group counts 513 blocks against a full group's 512
    g = memory_report(gemma, h100.memory_bytes, visible_memory_bytes=h100.visible_memory_bytes)
    g_flat = g["engine_kv_budget_bytes_per_gpu"] // (16 * 42 * per_layer_bytes(gemma)) / 512
    assert g["engine_max_concurrency_at_max_model_len"] <= g_flat


def per_layer_bytes(m) -> int:
    return 2 * m.num_key_value_heads * m.head_dim * 2


def test_sglang_gives_gpt_oss_window_layers_a_pool_of_their_own():
    """SGLang's hybrid SWA pool (read in its wheels, 0.5.6-0.5.23): for gpt-oss the 18 sliding-window layers get a pool
    of 0.8 × the full pool's tokens, so a token of the full pool costs 18 + 0.8 × 18 layers' bytes, not 36; a request is
    admitted only where both pools have room. Off before 0.5.8, and in 0.5.8-0.5.9 on compute capability 10.x."""
    oss = registry.get_model("gpt-oss-120b")
    layer = 2 * 8 * 64 * 2  # K and V, 8 KV heads of 64, bf16: gpt-oss-120b's config.json

    def view(gpu, variant=None, prompt=8192, output=1024, model=oss, weights="mxfp4-experts"):
        g = registry.get_gpu(gpu)
        return memory_report(model, g.memory_bytes, weights, "bf16", 1, prompt, output, gpu_memory_utilization=0.92,
                             visible_memory_bytes=g.visible_memory_bytes, engine="sglang", kv_variant=variant,
                             compute_capability=g.compute_capability, linked_gpus=g.linked_gpus,
                             max_num_batched_tokens=mem.sglang_chunked_prefill_size(g))
    now, before = view("h100-sxm"), view("h100-sxm", "pre0.5.8")
    budget = now["engine_kv_budget_bytes_per_gpu"]
    assert budget == before["engine_kv_budget_bytes_per_gpu"]  # the same memory, cut differently
    # on an H100 SGLang's pages hold one token (fa3, page_size 1): its pool is counted in tokens
    assert now["engine_block_size"] == before["engine_block_size"] == 1
    assert now["engine_num_kv_blocks"] == int(budget // (layer * (18 + 0.8 * 18)))
    assert before["engine_num_kv_blocks"] == budget // (layer * 36)
    assert now["engine_max_tokens_in_cache"] == now["engine_num_kv_blocks"]  # what SGLang calls max_total_num_tokens
    assert 1.10 < now["engine_max_tokens_in_cache"] / before["engine_max_tokens_in_cache"] < 1.12  # 36 / 32.4 = 1.111
    swa = now["engine_swa_pool_tokens"]
    assert swa == int(now["engine_max_tokens_in_cache"] * 0.8) and before["engine_swa_pool_tokens"] == 0
    full = now["engine_num_kv_blocks"]

    def count(variant, prompt, output, gpu="h100-sxm"):
        r = view(gpu, variant, prompt, output)
        return r["max_concurrency"], r["engine_num_kv_blocks"], r["engine_swa_pool_tokens"]
    # 8,192 + 1,024 tokens (9,216 one-token pages each on an H100). From 0.5.18 a request keeps its prompt's last window (128), what it
    # decoded until evicted (at most 128 + 128 + a page of 1) and a page there: the full pool binds
    assert count(None, 8192, 1024)[0] == full // 9216 > before["max_concurrency"]
    # 0.5.10-0.5.15: the prompt's last radix leaf, the whole 8,192-token chunk on an H100, stays locked: the window pool
    # binds, below even every layer at full length (the data page's 18 and 19)
    assert count("0.5.10-0.5.15", 8192, 1024)[0] == swa // (8192 + 257 + 1) == 18 < before["max_concurrency"] == 19
    # 128 + 300 tokens: 128 + min(300, 257) + 1 = 386 window slots each, fewer than the full pool's 428 pages allow
    assert count(None, 128, 300)[0] == swa // 386 < full // 428
    # 90 + 10 tokens hold all of theirs, and a page
    assert count(None, 90, 10)[0] == swa // 101
    # a B200 from 0.5.10: trtllm_mha's 64-token pages, 5 for 200 + 100 tokens; 128 + 100 + 64 window slots
    b200, b_full, b_swa = count(None, 200, 100, "b200")
    assert view("b200")["engine_block_size"] == 64
    assert b200 == min(b_full // 5, b_swa // 292)
    # 0.5.10-0.5.15 keeps the radix-tree nodes locked from the prompt's last back to a window: a prompt of 9,000 tokens
    # went in as 8,192 + 808, so 808 stay (+ 100 decoded + a page); one of 8,292 went in as 8,192 + 100, and 100 is
    # short of the window, so both chunks stay
    assert count("0.5.10-0.5.15", 9000, 100) == (min(full // 9100, swa // (808 + 100 + 1)), full, swa)
    assert count("0.5.10-0.5.15", 8292, 100)[0] == swa // (8292 + 100 + 1) < full // 8392
    # the variants evict about every 128 tokens too: 128 + 300 tokens hold 128 + 257 + 1 there, not 128 + 300 + 1
    assert count("0.5.10-0.5.15", 128, 300)[0] == count("0.5.8-0.5.9", 128, 300)[0] == swa // 386
    # 0.5.8-0.5.9: on a B200 (compute capability 10.0) that backend kept every layer at full length; elsewhere as 0.5.10
    assert view("b200", "0.5.8-0.5.9")["engine_num_kv_blocks"] == view("b200", "pre0.5.8")["engine_num_kv_blocks"]
    assert view("b200", "0.5.8-0.5.9")["engine_num_kv_blocks"] < view("b200")["engine_num_kv_blocks"]
    assert count("0.5.8-0.5.9", 8192, 1024) == count("0.5.10-0.5.15", 8192, 1024)
    # not on SGLang's list: Gemma-2 (SGLang turns the pool off for it) and Mistral-7B-v0.1 stay at full length
    for name in ("gemma-2-9b", "mistral-7b"):
        m = registry.get_model(name)
        r = view("h100-sxm", model=m, weights="bf16")
        assert r["engine_swa_pool_tokens"] == 0
        assert r["engine_num_kv_blocks"] == r["engine_kv_budget_bytes_per_gpu"] // (per_layer_bytes(m) * m.num_hidden_layers)


def test_the_data_page_quotes_sglangs_window_pool_counts():
    """docs/*/calculators/data.md #sglang-swa: "only 18 fit, fewer than the 19 of every layer at full length" (gpt-oss-120b
    on one H100, 8,192 + 1,024 tokens, at the page's memory fraction of 0.92, variants 0.5.10-0.5.15 and pre0.5.8, which
    the calculators do not offer)."""
    from pathlib import Path

    h100 = registry.get_gpu("h100-sxm")
    counts = [memory_report(registry.get_model("gpt-oss-120b"), h100.memory_bytes, "mxfp4-experts", "bf16", 1, 8192, 1024,
                            visible_memory_bytes=h100.visible_memory_bytes, engine="sglang", kv_variant=variant,
                            compute_capability=h100.compute_capability, max_num_batched_tokens=8192,
                            gpu_memory_utilization=0.92)["max_concurrency"]
              for variant in ("0.5.10-0.5.15", "pre0.5.8")]
    assert counts == [18, 19]
    root = Path(__file__).resolve().parents[1] / "docs"
    en = " ".join((root / "en" / "calculators" / "data.md").read_text(encoding="utf-8").split())
    zh = (root / "zh" / "calculators" / "data.md").read_text(encoding="utf-8")
    assert "and only 18 fit, fewer than the 19 of every layer at full length" in en
    assert "只放得下 18 个，比每层都按全长计算时的 19 个还少" in zh


def test_the_simulator_holds_a_requests_blocks_as_vllm_frees_them():
    """The planner's simulator: a sequence of n tokens holds ceil(n / 16) blocks in each full-attention group and, in a
    sliding-window group, only the window and the tokens still in flight (vLLM frees the rest at every step); one
    group for models of full attention. A gpt-oss replica therefore runs more sequences at once than it would with
    every layer at full length."""
    from calc.simulate import Request, StepModel, simulate, step_cost  # noqa: PLC0415

    h100 = registry.get_gpu("h100-sxm")
    oss = StepModel(registry.get_model("gpt-oss-120b"), h100, weights="mxfp4-experts", cost=step_cost("vllm", "mxfp4-experts"))
    held, batches = oss.kv_blocks_held(8192)
    assert batches == 2  # vLLM 0.32's async scheduling: a sequence's previous step and this one in flight
    # decoding (one token a step, two steps in flight): cdiv(127 + 2, 16) + 1 = 10 windowed blocks; right after two
    # 8,192-token chunks: cdiv(127 + 16,384, 16) + 1 = 1,033; a sequence shorter than that holds its own blocks
    assert [held(n, 2) for n in (1, 16, 17, 100_000)] == [2, 2, 4, 6250 + 10]
    assert held(100_000, 16384) == 6250 + 1033
    flat, _ = StepModel(registry.get_model("llama-3.1-8b"), h100, cost=step_cost("vllm")).kv_blocks_held(8192)
    assert [flat(n) for n in (1, 16, 17, 100_000)] == [1, 1, 2, 6250]
    assert flat(100_000, 16384) == 6250
    # SGLang (and the ideal engine) count gpt-oss's layers at full length: one group
    # Gemma-2 (data page): a decoding 8,192-token request holds 512 + cdiv(4,095 + 2, 16) + 1 = 770 blocks, not 1,024
    gemma, _ = StepModel(registry.get_model("gemma-2-9b"), h100, cost=step_cost("vllm")).kv_blocks_held(8192)
    assert gemma(8192, 2) == 770
    ideal, _ = StepModel(registry.get_model("gpt-oss-120b"), h100, weights="mxfp4-experts").kv_blocks_held(8192)
    assert [ideal(n) for n in (1, 17, 100_000)] == [1, 2, 6250]
    # a burst of 2,560-token requests: the same bytes as blocks of all 36 layers at full length hold 60 sequences
    # (9,733 blocks / 160); vLLM's groups about 114 (19,467 / (160 + 10)): fewer preemptions, more requests a second
    class EveryLayerInFull(StepModel):
        def kv_blocks_held(self, max_num_batched_tokens=8192, block_size=16):
            return (lambda n, in_flight=1: -(-n // block_size)), 2

    whole = EveryLayerInFull(oss.m, h100, weights="mxfp4-experts", cost=oss.cost)
    reqs = [Request(i, 0.0, 2048, 512) for i in range(200)]
    blocks = oss.kv_blocks(max_num_batched_tokens=8192, max_num_seqs=1024)
    assert blocks == 19467
    hybrid = simulate(oss, reqs, max_num_seqs=1024, num_blocks=blocks)
    flat_run = simulate(whole, reqs, max_num_seqs=1024, num_blocks=blocks // 2)
    assert hybrid["preemptions"] < flat_run["preemptions"] and hybrid["requests_per_s"] > flat_run["requests_per_s"]


def test_the_planner_sizes_a_windowed_model_in_the_engines_blocks():
    """The planner's memory gate counts a request's blocks as the simulator does (vLLM's KV groups): Gemma-2-9B on an L4
    with 7,000-token requests is refused at TP 1 with a reason, not a crash inside the simulation (a regression a
    review found: the gate counted blocks of one group's layers as tokens of every layer)."""
    from calc.plan import plan  # noqa: PLC0415
    from calc.simulate import step_cost  # noqa: PLC0415

    out = plan(registry.get_model("gemma-2-9b"), registry.get_gpu("l4"), "bf16", "bf16", rate=0.5, prompt=6000, output=1000,
               ttft_p90_s=10.0, tpot_p90_s=0.5, usd_per_gpu_hour=None, cost=step_cost("vllm"), n_requests=20,
               max_replicas=2, curve_points=2)
    tp1 = [r for r in out["rejected"] if r["tp"] == 1]
    assert tp1 and tp1[0]["why"] == "memory" and "blocks" in tp1[0]["message"]["en"]


def test_vllms_sampler_warm_up_takes_the_larger_of_it_and_the_forward_pass():
    """vLLM's profiling run computes and samples the logits of min(max_num_seqs, max_num_batched_tokens) dummy requests
    after the forward pass: the KV budget loses the larger of the two peaks, on the last pipeline stage, unsplit by
    tensor parallelism, whose all-gather of the logits briefly holds more."""
    h100 = registry.get_gpu("h100-sxm")
    m = registry.get_model("llama-3-70b")  # L70: hidden 8192, vocabulary 128256
    held = 8192 * L70["h"] * 2  # the forward pass's output, held through the warm-up

    def view(**kw):
        return memory_report(m, h100.memory_bytes, "fp8", visible_memory_bytes=h100.visible_memory_bytes, engine="vllm", **kw)
    # vLLM 0.32 (V2 model runner): the bf16 logits only; at TP 8 the gather holds shard, buffer and copy, 2 + 2 + 2/8 B
    one = view(tp=1, max_num_seqs=1024)
    assert one["engine_sampler_path"] == "v2-logits" and one["engine_max_num_seqs"] == 1024
    assert one["engine_sampler_warmup_bytes_per_gpu"] == held + 1024 * L70["vocab"] * 2
    big = view(tp=8, max_num_seqs=1024)
    assert big["engine_sampler_warmup_bytes_per_gpu"] == held + 1024 * L70["vocab"] * 4.25
    # tensor parallelism splits the forward pass, not the logits
    assert one["engine_profile_activation_bytes_per_gpu"] == 8 * big["engine_profile_activation_bytes_per_gpu"]
    # the larger peak is taken off, not the sum: at TP 8 the warm-up's, at TP 1 (and at one sequence) the forward pass's
    assert big["engine_profile_peak_bytes_per_gpu"] == big["engine_sampler_warmup_bytes_per_gpu"]
    assert one["engine_profile_peak_bytes_per_gpu"] == one["engine_profile_activation_bytes_per_gpu"]
    small = view(tp=8, max_num_seqs=1)
    assert small["engine_profile_peak_bytes_per_gpu"] == small["engine_profile_activation_bytes_per_gpu"]
    taken = big["engine_sampler_warmup_bytes_per_gpu"] - big["engine_profile_activation_bytes_per_gpu"]
    assert small["engine_kv_budget_bytes_per_gpu"] - big["engine_kv_budget_bytes_per_gpu"] == taken
    # no more requests than tokens in the profiling pass
    capped = view(tp=8, max_num_seqs=4096, max_num_batched_tokens=2048)
    assert capped["engine_sampler_warmup_bytes_per_gpu"] == 2048 * L70["h"] * 2 + 2048 * L70["vocab"] * 4.25
    # the V1 runner: 14 B (FlashInfer or Triton; variant v1-0.21-0.25) and 38 B (PyTorch's sort; variant v1-pre0.21);
    # those exceed the gather, and a run may name its path
    for variant, path, per in (("v1-0.21-0.25", "sort-free", 14), ("v1-pre0.21", "torch-sort", 38)):
        r = view(tp=8, max_num_seqs=1024, kv_variant=variant)
        assert r["engine_sampler_path"] == path
        assert r["engine_sampler_warmup_bytes_per_gpu"] == held + 1024 * L70["vocab"] * per
    named = view(tp=8, max_num_seqs=1024, kv_variant="v1-pre0.21", sampler_path="v2-logits")
    assert named["engine_sampler_warmup_bytes_per_gpu"] == big["engine_sampler_warmup_bytes_per_gpu"]
    # not counted where calc does not model the engine's sampler: vLLM's V0 (its fitted constant holds it), SGLang
    for kw in (dict(kv_variant="v0"), dict(engine="sglang")):
        r = memory_report(m, h100.memory_bytes, "fp8", tp=8, max_num_seqs=1024, visible_memory_bytes=h100.visible_memory_bytes,
                          **{"engine": "vllm", **kw})
        assert r["engine_sampler_warmup_bytes_per_gpu"] == 0 and r["engine_sampler_path"] is None
    # pipeline stages: only the last samples
    pp = view(tp=4, pp=2, max_num_seqs=1024, kv_variant="v1-0.21-0.25")
    first, last = pp["per_gpu_table"][0], pp["per_gpu_table"][-1]
    alone = view(tp=4, pp=2, max_num_seqs=1, kv_variant="v1-0.21-0.25")["per_gpu_table"][0]["engine_num_kv_blocks"]
    assert last["engine_num_kv_blocks"] < first["engine_num_kv_blocks"] == alone
    # bad input: a clear message
    with pytest.raises(ValueError, match="unknown sampler path 'radix'; valid: v2-logits, v2-fp32, sort-free, torch-sort"):
        view(sampler_path="radix")
    with pytest.raises(ValueError, match="max_num_seqs must be ≥ 1"):
        view(max_num_seqs=0)


def test_the_memory_calculator_takes_max_num_seqs():
    """The VRAM calculator's "Max sequences" reaches the engine view (CLI/browser) and the planner, and is validated like
    every input. Llama-3-70B at TP 8, where the logits' warm-up outgrows the forward pass."""
    args = {"model": "llama-3-70b", "gpu": "h100-sxm", "weights": "fp8", "tp": 8}
    base = api.run("memory", {**args, "max-num-seqs": 256})
    more = api.run("memory", {**args, "max-num-seqs": 1024})
    assert base["engine_max_num_seqs"] == 256 and more["engine_max_num_seqs"] == 1024
    assert more["engine_kv_budget_bytes_per_gpu"] < base["engine_kv_budget_bytes_per_gpu"]
    # left empty, the token budget follows `vllm serve`'s default for the GPU (vLLM 0.32's get_batch_defaults): by the
    # memory CUDA reports, A100s aside; the sequence cap stays 256
    for gpu, expected in (("h100-sxm", 8192), ("h200", 8192), ("a100-80gb", 2048), ("l4", 2048), ("b200", 16384),
                          ("mi300x", 16384)):
        r = api.run("memory", {"model": "llama-3.1-8b", "gpu": gpu})
        assert (r["engine_max_num_batched_tokens"], r["engine_max_num_seqs"]) == (expected, 256), gpu
    # on an A100 the smaller token budget shrinks the profiling pass, so more is left for the KV cache than at 8192
    a100 = {"model": "llama-3.1-8b", "gpu": "a100-80gb"}
    assert api.run("memory", a100)["engine_kv_budget_bytes_per_gpu"] > \
        api.run("memory", {**a100, "max-num-batched-tokens": 8192})["engine_kv_budget_bytes_per_gpu"]
    with pytest.raises(api.InputError) as err:
        api.run("memory", {**args, "max-num-seqs": 0})
    assert "max-num-seqs" in err.value.errors
    # the planner's simulator sizes its KV cache with the same input
    from calc.simulate import StepModel, step_cost  # noqa: PLC0415
    sm = StepModel(registry.get_model("llama-3-70b"), registry.get_gpu("h100-sxm"), "fp8", tp=8, cost=step_cost("vllm"))
    assert sm.kv_blocks(max_num_seqs=1024) < sm.kv_blocks(max_num_seqs=256)


def test_the_sampler_path_is_shown_in_words():
    """The calculators name vLLM's sampler path in words, not by its registry id (v2-logits, sort-free, ...)."""
    from calc import engines, web  # noqa: PLC0415
    from calc.strings import VALUE_WORDS  # noqa: PLC0415

    paths = engines._data()["engines"]["vllm"]["kv_budget"]["sampler_bytes_per_logit"]
    assert set(paths) == {"v2-logits", "v2-fp32", "sort-free", "torch-sort"}
    for path in paths:
        for lang in ("zh", "en"):
            assert web.format_value("engine_sampler_path", path, lang)[0] == VALUE_WORDS[path][lang] != path
    shown = {r["field"]: r["display"] for r in web.view("memory", {"model": "llama-3.1-8b", "gpu": "h100-sxm"}, "en")["details"]}
    assert shown["engine_sampler_path"] == "V2 runner (logits only)"


def test_sglangs_default_memory_fraction_follows_its_heuristic():
    """SGLang's handle_gpu_memory_settings, by hand: it reserves (MiB) 512 + 1.5 x max(chunk, 2,048) + 2 x
    cuda_graph_max_bs + 1,024 x tp x pp / 8 + (from 0.5.10) 8 per prefill CUDA graph size up to the chunk, 1,536 with
    MLA, at least 10 GiB above 60 GiB, and keeps the rest as a share of the GPU's memory, rounded to 3 places."""
    h100, l4 = registry.get_gpu("h100-sxm"), registry.get_gpu("l4")
    mib = h100.visible_memory_bytes / 2**20
    # the prefill graph sizes: 8 of 4 to 32, 14 of 48 to 256, 8, 8, 12 of 1,280 to 4,096, then 8 more up to 8,192
    assert len(mem.sglang_prefill_graph_sizes(8192)) == 8 + 14 + 8 + 8 + 12 + 8 == 58
    assert mem.sglang_prefill_graph_sizes(4096)[-3:] == [3584, 3840, 4096] and len(mem.sglang_prefill_graph_sizes(2048)) == 42
    # one H100: chunk 8,192, decode graphs up to 256 below TP 4, 58 prefill graphs (464 MiB); 0.5.8-0.5.9 had none
    assert mem.sglang_mem_fraction_static(h100.visible_memory_bytes, 1, 1, 8192) == round(
        (mib - (512 + 8192 * 1.5 + 256 * 2 + 1024 / 8 + 58 * 8)) / mib, 3) == 0.829
    assert mem.sglang_mem_fraction_static(h100.visible_memory_bytes, 1, 1, 8192, rule="0.5.8") == round(
        (mib - (512 + 8192 * 1.5 + 256 * 2 + 1024 / 8)) / mib, 3) == 0.834
    # MLA: a flat 1,536 MiB for its prefill graphs; none with pipeline parallelism, on AMD, or (up to 0.5.16) with DP
    # attention
    assert mem.sglang_mem_fraction_static(h100.visible_memory_bytes, 8, 1, 8192, mla=True) == round(
        (mib - (512 + 8192 * 1.5 + 512 * 2 + 1024 + 1536)) / mib, 3)
    no_graphs = round((mib - (512 + 8192 * 1.5 + 256 * 2 + 2 * 1024 / 8)) / mib, 3)
    assert mem.sglang_mem_fraction_static(h100.visible_memory_bytes, 1, 2, 8192) == no_graphs
    assert mem.sglang_mem_fraction_static(h100.visible_memory_bytes, 1, 1, 8192, amd=True) == 0.834
    with_dp = round((mib - (512 + 8192 * 1.5 + 256 * 2 + 1024 / 8 + 256 * 2 * 3)) / mib, 3)
    assert mem.sglang_mem_fraction_static(h100.visible_memory_bytes, 1, 1, 8192, dp=2, rule="0.5.10") == with_dp
    assert mem.sglang_mem_fraction_static(h100.visible_memory_bytes, 1, 1, 8192, dp=2) == round(
        (mib - (512 + 8192 * 1.5 + 256 * 2 + 1024 / 8 + 256 * 2 * 3 + 58 * 8)) / mib, 3)
    with pytest.raises(ValueError, match="unknown SGLang fraction rule"):
        mem.sglang_mem_fraction_static(h100.visible_memory_bytes, 1, 1, 8192, rule="0.5.9")
    # TP 8: decode graphs up to 512 and 1,024 MiB for the parallel size
    assert mem.sglang_mem_fraction_static(h100.visible_memory_bytes, 8, 1, 8192) == round(
        (mib - (512 + 8192 * 1.5 + 512 * 2 + 1024 + 58 * 8)) / mib, 3)
    # an L4 (20 to 35 GiB): from 0.5.20 chunk 4,096 and decode graphs up to 48 (2,048 and 24 before), no 10 GiB floor
    small = l4.visible_memory_bytes / 2**20
    assert mem.sglang_chunked_prefill_size(l4) == 4096 and mem.sglang_chunked_prefill_size(l4, "0.5.10") == 2048
    assert mem.sglang_mem_fraction_static(l4.visible_memory_bytes, 1, 1, 4096) == round(
        (small - (512 + 4096 * 1.5 + 48 * 2 + 128 + 50 * 8)) / small, 3)
    assert mem.sglang_mem_fraction_static(l4.visible_memory_bytes, 1, 1, 2048, rule="0.5.10") == round(
        (small - (512 + 2048 * 1.5 + 24 * 2 + 128 + 42 * 8)) / small, 3)
    assert mem.sglang_mem_fraction_static(l4.visible_memory_bytes, 1, 1, 2048, rule="0.5.8") == round(
        (small - (512 + 2048 * 1.5 + 24 * 2 + 128)) / small, 3)
    # the engine view uses it where no fraction is given; vLLM keeps its own; a stated fraction wins
    m = registry.get_model("llama-3.1-8b")

    def view(engine, **kw):
        return memory_report(m, h100.memory_bytes, visible_memory_bytes=h100.visible_memory_bytes, engine=engine,
                             max_num_batched_tokens=8192, **kw)
    assert view("sglang")["engine_gpu_memory_utilization"] == 0.829
    assert view("sglang", kv_variant="0.5.8-0.5.9")["engine_gpu_memory_utilization"] == 0.834
    assert view("sglang", kv_variant="0.5.10-0.5.15")["engine_gpu_memory_utilization"] == 0.829
    # DeepSeek-V3 (MLA) at TP 8: its 1,536 MiB of prefill graphs
    ds = memory_report(registry.get_model("deepseek-v3"), h100.memory_bytes, "fp8", "bf16", tp=8,
                       visible_memory_bytes=h100.visible_memory_bytes, engine="sglang", max_num_batched_tokens=8192)
    assert ds["engine_gpu_memory_utilization"] == round((mib - (512 + 8192 * 1.5 + 512 * 2 + 1024 + 1536)) / mib, 3)
    assert view("vllm")["engine_gpu_memory_utilization"] == 0.92
    assert view("sglang", gpu_memory_utilization=0.9)["engine_gpu_memory_utilization"] == 0.9
    assert view("sglang")["engine_kv_budget_bytes_per_gpu"] < view("sglang", gpu_memory_utilization=0.92)["engine_kv_budget_bytes_per_gpu"]
    # the 10 GiB floor: a 2,048-token chunk on an H100 reserves only 512 + 3,072 + 512 + 128 + 336 MiB
    assert mem.sglang_mem_fraction_static(h100.visible_memory_bytes, 1, 1, 2048) == round((mib - 10 * 1024) / mib, 3)
    # over 160 GiB (a B200): graphs up to 512 at any TP; DP attention adds 3 x 512 per worker and 1.5 x more above 300
    b200 = registry.get_gpu("b200")
    big = b200.visible_memory_bytes / 2**20
    assert mem.sglang_mem_fraction_static(b200.visible_memory_bytes, 1, 1, 16384) == round(
        (big - (512 + 16384 * 1.5 + 512 * 2 + 128 + 74 * 8)) / big, 3)
    assert mem.sglang_mem_fraction_static(b200.visible_memory_bytes, 8, 1, 16384, dp=8) == round(
        (big - (512 + 16384 * 1.5 + 512 * 2 + 1024 + 512 * 8 * 3 + 512 * 8 * 1.5 + 74 * 8)) / big, 3)
    # chunked prefill off: the budget is a whole context, and SGLang reserves for its max_prefill_tokens, 16,384
    off = memory_report(m, h100.memory_bytes, visible_memory_bytes=h100.visible_memory_bytes, engine="sglang",
                        max_num_batched_tokens=131072)
    assert off["engine_gpu_memory_utilization"] == round((mib - (512 + 16384 * 1.5 + 256 * 2 + 128 + 74 * 8)) / mib, 3) > 0
    # AMD: aiter, SGLang's default backend there, takes 15 % off the fraction, given or default, beyond 8,192 tokens
    mi = registry.get_gpu("mi300x")

    def amd(**kw):
        return memory_report(m, mi.memory_bytes, visible_memory_bytes=mi.visible_memory_bytes, engine="sglang",
                             compute_capability=mi.compute_capability, max_num_batched_tokens=16384, **kw)
    default = mem.sglang_mem_fraction_static(mi.visible_memory_bytes, 1, 1, 16384, amd=True)  # no prefill graphs on AMD
    assert amd()["engine_gpu_memory_utilization"] == pytest.approx(default * 0.85)
    assert amd(gpu_memory_utilization=0.9)["engine_gpu_memory_utilization"] == pytest.approx(0.765)
    assert amd(max_model_len=8192)["engine_gpu_memory_utilization"] == default


def test_tensorrt_llms_pool_is_its_fraction_of_what_the_dry_run_leaves():
    """TensorRT-LLM 1.x (KvCacheCreator._cal_max_memory): free_gpu_memory_fraction (0.9) x (the device total - the
    peak of a dry run of max_num_tokens, 8,192, prompt tokens), the peak being the weights, the run's activations and
    what sits outside PyTorch (calc: the overhead input). The fraction applies to what is left, so a byte more of
    weights or overhead costs the KV cache 0.9 bytes, where vLLM's fraction-of-the-total rule loses the whole byte."""
    m, h100 = registry.get_model("llama-3.1-8b"), registry.get_gpu("h100-sxm")

    def view(engine, overhead):
        return memory_report(m, h100.memory_bytes, visible_memory_bytes=h100.visible_memory_bytes, engine=engine,
                             max_num_batched_tokens=8192, overhead_bytes=overhead)
    r = view("trt-llm", 2**30)
    assert r["engine_kv_rule"] == "trtllm_profile" and r["engine_gpu_memory_utilization"] == 0.9
    w, act = r["weights_bytes_per_gpu"], r["engine_profile_activation_bytes_per_gpu"]
    assert w == 16_060_522_496 and act > 0
    assert r["engine_kv_budget_bytes_per_gpu"] == int(0.9 * (h100.visible_memory_bytes - w - act - 2**30))
    more = view("trt-llm", 2 * 2**30)["engine_kv_budget_bytes_per_gpu"]
    assert r["engine_kv_budget_bytes_per_gpu"] - more == pytest.approx(0.9 * 2**30, abs=2)
    # the generic rule (llama.cpp's) takes the fraction of the total and loses the whole GiB
    gen = view("llama.cpp", 2**30)["engine_kv_budget_bytes_per_gpu"] - view("llama.cpp", 2 * 2**30)["engine_kv_budget_bytes_per_gpu"]
    assert gen == 2**30
    # the calculators' token budget for it is its max_num_tokens on every GPU (vLLM's default is 2,048 on an A100)
    from calc import api
    a100 = {"model": "llama-3.1-8b", "gpu": "a100-80gb"}
    assert api.run("memory", {**a100, "engine": "trt-llm"})["engine_max_num_batched_tokens"] == 8192
    assert api.run("memory", {**a100, "engine": "vllm"})["engine_max_num_batched_tokens"] == 2048


def test_tensorrt_llms_batch_limit_is_flagged():
    """trtllm-serve runs at most max_batch_size (2,048 by default) requests at once: a larger batch the KV pool holds
    is flagged with that flag; 2,048 is not."""
    from calc import api
    p = {"model": "llama-3.2-1b", "gpu": "h200", "engine": "trt-llm", "prompt-len": 64, "output-len": 64}
    assert api.run("memory", {**p, "batch": 1})["max_concurrency"] > 2049
    flagged = [w for w in api.run("perf", {**p, "batch": 2049})["warnings"] if "max_batch_size" in w["en"]]
    assert len(flagged) == 1 and "TensorRT-LLM runs at most 2,048 requests at once" in flagged[0]["en"]
    assert "--max_batch_size" in flagged[0]["zh"]
    assert not [w for w in api.run("perf", {**p, "batch": 2048})["warnings"] if "max_batch_size" in w["en"]]


def test_the_data_page_quotes_sglangs_older_default_fractions():
    """docs/*/calculators/data.md #sglang-fraction quotes two variants the calculators do not offer: Llama-3.1-8B's
    default on an RTX 4090 before 0.5.20 (0.5.10-0.5.15, with that release's 2,048-token chunk), 0.831, and on one
    H100 under 0.5.8-0.5.9, 0.834."""
    from pathlib import Path

    m = registry.get_model("llama-3.1-8b")

    def fraction(gpu_key, variant):
        gpu = registry.get_gpu(gpu_key)
        chunk = mem.sglang_chunked_prefill_size(gpu, "0.5.10")
        return memory_report(m, gpu.memory_bytes, visible_memory_bytes=gpu.visible_memory_bytes, engine="sglang",
                             kv_variant=variant, compute_capability=gpu.compute_capability,
                             max_num_batched_tokens=chunk)["engine_gpu_memory_utilization"]
    assert (fraction("rtx-4090", "0.5.10-0.5.15"), fraction("h100-sxm", "0.5.8-0.5.9")) == (0.831, 0.834)
    root = Path(__file__).resolve().parents[1] / "docs"
    en = " ".join((root / "en" / "calculators" / "data.md").read_text(encoding="utf-8").split())
    zh = (root / "zh" / "calculators" / "data.md").read_text(encoding="utf-8")
    assert "which lowers their default from 0.831 to" in en and "(one H100: 0.834)" in en
    assert "RTX 4090 上的默认值因此从 0.831 降到" in zh and "（一块 H100 上是 0.834）" in zh


def test_sglangs_default_fraction_matches_the_releases_own_arithmetic():
    """Independent figures: SGLang's heuristic worked by hand from its wheels (0.5.8 to 0.5.23) at the totals SGLang
    reads from nvidia-smi, in MiB (an H100 SXM 81,559, an H200 143,771, a B200 183,359, an RTX 4090 24,564, an A10
    23,028): the releases' own defaults, which calc must reproduce given the same total."""
    mib = 2**20
    h100, h200, b200, rtx4090, a10 = 81_559 * mib, 143_771 * mib, 183_359 * mib, 24_564 * mib, 23_028 * mib
    f = mem.sglang_mem_fraction_static
    # 0.5.8 (and 0.5.9): no prefill CUDA graphs
    assert [f(h100, 1, 1, 8192, rule="0.5.8"), f(h100, 8, 1, 8192, rule="0.5.8"), f(h200, 1, 1, 8192, rule="0.5.8"),
            f(b200, 8, 1, 16384, rule="0.5.8"), f(rtx4090, 1, 1, 2048, rule="0.5.8"),
            f(a10, 1, 1, 2048, rule="0.5.8")] == [0.835, 0.818, 0.907, 0.852, 0.847, 0.837]
    # 0.5.20 to 0.5.23: dense, MLA (DeepSeek-V3 at TP 8 on a B200: reserved, then turned off there), small GPUs
    assert [f(h100, 1, 1, 8192), f(h100, 8, 1, 8192), f(h100, 1, 1, 8192, mla=True), f(h100, 8, 1, 8192, mla=True),
            f(h200, 1, 1, 8192), f(h200, 1, 1, 8192, mla=True), f(b200, 8, 1, 16384), f(b200, 8, 1, 16384, mla=True),
            f(rtx4090, 1, 1, 4096), f(a10, 1, 1, 4096)] == [0.830, 0.812, 0.816, 0.799, 0.903, 0.896, 0.849, 0.844,
                                                             0.704, 0.684]
    # 0.5.10 to 0.5.19 on the small GPUs (their older tier), and pipeline parallelism from 0.5.19 (no prefill graphs)
    assert [f(rtx4090, 1, 1, 2048, rule="0.5.10"), f(a10, 1, 1, 2048, rule="0.5.10")] == [0.833, 0.822]
    assert [f(h100, 1, 2, 8192), f(h100, 4, 2, 8192)] == [0.834, 0.818]


def test_tensorrt_llm_refuses_prompts_over_its_max_num_tokens():
    """trtllm-serve, chunked prefill off by default, refuses a prompt longer than max_num_tokens (8,192): the
    calculators say so for it and for no other engine; a prompt of 8,192 tokens is accepted."""
    from calc import api
    p = {"model": "llama-3.1-8b", "gpu": "h100-sxm", "output-len": 256, "batch": 1}

    def refusals(engine, prompt):
        return [w for w in api.run("perf", {**p, "engine": engine, "prompt-len": prompt})["warnings"]
                if "max_num_tokens" in w["en"]]
    (w,) = refusals("trt-llm", 8193)
    assert "refuses one longer than its max_num_tokens (8,192)" in w["en"] and "--enable_chunked_prefill" in w["en"]
    assert "会拒绝长于 max_num_tokens（8,192）的提示" in w["zh"] and "--enable_chunked_prefill" in w["zh"]
    assert refusals("trt-llm", 8192) == [] and refusals("vllm", 8193) == [] and refusals("sglang", 8193) == []
    # its prompt steps hold up to 8,192 tokens; the v0.6 tables' variant prefills the whole batch in one step
    r = api.run("perf", {**p, "engine": "trt-llm", "prompt-len": 1024, "batch": 64})
    assert r["prefill_chunks"] == 8
    from calc import engines, perf
    assert engines.profile("trt-llm").prefill_chunk_tokens == 8192 and engines.profile("trt-llm@v0.6").prefill_chunk_tokens is None
    m, h100 = registry.get_model("llama-3.1-8b"), registry.get_gpu("h100-sxm")
    assert perf.perf_report(m, h100, "bf16", "bf16", 64, 1024, 256, 1, curve_batches=(),
                            engine="trt-llm@v0.6")["prefill_chunks"] == 1


def test_no_sglang_kv_point_leans_on_a_variants_default_fraction():
    """memory_report computes SGLang's default fraction from the token budget it is given, and the calibration passes
    its points' budget (or vLLM's 8,192), not an older release's chunk: so every SGLang KV point states its fraction."""
    from calc import calibration
    sglang_kv = [p for p in calibration.points() if p["engine"] == "sglang" and p["kind"] == "kv_tokens"]
    assert sglang_kv and all(p.get("gpu_memory_utilization") for p in sglang_kv)


def test_tensorrt_llms_token_budget_is_the_readers_and_stays_without_chunked_prefill():
    """The refusal follows the reader's max_num_tokens where given; the planner with chunked prefill on simulates
    --enable_chunked_prefill (no refusal) and, with it off, keeps TensorRT-LLM's 8,192 (vLLM raises its budget to the
    model's context) and asks for room for prompt + output, in TensorRT-LLM's words."""
    from calc import api
    p = {"model": "llama-3.1-8b", "gpu": "h100-sxm", "engine": "trt-llm", "prompt-len": 10_000, "output-len": 256}
    refusing = [w for w in api.run("memory", p)["warnings"] if "max_num_tokens" in w["en"]]
    assert len(refusing) == 1 and "(8,192)" in refusing[0]["en"]
    assert not [w for w in api.run("memory", {**p, "max-num-batched-tokens": 16384})["warnings"] if "max_num_tokens" in w["en"]]
    plan = {**p, "prompt-len": 1000, "rate": 1, "requests": 40}
    assert api.run("plan", {**plan, "chunked-prefill": "off"})["engine_max_num_batched_tokens"] == 8192
    assert api.run("plan", {**plan, "engine": "vllm", "chunked-prefill": "off"})["engine_max_num_batched_tokens"] == 131072
    with pytest.raises(api.InputError) as e:
        api.run("plan", {**plan, "prompt-len": 8100, "chunked-prefill": "off"})
    assert "TensorRT-LLM refuses prompts longer than max batched tokens" in str(e.value.errors["max-num-batched-tokens"])
    on = api.run("plan", {**p, "rate": 1, "requests": 40})
    assert not [w for w in on["warnings"] if "max_num_tokens" in w["en"]]


def test_each_engine_counts_kv_in_its_default_attention_backends_blocks():
    """The tokens per KV block (page) each engine's default attention backend uses, read in the engines' source on
    2026-12-02 (engines.json ``_block_tokens_about``): vLLM 0.32 16, 32 for MLA models on compute capability 10.x
    (FLASHINFER_MLA's kernel sizes [32, 64]) and 64 for MLA with an FP8 KV cache on Hopper (FLASHMLA, since
    FLASH_ATTN_MLA takes 16-bit KV only); SGLang 0.5.23 pages of 1, 64 on 10.x (trtllm_mha / trtllm_mla); TensorRT-LLM
    32, 64 for DeepSeek-V3-style MLA on Hopper (FlashMLA). A request of n tokens holds ceil(n / block). The cases below
    run an FP8 KV cache."""
    expected = {  # (engine, model, gpu) -> block
        ("vllm", "llama-3.1-8b", "h100-sxm"): 16, ("vllm", "llama-3.1-8b", "b200"): 16,
        ("vllm", "llama-3.1-8b", "mi300x"): 16, ("vllm", "deepseek-v3", "h200"): 64, ("vllm", "deepseek-v3", "b200"): 32,
        ("vllm", "deepseek-v3", "a100-80gb"): 16,
        ("sglang", "llama-3.1-8b", "h100-sxm"): 1, ("sglang", "llama-3.1-8b", "a100-80gb"): 1,
        ("sglang", "llama-3.1-8b", "b200"): 64, ("sglang", "deepseek-v3", "h200"): 1, ("sglang", "deepseek-v3", "b200"): 64,
        ("sglang", "llama-3.1-8b", "mi300x"): 1,
        ("trt-llm", "llama-3.1-8b", "h100-sxm"): 32, ("trt-llm", "llama-3.1-8b", "b200"): 32,
        ("trt-llm", "deepseek-v3", "h200"): 64, ("trt-llm", "deepseek-v3", "b200"): 32,
        ("trt-llm", "llama-3.1-8b", "l40s"): 32,
    }
    for (engine, model, gpu), block in expected.items():
        m, g = registry.get_model(model), registry.get_gpu(gpu)
        r = memory_report(m, g.memory_bytes, "fp8", "fp8", 1, 100, 100, tp=8 if model == "deepseek-v3" else 1,
                          visible_memory_bytes=g.visible_memory_bytes, engine=engine,
                          compute_capability=g.compute_capability, linked_gpus=g.linked_gpus)
        assert r["engine_block_size"] == block, (engine, model, gpu)
        if r["engine_num_kv_blocks"]:  # 200 tokens: ceil(200 / block) blocks each, one group of full attention
            assert r["max_concurrency"] == r["engine_num_kv_blocks"] // -(-200 // block), (engine, model, gpu)
    # with a 16-bit KV cache vLLM's Hopper MLA backend (FLASH_ATTN_MLA) keeps 16
    h200, dsv3 = registry.get_gpu("h200"), registry.get_model("deepseek-v3")
    r = memory_report(dsv3, h200.memory_bytes, "fp8", "bf16", tp=8, visible_memory_bytes=h200.visible_memory_bytes,
                      engine="vllm", compute_capability=h200.compute_capability)
    assert r["engine_block_size"] == 16
    # an int8 KV cache is not FP8: no vLLM MLA backend takes it, so the FlashMLA rule does not apply
    r = memory_report(dsv3, h200.memory_bytes, "fp8", "int8", tp=8, visible_memory_bytes=h200.visible_memory_bytes,
                      engine="vllm", compute_capability=h200.compute_capability)
    assert r["engine_block_size"] == 16
    # a block size given is used as given, whatever the engine
    h100, llama = registry.get_gpu("h100-sxm"), registry.get_model("llama-3.1-8b")
    kw = {"visible_memory_bytes": h100.visible_memory_bytes, "engine": "sglang", "compute_capability": "9.0",
          "prompt_len": 100, "output_len": 100}
    paged = memory_report(llama, h100.memory_bytes, **kw)
    blocked = memory_report(llama, h100.memory_bytes, block_size=16, **kw)
    assert blocked["engine_block_size"] == 16 and blocked["engine_num_kv_blocks"] == paged["engine_num_kv_blocks"] // 16
    # unless the engine's default backend on that GPU refuses it: SGLang 0.5.23 on a B200 (trtllm_mha 16/32/64/128,
    # trtllm_mla 32/64; overrides.py) turns any other page size into 64
    b200 = registry.get_gpu("b200")
    kw = {"visible_memory_bytes": b200.visible_memory_bytes, "engine": "sglang", "compute_capability": "10.0"}
    for model, tp, given, used in (("llama-3.1-8b", 1, 1, 64), ("llama-3.1-8b", 1, 16, 16), ("llama-3.1-8b", 1, 128, 128),
                                   ("deepseek-v3", 8, 16, 64), ("deepseek-v3", 8, 32, 32)):
        r = memory_report(registry.get_model(model), b200.memory_bytes, "fp8", tp=tp, block_size=given, **kw)
        assert r["engine_block_size"] == used, (model, given)
    # 200 tokens in pages of 1 waste nothing; in blocks of 16 each request holds 208
    assert paged["max_concurrency"] == paged["engine_num_kv_blocks"] // 200 > blocked["max_concurrency"]
    with pytest.raises(ValueError, match="block_size"):
        memory_report(llama, h100.memory_bytes, block_size=0, **kw)
