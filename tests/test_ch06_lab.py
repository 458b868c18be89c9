"""The chapter 6 lab (labs/ch06_kv_cache.py) on the CPU: --quick runs end to end and its data carries provenance
and calc's predictions; the lab's three caches compute what Hugging Face computes; the paged cache shares
prefix blocks without corrupting them; the fragmentation replay gives the numbers a hand computation gives;
--help, bad arguments and --plot-only behave as documented; committed figures are what the data renders to.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
import time
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")
pytest.importorskip("matplotlib")

ROOT = Path(__file__).resolve().parent.parent
LABS = ROOT / "labs"
sys.path.insert(0, str(LABS))

import ch06_kv_cache as ch06  # noqa: E402
import common  # noqa: E402

FIGURES = {"kv-memory", "decode-step", "fragmentation", "prefix", "kv-quant"}
CFG = common.QUICK_CONFIG


@pytest.fixture(scope="module")
def quick06(tmp_path_factory):
    out = tmp_path_factory.mktemp("ch06")
    rc = ch06.main(["--quick", "--out", str(out)])
    return rc, json.loads((out / "data" / "ch06-cpu.json").read_text()), out


def test_quick_run_data_and_provenance(quick06):
    rc, data, _ = quick06
    assert rc == 0 and data["status"] == "complete"
    prov = data["provenance"]
    assert prov["lab"] == ch06.LAB and prov["command"].startswith("python labs/ch06_kv_cache.py --quick --out ")
    assert prov["device"]["kind"] == "cpu" and prov["calc_gpu_key"] is None and prov["datasheet"] is None
    assert prov["git"]["source_sha256"] == common.source_sha256()
    assert prov["model"]["calc_params"]["config"]["hidden_size"] == CFG["hidden_size"]
    assert prov["settings"]["workload"]["source"].startswith("https://huggingface.co/datasets/")
    points = data["points"]
    assert not [p for p in points if p.get("error") or p.get("oom") or p.get("skipped")]
    assert {p["kind"] for p in points} == {"fragmentation", "check", "decode", "quant", "prefix", "memory"}
    check = next(p for p in points if p["kind"] == "check")
    assert check["rel_error"] < 0.02 and check["same_argmax"]
    settings = prov["settings"]
    decode = [p for p in points if p["kind"] == "decode"]
    assert sorted(p["context"] for p in decode) == sorted(settings["contexts"])
    per_token = 2 * CFG["num_hidden_layers"] * CFG["num_key_value_heads"] * CFG["head_dim"] * 2
    for p in decode:
        assert set(p["by_cache"]) == set(ch06.CACHES) and p["predicted"] is None  # CPU: calc models GPU timings only
        slots = p["context"] + settings["warmup"] + settings["steps"]
        for m in p["by_cache"].values():
            assert m["step_s"]["n"] == settings["steps"] and m["step_s"]["median"] > 0
        # the cache sizes: contiguous = exactly the formula for the slots it was sized for; FP8 half of that;
        # paged = whole blocks of 16 for the tokens written; dynamic = the tokens written
        written = slots  # decode step i writes position context + i
        assert p["by_cache"]["contiguous"]["cache_bytes"] == per_token * slots
        assert p["by_cache"]["contiguous-fp8"]["cache_bytes"] == per_token * slots // 2
        assert p["by_cache"]["paged"]["cache_bytes"] == per_token * math.ceil(written / 16) * 16
        assert p["by_cache"]["dynamic"]["cache_bytes"] == per_token * written


def test_memory_points_match_calc(quick06):
    """The KV tensors Hugging Face keeps are what calc's formula says, for GQA and the MHA variant."""
    _, data, _ = quick06
    mem = [p for p in data["points"] if p["kind"] == "memory"]
    assert {p["shape"] for p in mem} == {"gqa", "mha"}
    for p in mem:
        heads = CFG["num_key_value_heads"] if p["shape"] == "gqa" else CFG["num_attention_heads"]
        exact = 2 * CFG["num_hidden_layers"] * heads * CFG["head_dim"] * 2 * p["batch"] * p["context"]
        assert p["kv_cache_tensor_bytes"] == exact == p["predicted"]["kv_cache_bytes"]


def test_quant_and_prefix_points(quick06):
    _, data, _ = quick06
    quant = {p["kv_dtype"]: p for p in data["points"] if p["kind"] == "quant"}
    assert set(quant) == {"fp8", "int8"}
    for p in quant.values():
        assert p["cache_bytes"] < 0.6 * p["cache_bytes_bf16"]  # 8-bit values (+ INT8's per-token scales)
        assert 0 < p["rel_error_median"] < 0.1 and 0 <= p["top1_agreement"] <= 1
        assert p["predicted"]["kv_bytes_per_token"] * 2 == p["predicted"]["kv_bytes_per_token_bf16"]
    for p in (p for p in data["points"] if p["kind"] == "prefix"):
        assert p["rel_error"] < 0.02  # reusing the prefix's blocks gives the logits of a full prefill
        assert p["reused_tokens"] == p["prefix_len"] // 16 * 16 and p["prefilled_warm"] == p["prefix_len"] + p["suffix_len"] - p["reused_tokens"]


def test_quick_figures(quick06):
    _, _, out = quick06
    langs = ["zh", "en"] if common.cjk_font() else ["en"]
    assert {f.name for f in (out / "figures").glob("*.svg")} == {f"ch06-cpu-{n}_{lang}.svg" for n in FIGURES for lang in langs}


def test_plot_only_rerenders_and_repredicts(quick06, tmp_path):
    _, data, _ = quick06
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "ch06-cpu.json").write_text(json.dumps(data))
    assert ch06.main(["--plot-only", "--repredict", "--out", str(tmp_path)]) == 0
    assert len(list((tmp_path / "figures").glob("ch06-cpu-*_en.svg"))) == len(FIGURES)
    again = json.loads((tmp_path / "data" / "ch06-cpu.json").read_text())
    assert [p.get("predicted") for p in again["points"]] == [p.get("predicted") for p in data["points"]]
    assert ch06.main(["--plot-only", "--out", str(tmp_path / "empty")]) == 2


def test_prefix_timer_leaves_out_building_the_pool(monkeypatch):
    """The "no reuse" TTFT times the prefill only: building a new block pool (torch.zeros, ~2x the KV) happens
    before the timer starts. A pool that takes 1 s to build must not show up in either timing. (The 40-token prefill of
    this 2-layer model takes milliseconds; on the loaded 2-core CI machine one took 0.35 s, so the margin is wide.)"""
    model = fp32_model()
    real = ch06.make_cache
    build_s = 1.0

    def slow_make_cache(kind, *args, **kwargs):
        if kind == "paged":
            time.sleep(build_s)
        return real(kind, *args, **kwargs)

    monkeypatch.setattr(ch06, "make_cache", slow_make_cache)
    point = ch06.measure_prefix(model, 32, 8, 2, torch.device("cpu"), 16)
    assert point["ttft_cold_s"]["max"] < build_s and point["ttft_warm_s"]["max"] < build_s
    assert "before the timer" in point["timed"] and point["rel_error"] < 1e-5


def test_figures_say_what_they_show(quick06):
    """Decode: p10-p90 bars; fragmentation: the band names the paper's three Orca baselines and the footer names
    no device and no model (the replay is arithmetic); KV memory: tensor bytes, plus the allocator's delta when a
    GPU run recorded it."""
    import matplotlib.pyplot as plt
    from matplotlib.container import ErrorbarContainer

    _, data, _ = quick06
    figures = ch06.plot(data, "en")
    fig, _ = figures["decode-step"]
    assert sum(isinstance(c, ErrorbarContainer) for c in fig.axes[0].containers) == len(ch06.CACHES)
    fig, note = figures["fragmentation"]
    labels = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert any("Orca" in label and "Oracle 38.2%" in label for label in labels)
    assert data["provenance"]["model"]["label"] not in note and "CPU" not in note and "max_len = " in note
    gpu = json.loads(json.dumps(data))
    for p in gpu["points"]:
        if p["kind"] == "memory":
            p["allocated_delta_bytes"] = p["kv_cache_tensor_bytes"] + 4096
    fig, _ = ch06.plot(gpu, "en")["kv-memory"]
    labels = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert sum("allocator delta" in label for label in labels) == 2 and any("shape × element size" in label for label in labels)
    plt.close("all")


# --- the lab's caches against Hugging Face ---------------------------------------------------------------


def fp32_model(model_type="llama"):
    torch.manual_seed(0)
    config = dict(CFG, model_type=model_type)
    if model_type == "qwen2":  # biases on q/k/v, plain RoPE, untied embeddings
        config.pop("rope_scaling")
        config["tie_word_embeddings"] = False
    model = common.build_model(config, torch.device("cpu"), torch.float32)
    for p in model.parameters():  # non-trivial norms and biases, so a dropped term shows
        if p.dim() == 1:
            p.data.normal_(0, 0.1)
    return model


@pytest.mark.parametrize("model_type", ["llama", "qwen2"])
@pytest.mark.parametrize("kind", ["dynamic", "contiguous", "paged"])
def test_caches_match_hugging_face_logits(kind, model_type):
    """Prefill 37 tokens (three blocks, the last one partial) and decode 6 steps: the lab's loop with each cache
    gives Hugging Face's logits (its own forward with DynamicCache)."""
    model = fp32_model(model_type)
    with torch.inference_mode():
        check = ch06.check_against_hf(model, kind, torch.device("cpu"), prompt_len=37, steps=6)
    assert check["rel_error"] < 1e-5 and check["same_argmax"]


def test_paged_cache_with_small_blocks_and_a_batch():
    """Block size 4 and two requests: every sequence's blocks are its own, and logits match the contiguous cache."""
    model = fp32_model()
    prompt = torch.randint(0, CFG["vocab_size"], (2, 11))
    with torch.inference_mode():
        ref = ch06.KVDecoder(model, ch06.make_cache("contiguous", model, 2, 20)).generate(prompt, 5)
        paged = ch06.make_cache("paged", model, 2, 20, block_size=4)
        mine = ch06.KVDecoder(model, paged).generate(prompt, 5)
    torch.testing.assert_close(mine, ref, rtol=1e-5, atol=1e-5)
    assert [len(t) for t in paged.tables] == [4, 4]  # 16 tokens in blocks of 4
    assert not set(paged.tables[0]) & set(paged.tables[1])
    assert paged.used_blocks() == 8


def test_prefix_blocks_are_shared_not_overwritten():
    """A second request reuses the first one's full prefix blocks: the shared blocks keep their contents, the
    partial last block of the prefix is recomputed into a block of the new request, and logits are exact."""
    model = fp32_model()
    prefix = torch.randint(0, CFG["vocab_size"], (1, 10))  # two full blocks of 4, one partial
    suffix = torch.randint(0, CFG["vocab_size"], (1, 3))
    with torch.inference_mode():
        cold = ch06.KVDecoder(model, ch06.make_cache("paged", model, 1, 13, block_size=4)).forward(
            torch.cat([prefix, suffix], 1), 0)
        cache = ch06.make_cache("paged", model, 1, 13, block_size=4, num_blocks=10)
        ch06.KVDecoder(model, cache).forward(prefix, 0)
        owner = list(cache.tables[0])
        before = cache.k[0][owner[:2]].clone()
        for _ in range(2):  # twice: the second reuse must not hand out a block the first one freed wrongly
            cached = cache.share_prefix(owner, 10)
            warm = ch06.KVDecoder(model, cache).forward(torch.cat([prefix, suffix], 1)[:, cached:], cached)
            assert cached == 8 and cache.tables[0][:2] == owner[:2]
            assert not set(cache.tables[0][2:]) & set(owner)
            torch.testing.assert_close(warm, cold, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(cache.k[0][owner[:2]], before, rtol=0, atol=0)


# --- the fragmentation replay, by hand ----------------------------------------------------------------------


def test_fragmentation_replay_by_hand():
    """One request, prompt 3, output 2, max_len 8, blocks of 4. After its 1st and 2nd generated token it holds
    4 and 5 tokens: 9 token-steps. Reserved: max 8 + 8 = 16; exact 5 + 5 = 10; paged 4 + 8 = 12."""
    requests = [(3, 2)]
    assert ch06.replay_fragmentation(requests, "max", 8, 4) == {
        "stored_token_steps": 9, "reserved_slot_steps": 16, "utilization_pct": 56.25}
    assert ch06.replay_fragmentation(requests, "exact", 8, 4)["utilization_pct"] == 90.0
    assert ch06.replay_fragmentation(requests, "paged", 8, 4)["utilization_pct"] == 75.0
    # A second request (1, 1) holds 2 tokens for one step: max adds 8, exact adds 2, paged adds 4
    two = ch06.replay_fragmentation([(3, 2), (1, 1)], "paged", 8, 4)
    assert (two["stored_token_steps"], two["reserved_slot_steps"]) == (11, 16)
    with pytest.raises(ValueError, match="exceeds max_len"):
        ch06.replay_fragmentation([(7, 2)], "max", 8, 4)


def test_fragmentation_on_the_burstgpt_sample(quick06):
    """On the real sample: paged wastes less than one block per request, reserve-max wastes most of its memory."""
    _, data, _ = quick06
    util = {p["allocator"]: p["utilization_pct"] for p in data["points"] if p["kind"] == "fragmentation"}
    assert util["max"] < util["exact"] < util["paged"] <= 100
    assert util["paged"] > 98 and util["max"] < 40
    assert len(ch06.BURSTGPT_SAMPLE) == 38 and all(o > 0 for _, o in ch06.BURSTGPT_SAMPLE)


# --- command line -------------------------------------------------------------------------------------------


def test_help():
    proc = subprocess.run([sys.executable, str(LABS / "ch06_kv_cache.py"), "--help"], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0
    for option in ("--quick", "--out", "--plot-only", "--parts", "--caches", "--memory-points"):
        assert option in proc.stdout


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--parts", "memory,vibes"], "unknown part(s) vibes"),
        (["--caches", "paged,ramdisk"], "unknown cache(s) ramdisk"),
        (["--memory-points", "4096"], "batch x context pairs"),
        (["--contexts", "0"], "positive integers"),
        (["--steps", "0"], "must be >= 1"),
        (["--max-len", "1024"], "shorter than the longest replayed request"),
        (["--repredict"], "goes with --plot-only"),
    ],
)
def test_bad_arguments_exit_nonzero_with_a_message(argv, message, capsys):
    with pytest.raises(SystemExit) as exc:
        ch06.main(["--quick", *argv])
    assert exc.value.code == 2
    assert message in capsys.readouterr().err


def test_a_paged_mismatch_stops_the_lab_and_keeps_the_data(tmp_path, monkeypatch):
    monkeypatch.setattr(ch06, "check_against_hf", lambda *a, **k: {"rel_error": 0.5, "same_argmax": False})
    with pytest.raises(common.LabAbort):
        ch06.main(["--quick", "--out", str(tmp_path)])
    data = common.load_data(tmp_path / "data" / "ch06-cpu.json")
    assert data["status"].startswith("failed: LabAbort")
    assert "decode" not in {p["kind"] for p in data["points"]}


def test_check_model_is_a_two_layer_fp32_copy_where_a_correct_cache_is_far_inside_the_tolerance():
    """The pre-timing check runs on 2 fp32 layers of the measured architecture (no bf16 rounding noise): a correct
    cache lands 100× inside the tolerance (a wrong one stops the lab: test_a_paged_mismatch_stops_the_lab...)."""
    model = common.build_model(dict(CFG), torch.device("cpu"), torch.bfloat16)
    small = ch06.check_model(model, torch.device("cpu"))
    assert small.config.num_hidden_layers == 2 and next(small.parameters()).dtype == torch.float32
    assert small.config.hidden_size == model.config.hidden_size
    with torch.inference_mode():
        good = ch06.check_against_hf(small, "paged", torch.device("cpu"), prompt_len=37, steps=6)
    assert good["rel_error"] < ch06.CHECK_TOLERANCE / 100 and good["same_argmax"]
