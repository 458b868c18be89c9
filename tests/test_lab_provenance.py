"""Lab provenance on the pages: every lab figure is followed by the provenance of the data it was drawn from,
written by the build from the data file ({{ provenance … }}, hooks/lab_provenance.py, labs/describe.py)."""

from __future__ import annotations

import copy
import html
import json
import re
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
from mkdocs.exceptions import PluginError

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
LABS = DOCS / "assets" / "labs"
sys.path.insert(0, str(ROOT / "hooks"))
import hook_support  # noqa: E402
import lab_provenance  # noqa: E402

describe = hook_support.lab_module("describe")

FIGURE = re.compile(r"assets/labs/(?P<lab>[\w-]+)/figures/(?P<name>[\w.-]+?)_(?:zh|en)\.svg")
DIRECTIVE = re.compile(r"^\{\{\s*provenance\s+(?P<path>\S+)(?:\s+model=\S+)?\s*\}\}$")


def _data_files() -> list[Path]:
    return sorted(LABS.glob("*/data/*.json"))


def _cpu_data() -> dict:
    return json.loads((LABS / "ch03-prefill-decode" / "data" / "ch03-cpu.json").read_text(encoding="utf-8"))


def _gpu_data() -> dict:
    data = copy.deepcopy(_cpu_data())
    data["provenance"]["device"] = {"kind": "cuda", "name": "NVIDIA H100 80GB HBM3", "driver": "580.1",
                                    "power_limit_w": 700.0}
    data["provenance"]["software"]["cuda"] = "13.0"
    data["provenance"]["command"] = ("python labs/ch03_prefill_decode.py --model-preset llama-3.1-8b --out /x "
                                     "--note 'a b'")
    data["provenance"]["model"]["label"] = "llama-3.1-8b"
    return data


def _page(src_uri: str):
    return SimpleNamespace(file=SimpleNamespace(src_uri=src_uri, locale=src_uri[:2]))


def _figures_and_what_follows(markdown: str):
    """(figure path match, the first non-blank line after the figure) for every lab figure on a page."""
    lines = markdown.split("\n")
    for i, line in enumerate(lines):
        m = FIGURE.search(line)
        if not m:
            continue
        end = i
        if any("<figure" in lines[j] for j in range(max(0, i - 2), i)):  # inside <figure>…</figure>
            end = next(j for j in range(i, len(lines)) if "</figure>" in lines[j])
        after = next((lines[j].strip() for j in range(end + 1, len(lines)) if lines[j].strip()), "")
        yield m, after


# --- the pages -------------------------------------------------------------------------------------------


def test_every_lab_figure_on_a_page_is_followed_by_its_datas_provenance():
    seen = 0
    for page in sorted(DOCS.rglob("*.md")):
        for figure, after in _figures_and_what_follows(page.read_text(encoding="utf-8")):
            seen += 1
            where = f"{page.relative_to(DOCS)}: {figure.group(0)}"
            directive = DIRECTIVE.match(after)
            assert directive, f"{where} is not followed by a {{{{ provenance … }}}} line (found: {after[:60]!r})"
            path = Path(directive.group("path"))
            # the data file the figure was drawn from: the same lab, and the figure is named after the run
            assert path.parts[0] == figure.group("lab"), where
            assert figure.group("name").startswith(path.stem + "-"), f"{where} is not drawn from {path}"
            assert (LABS / path).exists(), where
    assert seen, "no lab figure found on any page"


def test_no_lab_provenance_line_is_typed_by_hand():
    """A lab figure's provenance comes from its data file through the directive. Figures drawn by
    scripts/figures/ from cited data (chapters 1 and 2) are not lab runs and keep a written source line."""
    import re

    for page in sorted(DOCS.rglob("*.md")):
        for line in page.read_text(encoding="utf-8").splitlines():
            if 'class="provenance"' in line:
                assert not re.search(r"assets/labs/", line), f"{page}: {line[:120]}"


def test_built_pages_show_each_figures_provenance(site_dir):
    pages = 0
    for path in sorted(site_dir.rglob("*.html")):
        text = path.read_text(encoding="utf-8")
        for m in re.finditer(r'<img[^>]*src="(?P<src>[^"]*assets/labs/[^"]+/figures/[^"]+\.svg)"', text):
            pages += 1
            rest = text[m.end():]
            nxt = re.search(r'<p class="provenance">(?P<body>.*?)</p>', rest, re.S)
            assert nxt and "<img" not in rest[:nxt.start()], f"{path}: {m.group('src')} has no provenance"
            href = re.search(r'<a href="([^"]+/data/[^"]+\.json)"', nxt.group("body")).group(1)
            data_file = (path.parent / href).resolve()
            assert data_file.exists(), href
            prov = json.loads(data_file.read_text(encoding="utf-8"))["provenance"]
            shown = html.unescape(re.sub(r"<[^>]+>", "", nxt.group("body")))
            lang = "en" if path.relative_to(site_dir).parts[0] == "en" else "zh"
            assert describe.device_text(prov, lang) in shown and prov["date"][:10] in shown
            assert f"torch {prov['software']['torch']}" in shown
    assert pages


# --- the words ------------------------------------------------------------------------------------------


def test_cpu_run_line_in_both_languages():
    data = _cpu_data()  # the committed run, with the machine and date pinned so a rerun of the lab keeps this test
    data["provenance"]["device"]["name"] = "AMD EPYC"
    data["provenance"]["date"] = "2026-11-26T23:50:22Z"
    zh = describe.provenance_line(data, "zh", "../x.json", "Llama-3.2-1B")
    en = describe.provenance_line(data, "en", "../x.json", "Llama-3.2-1B")
    assert zh == ("在 CPU 上测得，不是 GPU：AMD EPYC，2 核 · torch 2.13.0+cpu · transformers 5.24.0 · "
                  "Llama-3.2-1B 结构，bf16，随机权重 · 2026-11-26 · "
                  "`python labs/ch03_prefill_decode.py --device cpu --model-preset llama-3.2-1b …`"
                  "（完整命令见[数据文件](../x.json)）")
    assert en == ("Measured on a CPU, not a GPU: AMD EPYC, 2 cores · torch 2.13.0+cpu · transformers 5.24.0 · "
                  "Llama-3.2-1B shape, bf16, random weights · 2026-11-26 · "
                  "`python labs/ch03_prefill_decode.py --device cpu --model-preset llama-3.2-1b …`"
                  " (full command in the [data file](../x.json))")


def test_gpu_run_line_names_the_gpu_like_the_figure_footer():
    data = _gpu_data()
    for lang in ("zh", "en"):
        line = describe.provenance_line(data, lang, "d.json")
        assert line.startswith(describe.device_text(data["provenance"], lang) + " · torch")
        assert describe.describe_run(data["provenance"], lang).startswith(describe.device_text(data["provenance"], lang))
        assert "`python labs/ch03_prefill_decode.py --model-preset llama-3.1-8b …`" in line
        assert "CPU" not in line
    assert describe.provenance_line(data, "en", "d.json").startswith(
        "NVIDIA H100 80GB HBM3, 700 W limit, driver 580.1, CUDA 13.0 · torch")


def test_an_unfinished_run_says_so():
    data = _cpu_data()
    data["status"] = "interrupted"
    assert "run incomplete (interrupted)" in describe.provenance_line(data, "en", "d.json")
    assert "运行未完成（interrupted）" in describe.provenance_line(data, "zh", "d.json")
    data["status"] = "running"  # never closed: killed, e.g. at a time limit
    assert "run incomplete (killed while running)" in describe.provenance_line(data, "en", "d.json")
    assert "运行未完成（中途被终止）" in describe.provenance_line(data, "zh", "d.json")


@pytest.mark.parametrize("command, short", [
    ("python labs/a.py --quick --out /tmp/x", "python labs/a.py --quick …"),
    ("python labs/a.py --device=cuda --repeats 3", "python labs/a.py --device=cuda …"),
    ("python labs/a.py --model /ckpt/m --device cuda", "python labs/a.py --model /ckpt/m --device cuda"),
    ("python labs/a.py --note 'it`s' --device cpu", "python labs/a.py --device cpu …"),
])
def test_short_command_keeps_what_says_what_ran(command, short):
    assert describe.short_command(command) == short


def test_describe_needs_no_torch():
    # the site build imports labs/describe.py; torch is a lab dependency, not a build one
    code = ("import sys; sys.modules['torch'] = None; sys.modules['transformers'] = None; "
            f"sys.path.insert(0, {str(ROOT / 'hooks')!r}); import hook_support; "
            "print(hook_support.lab_module('describe').describe_run)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr


# --- the hook -------------------------------------------------------------------------------------------


def test_the_directive_becomes_the_line_with_a_link_relative_to_the_page():
    config = {"docs_dir": str(DOCS)}
    md = "![f](../../assets/labs/ch03-prefill-decode/figures/ch03-cpu-mbu_en.svg)\n{{ provenance ch03-prefill-decode/data/ch03-cpu.json }}\n"
    out = lab_provenance.on_page_markdown(md, _page("en/labs/ch03-prefill-decode.md"), config, None)
    line = out.split("\n")[1]
    device = describe.device_text(_cpu_data()["provenance"], "en")  # e.g. "AMD EPYC, 2 cores"
    assert line.startswith(f'<p class="provenance" markdown>Measured on a CPU, not a GPU: {device} · ')
    assert "Llama-3.2-1B shape" in line  # the registry's name for the preset the run built
    assert "[data file](../../assets/labs/ch03-prefill-decode/data/ch03-cpu.json)" in line and line.endswith("</p>")
    out = lab_provenance.on_page_markdown(md, _page("zh/ch03/index.md"), config, None)
    assert "[数据文件](../../assets/labs/ch03-prefill-decode/data/ch03-cpu.json)" in out


def test_a_part_of_a_run_that_timed_another_model_names_that_model_in_both_languages():
    """ch08's run trains a small model for quality and times a registry shape with random weights for speed: the line
    under its speed figure names the shape (model=speed_preset), the one under its quality figure the trained model,
    in Chinese on the Chinese page (the committed data recorded those words in English only)."""
    config = {"docs_dir": str(DOCS)}
    md = "{{ provenance ch08-quantization/data/ch08-h200.json%s }}"
    speed = {lang: lab_provenance.on_page_markdown(md % " model=speed_preset", _page(f"{lang}/ch08/index.md"), config,
                                                   None) for lang in ("zh", "en")}
    quality = {lang: lab_provenance.on_page_markdown(md % "", _page(f"{lang}/ch08/index.md"), config, None)
               for lang in ("zh", "en")}
    assert " · Llama-3.1-8B shape, random weights · " in speed["en"] and "TinyLM" not in speed["en"]
    assert " · Llama-3.1-8B 结构，随机权重 · " in speed["zh"]
    assert "TinyLM d256×4, trained by the lab; quantized copies · " in quality["en"]
    assert "TinyLM d256×4，实验自己训练的模型及其量化副本 · " in quality["zh"] and "trained by" not in quality["zh"]
    for bad in (" model=", " model=nosuch", " weights=speed_preset", " model=speed_preset model=speed_preset"):
        with pytest.raises(PluginError, match="provenance"):
            lab_provenance.on_page_markdown(md % bad, _page("zh/x.md"), config, None)
    # a lab that writes the words in both languages is shown in each
    data = _cpu_data()
    data["provenance"]["model"] = {"label": "TinyLM", "weights": {"zh": "训练所得", "en": "trained"}, "random_weights": False}
    assert "TinyLM，训练所得 · " in describe.provenance_line(data, "zh", "d.json")
    assert "TinyLM, trained · " in describe.provenance_line(data, "en", "d.json")


@pytest.mark.parametrize("path, message", [
    ("ch03-prefill-decode/data/nope.json", "cannot read"),
    ("ch03-prefill-decode/figures/ch03-cpu-mbu_en.svg", "not a lab data file"),
    ("../../calc/data/gpus.json", "not a lab data file"),
    ("/etc/passwd", "not a lab data file"),
])
def test_a_bad_data_file_fails_the_build_naming_the_page(path, message):
    with pytest.raises(PluginError, match=message) as err:
        lab_provenance.on_page_markdown(f"{{{{ provenance {path} }}}}", _page("zh/x.md"), {"docs_dir": str(DOCS)}, None)
    assert "zh/x.md" in str(err.value)


# {{ lab … }}: a measured number in the text, read from the data file like the provenance line.

RUN = {"points": [{"kind": "decode", "path": "eager", "batch": 1, "tpot_mean_s": 0.0213, "ok": True},
                  {"kind": "decode", "path": "eager", "batch": 4, "tpot_mean_s": 0.0225},
                  {"kind": "decode", "path": "graph", "batch": 1, "tpot_mean_s": 0.0069, "note": "x",
                   "step_s": {"median": 0.007, "n": 5}},
                  {"kind": "quality", "methods": [{"method": "bf16", "kl": 0.0}, {"method": "int4", "kl": 2e-4},
                                                  {"method": "int4", "kl": 3e-4, "bits": 4}]},

                  {"kind": "moe", "rows": [{"tokens": 1, "t": 0.5}, {"tokens": 4, "t": 0.7}, {"tokens": 4, "t": 0.8}]}]}


def test_lab_value_picks_the_one_point_the_selector_names():
    assert lab_provenance.lab_value(RUN, ["path=graph", "batch=1"], "tpot_mean_s") == 0.0069
    assert lab_provenance.lab_value(RUN, ["batch=4"], "tpot_mean_s") == 0.0225
    assert lab_provenance.lab_value(RUN, ["ok=true"], "batch") == 1
    assert lab_provenance.lab_value(RUN, ["path=graph"], "step_s.median") == 0.007
    assert lab_provenance.lab_value(RUN, ["kind=quality"], "methods.method=bf16.kl") == 0.0  # one item of a list
    assert lab_provenance.lab_value(RUN, ["kind=quality"], "methods.bits=4.kl") == 3e-4
    assert lab_provenance.lab_value(RUN, ["kind=moe"], "rows.tokens=1.t") == 0.5  # the one row of a list


@pytest.mark.parametrize("selector, field, message", [
    (["path=eager"], "tpot_mean_s", "matches 2 points"),
    (["path=flash"], "tpot_mean_s", "matches 0 points"),
    (["path=graph"], "wall_s", "no field 'wall_s'"),
    (["path=graph"], "note", "not a number"),
    (["path=graph"], "step_s.p90", "no field 'step_s.p90'"),
    (["path=graph"], "note.median", "no field"),
    (["graph"], "tpot_mean_s", "not name=value"),
    (["kind=quality"], "methods.method=int4.kl", "matches 2 items"),
    (["kind=quality"], "methods.method=fp8.kl", "matches 0 items"),
    (["kind=moe"], "rows.tokens=4.t", "matches 2 items"),
    (["kind=moe"], "rows.tokens=9.t", "matches 0 items"),
    (["kind=moe"], "rows.t", "no field"),
])
def test_lab_value_refuses_what_is_not_one_number(selector, field, message):
    with pytest.raises(ValueError, match=message):
        lab_provenance.lab_value(RUN, selector, field)


def test_lab_directive_reads_a_committed_gpu_run(tmp_path):
    file = LABS / "ch03-prefill-decode" / "data" / "ch03-h200.json"
    points = json.loads(file.read_text(encoding="utf-8"))["points"]
    (want,) = [p["tpot_mean_s"] for p in points
               if p["kind"] == "decode" and p.get("path") == "static-graph" and p["batch"] == 1]
    page = SimpleNamespace(file=SimpleNamespace(src_uri="zh/ch03/index.md"))
    text = "TPOT {{ lab ch03-prefill-decode/data/ch03-h200.json kind=decode path=static-graph batch=1 tpot_mean_s | ms:2 }}."
    out = lab_provenance.on_page_markdown(text, page, {"docs_dir": str(DOCS)}, None)
    assert out == f"TPOT {want * 1000:.2f} ms."


def test_lab_directive_with_a_bad_selector_fails_the_build():
    page = SimpleNamespace(file=SimpleNamespace(src_uri="en/ch03/index.md"))
    text = "{{ lab ch03-prefill-decode/data/ch03-h200.json kind=decode tpot_mean_s | ms:2 }}"
    with pytest.raises(PluginError, match="en/ch03/index.md.*matches"):
        lab_provenance.on_page_markdown(text, page, {"docs_dir": str(DOCS)}, None)


def test_lab_directive_reads_the_runs_provenance():
    page = SimpleNamespace(file=SimpleNamespace(src_uri="en/ch04/index.md"))
    file = LABS / "ch04-gpu-basics" / "data" / "ch04-h200.json"
    want = json.loads(file.read_text(encoding="utf-8"))["provenance"]["device"]["l2_cache_bytes"]
    text = "L2 {{ lab ch04-gpu-basics/data/ch04-h200.json provenance device.l2_cache_bytes | MiB:0 }}."
    assert lab_provenance.on_page_markdown(text, page, {"docs_dir": str(DOCS)}, None) == f"L2 {want / 2**20:.0f} MiB."
    for bad, message in (("provenance device.name", "not a number"), ("provenance device.nope", "no field"),
                         ("provenance kind=x device.sm_count", "provenance <field>")):
        with pytest.raises(PluginError, match=message):
            lab_provenance.on_page_markdown("{{ lab ch04-gpu-basics/data/ch04-h200.json " + bad + " | int }}",
                                            page, {"docs_dir": str(DOCS)}, None)
