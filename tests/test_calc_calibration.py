"""calc against published, dated measurements (calc/data/calibration.json): the engine profiles' error.

Targets (issue 12): median |error| ≤ 10 % for TPOT, TTFT and throughput, ≤ 5 % for KV capacity, no point beyond
30 %. The profile parameters were fitted on the 'fit' subset only (scripts/fit_engine_profiles.py); no constant is
fitted on a 'holdout' point, but those that informed a structural choice carry 'seen', and the 'unseen' subset (the
held-out points that informed none) is the closest thing to an independent check. The fit subset meets the targets but for the
two TTFTs that set vLLM's front-end latency (their median, by a rule: they straddle it); the holdout subsets
do not yet, for the reasons in the xfails. Run `scripts/bench_calibration.py` for the full table.
"""

from __future__ import annotations

import ast
import contextlib
import json
import math
import re
import statistics
import subprocess
import sys
from pathlib import Path

import pytest

from calc import api, calibration, engines, registry
from calc import memory as mem


@pytest.fixture(autouse=True)
def _fresh_engine_profiles():
    """Several tests edit the engine data in place (undone by monkeypatch at teardown) and clear the profile cache; the
    profiles built from the edited data would outlive the edit in the cache, so every test ends with it cleared."""
    yield
    engines.profile.cache_clear()


ROWS = calibration.errors()


def test_every_point_is_sourced_and_dated():
    seen = set()
    for p in calibration.points():
        assert p["id"] not in seen
        seen.add(p["id"])
        src = p["source"]
        for key in ("url", "date", "version", "gpu", "settings"):
            assert src.get(key), (p["id"], key)
        assert p["engine"] in engines.ENGINES and p["engine"] != "ideal", p["id"]
        assert p["kind"] in calibration.KINDS and p["subset"] in ("fit", "holdout"), p["id"]
        registry.get_gpu(p["gpu"])
    assert len(seen) >= 20
    assert {p["engine"] for p in calibration.points()} >= {"vllm", "sglang", "trt-llm", "llama.cpp"}


def test_print_the_table(capsys):
    with capsys.disabled():
        print("\n" + calibration.format_table(ROWS))
    assert calibration.table(ROWS)


def _check(rows):
    bad = []
    for t in calibration.table(rows):
        if t["subset"] == "all" and t["median_abs_error"] > calibration.TARGETS[t["kind"]]:
            bad.append(f"{t['kind']}: median {t['median_abs_error']:.1%}")
    bad += [f"{r['id']}: {r['error']:+.1%}" for r in rows if abs(r["error"]) > calibration.MAX_ERROR]
    return bad


# vLLM's per-request front-end latency is the median of its fit hosts' (scripts/fit_engine_profiles.py
# FRONT_END_MEDIAN): two hosts, one spending about 22 ms off the GPU, one about none, so their TTFTs sit on either side
# of it, about 41 % each, by design.
# (AMD's vLLM 0.9.1 table for ROCm, engine variant rocm-0.9, had two fit points beyond 30 % until its refit on cached
# prompts, 2026-12-02: now within -21 % to +24 %.)
KNOWN_FIT_MISSES = {"vllm-l4-qwen0.5b-ttft-c1", "vllm0251-rtx4090-qwen25-7b-ttft-c1"}


def test_fit_subset_meets_the_targets_but_for_the_front_end_hosts():
    misses = {b.split(":")[0] for b in _check([r for r in ROWS if r["subset"] == "fit"])}
    assert misses == KNOWN_FIT_MISSES


def _fit_script():
    """scripts/fit_engine_profiles.py as a module (its functions; nothing is fitted on import)."""
    import importlib.util  # noqa: PLC0415

    path = Path(__file__).resolve().parents[1] / "scripts" / "fit_engine_profiles.py"
    spec = importlib.util.spec_from_file_location("fit_engine_profiles", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_vllm_front_end_latency_is_the_median_of_its_fit_hosts():
    """engines.json's vLLM prefill_base_s = base_s + the median, over the fit sources, of what their short-prompt
    TTFTs of one request spent beyond calc's GPU time (the rule in the fit script), to the 5 decimals kept; the data
    page's "about 22 ms" and "about 5 ms" for the two hosts, and its 13.3 ms (the RTX 4090's prefill at its measured
    matmul rate, registry GPU.matmul_factor; at the datasheet's the 4090 host's residual would be -0.6 ms)."""
    root = Path(__file__).resolve().parents[1]
    latency, per_source = _fit_script().front_end_latency("vllm")
    assert {k: round(v * 1e3, 1) for k, v in per_source.items()} == {  # "the L4 run ... and the RTX 4090 run"
        "https://ai.wmx.dev/benchmarks": 21.8, "violet-quartz/vllm-serving-experiments": 4.9}
    assert round(latency * 1e3, 1) == 13.3
    o = json.loads((root / "calc" / "data" / "engines.json").read_text(encoding="utf-8"))["engines"]["vllm"]["step_overhead"]
    assert round(o["base_s"] + latency, 5) == o["prefill_base_s"]
    assert round(engines.profile("vllm").request_latency_s * 1e3, 1) == 13.3


@pytest.mark.xfail(strict=True, reason=(
    "thirty-five held-out points still miss, and the held-out throughput median (12.1 % over 53 points) is over its target. "
    "Four are the rows admitted on 2026-12-02 (an open-loop serving run of DeepSeek-R1 on vLLM 0.8.4, the V1 engine, on a "
    "DGX H200: TPOT -42 % to -57 %). Two are rows of that day's third search, open loops of current releases: a burst of "
    "500 prompts on vLLM 0.19.0 on an H100 (+451 %: its requests reached the engine over about five seconds) and vLLM "
    "0.22.1 on an RTX 5090 at a rate past the source's own knee (-49 %); its other seven rows are within 26 %, six of them "
    "within 6.2 %. "
    "Sixteen of them are rows admitted on 2026-12-01 under a rule written before calc was computed on them, an "
    "independent check: DeepSeek-R1 on vLLM 0.7's V0 engine (8 H200s: TPOT -51 % to -64 %; 8 MI300X: -79 %) and on "
    "SGLang 0.4.2 (8 MI300X: -67 and -60 %), and vLLM 0.6.1 for ROCm on MI300X (Argonne's static batches: throughput "
    "+55 % to +273 %; only its two batch-1 rows at 128 tokens of Mistral-7B and Mixtral come within 30 %); without them the "
    "throughput median is 9.2 %, and without them and the DeepSeek-R1 rows of 2026-12-02 the held-out TPOT median is 7.5 % instead of 8.2 % (7.6 % without any held-back row). One is GLM-4.7-Flash's TPOT at concurrency 64 with 8,000-token outputs (+46 %), which "
    "calc's model of SGLang's Triton decode kernel overshoots. The other twelve: vLLM 0.9.1 for ROCm on MI300X with its own variant (vllm@rocm-0.9, fitted "
    "on AMD's latency table for that release), the 70B's TPOT at TP 4 and batch 1 (-49 %: on that host TP 4 was no "
    "faster than TP 2), its TPOT at concurrency 64 (-33 %; as a static batch the 70B at TP 2 misses too, -36 %, now "
    "-25 % with the prompts prefilled inside the decode steps simulated) and three "
    "BF16 TTFTs (-33 to -41 % at MI300X's measured matmul rate, -42 to -60 % at the H100's share of its datasheet; the "
    "8B's two, at one and four GPUs, are -26 % now: AMD's table has no BF16 row, so the variant keeps the CUDA profile's BF16 compute share); "
    "with the CUDA profile fourteen of its eighteen points miss (-33 to -65 %; seventeen, -30 to -65 %, at the H100's share "
    "of MI300X's datasheet); TensorRT-LLM 1.2's TTFT through trtllm-serve on an H100 (-79 %: NIM's "
    "TensorRT-LLM behind HTTP is within +5 %, so the cause, trtllm-serve, queueing or the host, is not separated); vLLM 0.11's TTFT through its chat "
    "endpoint at concurrency 1 on an H100 (-66 %: 59 ms measured, about 52 ms of it off the GPU, where calc's "
    "front-end latency is 13.3 ms, the median of its fit hosts; at concurrency 4 the same page gives vLLM 64 ms and "
    "SGLang 28 ms); SGLang 0.5.3's TTFT for the "
    "dense Qwen3-8B on one H100 (+36 % at least: the per-layer prompt cost was fitted on MoE models); SGLang 0.5.6's "
    "Qwen3-235B TPOT on 8 B200s (-35 %: 10.1 ms, where SGLang 0.5.8, a fit point, took 6.7 ms); GLM-4.7-Flash's TTFT on one B200 "
    "with Triton attention at 4,194-token prompts (-56 %; -33 % against the median: the Triton prefill kernels are not "
    "modelled); vLLM 0.25.1 on an RTX 4090 (lifenyan/inference-lab: "
    "TPOT +31 and +32 % in AWQ and GPTQ, run on the source's other machine, where FP8 is -5 %: the card, that machine "
    "or its 4-bit kernels, one source cannot tell; a later A100 AWQ row elsewhere is -0.3 %). Four misses closed when calc "
    "read each GPU's measured matmul rate (registry matmul_measured_flops): that source's BF16 TTFT (+36 % -> +18 %), "
    "AccelMark's RTX 5090 TTFT at 28,650 prompt tokens (+31.5 % -> -7.3 %) and MI300X's two 8B BF16 TTFTs (-48 and -42 % -> "
    "-26 %). With SGLang's Triton split-KV decode kernel modelled (engines sglang@triton, fitted on GLM-4.7-Flash's "
    "three TPOTs at concurrency 1, two of them misses before, -48 and -40 %, so moved to the fit set), its two TPOTs at "
    "concurrency 16 that missed came within 30 % (-38 and -43 % -> +8 and +6 %) and the two at 64 turned from -36 and "
    "-42 % to +46 and +21 % (+69 and +40 % before the kernel's fixed time per program was added, 2026-12-02). The other medians meet "
    "their targets: TPOT 8.2 % (8.3 % before the third search's nine rows, 8.1 % before the DeepSeek-R1 rows of 2026-12-02, 7.5 % without those of 2026-12-01 either; 8.3 % before the kernel's fixed time per program, 8.1 % before the Triton kernel model, 8.3 % before the measured matmul rates, 8.8 % before SGLang's prompts ran in steps of their own, which brought three of the nine "
    "SGLang rows admitted as unseen checks of the closed loop back within 30 %, 8.1 % before those nine rows, 8.2 % before the serving runs at fixed concurrency were simulated as closed loops, 8.4 % before the ROCm variant and the A100 AWQ point), KV capacity 0.5 % (2.7 % before vLLM's sampler warm-up was counted, which closed the last KV miss, Qwen3-30B-A3B's +60 %, now +0.2 %), TTFT 8.1 % over 56 (8.0 % over 55 before vLLM issue #20469's 16,000-token TTFT on an A100 80GB PCIe, -21 %, admitted on 2026-12-02; 9.3 % before the measured matmul rates; "
    "that source's four TTFTs had taken it "
    "from 9.95 % to 11.3 %; 11.0 % once calc charged the lm_head once per prompt, 9.3 % since llama.cpp's held prompt "
    "constants were refitted on their fit points). The TTFT median was 12.1 % before TensorRT-LLM v0.5's 70B TTFTs (-29 and -26 %, now -8 "
    "and -14 %) had their prefill cost moved into the step, a choice made after seeing them, and a held-out llama.cpp "
    "prompt of 2026 (-3 % then and now) joined the set; DeepSeek-R1's misses (-46 to -54 %) closed when an MLA layer was weighted (two of its "
    "points moved to the fit set for that)"))
def test_holdout_meets_the_targets():
    assert _check([r for r in ROWS if r["subset"] == "holdout"]) == []


# What test_holdout_meets_the_targets misses today, exactly: a kind whose median is over its target, or a point
# beyond MAX_ERROR. test_holdout_misses_are_the_known_ones fails when one of these passes (take it off the list
# and the xfail reason) or a new one fails.
# MI300X (vLLM 0.9.1 for ROCm, with its variant rocm-0.9): the 70B's TPOT at TP 4, three BF16 TTFTs (the 8B's two
# closed at MI300X's measured matmul rate)
AMD_MISSES = {"chipbench-vllm091-mi300xx4-llama-3.1-70b-bf16-tpot-c1"}
AMD_TTFT_MISSES = {f"chipbench-vllm091-mi300xx{k}-bf16-ttft-c1" for k in (
    "2-llama-3.1-70b", "4-llama-3.1-70b", "1-qwen3-14b")}
# concurrency 64 (a closed loop of 64): the MI300X 70B at TP 4 (as static batches the 70B at TP 2, the 70B FP8 and the
# A100s' 70B at TP 4 missed too)
C64_MISSES = {"chipbench-vllm091-mi300xx4-llama-3.1-70b-bf16-tpot-c64"}
# KV capacity: none left (gpt-oss-120b's +60 % closed when vLLM's MXFP4 padding was modelled, Qwen3-30B-A3B's +60 % when
# vLLM's sampler warm-up was counted)
KV_MISSES: set = set()
# lifenyan/inference-lab (vLLM 0.25.1, RTX 4090): the 4-bit TPOTs (unseen; its BF16 TTFT and AccelMark's RTX 5090 TTFT
# closed at the cards' measured matmul rates)
RTX4090_TPOT_MISSES = {f"lifenyan-vllm0251-rtx4090-qwen25-7b-{k}-tpot-c1" for k in ("awq", "gptq")}
RTX4090_MISSES = RTX4090_TPOT_MISSES
# GLM-4.7-Flash on one B200 with Triton attention: its TTFT at 4,194-token prompts, and its TPOT at concurrency 64 with
# 8,000-token outputs, which calc's model of SGLang's Triton split-KV decode kernel (engines sglang@triton) overshoots
# (+46 %; the other concurrency-64 row +21 %; its concurrency-1 TPOTs became that kernel's fit points, its
# concurrency-16 ones came within +6 to +8 %)
TRITON_C64_MISSES = {"sgl057-b200-glm47flash-tpot-c64-8kout"}
# The held-back rows admitted on 2026-12-01 under a rule written before calc was computed on them (two dstack studies'
# sources and Argonne's LLM-Inference-Bench; data page): DeepSeek-R1 on vLLM 0.7's V0 engine (8 H200s, 8 MI300X) and
# SGLang 0.4.2 (8 MI300X), TPOT -51 % to -79 %; vLLM 0.6.1 for ROCm on MI300X, static batches, throughput +55 % to
# +273 % (all but two of its eleven rows)
ADMITTED_S18 = ("dstack-", "argonne-")
S18_MISSES = {f"dstack-vllm074-h200x8-dsr1-tpot-c{c}" for c in (4, 8, 16, 32)} | {
    "dstack-vllm073-rocm-mi300xx8-dsr1-tpot-c4", "dstack-sgl042-mi300xx8-dsr1-tpot-c4",
    "dstack-sgl042-mi300xx8-dsr1-tpot-c16"} | {f"argonne-vllm061-rocm-mi300xx{k}" for k in (
        "8-llama-3-70b-fp16-b1-128", "8-llama-3-70b-fp16-b1-1024", "8-llama-3-70b-fp16-b16-128",
        "8-llama-3-70b-fp16-b64-1024", "4-llama-3-70b-fp16-b1-128", "1-llama-3-70b-fp16-b1-128",
        "1-mistral-7b-fp16-b1-1024", "1-mistral-7b-fp16-b64-128", "2-mixtral-8x7b-fp16-b64-128")}
# The held-back rows admitted on 2026-12-02 under that rule's second round (amendment 7: an open-loop serving run,
# data page): DeepSeek-R1 on vLLM 0.8.4 (the V1 engine) on a DGX H200, 50 prompts at 10 requests/s, TPOT -42 % to -57 %
ADMITTED_S19 = ("simonmo-",)
S19_MISSES = {f"simonmo-vllm084-h200x8-dsr1-tpot-r10-{k}" for k in ("1k2000", "5k1000", "10k500", "30k100")}
# Round 3 (2026-12-02, rule /work/wt/notes/new-sources-rule-s20.md): vLLM 0.19.0 on an H100 (kvcached PR #331's stock
# runs: a burst of 500 prompts, +451 %, and Poisson 16/s) and vLLM 0.22.1 on an RTX 5090 (pegainfer PR #338, Poisson 1 to
# 16/s: the rate past the knee, -49 %)
ADMITTED_S20 = ("kvcached331-", "pegainfer338-")
S20_MISSES = {"kvcached331-vllm0190-h100-qwen3-0.6b-tpot-burst500", "pegainfer338-vllm0221-rtx5090-qwen3-4b-tpot-r16"}
# Round 4 (rule /work/wt/notes/new-sources-rule-s20-round4.md): vLLM issue #20469's concurrency-1 TTFT (vLLM 0.9.1,
# Qwen3-14B-AWQ, 16,000 prompt tokens), admitted once the A100 80GB PCIe joined the registry (2026-12-02): -21 %
ADMITTED_S21 = ("vllm20469-",)
HELD_BACK = ADMITTED_S18 + ADMITTED_S19 + ADMITTED_S20 + ADMITTED_S21
# ("throughput": with those rows its held-out median is 12.1 %, over its 10 % target; 9.2 % without them)
KNOWN_HOLDOUT_MISSES = TRITON_C64_MISSES | S18_MISSES | S19_MISSES | S20_MISSES | {"throughput"} | {"gpustack-vllm011-h100-qwen3-8b-ttft-c1", "gpustack-sglang053-h100-qwen3-8b-ttft-c4",
                        "sgl056-b200-qwen3-235b-tpot-c1", "sgl057-b200-glm47flash-ttft-c1-8k"} | AMD_MISSES | \
    AMD_TTFT_MISSES | C64_MISSES | {"gpustack-trtllm120rc1-h100-qwen3-8b-ttft-c4"} | KV_MISSES | RTX4090_MISSES


def test_holdout_misses_are_the_known_ones():
    misses = {b.split(":")[0] for b in _check([r for r in ROWS if r["subset"] == "holdout"])}
    assert misses == KNOWN_HOLDOUT_MISSES, (sorted(misses - KNOWN_HOLDOUT_MISSES), sorted(KNOWN_HOLDOUT_MISSES - misses))


# The same check on the held-out points that informed no modelling choice (no ``seen`` in calibration.json): the
# closest thing to an independent check (some neighbour fit points: the data page says which). Few TTFT points are left there.
UNSEEN = [r for r in ROWS if calibration.in_subset(r, "unseen")]
# "ttft": the median over its three unseen points is over 10 %. The MI300X points are all seen (their variant was chosen
# after their errors were known), and so are SGLang's nine cookbook rows at concurrency 16 and 64 (its prompt steps) and
# the TTFTs the GPUs' measured matmul rates moved (five of the eight unseen ones)
# (the 30,000/100 row of 2026-12-02 is seen since the admission rule per release; with it unseen the TPOT median, 10.6 %
# over 50 points, would be over its target: test_the_held_back_rows_of_the_third_search_...)
KNOWN_UNSEEN_MISSES = KV_MISSES | RTX4090_TPOT_MISSES | {"ttft", "gpustack-trtllm120rc1-h100-qwen3-8b-ttft-c4"} | S18_MISSES | {
    "throughput"} | (S19_MISSES - {"simonmo-vllm084-h200x8-dsr1-tpot-r10-30k100"}) | S20_MISSES


@pytest.mark.xfail(strict=True, reason=(
    "over the held-out points that informed no modelling choice, the sixteen rows admitted on 2026-12-01 that miss "
    "(DeepSeek-R1 on vLLM 0.7 and SGLang 0.4.2, vLLM 0.6.1 for ROCm on MI300X; see the held-out reason) take the "
    "throughput median to 14.3 % over 23 points (6.7 % over 12 without them) and TPOT's to 9.7 % over 37, and the four "
    "of 2026-12-02 (DeepSeek-R1 on vLLM 0.8.4, -42 % to -57 %) took TPOT's to 12.2 % over 41 (11.9 % over 40 once the "
    "30,000/100 row became seen with the admission rule per release, a choice made after its error was known) and the "
    "nine of that day's third search (vLLM 0.19.0 on an H100, 0.22.1 on an RTX 5090; two miss, +451 and -49 %) to 9.7 % "
    "over 49, under its target only because that row is seen (10.6 % over 50, over it, with that row unseen); the RTX "
    "4090's 4-bit TPOTs miss (+31 and +32 %), as "
    "does TensorRT-LLM 1.2's TTFT through trtllm-serve (-79 %); TPOT's median without those rows, 7.6 % over 30 points, meets its target "
    "(11.6 % over 39 while SGLang's nine 1,000-token-output rows, admitted after the closed loop as its unseen check, "
    "were unseen: five of them missed, -30 to -64 %; they are seen since SGLang's prompts run in steps of their own, "
    "a choice made after their errors were known; 8.1 % over 53 "
    "before the serving runs at fixed concurrency were simulated as closed loops, which made twenty-three of them seen, among "
    "them the A100 70B at batch 64, -38 % then and -20 % now; 11.1 % over 64 while the twelve MI300X TPOTs were unseen: "
    "they are seen since the ROCm variant was chosen after their errors were known, so both falls are bookkeeping) and "
    "TTFT's "
    "17.7 % over four points (TensorRT-LLM v0.5 on an L40S, +2 and +14 %, TensorRT-LLM 1.2's -79 % and vLLM 0.9.1's "
    "16,000-token prompt on an A100 80GB PCIe, -21 %; 14.5 % over the first three), 11.5 % over "
    "eight before calc read each GPU's measured matmul rate, a choice made after the other five were known: vLLM 0.8.5 "
    "and 0.20.1 through a chat endpoint on an L4 and an A100 40GB, -3 and -9 % then at about 45 prompt tokens, -24 % at "
    "about 1,800 on the L4; AccelMark's 28,650-token prompts, -3 % on an A100 SXM4 80GB and +31.5 % on an RTX 5090 "
    "(now +1, +3, +3, -3 and -7 %). "
    "KV capacity meets its median there"))
def test_unseen_holdout_meets_the_targets():
    assert _check(UNSEEN) == []


def test_unseen_holdout_misses_are_the_known_ones():
    misses = {b.split(":")[0] for b in _check(UNSEEN)}
    assert misses == KNOWN_UNSEEN_MISSES, (sorted(misses - KNOWN_UNSEEN_MISSES), sorted(KNOWN_UNSEEN_MISSES - misses))


def test_seen_marks_only_held_out_points_and_names_the_choice():
    seen = [p for p in calibration.points() if "seen" in p]
    assert seen and all(p["subset"] == "holdout" and isinstance(p["seen"], str) and p["seen"] for p in seen)
    # what the data page lists as seen before a choice
    ids = {p["id"] for p in seen}
    assert {"hf-h100-8b-ttft-b8", "llamacpp-4090-7b-q8_0-pp512", "trt-h100-fp8-70b-ttft-128",
            "llamacpp-2026-rtx-6000-ada-8b-q4_0-pp8096", "vllm0151-h100x8-gptoss120b-tpot-c16-8kout"} <= ids
    # "the variant trt-llm@v0.6 was also accepted against the other four 70B throughput rows ..., two of which it moves
    # by more than 16 points"
    four = ["trt-h100-fp8-70b-b1024-128-128", "trt-h100-fp8-70b-b96-2048-128", "trt-a100-fp16-70b-b1280-tp4-128-128",
            "trt-a100-fp16-70b-b120-tp4-2048-128"]
    assert set(four) <= ids
    # the variant's kernel alone: against the base profile with the variant's whole-batch prefill (the base profile's
    # prompt steps hold up to 8,192 tokens, TensorRT-LLM 1.x's max_num_tokens, since 2026-12-02)
    with pytest.MonkeyPatch.context() as mp:
        mp.setitem(engines._data()["engines"]["trt-llm"]["prefill"], "chunk_tokens", None)
        engines.profile.cache_clear()
        moved = {k: abs(_errors(k)[k] - _errors(k, engine="trt-llm")[k]) for k in four}
    engines.profile.cache_clear()
    assert {k for k, d in moved.items() if d > 0.16} == set(four[1::2])
    assert "gpustack-vllm011-h100-qwen3-8b-ttft-c1" in ids  # "the rule was chosen knowing that run's residual"
    assert not ids & {"qwen25-vllm063-a100-0.5b-bf16", "vllm0251-rtx4090-qwen25-7b-tpot-c1"}
    # each GPU's measured matmul rate (2026-12-01) was chosen knowing every error: every held-out point it moved is seen
    shares = {p["id"] for p in seen if "measured matmul share" in p["seen"]}
    assert len(shares) == 46 and {"accelmark-vllm0191-rtx-5090-llama31-8b-28k-ttft-c1",
                                  "ree2raz-vllm085-l4-qwen25-7b-ttft-c1"} <= shares
    # "two later sources ... first computed after every constant was fixed"; chipbenchmark's TTFT medians were added
    # after the review computed them, and its concurrency-64 TPOTs are simulated as closed loops since
    later = {p["id"] for p in calibration.points() if p["id"].startswith(("chipbench-", "ree2raz-"))}
    ree = {k for k in later & shares if k.startswith("ree2raz-")}  # their TTFTs, moved by the front-end latency
    assert later & ids == {k for k in later if k.startswith("chipbench-") and (
        k.endswith(("-ttft-c1", "-tpot-c64")) or "-mi300x" in k)} | ree
    assert len(later & ids) == 40 + 3 and all("-ttft-" in k for k in ree)
    # the closed-loop simulation (2026-12-01): every held-out point it changes is seen, and only those ("the 37
    # held-out points whose figure it changes had been computed as static batches first")
    # (the nine SGLang rows admitted afterwards as unseen checks were never predicted as static batches)
    admitted = tuple(f"{m}-tpot-{k}" for m in ("sgl056-b200-dsr1", "sgl056-b200-qwen3-235b", "sgl057-b200-glm47flash")
                     for k in ("c16-1k1k", "c16-8k1k", "c64-8k1k"))
    moved = {p["id"] for p in calibration.points() if p.get("closed_loop") and p["subset"] == "holdout"
             and p["id"] not in admitted and not p["id"].startswith(HELD_BACK)
             and abs(calibration.predict(p) / calibration.predict(_static(p)) - 1) > 1e-4}
    marked = {p["id"] for p in seen if "closed-loop simulation" in p["seen"]}
    assert moved == marked and len(marked) == 37 and "vllm-pr23151-h100-qwen3-30b-a3b-tpot-c10" in marked
    # the nine SGLang rows admitted since, the seven held-back serving rows of 2026-12-01 and the four and nine open
    # loops of 2026-12-02 (never static batches)
    assert sum(1 for p in calibration.points() if p.get("closed_loop")) == 45 + 9 + 7 + 4 + 9
    # every MI300X point carries the ROCm variant, chosen after its error with the CUDA profile was known
    assert all(p.get("engine_variant") == "rocm-0.9" and "rocm-0.9" in p["seen"]
               for p in calibration.points() if p["id"].startswith("chipbench-vllm091-mi300x"))


def test_ideal_is_a_bound_on_every_point():
    """No engine beats the roofline: calc's ideal time is at most the engine's, on every calibration input."""
    for p in calibration.points():
        if p["kind"] == "kv_tokens" or p["engine"] == "llama.cpp":  # llama.cpp: FP16-accumulate GEMMs, see engines.json
            continue
        assert calibration.predict(p, engine="ideal") * (1 if p["kind"] == "throughput" else -1) >= \
            calibration.predict(p) * (1 if p["kind"] == "throughput" else -1), p["id"]


# What docs/*/calculators/data.md says of today's held-out points, computed, so the page cannot drift from the data.
def _static(p):
    """The point as a static batch, without the closed-loop simulation (calibration.closed_loop_tpot), as every point
    was computed before 2026-12-01."""
    return {k: v for k, v in p.items() if k != "closed_loop"}


def _errors(prefix, engine=None, static=False):
    """calc's errors on the points whose id starts with ``prefix``; ``static``: as static batches (_static)."""
    return {p["id"]: calibration.predict(_static(p) if static else p, engine=engine) / p["value"] - 1
            for p in calibration.points() if p["id"].startswith(prefix)}


def test_the_held_out_points_no_choice_used_are_as_the_data_page_says():
    """Three of GPUStack's first four and Qwen's AWQ rows were first computed after the model and its constants were
    fixed; GPUStack's SGLang points informed SGLang's own costs."""
    gpustack = {k: e for k, e in _errors("gpustack-").items()
                if k != "gpustack-sglang053-h100-qwen3-8b-ttft-c4" and "-trtllm" not in k}
    assert len(gpustack) == 4  # "GPUStack's first four" (the SGLang TTFT and the TensorRT-LLM points were added later)
    # the TensorRT-LLM run through trtllm-serve: "TPOT -5 %, TTFT -79 %", "about 40 ms" beyond calc's TTFT
    trt = _errors("gpustack-trtllm")
    pts = {p["id"]: p for p in calibration.points()}
    assert [round(trt[f"gpustack-trtllm120rc1-h100-qwen3-8b-{k}-c4"] * 100) for k in ("tpot", "ttft")] == [-5, -79]
    p = pts["gpustack-trtllm120rc1-h100-qwen3-8b-ttft-c4"]
    assert round((p["value"] - calibration.predict(p)) * 1e3, -1) == 40 and "seen" not in p
    # "about 35 ms by the median" (45.46 ms), "at least about 13 ms is trtllm-serve's" (beyond SGLang's 27.70 ms total)
    assert round(45.46 - calibration.predict(p) * 1e3) == 35
    sglang = pts["gpustack-sglang053-h100-qwen3-8b-ttft-c4"]["value"]
    assert round((p["value"] - calibration.predict(p) - sglang) * 1e3) == 13
    # "NIM's ... within +2 % and +5 % of calc's TTFT"
    nim = _errors("nim-h100x2-fp8-70b-ttft-")
    assert sorted(round(v * 100) for v in nim.values()) == [2, 5]
    assert {k for k in gpustack if pts[k].get("seen")} == {"gpustack-sglang053-h100-qwen3-8b-tpot-c4",
                                                           "gpustack-vllm011-h100-qwen3-8b-ttft-c1"}
    assert pts["gpustack-sglang053-h100-qwen3-8b-ttft-c4"].get("seen")
    vllm = [e for k, e in gpustack.items() if "-tpot-" in k and "vllm" in k]
    assert [round(e, 2) for e in vllm] == [-0.08, -0.07]  # "TPOT -8 % and -7 %"
    assert -0.085 <= min(vllm) and max(vllm) <= -0.065  # "7-8 % below that run's for vLLM"
    assert abs(gpustack["gpustack-sglang053-h100-qwen3-8b-tpot-c4"]) < 0.01  # "within 1 % for SGLang"
    assert round(_errors("gpustack-sglang", engine="vllm")["gpustack-sglang053-h100-qwen3-8b-tpot-c4"], 2) == -0.05
    assert round(gpustack["gpustack-vllm011-h100-qwen3-8b-ttft-c1"], 2) == -0.66  # "-66 %; ... -52 % with the 22 ms"
    with pytest.MonkeyPatch.context() as mp:
        _with_vllm_front_end_of_one_host(mp)
        assert round(_errors("gpustack-vllm011-h100-qwen3-8b-ttft")["gpustack-vllm011-h100-qwen3-8b-ttft-c1"], 2) == -0.52
    qwen = _errors("qwen25-vllm063-a100-")
    late = [e for k, e in qwen.items() if "-awq" in k or "-0.5b-" in k or "-72b-" in k]
    assert len(late) == 8 and -0.205 <= min(late) and max(late) <= 0.145  # "-20 % to +14 %"
    assert round(qwen["qwen25-vllm063-a100-0.5b-bf16"], 2) == -0.20  # "the -20 % being the 0.5B in BF16"


def _with_vllm_multi_gpu_borrowed(monkeypatch):
    """vLLM's profile as it was until its multi-GPU cost was fitted on a vLLM run: TensorRT-LLM's 1.92 ms. The data
    page's statements about what the V1 profile gave, made before that, are checked against it."""
    monkeypatch.setattr(engines.profile("vllm"), "overhead_multi_gpu_s", 0.00192)


def _with_vllm_front_end_of_one_host(monkeypatch):
    """vLLM V1's profile as it was until its front-end latency became the median of its fit hosts': a prompt cost of
    22.9 ms fitted on the L4 run alone (21.8 ms of it per request)."""
    p = engines.profile("vllm")
    monkeypatch.setattr(p, "prefill_overhead_base_s", 0.0229)
    monkeypatch.setattr(p, "request_latency_s", 0.0229 - p.prefill_step_base_s)


def _as_before_matmul_shares(monkeypatch):
    """calc as it was until it read each GPU's measured matmul rate (2026-12-01): every GPU at the H100's share of its
    datasheet, with the constants the refits changed as they were: vLLM V1's front-end latency (prompt cost 11.71 ms,
    10.6 ms of it per request: the median of its fit hosts' residuals then), vLLM for ROCm's FP8 share of MI300X's
    datasheet (0.183, stored as 0.286 against the H100's share until the variant's refit on cached prompts of
    2026-12-02, which also moved its bandwidth share from 0.556 and made its FP8 share one for decode steps only) and
    llama.cpp's Q4_K_M bandwidth share (0.883). Edits the registry entries (undone with ``monkeypatch``) and clears the
    profile cache; callers clear it again after."""
    monkeypatch.setattr(registry.GPU, "matmul_factor", 1.0)
    data = engines._data()["engines"]
    monkeypatch.setitem(data["vllm"]["step_overhead"], "prefill_base_s", 0.01171)
    rocm = data["vllm"]["variants"]["rocm-0.9"]
    monkeypatch.setitem(rocm, "memory_efficiency", {"default": 0.556})
    monkeypatch.setitem(rocm, "compute_efficiency", {"fp8": 0.183})
    monkeypatch.setitem(rocm, "decode_compute_efficiency", {})
    monkeypatch.setitem(data["llama.cpp"]["memory_efficiency"], "q4_k_m", 0.883)
    engines.profile.cache_clear()


def _as_before_rocm_refit(monkeypatch):
    """vLLM for ROCm's variant as it was until its refit on AMD's table as timing cached prompts (2026-12-02): bandwidth
    share 0.556 and one FP8 share, 0.286 (stored against the H100's share), for prompts and decode steps alike. The
    table's points keep their prompt_cached_tokens (only those fit points read it; no held-out point moves for it).
    Edits the registry entry (undone with ``monkeypatch``) and clears the profile cache."""
    rocm = engines._data()["engines"]["vllm"]["variants"]["rocm-0.9"]
    monkeypatch.setitem(rocm, "memory_efficiency", {"default": 0.556})
    monkeypatch.setitem(rocm, "compute_efficiency", {"fp8": 0.286})
    monkeypatch.setitem(rocm, "decode_compute_efficiency", {})
    engines.profile.cache_clear()


# GLM-4.7-Flash's three concurrency-1 TPOTs, held out until SGLang's Triton split-KV kernel was fitted on them
TRITON_FIT = tuple(f"sgl057-b200-glm47flash-tpot-{k}" for k in ("c1", "c1-8k", "c1-8kout"))


def _as_before_triton(monkeypatch):
    """calc as it was until SGLang's Triton split-KV decode kernel was modelled (2026-12-01, engines sglang@triton): no
    time for that kernel beyond the roofline's KV read, GLM-4.7-Flash's three concurrency-1 TPOTs held out (seen for
    SGLang's own costs, as they were), and without the held-back rows admitted later that day (ADMITTED_S18). Edits the data in place (undone with ``monkeypatch``) and clears the profile cache."""
    kernel = engines._data()["engines"]["sglang"]["variants"]["triton"]["split_kv_decode"]
    monkeypatch.setitem(kernel, "s_per_token", 0.0)
    monkeypatch.setitem(kernel, "s_per_program", 0.0)
    data = calibration._data()  # read from the file at every call: serve one edited copy instead
    data["points"] = [p for p in data["points"] if not p["id"].startswith(HELD_BACK)]  # admitted that day and later
    for p in data["points"]:
        if p["id"] in TRITON_FIT:
            p.update(subset="holdout", seen="SGLang's own costs (and the MLA layer weight)")
    monkeypatch.setattr(calibration, "_data", lambda: data)
    engines.profile.cache_clear()


def test_the_v0_variant_and_the_per_layer_cost_are_as_the_data_page_says(monkeypatch):
    _with_vllm_multi_gpu_borrowed(monkeypatch)
    _with_vllm_front_end_of_one_host(monkeypatch)
    assert engines.profile("vllm@v0.6").prefill_overhead_base_s == 0.0229  # "the prompt cost ... which the variant keeps"
    v1 = _errors("vllm063-", engine="vllm")
    v0 = _errors("vllm063-")
    llama = [k for k in v1 if "llama" in k]
    mixtral = [k for k in v1 if "mixtral" in k]
    assert len(llama) == 6 and len(mixtral) == 3
    assert 0.055 <= min(v1[k] for k in llama) and max(v1[k] for k in llama) <= 0.205  # "+6 % to +20 %"
    assert -0.075 <= min(v1[k] for k in mixtral) and max(v1[k] for k in mixtral) <= 0.005  # "-7 % to 0 %"
    assert -0.175 <= min(v0[k] for k in llama) and max(v0[k] for k in llama) <= 0.095  # "-17 % to +9 %"
    assert -0.175 <= min(v0[k] for k in mixtral) and max(v0[k] for k in mixtral) <= -0.105  # "-11 % to -17 %"
    # the 70B TTFTs with the step's base per layer and 3.7 ms per request (the base profile: batch 1, no decode step
    # in a TTFT, so the variant's decode attention plays no part) ...
    split = _errors("trt-a100-fp16-70b-ttft-", engine="trt-llm") | _errors("trt-h100-fp8-70b-ttft-", engine="trt-llm")
    assert round(split["trt-h100-fp8-70b-ttft-128"], 3) == -0.294 and round(split["trt-a100-fp16-70b-ttft-128"], 3) == -0.257
    # ... and with the whole prefill cost in the step, per layer (the variant: gptSessionBenchmark has no front end)
    ttft = _errors("trt-")
    assert round(ttft["trt-h100-fp8-70b-ttft-128"], 3) == -0.080 and round(ttft["trt-a100-fp16-70b-ttft-128"], 3) == -0.138
    assert round(ttft["trt-h100-fp8-70b-ttft-2048"], 3) == 0.007 and round(ttft["trt-a100-fp16-70b-ttft-2048"], 3) == 0.061
    for k in ("trt-h100-fp8-7b-ttft-128", "trt-a100-fp16-7b-ttft-2048"):  # "the 32-layer fit points unchanged"
        assert ttft[k] == pytest.approx(_errors(k, engine="trt-llm")[k], abs=1e-12)
    v05 = _errors("trt05-h100-fp8-70b-").values()
    assert len(v05) == 4 and -0.015 <= min(v05) and max(v05) <= 0.045  # "-1 % ... +4 %"


def test_the_current_llama_cpp_builds_are_as_the_data_page_says():
    """docs/*/calculators/data.md on llama.cpp's 2025-2026 builds: the fit run, what the 2024 cost per token gives it,
    the held-out micro-batch-1 runs and prompt, the bytes those micro-batch-1 steps skip, the fitted cost, and the
    batched 4-bit steps calc does not model."""
    from calc import perf  # noqa: PLC0415
    from calc.memory import _Q6_K_BITS, WEIGHT_FORMATS, weights_bytes  # noqa: PLC0415

    now, then = _errors("llamacpp-202"), _errors("llamacpp-202", engine="llama.cpp@2024-01")
    pts = {q["id"]: q for q in calibration.points()}
    fit = [k for k in now if pts[k]["subset"] == "fit"]
    assert fit == ["llamacpp-2026-rtx-6000-ada-8b-q4_0-tg128"] and abs(now[fit[0]]) < 0.001  # "fitted on that run alone"
    assert round(then[fit[0]], 2) == 0.25  # "a step 25 % longer"
    assert round(pts[fit[0]]["value"] * 1e3, 2) == 5.92
    assert round(now["llamacpp-2026-rtx-4090-8b-q4_0-ub1"], 3) == 0.102  # "+10.2 % and -5.7 %"
    assert round(now["llamacpp-2025-rtx-3090-8b-q4_0-ub1"], 3) == -0.057
    # "with those bytes taken off calc would be about 16 % fast on the RTX 3090"
    p3090 = pts["llamacpp-2025-rtx-3090-8b-q4_0-ub1"]
    m = calibration._model(p3090, calibration._data()["configs"])
    skipped = m.vocab_size * m.hidden_size * _Q6_K_BITS / 8 + 3 * m.hidden_size * m.intermediate_size * \
        WEIGHT_FORMATS["q4_0"].bits / 8
    bw = registry.get_gpu("rtx-3090").memory_bandwidth_bytes_per_s * engines.profile("llama.cpp").memory_efficiency("q4_0")
    assert round((calibration.predict(p3090) - skipped / bw) / p3090["value"] - 1, 2) == -0.16
    assert round(now["llamacpp-2026-rtx-6000-ada-8b-q4_0-pp8096"], 3) == -0.032  # "-3.2 %"
    # "+39 %, +18 % and -3 %" with the 2024 profile (its cost per token; the old base had no FP16 copy for prompts)
    assert round(then["llamacpp-2026-rtx-4090-8b-q4_0-ub1"], 2) == 0.39 and round(then["llamacpp-2025-rtx-3090-8b-q4_0-ub1"], 2) == 0.18
    p, old = engines.profile("llama.cpp"), engines.profile("llama.cpp@2024-01")
    assert round(p.overhead_base_s * 1e3, 2) == 0.78 and round(old.overhead_base_s * 1e3, 2) == 2.29
    assert p.memory_efficiency("q4_0") == p.memory_efficiency("fp16") == 0.883  # "the 2024 share (0.883, the bound)"
    # "511 of the 512 steps skip the output layer and the last layer's feed-forward block, 11 % of the file's bytes"
    m = calibration._model(pts["llamacpp-2026-rtx-4090-8b-q4_0-ub1"], calibration._data()["configs"])
    lm_head = m.vocab_size * m.hidden_size * _Q6_K_BITS / 8  # output.weight at Q6_K
    last_ffn = 3 * m.hidden_size * m.intermediate_size * WEIGHT_FORMATS["q4_0"].bits / 8  # gate, up, down at Q4_0
    assert round((lm_head + last_ffn) / weights_bytes(m, "q4_0"), 2) == 0.11
    # "almost a third of that prediction is the 2024 builds' fixed cost per 512-token prompt step (16 steps x 19.0 ms)"
    pp = pts["llamacpp-2026-rtx-6000-ada-8b-q4_0-pp8096"]
    steps = -(-pp["prompt_len"] // p.prefill_chunk_tokens)
    assert steps == 16 and round(p.prefill_step_base_s, 4) == 0.019
    assert round(steps * p.prefill_step_base_s / calibration.predict(pp), 2) == 0.31
    # PR #15802's RTX 3090 rows at 1 and 8 tokens per step (155.02 and 570.67 t/s): "6.45 ... 14.02 ms", against
    # calc's 8-sequence step, "6.4 ms", "2.2x at 8"
    gpu = registry.get_gpu("rtx-3090")
    step8 = perf.perf_report(m, gpu, "q4_0", "fp16", 8, 1, 512, 1, curve_batches=(), engine="llama.cpp")["tpot_s"]
    assert round(step8 * 1e3, 1) == 6.4 and round((8 / 570.67) / step8, 1) == 2.2


def test_vllm_v1_multi_gpu_cost_and_new_held_out_runs_are_as_the_data_page_says(monkeypatch):
    """docs/*/calculators/data.md on vLLM's multi-GPU cost (fitted on one TP 8 run of vLLM 0.15.1) and the vLLM V1
    runs held out with it: the errors the page quotes, with the borrowed cost and now."""
    from calc import perf  # noqa: PLC0415

    now = _errors("vllm0")
    assert engines.profile("vllm").overhead_multi_gpu_s == 0.00123
    assert engines.profile("vllm@v0.6").overhead_multi_gpu_s == 0.00192
    pts = {p["id"]: p for p in calibration.points()}
    gptoss = ["vllm0151-h100x8-gptoss120b-tpot-c4-8kout", "vllm0151-h100x8-gptoss120b-tpot-c8-8kout",
              "vllm0151-h100x8-gptoss120b-tpot-c16-8kout"]
    with monkeypatch.context() as mp:  # "where calc with the borrowed cost was 19 %, 22 % and 26 % slow"
        _with_vllm_multi_gpu_borrowed(mp)
        borrowed = _errors("vllm0151-h100x8-gptoss120b-tpot-c", static=True)  # computed then as static batches
        assert [round(borrowed[k], 2) for k in gptoss] == [0.19, 0.22, 0.26]
    assert pts[gptoss[0]]["subset"] == "fit" and abs(now[gptoss[0]]) < 0.005
    assert [round(now[k], 2) for k in gptoss[1:]] == [0.04, 0.11]  # "+4 % and +11 %"
    # the 1,024/1,024 table: "+12 % (TP 8), +11 % (TP 4) and +8 % (TP 2)" at concurrency 64, and at TP 8 from
    # concurrency 4 to 32 "-1.4 %, +2.0 %, +2.8 % and +8.3 %" (closed loops); as static batches "-1.5 %, +1.8 %, +2.2 %,
    # +7.6 % and +12 %"
    static = _errors("vllm0151-", static=True)
    assert [round(now[f"vllm0151-h100x{tp}-gptoss120b-tpot-c64-1k1k"], 2) for tp in (8, 4, 2)] == [0.12, 0.11, 0.08]
    assert [round(now[f"vllm0151-h100x8-gptoss120b-tpot-c{c}-1k1k"], 3) for c in (4, 8, 16, 32)] == \
        [-0.014, 0.020, 0.028, 0.083]
    assert [round(static[f"vllm0151-h100x8-gptoss120b-tpot-c{c}-1k1k"], 3) for c in (4, 8, 16, 32)] == \
        [-0.015, 0.018, 0.022, 0.076] and round(static["vllm0151-h100x8-gptoss120b-tpot-c64-1k1k"], 2) == 0.12
    # "first computed after the fit": seen since, only for the closed-loop simulation
    assert all(pts[k].get("seen", "").startswith("predicted by the closed-loop simulation") for k in now if k.endswith("-1k1k"))
    # the 8,192/1,024 rows: "-4.3 % and -4.5 % at concurrency 4 and 8, the issue's only rows where calc is more than
    # 2 % optimistic; as a static batch they were -6.0 % and -8.1 %, the interleaved 8,192-token prompts being 3-6 % of
    # their TPOT"
    eight = [f"vllm0151-h100x8-gptoss120b-tpot-c{c}-8k1k" for c in (4, 8)]
    assert [round(now[k], 3) for k in eight] == [-0.043, -0.045]
    assert [round(static[k], 3) for k in eight] == [-0.06, -0.081]
    assert sorted(k for k in now if k.startswith("vllm0151-") and now[k] < -0.02) == sorted(eight)
    m = registry.get_model("gpt-oss-120b")
    prefill = perf.perf_report(m, registry.get_gpu("h100-sxm"), "mxfp4-experts", "bf16", 1, 8192, 1, 8,
                               curve_batches=(), engine="vllm")["prefill_s"]
    shares = []
    for k in eight:
        per_step = prefill * pts[k]["batch"] / pts[k]["output_len"]  # each request's prefill spread over its outputs
        shares.append(per_step / pts[k]["value"])
    assert [round(x, 2) for x in shares] == [0.03, 0.06]
    # "about what it is for the 1,024/1,024 rows at concurrency 32 and 64 (4-7 %)"
    pre1k = perf.perf_report(m, registry.get_gpu("h100-sxm"), "mxfp4-experts", "bf16", 1, 1024, 1, 8,
                             curve_batches=(), engine="vllm")["prefill_s"]
    for c in (32, 64):
        k = f"vllm0151-h100x8-gptoss120b-tpot-c{c}-1k1k"
        assert 0.035 < pre1k * c / 1024 / pts[k]["value"] < 0.07
    assert round(now["vllm020-h100-qwen3-8b-tpot-c8-mtbench"], 3) == 0.001  # "+0.1 %"
    assert round(now["vllm020-h100-qwen3-8b-fp8-tpot-c8-mtbench"], 3) == -0.084  # "-8.4 %"
    rtx = [f"vllm0251-rtx4090-qwen25-7b-tpot-c{c}" for c in (1, 4, 8, 16)]
    assert [round(pts[k]["value"] * 1e3, 2) for k in rtx] == [15.9, 16.22, 16.6, 16.8]
    assert [round(now[k], 2) for k in rtx] == [0.16, 0.15, 0.13, 0.15]  # "+16 %, +15 %, +13 % and +15 %"
    # the later no-caching series, not in the calibration set (violet-quartz/vllm-serving-experiments
    # experiment_results/concurrency_performance/run1/result_c8.json and result_c16.json: 400 prompts, mean 231 in /
    # 221 out; mean TPOT 16.72 and 17.71 ms): "+13 % and +9 % at 8 and 16"
    m, gpu = registry.get_model("qwen2.5-7b"), registry.get_gpu("rtx-4090")
    later = [perf.perf_report(m, gpu, "bf16", "bf16", c, 231, 221, 1, curve_batches=(), engine="vllm")["tpot_s"] / ms * 1e3 - 1
             for c, ms in ((8, 16.722312412052208), (16, 17.712687840133395))]
    assert [round(e, 2) for e in later] == [0.13, 0.09]
    ideal = calibration.predict(pts[rtx[0]], engine="ideal")  # "equals calc's ideal bound (15.91 ms)"
    assert round(ideal * 1e3, 2) == 15.91 and abs(ideal / pts[rtx[0]]["value"] - 1) < 0.001
    # the RTX 4090 TTFT at concurrency 1: "measured 27.4 ms where calc gave 49.8 ms" (with the one-host front
    # end), the ideal bound "22.6 ms ... only 17 % under" (both at the datasheet's matmul rate: the card's factor set to
    # 1); at its measured rate "44.4 ms" and "18.1 ms, 34 % under"; now a fit point, 31 % above calc's figure
    ttft = pts["vllm0251-rtx4090-qwen25-7b-ttft-c1"]
    with monkeypatch.context() as mp:
        _with_vllm_front_end_of_one_host(mp)
        assert round(calibration.predict(ttft) * 1e3, 1) == 44.4
        mp.setattr(registry.GPU, "matmul_factor", 1.0)
        assert round(calibration.predict(ttft) * 1e3, 1) == 49.8
        ideal = calibration.predict(ttft, engine="ideal")
        assert round(ideal * 1e3, 1) == 22.6 and round(1 - ideal / ttft["value"], 2) == 0.17
    assert round(ttft["value"] * 1e3, 1) == 27.4 and ttft["subset"] == "fit"
    assert round(now["vllm0251-rtx4090-qwen25-7b-ttft-c1"], 2) == 0.31
    ideal = calibration.predict(ttft, engine="ideal")
    assert round(ideal * 1e3, 1) == 18.1 and round(1 - ideal / ttft["value"], 2) == 0.34


def test_the_later_vllm_sources_and_the_front_end_rule_are_as_the_data_page_says(monkeypatch):
    """docs/*/calculators/data.md on chipbenchmark (vLLM 0.9.1 on H100, L40S, A100 and MI300X) and ree2raz (vLLM 0.8.5
    and 0.20.1), held out, and on the TTFTs the front-end rule was checked on."""
    # chipbenchmark's MI300X figures here are the CUDA profile's (the page's paragraph on the ROCm variant: below)
    chip, ree = _errors("chipbench-", engine="vllm"), _errors("ree2raz-")
    pts = {p["id"]: p for p in calibration.points()}
    assert all(pts[k]["subset"] == "holdout" for k in chip | ree) and len(chip) == 51
    c64 = {k.removeprefix("chipbench-vllm091-").removesuffix("-tpot-c64"): v for k, v in chip.items() if k.endswith("-tpot-c64")}
    ttft = {k.removeprefix("chipbench-vllm091-").removesuffix("-ttft-c1"): v for k, v in chip.items() if k.endswith("-ttft-c1")}
    chip = {k: v for k, v in chip.items() if k.endswith("-tpot-c1")}
    e = {k.removeprefix("chipbench-vllm091-").removesuffix("-tpot-c1"): round(v * 100) for k, v in chip.items()}
    assert [e["h100-sxmx1-llama-3.1-8b-bf16"], e["h100-sxmx1-qwen3-14b-bf16"], e["l40sx1-llama-3.1-8b-bf16"],
            e["a100-80gbx1-llama-3.1-8b-bf16"], e["a100-80gbx1-qwen3-14b-bf16"]] == [-5, -4, 2, -15, -12]
    assert [e["h100-sxmx4-llama-3.1-70b-bf16"], e["h100-sxmx4-qwen3-14b-bf16"], e["h100-sxmx4-llama-3.1-8b-bf16"],
            e["h100-sxmx2-llama-3-70b-fp8"], e["a100-80gbx2-qwen3-14b-bf16"], e["a100-80gbx4-llama-3.1-70b-bf16"]] == \
        [0, 2, 12, -9, -10, -16]
    assert round(chip["chipbench-vllm091-h100-sxmx4-llama-3.1-70b-bf16-tpot-c1"], 3) == -0.003
    a100 = [v for k, v in chip.items() if "a100" in k]  # "-10 % to -16 % throughout"
    assert len(a100) == 4 and -0.165 < min(a100) and max(a100) < -0.095
    # "the independent A100 runs in the set come closer (ree2raz's A100 40GB within 1 %, AccelMark's A100 SXM4 80GB at
    # 28,650-token contexts -5 %)" (the others are fit points or were seen) "and this host's compute-bound TTFTs agree
    # with calc (+2 %, +4 %, -8 %, -10 %)"
    assert abs(ree["ree2raz-vllm0201-a100-40gb-qwen25-7b-tpot-c1"]) < 0.01
    assert round(_errors("accelmark-vllm0201-a100-80gb")["accelmark-vllm0201-a100-80gb-llama31-8b-28k-tpot-c1"] * 100) == -5
    vllm_a100 = [p for p in calibration.points() if p["engine"] == "vllm" and p["gpu"].startswith("a100")
                 and p["kind"] == "tpot" and p["subset"] == "holdout" and not p["id"].startswith("chipbench-")]
    assert sorted(p["id"] for p in vllm_a100 if "seen" not in p) == [
        "accelmark-vllm0201-a100-80gb-llama31-8b-28k-tpot-c1", "ree2raz-vllm0201-a100-40gb-qwen25-7b-awq-tpot-c1",
        "ree2raz-vllm0201-a100-40gb-qwen25-7b-tpot-c1"]
    # the later 4-bit hunt's one row (AWQ with Marlin, same sweep): "−0.3 %"; "on an A100 80GB it would be −19 % (its
    # BF16 partner −22 %), while the measured ratio of the two, 0.444, is calc's
    # 0.446 (0.461 on the 80GB card)"; "calc moves
    # by under 0.2 points between 35 and 175 tokens"
    awq, bf16 = pts["ree2raz-vllm0201-a100-40gb-qwen25-7b-awq-tpot-c1"], pts["ree2raz-vllm0201-a100-40gb-qwen25-7b-tpot-c1"]
    assert round(ree[awq["id"]] * 100, 1) == -0.3 and awq["prompt_len"] == bf16["prompt_len"] == 45
    assert [round((calibration.predict({**p, "gpu": "a100-80gb"}) / p["value"] - 1) * 100) for p in (awq, bf16)] == [-19, -22]
    assert round(awq["value"] / bf16["value"], 3) == 0.444
    assert [round(calibration.predict({**awq, "gpu": g}) / calibration.predict({**bf16, "gpu": g}), 3)
            for g in ("a100-40gb", "a100-80gb")] == [0.446, 0.461]
    by_len = [calibration.predict({**awq, "prompt_len": n}) / awq["value"] - 1 for n in (35, 175)]
    assert abs(by_len[1] - by_len[0]) < 0.002
    assert [round(ttft[k] * 100) for k in ("a100-80gbx1-llama-3.1-8b-bf16", "a100-80gbx1-qwen3-14b-bf16",
                                           "a100-80gbx4-llama-3.1-70b-bf16", "a100-80gbx2-qwen3-14b-bf16")] == [2, 4, -8, -10]
    # the TTFT medians: "-10 % to +17 % on NVIDIA GPUs"; MI300X "TTFT -24 % to -41 %" (with its matmul share)
    nv = [v for k, v in ttft.items() if "mi300x" not in k]
    amd = [v for k, v in ttft.items() if "mi300x" in k]
    assert len(nv) == 11 and round(min(nv) * 100) == -10 and round(max(nv) * 100) == 17
    assert len(amd) == 6 and round(max(amd) * 100) == -24 and round(min(amd) * 100) == -41
    # concurrency 64, simulated as closed loops (256 requests, 64 at a time, vllm serve's token budget for the GPU):
    # "-2 % to +21 % on the H100s, -5 % on the L40S, -13 % to -20 % on the A100s ... and -35 % to -52 % on MI300X with
    # the CUDA profile"; as static batches "-14 % to +16 %, -10 %, -27 % to -38 % and -38 % to -58 %"
    def span(keys):
        return round(min(keys) * 100), round(max(keys) * 100)
    groups = ("h100", "l40s", "a100", "mi300x")
    assert all(pts[f"chipbench-vllm091-{k}-tpot-c64"]["closed_loop"] == {"num_prompts": 256, "statistic": "mean",
                                                                         "reserve_full_prompt": False} for k in c64)
    assert [span([v for k, v in c64.items() if k.startswith(g)]) for g in groups] == \
        [(-2, 21), (-5, -5), (-20, -13), (-50, -34)]
    static = {k.removeprefix("chipbench-vllm091-").removesuffix("-tpot-c64"): v
              for k, v in _errors("chipbench-", engine="vllm", static=True).items() if k.endswith("-tpot-c64")}
    assert [span([v for k, v in static.items() if k.startswith(g)]) for g in groups] == \
        [(-14, 16), (-10, -10), (-38, -27), (-58, -38)]
    # the performance page: "(256 requests, 64 in flight ...) ... 4 % to 29 % slower than its static batch on NVIDIA
    # GPUs, and up to 31 % on MI300X (18 % with the calibration set's own ROCm variant" (31 %: vLLM's profile, which the
    # calculators use on AMD GPUs too; 18 %: the variant, as the points are predicted)
    ratios = [(1 + c64[k]) / (1 + static[k]) for k in c64 if not k.startswith("mi300x")]
    assert (round(min(ratios) * 100 - 100), round(max(ratios) * 100 - 100)) == (4, 29)
    amd = {e: [calibration.predict(p, engine=e) / calibration.predict(_static(p), engine=e) for p in calibration.points()
               if p["id"].startswith("chipbench-vllm091-mi300x") and p["id"].endswith("-tpot-c64")] for e in ("vllm", None)}
    assert (round(max(amd["vllm"]) * 100 - 100), round(max(amd[None]) * 100 - 100)) == (31, 18)
    page = (Path(__file__).resolve().parents[1] / "docs" / "en" / "calculators" / "performance.md").read_text(encoding="utf-8")
    assert "(256 requests, 64 in flight" in page and "4 % to 29 % slower than its static batch on NVIDIA GPUs, and up to 31 % on MI300X\n(18 % with the calibration set's own ROCm variant" in page
    # "the BF16 steps on one GPU are each about 3.3 ms longer than calc's"; "the FP8 row misses by more (16 ms)"
    over = {k: pts[f"chipbench-vllm091-mi300xx1-{k}-tpot-c1"]["value"] - calibration.predict(pts[f"chipbench-vllm091-mi300xx1-{k}-tpot-c1"], engine="vllm")
            for k in ("llama-3.1-8b-bf16", "qwen3-14b-bf16", "llama-3-70b-fp8")}
    assert [round(v * 1e3, 1) for v in over.values()][:2] == [3.4, 3.2] and round(over["llama-3-70b-fp8"] * 1e3) == 16
    assert [e["mi300xx1-llama-3.1-8b-bf16"], e["mi300xx1-qwen3-14b-bf16"], e["mi300xx1-llama-3-70b-fp8"],
            e["mi300xx2-llama-3.1-70b-bf16"], e["mi300xx4-llama-3.1-70b-bf16"], e["mi300xx4-llama-3.1-8b-bf16"]] == \
        [-42, -30, -48, -40, -65, -54]
    mi70 = [pts[f"chipbench-vllm091-mi300xx{tp}-llama-3.1-70b-bf16-tpot-c1"]["value"] * 1e3 for tp in (2, 4)]
    assert [round(v) for v in mi70] == [34, 35]  # "34 ms per step at TP 2 and 35 ms at TP 4"
    assert [round(ree[f"ree2raz-{k}-tpot-c1"] * 100, 1) for k in ("vllm085-l4-qwen25-7b", "vllm0201-a100-40gb-qwen25-7b")] \
        == [1.5, -0.7]
    # the TTFTs: now and with the one-host front end ("it was")
    assert [round(ree[f"ree2raz-{k}"] * 100) for k in ("vllm085-l4-qwen25-7b-ttft-c1", "vllm085-l4-qwen25-7b-ttft-c1-1800",
                                                      "vllm0201-a100-40gb-qwen25-7b-ttft-c1")] == [1, 3, 2]
    with monkeypatch.context() as mp:
        _with_vllm_front_end_of_one_host(mp)
        then = _errors("ree2raz-")
        assert [round(then[f"ree2raz-{k}"] * 100) for k in ("vllm085-l4-qwen25-7b-ttft-c1",
                                                            "vllm0201-a100-40gb-qwen25-7b-ttft-c1")] == [13, 36]
    fit = _errors("vllm-l4-qwen0.5b-ttft-c1") | _errors("vllm0251-rtx4090-qwen25-7b-ttft-c1")
    assert sorted(round(v * 100) for v in fit.values()) == [-31, 31]  # "by 31 %" either side of calc
    # "calc would match at about 1,750 tokens" for the L4's long prompt (at the L4's measured matmul rate; at the
    # H100's share of its datasheet it matched at about 2,300-2,400)
    long = dict(pts["ree2raz-vllm085-l4-qwen25-7b-ttft-c1-1800"])
    errs = [calibration.predict(dict(long, prompt_len=n)) / long["value"] - 1 for n in (1700, 1800)]
    assert errs[0] < 0 < errs[1]
    with pytest.MonkeyPatch.context() as mp:
        _as_before_matmul_shares(mp)
        errs = [calibration.predict(dict(long, prompt_len=n)) / long["value"] - 1 for n in (2300, 2400)]
    engines.profile.cache_clear()
    assert errs[0] < 0 < errs[1]
    # "one excluded source (an RTX A6000 run that repeated one prompt) would alone have made it 21.8 ms": ld-singh's
    # p50 47 ms at about 40 prompt tokens, vLLM 0.23.0 (ai-factory-ops-lab inference-benchmark-report.md)
    from calc import perf  # noqa: PLC0415
    gpu_s = perf.perf_report(registry.get_model("qwen2.5-7b"), registry.get_gpu("rtx-a6000"), "bf16", "bf16", 1, 40, 1, 1,
                             curve_batches=(), engine="vllm", request_latency_s=0.0)["ttft_s"]
    import statistics  # noqa: PLC0415
    _, per_source = _fit_script().front_end_latency("vllm")
    assert round(statistics.median([*per_source.values(), 0.047 - gpu_s]) * 1e3, 1) == 21.8


# AMD's vLLM 0.9.1 latency table (ROCm/vllm docs/dev-docker/README.md at d61a61c13, 'MI300X Latency (sec)'), copied
# again here from the README, apart from calibration.json: batches 1, 2, 4, ..., 128 per (model, prompt tokens)
AMD_VLLM091_LATENCY_S = {
    ("llama-3.1-70b", 128): (17.236, 18.057, 18.450, 19.677, 22.072, 24.932, 33.287, 46.484),
    ("llama-3.1-70b", 2048): (17.500, 18.055, 18.858, 20.161, 22.347, 25.966, 35.324, 52.394),
    ("llama-3.1-405b", 128): (48.453, 49.268, 51.136, 54.226, 57.274, 68.901, 88.631, 117.027),
    ("llama-3.1-405b", 2048): (48.362, 49.121, 52.347, 54.471, 57.841, 70.538, 91.452, 125.471),
}


def test_the_amd_rocm_fit_points_are_the_readme_table():
    """Each amd-vllm091-rocm-* point is batch × 2,048 / the latency its source quotes, and that latency is the README's
    (a second transcription, above)."""
    import re  # noqa: PLC0415

    pts = [p for p in calibration.points() if p["id"].startswith("amd-vllm091-rocm-")]
    assert len(pts) == 32
    for p in pts:
        quoted = float(re.search(r"'MI300X Latency \(sec\)' ([0-9]+\.[0-9]+)", p["source"]["settings"]).group(1))
        table = AMD_VLLM091_LATENCY_S[(p["model"], p["prompt_len"])][(1, 2, 4, 8, 16, 32, 64, 128).index(p["batch"])]
        assert quoted == table, p["id"]
        assert p["value"] == round(p["batch"] * p["output_len"] / table, 2) and p["output_len"] == 2048, p["id"]
        assert (p["gpu"], p["tp"], p["weights"], p["kv_dtype"]) == ("mi300x", 8, "fp8", "fp16")


def test_the_rocm_variant_is_as_the_data_page_says(monkeypatch):
    """docs/*/calculators/data.md, "vLLM for ROCm's own constants": vllm@rocm-0.9, fitted on AMD's vLLM 0.9.1 latency
    table (points amd-vllm091-rocm-*), checked on chipbenchmark's MI300X points."""
    v, cuda = engines.profile("vllm@rocm-0.9"), engines.profile("vllm")
    # the variant's own shares and cost; the rest is the CUDA profile's
    assert (v.memory_efficiency("bf16"), v.memory_efficiency("fp8"), v.overhead_base_s, v.decode_compute_efficiency("fp8")) \
        == (0.547, 0.547, 0.00275, 0.138)
    # read against the H100's matmul share; of MI300X's datasheet FP8 peak that is "0.088" for decode steps and, for a
    # prompt, the CUDA profile's 0.482: "0.308" (registry GPU.matmul_factor)
    mi300x = registry.get_gpu("mi300x")
    assert round(mi300x.matmul_factor, 3) == 0.640 and round(v.decode_compute_efficiency("fp8", mi300x), 3) == 0.088
    assert v.compute_efficiency("fp8") == cuda.compute_efficiency("fp8") == 0.482
    assert round(v.compute_efficiency("fp8", mi300x), 3) == 0.308
    assert round(cuda.memory_efficiency("bf16"), 3) == 0.812 and round(cuda.overhead_base_s * 1e3, 2) == 1.07
    assert (v.compute_efficiency("bf16"), v.decode_compute_efficiency("bf16"), v.overhead_multi_gpu_s, v.overhead_per_seq_s,
            v.prefill_overhead_base_s) == (cuda.compute_efficiency("bf16"), cuda.compute_efficiency("bf16"),
                                           cuda.overhead_multi_gpu_s, cuda.overhead_per_seq_s, cuda.prefill_overhead_base_s)
    fit = _errors("amd-vllm091-rocm-")
    pts = {p["id"]: p for p in calibration.points() if p["id"] in fit}
    assert len(fit) == 32 and all(p["subset"] == "fit" and p["engine_variant"] == "rocm-0.9" for p in pts.values())
    # the timed prompts were cache hits: V1's hit is whole 16-token blocks of at most prompt_len - 1 tokens
    assert {(p["prompt_len"], p["prompt_cached_tokens"]) for p in pts.values()} == {(128, 112), (2048, 2032)}
    # "At batch 1 the CUDA profile's throughput is 40 % (70B) and 42 % (405B) above the measured"
    cuda_fit = _errors("amd-vllm091-rocm-", engine="vllm")
    assert [round(cuda_fit[f"amd-vllm091-rocm-mi300xx8-llama-3.1-{m}-fp8-in128-bs1"] * 100) for m in ("70b", "405b")] \
        == [40, 42]
    # the front end: a prompt's fixed cost stays the CUDA profile's, split 2.75 ms (step) + 11.66 ms (engines.json note)
    assert round(v.request_latency_s * 1e3, 2) == 11.66 and round(cuda.request_latency_s * 1e3, 2) == 13.34
    small = [e for k, e in fit.items() if pts[k]["batch"] <= 4]
    assert len(small) == 12 and round(min(small) * 100, 1) == -3.2 and round(max(small) * 100, 1) == 4.1
    large = [e for k, e in fit.items() if pts[k]["batch"] >= 16]
    assert round(min(large) * 100) == -21 and round(max(large) * 100) == 24  # "loose at 16 to 128 sequences"
    # "the 405B's 2,048-token rows take 2.8 s (64 sequences) and 8.4 s (128) longer than its 128-token rows, where
    # computing their 1,920 extra prompt tokens each, uncached, would alone take 4.8 s and 9.5 s at 100 % of MI300X's
    # FP8 datasheet peak"
    from calc import perf  # noqa: PLC0415

    m405 = registry.get_model("llama-3.1-405b")
    for b, gap, bound in ((64, 2.8, 4.8), (128, 8.4, 9.5)):
        secs = {n: b * 2048 / pts[f"amd-vllm091-rocm-mi300xx8-llama-3.1-405b-fp8-in{n}-bs{b}"]["value"] for n in (128, 2048)}
        extra = (perf.prefill_flops(m405, b, 2048) - perf.prefill_flops(m405, b, 128)) / (8 * mi300x.peak_flops("fp8"))
        assert (round(secs[2048] - secs[128], 1), round(extra, 1)) == (gap, bound) and gap < bound
    # before the refit (one FP8 share of 0.286 for prompts and decodes, prompts uncached): "at 128 sequences of 2,048
    # tokens 12.5 s of the 70B's 53.5 s"; the refit's first form (one share of 0.139 for both): chipbenchmark's FP8
    # points "+148 %" (TTFT) and "+28 %" (TPOT at concurrency 64)
    variant = engines._data()["engines"]["vllm"]["variants"]["rocm-0.9"]
    big = {**pts["amd-vllm091-rocm-mi300xx8-llama-3.1-70b-fp8-in2048-bs128"]}
    del big["prompt_cached_tokens"]
    fp8 = {p["id"]: p for p in calibration.points() if p["id"].startswith("chipbench-vllm091-mi300xx1-llama-3-70b-fp8-")}
    monkeypatch.setitem(variant, "memory_efficiency", {"default": 0.556})
    monkeypatch.setitem(variant, "decode_compute_efficiency", {})
    monkeypatch.setitem(variant, "compute_efficiency", {"fp8": 0.286})
    engines.profile.cache_clear()
    try:
        r = perf.perf_report(registry.get_model(big["model"]), mi300x, "fp8", "fp16", 128, 2048, 2048, 8,
                             curve_batches=(), engine="vllm@rocm-0.9")
        assert (round(r["ttft_s"], 1), round(128 * 2048 / r["throughput_tok_per_s"], 1)) == (12.5, 53.5)
        monkeypatch.setitem(variant, "memory_efficiency", {"default": 0.547})
        monkeypatch.setitem(variant, "compute_efficiency", {"fp8": 0.139})
        engines.profile.cache_clear()
        one = {"-".join(k.split("-")[-2:]): round((calibration.predict(q) / q["value"] - 1) * 100) for k, q in fp8.items()}
        assert (one["ttft-c1"], one["tpot-c64"]) == (148, 28)
    finally:
        monkeypatch.undo()
        engines.profile.cache_clear()
    # AMD's V0 table (README at 1f732c1f1, vLLM 0.9.0.1: the 405B's 2,048- and 128-token rows at 64 and 128 sequences),
    # less this table's differences (the longer-context decode): "about 19.5 s and 35.9 s, about 0.24 to 0.27 of the FP8
    # datasheet"
    v0 = {64: (104.728, 82.362), 128: (154.041, 109.698)}
    gaps = {b: round(secs[0] - secs[1] - (b * 2048 / pts[f"amd-vllm091-rocm-mi300xx8-llama-3.1-405b-fp8-in2048-bs{b}"]["value"]
                                          - b * 2048 / pts[f"amd-vllm091-rocm-mi300xx8-llama-3.1-405b-fp8-in128-bs{b}"]["value"]), 1)
            for b, secs in v0.items()}
    shares = [round((perf.prefill_flops(m405, b, 2048) - perf.prefill_flops(m405, b, 128)) / (8 * mi300x.peak_flops("fp8"))
                    / gaps[b], 2) for b in v0]
    assert gaps == {64: 19.5, 128: 35.9} and shares == [0.24, 0.27]
    # "only the rows at 64 and 128 sequences set it": a smaller decode share moves no row below 64 sequences
    with pytest.MonkeyPatch.context() as mp:
        mp.setitem(variant, "decode_compute_efficiency", {"fp8": 0.9 * variant["decode_compute_efficiency"]["fp8"]})
        engines.profile.cache_clear()
        lower = _errors("amd-vllm091-rocm-")
    engines.profile.cache_clear()
    assert {k for k in fit if abs(lower[k] - fit[k]) > 1e-9} == {k for k in fit if pts[k]["batch"] >= 64} - {
        "amd-vllm091-rocm-mi300xx8-llama-3.1-70b-fp8-in2048-bs64"}
    # the artefact: "an FP8 decode step of the 70B on eight MI300X is slower than a BF16 one from 128 sequences (21.4
    # against 19.7 ms at 128 tokens of prompt)"
    m70 = registry.get_model("llama-3.1-70b")
    step = {(w, b): perf.perf_report(m70, mi300x, w, "fp16", b, 128, 2048, 8, curve_batches=(), engine="vllm@rocm-0.9",
                                     cached_prompt_tokens=112)["tpot_s"] * 1e3 for w in ("fp8", "bf16") for b in (64, 128)}
    assert step[("fp8", 64)] < step[("bf16", 64)] and (round(step[("fp8", 128)], 1), round(step[("bf16", 128)], 1)) == (21.4, 19.7)
    # "over the 32 rows a median of 6.4 %"
    assert round(statistics.median(abs(e) for e in fit.values()) * 100, 1) == 6.4
    # the data page says so in both languages
    root = Path(__file__).resolve().parents[1]
    page = {lang: (root / "docs" / lang / "calculators" / "data.md").read_text(encoding="utf-8") for lang in ("en", "zh")}
    flat = " ".join(page["en"].split())
    assert all(t in flat for t in ("in this one 2.8 s and 8.4 s", "4.8 s and 9.5 s", "0.139 (0.089 of the datasheet)",
                                   "0.138 as stored, 0.088 of the datasheet", "from +24 % to +148 %", "from −6 % to +28 %",
                                   "about 19.5 s (64 sequences) and 35.9 s (128), about 0.24 to 0.27",
                                   "(21.4 against 19.7 ms", "−21 % to +24 % off, over the 32 rows a median of 6.4 %"))
    zh = page["zh"].replace("\n", "")
    assert all(t in zh for t in ("2.8 s 和 8.4 s", "4.8 s 和 9.5 s", "0.139（数据手册的 0.089）", "0.138，即数据手册的 0.088",
                                 "从 +24 % 变为 +148 %", "从 −6 % 变为 +28 %", "约 19.5 s（64 个序列）和 35.9 s（128 个）",
                                 "0.24 到 0.27", "21.4 ms 对 19.7 ms", "−21 % 到 +24 %，32 行的中位数是 6.4 %"))
    # chipbenchmark: CUDA profile -> variant
    now, was = _errors("chipbench-vllm091-mi300x"), _errors("chipbench-vllm091-mi300x", engine="vllm")

    def pair(k):
        key = f"chipbench-vllm091-mi300xx{k}"
        return round(was[key] * 100), round(now[key] * 100)
    assert [pair(k + "-tpot-c1") for k in ("1-llama-3.1-8b-bf16", "1-qwen3-14b-bf16", "1-llama-3-70b-fp8",
                                           "2-llama-3.1-70b-bf16", "4-llama-3.1-8b-bf16", "4-llama-3.1-70b-bf16")] == \
        [(-42, 0), (-30, 15), (-48, -19), (-40, -12), (-54, -29), (-65, -49)]
    c64 = [k for k in now if k.endswith("-tpot-c64")]
    assert (round(min(was[k] for k in c64) * 100), round(max(was[k] for k in c64) * 100)) == (-50, -34)
    assert (round(min(now[k] for k in c64) * 100), round(max(now[k] for k in c64) * 100)) == (-33, -6)
    # "as static batches, before the closed loop was simulated: -58 % to -38 % and -42 % to -14 %"
    was_s = _errors("chipbench-vllm091-mi300x", engine="vllm", static=True)
    now_s = _errors("chipbench-vllm091-mi300x", static=True)
    assert (round(min(was_s[k] for k in c64) * 100), round(max(was_s[k] for k in c64) * 100)) == (-58, -38)
    assert (round(min(now_s[k] for k in c64) * 100), round(max(now_s[k] for k in c64) * 100)) == (-42, -14)
    bf16_ttft = [k for k in now if k.endswith("-ttft-c1") and "-bf16-" in k]
    assert all(now[k] == pytest.approx(was[k], abs=1e-9) for k in bf16_ttft)  # "leaves BF16 prefill as it was"
    assert (round(min(now[k] for k in bf16_ttft) * 100), round(max(now[k] for k in bf16_ttft) * 100)) == (-41, -26)
    assert pair("1-llama-3-70b-fp8-ttft-c1") == (-24, -24)  # "stays at -24 %" (a prompt takes the CUDA profile's share)
    # that host's TP 4: 35 ms (TP 4) vs 34 ms (TP 2) for the 70B; 8.4 ms (TP 4) vs 8.0 ms (TP 1) for the 8B; AMD's 70B
    # on eight GPUs: 17.236 s / 2,048 tokens = 8.4 ms
    ms = {p["id"]: round(p["value"] * 1e3, 1) for p in calibration.points() if p["id"].startswith("chipbench-vllm091-mi300x")}
    assert [round(ms[f"chipbench-vllm091-mi300xx{k}-tpot-c1"]) for k in ("4-llama-3.1-70b-bf16", "2-llama-3.1-70b-bf16")] \
        == [35, 34]
    assert [ms[f"chipbench-vllm091-mi300xx{k}-llama-3.1-8b-bf16-tpot-c1"] for k in (4, 1)] == [8.4, 8.0]
    assert round(17.236 / 2048 * 1e3, 1) == 8.4
    # the variant's TP 4 step for the 70B at concurrency 1 is half the measured ("gives half that at TP 4")
    assert round(1 + now["chipbench-vllm091-mi300xx4-llama-3.1-70b-bf16-tpot-c1"], 1) == 0.5
    # "As static batches the 70B's batch-64 row at TP 2 misses too (-36 %; in FP8 on one GPU -22 %) ... with the prompts
    # prefilled inside the decode steps counted they are -25 % and -8 %"
    two = ("2-llama-3.1-70b-bf16-tpot-c64", "1-llama-3-70b-fp8-tpot-c64")
    assert [round(now_s[f"chipbench-vllm091-mi300xx{k}"] * 100) for k in two] == [-36, -22]
    assert [pair(k)[1] for k in two] == [-25, -8]
    beyond = sorted(k for k, v in now.items() if "-tpot-" in k and v < -0.30)
    assert beyond == ["chipbench-vllm091-mi300xx4-llama-3.1-70b-bf16-tpot-c1", "chipbench-vllm091-mi300xx4-llama-3.1-70b-bf16-tpot-c64"]
    # the warning's "29 %" against 0.9.1's 17.236 s (test_calc_api); chapter 11's 6.0 ms (below)
    bs1 = pts["amd-vllm091-rocm-mi300xx8-llama-3.1-70b-fp8-in128-bs1"]
    cuda_s = 2048 / calibration.predict(bs1, engine="vllm")
    assert round(cuda_s, 1) == 12.3 and round((1 - cuda_s / 17.236) * 100) == 29
    assert round(bs1["value"] * 17.236) == 2048
    # chapter 11 (section 11.5.2) quotes the same: "about 8.4 ms a token, where calc's vLLM profile ... gives about
    # 6.0 ms"; "about 55 % of the datasheet bandwidth, where vLLM on NVIDIA GPUs reaches about 81 %"
    root = Path(__file__).resolve().parents[1]
    ch11 = {lang: (root / "docs" / lang / "ch11" / "index.md").read_text(encoding="utf-8") for lang in ("en", "zh")}
    figures = (f"{17.236 / 2048 * 1e3:.1f} ms", f"{cuda_s / 2048 * 1e3:.1f} ms", f"{v.memory_efficiency('fp8') * 100:.0f} %",
               f"{cuda.memory_efficiency('fp8') * 100:.0f} %")  # the FP8 shares chapter 11's 70B reads
    assert figures == ("8.4 ms", "6.0 ms", "55 %", "81 %")
    # the measured 8.4 ms is typed (AMD's table); calc's three figures are placeholders, which compute the same
    tpot = "perf.tpot_s model=llama-3.1-70b gpu=mi300x tp=8 weights=fp8 prompt-len=128 output-len=2048 engine=vllm"
    shares = ("engine.vllm@rocm-0.9.memory_efficiency_fp8", "engine.vllm.memory_efficiency_fp8")
    assert all("8.4 ms" in text and f"{{{{ calc {tpot} | ms:1 }}}}" in text
               and all(f"{{{{ calc {sh} | %:0 }}}}" in text for sh in shares) for text in ch11.values())
    params = dict(arg.split("=") for arg in tpot.split()[1:])
    # (the placeholder's TPOT leaves out the prompt that the point's end-to-end time includes: the same 6.0 ms)
    assert round(api.run("perf", params)["tpot_s"] * 1e3, 1) == round(cuda_s / 2048 * 1e3, 1) == 6.0
    assert [registry.lookup(sh) for sh in shares] == [v.memory_efficiency("fp8"), cuda.memory_efficiency("fp8")]


def test_the_hf_profile_is_as_the_data_page_says():
    """docs/*/calculators/data.md on generate(): launch cost per layer by host, Qwen's small models, the batch-32
    step, the two fit points at either end, and the A10G row left out."""
    pts = {p["id"]: p for p in calibration.points()}
    per_layer_ms = {  # the measured batch-1 step / the model's layers
        "h100": pts["hf-h100-8b-tpot-b1"]["value"] * 1e3 / 32,
        "h200": pts["hf-h200-8b-tpot-b1-lab-ch03"]["value"] * 1e3 / 32,
        "a100": pts["hf-optbench-a100-llama2-7b-tpot-b1"]["value"] * 1e3 / 32,
        "h20": 1e3 / pts["hf-qwen3-h20-8b"]["value"] / 36,
    }
    assert {k: round(v, 2) for k, v in per_layer_ms.items()} == {"h100": 0.97, "h200": 0.73, "a100": 0.81, "h20": 0.61}
    small = [pts["hf-qwen25-a100-0.5b"]["value"] / pts["hf-qwen25-a100-7b"]["value"],
             pts["hf-qwen3-h20-0.6b"]["value"] / pts["hf-qwen3-h20-8b"]["value"]]
    assert 1.15 <= min(small) and max(small) < 1.35  # "only 1.2 to 1.3 times faster"
    assert round(pts["hf-optbench-a100-llama2-7b-tpot-b32"]["value"] * 1e3, 1) == 51.7
    assert round(pts["hf-optbench-a100-llama2-7b-tpot-b1"]["value"] * 1e3, 1) == 25.8
    hf = _errors("hf-")
    assert round(hf["hf-h100-8b-tpot-b1"], 2) == -0.19 and round(hf["hf-qwen3-h20-8b"], 2) == -0.22
    assert pts["hf-h200-8b-tpot-b1-lab-ch03"]["subset"] == "holdout"
    # the row left out (no versions stated): fxmarty's A10G run, LLaMA-7B fp16, 1,000 + 200 tokens, 23.15 tokens/s
    a10g = dict(pts["hf-optbench-a100-llama2-7b-aug23"], gpu="a10g", prompt_len=1000, output_len=200, value=23.15)
    assert round(calibration.predict(a10g) / 23.15 - 1, 2) == -0.37
    assert "hf-a10g-llama7b-2023" not in pts


def test_the_sglang_profile_is_as_the_data_page_says(monkeypatch):
    """docs/*/calculators/data.md on SGLang's own fixed costs and its held-out points."""
    from calc import engines

    p = engines.profile("sglang")
    assert (p.overhead_base_s, p.overhead_multi_gpu_s, p.prefill_overhead_base_s) == (0.00122, 0.00025, 0.02845)
    assert (p.mla_step_layer_weight, p.mla_request_layer_weight) == (2.99, 2.5)  # "2.99 ordinary layers ... 2.5"
    assert p.overhead_layers_fitted == 32 and p.request_latency_per_layer and not p.prefill_in_step
    assert p.prompt_cost_in_step and p.prefill_alone  # "the step that carries the prompt pays that cost", prompts alone
    # "with vLLM's 1.07 ms and TensorRT-LLM's 1.92 ms multi-GPU cost, borrowed before": the earlier profile's costs
    with monkeypatch.context() as mp:
        _with_vllm_multi_gpu_borrowed(mp)
        before = _errors("sgl05", engine="vllm")
        assert (engines.profile("vllm").overhead_base_s, engines.profile("vllm").overhead_multi_gpu_s) == (0.00107, 0.00192)
    assert round(before["sgl056-b200-gptoss120b-tpot-c1"], 2) == 0.64 and round(before["sgl058-b200-gptoss120b-tpot-c1"], 2) == 0.57
    pts = {q["id"]: q for q in calibration.points()}
    assert round(pts["sgl056-b200-gptoss120b-ttft-c1"]["value"] * 1e3) == 34 and round(pts["sgl056-b200-qwen3-235b-ttft-c1"]["value"] * 1e3) == 99
    now = _errors("sgl05")
    assert round(now["sgl056-a100-llama70b-ttft-c1"], 2) == 0.02 and round(now["sgl056-a100-llama70b-ttft-c1-8k"], 2) == 0.29
    assert round(now["sgl056-b200-qwen3-235b-ttft-c1-8k"], 2) == -0.17
    assert round(now["sgl051-h100-gptoss120b-tpot-b1"], 2) == -0.20 and round(now["sgl051-b200-gptoss120b-tpot-b1-tp4"], 2) == 0.02
    assert round(now["sgl056-b200-qwen3-235b-tpot-c1"], 2) == -0.35
    assert (pts["sgl056-b200-qwen3-235b-tpot-c1"]["value"], pts["sgl058-b200-qwen3-235b-tpot-c1"]["value"]) == (0.01012, 0.0067)
    # DeepSeek-R1 and GLM-4.7-Flash, first with every layer counted as an ordinary one, then as the page says
    flat = _mla_errors(1.0, 1.0)
    assert round(flat["sgl056-b200-dsr1-tpot-c1"], 2) == -0.51
    assert round(flat["sgl056-b200-dsr1-ttft-c1"], 2) == -0.54 and round(flat["sgl056-b200-dsr1-ttft-c1-8k"], 2) == -0.46
    assert round(flat["sgl057-b200-glm47flash-tpot-c1"], 2) == -0.66 and round(flat["sgl057-b200-glm47flash-ttft-c1"], 2) == -0.61
    per_layer = {k: pts[k]["value"] / registry_layers(pts[k]) for k in ("sgl056-b200-dsr1-ttft-c1", "sgl056-b200-qwen3-235b-ttft-c1")}
    assert round(per_layer["sgl056-b200-dsr1-ttft-c1"] / per_layer["sgl056-b200-qwen3-235b-ttft-c1"], 1) == 2.4  # "about 2.4 times"
    # GLM-4.7-Flash's figures here are without its Triton variant's decode kernel (engines sglang@triton), as the page
    # gives them for that step; with it: test_the_sglang_triton_variant_is_as_the_data_page_says
    now = _errors("sgl05") | _errors("sgl057", engine="sglang")
    assert abs(now["sgl056-b200-dsr1-tpot-c1"]) < 0.01 and abs(now["sgl056-b200-dsr1-ttft-c1"]) < 0.01  # the fit points
    assert round(calibration.predict(pts["sgl056-b200-dsr1-ttft-c1"]) / 0.12576 - 1, 2) == 0.22  # "calc is 22 % high"
    assert round(now["sgl056-b200-dsr1-ttft-c1-8k"], 2) == 0.04
    assert (round(now["sgl056-b200-dsr1-tpot-c1-8k"], 2), round(now["sgl056-b200-dsr1-tpot-c1-8kout"], 2)) == (-0.01, 0.0)
    assert [round(now[f"sgl056-b200-dsr1-tpot-c{c}-8kout"], 2) for c in (16, 64)] == [-0.02, 0.0]  # "-2 % and 0 %"
    mixed = _sglang_mixed_errors()  # "with the mixed steps and the prompt cost off the GPU used before"
    assert [round(mixed[f"sgl056-b200-dsr1-tpot-c{c}-8kout"], 2) for c in (16, 64)] == [-0.04, -0.08]
    static = _errors("sgl05", static=True)
    assert [round(static[f"sgl056-b200-dsr1-tpot-c{c}-8kout"], 2) for c in (16, 64)] == [-0.04, -0.07]
    h200 = [round(now[f"sgl057-h200-dsr1-tpot-c{c}"] * 100) for c in (8, 16, 64)]
    assert h200 == [19, 20, 18]  # "now +19 %, +20 % and +18 %", with InferenceX's lengths (819 to 1,024 tokens)
    assert [round(mixed[f"sgl057-h200-dsr1-tpot-c{c}"], 2) for c in (8, 16, 64)] == [0.11, 0.08, -0.08]  # "with the mixed steps"
    assert all(pts[f"sgl057-h200-dsr1-tpot-c{c}"]["closed_loop"] | {"lengths_note": None} == {
        "num_prompts": 10 * c, "statistic": "mean", "prompt": "819-1024", "output": "819-1024", "lengths_note": None}
        for c in (8, 16, 64))
    assert [round(static[f"sgl057-h200-dsr1-tpot-c{c}"], 2) for c in (8, 16, 64)] == [0.11, 0.07, -0.08]
    assert round(now["sgl057-b200-glm47flash-ttft-c1"], 2) == -0.13 and round(now["sgl057-b200-glm47flash-tpot-c1"], 2) == -0.26
    glm = pts["sgl057-b200-glm47flash-ttft-c1"]
    assert round(calibration.predict(glm) / 0.09455 - 1, 2) == 0.21  # "calc is 21 % above the median, 95 ms"
    assert round(calibration.predict(glm) / 0.09745 - 1, 2) == 0.18  # "and 18 % above the 97 ms of the reasoning run"
    keys = ("tpot-c1-8kout", "tpot-c16-8kout", "tpot-c64-8kout", "tpot-c1-8k", "ttft-c1-8k")
    assert [round(now[f"sgl057-b200-glm47flash-{k}"], 2) for k in keys] == [-0.40, -0.38, -0.36, -0.48, -0.56]
    assert [round(mixed[f"sgl057-b200-glm47flash-{k}"], 2) for k in keys[1:3]] == [-0.40, -0.41]  # data page until 2026-12-01
    long = pts["sgl057-b200-glm47flash-ttft-c1-8k"]
    assert round(calibration.predict(long) / 0.19559 - 1, 2) == -0.33  # "against the median, 196 ms, -33 %"
    later = ("-1k1k", "-8k1k")  # the 1,000-token-output rows admitted as unseen checks (below)
    # engines.json: DeepSeek-R1's other runs on the B200 page and its runs at concurrency 16 and 64 "within -2 % to +11 %",
    # its H200 runs "at +18 % to +20 %"; Qwen3-235B's 1,000-token-output runs "at -12 % to -1 %"
    b200 = [now[k] for k in now if "b200-dsr1" in k and k not in ("sgl056-b200-dsr1-ttft-c1", "sgl056-b200-dsr1-tpot-c1")]
    assert (round(min(b200), 2), round(max(b200), 2)) == (-0.02, 0.11)
    assert [round(now[f"sgl057-h200-dsr1-tpot-c{c}"], 2) for c in (8, 16, 64)] == [0.19, 0.2, 0.18]
    qwen = [now[k] for k in now if "qwen3-235b" in k and k.endswith(later)]
    assert (round(min(qwen), 2), round(max(qwen), 2)) == (-0.12, -0.01)
    # those rows, computed once with the mixed steps: "DeepSeek-R1's TPOT was -17 % (1,000-token prompts, concurrency
    # 16), -16 % and -30 % (8,000-token prompts, concurrency 16 and 64)"; Qwen3-235B's "-25 %, -20 % and -33 %";
    # GLM-4.7-Flash's "-33 % ..., -53 % and -64 %"; seen since SGLang's steps of prompts were chosen after them
    rows = {k: v for k, v in mixed.items() if k.endswith(later)}
    assert {k: round(v * 100) for k, v in rows.items()} == {
        "sgl056-b200-dsr1-tpot-c16-1k1k": -17, "sgl056-b200-dsr1-tpot-c16-8k1k": -16, "sgl056-b200-dsr1-tpot-c64-8k1k": -30,
        "sgl056-b200-qwen3-235b-tpot-c16-1k1k": -25, "sgl056-b200-qwen3-235b-tpot-c16-8k1k": -20,
        "sgl056-b200-qwen3-235b-tpot-c64-8k1k": -33,
        "sgl057-b200-glm47flash-tpot-c16-1k1k": -33, "sgl057-b200-glm47flash-tpot-c16-8k1k": -53,
        "sgl057-b200-glm47flash-tpot-c64-8k1k": -64}
    assert all("steps of their own" in pts[k].get("seen", "") and pts[k]["closed_loop"]["output"] == "2-1000" for k in rows)
    # and now: "DeepSeek-R1's three rows are +2 %, +2 % and +11 % and Qwen3-235B's -12 %, -7 % and -1 %", GLM-4.7-Flash's
    # "-19 %, -43 % and -42 %"
    assert {k: round(now[k] * 100) for k in rows} == {
        "sgl056-b200-dsr1-tpot-c16-1k1k": 2, "sgl056-b200-dsr1-tpot-c16-8k1k": 2, "sgl056-b200-dsr1-tpot-c64-8k1k": 11,
        "sgl056-b200-qwen3-235b-tpot-c16-1k1k": -12, "sgl056-b200-qwen3-235b-tpot-c16-8k1k": -7,
        "sgl056-b200-qwen3-235b-tpot-c64-8k1k": -1,
        "sgl057-b200-glm47flash-tpot-c16-1k1k": -19, "sgl057-b200-glm47flash-tpot-c16-8k1k": -43,
        "sgl057-b200-glm47flash-tpot-c64-8k1k": -42}
    # "Its first computation ran SGLang's closed loops at the profile's 8,192-token chunk; switching to SGLang's own ...
    # moved the nine rows by up to 3.4 points (DeepSeek-R1's at concurrency 64 from +14 % to +11 %)"
    first = {k: calibration.predict(_as_before_sglang_steps(pts[k]), engine="sglang") / pts[k]["value"] - 1 for k in rows}
    assert round(first["sgl056-b200-dsr1-tpot-c64-8k1k"] * 100) == 14
    assert round(max(abs(now[k] - first[k]) for k in rows) * 100, 1) == 3.4
    # "taking the larger of them instead fits the one dense long-prompt point better, +29 % to +11 %, and the MoE ones
    # worse" (DeepSeek-R1's and Qwen3-235B's 4,194-token TTFTs, +4 % and -17 % now)
    long_ttft = ("sgl056-a100-llama70b-ttft-c1-8k", "sgl056-b200-dsr1-ttft-c1-8k", "sgl056-b200-qwen3-235b-ttft-c1-8k")
    assert [round(now[k], 2) for k in long_ttft] == [0.29, 0.04, -0.17]
    with monkeypatch.context() as mp:
        mp.setitem(engines._data()["engines"]["sglang"]["step_overhead"], "overlaps_gpu", True)
        engines.profile.cache_clear()
        try:
            larger = [round(calibration.predict(pts[k]) / pts[k]["value"] - 1, 2) for k in long_ttft]
        finally:
            engines.profile.cache_clear()
    assert larger == [0.11, -0.17, -0.4]
    # the sixteen held-out points the change moved are seen for it, and only those (moved: above one part in 1e4)
    moved = {k for k in now if abs((1 + now[k]) / (1 + mixed[k]) - 1) > 1e-4}  # (with that profile and budget)
    assert len(moved) == 16 and moved == {q["id"] for q in pts.values() if "steps of their own" in q.get("seen", "")}
    # "DeepSeek-V3.1 on 8 MI300X ... 23.84 ms per token where calc gives 9.5 ms" (a run read, not in the set)
    from calc import perf
    r = perf.perf_report(registry.get_model("deepseek-v3"), registry.get_gpu("mi300x"), "fp8", "bf16", 1, 610, 422, 8,
                         curve_batches=(), engine="sglang")
    assert round(r["tpot_s"] * 1e3, 1) == 9.5 and round(r["tpot_s"] / 0.02384 - 1, 2) == -0.60
    dense = _errors("gpustack-sglang053-h100-qwen3-8b-ttft")["gpustack-sglang053-h100-qwen3-8b-ttft-c4"]
    assert round(dense, 2) == 0.36 and round(calibration.predict(pts["gpustack-sglang053-h100-qwen3-8b-ttft-c4"]) * 1e3) == 38
    assert round(calibration.predict(pts["sgl056-b200-qwen3-235b-tpot-c1"]) * 1e3, 2) == 6.59  # "its 6.59 ms"
    assert round(_errors("vllm-pr23151")["vllm-pr23151-h100-qwen3-30b-a3b-tpot-c10"], 2) == 0.02


def test_the_sglang_triton_variant_is_as_the_data_page_says():
    """docs/*/calculators/data.md on SGLang's Triton split-KV decode kernel (engines sglang@triton)."""
    from calc import perf

    p = engines.profile("sglang@triton")
    assert p.split_kv_decode == {"max_kv_splits": 8, "heads_per_program": 16, "min_block_kv": 32, "programs_per_sm": 1,
                                 "s_per_program": 2.43e-05, "s_per_token": 1.84e-07}
    wave = lambda tokens: 2.43e-05 + tokens * 1.84e-07  # noqa: E731  one program: its fixed time and its walk
    pts = {q["id"]: q for q in calibration.points()}
    glm = calibration._model(pts["sgl057-b200-glm47flash-tpot-c1"], calibration._data()["configs"])
    b200 = registry.get_gpu("b200")
    assert (glm.num_attention_heads, glm.num_key_value_heads, glm.num_hidden_layers, b200.sm_count) == (20, 20, 47, 148)
    # By hand, SGLang 0.5.7's rule. The kernel runs ceil(20 / 16) = 2 programs per split and sequence; the split rule's
    # token grid counts the config's 20 KV heads. One sequence at 4,194 tokens: 148 SMs x log2(4194 / 64) = 148 x 6.034
    # -> 893 "cores" over a grid of 20 -> 45, capped at 8 splits; 4194 / 8 -> 525 tokens, rounded up to 544 (17 x 32);
    # 16 programs, one wave: 47 layers x (24.3 us + 544 x 0.184 us) = 5.85 ms
    assert p.split_kv_decode_s(glm, b200, 1, 4194, 47) == pytest.approx(47 * wave(544))
    assert round(47 * wave(544) * 1e3, 2) == 5.85
    # 64 sequences at 2,500: 148 x log2(39.06) = 148 x 5.288 -> 782 over a grid of 1,280 -> 1 split; 2,500 -> 2,528
    # tokens (79 x 32); 128 programs, one wave
    assert p.split_kv_decode_s(glm, b200, 64, 2500, 47) == pytest.approx(47 * wave(2528))
    # 200 sequences at 4,194: one split each, 4,224 tokens (132 x 32); 400 programs in waves of 148 -> 3
    assert p.split_kv_decode_s(glm, b200, 200, 4194, 47) == pytest.approx(47 * 3 * wave(4224))
    # at TP 2 each GPU holds 10 heads and 10 KV heads: a grid of 640 -> ceil(782 / 640) = 2 splits of 1,250 -> 1,280
    # tokens; one program per split (10 heads), 128 programs
    assert p.split_kv_decode_s(glm, b200, 64, 2500, 47, tp=2) == pytest.approx(47 * wave(1280))
    # a short context: log2(100 / 64) < 1 counts as 1 -> 148 / 20 -> 8 splits; 100 / 8 -> 13 -> 32 tokens
    assert p.split_kv_decode_s(glm, b200, 1, 100, 47) == pytest.approx(47 * wave(32))
    # not an MLA model, or the engine without the variant: no such kernel, the roofline's KV read stands
    assert p.split_kv_decode_s(registry.get_model("llama-3.1-8b"), b200, 1, 4194, 32) == 0.0
    assert engines.profile("sglang").split_kv_decode_s(glm, b200, 1, 4194, 47) == 0.0
    with pytest.raises(ValueError, match="SM count"):  # a GPU whose SM count the registry lacks
        p.split_kv_decode_s(glm, registry.get_gpu("h200"), 1, 4194, 47)
    # the kernel's time replaces the roofline's read of the same KV bytes
    r = perf.perf_report(glm, b200, "bf16", "bf16", 1, 4194, 1, 1, curve_batches=(), engine="sglang@triton")
    base = perf.perf_report(glm, b200, "bf16", "bf16", 1, 4194, 1, 1, curve_batches=(), engine="sglang")
    assert r["tpot_s"] - base["tpot_s"] == pytest.approx(p.split_kv_decode_s(glm, b200, 1, 4194, 47)
                                                        - 4194 * 47 * 576 * 2 / (8e12 * p.memory_efficiency("bf16", b200)),
                                                        rel=1e-6)
    # "1.08 µs per token of context at concurrency 1" (47 x 1.84e-7 / 8), "against the measured 1.08": the slope of the
    # three concurrency-1 TPOTs over their mean contexts (821, 2,833 and 4,405 tokens); with one constant it was 1.43
    # (47 x 2.44e-7 / 8), and the session-19 protocol accepted the fixed cost per program only within 25 % of 1.08
    assert round(47 * 1.84e-7 / 8 * 1e6, 2) == 1.08 and round(47 * 2.44e-7 / 8 * 1e6, 2) == 1.43
    # "about 1.1 ms per step" of fixed time at concurrency 1: 47 layers x one wave x 24.3 us
    assert round(47 * 2.43e-05 * 1e3, 1) == 1.1
    c1 = ("tpot-c1", "tpot-c1-8k", "tpot-c1-8kout")
    v = [pts[f"sgl057-b200-glm47flash-{k}"]["value"] for k in c1]
    assert round((v[1] - v[0]) / (4405 - 821) * 1e6, 2) == 1.08 and round((v[2] - v[0]) / (2833 - 821) * 1e6, 2) == 1.09
    # "the three concurrency-1 TPOTs, now its fit points: -0.1 %, -0.1 % and +0.2 %" (-26, -48 and -40 % without it)
    now = _errors("sgl057-b200-glm47flash")
    before = _errors("sgl057-b200-glm47flash", engine="sglang")
    assert [round(now[f"sgl057-b200-glm47flash-{k}"] * 100, 1) for k in c1] == [-0.1, -0.1, 0.2]
    assert [round(before[f"sgl057-b200-glm47flash-{k}"] * 100) for k in c1] == [-26, -48, -40]
    assert all(pts[f"sgl057-b200-glm47flash-{k}"]["subset"] == "fit" for k in c1)
    # held out: concurrency 16 and 64, "+8 %, +46 %, +8 %, +6 % and +21 %" (before the kernel: -38, -36, -19, -43, -42 %;
    # with the one constant of 2026-12-01: +17, +69, +8, +17, +40 %)
    held = ("tpot-c16-8kout", "tpot-c64-8kout", "tpot-c16-1k1k", "tpot-c16-8k1k", "tpot-c64-8k1k")
    assert [round(now[f"sgl057-b200-glm47flash-{k}"] * 100) for k in held] == [8, 46, 8, 6, 21]

    def with_kernel(**constants):
        """GLM-4.7-Flash's errors with the Triton kernel's constants set to ``constants`` (restored afterwards)."""
        with pytest.MonkeyPatch.context() as mp:
            for name, value in constants.items():
                mp.setitem(engines._data()["engines"]["sglang"]["variants"]["triton"]["split_kv_decode"], name, value)
            engines.profile.cache_clear()
            errors = _errors("sgl057-b200-glm47flash")
        engines.profile.cache_clear()
        return errors

    one = with_kernel(s_per_program=0.0, s_per_token=2.44e-07)  # the one constant of 2026-12-01
    assert [round(one[f"sgl057-b200-glm47flash-{k}"] * 100) for k in held] == [17, 69, 8, 17, 40]
    assert [round(one[f"sgl057-b200-glm47flash-{k}"] * 100, 1) for k in c1] == [-9.0, 3.7, -0.4]
    # "the held-out rows differ by up to about 3.4 points between these (the concurrency-64 rows; under 2 at
    # concurrency 16)": the coordinate descent's stops, 20.3/0.193 and 23.3/0.187 us, against the joint fit
    spread = {k: [now[f"sgl057-b200-glm47flash-{k}"]] for k in held}
    for per_program, per_token in ((2.03e-05, 1.93e-07), (2.33e-05, 1.87e-07)):
        stop = with_kernel(s_per_program=per_program, s_per_token=per_token)
        for k in held:
            spread[k].append(stop[f"sgl057-b200-glm47flash-{k}"])
    width = {k: (max(v) - min(v)) * 100 for k, v in spread.items()}
    assert round(max(width.values()), 1) == 3.4 and max(w for k, w in width.items() if "c16" in k) < 2
    # "with the time per token alone at 0.184 µs they would read +3 %, +1 % and +2 % at concurrency 16 and +42 % and
    # +19 % at 64, but the concurrency-1 points -13 %, -9 % and -10 %": the fixed time moves each held-out row 2 to 6 up
    walk = with_kernel(s_per_program=0.0)
    assert [round(walk[f"sgl057-b200-glm47flash-{k}"] * 100) for k in held] == [3, 42, 1, 2, 19]
    assert [round(walk[f"sgl057-b200-glm47flash-{k}"] * 100) for k in c1] == [-13, -9, -10]
    up = [(now[k] - walk[k]) * 100 for k in (f"sgl057-b200-glm47flash-{h}" for h in held)]
    assert 2 <= min(up) and max(up) < 6.5
    # "without the kernel calc's concurrency-1 TPOT is about 6.5 ms whatever the context, while the measured line
    # starts near 7.9 ms": the measured intercept of the two prompt-length points, 8.75 ms at 821 tokens, slope 1.08
    plain = [calibration.predict(pts[f"sgl057-b200-glm47flash-{k}"], engine="sglang") for k in c1]
    assert all(round(x * 1e3, 1) in (6.4, 6.5, 6.6) for x in plain)
    assert round((v[0] - 821 * (v[1] - v[0]) / (4405 - 821)) * 1e3, 1) == 7.9
    assert [round(before[f"sgl057-b200-glm47flash-{k}"] * 100) for k in held] == [-38, -36, -19, -43, -42]
    # "programs_per_sm moves the points by about one point at most": at concurrency 16 and 64 no step has more
    # programs than the B200 has SMs, but the closed loops pass through smaller batches that do (25 sequences at 7,000
    # tokens: 3 splits, 150 programs); with two per SM the concurrency-64 rows read +45 % and +20 %
    entry = engines._data()["engines"]["sglang"]
    variant = entry["variants"]["triton"]
    two = engines.EngineProfile("sglang@triton", entry, {
        **variant, "split_kv_decode": {**variant["split_kv_decode"], "programs_per_sm": 2}})
    assert all(two.split_kv_decode_s(glm, b200, b, c, 47) == p.split_kv_decode_s(glm, b200, b, c, 47)
               for b in (16, 64) for c in range(64, 9000, 97))
    assert two.split_kv_decode_s(glm, b200, 25, 7000, 47) < p.split_kv_decode_s(glm, b200, 25, 7000, 47)
    with2 = with_kernel(programs_per_sm=2)
    assert [round(with2[f"sgl057-b200-glm47flash-{k}"] * 100) for k in held] == [8, 45, 8, 6, 20]
    assert max(abs(with2[k] - now[k]) for k in now) < 0.012
    # the TTFTs do not move (no decode step in them); the five held-out TPOTs moved, and are seen for the kernel model
    assert round(now["sgl057-b200-glm47flash-ttft-c1-8k"] * 100) == -56
    moved = {k for k in now if abs((1 + now[k]) / (1 + before[k]) - 1) > 1e-4 and pts[k]["subset"] == "holdout"}
    assert moved == {f"sgl057-b200-glm47flash-{k}" for k in held}
    assert moved == {k for k, q in pts.items() if "split-KV" in q.get("seen", "")}


@contextlib.contextmanager
def _sglang_mixed():
    """calc's SGLang profile as it was until 2026-12-01: prompts mixed into the decode steps, and the prompt cost beyond
    the step's base charged to the request, off the GPU."""
    entry = engines._data()["engines"]["sglang"]
    saved = (dict(entry["step_overhead"]), dict(entry["prefill"]))
    try:
        entry["step_overhead"]["prompt_cost_in_step"] = False
        entry["prefill"]["alone"] = False
        engines.profile.cache_clear()
        yield
    finally:
        entry["step_overhead"].clear()
        entry["step_overhead"].update(saved[0])
        entry["prefill"].clear()
        entry["prefill"].update(saved[1])
        engines.profile.cache_clear()


def _as_before_sglang_steps(p):
    """A point as calc took it then: SGLang's closed loops with a budget of 8,192 tokens (the profile's chunk), before
    SGLang's own chunked_prefill_size for the GPU and the budget InferenceX's H200 runs state."""
    return {**p, "max_num_batched_tokens": 8192} if p.get("closed_loop") and p["engine"] == "sglang" else p


def _sglang_mixed_errors():
    """The SGLang points' errors with that profile and that budget."""
    with _sglang_mixed():
        return {p["id"]: calibration.predict(_as_before_sglang_steps(p), engine=p["engine"]) / p["value"] - 1
                for p in calibration.points() if p["id"].startswith("sgl05")}  # (engine: GLM-4.7-Flash without its variant)


def registry_layers(p):
    return calibration._model(p, calibration._data()["configs"]).num_hidden_layers


def _mla_errors(step_weight, request_weight):
    """The MLA points' errors with the SGLang profile's MLA weights replaced (1, 1: every layer an ordinary one)."""
    entry = engines._data()["engines"]["sglang"]["step_overhead"]
    saved = dict(entry)
    try:
        entry.update(mla_step_layer_weight=step_weight, mla_request_layer_weight=request_weight)
        engines.profile.cache_clear()
        return _errors("sgl056-b200-dsr1") | _errors("sgl057", engine="sglang")  # GLM-4.7-Flash without its Triton variant
    finally:
        entry.clear()
        entry.update(saved)
        engines.profile.cache_clear()


@pytest.mark.slow
def test_the_fit_script_reproduces_the_committed_constants():
    """scripts/fit_engine_profiles.py, started from calc/data/engines.json, ends where it started (to the 3 significant
    digits the registry keeps) for every profile but vLLM's, whose constants drift along a flat direction and are kept
    as committed (data page). This shows the committed constants are a point the fit does not leave, not that the fit
    reaches them from anywhere (vllm@rocm-0.9's first stage is shallow: a grid finds its pair, a descent from elsewhere may stop
    short of it; see its note in engines.json). It cannot see the constants the script holds (HELD: llama.cpp's prompt
    cost and compute share), which it does not fit. Run in a subprocess: the fit edits the profiles it loads."""
    root = Path(__file__).resolve().parents[1]
    keys = ["trt-llm", "llama.cpp", "llama.cpp@2024-01", "hf", "sglang", "sglang@triton", "vllm@rocm-0.9"]
    out = subprocess.run([sys.executable, str(root / "scripts" / "fit_engine_profiles.py"), *keys], cwd=root,
                         capture_output=True, text=True, check=True).stdout
    fitted = {line.split(" ", 1)[0]: ast.literal_eval(line.split(" ", 1)[1]) for line in out.splitlines()
              if line.split(" ", 1)[0] in keys}
    assert set(fitted) == set(keys)
    data = json.loads((root / "calc" / "data" / "engines.json").read_text(encoding="utf-8"))["engines"]
    for key, params in fitted.items():
        entry = data[key.partition("@")[0]]
        for path, value in params.items():
            if path == "loss":
                continue
            committed = entry
            for part in path.split("/"):
                committed = committed[part]
            assert value == pytest.approx(committed, rel=0.006, abs=1e-9), (key, path, value, committed)


def test_every_vllm_v1_kv_point_names_its_sampler():
    """The sampler's warm-up depends on vLLM's runner, version and install (engines.json's vLLM source): a V1-era KV point
    records the path its log prints or its version's default, and its max_num_seqs, rather than inheriting a variant's
    default silently."""
    vllm = engines.profile("vllm")
    for p in calibration.points():
        if p["kind"] != "kv_tokens" or p["engine"] != "vllm" or p.get("kv_variant") == "v0":
            continue
        assert p["sampler_path"] in vllm.kv_budget(p.get("kv_variant"))["sampler_bytes_per_logit"], p["id"]
        assert isinstance(p["max_num_seqs"], int) and p["max_num_seqs"] >= 1, p["id"]
        assert "sampler path " + p["sampler_path"] in p["source"]["settings"], p["id"]  # and says why


def test_the_later_kv_logs_are_as_the_data_page_says(monkeypatch):
    """docs/*/calculators/data.md on the nine start-up logs of 2025-2026 added to the KV check on 2026-11-30."""
    pts = {p["id"]: p for p in calibration.points() if p["kind"] == "kv_tokens"}
    new = {k: p for k, p in pts.items() if k.startswith(("vllm01", "vllm02", "sglang043-"))}
    assert len(pts) == 13 and len(new) == 9  # "had four points until nine more"
    assert all(p["subset"] == "holdout" for p in new.values())  # "all held out"
    # the H200's is seen: "+3.4 % before the H200's visible memory, 139.80 GiB, was read ... in place of a derived
    # 139.55 GiB"; "those five points are seen" (the A100's four and the H200's) and the BF16 Qwen3-30B-A3B's: the
    # sampler's warm-up was counted after their errors were known
    a100_ids = [k for k in new if "a100" in k]
    assert [k for k, p in new.items() if "seen" in p] == a100_ids + [
        "vllm0102-h100-qwen3-30b-a3b-kv", "vllm0112-h200-llama3-8b-kv", "vllm0112-h100-gptoss120b-kv", "sglang043-4xl4-qwq32b-kv"]
    assert all("sampler" in new[k]["seen"] for k in a100_ids + ["vllm0102-h100-qwen3-30b-a3b-kv", "vllm0112-h200-llama3-8b-kv"])
    assert round(registry.get_gpu("h200").visible_memory_bytes / 2**30, 2) == 139.80
    # "Logs of vLLM 0.10 to 0.20 use the variant v1-pre0.21 ...: no CUDA-graph term, and 0.90 by default"
    vllm = engines.profile("vllm")
    v1 = vllm.kv_budget("v1-pre0.21")
    assert v1["fraction"] == 0.9 and v1["cuda_graph_bytes"] == 0
    assert v1["non_torch_bytes"] == vllm.kv_budget()["non_torch_bytes"]  # not refitted
    assert {k for k, p in new.items() if p.get("kv_variant") == "v1-pre0.21"} == {
        k for k in new if k.startswith(("vllm010", "vllm011"))}
    e = {k: calibration.predict(p) / p["value"] - 1 for k, p in new.items()}
    # the figures "when they joined", before the sampler's warm-up was counted: at one sequence its warm-up is below
    # every point's forward pass, so nothing but the forward pass is taken off, as then
    then = {k: calibration.predict({**p, "max_num_seqs": 1}) / p["value"] - 1 for k, p in new.items()}
    for k, p in new.items():  # (which holds: at one sequence no point's warm-up reaches its forward pass)
        if p["engine"] == "vllm":
            m, g = calibration._model(p, calibration._data()["configs"]), registry.get_gpu(p["gpu"])
            r = mem.memory_report(m, g.memory_bytes, p["weights"], p["kv_dtype"], tp=p["tp"], engine="vllm",
                                  kv_variant=p.get("kv_variant"), max_num_batched_tokens=p["max_num_batched_tokens"],
                                  max_num_seqs=1, sampler_path=p["sampler_path"], mxfp4_backend=p.get("mxfp4_backend"))
            assert r["engine_sampler_warmup_bytes_per_gpu"] < r["engine_profile_activation_bytes_per_gpu"], k
    a100, a100_then = [e[k] for k in a100_ids], [then[k] for k in a100_ids]
    assert len(a100) == 4 and round(min(a100_then) * 100, 1) == 0.4 and round(max(a100_then) * 100, 1) == 3.0
    assert round(min(a100) * 100, 1) == -1.9 and round(max(a100) * 100, 1) == -0.1  # "now −1.9 % to −0.1 %"
    assert round(then["vllm0112-h200-llama3-8b-kv"] * 100, 1) == 3.6 and round(e["vllm0112-h200-llama3-8b-kv"] * 100, 1) == 0.0
    assert sorted(abs(v) for v in then.values())[5] < 0.037  # "Six of the nine came within 3.7 % when they joined"
    assert round(e["vllm0221-h100-qwen3-30b-a3b-fp8-kv"] * 100, 1) == 0.5
    assert e["vllm0221-h100-qwen3-30b-a3b-fp8-kv"] == then["vllm0221-h100-qwen3-30b-a3b-fp8-kv"]  # 64 sequences: unchanged
    assert {k: round(v * 100) for k, v in then.items() if abs(v) > 0.3} == {"vllm0102-h100-qwen3-30b-a3b-kv": 60}
    # "they are now +0.2 %, +2.9 % and +19 %"
    assert round(e["vllm0102-h100-qwen3-30b-a3b-kv"] * 100, 1) == 0.2 and max(abs(v) for v in e.values()) < 0.2
    # "(+60 %, now +2.9 %)": vLLM's MXFP4 padding with the backend the log names (Marlin)
    assert round(e["vllm0112-h100-gptoss120b-kv"] * 100, 1) == 2.9 and pts["vllm0112-h100-gptoss120b-kv"]["mxfp4_backend"] == "marlin"
    # "(-33 %, now +19 %)": SGLang's start-up memory on PCIe-only GPUs, 0.26 GiB (issue #16920) instead of 2.01 GiB
    assert round(e["sglang043-4xl4-qwq32b-kv"] * 100) == 19
    assert registry.get_gpu("l4").linked_gpus == 0 and round(registry.get_gpu("l4").visible_memory_bytes / 2**30, 2) == 22.20
    kvb = engines.profile("sglang").kv_budget()
    assert round(kvb["startup_bytes_multi_gpu_pcie"] / 2**30, 2) == 0.26
    p = pts["sglang043-4xl4-qwq32b-kv"]
    r = mem.memory_report(registry.get_model("qwen2.5-32b"), registry.get_gpu("l4").memory_bytes, "bf16", "bf16", tp=4,
                          visible_memory_bytes=registry.get_gpu("l4").visible_memory_bytes, engine="sglang",
                          gpu_memory_utilization=0.85, linked_gpus=None)
    assert round(r["engine_max_tokens_in_cache"] / p["value"] - 1, 2) == -0.33  # the NVLink node's 2.01 GiB
    # "calc's weights agree with what those logs loaded within 0.5 %" ("Model loading took ... GiB")
    loaded = {("qwen2.5-7b", "bf16"): 14.2488, ("qwen3-30b-a3b", "bf16"): 56.9342, ("qwen3-30b-a3b", "fp8"): 29.08,
              ("llama-3-8b", "bf16"): 14.9596}
    for (model, w), gib in loaded.items():
        assert abs(mem.weights_bytes(calibration._model({"model": model}, calibration._data()["configs"]), w)
                   / 2**30 / gib - 1) < 0.005, model
    h100, h200 = registry.get_gpu("h100-sxm"), registry.get_gpu("h200")

    def engine_view(model, gpu, w, mnbt, **kw):
        return mem.memory_report(calibration._model({"model": model}, calibration._data()["configs"]), gpu.memory_bytes,
                                 w, "bf16", visible_memory_bytes=gpu.visible_memory_bytes, engine="vllm",
                                 max_num_batched_tokens=mnbt, **kw)
    # 0.22.1: "calc takes off 0.52 GiB of CUDA graphs where the log estimates 0.14 GiB, and counts 0.54 GiB of
    # activations and non-torch memory where the log leaves about 1.1 GiB" (0.92 x total - weights - KV - graphs)
    r = engine_view("qwen3-30b-a3b", h100, "fp8", 8192)
    assert round(vllm.kv_budget()["cuda_graph_bytes"] / 2**30, 2) == 0.52
    assert round((r["engine_profile_activation_bytes_per_gpu"] + vllm.kv_budget()["non_torch_bytes"]) / 2**30, 2) == 0.54
    assert round(0.92 * h100.visible_memory_bytes / 2**30 - 29.08 - 42.54 - 0.14, 1) == 1.1
    # the sampler: "where calc counted 0.38 GiB for the forward pass"; "calc now counts that warm-up: 5.54 GiB here"
    qwen3 = pts["vllm0102-h100-qwen3-30b-a3b-kv"]
    assert (qwen3["max_num_seqs"], qwen3["sampler_path"]) == (1024, "torch-sort") and v1["sampler_path"] == "torch-sort"
    r = engine_view("qwen3-30b-a3b", h100, "bf16", 8192, kv_variant="v1-pre0.21", max_num_seqs=1024)
    assert round(r["engine_profile_activation_bytes_per_gpu"] / 2**30, 2) == 0.38
    assert round(r["engine_sampler_warmup_bytes_per_gpu"] / 2**30, 2) == 5.54
    assert r["engine_profile_peak_bytes_per_gpu"] == r["engine_sampler_warmup_bytes_per_gpu"]
    # "38.3 bytes per entry in the Qwen3-30B-A3B log, 38.2 in the H200 log, after the held hidden states": the log's
    # peak (the Qwen3 log prints it; the H200's is what its log leaves: 0.9 x total - weights - KV - non-torch memory)
    # less max_num_batched_tokens x hidden x 2 bytes, over 1,024 x vocabulary
    qwen3_m = calibration._model({"model": "qwen3-30b-a3b"}, calibration._data()["configs"])
    llama3 = calibration._model({"model": "llama-3-8b"}, calibration._data()["configs"])
    assert (llama3.vocab_size, qwen3_m.vocab_size) == (128256, 151936)
    assert round((5.58 * 2**30 - 8192 * qwen3_m.hidden_size * 2) / (1024 * qwen3_m.vocab_size), 1) == 38.3
    peak = 0.9 * h200.visible_memory_bytes - (14.9596 + 105.97) * 2**30 - v1["non_torch_bytes"]
    assert round((peak - 8192 * llama3.hidden_size * 2) / (1024 * llama3.vocab_size), 1) == 38.2
    # the count (engines.json's source): the V2 runner's warm-up holds the bf16 logits (2); the V1 runner's paths add an
    # fp32 copy (4), then the sort its values 4, indices 8, reverse indices 8 and CUB's alternate buffers 4 + 8, the
    # sort-free paths two fp32 tensors
    assert vllm.kv_budget()["sampler_bytes_per_logit"] == {"v2-logits": 2, "v2-fp32": 2 + 4,
                                                          "torch-sort": 2 + 4 + (4 + 8) + 8 + (4 + 8),
                                                          "sort-free": 2 + 4 + 4 + 4}
    # "vLLM 0.32's default, the V2 model runner"; the variants: the V1 runner with FlashInfer (0.21 on) and the sort
    assert vllm.kv_budget()["sampler_path"] == "v2-logits" and vllm.kv_budget("v0")["sampler_path"] is None
    assert (vllm.kv_budget("v1-0.21-0.25")["sampler_path"], v1["sampler_path"]) == ("sort-free", "torch-sort")
    # "the +3.6 % there was about 3.9 GiB in a 106 GiB cache"
    p = pts["vllm0112-h200-llama3-8b-kv"]
    assert round((calibration.predict({**p, "max_num_seqs": 1}) - p["value"]) * 128 / 2**20, 1) == 3.9
    # "at 38 they would read as low as −19.3 %": the A100 logs on the sort path instead of FlashInfer's
    assert all(new[k]["sampler_path"] == "sort-free" and new[k]["max_num_seqs"] == 256 for k in a100_ids)
    assert round(min(calibration.predict({**new[k], "sampler_path": "torch-sort"}) / new[k]["value"] - 1
                     for k in a100_ids) * 100, 1) == -19.3
    # "at 256 requests the warm-up exceeds their forward pass by only 0.23 GiB on one GPU and 0.38 GiB per GPU at TP 2"
    extra = {}
    for k in a100_ids:
        q = new[k]
        r = mem.memory_report(calibration._model(q, calibration._data()["configs"]), registry.get_gpu(q["gpu"]).memory_bytes,
                              "bf16", "bf16", tp=q["tp"], visible_memory_bytes=registry.get_gpu(q["gpu"]).visible_memory_bytes,
                              engine="vllm", kv_variant=q["kv_variant"], max_num_batched_tokens=q["max_num_batched_tokens"],
                              max_num_seqs=q["max_num_seqs"], sampler_path=q["sampler_path"])
        extra[q["tp"]] = round((r["engine_profile_peak_bytes_per_gpu"] - r["engine_profile_activation_bytes_per_gpu"]) / 2**30, 2)
    assert extra == {1: 0.23, 2: 0.38}
    # "consistent with anything up to about 15 bytes (below about 6 the warm-up stays under their forward pass)": within
    # 3 % from 2 to 15 bytes per entry, not at 16; the same figures at 2 and 6
    per_logit = vllm.kv_budget("v1-pre0.21")["sampler_bytes_per_logit"]  # the profile's own dict (shallow copies)
    errs = {}
    for per in (2, 6, 10, 14, 15, 16):
        monkeypatch.setitem(per_logit, "sort-free", per)
        errs[per] = [calibration.predict(new[k]) / new[k]["value"] - 1 for k in a100_ids]
    monkeypatch.undo()
    assert all(abs(e) < 0.03 for per in (2, 6, 10, 14, 15) for e in errs[per]) and max(map(abs, errs[16])) > 0.03
    assert errs[2][0] == errs[6][0]
    # "on the V1 runner the same 1,024 requests hold 2.73 GiB for gpt-oss-120b, and on the sort path of 0.11 to 0.16
    # 4.7 GiB (128k vocabulary) to 7.3 GiB (201k)"; "about 12 bytes per entry more, 2.3 GiB at 1,024 requests and a 201k
    # vocabulary", "6.3 GiB on an H100 at 0.92"
    oss = registry.get_model("gpt-oss-120b")
    assert round(mem.vllm_sampler_warmup_bytes(oss, 1024, 8192, 14) / 2**30, 2) == 2.73
    assert round(mem.vllm_sampler_warmup_bytes(registry.get_model("llama-3.1-8b"), 1024, 8192, 38) / 2**30, 1) == 4.7
    assert round(mem.vllm_sampler_warmup_bytes(oss, 1024, 8192, 38) / 2**30, 1) == 7.3
    # "live sampling then needs ... 14 bytes per entry with FlashInfer's sampler, 2.7 GiB at 1,024 requests and a 201k
    # vocabulary, about 2.0 GiB beyond the profiling reserve", "6.3 GiB on an H100 at 0.92"
    live = 1024 * oss.vocab_size * vllm.kv_budget()["sampler_bytes_per_logit"]["sort-free"]
    r = mem.memory_report(oss, h100.memory_bytes, "mxfp4-experts", visible_memory_bytes=h100.visible_memory_bytes,
                          engine="vllm", max_num_seqs=1024, compute_capability=h100.compute_capability)
    assert round(live / 2**30, 1) == 2.7 and round((live - r["engine_profile_peak_bytes_per_gpu"]) / 2**30, 1) == 2.0
    assert round((1 - r["engine_gpu_memory_utilization"]) * h100.visible_memory_bytes / 2**30, 1) == 6.3
    # Gemma-2's soft-cap, not counted: "two bf16 copies, 4 bytes, which at 1,024 requests on an H100 would set its peak
    # and take about 0.16 GiB more"
    gemma = registry.get_model("gemma-2-9b")
    r = mem.memory_report(gemma, h100.memory_bytes, visible_memory_bytes=h100.visible_memory_bytes, engine="vllm",
                          max_num_seqs=1024)
    capped = mem.vllm_sampler_warmup_bytes(gemma, 1024, 8192, 4)
    assert capped > r["engine_profile_peak_bytes_per_gpu"]
    assert round((capped - r["engine_profile_peak_bytes_per_gpu"]) / 2**30, 2) == 0.16
    # "With vLLM 0.32 the warm-up rarely sets the peak": at 1,024 requests on an H100, below the forward pass for both
    for model, w in (("llama-3.1-8b", "bf16"), ("gpt-oss-120b", "mxfp4-experts")):
        r = mem.memory_report(registry.get_model(model), h100.memory_bytes, w, visible_memory_bytes=h100.visible_memory_bytes,
                              engine="vllm", max_num_seqs=1024, compute_capability=h100.compute_capability)
        assert 0 < r["engine_sampler_warmup_bytes_per_gpu"] < r["engine_profile_activation_bytes_per_gpu"], model
    # gpt-oss: "65.97 GiB where calc counts 60.77 GiB; calc's count with those shapes is about 65.9 GiB" (Marlin:
    # 2,880 -> 3,072 hidden, 2,880 -> 2,944 expert width; the expert matrices and their block-32 scales scale with both)
    oss = registry.get_model("gpt-oss-120b")
    w = mem.weights_bytes(oss, "mxfp4-experts")
    experts = mem.param_counts(oss)["expert_linear"] * mem.WEIGHT_FORMATS["mxfp4-experts"].bits / 8
    assert round(w / 2**30, 2) == 60.77
    assert round((w + experts * (3072 * 2944 / 2880**2 - 1)) / 2**30, 1) == 65.9
    # "calc now counts the padding (below) and gets 65.89 GiB"
    r = mem.memory_report(oss, 80 * 2**30, "mxfp4-experts", "bf16", engine="vllm", mxfp4_backend="marlin")
    assert round(r["weights_bytes_per_gpu"] / 2**30, 2) == 65.89
    # SGLang: "calc's lighter weights (15.26 GiB per GPU where the log reads 15.54)"; 2.01 GiB taken off
    assert round(mem.weights_bytes_per_gpu(registry.get_model("qwen2.5-32b"), "bf16", 4) / 2**30, 2) == 15.26
    assert round(engines.profile("sglang").kv_budget()["startup_bytes_multi_gpu"] / 2**30, 2) == 2.01
    # "The KV row of the summary table in At a glance (median 0.5 %; 2.7 % before ...) holds all thirteen points; eight of them ... are
    # not in the row of unseen points"
    kv = [abs(r["error"]) for r in ROWS if r["kind"] == "kv_tokens" and r["subset"] == "holdout"]
    assert len(kv) == 13 and round(statistics.median(kv) * 100, 1) == 0.5
    before = [abs(calibration.predict({**p, "max_num_seqs": 1}) / p["value"] - 1) for p in pts.values()]
    assert round(statistics.median(before) * 100, 1) == 2.7
    assert len([r for r in UNSEEN if r["kind"] == "kv_tokens"]) == 5


def test_the_later_rocm_run_is_as_the_data_page_says():
    """docs/*/calculators/data.md and vLLM's AMD warning on infervisor/plow's vLLM 0.28 run of Gemma-4-31B on one MI300X
    (BF16: median TPOT 17.68 ms at 128 prompt tokens, 57.82 GiB of weights; FP8: 14.40 ms, 30.41 GiB; the run's JSON)."""
    from calc import api  # noqa: PLC0415

    vllm, mi300x = engines.profile("vllm"), registry.get_gpu("mi300x")
    tpot, weights = 17.67620985629037e-3, 57.82 * 2**30
    assert round(tpot * 1e3, 1) == 17.7 and round(weights / 1e9, 1) == 62.1  # "17.7 ms", "62.1 GB"
    assert round(weights / tpot / 1e12, 1) == 3.5 and round(weights / tpot / mi300x.memory_bandwidth_bytes_per_s * 100) == 66
    assert round(mi300x.memory_bandwidth_bytes_per_s / 1e12, 1) == 5.3
    assert round(vllm.memory_efficiency("bf16") * 100) == 81 and round(vllm.overhead_base_s * 1e3, 2) == 1.07
    at_calc = weights / (vllm.memory_efficiency("bf16") * mi300x.memory_bandwidth_bytes_per_s) + vllm.overhead_base_s
    assert round(at_calc * 1e3, 1) == 15.5 and round((1 - at_calc / tpot) * 100) == 12  # "15.5 ms, 12 % less"
    assert round(30.41 * 2**30 / 14.403331793829917e-3 / 1e12, 1) == 2.3  # "14.4 ms, 2.3 TB/s"
    assert "gemma-4-31b" not in registry.list_models()
    w = [x for x in api.run("perf", {"model": "llama-3.1-8b", "gpu": "mi300x", "engine": "vllm"})["warnings"]
         if "NVIDIA" in x["en"]]
    assert len(w) == 1 and "12 % under its measured time" in w[0]["en"] and "比实测少 12 %" in w[0]["zh"]
    # "the step took 2.2 ms more than calc's constants give"; FP8: "calc's constants give 8.7 ms (40 % less)"
    assert round((tpot - at_calc) * 1e3, 1) == 2.2
    fp8 = 30.41 * 2**30 / (vllm.memory_efficiency("fp8") * mi300x.memory_bandwidth_bytes_per_s) + vllm.overhead_base_s
    assert round(fp8 * 1e3, 1) == 8.7 and round((1 - fp8 / 14.403331793829917e-3) * 100) == 40


def test_the_rtx_4090_chat_runs_are_as_the_data_page_says():
    """docs/*/calculators/data.md on lifenyan/inference-lab (vLLM 0.25.1, one RTX 4090, Qwen2.5-7B, concurrency 1)."""
    e = {k.removeprefix("lifenyan-vllm0251-rtx4090-qwen25-7b-"): round(v * 100) for k, v in _errors("lifenyan-").items()}
    assert e == {"bf16-ttft-c1": 18, "fp8-ttft-c1": -21, "awq-ttft-c1": 0, "gptq-ttft-c1": 1,
                 "bf16-tpot-c1": 16, "fp8-tpot-c1": -5, "awq-tpot-c1": 31, "gptq-tpot-c1": 32}
    pts = {p["id"].removeprefix("lifenyan-vllm0251-rtx4090-qwen25-7b-"): p for p in calibration.points()
           if p["id"].startswith("lifenyan-")}
    assert all(p["subset"] == "holdout" for p in pts.values())
    # TPOTs: held out, unseen, medians (p50); TTFTs: seen, recorded at the 516 tokens prefilled, first computed at 724
    # (+91, +22, +63, +64 % with the lm_head charged to every prompt token; the page gives both)
    tpot = {k: p for k, p in pts.items() if "-tpot-" in k}
    assert all("seen" not in p and p["prompt_len"] == 724 and "median (p50)" in p["source"]["settings"]
               for p in tpot.values())
    ttft = {k: p for k, p in pts.items() if "-ttft-" in k}
    assert all("seen" in p and p["prompt_len"] == 516 for p in ttft.values())
    with pytest.MonkeyPatch.context() as mp:  # "+83 %, +17 %, +56 %, +56 %" and the recorded "+36 %, -11 %, +16 %, +16 %"
        _as_before_matmul_shares(mp)
        first = {k: round((calibration.predict({**p, "prompt_len": 724}) / p["value"] - 1) * 100) for k, p in ttft.items()}
        then = {k.removeprefix("lifenyan-vllm0251-rtx4090-qwen25-7b-"): round(v * 100) for k, v in _errors("lifenyan-").items()}
    engines.profile.cache_clear()
    assert first == {"bf16-ttft-c1": 83, "fp8-ttft-c1": 17, "awq-ttft-c1": 56, "gptq-ttft-c1": 56}
    assert [then[k] for k in ("bf16-ttft-c1", "fp8-ttft-c1", "awq-ttft-c1", "gptq-ttft-c1")] == [36, -11, 16, 16]
    # "The BF16 step moved 14.2 GB ... in 15.9 ms, 89 % of the card's 1,008 GB/s ..., where calc's step gives 76 %"
    from calc import perf  # noqa: PLC0415

    g = registry.get_gpu("rtx-4090")
    r = perf.perf_report(registry.get_model("qwen2.5-7b"), g, "bf16", "bf16", 1, 724, 256, 1, curve_batches=(),
                         engine="vllm")
    step, measured = r["decode_bytes_per_step"], tpot["bf16-tpot-c1"]["value"]
    assert round(step / 1e9, 1) == 14.2 and round(measured * 1e3, 1) == 15.9 and g.memory_bandwidth_bytes_per_s == 1008e9
    assert round(step / measured / g.memory_bandwidth_bytes_per_s * 100) == 89
    assert round(step / r["tpot_s"] / g.memory_bandwidth_bytes_per_s * 100) == 76
    # the medians the xfail reasons and the data page quote: held-out TTFT 8.0 % (9.3 % before the GPUs' measured
    # matmul rates), unseen TTFT 14.5 % over three (11.5 % over eight before), unseen TPOT 7.6 % over 30 (11.6 % over 39
    # while the nine SGLang rows were unseen, 8.1 % over 53 before the closed loops), held-out TPOT 7.6 % over 108 (7.5 % before
    # the ROCm variant's refit on cached prompts, 7.8 %
    # before the Triton kernel's fixed time per program, 8.1 % over 111 before SGLang's Triton kernel, 8.3 % before the matmul rates, 8.8 % with SGLang's mixed steps, 8.1 % before
    # the nine SGLang rows, 8.2 % before the closed loops: test_the_closed_loop_side_figures_...)
    held = [abs(r["error"]) for r in ROWS if r["kind"] == "ttft" and r["subset"] == "holdout"
            and not r["id"].startswith(ADMITTED_S21)]
    assert round(statistics.median(held) * 100, 1) == 8.0
    unseen = [abs(r["error"]) for r in UNSEEN if r["kind"] == "ttft" and not r["id"].startswith(ADMITTED_S21)]
    assert len(unseen) == 3 and round(statistics.median(unseen) * 100, 1) == 14.5
    # with vLLM #20469's 16,000-token TTFT on an A100 80GB PCIe (round 4, -21 %): 8.1 % over 56, 17.7 % over four
    held = [abs(r["error"]) for r in ROWS if r["kind"] == "ttft" and r["subset"] == "holdout"]
    unseen = [abs(r["error"]) for r in UNSEEN if r["kind"] == "ttft"]
    assert (len(held), round(statistics.median(held) * 100, 1), len(unseen), round(statistics.median(unseen) * 100, 1)) \
        == (56, 8.1, 4, 17.7)
    row = next(r for r in ROWS if r["id"].startswith(ADMITTED_S21))
    assert (round(row["error"] * 100), round(row["predicted"], 2), row["measured"]) == (-21, 2.65, 3.34537)
    unseen = [abs(r["error"]) for r in UNSEEN if r["kind"] == "tpot" and not r["id"].startswith(HELD_BACK)]
    assert len(unseen) == 30 and round(statistics.median(unseen) * 100, 1) == 7.6
    held = [abs(r["error"]) for r in ROWS if r["kind"] == "tpot" and r["subset"] == "holdout"
            and not r["id"].startswith(HELD_BACK)]
    assert len(held) == 108 and round(statistics.median(held) * 100, 1) == 7.6  # 7.8 % with the kernel's one constant
    # with the held-back rows admitted on 2026-12-01: TPOT 8.1 % over 115 held out (8.3 % with the Triton kernel's one
    # constant), 9.7 % over 37 unseen; throughput
    # 12.1 % over 53 held out (9.2 % over 42 before them), 14.3 % over 23 unseen (6.7 % over 12); and with those of
    # 2026-12-02 too: TPOT 8.3 % over 119 held out, 12.2 % over 41 unseen (11.9 % over 40 once the 30,000/100 row was
    # seen), and with the third search's nine: 8.2 % over 128, 9.7 % over 49
    def med(rows, kind):
        e = [abs(r["error"]) for r in rows if r["kind"] == kind]
        return len(e), round(statistics.median(e) * 100, 1)
    held_rows = [r for r in ROWS if r["subset"] == "holdout"]
    assert (med(held_rows, "tpot"), med(UNSEEN, "tpot")) == ((128, 8.2), (49, 9.7))
    s19 = [r for r in held_rows if not r["id"].startswith(ADMITTED_S20)]
    assert (med(s19, "tpot"), med([r for r in UNSEEN if not r["id"].startswith(ADMITTED_S20)], "tpot")) == (
        (119, 8.3), (40, 11.9))
    s18 = [r for r in held_rows if not r["id"].startswith(ADMITTED_S19 + ADMITTED_S20)]
    assert (med(s18, "tpot"), med([r for r in UNSEEN if not r["id"].startswith(ADMITTED_S19 + ADMITTED_S20)], "tpot")) == (
        (115, 8.1), (37, 9.7))
    assert (med(held_rows, "throughput"), med(UNSEEN, "throughput")) == ((53, 12.1), (23, 14.3))
    before = [r for r in ROWS if not r["id"].startswith(HELD_BACK)]
    assert (med([r for r in before if r["subset"] == "holdout"], "throughput"),
            med([r for r in UNSEEN if not r["id"].startswith(HELD_BACK)], "throughput")) == ((42, 9.2), (12, 6.7))


def test_the_lm_head_overcount_is_as_the_performance_page_says():
    """docs/*/calculators/performance.md: calc's prefill charges the lm_head once per sequence, on its last token, as
    serving engines do; charging it to every prompt token would add the lm_head's share of the weights a token uses,
    "about 7 % for Llama-3.1-8B, 21 % for Llama-3.2-1B, 1.5 % for Llama-3.1-70B"."""
    from calc import perf  # noqa: PLC0415
    from calc.model import matmul_params_per_token, param_counts  # noqa: PLC0415

    share = {}
    for key in ("llama-3.1-8b", "llama-3.2-1b", "llama-3.1-70b"):
        m = registry.get_model(key)
        c = param_counts(m)
        head = c["lm_head"] or c["embedding"]
        share[key] = head / matmul_params_per_token(m)
        # charged once per sequence: the linear part of a prefill is every matmul but the lm_head per prompt token,
        # plus the lm_head once per sequence (attention is what is left)
        for batch, tokens in ((1, 100), (3, 100), (2, 1000)):
            attention = perf.prefill_flops(m, batch, tokens) - (
                2 * (matmul_params_per_token(m) - head) * batch * tokens + 2 * head * batch)
            per_pair = 2 * m.num_attention_heads * (m.qk_head_dim + m.v_dim)
            pairs = sum(perf._attention_pairs(tokens, w) for w in m.layer_windows)
            assert attention == pytest.approx(batch * per_pair * pairs, rel=1e-9)
    assert [round(share["llama-3.1-8b"] * 100), round(share["llama-3.2-1b"] * 100),
            round(share["llama-3.1-70b"] * 100, 1)] == [7, 21, 1.5]


def test_the_held_llama_cpp_prompt_constants_are_as_the_data_page_says():
    """llama.cpp's held prompt constants: "19.0 ms and 0.53, from 14.9 ms and 0.51 (at which the RTX 6000 Ada's
    512-token prompt, a fit point, had fallen to -30.05 %; it is -26.6 % now)"."""
    key = "llamacpp-rtx-6000-ada-8b-fp16-pp512"
    entry = engines._data()["engines"]["llama.cpp"]
    assert (entry["step_overhead"]["prefill_base_s"], entry["compute_efficiency"]["default"]) == (0.019, 0.53)
    assert round(_errors(key)[key] * 100, 1) == -26.6
    # "PR #4766's F16 prompt from +18.0 to +23.6 %"; the two biases: "about 2 % more FLOPs than calc counts" (logits for
    # every prompt token, CodeLlama-7B) and "about 2.5 % fewer ... for Llama-3-8B" (the last layer's FFN: llama.cpp
    # applies the attention output projection before it drops the unused rows)
    # (both at the datasheet's matmul rate; at the RTX 4090's measured one, registry GPU.matmul_factor, "+7.0 %")
    assert round(_errors("llamacpp-4090-7b-f16-pp512")["llamacpp-4090-7b-f16-pp512"] * 100, 1) == 7.0
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(registry.GPU, "matmul_factor", 1.0)
        assert round(_errors("llamacpp-4090-7b-f16-pp512")["llamacpp-4090-7b-f16-pp512"] * 100, 1) == 23.6
    from calc import perf  # noqa: PLC0415
    from calc.model import lm_head_params  # noqa: PLC0415

    pts = {p["id"]: p for p in calibration.points()}
    for pid, share in (("llamacpp-4090-7b-f16-pp512", 2.0), ("llamacpp-rtx-4090-8b-fp16-pp512", 2.5)):
        m = calibration._model(pts[pid], calibration._data()["configs"])
        skipped = lm_head_params(m) if share == 2.0 else 3 * m.hidden_size * m.intermediate_size
        assert round(2 * skipped * 511 / perf.prefill_flops(m, 1, 512) * 100, 1) == share
    saved = (entry["step_overhead"]["prefill_base_s"], dict(entry["compute_efficiency"]))
    try:
        entry["step_overhead"]["prefill_base_s"], entry["compute_efficiency"]["default"] = 0.0149, 0.51
        engines.profile.cache_clear()
        assert round(_errors(key)[key] * 100, 2) == -30.05
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(registry.GPU, "matmul_factor", 1.0)
            assert round(_errors("llamacpp-4090-7b-f16-pp512")["llamacpp-4090-7b-f16-pp512"] * 100, 1) == 18.0
    finally:
        entry["step_overhead"]["prefill_base_s"], entry["compute_efficiency"] = saved
        engines.profile.cache_clear()


def test_the_inferencex_rocm_runs_are_as_the_data_page_says():
    """docs/*/calculators/data.md and vLLM's AMD warning on SemiAnalysis InferenceX's gpt-oss-120b runs with vLLM 0.17.0
    for ROCm on MI300X (PR #1061: median TPOT at 64/96/128/256 requests, one GPU; PR #1092: mean ITL at concurrency 1,
    TP 8; prompts and outputs uniform in [819, 1024], taken at 922). Not calibration points (MXFP4, outside the AMD rule)."""
    from calc import api  # noqa: PLC0415

    def calc_tpot(tp, batch):
        return calibration.predict({"id": "inferencex", "kind": "tpot", "engine": "vllm", "model": "gpt-oss-120b",
                                    "gpu": "mi300x", "weights": "mxfp4-experts", "kv_dtype": "bf16", "batch": batch,
                                    "prompt_len": 922, "output_len": 922, "tp": tp, "value": 1.0, "unit": "s"})

    assert round((819 + 1024) / 2) == 922
    one_gpu = {64: 31.4e-3, 96: 36.6e-3, 128: 41.3e-3, 256: 58.3e-3}
    got = {b: calc_tpot(1, b) for b in one_gpu}
    assert [round(v * 1e3, 1) for v in got.values()] == [17.3, 20.0, 22.1, 28.6]  # "17.3, 20.0, 22.1 and 28.6 ms"
    errors = [got[b] / one_gpu[b] - 1 for b in one_gpu]
    assert round(max(errors) * 100) == -45 and round(min(errors) * 100) == -51  # "-45 % to -51 %"
    # "The planner's simulator on that workload ... gives median TPOTs of 17.6, 20.4, 22.6 and 30.2 ms (-44 % to -48 %)"
    import math  # noqa: PLC0415

    from calc.simulate import StepModel, requests, simulate, step_cost  # noqa: PLC0415

    gpu, oss = registry.get_gpu("mi300x"), registry.get_model("gpt-oss-120b")
    sim = {}
    for c in one_gpu:
        sm = StepModel(oss, gpu, "mxfp4-experts", "bf16", 1, step_cost("vllm", "mxfp4-experts", gpu=gpu))
        sim[c] = simulate(sm, requests(10 * c, math.inf, prompt="819-1024", output="819-1024"), max_num_seqs=c)["tpot_s"]["p50"]
    assert [round(v * 1e3, 1) for v in sim.values()] == [17.6, 20.4, 22.6, 30.2]
    assert [round((sim[c] / one_gpu[c] - 1) * 100) for c in (64, 256)] == [-44, -48]
    tp8 = calc_tpot(8, 1)
    assert round(tp8 * 1e3, 2) == 3.21 and round((tp8 / 4.02e-3 - 1) * 100) == -20  # "calc 3.21 ms (-20 %)"
    assert registry.get_gpu("mi300x").peak_flops("fp4") is None  # "MI300X has no FP4 matrix instructions"
    # "the same model under vLLM 0.15.1 on H100s is within -8 % to +12 % of calc"
    h100 = _errors("vllm0151-")
    assert round(min(h100.values()) * 100) == -4 and round(max(h100.values()) * 100) == 12
    w = [x for x in api.run("perf", {"model": "llama-3.1-8b", "gpu": "mi300x", "engine": "vllm"})["warnings"]
         if "NVIDIA" in x["en"]]
    assert "45-51 % shorter than measured" in w[0]["en"] and "短 45 % 到 51 %" in w[0]["zh"]


def test_the_accelmark_long_prompts_are_as_the_data_page_says():
    """docs/*/calculators/data.md on AccelMark's concurrency-1 runs (Llama-3.1-8B, 28,650-token prompts): held out, the
    TTFTs seen since the GPUs' measured matmul rates; "on the A100, TTFT -3.1 % and TPOT -5.0 %; on the RTX 5090, TTFT
    +31.5 % and TPOT +13.6 %" (at the datasheet's matmul rate; the TTFTs now "-3.0 %" and "-7.3 %"); "615 TFLOP",
    "177 TFLOPS, 84 % of the 209.5 TFLOPS ... where calc's vLLM profile took 64 % (the A100 ran at 62 %)", "91 %" now."""
    from calc import perf  # noqa: PLC0415

    pts = {p["id"]: p for p in calibration.points() if p["id"].startswith("accelmark-")}
    assert len(pts) == 4 and all(p["subset"] == "holdout" for p in pts.values())
    assert sorted(k for k, p in pts.items() if "seen" in p) == [
        "accelmark-vllm0191-rtx-5090-llama31-8b-28k-ttft-c1", "accelmark-vllm0201-a100-80gb-llama31-8b-28k-ttft-c1"]
    assert {p["value"] for p in pts.values()} == {3.17855, 0.0131, 3.4831, 0.01234}  # the result files' medians
    e = {k: round(v * 100, 1) for k, v in _errors("accelmark-").items()}
    assert e == {"accelmark-vllm0201-a100-80gb-llama31-8b-28k-ttft-c1": -3.0,
                 "accelmark-vllm0201-a100-80gb-llama31-8b-28k-tpot-c1": -5.0,
                 "accelmark-vllm0191-rtx-5090-llama31-8b-28k-ttft-c1": -7.3,
                 "accelmark-vllm0191-rtx-5090-llama31-8b-28k-tpot-c1": 13.6}
    with pytest.MonkeyPatch.context() as mp:  # the datasheet's rate, and the front-end latency of then (10.6 ms)
        mp.setattr(registry.GPU, "matmul_factor", 1.0)
        p = engines.profile("vllm")
        mp.setattr(p, "request_latency_s", 0.0106)
        then = _errors("accelmark-vllm0191-rtx-5090-llama31-8b-28k-ttft")
        assert round(then["accelmark-vllm0191-rtx-5090-llama31-8b-28k-ttft-c1"] * 100, 1) == 31.5
    assert round(engines.profile("vllm").compute_efficiency("bf16", registry.get_gpu("rtx-5090")) * 100) == 91
    flops = perf.prefill_flops(registry.get_model("llama-3.1-8b"), 1, 28650)
    g5090, a100 = registry.get_gpu("rtx-5090"), registry.get_gpu("a100-80gb")
    assert round(flops / 1e12) == 615 and round(flops / 3.4831 / 1e12) == 177 and g5090.bf16_dense_flops == 209.5e12
    assert round(flops / 3.4831 / g5090.bf16_dense_flops * 100) == 84
    assert round(flops / 3.17855 / a100.bf16_dense_flops * 100) == 62
    assert round(engines.profile("vllm").compute_efficiency("bf16") * 100) == 64


def test_the_accelmark_rows_left_out_are_as_the_data_page_says():
    """The short-prompt AccelMark TPOTs left out by the rule (prompts replayed with prefix caching on), computed after:
    "-5.3 % and +12.1 % for Llama-3-8B on the A100 and the RTX 5090, -6.9 % and -65 % for Qwen2.5-0.5B: the RTX 5090
    took 5.11 ms per token for that model, 2.8 times the A100's 1.83 ms" (result files' medians; ShareGPT mean input
    236 and 73 tokens, about 310 and 150 out)."""
    rows = {("llama-3.1-8b", "a100-80gb", 236, 310): 10.77e-3, ("llama-3.1-8b", "rtx-5090", 236, 310): 10.22e-3,
            ("qwen2.5-0.5b", "a100-80gb", 73, 150): 1.83e-3, ("qwen2.5-0.5b", "rtx-5090", 73, 150): 5.11e-3}
    got = [round((calibration.predict({"id": "accelmark-left-out", "kind": "tpot", "engine": "vllm", "model": model,
                                       "gpu": gpu, "weights": "bf16", "kv_dtype": "bf16", "batch": 1, "prompt_len": pl,
                                       "output_len": ol, "tp": 1, "value": v, "unit": "s"}) / v - 1) * 100, 1)
           for (model, gpu, pl, ol), v in rows.items()]
    assert got[:3] == [-5.3, 12.1, -6.9] and round(got[3]) == -65
    assert round(5.11 / 1.83, 1) == 2.8
    assert not any(p["id"].startswith("accelmark-") and p["prompt_len"] < 1000 for p in calibration.points())


def test_the_geforce_warning_quotes_the_calibration_set():
    """vLLM's warning beside figures on GeForce cards quotes calc's errors on the vLLM points of RTX 4090 and RTX 5090:
    the 7-8B models' ranges are these points' errors, rounded to whole per cent; Qwen3-4B's open loops (the third
    search) separately."""
    from calc import api  # noqa: PLC0415

    pts = {p["id"]: p for p in calibration.points()}
    every = [{**r, **pts[r["id"]], "error": r["error"]} for r in ROWS
             if r["engine"] == "vllm" and pts[r["id"]]["gpu"] in ("rtx-4090", "rtx-5090")]
    assert {registry.get_gpu(r["gpu"]).name.split()[1] for r in every} == {"GeForce"} and len(every) == 22
    geforce = [r for r in every if r["model"] != "qwen3-4b"]
    assert {r["model"] for r in geforce} == {"qwen2.5-7b", "llama-3.1-8b"} and len(geforce) == 15
    small = {r["closed_loop"]["request_rate"]: r["error"] for r in every if r["model"] == "qwen3-4b"}
    assert max(abs(e) for q, e in small.items() if q <= 12) * 100 == pytest.approx(6.2, abs=0.05)
    assert round(small[16.0] * 100) == -49

    def span(kind, weights):
        errs = sorted(round(r["error"] * 100) for r in geforce if r["kind"] == kind and r["weights"] in weights)
        return errs[0], errs[-1]

    assert span("tpot", ("bf16",)) == (13, 16) and span("ttft", ("bf16",)) == (-7, 31)
    assert span("tpot", ("int4",)) == (31, 32) and span("ttft", ("int4",)) == (0, 1)
    assert all(abs(r["error"]) < 0.01 for r in geforce if r["kind"] == "ttft" and r["weights"] == "int4")
    assert span("tpot", ("fp8",)) == (-5, -5) and span("ttft", ("fp8",)) == (-21, -21)
    text = [w for w in api.run("perf", {"model": "qwen2.5-7b", "gpu": "rtx-4090"})["warnings"] if "GeForce" in w["en"]]
    assert len(text) == 1
    for piece in ("TPOT was 13-16 %", "TTFT -7 % to +31 %", "AWQ/GPTQ TPOT 31-32 % above (TTFT within 1 %)",
                  "FP8 TPOT 5 % and TTFT 21 % below", "within 6.2 % at 1 to 12 requests per second and 49 % below at 16",
                  "capacity was about a quarter too high"):
        assert piece in text[0]["en"], piece
    for piece in ("13–16 %", "−7 % 到 +31 %", "31–32 %", "不到 1 %", "低 5 %", "低 21 %", "相差在 6.2 % 以内", "低 49 %", "高了约四分之一"):
        assert piece in text[0]["zh"], piece
    # not for other engines, nor for datacenter cards
    for params in ({"gpu": "rtx-4090", "engine": "sglang"}, {"gpu": "l40s"}, {"gpu": "h100-sxm"}):
        w = api.run("perf", {"model": "qwen2.5-7b", **params})["warnings"]
        assert not any("GeForce" in x["en"] for x in w), params


def test_the_held_back_rows_of_2026_12_01_are_as_the_data_page_says():
    """data.md, "Held-back rows of 2026-12-01": eighteen rows admitted under a rule written before calc was computed on
    them, unseen, and what calc gives them; the warning beside an MLA model on vLLM quotes them."""
    from calc import api  # noqa: PLC0415

    pts = {p["id"]: p for p in calibration.points()}
    rows = {r["id"]: r["error"] for r in ROWS if r["id"].startswith(ADMITTED_S18)}
    assert len(rows) == 18 and all(pts[k]["subset"] == "holdout" and "seen" not in pts[k] for k in rows)
    assert sum(1 for k in rows if k.startswith("dstack-")) == 7 and all(pts[k].get("closed_loop") for k in rows
                                                                        if k.startswith("dstack-"))
    # the engine profile by release: vLLM before 0.8 is the V0 variant
    assert all(pts[k].get("engine_variant") == "v0.6" for k in rows if "-vllm0" in k)
    pct = {k: round(v * 100) for k, v in rows.items()}
    h200 = [pct[f"dstack-vllm074-h200x8-dsr1-tpot-c{c}"] for c in (4, 8, 16, 32)]
    assert (min(h200), max(h200)) == (-64, -51)  # "51 % to 64 % short on vLLM 0.7 on H200s"
    assert pct["dstack-vllm073-rocm-mi300xx8-dsr1-tpot-c4"] == -79  # "79 % on its ROCm build"
    assert [pct[f"dstack-sgl042-mi300xx8-dsr1-tpot-c{c}"] for c in (4, 16)] == [-67, -60]  # "60 % and 67 %"
    argonne = {k: v for k, v in pct.items() if k.startswith("argonne-")}
    within = {k for k, v in argonne.items() if abs(v) <= 30}
    assert within == {"argonne-vllm061-rocm-mi300xx1-mistral-7b-fp16-b1-128", "argonne-vllm061-rocm-mi300xx2-mixtral-8x7b-fp16-b1-128"}
    assert sorted(argonne[k] for k in within) == [13, 27]  # "+13 % and +27 %"
    assert (min(v for k, v in argonne.items() if k not in within), max(argonne.values())) == (55, 273)  # "55 % to 273 %"
    assert sum(abs(v) > calibration.MAX_ERROR for v in rows.values()) == 16  # "Sixteen of the eighteen"
    # "with its variant (vllm@rocm-0.9) instead, eight of the eleven still miss, at +35 % to +252 %"
    rocm = {k: pts[k] for k in rows if k.startswith("argonne-")}
    rocm = {k: round((calibration.predict(q, engine="vllm@rocm-0.9") / q["value"] - 1) * 100) for k, q in rocm.items()}
    miss = [v for v in rocm.values() if abs(v) > 30]
    assert (len(miss), min(miss), max(miss)) == (8, 35, 252)
    # the samples against the whole sweeps (tests/data): Argonne's 269 rows of the three models, median +144 %, 264
    # beyond 30 % (the eleven: +96 %); dstack's 27 rows of the three setups, -34 % to -79 %, median -61 % (the seven: -61 %)
    def err(q):
        return calibration.predict(q) / q["value"] - 1
    data = Path(__file__).resolve().parent / "data"
    sweep = json.loads((data / "argonne-mi300x-vllm061.json").read_text())["rows"]
    errs = [err({"kind": "throughput", "engine": "vllm", "engine_variant": "v0.6", "model": r["model"], "gpu": "mi300x",
                 "weights": "fp16", "kv_dtype": "fp16", "batch": r["batch"], "prompt_len": r["length"],
                 "output_len": r["length"], "tp": r["gpus"], "value": r["batch"] * r["length"] / r["latency_s"]})
            for r in sweep]
    sample = [rows[k] for k in rows if k.startswith("argonne-")]
    assert (len(errs), round(statistics.median(errs) * 100), sum(abs(e) > 0.3 for e in errs)) == (269, 144, 264)
    assert round(statistics.median(sample) * 100) == 96
    # "the dense models' large batches of 128-token prompts reached at most 63 TFLOPS per GPU on one MI300X (...; Mistral-7B
    # 66), 66 at TP 2, 50 at TP 4 and 42 at TP 8: about 5 % of MI300X's dense FP16 datasheet rate, flat from 64 sequences up"
    from calc import perf  # noqa: PLC0415

    def tflops(model, batch, length, latency_s, gpus):  # calc's FLOPs of the static batch over its measured time, per GPU
        m = registry.get_model(model)
        done = perf.prefill_flops(m, batch, length) + sum(perf.decode_flops(m, batch, length + i) for i in range(length))
        return done / latency_s / gpus / 1e12
    big = {}
    for r in sweep:
        if r["model"] != "mixtral-8x7b" and r["length"] == 128 and r["batch"] >= 64:
            big.setdefault((r["model"], r["gpus"]), []).append(tflops(r["model"], r["batch"], 128, r["latency_s"], r["gpus"]))
    assert {k: round(max(v)) for k, v in big.items()} == {("llama-3-70b", 1): 63, ("llama-3-70b", 2): 66,
                                                           ("llama-3-70b", 4): 50, ("llama-3-70b", 8): 42, ("mistral-7b", 1): 66}
    assert all(max(v) / min(v) < 1.2 for v in big.values())  # flat from 64 sequences up
    assert round(66e12 / registry.get_gpu("mi300x").peak_flops("fp16"), 2) == 0.05
    # the H100 rows of the same CSV (Plots/All_results.csv at ae7e7a4: 'Nvidia H100 GPU', vLLM, input = output 128,
    # batch 64; latencies 1.871 s on one GPU, 3.751 s on four), against MI300X's: "124 ... and 151 ..., against 62 and 45"
    mi = {(r["model"], r["gpus"]): r["latency_s"] for r in sweep if r["length"] == 128 and r["batch"] == 64}
    assert [round(tflops("mistral-7b", 64, 128, 1.871, 1)), round(tflops("llama-3-70b", 64, 128, 3.751, 4)),
            round(tflops("mistral-7b", 64, 128, mi[("mistral-7b", 1)], 1)),
            round(tflops("llama-3-70b", 64, 128, mi[("llama-3-70b", 4)], 4))] == [124, 151, 62, 45]
    # batch 1: "55.7 ms a step on one MI300X, its 141 GB of weights read at about 0.48 of the datasheet's bandwidth, and
    # 25.4 ms on eight, where each GPU's share of the weights takes 3.3 ms ...: about 22 ms a step beyond the reads"
    one = {r["gpus"]: r["latency_s"] / 128 for r in sweep if r["model"] == "llama-3-70b" and r["batch"] == 1 and r["length"] == 128}
    w, bw = mem.weights_bytes(registry.get_model("llama-3-70b"), "fp16"), registry.get_gpu("mi300x").memory_bandwidth_bytes_per_s
    assert (round(one[1] * 1e3, 1), round(w / 1e9), round(w / one[1] / bw, 2)) == (55.7, 141, 0.48)
    assert (round(one[8] * 1e3, 1), round(w / 8 / bw * 1e3, 1), round((one[8] - w / 8 / bw) * 1e3)) == (25.4, 3.3, 22)
    sweep = json.loads((data / "dstack-dsr1-online.json").read_text())["rows"]
    errs = [err({"kind": "tpot", "model": "deepseek-r1", "gpu": r["gpu"], "weights": "fp8", "kv_dtype": "bf16", "tp": 8,
                 "batch": r["concurrency"], "prompt_len": r["input"], "output_len": r["output"], "value": r["mean_tpot_ms"] / 1e3,
                 "closed_loop": {"num_prompts": r["prompts"], "statistic": "mean"},
                 **({"engine": "sglang"} if r["backend"] == "sglang" else {"engine": "vllm", "engine_variant": "v0.6"})})
            for r in sweep]
    sample = [rows[k] for k in rows if k.startswith("dstack-")]
    assert (len(errs), round(min(errs) * 100), round(max(errs) * 100), round(statistics.median(errs) * 100)) == (27, -79, -34, -61)
    assert round(statistics.median(sample) * 100) == -61
    # the warning beside DeepSeek-style models on vLLM quotes the H200 rows as the calculators compute them (the current
    # profile: "57-73 %"; the V0 variant the rows are computed with gives 51-64 %)
    cur = [round((calibration.predict(pts[f"dstack-vllm074-h200x8-dsr1-tpot-c{c}"], engine="vllm")
                  / pts[f"dstack-vllm074-h200x8-dsr1-tpot-c{c}"]["value"] - 1) * 100, 1) for c in (4, 8, 16, 32)]
    assert (min(cur), max(cur)) == (-72.5, -56.6)  # 72.5 rounded half up
    w = [x for x in api.run("perf", {"model": "deepseek-r1", "gpu": "h200", "tp": 8, "weights": "fp8"})["warnings"]
         if "MLA" in x["en"]]
    assert len(w) == 1 and "57-73 %" in w[0]["en"] and "57 % 到 73 %" in w[0]["zh"]
    # beside an MLA model on SGLang, the Triton backend's slowdown on GLM-4.7-Flash's concurrency-1 TPOTs
    c1 = [pts[f"sgl057-b200-glm47flash-tpot-{k}"] for k in ("c1", "c1-8k")]
    assert [q["value"] * 1e3 for q in c1] == [8.75, 12.63]
    assert [round(q["prompt_len"] + q["output_len"] / 2, -2) for q in c1] == [800, 4400]  # "about 800 ... about 4,400"
    w = [x for x in api.run("perf", {"model": "deepseek-r1", "gpu": "b200", "tp": 8, "weights": "fp8", "engine": "sglang"})
         ["warnings"] if "triton" in x["en"]]
    assert len(w) == 1 and "8.75 ms" in w[0]["en"] and "12.63 ms" in w[0]["zh"] and "4,400" in w[0]["zh"]
    # and the one beside SGLang on AMD GPUs quotes its MI300X rows ("60-67 %")
    w = [x for x in api.run("perf", {"model": "deepseek-r1", "gpu": "mi300x", "tp": 8, "weights": "fp8", "engine": "sglang"})
         ["warnings"] if "AMD" in x["en"]]
    assert len(w) == 1 and "60-67 %" in w[0]["en"] and "60 % 到 67 %" in w[0]["zh"]
    w = [x for x in api.run("perf", {"model": "deepseek-r1", "gpu": "h200", "tp": 8, "weights": "fp8", "engine": "trt-llm"})
         ["warnings"] if "MLA" in x["en"]]
    assert len(w) == 1 and "not been compared" in w[0]["en"]



def test_the_held_back_rows_of_2026_12_02_are_as_the_data_page_says():
    """data.md, the second search (2026-12-02): four open-loop rows of DeepSeek-R1 on vLLM 0.8.4 (simon-mo/vLLM-Benchmark,
    a DGX H200), admitted by an amendment written before calc was computed on them, unseen; what calc gives them, and
    the warning beside an MLA model on vLLM, which quotes them."""
    from calc import api, simulate  # noqa: PLC0415
    from calc.simulate import StepModel  # noqa: PLC0415

    pts = {p["id"]: p for p in calibration.points()}
    rows = {r["id"]: r["error"] for r in ROWS if r["id"].startswith(ADMITTED_S19)}
    last = "simonmo-vllm084-h200x8-dsr1-tpot-r10-30k100"  # seen since the admission rule per release moved it
    assert set(rows) == S19_MISSES and all(pts[k]["subset"] == "holdout" and ("seen" in pts[k]) == (k == last) for k in rows)
    assert "admission per release" in pts[last]["seen"] and "-62 % -> -57 %" in pts[last]["seen"]
    # an open loop: 50 prompts, Poisson at 10 per second, fixed lengths; vLLM 0.8.4 is the V1 engine, the current profile
    # (admitting a prompt on its first chunk's blocks, as 0.8.4's scheduler did: test_vllm_releases_before_0_19_...)
    assert all(pts[k]["closed_loop"] == {"num_prompts": 50, "statistic": "mean", "request_rate": 10.0,
                                         "reserve_full_prompt": False}
               and pts[k]["engine"] == "vllm" and "engine_variant" not in pts[k] for k in rows)
    # "43 % short at 1,000/2,000 tokens, 42 % at 5,000/1,000, 48 % at 10,000/500 and 57 % at 30,000/100"
    keys = [f"simonmo-vllm084-h200x8-dsr1-tpot-r10-{k}" for k in ("1k2000", "5k1000", "10k500", "30k100")]
    assert [round(rows[k] * 100) for k in keys] == [-43, -42, -48, -57]
    # batch 1,024: vLLM 0.8.4's max_num_seqs on an H200, which 50 requests never reach
    assert all(pts[k]["batch"] == 1024 for k in keys)
    # the simulation drew what the client sent: 50 arrivals over about five seconds (10 per second), not a burst
    reqs = simulate.requests(50, 10.0, 1000, 2000)
    assert len(reqs) == 50 and 3 < reqs[-1].arrival < 8 and {(r.prompt_len, r.output_len) for r in reqs} == {(1000, 2000)}
    # the same release on another provider's H200s: "its TPOTs were 25 %, 21 % and 14 % shorter at the first three
    # lengths and 24 % longer at 30,000/100, and against it calc would be 23 %, 26 %, 39 % and 66 % short"
    other = [pts[k]["source"]["other_host_run"] for k in keys]
    assert [round((o["mean_tpot_s"] / pts[k]["value"] - 1) * 100) for o, k in zip(other, keys, strict=True)] == [-25, -21, -14, 24]
    assert [round((calibration.predict(pts[k]) / o["mean_tpot_s"] - 1) * 100)
            for o, k in zip(other, keys, strict=True)] == [-23, -26, -39, -66]
    # the steps: "steps that carried a prompt chunk ... hold 14 %, 42 % and 95 % of the decode time in the last three rows,
    # and took a median 0.49, 0.53 and 0.68 s, where calc's steps with an 8,192-token chunk take 0.16 to 0.27 s; the first
    # 30,000-token prompt's TTFT was 2.7 s, calc's 0.8 s"; "decode-only steps 32 % to 40 % short (median gaps of 41.5 to
    # 47 ms against calc's 25 to 32 ms)"
    itl = [pts[k]["source"]["itl_breakdown"] for k in keys]
    assert [b["prompt_step_share"] for b in itl[1:]] == [0.14, 0.42, 0.95]
    assert [round(b["prompt_step_median_s"], 2) for b in itl[1:]] == [0.49, 0.53, 0.68] and itl[3]["first_ttft_s"] == 2.67
    m, h200 = registry.get_model("deepseek-r1"), registry.get_gpu("h200")
    step = StepModel(m, h200, "fp8", "bf16", 8, simulate.step_cost("vllm", "fp8", gpu=h200))
    chunk = [step.step_s([(start, 8192)], n, n * ctx) for start in (0, 20000) for n, ctx in ((14, 30050), (40, 10250))]
    assert round(min(chunk), 2) == 0.16 and round(max(chunk), 2) == 0.27
    lone = simulate.simulate(step, simulate.requests(1, math.inf, 30000, 2), max_num_seqs=1, max_num_batched_tokens=8192,
                             kv_samples=2)
    assert round(lone["ttft_s"]["mean"], 1) == 0.8
    decode = [step.decode_step_s(50, 50 * ctx) for ctx in (2000, 5500, 10250)]  # the mean context of each row's decodes
    short = [decode[i] / itl[i]["decode_step_median_s"] - 1 for i in range(3)]
    assert [round(b["decode_step_median_s"] * 1e3, 1) for b in itl[:3]] == [41.5, 43.7, 47.0]
    assert round(decode[0] * 1e3) == 25 and round(decode[2] * 1e3) == 32
    assert round(min(short) * 100) == -40 and round(max(short) * 100) == -32
    # "its median inter-token gaps at the first three lengths, 30.7 to 36.1 ms, put calc's decode-only steps 11 % to 19 %
    # short there" (on the DGX host the median gap is the decode-only median: 41.5, 43.7 and 47.0 ms)
    gaps = [pts[k]["source"]["other_host_run"]["median_itl_s"] for k in keys[:3]]
    assert [round(g * 1e3, 1) for g in gaps] == [30.7, 32.8, 36.1]
    there = [decode[i] / gaps[i] - 1 for i in range(3)]
    assert round(min(there) * 100) == -19 and round(max(there) * 100) == -11
    # "about two to four times too fast (the median steps with a prompt chunk 1.8 to 4.2 times calc's)": against calc's
    # 0.16 to 0.27 s; the first 30,000-token TTFT 3.3 times calc's
    ratios = [b["prompt_step_median_s"] / c for b in itl[1:] for c in chunk]
    assert (round(min(ratios), 1), round(max(ratios), 1)) == (1.8, 4.2)
    assert round(itl[3]["first_ttft_s"] / lone["ttft_s"]["mean"], 1) == 3.3
    # the warning beside DeepSeek-style models on vLLM quotes these rows beside the V0 ones
    w = [x for x in api.run("perf", {"model": "deepseek-r1", "gpu": "h200", "tp": 8, "weights": "fp8"})["warnings"]
         if "MLA" in x["en"]]
    assert len(w) == 1 and "32-40 %" in w[0]["en"] and "0.8.4" in w[0]["en"] and "32 % 到 40 %" in w[0]["zh"]
    assert "11-19 %" in w[0]["en"] and "11 % 到 19 %" in w[0]["zh"] and "two to four" in w[0]["en"] and "两到四倍" in w[0]["zh"]
    assert "57-73 %" in w[0]["en"] and "57 % 到 73 %" in w[0]["zh"]

def test_the_hybrid_kv_checks_are_as_the_data_page_says():
    """docs/*/calculators/data.md on vLLM's hybrid KV cache manager: the Kaggle log's 2.46x at 98,304 tokens against
    calc's 2.53 (1.37 counting every layer at full length); vLLM 0.25.1's 303,646 tokens for 10.52 GiB against this
    counting with one batch in flight (303,709) or two (301,375); 155,728 tokens for gpt-oss-120b on one H100 by the
    earlier count."""
    pts = {p["id"]: p for p in calibration.points()}
    p = pts["vllm0112-h100-gptoss120b-kv"]
    oss, h100 = registry.get_model("gpt-oss-120b"), registry.get_gpu("h100-sxm")
    kw = dict(visible_memory_bytes=h100.visible_memory_bytes, engine="vllm", kv_variant=p["kv_variant"],
              gpu_memory_utilization=p["gpu_memory_utilization"], max_model_len=p["max_model_len"],
              mxfp4_backend=p["mxfp4_backend"], max_num_seqs=p["max_num_seqs"])
    r = mem.memory_report(oss, h100.memory_bytes, "mxfp4-experts", **kw)
    assert round(r["engine_max_concurrency_at_max_model_len"], 2) == 2.53
    assert round(r["engine_max_concurrency_at_max_model_len"] / 2.46 - 1, 2) == round(calibration.predict(p) / p["value"] - 1, 2) == 0.03
    assert round(r["engine_max_tokens_in_cache"] / p["max_model_len"], 2) == 1.37  # all 36 layers at full length
    # vLLM 0.25.1: the log's 10.52 GiB in blocks of 16 tokens x 18 layers x 2,048 bytes, at 131,072 tokens
    size, groups = mem.vllm_kv_groups(list(oss.layer_windows))
    blocks = int(10.52 * 2**30) // (16 * size * 2048)
    windows = [w for w, _ in groups]
    # max_num_batched_tokens 1,024: the repository's compose default (the log excerpt does not print it)
    got = [int(blocks / mem.vllm_blocks_per_request(windows, 131072, 16, n * 1024, bound=True) * 131072) for n in (1, 2)]
    assert got == [303709, 301375] and abs(got[0] / 303646 - 1) < 0.001
    # the variant for 0.21 to 0.25 counts one batch in flight and logs the concurrency, as that log does; current
    # vLLM (0.26 on) two batches, 0.10 to 0.20 one batch and the blocks shared out over the groups
    kw = dict(visible_memory_bytes=h100.visible_memory_bytes, engine="vllm", max_num_batched_tokens=1024,
              compute_capability=h100.compute_capability, max_model_len=131072)
    for variant, in_flight in (("v1-0.21-0.25", 1024), (None, 2048), ("v1-pre0.21", 1024)):
        r = mem.memory_report(oss, h100.memory_bytes, "mxfp4-experts", kv_variant=variant, **kw)
        assert r["engine_kv_in_flight_tokens"] == in_flight, variant
        b = r["engine_num_kv_blocks"]
        logged = (b // 2 * 16 if variant == "v1-pre0.21"
                  else int(b / mem.vllm_blocks_per_request(windows, 131072, 16, in_flight, bound=True) * 131072))
        assert r["engine_max_tokens_in_cache"] == logged, variant
    # it differs from the current rule in its batches in flight and in its sampler (the V1 runner's)
    assert engines.profile("vllm").kv_budget("v1-0.21-0.25") == {**engines.profile("vllm").kv_budget(),
                                                                  "in_flight_batches": 1, "sampler_path": "sort-free"}
    now = mem.memory_report(oss, h100.memory_bytes, "mxfp4-experts", visible_memory_bytes=h100.visible_memory_bytes,
                            engine="vllm", compute_capability=h100.compute_capability)
    assert now["engine_num_kv_blocks"] // 2 * 16 == 155728


def test_a_closed_loops_decode_step_is_the_performance_calculators():
    """The data page: the closed-loop simulation uses "the very step the performance calculator uses: a decode-only step
    equals its TPOT on every such point" (the 74 closed-loop points, thirteen of them open loops, and the five kept as
    static batches for the prefix cache)."""
    from calc import perf  # noqa: PLC0415
    from calc.simulate import StepCost, StepModel  # noqa: PLC0415

    kept = {f"vllm0251-rtx4090-qwen25-7b-tpot-c{c}" for c in (4, 8, 16)} | {
        "vllm020-h100-qwen3-8b-tpot-c8-mtbench", "vllm020-h100-qwen3-8b-fp8-tpot-c8-mtbench"}
    pts = [p for p in calibration.points() if p.get("closed_loop") or p["id"] in kept]
    assert len(pts) == 79 and sum(1 for p in pts if p.get("closed_loop")) == 74
    assert sum(1 for p in pts if "request_rate" in p.get("closed_loop", {})) == 12  # and the burst, queued at t = 0
    configs = calibration._data()["configs"]
    for p in pts:
        m, gpu = calibration._model(p, configs), registry.get_gpu(p["gpu"])
        key = f"{p['engine']}@{p['engine_variant']}" if p.get("engine_variant") else p["engine"]
        step = StepModel(m, gpu, p["weights"], p["kv_dtype"], p["tp"],
                         StepCost.from_profile(engines.profile(key), p["weights"], key, gpu))
        ctx = round(p["prompt_len"] + p["output_len"] / 2)
        tpot = perf.perf_report(m, gpu, p["weights"], p["kv_dtype"], p["batch"], p["prompt_len"], p["output_len"],
                                p["tp"], curve_batches=(), engine=key)["tpot_s"]
        assert step.decode_step_s(p["batch"], p["batch"] * ctx) == pytest.approx(tpot, rel=1e-4), p["id"]


def test_the_closed_loop_side_figures_are_as_the_data_page_says(monkeypatch):
    """data.md's serving paragraph: the RTX 4090 sweep at concurrency 16 "went from +14.9 % to +19.8 %" under the closed
    loop before it was kept as a static batch; SGLang's budget is "its chunked_prefill_size for the GPU, 8,192 on H200s
    and 16,384 on B200s, or the source's own where it states one, 32,768 in InferenceX's H200 runs". The medians are
    those of the time, before SGLang's Triton kernel (_as_before_triton)."""
    _as_before_triton(monkeypatch)
    pts = {p["id"]: p for p in calibration.points()}
    rtx = pts["vllm0251-rtx4090-qwen25-7b-tpot-c16"]
    assert "closed_loop" not in rtx and "+19.8 % against +14.9 %" in rtx["seen"]
    closed = {**rtx, "closed_loop": {"num_prompts": 200, "statistic": "mean"}}
    with pytest.MonkeyPatch.context() as mp:  # as computed then, before the GPUs' measured matmul rates (18.7 % now)
        _as_before_matmul_shares(mp)
        then = [round((calibration.predict(p) / rtx["value"] - 1) * 100, 1) for p in (rtx, closed)]
    engines.profile.cache_clear()
    assert then == [14.9, 19.8]
    b200 = [p for p in pts.values() if p.get("closed_loop") and p["engine"] == "sglang" and p["gpu"] == "b200"]
    assert len(b200) == 13
    assert all(calibration.predict({**p, "max_num_batched_tokens": 16384}) == calibration.predict(p) for p in b200)
    assert any(calibration.predict({**p, "max_num_batched_tokens": 8192}) != calibration.predict(p) for p in b200)
    h200 = [p for p in pts.values() if p.get("closed_loop") and p["engine"] == "sglang" and p["gpu"] == "h200"]
    assert len(h200) == 3 and all(p["max_num_batched_tokens"] == 32768 and "--chunked-prefill-size 32768" in
                                  p["source"]["settings"] for p in h200)
    # "the held-out TPOT median goes from 8.2 % to 8.1 %" (the 102 points of the time, static batches vs closed loops);
    # with the nine SGLang rows "8.8 % over 111 points"; the unseen TPOT median "fell from 8.1 % over 53 points to 7.6 %
    # over 30" (pinned in test_the_rtx_4090_chat_runs_...: 11.6 % over 39 with the nine rows)
    nine = {f"{m}-tpot-{k}" for m in ("sgl056-b200-dsr1", "sgl056-b200-qwen3-235b", "sgl057-b200-glm47flash")
            for k in ("c16-1k1k", "c16-8k1k", "c64-8k1k")}
    held = [p for p in pts.values() if p["kind"] == "tpot" and p["subset"] == "holdout"]
    assert len(held) == 111 and nine <= {p["id"] for p in held}

    def med(ps, static=False, then=False):
        return round(statistics.median(abs(calibration.predict(
            _static(p) if static else _as_before_sglang_steps(p) if then else p) / p["value"] - 1) for p in ps) * 100, 1)
    before = [p for p in held if p["id"] not in nine]
    with pytest.MonkeyPatch.context() as mp:  # the figures of the time, before the GPUs' measured matmul rates
        _as_before_matmul_shares(mp)
        static_then = med(before, static=True)
        with _sglang_mixed():  # and before SGLang's steps of prompts
            mixed_then = (med(before, then=True), med(held, then=True))
        _as_before_matmul_shares(mp)  # _sglang_mixed cleared the profile cache
        held_then = med(held)
    engines.profile.cache_clear()
    assert (len(before), static_then, mixed_then, held_then) == (102, 8.2, (8.1, 8.8), 8.3)
    assert med(held) == 8.1
    unseen = [p for p in before if not p.get("seen")]
    assert (len(unseen), med(unseen)) == (30, 7.6)

    # "with N from 4 C to 20 C a point moves by up to 3 points (SGLang's by up to 6 ...)"; the threshold for "moved",
    # 1e-4, is "six times the simulation's numerical noise" (the GPUStack points, whose closed loop runs in lock-step,
    # move by 1.4-1.6e-5)
    moves = {"sglang": [], "other": []}
    for p in pts.values():
        if p.get("closed_loop"):
            base = calibration.predict(p) / p["value"]
            moves["sglang" if p["engine"] == "sglang" else "other"] += [
                abs(calibration.predict({**p, "closed_loop": {**p["closed_loop"], "num_prompts": f * p["batch"]}})
                    / p["value"] - base) for f in (4, 20)]
    assert 0.02 < max(moves["other"]) < 0.03 and 0.05 < max(moves["sglang"]) < 0.06
    noise = [abs(calibration.predict(p) / calibration.predict(_static(p)) - 1)
             for p in pts.values() if p["id"].startswith("gpustack-") and p.get("closed_loop")]
    assert len(noise) == 3 and round(1e-4 / max(noise)) == 6
    # "part of a point's move is the shorter mean length, not the prompts in the decode steps (up to half a point on the
    # gpt-oss-120b rows)": the static batch at the drawn lengths' means against the nominal ones
    shift = []
    for p in pts.values():
        if p["id"].startswith("vllm0151-") and p.get("closed_loop"):
            (a, b), (c, d) = (map(int, p["closed_loop"][side].split("-")) for side in ("prompt", "output"))
            static = _static(p)
            shift.append(abs(calibration.predict(static) - calibration.predict({**static, "prompt_len": round((a + b) / 2),
                                                                             "output_len": round((c + d) / 2)})) / p["value"])
    assert len(shift) == 12 and 0.004 < max(shift) < 0.005


def test_the_gpus_measured_matmul_rates_are_as_the_data_page_says(monkeypatch):
    """docs/*/calculators/data.md, "Each GPU's measured matmul rate": the shares it quotes (registry), the constants the
    refits changed, and the effect on the calibration set (before: _as_before_matmul_shares). The figures are those of
    the time: before SGLang's Triton kernel and the rows admitted later that day (_as_before_triton), and before vLLM
    for ROCm's refit on cached prompts (_as_before_rocm_refit)."""
    _as_before_triton(monkeypatch)
    _as_before_rocm_refit(monkeypatch)
    share = {k: round(registry.get_gpu(k).matmul_share * 100) for k in registry.list_gpus()
             if registry.get_gpu(k).matmul_measured_flops}
    assert share == {"h100-sxm": 80, "h200": 80, "h100-pcie": 66, "a100-80gb": 85, "a100-40gb": 79, "b200": 75, "h20": 96,
                     "l40s": 74, "l20": 96, "l4": 59, "rtx-a6000": 80, "t4": 65, "rtx-4090": 100, "rtx-5090": 114,
                     "rtx-3090": 108, "mi300x": 51}
    data = engines._data()["engines"]
    assert data["vllm"]["step_overhead"]["prefill_base_s"] == 0.01441
    assert data["vllm"]["variants"]["rocm-0.9"]["compute_efficiency"]["fp8"] == 0.286  # refitted since (_as_before_rocm_refit)
    assert data["llama.cpp"]["memory_efficiency"]["q4_k_m"] == 0.881
    pts = {p["id"]: p for p in calibration.points()}

    def summary(rows):
        held = [r for r in rows if r["subset"] == "holdout"]
        beyond = sum(1 for r in held if abs(r["error"]) > calibration.MAX_ERROR)
        med = {k: round(statistics.median(abs(r["error"]) for r in held if r["kind"] == k) * 100, 1) for k in ("ttft", "tpot")}
        picks = {k: round(next(r["error"] for r in rows if r["id"] == k) * 100) for k in (
            "vllm0251-rtx4090-qwen25-7b-ttft-c1", "vllm-l4-qwen0.5b-ttft-c1", "lifenyan-vllm0251-rtx4090-qwen25-7b-bf16-ttft-c1",
            "lifenyan-vllm0251-rtx4090-qwen25-7b-awq-ttft-c1", "lifenyan-vllm0251-rtx4090-qwen25-7b-fp8-ttft-c1",
            "llamacpp-rtx-3090-8b-fp16-pp512", "chipbench-vllm091-h100-sxmx1-llama-3.1-8b-bf16-ttft-c1")}
        rtx5090 = round(next(r["error"] for r in rows if r["id"] == "accelmark-vllm0191-rtx-5090-llama31-8b-28k-ttft-c1") * 100, 1)
        prompts = sorted(round(r["error"] * 100) for r in rows if r["id"] in (
            "llamacpp-4090-7b-f16-pp512", "llamacpp-4090-7b-q8_0-pp512", "llamacpp-rtx-4090-8b-q4km-pp512",
            "llamacpp-rtx-4090-8b-fp16-pp512"))
        mi = sorted(round(r["error"] * 100) for r in rows if r["id"].startswith("chipbench-vllm091-mi300x")
                    and r["id"].endswith("-ttft-c1") and "-bf16-" in r["id"])
        return beyond, med, picks, rtx5090, (prompts[0], prompts[-1]), (mi[0], mi[-1])

    with pytest.MonkeyPatch.context() as mp:
        _as_before_matmul_shares(mp)
        before = summary(calibration.errors())
    engines.profile.cache_clear()
    now = summary(calibration.errors())
    assert before[:2] == (22, {"ttft": 9.3, "tpot": 8.3}) and now[:2] == (18, {"ttft": 8.0, "tpot": 8.1})
    assert before[2] == {"vllm0251-rtx4090-qwen25-7b-ttft-c1": 41, "vllm-l4-qwen0.5b-ttft-c1": -41,
                         "lifenyan-vllm0251-rtx4090-qwen25-7b-bf16-ttft-c1": 36,
                         "lifenyan-vllm0251-rtx4090-qwen25-7b-awq-ttft-c1": 16,
                         "lifenyan-vllm0251-rtx4090-qwen25-7b-fp8-ttft-c1": -11, "llamacpp-rtx-3090-8b-fp16-pp512": 0,
                         "chipbench-vllm091-h100-sxmx1-llama-3.1-8b-bf16-ttft-c1": 8}
    assert now[2] == {"vllm0251-rtx4090-qwen25-7b-ttft-c1": 31, "vllm-l4-qwen0.5b-ttft-c1": -31,
                      "lifenyan-vllm0251-rtx4090-qwen25-7b-bf16-ttft-c1": 18,
                      "lifenyan-vllm0251-rtx4090-qwen25-7b-awq-ttft-c1": 0,
                      "lifenyan-vllm0251-rtx4090-qwen25-7b-fp8-ttft-c1": -21, "llamacpp-rtx-3090-8b-fp16-pp512": -22,
                      "chipbench-vllm091-h100-sxmx1-llama-3.1-8b-bf16-ttft-c1": 17}
    assert (before[3], now[3]) == (31.5, -7.3)
    assert (before[4], now[4]) == ((10, 24), (-5, 8))
    assert (before[5], now[5]) == ((-60, -42), (-41, -26))
    assert pts["llamacpp-rtx-3090-8b-fp16-pp512"]["subset"] == "holdout"
    # the RTX 3090's Q4_K_M prompt "+9 % -> -10.4 %"; CUDA profile on MI300X: "fourteen of its eighteen points miss"
    q4 = pts["llamacpp-rtx-3090-8b-q4km-pp512"]
    with pytest.MonkeyPatch.context() as mp:
        _as_before_matmul_shares(mp)
        then = {p["id"]: calibration.predict(p) for p in pts.values()}
    engines.profile.cache_clear()
    assert round((then[q4["id"]] / q4["value"] - 1) * 100) == 9
    # the L4's 1,800-token TTFT, "-23.5 % -> +3.1 %"; llama.cpp's H100 PCIe prompts, "-9.0 % and -21.8 % -> -2.6 % and -13.5 %"
    for k, was, is_ in (("ree2raz-vllm085-l4-qwen25-7b-ttft-c1-1800", -24.1, 3.1), ("llamacpp-h100-pcie-8b-q4km-pp512", -9.0, -2.6),
                        ("llamacpp-h100-pcie-8b-fp16-pp512", -21.8, -13.5)):
        assert (round((then[k] / pts[k]["value"] - 1) * 100, 1), round((calibration.predict(pts[k]) / pts[k]["value"] - 1) * 100, 1)) == (was, is_)
    assert round((calibration.predict(q4) / q4["value"] - 1) * 100, 1) == -10.4
    cuda = _errors("chipbench-vllm091-mi300x", engine="vllm")
    assert sum(abs(v) > calibration.MAX_ERROR for v in cuda.values()) == 14
    # every held-out point the change moved is marked seen for it, and only those
    moved = {k for k, p in pts.items() if p["subset"] == "holdout" and abs(calibration.predict(p) / then[k] - 1) > 1e-4}
    assert moved == {k for k, p in pts.items() if "measured matmul share" in p.get("seen", "")} and len(moved) == 46
    # without the dead band: "8.2 %", still 18 beyond 30 % (no refit)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(registry, "MATMUL_FACTOR_DEADBAND", 0.0)
        assert summary(calibration.errors())[:2] == (18, {"ttft": 8.2, "tpot": 8.1})


def _release(version: str) -> tuple[int, ...] | None:
    """The vLLM release a source names ("vLLM v0.15.1 (docker ...)" -> (0, 15, 1)); None for a build from main."""
    m = re.search(r"\bv?(\d+)\.(\d+)\.(\d+)", version)
    return tuple(int(x) for x in m.groups()) if m else None


def test_vllm_releases_before_0_19_admit_a_prompt_on_its_first_chunk():
    """data.md: the simulation admits a waiting request under the rule of the release each run used: vLLM's V1 engine
    before 0.19.0 on its first chunk's KV blocks (0.8.4, 0.9.1, 0.11.0, 0.16.0, 0.18.1 read), from 0.19.0 on its whole
    prompt's (--scheduler-reserve-full-isl); V0, SGLang and TensorRT-LLM on the whole prompt's. Only the 30,000/100 row
    of vLLM 0.8.4 moves: 'from −62 % to −57 %'."""
    pts = [p for p in calibration.points() if p.get("closed_loop")]
    for p in pts:
        early = False
        if p["engine"] == "vllm" and p.get("engine_variant") != "v0.6":
            rel = _release(p["source"]["version"])
            # the one build from main: vLLM PR 23151, August 2025 (between 0.10.1 and 0.10.2)
            early = rel < (0, 19, 0) if rel else "August 2025" in p["source"]["version"]
        assert p["closed_loop"].get("reserve_full_prompt", True) is not early, p["id"]
    # V1 became vLLM's default engine in 0.8.0: every vLLM point of an earlier release carries the V0 variant
    assert all(p.get("engine_variant") == "v0.6" for p in calibration.points() if p["engine"] == "vllm"
               and (_release(p["source"]["version"]) or (9,)) < (0, 8, 0))
    early = [p for p in pts if p["closed_loop"].get("reserve_full_prompt") is False]
    assert len(early) == 35
    moved = {}
    for p in early:
        whole = {**p, "closed_loop": {**p["closed_loop"], "reserve_full_prompt": True}}
        a, b = calibration.predict(p), calibration.predict(whole)
        if abs(a / b - 1) > 1e-9:
            moved[p["id"]] = (round((a / p["value"] - 1) * 100), round((b / p["value"] - 1) * 100))
    assert moved == {"simonmo-vllm084-h200x8-dsr1-tpot-r10-30k100": (-57, -62)}


def test_the_held_back_rows_of_the_third_search_are_as_the_data_page_says():
    """data.md, the third search (2026-12-02): nine open-loop rows of current vLLM releases, admitted under a rule written
    before their figures were read, unseen: six within 6.2 %, the rate past the source's knee and a burst miss."""
    from calc import simulate  # noqa: PLC0415
    from calc.simulate import StepModel  # noqa: PLC0415

    pts = {p["id"]: p for p in calibration.points()}
    rows = {r["id"]: r["error"] for r in ROWS if r["id"].startswith(ADMITTED_S20)}
    assert len(rows) == 9 and all(pts[k]["subset"] == "holdout" and "seen" not in pts[k] for k in rows)
    assert {k for k, e in rows.items() if abs(e) > calibration.MAX_ERROR} == S20_MISSES
    # "+6.2, +2.7, -1.5, -2.2, -0.6 and -6.0 % at 1 to 12 requests per second, and -49 % at 16"
    peg = [f"pegainfer338-vllm0221-rtx5090-qwen3-4b-tpot-r{r}" for r in (1, 2, 4, 8, 10, 12, 16)]
    assert [round(rows[k] * 100, 1) for k in peg[:-1]] == [6.2, 2.7, -1.5, -2.2, -0.6, -6.0]
    assert round(rows[peg[-1]] * 100) == -49
    # an open loop of 60 x the rate in prompts, median TPOT, and vllm serve's defaults on a 32 GB card: 256 sequences,
    # a 2,048-token budget (what the simulation takes for a vLLM point without max_num_batched_tokens)
    five090 = registry.get_gpu("rtx-5090")
    assert all(pts[k]["closed_loop"] == {"num_prompts": 60 * int(pts[k]["closed_loop"]["request_rate"]),
                                         "statistic": "median", "request_rate": pts[k]["closed_loop"]["request_rate"]}
               and pts[k]["batch"] == 256 and pts[k]["gpu_memory_utilization"] == 0.9 for k in peg)
    assert mem.vllm_max_num_batched_tokens(five090) == 2048
    # "calc's replica still keeps up at 16 (15.8 requests per second served, a median TTFT of 0.16 s, against the
    # measured 13.2 and 3.9 s) and saturates near 16.7 requests per second when offered more ... about a quarter too high"
    m4 = registry.get_model("qwen3-4b")
    step = StepModel(m4, five090, "bf16", "bf16", 1, simulate.step_cost("vllm", "bf16", gpu=five090))

    def served(rate):
        return simulate.simulate(step, simulate.requests(60 * rate, float(rate), 1024, 128), max_num_seqs=256,
                                 max_num_batched_tokens=2048, gpu_memory_utilization=0.9, kv_samples=2)
    r16 = served(16)
    assert round(r16["requests_per_s"], 1) == 15.8 and round(r16["ttft_s"]["p50"], 2) == 0.16
    other = pts[peg[-1]]["source"]["other_figures"]
    assert other["requests_per_s"] == 13.2 and round(other["ttft_p50_s"], 1) == 3.9
    beyond = [served(rate)["requests_per_s"] for rate in (18, 24, 30)]
    assert all(abs(x - 16.7) < 0.15 for x in beyond) and round(16.7 / other["requests_per_s"] - 1, 2) == 0.27
    # kvcached PR #331: "+451 % for the burst, -25 % at 16 per second"
    burst, r16_h100 = "kvcached331-vllm0190-h100-qwen3-0.6b-tpot-burst500", "kvcached331-vllm0190-h100-qwen3-0.6b-tpot-r16"
    assert round(rows[burst] * 100) == 451 and round(rows[r16_h100] * 100) == -25
    # planner.md: "calc's TPOT for it is 5.5 times the measured one"
    assert round(calibration.predict(pts[burst]) / pts[burst]["value"], 1) == 5.5
    assert "request_rate" not in pts[burst]["closed_loop"] and pts[burst]["closed_loop"]["num_prompts"] < pts[burst]["batch"]
    assert pts[burst]["gpu_memory_utilization"] == 0.5
    # "500 sequences decoding together at about 576 tokens of context would read 33 GB of KV cache per step, at least
    # 9.9 ms at the H100's 3.35 TB/s, against the measured mean TPOT of 5.45 ms: they did not decode together"
    h100 = registry.get_gpu("h100-sxm")
    m06 = calibration._model(pts[burst], calibration._data()["configs"])
    small = StepModel(m06, h100, "bf16", "bf16", 1, simulate.step_cost("vllm", "bf16", gpu=h100))
    kv = 500 * (512 + 64) * small.kv_bytes_per_token()
    assert round(kv / 1e9) == 33 and round(kv / h100.memory_bandwidth_bytes_per_s * 1e3, 1) == 9.9
    assert pts[burst]["value"] == 0.00545
    # "about 66 sequences decoding on average (the output rate times the TPOT) and a mean TTFT of 2.9 s; calc's replica,
    # given all 500 at once, has a mean TTFT of 0.34 s and a decode step of 32 ms at 500 sequences, 18 ms of it the cost
    # per sequence fitted at small batches"
    o = pts[burst]["source"]["other_figures"]
    assert round(o["requests_per_s"] * 128 * pts[burst]["value"]) == 66 and round(o["mean_ttft_s"], 1) == 2.9
    sim = simulate.simulate(small, simulate.requests(500, math.inf, 512, 128), max_num_seqs=1024, max_num_batched_tokens=8192,
                            gpu_memory_utilization=0.5, kv_samples=2)
    # "gives them a first token after 0.34 s on average (99 % of them by 0.74 s)"
    assert round(sim["ttft_s"]["mean"], 2) == 0.34 and round(sim["ttft_s"]["p99"], 2) == 0.74 and sim["preemptions"] == 0
    # "the client had all 500 in flight and its gaps between tokens, a median of 4.4 to 4.8 ms per seed and a mean within
    # 8 % of the TPOT, show little bunching" (the per-seed mean TPOTs: the source's settings)
    seeds = o["per_seed"]
    assert seeds["max_concurrent_requests"] == [500] * 3
    assert (round(min(seeds["median_itl_ms"]), 1), round(max(seeds["median_itl_ms"]), 1)) == (4.4, 4.8)
    tpots = [float(x) for x in re.search(r"per seed ([\d. /]+) ms", pts[burst]["source"]["settings"]).group(1).split(" / ")]
    assert all(0 < i / t - 1 < 0.08 for i, t in zip(seeds["mean_itl_ms"], tpots, strict=True))
    # "calc's decode step at 66 sequences is 5.5 ms, and calc's throughput for the burst is 115 requests per second
    # against the measured 94.9 (+21 %)"
    assert round(small.decode_step_s(66, 66 * 576) * 1e3, 1) == 5.5
    assert round(sim["requests_per_s"]) == 115 and round(sim["requests_per_s"] / o["requests_per_s"] * 100 - 100) == 21
    assert round(small.decode_step_s(500, 500 * 576) * 1e3) == 32
    assert round(500 * engines.profile("vllm").overhead_per_seq_s * 1e3) == 18
    # at 16 per second "calc's step at five sequences is 1.8 ms, the run's TPOT 2.4 ms"
    assert round(small.decode_step_s(5, 5 * 576) * 1e3, 1) == 1.8 and round(pts[r16_h100]["value"] * 1e3, 1) == 2.4
    # the medians: "the held-out TPOT median from 8.3 % to 8.2 % over 128 points and the unseen one from 11.9 % over 40
    # to 9.7 % over 49, under its 10 % target ... with the 30,000/100 row still unseen, 12.2 % over 41 and 10.6 % over 50"
    tpot = [r for r in ROWS if r["kind"] == "tpot"]
    last = "simonmo-vllm084-h200x8-dsr1-tpot-r10-30k100"

    def med(keep):
        e = [abs(r["error"]) for r in tpot if keep(r)]
        return len(e), round(statistics.median(e) * 100, 1)
    assert med(lambda r: r["subset"] == "holdout") == (128, 8.2)
    assert med(lambda r: r["subset"] == "holdout" and not r["id"].startswith(ADMITTED_S20)) == (119, 8.3)
    unseen = lambda r: calibration.in_subset(r, "unseen")  # noqa: E731
    assert med(unseen) == (49, 9.7) and med(lambda r: unseen(r) or r["id"] == last) == (50, 10.6)
    new = ADMITTED_S20
    assert med(lambda r: unseen(r) and not r["id"].startswith(new)) == (40, 11.9)
    assert med(lambda r: (unseen(r) or r["id"] == last) and not r["id"].startswith(new)) == (41, 12.2)


def _glance(lang: str) -> str:
    """data.md's "At a glance" block alone (between its anchor and the fit log's), on one line: what its tests read."""
    text = (Path(__file__).resolve().parents[1] / "docs" / lang / "calculators" / "data.md").read_text(encoding="utf-8")
    block = text[text.index("{#engines-at-a-glance}"):text.index("{#engine-fits}")]
    if lang == "zh":  # joined as the site's hook joins it: no gap where a line breaks between two CJK characters
        sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "hooks"))
        from cjk_linebreaks import join_cjk_lines  # noqa: PLC0415
        block = join_cjk_lines(block)
    return " ".join(block.split())


# The block's six groups of held-out misses beyond 30 %: id prefixes, the kinds counted, and what each bullet says
GLANCE_GROUPS = {
    "deepseek": (("dstack-", "simonmo-"), {"tpot": 11}, ("11 TPOTs, −42 % to −79 %", "1.7 to 4.7 times calc's"),
                 ("11 个 TPOT 点，−42 % 到 −79 %", "calc 的 1.7 到 4.7 倍")),
    "argonne": (("argonne-",), {"throughput": 9}, ("9 throughputs, +55 % to +273 %", "5 of the 9 misses are at one sequence"),
                ("9 个吞吐量点，+55 % 到 +273 %", "9 个点中有 5 个是单个序列")),
    "rocm": (("chipbench-vllm091-mi300x",), {"tpot": 2, "ttft": 3}, ("2 TPOTs and 3 TTFTs, all BF16, −33 % to −49 %",),
             ("2 个 TPOT 点和 3 个 TTFT 点，都是 BF16，−33 % 到 −49 %",)),
    "front-end": (("gpustack-",), {"ttft": 3}, ("3 TTFTs", "`trtllm-serve` −79 %", "chat endpoint −66 %", "SGLang 0.5.3, +36 %"),
                  ("3 个 TTFT 点", "TensorRT-LLM 1.2.0rc1 为 −79 %", "vLLM 0.11 为 −66 %", "SGLang 0.5.3 至少 +36 %")),
    "saturation": (("kvcached331-", "pegainfer338-"), {"tpot": 2}, ("(2 TPOTs)", "(−49 %)", "(+451 %)"),
                   ("（2 个 TPOT 点）", "（−49 %）", "（+451 %）")),
    "disagree": (("sgl056-b200-qwen3-235b-", "sgl057-b200-glm47flash-", "lifenyan-"), {"tpot": 4, "ttft": 1},
                 ("(5 points)", "(TPOT −35 %)", "(TPOT +46 %)", "−56 % against the source's mean of 296 ms, −33 % against its median of 196 ms",
                  "(TPOT +31 % and +32 %"),
                 ("（5 个点）", "（TPOT −35 %）", "（TPOT +46 %）", "对照来源给出的均值 296 ms 为 −56 %，对照中位数 196 ms 为 −33 %",
                  "（TPOT +31 % 和")),
}


def test_data_page_at_a_glance_says_what_the_data_says():
    """data.md, "At a glance": the goal met and missed, the 35 held-out misses in six groups with their kinds and
    ranges, and the base profiles' larger errors on the same setups. Read from the block itself and computed here, so
    neither the summary nor its figures can drift from the points."""
    import collections  # noqa: PLC0415

    en, zh = _glance("en"), _glance("zh")
    # the goal: "Today the held-out medians meet it for TPOT (8.2 %), TTFT (8.1 %) and KV capacity (0.5 %), not for
    # throughput (12.1 %); counting only the held-out points that informed no choice, TTFT misses it as well (17.7 %,
    # over only four points) and throughput's is higher (14.3 %). Nor is the 30 % limit met: 35 held-out points and 2
    # fit points are beyond it (... −31 % and +31 % ...)"
    table = {(t["kind"], t["subset"]): t for t in calibration.table(ROWS)}
    pct = {k: f"{table[k]['median_abs_error'] * 100:.1f} %" for k in table}
    meets = {k: table[(k, "holdout")]["median_abs_error"] <= calibration.TARGETS[k] for k in calibration.TARGETS}
    assert meets == {"tpot": True, "ttft": True, "throughput": False, "kv_tokens": True}
    assert (f"meet it for TPOT ({pct['tpot', 'holdout']}), TTFT ({pct['ttft', 'holdout']}) and KV capacity "
            f"({pct['kv_tokens', 'holdout']}), not for throughput ({pct['throughput', 'holdout']})") in en
    assert (f"在 TPOT（{pct['tpot', 'holdout']}）、TTFT（{pct['ttft', 'holdout']}）和 KV 容量（{pct['kv_tokens', 'holdout']}）"
            f"上达到目标，吞吐（{pct['throughput', 'holdout']}）没有达到") in zh
    unseen = {k: table[(k, "unseen")]["median_abs_error"] <= calibration.TARGETS[k] for k in calibration.TARGETS}
    assert unseen == {"tpot": True, "ttft": False, "throughput": False, "kv_tokens": True}
    assert table[("ttft", "unseen")]["n"] == 4 and table[("throughput", "unseen")]["median_abs_error"] > \
        table[("throughput", "holdout")]["median_abs_error"]
    assert (f"TTFT misses it as well ({pct['ttft', 'unseen']}, over only four points) and throughput's is higher "
            f"({pct['throughput', 'unseen']})") in en
    assert f"TTFT 也没有达到（{pct['ttft', 'unseen']}，但只有四个点），吞吐则更高（{pct['throughput', 'unseen']}）" in zh
    misses = [r for r in ROWS if r["subset"] == "holdout" and abs(r["error"]) > calibration.MAX_ERROR]
    fit_misses = sorted(round(r["error"] * 100) for r in ROWS if r["subset"] == "fit" and abs(r["error"]) > calibration.MAX_ERROR)
    assert (len(misses), fit_misses) == (35, [-31, 31])
    assert "35 held-out points and 2 fit points are beyond it" in en and "−31 % and +31 %" in en
    assert "有 35 个留出点和 2 个拟合点超过 30 %" in zh and "−31 % 和 +31 %" in zh
    assert "The 35 held-out misses fall into six groups" in en and "这 35 个偏差超过 30 % 的留出点可以归为六类" in zh
    # every miss in exactly one group, with the kinds, the sizes and the sign the bullet gives
    grouped = set()
    for prefixes, kinds, says_en, says_zh in GLANCE_GROUPS.values():
        group = [r for r in misses if r["id"].startswith(prefixes)]
        grouped |= {r["id"] for r in group}
        assert dict(collections.Counter(r["kind"] for r in group)) == kinds, prefixes
        assert all(t in en for t in says_en) and all(t in zh for t in says_zh), prefixes
    assert grouped == {r["id"] for r in misses} and sum(sum(g[1].values()) for g in GLANCE_GROUPS.values()) == 35
    err = {r["id"]: r["error"] for r in misses}

    def group(name):
        return [r["error"] for r in misses if r["id"].startswith(GLANCE_GROUPS[name][0])]
    deepseek, argonne, rocm = group("deepseek"), group("argonne"), group("rocm")
    assert all(e < 0 for e in deepseek + rocm) and all(e > 0 for e in argonne)  # all optimistic
    assert (round(max(deepseek) * 100), round(min(deepseek) * 100)) == (-42, -79)
    assert (round(1 / (1 + max(deepseek)), 1), round(1 / (1 + min(deepseek)), 1)) == (1.7, 4.7)
    assert (round(min(argonne) * 100), round(max(argonne) * 100)) == (55, 273)
    assert (round(max(rocm) * 100), round(min(rocm) * 100)) == (-33, -49)
    points = {p["id"]: p for p in calibration.points()}
    assert sum(points[i]["batch"] == 1 for i in err if i.startswith("argonne-")) == 5  # "5 of the 9 ... at one sequence"
    rocm_pts = [points[i] for i in err if i.startswith("chipbench-")]
    assert {p["weights"] for p in rocm_pts} == {"bf16"} and {p["prompt_len"] for p in rocm_pts if p["kind"] == "ttft"} <= {999, 1000}
    assert sorted((p["tp"], p["batch"]) for p in rocm_pts if p["kind"] == "tpot") == [(4, 1), (4, 64)]
    # "(where on that host it ran no faster than at TP 2)": the 70B's concurrency-1 TPOT at TP 4 against TP 2
    tp = {k: points[f"chipbench-vllm091-mi300xx{k}-llama-3.1-70b-bf16-tpot-c1"]["value"] for k in (2, 4)}
    assert tp[4] >= tp[2]
    # the one-by-one figures of the last three bullets
    r = {i: round(e * 100) for i, e in err.items()}
    assert [r[f"gpustack-{k}-h100-qwen3-8b-ttft-c{c}"] for k, c in (("trtllm120rc1", 4), ("vllm011", 1), ("sglang053", 4))] \
        == [-79, -66, 36]
    assert (r["kvcached331-vllm0190-h100-qwen3-0.6b-tpot-burst500"], r["pegainfer338-vllm0221-rtx5090-qwen3-4b-tpot-r16"]) \
        == (451, -49)
    assert (r["sgl056-b200-qwen3-235b-tpot-c1"], r["sgl057-b200-glm47flash-tpot-c64-8kout"], r["sgl057-b200-glm47flash-ttft-c1-8k"]) \
        == (-35, 46, -56)
    assert (r["lifenyan-vllm0251-rtx4090-qwen25-7b-awq-tpot-c1"], r["lifenyan-vllm0251-rtx4090-qwen25-7b-gptq-tpot-c1"]) == (31, 32)
    # "the source's six lower rates ... within −6 % to +6 %"
    lower = [e["error"] for e in ROWS if e["id"].startswith("pegainfer338-") and not e["id"].endswith("-r16")]
    assert len(lower) == 6 and (round(min(lower) * 100), round(max(lower) * 100)) == (-6, 6)
    # "calc is fitted on SGLang 0.5.8's TPOT of the same setup (6.70 ms, −2 %), and 0.5.6's 10.12 ms is 51 % slower"
    q058 = next(e for e in ROWS if e["id"] == "sgl058-b200-qwen3-235b-tpot-c1")
    assert q058["subset"] == "fit" and round(q058["measured"] * 1e3, 2) == 6.70 and round(q058["error"] * 100) == -2
    assert round(points["sgl056-b200-qwen3-235b-tpot-c1"]["value"] / q058["measured"] * 100 - 100) == 51
    # GLM-4.7-Flash's Triton TPOTs at concurrency 1 are fit points; the 4,194-token TTFT's median figure is −33 %
    c1 = {f"sgl057-b200-glm47flash-tpot-c1{k}" for k in ("", "-8k", "-8kout")}
    assert {e["id"] for e in ROWS if e["id"].startswith("sgl057-b200-glm47flash-") and e["subset"] == "fit"} == c1
    # "On SGLang 0.5.6–0.5.7 on B200s and H200s calc comes within −2 % to +20 % of DeepSeek-R1's runs"
    sgl = [e["error"] for e in ROWS if e["id"].startswith(("sgl056-b200-dsr1-", "sgl057-h200-dsr1-"))]
    assert (round(min(sgl) * 100), round(max(sgl) * 100)) == (-2, 20)
    assert "within −2 % to +20 % of DeepSeek-R1's runs" in en and "相差 −2 % 到 +20 %" in zh
    # no fit point runs DeepSeek-R1 on vLLM, vLLM before 0.8 on MI300X, or BF16 on MI300X
    fit = [p for p in calibration.points() if p["subset"] == "fit"]
    assert not [p for p in fit if p["engine"] == "vllm" and p["model"] == "deepseek-r1"]
    assert not [p for p in fit if p["gpu"] == "mi300x" and (p["weights"] == "bf16" or p.get("engine_variant") == "v0.6")]
    # the base profiles the calculators use: "on MI300X, −24 % to −65 % on all 18 of chipbenchmark's points (14 beyond
    # 30 %) and +40 % to +95 % on the throughputs of AMD's own table for vLLM 0.9.1 (all 32); DeepSeek-R1 on vLLM 0.7,
    # −57 % to −85 %; Argonne's rows, +66 % to +350 %"
    def base(prefix):
        return [calibration.predict(p, engine=p["engine"]) / p["value"] - 1 for p in calibration.points() if p["id"].startswith(prefix)]
    chip, amd, v07, arg = base("chipbench-vllm091-mi300x"), base("amd-vllm091-rocm-"), base("dstack-vllm07"), base("argonne-")
    assert (len(chip), round(max(chip) * 100), round(min(chip) * 100), sum(abs(e) > 0.3 for e in chip)) == (18, -24, -65, 14)
    assert (len(amd), round(min(amd) * 100), round(max(amd) * 100), sum(abs(e) > 0.3 for e in amd)) == (32, 40, 95, 32)
    assert (round(max(v07) * 100), round(min(v07) * 100)) == (-57, -85) and (round(min(arg) * 100), round(max(arg) * 100)) == (66, 350)
    glm = {p["id"]: calibration.predict(p, engine=p["engine"]) / p["value"] - 1 for p in calibration.points()
           if p["id"].startswith("sgl057-b200-glm47flash-tpot-")}
    assert (len(glm), round(max(glm.values()) * 100), round(min(glm.values()) * 100)) == (8, -19, -48)
    assert round(glm["sgl057-b200-glm47flash-tpot-c64-8kout"] * 100) == -36
    assert all(t in en for t in ("−24 % to −65 % on all 18", "(14 beyond 30 %)", "+40 % to +95 %", "(all 32 beyond 30 %)",
                                 "vLLM 0.7, −57 % to −85 %", "+66 % to +350 %", "−19 % to −48 % on all eight TPOTs (−36 % at 64"))
    assert all(t in zh for t in ("−24 % 到 −65 %（14 个超过 30 %）", "+40 % 到 +95 %（32 个全部超过 30 %）", "−57 % 到 −85 %",
                                 "+66 % 到 +350 %", "8 个 TPOT 为 −19 % 到 −48 %（并发 64 时是 −36 %"))
    # each bullet links the fit-log paragraph that covers it (the site test checks that the anchors resolve)
    for anchor in ("held-back-2026-12-01", "vllm-rocm", "front-end-latency", "sglang-fixed-costs", "held-back-third-search",
                   "sglang-triton"):
        assert f"](#{anchor})" in en and f"](#{anchor})" in zh, anchor
    # the block's copies of the fit log's figures say what the fit log says
    log = " ".join((Path(__file__).resolve().parents[1] / "docs" / "en" / "calculators" / "data.md").read_text(
        encoding="utf-8").split("{#engine-fits}")[1].split())
    for copy, original in (("about 0.48 of the datasheet bandwidth", "at about 0.48 of the datasheet's bandwidth"),
                           ("about 22 ms a step beyond the reads", "about 22 ms a step beyond the reads"),
                           ("saturates near 16.7 requests a second, where the measured one served 13.2",
                            "saturates near 16.7 requests per second when offered more, where the measured one served 13.2"),
                           ("about 52 ms of its 59 ms off the GPU", "59 ms at concurrency 1, about 52 ms of it off the GPU"),
                           ("at least about 13 ms of it is", "at least about 13 ms is `trtllm-serve`'s"),
                           ("(DeepSeek-R1 on 8 B200s, SGLang 0.5.6, concurrency 1)", "DeepSeek-R1"),
                           ("0.5.7 with DeepSeek-V3.1 at −60 %", "where calc gives 9.5 ms with the weights (−60 %)"),
                           ("the source's mean of 296 ms, −33 % against its median of 196 ms", "296 ms (calc −56 %; against the median, 196 ms, −33 %)")):
        assert copy in en and original in log, copy
    sglang = engines.profile("sglang")
    assert (sglang.mla_step_layer_weight, sglang.mla_request_layer_weight) == (2.99, 2.5)
    assert "(2.99 in a step's fixed cost, 2.5 in a prompt's)" in en and "每步固定开销按 2.99 层、提示开销按 2.5 层" in zh
    # the calculators offer the base profiles only: no variant is an engine choice
    assert not [k for k in engines.ENGINES if "@" in k]


def test_the_argonne_variant_that_was_tried_and_not_adopted(monkeypatch):
    """data.md: a variant of vLLM 0.6.1 for ROCm, the best of two grid searches on Argonne's 258 other rows, "leaves a
    median 14.5 % on those rows and 55 of them beyond 30 %", its eight neighbours do worse, its errors grow with batch x
    context, 7 rows overflow V0's KV cache, and "the eleven admitted rows would read −31 % to +33 %, three beyond 30 %"."""
    from calc import perf  # noqa: PLC0415

    entry = engines._data()["engines"]["vllm"]
    prompt_s = entry["variants"]["v0.6"]["step_overhead"]["prefill_base_s"]
    assert entry["step_overhead"]["per_seq_s"] == 3.66e-05 and prompt_s == 0.0229  # "the profile's 36.6 µs", "V0's 22.9 ms"

    def variant(base_s, multi_gpu_s, bandwidth, compute, per_seq_s=3.66e-05):
        return engines.EngineProfile("vllm@rocm-0.6-tried", entry, {
            "step_overhead": {"base_s": base_s, "prefill_base_s": prompt_s, "multi_gpu_s": multi_gpu_s, "per_seq_s": per_seq_s},
            "memory_efficiency": {"default": bandwidth}, "compute_efficiency": {"default": compute}})
    trying = {}
    known = engines.profile
    monkeypatch.setattr(engines, "profile", lambda key=engines.DEFAULT_ENGINE: trying["p"] if key == "vllm@rocm-0.6-tried" else known(key))
    m = {k: registry.get_model(k) for k in ("llama-3-70b", "mistral-7b", "mixtral-8x7b")}
    mi300x = registry.get_gpu("mi300x")
    assert round(0.06 * mi300x.matmul_factor, 3) == 0.038
    sweep = json.loads((Path(__file__).resolve().parent / "data" / "argonne-mi300x-vllm061.json").read_text())["rows"]
    admitted = {(p["model"], p["tp"], p["prompt_len"], p["batch"]) for p in calibration.points() if p["id"].startswith("argonne-")}
    others = [r for r in sweep if (r["model"], r["gpus"], r["length"], r["batch"]) not in admitted]
    assert len(others) == 258 and len(admitted) == 11

    def errors(constants, rows, per_seq_s=3.66e-05):
        trying["p"] = variant(*constants, per_seq_s)
        return [perf.perf_report(m[r["model"]], mi300x, "fp16", "fp16", r["batch"], r["length"], r["length"], r["gpus"],
                                 curve_batches=(), engine="vllm@rocm-0.6-tried")["throughput_tok_per_s"]
                / (r["batch"] * r["length"] / r["latency_s"]) - 1 for r in rows]
    best = (0.004, 0.008, 0.65, 0.06)
    errs = errors(best, others)
    loss = statistics.median(abs(e) for e in errs)
    assert (round(loss * 100, 1), sum(abs(e) > calibration.MAX_ERROR for e in errs)) == (14.5, 55)
    # its eight neighbours one step along each axis (beyond the first grid's edges: 2 ms, 0.75, 0.05) do worse
    # the twelve settings one step from it along one axis of either grid (grid 1: 4/6/8 ms x 4/8/12 ms x 0.45/0.55/0.65 x
    # 0.06/0.08/0.10 at 36.6 µs; grid 2: 2/4/6 ms x 6/10/14 ms x 0.65/0.75/0.85 x 0.04/0.05/0.06 x 0/36.6/100 µs)
    steps = [(0.002, 0.006), (0.004, 0.006, 0.010, 0.012), (0.55, 0.75), (0.05, 0.08)]
    near = {}
    for axis, values in enumerate(steps):
        for v in values:
            near[(axis, v)] = statistics.median(abs(e) for e in errors(best[:axis] + (v,) + best[axis + 1:], others))
    for per_seq in (0.0, 1e-4):
        near[("per_seq", per_seq)] = statistics.median(abs(e) for e in errors(best, others, per_seq))
    assert len(near) == 12 and min(near.values()) > loss
    assert round(near[(1, 0.006)] * 100, 1) == 14.7 and round(near[("per_seq", 0.0)] * 100, 1) == 14.7  # "the valley is flat"
    z = list(zip(others, errs, strict=True))

    def span(keep):
        sel = [e for r, e in z if keep(r)]
        return round(min(sel) * 100), round(max(sel) * 100)
    assert span(lambda r: r["length"] == 2048 and r["batch"] == 1) == (-20, 20)
    assert span(lambda r: r["length"] == 2048 and r["batch"] >= 64) == (-3, 108)
    big = {n: statistics.median(e for r, e in z if r["length"] == n and r["batch"] >= 64) for n in (128, 2048)}
    assert (round(big[128] * 100), round(big[2048] * 100)) == (-21, 51)
    by_len = {n: [e for r, e in z if r["length"] == n] for n in (128, 2048)}
    assert (round(statistics.median(by_len[128]) * 100), round(min(by_len[128]) * 100)) == (-17, -60)
    assert (round(statistics.median(by_len[2048]) * 100), round(max(by_len[2048]) * 100)) == (30, 117)
    # "7 of those rows (the 70B at TP 1 and 2, Mixtral at TP 1 ...) would not fit the KV cache calc gives V0 on MI300X"
    over = [(r["model"], r["gpus"]) for r in others if r["batch"] * 2 * r["length"] > mem.memory_report(
        m[r["model"]], mi300x.memory_bytes, "fp16", "fp16", tp=r["gpus"], visible_memory_bytes=mi300x.visible_memory_bytes,
        engine="vllm@v0.6", linked_gpus=mi300x.linked_gpus, compute_capability=mi300x.compute_capability)["engine_max_tokens_in_cache"]]
    assert len(over) == 7 and set(over) == {("llama-3-70b", 1), ("llama-3-70b", 2), ("mixtral-8x7b", 1)}
    eleven = errors(best, [r for r in sweep if (r["model"], r["gpus"], r["length"], r["batch"]) in admitted])
    assert (round(min(eleven) * 100), round(max(eleven) * 100), sum(abs(e) > 0.3 for e in eleven)) == (-31, 33, 3)
    # "a median absolute error of 22 % ... no better than on the rows it was fitted on, and none of them is at 2,048 tokens"
    assert round(statistics.median(abs(e) for e in eleven) * 100) == 22 and statistics.median(abs(e) for e in eleven) > loss
    assert 2048 not in {length for _, _, length, _ in admitted}
    # not adopted: the registry has no such variant, and the admitted rows are computed with V0's
    assert "rocm-0.6" not in entry["variants"]
    assert {p.get("engine_variant") for p in calibration.points() if p["id"].startswith("argonne-")} == {"v0.6"}
    root = Path(__file__).resolve().parents[1]
    en = " ".join((root / "docs" / "en" / "calculators" / "data.md").read_text(encoding="utf-8").split())
    assert all(t in en for t in ("and V0's prompt cost (22.9 ms)", "minimised the median absolute error",
                                 "The best of both is the first grid's 4 ms, 8 ms, 0.65 and 0.06 (0.038 of the FP16 datasheet",
                                 "each of the twelve settings one step from it along one axis of either grid does worse",
                                 "(14.7 % at 6 ms of multi-GPU cost, or with no cost per sequence)",
                                 "a median 14.5 % on those rows and 55 of them beyond 30 %",
                                 "the median goes from −21 % at 128 tokens to +51 % at 2,048 (range −3 % to +108 % there)",
                                 "within −20 % to +20 % even at 2,048",
                                 "from a median −17 % at 128 tokens (down to −60 %) to +30 % at 2,048 (up to +117 %)",
                                 "7 of those rows (the 70B at TP 1 and 2, Mixtral at TP 1",
                                 "would read −31 % to +33 % (a median absolute error of 22 %), three beyond 30 %"))
    zh = (root / "docs" / "zh" / "calculators" / "data.md").read_text(encoding="utf-8").replace("\n", "")
    assert all(t in zh for t in ("提示开销沿用 V0 的 22.9 ms", "绝对误差的中位数最小为准", "两轮中最好的是第一轮的 4 ms、8 ms、0.65 和 0.06",
                                 "FP16数据手册的 0.038", "十二个取值都更差", "都是 14.7 %", "绝对误差中位数是 14.5 %，有 55 行超过 30 %",
                                 "中位数从 128 个 token 的 −21 % 升到 2,048 个的+51 %", "也在 −20 % 到 +20 % 之间",
                                 "中位数 −17 %（最低 −60 %）到 2,048 个时 +30 %（最高 +117 %）", "这 258 行里还有 7 行",
                                 "在 −31 % 到 +33 % 之间（绝对误差中位数 22 %），三行超过 30 %"))
