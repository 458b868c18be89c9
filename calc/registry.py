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
import re
from dataclasses import dataclass, fields
from functools import cache
from pathlib import Path

from .model import ModelSpec, from_hf_config, param_counts

DATA = Path(__file__).parent / "data"


@dataclass(frozen=True)
class GPU:
    """One accelerator. FLOPS are per second, dense unless the name says sparse; bytes are bytes."""

    key: str
    name: str
    vendor: str
    form_factor: str
    architecture: str
    memory_datasheet: str  # the datasheet wording, e.g. "80 GB HBM3"
    memory_bytes: int  # capacity: the datasheet's GB read as GiB (DRAM convention), see data/gpus.json
    memory_type: str
    memory_bandwidth_bytes_per_s: float
    bf16_dense_flops: float | None
    bf16_sparse_flops: float | None
    fp16_dense_flops: float | None
    fp16_sparse_flops: float | None
    fp8_dense_flops: float | None  # None: no FP8 tensor cores (Ampere)
    fp8_sparse_flops: float | None
    int8_dense_ops: float | None
    int8_sparse_ops: float | None
    fp4_dense_flops: float | None  # None before Blackwell
    fp4_sparse_flops: float | None
    interconnect: str
    interconnect_bytes_per_s: float | None  # GPU-to-GPU, both directions together, as datasheets quote it
    host_interface: str
    tdp_watts: float | None
    source: str
    as_of: str
    usd_per_hour_low: float | None = None
    usd_per_hour_high: float | None = None
    price_source: str | None = None
    price_as_of: str | None = None
    price_note: str = ""
    source_date: str = ""
    note: str = ""

    @property
    def usd_per_hour(self) -> float | None:
        """The middle of the dated price range (None where no price was sourced)."""
        if self.usd_per_hour_low is None or self.usd_per_hour_high is None:
            return None
        return (self.usd_per_hour_low + self.usd_per_hour_high) / 2

    def peak_flops(self, dtype: str) -> float | None:
        """Dense tensor-core peak for a compute dtype: 'bf16', 'fp16', 'fp8', 'int8' or 'fp4'."""
        return {"bf16": self.bf16_dense_flops, "fp16": self.fp16_dense_flops, "fp8": self.fp8_dense_flops,
                "int8": self.int8_dense_ops, "fp4": self.fp4_dense_flops}[dtype]


@cache
def _gpus() -> dict:
    raw = json.loads((DATA / "gpus.json").read_text(encoding="utf-8"))["gpus"]
    names = {f.name for f in fields(GPU)}
    return {k: GPU(key=k, **{f: v for f, v in e.items() if f in names}) for k, e in raw.items()}


@cache
def _model_files() -> dict:
    return {p.stem: p for p in sorted((DATA / "models").glob("*.json"))}


@cache
def model_entry(name: str) -> dict:
    """The whole registry file of a model preset: name, hf_repo, source, as_of, published_params, config."""
    path = _model_files().get(name)
    if path is None:
        raise KeyError(_unknown("model", name, list_models()))
    return json.loads(path.read_text(encoding="utf-8"))


@cache
def _prices() -> dict:
    return json.loads((DATA / "prices.json").read_text(encoding="utf-8"))["prices"]


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
    (r"\bh100\b.*\bpcie\b", "h100-pcie"),
    (r"\bh100\b.*\b(sxm5?|hbm3)\b", "h100-sxm"),
    (r"\bh200\b(?!.*\bnvl\b)", "h200"),
    (r"\bh20\b", "h20"),
    (r"\ba100\b.*\bsxm4\b.*\b80gb\b", "a100-80gb"),
    (r"\ba100\b.*\bsxm4\b.*\b40gb\b", "a100-40gb"),
    (r"\bl40s\b", "l40s"),
    (r"\bl4\b", "l4"),
    (r"\ba10\b", "a10"),
    (r"\brtx 4090\b", "rtx-4090"),
    (r"\brtx 5090\b", "rtx-5090"),
    (r"\bb200\b", "b200"),
    (r"\bmi300x\b", "mi300x"),
]


def match_gpu(device_name: str) -> str | None:
    """Map a device name to a registry key, or None when the card is not in the registry.

    "NVIDIA H100 80GB HBM3" -> "h100-sxm"; "NVIDIA H100 PCIe" -> "h100-pcie"; "NVIDIA H200" -> "h200";
    "NVIDIA A100-SXM4-80GB" -> "a100-80gb". Variants with other specs (H100 NVL, A100 PCIe, A10G) -> None.
    """
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
    ``price.<key>.<field>`` (e.g. usd_per_million_output_tokens).
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
    raise KeyError(f"registry kind must be gpu, model or price, got {kind!r}")
