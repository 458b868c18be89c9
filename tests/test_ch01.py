"""Chapter 1: the price-trend data is sourced and dated, the fit in it is the script's (not typed by hand), the
committed figures are what the data renders to in both languages, the rates the pages quote are the fit's,
and every prefilled calculator link in the chapter opens with inputs calc accepts.
"""

from __future__ import annotations

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

import ch01_price_trend as trend  # noqa: E402

from calc import api  # noqa: E402

PAGES = {lang: ROOT / "docs" / lang / "ch01" / "index.md" for lang in ("zh", "en")}


@pytest.fixture(scope="module")
def data():
    return trend.load()


def test_every_point_has_a_source_url_and_dates(data):
    assert trend.validate(data) == []
    for p in data["points"]:
        assert p["source"].startswith("https://") and p["date"] and p["as_of"]
        if p["level"] != "frontier":
            assert p["mmlu"] is not None and p["mmlu_source"].startswith("https://")


def test_validation_catches_a_point_without_source_or_date(data):
    broken = json.loads(json.dumps(data))
    broken["points"][0]["source"] = ""
    broken["points"][1]["date"] = "March 2023"
    broken["points"][2]["mmlu"] = None
    problems = trend.validate(broken)
    assert any("no source" in p for p in problems)
    assert any("not an ISO date" in p for p in problems)
    assert any("needs the score" in p for p in problems)


def test_fit_in_the_data_file_is_the_scripts(data):
    assert data["fit"] == trend.compute_fit(data), "rerun python scripts/figures/ch01_price_trend.py"


def test_fit_recovers_a_known_rate():
    # prices that fall exactly 10x a year give a factor of 10
    f = trend.fit_decline([(2022.0, 100.0), (2023.0, 10.0), (2024.0, 1.0)])
    assert f["factor_per_year"] == pytest.approx(10.0)


def test_pages_quote_the_fitted_rates(data):
    for lang, path in PAGES.items():
        text = path.read_text(encoding="utf-8")
        for level, fit in data["fit"].items():
            for key in ("factor_per_year", "first_to_last_ratio", "span_years"):
                assert f"{fit[key]:g}" in text, f"{path.name} ({lang}) does not quote {level} {key} = {fit[key]}"


def test_script_help():
    out = subprocess.run([sys.executable, str(ROOT / "scripts" / "figures" / "ch01_price_trend.py"), "--help"],
                         capture_output=True, text=True, check=True).stdout
    assert "--check" in out and "--data" in out


def test_both_languages_render_and_match_the_committed_figures(data, tmp_path):
    pytest.importorskip("matplotlib")
    pytest.importorskip("torch")  # labs/common.py, whose figure style the script uses, imports torch
    from labs import common

    assert common.cjk_font(), "Chinese figures need a CJK font: apt-get install fonts-noto-cjk"
    written = trend.render(data, tmp_path)
    assert sorted(p.name for p in written) == ["ch01-price-trend_en.svg", "ch01-price-trend_zh.svg"]
    for p in written:
        svg = p.read_text(encoding="utf-8")
        assert svg.startswith("<?xml") and "<svg" in svg
        committed = trend.figure_paths()[p.stem.rsplit("_", 1)[1]]
        assert p.read_bytes() == committed.read_bytes(), f"{committed.name} is stale: rerun the script"


LINK = re.compile(r"\]\((\.\./calculators/(\w+)\.md\?[^)\s]+)\)")


def calculator_links(path: Path) -> list[tuple[str, str, dict]]:
    return [(m.group(1), m.group(2), dict(parse_qsl(urlsplit(m.group(1)).query)))
            for m in LINK.finditer(path.read_text(encoding="utf-8"))]


def test_the_chapter_has_prefilled_calculator_links():
    for path in PAGES.values():
        assert {name for _, name, _ in calculator_links(path)} >= {"cost", "roi"}


@pytest.mark.parametrize("lang", sorted(PAGES))
def test_prefilled_links_open_with_inputs_calc_accepts(lang):
    # The calculators read the query as CLI flag names (docs/assets/js/calculators/calculators.js); a name
    # the form does not know is silently dropped there, so check names and values here.
    for link, name, params in calculator_links(PAGES[lang]):
        known = {f["name"] for f in api.fields(name)}
        assert set(params) <= known, f"{link}: unknown inputs {set(params) - known}"
        result = api.run(name, params)
        assert not result.get("warnings"), f"{link}: {result['warnings']}"


def test_links_are_the_same_in_both_languages():
    assert calculator_links(PAGES["zh"]) == calculator_links(PAGES["en"])
