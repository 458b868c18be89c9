"""Roofline timing, checked against hand computations from the datasheets and the calibration factors."""

import json
from pathlib import Path

import pytest

from calc import api, registry
from calc.perf import (
    COMPUTE_EFFICIENCY,
    MEMORY_EFFICIENCY,
    experts_touched_fraction,
    speculative_speedup,
    speculative_tokens_per_call,
)

H100_BW = 3.35e12 * (2957.5e9 / 3.35e12)  # achievable: the reference device copy
H100_BF16 = 989.5e12 * (755.4e12 / 989.5e12)  # achievable: the reference matmul


def test_calibration_constants():
    assert MEMORY_EFFICIENCY == pytest.approx(0.8828, abs=1e-4)
    assert COMPUTE_EFFICIENCY == pytest.approx(0.7634, abs=1e-4)


def test_decode_batch1_is_memory_bound_by_hand():
    # Llama-3.1-8B bf16, one sequence at the mean context 1024 + 256/2 = 1152 tokens
    weights_read = 2 * 8_030_261_248 - 2 * (128256 - 1) * 4096  # the embedding table is a one-row lookup
    kv_read = 1152 * 2 * 32 * 8 * 128 * 2
    r = api.run("perf", {"engine": "ideal", "model": "llama-3.1-8b", "gpu": "h100-sxm", "batch": 1, "prompt-len": 1024, "output-len": 256})
    assert r["bound"] == "memory"
    assert r["decode_bytes_per_step"] == pytest.approx(weights_read + kv_read, rel=1e-9)
    assert r["tpot_s"] == pytest.approx((weights_read + kv_read) / H100_BW, rel=1e-9)
    assert 4.8e-3 < r["tpot_s"] < 5.5e-3  # ≥ 16 GB / 3.35 TB/s = 4.8 ms, as the style guide says
    assert r["decode_tok_per_s"] == pytest.approx(1 / r["tpot_s"])


def test_prefill_is_compute_bound_by_hand():
    p, L, H, d = 2048, 32, 32, 128
    matmul = 8_030_261_248 - 128256 * 4096 - 65 * 4096  # the embedding is a lookup, the 65 norms no matmul
    head = 128256 * 4096  # the lm_head runs on the prompt's last token only, as serving engines compute logits
    flops = 2 * (matmul - head) * p + 2 * head + L * 2 * H * (d + d) * p * (p + 1) / 2
    r = api.run("perf", {"engine": "ideal", "model": "llama-3.1-8b", "gpu": "h100-sxm", "prompt-len": p, "output-len": 1})
    assert r["prefill_bound"] == "compute"
    assert r["prefill_flops"] == pytest.approx(flops, rel=1e-12)
    assert r["prefill_s"] == pytest.approx(flops / H100_BF16, rel=1e-9)
    assert r["ttft_s"] == r["prefill_s"] and r["e2e_s"] == r["prefill_s"]


def test_ridge_point_and_critical_batch():
    r = api.run("perf", {"engine": "ideal", "model": "llama-3.1-8b", "gpu": "h100-sxm", "prompt-len": 16, "output-len": 16})
    assert r["ridge_flops_per_byte"] == pytest.approx(989.5e12 / 3.35e12)
    # weights only: 2 FLOPs per multiplied parameter and token against the ridge times the weight bytes a step reads,
    # by hand from Llama-3.1-8B's shapes. The input embedding is a 16-bit lookup of one row per token, neither read
    # whole nor multiplied: averaging the bytes over it too gave 4-bit weights 91 instead of 80 on an H100
    ridge = H100_BF16 / H100_BW
    layers = 32 * (4096 * (4096 + 2 * 1024 + 4096) + 3 * 4096 * 14336)  # q, k, v, o and the MLP's three matrices
    head, norms, row = 128256 * 4096, 65 * 4096, 4096 * 2
    matmul = layers + head

    def batch(weight_bytes: float) -> float:  # 2 · matmul · B = ridge · (weight_bytes + B · row)
        return ridge * weight_bytes / (2 * matmul - ridge * row)

    assert r["critical_batch_weights_only"] == pytest.approx(batch(2 * (matmul + norms)), rel=1e-9)
    int4 = api.run("perf", {"engine": "ideal", "model": "llama-3.1-8b", "gpu": "h100-sxm", "weights": "int4"})
    int4_bytes = layers * (4 + 20 / 128) / 8 + (head + norms) * 2  # the lm_head and the norms stay 16-bit
    assert int4["critical_batch_weights_only"] == pytest.approx(batch(int4_bytes), rel=1e-9)
    assert round(int4["critical_batch_weights_only"]) == 80
    # with a tiny context the KV cache hardly matters: the switch comes near the weights-only estimate
    assert 0.8 * r["critical_batch_weights_only"] < r["critical_batch"] < 1.3 * r["critical_batch_weights_only"]
    # at long context the KV reads grow with the batch as fast as the FLOPs: decode never turns compute-bound
    long = api.run("perf", {"engine": "ideal", "model": "llama-3.1-8b", "gpu": "h100-sxm", "prompt-len": 8192})
    assert long["critical_batch"] is None


@pytest.mark.parametrize("model", ["llama-3.1-8b", "llama-3.2-1b", "qwen3-4b", "gemma-2-9b", "qwen2.5-7b"])
def test_weights_only_critical_batch_scales_with_the_bytes_a_step_reads(model):
    """Dense models, tied embeddings among them (llama-3.2-1b, qwen3-4b, gemma-2-9b: the embedding is the lm_head and
    read whole): across weight formats the weights-only batch over the decode ridge is the weight bytes a batch-1 step
    reads, up to the one embedding row each token adds."""
    def run(weights):
        return api.run("perf", {"engine": "ideal", "model": model, "gpu": "h100-sxm", "weights": weights})

    bf16 = run("bf16")
    # the anchor: 2 bytes and 2 FLOPs per multiplied bf16 weight put the batch at the decode ridge itself, tied or not
    # (an untied embedding is looked up, a row per token; a tied one is the lm_head and read whole)
    assert bf16["critical_batch_weights_only"] == pytest.approx(bf16["ridge_flops_per_byte_effective"], rel=2e-3)
    for weights in ("fp8", "int4", "nf4", "nvfp4", "q4_k_m", "q8_0"):
        r = run(weights)
        batch_ratio = (r["critical_batch_weights_only"] / r["ridge_flops_per_byte_effective"]) / (
            bf16["critical_batch_weights_only"] / bf16["ridge_flops_per_byte_effective"])
        bytes_ratio = r["decode_weight_bytes_per_step"] / bf16["decode_weight_bytes_per_step"]
        assert batch_ratio == pytest.approx(bytes_ratio, rel=2e-3), weights


@pytest.mark.parametrize("layout", [{"pp": 4}, {"pp": 2, "tp": 2}])
def test_weights_only_critical_batch_with_pipeline_stages(layout):
    """With pp stages a decode step runs pp micro-batches and each re-reads its stage's weights: the weights-only
    batch is about pp times the single-stage one, as calc's full critical batch is at a tiny context."""
    base = {"engine": "ideal", "model": "llama-3.1-70b", "gpu": "h100-sxm", "prompt-len": 16, "output-len": 16}
    one = api.run("perf", base)["critical_batch_weights_only"]
    r = api.run("perf", {**base, **layout})
    assert r["critical_batch_weights_only"] == pytest.approx(layout["pp"] * one, rel=0.02)
    assert 0.9 * r["critical_batch"] < r["critical_batch_weights_only"] < r["critical_batch"]


@pytest.mark.parametrize("model", ["mixtral-8x7b", "qwen3-30b-a3b", "gpt-oss-20b"])
def test_weights_only_critical_batch_of_a_moe_model_counts_the_experts_read(model):
    """A MoE decode step multiplies each token by k experts but reads every expert some token touched: its
    weights-only batch is far above the ridge times the stored bytes per parameter over 2 (which would have each
    token multiply every expert), and near the full critical batch when the context is tiny, as for a dense model."""
    weights = "mxfp4-experts" if model.startswith("gpt-oss") else "bf16"
    r = api.run("perf", {"engine": "ideal", "model": model, "gpu": "h100-sxm", "weights": weights, "prompt-len": 16,
                         "output-len": 16})
    mem = api.run("memory", {"model": model, "weights": weights})
    every_parameter = r["ridge_flops_per_byte_effective"] * mem["weights_bytes"] / mem["params_total"] / 2
    assert r["critical_batch_weights_only"] > 3 * every_parameter  # as if each token multiplied every expert
    assert 0.85 * r["critical_batch"] < r["critical_batch_weights_only"] < r["critical_batch"]
    # expert parallelism beyond tp replicates attention: each replica reads the dense weights, so the batch grows
    ep = api.run("perf", {"engine": "ideal", "model": model, "gpu": "h100-sxm", "weights": weights, "ep": 8,
                          "prompt-len": 16, "output-len": 16})
    assert r["critical_batch_weights_only"] < ep["critical_batch_weights_only"] < ep["critical_batch"]
    assert ep["critical_batch_weights_only"] > 0.85 * ep["critical_batch"]


def test_fp8_weights_halve_decode_and_use_fp8_peak():
    bf = api.run("perf", {"engine": "ideal", "model": "llama-3.1-70b", "gpu": "h100-sxm", "tp": 2})
    f8 = api.run("perf", {"engine": "ideal", "model": "llama-3.1-70b", "gpu": "h100-sxm", "tp": 2, "weights": "fp8"})
    assert f8["compute_dtype"] == "fp8" and f8["peak_flops"] == 2 * 1979e12
    assert f8["tpot_s"] < 0.6 * bf["tpot_s"]
    # Ampere has no FP8: the weights are read at 8 bits but computed in bf16, with a warning
    a100 = api.run("perf", {"engine": "ideal", "model": "llama-3.1-8b", "gpu": "a100-80gb", "weights": "fp8"})
    assert a100["compute_dtype"] == "bf16" and a100["warnings"]


def test_tensor_parallel_adds_allreduce_time():
    # 2 all-reduces per layer: latency + ring traffic over NVLink (900 GB/s both ways -> 450 GB/s one way)
    r = api.run("perf", {"engine": "ideal", "model": "llama-3.1-70b", "gpu": "h100-sxm", "tp": 4, "batch": 8})
    message = 8 * 8192 * 2
    per_call = 10e-6 + 2 * 3 / 4 * message / 450e9
    assert r["allreduce_s_per_step"] == pytest.approx(2 * 80 * per_call)
    one = api.run("perf", {"engine": "ideal", "model": "llama-3.1-70b", "gpu": "h100-sxm", "tp": 2, "batch": 8})
    assert r["tpot_s"] < one["tpot_s"]  # more GPUs: more bandwidth, despite the all-reduces


def test_moe_decode_reads_only_routed_experts():
    m = registry.get_model("mixtral-8x7b")
    assert experts_touched_fraction(m, 1) == pytest.approx(2 / 8)
    assert experts_touched_fraction(m, 64) == pytest.approx(1 - (6 / 8) ** 64)
    r = api.run("perf", {"engine": "ideal", "model": "mixtral-8x7b", "gpu": "h200", "prompt-len": 1, "output-len": 2})
    expert = 3 * 4096 * 14336
    all_weights = 2 * 46_702_792_704 - 2 * (32000 - 1) * 4096
    assert r["decode_bytes_per_step"] == pytest.approx(all_weights - 2 * 32 * 6 * expert + 2 * 32 * 8 * 128 * 2 * 2)
    # the weight part of the step and the share of experts, as fields (chapter 11 quotes them)
    assert r["decode_weight_bytes_per_step"] == pytest.approx(all_weights - 2 * 32 * 6 * expert)
    assert r["experts_touched_fraction"] == pytest.approx(2 / 8)
    r8 = api.run("perf", {"model": "mixtral-8x7b", "gpu": "h200", "batch": 8, "prompt-len": 1, "output-len": 2})
    assert r8["experts_touched_fraction"] == pytest.approx(1 - (6 / 8) ** 8)
    assert r8["decode_weight_bytes_per_step"] > r["decode_weight_bytes_per_step"]
    # per token the batch shares them: batch 8 touches about 90 % of the experts, so each token's share is far below
    # batch 1's but above a dense model's 1/8 (chapter 11, exercise 1)
    per_token = r8["decode_weight_bytes_per_token"] / r["decode_weight_bytes_per_token"]
    assert r8["decode_weight_bytes_per_token"] == pytest.approx(r8["decode_weight_bytes_per_step"] / 8)
    assert r["decode_weight_bytes_per_token"] == r["decode_weight_bytes_per_step"]
    assert 1 / 8 < per_token < 0.5
    dense = api.run("perf", {"model": "llama-3.1-8b", "batch": 8})
    assert dense["experts_touched_fraction"] == 1.0


def test_throughput_curve_and_static_batch_throughput():
    r = api.run("perf", {"engine": "ideal", "model": "llama-3.1-8b", "gpu": "h100-sxm", "batch": 16})
    assert r["throughput_tok_per_s"] == pytest.approx(16 * 256 / (r["ttft_s"] + 255 * r["tpot_s"]))
    rates = [row["decode_tok_per_s"] for row in r["throughput_curve"]]
    assert rates == sorted(rates)


def _verify(batch, q, prompt_len=128, output_len=2, **kw):
    return api.run("perf", {"engine": "ideal", "model": "llama-3.1-8b", "gpu": "h100-sxm", "batch": batch,
                            "prompt-len": prompt_len, "output-len": output_len, "verify-tokens": q, **kw})


def test_verification_step_by_hand():
    # B requests each feed q tokens over one shared KV cache: FLOPs of B·q tokens, KV bytes of B caches
    B, q, ctx = 64, 5, 129
    r = _verify(B, q)
    matmul = 8_030_261_248 - 128256 * 4096 - 65 * 4096
    flops = 2 * matmul * B * q + 32 * 2 * 32 * (128 + 128) * ctx * B * q
    weights_read = 2 * 8_030_261_248 - 2 * (128256 - B * q) * 4096
    kv_read = B * ctx * 2 * 32 * 8 * 128 * 2  # read once per request, not once per token
    assert r["verify_flops_per_step"] == pytest.approx(flops, rel=1e-9)
    assert r["verify_bytes_per_step"] == pytest.approx(weights_read + kv_read, rel=1e-9)
    assert r["verify_step_s"] == pytest.approx(max(flops / H100_BF16, (weights_read + kv_read) / H100_BW), rel=1e-9)
    assert r["verify_bound"] == "compute"
    # counting the B·q tokens as B·q requests (each with its own cache) reads q times the KV
    as_requests = _verify(B * q, 1)
    assert as_requests["decode_bytes_per_step"] - r["verify_bytes_per_step"] == pytest.approx((q - 1) * kv_read, rel=1e-6)


def test_verification_with_one_token_is_the_plain_step():
    for B in (1, 64, 300):
        r = _verify(B, 1)
        assert r["verify_step_s"] == r["tpot_s"] and r["verify_to_plain_ratio"] == 1
        assert r["verify_critical_batch"] == r["critical_batch"]
    r = _verify(8, 1, engine="vllm")
    assert r["verify_step_s"] == r["tpot_s"]


def test_verification_turns_compute_bound_near_the_weights_only_ridge():
    r = _verify(1, 5)
    assert r["verify_bound"] == "memory" and r["verify_to_plain_ratio"] == pytest.approx(1, abs=1e-4)
    B = r["verify_critical_batch"]
    assert _verify(B, 5)["verify_bound"] == "compute" and _verify(B - 1, 5)["verify_bound"] == "memory"
    # about the weights-only critical batch in tokens, well below the 357 requests of a plain decode step
    assert 0.95 * r["critical_batch_weights_only"] < 5 * B < 1.1 * r["critical_batch_weights_only"]
    assert 5 * B < r["critical_batch"]
    # at long context plain decode never turns compute-bound, a verification of 5 tokens still does
    long = _verify(1, 5, prompt_len=1024, output_len=2)
    assert long["critical_batch"] is None and long["verify_critical_batch"] is not None


def test_verification_tokens_are_validated():
    with pytest.raises(api.InputError):
        _verify(1, 0)


def test_speculative_formulas_by_hand():
    """(9-1) and (9-2) of chapter 9 (Leviathan et al. 2023): α = 0.8, γ = 4 gives 1 + 0.8 + … + 0.8^4 = 3.3616
    tokens per target call; with drafts of c = 0.05 a round costs 1.2 plain steps, so 2.8013."""
    assert speculative_tokens_per_call(0.8, 4) == pytest.approx(1 + 0.8 + 0.64 + 0.512 + 0.4096)
    assert speculative_tokens_per_call(0.0, 5) == 1  # every draft rejected: the bonus token only
    assert speculative_tokens_per_call(1.0, 5) == 6  # every draft accepted, without dividing by 1 - α = 0
    assert speculative_tokens_per_call(0.8, 0) == 1  # no drafts: a plain step
    assert speculative_speedup(0.8, 4, 0.05) == pytest.approx(3.3616 / 1.2)
    assert speculative_speedup(0.8, 4, 0.05, verify_ratio=2) == pytest.approx(3.3616 / 2.2)
    assert speculative_speedup(0.0, 4, 0.0, verify_ratio=1.5) == pytest.approx(1 / 1.5)  # slower than not speculating
    for bad in ((1.01, 4, 0.0), (-0.1, 4, 0.0), (0.8, -1, 0.0), (0.8, 4, -0.1), (0.8, 4, float("inf"))):
        with pytest.raises(ValueError):
            speculative_speedup(*bad)
    with pytest.raises(ValueError):
        speculative_speedup(0.8, 4, 0.05, verify_ratio=0)


def test_the_speculative_speedup_uses_the_verification_ratio_of_the_step():
    """With an acceptance rate the perf report adds (9-1) and (9-2), γ = verify-tokens − 1, v = its own
    verification / plain step: about 1 at one request, more where the verification is compute-bound (B = 64 here:
    the chapter's example), so the speedup shrinks; at 256 requests speculating is slower than not."""
    def spec(batch, engine="ideal", **kw):
        return _verify(batch, 5, engine=engine, **{"accept-rate": 0.8, "draft-cost": 0.05, **kw})
    one, b64, b256 = spec(1), spec(64), spec(256)
    assert one["spec_tokens_per_call"] == pytest.approx(3.3616)
    assert one["spec_speedup"] == pytest.approx(3.3616 / (0.2 + one["verify_to_plain_ratio"]))
    assert one["spec_speedup"] == pytest.approx(2.8013, abs=1e-3)  # v = 1 within 1e-4 (the test above)
    assert b64["verify_to_plain_ratio"] > 1.1 and b64["spec_speedup"] == pytest.approx(
        3.3616 / (0.2 + b64["verify_to_plain_ratio"]))
    assert 1 < b64["spec_speedup"] < one["spec_speedup"] and b256["spec_speedup"] < 1
    assert b64["spec_speedup_ideal"] == b64["spec_speedup"]  # engine=ideal: the two agree
    # an engine's cost per step is charged once per step whatever the tokens per request, so where the verification is
    # far into the compute-bound region it becomes relatively cheaper (chapter 9): v falls and, with the same c,
    # speculating pays again at 256 requests; the ideal figure stays the bound's
    vllm = spec(256, engine="vllm")
    assert vllm["verify_to_plain_ratio"] < b256["verify_to_plain_ratio"]
    assert vllm["spec_speedup"] == pytest.approx(3.3616 / (0.2 + vllm["verify_to_plain_ratio"]))
    assert vllm["spec_speedup"] > 1 > b256["spec_speedup"]
    assert vllm["spec_speedup_ideal"] == pytest.approx(b256["spec_speedup"])
    # the same (9-2) for every engine, with the c the reader gives: Hugging Face generate() with an early-exit draft like
    # the chapter's H200 lab (4 of 32 layers, α = 0.34 at γ = 4; its c = 0.18 counts forward passes only) stays below 1
    hf = _verify(1, 5, engine="hf", **{"accept-rate": 0.34, "draft-cost": 0.18})
    assert hf["spec_speedup"] == pytest.approx((1 - 0.34 ** 5) / 0.66 / (4 * 0.18 + hf["verify_to_plain_ratio"]))
    assert hf["spec_speedup"] < 1
    # no acceptance rate, no speculative fields; bad values are refused with the input named
    assert "spec_speedup" not in _verify(64, 5)
    for bad, name in (({"accept-rate": 1.5}, "accept-rate"), ({"accept-rate": -0.1}, "accept-rate"),
                      ({"accept-rate": 0.8, "draft-cost": -1}, "draft-cost")):
        with pytest.raises(api.InputError) as err:
            _verify(64, 5, **bad)
        assert set(err.value.errors) == {name}
    # the zh message keeps a space after a label that ends in a Greek letter, none after one that ends in Chinese
    with pytest.raises(api.InputError) as err:
        _verify(64, 5, **{"accept-rate": 2})
    assert err.value.errors["accept-rate"]["zh"].startswith("草稿接受率 α 必须是")
    with pytest.raises(api.InputError) as err:
        _verify(0, 5)
    assert err.value.errors["batch"]["zh"].startswith(api.INPUTS["batch"]["label"]["zh"] + "必须是")


def test_chapter_9s_caveat_on_the_engines_per_request_cost():
    """Chapter 9 (9.3.4): at B = 256 calc's vLLM cost per step is a large share of the plain step, most of it the cost
    per request; were that paid for each verified token (γ more times a request), S would fall below 1 and below the
    roofline's figure. The engine profile's per-request cost is read from engines.json, not from perf."""
    per_request = json.loads((Path(api.__file__).parent / "data" / "engines.json").read_text())[
        "engines"]["vllm"]["step_overhead"]["per_seq_s"]
    r = _verify(256, 5, engine="vllm", **{"accept-rate": 0.8, "draft-cost": 0.05})
    share = r["engine_step_overhead_s"] / r["tpot_s"]
    assert 0.5 < share < 0.7 and 256 * per_request > 0.8 * r["engine_step_overhead_s"]
    charged_per_token = r["verify_to_plain_ratio"] + 4 * 256 * per_request / r["tpot_s"]
    s_per_token = 3.3616 / (0.2 + charged_per_token)
    assert s_per_token < 1 and s_per_token < r["spec_speedup_ideal"] < 1 < r["spec_speedup"]
    # "with calc's vLLM profile, and SGLang's, S here stays above 1 at any batch": it levels off above 1 as the
    # per-request cost dominates both steps
    far = [_verify(b, 5, engine=e, **{"accept-rate": 0.8, "draft-cost": 0.05})["spec_speedup"]
           for e in ("vllm", "sglang") for b in (1024, 8192)]
    assert 1.1 < far[1] <= far[0] < r["spec_speedup"] and 1.1 < far[3] <= far[2]


def test_the_speculative_speedup_with_pipeline_stages_uses_that_deployments_steps():
    """With pp = 2 the plain step and the verification are both the pipelined deployment's (micro-batches, hand-offs):
    S is (9-2) with that v, finite, and the verification ratio stays at least 1."""
    r = api.run("perf", {"engine": "vllm", "model": "llama-3.1-70b", "gpu": "h100-sxm", "tp": 2, "pp": 2, "batch": 64,
                         "prompt-len": 128, "output-len": 2, "verify-tokens": 5, "accept-rate": 0.8, "draft-cost": 0.05})
    assert r["micro_batches"] == 2 and r["verify_to_plain_ratio"] == pytest.approx(r["verify_step_s"] / r["tpot_s"])
    # 64 requests × 5 tokens in two micro-batches of 32: the verification stays memory-bound, so it costs about
    # what a plain step does
    assert r["verify_bound"] == "memory" and r["verify_to_plain_ratio"] == pytest.approx(1.02, abs=0.02)
    assert r["spec_speedup"] == pytest.approx(3.3616 / (0.2 + r["verify_to_plain_ratio"]))
    assert 0 < r["spec_speedup_ideal"] < 3.3616 / 0.2


def test_the_speculative_inputs_warn_when_they_do_not_work_together():
    """An acceptance rate without drafts (verify-tokens 1) gives a speedup of exactly 1 and says why; without a draft
    cost the draft is free (an upper bound, said); a draft cost without an acceptance rate is not used (said)."""
    def warnings(q, **kw):
        r = _verify(64, q, **kw)
        return r, [w["en"] for w in r["warnings"]], [w["zh"] for w in r["warnings"]]
    r, en, zh = warnings(1, **{"accept-rate": 0.8, "draft-cost": 0.05})
    assert r["spec_speedup"] == 1 and r["spec_tokens_per_call"] == 1
    assert any("no drafts (γ = 0)" in w for w in en) and any("没有草稿（γ = 0）" in w for w in zh)
    r, en, zh = warnings(5, **{"accept-rate": 0.8})
    assert r["spec_speedup"] == pytest.approx(3.3616 / r["verify_to_plain_ratio"])
    assert any("taken as free (c = 0)" in w for w in en) and any("c = 0" in w for w in zh)
    r, en, zh = warnings(5, **{"draft-cost": 0.05})
    assert "spec_speedup" not in r and any("Draft cost ratio c is not used" in w for w in en)
    _, en, _ = warnings(5, **{"accept-rate": 0.8, "draft-cost": 0.05})
    assert not any("draft" in w.lower() or "γ" in w for w in en)  # all three given: nothing to say


def test_a_prefix_cache_hit_computes_only_the_rest_of_the_prompt_by_hand():
    # AMD's ROCm latency table timed prompts vLLM V1 had cached (calibration.json prompt_cached_tokens): 2,032 of each
    # 2,048-token prompt hit the cache, the last 16 tokens are computed, each attending over the whole prompt
    from calc import perf

    p, hit, L, H, d = 2048, 2032, 32, 32, 128
    matmul = 8_030_261_248 - 128256 * 4096 - 65 * 4096
    head = 128256 * 4096
    pairs = p * (p + 1) / 2 - hit * (hit + 1) / 2  # the (query, key) pairs of the last 16 queries
    flops = 2 * (matmul - head) * (p - hit) + 2 * head + L * 2 * H * (d + d) * pairs
    m, gpu = registry.get_model("llama-3.1-8b"), registry.get_gpu("h100-sxm")
    cached = perf.perf_report(m, gpu, batch=1, prompt_len=p, output_len=8, engine="ideal", cached_prompt_tokens=hit)
    whole = perf.perf_report(m, gpu, batch=1, prompt_len=p, output_len=8, engine="ideal")
    assert cached["prefill_flops"] == pytest.approx(flops, rel=1e-12)
    # 16 tokens read every weight once: the step is bound by the weights' bytes (and the prompt's KV, read, not written)
    assert cached["prefill_bound"] == "memory" and whole["prefill_bound"] == "compute"
    # the same bytes but the embedding rows looked up: 16 instead of 2,048
    assert cached["prefill_bytes"] == pytest.approx(whole["prefill_bytes"] - 2 * hit * 4096, rel=1e-12)
    assert cached["prefill_s"] == pytest.approx(cached["prefill_bytes"] / H100_BW, rel=1e-9)
    assert cached["tpot_s"] == whole["tpot_s"] and cached["ttft_s"] == cached["prefill_s"] < whole["ttft_s"] / 7
    # computing a prefix, then the rest, costs what the whole prompt costs, but for the one lm_head row per pass
    for n in (1, 100, 2047):
        assert perf.prefill_flops(m, 3, p, n) + perf.prefill_flops(m, 3, n) - 3 * 2 * head == \
            pytest.approx(perf.prefill_flops(m, 3, p), rel=1e-12)
    # pipeline stages split the same work
    staged = perf.perf_report(registry.get_model("llama-3.1-70b"), gpu, batch=4, prompt_len=p, output_len=8, pp=2,
                              engine="ideal", cached_prompt_tokens=hit)
    assert staged["prefill_flops"] == pytest.approx(perf.prefill_flops(registry.get_model("llama-3.1-70b"), 4, p, hit),
                                                    rel=1e-9)


@pytest.mark.parametrize("bad", [-1, 2048, 5000, 1.5, True, "16"])
def test_a_prefix_cache_hit_leaves_a_token_to_compute(bad):
    from calc import perf

    with pytest.raises(ValueError, match="cached_prompt_tokens"):
        perf.perf_report(registry.get_model("llama-3.1-8b"), registry.get_gpu("h100-sxm"), prompt_len=2048,
                         output_len=8, cached_prompt_tokens=bad)


def test_a_bridged_pair_talks_over_the_bridge_and_a_larger_group_over_pcie():
    """Cards whose NVLink bridge joins pairs only (registry linked_gpus 2): an all-reduce among two uses the bridge's
    600 GB/s (300 one way), among four the host interface's PCIe Gen4 64 GB/s (32 one way), the slowest hop of a ring
    through the group; cards on a node-wide fabric keep it at any size."""
    from calc import perf

    m = registry.get_model("llama-3.1-8b")
    pcie, sxm = registry.get_gpu("a100-80gb-pcie"), registry.get_gpu("a100-80gb")
    assert pcie.linked_gpus == 2 and sxm.linked_gpus is None and pcie.host_interface_bytes_per_s == 64e9
    message = 1000 * m.hidden_size * 2  # 1,000 tokens' hidden states in 16 bits
    lat = perf.ALLREDUCE_LATENCY_S
    for tp, link in ((2, 300e9), (4, 32e9), (8, 32e9)):
        want = lat + 2 * (tp - 1) / tp * message / link
        assert perf.allreduce_s(m, pcie, 1000, tp) == pytest.approx(2 * m.num_hidden_layers * want, rel=1e-12), tp
        assert perf.allreduce_s(m, sxm, 1000, tp) == pytest.approx(
            2 * m.num_hidden_layers * (lat + 2 * (tp - 1) / tp * message / 300e9), rel=1e-12), tp
    # a pipeline of two bridged cards hands off over the bridge; of four, over PCIe
    assert perf.handoff_s(m, pcie, 1000, gpus=2) == pytest.approx(lat + message / 300e9, rel=1e-12)
    assert perf.handoff_s(m, pcie, 1000, gpus=4) == pytest.approx(lat + message / 32e9, rel=1e-12)
    # every registry GPU states its host interface's bandwidth
    assert all(registry.get_gpu(k).host_interface_bytes_per_s for k in registry.list_gpus())
