"""Chapter 1's price-trend figure: USD per 1M tokens at a fixed capability level, over time.

The series are list prices of selected OpenAI models (and of DeepSeek-V3 on DeepSeek's own API) that reach a
fixed MMLU level, not the cheapest model on the market at each time. Reads the sourced data file (docs/assets/data/ch01-price-trend.json), fits the rate of decline per
capability level (least squares through log10 of the blended price against time, points with in_fit true),
writes that fit back into the data file's "fit" block, and renders the figure in Chinese and English with
labs/common.py's style, so re-rendering the same data gives the same bytes.

The blended price weights input and output 3:1, as Epoch AI's price-trend analysis does (the data file's
"blend" block names the source). The "frontier" level is not a fixed capability: it marks the launch price of
new flagships, where the decline does not hold, and is never fitted.

    python scripts/figures/ch01_price_trend.py            # fit, write the fit, render both SVGs
    python scripts/figures/ch01_price_trend.py --check    # exit 1 if the fit or the SVGs are out of date
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from datetime import date
from pathlib import Path

import figure_support  # this folder's shared drawing (both languages, the labs' figure style)

REPO = figure_support.REPO
DATA = REPO / "docs" / "assets" / "data" / "ch01-price-trend.json"
FIG_DIR = figure_support.FIG_DIR
NAME = "ch01-price-trend"
LANGS = figure_support.LANGS
REQUIRED = ("model", "provider", "level", "usd_per_million_input_tokens", "usd_per_million_output_tokens",
            "date", "date_basis", "source", "as_of", "in_fit")
# what a point's date is: the model's release (its price already in force), a later price change, the first day of
# public access, or only the announcement (when the day it became available was not found)
DATE_BASES = ("release", "price change", "public access", "announced")
STYLE = {"gpt-3.5": ("#1f77b4", "o"), "gpt-4": ("#d62728", "s"), "frontier": ("#7f7f7f", "^")}
TEXT = {
    "zh": {
        "y": "美元 / 百万 token（混合价）",
        "x": "模型以该价格可用的日期（发布日或调价日；个别为公告日，见数据文件的 date_basis）",
        "fit": "拟合线：每年降为约 1/{factor:.1f}",
        "title": "所选 OpenAI 模型与 DeepSeek-V3 的 API 标价（固定能力水平；3:1 混合输入/输出价格，对数坐标）",
        "reasoning": "空心：推理模型，输出含不可见的推理 token",
        "footer": ("数据：{file}（每个点附厂商价格页链接，多数经第三方页面核对，查阅日期 {as_of}）；不是每个时间点全市场最便宜的模型；\n"
                   "MMLU 为厂商自报、设置不一；混合价权重见 Epoch AI。次级来源：a16z “LLMflation”（2024-11）、Epoch AI（2025-03）。\n"
                   "命令：python scripts/figures/ch01_price_trend.py · matplotlib {mpl}"),
    },
    "en": {
        "y": "USD per 1M tokens (blended)",
        "x": "Date the model became available at this price (release or price change; a few: announcement, see date_basis)",
        "fit": "fitted line: about {factor:.1f}x cheaper per year",
        "title": "API list prices of selected OpenAI models and DeepSeek-V3 at a fixed capability level (3:1 blend, log scale)",
        "reasoning": "hollow: reasoning model, output includes hidden reasoning tokens",
        "footer": ("Data: {file} (each point links a vendor price page, most checked through third-party pages, read {as_of}); "
                   "not the cheapest model\non the market at each time; MMLU as reported by vendors, settings differ; blend "
                   "weights per Epoch AI. Secondary sources: a16z 'LLMflation' (2024-11),\nEpoch AI (2025-03). "
                   "Command: python scripts/figures/ch01_price_trend.py · matplotlib {mpl}"),
    },
}


def load(path: Path = DATA) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def validate(data: dict) -> list[str]:
    """Every point names its level, prices, date, source URL and as-of date; levels and blend are defined."""
    problems = []
    levels = data.get("levels", {})
    for i, p in enumerate(data.get("points", [])):
        where = f"point {i} ({p.get('model', '?')})"
        for key in REQUIRED:
            if p.get(key) in (None, ""):
                problems.append(f"{where}: no {key}")
        if p.get("level") not in levels:
            problems.append(f"{where}: unknown level {p.get('level')!r}")
        for key in ("source", "checked_via", "mmlu_source"):
            if p.get(key) and not str(p[key]).startswith("https://"):
                problems.append(f"{where}: {key} is not an https URL")
        if p.get("date_basis") not in DATE_BASES:
            problems.append(f"{where}: date_basis {p.get('date_basis')!r} is not one of {', '.join(DATE_BASES)}")
        for key in ("date", "as_of"):
            try:
                date.fromisoformat(str(p.get(key)))
            except ValueError:
                problems.append(f"{where}: {key} {p.get(key)!r} is not an ISO date")
        if p.get("level") != "frontier" and p.get("mmlu") is None:
            problems.append(f"{where}: a fixed-level point needs the score that puts it at that level")
        for key in ("usd_per_million_input_tokens", "usd_per_million_output_tokens"):
            if not isinstance(p.get(key), (int, float)) or p[key] <= 0:
                problems.append(f"{where}: {key} must be a positive number")
    if not str(data.get("blend", {}).get("source", "")).startswith("https://"):
        problems.append("blend: no source URL")
    return problems


def blended(point: dict, blend: dict) -> float:
    wi, wo = blend["input_weight"], blend["output_weight"]
    return (wi * point["usd_per_million_input_tokens"] + wo * point["usd_per_million_output_tokens"]) / (wi + wo)


def years(iso: str) -> float:
    """A date as a decimal year (2024-07-02 -> 2024.5)."""
    d = date.fromisoformat(iso)
    start, end = date(d.year, 1, 1), date(d.year + 1, 1, 1)
    return d.year + (d - start).days / (end - start).days


def fit_decline(points: list[tuple[float, float]]) -> dict:
    """Least squares through (year, log10 price). factor_per_year: how many times cheaper per year."""
    n = len(points)
    if n < 2:
        raise ValueError("a fit needs at least two points")
    xs = [x for x, _ in points]
    ys = [math.log10(y) for _, y in points]
    mx, my = sum(xs) / n, sum(ys) / n
    sxx = sum((x - mx) ** 2 for x in xs)
    slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sxx
    return {"n": n, "slope_log10_per_year": slope, "factor_per_year": 10 ** (-slope),
            "intercept_log10": my - slope * mx}


def compute_fit(data: dict) -> dict:
    """The fit block: per fitted level, the rate and the first/last point it spans (values rounded for JSON)."""
    out = {}
    for level in data["levels"]:
        pts = sorted((p for p in data["points"] if p["level"] == level and p["in_fit"]), key=lambda p: p["date"])
        if len(pts) < 2:
            continue
        f = fit_decline([(years(p["date"]), blended(p, data["blend"])) for p in pts])
        first, last = pts[0], pts[-1]
        first_usd, last_usd = blended(first, data["blend"]), blended(last, data["blend"])
        out[level] = {
            "points": f["n"],
            "from": first["date"], "to": last["date"],
            "span_years": round(years(last["date"]) - years(first["date"]), 2),
            "first_blended_usd": round(first_usd, 4), "last_blended_usd": round(last_usd, 4),
            "first_to_last_ratio": round(first_usd / last_usd, 1),
            "factor_per_year": round(f["factor_per_year"], 1),
            "slope_log10_per_year": round(f["slope_log10_per_year"], 4),
            # the fitted line at its two ends, for the figure (an intercept at year 0 would not survive rounding)
            "fit_usd_at_from": round(10 ** (f["intercept_log10"] + f["slope_log10_per_year"] * years(first["date"])), 4),
            "fit_usd_at_to": round(10 ** (f["intercept_log10"] + f["slope_log10_per_year"] * years(last["date"])), 4),
        }
    return out


# where each label sits relative to its point (offset in points, horizontal alignment), so that no label is struck
# through by a line; presentation only, keyed by (level, model)
LABEL_POS = {
    ("gpt-3.5", "text-davinci-003"): ((-6, -3), "right"),
    ("gpt-3.5", "gpt-3.5-turbo"): ((6, -9), "left"),
    ("gpt-3.5", "gpt-3.5-turbo-0125"): ((-6, -10), "right"),
    ("gpt-3.5", "gpt-4o-mini"): ((-6, -10), "right"),
    ("gpt-3.5", "gpt-4.1-nano"): ((6, -3), "left"),
    ("gpt-4", "gpt-4 (8K)"): ((-6, -12), "right"),
    ("gpt-4", "gpt-4-turbo-2024-04-09"): ((5, 5), "left"),
    ("gpt-4", "gpt-4o (2024-05-13)"): ((6, -2), "left"),
    ("gpt-4", "gpt-4o (2024-08-06)"): ((6, -2), "left"),
    ("gpt-4", "DeepSeek-V3 (deepseek-chat)"): ((6, -9), "left"),
    ("gpt-4", "gpt-4.1-mini"): ((6, 3), "left"),
    ("frontier", "GPT-3 davinci"): ((6, 5), "left"),
    ("frontier", "o1-preview"): ((0, 8), "center"),
    ("frontier", "gpt-4.5-preview"): ((-6, 6), "right"),
}


def plot(data: dict, lang: str):
    """The figure and its footer, for labs.common.save_figure."""
    import matplotlib
    import matplotlib.pyplot as plt
    from matplotlib import dates as mdates
    from matplotlib import ticker
    from matplotlib.lines import Line2D

    t = TEXT[lang]
    fig, ax = plt.subplots(figsize=(7.6, 4.6))
    for level, meta in data["levels"].items():
        color, marker = STYLE.get(level, ("#333", "o"))
        pts = sorted((p for p in data["points"] if p["level"] == level), key=lambda p: p["date"])
        xs = [date.fromisoformat(p["date"]) for p in pts]
        ys = [blended(p, data["blend"]) for p in pts]
        style = "--" if level == "frontier" else "-"
        ax.plot(xs, ys, linestyle=style, color=color, alpha=0.9, lw=1.0, label=meta[f"label_{lang}"])
        for p, x, y in zip(pts, xs, ys, strict=True):
            hollow = p.get("reasoning", False)
            ax.plot([x], [y], linestyle="none", marker=marker, ms=5, color=color,
                    markerfacecolor="white" if hollow else color)
            if level == "frontier" and any(q["level"] != level and q["model"] == p["model"] for q in data["points"]):
                continue  # the same point is already labelled in its fixed-level series
            offset, align = LABEL_POS.get((level, p["model"]), ((5, 3), "left"))
            ax.annotate(p["model"], (x, y), textcoords="offset points", xytext=offset, ha=align, fontsize=6.5,
                        color=color)
        fit = data.get("fit", {}).get(level)
        if fit:
            x0, x1 = date.fromisoformat(fit["from"]), date.fromisoformat(fit["to"])
            ax.plot([x0, x1], [fit["fit_usd_at_from"], fit["fit_usd_at_to"]], linestyle=":", color=color, lw=1.6,
                    label=t["fit"].format(factor=fit["factor_per_year"]))
    if any(p.get("reasoning") for p in data["points"]):
        color, marker = STYLE["frontier"]
        handles, labels = ax.get_legend_handles_labels()
        handles.append(Line2D([], [], linestyle="none", marker=marker, ms=5, color=color, markerfacecolor="white"))
        labels.append(t["reasoning"])
    else:
        handles, labels = ax.get_legend_handles_labels()
    ax.set_yscale("log")
    ax.yaxis.set_major_locator(ticker.LogLocator(base=10, subs=(1.0,)))
    ax.yaxis.set_major_formatter(ticker.FuncFormatter(lambda v, _: f"{v:g}"))
    ax.yaxis.set_minor_formatter(ticker.NullFormatter())
    ax.xaxis.set_major_locator(mdates.YearLocator())
    ax.xaxis.set_major_formatter(mdates.DateFormatter("%Y"))
    ax.set_xlim(date(2021, 7, 1), date(2025, 12, 31))
    ax.set_ylim(0.05, 400)
    ax.set_ylabel(t["y"])
    ax.set_xlabel(t["x"], fontsize=7.5)
    ax.set_title(t["title"], fontsize=8.5)
    ax.legend(handles, labels, fontsize=6.5, loc="upper center", bbox_to_anchor=(0.5, -0.17), ncol=2, frameon=False)
    footer = t["footer"].format(file=DATA.relative_to(REPO).as_posix(), as_of=data["as_of"], mpl=matplotlib.__version__)
    return fig, footer


def figure_paths(fig_dir: Path = FIG_DIR) -> dict[str, Path]:
    return figure_support.figure_paths(NAME, fig_dir)


def render(data: dict, fig_dir: Path = FIG_DIR) -> list[Path]:
    return figure_support.render(plot, data, NAME, fig_dir)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 epilog="\n\n".join(__doc__.split("\n\n")[1:]),
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=DATA, help="the sourced data file (default: %(default)s)")
    ap.add_argument("--out", type=Path, default=FIG_DIR, help="folder for the two SVGs (default: %(default)s)")
    ap.add_argument("--check", action="store_true", help="change nothing; exit 1 if the fit or the figures are stale")
    args = ap.parse_args(argv)

    data = load(args.data)
    problems = validate(data)
    if problems:
        print("error: the data file is incomplete:\n  " + "\n  ".join(problems), file=sys.stderr)
        return 2
    fit = compute_fit(data)
    if args.check:
        if data.get("fit") != fit:
            print("stale: the fit in the data file differs from the data; rerun without --check", file=sys.stderr)
            return 1
        import tempfile

        with tempfile.TemporaryDirectory() as tmp:
            fresh = render(data, Path(tmp))
            for path in fresh:
                committed = args.out / path.name
                if not committed.exists() or committed.read_bytes() != path.read_bytes():
                    print(f"stale: {committed} differs from what the data renders to", file=sys.stderr)
                    return 1
        print("fit and figures are up to date")
        return 0
    data["fit"] = fit
    args.data.write_text(json.dumps(data, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    for level, f in fit.items():
        print(f"{level}: {f['points']} points {f['from']}..{f['to']}: {f['factor_per_year']}x cheaper per year "
              f"({f['first_blended_usd']} -> {f['last_blended_usd']} USD/1M blended, {f['first_to_last_ratio']}x)")
    for path in render(data, args.out):
        print(f"figure: {path.relative_to(REPO) if path.is_relative_to(REPO) else path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
