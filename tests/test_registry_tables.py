"""hooks/registry_tables.py: the data page prints calc's registries, every entry, with the values calc uses."""

from __future__ import annotations

import html
import re
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
from mkdocs.exceptions import PluginError

from calc import registry

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "hooks"))
import registry_tables  # noqa: E402


def _rows(table: str) -> dict:
    """First cell's `key` -> the row's cells."""
    rows = {}
    for line in table.splitlines()[2:]:
        cells = [c.strip() for c in line.strip().strip("|").split(" | ")]
        rows[re.search(r"`([^`]+)`", cells[0]).group(1)] = cells
    return rows


@pytest.mark.parametrize("lang", ["zh", "en"])
def test_every_entry_has_a_row(lang):
    assert set(_rows(registry_tables.gpus_table(lang))) == set(registry.list_gpus())
    assert set(_rows(registry_tables.models_table(lang))) == set(registry.list_models())
    assert set(_rows(registry_tables.prices_table(lang))) == set(registry.list_prices())


def test_gpu_row_values():
    row = _rows(registry_tables.gpus_table("en"))["h100-sxm"]
    # NVIDIA H100 SXM datasheet: 80 GB HBM3 (read as GiB, the DRAM convention), 3.35 TB/s, 989.5 dense BF16 TFLOPS
    # (1,979 with sparsity), 1,979 dense FP8, 700 W.
    # then what CUDA reports on one (the H100 reference measurement: 79.18 GiB)
    assert row[1] == f"80 GiB = {80 * 2**30 / 1e9:.2f} GB; CUDA 79.18 GiB"
    assert row[2] == "3.35 TB/s"
    # and a measured large matmul, its share of the datasheet (the reference: no factor shown) and its source
    assert row[3:5] == ["990; measured 791 (80%)", "1,979"]
    assert row[6] == "700 W"
    gpu = registry.get_gpu("h100-sxm")
    assert row[7] == f"{gpu.usd_per_hour_low:.2f}–{gpu.usd_per_hour_high:.2f} ({gpu.price_as_of})"
    assert gpu.source in row[8] and gpu.price_source in row[8] and gpu.matmul_measured_source in row[8]
    # a card outside the dead band shows the factor calc applies; one without a measurement, the datasheet alone
    rows = _rows(registry_tables.gpus_table("en"))
    assert rows["rtx-4090"][3] == "165; measured 165 (100%) ×1.25" and rows["a10"][3] == "125"
    assert rows["a100-80gb"][3] == "312; measured 265 (85%)"  # within 10 % of the H100's share: no factor
    assert _rows(registry_tables.gpus_table("zh"))["mi300x"][3] == "1,307；实测 668（51%） ×0.64"


def test_missing_values_and_unverified_entries_are_marked():
    rows = _rows(registry_tables.gpus_table("zh"))
    assert registry.get_gpu("l20").usd_per_hour_low is None and rows["l20"][7] == "—"
    assert registry.get_gpu("a100-80gb").fp8_dense_flops is None and rows["a100-80gb"][4] == "—"  # no FP8 on Ampere
    assert rows["h20"][0].endswith("†") and not rows["h100-sxm"][0].endswith("†")


def test_model_rows_are_calc_counts():
    rows = _rows(registry_tables.models_table("en"))
    # Llama-3.1-8B config.json: 32 layers, hidden 4096, 32 query / 8 KV heads of 128; KV per token in BF16 =
    # 2 (K and V) x 32 layers x 8 heads x 128 x 2 bytes = 131,072 B = 128 KiB.
    assert rows["llama-3.1-8b"][1:5] == ["32", "4,096", "32/8", "128"]
    assert rows["llama-3.1-8b"][9] == f"{2 * 32 * 8 * 128 * 2 / 1024:.1f} KiB"
    assert rows["llama-3.1-8b"][6] == "8.03B"
    # DeepSeek-V3 (MLA): q·k head 128 + 64 = 192, v head 128; 671B total, 37B active.
    assert rows["deepseek-v3"][4] == "192/128 (q·k/v)"
    assert rows["deepseek-v3"][5] == "MLA"
    assert rows["deepseek-v3"][6].startswith("671.") and rows["deepseek-v3"][7].startswith("37.")


def test_unknown_registry_fails_the_build():
    page = SimpleNamespace(file=SimpleNamespace(locale="en", src_uri="en/x.md"))
    with pytest.raises(PluginError, match="unknown registry 'gpu'"):
        registry_tables.on_page_markdown("{{ registry gpu }}\n", page, None, None)


def test_the_text_after_a_table_stays_text():
    page = SimpleNamespace(file=SimpleNamespace(locale="en", src_uri="en/x.md"))
    out = registry_tables.on_page_markdown("{{ registry prices }}\n\n## Next {#next}\n", page, None, None)
    assert out.endswith("|\n\n## Next {#next}\n")


@pytest.mark.parametrize("page", ["calculators/data/index.html", "en/calculators/data/index.html"])
def test_data_page_lists_every_entry(site_dir, page):
    text = html.unescape((site_dir / page).read_text(encoding="utf-8"))
    assert "{{ registry" not in text
    for key in registry.list_gpus() + registry.list_models() + registry.list_prices():
        assert f"<code>{key}</code>" in text, key
    assert re.search(r'<h2 id="models"', text) and re.search(r'<h2 id="api-prices"', text)  # headings, not table rows


def test_engine_and_calibration_tables():
    rows = _rows(registry_tables.engines_table("en"))
    assert len(rows) == 6
    assert "× layers / 32" in rows["trt-llm"][2] and "layers" not in rows["vllm"][2]
    assert "× 层数 / 32" in registry_tables.engines_table("zh")
    # llama.cpp's bandwidth share shrinks on HBM and its compute share is of the FP16-accumulate peak: both shown
    assert "× 0.545 on HBM GPUs" in rows["llama.cpp"][5] and "FP16-accumulate peak" in rows["llama.cpp"][6]
    assert "HBM" not in rows["vllm"][5] and "accumulate" not in rows["vllm"][6]
    # each vLLM KV variant with its own count of batches in flight says so (V0 has no hybrid groups: nothing to say)
    kv_rule = next(cell for cell in rows["vllm"] if "(v1-0.21-0.25:" in cell)
    assert "(v1-0.21-0.25: 0.92, 0.16 GiB, 0.52 GiB, 1 batch in flight)" in kv_rule
    assert "(v1-pre0.21: 0.9, 0.16 GiB, 0.00 GiB, 1 batch in flight)" in kv_rule
    assert "(v0: 0.9, 0.39 GiB, 0.00 GiB)" in kv_rule
    assert "在途 1 批" in registry_tables.engines_table("zh")
    for lang in ("zh", "en"):
        table = registry_tables.calibration_table(lang)
        assert table.count("\n") >= 2 + 8 and "|error|" not in table


def test_calibration_points_table_has_a_row_per_point_with_calc_beside_it():
    """The data page names calibration points by id: each must be findable, with the variant it is computed with."""
    from calc import calibration

    points = calibration.points()
    for lang in ("zh", "en"):
        rows = _rows(registry_tables.calibration_points_table(lang))
        assert len(rows) == len(points)
    text = registry_tables.calibration_points_table("en")
    row = next(line for line in text.splitlines() if "`trt-h100-fp8-70b-b480-128-2048`" in line)
    assert "| v0.6 |" in row and "held out" in row and "5,944 tok/s" in row  # the published figure, as stored


def test_calibration_misses_table_lists_each_held_out_miss_worst_first():
    """The data page's "Where not to trust it": every held-out point beyond calibration.MAX_ERROR and nothing else,
    worst first by how many times off, so a TTFT 4.7 times calc's ranks above a throughput calc puts 3.7 times too high."""
    from calc import calibration

    errors = {r["id"]: r for r in calibration.errors()}
    for lang in ("zh", "en"):
        ids = [line.split(" | ")[0].strip("| `") for line in registry_tables.calibration_misses_table(lang).splitlines()[2:]]
        assert set(ids) == {i for i, r in errors.items() if r["subset"] == "holdout" and abs(r["error"]) > 0.30}
        assert ids[:4] == ["kvcached331-vllm0190-h100-qwen3-0.6b-tpot-burst500", "gpustack-trtllm120rc1-h100-qwen3-8b-ttft-c4",
                           "dstack-vllm073-rocm-mi300xx8-dsr1-tpot-c4", "argonne-vllm061-rocm-mi300xx8-llama-3-70b-fp16-b64-1024"]
        assert errors[ids[1]]["error"] > -0.8 and errors[ids[3]]["error"] > 2.7  # -79 % (x4.7) above +273 % (x3.7)
    text = registry_tables.calibration_misses_table("en")
    row = next(line for line in text.splitlines() if "`argonne-vllm061-rocm-mi300xx8-llama-3-70b-fp16-b64-1024`" in line)
    # the profile it is computed with, the release the source ran, the hardware, the published figure as stored, the
    # error with its direction and how many times off, the base profile's (what the calculators show), the date alone
    assert ("| vllm@v0.6 | vLLM 0.6.1 built for ROCm | 8 × mi300x | llama-3-70b | throughput | 972 tok/s | 3,626 tok/s | "
            "+273.0% (optimistic, off by 3.7×) | +350.3% (optimistic, off by 4.5×) | [2024-09-27](https://github.com/argonne-lcf/") in row
    dev = next(line for line in text.splitlines() if "`dstack-vllm074-h200x8-dsr1-tpot-c4`" in line)
    assert "| vllm@v0.6 | vLLM 0.7.4 | 8 × h200 | deepseek-r1 | TPOT |" in dev  # 0.7.4.dev181+gf35f8e22 as a release
    burst = next(line for line in text.splitlines() if "burst500" in line)
    assert "| +450.6% (pessimistic, off by 5.5×) | the same |" in burst  # no variant: the calculators' figure
    glm = next(line for line in text.splitlines() if "`sgl057-b200-glm47flash-tpot-c64-8kout`" in line)
    assert "| sglang@triton |" in glm and "+46.0% (pessimistic" in glm and "| -36.0% (optimistic" in glm
    zh = registry_tables.calibration_misses_table("zh")
    assert "| 吞吐 |" in zh and "偏乐观，相差 3.7 倍" in zh and "偏保守，相差 5.5 倍" in zh and "| 同左 |" in zh
    assert "| ROCm 版 vLLM 0.6.1 |" in zh and "| ROCm 版 vLLM 0.7.3 |" in zh and "| vLLM 0.11.0 |" in zh  # no "v" prefix
    # every release cell is the source's version string, shortened: it starts with the engine's name as the source gives it
    points = {p["id"]: p for p in calibration.points()}
    for line in text.splitlines()[2:]:
        cells = line.split(" | ")
        name = points[cells[0].strip("| `")]["source"]["version"].split()[0]
        assert cells[2].startswith(name), (cells[0], cells[2])
