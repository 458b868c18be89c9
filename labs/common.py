"""Helpers shared by the labs: model construction, timing, provenance, NVML sampling, data files, figures.

Each lab is a script that reads top to bottom; only what two labs need lives here.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import os
import platform
import shlex
import subprocess
import sys
import threading
import time
import traceback
from datetime import datetime, timezone
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:  # a lab runs as `python labs/x.py`; calc/ sits at the repository root
    sys.path.insert(0, str(REPO))

# How a run is described in words (figure footers; the site build writes the line under a figure with the same
# module, which has no torch): labs/describe.py, next to this file.
from describe import describe_run  # noqa: E402, F401

# Not a real model: small enough for the test suite to run every lab on a CPU in seconds, but with the
# features of the real ones (grouped-query attention, Llama-3 RoPE scaling, tied embeddings).
QUICK_CONFIG = {
    "model_type": "llama",
    "hidden_size": 64,
    "intermediate_size": 128,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "head_dim": 16,
    "vocab_size": 512,
    "max_position_embeddings": 4096,
    "rms_norm_eps": 1e-5,
    "rope_theta": 500000.0,
    "rope_scaling": {"rope_type": "llama3", "factor": 32.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                     "original_max_position_embeddings": 256},
    "tie_word_embeddings": True,
}

DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}


# ---------------------------------------------------------------------------------------------------------
# Arguments, device, model


class HelpFormatter(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    """--help keeps the module docstring's layout and shows every option's default."""


def lab_parser(doc: str, default_out: Path, quick_out: Path) -> argparse.ArgumentParser:
    """The argument parser of a lab, with the options every lab has; the lab adds its own sweeps.

    `doc` is the lab's module docstring: its first paragraph describes the lab, the rest is the --help epilog."""
    ap = argparse.ArgumentParser(description=doc.split("\n\n")[0], formatter_class=HelpFormatter,
                                 epilog="\n\n".join(doc.split("\n\n")[1:]))
    ap.add_argument("--quick", action="store_true", help="tiny model on the CPU, small sweeps (seconds)")
    ap.add_argument("--model-preset", default="llama-3.1-8b", help="model shape from calc's registry (random weights)")
    ap.add_argument("--model", help="a checkpoint instead: local path or Hugging Face hub id")
    ap.add_argument("--device", help="cuda, cuda:1 or cpu; None: cuda if present")
    ap.add_argument("--dtype", choices=sorted(DTYPES), default="bf16", help="weights and KV cache of the model")
    ap.add_argument("--budget-s", type=float, help="stop measuring after this many seconds (points left are skipped)")
    ap.add_argument("--out", type=Path, help=f"output folder (default {default_out.relative_to(REPO)}; "
                                             f"with --quick {quick_out.relative_to(REPO)})")
    ap.add_argument("--note", help="free text stored in the provenance, e.g. what machine this is")
    ap.add_argument("--plot-only", action="store_true", help="only re-render figures from <out>/data/*.json")
    ap.add_argument("--repredict", action="store_true", help="with --plot-only: refresh calc predictions in the data")
    return ap


def finish_lab_args(ap: argparse.ArgumentParser, args, quick_values: dict, default_out: Path, quick_out: Path):
    """The checks and defaults every lab shares. With --quick: the tiny model on the CPU, and `quick_values`
    for each option the reader left at its default."""
    if args.quick:
        args.model_preset = None
        for name, value in {**quick_values, "device": args.device or "cpu"}.items():
            if getattr(args, name) == ap.get_default(name):
                setattr(args, name, value)
    if args.repredict and not args.plot_only:
        ap.error("--repredict goes with --plot-only")
    args.out = args.out or (quick_out if args.quick else default_out)
    return args


def int_list(text: str) -> list[int]:
    """argparse type for "128,256,512"."""
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"expected positive integers, got {text!r}")
    return values


def float_list(text: str, positive: bool = False) -> list[float]:
    """argparse type for "0.1,0.3": non-negative numbers, or with positive=True numbers above zero."""
    try:
        values = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from None
    if not values or min(values) < 0 or (positive and min(values) == 0):
        raise argparse.ArgumentTypeError(f"expected {'positive' if positive else 'non-negative'} numbers, got {text!r}")
    return values


def pick_device(name: str | None) -> torch.device:
    """`None` means the GPU if there is one. Asking for a GPU that is not there is an error, not a fallback."""
    if name is None:
        name = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit(f"error: --device {name}: this torch build sees no CUDA GPU (torch {torch.__version__})")
    if device.type not in ("cuda", "cpu"):
        raise SystemExit(f"error: --device {name}: only cuda and cpu are supported")
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", torch.cuda.current_device())
    return device


def model_config(preset: str | None, quick: bool) -> dict:
    """The published config.json fields of a model. Real shapes come from calc's registry (one source of truth)."""
    if quick:
        return dict(QUICK_CONFIG)
    try:
        from calc.registry import hf_config
    except ImportError as e:
        raise SystemExit(f"error: calc's model registry is not importable ({e}); use --quick or --model PATH") from None
    try:
        return dict(hf_config(preset))
    except KeyError:
        raise SystemExit(f"error: --model-preset {preset!r} is not in calc's registry") from None


def build_model(config: dict | None, device: torch.device, dtype: torch.dtype, checkpoint: str | None = None):
    """A causal LM on `device`: random weights from `config`, or a real `checkpoint` (local path or hub id).

    Random weights are enough here: timings and memory do not depend on weight values. Building under
    `torch.device(device)` allocates the weights on the GPU directly instead of copying them there.
    """
    from transformers import AutoConfig, AutoModelForCausalLM

    if checkpoint:
        model = AutoModelForCausalLM.from_pretrained(checkpoint, dtype=dtype, attn_implementation="sdpa")
        model = model.to(device)
    else:
        cfg = AutoConfig.for_model(**config)
        with torch.device(device):
            model = AutoModelForCausalLM.from_config(cfg, dtype=dtype, attn_implementation="sdpa")
    model.eval()
    # Generate exactly the requested number of tokens: no EOS stop (random weights emit anything). Not
    # min_new_tokens, whose logits processor costs tens of ms per step.
    gen = model.generation_config
    gen.eos_token_id = None
    gen.pad_token_id = 0
    gen.do_sample = False
    return model


def weight_bytes(model) -> int:
    """Bytes of the parameters (a tied embedding counted once)."""
    return sum(p.numel() * p.element_size() for p in model.parameters())


def load_lab_model(args, device: torch.device):
    """The model a lab measures, from its --model-preset / --quick / --model / --dtype arguments, and the
    provenance entry that describes it, including the parameters calc needs to predict for the same model."""
    config = None if args.model else model_config(args.model_preset, args.quick)
    label = "tiny (--quick)" if args.quick else args.model or args.model_preset
    print(f"building {label} ({args.dtype}) on {device} ...", flush=True)
    model = build_model(config, device, DTYPES[args.dtype], checkpoint=args.model)
    # calc knows the presets by name; anything else (the tiny config, a checkpoint) it reads as a config.json
    calc_params = {"model": args.model_preset} if config and not args.quick else {"config": model.config.to_dict()}
    entry = {"label": label, "config": config or model.config.to_dict(), "weights": args.dtype,
             "random_weights": not args.model, "params": sum(p.numel() for p in model.parameters()),
             "weight_bytes": weight_bytes(model), "calc_params": calc_params}
    return model, entry


def decode_bytes_per_step(model, batch: int, context: int) -> int:
    """Bytes one decode step must read: every weight matrix once, plus the KV cache of `context` tokens.

    The input embedding is a table look-up (one row per token), so an untied embedding table is not read.
    """
    cfg = model.config
    nbytes = weight_bytes(model)
    emb = model.get_input_embeddings().weight
    if emb.data_ptr() != model.get_output_embeddings().weight.data_ptr():
        nbytes -= emb.numel() * emb.element_size()
    head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads
    kv_per_token = 2 * cfg.num_hidden_layers * cfg.num_key_value_heads * head_dim * emb.element_size()
    return nbytes + batch * context * kv_per_token


def free_memory(device: torch.device) -> None:
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


# ---------------------------------------------------------------------------------------------------------
# Timing


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def block(device: torch.device, event=None) -> None:
    """Wait for the GPU, or for one event on it, in a blocking call (time_it's default ``wait``)."""
    if event is not None:
        event.synchronize()
    else:
        sync(device)


def time_it(fn, device: torch.device, warmup: int = 1, repeats: int = 5, wait=block) -> list[float]:
    """Seconds per call of `fn`, after `warmup` calls: CUDA events on a GPU, perf_counter on a CPU. ``wait(device,
    event=None)`` waits for the GPU; a lab that must stay interruptible passes a polling wait (ch08's wait_for)."""
    for _ in range(warmup):
        fn()
    wait(device)
    times = []
    for _ in range(repeats):
        if device.type == "cuda":
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            end.record()
            wait(device, end)
            times.append(start.elapsed_time(end) / 1e3)
        else:
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
    return times


def summarize(samples: list[float]) -> dict:
    """Median with spread; the raw samples are kept so any other statistic can be computed later."""
    import numpy as np

    a = np.asarray(samples, dtype=float)
    return {
        "median": float(np.median(a)),
        "p10": float(np.percentile(a, 10)),
        "p90": float(np.percentile(a, 90)),
        "min": float(a.min()),
        "max": float(a.max()),
        "n": int(a.size),
        "samples": [float(x) for x in a],
    }


def bandwidth_op(nbytes: int, op: str, device: torch.device):
    """A copy (read + write counted, as STREAM does) or a read-only pass (a sum) over a buffer of `nbytes`.
    Returns (fn, bytes moved per call). ch04 sweeps this over buffer sizes; ch03 divides its MBU by it."""
    src = torch.ones(nbytes // 4, device=device, dtype=torch.float32)
    if op == "copy":
        dst = torch.empty_like(src)

        def fn():
            dst.copy_(src)
    elif op == "read":
        acc = torch.zeros((), device=device, dtype=torch.float32)

        def fn():
            torch.sum(src, dim=0, out=acc)
    else:
        raise ValueError(f"bandwidth op {op!r}: expected copy or read")
    return fn, (2 if op == "copy" else 1) * src.numel() * 4


def memory_bandwidth(device: torch.device, nbytes: int = 1 << 30, op: str = "read", repeats: int = 10) -> dict:
    """What a decode step can hope for: the median GB/s of a read-only pass over a buffer far larger than L2.

    Decode reads weights and KV and writes almost nothing, so MBU divides by a read bandwidth, and by the median
    (a typical run), not the best one."""
    fn, moved = bandwidth_op(nbytes, op, device)
    times = time_it(fn, device, warmup=2, repeats=repeats)
    fn = None  # free the buffer before the next measurement
    free_memory(device)
    med = summarize(times)
    return {"op": op, "buffer_bytes": nbytes, "bytes_moved": moved, "seconds": med,
            "GBps": moved / med["median"] / 1e9, "GBps_best": moved / med["min"] / 1e9}


# ---------------------------------------------------------------------------------------------------------
# Provenance


def _nvml():
    """The pynvml module (package nvidia-ml-py), initialised; raises if NVML is not usable here."""
    import pynvml

    pynvml.nvmlInit()
    return pynvml


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _load_average() -> list[float] | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except (AttributeError, OSError):
        return None


def source_sha256() -> str:
    """One hash of the code that produced the numbers (labs/*.py, calc/**): identifies the version even on a
    copy of the tree without .git; anyone can recompute it from a checkout."""
    import hashlib

    h = hashlib.sha256()
    files = sorted([*(REPO / "labs").glob("*.py"), *(p for p in (REPO / "calc").rglob("*") if p.suffix in (".py", ".json"))])
    for path in files:
        h.update(path.relative_to(REPO).as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()


def _git() -> dict:
    """The commit the code came from. Without a git checkout (a copy of the tree on a rented GPU machine) the
    commit comes from LAB_GIT_COMMIT (run_gpu.sh's caller sets it) and `dirty` is unknown: null."""
    def git(*args):
        run = subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True, timeout=10)
        if run.returncode:
            raise subprocess.SubprocessError(run.stderr.strip())
        return run.stdout.strip()

    info = {"source_sha256": source_sha256()}
    try:
        info.update(commit=git("rev-parse", "HEAD") or None, dirty=bool(git("status", "--porcelain", "--", "labs", "calc")),
                    commit_from="git")
    except (OSError, subprocess.SubprocessError):
        env = os.environ.get("LAB_GIT_COMMIT", "").strip() or None
        info.update(commit=env, dirty=None, commit_from="LAB_GIT_COMMIT" if env else None)
    return info


def device_info(device: torch.device) -> dict:
    """What the numbers were measured on. No hostname; for a CPU the model and core count."""
    if device.type == "cpu":
        return {"kind": "cpu", "name": _cpu_model(), "cores": os.cpu_count(), "torch_threads": torch.get_num_threads()}
    props = torch.cuda.get_device_properties(device)
    info = {
        "kind": "cuda",
        "name": props.name,
        "count": torch.cuda.device_count(),
        "compute_capability": f"{props.major}.{props.minor}",
        "sm_count": props.multi_processor_count,
        "memory_bytes": props.total_memory,
        "host_cpu": _cpu_model(),
        "host_cores": os.cpu_count(),
    }
    try:
        nv = _nvml()
        h = nv.nvmlDeviceGetHandleByIndex(device.index or 0)
        info.update(
            driver=nv.nvmlSystemGetDriverVersion(),
            power_limit_w=nv.nvmlDeviceGetEnforcedPowerLimit(h) / 1000,
            sm_clock_max_mhz=nv.nvmlDeviceGetMaxClockInfo(h, nv.NVML_CLOCK_SM),
            mem_clock_max_mhz=nv.nvmlDeviceGetMaxClockInfo(h, nv.NVML_CLOCK_MEM),
            sm_clock_mhz=nv.nvmlDeviceGetClockInfo(h, nv.NVML_CLOCK_SM),
            mem_clock_mhz=nv.nvmlDeviceGetClockInfo(h, nv.NVML_CLOCK_MEM),
            nvml="available",
        )
    except Exception as e:  # NVML missing or not permitted: say so, measure anyway
        info["nvml"] = f"unavailable: {type(e).__name__}: {e}"
    return info


def provenance(lab: str, script: str, argv: list[str], device: torch.device, note: str | None = None) -> dict:
    """Everything needed to know what a number means and to rerun it: device, software, commit, command."""
    import transformers

    dev = device_info(device)
    return {
        "lab": lab,
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "command": shlex.join(["python", f"labs/{script}", *argv]),
        "git": _git(),
        "software": {
            "python": platform.python_version(),
            "torch": torch.__version__,
            "cuda": torch.version.cuda,
            # PyTorch's SDPA puts cuDNN first only above cuDNN 9.15.0 (chapter 11): the runtime version, e.g. 91500;
            # None where torch has no cuDNN (a CPU build)
            "cudnn": _cudnn_version(),
            "transformers": transformers.__version__,
        },
        "machine": {"os": platform.platform(terse=True), "cpu": _cpu_model(), "cpu_cores": os.cpu_count(),
                    # other processes competing for the CPU make host-side timings (and a CPU run) slower
                    "load_average_at_start": _load_average()},
        "device": dev,
        "calc_gpu_key": match_gpu(dev["name"]) if dev["kind"] == "cuda" else None,
        "note": note,
    }


def _cudnn_version() -> int | None:
    try:
        return torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None
    except Exception:  # a build without cuDNN, or a broken library: record nothing rather than fail the run
        return None


def data_stem(prov: dict) -> str:
    """File-name stem of a run: the lab's chapter and the device, e.g. ch03-h100-sxm. Two labs writing into one
    --out folder never overwrite each other, and --plot-only knows which files are its lab's."""
    return f"{lab_prefix(prov['lab'])}-{device_tag(prov)}"


def lab_prefix(lab: str) -> str:
    """ "ch03-prefill-decode" -> "ch03" """
    return lab.split("-", 1)[0]


def device_tag(prov: dict) -> str:
    """File-name tag of a run: calc's GPU key (e.g. h100-sxm), else a slug of the GPU name, else "cpu"."""
    dev = prov["device"]
    if dev["kind"] == "cpu":
        return "cpu"
    return prov.get("calc_gpu_key") or "".join(c if c.isalnum() else "-" for c in dev["name"].lower()).strip("-")


# ---------------------------------------------------------------------------------------------------------
# calc: predictions and GPU datasheets (absent or unknown GPU -> None, and the figure says so)


def match_gpu(name: str) -> str | None:
    try:
        from calc.registry import match_gpu as match
    except ImportError:
        return None
    try:
        return match(name)
    except Exception:
        return None


def gpu_datasheet(key: str | None) -> dict | None:
    """calc's registry entry of a GPU (bandwidth, dense FLOPS per precision, source URL), or None."""
    if not key:
        return None
    try:
        from calc import registry

        return dict(vars(registry.get_gpu(key)))  # key + the registry's fields, each with its source
    except (ImportError, KeyError):
        return None


def calc_predict(command: str, params: dict) -> dict | None:
    """calc.api.run(command, params), or None when calc is missing or has no model for these inputs."""
    try:
        from calc import api
    except ImportError:
        return None
    try:
        return api.run(command, {k: v for k, v in params.items() if v is not None})
    except Exception as e:
        print(f"  (calc {command} gave no prediction: {type(e).__name__}: {e})", flush=True)
        return None


# ---------------------------------------------------------------------------------------------------------
# NVML sampler


class NvmlSampler:
    """Samples one GPU's utilization, memory, power, clocks and throttle reasons in a background thread.

    Without NVML (a CPU run, or no driver) `available` is False and `reason` says why; nothing raises.
    """

    def __init__(self, index: int = 0, interval_s: float = 0.05):
        self.interval_s, self.samples, self.marks = interval_s, [], []
        self.available, self.reason = False, None
        try:
            self.nv = _nvml()
            self.handle = self.nv.nvmlDeviceGetHandleByIndex(index)
            self.available = True
        except Exception as e:
            self.reason = f"{type(e).__name__}: {e}"
        self._stop = threading.Event()
        self._thread = None
        self.t0 = time.perf_counter()

    def now(self) -> float:
        return time.perf_counter() - self.t0

    def mark(self, label: str) -> None:
        """A phase boundary on the same clock as the samples."""
        self.marks.append({"t": self.now(), "label": label})

    def sample(self) -> dict:
        nv, h = self.nv, self.handle
        util = nv.nvmlDeviceGetUtilizationRates(h)
        mem = nv.nvmlDeviceGetMemoryInfo(h)
        reasons = getattr(nv, "nvmlDeviceGetCurrentClocksEventReasons", None) or nv.nvmlDeviceGetCurrentClocksThrottleReasons
        return {
            "t": self.now(),
            "gpu_util_pct": util.gpu,
            "mem_util_pct": util.memory,
            "mem_used_bytes": mem.used,
            "power_w": nv.nvmlDeviceGetPowerUsage(h) / 1000,
            "sm_clock_mhz": nv.nvmlDeviceGetClockInfo(h, nv.NVML_CLOCK_SM),
            "mem_clock_mhz": nv.nvmlDeviceGetClockInfo(h, nv.NVML_CLOCK_MEM),
            "throttle_reasons": int(reasons(h)),
        }

    def _run(self):
        while not self._stop.wait(self.interval_s):
            try:
                self.samples.append(self.sample())
            except Exception as e:  # a failing query ends sampling, not the measurement
                self.reason = f"sampling stopped: {type(e).__name__}: {e}"
                return

    def __enter__(self):
        if self.available:
            self.t0 = time.perf_counter()
            self._thread = threading.Thread(target=self._run, daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        if self._thread:
            self._thread.join()

    def result(self) -> dict:
        return {
            "available": self.available,
            "reason": self.reason,
            "interval_s": self.interval_s,
            "samples": self.samples,
            "marks": self.marks,
        }


# ---------------------------------------------------------------------------------------------------------
# Data files: written after every point, so an interrupted or OOM-hit sweep keeps what it measured


class LabAbort(RuntimeError):
    """An error that makes every later point meaningless (e.g. a CUDA graph that computes something else):
    DataFile.measure lets it through, so the lab stops loudly instead of recording error points."""


class DataFile:
    """One JSON file per run: {"provenance": ..., "status": ..., "points": [...]}, rewritten atomically."""

    def __init__(self, path: Path, prov: dict, budget_s: float | None = None):
        self.path = Path(path)
        self.doc = {"provenance": prov, "status": "running", "points": []}
        self.deadline = time.monotonic() + budget_s if budget_s else None
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.write()

    def write(self) -> None:
        save_data(self.path, self.doc)

    def out_of_time(self) -> bool:
        return self.deadline is not None and time.monotonic() > self.deadline

    def measure(self, point: dict, measure, device: torch.device, progress: str = "") -> dict:
        """Run `measure()` (returns the measured fields), add them to `point`, write the file.

        A CUDA out-of-memory error becomes a point with "oom": true, any other error a point with "error";
        memory is freed and the sweep goes on.
        Past the time budget the point is recorded as skipped.
        """
        t0 = time.perf_counter()
        label = " ".join(f"{k}={v}" for k, v in point.items())
        if self.out_of_time():
            point["skipped"] = "time budget"
            print(f"{progress} {label}: skipped (time budget)", flush=True)
        else:
            print(f"{progress} {label} ...", end="", flush=True)
            oom = error = None
            try:
                point.update(measure())
            except LabAbort:
                print(" ABORT", flush=True)
                raise
            except torch.cuda.OutOfMemoryError as e:
                oom = str(e).splitlines()[0][:300]
            except Exception as e:  # one broken point (an unsupported shape, an API change) must not end the sweep
                error = f"{type(e).__name__}: {e}".splitlines()[0][:300]
                traceback.print_exc()
            if oom is not None:  # outside the except block, so the traceback's tensors are already gone
                point.update(oom=True, error=oom)
            elif error is not None:
                point["error"] = error
            if oom or error:
                free_memory(device)
            print(f" {'OOM' if oom else 'ERROR ' + error if error else 'done'} ({time.perf_counter() - t0:.1f} s)",
                  flush=True)
        self.doc["points"].append(point)
        self.write()
        return point

    def finish(self, status: str = "complete") -> None:
        self.doc["status"] = status
        self.doc["provenance"]["machine"]["load_average_at_end"] = _load_average()
        self.write()

    @contextlib.contextmanager
    def running(self):
        """Around a lab's sweep: Ctrl-C keeps the points measured so far (status "interrupted"); any other
        failure is written into the file's status and raised; otherwise the status is "complete"."""
        try:
            yield
        except KeyboardInterrupt:
            print("\ninterrupted: keeping the points measured so far", flush=True)
            self.finish("interrupted")
        except BaseException as e:  # keep what was measured, say why it stopped, then fail loudly
            self.finish(f"failed: {type(e).__name__}: {e}"[:300])
            raise
        else:
            self.finish("complete")
        print(f"data: {self.path} ({len(self.doc['points'])} points, {self.doc['status']})", flush=True)


def succeeded(point: dict) -> bool:
    """A point that holds a measurement: not out of memory, not skipped by the time budget, no error."""
    return not (point.get("oom") or point.get("skipped") or point.get("error"))


def measured(points: list[dict], kind: str, **match) -> list[dict]:
    """The points of one kind that hold a measurement, optionally matching fields (e.g. path="static")."""
    return [p for p in points if p.get("kind") == kind and succeeded(p) and all(p.get(k) == v for k, v in match.items())]


def load_data(path: Path) -> dict:
    return json.loads(Path(path).read_text())


def save_data(path: Path, doc: dict) -> None:
    """Write via a temporary file and rename, so a kill mid-write never leaves half a file."""
    tmp = Path(path).with_suffix(".json.tmp")
    tmp.write_text(json.dumps(doc, indent=1, ensure_ascii=False) + "\n")
    os.replace(tmp, path)


# ---------------------------------------------------------------------------------------------------------
# Figures: deterministic SVG, Chinese and English

CJK_FAMILIES = ("Noto Sans CJK SC", "Source Han Sans SC", "Noto Sans SC", "WenQuanYi Zen Hei", "Microsoft YaHei",
                "PingFang SC", "SimHei")


# Where Debian (fonts-noto-cjk), Fedora and macOS put a CJK font, for a font cache older than the font.
CJK_FILES = ("/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc", "/usr/share/fonts/google-noto-cjk/NotoSansCJK-Regular.ttc",
             "/usr/share/fonts/noto-cjk/NotoSansCJK-Regular.ttc", "/System/Library/Fonts/PingFang.ttc")


def _known_cjk_family(font_manager) -> str | None:
    for family in CJK_FAMILIES:
        try:
            font_manager.findfont(font_manager.FontProperties(family=family), fallback_to_default=False)
            return family
        except ValueError:
            continue
    return None


def cjk_font() -> str | None:
    """A CJK font family matplotlib can use, or None. matplotlib caches its font list on first use; a font
    installed after that (apt-get install fonts-noto-cjk after the first plot) is not in the cache, so the
    known font files are added to the running font manager before giving up."""
    from matplotlib import font_manager

    family = _known_cjk_family(font_manager)
    if family is None:
        for path in CJK_FILES:
            if Path(path).is_file():
                font_manager.fontManager.addfont(path)
        family = _known_cjk_family(font_manager)
    return family


def plot_languages() -> list[str]:
    """English always; Chinese only with a CJK font (else its glyphs would render as empty boxes)."""
    if cjk_font():
        return ["zh", "en"]
    print("note: no CJK font found (Debian: apt-get install fonts-noto-cjk); Chinese figures skipped. "
          "Re-render them later with --plot-only.", flush=True)
    return ["en"]


def style(lang: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcdefaults()
    plt.rcParams.update({
        "svg.hashsalt": "llm-inference-book",  # stable element ids: re-rendering gives the same bytes
        "svg.fonttype": "path",
        "font.family": [cjk_font(), "DejaVu Sans"] if lang == "zh" else ["DejaVu Sans"],
        "axes.unicode_minus": False,
        "font.size": 9,
        "axes.grid": True,
        "grid.alpha": 0.3,
        "figure.dpi": 100,
    })


def save_figure(fig, path: Path, footer: str) -> Path:
    """SVG with a provenance footer and no timestamp, so the same data always gives the same file."""
    import matplotlib.pyplot as plt

    fig.canvas.draw()  # find the lowest drawn element (x labels, legends) and put the footer under it
    lowest = fig.get_tightbbox(fig.canvas.get_renderer()).y0 / fig.get_figheight()
    fig.text(0.01, lowest - 0.02, footer, fontsize=6.5, color="#555", ha="left", va="top")
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="svg", metadata={"Date": None}, bbox_inches="tight")
    plt.close(fig)
    return path


def log_axis(ax, axis: str, ticks=None, base: float = 10) -> None:
    """Log scale labelled with plain numbers (512, not 2^9); `ticks` pins the labels to the measured values."""
    from matplotlib import ticker

    getattr(ax, f"set_{axis}scale")("log", base=base)
    a = getattr(ax, f"{axis}axis")
    if ticks is None:  # data within a narrow range (5.2 to 6.9 ms) would get one labelled tick or none
        lim = ax.dataLim
        lo, hi = (lim.x0, lim.x1) if axis == "x" else (lim.y0, lim.y1)
        ticks = log_ticks(lo, hi, base)
    a.set_major_locator(ticker.FixedLocator(sorted(set(ticks))))
    a.set_major_formatter(ticker.FuncFormatter(lambda v, _: f"{v:g}"))
    a.set_minor_formatter(ticker.NullFormatter())


def log_ticks(lo: float, hi: float, base: float = 10, at_least: int = 3) -> list[float]:
    """Tick values for a log axis over [lo, hi]: 1-2-5 per decade, finer when that gives fewer than
    `at_least` ticks inside the range; always one tick at or below lo and one at or above hi."""
    import math

    if not (lo > 0 and hi > 0 and math.isfinite(lo) and math.isfinite(hi)):
        return [1.0]
    lo, hi = min(lo, hi), max(lo, hi)
    steps = ((1,), (1, 2, 5), (1, 1.5, 2, 3, 5, 7), (1, 1.2, 1.5, 2, 2.5, 3, 4, 5, 6, 7, 8, 9)) if base == 10 else ((1,),)
    for subs in steps:
        candidates = sorted({round(s * base ** e, 12) for e in range(math.floor(math.log(lo, base)) - 1,
                                                                      math.ceil(math.log(hi, base)) + 2) for s in subs})
        inside = [v for v in candidates if lo <= v <= hi]
        if len(inside) >= at_least:
            below = [v for v in candidates if v < lo][-1:]
            above = [v for v in candidates if v > hi][:1]
            return below + inside + above
    # still too narrow: evenly spaced in log space, with as few significant digits as keep them apart
    n = at_least + 1
    raw = [lo * (hi / lo) ** (i / (n - 1)) for i in range(n)]
    for digits in range(2, 8):
        ticks = sorted({float(f"{v:.{digits}g}") for v in raw})
        if len(ticks) == n:
            break
    return ticks  # the first and last may sit just inside the data: the axis still shows the data's ends


def render_all(plot_one, data: dict, fig_dir: Path, tag: str) -> list[Path]:
    """Call `plot_one(data, lang)` -> {name: figure} for each language and save `<tag>-<name>_<lang>.svg`
    (`tag` is data_stem(provenance), e.g. ch03-cpu)."""
    written = []
    for lang in plot_languages():
        style(lang)
        for name, (fig, footer) in plot_one(data, lang).items():
            written.append(save_figure(fig, Path(fig_dir) / f"{tag}-{name}_{lang}.svg", footer))
    return written


def refresh_calc(data: dict, refresh_prediction) -> None:
    """calc's side of a data file, recomputed in place: the provenance's copy of calc's GPU datasheet (the figures
    draw rooflines from it) and each point's predictions (the lab's `refresh_prediction(point, provenance)`)."""
    prov = data["provenance"]
    if prov.get("datasheet") is not None:
        prov["datasheet"] = gpu_datasheet(prov.get("calc_gpu_key"))
    for point in data["points"]:
        refresh_prediction(point, prov)


def plot_only(out: Path, lab: str, plot_one, refresh_prediction=None) -> int:
    """--plot-only: re-render this lab's data files under out/data/ (<chapter>-*.json) into out/figures/. With
    refresh_prediction (a lab's `function(point, provenance)`, i.e. --repredict), calc's predictions in the data
    are refreshed first, and the copy of calc's GPU datasheet in the provenance with them (the figures draw
    rooflines from it); measured values are never touched, and the provenance records when and at which commit
    calc's side was refreshed (``calc_refreshed``; only when something moved)."""
    files = sorted((out / "data").glob(f"{lab_prefix(lab)}-*.json"))
    if not files:
        print(f"error: no {lab_prefix(lab)}-*.json data files in {out / 'data'}", file=sys.stderr)
        return 2
    for path in files:
        data = load_data(path)
        if refresh_prediction:
            before = json.dumps(data, sort_keys=True)
            refresh_calc(data, refresh_prediction)
            if json.dumps(data, sort_keys=True) != before:  # stamped and written only when something moved
                data["provenance"]["calc_refreshed"] = {
                    "date": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"), "git": _git()}
                save_data(path, data)
        for fig in render_all(plot_one, data, out / "figures", data_stem(data["provenance"])):
            print(f"figure: {fig}")
    return 0


def plot_safely(plot_one, data_path: Path, fig_dir: Path) -> list[Path]:
    """After a measurement run: a plotting failure is reported, never allowed to lose the run."""
    try:
        data = load_data(data_path)
        written = render_all(plot_one, data, fig_dir, data_stem(data["provenance"]))
        for p in written:
            print(f"figure: {p}")
        return written
    except Exception as e:
        print(f"warning: plotting failed ({type(e).__name__}: {e}); the data is safe in {data_path}. "
              f"Re-render with --plot-only.", flush=True)
        return []
