"""Chapters 5 to 9 (which have no test file of their own for their text; chapters 1-4 and 11 keep theirs in
test_ch01.py, test_ch02.py, test_ch03_content.py, test_ch04.py and test_ch11_text.py): results the text types by
hand where no calc field or ratio placeholder can print them. That is arithmetic on calc's numbers (a product, a
difference, a count worked out from a field), a ratio whose other side is a cited figure, chapter 9's
speculative-decoding formulas at the inputs the text states, and readings of the lab runs. Each test recomputes the
result with calc, the registry or the committed data file and checks that both languages still type it, so a change
that moves a result, or a slip in the text's arithmetic, fails here instead of leaving the text wrong.
"""

from __future__ import annotations

import json
import statistics
import sys
from decimal import ROUND_HALF_UP, Decimal
from fractions import Fraction
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from calc import api, model, registry  # noqa: E402
from calc.perf import speculative_speedup, speculative_tokens_per_call  # noqa: E402


def _page(chapter: str, lang: str) -> str:
    text = (ROOT / "docs" / lang / chapter / "index.md").read_text(encoding="utf-8")
    return " ".join(text.split())  # en is hard-wrapped


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_ch05_exercise_4_the_memory_cuda_hides(lang):
    """0.92 × (80 − 79.18) ≈ 0.75 GiB (vLLM's default fraction of the datasheet's memory beyond what CUDA shows, the
    text's arithmetic on the figures it shows, as in chapter 4); a GiB holds 8192 tokens of Llama-3.1-8B's KV; that
    is about 6,200 tokens, about 1 % of exercise 2's capacity."""
    gpu = registry.get_gpu("h100-sxm")
    exercise_2 = {"model": "llama-3.1-8b", "gpu": "h100-sxm", "gpu-memory-utilization": 0.92,
                  "max-num-batched-tokens": 8192, "max-num-seqs": 1024}
    r = api.run("memory", exercise_2)
    util, total, shown = r["engine_gpu_memory_utilization"], gpu.memory_bytes / 2**30, f"{gpu.visible_memory_bytes / 2**30:.2f}"
    hidden_gib = util * (total - float(shown))
    tokens_per_gib = 2**30 // r["kv_bytes_per_token"]
    tokens = hidden_gib * tokens_per_gib
    assert round(tokens, -2) == 6200 and round(tokens / r["engine_max_tokens_in_cache"], 2) == 0.01
    page = _page("ch05", lang)
    assert f"{util:g} × ({total:g} − {shown}) ≈ {hidden_gib:.2f} GiB" in page
    typed = {"en": [f"a GiB holds {tokens_per_gib} tokens of", "about 6,200 tokens, about 1% of the capacity"],
             "zh": [f"每 GiB 可放 {tokens_per_gib} 个", "约为 6,200 个 token，约占练习 2 容量的 1%"]}
    assert all(t in page for t in typed[lang]), [t for t in typed[lang] if t not in page]


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_ch06_sliding_window_pools_of_gpt_oss(lang):
    """vLLM fits about 1.8 times the requests that sizing every layer at full length would; SGLang's full pool holds
    36 / (18 + 0.8 × 18) = 1.11 times the tokens (36 layers, 18 of them windowed, SGLang's default ratio 0.8)."""
    m = registry.get_model("gpt-oss-120b")
    r = api.run("memory", {"model": "gpt-oss-120b", "gpu": "h100-sxm", "weights": "mxfp4-experts"})
    at_full_length = r["engine_kv_budget_bytes_per_gpu"] / (r["kv_bytes_per_token"] * r["engine_max_model_len"])
    assert round(r["engine_max_concurrency_at_max_model_len"] / at_full_length, 1) == 1.8
    layers, windowed = m.num_hidden_layers, m.sliding_window_layers
    assert (layers, windowed) == (36, 18) and round(layers / (layers - windowed + 0.8 * windowed), 2) == 1.11
    page = _page("ch06", lang)
    assert ("about 1.8 times what sizing every layer" if lang == "en" else "约为每层都按全长分配时的 1.8 倍") in page
    assert "36 / (18 + 0.8 × 18) = 1.11" in page


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_ch08_q4_k_m_bits_per_parameter(lang):
    """calc's Q4_K_M recipe for Llama-3.1-8B: its bytes × 8 over its parameters is the 4.89 bits the text compares
    with llama.cpp's 4.8944."""
    r = api.run("memory", {"model": "llama-3.1-8b", "weights": "q4_k_m"})
    assert round(r["weights_bytes"] * 8 / r["params_total"], 2) == 4.89
    assert ("the same 4.89 bits per parameter" if lang == "en" else "同样是每参数 4.89 位") in _page("ch08", lang)


def _half_up(x: Fraction, digits: int = 2) -> str:
    """x rounded as the text rounds by hand (half up, on the exact value: 2.19 / 1.2 = 1.825 is 1.83)."""
    return str((Decimal(x.numerator) / Decimal(x.denominator)).quantize(Decimal(1).scaleb(-digits), ROUND_HALF_UP))


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_ch09_formula_values(lang):
    """(9-1) and (9-2) at the α, γ and c the text and the exercises state (v = 1 throughout), in exact arithmetic:
    section 9.3.1's γ = 4 and 8 values, section 9.3.2's c = 0.9 example, the table of S over γ with its best γ
    (searched over every γ up to 32, not only the columns), section 9.3.4's batch-1 figure, and the answers to
    exercises 1, 2 and 6."""
    page = _page("ch09", lang)
    f = Fraction
    e = speculative_tokens_per_call
    def s(alpha, gamma, c):
        return speculative_speedup(alpha, gamma, c, f(1))  # v = 1, exact
    if lang == "en":
        assert f"γ = 4 to 8 only moves it from {_half_up(e(f('0.8'), 4))} to {_half_up(e(f('0.8'), 8))}" in page
    else:
        assert f"γ 从 4 加到 8 只从 {_half_up(e(f('0.8'), 4))} 涨到 {_half_up(e(f('0.8'), 8))}" in page
    assert f"$S = 1.95/1.9 \\approx {_half_up(s(f('0.95'), 1, f('0.9')))}$" in page
    for alpha, c in (("0.8", "0.05"), ("0.8", "0.2"), ("0.6", "0.05")):
        cells = " | ".join(_half_up(s(f(alpha), g, f(c))) for g in (1, 2, 4, 6, 8))
        best = max(range(1, 33), key=lambda g: s(f(alpha), g, f(c)))
        top = _half_up(s(f(alpha), best, f(c)))
        assert f"| {alpha} | {c} | {cells} | " + (f"{best} ({top}) |" if lang == "en" else f"{best}（{top}） |") in page
    assert f"$S \\approx {_half_up(s(f('0.8'), 4, f('0.05')), 1)}$" in page  # B = 1, γ = 4
    # exercise 1: α = 0.7, γ = 3, and the limit 1 / (1 − α)
    assert f"\\approx {_half_up(e(f('0.7'), 3))}$" in page and f"$1/0.3 \\approx {_half_up(1 / (1 - f('0.7')))}$" in page
    # exercise 2: α = 0.7, c = 0.1, γ = 1 to 5; the best γ is 4
    sep = ", " if lang == "en" else "、"
    # the first is exactly 1.7, which the text writes without a trailing zero
    assert sep.join(_half_up(e(f("0.7"), g)) for g in (1, 2, 3, 4)).replace("1.70", "1.7", 1) in page
    assert sep.join(_half_up(s(f("0.7"), g, f("0.1"))) for g in (1, 2, 3, 4)) in page
    assert f"${_half_up(e(f('0.7'), 5))}/1.5 \\approx {_half_up(s(f('0.7'), 5, f('0.1')))}$" in page
    assert max(range(1, 33), key=lambda g: s(f("0.7"), g, f("0.1"))) == 4
    # exercise 6: γ = 1, α from 0.85 to 0.90, c = 0.05
    for alpha in ("0.85", "0.90"):
        assert f"{_half_up(e(f(alpha), 1))}/1.05 \\approx {_half_up(s(f(alpha), 1, f('0.05')))}$" in page


def _lab(run: str) -> dict:
    return json.loads((ROOT / "docs/assets/labs/ch09-speculative/data" / run).read_text(encoding="utf-8"))


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_ch09_readings_of_calc_and_the_lab_runs(lang):
    """Chapter 9's hand-typed readings: the overview's 'to two decimals, the same' step times; 9.3.3's 'five times as
    many tokens, close to the weights-only critical batch'; (9-1)'s 3.36 again in 9.3.4 and exercise 4; 9.6's weight
    count for early-exit drafts (218 M a layer, 525 M of LM head, 0.186 and 0.535); the CPU run's exactness test
    (p ≈ 3 × 10⁻¹⁶⁸ for the resampling bug, at least 10 expected samples a cell, greedy output identical on every
    prompt); the H200 run's fixed cost per forward call (4 to 9 ms, about 5) and γ = 1's (1 + α)/(c + v) ≈ 1.01."""
    page = _page("ch09", lang)
    plain = {"model": "llama-3.1-8b", "gpu": "h100-sxm", "prompt-len": 128, "output-len": 2, "engine": "ideal"}
    one = api.run("perf", {**plain, "batch": 1, "verify-tokens": 5})
    assert f"{one['tpot_s'] * 1e3:.2f}" == f"{one['verify_step_s'] * 1e3:.2f}"
    assert ("to two decimals, the same" if lang == "en" else "精确到两位小数也是") in page
    tokens = 5 * one["verify_critical_batch"]
    assert abs(tokens / one["critical_batch_weights_only"] - 1) < 0.1
    assert ("five times as many tokens, close to the weights-only critical batch" if lang == "en"
            else "token 数是它的 5 倍，接近只算权重的临界批大小") in page
    three_36 = f"{speculative_tokens_per_call(0.8, 4):.2f}"
    assert f"$S = {three_36} / (0.2 + v) \\approx$" in page and f"$S = {three_36} / (4 \\times 0.05 + v) \\approx$" in page
    counts = model.param_counts(registry.get_model("llama-3.1-8b"))
    layers = registry.get_model("llama-3.1-8b").num_hidden_layers
    layer, head = counts["layer_linear"] / layers, counts["lm_head"]
    assert (layers, round(layer / 1e6), round(head / 1e6)) == (32, 218, 525)
    shares = [f"{(k * layer + head) / (layers * layer + head):.3f}" for k in (4, 16)]
    assert shares == ["0.186", "0.535"]
    typed = ("about 218 M per layer, 525 M in the", "(k·218 M + 525 M)/(32·218 M + 525 M), about 0.186 for k = 4 and "
             "0.535 for k = 16") if lang == "en" else ("每层约 218 M 个参数，", "比值是 (k·218 M + 525 M)/(32·218 M + 525 M)，"
                                                      "k = 4 时约 0.186，k = 16 时约 0.535")
    assert all(t in page for t in typed)

    (exact,) = [p for p in _lab("ch09-cpu.json")["points"] if p["kind"] == "exact"]
    assert f"{exact['resample_p_bug']['p_value']:.0e}" == "3e-168" and "p ≈ 3 × 10⁻¹⁶⁸" in page
    assert exact["speculative"]["min_expected"] >= 10 and exact["speculative"]["pooled_cells"] == 0
    assert exact["greedy_identical"] == exact["greedy_prompts"]
    assert ("expects at least 10 samples, so no cell is pooled" if lang == "en" else "期望样本数都不少于 10，不需要合并任何格子") in page

    h200 = _lab("ch09-h200.json")["points"]
    per_call = sorted(
        (g["speculative_s"] - g["target_calls"] * (g["v"] * p["t_target_step_s"] + g["gamma"] * p["t_draft_step_s"]))
        / (g["target_calls"] * (1 + g["gamma"]))
        for p in h200 if p["kind"] == "accept" for g in p["by_gamma"])
    assert len(per_call) == 8 and (round(per_call[0] * 1e3), round(per_call[-1] * 1e3)) == (4, 9)
    assert round(statistics.median(per_call) * 1e3) == 5
    assert ("a fixed cost of about 5 ms per forward call" in page and "in all eight speculative points" in page
            and "comes to 4 to 9 ms per forward call" in page) if lang == "en" else (
        "每次前向调用另有约 5 ms 的固定开销" in page and "八个投机采样的点里" in page and "折合每次前向调用 4 到 9 ms" in page)
    (alpha,) = [p["alpha"] for p in h200 if p["kind"] == "batch-alpha"]
    (b1,) = [p for p in h200 if p["kind"] == "batch" and p["batch"] == 1]
    run = "{{ lab ch09-speculative/data/ch09-h200.json"
    assert f"{(1 + alpha) / (b1['c'] + b1['verify_ratio']):.2f}" == "1.01"
    assert (f"(1 + {run} kind=batch-alpha alpha | num:2 }}}})/({run} kind=batch batch=1 c | num:2 }}}} + {run} "
            f"kind=batch batch=1 verify_ratio | num:2 }}}}) ≈ 1.01") in page


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_kv_copies_over_pcie(lang):
    """A KV cache copied over PCIe Gen5 x16 at its cited 64 GB/s each way: chapter 7's 3,000-token request takes
    about 6 ms each way (section 7.4 and exercise 5), chapter 6's 4K-token prefix about a tenth of calc's roofline
    prefill of it (section 6.5)."""
    pcie = 64e9  # the H100 whitepaper's PCIe Gen5 x16, each direction
    kv = {n: api.run("memory", {"model": "llama-3.1-8b", "batch": 1, "prompt-len": n - 1, "output-len": 1})
          ["kv_cache_bytes"] for n in (3000, 4096)}
    assert round(kv[3000] / pcie * 1e3) == 6
    prefill = api.run("perf", {"engine": "ideal", "model": "llama-3.1-8b", "gpu": "h100-sxm", "prompt-len": 4096,
                               "output-len": 2})["ttft_s"]
    assert 0.08 < kv[4096] / pcie / prefill < 0.125  # "about a tenth"
    typed = {"en": [("ch07", "takes about 6 ms to copy out and again to copy back"),
                    ("ch07", "about 6 ms to copy out at the 64 GB/s peak and about 6 ms to copy back"),
                    ("ch06", "so copying it back takes about a tenth of the")],
             "zh": [("ch07", "拷出、拷回各约 6 ms"), ("ch07", "以 64 GB/s 的峰值拷出约 6 ms，拷回再约 6 ms"),
                    ("ch06", "拷回所需的时间约为重新预填充的十分之一")]}
    for chapter, text in typed[lang]:
        assert text in _page(chapter, lang), (chapter, text)


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_ch07_the_example_stays_bandwidth_bound(lang):
    """Section 7.1: 'counting the KV reads too, calc finds this setting bandwidth-bound at every batch up to 512' (the
    performance calculator's curve, which ends at 512): no critical batch, and every point of the curve memory-bound."""
    r = api.run("perf", {"model": "llama-3.1-8b", "gpu": "h100-sxm", "batch": 64, "prompt-len": 512,
                         "output-len": 256, "engine": "ideal"})
    assert r["critical_batch"] is None
    assert r["throughput_curve"][-1]["batch"] == 512 and {c["bound"] for c in r["throughput_curve"]} == {"memory"}
    assert ("bandwidth-bound at every batch up to 512" if lang == "en" else "在批大小 512 以内始终受带宽限制") in _page("ch07", lang)
