"""The GPU labs, exercised on the CPU: --quick runs end to end, the data carries its provenance, committed
figures are exactly what the committed data renders to, the hand-written decode loop agrees with Hugging
Face, and OOM, Ctrl-C, plotting failures and bad arguments are handled as documented.
"""

from __future__ import annotations

import copy
import importlib
import inspect
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

import ch03_prefill_decode as ch03  # noqa: E402
import ch04_gpu_basics as ch04  # noqa: E402
import common  # noqa: E402

FIGURES = {ch03: {"time-split", "throughput", "ttft-tpot", "mbu"}, ch04: {"matmul-tflops", "bandwidth", "memory"}}
STATS = {"median", "p10", "p90", "min", "max", "n", "samples"}


def run_quick(lab, out: Path, *extra) -> tuple[int, dict]:
    rc = lab.main(["--quick", "--out", str(out), *extra])
    return rc, json.loads((out / "data" / f"{lab.LAB[:4]}-cpu.json").read_text())


@pytest.fixture(scope="module")
def quick03(tmp_path_factory):
    out = tmp_path_factory.mktemp("ch03")
    rc, data = run_quick(ch03, out)
    return rc, data, out


@pytest.fixture(scope="module")
def quick04(tmp_path_factory):
    out = tmp_path_factory.mktemp("ch04")
    rc, data = run_quick(ch04, out)
    return rc, data, out


def check_provenance(prov: dict, lab):
    assert prov["lab"] == lab.LAB
    assert prov["date"].endswith("Z") and prov["date"][:2] == "20"
    assert prov["command"].startswith(f"python labs/{Path(lab.__file__).name} --quick --out ")
    assert {"commit", "dirty", "commit_from", "source_sha256"} <= set(prov["git"])
    assert prov["git"]["source_sha256"] == common.source_sha256()
    assert prov["software"]["torch"] == torch.__version__
    assert prov["software"]["transformers"] and prov["software"]["python"]
    assert prov["machine"]["cpu"] and prov["machine"]["cpu_cores"] >= 1
    dev = prov["device"]
    assert dev["kind"] == "cpu" and dev["cores"] >= 1 and dev["name"]
    assert prov["calc_gpu_key"] is None and prov["datasheet"] is None  # a CPU run is never matched to a GPU
    assert prov["model"]["config"]["hidden_size"] == common.QUICK_CONFIG["hidden_size"]
    assert prov["model"]["weights"] == "bf16" and prov["model"]["params"] > 0
    # calc predicts for the model that ran: the tiny config, not the default preset's name
    assert prov["model"]["calc_params"]["config"]["hidden_size"] == common.QUICK_CONFIG["hidden_size"]
    import socket

    assert socket.gethostname() not in json.dumps(prov)  # machine described, not named


def test_ch03_quick_data(quick03):
    rc, data, _ = quick03
    assert rc == 0 and data["status"] == "complete"
    check_provenance(data["provenance"], ch03)
    points = data["points"]
    assert not [p for p in points if p.get("error") or p.get("oom") or p.get("skipped")]
    kinds = {p["kind"] for p in points}
    assert kinds == {"bandwidth", "prefill", "decode", "split"}
    bandwidth = next(p for p in points if p["kind"] == "bandwidth")
    assert bandwidth["op"] == "read" and bandwidth["GBps"] == pytest.approx(
        bandwidth["bytes_moved"] / bandwidth["seconds"]["median"] / 1e9)  # MBU divides by the median read
    settings = data["provenance"]["settings"]
    prefill = [p for p in points if p["kind"] == "prefill"]
    assert {(p["batch"], p["prompt_len"]) for p in prefill} >= {(1, n) for n in settings["prompt_lens"]}
    for p in prefill:
        assert set(p["prefill_s"]) == STATS and p["prefill_s"]["n"] == settings["prefill_repeats"] >= 5
        assert 0 < p["prefill_s"]["median"] <= p["ttft_s"]["median"] * 1.5
    decode = {p["path"]: p for p in points if p["kind"] == "decode" and p["batch"] == 1}
    assert set(decode) == {"static", "hf-eager"}  # the CPU has neither CUDA graphs nor generate()'s compile
    for p in decode.values():
        # TPOT is the median over every decode step of every repeat, not a mean per repeat
        steps = settings["repeats"] * (settings["decode_tokens"] - 1)
        assert p["tpot_s"]["n"] == steps and p["decode_tok_per_s"] == pytest.approx(1 / p["tpot_s"]["median"])
        assert p["tpot_mean_s"] == pytest.approx(sum(p["tpot_s"]["samples"]) / steps)
        assert p["bytes_per_step"] > data["provenance"]["model"]["weight_bytes"] // 2
        assert len(p["first_tokens"]) == 8
    split = [p for p in points if p["kind"] == "split"]
    for p in split:
        medians = [p["decode_s"][str(n)]["median"] for n in p["output_lens"]]
        assert medians == sorted(medians)  # more output tokens, more decode time


def test_ch03_quick_figures(quick03):
    _, _, out = quick03
    names = {f.name for f in (out / "figures").glob("*.svg")}
    langs = ["zh", "en"] if common.cjk_font() else ["en"]
    assert names == {f"ch03-cpu-{n}_{lang}.svg" for n in FIGURES[ch03] for lang in langs}
    svg = (out / "figures" / "ch03-cpu-ttft-tpot_en.svg").read_text()
    assert "<svg" in svg and "Date" not in svg


def test_ch04_quick_data(quick04):
    rc, data, out = quick04
    assert rc == 0 and data["status"] == "complete"
    check_provenance(data["provenance"], ch04)
    points = data["points"]
    assert {p["kind"] for p in points} == {"matmul", "bandwidth", "memory", "trace"}
    assert not [p for p in points if p.get("error") or p.get("oom")]
    assert all(p["precision"] == "bf16" for p in points if p["kind"] == "matmul")  # no FP8 on a CPU
    for p in points:
        if p["kind"] == "matmul":
            assert p["TFLOPS"] == pytest.approx(2 * p["m"] * p["n"] * p["k"] / p["seconds"]["min"] / 1e12)
        if p["kind"] == "bandwidth":
            assert p["bytes_moved"] == (2 if p["op"] == "copy" else 1) * p["buffer_bytes"]
            assert p["GBps"] == pytest.approx(p["bytes_moved"] / p["seconds"]["median"] / 1e9)
            assert p["GBps"] <= p["GBps_best"]
    # The KV cache a prefill keeps is exactly 2 (K and V) x layers x KV heads x head_dim x bytes x tokens.
    cfg = common.QUICK_CONFIG
    per_token = 2 * cfg["num_hidden_layers"] * cfg["num_key_value_heads"] * cfg["head_dim"] * 2
    for p in (p for p in points if p["kind"] == "memory"):
        assert p["kv_cache_tensor_bytes"] == per_token * p["batch"] * p["context"]
    trace = next(p for p in points if p["kind"] == "trace")
    assert trace["nvml"]["available"] is False and trace["nvml"]["reason"]  # recorded, not an error
    assert trace["phase_calls"]["prefill"] >= 1 and trace["phase_calls"]["decode"] >= 1
    names = {f.name for f in (out / "figures").glob("*.svg")}
    langs = ["zh", "en"] if common.cjk_font() else ["en"]
    assert names == {f"ch04-cpu-{n}_{lang}.svg" for n in FIGURES[ch04] for lang in langs}  # no NVML, no trace figure


# --- committed figures are what the committed data renders to -------------------------------------------

COMMITTED = sorted((ROOT / "docs" / "assets" / "labs").glob("*/data/*.json"))


@pytest.mark.parametrize("data_path", COMMITTED, ids=[p.relative_to(ROOT).as_posix() for p in COMMITTED])
def test_committed_figures_rerender_identically(data_path, tmp_path):
    lab = importlib.import_module(data_path.parent.parent.name.replace("-", "_"))  # ch07-batching -> ch07_batching.py
    assert lab.LAB == data_path.parent.parent.name
    assert common.cjk_font(), "Chinese figures need a CJK font: apt-get install fonts-noto-cjk"
    data = common.load_data(data_path)
    tag = common.data_stem(data["provenance"])
    assert data_path.name == f"{tag}.json"  # the file name says which lab and device it holds
    rendered = common.render_all(lab.plot, data, tmp_path, tag)
    assert rendered
    committed_dir = data_path.parent.parent / "figures"
    committed = {p.name for p in committed_dir.glob(f"{tag}-*.svg")}
    assert {p.name for p in rendered} == committed, "figures and data out of step: rerun with --plot-only"
    for p in rendered:
        assert p.read_bytes() == (committed_dir / p.name).read_bytes(), f"{p.name} differs: rerun with --plot-only"


@pytest.mark.parametrize("data_path", COMMITTED, ids=[p.relative_to(ROOT).as_posix() for p in COMMITTED])
def test_committed_predictions_are_what_calc_computes_now(data_path):
    """calc's predictions stored beside the measurements (and drawn on the figures) are refreshed by --plot-only
    --repredict when calc changes; a change to calc that moves one fails here until the data is repredicted."""
    lab = importlib.import_module(data_path.parent.parent.name.replace("-", "_"))
    if not hasattr(lab, "refresh_prediction"):
        with pytest.raises(SystemExit) as e:  # a lab without calc predictions refuses --repredict, not ignores it
            lab.parse_args(["--plot-only", "--repredict"])
        assert e.value.code == 2
        assert "predicted" not in data_path.read_text()
        return
    stored = common.load_data(data_path)
    fresh = copy.deepcopy(stored)
    common.refresh_calc(fresh, lab.refresh_prediction)
    assert _same(fresh, stored), \
        f"calc's predictions in {data_path.name} are stale: python labs/{lab.__name__}.py --plot-only --repredict " \
        f"--out {data_path.parent.parent.relative_to(ROOT)}"


def _same(a, b) -> bool:
    """Equal JSON trees, floats to 1e-9 relative (the last bits of a sum can differ between platforms)."""
    if isinstance(a, float) or isinstance(b, float):
        return isinstance(a, (int, float)) and isinstance(b, (int, float)) and abs(a - b) <= 1e-9 * max(abs(a), abs(b))
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return isinstance(b, list) and len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    return a == b


def test_every_committed_figure_has_data():
    figures = sorted((ROOT / "docs" / "assets" / "labs").glob("*/figures/*.svg"))
    for fig in figures:
        tags = [common.data_stem(common.load_data(d)["provenance"]) for d in (fig.parent.parent / "data").glob("*.json")]
        assert any(fig.name.startswith(tag + "-") for tag in tags), f"{fig} has no data file"


def test_svg_output_is_deterministic(quick03, tmp_path):
    _, data, _ = quick03
    first = common.render_all(ch03.plot, data, tmp_path / "a", "cpu")
    second = common.render_all(ch03.plot, data, tmp_path / "b", "cpu")
    assert [p.read_bytes() for p in first] == [p.read_bytes() for p in second]


# --- the hand-written static-cache decode loop agrees with Hugging Face ---------------------------------


@pytest.mark.parametrize("model_type", ["llama", "qwen2"])
def test_static_decoder_matches_hf_dynamic_cache(model_type):
    from transformers import DynamicCache

    torch.manual_seed(0)
    config = dict(common.QUICK_CONFIG, model_type=model_type)
    if model_type == "qwen2":  # Qwen2: q/k/v biases, plain RoPE
        config.pop("rope_scaling")
        config["tie_word_embeddings"] = False
    model = common.build_model(config, torch.device("cpu"), torch.float32)
    for p in model.parameters():  # non-trivial biases and norm weights, so a dropped term would show
        if p.dim() == 1:
            p.data.normal_(0, 0.1)
    prompt = torch.randint(0, config["vocab_size"], (2, 11))
    steps = 6
    decoder = ch03.StaticDecoder(model, batch=2, max_len=11 + steps + 3)  # a few unused (masked) cache slots
    cache_kw = "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"
    with torch.inference_mode():
        mine = [decoder.prefill(prompt)]
        for _ in range(steps - 1):
            mine.append(decoder.step())
        cache = DynamicCache(config=model.config)
        out = model(input_ids=prompt, use_cache=True, **{cache_kw: cache})
        ref = [out.logits[:, -1]]
        for _ in range(steps - 1):
            out = model(input_ids=ref[-1].argmax(-1, keepdim=True), use_cache=True, **{cache_kw: cache})
            ref.append(out.logits[:, -1])
    mine, ref = torch.stack(mine, 1), torch.stack(ref, 1)
    torch.testing.assert_close(mine, ref, rtol=1e-4, atol=1e-5)
    assert torch.equal(mine.argmax(-1), ref.argmax(-1))
    assert decoder.pos.item() == 11 + steps - 1


def test_static_decoder_generate_returns_greedy_tokens():
    torch.manual_seed(0)
    model = common.build_model(common.QUICK_CONFIG, torch.device("cpu"), torch.float32)
    prompt = torch.randint(0, 512, (1, 9))
    tokens, ttft, steps = ch03.StaticDecoder(model, 1, 9 + 5).generate(prompt, 5, use_graph=False)
    with torch.inference_mode():
        hf = model.generate(prompt, attention_mask=torch.ones_like(prompt), max_new_tokens=5, do_sample=False)
    assert torch.equal(tokens, hf[:, 9:])
    assert ttft > 0 and len(steps) == 4 and min(steps) > 0


def test_decode_attention_survives_a_non_contiguous_sdpa_output(monkeypatch):
    """On a GPU, SDPA with a boolean mask may run the memory-efficient kernel, whose output is not contiguous;
    `.view` on it raises. Feed that layout on the CPU: the decoder must give the same logits."""
    torch.manual_seed(0)
    model = common.build_model(common.QUICK_CONFIG, torch.device("cpu"), torch.float32)
    prompt = torch.randint(0, 512, (2, 7))

    def decode():
        decoder = ch03.StaticDecoder(model, 2, 12)
        with torch.inference_mode():
            decoder.prefill(prompt)
            return torch.stack([decoder.step() for _ in range(3)])

    expected = decode()
    real = torch.nn.functional.scaled_dot_product_attention
    seen = []

    def strided(*args, **kwargs):
        out = real(*args, **kwargs)
        out = out.transpose(-1, -2).contiguous().transpose(-1, -2)  # same values, memory-efficient-kernel layout
        seen.append(out.is_contiguous())
        return out

    monkeypatch.setattr(torch.nn.functional, "scaled_dot_product_attention", strided)
    torch.testing.assert_close(decode(), expected)
    assert seen and not any(seen)


def stale_position(decoder):
    """A fast step that never advances `pos`, as a graph reading a stale position would: from step 2 on it
    rewrites one cache slot and attends to the wrong keys."""
    def step():
        logits = decoder.forward(decoder.token, decoder.pos)
        decoder.token.copy_(logits.argmax(-1, keepdim=True))
        return logits
    return step


def test_fast_path_check_catches_a_wrong_step_and_passes_a_right_one():
    torch.manual_seed(0)
    model = common.build_model(common.QUICK_CONFIG, torch.device("cpu"), torch.bfloat16)
    prompt = torch.randint(0, 512, (1, 9))
    decoder = ch03.StaticDecoder(model, 1, 20)
    with torch.inference_mode():
        check = decoder.check_fast_path(prompt, decoder.step)  # the eager step itself: its error is the floor
        assert check["error"] == check["floor"] and check["fast_vs_eager"] == [0.0] * 4
        assert all(0 < f < ch03.CHECK_MAX_TOL / ch03.CHECK_MULTIPLE for f in check["floor"])  # bf16 rounds
        assert check["greedy_agreement"] == 1.0 and check["rule"] == ch03.CHECK_RULE

        with pytest.raises(ch03.GraphMismatch, match="decode step 2") as refused:
            decoder.check_fast_path(prompt, stale_position(decoder))
    wrong = refused.value.check
    assert wrong["error"][0] <= wrong["tolerance"][0]  # step 1 is still right
    assert wrong["error"][1] > 5 * wrong["tolerance"][1]  # 0.13 here, against a floor of 0.004


def test_fast_path_check_accepts_other_rounding_and_refuses_a_skipped_layer():
    """A fast path that rounds differently from the eager bf16 step (here: the whole step in fp32, rounded to bf16
    once at the end) differs from it, yet is no further from the exact value: accepted. A step that skips the
    last layer is refused."""
    torch.manual_seed(0)
    model = common.build_model(common.QUICK_CONFIG, torch.device("cpu"), torch.bfloat16)
    prompt = torch.randint(0, 512, (1, 9))
    decoder = ch03.StaticDecoder(model, 1, 20)
    shape = (1, decoder.n_kv, decoder.max_len, decoder.head_dim)
    layers = len(decoder.k_cache)
    fp32 = ([torch.zeros(shape) for _ in range(layers)], [torch.zeros(shape) for _ in range(layers)])

    def rounded_once():  # fp32 arithmetic on its own fp32 cache, result rounded to bf16: a legitimate reorder
        n = decoder.pos.item()
        if n == prompt.shape[1]:
            decoder.forward(prompt, decoder.positions[:n], fp32)
        logits = decoder.forward(decoder.token, decoder.pos, fp32).to(torch.bfloat16)
        for own, exact in zip(decoder.k_cache + decoder.v_cache, fp32[0] + fp32[1], strict=True):
            own[:, :, n].copy_(exact[:, :, n])  # the new K and V, rounded once into the decoder's own cache
        decoder.token.copy_(logits.argmax(-1, keepdim=True))
        decoder.pos.add_(1)
        return logits

    with torch.inference_mode():
        check = decoder.check_fast_path(prompt, rounded_once)
    assert all(e <= f for e, f in zip(check["error"], check["floor"], strict=True))  # closer to exact than eager
    assert min(check["fast_vs_eager"]) > 0

    def skips_a_layer():
        layers_saved = model.model.layers
        model.model.layers = layers_saved[:-1]
        try:
            return decoder.step()
        finally:
            model.model.layers = layers_saved

    with torch.inference_mode(), pytest.raises(ch03.GraphMismatch, match="decode step 1"):
        decoder.check_fast_path(prompt, skips_a_layer)


def test_fast_path_check_sees_position_and_cache_errors_the_logits_miss():
    """Right logits are not enough: a fast path must leave the cache position advanced by the number of steps and
    write each step's K and V into its slot. Both wrong paths here compute every step's logits exactly as the
    eager step does, so only the position and cache comparisons can refuse them."""
    torch.manual_seed(0)
    model = common.build_model(common.QUICK_CONFIG, torch.device("cpu"), torch.bfloat16)
    prompt = torch.randint(0, 512, (1, 9))
    decoder = ch03.StaticDecoder(model, 1, 20)
    steps = []

    def position_lost():  # the last step forgets to advance the position
        logits = decoder.step()
        steps.append(1)
        if len(steps) % 4 == 0:
            decoder.pos.sub_(1)
        return logits

    def slot_lost():  # the last step's K and V never reach the cache
        logits = decoder.step()
        steps.append(1)
        if len(steps) % 4 == 0:
            for c in decoder.k_cache + decoder.v_cache:
                c[:, :, int(decoder.pos) - 1].zero_()
        return logits

    with torch.inference_mode():
        with pytest.raises(ch03.GraphMismatch, match="cache position is 12, not 13") as refused:
            decoder.check_fast_path(prompt, position_lost)
        assert refused.value.check["error"] == refused.value.check["floor"]  # every logit was right
        steps.clear()
        with pytest.raises(ch03.GraphMismatch, match="decode step 4: the K and V .* cache slot 12") as refused:
            decoder.check_fast_path(prompt, slot_lost)
    kv = refused.value.check["kv_fast_vs_eager"]
    assert kv[:3] == [0.0] * 3 and kv[3] == pytest.approx(1.0)


def test_fast_path_check_runs_a_short_prompt_too():
    """A prompt longer than CHECK_SHORT_PROMPT is checked again on its first tokens (recorded under
    `short_prompt`); a stale position is refused after a long prompt too, whatever the logits do."""
    torch.manual_seed(0)
    model = common.build_model(common.QUICK_CONFIG, torch.device("cpu"), torch.bfloat16)
    prompt = torch.randint(0, 512, (1, 200))
    decoder = ch03.StaticDecoder(model, 1, 210)
    with torch.inference_mode():
        check = decoder.check_fast_path(prompt, decoder.step)
        assert check["prompt_len"] == 200 and check["position_after"] == 204
        assert check["short_prompt"]["prompt_len"] == ch03.CHECK_SHORT_PROMPT
        assert check["short_prompt"]["kv_fast_vs_eager"] == [0.0] * 4
        with pytest.raises(ch03.GraphMismatch):
            decoder.check_fast_path(prompt, stale_position(decoder))


def test_fast_path_check_sees_a_wrong_row_beyond_the_first():
    """The fp32 reference covers the first sequence; a fast path that is wrong only for another row of the batch
    is refused by the whole-batch comparison with the eager step, and a right one at batch 2 passes."""
    torch.manual_seed(0)
    model = common.build_model(common.QUICK_CONFIG, torch.device("cpu"), torch.bfloat16)
    prompt = torch.randint(0, 512, (2, 9))
    decoder = ch03.StaticDecoder(model, 2, 20)

    def second_row_wrong():
        logits = decoder.step().clone()
        logits[1] = logits[1].roll(1, dims=-1)
        return logits

    with torch.inference_mode():
        check = decoder.check_fast_path(prompt, decoder.step)
        assert check["fast_vs_eager"] == [0.0] * 4 and check["greedy_agreement"] == 1.0
        with pytest.raises(ch03.GraphMismatch, match="over the batch of 2") as refused:
            decoder.check_fast_path(prompt, second_row_wrong)
    assert refused.value.check["error"][0] <= refused.value.check["tolerance"][0]  # the first row is right


def test_a_refused_fast_path_is_recorded_and_the_lab_goes_on(tmp_path, monkeypatch):
    """The real check, run on the CPU on the batch-2 decode point with a wrong fast step: that point records the
    refusal and the measured errors, every other point is measured, the status names the failed point."""
    real_generate = ch03.StaticDecoder.generate

    def generate(self, prompt, new_tokens, use_graph):
        if prompt.shape[0] == 2:
            self.check_fast_path(prompt, stale_position(self))
        return real_generate(self, prompt, new_tokens, use_graph)

    monkeypatch.setattr(ch03.StaticDecoder, "generate", generate)
    rc, data = run_quick(ch03, tmp_path)
    assert rc == 0
    failed = [p for p in data["points"] if p.get("error")]
    assert [(p["kind"], p["path"], p["batch"]) for p in failed] == [("decode", "static", 2)]
    point = failed[0]
    assert point["error"].startswith("GraphMismatch: decode step 2") and "tpot_s" not in point
    check = point["fast_path_check"]
    assert check["error"][1] > check["tolerance"][1] and len(check["floor"]) == check["steps"] == 4
    assert data["status"].startswith("partial: 1 of ") and "decode path=static batch=2" in data["status"]
    later = data["points"][data["points"].index(point) + 1:]
    assert [(p["kind"], p["path"]) for p in later] == [("decode", "hf-eager")] and common.succeeded(later[0])
    assert len(list((tmp_path / "figures").glob("*.svg"))) == 2 * len(FIGURES[ch03])


@pytest.mark.slow
def test_compiled_decode_step_matches_the_eager_step():
    """The compile-graph path's compiled half, on the CPU (Inductor's C++ backend; about a minute on 2 cores):
    torch.compile(fullgraph=True) must trace the whole step and pass the fast-path check."""
    torch.manual_seed(0)
    model = common.build_model(common.QUICK_CONFIG, torch.device("cpu"), torch.bfloat16)
    prompt = torch.randint(0, 512, (1, 9))
    with torch.inference_mode():
        compiled = ch03.StaticDecoder(model, 1, 20, compile_step=True)
        check = compiled.check_fast_path(prompt, compiled.step, steps=4)
        print("compiled step vs fp32:", check)
        tokens, _, steps = compiled.generate(prompt, 6, use_graph=False)
        eager, _, _ = ch03.StaticDecoder(model, 1, 20).generate(prompt, 6, use_graph=False)
    assert max(check["error"]) < ch03.CHECK_MAX_TOL
    assert torch.equal(tokens, eager) and len(steps) == 5


def test_fused_projections_share_memory_and_keep_hugging_face_exact():
    torch.manual_seed(0)
    model = common.build_model(common.QUICK_CONFIG, torch.device("cpu"), torch.float32)
    prompt = torch.randint(0, 512, (1, 9))
    with torch.inference_mode():
        before = model(input_ids=prompt).logits
        nbytes = common.weight_bytes(model)
        ch03.fuse_projections(model)
        ch03.fuse_projections(model)  # idempotent
        torch.testing.assert_close(model(input_ids=prompt).logits, before, rtol=0, atol=0)
    attn = model.model.layers[0].self_attn
    assert common.weight_bytes(model) == nbytes
    assert attn.q_proj.weight.data_ptr() == attn.qkv_weight.data_ptr()  # a view, not a copy
    assert attn.qkv_weight.shape[0] == sum(attn.fused_sizes)


# --- OOM, Ctrl-C, plotting failures ---------------------------------------------------------------------


def test_oom_becomes_a_point_and_the_sweep_goes_on(tmp_path, monkeypatch, capsys):
    real = ch03.measure_prefill

    def prefill_or_oom(model, batch, prompt_len, *args):
        if prompt_len == 32:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 80.00 GiB")
        return real(model, batch, prompt_len, *args)

    monkeypatch.setattr(ch03, "measure_prefill", prefill_or_oom)
    monkeypatch.setattr(ch03, "plot", lambda data, lang: 1 / 0)  # plotting breaks: the run must still succeed
    rc, data = run_quick(ch03, tmp_path, "--paths", "static", "--split-prompt-lens", "16")
    assert rc == 0 and data["status"] == "complete"
    oom = [p for p in data["points"] if p.get("oom")]
    assert [(p["kind"], p["prompt_len"]) for p in oom] == [("prefill", 32)]
    assert "out of memory" in oom[0]["error"] and "prefill_s" not in oom[0]
    later = data["points"][data["points"].index(oom[0]) + 1:]
    assert {"prefill", "decode", "split"} <= {p["kind"] for p in later}
    assert "plotting failed" in capsys.readouterr().out


def test_other_errors_become_points_too(tmp_path, monkeypatch):
    monkeypatch.setattr(ch04, "measure_bandwidth", lambda *a: (_ for _ in ()).throw(RuntimeError("no such kernel")))
    rc, data = run_quick(ch04, tmp_path, "--parts", "bandwidth,memory")
    assert rc == 0
    assert {p["error"] for p in data["points"] if p["kind"] == "bandwidth"} == {"RuntimeError: no such kernel"}
    assert [p for p in data["points"] if p["kind"] == "memory" and "kv_cache_tensor_bytes" in p]


def test_interrupted_sweep_keeps_its_data(tmp_path, monkeypatch):
    def interrupt(*args):
        raise KeyboardInterrupt

    monkeypatch.setattr(ch03, "measure_decode", interrupt)
    rc, data = run_quick(ch03, tmp_path)
    assert rc == 130 and data["status"] == "interrupted"
    kinds = [p["kind"] for p in data["points"]]
    assert kinds.count("prefill") == 4 and "decode" not in kinds  # everything before Ctrl-C, nothing after
    assert not list((tmp_path / "data").glob("*.tmp"))


def test_time_budget_skips_the_rest(tmp_path):
    rc, data = run_quick(ch04, tmp_path, "--parts", "bandwidth", "--budget-s", "1e-9")
    assert rc == 0 and data["points"] and all(p.get("skipped") == "time budget" for p in data["points"])


def test_missing_cjk_font_renders_english_only(quick03, tmp_path, monkeypatch, capsys):
    _, data, _ = quick03
    monkeypatch.setattr(common, "cjk_font", lambda: None)
    written = common.render_all(ch03.plot, data, tmp_path, "cpu")
    assert written and all(p.name.endswith("_en.svg") for p in written)
    assert "Chinese figures skipped" in capsys.readouterr().out


def test_plot_only_rerenders_from_data(quick03, tmp_path):
    _, data, _ = quick03
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "ch03-cpu.json").write_text(json.dumps(data))
    assert ch03.main(["--plot-only", "--out", str(tmp_path)]) == 0
    assert {p.name for p in (tmp_path / "figures").glob("*_en.svg")} == {f"ch03-cpu-{n}_en.svg" for n in FIGURES[ch03]}


def test_two_labs_share_one_out_folder(quick03, quick04, tmp_path):
    """Both labs write into one --out: neither overwrites the other's data, and each --plot-only renders only
    its own lab's files (ch03's plot on ch04's data used to crash)."""
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "ch03-cpu.json").write_text(json.dumps(quick03[1]))
    (tmp_path / "data" / "ch04-cpu.json").write_text(json.dumps(quick04[1]))
    assert ch03.main(["--plot-only", "--out", str(tmp_path)]) == 0
    assert ch04.main(["--plot-only", "--out", str(tmp_path)]) == 0
    names = {p.name for p in (tmp_path / "figures").glob("*_en.svg")}
    assert names == {f"{lab.LAB[:4]}-cpu-{n}_en.svg" for lab in (ch03, ch04) for n in FIGURES[lab]}


def test_repredict_stores_calc_predictions(quick03, quick04, tmp_path):
    from calc import api

    gpu = {"kind": "cuda", "name": "NVIDIA H100 80GB HBM3", "count": 1, "memory_bytes": 85 * 10**9}
    for lab, data in ((ch03, quick03[1]), (ch04, quick04[1])):
        data = copy.deepcopy(data)
        data["provenance"].update(device=gpu, calc_gpu_key="h100-sxm")
        data["provenance"]["model"]["calc_params"] = {"model": "llama-3.2-1b"}
        out = tmp_path / lab.LAB
        (out / "data").mkdir(parents=True)
        name = f"{lab.LAB[:4]}-h100-sxm"
        common.save_data(out / "data" / f"{name}.json", data)
        assert lab.main(["--plot-only", "--repredict", "--out", str(out)]) == 0
        points = common.load_data(out / "data" / f"{name}.json")["points"]
        if lab is ch03:
            p = next(p for p in points if p["kind"] == "prefill")
            want = api.run("perf", {"model": "llama-3.2-1b", "gpu": "h100-sxm", "batch": p["batch"],
                                    "prompt-len": p["prompt_len"], "output-len": 1})
            assert p["predicted"]["ttft_s"] == want["ttft_s"]
            assert (out / "figures" / f"{name}-ttft-tpot_en.svg").exists()
        else:
            p = next(p for p in points if p["kind"] == "memory")
            want = api.run("memory", {"model": "llama-3.2-1b", "gpu": "h100-sxm", "batch": p["batch"],
                                      "prompt-len": p["context"], "output-len": 1})
            assert p["predicted"]["kv_cache_bytes"] == want["kv_cache_bytes"] > 0


def test_gpu_shaped_data_renders_every_figure(quick03, quick04, tmp_path):
    """The GPU-only parts of the figures (datasheet lines, calc overlays, NVML trace, OOM marks) on synthetic
    data shaped like a GPU run, so a real GPU session cannot be the first to execute them."""
    gpu = {"kind": "cuda", "name": "NVIDIA H100 80GB HBM3", "count": 1, "driver": "580", "power_limit_w": 700.0,
           "memory_bytes": 85 * 10**9, "l2_cache_bytes": 50 * 2**20}
    sheet = {"memory_bandwidth_bytes_per_s": 3.35e12, "bf16_dense_flops": 989.5e12, "fp8_dense_flops": 1979e12}
    d3 = copy.deepcopy(quick03[1])
    d3["provenance"].update(device=gpu, calc_gpu_key="h100-sxm", datasheet=sheet)
    for p in d3["points"]:
        if p["kind"] in ("prefill", "decode"):
            p["predicted"] = {"ttft_s": 0.001, "tpot_s": 0.001}
    figs = ch03.plot(d3, "en")
    assert set(figs) == FIGURES[ch03]
    assert "no calc prediction" not in figs["ttft-tpot"][1]
    d4 = copy.deepcopy(quick04[1])
    d4["provenance"].update(device=gpu, calc_gpu_key="h100-sxm", datasheet=sheet)
    mem = [p for p in d4["points"] if p["kind"] == "memory"]
    mem[0].update(allocated_before_bytes=10**9, allocated_after_bytes=2 * 10**9, peak_allocated_bytes=3 * 10**9,
                  nvml_used_bytes=4 * 10**9, predicted={"weights_bytes": 10**9, "kv_cache_bytes": 10**9,
                                                        "activation_peak_bytes": 10**9, "overhead_bytes": 10**9})
    mem[1].update(oom=True, predicted={"weights_bytes": 10**9, "kv_cache_bytes": 9 * 10**10})
    trace = next(p for p in d4["points"] if p["kind"] == "trace")
    trace["nvml"].update(available=True, samples=[
        {"t": i / 10, "gpu_util_pct": 100, "mem_util_pct": 50, "mem_used_bytes": 2e10, "power_w": 300 + i,
         "sm_clock_mhz": 1980, "mem_clock_mhz": 2619, "throttle_reasons": 0} for i in range(30)],
        marks=[{"t": 0, "label": "idle"}, {"t": 0.5, "label": "prefill"}, {"t": 1.5, "label": "decode"},
               {"t": 2.5, "label": "idle-after"}, {"t": 3, "label": "end"}])
    d4["points"] += [dict(p, precision="fp8", TFLOPS=2 * p["TFLOPS"]) for p in d4["points"] if p["kind"] == "matmul"]
    figs = ch04.plot(d4, "en")
    assert set(figs) == FIGURES[ch04] | {"nvml-trace"}
    assert "no datasheet value" not in figs["matmul-tflops"][1] and "no calc prediction" not in figs["memory"][1]
    for name, (fig, footer) in figs.items():
        common.save_figure(fig, tmp_path / f"{name}.svg", footer)


# --- command line -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("script", ["ch03_prefill_decode.py", "ch04_gpu_basics.py"])
def test_help(script):
    proc = subprocess.run([sys.executable, str(LABS / script), "--help"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0
    assert "--quick" in proc.stdout and "--out" in proc.stdout and "--plot-only" in proc.stdout


@pytest.mark.parametrize(
    "lab, argv, message",
    [
        (ch03, ["--prompt-lens", "128,abc"], "comma-separated integers"),
        (ch03, ["--batches", "0"], "positive integers"),
        (ch03, ["--paths", "static,warp-drive"], "unknown path(s) warp-drive"),
        (ch03, ["--decode-tokens", "1"], "at least 2 tokens"),
        (ch03, ["--repredict"], "goes with --plot-only"),
        (ch04, ["--memory-points", "4096"], "batch x context pairs"),
        (ch04, ["--parts", "matmul,vibes"], "unknown part(s) vibes"),
        (ch04, ["--dtype", "int3"], "invalid choice"),
    ],
)
def test_bad_arguments_exit_nonzero_with_a_message(lab, argv, message, capsys):
    with pytest.raises(SystemExit) as exc:
        lab.main(["--quick", *argv])
    assert exc.value.code == 2
    assert message in capsys.readouterr().err


def test_missing_gpu_and_missing_data_are_clear_errors(tmp_path, capsys):
    if not torch.cuda.is_available():
        with pytest.raises(SystemExit, match="sees no CUDA GPU"):
            ch03.main(["--quick", "--device", "cuda", "--out", str(tmp_path)])
    assert ch04.main(["--plot-only", "--out", str(tmp_path / "empty")]) == 2
    assert "no ch04-*.json data files" in capsys.readouterr().err
    with pytest.raises(SystemExit, match="not in calc's registry"):
        ch03.main(["--model-preset", "gpt-17", "--device", "cpu", "--out", str(tmp_path)])


@pytest.mark.parametrize("lo, hi", [(5.2, 6.9), (0.8, 1.3), (3, 3000), (1.01, 1.02), (0.004, 0.0051)])
def test_log_ticks_label_a_narrow_range(lo, hi):
    ticks = common.log_ticks(lo, hi)
    assert len([v for v in ticks if lo <= v <= hi]) >= 2
    assert ticks == sorted(ticks)
    assert all(float(f"{v:.4g}") == v for v in ticks)  # labels a reader can read: no 474.745


def test_tpot_panel_has_readable_ticks(quick03):
    """The ch03 TPOT panel's log y axis over a narrow range showed a single labelled tick."""
    data = copy.deepcopy(quick03[1])
    for p in data["points"]:
        if p["kind"] == "decode":
            p["tpot_s"].update(median=0.0055 + 0.0001 * p["batch"], p10=0.0052, p90=0.0069)
    common.style("en")
    fig, _ = ch03.plot(data, "en")["ttft-tpot"]
    fig.canvas.draw()
    ax = fig.axes[1]
    lo, hi = ax.get_ylim()
    labelled = [t for t in ax.yaxis.get_major_ticks() if lo <= t.get_loc() <= hi and t.label1.get_text()]
    assert len(labelled) >= 3


def test_memory_legend_names_only_drawn_bars(quick04):
    common.style("en")
    fig, _ = ch04.plot(quick04[1], "en")["memory"]
    ax = fig.axes[0]
    colors = {tuple(p.get_facecolor()) for p in ax.patches if p.get_height() > 0}
    from matplotlib.colors import to_rgba

    assert to_rgba("#55A868") not in colors  # no activation bar on a CPU run ...
    assert ax.get_legend_handles_labels()[1] == ["weights", "KV cache"]  # ... so the legend does not name one
    # On a CPU calc still predicts the device-independent parts (the formulas of 4.3.1 and 4.3.2), drawn on the left
    assert "calc prediction" in ax.get_xlabel() and "Host memory" in ax.get_title()
    for p in (p for p in quick04[1]["points"] if p["kind"] == "memory"):
        # the formula (calc counts the prompt plus the one token generated) = the KV tensors torch holds
        assert p["predicted"]["kv_cache_bytes"] == p["kv_cache_tensor_bytes"] // p["context"] * (p["context"] + 1)
        assert set(p["predicted"]) == {"weights_bytes", "kv_cache_bytes", "basis"}


@pytest.mark.parametrize("gpu, capacity", [("h100-sxm", 85_031_714_816), ("h200", 150_110_011_392)])
def test_memory_sweep_always_reaches_past_the_gpu(gpu, capacity):
    from calc import api

    prov = {"device": {"memory_bytes": capacity}, "calc_gpu_key": gpu, "model": {"weights": "bf16"}}
    points = ch04.memory_points(prov, {"model": "llama-3.1-8b"})

    def total(batch, context):
        return api.run("memory", {"model": "llama-3.1-8b", "gpu": gpu, "batch": batch, "prompt-len": context,
                                  "output-len": 1})["total_bytes_per_gpu"]

    assert all(total(*p) < capacity for p in points[:-1])
    assert total(*points[-1]) > 1.15 * capacity


def test_provenance_without_git_takes_the_commit_from_the_environment(monkeypatch):
    class NoRepo:
        returncode, stdout, stderr = 128, "", "fatal: not a git repository"

    monkeypatch.setattr(common.subprocess, "run", lambda *a, **k: NoRepo())
    monkeypatch.delenv("LAB_GIT_COMMIT", raising=False)
    assert common._git() == {"commit": None, "dirty": None, "commit_from": None, "source_sha256": common.source_sha256()}
    monkeypatch.setenv("LAB_GIT_COMMIT", "eed150a")
    info = common._git()
    assert (info["commit"], info["dirty"], info["commit_from"]) == ("eed150a", None, "LAB_GIT_COMMIT")


def test_cjk_font_is_found_with_a_font_cache_older_than_the_font(monkeypatch):
    """matplotlib's cached font list may predate `apt-get install fonts-noto-cjk`: the font is still used."""
    from matplotlib import font_manager

    if not any(Path(p).is_file() for p in common.CJK_FILES):
        pytest.skip("no CJK font file installed at a known path")
    stale = copy.copy(font_manager.fontManager)
    stale.ttflist = [f for f in font_manager.fontManager.ttflist if "CJK" not in f.name and "CJK" not in f.fname]
    monkeypatch.setattr(font_manager, "fontManager", stale)
    monkeypatch.setattr(font_manager, "findfont", stale.findfont)
    assert common.cjk_font() in common.CJK_FAMILIES


def test_figure_footer_speaks_the_figure_language(quick03):
    prov = copy.deepcopy(quick03[1]["provenance"])
    assert common.describe_run(prov, "zh").startswith("CPU 运行：") and "（无 GPU）" in common.describe_run(prov, "zh")
    assert common.describe_run(prov, "en").startswith("CPU run: ") and "(no GPU)" in common.describe_run(prov, "en")
    prov["device"] = {"kind": "cuda", "name": "NVIDIA H100 80GB HBM3", "driver": "580.1", "power_limit_w": 700.0}
    prov["software"]["cuda"] = "13.0"
    assert common.describe_run(prov, "zh").startswith("NVIDIA H100 80GB HBM3，功耗上限 700 W，驱动 580.1，CUDA 13.0 · torch")
    assert common.describe_run(prov, "en").startswith("NVIDIA H100 80GB HBM3, 700 W limit, driver 580.1, CUDA 13.0 · torch")
