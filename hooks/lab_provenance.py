"""Write each lab figure's provenance line from the run's data file, never by hand:

    <figure markdown="span">
      ![…](../../assets/labs/ch03-prefill-decode/figures/ch03-cpu-mbu_zh.svg)
      <figcaption>…</figcaption>
    </figure>
    {{ provenance ch03-prefill-decode/data/ch03-cpu.json }}

A measured number in the text comes from the same files, anywhere in a line:

    {{ lab ch03-prefill-decode/data/ch03-h200.json kind=decode path=static-graph batch=1 tpot_mean_s | ms:2 }}

names a data file, `name=value` pairs that pick exactly one of its points (compared as text: batch=1 matches
the number 1), or the word `provenance` for what the run recorded about its machine
(`{{ lab ch04-gpu-basics/data/ch04-h200.json provenance device.l2_cache_bytes | MiB:0 }}`), the field to show (`prefill_s.median` for a field inside one;
`by_tokens.tokens=64.moe.tokens_per_s` for the one row of a list whose `tokens` is 64), and after `|` calc's `unit:digits` format (calc/units.py). A selector that
matches no point or several, or a field the point lacks, fails the build: a number in the text cannot drift
from the run it quotes, and a rerun that changes it changes the text.

The provenance directive stands on a line of its own, right after the figure, and names the data file the figure was
drawn from, relative to docs/assets/labs/; `model=<settings field>` names the model a part of the run timed where
it is not the run's model (`{{ provenance ch08-quantization/data/ch08-h200.json model=speed_preset }}`). It becomes `<p class="provenance" markdown>…</p>` in the page's
language: device, software, model, date and the command (shortened), with a link to the data file, which
holds the full command and everything else. The words come from labs/describe.py, the module that also writes
the figures' own footers, so a figure and the line under it describe one run. A missing or unreadable data
file fails the build, naming the page.
"""

from __future__ import annotations

import json
import posixpath
from functools import cache
from pathlib import Path, PurePosixPath

import directives  # hooks/directives.py (MkDocs loads hooks with their folder on sys.path)
import hook_support
from mkdocs.exceptions import PluginError

LAB_ASSETS = "assets/labs"  # under docs_dir


def data_path(text: str) -> PurePosixPath:
    """`<lab>/data/<run>.json`, checked: relative, inside docs/assets/labs/, a lab's data folder."""
    path = PurePosixPath(text)
    if (path.is_absolute() or ".." in path.parts or len(path.parts) != 3 or path.parts[1] != "data"
            or path.suffix != ".json"):
        raise ValueError(f"'{text}' is not a lab data file: write <lab>/data/<run>.json, relative to {LAB_ASSETS}/")
    return path


def line(data: dict, lang: str, href: str, model_setting: str | None = None) -> str:
    """The provenance paragraph for one run (Markdown inside HTML, which md_in_html renders). ``model_setting``: a
    field of the run's ``settings`` naming the calc model whose shape the figure timed, for a lab whose run has two
    parts with their own models (ch08: a model it trains for quality, a shape with random weights for speed). That
    model is named without a weight format: such a part times several, which its figure names."""
    describe = hook_support.lab_module("describe")
    prov = data["provenance"]
    model = prov.get("model") or {}
    (registry,) = hook_support.calc_modules("registry")
    if model_setting is not None:
        key = (prov.get("settings") or {}).get(model_setting)
        if key not in registry.list_models():
            raise ValueError(f"settings.{model_setting} is {key!r}, not a calc model")
        model = {"label": key, "weights": None, "random_weights": True}
    name = None
    if model.get("label") in registry.list_models():
        name = registry.model_entry(model["label"])["name"]  # llama-3.2-1b -> Llama-3.2-1B
    text = describe.provenance_line(data, lang, href, name, model if model_setting is not None else None)
    return f'<p class="provenance" markdown>{text}</p>'


@cache
def _load(file: Path) -> dict:
    """A data file, parsed once per build (a page quotes the same run dozens of times; on_config clears this)."""
    return json.loads(file.read_text(encoding="utf-8"))


def on_config(config):
    _load.cache_clear()  # `mkdocs serve` rebuilds in one process: a rerun's data file must be read again
    return config


def _text(value) -> str:
    return ("true" if value else "false") if isinstance(value, bool) else str(value)


def _matches(items: list, wanted: list[tuple[str, str]]) -> list[dict]:
    """The dicts in `items` whose every `name` field reads as its `value` (compared as text: batch=1 matches 1)."""
    return [v for v in items if isinstance(v, dict) and all(n in v and _text(v[n]) == w for n, w in wanted)]


def lab_value(data: dict, selector: list[str], field: str):
    """The `field` of the one point in `data` that every `name=value` of `selector` matches."""
    wanted = []
    for arg in selector:
        name, sep, value = arg.partition("=")
        if not sep or not name:
            raise ValueError(f"'{arg}' is not name=value")
        wanted.append((name, value))
    points = _matches(data.get("points", []), wanted)
    if len(points) != 1:
        raise ValueError(f"{' '.join(selector) or '(no selector)'} matches {len(points)} points, not one")
    return _field(points[0], field)


def _field(value, field: str):
    for part in field.split("."):  # prefill_s.median: a field inside a field
        name, sep, want = part.partition("=")
        if sep and isinstance(value, list):  # methods.method=int4-group.kl_vs_bf16: the one list item that matches
            items = _matches(value, [(name, want)])
            if len(items) != 1:
                raise ValueError(f"field '{field}': {part} matches {len(items)} items, not one")
            value = items[0]
            continue
        if not isinstance(value, dict) or part not in value:
            has = ", ".join(sorted(value)) if isinstance(value, dict) else type(value).__name__
            raise ValueError(f"the point has no field '{field}' (at '{part}' it has: {has})")
        value = value[part]
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"field '{field}' is {value!r}, not a number")
    return value


def lab_number(text: str, docs_dir: str) -> str:
    """The text of one `{{ lab <file> name=value … <field> | unit:digits }}`."""
    body, sep, fmt = text.rpartition("|")
    words = body.split()
    if not sep or len(words) < 2:
        raise ValueError("write {{ lab <lab>/data/<run>.json name=value ... <field> | unit:digits }}")
    path = data_path(words[0])
    data = _load(Path(docs_dir) / LAB_ASSETS / path)
    (units,) = hook_support.calc_modules("units")
    if words[1] == "provenance":  # the run's own record: device, settings (one field, no selector)
        if len(words) != 3:
            raise ValueError("write {{ lab <lab>/data/<run>.json provenance <field> | unit:digits }}")
        return units.format_number(_field(data.get("provenance", {}), words[2]), fmt.strip())
    return units.format_number(lab_value(data, words[1:-1], words[-1]), fmt.strip())


def on_page_markdown(markdown, page, config, files):
    where = page.file.src_uri
    lang = hook_support.page_lang(page)
    markdown = directives.expand(markdown, "lab", lambda text: lab_number(text, config["docs_dir"]), where)

    def provenance(text: str) -> str:
        words = text.split()
        setting = None
        for word in words[1:]:  # model=<settings field>: the run part's own model (lab_provenance.line)
            name, sep, value = word.partition("=")
            if name != "model" or not sep or not value or setting is not None:
                raise ValueError("write {{ provenance <lab>/data/<run>.json [model=<settings field>] }}")
            setting = value
        path = data_path(words[0] if words else "")
        file = Path(config["docs_dir"]) / LAB_ASSETS / path
        try:
            data = _load(file)
        except (OSError, ValueError) as exc:
            raise PluginError(f"{where}: {{{{ provenance {text} }}}}: cannot read {file}: {exc}") from exc
        href = posixpath.relpath(f"{LAB_ASSETS}/{path}", posixpath.dirname(where) or ".")
        return line(data, lang, href, setting)

    return directives.expand(markdown, "provenance", provenance, where, alone=True)
