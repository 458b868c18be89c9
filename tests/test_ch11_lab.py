"""The chapter 11 lab (labs/ch11_attention_moe.py) on the CPU: --quick runs end to end and its data carries
provenance; every attention backend is either measured or recorded as unsupported (never silently replaced), and
the fused path agrees with the naive one; the score-matrix bytes follow the stated formula; the MoE layer computes
what a per-token reference computes; the expert counts follow calc's 1 - (1 - k/E)^b; an OOM is recorded and the
sweep goes on; --help, bad arguments and --plot-only behave as documented; committed figures are what the data
renders to.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")
pytest.importorskip("matplotlib")

ROOT = Path(__file__).resolve().parent.parent
LABS = ROOT / "labs"
sys.path.insert(0, str(LABS))
sys.path.insert(0, str(ROOT))

import ch11_attention_moe as ch11  # noqa: E402
import common  # noqa: E402

from calc import perf, registry  # noqa: E402

FIGURES = {"attention", "moe-throughput", "moe-bytes", "moe-load"}


@pytest.fixture(scope="module")
def quick11(tmp_path_factory):
    out = tmp_path_factory.mktemp("ch11")
    rc = ch11.main(["--quick", "--out", str(out)])
    return rc, json.loads((out / "data" / "ch11-cpu.json").read_text()), out


def test_quick_run_data_and_provenance(quick11):
    rc, data, _ = quick11
    assert rc == 0 and data["status"] == "complete"
    prov = data["provenance"]
    assert prov["lab"] == ch11.LAB and prov["command"].startswith("python labs/ch11_attention_moe.py --quick --out ")
    assert prov["device"]["kind"] == "cpu" and prov["calc_gpu_key"] is None
    assert prov["git"]["source_sha256"] == common.source_sha256()
    assert set(prov["sdpa_backends_in_build"]) <= set(ch11.BACKENDS)
    points = data["points"]
    assert not [p for p in points if p.get("error") or p.get("oom") or p.get("skipped")]
    assert {p["kind"] for p in points} == {"attention", "moe-time", "moe-bytes", "moe-load"}


def test_attention_backends_measured_or_unsupported(quick11):
    _, data, _ = quick11
    att = [p for p in data["points"] if p["kind"] == "attention"]
    s = data["provenance"]["settings"]
    assert sorted(p["n"] for p in att if p["shape"] == "prefill") == sorted(s["prefill_lens"])
    assert sorted(p["n"] for p in att if p["shape"] == "decode") == sorted(
        s["decode_lens"] * len(s["decode_batches"]))
    assert {p["batch"] for p in att if p["shape"] == "decode"} == set(s["decode_batches"]) and 1 in s["decode_batches"]
    assert s["attn_kv_heads"] < s["attn_heads"] and all(p["kv_heads"] == s["attn_kv_heads"] for p in att)  # GQA
    for p in att:
        assert set(p["by_backend"]) == set(ch11.BACKENDS)
        ran = {n for n, m in p["by_backend"].items() if "time_s" in m}
        assert "math" in ran  # the naive path runs everywhere
        for name, m in p["by_backend"].items():
            assert ("time_s" in m) != ("unsupported" in m or m.get("oom", False)), name
            if "time_s" in m:
                assert m["time_s"]["median"] > 0 and m["allocated_bytes"] >= 0
                assert m["max_abs_diff_vs_first"] < 1e-4  # fp32: exact attention, whichever kernel
                # the profiled call shows the aten op of the backend that was asked for, on the GQA heads
                assert m["ran"] == name and any("scaled_dot_product" in op for op in m["ops"]), (name, m)
                assert m["kv"] in ("enable_gqa", "repeated")
        assert p["default_backend"]  # what PyTorch picks by itself is recorded
        n_q = p["n"] if p["shape"] == "prefill" else 1
        elem, b, kvh = 4, p["batch"], s["attn_kv_heads"]  # --quick runs fp32
        assert p["scores_bytes"] == p["scores_bytes_math"] == b * s["attn_heads"] * n_q * p["n"] * elem  # no upcast
        assert p["qkvo_bytes"] == b * (2 * s["attn_heads"] * n_q + 2 * kvh * p["n"]) * s["attn_head_dim"] * elem
        if p["shape"] == "decode":
            assert p["kv_bytes"] == 2 * b * kvh * p["n"] * s["attn_head_dim"] * elem
            for m in p["by_backend"].values():
                if "time_s" in m:
                    assert m["kv_read_bytes_per_s"] == pytest.approx(p["kv_bytes"] / m["time_s"]["p10"])


def test_a_backend_that_refuses_gqa_runs_on_repeated_kv(monkeypatch):
    """A backend that refuses enable_gqa (torch 2.11's memory-efficient kernel on an H200) is run again on K/V
    repeated to H heads inside the call: recorded as such, with why it refused, the copies in its memory, and the
    backend that really ran. The math path is never retried: it is the reference."""
    import warnings

    real = torch.nn.functional.scaled_dot_product_attention

    def picky(q, k, v, **kw):
        if kw.get("enable_gqa"):
            warnings.warn("For dense input, both fused kernels require query, key and value to have the same num_heads.",
                          stacklevel=2)
            raise RuntimeError("No available kernel. Aborting execution.")
        return real(q, k, v, **kw)

    monkeypatch.setattr(ch11.F, "scaled_dot_product_attention", picky)
    p = ch11.measure_attention("decode", 64, 1, 4, 16, torch.float32, torch.device("cpu"), ["math", "flash"], 2, 0,
                               kv_heads=2)
    assert p["repeated_kv_bytes"] == 2 * 1 * 4 * 64 * 16 * 4
    math, flash = p["by_backend"]["math"], p["by_backend"]["flash"]
    assert "unsupported" in math and "same num_heads" in math["because"][0]
    assert flash["kv"] == "repeated" and flash["ran"] == "flash"
    assert "same num_heads" in flash["native_refused"]["because"][0]
    assert flash["allocated_bytes"] >= p["repeated_kv_bytes"]  # the copies are made inside the measured call


def test_backend_labels_say_what_ran():
    assert ch11.backend_label("flash", [{"ran": "flash", "kv": "enable_gqa"}], "en") == "flash"
    assert ch11.backend_label("efficient", [{"ran": "efficient", "kv": "repeated"}], "en") == (
        "memory-efficient (K/V repeated to H heads first)")
    assert "actually ran: math" in ch11.backend_label("flash", [{"ran": "math"}], "en")
    assert ch11.backend_label("cudnn", [{}], "zh") == "cuDNN"  # data from before these fields: the plain name


def test_attention_bytes_formula():
    """The lab draws calc's counts: calc.memory.attention_scores_bytes / attention_io_bytes."""
    from calc import memory

    assert memory.attention_scores_bytes(2, 3, 5, 7, 2) == 2 * 3 * 5 * 7 * 2
    assert memory.attention_io_bytes(2, 6, 3, 5, 7, 11, 2) == 2 * (2 * 6 * 5 + 2 * 3 * 7) * 11 * 2
    assert memory.attention_scores_bytes(4, 32, 4096, 4096, 2) == 4_294_967_296  # exercise 5 of chapter 11 (H200 shape)
    b = ch11.attention_bytes(batch=2, heads=3, kv_heads=3, n_q=5, n_k=7, head_dim=11, elem=2, math_elem=4)
    assert b == {"scores_bytes": 2 * 3 * 5 * 7 * 2, "scores_bytes_math": 2 * 3 * 5 * 7 * 4,
                 "qkvo_bytes": 2 * 3 * (10 + 14) * 11 * 2, "kv_bytes": 2 * 2 * 3 * 7 * 11 * 2}


def test_math_path_upcast_only_on_cuda_half():
    """The CUDA math path upcasts fp16/bf16 scores to fp32 (unless allowed to reduce in half); a CPU keeps them."""
    assert ch11.math_elem_bytes(torch.bfloat16, torch.device("cpu")) == 2
    assert ch11.math_elem_bytes(torch.float32, torch.device("cuda")) == 4
    assert ch11.math_elem_bytes(torch.bfloat16, torch.device("cuda")) in (2, 4)


def test_moe_layer_built_in_the_target_dtype():
    layer = ch11.MoELayer(hidden=16, expert_width=8, experts=4, top_k=2, shared_width=8, dtype=torch.bfloat16)
    assert {p.dtype for p in layer.parameters()} == {torch.bfloat16}


def test_moe_layer_matches_a_per_token_reference():
    torch.manual_seed(0)
    layer = ch11.MoELayer(hidden=16, expert_width=24, experts=6, top_k=2, shared_width=8)
    x = torch.randn(9, 16)
    with torch.inference_mode():
        out = layer(x)
        weights, chosen = layer.route(x)
        ref = torch.zeros_like(x)
        for t in range(x.shape[0]):
            for slot in range(2):
                e = int(chosen[t, slot])
                h = x[t]
                y = (torch.nn.functional.silu(h @ layer.w_gate[e]) * (h @ layer.w_up[e])) @ layer.w_down[e]
                ref[t] += weights[t, slot] * y
        ref += layer.shared(x)
    assert torch.allclose(out, ref, atol=1e-5)
    assert torch.allclose(weights.sum(-1), torch.ones(9))


def test_expert_counts_follow_calc(quick11):
    """Counted distinct experts per step sit near calc's E * (1 - (1 - k/E)^b); batch 1 touches exactly k."""
    _, data, _ = quick11
    for p in (q for q in data["points"] if q["kind"] == "moe-bytes"):
        m = registry.get_model(p["moe_shape"]["calc_model"])
        assert (p["experts"], p["top_k"]) == (m.num_experts, m.num_experts_per_tok)
        for row in p["by_batch"]:
            predicted = p["experts"] * perf.experts_touched_fraction(m, row["batch"])
            assert row["predicted"]["touched"] == pytest.approx(predicted)
            if row["batch"] == 1:
                assert row["random"]["touched_mean"] == p["top_k"]
            assert row["random"]["touched_mean"] == pytest.approx(predicted, rel=0.35)
            assert row["skewed"]["touched_mean"] <= row["random"]["touched_mean"] + 1


def test_load_histogram_counts_every_choice(quick11):
    _, data, _ = quick11
    for p in (q for q in data["points"] if q["kind"] == "moe-load"):
        for routing in ch11.ROUTINGS:
            assert sum(p[routing]["per_expert"]) == p["tokens"] * p["moe_shape"]["top_k"]
        assert p["skewed"]["max_over_mean"] >= p["random"]["max_over_mean"]


def test_moe_time_compares_equal_active_parameters(quick11):
    _, data, _ = quick11
    for p in (q for q in data["points"] if q["kind"] == "moe-time"):
        sh = p["moe_shape"]
        router = sh["hidden"] * sh["experts"]
        assert p["params_active"] - router == p["params_dense"]
        for row in p["by_tokens"]:
            assert row["moe"]["tokens_per_s"] > 0 and row["dense"]["tokens_per_s"] > 0
            for name in ("moe", "dense"):  # the undisturbed (p10) speed is reported beside the median
                assert row[name]["time_s"]["n"] == data["provenance"]["settings"]["moe_repeats"]
                assert row[name]["tokens_per_s_p10"] >= row[name]["tokens_per_s"] >= row[name]["tokens_per_s_p90"]
            assert 1 <= row["experts_touched"] <= sh["experts"]


def test_an_oom_is_recorded_and_the_sweep_goes_on(tmp_path, monkeypatch):
    calls = {"n": 0}
    real = ch11.measure_attention

    def flaky(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 1:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 64 GiB")
        return real(*args, **kwargs)

    monkeypatch.setattr(ch11, "measure_attention", flaky)
    assert ch11.main(["--quick", "--parts", "attention", "--out", str(tmp_path)]) == 0
    data = common.load_data(tmp_path / "data" / "ch11-cpu.json")
    att = [p for p in data["points"] if p["kind"] == "attention"]
    assert att[0]["oom"] is True and "out of memory" in att[0]["error"]
    assert all(common.succeeded(p) for p in att[1:]) and len(att) == 4  # 2 prefill + 2 decode lengths at batch 1


def test_quick_figures(quick11):
    _, _, out = quick11
    langs = ["zh", "en"] if common.cjk_font() else ["en"]
    assert {f.name for f in (out / "figures").glob("*.svg")} == {f"ch11-cpu-{n}_{lang}.svg" for n in FIGURES for lang in langs}


def test_plot_only_rerenders(quick11, tmp_path):
    _, data, _ = quick11
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "ch11-cpu.json").write_text(json.dumps(data))
    assert ch11.main(["--plot-only", "--out", str(tmp_path)]) == 0
    assert len(list((tmp_path / "figures").glob("ch11-cpu-*_en.svg"))) == len(FIGURES)
    assert ch11.main(["--plot-only", "--out", str(tmp_path / "empty")]) == 2


def test_help():
    proc = subprocess.run([sys.executable, str(LABS / "ch11_attention_moe.py"), "--help"], capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0
    for option in ("--quick", "--out", "--plot-only", "--parts", "--backends", "--moe-shapes", "--skew"):
        assert option in proc.stdout


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--parts", "attention,vibes"], "unknown or empty vibes"),
        (["--backends", "flash,magic"], "unknown or empty magic"),
        (["--moe-shapes", "gpt5"], "unknown or empty gpt5"),
        (["--prefill-lens", "0"], "positive integers"),
        (["--repeats", "0"], "must be >= 1"),
        (["--skew", "-1"], "--skew >= 0"),
    ],
)
def test_bad_arguments_exit_nonzero_with_a_message(argv, message, capsys):
    with pytest.raises(SystemExit) as exc:
        ch11.main(["--quick", *argv])
    assert exc.value.code == 2
    assert message in capsys.readouterr().err


@pytest.mark.parametrize("run", ["ch11-cpu", "ch11-h200"])
def test_committed_figures_are_what_the_data_renders_to(run, tmp_path):
    """The committed data files (never edited) render to the committed figures, in both languages."""
    assert common.cjk_font(), "Chinese figures need a CJK font: apt-get install fonts-noto-cjk"
    base = ROOT / "docs" / "assets" / "labs" / ch11.LAB
    data = common.load_data(base / "data" / f"{run}.json")
    written = common.render_all(ch11.plot, data, tmp_path, run)
    assert {p.name for p in written} == {f"{run}-{n}_{lang}.svg" for n in FIGURES for lang in ("zh", "en")}
    for p in written:
        assert p.read_bytes() == (base / "figures" / p.name).read_bytes(), f"{p.name} is stale: rerun --plot-only"
