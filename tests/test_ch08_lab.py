"""The chapter 8 lab (labs/ch08_quantization.py) on the CPU: the quantizers meet error bounds derived by hand,
INT4 packing round-trips, GPTQ reduces to RTN when the inputs are uncorrelated and beats it when they are not,
the weight-only kernels compute what their dequantized weights say, --quick runs end to end with provenance,
--help, bad arguments and --plot-only behave as documented, and committed figures are what the data renders to.
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

import ch08_quantization as ch08  # noqa: E402
import common  # noqa: E402

FIGURES = {"quality", "speed"}
METHODS = {m[0] for m in ch08.QUALITY_METHODS}


def weights(n=64, k=256, seed=0):
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(n, k, generator=g) * 0.02
    w[3, 7] = 0.5  # one outlier, as trained matrices have
    return w


# --- quantizers: bounds derived by hand ---------------------------------------------------------------------


@pytest.mark.parametrize("bits", [8, 4, 3])
@pytest.mark.parametrize("granularity", ["tensor", "channel", "group"])
def test_rtn_error_is_at_most_half_a_step(bits, granularity):
    """scale = absmax/qmax per group, so every w lies in [-qmax·s, qmax·s]: nothing is clipped, and rounding to the
    nearest multiple of s errs by at most s/2."""
    w = weights()
    q, scale = ch08.quantize_rtn(w, bits, granularity, group_size=32)
    qmax = 2 ** (bits - 1) - 1
    assert q.dtype == torch.int8 and int(q.min()) >= -qmax - 1 and int(q.max()) <= qmax
    err = (ch08._groups(w, granularity, 32) - q.float() * scale).abs()
    assert bool((err <= scale / 2 + 1e-7).all())
    # the largest |w| of each group is represented exactly (it maps to ±qmax)
    wg = ch08._groups(w, granularity, 32)
    idx = wg.abs().argmax(dim=-1, keepdim=True)
    assert torch.allclose(wg.gather(-1, idx), (q.float() * scale).gather(-1, idx), atol=1e-7)
    assert int(q.abs().amax()) == qmax


def test_finer_scales_never_have_larger_steps():
    """A group's absmax is at most its row's, a row's at most the tensor's: the step (and the error bound) shrinks
    from per-tensor to per-channel to per-group, and the outlier only widens the steps of its own group."""
    w = weights()
    _, s_t = ch08.quantize_rtn(w, 4, "tensor")
    _, s_c = ch08.quantize_rtn(w, 4, "channel")
    _, s_g = ch08.quantize_rtn(w, 4, "group", group_size=32)
    assert float(s_c.max()) <= float(s_t) and bool((s_g <= s_c + 1e-12).all())
    assert float(s_t) == pytest.approx(0.5 / 7)  # the outlier sets the step for every weight
    assert int((s_g > 0.5 / 8).sum()) == 1  # ...but per group only for its own 32 weights
    errs = {g: (ch08.fake_quant_rtn(w, 4, g, 32) - w).pow(2).mean() for g in ("tensor", "channel", "group")}
    assert errs["group"] < errs["channel"] < errs["tensor"]


def test_group_size_must_divide_the_input_dimension():
    with pytest.raises(ValueError, match="not a multiple"):
        ch08.quantize_rtn(torch.zeros(4, 100), 4, "group", group_size=32)


def test_fp8_relative_error_is_at_most_one_sixteenth():
    """E4M3 keeps 3 mantissa bits: a normal number (scaled |x| >= 2^-6) rounds with relative error <= 2^-4; the
    largest |w| maps to 448 exactly."""
    w = weights()
    wq = ch08.fake_quant_fp8(w)
    scale = w.abs().max() / ch08.FP8_E4M3_MAX
    normal = (w / scale).abs() >= 2 ** -6
    rel = ((wq - w).abs() / w.abs())[normal]
    assert float(rel.max()) <= 2 ** -4 + 1e-6
    assert float(wq.abs().max()) == pytest.approx(float(w.abs().max()), rel=1e-6)


def test_int4_packing_round_trips_and_puts_the_even_column_high():
    q = torch.randint(0, 16, (8, 32), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    p = ch08.pack_int4(q)
    assert p.shape == (8, 16) and p.dtype == torch.uint8
    assert torch.equal(ch08.unpack_int4(p), q)
    assert int(ch08.pack_int4(torch.tensor([[0xA, 0x3]]))[0, 0]) == 0xA3
    with pytest.raises(ValueError, match="even"):
        ch08.pack_int4(torch.zeros(2, 3, dtype=torch.uint8))
    with pytest.raises(ValueError, match="0..15"):
        ch08.pack_int4(torch.full((2, 2), 16, dtype=torch.uint8))


def test_tinygemm_int4_layout_error_bound():
    """w ≈ (q - 8)·scale + zero with scale = (max - min)/15 per group: q in 0..15 and |error| <= scale/2."""
    w = weights()
    q, scale, zero = ch08.quantize_int4_asym(w, 32)
    assert int(q.max()) <= 15
    g = q.reshape(64, 8, 32).float()
    deq = (g - 8) * scale[..., None] + zero[..., None]
    err = (deq - w.reshape(64, 8, 32)).abs()
    assert bool((err <= scale[..., None] / 2 + 1e-6).all())


# --- GPTQ -----------------------------------------------------------------------------------------------------


def test_gptq_with_uncorrelated_inputs_is_rtn():
    """With H = c·I the inverse Hessian is diagonal: no error is passed on to later columns, so GPTQ rounds every
    weight exactly as RTN does (same per-group scales)."""
    w = weights()
    h = 3.0 * torch.eye(w.shape[1])
    assert torch.allclose(ch08.gptq_quantize(w, h, 4, 32), ch08.fake_quant_rtn(w, 4, "group", 32), atol=1e-7)


def test_gptq_beats_rtn_on_correlated_inputs():
    """Inputs with strongly correlated features (a few latent factors): GPTQ's output error ||X(W - Ŵ)ᵀ|| on the
    calibration inputs is well below RTN's, at the same bits and group size. This is what it optimizes."""
    g = torch.Generator().manual_seed(1)
    k, n, tokens = 128, 64, 2048
    latent = torch.randn(tokens, 8, generator=g) @ torch.randn(8, k, generator=g)
    x = latent + 0.1 * torch.randn(tokens, k, generator=g)
    w = torch.randn(n, k, generator=g) * 0.02
    h = 2 * x.T @ x / tokens
    for bits in (4, 3):
        rtn = ch08.fake_quant_rtn(w, bits, "group", 32)
        gptq = ch08.gptq_quantize(w, h, bits, 32)
        e_rtn = (x @ (w - rtn).T).pow(2).mean()
        e_gptq = (x @ (w - gptq).T).pow(2).mean()
        assert e_gptq < 0.7 * e_rtn, (bits, float(e_gptq), float(e_rtn))
        # still a bits-wide format: each row of each group holds at most 2^bits distinct values
        groups = gptq.reshape(n, k // 32, 32)
        assert max(len(torch.unique(groups[i, j])) for i in range(n) for j in range(k // 32)) <= 2 ** bits


# --- the speed part's kernels on the CPU ------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["bf16", "int8", "int4"])
def test_cpu_kernels_compute_their_dequantized_weights(fmt):
    if ch08.speed_availability(fmt, torch.device("cpu")):
        pytest.skip(ch08.speed_availability(fmt, torch.device("cpu")))
    f = ch08.Format(fmt, torch.device("cpu"), 128)
    assert ch08.check_format(f, torch.device("cpu"))["rel_error"] < 0.02


def test_stored_bytes_match_the_formats():
    w = weights(256, 512)
    cpu = torch.device("cpu")
    assert ch08.stored_bytes(ch08.Format("bf16", cpu, 128).prepare(w)) == 256 * 512 * 2
    assert ch08.stored_bytes(ch08.Format("int8", cpu, 128).prepare(w)) == 256 * 512 + 256 * 2  # + a bf16 scale per row
    if not ch08.speed_availability("int4", cpu):
        # tinygemm: half a byte per weight + a bf16 scale and zero per group of 128
        assert ch08.stored_bytes(ch08.Format("int4", cpu, 128).prepare(w)) == 256 * 512 // 2 + 256 * 4 * 2 * 2


def test_roofline_prediction_uses_calc_numbers():
    from calc import perf, registry

    gpu = registry.get_gpu("h100-sxm")
    p = ch08.predict_speed(10 ** 9, 5 * 10 ** 8, 1, "int4", "h100-sxm")
    assert p["bound"] == "memory"
    assert p["seconds"] == pytest.approx(1e9 / (gpu.memory_bandwidth_bytes_per_s * perf.MEMORY_EFFICIENCY))
    big = ch08.predict_speed(10 ** 9, 5 * 10 ** 8, 8192, "fp8", "h100-sxm")
    assert big["bound"] == "compute"
    assert big["seconds"] == pytest.approx(2 * 8192 * 5e8 / (gpu.peak_flops("fp8") * perf.COMPUTE_EFFICIENCY))
    assert ch08.predict_speed(1, 1, 1, "bf16", None) is None
    assert ch08.calc_weight_bytes(128, "int4") == pytest.approx(128 * (4 + 20 / 128) / 8)


def test_int8_weight_only_is_skipped_on_cuda_unless_asked():
    """torch's CUDA _weight_int8pack_mm is a reference kernel (int8mm.cu); on an H200 it ran past the hard stop."""
    cuda = torch.device("cuda")  # a device object only: speed_availability decides int8 without touching a GPU
    reason = ch08.speed_availability("int8", cuda)
    assert reason and reason.startswith("skipped on CUDA") and "_int_mm" in reason
    assert ch08.speed_availability("int8", torch.device("cpu")) is None


def test_every_token_count_respects_the_time_budget():
    """Past the deadline no pass is timed: each token count is recorded as skipped with the one-layer estimate,
    and the figure draws those as 'not run'."""
    import time

    config = {"hidden_size": 128, "intermediate_size": 256, "num_attention_heads": 2, "num_key_value_heads": 1,
              "head_dim": 64}
    args = ch08.parse_args(["--quick"])
    cpu = torch.device("cpu")
    p = ch08.measure_speed("bf16", config, 2, [1, 4], args, cpu, None, deadline=time.monotonic())
    assert set(p["by_tokens"]) == {"1", "4"}
    for bt in p["by_tokens"].values():
        assert "time_s" not in bt and bt["skipped"].startswith("time budget") and bt["layer_probe_s"] > 0
    free = ch08.measure_speed("bf16", config, 2, [1, 4], args, cpu, None, deadline=time.monotonic() + 600)
    assert all(bt["time_s"]["n"] == args.repeats for bt in free["by_tokens"].values())
    data = common.load_data(ROOT / "docs" / "assets" / "labs" / ch08.LAB / "data" / "ch08-cpu.json")
    bf16 = next(q for q in data["points"] if q.get("format") == "bf16")
    bf16["by_tokens"]["1"] = p["by_tokens"]["1"]  # one token count skipped by the budget, the others measured
    figs = ch08.plot(data, "en")
    assert "speed" in figs


# --- the lab end to end -----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def quick08(tmp_path_factory):
    out = tmp_path_factory.mktemp("ch08")
    cache = tmp_path_factory.mktemp("ch08-cache")
    rc = ch08.main(["--quick", "--out", str(out), "--cache-dir", str(cache)])
    return rc, json.loads((out / "data" / "ch08-cpu.json").read_text()), out, cache


def test_quick_run_data_and_provenance(quick08):
    rc, data, out, cache = quick08
    assert rc == 0 and data["status"] == "complete"
    prov = data["provenance"]
    assert prov["lab"] == ch08.LAB and prov["command"].startswith("python labs/ch08_quantization.py --quick --out ")
    assert prov["device"]["kind"] == "cpu" and prov["calc_gpu_key"] is None
    assert prov["git"]["source_sha256"] == common.source_sha256()
    q = next(p for p in data["points"] if p["kind"] == "quality")
    assert {m["method"] for m in q["methods"]} == METHODS
    rows = {m["method"]: m for m in q["methods"]}
    assert rows["bf16"]["kl_vs_bf16"] == 0 and all(r["kl_vs_bf16"] >= 0 for r in rows.values())
    assert all(r["perplexity"] > 1 for r in rows.values())
    # the corpus is recorded file by file, with hashes; the model was trained and cached
    assert q["corpus"]["train"] and all(len(f["sha256"]) == 64 for f in q["corpus"]["train"] + q["corpus"]["heldout"])
    assert not {f["file"] for f in q["corpus"]["train"]} & {f["file"] for f in q["corpus"]["heldout"]}
    assert q["train"]["from_cache"] is False and list(Path(cache).glob("tinylm-*.pt"))
    assert rows["int4-group"]["bits_per_weight"] == pytest.approx(4 + 16 / 32)
    speed = {p["format"]: p for p in data["points"] if p["kind"] == "speed"}
    assert set(speed) == set(ch08.SPEED_FORMATS)
    assert "slow reference path" in speed["fp8"]["skipped"] and speed["fp8"]["check_rel_error"] < 0.1
    for name in ("bf16", "int8"):
        p = speed[name]
        assert set(p["by_tokens"]) == {"1", "16", "8"} and p["check_rel_error"] < 0.02
        assert all(bt["predicted"] is None for bt in p["by_tokens"].values())  # CPU: no calc timing prediction
    assert speed["int8"]["weight_bytes"] < 0.6 * speed["bf16"]["weight_bytes"]
    assert {p.name for p in (out / "figures").glob("*.svg")} >= {f"ch08-cpu-{n}_en.svg" for n in FIGURES}


def test_a_second_run_uses_the_cached_model(quick08, tmp_path):
    _, first, _, cache = quick08
    assert ch08.main(["--quick", "--out", str(tmp_path), "--cache-dir", str(cache), "--parts", "quality"]) == 0
    second = json.loads((tmp_path / "data" / "ch08-cpu.json").read_text())
    q1 = next(p for p in first["points"] if p["kind"] == "quality")
    q2 = next(p for p in second["points"] if p["kind"] == "quality")
    assert q2["train"]["from_cache"] is True
    assert q2["methods"][0]["perplexity"] == pytest.approx(q1["methods"][0]["perplexity"], rel=1e-6)


def test_plot_only_rerenders_from_data(quick08, tmp_path):
    _, _, out, _ = quick08
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "ch08-cpu.json").write_bytes((out / "data" / "ch08-cpu.json").read_bytes())
    assert ch08.main(["--plot-only", "--out", str(tmp_path)]) == 0
    assert {p.name for p in (tmp_path / "figures").glob("*_en.svg")} == {f"ch08-cpu-{n}_en.svg" for n in FIGURES}
    assert ch08.main(["--plot-only", "--out", str(tmp_path / "empty")]) == 2


def test_help():
    proc = subprocess.run([sys.executable, str(LABS / "ch08_quantization.py"), "--help"], capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0
    for flag in ("--quick", "--out", "--plot-only", "--parts", "--formats", "--group-size", "--retrain"):
        assert flag in proc.stdout


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--parts", "quality,vibes"], "unknown ['vibes']"),
        (["--formats", "bf16,int2"], "--formats: choose from"),
        (["--speed-tokens", "1,16"], "three numbers"),
        (["--speed-tokens", "1,x,3"], "comma-separated integers"),
        (["--group-size", "3"], "even number"),
        (["--train-steps", "0"], "--train-steps must be >= 1"),
        (["--repredict"], "goes with --plot-only"),
    ],
)
def test_bad_arguments_exit_nonzero_with_a_message(argv, message, capsys):
    with pytest.raises(SystemExit) as exc:
        ch08.main(["--quick", *argv])
    assert exc.value.code == 2
    assert message in capsys.readouterr().err





def test_committed_cpu_run_is_complete_and_labelled():
    data = common.load_data(ROOT / "docs" / "assets" / "labs" / ch08.LAB / "data" / "ch08-cpu.json")
    assert data["status"] == "complete" and data["provenance"]["device"]["kind"] == "cpu"
    assert data["provenance"]["git"]["dirty"] is False
    q = next(p for p in data["points"] if p["kind"] == "quality")
    rows = {m["method"]: m for m in q["methods"]}
    assert set(rows) == METHODS and q["params"] > 1_000_000


def test_gpu_shaped_data_renders_with_calc_predictions(tmp_path):
    """A GPU run carries calc's roofline per token count and an FP8 point; the figure draws both (no CPU note)."""
    import copy

    data = copy.deepcopy(common.load_data(ROOT / "docs" / "assets" / "labs" / ch08.LAB / "data" / "ch08-cpu.json"))
    data["provenance"]["calc_gpu_key"] = "h200"
    data["provenance"]["device"] = {"kind": "cuda", "name": "NVIDIA H200"}
    for p in data["points"]:
        if p["kind"] != "speed":
            continue
        if p["format"] == "fp8":  # as a GPU run would record it
            p.pop("skipped")
            p.update({k: v for k, v in next(q for q in data["points"] if q.get("format") == "int8").items()
                      if k not in ("format", "kind")})
        for m, bt in p["by_tokens"].items():
            bt["predicted"] = ch08.predict_speed(p["weight_bytes"], p["params"], int(m), p["format"], "h200")
            assert bt["predicted"]["seconds"] > 0
    figs = ch08.plot(data, "en")
    assert set(figs) == FIGURES
    assert "calc predicts times for GPUs only" not in figs["speed"][1]
    for name, (fig, footer) in figs.items():
        common.save_figure(fig, tmp_path / f"{name}.svg", footer)
