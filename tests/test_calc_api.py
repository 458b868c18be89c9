"""The shared contract: api.run / api.fields / InputError, the CLI wrapper, and registry helpers."""

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from calc import api, calibration, engines, registry

ROOT = Path(__file__).resolve().parent.parent
REQUIRED = {
    "memory": ["params_total", "params_active", "weights_bytes", "kv_bytes_per_token", "kv_cache_bytes",
               "activation_peak_bytes", "overhead_bytes", "total_bytes", "fits", "max_concurrency"],
    "perf": ["prefill_s", "ttft_s", "tpot_s", "decode_tok_per_s", "throughput_tok_per_s", "bound"],
    "cost": ["usd_per_million_output_tokens", "usd_per_million_input_tokens", "usd_per_request"],
    "roi": ["payback_months", "roi_12m", "roi_24m"],
    "plan": ["fits", "gpus", "replicas", "tp_size", "ttft_p90_s", "tpot_p90_s", "monthly_cost_usd",
             "usd_per_million_output_tokens", "candidates", "load_curve"],
}


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "calc", *args], cwd=ROOT, capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("command", api.COMMANDS)
def test_defaults_work_and_carry_the_contract_fields(command):
    r = api.run(command, {"model": "llama-3.1-8b", "gpu": "h100-sxm"})
    assert set(REQUIRED[command]) <= set(r)
    json.dumps(r, allow_nan=False)  # plain JSON: no NaN / Infinity


def test_memory_default_example():
    r = api.run("memory", {"model": "llama-3.1-8b", "gpu": "h100-sxm"})
    assert r["weights_bytes"] == 2 * 8_030_261_248
    assert r["kv_cache_bytes"] == 1 * (1024 + 256) * 131_072  # batch × (prompt + output) tokens
    assert r["total_bytes"] == r["weights_bytes"] + r["kv_cache_bytes"] + r["activation_peak_bytes"] + r["overhead_bytes"]


def test_strings_and_numbers_give_the_same_result():
    as_text = api.run("perf", {"model": "qwen2.5-7b", "gpu": "h200", "batch": "8", "prompt-len": "512", "tp": "1",
                               "mem-efficiency": "0.9", "weights": "fp8", "kv-dtype": "fp8"})
    as_numbers = api.run("perf", {"model": "qwen2.5-7b", "gpu": "h200", "batch": 8, "prompt-len": 512, "tp": 1,
                                  "mem-efficiency": 0.9, "weights": "fp8", "kv-dtype": "fp8"})
    assert as_text == as_numbers
    assert api.run("memory", {"batch": ""}) == api.run("memory", {})  # an empty form field means the default


def test_input_error_lists_every_bad_field_in_both_languages():
    with pytest.raises(api.InputError) as err:
        api.run("memory", {"model": "gpt-9", "batch": "0", "prompt-len": "abc", "gpu-memory-utilization": "1.5",
                           "bogus": 1})
    errors = err.value.errors
    assert set(errors) == {"model", "batch", "prompt-len", "gpu-memory-utilization", "bogus"}
    assert errors["batch"]["en"].startswith("batch must be an integer ≥ 1")
    assert errors["batch"]["zh"].startswith("批大小必须是 ≥ 1")
    assert "valid: deepseek-r1, deepseek-v3" in errors["model"]["en"]  # lists valid presets (the first six)
    assert all(set(msg) == {"en", "zh"} for msg in errors.values())
    assert isinstance(err.value, ValueError) and "\n" not in str(err.value)


@pytest.mark.parametrize("bad", [True, 1.5, float("nan"), float("inf"), "1e3x", -1, [1]])
def test_bad_batch_values(bad):
    with pytest.raises(api.InputError) as err:
        api.run("memory", {"batch": bad})
    assert set(err.value.errors) == {"batch"}


def test_tp_must_divide_heads():
    with pytest.raises(api.InputError) as err:
        api.run("memory", {"model": "llama-3.1-8b", "tp": 3})
    assert "32 attention heads" in err.value.errors["tp"]["en"]
    with pytest.raises(api.InputError):  # 28 heads and 4 KV heads: tp 7 divides the heads but not the KV heads
        api.run("memory", {"model": "qwen2.5-7b", "tp": 7})


def test_config_json_text_or_dict_overrides_the_preset():
    cfg = registry.hf_config("qwen3-8b")
    from_text = api.run("memory", {"model": "llama-3.1-8b", "config": json.dumps(cfg)})
    from_dict = api.run("memory", {"config": cfg})
    preset = api.run("memory", {"model": "qwen3-8b"})
    for r in (from_text, from_dict):
        assert r["weights_bytes"] == preset["weights_bytes"] and r["kv_bytes_per_token"] == preset["kv_bytes_per_token"]


@pytest.mark.parametrize("text, needle", [
    ("{not json", "not valid JSON"),
    ("[1, 2]", "JSON object"),
    ('{"model_type": "llama", "hidden_size": 4096}', "num_hidden_layers"),
    ('{"model_type": "t5"}', "model_type"),
    ("__import__('os')", "not valid JSON"),  # parsed, never evaluated
])
def test_malformed_config_is_a_clear_error(text, needle):
    with pytest.raises(api.InputError) as err:
        api.run("memory", {"config": text})
    assert needle in err.value.errors["config"]["en"]
    assert err.value.errors["config"]["zh"]


def test_fields_describe_the_form():
    names = {f["name"]: f for f in api.fields("memory")}
    assert {"model", "config", "gpu", "weights", "kv-dtype", "batch", "prompt-len", "output-len", "tp",
            "gpu-memory-utilization", "max-model-len"} <= set(names)
    assert names["model"]["kind"] == "choice" and names["model"]["default"] == "llama-3.1-8b"
    assert {c["value"] for c in names["model"]["choices"]} == set(registry.list_models())
    assert {c["value"] for c in names["gpu"]["choices"]} == set(registry.list_gpus())
    assert names["batch"]["min"] == 1 and names["config"]["kind"] == "json"
    for f in names.values():
        assert set(f["label"]) == {"en", "zh"} and set(f["help"]) == {"en", "zh"}
        assert f["kind"] in ("choice", "int", "float", "text", "json")
    assert "gpu-price" in {f["name"] for f in api.fields("cost")}
    assert "gpu-price" not in names
    # every documented default is accepted by run() as is
    for command in api.COMMANDS:
        defaults = {f["name"]: f["default"] for f in api.fields(command) if f["default"] is not None}
        if command in ("cost", "roi"):
            assert api.run(command, defaults)["usd_per_request"] > 0
        else:
            api.run(command, defaults)


def test_cli_json_is_run():
    p = _cli("memory", "--model", "llama-3.1-8b", "--gpu", "h100-sxm", "--weights", "fp8", "--batch", "4", "--json")
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout) == api.run("memory", {"model": "llama-3.1-8b", "gpu": "h100-sxm", "weights": "fp8", "batch": "4"})


def test_cli_table_shows_gb_and_gib():
    p = _cli("memory", "--model", "llama-3.1-8b")
    assert p.returncode == 0
    assert "16.06 GB (14.96 GiB)" in p.stdout


def test_cli_table_reads_like_the_browser():
    # One formatter for both: a request rate is a rate (it once printed as "1,000.000 ms" from its "_s" ending).
    p = _cli("cost", "--model", "llama-3.2-1b", "--gpu", "h100-sxm", "--requests-per-s", "2.5")
    assert p.returncode == 0, p.stderr
    lines = dict(line.split(None, 1) for line in p.stdout.splitlines() if line and not line.startswith(" "))
    assert lines["requests_per_s"].strip() == "2.500 req/s"
    assert lines["utilization"].strip() == "100.0%"
    result = api.run("cost", {"model": "llama-3.2-1b", "gpu": "h100-sxm", "requests-per-s": "2.5"})
    assert lines["monthly_requests"].strip() == f"{round(result['monthly_requests']):,} requests"


def test_cli_config_path(tmp_path):
    path = tmp_path / "config.json"
    path.write_text(json.dumps(registry.hf_config("mistral-7b")))
    p = _cli("perf", "--config", str(path), "--json")
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout)["tpot_s"] == api.run("perf", {"model": "mistral-7b"})["tpot_s"]


def test_cli_model_accepts_a_config_json_path(tmp_path):
    path = tmp_path / "config.json"
    path.write_text(json.dumps(registry.hf_config("qwen2.5-7b")))
    p = _cli("memory", "--model", str(path), "--gpu", "h100-sxm", "--json")
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout)["weights_bytes"] == api.run("memory", {"model": "qwen2.5-7b"})["weights_bytes"]


def test_cli_survives_a_closed_pipe():
    # `python -m calc perf --json | head -1`: the reader leaves early; no traceback, exit 0.
    proc = subprocess.Popen([sys.executable, "-m", "calc", "perf", "--json"], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, bufsize=0)
    proc.stdout.close()  # before calc has written anything: its print meets a closed pipe
    assert proc.wait(timeout=60) == 0
    assert b"Traceback" not in proc.stderr.read()


@pytest.mark.parametrize("args", [
    ["memory", "--model", "missing/config.json"],
    ["memory", "--batch", "0"], ["memory", "--model", "nope"], ["memory", "--frobnicate", "1"], ["fly"],
    ["perf", "--config", "/no/such/file.json"], ["list", "cats"],
])
def test_cli_bad_arguments_exit_nonzero_with_one_line(args):
    p = _cli(*args)
    assert p.returncode != 0
    assert p.stderr.strip().count("\n") == 0 and "Traceback" not in p.stderr
    assert p.stderr.startswith("error:")


@pytest.mark.parametrize("what", ["models", "gpus", "prices"])
def test_cli_list(what):
    p = _cli("list", what, "--json")
    assert p.returncode == 0
    keys = set(json.loads(p.stdout))
    assert keys == set({"models": registry.list_models, "gpus": registry.list_gpus, "prices": registry.list_prices}[what]())


@pytest.mark.parametrize("device, key", [
    ("NVIDIA H100 80GB HBM3", "h100-sxm"), ("NVIDIA H100 PCIe", "h100-pcie"), ("NVIDIA H200", "h200"),
    ("NVIDIA A100-SXM4-80GB", "a100-80gb"), ("NVIDIA A100-SXM4-40GB", "a100-40gb"), ("NVIDIA L40S", "l40s"),
    ("NVIDIA L4", "l4"), ("NVIDIA A10", "a10"), ("NVIDIA GeForce RTX 4090", "rtx-4090"),
    ("NVIDIA GeForce RTX 5090", "rtx-5090"), ("NVIDIA B200", "b200"), ("AMD Instinct MI300X", "mi300x"),
    ("NVIDIA H20", "h20"),
    ("NVIDIA A10G", "a10g"), ("NVIDIA A100 80GB PCIe", None), ("NVIDIA H100 NVL", "h100-nvl"), ("Tesla T4", "t4"),
    ("Tesla V100-SXM2-32GB", "v100-sxm2-32gb"), ("Tesla V100-PCIE-32GB", None), ("NVIDIA GeForce RTX 3090", "rtx-3090"),
    ("NVIDIA GeForce RTX 3090 Ti", None), ("NVIDIA RTX A6000", "rtx-a6000"),
    ("NVIDIA RTX 6000 Ada Generation", "rtx-6000-ada"), ("NVIDIA GH200 480GB", "gh200"), ("NVIDIA GH200 120GB", "gh200"),
    ("NVIDIA GH200 144G HBM3e", "gh200-144g"), ("NVIDIA L20", "l20"), ("NVIDIA L20Y", None),
])
def test_match_gpu(device, key):
    assert registry.match_gpu(device) == key


def test_lookup_paths():
    assert registry.lookup("gpu.h100-sxm.memory_bandwidth_bytes_per_s") == 3.35e12
    assert registry.lookup("gpu.h100-sxm.memory_bytes") == 80 * 2**30
    assert registry.lookup("model.llama-3.1-8b.num_key_value_heads") == 8
    assert registry.lookup("model.llama-3.1-8b.params_total") == 8_030_261_248
    assert registry.lookup("model.llama-3.1-8b.rope_theta") == 500000.0
    assert registry.lookup("price.openai-gpt-4o.usd_per_million_output_tokens") == 10.0
    # an engine profile's share for a weight format, as engines.json stores it (a variant's replaces the default)
    stored = json.loads((Path(api.__file__).parent / "data" / "engines.json").read_text())["engines"]["vllm"]
    assert registry.lookup("engine.vllm.memory_efficiency_fp8") == stored["memory_efficiency"]["default"]
    assert registry.lookup("engine.vllm.memory_efficiency_int4") == stored["memory_efficiency"]["int4"]
    assert registry.lookup("engine.vllm@rocm-0.9.memory_efficiency_fp8") == \
        stored["variants"]["rocm-0.9"]["memory_efficiency"]["default"]
    assert registry.lookup("engine.llama.cpp.name") == "llama.cpp"  # a key with a dot
    for bad in ("gpu.h100-sxm.nope", "gpu.nope.memory_bytes", "cpu.x.y", "gpu.h100-sxm", "engine.vllm.nope",
                "engine.vllm.memory_efficiency_fp9", "engine.vllm.kv_budget", "engine.nope.name"):
        with pytest.raises(KeyError):
            registry.lookup(bad)


def test_unverified_gpu_figures_are_flagged_in_both_languages():
    # The H20 has no public NVIDIA datasheet: a result built on it says so; a datasheet-backed GPU does not.
    h20 = api.run("perf", {"gpu": "h20"})["warnings"]
    assert any("datasheet" in w["en"] and "数据手册" in w["zh"] for w in h20)
    assert not any("datasheet" in w["en"] for w in api.run("perf", {"gpu": "h100-sxm"})["warnings"])


def test_a_front_end_latency_of_ones_own_replaces_the_engines_in_ttft_and_the_plan():
    """request-latency-ms: the reader's measured per-request latency off the GPU replaces the engine's fitted one
    (none for SGLang, whose prompt cost is in the step) in perf's TTFT and in the planner's simulated TTFT; TPOT, the ideal bound
    and the cost of GPU time stay."""
    run, InputError = api.run, api.InputError
    base = {"model": "qwen3-8b", "gpu": "h100-sxm", "prompt-len": "233", "output-len": "64"}
    mla = {"model": "deepseek-r1", "gpu": "h200", "tp": "8", "weights": "fp8", "prompt-len": "233", "output-len": "64"}
    for params in ({**base, "engine": "vllm"}, {**base, "engine": "sglang"}, {**mla, "engine": "sglang"},
                   {**base, "engine": "ideal"}):
        fitted = run("perf", params)
        own = run("perf", {**params, "request-latency-ms": "59"})
        assert own["request_latency_s"] == 0.059 != fitted["request_latency_s"]
        assert own["ttft_s"] - fitted["ttft_s"] == pytest.approx(0.059 - fitted["request_latency_s"])
        assert own["e2e_s"] - fitted["e2e_s"] == pytest.approx(own["ttft_s"] - fitted["ttft_s"])
        assert (own["tpot_s"], own["ttft_ideal_s"], own["e2e_ideal_s"]) == \
            (fitted["tpot_s"], fitted["ttft_ideal_s"], fitted["e2e_ideal_s"])
        # the latency holds no GPU: the cost calculator charges the same GPU time either way
        costs = [run("cost", {**p, "gpu-price": "2"}) for p in (params, {**params, "request-latency-ms": "59"})]
        assert costs[0]["usd_per_request"] == pytest.approx(costs[1]["usd_per_request"])
    # SGLang's prompt cost is the prompt's forward, paid in the step (none off the GPU): the reader's figure adds to it
    assert run("perf", {**mla, "engine": "sglang"})["request_latency_s"] == 0
    assert run("perf", {**mla, "engine": "sglang"})["ttft_s"] > 0.1
    assert run("perf", {**base, "request-latency-ms": "-0"})["request_latency_s"] == 0.0
    plan = {"model": "llama-3.1-8b", "rate": "2", "requests": "40"}
    for engine in ("vllm", "sglang"):
        fitted = run("plan", {**plan, "engine": engine})
        slow = run("plan", {**plan, "engine": engine, "request-latency-ms": "500"})
        assert slow["ttft_p90_s"] > fitted["ttft_p90_s"] + 0.4  # paid once per request, off the GPU
        assert slow["e2e_p90_s"] - fitted["e2e_p90_s"] == pytest.approx(slow["ttft_p90_s"] - fitted["ttft_p90_s"], abs=1e-3)
        assert slow["tpot_p90_s"] == fitted["tpot_p90_s"] and slow["gpus"] == fitted["gpus"]
    for bad in ("-1", "abc", "1e9", "nan", "inf"):
        with pytest.raises(InputError) as err:
            run("perf", {**base, "request-latency-ms": bad})
        assert set(err.value.errors) == {"request-latency-ms"}


def test_speed_figures_warn_where_the_engine_profile_is_unchecked_or_known_optimistic():
    """Data page: llama.cpp on HBM GPUs rests on 2024 builds (no current-build run found); llama.cpp with several
    sequences and 4-bit GGUF weights is optimistic (2.2x at 8 tokens per step); SGLang's multi-GPU cost was fitted on
    MoE models, and vLLM V1's dense runs on several GPUs were checked only at TP 2 and 4 on NVLink GPUs without pipeline
    stages; every profile was fitted on NVIDIA GPUs: vLLM's and SGLang's AMD runs were far slower, the other engines'
    were never read. Each warns beside a speed figure, in both languages, and only there."""
    def warned(command, params, word):
        return [w for w in api.run(command, params)["warnings"] if word in w["en"]]

    hbm = {"model": "llama-3.1-8b", "gpu": "h100-sxm", "engine": "llama.cpp", "weights": "q4_0"}
    (w,) = warned("perf", hbm, "HBM")
    assert "2024" in w["en"] and "HBM" in w["zh"]
    assert warned("perf", {**hbm, "gpu": "rtx-4090"}, "HBM") == warned("memory", hbm, "HBM") == []
    assert warned("perf", {**hbm, "engine": "vllm"}, "HBM") == []
    batched = {"model": "llama-3.1-8b", "gpu": "rtx-3090", "engine": "llama.cpp", "weights": "q4_k_m", "batch": "8"}
    (w,) = warned("perf", batched, "several sequences")
    assert "2.2" in w["en"] and "2.2" in w["zh"]
    assert warned("perf", {**batched, "batch": "1"}, "several sequences") == []
    assert warned("perf", {**batched, "weights": "fp16"}, "several sequences") == []
    assert warned("cost", batched, "several sequences")
    plan = {"model": "llama-3.1-8b", "gpu": "rtx-4090", "engine": "llama.cpp", "weights": "q4_k_m", "rate": "1",
            "requests": "20"}
    assert warned("plan", plan, "several sequences")  # the planner batches whatever arrives together ...
    assert warned("plan", {**plan, "max-num-seqs": "1"}, "several sequences") == []  # ... unless it may not
    dense = {"model": "llama-3.1-70b", "gpu": "h100-sxm", "engine": "sglang", "tp": "4"}
    (w,) = warned("perf", dense, "MoE")
    assert "SGLang" in w["en"] and "SGLang" in w["zh"] and "MoE" in w["zh"]
    assert warned("perf", {**dense, "tp": "1", "weights": "fp8"}, "MoE") == []
    assert warned("perf", {**dense, "engine": "trt-llm"}, "MoE") == []  # TensorRT-LLM's was fitted on dense models
    assert warned("perf", {**dense, "engine": "vllm"}, "MoE") == []  # vLLM V1: held-out dense runs at TP 2 and 4
    # ... on H100 SXM and A100 SXM nodes without pipeline stages or expert parallelism (MoE: TP 2-8 on H100 SXM);
    # outside that, vLLM V1's multi-GPU figure is unchecked, and the warning quotes the held-out dense range
    rows = [r for r in calibration.errors() if r["id"].startswith("chipbench-") and r["id"].endswith("-tpot-c1")
            and "mi300x" not in r["id"] and "x1-" not in r["id"]]
    lo, hi = round(min(r["error"] for r in rows) * 100), round(max(r["error"] for r in rows) * 100)
    checked = {**dense, "engine": "vllm"}
    for case in ({"tp": "2"}, {"tp": "4"}, {"gpu": "a100-80gb", "tp": "2"}, {"tp": "1"},
                 {"model": "qwen3-235b-a22b", "tp": "8", "weights": "fp8"}, {"model": "qwen3-30b-a3b", "tp": "2"}):
        assert warned("perf", {**checked, **case}, "80GB nodes") == []
    for case in ({"tp": "8"}, {"tp": "1", "pp": "2"}, {"tp": "2", "pp": "2"}, {"gpu": "l40s", "tp": "2"},
                 {"gpu": "h100-pcie", "tp": "2"}, {"gpu": "h200", "tp": "4"}, {"gpu": "b200", "tp": "2"},
                 {"model": "qwen3-30b-a3b", "gpu": "l40s", "tp": "2"}, {"model": "qwen3-235b-a22b", "tp": "4", "pp": "2"},
                 {"model": "qwen3-30b-a3b", "tp": "1", "ep": "2"}, {"gpu": "a100-40gb", "tp": "2"}):
        (w,) = warned("perf", {**checked, **case}, "80GB nodes")
        assert "vLLM V1" in w["en"] and "SXM" in w["zh"]
        assert f"{lo} % to +{hi} %" in w["en"] and f"−{-lo} % 到 +{hi} %" in w["zh"], (lo, hi)
    assert warned("perf", {"model": "qwen3-235b-a22b", "gpu": "h200", "tp": "8", "engine": "sglang"}, "MoE") == []
    # the planner chooses the tensor-parallel size itself: the warning follows its choice
    plan70 = {"model": "llama-3.1-70b", "gpu": "h100-sxm", "engine": "sglang", "rate": "2", "requests": "40"}
    out = api.run("plan", plan70)
    assert out["tp_size"] > 1 and [w for w in out["warnings"] if "MoE" in w["en"]]
    assert not [w for w in api.run("plan", {**plan70, "model": "llama-3.1-8b"})["warnings"] if "MoE" in w["en"]]
    # where nothing fits, the reasons quote figures for every tensor-parallel size tried
    out = api.run("plan", {**plan70, "tpot-p90": "0.005"})
    assert not out["fits"] and [w for w in out["warnings"] if "MoE" in w["en"]]
    assert warned("perf", {**dense, "tp": "1", "pp": "2"}, "MoE")  # pipeline stages pay the multi-GPU cost too
    # AMD: every engine's profile, whatever the model; not the ideal bound, not memory. vLLM's quotes its MI300X
    # misses (from the calibration set), SGLang's its one run, TensorRT-LLM does not run there, the others are unchecked
    amd = {"model": "llama-3.1-8b", "gpu": "mi300x"}
    # with the CUDA-fitted profile the calculators use (the points' ROCm variant is calibration-only)
    mi = [r for r in calibration.errors(engine="vllm") if r["id"].startswith("chipbench-") and "mi300x" in r["id"]
          and r["id"].endswith("-c1")]
    span = {k: (round(-max(r["error"] for r in mi if r["kind"] == k) * 100), round(-min(r["error"] for r in mi if r["kind"] == k) * 100))
            for k in ("tpot", "ttft")}
    (w,) = warned("perf", {**amd, "engine": "vllm"}, "NVIDIA")
    for a, b in span.values():
        assert f"{a}-{b} %" in w["en"] and f"{a} % 到 {b} %" in w["zh"], span
    # AMD's table for vLLM 0.9.1 (ROCm/vllm docs/dev-docker/README.md at d61a61c13): 70B FP8, TP 8, batch 1, 128 + 2,048
    # tokens, 17.236 s: the calibration set's fit point, computed with the CUDA profile the calculators use
    (point,) = [p for p in calibration.points() if p["id"] == "amd-vllm091-rocm-mi300xx8-llama-3.1-70b-fp8-in128-bs1"]
    short = round((1 - 2048 / calibration.predict(point, engine="vllm") / 17.236) * 100)
    assert short == 29 and f"calc's time is {short} % short" in w["en"] and f"单个请求的耗时也短 {short} %" in w["zh"]
    # TensorRT-LLM's TTFT has no HTTP front end: said beside its speed figures on NVIDIA GPUs, with the one serving run's gap
    trt = [r for r in calibration.errors() if r["id"] == "gpustack-trtllm120rc1-h100-qwen3-8b-ttft-c4"]
    gap = round(trt[0]["measured"] - trt[0]["predicted"], 2) * 1e3
    trt8b = {"model": "llama-3.1-8b", "gpu": "h100-sxm", "engine": "trt-llm"}
    (w,) = warned("perf", trt8b, "trtllm-serve")
    assert f"about {gap:.0f} ms" in w["en"] and f"约 {gap:.0f} ms" in w["zh"] and "trtllm-serve" in w["zh"]
    for command, extra in (("cost", {}), ("roi", {}), ("plan", {"rate": "1", "requests": "20"})):
        assert len(warned(command, {**trt8b, **extra}, "trtllm-serve")) == 1, command
    assert warned("perf", {**trt8b, "request-latency-ms": "30"}, "trtllm-serve") == []  # the reader entered theirs
    assert warned("perf", {**trt8b, "engine": "vllm"}, "trtllm-serve") == []
    assert warned("perf", {**trt8b, "gpu": "mi300x"}, "trtllm-serve") == []  # on AMD it says it does not run there
    assert warned("memory", trt8b, "trtllm-serve") == []
    (w,) = warned("perf", {**amd, "engine": "trt-llm"}, "NVIDIA")
    assert "no real deployment" in w["en"] and "NVIDIA" in w["zh"]
    (w,) = warned("perf", {**amd, "engine": "sglang"}, "NVIDIA")
    assert "DeepSeek-V3.1" in w["en"] and "AMD" in w["en"] and "DeepSeek-V3.1" in w["zh"]
    for engine in ("llama.cpp", "hf"):
        (w,) = warned("perf", {**amd, "engine": engine}, "NVIDIA")
        assert "unchecked" in w["en"] and engines.profile(engine).name in w["en"] and "没有检验过" in w["zh"]
    assert warned("perf", {**amd, "engine": "ideal"}, "NVIDIA") == []
    assert warned("memory", {**amd, "engine": "vllm"}, "NVIDIA") == []
    assert warned("perf", {**amd, "gpu": "h100-sxm", "engine": "vllm"}, "NVIDIA") == []


def test_speed_figures_for_mla_models_warn_where_they_were_never_checked():
    """The MLA weights were fitted on SGLang only (data page): a speed figure for an MLA model with another engine says
    so, in both languages; memory and GQA models do not warn, and SGLang notes only its Triton backend."""
    ds = {"model": "deepseek-v3", "gpu": "h200", "tp": "8", "weights": "fp8"}

    def mla_warnings(command, params):
        return [w for w in api.run(command, params)["warnings"] if "MLA" in w["en"]]

    for engine in ("vllm", "trt-llm"):
        (w,) = mla_warnings("perf", {**ds, "engine": engine})
        assert "SGLang" in w["en"] and engines.profile(engine).name in w["en"] and "MLA" in w["zh"]
    plan = {"model": "deepseek-v3", "gpu": "h200", "weights": "fp8", "engine": "vllm", "rate": "1", "requests": "20"}
    assert mla_warnings("cost", {**ds, "engine": "vllm"}) and mla_warnings("plan", plan)
    # on an AMD GPU the warning every engine's speed figure gets there says it (test above), not an MLA one
    assert mla_warnings("perf", {**ds, "gpu": "mi300x", "engine": "sglang"}) == []
    assert mla_warnings("perf", {**ds, "engine": "ideal"}) == []
    # SGLang, fitted on MLA runs, gets only the note on its Triton backend (test_calc_calibration pins its figures)
    (w,) = mla_warnings("perf", {**ds, "engine": "sglang"})
    assert "--attention-backend triton" in w["en"] and "--attention-backend triton" in w["zh"]
    assert mla_warnings("memory", {**ds, "engine": "vllm"}) == []
    assert mla_warnings("perf", {"model": "qwen3-235b-a22b", "gpu": "h200", "tp": "8", "engine": "vllm"}) == []


def _fit_warnings(command, **params):
    """The warnings that say the batch cannot run at once (KV cache, resident bytes, vLLM's and SGLang's caps)."""
    marks = ("KV cache", "does not fit in GPU memory", "CUDA shows", "--max-num-seqs", "--max-running-requests")
    return [w for w in api.run(command, params)["warnings"] if any(m in w["en"] for m in marks)]


def test_a_batch_larger_than_the_engines_kv_cache_is_flagged():
    """The speed figures assume the whole batch runs at once. vLLM reserves its KV pool at start-up: a batch of more
    sequences than it holds would run in part and queue the rest, and the calculators say so, with the VRAM calculator's
    count for the same inputs."""
    from calc import memory as mem

    big = {"model": "llama-3-70b", "gpu": "mi300x", "weights": "fp16", "kv-dtype": "fp16", "prompt-len": 2048,
           "output-len": 2048}
    fits = api.run("memory", {**big, "batch": 1})["max_concurrency"]
    # by hand: vLLM's KV budget on one MI300X (its 16,384-token default step budget) over 4,096 tokens x the 70B's 80
    # layers x 8 KV heads x 128 x 2 (K and V) x 2 bytes
    gpu = registry.get_gpu("mi300x")
    r = mem.memory_report(registry.get_model("llama-3-70b"), gpu.memory_bytes, "fp16", "fp16", 1, 2048, 2048, 1,
                          visible_memory_bytes=gpu.visible_memory_bytes, engine="vllm", max_num_batched_tokens=16384)
    assert mem.vllm_max_num_batched_tokens(gpu) == 16384
    assert fits == r["engine_kv_budget_bytes_per_gpu"] // (4096 * 80 * 8 * 128 * 2 * 2) == 32
    assert _fit_warnings("perf", batch=fits, **big) == []
    (w,) = _fit_warnings("perf", batch=fits + 1, **big)
    assert "holds 32 sequences of 4,096 tokens (prompt + output), not 33: no more run at once" in w["en"]
    assert "只能容纳 32 个 4,096 token（提示 + 输出）的序列，而不是 33 个" in w["zh"]
    # the count is the VRAM calculator's on GPUs of every step-budget tier (2,048 / 8,192 / 16,384 tokens) and for SGLang
    for gpu_key, model, engine in (("l4", "llama-3.1-8b", "vllm"), ("a100-80gb", "llama-3.1-8b", "vllm"),
                                   ("h100-sxm", "qwen3-32b", "vllm"), ("h100-sxm", "qwen3-32b", "sglang"),
                                   ("rtx-4090", "llama-3.1-8b", "sglang")):
        p = {"model": model, "gpu": gpu_key, "engine": engine, "prompt-len": 1024, "output-len": 1024}
        n = api.run("memory", {**p, "batch": 1})["max_concurrency"]
        assert 1 < n < 256 and _fit_warnings("perf", batch=n, **p) == [], (gpu_key, engine)
        (w,) = _fit_warnings("perf", batch=n + 1, **p)
        assert f"holds {n:,} sequences of 2,048 tokens" in w["en"], (gpu_key, engine, w["en"])
    # the cost and ROI calculators compute from the same speed figures: they say it too; the VRAM calculator shows the
    # count itself and does not repeat it
    assert len(_fit_warnings("cost", batch=256, **big)) == 1 and len(_fit_warnings("roi", batch=256, **big)) == 1
    assert _fit_warnings("memory", batch=256, **big) == []
    # it comes before the AMD warning: the one thing to fix before reading the figures at all
    out = api.run("perf", {**big, "batch": 256})["warnings"]
    assert "KV cache" in out[0]["en"] and "NVIDIA GPUs" in out[1]["en"]
    # more GPUs hold more: at TP 8 the same batch fits; an fp8 KV cache is not suggested where it is already fp8
    assert _fit_warnings("perf", batch=256, tp=8, **big) == []
    (w,) = _fit_warnings("perf", batch=1000, **{**big, "kv-dtype": "fp8"})
    assert "fp8" not in w["en"] and "fp8" in _fit_warnings("perf", batch=1000, **big)[0]["en"]


def test_sequences_beyond_the_models_context_are_counted_at_their_length():
    """100,256-token sequences of Llama-3-70B on 8 H100s: the count is for that length (the KV budget over 100,256
    tokens' blocks), not for the model's 8,192 (which would be about twelve times more)."""
    p = {"model": "llama-3-70b", "gpu": "h100-sxm", "tp": 8, "prompt-len": 100_000, "output-len": 256}
    (w,) = _fit_warnings("perf", batch=150, **p)
    n = int(w["en"].split(" holds ")[1].split()[0])
    short = api.run("memory", {**p, "prompt-len": 8192 - 256, "batch": 1})["max_concurrency"]
    assert "sequences of 100,256 tokens" in w["en"] and n == 14 and 11 < short / n < 13
    # the VRAM calculator gives the same count with its max model length set to that length, and the text says so
    assert api.run("memory", {**p, "batch": 1, "max-model-len": 100_256})["max_concurrency"] == 14
    assert "with its max model length set to 100,256" in w["en"] and "vLLM rejects requests longer than the model's context" in w["en"]
    assert "unless started with that --max-model-len" in w["en"] and "vLLM 默认会拒绝超过模型上下文的请求" in w["zh"]
    # each engine names its own flag for the longest sequence it accepts
    (w,) = _fit_warnings("perf", batch=150, engine="sglang", **p)
    assert "SGLang rejects requests longer than the model's context unless started with that --context-length" in w["en"]
    assert "SGLang 默认会拒绝超过模型上下文的请求，除非启动时把 --context-length 设到这么长" in w["zh"]
    (w,) = _fit_warnings("perf", batch=150, engine="trt-llm", **p)
    assert "TensorRT-LLM rejects requests longer than the model's context unless started with that --max_seq_len" in w["en"]
    assert "TensorRT-LLM 默认会拒绝超过模型上下文的请求，除非启动时把 --max_seq_len 设到这么长" in w["zh"]
    assert "capacity planner" not in w["en"]  # which refuses such lengths


def test_vllms_sequence_cap_is_flagged():
    """vLLM runs at most max_num_seqs sequences at once: 256 by default on A100s and GPUs under 70 GiB, 1,024 above
    (vLLM 0.22.1 and 0.32.0, get_batch_defaults): a larger batch of short requests is flagged, with the flag to raise."""
    from calc import memory as mem

    assert [mem.vllm_max_num_seqs(registry.get_gpu(g)) for g in ("l40s", "a100-80gb", "h100-sxm", "b200")] == [256, 256, 1024, 1024]
    small = {"model": "llama-3.2-1b", "prompt-len": 128, "output-len": 128}
    assert _fit_warnings("perf", gpu="l40s", batch=256, **small) == []
    (w,) = _fit_warnings("perf", gpu="l40s", batch=257, **small)
    assert "at most 256 sequences at once" in w["en"] and "（--max-num-seqs）" in w["zh"] and "`" not in w["en"] + w["zh"]
    assert _fit_warnings("perf", gpu="h100-sxm", batch=1024, **small) == []
    assert len(_fit_warnings("perf", gpu="h100-sxm", batch=1025, **small)) == 1
    assert _fit_warnings("perf", gpu="l40s", batch=2048, engine="sglang", **small) == []  # vLLM's cap only (SGLang's: below)
    # where the KV cache holds more than the cap, the KV warning names the cap too (lowering the batch to the KV count
    # would still trip it)
    (w,) = _fit_warnings("perf", gpu="l40s", batch=605, **{**small, "prompt-len": 1024, "output-len": 1024})
    assert "holds 604 sequences" in w["en"] and "and by default it runs at most 256 at once" in w["en"]
    # data-parallel attention (ep > tp): one scheduler, and one cap, per attention replica
    dsv3 = {"model": "deepseek-v3", "gpu": "h200", "weights": "fp8", "kv-dtype": "fp8", "tp": 1, "ep": 8,
            "prompt-len": 1024, "output-len": 1024}
    assert api.run("memory", {**dsv3, "batch": 1})["attention_replicas"] == 8
    assert _fit_warnings("perf", batch=2000, **dsv3) == []


def test_sglangs_running_request_cap_is_flagged():
    """SGLang runs at most --max-running-requests at once; unset, it follows the KV pool (0.5.8 model_runner, 0.5.23
    kv_cache_configurator): clamp(tokens / context length × 512, 2,048, 4,096), at most half the tokens."""
    from calc import memory as mem

    assert [mem.sglang_max_running_requests(t, 131072) for t in (100_000, 1_000_000, 2_000_000)] == [2048, 3906, 4096]
    assert mem.sglang_max_running_requests(3000, 4096) == 1500  # half the pool's tokens
    small = {"model": "llama-3.2-1b", "gpu": "h100-sxm", "engine": "sglang", "prompt-len": 128, "output-len": 128}
    m = api.run("memory", {**small, "batch": 1})
    assert m["engine_max_tokens_in_cache"] / 131072 * 512 > 4096 and m["max_concurrency"] > 4097  # the cap binds first
    assert _fit_warnings("perf", batch=4096, **small) == []
    (w,) = _fit_warnings("perf", batch=4097, **small)
    assert "SGLang runs at most 4,096 requests at once" in w["en"] and "（--max-running-requests；" in w["zh"]
    # beyond the KV pool as well: the KV warning names the cap, with SGLang's flag
    (w,) = _fit_warnings("perf", batch=m["max_concurrency"] + 1, **small)
    assert "KV cache" in w["en"] and "at most 4,096 at once (--max-running-requests)" in w["en"]


def test_counts_read_as_english_and_advice_fits_the_kv_type():
    (w,) = _fit_warnings("perf", model="gemma-2-9b", gpu="l4", batch=2, **{"prompt-len": 4096, "output-len": 4000})
    assert "holds 1 sequence of 8,096 tokens" in w["en"]
    (w,) = _fit_warnings("perf", model="llama-3.1-8b", gpu="l4", engine="llama.cpp", batch=1,
                         **{"prompt-len": 100_000, "output-len": 256})
    assert "the KV cache of one sequence of 100,256 tokens does not fit" in w["en"] and "0 sequences" not in w["en"]
    for kv in ("fp8", "int8"):  # no fp8 advice where the KV cache is already 8-bit
        (w,) = _fit_warnings("perf", model="llama-3-70b", gpu="mi300x", weights="fp16", batch=1000, **{"kv-dtype": kv})
        assert "fp8" not in w["en"] and "fp8" not in w["zh"]


def test_a_model_that_leaves_no_room_or_does_not_fit_is_flagged():
    # Llama-3.1-405B in BF16 (about 811 GB) on one H100: the weights alone exceed it
    (w,) = _fit_warnings("perf", model="llama-3.1-405b", gpu="h100-sxm", batch=1)
    assert "the weights alone (811.71 GB per GPU) exceed the 85.02 GB CUDA shows" in w["en"] and "does not load" in w["en"]
    assert _fit_warnings("perf", model="llama-3.1-405b", gpu="h200", weights="fp8", tp=8, batch=1) == []
    # the weights fit but leave vLLM no KV cache: Llama-3-70B in BF16 (141 GB) on one H200 (about 150 GB visible)
    (w,) = _fit_warnings("perf", model="llama-3-70b", gpu="h200", batch=1)
    assert "has no room left in its KV cache for one sequence of 1,280 tokens" in w["en"]
    # TensorRT-LLM's pool: 0.9 of what its 8,192-token dry run leaves, (85.02 GB visible - 16.06 GB of weights - the
    # run's 0.94 GB of activations - 1 GiB outside PyTorch) x 0.9 / (9,216 tokens x 128 KiB) = 49 sequences
    (w,) = _fit_warnings("perf", model="llama-3.1-8b", gpu="h100-sxm", engine="trt-llm", batch=512,
                         **{"prompt-len": 8192, "output-len": 1024})
    gpu = registry.get_gpu("h100-sxm")
    act = api.run("memory", {"model": "llama-3.1-8b", "gpu": "h100-sxm", "engine": "trt-llm"})[
        "engine_profile_activation_bytes_per_gpu"]
    assert act == 939_524_096  # an 8,192-token pass (memory.activation_peak_bytes)
    by_hand = int(0.9 * (gpu.visible_memory_bytes - 16_060_522_496 - act - 2**30)) // (9216 * 32 * 8 * 128 * 2 * 2)
    assert by_hand == 49 and "TensorRT-LLM's KV cache on 1 × NVIDIA H100 SXM5 80GB holds 49 sequences of 9,216 tokens" in w["en"]
    assert _fit_warnings("perf", model="llama-3.1-8b", gpu="h100-sxm", engine="trt-llm", batch=8) == []
    # an engine whose KV rule calc does not model as a start-up pool (llama.cpp here): the bytes that must stay
    # resident, with the count: (85.02 GB visible - 16.06 GB of weights - 1 GiB) / (9,216 tokens x 128 KiB) = 56
    (w,) = _fit_warnings("perf", model="llama-3.1-8b", gpu="h100-sxm", engine="llama.cpp", batch=512,
                         **{"prompt-len": 8192, "output-len": 1024})
    by_hand = (gpu.visible_memory_bytes - 16_060_522_496 - 2**30) // (9216 * 32 * 8 * 128 * 2 * 2)
    assert by_hand == 56 and "hold the KV cache of 56 sequences of 9,216 tokens, not 512" in w["en"]


def test_no_calibration_point_is_a_batch_its_engine_cannot_hold():
    """calc's speed figures for the published static batches are figures for batches that ran: none of them trips the
    warning (its rule would otherwise contradict published runs), TensorRT-LLM's tables included."""
    checked = []
    for p in calibration.points():
        if p["kind"] == "kv_tokens" or p.get("closed_loop"):
            continue
        configs = calibration._data()["configs"]
        model = {"config": configs[p["model"]]["config"]} if p["model"] in configs else {"model": p["model"]}
        checked.append(p)
        inputs = {"gpu": p["gpu"], "weights": p["weights"], "batch": p["batch"], "tp": p["tp"], "engine": p["engine"],
                  **model, "kv-dtype": p["kv_dtype"], "prompt-len": p["prompt_len"], "output-len": p["output_len"]}
        if p.get("engine_variant") == "v0.6":
            # TensorRT-LLM's tables of v0.5 and v0.6.1 ran TensorRT engines, before 1.0's start-up pool (the rule the
            # warning applies): there the batch's weights, KV cache and overhead stay resident in what CUDA shows
            q = api.run("memory", inputs)
            assert (q["weights_bytes_per_gpu"] + q["kv_cache_bytes_per_gpu"] + q["overhead_bytes_per_gpu"]
                    <= q["gpu_visible_memory_bytes"]), p["id"]
            continue
        assert _fit_warnings("perf", **inputs) == [], p["id"]
    assert len(checked) > 250 and max(p["batch"] for p in checked if p["engine"] == "trt-llm") >= 1024


def test_a_prefills_activation_peak_flags_only_hugging_faces_generate():
    """An engine with chunked prefill (vLLM, SGLang) or a paged KV cache (TensorRT-LLM) does not hold a whole prompt
    batch's activations: chapter 2's 56 sequences of 8,192 tokens of Llama-3.1-8B on one H100 (vLLM's own count for
    that length) are not flagged. Hugging Face's generate() prefills the whole batch in one pass: there they are."""
    from calc import memory as mem

    ch02 = {"model": "llama-3.1-8b", "gpu": "h100-sxm", "batch": 56, "prompt-len": 4096, "output-len": 4096}
    assert api.run("memory", ch02)["max_concurrency"] == 56
    r = mem.memory_report(registry.get_model("llama-3.1-8b"), registry.get_gpu("h100-sxm").memory_bytes, "bf16", "bf16", 56,
                          4096, 4096, 1, visible_memory_bytes=registry.get_gpu("h100-sxm").visible_memory_bytes, engine="ideal")
    assert not r["fits"] and "activation peak" in r["fits_reason"]["en"]
    for engine in ("ideal", "trt-llm", "vllm"):
        assert _fit_warnings("perf", engine=engine, **ch02) == [], engine
    # SGLang keeps more memory back by default (memory.sglang_mem_fraction_static): its KV pool is what it flags,
    # not the prompt's activations
    (w,) = _fit_warnings("perf", engine="sglang", **ch02)
    sglang = api.run("memory", {**ch02, "engine": "sglang"})
    assert sglang["engine_gpu_memory_utilization"] < 0.92 and sglang["max_concurrency"] < 56
    assert f"holds {sglang['max_concurrency']} sequences" in w["en"] and "prefill" not in w["en"]
    (w,) = _fit_warnings("perf", engine="hf", **ch02)
    assert "generate() prefills the whole batch in one pass" in w["en"]
    # its count is the largest batch that fits with its own prefill peak: that batch passes, one more does not, and the
    # count does not shrink as the requested batch grows
    n = int(w["en"].split(" hold ")[1].split()[0])
    assert 30 < n < 56 and _fit_warnings("perf", engine="hf", **{**ch02, "batch": n}) == []
    assert f"hold {n} sequences" in _fit_warnings("perf", engine="hf", **{**ch02, "batch": 512})[0]["en"]


def test_chapter_4_says_which_cell_of_its_all_reduce_table_does_not_fit():
    """ch04, Table 4-15 (engine ideal): Llama-3-70B in BF16 on 2 x H100, batch 64 of 1,280 tokens. vLLM's KV rule holds
    28; SGLang's default memory fraction leaves no room for the KV cache, and at 0.92 it holds 27; even every byte CUDA
    shows, beside the weights and 1 GiB, holds 63; from TP 4 the batch fits."""
    row = {"model": "llama-3-70b", "gpu": "h100-sxm", "prompt-len": 1024, "output-len": 256}
    assert api.run("memory", {**row, "tp": 2})["max_concurrency"] == 28
    sglang = api.run("memory", {**row, "tp": 2, "engine": "sglang"})
    mib = registry.get_gpu("h100-sxm").visible_memory_bytes / 2**20  # reserved: activations, decode and prefill graphs, TP
    assert sglang["engine_gpu_memory_utilization"] == round((mib - (512 + 8192 * 1.5 + 256 * 2 + 464 + 2 * 1024 / 8)) / mib, 3)
    assert sglang["max_concurrency"] == 0 and sglang["engine_gpu_memory_utilization"] == 0.827
    assert api.run("memory", {**row, "tp": 2, "engine": "sglang", "gpu-memory-utilization": 0.92})["max_concurrency"] == 27
    gpu = registry.get_gpu("h100-sxm")
    per_gpu_weights = 70_553_706_496 * 2 // 2  # 70.55 B parameters x 2 bytes, over 2 GPUs
    assert registry.get_model("llama-3-70b") and api.run("memory", {**row, "tp": 2})["params_total"] == 70_553_706_496
    assert (gpu.visible_memory_bytes - per_gpu_weights - 2**30) // (1280 * 80 * 8 * 128 * 2 * 2 // 2) == 63
    (w,) = _fit_warnings("perf", engine="ideal", tp=2, batch=64, **row)
    assert "hold the KV cache of 63 sequences of 1,280 tokens, not 64" in w["en"]
    assert "holds 28 sequences" in _fit_warnings("perf", tp=2, batch=64, **row)[0]["en"]
    for tp in (4, 8):
        assert _fit_warnings("perf", engine="ideal", tp=tp, batch=64, **row) == []
    assert _fit_warnings("perf", engine="ideal", gpu="l40s", tp=4, batch=64, **{k: v for k, v in row.items() if k != "gpu"}) == []
    root = Path(__file__).resolve().parents[1]
    for lang in ("en", "zh"):  # the chapter computes the 28 with the same call
        text = (root / "docs" / lang / "ch04" / "index.md").read_text(encoding="utf-8")
        assert "{{ calc memory.max_concurrency model=llama-3-70b gpu=h100-sxm tp=2 prompt-len=1024 output-len=256 | int }}" in text
        assert ("for the runtime, holds 63 (64 miss by 32 MB)" if lang == "en" else "也只能放下 63 个（64 个差 32 MB）") in " ".join(text.split())


def test_the_throughput_curve_marks_the_batches_memory_cannot_hold():
    """The perf calculator's curve runs to batch 512 whatever the memory: the batches beyond the count of sequences
    that fit at this length (the batch-fit check's count) are flagged, and the chart draws them faint beyond a dashed,
    labelled line."""
    from calc import web

    p = {"model": "llama-3-70b", "gpu": "h100-sxm", "tp": 2, "prompt-len": 1024, "output-len": 1024}
    r = api.run("perf", {**p, "batch": 16})
    n = r["curve_capacity"]
    # vLLM: the VRAM calculator's count for the same inputs, the one the batch-fit warning gives
    assert n == api.run("memory", {**p, "batch": 1})["max_concurrency"] and 16 < n < 512
    assert _fit_warnings("perf", batch=n, **p) == []
    (w,) = _fit_warnings("perf", batch=n + 1, **p)
    assert f"holds {n:,} sequences" in w["en"]
    assert [c["fits_memory"] for c in r["throughput_curve"]] == [c["batch"] <= n for c in r["throughput_curve"]]
    assert any(c["fits_memory"] for c in r["throughput_curve"]) and not r["throughput_curve"][-1]["fits_memory"]
    # a count that is a batch of the curve: that batch fits, the next does not (32 sequences of 4,096 tokens on one
    # MI300X, the count test_a_batch_larger_than_the_engines_kv_cache_is_flagged works out by hand)
    big = {"model": "llama-3-70b", "gpu": "mi300x", "weights": "fp16", "kv-dtype": "fp16", "prompt-len": 2048,
           "output-len": 2048, "batch": 1}
    curve = {c["batch"]: c["fits_memory"] for c in api.run("perf", big)["throughput_curve"]}
    assert (curve[32], curve[64]) == (True, False)
    # TensorRT-LLM: its start-up pool's count, as for vLLM; llama.cpp: the largest batch whose weights, KV cache and
    # overhead stay resident in what CUDA shows
    t = api.run("perf", {**p, "batch": 16, "engine": "trt-llm"})["curve_capacity"]
    assert t == api.run("memory", {**p, "batch": 1, "engine": "trt-llm"})["max_concurrency"] and 16 < t < 512
    t = api.run("perf", {**p, "batch": 16, "engine": "llama.cpp"})["curve_capacity"]

    def resident(b):
        q = api.run("memory", {**p, "batch": b, "engine": "llama.cpp"})
        return q["weights_bytes_per_gpu"] + q["kv_cache_bytes_per_gpu"] + q["overhead_bytes_per_gpu"] <= q["gpu_visible_memory_bytes"]
    assert 16 < t < 512 and resident(t) and not resident(t + 1)
    # Hugging Face's generate(): its whole-batch prefill peak counts too, as in the warning
    hf = {**p, "engine": "hf", "prompt-len": 8192, "output-len": 256}
    h = api.run("perf", {**hf, "batch": 1})["curve_capacity"]
    assert 1 < h < t and _fit_warnings("perf", batch=h, **hf) == []
    (w,) = _fit_warnings("perf", batch=h + 1, **hf)
    assert f"hold {h:,} sequences of 8,448 tokens" in w["en"]
    # more than the curve's largest batch fit: the count stops there, and every point fits
    small = api.run("perf", {"model": "llama-3.2-1b", "gpu": "h100-sxm", "batch": 8, "prompt-len": 128, "output-len": 128})
    assert small["curve_capacity"] == 512 and all(c["fits_memory"] for c in small["throughput_curve"])
    view = web.view("perf", {"model": "llama-3.2-1b"}, "en")
    assert "curve_capacity" not in {row["field"] for row in view["rows"] + view["details"]}  # not a result row
    # where the weights do not load, no batch fits
    none = api.run("perf", {"model": "llama-3-70b", "gpu": "l4", "batch": 1})
    assert none["curve_capacity"] == 0 and not any(c["fits_memory"] for c in none["throughput_curve"])


def _chart_nodes(params, lang):
    from calc import web

    nodes = []

    def walk(x):
        nodes.append(x)
        for c in x.get("children") or []:
            walk(c)
    walk(web.view("perf", params, lang)["chart"])
    return nodes


def test_the_perf_chart_draws_the_count_as_a_labelled_line():
    """A dashed line at the count on each panel (TPOT: x 64-300, throughput: x 400-620), labelled once, beside it on the
    throughput panel and inside it; the points beyond the count faint; no line where every batch fits."""
    p = {"model": "llama-3-70b", "gpu": "h100-sxm", "tp": 2, "prompt-len": 1024, "output-len": 1024, "batch": 16}
    n = api.run("perf", p)["curve_capacity"]
    for lang, words in (("en", f"{n} sequences"), ("zh", f"{n} 个序列")):
        nodes = _chart_nodes(p, lang)
        lines = {x["attrs"]["data-series"]: x["attrs"] for x in nodes
                 if (x.get("attrs") or {}).get("data-series", "").endswith("-capacity")}
        assert sorted(lines) == ["throughput-capacity", "tpot-capacity"]
        assert {a["data-value"] for a in lines.values()} == {str(n)}
        # at the count on the log axis: between the dots of batches 16 and 32, nearer 16 for 17
        dots = {(x["attrs"]["data-series"], x["attrs"]["data-batch"]): float(x["attrs"]["cx"]) for x in nodes
                if (x.get("attrs") or {}).get("class", "").startswith("calc-chart__dot")}
        lx = float(lines["throughput-capacity"]["x1"])
        left, right = dots[("throughput", "16")], dots[("throughput", "32")]
        assert abs(lx - (left + (right - left) * math.log2(n / 16))) < 0.01
        notes = [x for x in nodes if (x.get("attrs") or {}).get("class") == "calc-chart__note calc-chart__note--limit"]
        assert words in " ".join(x["text"] for x in notes)
        assert all(lx < float(x["attrs"]["x"]) <= 620 for x in notes)  # right of the line, on the throughput panel
        beyond = [x for x in nodes if "calc-chart__dot--beyond" in (x.get("attrs") or {}).get("class", "")]
        assert len(beyond) == 2 * sum(int(b) > n for s, b in dots if s == "tpot")
    # one sequence and none: the singular and the no-room texts, the line at the first batch or the left edge
    one = {"model": "llama-3.1-8b", "gpu": "l4", "prompt-len": 20000, "output-len": 1000, "batch": 1}
    assert api.run("perf", one)["curve_capacity"] == 1
    text = " ".join(x.get("text") or "" for x in _chart_nodes(one, "en"))
    assert "1 sequence" in text and "1 sequences" not in text
    text = " ".join(x.get("text") or "" for x in _chart_nodes({"model": "llama-3-70b", "gpu": "l4"}, "en"))
    assert "no sequence" in text
    assert not [x for x in _chart_nodes({"model": "llama-3.2-1b", "gpu": "h100-sxm"}, "en")
                if (x.get("attrs") or {}).get("data-series", "").endswith("-capacity")]


def test_the_cli_curve_says_which_batches_memory_cannot_hold():
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-m", "calc", "perf", "--model", "llama-3-70b", "--gpu", "h100-sxm", "--tp", "2",
                          "--prompt-len", "1024", "--output-len", "1024"], capture_output=True, text=True, check=True).stdout
    rows = {int(line.split()[1].rstrip(":")): line for line in out.splitlines() if line.startswith("  batch ")}
    assert "memory holds" not in rows[16] and rows[32].endswith(", more sequences than memory holds")
    assert "curve_capacity" not in out


def test_the_capacity_label_stays_in_its_panel_and_off_the_curve():
    """Wherever memory runs out along the curve, the label beside the dashed line stays inside the throughput panel
    (x 400-620, y 44-214) and, where some corner allows it, clear of the curve's points and the input's dot."""
    from calc import charts

    cases = [({"model": "llama-3-70b", "gpu": "l4"}, 0),
             ({"model": "llama-3.1-8b", "gpu": "l4", "prompt-len": 20000, "output-len": 1000}, 1),
             ({"model": "llama-3-70b", "gpu": "h100-sxm", "tp": 2, "prompt-len": 1024, "output-len": 1024, "batch": 16}, None),
             ({"model": "llama-3-70b", "gpu": "h100-sxm", "tp": 2, "prompt-len": 1024, "output-len": 256, "batch": 16}, None),
             ({"model": "llama-3.1-8b", "gpu": "a100-80gb", "prompt-len": 8000, "output-len": 1000, "batch": 8}, None),
             ({"model": "llama-3.1-8b", "gpu": "h100-sxm", "prompt-len": 2048, "output-len": 1024, "batch": 8}, None),
             ({"model": "llama-3.1-8b", "gpu": "h100-sxm", "prompt-len": 1024, "output-len": 256, "batch": 8}, None),
             # the same count as the fourth, on an axis stretched to the input's batch of 2,000
             ({"model": "llama-3-70b", "gpu": "h100-sxm", "tp": 2, "prompt-len": 1024, "output-len": 256, "batch": 2000}, None)]
    counts = set()
    for params, count in cases:
        n = api.run("perf", {"batch": 1, **params})["curve_capacity"]
        assert count is None or n == count
        counts.add(n)
        for lang in ("en", "zh"):
            nodes = _chart_nodes(params, lang)
            labels = [x for x in nodes if (x.get("attrs") or {}).get("class") == "calc-chart__note calc-chart__note--limit"]
            assert 1 <= len(labels) <= 2, (params, lang)
            dots = [(float(x["attrs"]["cx"]), float(x["attrs"]["cy"])) for x in nodes
                    if (x.get("attrs") or {}).get("data-series") in ("throughput", "throughput-current") and "cx" in x["attrs"]]
            for x in labels:
                left, base = float(x["attrs"]["x"]), float(x["attrs"]["y"])
                right = left + charts._text_width(x["text"])
                assert 400 <= left and right <= 620 and 44 <= base - 11 and base <= 214, (params, lang, x["text"])
                assert not [d for d in dots if left - 3 <= d[0] <= right + 3 and base - 14 <= d[1] <= base + 3], (params, lang)
    assert len(counts) == len(cases) - 1  # seven different places along the curve, from none to 360


def test_sglang_with_chunked_prefill_off_still_has_a_memory_fraction():
    """With chunked prefill off the planner's step budget is a whole context; SGLang's default memory fraction then
    reserves for its max_prefill_tokens (16,384), not for that budget, and a model that fits still fits."""
    p = {"model": "llama-3.1-8b", "gpu": "h100-sxm", "engine": "sglang"}
    off = api.run("plan", {**p, "chunked-prefill": "off"})
    assert off["tp_size"] == api.run("plan", p)["tp_size"] == 1
    fraction = api.run("memory", {**p, "max-num-batched-tokens": 131072})["engine_gpu_memory_utilization"]
    assert 0.6 < fraction == api.run("memory", {**p, "max-num-batched-tokens": 16384})["engine_gpu_memory_utilization"] < 0.834


def test_the_vram_calculator_warns_where_the_engines_own_kv_pool_holds_no_sequence():
    """Llama-3.1-70B in FP8 on one H100: its bytes fit (72.66 GB of weights), but SGLang's default memory fraction
    (0.829 there) leaves its KV pool nothing, so no request can run; vLLM's 0.92 leaves room for a few requests of
    1,280 tokens. Only the deployment that cannot serve gets the warning, in both languages."""
    base = {"model": "llama-3.1-70b", "gpu": "h100-sxm", "weights": "fp8"}
    sglang = api.run("memory", {**base, "engine": "sglang"})
    assert sglang["fits"] and sglang["max_concurrency"] == 0
    pool = [w for w in sglang["warnings"] if "has no room for one sequence" in w["en"]]
    assert len(pool) == 1 and "SGLang" in pool[0]["en"] and "1,280" in pool[0]["en"] and "1,280" in pool[0]["zh"]
    vllm = api.run("memory", {**base, "engine": "vllm"})
    assert vllm["max_concurrency"] > 0
    assert not any("has no room for one sequence" in w["en"] or "reserves by its own rule" in w["en"]
                   for w in vllm["warnings"])
    # a batch larger than vLLM's pool holds (a handful of 1,280-token sequences here): the bytes fit, the pool does not
    n = vllm["max_concurrency"]
    over = api.run("memory", {**base, "engine": "vllm", "batch": n + 1})
    assert over["fits"] and over["max_concurrency"] == n
    short = [w for w in over["warnings"] if f"holds {n} sequences of 1,280 tokens" in w["en"]]
    assert len(short) == 1 and f"只容纳 {n} 个" in short[0]["zh"]
    at = api.run("memory", {**base, "engine": "vllm", "batch": n})
    assert not any("reserves by its own rule" in w["en"] for w in at["warnings"])
    # a deployment whose bytes do not fit is already said not to fit: no second warning
    bf16 = api.run("memory", {**base, "weights": "bf16", "engine": "sglang"})
    assert not bf16["fits"] and not any("has no room for one sequence" in w["en"] for w in bf16["warnings"])
    # a max model length shorter than the context: a 512-token prompt, which vLLM serves and stops at 1,024 tokens, so
    # the pool warning names the capped length, after a first warning on the max model length
    capped = api.run("memory", {**base, "engine": "vllm", "max-model-len": 1024, "batch": n + 2, "prompt-len": 512,
                                "output-len": 768})
    refused = [w for w in capped["warnings"] if "more than the Max model length of 1,024" in w["en"]]  # "cut short"
    assert len(refused) == 1 and "1,280" in refused[0]["en"] and "最大模型长度 1,024" in refused[0]["zh"]
    held = [w for w in capped["warnings"] if "reserves by its own rule" in w["en"]]
    assert len(held) == 1 and "of 1,024 tokens" in held[0]["en"] and "1,280" not in held[0]["en"]
    assert capped["max_concurrency"] > n  # shorter sequences: more of them
    assert not any("Max model length" in w["en"] for w in at["warnings"])  # left empty: no such warning
    # what the engine does with such a request (their sources, calc/api.py _length_capped): vLLM refuses only a prompt
    # that reaches the limit and cuts the others' output at it; SGLang and TensorRT-LLM refuse prompt + output beyond it;
    # an engine without the setting is only counted at it; beyond the model's own context only shortening helps
    def capped_warning(engine, prompt, output):
        r = api.run("memory", {**base, "engine": engine, "max-model-len": 1024, "prompt-len": prompt, "output-len": output})
        return next(w for w in r["warnings"] if "Max model length of 1,024" in w["en"])
    assert "vLLM refuses prompts of 1,024 tokens or more" in capped_warning("vllm", 1024, 256)["en"]
    cut = capped_warning("vllm", 512, 768)
    assert "stops each at 1,024 tokens" in cut["en"] and "refuses" not in cut["en"] and "截短" in cut["zh"]
    for engine, name in (("sglang", "SGLang"), ("trt-llm", "TensorRT-LLM")):
        assert f"{name} refuses such requests" in capped_warning(engine, 512, 768)["en"]
    plain = capped_warning("ideal", 512, 768)["en"]
    assert "refuses" not in plain and "stops" not in plain and "counted at 1,024 tokens" in plain
    # where the engine refuses the requests, no count of how many run at once follows (batch 9 > the 8 of 1,024 tokens)
    # (SGLang at vLLM's memory fraction: a pool of 16 such sequences)
    for engine, prompt, batch, frac in (("vllm", 1024, 9, None), ("sglang", 512, 18, 0.92)):
        r = api.run("memory", {**base, "engine": engine, "max-model-len": 1024, "prompt-len": prompt,
                               "output-len": 1280 - prompt, "batch": batch, "gpu-memory-utilization": frac})
        assert r["fits"] and 0 < r["max_concurrency"] < batch, engine  # the pool would have been short
        assert not any("run at once" in w["en"] for w in r["warnings"]), engine
    # but a pool with no room at all is still said not to serve (SGLang's default leaves this 70B none)
    # (of 1,024 tokens, the length counted), and the length warning then offers no longer limit: it would not help
    empty = api.run("memory", {**base, "engine": "sglang", "max-model-len": 1024, "prompt-len": 512, "output-len": 768})
    assert empty["fits"] and empty["max_concurrency"] == 0
    pool = [w for w in empty["warnings"] if "has no room for one sequence of 1,024 tokens" in w["en"]]
    assert len(pool) == 1 and "does not serve" in pool[0]["en"] and "无法提供服务" in pool[0]["zh"]
    length = [w for w in empty["warnings"] if "Max model length of 1,024" in w["en"]]
    assert len(length) == 1 and "SGLang refuses such requests" in length[0]["en"]
    assert "at least" not in length[0]["en"] and "至少" not in length[0]["zh"]
    assert length[0]["en"].endswith("counted at 1,024 tokens.") and length[0]["zh"].endswith("token 计。")
    served = api.run("memory", {**base, "engine": "vllm", "max-model-len": 1024, "prompt-len": 512, "output-len": 768,
                                "batch": 9})
    assert any("run at once" in w["en"] for w in served["warnings"])  # vLLM serves these, cut at 1,024
    beyond = capped_warning("vllm", 200_000, 256)
    assert "Shorten the context" in beyond["en"] and "at least" not in beyond["en"]


def test_the_kv_block_size_left_empty_is_the_engines_and_a_bad_one_is_refused():
    """The VRAM calculator's "KV block size" is empty by default: the engine's default for the model and GPU (vLLM 16,
    SGLang pages of 1 and 64 on a B200, TensorRT-LLM 32); a value given replaces it; 0 is refused with a message."""
    base = {"model": "llama-3.1-8b", "gpu": "h100-sxm"}
    assert [f for f in api.fields("memory") if f["name"] == "block-size"][0]["default"] is None
    got = {(e, g): api.run("memory", {**base, "engine": e, "gpu": g})["engine_block_size"]
           for e in ("vllm", "sglang", "trt-llm") for g in ("h100-sxm", "b200")}
    assert got == {("vllm", "h100-sxm"): 16, ("vllm", "b200"): 16, ("sglang", "h100-sxm"): 1, ("sglang", "b200"): 64,
                   ("trt-llm", "h100-sxm"): 32, ("trt-llm", "b200"): 32}
    assert api.run("memory", {**base, "engine": "sglang", "block-size": 16})["engine_block_size"] == 16
    # SGLang's sliding-window pool shares the full pool's pages: gpt-oss-120b on a B200 (pages of 64 by default) with
    # 100 + 100 tokens holds its prompt and output plus a page for the next decode there, 264 slots; with the page
    # size set to 32, which its B200 backend (trtllm_mha) takes, 232; a page of 1 it does not take becomes 64, with a
    # warning. The window pool binds here, so the concurrency follows the page size that runs
    for block, held, used in ((None, 264, 64), (32, 232, 32), (1, 264, 64)):
        r = api.run("memory", {"model": "gpt-oss-120b", "gpu": "b200", "engine": "sglang", "weights": "mxfp4-experts",
                                "prompt-len": 100, "output-len": 100, "block-size": block})
        assert r["engine_block_size"] == used and r["max_concurrency"] == r["engine_swa_pool_tokens"] // held > 0, block
        changed = [w for w in r["warnings"] if "changes it to 64" in w["en"]]
        assert len(changed) == (block == 1), block
    # on an H100 (fa3, pages of any size) a page of 1 is kept
    h100 = api.run("memory", {"model": "gpt-oss-120b", "gpu": "h100-sxm", "engine": "sglang", "weights": "mxfp4-experts",
                              "prompt-len": 100, "output-len": 100, "block-size": 1})
    assert h100["engine_block_size"] == 1 and not any("changes it" in w["en"] for w in h100["warnings"])
    with pytest.raises(ValueError, match="block-size"):
        api.run("memory", {**base, "block-size": 0})
