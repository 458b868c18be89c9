"""Chapter 4: the numbers the pages type by hand, or write as literals into a placeholder's parameters, that are
arithmetic on calc's registry or outputs are what that arithmetic gives today, so a change to the registry or to calc
fails a test instead of leaving the text stale. Each test recomputes its figure from calc and looks for it in both
languages' pages.

- The CPU and PCIe decode floors (Section 4.1.2) pass `mem-efficiency` as the cited bandwidth (460.8 GB/s, 64 GB/s)
  over the registry's H100 SXM bandwidth.
- vLLM's budget counted on the datasheet's 80 GiB: "0.92 × (80 − 79.18) ≈ 0.75 GiB", and `gpu-memory-utilization`
  0.9295 (0.92 × 80 / 79.18) in the placeholders, the "Try it" box and exercise 1, are calc's default memory fraction,
  the registry's memory and the memory CUDA reports.
- Exercise 6: batch 26 is the largest one-pass prefill of 20480-token prompts that calc fits on an H200; 27 does not.
- Table 4-6's Q4_K_M bits: 4.5 for Q4_K (a placeholder) and the typed 6.56 for Q6_K are llama.cpp's block sizes, the
  constants calc computes the bytes with.
- One placeholder gives the PCIe Gen4 bandwidth of both the L40S and the RTX 4090, so the registry must agree on it.

The "63 (64 miss by 32 MB)" of Table 4-15's text is pinned in tests/test_calc_api.py.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from calc import api, registry  # noqa: E402
from calc.memory import _Q4_K_BITS, _Q6_K_BITS  # noqa: E402

PAGES = {lang: ROOT / "docs" / lang / "ch04" / "index.md" for lang in ("zh", "en")}
GIB = 2**30


@pytest.fixture(scope="module")
def pages() -> dict[str, str]:
    """Each page with its line breaks folded to spaces (the English text is hard-wrapped)."""
    return {lang: " ".join(path.read_text(encoding="utf-8").split()) for lang, path in PAGES.items()}


def h100(field: str) -> float:
    return registry.lookup(f"gpu.h100-sxm.{field}")


def test_cpu_and_pcie_floors_use_the_registrys_bandwidth(pages):
    bandwidth = h100("memory_bandwidth_bytes_per_s")
    cpu = 12 * 4800e6 * 8  # 12 DDR5-4800 channels of 8 bytes [^genoa]
    pcie = 64e9  # PCIe Gen5 x16, each direction [^h100wp]
    efficiencies = {"1", f"{cpu / bandwidth:.10f}", f"{pcie / bandwidth:.10f}"}
    for lang, text in pages.items():
        assert f"12 × 4800 MT/s × 8 B = {cpu / 1e9:.1f} GB/s" in text, lang
        found = set(re.findall(r"mem-efficiency=([\d.]+)", text))
        assert found == efficiencies, f"{lang}: mem-efficiency {sorted(found)}, calc gives {sorted(efficiencies)}"
    # "about fifty times" the HBM floor
    assert 45 < bandwidth / pcie < 55


def test_the_datasheets_80_gib_against_the_memory_cuda_reports(pages):
    util = api.run("memory", {"model": "llama-3-70b", "gpu": "h100-sxm"})["engine_gpu_memory_utilization"]
    total, visible = h100("memory_bytes") / GIB, h100("visible_memory_bytes") / GIB
    shown = f"{visible:.2f}"
    # the text's arithmetic on the figures it shows; the unrounded visible memory gives the same within rounding
    extra = util * (total - float(shown))
    assert abs(util * (total - visible) - extra) < 0.005
    fraction = f"{util * total / visible:.4f}"
    assert fraction == f"{util * total / float(shown):.4f}"
    formula = f"{util:g} × {total:g} / {shown}"
    typed = {
        "en": [f"{util:g} × ({total:g} − {shown}) ≈ {extra:.2f} GiB", f"{fraction} ({formula})", f"{formula})?",
               f"`gpu-memory-utilization` {fraction}"],
        "zh": [f"{util:g} × ({total:g} − {shown}) ≈ {extra:.2f} GiB", f"{fraction}（{formula}）", f"{formula}）？",
               f"`gpu-memory-utilization` 取 {fraction}"],
    }
    for lang, text in pages.items():
        for phrase in typed[lang]:
            assert phrase in text, f"{lang}: {phrase!r}"
        # every placeholder runs at vLLM's default or at that default scaled to the datasheet's memory
        assert set(re.findall(r"gpu-memory-utilization=([\d.]+)", text)) == {f"{util:g}", fraction}, lang


def test_exercise_6_names_the_largest_batch_calc_fits(pages):
    def fits(batch: int) -> bool:
        return api.run("memory", {"model": "llama-3.1-8b", "gpu": "h200", "batch": batch, "prompt-len": 20480,
                                   "output-len": 1})["fits"]

    n = next(b for b in range(32, 0, -1) if fits(b))
    assert n < 32  # the largest batch up to 32 that fits, so n + 1 does not
    typed = {
        "en": [f"Batch {n} fits (", f"batch {n + 1} does not (", f"batch {n} may not fit even though `calc` says it does"],
        "zh": [f"批大小 {n} 放得下（", f"{n + 1} 放不下（", f"批大小 {n} 即使 `calc` 说放得下"],
    }
    for lang, text in pages.items():  # placeholders compute the H200's total at both batches the text names
        totals = [dict(arg.split("=", 1) for arg in body.split())
                  for body in re.findall(r"\{\{ calc memory\.total_bytes_per_gpu ([^|}]*)", text)]
        batches = {t["batch"] for t in totals if t.get("gpu") == "h200" and t.get("prompt-len") == "20480"}
        assert {str(n), str(n + 1)} <= batches, lang
    for lang, text in pages.items():
        for phrase in typed[lang]:
            assert phrase in text, f"{lang}: {phrase!r}"


def test_table_4_6_k_quant_bits_are_llamacpps(pages):
    """Q4_K_M's row: the Q4_K figure is a placeholder for calc's nominal bits of the format, the Q6_K one is typed
    (calc has no output field for it); both must be the K-quant block sizes calc computes the bytes with."""
    # llama.cpp's block_q4_K: an fp16 d and dmin, 12 B of 6-bit scales and mins, 128 B of 4-bit quants per 256 weights
    assert _Q4_K_BITS == (2 + 2 + 12 + 128) * 8 / 256
    assert api.run("memory", {"model": "llama-3.1-8b", "weights": "q4_k_m"})["weights_bits_per_param"] == _Q4_K_BITS
    # block_q6_K: 128 B of low 4 bits, 64 B of high 2 bits, 16 B of scales and an fp16 d per 256 weights
    assert _Q6_K_BITS == (128 + 64 + 16 + 2) * 8 / 256
    q4 = "{{ calc memory.weights_bits_per_param weights=q4_k_m | raw:1 }}"
    assert f"{q4} (Q4_K) and {_Q6_K_BITS:.2f} (Q6_K) bits" in pages["en"]
    assert f"{q4} 位（Q4_K）和 {_Q6_K_BITS:.2f} 位（Q6_K）" in pages["zh"]


def test_one_placeholder_serves_both_pcie_gen4_cards(pages):
    l40s, rtx = (registry.lookup(f"gpu.{key}.interconnect_bytes_per_s") for key in ("l40s", "rtx-4090"))
    assert l40s == rtx
    link = "{{ calc gpu.l40s.interconnect_bytes_per_s | GB/s:0 }}"
    nvlink = "{{ calc gpu.h100-sxm.interconnect_bytes_per_s | GB/s:0 }}"
    # the totals are placeholders; each direction's half, which the ring all-reduce above is stated in, is typed
    each_way = {key: f"{registry.lookup(f'gpu.{key}.interconnect_bytes_per_s') / 2 / 1e9:.0f} GB/s"
                for key in ("h100-sxm", "l40s")}
    assert f"{nvlink} in total, {each_way['h100-sxm']} in each direction" in pages["en"]
    assert f"PCIe Gen4 x16 ({link} in total, {each_way['l40s']} in each direction)" in pages["en"]
    assert f"合计 {nvlink}，每个方向 {each_way['h100-sxm']}" in pages["zh"]
    assert f"PCIe Gen4 x16（合计 {link}，每个方向 {each_way['l40s']}）" in pages["zh"]


def test_table_4_9_barely_moves_at_vllm_serves_1024_sequences(pages):
    """Table 4-9 uses the calculator's 256 sequences; at `vllm serve`'s 1,024 "no row moves by more than two
    requests" (the sampler's warm-up grows with the sequences, and so does the activation peak)."""
    moves = []
    for weights in ("bf16", "fp8", "int4"):
        for tp in (1, 2, 4, 8):
            cell = {"model": "llama-3-70b", "gpu": "h100-sxm", "weights": weights, "tp": tp, "prompt-len": 4096,
                    "output-len": 4096, "gpu-memory-utilization": 0.92}
            moves.append(api.run("memory", cell)["max_concurrency"]
                         - api.run("memory", {**cell, "max-num-seqs": 1024})["max_concurrency"])
    assert max(abs(m) for m in moves) == 2  # "no more than two", and two is reached
    assert "(`vllm serve` takes 1,024 there, which moves no row by more than two requests)" in pages["en"]
    assert "（`vllm serve` 在 H100 上取 1024，各行的变化都不超过两个请求）" in pages["zh"]


def test_decode_floor_against_the_reference_eager_decode(pages):
    """The bandwidth floor of Llama-3.1-8B on an H100 SXM at the datasheet bandwidth against the reference
    measurements' 24-31 ms of eager decode: more than five times the floor; exercise 4's MBU, floor ÷ 24 ms, 19%.
    And the weights against the H100's 50 MB of L2 (the whitepaper's figure, cited in the page): over 300 times."""
    floor = api.run("perf", {"engine": "ideal", "model": "llama-3.1-8b", "gpu": "h100-sxm", "batch": 1,
                             "mem-efficiency": 1})["tpot_s"]
    assert 5 < 0.024 / floor < 6 and round(100 * floor / 0.024) == 19
    assert "24–31 ms per token, more than five times the floor" in pages["en"] and "是下限的五倍以上" in pages["zh"]
    assert "÷ 24 ms ≈ 19%. The measurement is more than five times" in pages["en"]
    assert "÷ 24 ms ≈ 19%。实测比带宽下限慢五倍以上" in pages["zh"]
    weights = api.run("memory", {"model": "llama-3.1-8b", "weights": "bf16"})["weights_bytes"]
    assert 300 < weights / 50e6 < 400
    assert "over three hundred times the H100's L2" in pages["en"] and "是 H100 L2 的三百多倍" in pages["zh"]


def test_fp8_batch_is_a_little_above_bf16_only_in_calc(pages):
    """After Table 4-5: FP8's weights-only batch is close to BF16's, 'a little above it in calc, which also runs the
    16-bit output layer at the FP8 rate'. The batch over the decode ridge is the bytes per multiplied weight over 2:
    (linear + 2 · head) / (2 · (linear + head)) for FP8 against 1 for BF16, so calc's FP8 batch sits above by the
    head's share, while a BF16 head at its own rate would cancel it."""
    matmul = 8_030_261_248 - 128256 * 4096 - 65 * 4096  # Llama-3.1-8B less its embedding lookup and norms
    head = 128256 * 4096
    for gpu in ("h100-sxm", "h200", "l40s", "rtx-4090"):
        r = {w: api.run("perf", {"engine": "ideal", "model": "llama-3.1-8b", "gpu": gpu, "weights": w})
             for w in ("bf16", "fp8")}
        per_ridge = {w: x["critical_batch_weights_only"] / x["ridge_flops_per_byte_effective"] for w, x in r.items()}
        assert per_ridge["fp8"] / per_ridge["bf16"] == pytest.approx((matmul + head) / (2 * matmul), rel=1e-3)
        assert 1 < r["fp8"]["critical_batch_weights_only"] / r["bf16"]["critical_batch_weights_only"] < 1.1, gpu
    assert "a little above it in `calc`, which also runs the 16-bit output layer at the FP8 rate" in pages["en"]
    assert "`calc` 里略大一些，因为它把 16 位的输出层也按 FP8 的算力计算" in pages["zh"]
