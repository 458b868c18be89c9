"""The chapter 9 lab (labs/ch09_speculative.py) on the CPU: speculative sampling is lossless (a chi-square test
with fixed seeds, so every run gives the same p; a correct implementation fails it with probability 0.001; a
realistic bug, resampling from p after a rejection, must fail it; greedy output identical to plain greedy decoding, with model drafts and
with prompt lookup); the drafts are built without touching the target; the formulas give the textbook values;
--quick runs end to end with provenance; --help, bad arguments and --plot-only behave as documented; committed
figures are what the committed data renders to.
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

import ch09_speculative as ch09  # noqa: E402
import common  # noqa: E402

FIGURES = {"tokens-per-call", "speedup", "lookup", "batch", "exact"}


@pytest.fixture(scope="module")
def quick09(tmp_path_factory):
    out = tmp_path_factory.mktemp("ch09")
    rc = ch09.main(["--quick", "--out", str(out)])
    return rc, json.loads((out / "data" / "ch09-cpu.json").read_text()), out


def test_quick_run_data_and_provenance(quick09):
    rc, data, _ = quick09
    assert rc == 0 and data["status"] == "complete"
    prov = data["provenance"]
    assert prov["lab"] == ch09.LAB and prov["command"].startswith("python labs/ch09_speculative.py --quick --out ")
    assert prov["device"]["kind"] == "cpu" and prov["calc_gpu_key"] is None
    assert prov["model"]["random_weights"] and prov["model"]["config"]["hidden_size"] == common.QUICK_CONFIG["hidden_size"]
    points = data["points"]
    assert not [p for p in points if p.get("error") or p.get("oom") or p.get("skipped")]
    assert {p["kind"] for p in points} == {"exact", "accept", "lookup", "batch-alpha", "batch"}
    for p in (p for p in points if p["kind"] == "accept"):
        assert [r["gamma"] for r in p["by_gamma"]] == prov["settings"]["gammas"]
        for r in p["by_gamma"]:
            assert 0 <= r["alpha"] <= 1 and 1 <= r["tokens_per_call"] <= r["gamma"] + 1
            a, g = min(r["alpha"], 1.0), r["gamma"]  # (9-1) by hand
            assert r["predicted_tokens_per_call"] == pytest.approx(g + 1 if a == 1 else (1 - a ** (g + 1)) / (1 - a))


def test_speculative_sampling_is_lossless(quick09):
    """Sampled: the 3-token continuations pass the chi-square test at the stated level; keeping every draft token
    (no rejection rule) fails it, so the test has the power to see a wrong distribution. Greedy: identical."""
    _, data, _ = quick09
    e = next(p for p in data["points"] if p["kind"] == "exact")
    assert e["significance"] == ch09.SIGNIFICANCE == 0.001
    assert sum(e["counts"]) == e["samples"] and len(e["exact_p"]) == e["vocab"] ** e["n_new"]
    assert sum(e["exact_p"]) == pytest.approx(1, abs=1e-5)
    assert e["speculative"]["p_value"] > ch09.SIGNIFICANCE
    assert e["naive_draft"]["p_value"] < ch09.SIGNIFICANCE
    assert e["resample_p_bug"]["p_value"] < ch09.SIGNIFICANCE  # the classic bug: the test has the power to see it
    assert sum(e["bug_counts"]) == e["samples"]
    assert e["stats"]["accepted"] < e["stats"]["drafted"]  # the unrelated draft is rejected often: the residual path ran
    assert e["greedy_identical"] == e["greedy_prompts"] == 8
    lookup = [p for p in data["points"] if p["kind"] == "lookup"]
    assert {p["prompt"] for p in lookup} == set(ch09.LOOKUP_KINDS)
    assert all(p["greedy_identical"] and p["first_divergence"] is None for p in lookup if p["temperature"] == 0)
    assert all(p["greedy_identical"] is None for p in lookup if p["temperature"] > 0)


def test_timings_are_interleaved_and_carry_their_spread(quick09):
    _, data, _ = quick09
    for p in (p for p in data["points"] if p["kind"] == "accept"):
        for r in p["by_gamma"]:
            assert len(r["plain_s_samples"]) == len(r["speculative_s_samples"]) == p["repeats"]
            assert r["speedup_p10"] <= r["speedup"] <= r["speedup_p90"]
            # (9-2) with the measured verification ratio v in place of 1
            assert r["predicted_speedup_measured_v"] == pytest.approx(
                r["predicted_tokens_per_call"] / (r["gamma"] * p["c"] + r["v"]))
    calls = []
    order = ch09.interleaved([lambda: calls.append("a"), lambda: calls.append("b")], torch.device("cpu"), 3, warmup=1)
    assert calls == ["a", "b"] + ["a", "b"] * 3 and [len(t) for t in order] == [3, 3]


def test_the_chi_square_design_pools_nothing_at_the_committed_size():
    cpu = torch.device("cpu")
    target = ch09.random_model(ch09.EXACT_CONFIG, cpu, torch.float32, seed=1, logit_std=ch09.EXACT_LOGIT_STD)
    with torch.inference_mode():
        exact = ch09.exact_joint(target, torch.tensor([[0, 1, 2, 3]]), 3, 1.0)
    assert len(exact) == 64 and min(exact) * 3000 >= 5


def test_lossless_with_a_larger_sample_and_another_gamma():
    """Independent of --quick: 1500 fixed seeds, gamma 3, a draft with 2 layers."""
    cpu = torch.device("cpu")
    target = ch09.random_model(ch09.EXACT_CONFIG, cpu, torch.float32, seed=11)
    draft = ch09.random_model(dict(ch09.EXACT_CONFIG, num_hidden_layers=2), cpu, torch.float32, seed=12)
    prompt = torch.tensor([[3, 1, 0]])
    with torch.inference_mode():
        exact = ch09.exact_joint(target, prompt, 2, 1.0)
        counts = [0] * len(exact)
        for seed in range(1500):
            tokens, _ = ch09.speculative_generate(target, ch09.ModelDrafter(draft), prompt, 2, 3, 1.0,
                                                  torch.Generator().manual_seed(seed))
            counts[tokens[0, 0].item() * 4 + tokens[0, 1].item()] += 1
    assert ch09.chi_square_p(counts, exact, 1500)["p_value"] > ch09.SIGNIFICANCE


def test_drafts_leave_the_target_alone():
    cpu = torch.device("cpu")
    config = dict(common.QUICK_CONFIG, num_hidden_layers=3)
    target = ch09.random_model(config, cpu, torch.float32, seed=0)
    ids = torch.randint(0, config["vocab_size"], (1, 9), generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        before = target(input_ids=ids).logits
        draft = ch09.early_exit_draft(target, 1)
        noisy = ch09.noisy_draft(target, 0.5, seed=1)
        bigram = ch09.bigram_target(target)
        assert len(target.model.layers) == 3 and target.config.num_hidden_layers == 3
        assert torch.equal(target(input_ids=ids).logits, before)
        assert len(draft.model.layers) == 1 and draft.model.layers[0] is target.model.layers[0]
        assert draft.lm_head.weight.data_ptr() == target.lm_head.weight.data_ptr()
        assert not torch.equal(noisy(input_ids=ids).logits, before)
        assert not torch.equal(bigram(input_ids=ids).logits, before)
        # the early-exit draft is the target's first layer, its norm and its head
        h = target.model(input_ids=ids, output_hidden_states=True).hidden_states[1]
        assert torch.allclose(draft(input_ids=ids).logits, target.lm_head(target.model.norm(h)), atol=1e-5)


def test_runner_rollback_matches_a_fresh_prefill():
    cpu = torch.device("cpu")
    model = ch09.random_model(common.QUICK_CONFIG, cpu, torch.float32, seed=0)
    ids = torch.randint(0, 512, (1, 12), generator=torch.Generator().manual_seed(1))
    with torch.inference_mode():
        r = ch09.Runner(model)
        r.logits(ids)
        r.rollback(7)
        again = r.logits(ids[:, :9], keep=2)
        fresh = model(input_ids=ids[:, :9]).logits[:, -2:]
    assert torch.allclose(again, fresh, atol=1e-4)


def test_chi_square_by_hand():
    r = ch09.chi_square_p([50, 50], [0.5, 0.5], 100)
    assert r["chi2"] == 0 and r["p_value"] == pytest.approx(1)
    r = ch09.chi_square_p([60, 40], [0.5, 0.5], 100)  # (10^2 + 10^2) / 50 = 4, 1 dof: p = 0.0455
    assert r["chi2"] == pytest.approx(4) and r["p_value"] == pytest.approx(0.0455, abs=1e-4)
    r = ch09.chi_square_p([97, 1, 2], [0.98, 0.01, 0.01], 100)  # two cells under 5 expected: pooled
    assert r["cells"] == 2 and r["dof"] == 1


def test_lookup_drafter():
    d = ch09.LookupDrafter(vocab=10, max_n=3)
    seq = torch.tensor([[1, 2, 3, 4, 5, 9, 1, 2, 3]])
    tokens, q = d.propose(seq, 3, 0.0, None)
    assert tokens.tolist() == [[4, 5, 9]] and q.shape == (1, 3, 10) and q[0, 0, 4] == 1
    tokens, _ = d.propose(torch.tensor([[1, 2, 3]]), 3, 0.0, None)
    assert tokens.shape == (1, 0)  # nothing to look up: a plain decoding step


def test_copy_prompt_starts_on_a_loop_the_prompt_holds_twice():
    """The first H200 run's copy text (vocabulary 128,256, greedy from a random token) never repeated in 160
    tokens; the copy prompt now starts on a cycle of the bigram map of at most half the prompt's length."""
    cfg = dict(common.QUICK_CONFIG, vocab_size=512)
    bigram = ch09.bigram_target(ch09.random_model(cfg, torch.device("cpu"), torch.float32, seed=0))
    start, period = ch09.bigram_cycle_start(bigram, 32, chunk=100)
    assert period is not None and 1 <= period <= 16
    text = ch09.plain_generate(bigram, torch.tensor([[start]]), 2 * period, 0.0, torch.Generator())[0].tolist()
    assert text[period - 1] == start and text[:period] == text[period:]


def test_gpu_defaults_only_replace_what_the_reader_left_alone():
    args = ch09.parse_args(["--repeats", "5"])
    assert args.gpu_values == {k: v for k, v in ch09.GPU_VALUES.items() if k != "repeats"}
    assert ch09.parse_args(["--quick"]).gpu_values == {}


def test_quick_figures(quick09):
    _, _, out = quick09
    langs = ["zh", "en"] if common.cjk_font() else ["en"]
    assert {f.name for f in (out / "figures").glob("*.svg")} == {f"ch09-cpu-{n}_{lang}.svg" for n in FIGURES for lang in langs}


def test_plot_only(quick09, tmp_path):
    _, data, _ = quick09
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "ch09-cpu.json").write_text(json.dumps(data))
    assert ch09.main(["--plot-only", "--out", str(tmp_path)]) == 0
    assert len(list((tmp_path / "figures").glob("ch09-cpu-*_en.svg"))) == len(FIGURES)
    assert ch09.main(["--plot-only", "--out", str(tmp_path / "empty")]) == 2


def test_help():
    proc = subprocess.run([sys.executable, str(LABS / "ch09_speculative.py"), "--help"], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0
    for option in ("--quick", "--out", "--plot-only", "--parts", "--gammas", "--exit-layers", "--sigmas", "--batches"):
        assert option in proc.stdout


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--parts", "exact,vibes"], "unknown part(s) vibes"),
        (["--gammas", "0"], "positive integers"),
        (["--sigmas", "-1"], "non-negative numbers"),
        (["--samples", "0"], "must be >= 1"),
        (["--temperature", "-0.5"], "--temperature must be >= 0"),
        (["--repredict"], "goes with --plot-only"),
    ],
)
def test_bad_arguments_exit_nonzero_with_a_message(argv, message, capsys):
    with pytest.raises(SystemExit) as exc:
        ch09.main(["--quick", *argv])
    assert exc.value.code == 2
    assert message in capsys.readouterr().err


def test_too_many_exit_layers_is_an_error():
    with pytest.raises(SystemExit, match="fewer layers"):
        ch09.main(["--quick", "--exit-layers", "2", "--parts", "accept", "--out", "/nonexistent/never-written"])


COMMITTED = sorted((ROOT / "docs" / "assets" / "labs" / ch09.LAB / "data").glob("*.json"))


@pytest.mark.parametrize("data_path", COMMITTED, ids=[p.name for p in COMMITTED])
def test_committed_data_is_lossless(data_path):
    """A committed run passed its own exactness test (its figures are checked in tests/test_labs.py). The test runs
    on the CPU whatever the device, so a GPU run leaves it out (`--parts` without exact) and may be cut short by
    its time budget; the CPU run is complete and has it."""
    data = common.load_data(data_path)
    exact = [p for p in data["points"] if p["kind"] == "exact"]
    if data["provenance"]["device"]["kind"] == "cpu":
        assert data["status"] == "complete" and len(exact) == 1
    else:
        assert "exact" not in data["provenance"]["settings"]["parts"] and not exact
    for e in exact:
        assert e["speculative"]["p_value"] > e["significance"] > e["naive_draft"]["p_value"]
        assert e["resample_p_bug"]["p_value"] < e["significance"] and e["speculative"]["pooled_cells"] == 0


def test_gpu_runs_get_both_thresholds_from_calc():
    """With a known GPU the batch figure marks where a plain step and a verification turn compute-bound (calc's
    roofline bound, parameters spelled as calc spells them)."""
    prov = {"calc_gpu_key": "h100-sxm", "model": {"calc_params": {"model": "llama-3.1-8b"}, "weights": "bf16"}}
    short = ch09.predict_critical_batch(prov, 128, gamma=4)
    assert short["engine"] == "ideal" and short["verify_critical_batch"] < short["critical_batch"]
    long = ch09.predict_critical_batch(prov, 512, gamma=4)
    assert long["critical_batch"] is None and long["verify_critical_batch"] is not None
    assert ch09.predict_critical_batch({"calc_gpu_key": None}, 128) is None
