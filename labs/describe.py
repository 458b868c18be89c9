"""A lab run in words, in Chinese or English, from the provenance its data file records:

- describe_run(prov, lang): the footer of each figure (device, software, date);
- provenance_line(data, lang, href): the line under a figure on a page, written by the site build from
  `{{ provenance <lab>/data/<run>.json }}` (hooks/lab_provenance.py): the same, plus the model and the
  command, with a link to the data file.

Standard library only: the site build imports this module, and the build has no torch. labs/common.py
re-exports describe_run for the labs.
"""

from __future__ import annotations

import shlex

# Words data files already committed recorded in English only, in Chinese (labs now write both: {"zh": …, "en": …}).
RECORDED_ZH = {"trained by the lab; quantized copies": "实验自己训练的模型及其量化副本"}

# The options that say what was measured; the rest of a command (sweeps, repeats, --out) is in the data file.
KEY_OPTIONS = ("--quick", "--device", "--model-preset", "--model")


def device_text(prov: dict, lang: str = "en") -> str:
    """What ran: "AMD EPYC, 2 cores", or "NVIDIA H100 80GB HBM3, 700 W limit, driver 580.1, CUDA 13.0"."""
    dev, sw = prov["device"], prov["software"]
    zh = lang == "zh"
    if dev["kind"] == "cpu":
        return f"{dev['name']}，{dev['cores']} 核" if zh else f"{dev['name']}, {dev['cores']} cores"
    sep = "，" if zh else ", "
    where = dev["name"]
    if "power_limit_w" in dev:
        where += sep + (f"功耗上限 {dev['power_limit_w']:.0f} W" if zh else f"{dev['power_limit_w']:.0f} W limit")
    driver = dev.get("driver", "?")
    return where + sep + (f"驱动 {driver}" if zh else f"driver {driver}") + f"{sep}CUDA {sw['cuda']}"


def software_text(prov: dict) -> str:
    sw = prov["software"]
    return f"torch {sw['torch']} · transformers {sw['transformers']}"


def describe_run(prov: dict, lang: str = "en") -> str:
    """One line naming device, software and date, for figure footers (in the figure's language)."""
    where = device_text(prov, lang)
    if prov["device"]["kind"] == "cpu":
        where = f"CPU 运行：{where}（无 GPU）" if lang == "zh" else f"CPU run: {where} (no GPU)"
    return f"{where} · {software_text(prov)} · {prov['date'][:10]}"


def model_text(model: dict, lang: str = "en", name: str | None = None) -> str:
    """"Llama-3.2-1B shape, bf16, random weights": the model a lab built (``name``: how to call it; by default
    its label, e.g. the preset's key; ``weights`` None: a shape timed in several formats, named elsewhere)."""
    zh = lang == "zh"
    label = model["label"]
    if isinstance(label, dict):  # a label in both languages, {"zh": ..., "en": ...}
        label = label.get(lang) or label["en"]
    name = name or label
    weights = model.get("weights")
    if isinstance(weights, dict):  # in both languages, like the label
        weights = weights.get(lang) or weights["en"]
    elif zh and weights in RECORDED_ZH:  # written in English by a lab before it wrote both
        weights = RECORDED_ZH[weights]
    model = {**model, "weights": weights}
    if model.get("random_weights", True):
        # no space between two Chinese words ("MoE 层结构"), one after a Latin name ("Llama-3.2-1B 结构")
        gap = "" if zh and "\u4e00" <= name[-1:] <= "\u9fff" else " "
        fmt = f"{model['weights']}，" if zh and model.get("weights") else ""
        fmt_en = f"{model['weights']}, " if model.get("weights") else ""
        return f"{name}{gap}结构，{fmt}随机权重" if zh else f"{name} shape, {fmt_en}random weights"
    return f"{name}，{model['weights']}" if zh else f"{name}, {model['weights']}"


def short_command(command: str) -> str:
    """The command with only the options that say what ran (KEY_OPTIONS), "…" for the rest."""
    words = shlex.split(command)
    kept, dropped, i = words[:2], False, 2  # python labs/<script>.py
    while i < len(words):
        word = words[i]
        name = word.split("=", 1)[0]
        takes_value = "=" not in word and i + 1 < len(words) and not words[i + 1].startswith("--")
        if name in KEY_OPTIONS:
            kept += words[i:i + 2] if takes_value else [word]
        else:
            dropped = True
        i += 2 if takes_value else 1
    return shlex.join(kept) + (" …" if dropped else "")


def _code(text: str) -> str:
    """Markdown inline code holding ``text`` (a backtick in it takes a longer fence)."""
    ticks = "``" if "`" in text else "`"
    pad = " " if ticks == "``" else ""
    return f"{ticks}{pad}{text}{pad}{ticks}"


def provenance_line(data: dict, lang: str, href: str, model_name: str | None = None,
                    model: dict | None = None) -> str:
    """The provenance of a lab's data file as one line of Markdown, in ``lang``, linking to the file at ``href``:
    device, software, model (``model``: in place of the run's, for a part of the run that timed another), date, the
    command (shortened; the full one is in the file)."""
    prov = data["provenance"]
    zh = lang == "zh"
    where = device_text(prov, lang)
    if prov["device"]["kind"] == "cpu":
        where = ("在 CPU 上测得，不是 GPU：" if zh else "Measured on a CPU, not a GPU: ") + where
    parts = [where, software_text(prov)]
    if model or prov.get("model"):
        parts.append(model_text(model or prov["model"], lang, model_name))
    parts.append(prov["date"][:10])
    status = data.get("status")
    if status == "running":  # the file was never closed: the process was killed (a time limit), points so far kept
        parts.append("运行未完成（中途被终止）" if zh else "run incomplete (killed while running)")
    elif status and status != "complete":
        parts.append(f"运行未完成（{status}）" if zh else f"run incomplete ({status})")
    link = (f"（完整命令见[数据文件]({href})）" if zh else f" (full command in the [data file]({href}))")
    parts.append(_code(short_command(prov["command"])) + link)
    return " · ".join(parts)
