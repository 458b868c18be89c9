"""Writes calc/data/length_profiles.json: prompt and output length quantiles (p0..p100) of public request traces.

    python scripts/trace_lengths.py --azure-code AzureLLMInferenceTrace_code.csv \
        --azure-conv AzureLLMInferenceTrace_conv.csv --mooncake-conv conversation_trace.jsonl

The traces (lengths only, no text) are read from local copies of the files at the commits in SOURCES; the
simulator (calc/simulate.py) draws request lengths from these quantiles.
"""

from __future__ import annotations

import argparse
import csv
import json
import os

SOURCES = {
    "azure-code": {
        "label": {"zh": "Azure 代码补全（2023）", "en": "Azure coding (2023)"},
        "source": "https://github.com/Azure/AzurePublicDataset/blob/790921015d50dd6aae7f7e47f39ba0e235ad6b08/data/AzureLLMInferenceTrace_code.csv",
        "as_of": "2023-11-16",
        "citation": "Patel et al., Splitwise: Efficient generative LLM inference using phase splitting, ISCA 2024 "
                    "(Azure LLM inference trace 2023, coding service)",
    },
    "azure-conv": {
        "label": {"zh": "Azure 对话（2023）", "en": "Azure conversation (2023)"},
        "source": "https://github.com/Azure/AzurePublicDataset/blob/790921015d50dd6aae7f7e47f39ba0e235ad6b08/data/AzureLLMInferenceTrace_conv.csv",
        "as_of": "2023-11-16",
        "citation": "Patel et al., Splitwise: Efficient generative LLM inference using phase splitting, ISCA 2024 "
                    "(Azure LLM inference trace 2023, conversation service)",
    },
    "mooncake-conv": {
        "label": {"zh": "Mooncake 长上下文对话（Kimi）", "en": "Mooncake long-context chat (Kimi)"},
        "source": "https://github.com/kvcache-ai/Mooncake/blob/3b5a594133958449a1feaf1c9e0fc1b553e34a28/FAST25-release/traces/conversation_trace.jsonl",
        "as_of": "2025-02-21",
        "citation": "Qin et al., Mooncake: Trading More Storage for Less Computation, FAST 2025 (conversation trace; "
                    "input lengths include prefixes that Mooncake serves from its KV cache)",
    },
}


def quantiles(xs: list[int]) -> list[float]:
    s = sorted(xs)
    n = len(s)
    out = []
    for p in range(101):
        k = (n - 1) * p / 100
        i = int(k)
        j = min(i + 1, n - 1)
        out.append(round(s[i] + (s[j] - s[i]) * (k - i), 2))
    return out


def read(key: str, path: str) -> tuple[list[int], list[int]]:
    if path.endswith(".csv"):
        with open(path, newline="", encoding="utf-8") as fh:
            rows = list(csv.DictReader(fh))
        return [int(r["ContextTokens"]) for r in rows], [int(r["GeneratedTokens"]) for r in rows]
    with open(path, encoding="utf-8") as fh:
        rows = [json.loads(line) for line in fh if line.strip()]
    return [int(r["input_length"]) for r in rows], [int(r["output_length"]) for r in rows]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    for key in SOURCES:
        ap.add_argument("--" + key, required=True, metavar="PATH")
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "..", "calc", "data", "length_profiles.json"))
    args = ap.parse_args()
    profiles = {}
    for key, meta in SOURCES.items():
        prompt, output = read(key, getattr(args, key.replace("-", "_")))
        output = [max(1, o) for o in output]  # a request yields at least one token (a few trace rows say 0)
        profiles[key] = {**meta, "requests": len(prompt),
                         "prompt": {"mean": round(sum(prompt) / len(prompt), 1), "quantiles": quantiles(prompt)},
                         "output": {"mean": round(sum(output) / len(output), 1), "quantiles": quantiles(output)}}
        q = profiles[key]
        print(f"{key:<14} n={len(prompt):>6}  prompt mean {q['prompt']['mean']:>8} p50 {q['prompt']['quantiles'][50]:>8} "
              f"p90 {q['prompt']['quantiles'][90]:>8} | output mean {q['output']['mean']:>6} "
              f"p50 {q['output']['quantiles'][50]:>6} p90 {q['output']['quantiles'][90]:>6}")
    doc = {"note": "written by scripts/trace_lengths.py; quantiles p0..p100 (linear interpolation)", "profiles": profiles}
    with open(args.out, "w", encoding="utf-8") as fh:
        json.dump(doc, fh, ensure_ascii=False, indent=1)
        fh.write("\n")


if __name__ == "__main__":
    main()
