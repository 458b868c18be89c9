"""The registries: GPUs, models and API prices, each entry with a source URL and an as-of date.

The data lives in JSON files next to this module (``data/gpus.json``, ``data/prices.json`` and one file per
model preset in ``data/models/``) so that the labs, the browser and the tests read the very same facts.

    get_gpu("h100-sxm").memory_bandwidth_bytes_per_s   -> 3.35e12
    get_model("llama-3.1-8b").num_key_value_heads        -> 8
    hf_config("llama-3.1-8b")                            -> the published config.json fields (a fresh dict)
    match_gpu("NVIDIA H100 80GB HBM3")                   -> "h100-sxm"
    lookup("gpu.h100-sxm.memory_bytes")                  -> 85899345920
"""

from __future__ import annotations

import copy
import json
import os
import re
from functools import cache

from .model import ModelSpec, from_hf_config, param_counts

DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data")
# The GPU whose measured matmul share the engines' compute efficiencies are read against (GPU.matmul_factor)
MATMUL_REFERENCE_GPU = "h100-sxm"
# Shares within this of the reference's count as the reference's: two sources differ by up to 3 % on one part (A100,
# B200, H100) and one card's rows by up to 9 % (RTX 5090), so a datacenter part's few per cent is not a finding
MATMUL_FACTOR_DEADBAND = 0.10


class GPU:
    """One accelerator. FLOPS are per second, dense unless the name says sparse; bytes are bytes.

    The attributes are FIELDS, read from data/gpus.json (None where a figure does not exist or was not
    sourced), plus ``key``. A plain class rather than a dataclass, to keep calc's import cheap in the browser.
    """

    FIELDS = (
        "name",
        "vendor",
        "form_factor",
        "architecture",
        "compute_capability",  # NVIDIA: CUDA compute capability "major.minor"; AMD: the LLVM target (e.g. "gfx942")
        "memory_datasheet",  # the datasheet wording, e.g. "80 GB HBM3"
        "memory_bytes",  # capacity: the datasheet's GB read as GiB (DRAM convention), see data/gpus.json
        "visible_memory_bytes",  # what CUDA reports as total memory (driver and ECC reserves taken off)
        "visible_memory_source",
        "memory_type",
        "memory_bandwidth_bytes_per_s",
        "bf16_dense_flops",
        "bf16_sparse_flops",
        "fp16_dense_flops",
        "fp16_sparse_flops",
        # FP16 tensor math with FP16 accumulate, where it is faster than with FP32 accumulate (GeForce cards halve
        # the FP32-accumulate rate; None elsewhere: the same rate). Only engines that accumulate in FP16 use it
        "fp16_acc16_dense_flops",
        "fp8_dense_flops",  # None: no FP8 tensor cores (Ampere)
        "fp8_sparse_flops",
        "int8_dense_ops",
        "int8_sparse_ops",
        "fp4_dense_flops",  # None before Blackwell
        "fp4_sparse_flops",
        "interconnect",
        "interconnect_bytes_per_s",  # GPU-to-GPU, both directions together, as datasheets quote it
        "host_interface",
        "tdp_watts",
        "source",
        "as_of",
        "usd_per_hour_low",
        "usd_per_hour_high",
        "price_source",
        "price_as_of",
        "price_note",
        "source_date",
        "checked_via",  # a secondary page the figures were checked against, where the primary was unreachable
        "unverified",  # names of fields no primary source confirms (e.g. H20: no public datasheet)
        "note",
        # a measured large 16-bit matmul (BF16; FP16 where the GPU has no BF16 tensor cores), FLOPS: what the card
        # reaches of its datasheet peak (GeForce cards boost above their spec clock, MI300X's GEMMs reach about half)
        "matmul_measured_flops",
        "matmul_measured_source",
        "matmul_measured_note",
        # streaming multiprocessors, as CUDA reports them (multi_processor_count): a latency-bound kernel's programs
        # run in waves of this many (engines.split_kv_decode_s); None where not sourced
        "sm_count",
        "sm_count_source",
    )

    def __init__(self, key: str, entry: dict):
        self.key = key
        for name in self.FIELDS:
            setattr(self, name, entry.get(name))

    def __repr__(self):
        return f"GPU({self.key!r})"

    @property
    def usd_per_hour(self) -> float | None:
        """The middle of the dated price range (None where no price was sourced)."""
        if self.usd_per_hour_low is None or self.usd_per_hour_high is None:
            return None
        return (self.usd_per_hour_low + self.usd_per_hour_high) / 2

    @property
    def linked_gpus(self) -> int | None:
        """How many of these GPUs one GPU-to-GPU fabric joins, from the registry's interconnect: None for a node-wide
        fabric (NVLink/NVSwitch, Infinity Fabric), 2 for cards with an NVLink bridge for pairs, 0 for PCIe only.
        Engines set up far fewer communication buffers where the GPUs of a group are not all linked (SGLang: no
        custom all-reduce beyond two such GPUs, few NCCL channels)."""
        text = self.interconnect or ""
        if text.startswith("none"):
            return 0
        return 2 if "bridge (2 GPUs)" in text else None

    @property
    def host_interface_bytes_per_s(self) -> float | None:
        """The host interface's bandwidth, both directions together, from the registry's text ("PCIe Gen4 x16 (64 GB/s)"):
        what GPUs that no GPU-to-GPU fabric joins talk over. None where the text gives no figure."""
        found = re.search(r"\(([\d.]+) GB/s", self.host_interface or "")
        return float(found.group(1)) * 1e9 if found else None

    def fp16_accumulate_flops(self) -> float | None:
        """Dense FP16 tensor rate with FP16 accumulate: fp16_acc16_dense_flops where the card has a faster one."""
        return self.fp16_acc16_dense_flops or self.fp16_dense_flops

    def peak_flops(self, dtype: str) -> float | None:
        """Dense tensor-core peak for a compute dtype: 'bf16', 'fp16', 'fp8', 'int8' or 'fp4'."""
        return {"bf16": self.bf16_dense_flops, "fp16": self.fp16_dense_flops, "fp8": self.fp8_dense_flops,
                "int8": self.int8_dense_ops, "fp4": self.fp4_dense_flops}[dtype]

    @property
    def matmul_share(self) -> float | None:
        """Measured large 16-bit matmul / datasheet dense 16-bit peak (None where no measurement was sourced)."""
        if not self.matmul_measured_flops:
            return None
        return self.matmul_measured_flops / (self.bf16_dense_flops or self.fp16_dense_flops)

    @property
    def matmul_factor(self) -> float:
        """This GPU's matmul share relative to the reference GPU's (MATMUL_REFERENCE_GPU, the H100 SXM the engine
        efficiencies are read against): the factor on an engine's compute efficiency here. 1 where either share
        is unknown: the GPU is taken to reach the reference's share of its datasheet."""
        share, ref = self.matmul_share, _gpus()[MATMUL_REFERENCE_GPU].matmul_share
        if not share or not ref or abs(share / ref - 1) <= MATMUL_FACTOR_DEADBAND:
            return 1.0
        return share / ref


def _read(name: str) -> dict:
    with open(os.path.join(DATA, name), encoding="utf-8") as fh:
        return json.load(fh)


@cache
def _gpus() -> dict:
    return {k: GPU(k, e) for k, e in _read("gpus.json")["gpus"].items()}


@cache
def _model_files() -> dict:
    folder = os.path.join(DATA, "models")
    return {f[:-5]: os.path.join(folder, f) for f in sorted(os.listdir(folder)) if f.endswith(".json")}


@cache
def model_entry(name: str) -> dict:
    """The whole registry file of a model preset: name, hf_repo, source, as_of, published_params, config."""
    path = _model_files().get(name)
    if path is None:
        raise KeyError(_unknown("model", name, list_models()))
    with open(path, encoding="utf-8") as fh:
        return json.load(fh)


@cache
def _prices() -> dict:
    return _read("prices.json")["prices"]


def _unknown(kind: str, name: str, valid: list) -> str:
    return f"unknown {kind} {name!r}; valid: {', '.join(valid)}"


def list_gpus() -> list[str]:
    return list(_gpus())


def list_models() -> list[str]:
    return list(_model_files())


def list_prices() -> list[str]:
    return list(_prices())


def get_gpu(key: str) -> GPU:
    try:
        return _gpus()[key]
    except KeyError:
        raise KeyError(_unknown("GPU", key, list_gpus())) from None


@cache
def get_model(name: str) -> ModelSpec:
    entry = model_entry(name)
    return from_hf_config(entry["config"], name=name)


def get_price(key: str) -> dict:
    try:
        return dict(_prices()[key])
    except KeyError:
        raise KeyError(_unknown("API price", key, list_prices())) from None


def hf_config(name: str) -> dict:
    """The model's published config.json fields, as a new dict (safe to modify).

    For the labs: ``transformers.AutoConfig.for_model(**hf_config("llama-3.2-1b"))`` builds the same shape.
    """
    return copy.deepcopy(model_entry(name)["config"])


# Device names as torch.cuda.get_device_name() / nvidia-smi / rocm-smi print them -> registry key.
# Checked in order; the patterns are anchored on word boundaries so "A10" does not match "A100" or "A10G".
_DEVICE_PATTERNS = [
    (r"\bh100\b.*\bnvl\b", "h100-nvl"),
    (r"\bh100\b.*\bpcie\b", "h100-pcie"),
    (r"\bh100\b.*\b(sxm5?|hbm3)\b", "h100-sxm"),
    (r"\bh200\b(?!.*\bnvl\b)", "h200"),
    (r"\bgh200\b.*\b144g", "gh200-144g"),  # "NVIDIA GH200 144G HBM3e"
    (r"\bgh200\b", "gh200"),  # the 96 GB HBM3 superchip: "GH200 480GB" / "GH200 120GB"
    (r"\bh20\b", "h20"),
    (r"\ba100\b.*\bsxm4\b.*\b80gb\b", "a100-80gb"),
    (r"\ba100\b.*\bsxm4\b.*\b40gb\b", "a100-40gb"),
    (r"\bl40s\b", "l40s"),
    (r"\bl20\b", "l20"),
    (r"\bl4\b", "l4"),
    (r"\ba10\b", "a10"),
    (r"\ba10g\b", "a10g"),
    (r"\btesla t4\b|^nvidia t4\b", "t4"),
    (r"\bv100 sxm2 32gb\b", "v100-sxm2-32gb"),
    (r"\brtx 3090\b(?! ti)", "rtx-3090"),
    (r"\brtx a6000\b", "rtx-a6000"),
    (r"\brtx 6000 ada\b", "rtx-6000-ada"),
    (r"\brtx 4090\b", "rtx-4090"),
    (r"\brtx 5090\b", "rtx-5090"),
    (r"\bb200\b", "b200"),
    (r"\bmi300x\b", "mi300x"),
]


def match_gpu(device_name: str) -> str | None:
    """Map a device name to a registry key, or None when the card is not in the registry.

    "NVIDIA H100 80GB HBM3" -> "h100-sxm"; "NVIDIA H100 PCIe" -> "h100-pcie"; "NVIDIA H200" -> "h200";
    "NVIDIA A100-SXM4-80GB" -> "a100-80gb"; "NVIDIA A10G" -> "a10g". Variants with other specs (A100 PCIe, V100 PCIe) -> None.
    """
    import re  # only needed here; kept out of the import path the browser pays for

    text = re.sub(r"[-_]", " ", device_name.lower())
    for pattern, key in _DEVICE_PATTERNS:
        if re.search(pattern, text):
            return key
    return None


def lookup(path: str):
    """Read one registry field by a dotted path, for the chapter hook.

    ``gpu.<key>.<field>`` (any GPU attribute, e.g. memory_bandwidth_bytes_per_s, usd_per_hour);
    ``model.<preset>.<field>`` (a ModelSpec attribute such as num_key_value_heads, a config.json key,
    params_total / params_active, published_params_total, source, as_of);
    ``price.<key>.<field>`` (e.g. usd_per_million_output_tokens);
    ``validation.<row>.<field>``: row ``<row>`` (0-based) of calc/data/simulator_validation.json, the serving
    simulator against published benchmarks (e.g. ``validation.3.error_median_itl_ms``);
    ``engine.<key>.<field>``: an engine profile (calc.engines, "key@variant" for an older release's), a plain
    attribute or ``memory_efficiency_<format>`` / ``compute_efficiency_<format>``, its share for weights in that
    format (e.g. ``engine.vllm@rocm-0.9.memory_efficiency_fp8``).
    """
    parts = path.split(".")
    # preset names contain dots (llama-3.1-8b): the key is everything between the kind and the last part
    if len(parts) < 3:
        raise KeyError(f"registry path must be <kind>.<key>.<field>, got {path!r}")
    kind, key, field = parts[0], ".".join(parts[1:-1]), parts[-1]
    if kind == "gpu":
        obj = get_gpu(key)
        if not hasattr(obj, field):
            raise KeyError(f"GPU has no field {field!r}")
        return getattr(obj, field)
    if kind == "model":
        spec = get_model(key)
        entry = model_entry(key)
        if field in ("params_total", "params_active"):
            return param_counts(spec)[field.removeprefix("params_")]
        if field.startswith("published_params_"):
            return entry["published_params"].get(field.removeprefix("published_params_"))
        if field in ("source", "as_of", "hf_repo", "name"):
            return entry[field]
        if hasattr(spec, field):
            return getattr(spec, field)
        if field in entry["config"]:
            return entry["config"][field]
        raise KeyError(f"model has no field {field!r}")
    if kind == "price":
        entry = get_price(key)
        if field not in entry:
            raise KeyError(f"API price has no field {field!r}")
        return entry[field]
    if kind == "validation":
        rows = _read("simulator_validation.json")["rows"]
        row = rows[int(key)]
        if field not in row:
            raise KeyError(f"validation row has no field {field!r}")
        return row[field]
    if kind == "engine":
        from . import engines  # noqa: PLC0415 (engines reads this module's GPUs)
        prof = engines.profile(key)
        for share in ("memory_efficiency", "compute_efficiency"):
            if field.startswith(share + "_"):
                from .memory import WEIGHT_FORMATS  # noqa: PLC0415
                fmt = field.removeprefix(share + "_")
                if fmt not in WEIGHT_FORMATS:
                    raise KeyError(f"no weight format {fmt!r}; valid: {', '.join(WEIGHT_FORMATS)}")
                return getattr(prof, share)(fmt)
        value = getattr(prof, field, None)
        if value is None or callable(value) or field.startswith("_"):
            raise KeyError(f"engine profile has no field {field!r}")
        return value
    raise KeyError(f"registry kind must be gpu, model, price, validation or engine, got {kind!r}")
