"""The one entry point shared by the CLI, the browser calculators, the chapter build hook and the labs.

    run("memory", {"model": "llama-3.1-8b", "gpu": "h100-sxm"})  -> dict (what `python -m calc memory --json` prints)
    fields("memory")                                              -> the form definition, one dict per parameter

Parameters are keyed by the CLI flag names without dashes (``prompt-len``, ``kv-dtype``...). Values may be
strings (an HTML form, a URL query, the command line) or numbers; an empty string means "use the default".
All validation lives here; every bad field is reported at once in ``InputError.errors``, in English and Chinese.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from functools import cache

from . import cost as cost_mod
from . import memory as mem
from . import perf as perf_mod
from . import registry
from .model import ConfigError, ModelSpec, from_hf_config
from .units import GiB

COMMANDS = ("memory", "perf", "cost", "roi")
DEFAULT_MODEL = "llama-3.1-8b"
DEFAULT_GPU = "h100-sxm"
DEFAULT_API = "openai-gpt-4o-mini"


class InputError(ValueError):
    """Bad parameters. ``errors`` maps each bad field (CLI flag name) to {"en": ..., "zh": ...}."""

    def __init__(self, errors: dict):
        self.errors = errors
        super().__init__("; ".join(f"{name}: {msg['en']}" for name, msg in errors.items()))


def _t(en: str, zh: str) -> dict:
    return {"en": en, "zh": zh}


def _f(name, kind, default, label, help, unit=None, min=None, max=None, choices=None, commands=COMMANDS):
    field = {"name": name, "kind": kind, "default": default, "label": label, "help": help}
    if unit:
        field["unit"] = unit
    if min is not None:
        field["min"] = min
    if max is not None:
        field["max"] = max
    if choices is not None:
        field["choices"] = choices
    field["commands"] = commands
    return field


@cache
def _all_fields() -> tuple:
    model_choices = [{"value": k, "label": registry.model_entry(k)["name"]} for k in registry.list_models()]
    gpu_choices = [{"value": k, "label": registry.get_gpu(k).name} for k in registry.list_gpus()]
    weight_choices = [{"value": k, "label": f.label} for k, f in mem.WEIGHT_FORMATS.items()]
    kv_choices = [{"value": k, "label": k.upper()} for k in mem.KV_DTYPES]
    api_choices = [{"value": k, "label": f"{p['provider']} {p['model']}"} for k, p in
                   ((k, registry.get_price(k)) for k in registry.list_prices())]
    cost_roi = ("cost", "roi")
    return (
        _f("model", "choice", DEFAULT_MODEL, _t("Model", "模型"),
           _t("A preset from the model registry (published config.json)", "模型注册表中的预设（来自公开的 config.json）"),
           choices=model_choices),
        _f("config", "json", None, _t("config.json", "config.json"),
           _t("A Hugging Face config.json (JSON text); overrides the model preset when given",
              "Hugging Face 的 config.json（JSON 文本）；填写后优先于模型预设"), ),
        _f("gpu", "choice", DEFAULT_GPU, _t("GPU", "GPU"), _t("An accelerator from the GPU registry", "GPU 注册表中的加速卡"),
           choices=gpu_choices),
        _f("weights", "choice", "bf16", _t("Weight format", "权重格式"),
           _t("How weights are stored; embeddings and lm_head stay 16-bit except in GGUF",
              "权重的存储格式；除 GGUF 外，嵌入层和 lm_head 保持 16 位"), choices=weight_choices),
        _f("kv-dtype", "choice", "bf16", _t("KV cache dtype", "KV 缓存精度"),
           _t("Element type of the KV cache", "KV 缓存的元素类型"), choices=kv_choices),
        _f("batch", "int", 1, _t("Batch size", "批大小"), _t("Requests processed together", "同时处理的请求数"),
           min=1, max=65536),
        _f("prompt-len", "int", 1024, _t("Prompt length", "提示长度"), _t("Input tokens per request", "每个请求的输入 token 数"),
           unit="tokens", min=1, max=10_000_000),
        _f("output-len", "int", 256, _t("Output length", "输出长度"), _t("Generated tokens per request", "每个请求生成的 token 数"),
           unit="tokens", min=1, max=10_000_000),
        _f("tp", "int", 1, _t("Tensor parallel GPUs", "张量并行 GPU 数"),
           _t("GPUs one model is split across (tensor parallelism)", "一个模型切分到的 GPU 数（张量并行）"), min=1, max=1024),
        _f("overhead-gib", "float", mem.DEFAULT_OVERHEAD_BYTES / GiB, _t("Runtime overhead", "运行时开销"),
           _t("Per GPU: CUDA context, workspaces, allocator slack (an assumption; adjust to your stack)",
              "每块 GPU：CUDA 上下文、工作区、分配器余量（假设值，请按实际环境调整）"),
           unit="GiB", min=0, max=1024, commands=("memory",)),
        _f("gpu-memory-utilization", "float", mem.VLLM_GPU_MEMORY_UTILIZATION, _t("GPU memory utilization", "显存利用率上限"),
           _t("vLLM's gpu_memory_utilization: the share of GPU memory the engine may use",
              "vLLM 的 gpu_memory_utilization：引擎可使用的显存比例"), min=0.01, max=1.0, commands=("memory",)),
        _f("block-size", "int", mem.VLLM_BLOCK_SIZE, _t("KV block size", "KV 块大小"),
           _t("Tokens per paged KV-cache block (vLLM default 16)", "分页 KV 缓存每块的 token 数（vLLM 默认 16）"),
           unit="tokens", min=1, max=1024, commands=("memory",)),
        _f("max-model-len", "int", None, _t("Max model length", "最大模型长度"),
           _t("vLLM's max_model_len; empty: the model's max_position_embeddings",
              "vLLM 的 max_model_len；留空则取模型的 max_position_embeddings"),
           unit="tokens", min=1, max=10_000_000, commands=("memory",)),
        _f("max-num-batched-tokens", "int", mem.VLLM_MAX_NUM_BATCHED_TOKENS, _t("Max batched tokens", "最大批处理 token 数"),
           _t("Tokens in vLLM's profiling forward pass, which sets the activation reserve",
              "vLLM 预估激活显存时一次前向处理的 token 数"), unit="tokens", min=1, max=10_000_000, commands=("memory",)),
        _f("mem-efficiency", "float", perf_mod.MEMORY_EFFICIENCY, _t("Memory bandwidth efficiency", "显存带宽效率"),
           _t("Achievable / datasheet bandwidth; default from the H100 reference copy (2957.5 GB/s of 3.35 TB/s)",
              "可达带宽 / 标称带宽；默认值来自 H100 实测拷贝（2957.5 GB/s，标称 3.35 TB/s）"),
           min=0.01, max=1.0, commands=("perf", "cost", "roi")),
        _f("compute-efficiency", "float", perf_mod.COMPUTE_EFFICIENCY, _t("Compute efficiency", "算力效率"),
           _t("Achievable / datasheet dense FLOPS; default from the H100 reference matmul (755.4 of 989.5 TFLOPS)",
              "可达算力 / 标称稠密算力；默认值来自 H100 实测矩阵乘（755.4 / 989.5 TFLOPS）"),
           min=0.01, max=1.0, commands=("perf", "cost", "roi")),
        _f("gpu-price", "float", None, _t("GPU price", "GPU 单价"),
           _t("USD per GPU-hour; empty: the middle of the registry's dated cloud price range",
              "每 GPU 小时的美元价格；留空则取注册表中带日期的云价格区间中值"),
           unit="USD/h", min=0, max=1000, commands=cost_roi),
        _f("utilization", "float", 1.0, _t("Utilization", "利用率"),
           _t("Share of paid GPU time spent serving (1 = always busy)", "付费 GPU 时间中用于服务的比例（1 = 始终满载）"),
           min=0.01, max=1.0, commands=cost_roi),
        _f("requests-per-s", "float", 1.0, _t("Request rate", "请求速率"), _t("Average requests per second", "平均每秒请求数"),
           unit="req/s", min=0.000001, max=1_000_000, commands=cost_roi),
        _f("api", "choice", DEFAULT_API, _t("API to compare", "对比的 API"),
           _t("A dated API list price to compare with", "用于对比的 API 标价（带日期）"), choices=api_choices, commands=cost_roi),
        _f("engineering-cost", "float", 20000.0, _t("Engineering cost", "工程投入"),
           _t("One-off engineering cost in USD (an example value: enter yours)", "一次性工程成本，美元（示例值，请填入实际值）"),
           unit="USD", min=0, max=1e12, commands=("roi",)),
        _f("hardware-cost", "float", 0.0, _t("Hardware cost", "硬件投入"),
           _t("One-off hardware purchase in USD (0 when renting)", "一次性硬件采购成本，美元（租用则为 0）"),
           unit="USD", min=0, max=1e12, commands=("roi",)),
        _f("monthly-savings", "float", None, _t("Monthly savings", "每月节省"),
           _t("USD per month; empty: API bill minus self-hosted bill at the request rate",
              "每月节省的美元；留空则按请求速率计算：API 费用减去自建费用"),
           unit="USD", min=-1e12, max=1e12, commands=("roi",)),
    )


def fields(command: str) -> list[dict]:
    """The form definition of a command: name, kind, default, choices, min/max, label/help (en, zh), unit."""
    if command not in COMMANDS:
        raise InputError({"command": _t(f"command must be one of {', '.join(COMMANDS)}", f"命令必须是 {', '.join(COMMANDS)} 之一")})
    out = []
    for f in _all_fields():
        if command in f["commands"]:
            f = {k: v for k, v in f.items() if k != "commands"}
            if "choices" in f:
                f["choices"] = [dict(c) for c in f["choices"]]
            out.append(f)
    return out


# ----------------------------------------------------------------------------------------------------------
# Parsing and validation


def _parse(field: dict, raw) -> tuple[object, dict | None]:
    """(value, error). ``raw`` may be a string or a number; None / "" give the default."""
    name, kind = field["name"], field["kind"]
    zh = field["label"]["zh"]
    if raw is None or (isinstance(raw, str) and raw.strip() == ""):
        return field["default"], None
    if kind == "choice":
        valid = [c["value"] for c in field["choices"]]
        if raw not in valid:
            few = ", ".join(valid[:6]) + (", ..." if len(valid) > 6 else "")
            return None, _t(f"unknown {name} {raw!r}; valid: {few}", f"未知的{zh} {raw!r}；可选：{few}")
        return raw, None
    if kind == "json":
        if isinstance(raw, Mapping):
            return dict(raw), None
        try:
            value = json.loads(raw)  # parsed, never evaluated
        except (TypeError, ValueError) as e:
            return None, _t(f"config is not valid JSON ({e})", f"config 不是合法的 JSON（{e}）")
        if not isinstance(value, dict):
            return None, _t("config must be a JSON object", "config 必须是 JSON 对象")
        return value, None
    lo, hi = field.get("min"), field.get("max")
    if kind == "int":
        what_en, what_zh = "an integer", "整数"
        value = None
        if isinstance(raw, bool):
            value = None
        elif isinstance(raw, int):
            value = raw
        elif isinstance(raw, float) and math.isfinite(raw) and raw == int(raw):
            value = int(raw)
        elif isinstance(raw, str):
            try:
                value = int(raw.strip().replace("_", ""))
            except ValueError:
                value = None
    else:
        what_en, what_zh = "a number", "数"
        value = None
        if not isinstance(raw, bool) and isinstance(raw, (int, float, str)):
            try:
                value = float(raw)
            except ValueError:
                value = None
            if value is not None and not math.isfinite(value):
                value = None
    if value is None or (lo is not None and value < lo) or (hi is not None and value > hi):
        rng_en = f" ≥ {lo}" + (f" and ≤ {hi:g}" if hi is not None else "")
        rng_zh = f" ≥ {lo}" + (f" 且 ≤ {hi:g}" if hi is not None else "")
        return None, _t(f"{name} must be {what_en}{rng_en}", f"{zh}必须是{rng_zh} 的{what_zh}")
    return value, None


def _resolve(command: str, params: Mapping) -> dict:
    if command not in COMMANDS:
        raise InputError({"command": _t(f"command must be one of {', '.join(COMMANDS)}, got {command!r}",
                                        f"命令必须是 {', '.join(COMMANDS)} 之一，收到 {command!r}")})
    if not isinstance(params, Mapping):
        raise InputError({"params": _t("params must be a mapping of flag names to values", "参数必须是“参数名→值”的映射")})
    known = {f["name"]: f for f in fields(command)}
    errors, values = {}, {}
    for name in params:
        if name not in known:
            errors[name] = _t(f"unknown parameter for {command}; known: {', '.join(known)}",
                              f"{command} 命令没有这个参数；可用参数：{', '.join(known)}")
    for name, field in known.items():
        value, err = _parse(field, params.get(name))
        if err:
            errors[name] = err
        values[name] = value
    if errors:
        raise InputError(errors)

    # The model: a config.json wins over the preset name.
    try:
        if values["config"] is not None:
            spec = from_hf_config(values["config"], name=values["config"].get("_name_or_path") or "custom config.json")
        else:
            spec = registry.get_model(values["model"])
    except ConfigError as e:
        raise InputError({"config": _t(str(e), f"config.json 字段 '{e.field}' 有误：{e.message}")}) from None
    values["spec"] = spec
    values["gpu_spec"] = registry.get_gpu(values["gpu"])

    tp = values["tp"]
    if spec.num_attention_heads % tp:
        errors["tp"] = _t(f"tp {tp} does not divide the model's {spec.num_attention_heads} attention heads",
                          f"tp={tp} 不能整除模型的 {spec.num_attention_heads} 个注意力头")
    elif not spec.is_mla and spec.num_key_value_heads % tp and tp % spec.num_key_value_heads:
        errors["tp"] = _t(f"tp {tp} and the model's {spec.num_key_value_heads} KV heads must divide one another",
                          f"tp={tp} 与模型的 {spec.num_key_value_heads} 个 KV 头必须能互相整除")
    elif tp > 1 and not values["gpu_spec"].interconnect_bytes_per_s:
        errors["tp"] = _t(f"{values['gpu']} has no GPU-to-GPU bandwidth in the registry", f"注册表中 {values['gpu']} 没有 GPU 间带宽数据")
    if command in ("cost", "roi") and values["gpu-price"] is None and values["gpu_spec"].usd_per_hour is None:
        errors["gpu-price"] = _t(f"the registry has no dated price for {values['gpu']}; enter a USD per GPU-hour price",
                                 f"注册表中没有 {values['gpu']} 的带日期价格；请填写每 GPU 小时的美元价格")
    if errors:
        raise InputError(errors)
    return values


def _warnings(v: dict) -> list[dict]:
    spec, gpu = v["spec"], v["gpu_spec"]
    out = []
    context = v["prompt-len"] + v["output-len"]
    if context > spec.max_position_embeddings:
        out.append(_t(f"prompt + output ({context}) exceeds the model's max_position_embeddings ({spec.max_position_embeddings})",
                      f"提示 + 输出（{context}）超过模型的 max_position_embeddings（{spec.max_position_embeddings}）"))
    if gpu.unverified:
        out.append(_t(f"{gpu.name}: no public datasheet confirms {', '.join(gpu.unverified)}; the figures are secondary reports",
                      f"{gpu.name}：{', '.join(gpu.unverified)} 没有公开数据手册可以核实，数值来自二手报道"))
    wanted = mem.WEIGHT_FORMATS[v["weights"]].compute_dtype
    if not gpu.peak_flops(wanted):
        out.append(_t(f"{gpu.name} has no {wanted.upper()} tensor cores: {v['weights']} weights are computed in 16 bits",
                      f"{gpu.name} 没有 {wanted.upper()} 张量核心：{v['weights']} 权重按 16 位计算"))
    return out


def _common(v: dict) -> dict:
    return {
        "model": v["spec"].name, "gpu": v["gpu"], "weights": v["weights"], "kv_dtype": v["kv-dtype"],
        "batch": v["batch"], "prompt_len": v["prompt-len"], "output_len": v["output-len"], "tp": v["tp"],
        "attention": v["spec"].attention_kind,
    }


def _perf(v: dict) -> dict:
    return perf_mod.perf_report(
        v["spec"], v["gpu_spec"], v["weights"], v["kv-dtype"], v["batch"], v["prompt-len"], v["output-len"], v["tp"],
        memory_efficiency=v["mem-efficiency"], compute_efficiency=v["compute-efficiency"])


def _cost(v: dict) -> dict:
    perf = _perf(v)
    price = v["gpu-price"] if v["gpu-price"] is not None else v["gpu_spec"].usd_per_hour
    api = v["api"]
    report = cost_mod.cost_report(perf, v["batch"], v["prompt-len"], v["output-len"], price, v["tp"],
                                  utilization=v["utilization"], requests_per_s=v["requests-per-s"],
                                  api_prices={k: registry.get_price(k) for k in registry.list_prices()})
    chosen = next(c for c in report["api_comparison"] if c["api"] == api)
    report.update({
        "gpu_price_source": "input" if v["gpu-price"] is not None else v["gpu_spec"].price_source,
        "gpu_price_as_of": None if v["gpu-price"] is not None else v["gpu_spec"].price_as_of,
        "api": api,
        "api_usd_per_request": chosen["usd_per_request"],
        "api_monthly_cost_usd": chosen["monthly_cost_usd"],
        "monthly_savings_usd": chosen["monthly_savings_usd"],
        "ttft_s": perf["ttft_s"], "tpot_s": perf["tpot_s"], "e2e_s": perf["e2e_s"],
        "throughput_tok_per_s": perf["throughput_tok_per_s"],
    })
    return report


def run(command: str, params: Mapping[str, object] | None = None) -> dict:
    """Compute one report. Raises InputError (a ValueError) for bad parameters."""
    v = _resolve(command, params or {})
    spec: ModelSpec = v["spec"]
    out = _common(v)
    if command == "memory":
        out.update(mem.memory_report(
            spec, v["gpu_spec"].memory_bytes, v["weights"], v["kv-dtype"], v["batch"], v["prompt-len"], v["output-len"],
            v["tp"], overhead_bytes=round(v["overhead-gib"] * GiB), gpu_memory_utilization=v["gpu-memory-utilization"],
            block_size=v["block-size"], max_model_len=v["max-model-len"], max_num_batched_tokens=v["max-num-batched-tokens"]))
    elif command == "perf":
        out.update(_perf(v))
    elif command == "cost":
        out.update(_cost(v))
    else:
        c = _cost(v)
        savings = v["monthly-savings"] if v["monthly-savings"] is not None else c["monthly_savings_usd"]
        out.update(cost_mod.roi_report(v["engineering-cost"], v["hardware-cost"], savings,
                                       selfhost_monthly_usd=c["monthly_cost_usd"], api_usd_per_request=c["api_usd_per_request"]))
        out.update({"api": c["api"], "monthly_cost_usd": c["monthly_cost_usd"], "api_monthly_cost_usd": c["api_monthly_cost_usd"],
                    "usd_per_request": c["usd_per_request"], "api_usd_per_request": c["api_usd_per_request"]})
    out["warnings"] = _warnings(v)
    return _json_safe(out)


def _json_safe(x):
    """Plain JSON values only: NaN/Infinity become None (JSON null)."""
    if isinstance(x, float) and not math.isfinite(x):
        return None
    if isinstance(x, dict):
        return {k: _json_safe(val) for k, val in x.items()}
    if isinstance(x, (list, tuple)):
        return [_json_safe(val) for val in x]
    return x
