"""The chapter 7 lab (labs/ch07_batching.py) on the CPU: the continuous-batching loop (whole prompts or chunked
prefill) and the static batches produce, token for token, what per-request greedy decoding with Hugging Face's
generate() produces; --quick runs end to end with provenance; the step-count arithmetic of the ideal speedup;
--help, bad arguments and --plot-only behave as documented.
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

import ch07_batching as ch07  # noqa: E402
import common  # noqa: E402

FIGURES = {"throughput", "occupancy", "latency", "chunked"}


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return common.build_model(common.QUICK_CONFIG, torch.device("cpu"), torch.float32)


@pytest.fixture(scope="module")
def workload():
    # more requests than slots, prompts and outputs of different lengths, one single-token output
    reqs = ch07.make_workload(9, (3, 30), (1, 20), common.QUICK_CONFIG["vocab_size"], seed=5)
    reqs[4]["output_len"] = 1
    return reqs


@pytest.fixture(scope="module")
def reference(model, workload):
    return [ch07.greedy_reference(model, r["prompt"], r["output_len"]) for r in workload]


@pytest.mark.parametrize("budget", [None, 7])
def test_continuous_batching_does_not_change_outputs(model, workload, reference, budget):
    engine = ch07.Engine(model, slots=3, max_len=64)
    trace = ch07.Trace(workload, torch.device("cpu"))
    ch07.serve_continuous(engine, workload, trace, token_budget=budget)
    assert trace.outputs == reference
    # slots were refilled: more requests than slots ran, and no step ran more decode rows than slots
    assert max(s["decode"] for s in trace.steps) <= 3
    if budget:
        assert max(s["decode"] + s["prefill_tokens"] for s in trace.steps) <= budget


def test_static_batching_does_not_change_outputs(model, workload, reference):
    engine = ch07.Engine(model, slots=3, max_len=64)
    trace = ch07.Trace(workload, torch.device("cpu"))
    ch07.serve_static(engine, workload, trace)
    assert trace.outputs == reference


def test_late_arrivals_wait_for_their_step(model, workload):
    reqs = [dict(r, arrival_step=3 * i) for i, r in enumerate(workload[:4])]
    engine = ch07.Engine(model, slots=4, max_len=64)
    trace = ch07.Trace(reqs, torch.device("cpu"))
    ch07.serve_continuous(engine, reqs, trace)
    assert all(trace.arrival[i] <= trace.times[i][0] for i in range(4))
    assert [len(o) for o in trace.outputs] == [r["output_len"] for r in reqs]


class _ShapeLog:
    """Stands in for torch.nn.functional inside the lab: records every attention shape the first time it is met
    (on a GPU, cuDNN attention builds a plan at that moment)."""

    def __init__(self, real):
        self.real, self.seen, self.new = real, set(), 0

    def __getattr__(self, name):
        return getattr(self.real, name)

    def scaled_dot_product_attention(self, q, k, v, attn_mask=None, is_causal=False):
        key = (tuple(q.shape), tuple(k.shape), None if attn_mask is None else tuple(attn_mask.shape), is_causal)
        if key not in self.seen:
            self.seen.add(key)
            self.new += 1
        return self.real.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask, is_causal=is_causal)


def _serve_timed(engine, policy, reqs):
    """One policy's run over the workload under a fresh trace, as the lab times it."""
    serve = ch07.serve_static if policy == "static" else ch07.serve_continuous
    serve(engine, reqs, ch07.Trace(reqs, torch.device("cpu")))


@pytest.mark.parametrize("order", [("static", "continuous"), ("continuous", "static")])
def test_timed_runs_meet_no_new_attention_shape(model, monkeypatch, order):
    """The H200 run before this fix: static, measured first, met each new attention length for the first time
    and paid for it; continuous found them all seen. Now warm_up covers every shape either policy meets, so
    neither timed run meets one, whichever goes first, and decode reads only a few rounded lengths."""
    log = _ShapeLog(ch07.F)
    monkeypatch.setattr(ch07, "F", log)
    reqs = ch07.make_workload(20, (4, 40), (1, 30), common.QUICK_CONFIG["vocab_size"], seed=3)
    max_len = 40 + 30 + 1
    for policy in order:
        engine = ch07.Engine(model, slots=4, max_len=max_len)
        ch07.warm_up(engine, [len(r["prompt"]) for r in reqs])
        before = log.new
        _serve_timed(engine, policy, reqs)
        assert log.new == before, f"{policy} met {log.new - before} attention shape(s) for the first time while timed"
    decode_lens = {key[1][2] for key in log.seen if key[2] is not None and key[0][0] == 4}
    assert decode_lens <= set(range(ch07.LEN_BUCKET, max_len + ch07.LEN_BUCKET, ch07.LEN_BUCKET))  # whole blocks only


@pytest.mark.parametrize("order", [("static", "continuous"), ("continuous", "static")])
def test_without_warm_up_the_policy_timed_first_meets_the_new_shapes(model, monkeypatch, order):
    """The first H200 run's order effect, by count: a one-off cost per new attention shape (here the count of first
    meetings, _ShapeLog) lands on whichever policy runs first when nothing is warmed up, in either order, and on
    neither once warm_up has run (test_timed_runs_meet_no_new_attention_shape)."""
    log = _ShapeLog(ch07.F)
    monkeypatch.setattr(ch07, "F", log)
    reqs = ch07.make_workload(20, (4, 40), (1, 30), common.QUICK_CONFIG["vocab_size"], seed=3)
    met = {}
    for policy in order:
        engine = ch07.Engine(model, slots=4, max_len=40 + 30 + 1)
        engine.step({}, [(0, [1] * 8, 0)])  # first calls only, as the old lab did: no shape warm-up
        before = log.new
        _serve_timed(engine, policy, reqs)
        met[policy] = log.new - before
    assert met[order[0]] > 0 and met[order[1]] == 0, met


@pytest.mark.parametrize("warm", [True, False])
def test_outputs_exact_across_length_buckets(model, warm):
    """Exactness when decode attention spans several LEN_BUCKET blocks (max_len 141, a cache of 192) and after
    warm_up has left stale keys in every slot: static, continuous and chunked continuous batching each give
    per-request greedy decoding's tokens (fp32 on the CPU)."""
    reqs = ch07.make_workload(10, (40, 80), (20, 60), common.QUICK_CONFIG["vocab_size"], seed=11)
    ref = [ch07.greedy_reference(model, r["prompt"], r["output_len"]) for r in reqs]
    for policy, budget in (("static", None), ("continuous", None), ("continuous", 16)):
        engine = ch07.Engine(model, slots=3, max_len=141)
        assert engine.cache_len == 3 * ch07.LEN_BUCKET
        if warm:
            ch07.warm_up(engine, [len(r["prompt"]) for r in reqs])
        trace = ch07.Trace(reqs, torch.device("cpu"))
        if policy == "static":
            ch07.serve_static(engine, reqs, trace)
        else:
            ch07.serve_continuous(engine, reqs, trace, token_budget=budget)
        assert trace.outputs == ref, (policy, budget)


def test_sdpa_backends_recorded(model):
    got = ch07.sdpa_backends(model, slots=3, max_len=64)
    assert set(got) == {"decode", "prefill", "chunk"} and all(isinstance(v, str) and v for v in got.values())
    assert ch07.F is torch.nn.functional  # the probe put the real module back


def test_chunked_timed_runs_meet_no_new_attention_shape(model, monkeypatch):
    log = _ShapeLog(ch07.F)
    monkeypatch.setattr(ch07, "F", log)
    reqs = [{"prompt": list(range(1, 9)), "output_len": 12, "arrival_step": 0} for _ in range(2)]
    reqs.append({"prompt": list(range(1, 41)), "output_len": 2, "arrival_step": 4})
    seen = []
    real_trace = ch07.Trace

    class CountingTrace(real_trace):  # the timed passes are the ones measure_chunked keeps (after its warm pass)
        def start(self):
            seen.append(log.new)
            super().start()

    monkeypatch.setattr(ch07, "Trace", CountingTrace)
    fields = ch07.measure_chunked(model, reqs, 2, 3, 60, torch.device("cpu"), token_budget=12, repeats=2)
    assert fields["warm_pass"] and len(seen) == 3 and seen[1] == seen[2] == log.new  # nothing new after the warm pass


def test_first_meetings_replay():
    """The render-time replay behind the pre-fix first-shape figure: static batching, replayed first, meets every
    decode and prompt length; continuous batching, replayed next, meets none; each replay takes the schedule's steps."""
    settings = {"requests": 40, "prompt_min": 8, "prompt_max": 60, "output_min": 2, "output_max": 50, "seed": 0,
                "slots": 8}
    meet = ch07.first_meetings(settings)
    outs = [r["output_len"] for r in ch07.make_workload(40, (8, 60), (2, 50), 2, 0)]
    ideal = ch07.ideal_speedup(outs, 8)
    assert len(meet["static"]) == ideal["static_steps"] and len(meet["continuous"]) == ideal["schedule_steps"]
    assert sum(m["decode"] for m in meet["static"]) > 0 and sum(m["prompt"] for m in meet["static"]) > 0
    assert sum(m["decode"] + m["prompt"] for m in meet["continuous"]) == 0
    # windows of 3 steps over a fake trace: a window of only new-length decode steps has share 1
    occ = [[k, 8, 0.01 * k] for k in range(0, len(meet["static"]), 3)] + [[len(meet["static"]), 0, 1.0]]
    win = ch07.new_shape_windows({"occupancy": occ}, meet["static"])
    assert win and all(0 <= w[2] <= 1 for w in win) and any(w[2] == 1 for w in win)


def test_ideal_speedup_arithmetic():
    ideal = ch07.ideal_speedup([10, 2, 2, 2, 4, 4], slots=2)
    assert ideal["static_steps"] == 10 + 2 + 4
    assert ideal["packed_steps"] == 12
    assert ideal["ratio"] == pytest.approx(16 / 12)
    assert ch07.ideal_speedup([5] * 8, slots=4)["ratio"] == 1.0
    # the real FCFS schedule drains: slot 0 runs 10, slot 1 runs 2+2+2+4 = 10, then the last 4 alone
    assert ch07.schedule_steps([10, 2, 2, 2, 4, 4], slots=2) == 14
    assert ch07.ideal_speedup([10, 2, 2, 2, 4, 4], slots=2)["schedule_ratio"] == pytest.approx(16 / 14)
    assert ch07.schedule_steps([5] * 8, slots=4) == 10


def test_tpot_follows_the_books_definition():
    reqs = [{"prompt": [1], "output_len": 3}]
    trace = ch07.Trace(reqs, torch.device("cpu"))
    trace.times, trace.arrival, trace.steps = [[1.0, 1.5, 3.0]], [0.0], [{"decode": 1, "prefill_tokens": 0, "t": 3.0}]
    m = ch07.trace_metrics(trace, reqs, wall_s=3.0)
    assert m["ttft_s"]["p50"] == 1.0 and m["e2e_s"]["p50"] == 3.0
    assert m["tpot_s"]["p50"] == pytest.approx((3.0 - 1.0) / 2)  # (E2E - TTFT) / (N - 1)
    assert m["useful_tok_per_s"] == pytest.approx(1.0)


@pytest.fixture(scope="module")
def quick07(tmp_path_factory):
    out = tmp_path_factory.mktemp("ch07")
    rc = ch07.main(["--quick", "--out", str(out), "--threads", "1"])
    return rc, json.loads((out / "data" / "ch07-cpu.json").read_text()), out


def test_quick_run_data_and_provenance(quick07):
    rc, data, out = quick07
    assert rc == 0 and data["status"] == "complete"
    prov = data["provenance"]
    assert prov["lab"] == ch07.LAB and prov["command"].startswith("python labs/ch07_batching.py --quick --out ")
    assert prov["device"]["kind"] == "cpu" and prov["calc_gpu_key"] is None
    points = data["points"]
    assert not [p for p in points if p.get("error") or p.get("oom") or p.get("skipped")]
    points = [p for p in points if p["kind"] != "schedule"] + [p for p in points if p["kind"] == "schedule"]
    tp = {p["policy"]: p for p in points if p["kind"] == "throughput"}
    assert set(tp) == {"static", "continuous"}
    # same requests, same greedy tokens, whatever the schedule
    assert tp["static"]["outputs_sha"] == tp["continuous"]["outputs_sha"]
    assert tp["static"]["useful_tokens"] == tp["continuous"]["useful_tokens"]
    # the static batches ran exactly the steps the arithmetic says: per batch, one prefill step (which gives the
    # first token) and one decode step per further token of its longest request
    assert tp["static"]["steps"] == tp["static"]["ideal"]["static_steps"]
    # ... and the continuous loop exactly the steps of the schedule replay (drain included)
    assert tp["continuous"]["steps"] == tp["continuous"]["ideal"]["schedule_steps"]
    # both compute every slot's row; free rows are padding, fewer of them in continuous batching
    assert tp["static"]["decode_row_utilization"] < tp["continuous"]["decode_row_utilization"] < 1.0
    assert tp["continuous"]["speedup"]["schedule_bound"] == tp["continuous"]["ideal"]["schedule_ratio"]
    assert tp["static"]["gpu_busy_fraction"] is None and 0 < tp["static"]["forward_wall_fraction"] <= 1
    assert tp["static"]["timed_first"] == tp["continuous"]["timed_first"] == ["static"]  # --quick: one repeat
    assert set(prov["settings"]["sdpa_backends"]) == {"decode", "prefill", "chunk"}
    assert prov["settings"]["cudnn_version"] is None and prov["settings"]["sdpa_cudnn"] is None
    sched = {p["workload"]: p for p in points if p["kind"] == "schedule"}
    assert set(sched) == {"issue", "run"}
    assert all(p["predicted"] is None for p in points if p["kind"] in ("throughput", "equal"))
    equal = [p for p in points if p["kind"] == "equal"]
    assert equal and equal[0]["ideal"]["ratio"] == 1.0
    chunked = {p["token_budget"]: p for p in points if p["kind"] == "chunked"}
    assert set(chunked) == {None, prov["settings"]["token_budget"]}
    figs = {f.name for f in (out / "figures").iterdir()}
    for lang in common.plot_languages():
        assert {f"ch07-cpu-{n}_{lang}.svg" for n in FIGURES} <= figs


def test_plot_only_rerenders(quick07, tmp_path):
    _, _, out = quick07
    for f in (out / "figures").iterdir():
        f.unlink()
    assert ch07.main(["--plot-only", "--out", str(out)]) == 0
    assert len(list((out / "figures").iterdir())) == len(FIGURES) * len(common.plot_languages())
    assert ch07.main(["--plot-only", "--out", str(tmp_path)]) == 2  # no data files there


def run_cli(*args):
    return subprocess.run([sys.executable, str(LABS / "ch07_batching.py"), *args], capture_output=True, text=True,
                          timeout=120)


def test_help():
    proc = run_cli("--help")
    assert proc.returncode == 0
    for option in ("--quick", "--out", "--plot-only", "--slots", "--token-budget", "--output-lens"):
        assert option in proc.stdout


@pytest.mark.parametrize("args, message", [
    (["--parts", "throughput,bogus"], "unknown part"),
    (["--output-lens", "511,16"], "MIN <= MAX"),
    (["--prompt-lens", "64"], "MIN,MAX"),
    (["--slots", "0"], ">= 1"),
    (["--token-budget", "8", "--chunk-decoders", "8"], "no room"),
])
def test_bad_arguments(args, message):
    proc = run_cli("--quick", *args)
    assert proc.returncode == 2 and message in proc.stderr
