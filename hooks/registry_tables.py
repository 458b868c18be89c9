"""Print calc's registries as tables, so a reader sees every spec, shape and price the calculators use.

    {{ registry gpus }}     GPUs: memory, bandwidth, dense peaks, interconnect, TDP, $/GPU-hour, sources
    {{ registry models }}   model presets: shape, parameters (computed by calc, and as published), KV per token
    {{ registry prices }}   API prices per 1M tokens, with their dates
    {{ registry validation }}  the serving simulator against published benchmarks (calc/data/simulator_validation.json,
                            written by scripts/validate_simulator.py)
    {{ registry workloads }}   the simulator's request-length profiles from public traces, with their sources
    {{ registry engines }}  serving-engine profiles: fixed costs per step, efficiencies, KV rule, sources
    {{ registry calibration }}  calc's error against the published measurements (kind x fit/holdout)
    {{ registry calibration_points }}  the same, one row per measurement (id, engine, variant, measured, calc, error)
    {{ registry calibration_misses }}  the held-out measurements calc misses by more than 30 %, worst first

Each directive stands alone on its line and becomes a Markdown table in the page's language. The values are
read from calc/ at build time (the same data the calculators, the labs and the tests read), so the page cannot
drift from them. An unknown registry name fails the build.
"""

from __future__ import annotations

import math
import re

import directives  # hooks/directives.py (MkDocs loads hooks with their folder on sys.path)
import hook_support
from mkdocs.exceptions import PluginError


def _cell(text) -> str:
    return str(text).replace("|", "\\|")


def _table(header: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(" --- " for _ in header) + "|"]
    lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _flops(value, units) -> str:
    return "—" if value is None else units.format_value(value, "TFLOPS:0").replace(" TFLOPS", "")


def gpus_table(lang: str) -> str:
    registry, units = hook_support.calc_modules("registry", "units")
    zh = lang == "zh"
    header = (["GPU", "显存", "显存带宽", "BF16 稠密 TFLOPS（实测矩阵乘）", "FP8 稠密 TFLOPS", "GPU 互联", "TDP", "云租价 $/GPU·h", "来源"]
              if zh else
              ["GPU", "Memory", "Memory bandwidth", "BF16 dense TFLOPS (measured matmul)", "FP8 dense TFLOPS", "GPU interconnect", "TDP",
               "Cloud price $/GPU-h", "Sources"])
    rows = []
    for key in registry.list_gpus():
        g = registry.get_gpu(key)
        cc = g.compute_capability or ""
        cc = (cc if cc.startswith("gfx") else f"CC {cc}") if cc else ""
        name = f"{g.name} (`{key}`{', ' + cc if cc else ''})" + (" †" if getattr(g, "unverified", None) else "")
        memory = f"{units.format_value(g.memory_bytes, 'GiB:0')} = {units.format_value(g.memory_bytes, 'GB:2')}"
        if getattr(g, "visible_memory_bytes", None):
            derived = g.visible_memory_source.startswith("derived")
            what = "nvidia-smi" if g.visible_memory_source.startswith("nvidia-smi") else "CUDA"
            memory += f"; {what} {units.format_value(g.visible_memory_bytes, 'GiB:2')}" + (" ‡" if derived else "")
        link = f"{g.interconnect}, {units.format_value(g.interconnect_bytes_per_s, 'GB/s:0')}" \
            if g.interconnect_bytes_per_s else (g.interconnect or "—")
        if g.usd_per_hour_low is None:
            price = "—"
        else:
            price = f"{g.usd_per_hour_low:.2f}–{g.usd_per_hour_high:.2f} ({g.price_as_of})"
        sources = [f"[{'规格' if zh else 'specs'}]({g.source}) ({g.as_of})"]
        if getattr(g, "checked_via", None):
            sources.append(f"[{'核对' if zh else 'checked via'}]({g.checked_via})")
        if g.price_source:
            sources.append(f"[{'价格' if zh else 'price'}]({g.price_source})")
        bf16 = _flops(g.bf16_dense_flops, units)
        if g.matmul_measured_flops:  # a measured large matmul, and the factor calc applies (× 1 inside the dead band)
            shown = _flops(g.matmul_measured_flops, units)
            dtype = "" if g.bf16_dense_flops else f" FP16 {_flops(g.fp16_dense_flops, units)} →"
            bf16 += (f"；实测{dtype} {shown}（{g.matmul_share:.0%}）" if zh else f"; measured{dtype} {shown} ({g.matmul_share:.0%})")
            if g.matmul_factor != 1:
                bf16 += f" ×{g.matmul_factor:.2f}"
            sources.append(f"[{'实测矩阵乘' if zh else 'matmul'}]({g.matmul_measured_source})")
        rows.append([name, memory, units.format_value(g.memory_bandwidth_bytes_per_s, "TB/s:2"),
                     bf16, _flops(g.fp8_dense_flops, units), link,
                     f"{g.tdp_watts} W" if g.tdp_watts else "—", price, " · ".join(sources)])
    return _table(header, rows)


def models_table(lang: str) -> str:
    api, registry, units = hook_support.calc_modules("api", "registry", "units")
    zh = lang == "zh"
    header = (["模型", "层数", "hidden", "注意力头 Q/KV", "head_dim", "注意力", "参数量（calc）", "激活参数（calc）",
               "公布的参数量", "KV/token（BF16）", "来源"]
              if zh else
              ["Model", "Layers", "Hidden", "Heads Q/KV", "head_dim", "Attention", "Parameters (calc)",
               "Active (calc)", "Published", "KV per token (BF16)", "Source"])
    rows = []
    for key in registry.list_models():
        entry, spec = registry.model_entry(key), registry.get_model(key)
        result = api.run("memory", {"model": key, "kv-dtype": "bf16"})
        published = entry.get("published_params") or {}
        shown = units.format_value(published["total"], "params:1") if published.get("total") else "—"
        if published.get("active") and published.get("active") != published.get("total"):
            shown += " / " + units.format_value(published["active"], "params:1")
        if published.get("url"):
            shown = f"[{shown}]({published['url']})"
        rows.append([f"{entry['name']} (`{key}`)", spec.num_hidden_layers, f"{spec.hidden_size:,}",
                     f"{spec.num_attention_heads}/{spec.num_key_value_heads}",
                     f"{spec.qk_head_dim}/{spec.v_head_dim} (q·k/v)" if spec.is_mla else spec.head_dim,
                     result["attention"].upper(), units.format_value(result["params_total"], "params:2"),
                     units.format_value(result["params_active"], "params:2"), shown,
                     units.format_value(result["kv_bytes_per_token"], "KiB:1"),
                     f"[config.json]({entry['source']}) ({entry['as_of']})"])
    return _table(header, rows)


def prices_table(lang: str) -> str:
    (registry,) = hook_support.calc_modules("registry")
    zh = lang == "zh"
    header = (["API", "输入 $/1M token", "输出 $/1M token", "价格日期", "核对日期", "来源"] if zh else
              ["API", "Input $/1M tokens", "Output $/1M tokens", "Price dated", "Checked", "Source"])
    rows = []
    for key in registry.list_prices():
        p = registry.get_price(key)
        source = f"[{'官方' if zh else 'official'}]({p['source']})"
        if p.get("checked_via"):
            source += f" · [{'核对' if zh else 'checked via'}]({p['checked_via']})"
        rows.append([f"{p['provider']} {p['model']} (`{key}`)", f"{p['usd_per_million_input_tokens']:.2f}",
                     f"{p['usd_per_million_output_tokens']:.2f}", p.get("source_date") or "—", p["as_of"], source])
    return _table(header, rows)


def _json(name: str) -> dict:
    import json
    import os
    (registry,) = hook_support.calc_modules("registry")
    with open(os.path.join(registry.DATA, name), encoding="utf-8") as fh:
        return json.load(fh)


def validation_table(lang: str) -> str:
    """Published vs simulated median TTFT, median ITL and output throughput, one row per benchmark point: the
    simulation with the profile of the engine that ran the benchmark (calc.engines), then with ``ideal``."""
    (units,) = hook_support.calc_modules("units")
    zh = lang == "zh"
    doc = _json("simulator_validation.json")
    benches = {b["key"]: b for b in _json("serving_benchmarks.json")["benchmarks"]}
    header = (["基准测试", "calc 引擎", "请求速率", "输入/输出长度", "TTFT 中位数（ms）：公布 / 引擎 / 理想",
               "ITL 中位数（ms）：公布 / 引擎 / 理想", "输出吞吐（tok/s）：公布 / 引擎 / 理想", "吞吐误差：引擎 / 理想"] if zh else
              ["Benchmark", "calc engine", "Request rate", "Prompt/output lengths",
               "Median TTFT (ms): published / engine / ideal", "Median ITL (ms): published / engine / ideal",
               "Output throughput (tok/s): published / engine / ideal", "Throughput error: engine / ideal"])
    rows = []
    for r in doc["rows"]:
        b = benches[r["benchmark"]]
        name = f"[{b['model_note'].split(';')[0].split(',')[0]}, {b['tp']}× H200]({b['source']})"
        rate = ("全部同时到达" if zh else "all at once") if r["rate"] is None else units.format_value(r["rate"], "req/s:0")

        def three(key, unit, r=r):
            return " / ".join(units.format_value(r[k], unit) for k in
                              ("published_" + key, "simulated_" + key, "ideal_simulated_" + key))
        # -0.3 % reads "0%", not "-0%"
        err = " / ".join(units.format_value(r[k], "%:0").replace("-0%", "0%")
                         for k in ("error_output_tok_per_s", "ideal_error_output_tok_per_s"))
        rows.append([name, f"`{r['engine']}`", rate, f"{r['prompt']} / {r['output']}", three("median_ttft_ms", "num:1"),
                     three("median_itl_ms", "num:1"), three("output_tok_per_s", "num:0"), err])
    return _table(header, rows)


def workloads_table(lang: str) -> str:
    (sim,) = hook_support.calc_modules("simulate")
    zh = lang == "zh"
    header = (["名称", "请求数", "提示长度 均值 / p50 / p90", "输出长度 均值 / p50 / p90", "来源"] if zh else
              ["Name", "Requests", "Prompt mean / p50 / p90", "Output mean / p50 / p90", "Source"])
    rows = []
    for key, p in sim.LENGTH_PROFILES.items():
        def stats(side, p=p):
            q = p[side]["quantiles"]
            return f"{p[side]['mean']:,.0f} / {q[50]:,.0f} / {q[90]:,.0f}"
        rows.append([f"{p['label'][lang]} (`{key}`)", f"{p['requests']:,}", stats("prompt"), stats("output"),
                     f"[{'轨迹文件' if zh else 'trace file'}]({p['source']}) ({p['as_of']})"])
    return _table(header, rows)


def engines_table(lang: str) -> str:
    engines, units = hook_support.calc_modules("engines", "units")
    zh = lang == "zh"
    header = (["引擎", "版本", "每步固定开销（解码 / 含提示 token 的步）+ 每个请求不占 GPU 的延迟（前端）", "每个序列", "多卡（tp > 1）",
               "带宽效率", "算力效率", "KV 预算规则", "来源"]
              if zh else
              ["Engine", "Version", "Fixed cost per step (decode / step with prompt tokens) + per-request latency off the GPU (front end)",
               "Per sequence", "Multi-GPU (tp > 1)",
               "Bandwidth efficiency", "Compute efficiency", "KV budget rule", "Sources"])
    ms = lambda x: units.format_value(x, "ms:2")  # noqa: E731
    us = lambda x: units.format_value(x * 1e6, "num:1") + " µs"  # noqa: E731

    def shares(d):
        return ", ".join(f"{k if k != 'default' else ('其余' if zh else 'other')} {v:.0%}" for k, v in d.items())

    def bandwidth(p, e):  # the shares, and the factor some engines' kernels keep of them on HBM GPUs
        out = shares(e["memory_efficiency"])
        if p.hbm_bandwidth_factor != 1:
            out += (f"；HBM 显卡上再乘 {p.hbm_bandwidth_factor:g}" if zh else f"; × {p.hbm_bandwidth_factor:g} on HBM GPUs")
        if p.decode_copies_kv_cache:
            out += ("；解码每步另把整个 KV 缓存复制一遍（读 + 写，torch.cat）" if zh else
                    "; each decode step also copies the whole KV cache (read + write, torch.cat)")
        return out

    def compute(p, e):  # of which peak: the FP16-accumulate one where the engine's FP16 GEMMs use it
        out = shares(e["compute_efficiency"])
        if p.accumulates_in_fp16:
            out += ("（FP16 与 GGUF 权重按 FP16 累加峰值计，GeForce 上是 FP32 累加的两倍）" if zh else
                    " (FP16 and GGUF weights: of the FP16-accumulate peak, twice the FP32-accumulate one on GeForce)")
        return out

    rows = []
    for key in engines.ENGINES:
        p, e = engines.profile(key), engines.entry(key)
        name = f"{p.name} (`{key}`)" + ("" if p.calibrated else (" （未校准速度）" if zh else " (speed not calibrated)"))
        kv = p.kv_budget()
        gib = lambda x: units.format_value(x, "GiB:2")  # noqa: E731
        frac = f"{kv['fraction']:g}" if kv.get("fraction") is not None else "?"
        if kv["rule"] == "sglang_static":
            start, pcie = gib(kv.get("startup_bytes_multi_gpu", 0)), gib(kv.get("startup_bytes_multi_gpu_pcie", 0))
            rule = (f"mem_fraction_static × (CUDA 可见显存 − 多卡时分布式初始化 {start}，GPU 未全部由 NVLink 连通时 {pcie}) − 权重"
                    "（mem_fraction_static 默认按 [SGLang 自己的算法](#sglang-fraction)）"
                    if zh else f"mem_fraction_static × (CUDA-visible − {start} of distributed set-up on several GPUs, "
                               f"{pcie} where NVLink does not link them all) − weights (mem_fraction_static by default "
                               "[SGLang's own heuristic](#sglang-fraction))")
            swa = kv.get("hybrid_swa")
            if swa:  # SGLang's window pool for the models on its list
                r = f"{swa['swa_full_tokens_ratio']:g}"
                names = [t.replace("_", "-") for t in swa["model_types"]]  # config.json's model_type gpt_oss: gpt-oss
                rule += ((f"；{'、'.join(names)} 的滑动窗口层另有一个池，token 数是全量池的 {r} 倍，运行中的请求在其中保留提示的最后一个窗口"
                          "和尚未移出窗口的已解码 token（[SGLang 的窗口池](#sglang-swa)）") if zh else
                         (f"; {', '.join(names)}: the sliding-window layers get a pool of their own, {r} × "
                          "the full pool's tokens, where a running request keeps its prompt's last window and the "
                          "tokens it decoded until they leave the window ([SGLang's window pool](#sglang-swa))"))
                for vname in p.kv_variants:  # what each older release did differently
                    vswa = p.kv_budget(vname).get("hybrid_swa")
                    parts = []
                    if not vswa:
                        parts.append("没有这个池" if zh else "no such pool")
                    else:
                        if vswa["prompt_held"] == "chunk":
                            parts.append("提示在基数树里的最后一个叶子（最长一个预填充分块）留在窗口池里" if zh else
                                         "the prompt's last radix-tree leaf (up to a prefill chunk) stays in the window pool")
                        off = ", ".join(f"{c}.x" for c in vswa.get("off_compute_capability_majors", ()))
                        if off:
                            parts.append(f"计算能力 {off} 上没有这个池" if zh else f"no such pool on compute capability {off}")
                    rule += (f"（{vname}：{'；'.join(parts)}）" if zh else f" ({vname}: {'; '.join(parts)})")
        elif kv["rule"] == "vllm_profile":
            nt, cg = gib(kv.get("non_torch_bytes", 0)), gib(kv.get("cuda_graph_bytes", 0))
            rule = (f"{frac} × CUDA 可见显存 − 权重 − 试运行激活峰值 − PyTorch 之外 {nt} − CUDA Graph {cg}" if zh else
                    f"{frac} × CUDA-visible − weights − profiling-pass activations − {nt} outside PyTorch − {cg} CUDA graphs")
            if kv.get("hybrid_kv_groups"):
                rule += ("；滑动窗口层按 vLLM 的混合 KV 管理分组，一个请求在窗口组里只占窗口 − 1 + 在途 token"
                         f"（流水线级数 + {kv.get('in_flight_batches_beyond_pp', 0)} 批 max_num_batched_tokens）所需的块" if zh else
                         "; sliding-window layers in vLLM's hybrid KV groups, a request holding in a window group only the "
                         f"blocks of the window − 1 + the tokens in flight (pipeline stages + {kv.get('in_flight_batches_beyond_pp', 0)} batches of "
                         "max_num_batched_tokens)")
            for vname in p.kv_variants:
                vkv = p.kv_budget(vname)
                batches = vkv.get("in_flight_batches")  # a fixed count of batches in flight, where the release had one
                more = "" if not (batches and vkv.get("hybrid_kv_groups")) else (
                    f"，在途 {batches} 批" if zh else f", {batches} batch{'es' if batches > 1 else ''} in flight")
                rule += (f"（{vname}：{vkv['fraction']:g}，{gib(vkv.get('non_torch_bytes', 0))}，"
                         f"{gib(vkv.get('cuda_graph_bytes', 0))}{more}）" if zh else
                         f" ({vname}: {vkv['fraction']:g}, {gib(vkv.get('non_torch_bytes', 0))}, "
                         f"{gib(vkv.get('cuda_graph_bytes', 0))}{more})")
        elif kv["rule"] == "trtllm_profile":  # the fraction of what a dry run of max_num_tokens left
            tok, bs = f"{kv['max_num_tokens']:,}", f"{kv['max_batch_size']:,}"
            rule = (f"{frac} × (CUDA 可见显存 − 权重 − {tok} token 试运行的激活峰值（按 calc 的激活模型，与 vLLM 的剖析前向相同）− 开销)；"
                    f"默认最多同时运行 {bs} 个请求，拒绝长于 {tok} token 的提示（TensorRT-LLM 1.x 的 PyTorch 后端，依据源码，未对照启动日志）" if zh else
                    f"{frac} × (CUDA-visible − weights − activations of an {tok}-token dry run (calc's activation model, as "
                    f"for vLLM's pass) − overhead); at most {bs} requests at once by default, prompts over {tok} tokens "
                    "refused (TensorRT-LLM 1.x's PyTorch backend, from its source; no start-up log checked)")
        else:
            rule = (f"{frac} × CUDA 可见显存 − 权重 − 激活 − 开销" if zh else
                    f"{frac} × CUDA-visible − weights − activations − overhead")
        if e.get("mxfp4_moe"):  # gpt-oss's MXFP4 experts padded by the backend the engine picks on each GPU
            strings, = hook_support.calc_modules("strings")
            mx, lang_key = e["mxfp4_moe"], ("zh" if zh else "en")
            by_backend = {}
            for cc, backend in mx["backend"].items():
                by_backend.setdefault(backend, []).append(cc)
            sep, slash = ("；", "、") if zh else ("; ", "/")
            colon = "：" if zh else ": "
            parts = [f"{slash.join(ccs)}{colon}{strings.VALUE_WORDS[b][lang_key]} {' × '.join(str(a) for a in mx['alignment'][b])}"
                     for b, ccs in by_backend.items()]
            least = mx.get("min_compute_capability")
            rule += ((f"；gpt-oss 的 MXFP4 专家按各 GPU（计算能力）上的默认后端补齐到（隐藏维度 × 每卡专家宽度）的倍数，计入权重：{sep.join(parts)}"
                      f"；计算能力低于 {least} 时 vLLM 不接受 MXFP4") if zh else
                     ("; gpt-oss's MXFP4 experts padded, in the weights, to the multiples (hidden × expert width per GPU) of "
                      f"the default backend by compute capability: {sep.join(parts)}; vLLM refuses MXFP4 below {least}"))
        links = " · ".join(f"[{i + 1}]({s['url']}) ({s['date']})" if s["url"].startswith("https://")
                           else f"`{s['url']}` ({s['date']})" for i, s in enumerate(e["sources"]))
        # a prompt's step: the engine loop's base, plus the prompt's cost where that is paid in the step (SGLang)
        prompt = f" + {ms(p.prompt_step_s)}" if p.prompt_step_s else ""
        fixed = f"{ms(p.overhead_base_s)} / {ms(p.prefill_step_base_s)}{prompt}"
        front = ms(p.request_latency_s) if p.request_latency_s else ""
        if p.overhead_layers_fitted:  # the base is paid per layer: state it for the depth it was fitted on
            per = "× 层数" if zh else "× layers"
            fixed = f"({fixed}) {per} / {p.overhead_layers_fitted}"
            if p.mla_step_layer_weight != 1 or p.mla_request_layer_weight != 1:  # what an MLA layer counts as
                w_step, w_req = f"{p.mla_step_layer_weight:g}", f"{p.mla_request_layer_weight:g}"
                fixed += (f"；MLA 层（DeepSeek-V3 式）在步的基础开销里算 {w_step} 层、在提示的开销里算 {w_req} 层" if zh else
                          f"; an MLA layer (DeepSeek-V3's design) counts as {w_step} layers in a step's base, {w_req} in "
                          "the prompt's cost")
        if p.prefill_alone:
            fixed += ("；含提示的步只算提示，解码暂停" if zh else "; a step with prompt tokens holds no decodes")
        rows.append([name, p.version or "—", f"{fixed} + {front}" if front else fixed,
                     us(p.overhead_per_seq_s), ms(p.overhead_multi_gpu_s), bandwidth(p, e), compute(p, e), rule, links])
    return _table(header, rows)


def _subset_labels(zh: bool) -> dict:
    """The calibration subsets' names (calc.calibration.SUBSETS), and ``seen`` for a held-out point that informed a
    modelling choice."""
    return {"fit": "拟合集" if zh else "fit", "holdout": "留出集" if zh else "held out",
            "unseen": "留出集（未影响选择）" if zh else "held out, informed no choice", "all": "全部" if zh else "all",
            "seen": "留出集（影响过选择）" if zh else "held out (informed a choice)"}


def _kind_labels(zh: bool) -> dict:
    """The calibration quantities' names (calc.calibration.KINDS)."""
    return {"tpot": "TPOT", "ttft": "TTFT", "throughput": "吞吐" if zh else "throughput",
            "kv_tokens": "KV 容量" if zh else "KV capacity"}


def calibration_table(lang: str) -> str:
    (calibration,) = hook_support.calc_modules("calibration")
    zh = lang == "zh"
    kinds = _kind_labels(zh)
    subsets = _subset_labels(zh)
    header = (["量", "子集", "点数", "绝对误差中位数", "最大绝对误差"] if zh else
              ["Quantity", "Subset", "Points", "Median absolute error", "Max absolute error"])
    rows = [[kinds[t["kind"]], subsets[t["subset"]], t["n"], f"{t['median_abs_error']:.1%}", f"{t['max_abs_error']:.1%}"]
            for t in calibration.table(calibration.errors())]
    return _table(header, rows)


def _point_row(r: dict, p: dict) -> list:
    """A calibration point's shared cells: measured, calc, error and the dated source link."""
    unit = {"tpot": "ms", "ttft": "ms", "throughput": "tok/s", "kv_tokens": "tokens"}[r["kind"]]
    scale, fmt = (1e3, "{:,.1f}") if unit == "ms" else (1, "{:,.0f}")
    source = p["source"]
    date = source.get("date", "—").split(" ")[0]  # the date itself; the words after it (which commit, ...) stay in the JSON
    return [f"{fmt.format(r['measured'] * scale)} {unit}", f"{fmt.format(r['predicted'] * scale)} {unit}",
            f"{r['error']:+.1%}", f"[{date}]({source['url']})" if source["url"].startswith("https://") else date]


def calibration_points_table(lang: str) -> str:
    """One row per published measurement: calc's figure beside it and the error, so a reader can find each point
    the text names (the variant column says which older release's kernels a point is computed with)."""
    (calibration,) = hook_support.calc_modules("calibration")
    zh = lang == "zh"
    points = {p["id"]: p for p in calibration.points()}
    subsets = _subset_labels(zh)
    header = (["测量点", "引擎", "变体", "量", "子集", "实测", "calc", "误差", "来源"] if zh else
              ["Point", "Engine", "Variant", "Quantity", "Subset", "Measured", "calc", "Error", "Source"])
    rows = []
    for r in calibration.errors():
        p = points[r["id"]]
        rows.append([f"`{r['id']}`", r["engine"], p.get("engine_variant") or p.get("kv_variant") or "—", r["kind"],
                     subsets["seen" if r["seen"] else r["subset"]], *_point_row(r, p)])
    return _table(header, rows)


def _release(version: str, zh: bool) -> str:
    """A source's engine release, as it states it, without the build details: "vLLM 0.7.4.dev181+gf35f8e22 (nightly
    ...)" -> "vLLM 0.7.4", "vLLM v0.6.1 built for ROCm (git checkout ...)" -> "vLLM 0.6.1 built for ROCm"."""
    first = re.split(r" \(|;|,", version, maxsplit=1)[0].strip()
    first = re.sub(r"(\d)(\.dev\d+)?\+\S+|\.dev\d+", r"\1", first)
    first = re.sub(r"\bv(\d)", r"\1", first)
    if zh:
        first = re.sub(r"^(\S+) (\S+) (?:built )?for ROCm$", r"ROCm 版 \1 \2", first)
    return first


def _optimistic(kind: str, error: float) -> bool:
    """Whether calc promised more than was measured: a shorter latency, or more throughput or KV capacity."""
    return error < 0 if kind in ("tpot", "ttft") else error > 0


def _error_cell(kind: str, error: float, zh: bool) -> str:
    """The error with its direction and how many times off: "-78.8% · optimistic, off by 4.7×"."""
    times = max(1 + error, 1 / (1 + error))
    if zh:
        return f"{error:+.1%}（{'偏乐观' if _optimistic(kind, error) else '偏保守'}，相差 {times:.1f} 倍）"
    return f"{error:+.1%} ({'optimistic' if _optimistic(kind, error) else 'pessimistic'}, off by {times:.1f}×)"


def calibration_misses_table(lang: str) -> str:
    """The held-out points calc misses by more than calibration.MAX_ERROR, worst first by how many times off (measured
    over calc or calc over measured): where not to trust it, with the profile the calibration computes each with (a
    release's or a backend's calibration-only variant where it has one), the release the source ran, the hardware,
    the model, and the error of the base profile the calculators use where that differs."""
    (calibration,) = hook_support.calc_modules("calibration")
    zh = lang == "zh"
    points = {p["id"]: p for p in calibration.points()}
    kinds = _kind_labels(zh)
    header = (["测量点", "校准所用档位", "实测所用版本", "GPU", "模型", "量", "实测", "calc", "误差", "计算器（基础档位）的误差", "来源"]
              if zh else ["Point", "Computed with", "Release", "GPUs", "Model", "Quantity", "Measured", "calc", "Error",
                          "The calculators' error (base profile)", "Source"])
    misses = sorted((r for r in calibration.errors()
                     if r["subset"] == "holdout" and abs(r["error"]) > calibration.MAX_ERROR),
                    key=lambda r: -abs(math.log1p(r["error"])))
    rows = []
    for r in misses:
        p = points[r["id"]]
        if p.get("engine_variant"):
            engine = f"{r['engine']}@{p['engine_variant']}"
            base = _error_cell(r["kind"], calibration.predict(p, engine=p["engine"]) / p["value"] - 1, zh)
        else:
            engine, base = r["engine"], "同左" if zh else "the same"
        measured, predicted, _, source = _point_row(r, p)
        rows.append([f"`{r['id']}`", engine, _release(p["source"].get("version", "—"), zh),
                     f"{p.get('tp', 1)} × {p['gpu']}", p["model"], kinds[r["kind"]], measured, predicted,
                     _error_cell(r["kind"], r["error"], zh), base, source])
    return _table(header, rows)


TABLES = {"gpus": gpus_table, "models": models_table, "prices": prices_table, "engines": engines_table,
          "calibration": calibration_table, "calibration_points": calibration_points_table,
          "calibration_misses": calibration_misses_table, "validation": validation_table, "workloads": workloads_table}


def on_page_markdown(markdown, page, config, files):
    where = page.file.src_uri

    def table(name: str) -> str:
        if name not in TABLES:
            raise PluginError(f"{where}: unknown registry {name!r}; known: {', '.join(TABLES)}")
        return TABLES[name](hook_support.page_lang(page))

    return directives.expand(markdown, "registry", table, where, alone=True)
