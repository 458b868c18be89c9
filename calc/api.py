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
from dataclasses import replace
from functools import cache

from . import cost as cost_mod
from . import engines as engines_mod
from . import memory as mem
from . import perf as perf_mod
from . import plan as plan_mod
from . import registry
from . import simulate as sim_mod
from .model import ConfigError, ModelSpec, from_hf_config
from .strings import INPUTS, t
from .units import GiB

COMMANDS = ("memory", "perf", "cost", "roi", "plan")
DEFAULT_MODEL = "llama-3.1-8b"
DEFAULT_GPU = "h100-sxm"
DEFAULT_API = "openai-gpt-4o-mini"


class InputError(ValueError):
    """Bad parameters. ``errors`` maps each bad field (CLI flag name) to {"zh": ..., "en": ...}."""

    def __init__(self, errors: dict):
        self.errors = errors
        super().__init__("; ".join(f"{name}: {msg['en']}" for name, msg in errors.items()))


def _f(name, kind, default, unit=None, min=None, max=None, choices=None, commands=COMMANDS):
    """One input; its label and help, in both languages, come from calc/strings.py."""
    field = {"name": name, "kind": kind, "default": default, "label": INPUTS[name]["label"], "help": INPUTS[name]["help"]}
    if "empty" in INPUTS[name]:  # what leaving it empty means, where that is not "calc works it out"
        field["empty"] = INPUTS[name]["empty"]
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
    engine_choices = [{"value": k, "label": engines_mod.profile(k).name} for k in engines_mod.ENGINES]
    api_choices = [{"value": k, "label": f"{p['provider']} {p['model']}"} for k, p in
                   ((k, registry.get_price(k)) for k in registry.list_prices())]
    cost_roi = ("cost", "roi")
    workload_choices = [{"value": "fixed", "label": "fixed"}] + [
        {"value": k, "label": p["label"]["en"]} for k, p in sim_mod.LENGTH_PROFILES.items()]
    not_plan = ("memory", "perf", "cost", "roi")
    return (
        _f("model", "choice", DEFAULT_MODEL, choices=model_choices),
        _f("config", "json", None),
        _f("gpu", "choice", DEFAULT_GPU, choices=gpu_choices),
        _f("weights", "choice", "bf16", choices=weight_choices),
        _f("kv-dtype", "choice", "bf16", choices=kv_choices),
        _f("batch", "int", 1, min=1, max=65536, commands=not_plan),
        _f("prompt-len", "int", 1024, unit="tokens", min=1, max=10_000_000),
        _f("output-len", "int", 256, unit="tokens", min=1, max=10_000_000),
        _f("tp", "int", 1, min=1, max=1024, commands=not_plan),
        _f("pp", "int", 1, min=1, max=1024, commands=not_plan),
        _f("ep", "int", 1, min=1, max=1024, commands=not_plan),
        _f("rate", "float", 10.0, unit="req/s", min=0.001, max=100_000, commands=("plan",)),
        _f("workload", "choice", "fixed", choices=workload_choices, commands=("plan",)),
        _f("ttft-p90", "float", 1.0, unit="s", min=0.001, max=3600, commands=("plan",)),
        _f("tpot-p90", "float", 0.05, unit="s", min=0.0001, max=60, commands=("plan",)),
        _f("engine", "choice", engines_mod.DEFAULT_ENGINE, choices=engine_choices),
        _f("max-num-seqs", "int", sim_mod.DEFAULT_MAX_NUM_SEQS, min=1, max=4096, commands=("memory", "plan")),
        _f("chunked-prefill", "choice", "on", choices=[{"value": "on", "label": "on"}, {"value": "off", "label": "off"}],
           commands=("plan",)),
        _f("reserve-full-prompt", "choice", "on", choices=[{"value": "on", "label": "on"}, {"value": "off", "label": "off"}],
           commands=("plan",)),
        _f("requests", "int", None, min=20, max=2000, commands=("plan",)),
        _f("seed", "int", 0, min=0, max=2**31 - 1, commands=("plan",)),
        _f("verify-tokens", "int", 1, unit="tokens", min=1, max=64, commands=("perf",)),
        _f("accept-rate", "float", None, min=0, max=1, commands=("perf",)),
        _f("draft-cost", "float", None, min=0, max=100, commands=("perf",)),
        _f("overhead-gib", "float", mem.DEFAULT_OVERHEAD_BYTES / GiB, unit="GiB", min=0, max=1024, commands=("memory",)),
        _f("gpu-memory-utilization", "float", None, min=0.01, max=1.0, commands=("memory",)),
        _f("block-size", "int", None, unit="tokens", min=1, max=1024, commands=("memory",)),
        _f("max-model-len", "int", None, unit="tokens", min=1, max=10_000_000, commands=("memory",)),
        _f("max-num-batched-tokens", "int", None, unit="tokens", min=1, max=10_000_000, commands=("memory", "plan")),
        _f("mem-efficiency", "float", None, min=0.01, max=1.0, commands=("perf", "cost", "roi", "plan")),
        # a share of the datasheet: above 1 only where a card's measured matmul beats it (RTX 5090: 1.14; checked per GPU)
        _f("compute-efficiency", "float", None, min=0.01, max=1.5, commands=("perf", "cost", "roi", "plan")),
        _f("request-latency-ms", "float", None, unit="ms", min=0, max=60_000, commands=("perf", "cost", "roi", "plan")),
        _f("gpu-price", "float", None, unit="USD/h", min=0, max=1000, commands=("cost", "roi", "plan")),
        _f("utilization", "float", 1.0, min=0.01, max=1.0, commands=cost_roi),
        _f("requests-per-s", "float", 1.0, unit="req/s", min=0.000001, max=1_000_000, commands=cost_roi),
        _f("api", "choice", DEFAULT_API, choices=api_choices, commands=cost_roi),
        _f("engineering-cost", "float", 20000.0, unit="USD", min=0, max=1e12, commands=("roi",)),
        _f("hardware-cost", "float", 0.0, unit="USD", min=0, max=1e12, commands=("roi",)),
        _f("monthly-savings", "float", None, unit="USD", min=-1e12, max=1e12, commands=("roi",)),
    )


def fields(command: str) -> list[dict]:
    """The form definition of a command: name, kind, default, choices, min/max, label/help (en, zh), unit."""
    if command not in COMMANDS:
        raise InputError({"command": t(f"命令必须是 {', '.join(COMMANDS)} 之一",
                                       f"command must be one of {', '.join(COMMANDS)}")})
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
            return None, t(f"未知的{zh} {raw!r}；可选：{few}", f"unknown {name} {raw!r}; valid: {few}")
        return raw, None
    if kind == "json":
        if isinstance(raw, Mapping):
            return dict(raw), None
        try:
            value = json.loads(raw)  # parsed, never evaluated
        except (TypeError, ValueError) as e:
            return None, t(f"config 不是合法的 JSON（{e}）", f"config is not valid JSON ({e})")
        if not isinstance(value, dict):
            return None, t("config 必须是 JSON 对象", "config must be a JSON object")
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
        gap = "" if "\u3000" <= zh[-1:] <= "\uffef" else " "  # a label ending in Latin or Greek ("α") keeps a space
        return None, t(f"{zh}{gap}必须是{rng_zh} 的{what_zh}", f"{name} must be {what_en}{rng_en}")
    return value, None


def _resolve(command: str, params: Mapping) -> dict:
    if command not in COMMANDS:
        raise InputError({"command": t(f"命令必须是 {', '.join(COMMANDS)} 之一，收到 {command!r}",
                                       f"command must be one of {', '.join(COMMANDS)}, got {command!r}")})
    if not isinstance(params, Mapping):
        raise InputError({"params": t("参数必须是“参数名→值”的映射", "params must be a mapping of flag names to values")})
    known = {f["name"]: f for f in fields(command)}
    errors, values = {}, {}
    for name in params:
        if name not in known:
            errors[name] = t(f"{command} 命令没有这个参数；可用参数：{', '.join(known)}",
                             f"unknown parameter for {command}; known: {', '.join(known)}")
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
        raise InputError({"config": t(f"config.json 字段 '{e.field}' 有误：{e.message}", str(e))}) from None
    values["spec"] = spec
    values["gpu_spec"] = registry.get_gpu(values["gpu"])
    # left empty, vLLM's token budget follows `vllm serve`'s default for this GPU; without chunked prefill vLLM raises it
    # to max_model_len, the model's context when unset, and profiles a forward pass that long (so the planner reserves
    # that activation peak too). The sequence cap keeps 256, the default on A100s and smaller GPUs, on every GPU: at
    # vLLM's 1,024 the planner's saturation bursts take a browser too long, and with vLLM 0.32's sampler warm-up
    # (2 bytes per logit) the KV budget barely depends on it
    # (SGLang's is its chunked_prefill_size for the GPU, the most prompt tokens one of its prompt steps holds)
    # (TensorRT-LLM keeps its max_num_tokens without chunked prefill and refuses longer prompts instead)
    if "max-num-batched-tokens" in values and values["max-num-batched-tokens"] is None:
        engine = values.get("engine") or engines_mod.DEFAULT_ENGINE
        tokens = _default_token_budget(engine, values["gpu_spec"])
        if command == "plan" and values["chunked-prefill"] == "off" and \
                not engines_mod.profile(engine).kv_budget().get("max_num_tokens"):
            tokens = max(tokens, spec.max_position_embeddings)
        values["max-num-batched-tokens"] = tokens

    tp = values.get("tp", 1)
    if spec.num_attention_heads % tp:
        errors["tp"] = t(f"tp={tp} 不能整除模型的 {spec.num_attention_heads} 个注意力头",
                         f"tp {tp} does not divide the model's {spec.num_attention_heads} attention heads")
    elif not spec.is_mla and spec.num_key_value_heads % tp and tp % spec.num_key_value_heads:
        errors["tp"] = t(f"tp={tp} 与模型的 {spec.num_key_value_heads} 个 KV 头必须能互相整除",
                         f"tp {tp} and the model's {spec.num_key_value_heads} KV heads must divide one another")
    elif tp > 1 and not values["gpu_spec"].interconnect_bytes_per_s:
        errors["tp"] = t(f"注册表中 {values['gpu']} 没有 GPU 间带宽数据",
                         f"{values['gpu']} has no GPU-to-GPU bandwidth in the registry")
    pp, ep = values.get("pp", 1), values.get("ep", 1)
    if spec.num_hidden_layers % pp:
        errors["pp"] = t(f"pp={pp} 不能整除模型的 {spec.num_hidden_layers} 层（calc 按层数均分流水线各段）",
                         f"pp {pp} does not divide the model's {spec.num_hidden_layers} layers "
                         "(calc splits the layers evenly across pipeline stages)")
    elif pp > 1 and not values["gpu_spec"].interconnect_bytes_per_s:
        errors["pp"] = t(f"注册表中 {values['gpu']} 没有 GPU 间带宽数据",
                         f"{values['gpu']} has no GPU-to-GPU bandwidth in the registry")
    if ep > 1:
        if not spec.is_moe:
            errors["ep"] = t("专家并行（ep > 1）只适用于混合专家（MoE）模型，这个模型是稠密模型",
                             "expert parallelism (ep > 1) needs a mixture-of-experts model; this model is dense")
        elif ep > spec.num_experts or spec.num_experts % ep:
            errors["ep"] = t(f"ep={ep} 必须整除模型的 {spec.num_experts} 个路由专家",
                             f"ep {ep} must divide the model's {spec.num_experts} routed experts")
        elif ep % tp and tp % ep:
            errors["ep"] = t(f"ep={ep} 与 tp={tp} 必须能互相整除", f"ep {ep} and tp {tp} must divide one another")
        elif not values["gpu_spec"].interconnect_bytes_per_s:
            errors["ep"] = t(f"注册表中 {values['gpu']} 没有 GPU 间带宽数据",
                             f"{values['gpu']} has no GPU-to-GPU bandwidth in the registry")
    # a compute share above 1 only where the card's measured matmul beats its datasheet (GeForce cards), up to that
    gpu, share = values["gpu_spec"], values.get("compute-efficiency")
    most = max(1.0, math.floor((gpu.matmul_share or 0) * 100) / 100)
    if share is not None and share > most:
        errors["compute-efficiency"] = t(
            f"{values['gpu']} 的算力效率最多为 {most:g}" + (
                f"（实测矩阵乘达到数据手册的 {gpu.matmul_share:.0%}）" if most > 1 else "（实测矩阵乘没有超过数据手册的值）"),
            f"compute efficiency on {values['gpu']} is at most {most:g}" + (
                f" (its measured matmul reaches {gpu.matmul_share:.0%} of its datasheet)" if most > 1 else
                " (no measured matmul of this card exceeds its datasheet)"))
    if command == "plan":
        errors.update(_plan_errors(values))
    if command in ("cost", "roi", "plan") and values["gpu-price"] is None and values["gpu_spec"].usd_per_hour is None:
        errors["gpu-price"] = t(f"注册表中没有 {values['gpu']} 的带日期价格；请填写每 GPU 小时的美元价格",
                                f"the registry has no dated price for {values['gpu']}; enter a USD per GPU-hour price")
    if errors:
        raise InputError(errors)
    return values


PLAN_MAX_OUTPUT_LEN = 16384  # bounds one planner simulation's work (a browser must answer in seconds)


def _plan_errors(v: dict) -> dict:
    errors = {}
    spec = v["spec"]
    if v["workload"] == "fixed":
        if v["output-len"] > PLAN_MAX_OUTPUT_LEN:
            errors["output-len"] = t(f"容量规划最多模拟每个请求 {PLAN_MAX_OUTPUT_LEN} 个输出 token",
                                     f"the planner simulates at most {PLAN_MAX_OUTPUT_LEN} output tokens per request")
        elif v["prompt-len"] + v["output-len"] > spec.max_position_embeddings:
            errors["prompt-len"] = t(
                f"提示 + 输出（{v['prompt-len'] + v['output-len']}）超过模型的 max_position_embeddings（{spec.max_position_embeddings}）",
                f"prompt + output ({v['prompt-len'] + v['output-len']}) exceeds the model's max_position_embeddings "
                f"({spec.max_position_embeddings})")
    if v["chunked-prefill"] == "off" and v["workload"] == "fixed" and \
            v["prompt-len"] + v["output-len"] > v["max-num-batched-tokens"]:
        if engines_mod.profile(v["engine"]).kv_rule == "trtllm_profile":
            errors["max-num-batched-tokens"] = t(
                "关闭分块预填充时，TensorRT-LLM 拒绝长于最大批处理 token 数（它的 max_num_tokens）的提示；规划器还会把被抢占的请求连同已生成的 token "
                "重新预填充，所以这里要求它不小于提示 + 输出长度：请调大它，或打开分块预填充（--enable_chunked_prefill）",
                "without chunked prefill TensorRT-LLM refuses prompts longer than max batched tokens (its max_num_tokens), "
                "and the planner re-prefills a preempted request with the tokens it generated, so it must be at least "
                "prompt + output length here: raise it, or turn chunked prefill on (--enable_chunked_prefill)")
        else:
            errors["max-num-batched-tokens"] = t(
                "关闭分块预填充时，最大批处理 token 数必须不小于提示 + 输出长度（vLLM 的要求）",
                "without chunked prefill, max batched tokens must be at least prompt + output length (as vLLM requires)")
    return errors


def _plan(v: dict) -> dict:
    price = v["gpu-price"] if v["gpu-price"] is not None else v["gpu_spec"].usd_per_hour
    cost = sim_mod.step_cost(v["engine"], v["weights"], v["mem-efficiency"], v["compute-efficiency"], v["gpu_spec"])
    own = _request_latency_s(v)
    if own is not None:  # the reader's own latency off the GPU replaces the engine's, per layer or not
        cost = replace(cost, request_latency_s=own, request_latency_for=None)
    fixed = v["workload"] == "fixed"
    try:
        r = plan_mod.plan(v["spec"], v["gpu_spec"], v["weights"], v["kv-dtype"], v["rate"],
                          v["prompt-len"] if fixed else v["workload"], v["output-len"] if fixed else v["workload"],
                          v["ttft-p90"], v["tpot-p90"], price, cost=cost, n_requests=v["requests"], seed=v["seed"],
                          max_num_seqs=v["max-num-seqs"], max_num_batched_tokens=v["max-num-batched-tokens"],
                          chunked_prefill=v["chunked-prefill"] == "on",
                          reserve_full_prompt=v["reserve-full-prompt"] == "on")
    except ValueError as e:  # a workload the simulator rejects (a profile's prompt too long without chunking)
        raise InputError({"workload": t(f"无法模拟：{e}", f"cannot simulate: {e}")}) from None
    best = r["best"] or {}
    out = {
        "model": v["spec"].name, "gpu": v["gpu"], "weights": v["weights"], "kv_dtype": v["kv-dtype"],
        "prompt_len": v["prompt-len"] if fixed else None, "output_len": v["output-len"] if fixed else None,
        "attention": v["spec"].attention_kind,
        "fits": r["fits"], "fits_reason": r["reason"],
        "gpus": best.get("gpus"), "replicas": best.get("replicas"), "tp_size": best.get("tp"),
        "ttft_p90_s": best.get("ttft_p90_s"), "tpot_p90_s": best.get("tpot_p90_s"),
        "itl_p99_s": best.get("itl_p99_s"), "e2e_p90_s": best.get("e2e_p90_s"),
        "utilization_per_replica": best.get("utilization"), "kv_usage_peak": best.get("kv_usage_peak"),
        "preemptions": best.get("preemptions"),
        "slo_attainment": best.get("slo_attainment"), "requests_per_s_goodput": best.get("goodput_requests_per_s"),
        "requests_per_s_replica": best.get("requests_per_s_per_replica"),
        "requests_per_s_saturated": best.get("requests_per_s_saturated"),
        "monthly_cost_usd": best.get("monthly_cost_usd"),
        "usd_per_million_output_tokens": best.get("usd_per_million_output_tokens"),
        "usd_per_gpu_hour": price,
        "gpu_price_source": "input" if v["gpu-price"] is not None else v["gpu_spec"].price_source,
        "gpu_price_as_of": None if v["gpu-price"] is not None else v["gpu_spec"].price_as_of,
        "simulated_requests": r["simulated_requests"],
        "mean_prompt_len": r["mean_prompt_len"], "mean_output_len": r["mean_output_len"],
        "runners_up": max(0, len(r["candidates"]) - 1),
        "engine": v["engine"],
        # the engine settings simulated (left empty: vllm serve's defaults for the GPU)
        "engine_max_num_seqs": v["max-num-seqs"], "engine_max_num_batched_tokens": v["max-num-batched-tokens"],
        "requests_per_s": v["rate"], "ttft_p90_target_s": v["ttft-p90"], "tpot_p90_target_s": v["tpot-p90"],
        "candidates": r["candidates"], "rejected": [{"tp": x["tp"], "why": x["why"], "message": x["message"]}
                                                   for x in r["rejected"]],
        "load_curve": r["load_curve"],
    }
    return out


def _warnings(v: dict, command: str) -> list[dict]:
    spec, gpu = v["spec"], v["gpu_spec"]
    out = []
    context = v["prompt-len"] + v["output-len"]
    if context > spec.max_position_embeddings and v.get("workload", "fixed") == "fixed":
        out.append(t(f"提示 + 输出（{context}）超过模型的 max_position_embeddings（{spec.max_position_embeddings}）",
                     f"prompt + output ({context}) exceeds the model's max_position_embeddings ({spec.max_position_embeddings})"))
    if gpu.unverified:
        out.append(t(f"{gpu.name}：{', '.join(gpu.unverified)} 没有公开数据手册可以核实，数值来自二手报道",
                     f"{gpu.name}: no public datasheet confirms {', '.join(gpu.unverified)}; the figures are secondary reports"))
    wanted = mem.WEIGHT_FORMATS[v["weights"]].compute_dtype
    if not gpu.peak_flops(wanted):
        out.append(t(f"{gpu.name} 没有 {wanted.upper()} 张量核心：{v['weights']} 权重按 16 位计算",
                     f"{gpu.name} has no {wanted.upper()} tensor cores: {v['weights']} weights are computed in 16 bits"))
    eng = engines_mod.profile(v["engine"])
    if v["weights"] in ("mxfp4", "mxfp4-experts") and eng.refuses_mxfp4(gpu.compute_capability):
        out.append(t(f"{eng.name} 不接受计算能力低于 8.0 的 GPU 上的 MXFP4 检查点（{gpu.name} 是 {gpu.compute_capability}）：这样的部署起不来",
                     f"{eng.name} refuses MXFP4 checkpoints on GPUs below compute capability 8.0 ({gpu.name} is "
                     f"{gpu.compute_capability}): this deployment does not start"))
    # trtllm-serve (chunked prefill off by default in 1.0 to 1.3: llm_args enable_chunked_prefill False) refuses a prompt
    # longer than its max_num_tokens (LLM._check_arguments): the reader's token budget where given, else its default
    most = v.get("max-num-batched-tokens") or eng.kv_budget().get("max_num_tokens")
    # (the planner with chunked prefill on simulates it started with --enable_chunked_prefill, which takes any length)
    chunked = command == "plan" and v.get("chunked-prefill") == "on"
    if eng.kv_rule == "trtllm_profile" and most and not chunked and v.get("workload", "fixed") == "fixed" \
            and v["prompt-len"] > most:
        out.append(t(f"TensorRT-LLM 默认不分块预填充，会拒绝长于 max_num_tokens（{most:,}）的提示：{v['prompt-len']:,} token 的提示要在启动 "
                     f"trtllm-serve 时加 --enable_chunked_prefill，或把 --max_num_tokens 设到不小于提示长度",
                     f"TensorRT-LLM does not chunk prompts by default and refuses one longer than its max_num_tokens "
                     f"({most:,}): for {v['prompt-len']:,}-token prompts, start trtllm-serve with --enable_chunked_prefill "
                     "or a --max_num_tokens at least as long as the prompt"))
    if command in ("perf", "cost", "roi"):
        out += _batch_fit_warnings(v)
    if command == "perf":
        out += _speculative_warnings(v)
    if command != "memory":
        out += _unchecked_engine_warnings(v, command)
    return out


def _speculative_warnings(v: dict) -> list[dict]:
    """The speculative inputs work together (perf_report): an acceptance rate needs drafts (verified tokens per
    request above 1) and, to be more than a bound, the draft's cost; a draft cost alone is not used."""
    labels = {k: INPUTS[k]["label"] for k in ("accept-rate", "draft-cost", "verify-tokens")}
    rate, cost, tokens = v.get("accept-rate"), v.get("draft-cost"), v.get("verify-tokens", 1)
    zh, en = ({k: lab[lang] for k, lab in labels.items()} for lang in ("zh", "en"))
    out = []
    if rate is None:
        if cost is not None:
            out.append(t(f"没有{zh['accept-rate']}，{zh['draft-cost']} 不参与计算：给出接受率才会算投机采样的加速比",
                         f"Without a {en['accept-rate']} the {en['draft-cost']} is not used: the speculative speedup "
                         "needs the acceptance rate"))
        return out
    if tokens == 1:
        out.append(t(f"{zh['verify-tokens']}为 1，即没有草稿（γ = 0）：加速比只是 1。要做投机采样，应把它设为 γ + 1，例如 4 个草稿设为 5",
                     f"{en['verify-tokens']} is 1, so there are no drafts (γ = 0) and the speedup is 1: set it to "
                     "γ + 1, e.g. 5 for 4 drafts"))
    elif cost is None:
        out.append(t(f"没有给出{zh['draft-cost']}：按草稿不花时间（c = 0）计算，加速比是上限",
                     f"No {en['draft-cost']} given: the draft is taken as free (c = 0), so the speedup is an upper bound"))
    return out


# KV budget rules under which the engine reserves a KV pool at start-up, whose size calc models (memory.memory_report)
POOL_RULES = ("vllm_profile", "sglang_static", "trtllm_profile")


def _default_token_budget(engine: str, gpu) -> int:
    """The most prompt tokens one engine step holds when the reader sets none, as the VRAM calculator and the planner
    assume it: SGLang's chunked_prefill_size for the GPU, TensorRT-LLM's max_num_tokens, else `vllm serve`'s
    max_num_batched_tokens for it."""
    prof = engines_mod.profile(engine)
    if prof.prefill_chunk_rule:
        return prof.prefill_chunk_for(gpu)
    return prof.kv_budget().get("max_num_tokens") or mem.vllm_max_num_batched_tokens(gpu)


def _seqs(n: int, zh: bool) -> str:
    return f"{n:,} 个" if zh else f"{n:,} sequence" + ("" if n == 1 else "s")


def _per_replica(seqs: int, dp: int, unit_zh: str, unit_en: str) -> tuple[str, str]:
    """An engine's cap on requests run at once, ``seqs`` in all: per ``unit`` and in all where there are ``dp``
    data-parallel replicas, else the number alone (zh, en)."""
    if dp == 1:
        return f"{seqs:,} 个", f"{seqs:,}"
    return (f"每个{unit_zh} {seqs // dp:,} 个，这 {dp} 个副本共 {seqs:,} 个",
            f"{seqs // dp:,} per {unit_en}, {seqs:,} on these {dp}")


def _first_up(text: str) -> str:
    return text[:1].upper() + text[1:]


def _either(options: list[str], zh: bool) -> str:
    """"a, b or c" / "a、b 或 c"."""
    if len(options) == 1:
        return options[0]
    return ("、".join(options[:-1]) + "或" + options[-1]) if zh else (", ".join(options[:-1]) + " or " + options[-1])


def _batch_fit_warnings(v: dict) -> list[dict]:
    """The speed figures assume the whole batch runs at once: say so where it cannot.

    vLLM, SGLang and TensorRT-LLM reserve their KV pool at start-up by a rule calc models (POOL_RULES): the pool holds
    memory.memory_report's max_concurrency sequences of this length, the VRAM calculator's count for the same inputs;
    vLLM also runs at most max_num_seqs at once per data-parallel rank (its default for the GPU), SGLang its
    max_running_requests, TensorRT-LLM its max_batch_size. For the other engines calc's KV rule is a generic fraction,
    so the check is the bytes that must stay resident: weights, the batch's KV cache and the overhead, against what
    CUDA shows; for Hugging Face's generate(), which prefills the whole batch in one pass, the prefill's activation
    peak too."""
    spec, gpu, eng = v["spec"], v["gpu_spec"], engines_mod.profile(v["engine"])
    context, batch = v["prompt-len"] + v["output-len"], v["batch"]
    beyond = context > spec.max_position_embeddings

    report = _memory_report_for(v)
    r = report(batch)
    w, extra, cap, dp = (r["weights_bytes_per_gpu"], r["overhead_bytes_per_gpu"], r["gpu_visible_memory_bytes"],
                         r["attention_replicas"])
    where_zh, where_en = f"{r['gpus']} 块 {gpu.name}", f"{r['gpus']} × {gpu.name}"
    if w > cap:
        return [t(f"仅权重（每块 GPU {mem._gb(w)}）就超过 {where_zh} 上 CUDA 可见的显存（{mem._gb(cap)}）：连权重都装不下，这样的部署起不来，"
                  "这里的数字不对应任何部署。请换更小的权重格式或增加 GPU（tp、pp）",
                  f"the weights alone ({mem._gb(w)} per GPU) exceed the {mem._gb(cap)} CUDA shows on {where_en}: this "
                  "deployment does not load, and these figures describe none. Use a smaller weight format or more GPUs (tp, pp)")]
    wide_kv = mem.KV_DTYPES[v["kv-dtype"]] > 1

    def remedies(zh: bool, *first: str) -> str:
        """What the reader can change: the given options, then more GPUs, then an fp8 KV cache where it is wider."""
        more = ["增加 GPU（tp、pp）" if zh else "add GPUs (tp, pp)"] + (["使用 fp8 KV 缓存" if zh else "use an fp8 KV cache"] if wide_kv else [])
        return _either([*first, *more], zh)
    if eng.kv_rule in POOL_RULES:
        n = r["max_concurrency"]
        # vLLM's scheduler runs at most max_num_seqs per data-parallel rank (one engine core per attention replica),
        # SGLang's its max_running_requests per attention data-parallel worker, by default derived from its KV pool
        seqs, flag = None, "--max-num-seqs"
        if v["engine"] == "vllm":
            seqs = mem.vllm_max_num_seqs(gpu) * dp
        elif v["engine"] == "sglang":
            seqs = mem.sglang_max_running_requests(r["engine_max_tokens_in_cache"] // dp, r["engine_max_model_len"]) * dp
            flag = "--max-running-requests"
        elif eng.kv_rule == "trtllm_profile":
            seqs, flag = eng.kv_budget()["max_batch_size"] * dp, "--max_batch_size"
        if n == 0:
            return [t(f"{eng.name} 在 {where_zh} 上放下权重（每块 GPU {mem._gb(w)}，可见显存 {mem._gb(cap)}）并预留运行所需的显存后，"
                      f"KV 缓存连一个 {context:,} token 的序列都放不下：这样的部署无法提供服务，这里的数字不对应任何部署。"
                      f"请{remedies(True, '换更小的权重格式', '缩短上下文')}",
                      f"{eng.name} on {where_en} has no room left in its KV cache for one sequence of {context:,} tokens "
                      f"once the weights ({mem._gb(w)} per GPU of {mem._gb(cap)} visible) and its working memory are "
                      "reserved: this deployment does not serve, and these figures describe none. "
                      f"{_first_up(remedies(False, 'use a smaller weight format', 'shorten the context'))}")]
        if batch > n:
            capped = seqs is not None and n > seqs  # lowering the batch to n would still trip the engine's cap: say so too
            also_zh = f"；默认一次也最多只运行 {seqs:,} 个（{flag}）" if capped else ""
            also_en = f", and by default it runs at most {seqs:,} at once ({flag})" if capped else ""
            if beyond:
                # each engine's flag for the longest sequence it accepts (by default the model's context)
                length_flag = {"sglang": "--context-length", "trt-llm": "--max_seq_len"}.get(v["engine"], "--max-model-len")
                same_zh = (f"显存计算器把最大模型长度设为 {context:,} 时给出同样的数目；{eng.name} 默认会拒绝超过模型上下文的请求，"
                           f"除非启动时把 {length_flag} 设到这么长（并有允许它的 RoPE 缩放）")
                same_en = (f"The VRAM calculator gives this count with its max model length set to {context:,}; by default "
                           f"{eng.name} rejects requests longer than the model's context unless started with that "
                           f"{length_flag} (and a RoPE scaling that allows it)")
                how_zh = f"请{remedies(True, '减小批大小')}。{same_zh}"
                how_en = f"{_first_up(remedies(False, 'lower the batch'))}. {same_en}"
            else:
                how_zh = (f"请{remedies(True, '减小批大小')}，或用容量规划器估算（它按显存允许的数量接纳请求；显存计算器给出同样的数目）")
                how_en = (f"{_first_up(remedies(False, 'lower the batch'))}, or size with the capacity planner, which "
                          "admits requests as memory allows (the VRAM calculator gives the same count)")
            return [t(f"{eng.name} 在 {where_zh} 上的 KV 缓存只能容纳 {n:,} 个 {context:,} token（提示 + 输出）的序列，而不是 {batch:,} 个{also_zh}："
                      f"同一时刻在运行的不会更多，其余的要排队或被抢占，所以按 {batch:,} 个同时运行算出的这些速度和吞吐在实际部署中达不到。{how_zh}",
                      f"{eng.name}'s KV cache on {where_en} holds {_seqs(n, False)} of {context:,} tokens (prompt + "
                      f"output), not {batch:,}{also_en}: no more run at once, and the rest queue or are preempted, so these "
                      f"figures, computed as if all {batch:,} ran together, are out of reach. {how_en}")]
        if seqs is not None and batch > seqs and v["engine"] == "sglang":
            per_zh, per_en = _per_replica(seqs, dp, "注意力数据并行副本", "attention data-parallel worker")
            return [t(f"SGLang 在这里默认一次最多运行的请求数是 {per_zh}（--max-running-requests；默认值按它的 KV 池算：池中 token 数除以模型上下文长度再乘 512，"
                      f"限定在 2,048 到 4,096 之间，且不超过池中 token 数的一半）：要让 {batch:,} 个同时运行，启动时须把它设得不小于批大小，否则这些速度和吞吐在实际部署中达不到",
                      f"SGLang runs at most {per_en} requests at once here by default (--max-running-requests; the "
                      "default follows its KV pool: the pool's tokens over the model's context length × 512, kept "
                      f"between 2,048 and 4,096 and at most half the pool's tokens): for {batch:,} to run together, start "
                      "it with a value at least as large as the batch, or these figures are out of reach")]
        if seqs is not None and batch > seqs and eng.kv_rule == "trtllm_profile":
            per_zh, per_en = _per_replica(seqs, dp, "注意力数据并行副本", "attention data-parallel rank")
            return [t(f"TensorRT-LLM 默认一次最多运行的请求数是 {per_zh}（trtllm-serve 的 --max_batch_size）：要让 {batch:,} 个同时运行，"
                      "启动时须把它设得不小于批大小，否则这些速度和吞吐在实际部署中达不到",
                      f"TensorRT-LLM runs at most {per_en} requests at once by default (trtllm-serve's --max_batch_size): for "
                      f"{batch:,} to run together, start it with a value at least as large as the batch, or these figures "
                      "are out of reach")]
        if seqs is not None and batch > seqs:
            per_zh, per_en = _per_replica(seqs, dp, "数据并行副本", "data-parallel rank")
            return [t(f"vLLM 在 {gpu.name} 上默认一次最多运行的序列数是 {per_zh}（--max-num-seqs）：要让 {batch:,} 个同时运行，"
                      "启动时须把它调到不小于批大小（这会多占一点采样器预热的显存；显存计算器里可以设同样的值），否则这些速度和吞吐在实际部署中达不到",
                      f"vLLM runs at most {per_en} sequences at once on the {gpu.name} by default (--max-num-seqs): for "
                      f"{batch:,} to run together, start it with a value at least as large as the batch (its sampler "
                      "warm-up then takes a little more memory; the VRAM calculator takes the same setting), or these "
                      "figures are out of reach")]
        return []
    hf = v["engine"] == "hf"
    n = _resident_count(report, r, batch, hf)
    if n >= batch:
        return []
    if n == 0:
        return [t(f"一个 {context:,} token 序列的 KV 缓存在 {where_zh} 上都放不进权重（每块 GPU {mem._gb(w)}）旁边剩下的显存："
                  f"请{remedies(True, '缩短上下文')}。这里的数字假定它放得下",
                  f"the KV cache of one sequence of {context:,} tokens does not fit beside the weights ({mem._gb(w)} per "
                  f"GPU) on {where_en}: {remedies(False, 'shorten the context')}. These figures assume it fits")]
    if hf:
        return [t(f"这一批请求放不进显存：generate() 一次预填充整批提示，在 {where_zh} 上，除去权重（每块 GPU {mem._gb(w)}）、运行开销和随批大小增长的预填充激活峰值，"
                  f"CUDA 可见的 {mem._gb(cap)} 只放得下 {n:,} 个 {context:,} token 的序列，而不是 {batch:,} 个。这里的数字假定它放得下：请减小批大小或缩短提示",
                  f"this batch does not fit in GPU memory: generate() prefills the whole batch in one pass, and beside "
                  f"the weights ({mem._gb(w)} per GPU), the overhead and the prefill's activation peak, which grows with "
                  f"the batch, the {mem._gb(cap)} CUDA shows on {where_en} hold {_seqs(n, False)} of {context:,} tokens, "
                  f"not {batch:,}. These figures assume it fits: lower the batch or the prompt")]
    return [t(f"这一批请求放不进显存：在 {where_zh} 上，权重（每块 GPU {mem._gb(w)}）和运行开销（{mem._gb(extra)}）之外，CUDA 可见的 "
              f"{mem._gb(cap)} 只够放 {n:,} 个 {context:,} token 序列的 KV 缓存，而不是 {batch:,} 个。这里的数字假定整批同时驻留显存："
              f"请{remedies(True, '减小批大小', '缩短上下文')}",
              f"this batch does not fit in GPU memory: beside the weights ({mem._gb(w)} per GPU) and the overhead "
              f"({mem._gb(extra)}), the {mem._gb(cap)} CUDA shows on {where_en} hold the KV cache of {_seqs(n, False)} of "
              f"{context:,} tokens, not {batch:,}. These figures assume the whole batch is resident at once: "
              f"{remedies(False, 'lower the batch', 'shorten the context')}")]


def _resident_count(report, at_batch: dict, upto: int, hf: bool) -> int:
    """The largest batch, up to ``upto``, whose resident bytes fit what CUDA shows: the weights, the batch's KV cache and
    the overhead, and for Hugging Face's generate() (``hf``), which prefills the whole batch in one pass, the prefill's
    activation peak. ``report(b)``: the memory report for a batch of b (``at_batch``: the one for ``upto``). The KV cache
    and the peak grow with the batch, so a bisection finds it."""
    def fits(q: dict) -> bool:
        peak = q["activation_peak_bytes_per_gpu"] if hf else 0
        return (q["weights_bytes_per_gpu"] + q["kv_cache_bytes_per_gpu"] + peak + q["overhead_bytes_per_gpu"]
                <= q["gpu_visible_memory_bytes"])
    if fits(at_batch):
        return upto
    lo, hi = 0, upto
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if fits(report(mid)) else (lo, mid)
    return lo


def _memory_report_for(v: dict):
    """memory.memory_report for these inputs as a function of the batch, as the batch-fit checks read it: the engine's
    default step budget for the GPU, and a max model length that admits sequences of the stated length even beyond
    the model's context (the count is for them)."""
    spec, gpu = v["spec"], v["gpu_spec"]
    budget = _default_token_budget(v["engine"], gpu)
    context = v["prompt-len"] + v["output-len"]

    def report(b: int) -> dict:
        return mem.memory_report(spec, gpu.memory_bytes, v["weights"], v["kv-dtype"], b, v["prompt-len"], v["output-len"],
                                 v["tp"], pp=v["pp"], ep=v["ep"], visible_memory_bytes=gpu.visible_memory_bytes,
                                 engine=v["engine"], linked_gpus=gpu.linked_gpus, compute_capability=gpu.compute_capability,
                                 max_num_batched_tokens=budget, max_model_len=max(context, spec.max_position_embeddings))
    return report


def _curve_capacity(v: dict, curve: list[dict]) -> int:
    """How many sequences of this length memory holds at once, for the throughput curve: vLLM's and SGLang's KV pool
    (the VRAM calculator's count), else the largest batch whose resident bytes fit (_resident_count); at most the
    curve's largest batch (more fit), 0 where the weights alone do not fit. Marks each curve point ``fits_memory``."""
    report = _memory_report_for(v)
    top = max([p["batch"] for p in curve] + [1])
    r = report(top)
    if r["weights_bytes_per_gpu"] > r["gpu_visible_memory_bytes"]:
        n = 0
    elif engines_mod.profile(v["engine"]).kv_rule in POOL_RULES:
        n = min(r["max_concurrency"], top)
    else:
        n = _resident_count(report, r, top, v["engine"] == "hf")
    for p in curve:
        p["fits_memory"] = p["batch"] <= n
    return n


def _unchecked_engine_warnings(v: dict, command: str) -> list[dict]:
    """Speed figures in cases the calibration set has no run of, or shows calc optimistic for (data page)."""
    spec, gpu, engine, out = v["spec"], v["gpu_spec"], v["engine"], []
    # calc's fixed costs for MLA layers (DeepSeek-V3's design) were fitted on SGLang with NVIDIA GPUs only; the held-back
    # rows of 2026-12-01 checked them on vLLM 0.7 (far too optimistic)
    if spec.is_mla and engine != "ideal":
        name = engines_mod.profile(engine).name
        if engine == "vllm":
            # the held-back rows, DeepSeek-R1 on 8 H200s in vLLM serving runs: vLLM 0.7 (V0, 2026-12-01), TPOT -57 to -73 %
            # as this profile computes them (-51 to -64 % with the V0 variant the calibration uses); vLLM 0.8.4 (V1, an open
            # loop, 2026-12-02): its decode-only steps 32-40 % short of the measured gaps on a DGX H200 and 11-19 % short
            # of another provider's H200s' median gaps; its steps with a prompt chunk about two to four times too fast (data
            # page; test_calc_calibration pins these)
            out.append(t("MLA 模型（DeepSeek-V3 式）的固定开销只用 SGLang 的实测拟合过；对照我们读到的 vLLM 服务运行（8 块 H200 上的 DeepSeek-R1），"
                         "calc 的 TPOT 在 vLLM 0.7 的 V0 引擎下短 57 % 到 73 %；在 vLLM 0.8.4 的 V1 引擎下，calc 只含解码的步在一台 DGX H200 上短 32 % 到 40 %"
                         "（对照同一版本在另一家服务商 H200 上的运行短 11 % 到 19 %），calc 算出的提示处理速度约是实测的两到四倍，所以 TTFT 也偏乐观（见数据页）。"
                         "本计算器对这类模型算出的数字应看作偏乐观",
                         "calc's fixed costs for MLA models (DeepSeek-V3's design) were fitted on SGLang runs only; in the vLLM "
                         "serving runs we read (DeepSeek-R1 on 8 H200s) calc's TPOT was 57-73 % short with vLLM 0.7's V0 engine, "
                         "and with vLLM 0.8.4's V1 engine its decode-only steps were 32-40 % short on a DGX H200 (11-19 % against "
                         "the same release on another provider's H200s) and its prompt processing about two to four times too fast, "
                         "so its TTFT is optimistic too (see the data page). Read this calculator's figures for such models as "
                         "optimistic"))
        elif engine == "sglang":
            # GLM-4.7-Flash on one B200 with --attention-backend triton (sgl-cookbook): TPOT 8.75 ms at ~821 tokens of
            # context, 12.63 ms at ~4,405; the profile's MLA costs follow DeepSeek-R1's default-backend runs (data page).
            # On AMD GPUs the warning below, which every engine's speed figure gets there, says more
            if gpu.vendor == "NVIDIA":
                out.append(t("这里 SGLang 的 MLA 数字对应默认注意力后端的运行；若用 --attention-backend triton 启动（sgl-cookbook 给 "
                             "GLM-4.7-Flash 的命令就是这样），解码会随上下文明显变慢：在一块 B200 上，GLM-4.7-Flash 的 TPOT 从约 800 个 token "
                             "上下文时的 8.75 ms 升到约 4,400 个 token 时的 12.63 ms（见数据页）",
                             "SGLang's figures for MLA models here follow runs with its default attention backend; launched "
                             "with --attention-backend triton (as the sgl-cookbook's command for GLM-4.7-Flash is), decode "
                             "slows with the context: on one B200, GLM-4.7-Flash's TPOT rose from 8.75 ms at about 800 tokens "
                             "of context to 12.63 ms at about 4,400 (see the data page)"))
        else:
            out.append(t(f"MLA 模型（DeepSeek-V3 式）的速度只对照过 SGLang 和 vLLM 的实测；{name} 的结果没有对照过任何实测（见数据页）",
                         f"speed figures for MLA models (DeepSeek-V3's design) were checked only against SGLang and vLLM "
                         f"runs; {name}'s have not been compared with any measurement (see the data page)"))
    if engine != "ideal" and gpu.vendor != "NVIDIA":
        # every engine profile was fitted on NVIDIA runs. The AMD runs read took far longer than calc says: vLLM 0.9.1
        # for ROCm on MI300X (chipbenchmark, concurrency 1: TPOT -30 to -65 %, TTFT -42 to -60 %; a vLLM 0.28 run of Gemma-4-31B,
        # which calc lacks: calc's constants give its bytes 12 % less time than it took; vLLM 0.17 serving gpt-oss-120b in
        # MXFP4, InferenceX: TPOT -45 to -51 % at 64-256 requests on one GPU, -20 % at TP 8; data page) and SGLang runs of
        # DeepSeek-V3.1 (0.5.7) and DeepSeek-R1 (0.4.2) on 8 MI300X; no AMD run of the other engines was read. The figures are the CUDA-fitted vLLM profile's,
        # the one the calculators use here; the calibration set's ROCm variant (vllm@rocm-0.9) describes 0.9.1 only, and
        # calc's time is 29 % short of AMD's own table for that release (70B FP8, TP 8, batch 1: 17.236 s; ROCm/vllm
        # docs/dev-docker/README.md at d61a61c13)
        name = engines_mod.profile(engine).name
        if engine == "vllm":
            out.append(t("calc 的引擎参数都是用 NVIDIA GPU 上的实测拟合的；MI300X 上的 vLLM 0.9.1 比 calc 算的慢得多：calc 的解码每步比实测短 "
                         "30 % 到 65 %，TTFT 短 24 % 到 41 %；vLLM 0.28 的一次 BF16 运行（所用模型 calc 里没有），按 calc 的常数算也比实测少 12 %；"
                         "vLLM 0.17 跑 gpt-oss-120b（MXFP4）时，calc 的 TPOT 在单块 MI300X、64 到 256 个并发请求下比实测短 45 % 到 51 %"
                         "；与 AMD 为 vLLM 0.9.1 发布的延迟表相比，calc 算出的 8 块 MI300X 上 70B（FP8）单个请求的耗时也短 29 %（见数据页），这个数字应看作偏乐观",
                         "calc's engine profiles were fitted on runs on NVIDIA GPUs; vLLM 0.9.1 on MI300X took far longer "
                         "than calc says (calc's decode step 30-65 % and its TTFT 24-41 % shorter than measured), and calc's "
                         "constants put a vLLM 0.28 BF16 run (of a model calc lacks) 12 % under its measured time; with "
                         "vLLM 0.17 serving gpt-oss-120b (MXFP4) on one MI300X at 64-256 concurrent requests calc's TPOT is "
                         "45-51 % shorter than measured, and for a single request to the 70B (FP8) on eight MI300X calc's time is 29 % "
                         "short of AMD's own latency table for vLLM 0.9.1 (see the data page), so read this figure as optimistic"))
        elif engine == "sglang":
            # DeepSeek-V3.1 with SGLang 0.5.7 (-60 %), DeepSeek-R1 with SGLang 0.4.2 (held-back rows: -60 and -67 %)
            out.append(t(f"calc 的引擎参数都是用 NVIDIA GPU 上的实测拟合的；我们读到的 {gpu.vendor} GPU 上的 SGLang 运行"
                         "（8 块 MI300X 上的 DeepSeek-V3.1 和 DeepSeek-R1）都比 calc 算的慢得多（calc 的 TPOT 短 60 % 到 67 %，见数据页），"
                         "这个数字应看作偏乐观",
                         f"calc's engine profiles were fitted on runs on NVIDIA GPUs; the SGLang runs on {gpu.vendor} "
                         f"GPUs we read (DeepSeek-V3.1 and DeepSeek-R1 on 8 MI300X) took far longer than calc says (its TPOT "
                         f"60-67 % short; see the data page), so read this figure as optimistic"))
        elif engine == "trt-llm":
            out.append(t(f"{name} 只能在 NVIDIA GPU 上运行，这个数字不对应任何实际部署",
                         f"{name} runs on NVIDIA GPUs only, so this figure describes no real deployment"))
        else:
            out.append(t(f"calc 的引擎参数都是用 NVIDIA GPU 上的实测拟合的；{name} 在 {gpu.vendor} GPU 上的运行我们一次也没有读到，"
                         "这个数字没有检验过（同一块 GPU 上的 vLLM 比 calc 算的慢得多，见数据页）",
                         f"calc's engine profiles were fitted on runs on NVIDIA GPUs and no run of {name} on {gpu.vendor} "
                         f"GPUs was read, so this figure is unchecked (vLLM on that GPU took far longer than calc says; "
                         f"see the data page)"))
    if engine == "trt-llm" and gpu.vendor == "NVIDIA" and v.get("request-latency-ms") is None:
        # its fit TTFTs ran gptSessionBenchmark; NIM's held-out HTTP-served TTFTs are within +5 %, but the one
        # trtllm-serve run read (GPUStack, v1.2.0rc1, Qwen3-8B on an H100, mean at concurrency 4) took about 40 ms more
        out.append(t("经由 trtllm-serve（v1.2.0rc1）的一次 TensorRT-LLM 运行，TTFT 比 calc 算的多约 40 ms（并发 4 下的均值，部分属于那台主机；"
                     "NIM 里的 TensorRT-LLM 相差在 5 % 以内）。如果用 trtllm-serve 部署，请在“更多参数”里填入自己服务前端的每请求延迟（见数据页）",
                     "one TensorRT-LLM run through trtllm-serve (v1.2.0rc1) took about 40 ms more TTFT than calc says (the "
                     "mean at concurrency 4, part of it that host's; NIM's TensorRT-LLM runs matched within 5 %). If you "
                     "serve with trtllm-serve, enter your front end's per-request latency under \"More inputs\" (see the "
                     "data page)"))
    if engine == "vllm" and "GeForce" in gpu.name:
        # the vLLM runs on GeForce cards in the calibration set: 7-8B models (RTX 4090: vLLM 0.25.1, two hosts; RTX 5090:
        # vLLM 0.19.1 dev): BF16 TPOT +13 to +16 %, TTFT -7 to +31 %; AWQ/GPTQ TPOT +31/+32 %, TTFT 0 %; FP8 TPOT -5 %,
        # TTFT -21 %; Qwen3-4B on an RTX 5090 (vLLM 0.22.1, Poisson arrivals): median TPOT within 6.2 % at 1-12 requests
        # per second, -49 % at 16, past the source's knee (calc's saturated rate +27 %) (calc minus measured, over measured;
        # test_calc_calibration pins these ranges)
        out.append(t("在 GeForce 显卡上，calc 对 vLLM 的估算有偏差，方向不一：与 RTX 4090 和 RTX 5090 上 vLLM 服务 7–8B 模型的实测相比，calc 的 BF16 TPOT 高 "
                     "13–16 %、TTFT 在 −7 % 到 +31 % 之间，AWQ/GPTQ 的 TPOT 高 31–32 %（TTFT 相差不到 1 %），FP8 的 TPOT 低 5 %、TTFT 低 21 %；"
                     "在 RTX 5090 上用 vLLM 0.22.1 服务 Qwen3-4B、请求按泊松过程到达时，每秒 1 到 12 个请求下 TPOT 相差在 6.2 % 以内，"
                     "每秒 16 个（已过来源所说的拐点）时低 49 %，calc 算出的容量高了约四分之一（见数据页）",
                     "on GeForce cards calc's vLLM figures were off in both directions: against vLLM serving 7-8B models on an RTX "
                     "4090 and an RTX 5090, calc's BF16 TPOT was 13-16 % above the measured and its TTFT -7 % to +31 %, AWQ/GPTQ TPOT "
                     "31-32 % above (TTFT within 1 %), FP8 TPOT 5 % and TTFT 21 % below; serving Qwen3-4B on an RTX 5090 (vLLM "
                     "0.22.1, Poisson arrivals), its TPOT was within 6.2 % at 1 to 12 requests per second and 49 % below at 16, "
                     "past the source's knee, where calc's capacity was about a quarter too high (see the data page)"))
    if engine == "llama.cpp" and (gpu.memory_type or "").upper().startswith("HBM"):
        # the HBM factor was fitted on 2024 builds; no current build was found on an HBM GPU
        out.append(t("llama.cpp 在用 HBM 的 GPU 上的速度依据的是 2024 年的版本（这些版本在 HBM 上达到的带宽比例只有在 GDDR 显卡上的一半左右）；"
                     "我们没有找到当前版本在这类 GPU 上的运行，这个数字没有检验过（见数据页）",
                     "llama.cpp's speed on HBM GPUs rests on 2024 builds (which reached about half the bandwidth share "
                     "they reached on GDDR cards); no run of a current build on such a GPU was found, so this figure is "
                     "unchecked (see the data page)"))
    several = v["max-num-seqs"] > 1 if command == "plan" else v.get("batch", 1) > 1
    if engine == "llama.cpp" and several and v["weights"] in ("q4_0", "q4_k_m"):
        # PR #15802: an RTX 3090's Q4_0 step at 8 tokens per step took 2.2x calc's (memory-bound) step
        out.append(t("llama.cpp 同时处理多条序列、权重为 4 位 GGUF 时，每步比 calc 算的慢（RTX 3090 上 Q4_0 每步 8 个 token 时是 calc 的 2.2 倍，见数据页）",
                     "with several sequences and 4-bit GGUF weights, llama.cpp's steps are slower than calc's (on an "
                     "RTX 3090, Q4_0 at 8 tokens per step took 2.2 times calc's step; see the data page)"))
    tp, pp, ep = v.get("tp", 1), v.get("pp", 1), v.get("ep", 1)
    gpus = max(tp, ep) * pp  # a step pays the multi-GPU cost on more than one
    # vLLM V1 on several GPUs: its multi-GPU cost was fitted on gpt-oss-120b at TP 8 on H100 SXM (MoE checked at TP 2,
    # 4 and 8 there); dense models were checked at TP 2 and 4 on H100 SXM and A100 SXM 80GB nodes (chipbenchmark, vLLM
    # 0.9.1, concurrency 1: -16 to +12 %); no run with pipeline stages or expert parallelism was read
    checked = pp == 1 and ep <= 1 and (v["gpu"] == "h100-sxm" and tp <= 8 if spec.is_moe else
                                       v["gpu"] in ("h100-sxm", "a100-80gb") and tp <= 4)
    if engine == "vllm" and gpus > 1 and not checked:
        out.append(t("vLLM V1 在多块 GPU 上只对照过 H100 SXM 和 A100 SXM 80GB 节点、没有流水线并行和专家并行的情形（稠密模型是张量并行 2 和 4，"
                     "vLLM 0.9.1，并发 1：−16 % 到 +12 %；MoE 模型是 H100 SXM 上的张量并行 2 到 8）；这里的配置不在其内，这个数字没有检验过（见数据页）",
                     "vLLM V1 on several GPUs was checked only on H100 SXM and A100 SXM 80GB nodes without pipeline stages or "
                     "expert parallelism (dense models at tensor parallel 2 and 4, vLLM 0.9.1 at concurrency 1: -16 % to "
                     "+12 %; MoE models at TP 2 to 8 on H100 SXM); this setup is outside that, so the figure is unchecked "
                     "(see the data page)"))
    if engine == "sglang" and gpus > 1 and not spec.is_moe:
        # SGLang's cost on several GPUs was fitted on MoE models only (gpt-oss-120b and Qwen3-235B at TP 8); no usable
        # decode run of a dense model on several GPUs was found
        name = engines_mod.profile(engine).name
        out.append(t(f"{name} 在多块 GPU 上每步的开销只用 MoE 模型拟合过；它在多块 GPU 上跑稠密模型的解码测量，我们没有找到能用的，"
                     "这个数字没有检验过（见数据页）",
                     f"{name}'s cost per step on several GPUs was fitted on MoE models only; no usable decode run of a "
                     f"dense model on several GPUs with {name} was found, so this figure is unchecked (see the data page)"))
    return out


def _common(v: dict) -> dict:
    return {
        "model": v["spec"].name, "gpu": v["gpu"], "weights": v["weights"], "kv_dtype": v["kv-dtype"],
        "batch": v["batch"], "prompt_len": v["prompt-len"], "output_len": v["output-len"], "tp": v["tp"],
        "engine": v["engine"], "attention": v["spec"].attention_kind,
    }


def _perf(v: dict) -> dict:
    return perf_mod.perf_report(
        v["spec"], v["gpu_spec"], v["weights"], v["kv-dtype"], v["batch"], v["prompt-len"], v["output-len"], v["tp"],
        memory_efficiency=v["mem-efficiency"], compute_efficiency=v["compute-efficiency"], pp=v["pp"], ep=v["ep"],
        engine=v["engine"], verify_tokens=v.get("verify-tokens", 1), request_latency_s=_request_latency_s(v),
        accept_rate=v.get("accept-rate"), draft_cost=v.get("draft-cost") or 0.0)  # no draft cost given: a free draft


def _request_latency_s(v: dict) -> float | None:
    """The reader's own per-request latency off the GPU (front end), in seconds; None: the engine's fitted figure."""
    return None if v["request-latency-ms"] is None else v["request-latency-ms"] / 1000 + 0.0  # + 0.0: "-0" reads 0


def _cost(v: dict) -> dict:
    perf = _perf(v)
    price = v["gpu-price"] if v["gpu-price"] is not None else v["gpu_spec"].usd_per_hour
    api = v["api"]
    report = cost_mod.cost_report(perf, v["batch"], v["prompt-len"], v["output-len"], price, perf["gpus"],
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
    if command == "plan":
        out = _plan(v)
        # the tensor-parallel size it chose; where nothing fits, the largest one its reasons quote figures for
        tp = out["tp_size"] or max([x["tp"] for x in out["rejected"]] + [1])
        out["warnings"] = _warnings({**v, "tp": tp}, command)
        return _json_safe(out)
    out = _common(v)
    if command == "memory":
        out.update(mem.memory_report(
            spec, v["gpu_spec"].memory_bytes, v["weights"], v["kv-dtype"], v["batch"], v["prompt-len"], v["output-len"],
            v["tp"], overhead_bytes=round(v["overhead-gib"] * GiB), gpu_memory_utilization=v["gpu-memory-utilization"],
            block_size=v["block-size"], max_model_len=v["max-model-len"], max_num_batched_tokens=v["max-num-batched-tokens"],
            max_num_seqs=v["max-num-seqs"], pp=v["pp"], ep=v["ep"], visible_memory_bytes=v["gpu_spec"].visible_memory_bytes, engine=v["engine"],
            linked_gpus=v["gpu_spec"].linked_gpus, compute_capability=v["gpu_spec"].compute_capability))
    elif command == "perf":
        out.update(_perf(v))
        # the chart marks the batches beyond what memory holds at this length
        out["curve_capacity"] = _curve_capacity(v, out["throughput_curve"])
    elif command == "cost":
        out.update(_cost(v))
    else:
        c = _cost(v)
        savings = v["monthly-savings"] if v["monthly-savings"] is not None else c["monthly_savings_usd"]
        out.update(cost_mod.roi_report(v["engineering-cost"], v["hardware-cost"], savings,
                                       selfhost_monthly_usd=c["monthly_cost_usd"], api_usd_per_request=c["api_usd_per_request"]))
        out.update({"api": c["api"], "monthly_cost_usd": c["monthly_cost_usd"], "api_monthly_cost_usd": c["api_monthly_cost_usd"],
                    "usd_per_request": c["usd_per_request"], "api_usd_per_request": c["api_usd_per_request"]})
    out["warnings"] = _warnings(v, command)
    if command == "memory":
        out["warnings"] += _engine_pool_warnings(v, out)
    return _json_safe(out)


def _engine_pool_warnings(v: dict, r: dict) -> list[dict]:
    """The VRAM calculator's "fits" adds up the bytes a batch needs; an engine that reserves a KV pool at start-up by its
    own rule (POOL_RULES) may hold fewer sequences of this length than the batch, or none: say so, as the speed
    calculators do for the pool (_batch_fit_warnings; the engines' caps on running requests, e.g. vLLM's
    --max-num-seqs, are the speed calculators' to warn about). A context longer than the max model length given is
    counted at that length (memory_report, for every engine): say that first, and what the engine does with such a
    request (_length_capped)."""
    eng = engines_mod.profile(v["engine"])
    n, batch = r["max_concurrency"], v["batch"]
    # the length as given (left empty, it is the model's context, and _warnings speaks of a context beyond that)
    context, limit = v["prompt-len"] + v["output-len"], v["max-model-len"]
    out = []
    given, used = v["block-size"], r["engine_block_size"]
    if given is not None and used != given:  # the engine's default backend on this GPU takes no such page (engine_block_size)
        label_en = INPUTS["block-size"]["label"]["en"]
        out.append(t(f"{eng.name} 在这块 GPU 上的默认注意力后端不支持每块 {given:,} 个 token 的 KV 块，启动时会改成每块 {used:,} 个；"
                     f"这里按 {used:,} 计",
                     f"{eng.name}'s default attention backend on this GPU takes no {label_en} of {given:,}: it changes it "
                     f"to {used:,} at start-up, and the count here uses {used:,}"))
    refused = False
    if limit is not None and context > limit:
        # a pool with no room even at the limit: a longer limit would not help, the warning below says what would
        pool_empty = eng.kv_rule in POOL_RULES and r["fits"] and n == 0
        out.append(_length_capped(v, eng, context, limit, pool_empty))
        refused = _refuses(v, eng, limit)
        context = limit
    if eng.kv_rule not in POOL_RULES or not r["fits"] or n >= batch:
        return out
    frac = r["engine_gpu_memory_utilization"]
    budget = r["engine_kv_budget_bytes_per_gpu"]
    kv_zh = f"每块 GPU {mem._gb(budget)}" if budget > 0 else "每块 GPU 都没有剩余"
    kv_en = f"{mem._gb(budget)} per GPU" if budget > 0 else "nothing left per GPU"
    more = ["增加 GPU（tp、pp）"] + (["使用 fp8 KV 缓存"] if mem.KV_DTYPES[v["kv-dtype"]] > 1 else [])
    more_en = ["add GPUs (tp, pp)"] + (["use an fp8 KV cache"] if mem.KV_DTYPES[v["kv-dtype"]] > 1 else [])
    label_zh, label_en = INPUTS["gpu-memory-utilization"]["label"]["zh"], INPUTS["gpu-memory-utilization"]["label"]["en"]
    if n == 0:
        return out + [t(f"这些字节放得下，但 {eng.name} 按自己的规则预留 KV 缓存（{kv_zh}，{label_zh} {frac:.3f}）后，"
                  f"连一个 {context:,} token 的序列都放不下：这样的部署无法提供服务。请"
                  + _either([f"调高{label_zh}", "换更小的权重格式", "缩短上下文", *more], True),
                  f"The bytes fit, but the KV cache {eng.name} reserves by its own rule ({kv_en} at a "
                  f"{label_en} of {frac:.3f}) has no room for one sequence of {context:,} tokens: this deployment "
                  "does not serve. "
                  + _first_up(_either([f"raise the {label_en}", "use a smaller weight format", "shorten the context",
                                       *more_en], False)))]
    if refused:  # none of these requests runs: a count of how many run at once would mislead
        return out
    return out + [t(f"这些字节按批大小 {batch:,} 算放得下，但 {eng.name} 按自己的规则预留的 KV 缓存只容纳 {n:,} 个 {context:,} token 的序列："
              f"同一时刻最多运行 {n:,} 个，其余的要排队。请" + _either(["减小批大小", f"调高{label_zh}", *more], True),
              f"The bytes fit for a batch of {batch:,}, but the KV cache {eng.name} reserves by its own rule holds "
              f"{_seqs(n, False)} of {context:,} tokens: at most {n:,} run at once and the rest queue. "
              + _first_up(_either(["lower the batch", f"raise the {label_en}", *more_en], False)))]


def _refuses(v: dict, eng, limit: int) -> bool:
    """Whether the engine refuses a request of this prompt and output beyond the max model length (_length_capped)."""
    return eng.kv_rule in POOL_RULES and (v["engine"] != "vllm" or v["prompt-len"] >= limit)


def _length_capped(v: dict, eng, context: int, limit: int, pool_empty: bool = False) -> dict:
    """The warning for a prompt + output longer than the max model length given. vLLM 0.32 refuses a prompt that
    reaches the limit and otherwise lowers max_tokens to the room left, so the request ends at the limit
    (input_processor's length check, get_max_tokens, FINISHED_LENGTH_CAPPED); SGLang (without --allow-auto-truncate)
    and TensorRT-LLM's LLM API refuse a request whose prompt + output exceeds it. The other engines have no such
    setting: the count is only calc's. Raising the length is offered only up to the model's own context, and not where
    the engine's pool holds no sequence even at the limit (pool_empty: the pool warning that follows gives the fixes)."""
    label_zh, label_en = INPUTS["max-model-len"]["label"]["zh"], INPUTS["max-model-len"]["label"]["en"]
    if eng.kv_rule not in POOL_RULES:
        does_zh, does_en = "", ""
    elif not _refuses(v, eng, limit):  # vLLM with a prompt under the limit
        does_zh = f"{eng.name} 会照常接收，但每个请求到 {limit:,} token 就停止生成（输出被截短）；"
        does_en = f"{eng.name} accepts such requests but stops each at {limit:,} tokens, its output cut short; "
    elif v["engine"] == "vllm":
        does_zh = f"{eng.name} 会拒绝 {limit:,} token 及以上的提示；"
        does_en = f"{eng.name} refuses prompts of {limit:,} tokens or more; "
    else:
        does_zh, does_en = f"{eng.name} 会拒绝这样的请求；", f"{eng.name} refuses such requests; "
    if pool_empty:
        fix_zh, fix_en = "", ""
    elif context <= v["spec"].max_position_embeddings:
        fix_zh, fix_en = f"请把{label_zh}设到至少 {context:,}，或缩短上下文", f"Set the {label_en} to at least {context:,}, or shorten the context"
    else:  # beyond the model's context too: the engines refuse a longer max model length without an override
        fix_zh, fix_en = "请缩短上下文", "Shorten the context"
    return t(f"提示加输出共 {context:,} token，超过{label_zh} {limit:,}：{does_zh}这里的 KV 按 {limit:,} token 计。{fix_zh}",
             f"The prompt and output come to {context:,} tokens, more than the {label_en} of {limit:,}: {does_en}"
             f"the KV here is counted at {limit:,} tokens." + (f" {fix_en}" if fix_en else ""))


def _json_safe(x):
    """Plain JSON values only: NaN/Infinity become None (JSON null)."""
    if isinstance(x, float) and not math.isfinite(x):
        return None
    if isinstance(x, dict):
        return {k: _json_safe(val) for k, val in x.items()}
    if isinstance(x, (list, tuple)):
        return [_json_safe(val) for val in x]
    return x
