"""Chapter 2: the numbers the text types by hand are tied to their source, and the prefill figure is what its data
renders to.

- The batch size written as a literal in calc expressions (batch=56, the example at vLLM's concurrency limit) is
  calc's own max_concurrency for those inputs, so a change to calc cannot leave the text describing another batch.
- The visible memory (79.18 GiB) calc budgets from, and the older vLLM default 0.9 the pages contrast it with
  come from the reference measurement's torch_total_memory_gib.
- Every reference-measurement figure the pages quote is the one in tests/data/h100-llama8b-2026-11-26.json.
- docs/assets/data/ch02-prefill-reference.json is what scripts/figures/ch02_prefill_reference.py computes from
  the reference file and calc, and the committed SVGs are what that data renders to in both languages.
- Every prefilled calculator link opens with inputs calc accepts.
"""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
import sys
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts" / "figures"))
sys.path.insert(0, str(ROOT))

import ch02_prefill_reference as prefill  # noqa: E402

from calc import api, registry  # noqa: E402

PAGES = {lang: ROOT / "docs" / lang / "ch02" / "index.md" for lang in ("zh", "en")}
REFERENCE = ROOT / "tests" / "data" / "h100-llama8b-2026-11-26.json"
REFERENCE_1B = ROOT / "tests" / "data" / "h100-llama1b-2026-11-26.json"
CALC_EXPR = re.compile(r"\{\{\s*calc\s+(.*?)\s*\}\}")
CALCULATOR_OF_PAGE = {"vram": "memory", "performance": "perf", "cost": "cost", "roi": "roi"}


@pytest.fixture(scope="module")
def ref() -> dict:
    return json.loads(REFERENCE.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def pages() -> dict[str, str]:
    return {lang: path.read_text(encoding="utf-8") for lang, path in PAGES.items()}


def _params(expr: str) -> tuple[str, dict]:
    target, *args = expr.split("|")[0].split()
    return target, dict(a.split("=", 1) for a in args)


def test_batch_at_the_concurrency_limit_is_calcs(pages):
    # The 4096 + 4096 example: any batch other than 1 in a calc expression for it is meant to be the limit.
    seen = set()
    for lang, text in pages.items():
        for expr in CALC_EXPR.findall(text):
            target, p = _params(expr)
            if (p.get("model"), p.get("gpu"), p.get("prompt-len"), p.get("output-len")) != (
                    "llama-3.1-8b", "h100-sxm", "4096", "4096") or p.get("batch", "1") == "1":
                continue
            limit = api.run("memory", {"model": "llama-3.1-8b", "gpu": "h100-sxm", "prompt-len": "4096",
                                       "output-len": "4096"})["max_concurrency"]
            assert int(p["batch"]) == limit, f"{lang}: {expr} uses batch {p['batch']}, calc's limit is {limit}"
            seen.add(lang)
        # the exercise and the prefilled cost link type the same number
        assert re.search(rf"batch={limit}&", text) and re.search(rf"(批大小|batch) {limit}", text), lang
    assert seen == {"zh", "en"}


def test_visible_memory_is_the_reference_measurements(pages, ref):
    """calc budgets the KV cache from the memory CUDA reports (the registry's visible_memory_bytes, the
    reference's 79.18 GiB on an H100 SXM); the pages contrast vLLM's default with the older default 0.9."""
    gib = ref["env"]["torch_total_memory_gib"]
    assert registry.get_gpu("h100-sxm").visible_memory_bytes == round(gib * 2**30)
    r = api.run("memory", {"model": "llama-3.1-8b", "gpu": "h100-sxm"})
    assert r["gpu_visible_memory_bytes"] == round(gib * 2**30)
    for lang, text in pages.items():
        assert f"{gib:.2f} GiB" in text, lang
        values = {p["gpu-memory-utilization"] for e in CALC_EXPR.findall(text)
                  if "gpu-memory-utilization" in (p := _params(e)[1])}
        assert values == {"0.9"}, (lang, values)
        assert "github.com/vllm-project/vllm/pull/2162" in text, lang


def test_pages_quote_the_reference_measurements(pages, ref):
    one_b = json.loads(REFERENCE_1B.read_text(encoding="utf-8"))["batching_workload"]
    gen = ref["decode_generate_dynamic_cache_b1_without_min_new_tokens"]
    first_token = ref["decode_generate_dynamic_cache_with_min_new_tokens"][0]["ttft_s"]
    compiled = ref["decode_generate_static_cache_compiled_b1"]
    prefill_8192 = next(p["s"] for p in ref["prefill_batch1_s"] if p["prompt_len"] == 8192)
    quoted = {
        "prefill of 8192 tokens": f"{prefill_8192 * 1e3:.1f} ms",
        "generate() total": f"{gen['s']:.3f} s",
        "generate() per token": f"{gen['per_tok_s'] * 1e3:.1f} ms",
        "first token": f"{first_token * 1e3:.1f} ms",
        "per token without the first": f"{(gen['s'] - first_token) / (gen['new'] - 1) * 1e3:.1f} ms",
        "compiled per token": f"{compiled['per_tok_third_s'] * 1e3:.1f} ms",
        "compiled first call": f"{compiled['first_s']:.1f} s",
        "compiled second call": f"{compiled['second_s']:.2f} s",
        "compiled third call": f"{compiled['third_s']:.2f} s",
        "eager loop step": f"{ref['decode_manual_eager_loop_b1_dynamic_cache']['steady_step_s'] * 1e3:.1f} ms",
        "static batching": f"{one_b['static_useful_tok_per_s']:,.1f}",
        "HF continuous batching": f"{one_b['transformers_continuous_batching_default_useful_tok_per_s']:,.1f}",
    }
    # the per-token average with and without the first token agree, as the text says
    assert quoted["generate() per token"] == quoted["per token without the first"]
    for lang, text in pages.items():
        for what, value in quoted.items():
            assert value in text, f"{lang}: {what} should read {value}"


def test_figure_2_1_caption_reads_the_data_file(pages):
    """The caption's '50 to 60 percent longer' than calc at 2048 and 8192 tokens is what the figure's data file
    (kept equal to what the reference and calc give by the next test) says."""
    data = json.loads((ROOT / "docs/assets/data/ch02-prefill-reference.json").read_text(encoding="utf-8"))
    longer = [p["measured_s"] / p["calc_prefill_s"] - 1 for p in data["points"] if p["prompt_len"] in (2048, 8192)]
    assert len(longer) == 2 and all(0.5 <= x <= 0.6 for x in longer)
    assert "50 to 60 percent longer" in pages["en"] and "比估计长五到六成" in pages["zh"]


def test_data_file_is_what_the_reference_and_calc_give():
    committed = json.loads(prefill.DATA.read_text(encoding="utf-8"))
    assert committed == prefill.compute_data(), "rerun python scripts/figures/ch02_prefill_reference.py"


def test_data_file_names_the_reference_unchanged(ref):
    data = json.loads(prefill.DATA.read_text(encoding="utf-8"))
    readme = (ROOT / "tests" / "data" / "README.md").read_text(encoding="utf-8")
    digest = hashlib.sha256(REFERENCE.read_bytes()).hexdigest()
    assert data["reference"]["sha256"] == digest and digest in readme
    assert [(p["prompt_len"], p["measured_s"]) for p in data["points"]] == [
        (p["prompt_len"], p["s"]) for p in ref["prefill_batch1_s"]]
    # calc's estimate is below the measurement at every length (the text says the measurement is longer)
    assert all(p["measured_s"] > p["calc_prefill_s"] for p in data["points"])


def test_figure_and_provenance_on_both_pages(pages):
    data = json.loads(prefill.DATA.read_text(encoding="utf-8"))
    env = data["reference"]["env"]
    for lang, text in pages.items():
        assert f"../../assets/figures/{prefill.NAME}_{lang}.svg" in text
        line = next(ln for ln in text.splitlines() if ln.startswith('<p class="provenance"'))
        assert "../../assets/data/ch02-prefill-reference.json" in line
        for value in (data["reference"]["file"], env["driver"], env["torch"], env["transformers"],
                      data["reference"]["date"], "python scripts/figures/ch02_prefill_reference.py"):
            assert value in line, f"{lang}: provenance line lacks {value}"
        for path in prefill.figure_paths().values():
            assert path.is_file()


def test_script_help():
    out = subprocess.run([sys.executable, str(ROOT / "scripts" / "figures" / "ch02_prefill_reference.py"), "--help"],
                         capture_output=True, text=True, check=True).stdout
    assert "--check" in out and "--reference" in out


def test_both_languages_render_and_match_the_committed_figures(tmp_path):
    pytest.importorskip("matplotlib")
    pytest.importorskip("torch")  # labs/common.py, whose figure style the script uses, imports torch
    sys.path.insert(0, str(ROOT / "labs"))
    from labs import common

    assert common.cjk_font(), "Chinese figures need a CJK font: apt-get install fonts-noto-cjk"
    data = json.loads(prefill.DATA.read_text(encoding="utf-8"))
    written = prefill.render(data, tmp_path)
    assert sorted(p.name for p in written) == [f"{prefill.NAME}_en.svg", f"{prefill.NAME}_zh.svg"]
    for p in written:
        committed = prefill.figure_paths()[p.stem.rsplit("_", 1)[1]]
        assert p.read_bytes() == committed.read_bytes(), f"{committed.name} is stale: rerun the script"


LINK = re.compile(r"\]\((\.\./calculators/(\w+)\.md\?[^)\s]+)\)")


@pytest.mark.parametrize("lang", sorted(PAGES))
def test_prefilled_links_open_with_inputs_calc_accepts(lang, pages):
    links = [(m.group(1), m.group(2), dict(parse_qsl(urlsplit(m.group(1)).query)))
             for m in LINK.finditer(pages[lang])]
    assert {name for _, name, _ in links} == {"vram", "performance", "cost"}
    for link, name, params in links:
        command = CALCULATOR_OF_PAGE[name]
        known = {f["name"] for f in api.fields(command)}
        assert set(params) <= known, f"{link}: unknown inputs {set(params) - known}"
        assert not api.run(command, params).get("warnings"), link
