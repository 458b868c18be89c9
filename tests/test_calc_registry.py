"""Every registry entry carries a source and a date; dense and sparse figures are never mixed."""

import re

import pytest

from calc import registry

DATE = re.compile(r"^\d{4}-\d{2}(-\d{2})?$")
REQUIRED_GPUS = {"h100-sxm", "h100-pcie", "h200", "h20", "a100-40gb", "a100-80gb", "l40s", "l4", "a10",
                 "rtx-4090", "rtx-5090", "b200", "mi300x"}
REQUIRED_MODELS = {"llama-3.2-1b", "llama-3.1-8b", "llama-3.1-70b", "llama-3.1-405b", "qwen2.5-7b", "qwen2.5-72b",
                   "qwen3-8b", "qwen3-32b", "qwen3-235b-a22b", "deepseek-v3", "mixtral-8x7b", "mistral-7b",
                   "gemma-2-9b"}


def test_required_entries_present():
    assert REQUIRED_GPUS <= set(registry.list_gpus())
    assert REQUIRED_MODELS <= set(registry.list_models())
    assert all(k == k.lower() for k in registry.list_models() + registry.list_gpus())


@pytest.mark.parametrize("key", registry.list_gpus())
def test_gpu_entry(key):
    g = registry.get_gpu(key)
    assert g.source.startswith("https://") and DATE.match(g.as_of)
    # the datasheet capacity, read as GiB (DRAM convention): "80 GB HBM3" -> 80 × 2^30 bytes
    assert g.memory_bytes == int(float(g.memory_datasheet.split()[0]) * 2**30)
    # Volta and Turing (V100, T4) have FP16 but no BF16 tensor cores
    assert g.memory_bandwidth_bytes_per_s > 1e11 and (g.bf16_dense_flops or g.fp16_dense_flops) > 1e13
    for dense, sparse in (("bf16_dense_flops", "bf16_sparse_flops"), ("fp8_dense_flops", "fp8_sparse_flops"),
                          ("int8_dense_ops", "int8_sparse_ops"), ("fp4_dense_flops", "fp4_sparse_flops")):
        d, s = getattr(g, dense), getattr(g, sparse)
        if d is not None and s is not None:
            # 2:4 sparsity doubles the peak (the L40S datasheet's 362.05 | 733 TFLOPS pair is off by 1.2 %)
            assert s == pytest.approx(2 * d, rel=0.02), (dense, sparse)
    if g.usd_per_hour_low is not None:
        assert 0 < g.usd_per_hour_low <= g.usd_per_hour_high
        assert g.price_source.startswith("https://") and DATE.match(g.price_as_of)
    assert g.form_factor and (g.tdp_watts > 0 if g.tdp_watts is not None else "tdp_watts" in g.unverified)
    if g.visible_memory_bytes is not None:  # what the driver shows: a little less than the datasheet capacity
        assert 0.9 * g.memory_bytes < g.visible_memory_bytes <= g.memory_bytes and g.visible_memory_source
    if g.matmul_measured_flops is not None:  # a measured matmul has its source, and is a share of a 16-bit peak
        assert g.matmul_measured_source.startswith("https://github.com/") and g.matmul_measured_note
        assert 0.3 < g.matmul_share < 1.3


def test_datasheet_values_spot_checks():
    h100 = registry.get_gpu("h100-sxm")
    assert (h100.memory_bandwidth_bytes_per_s, h100.bf16_sparse_flops, h100.fp8_sparse_flops, h100.tdp_watts) == \
        (3.35e12, 1979e12, 3958e12, 700)
    assert registry.get_gpu("h200").memory_bandwidth_bytes_per_s == 4.8e12
    assert registry.get_gpu("a100-80gb").fp8_dense_flops is None  # Ampere has no FP8
    assert registry.get_gpu("mi300x").bf16_dense_flops == 1307.4e12
    # GH200 (96 GB HBM3): NVIDIA's datasheet prints BF16 1,979* | 990 and FP8 3,958* | 1,979 (* = with sparsity)
    gh200 = registry.get_gpu("gh200")
    assert (gh200.memory_bandwidth_bytes_per_s, gh200.bf16_sparse_flops, gh200.fp8_dense_flops) == (4.0e12, 1979e12, 1979e12)
    assert gh200.memory_bytes == 96 * 2**30 and gh200.visible_memory_bytes == round(94.88 * 2**30)  # CUDA's total
    # RTX 6000 Ada: the datasheet's only tensor figure, 1457.0 TFLOPS, is FP8 with sparsity
    assert registry.get_gpu("rtx-6000-ada").fp8_sparse_flops == 2 * registry.get_gpu("rtx-6000-ada").fp8_dense_flops


@pytest.mark.parametrize("key", registry.list_models())
def test_model_entry(key):
    e = registry.model_entry(key)
    assert e["preset"] == key
    assert e["source"].startswith("https://huggingface.co/") and e["source"].endswith("/config.json")
    assert DATE.match(e["as_of"])
    assert e["published_params"]["total"] > 1e9 and e["published_params"]["url"].startswith("https://")
    assert e["config"]["model_type"]


@pytest.mark.parametrize("key", registry.list_prices())
def test_price_entry(key):
    p = registry.get_price(key)
    assert p["source"].startswith("https://") and DATE.match(p["as_of"])
    assert 0 < p["usd_per_million_input_tokens"] <= p["usd_per_million_output_tokens"]


def test_unknown_keys_name_valid_ones():
    with pytest.raises(KeyError, match="h100-sxm"):
        registry.get_gpu("h1000")
    with pytest.raises(KeyError, match="llama-3.1-8b"):
        registry.get_model("llama-9")


def test_the_h200s_visible_memory_is_this_projects_lab_reading():
    """Chapter 4 says the registry takes the H200 lab's CUDA reading as the H200's visible memory."""
    import json  # noqa: PLC0415
    from pathlib import Path  # noqa: PLC0415

    root = Path(__file__).resolve().parents[1] / "docs" / "assets" / "labs"
    for f in ("ch04-gpu-basics/data/ch04-h200.json", "ch03-prefill-decode/data/ch03-h200.json"):
        device = json.loads((root / f).read_text(encoding="utf-8"))["provenance"]["device"]
        assert device["name"] == "NVIDIA H200"
        assert registry.get_gpu("h200").visible_memory_bytes == device["memory_bytes"], f


def test_the_matmul_factor_reads_a_gpus_measured_share_against_the_h100s(monkeypatch):
    """GPU.matmul_factor: the measured large 16-bit matmul over the datasheet dense peak, relative to the H100 SXM's
    (BF16; FP16 where the card has no BF16 tensor cores); 1 without a measurement or within the dead band."""
    h100, g4090, t4 = registry.get_gpu("h100-sxm"), registry.get_gpu("rtx-4090"), registry.get_gpu("t4")
    assert registry.MATMUL_REFERENCE_GPU == "h100-sxm" and h100.matmul_factor == 1.0
    assert h100.matmul_share == pytest.approx(790.585 / 989.5)  # the median of two rows
    assert g4090.matmul_factor == pytest.approx((165.26 / 165.2) / (790.585 / 989.5))  # the median of six cards
    assert t4.bf16_dense_flops is None and t4.matmul_share == pytest.approx(41.93 / 65)  # FP16 on Turing
    assert registry.get_gpu("a10").matmul_measured_flops is None and registry.get_gpu("a10").matmul_factor == 1.0
    # inside the dead band: the A100s (85 % and 79 % against 80 %) and the B200 (75 %) count as the H100
    for key in ("a100-80gb", "a100-40gb", "b200", "h200", "l40s", "rtx-a6000"):
        g = registry.get_gpu(key)
        assert abs(g.matmul_share / h100.matmul_share - 1) <= registry.MATMUL_FACTOR_DEADBAND and g.matmul_factor == 1.0
    # just beyond the band the factor is the ratio itself, not the part beyond the band
    edge = registry.GPU("edge", {"bf16_dense_flops": 100e12, "matmul_measured_flops": 100e12 * h100.matmul_share * 0.89})
    assert edge.matmul_factor == pytest.approx(0.89)
    monkeypatch.setattr(registry, "MATMUL_FACTOR_DEADBAND", 0.12)
    assert edge.matmul_factor == 1.0
    # every measured figure, as its source gives it (crowd table rows; medians of several cards; MAMF for MI300X)
    assert {k: registry.get_gpu(k).matmul_measured_flops / 1e12 for k in registry.list_gpus()
            if registry.get_gpu(k).matmul_measured_flops} == pytest.approx({
                "h100-sxm": 790.585, "h200": 790.29, "h100-pcie": 495.93, "h20": 142.055, "a100-40gb": 246.33,
                "a100-80gb": 264.53, "l40s": 269.15, "l20": 114.14, "l4": 70.89, "rtx-a6000": 123.34, "rtx-4090": 165.26,
                "rtx-5090": 238.04, "b200": 1696.03, "mi300x": 668.4, "t4": 41.93, "rtx-3090": 76.58})
    # the factors calc applies today (the data page's list)
    assert {k: round(registry.get_gpu(k).matmul_factor, 2) for k in registry.list_gpus()
            if registry.get_gpu(k).matmul_factor != 1} == {"h20": 1.2, "rtx-4090": 1.25, "rtx-5090": 1.42, "mi300x": 0.64,
                                                             "t4": 0.81, "rtx-3090": 1.35, "l4": 0.73, "l20": 1.2,
                                                             "h100-pcie": 0.82}


def test_a_pcie_card_is_not_priced_above_its_sxm_sibling():
    """The A100 80GB PCIe is the SXM4 80GB's GPU at less bandwidth and power: its default price (the midpoint of its
    range) must not exceed the faster card's. RunPod, the one provider whose list prices we read for both, charged
    $1.19 and $1.39 an hour (gpus.json price_note); the PCIe and SXM entries carry the same dated index range."""
    pcie, sxm = registry.get_gpu("a100-80gb-pcie"), registry.get_gpu("a100-80gb")
    assert pcie.usd_per_hour <= sxm.usd_per_hour
    assert pcie.memory_bandwidth_bytes_per_s < sxm.memory_bandwidth_bytes_per_s and pcie.tdp_watts < sxm.tdp_watts
    assert "$1.19" in pcie.price_note and "$1.39" in pcie.price_note
