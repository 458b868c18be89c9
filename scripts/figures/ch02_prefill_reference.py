"""Chapter 2's prefill figure: the reference measurement of one prefill against calc's estimate.

Reads the H100 reference measurement of a Llama-3.1-8B-shaped model (tests/data/h100-llama8b-2026-11-26.json,
prefill of one prompt at batch 1, see tests/data/README.md) and calc's prefill estimate for the same model and
GPU (calc.api.run("perf")), writes both into a small data file the page links
(docs/assets/data/ch02-prefill-reference.json, with the reference file's sha256, its environment and method),
and renders the figure in Chinese and English with labs/common.py's style, so re-rendering the same data gives
the same bytes.

    python scripts/figures/ch02_prefill_reference.py            # write the data file, render both SVGs
    python scripts/figures/ch02_prefill_reference.py --check    # exit 1 if the data file or the SVGs are stale
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path

import figure_support  # this folder's shared drawing (both languages, the labs' figure style)

REPO = figure_support.REPO
REFERENCE = REPO / "tests" / "data" / "h100-llama8b-2026-11-26.json"
DATA = REPO / "docs" / "assets" / "data" / "ch02-prefill-reference.json"
FIG_DIR = figure_support.FIG_DIR
NAME = "ch02-prefill-reference"
LANGS = figure_support.LANGS
CALC_INPUTS = {"engine": "ideal", "model": "llama-3.1-8b", "gpu": "h100-sxm", "weights": "bf16", "batch": "1"}
# calc's line: powers of two and the points half-way between them (in log space, roughly), 128 to 8192 tokens
CURVE_LENGTHS = (128, 192, 256, 384, 512, 768, 1024, 1536, 2048, 3072, 4096, 6144, 8192)
METHOD = ("one forward pass at batch 1 (use_cache=False, logits_to_keep=1), wall clock with torch.cuda.synchronize() "
          "before and after, median of 3 after 1 warm-up (shared/reference/README.md)")
TEXT = {
    "zh": {
        "title": "Llama-3.1-8B 在 H100 SXM 上一次预填充的时间：参考测量与 calc 的估计（批大小 1，双对数坐标）",
        "x": "提示词长度（token）",
        "y": "预填充时间（ms）",
        "measured": "参考测量（H100 SXM，{date}）",
        "calc": "calc 估计（bf16 稠密峰值算力的 {ce:.1%}、标称带宽的 {me:.1%}）",
        "memory": "calc：受带宽限制（读一遍权重）",
        "compute": "calc：受算力限制",
        "footer": ("数据：{data}，取自参考测量 {ref}（sha256 {sha}…）\n"
                   "{gpu}，torch {torch}，transformers {tf}，{date}；随机初始化权重 bf16、sdpa 注意力；"
                   "一次前向、批大小 1、预热 1 次后 3 次的中位数\n"
                   "calc 的估计由 calc/perf.py 算出。命令：python scripts/figures/ch02_prefill_reference.py"),
    },
    "en": {
        "title": "One prefill of Llama-3.1-8B on an H100 SXM: reference measurement and calc's estimate (batch 1, log-log)",
        "x": "Prompt length (tokens)",
        "y": "Prefill time (ms)",
        "measured": "reference measurement (H100 SXM, {date})",
        "calc": "calc estimate ({ce:.1%} of dense bf16 peak, {me:.1%} of datasheet bandwidth)",
        "memory": "calc: memory-bound (one read of the weights)",
        "compute": "calc: compute-bound",
        "footer": ("Data: {data}, from the reference measurement {ref} (sha256 {sha}...)\n"
                   "{gpu}, torch {torch}, transformers {tf}, {date}; randomly initialised bf16 weights, sdpa attention; "
                   "one forward pass, batch 1, median of 3 after 1 warm-up\n"
                   "calc's estimate from calc/perf.py. Command: python scripts/figures/ch02_prefill_reference.py"),
    },
}


def _calc_api():
    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))
    from calc import api

    return api


def load_reference(path: Path = REFERENCE) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def sha256(path: Path = REFERENCE) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def calc_prefill(prompt_len: int) -> dict:
    r = _calc_api().run("perf", {**CALC_INPUTS, "prompt-len": str(prompt_len)})
    return {"prefill_s": round(r["prefill_s"], 9), "bound": r["prefill_bound"]}


def compute_data(reference: dict | None = None, ref_path: Path = REFERENCE) -> dict:
    """The data file's content: the reference points next to calc's estimate for the same prompt lengths."""
    ref = reference if reference is not None else load_reference(ref_path)
    one = _calc_api().run("perf", {**CALC_INPUTS, "prompt-len": "1024"})
    points = []
    for p in ref["prefill_batch1_s"]:
        est = calc_prefill(p["prompt_len"])
        points.append({"prompt_len": p["prompt_len"], "measured_s": p["s"], "calc_prefill_s": est["prefill_s"],
                       "calc_bound": est["bound"], "measured_over_calc": round(p["s"] / est["prefill_s"], 3)})
    env = ref["env"]
    return {
        "about": ("Prefill time of one prompt (batch 1) for a Llama-3.1-8B-shaped model on one H100 SXM: the project's "
                  "reference measurement next to calc's estimate. Written by scripts/figures/ch02_prefill_reference.py "
                  "from the reference file named below and calc; edit neither here."),
        "reference": {
            "file": ref_path.relative_to(REPO).as_posix() if ref_path.is_relative_to(REPO) else str(ref_path),
            "sha256": sha256(ref_path),
            "date": ref["date"],
            "model": ref["model"],
            "env": {k: env[k] for k in ("gpu", "driver", "torch", "transformers", "python")},
            "method": METHOD,
            "note": "Reference data to check predictions against, not this project's own lab output (tests/data/README.md).",
        },
        "calc": {
            "inputs": CALC_INPUTS,
            "compute_efficiency": one["compute_efficiency"],
            "memory_efficiency": one["memory_efficiency"],
            "effective_flops": one["effective_flops"],
            "effective_bandwidth_bytes_per_s": one["effective_bandwidth_bytes_per_s"],
        },
        "points": points,
        "calc_curve": [{"prompt_len": n, **calc_prefill(n)} for n in CURVE_LENGTHS],
    }


def plot(data: dict, lang: str):
    """The figure and its footer, for labs.common.save_figure."""
    import matplotlib.pyplot as plt

    sys.path.insert(0, str(REPO / "labs"))
    sys.path.insert(0, str(REPO))
    from labs import common

    t = TEXT[lang]
    ref, c = data["reference"], data["calc"]
    fig, ax = plt.subplots(figsize=(7.6, 4.4))
    curve = data["calc_curve"]
    for bound in ("memory", "compute"):
        # each regime its own segment, joined at the switch so the line is unbroken
        idx = [i for i, p in enumerate(curve) if p["bound"] == bound]
        if not idx:
            continue
        lo, hi = idx[0], idx[-1]
        if bound == "compute" and lo > 0:
            lo -= 1
        seg = curve[lo:hi + 1]
        ax.plot([p["prompt_len"] for p in seg], [p["prefill_s"] * 1e3 for p in seg],
                linestyle="-" if bound == "compute" else ":", color="#1f77b4", lw=1.6,
                label=t[bound])
    ax.plot([p["prompt_len"] for p in data["points"]], [p["calc_prefill_s"] * 1e3 for p in data["points"]],
            linestyle="none", marker="o", mfc="white", color="#1f77b4", ms=5,
            label=t["calc"].format(ce=c["compute_efficiency"], me=c["memory_efficiency"]))
    xs = [p["prompt_len"] for p in data["points"]]
    ys = [p["measured_s"] * 1e3 for p in data["points"]]
    ax.plot(xs, ys, linestyle="--", marker="D", color="#d62728", lw=1.0, ms=5,
            label=t["measured"].format(date=ref["date"]))
    for x, y in zip(xs, ys, strict=True):
        ax.annotate(f"{y:.1f} ms", (x, y), textcoords="offset points", xytext=(0, 8), fontsize=7, color="#d62728",
                    ha="center")
    for p in data["points"]:
        ax.annotate(f"{p['calc_prefill_s'] * 1e3:.1f} ms", (p["prompt_len"], p["calc_prefill_s"] * 1e3),
                    textcoords="offset points", xytext=(6, -11), fontsize=7, color="#1f77b4")
    common.log_axis(ax, "x", ticks=[128, 256, 512, 1024, 2048, 4096, 8192], base=2)
    ax.set_xlim(100, 10500)
    ax.set_ylim(3, 400)
    common.log_axis(ax, "y", ticks=[5, 10, 20, 50, 100, 200])
    ax.set_xlabel(t["x"])
    ax.set_ylabel(t["y"])
    ax.set_title(t["title"], fontsize=9)
    ax.legend(fontsize=7, loc="upper left")
    env = ref["env"]
    footer = t["footer"].format(data=DATA.relative_to(REPO).as_posix(), ref=ref["file"], sha=ref["sha256"][:12],
                                gpu=env["gpu"], torch=env["torch"], tf=env["transformers"], date=ref["date"])
    return fig, footer


def figure_paths(fig_dir: Path = FIG_DIR) -> dict[str, Path]:
    return figure_support.figure_paths(NAME, fig_dir)


def render(data: dict, fig_dir: Path = FIG_DIR) -> list[Path]:
    return figure_support.render(plot, data, NAME, fig_dir)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 epilog="\n\n".join(__doc__.split("\n\n")[1:]),
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--reference", type=Path, default=REFERENCE, help="the reference measurement (default: %(default)s)")
    ap.add_argument("--data", type=Path, default=DATA, help="the data file the page links (default: %(default)s)")
    ap.add_argument("--out", type=Path, default=FIG_DIR, help="folder for the two SVGs (default: %(default)s)")
    ap.add_argument("--check", action="store_true", help="change nothing; exit 1 if the data file or the figures are stale")
    args = ap.parse_args(argv)

    data = compute_data(ref_path=args.reference.resolve())
    if args.check:
        committed = json.loads(args.data.read_text(encoding="utf-8")) if args.data.exists() else None
        if committed != data:
            print(f"stale: {args.data} differs from what the reference and calc give; rerun without --check",
                  file=sys.stderr)
            return 1
        import tempfile

        with tempfile.TemporaryDirectory() as tmp:
            for path in render(data, Path(tmp)):
                target = args.out / path.name
                if not target.exists() or target.read_bytes() != path.read_bytes():
                    print(f"stale: {target} differs from what the data renders to", file=sys.stderr)
                    return 1
        print("data file and figures are up to date")
        return 0
    args.data.parent.mkdir(parents=True, exist_ok=True)
    args.data.write_text(json.dumps(data, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    for p in data["points"]:
        print(f"{p['prompt_len']:>5} tokens: measured {p['measured_s'] * 1e3:6.1f} ms, calc {p['calc_prefill_s'] * 1e3:6.1f} ms "
              f"({p['calc_bound']}-bound), measured/calc {p['measured_over_calc']}")
    for path in render(data, args.out):
        print(f"figure: {path.relative_to(REPO) if path.is_relative_to(REPO) else path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
