"""Command line: a thin wrapper over ``calc.api.run``.

    python -m calc memory --model llama-3.1-8b --gpu h100-sxm [--weights fp8] [--json]
    python -m calc memory --model path/to/config.json --gpu h100-sxm
    python -m calc perf|cost|roi ...
    python -m calc plan --model llama-3.1-70b --gpu h100-sxm --rate 5 --ttft-p90 1 --tpot-p90 0.05
    python -m calc list models|gpus|prices

Bad arguments exit with status 2 and a one-line message on stderr, never a traceback.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

from . import api, registry, web


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # argparse prints usage + message; we want one line
        print(f"error: {message}", file=sys.stderr)
        raise SystemExit(2)


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="python -m calc", description="LLM inference calculator (memory, performance, cost, ROI, capacity plan).")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    for command in api.COMMANDS:
        p = sub.add_parser(command, help=f"{command} report")
        for f in api.fields(command):
            flag = "--" + f["name"]
            help_text = f["help"]["en"] + (f" (default: {f['default']})" if f["default"] is not None else "")
            help_text = help_text.replace("%", "%%")  # argparse %-formats help strings ("90% of requests")
            if f["kind"] == "choice":
                help_text += "; choices: " + ", ".join(c["value"] for c in f["choices"])
            if f["name"] == "config":
                p.add_argument(flag, metavar="PATH", help="path to a Hugging Face config.json (overrides --model)")
            else:
                p.add_argument(flag, metavar=f["name"].upper().replace("-", "_"), help=help_text)
        p.add_argument("--json", action="store_true", help="print the result as JSON")
    lp = sub.add_parser("list", help="list registry keys")
    lp.add_argument("what", choices=["models", "gpus", "prices"])
    lp.add_argument("--json", action="store_true")
    return parser


def _format(key: str, value) -> str:
    # The same formatter as the browser's result tables (calc/web.py), so a number reads the same everywhere:
    # the unit follows the field (bytes, s, tok/s, req/s, $), sizes in GB with GiB in brackets.
    if key.endswith("_source") and isinstance(value, str):
        return value  # the whole URL on a terminal; the browser shows the host as a link
    shown, alternative = web.format_value(key, value, "en")
    return f"{shown} ({alternative})" if alternative else shown


def _table(result: dict) -> str:
    width = max(len(k) for k in result)
    lines = []
    for key, value in result.items():
        if key in ("throughput_curve", "curve_capacity", "api_comparison", "warnings", "per_gpu_table", "candidates",
                   "rejected", "load_curve"):  # lists, printed below; the curve's capacity shows in its rows
            continue
        if key == "fits_reason" and isinstance(value, dict):
            value = value["en"]
        if key == "engine_kv_group_windows":  # each KV cache group's attention window
            lines.append(f"{key:<{width}}  " + ", ".join("full" if w is None else f"window {w}" for w in value))
            continue
        lines.append(f"{key:<{width}}  {_format(key, value)}")
    for row in result.get("per_gpu_table", []):
        parts = ", ".join(f"{name} {_format('bytes', row[key])}" for name, key in (
            ("weights", "weights_bytes"), ("KV", "kv_cache_bytes"), ("activations", "activation_peak_bytes"),
            ("overhead", "overhead_bytes")))
        lines.append(f"  stage {row['stage']} (layers {row['first_layer']}-{row['last_layer']}), each of "
                     f"{row['gpus']} GPUs: {parts}; total {_format('bytes', row['total_bytes'])}"
                     f"{'' if row['fits'] else ' (does not fit)'}")
    for row in result.get("throughput_curve", []):
        lines.append(f"  batch {row['batch']:>5}: TPOT {row['tpot_s'] * 1e3:9.3f} ms, "
                     f"{row['decode_tok_per_s']:12,.1f} tok/s ({row['bound']}-bound)"
                     + ("" if row.get("fits_memory", True) else ", more sequences than memory holds"))
    for row in result.get("api_comparison", []):
        lines.append(f"  {row['api']:<30} ${row['usd_per_request']:.6f}/request, "
                     f"${row['monthly_cost_usd']:,.2f}/month (as of {row['as_of']})")
    def ms(x, fmt):  # TPOT is undefined (None) when every request has one output token
        return "—" if x is None else f"{x * 1e3:{fmt}} ms"

    for c in result.get("candidates", []):
        cost = f"${c['monthly_cost_usd']:,.0f}/month" if c["monthly_cost_usd"] is not None else "no price"
        lines.append(f"  TP {c['tp']} × {c['replicas']} replicas = {c['gpus']} GPUs: TTFT p90 "
                     f"{ms(c['ttft_p90_s'], ',.1f')}, TPOT p90 {ms(c['tpot_p90_s'], ',.2f')}, load "
                     f"{(c['utilization'] or 0):.0%}, {cost}")
    for r in result.get("rejected", []):
        lines.append(f"  not possible: {r['message']['en']}")
    for p in result.get("load_curve", []):
        lines.append(f"  at {p['requests_per_s']:8.2f} req/s: TTFT p90 {ms(p['ttft_p90_s'], '10.1f')}, "
                     f"TPOT p90 {ms(p['tpot_p90_s'], '8.2f')}")
    for w in result.get("warnings", []):
        lines.append(f"warning: {w['en']}")
    return "\n".join(lines)


def _list(what: str, as_json: bool) -> str:
    if what == "models":
        rows = {k: registry.model_entry(k)["name"] for k in registry.list_models()}
    elif what == "gpus":
        rows = {k: registry.get_gpu(k).name for k in registry.list_gpus()}
    else:
        rows = {k: f"{p['provider']} {p['model']}: ${p['usd_per_million_input_tokens']}/"
                   f"${p['usd_per_million_output_tokens']} per 1M in/out (as of {p['as_of']})"
                for k, p in ((k, registry.get_price(k)) for k in registry.list_prices())}
    if as_json:
        return json.dumps(rows, ensure_ascii=False, indent=1)
    return "\n".join(f"{k:<28} {v}" for k, v in rows.items())


def main(argv=None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "list":
        print(_list(args.what, args.json))
        return 0
    params = {k.replace("_", "-"): v for k, v in vars(args).items() if k not in ("command", "json") and v is not None}
    # `--model` takes a preset name or a path to a Hugging Face config.json (the contract the docs use).
    model = params.get("model", "")
    if "config" not in params and (model.endswith(".json") or os.sep in model or os.path.isfile(model)):
        params["config"] = params.pop("model")
    if "config" in params:
        try:
            with open(params["config"], encoding="utf-8") as fh:
                params["config"] = fh.read()
        except OSError as e:
            print(f"error: config: cannot read {params['config']}: {e.strerror}", file=sys.stderr)
            return 2
    try:
        result = api.run(args.command, params)
    except api.InputError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    try:
        print(json.dumps(result, ensure_ascii=False, indent=1) if args.json else _table(result))
        sys.stdout.flush()
    except BrokenPipeError:  # `python -m calc ... | head`: the reader left, which is not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
