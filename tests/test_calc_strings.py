"""calc/strings.py: every word the calculators show, in one table, Chinese first; the form, the result tables,
the charts, the widget and the page script all read it."""

from __future__ import annotations

import ast
import html
import json
import re
from pathlib import Path

import pytest

from calc import api, strings, web

ROOT = Path(__file__).resolve().parent.parent
CJK = re.compile(r"[\u3400-\u9fff\uff00-\uffef\u3000-\u303f]")


def _literal_text(node: ast.AST) -> str | None:
    """The constant text of a string or f-string argument (None for anything else)."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):
        return "".join(v.value for v in node.values if isinstance(v, ast.Constant))
    return None


def test_one_argument_order_chinese_first():
    # every t(zh, en) in calc/ has the Chinese first: a call whose first text has no Chinese while the second
    # has some is an English-first call (the order two of the old helpers disagreed on)
    calls = 0
    for path in sorted((ROOT / "calc").glob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef) and node.name in ("_t", "t") and path.name != "strings.py":
                pytest.fail(f"{path.name} defines its own {node.name}(): use calc.strings.t")
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "t" and len(node.args) == 2:
                zh, en = (_literal_text(a) for a in node.args)
                if zh is None or en is None:
                    continue
                calls += 1
                assert CJK.search(zh) or not CJK.search(en), f"{path.name}:{node.lineno}: t() takes (zh, en)"
    assert calls > 150


def test_every_input_has_its_words_and_nothing_else_does():
    names = {f["name"] for command in api.COMMANDS for f in api.fields(command)}
    assert set(strings.INPUTS) == names
    for name, words in strings.INPUTS.items():
        for key in ("label", "help"):
            assert set(words[key]) == {"zh", "en"} and all(words[key].values()), (name, key)
            assert CJK.search(words[key]["zh"]) or words[key]["zh"] == words[key]["en"], (name, key)


@pytest.mark.parametrize("command", api.COMMANDS)
def test_a_form_label_and_its_echo_in_the_results_read_the_same(command):
    # "Tensor parallel GPUs" on the form and "Tensor-parallel GPUs" in the results was one fact written twice
    result = api.run(command, {})
    for field in api.fields(command):
        output = field["name"].replace("-", "_")
        if output in result:
            assert web.LABELS[output] == field["label"], output
    assert web.LABELS["tp"]["en"] == "Tensor-parallel GPUs"


def test_the_page_script_holds_no_words_of_its_own():
    script = (ROOT / "docs" / "assets" / "js" / "calculators" / "calculators.js").read_text(encoding="utf-8")
    assert not CJK.search(script)
    for lang in ("zh", "en"):
        text = web.page_script_text(lang)
        assert set(text) == set(strings.PAGE_SCRIPT) and all(text.values())
        for key in text:  # every word the script looks up is in the table
            assert f"t.{key}" in script or key == "static"


def test_the_hook_holds_no_words_of_its_own():
    hook = (ROOT / "hooks" / "calculators.py").read_text(encoding="utf-8")
    assert not CJK.search(hook)


def test_built_widgets_hand_the_page_script_its_words(site_dir):
    for lang, page in (("zh", "calculators/vram/index.html"), ("en", "en/calculators/vram/index.html")):
        text = (site_dir / page).read_text(encoding="utf-8")
        m = re.search(r'data-text="([^"]+)"', text)
        assert m and json.loads(html.unescape(m.group(1))) == web.page_script_text(lang)
        assert html.escape(strings.UI["static"][lang], quote=True) in text  # the status line before Python runs
