"""hooks/directives.py: the one scanner for {{ calc }}, {{ calculator }}, {{ registry }} and {{ provenance }},
which leaves code alone, and the hooks that use it."""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
from mkdocs.exceptions import PluginError

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "hooks"))
import calc_numbers  # noqa: E402
import directives  # noqa: E402
import registry_tables  # noqa: E402

# Every directive the book has, as a reader of CONTRIBUTING would copy it.
EXAMPLES = [
    "{{ calc memory.weights_bytes model=llama-3.1-8b weights=bf16 | GB:2 }}",
    "{{ calculator vram model=llama-3.1-70b weights=fp8 }}",
    "{{ registry gpus }}",
    "{{ provenance ch03-prefill-decode/data/ch03-cpu.json }}",
]


def _in_code(directive: str) -> list[str]:
    """Pages that show a directive as code, in every way Markdown has."""
    return [
        f"```\n{directive}\n```",
        f"~~~markdown\n{directive}\n~~~",
        f"````\n```\n{directive}\n```\n````",  # a longer fence holds a shorter one
        f"~~~\n```\n{directive}\n```\n~~~",  # a ``` inside ~~~ neither opens nor closes anything
        f'!!! example\n\n    ```\n    {directive}\n    ```',  # indented, in an admonition
        f"Write `{directive}` on a line of its own.",
        f"Write ``{directive}`` on a line of its own.",
    ]


def _page(src_uri="en/x.md", locale="en"):
    return SimpleNamespace(file=SimpleNamespace(src_uri=src_uri, locale=locale), url="x/")


def _calculators_hook():
    spec = importlib.util.spec_from_file_location("calculators_hook_directives", ROOT / "hooks" / "calculators.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    from calc import api, web

    module._state.update(api=api, web=web)
    return module


def _provenance_hook():
    spec = importlib.util.spec_from_file_location("lab_provenance_hook_directives", ROOT / "hooks" / "lab_provenance.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _expanders():
    calculators, provenance = _calculators_hook(), _provenance_hook()
    return {
        "calc": lambda md: calc_numbers.render(md, "en/x.md"),
        "calculator": lambda md: calculators.on_page_markdown(md, _page(), None, None),
        "registry": lambda md: registry_tables.on_page_markdown(md, _page(), None, None),
        "provenance": lambda md: provenance.on_page_markdown(md, _page(), {"docs_dir": str(ROOT / "docs")}, None),
    }


@pytest.mark.parametrize("directive", EXAMPLES)
def test_every_hook_leaves_directives_in_code_alone(directive):
    name = directive.split()[1]
    expand = _expanders()[name]
    for markdown in _in_code(directive):
        assert expand(markdown) == markdown, markdown
    # and the same directive outside code is expanded
    assert directive not in expand(f"text\n\n{directive}\n\nmore")


def test_one_fence_rule_for_the_whole_build():
    # the other hooks and the parity test ask hooks/directives.py what is code; none matches fences itself
    users = [p for p in (ROOT / "hooks").glob("*.py") if p.name != "directives.py"] + [ROOT / "tests" / "test_parity.py"]
    for path in users:
        assert not re.search(r"^FENCE\s*=", path.read_text(encoding="utf-8"), re.M), path


def test_fenced_lines():
    lines = ["a", "```python", "x = 1", "~~~", "```", "b", "~~~~", "```", "~~~", "~~~~", "c", "    ```", "    d", "    ```"]
    assert directives.fenced(lines) == [False, True, True, True, True, False, True, True, True, True, False,
                                        True, True, True]
    assert directives.fenced(["```", "never closed", "{{ calc x | GB:2 }}"]) == [True, True, True]
    assert directives.fenced(["```not`a fence", "text"]) == [False, False]  # a backtick in the info string


def test_inline_directives_are_replaced_in_place():
    out = directives.expand("a {{ x 1 }} b `{{ x 2 }}` c {{ x 3 }}", "x", lambda body: f"<{body}>")
    assert out == "a <1> b `{{ x 2 }}` c <3>"


def test_a_directive_whose_name_starts_another_is_not_mistaken():
    assert directives.expand("{{ calculator vram }}", "calc", lambda body: "!") == "{{ calculator vram }}"


def test_directives_on_a_line_of_their_own_keep_its_indentation():
    out = directives.expand("!!! note\n\n    {{ t 2 }}\n\nafter", "t", lambda body: "| a |\n|---|\n| " + body + " |",
                            alone=True)
    assert out == "!!! note\n\n    | a |\n    |---|\n    | 2 |\n\nafter"


@pytest.mark.parametrize("markdown, message", [
    ("text {{ t 1 }} text", "must stand alone on its line"),
    ("{{ t 1 }} {{ t 2 }}", "must stand alone on its line"),
])
def test_directives_that_must_stand_alone(markdown, message):
    with pytest.raises(PluginError, match=message) as err:
        directives.expand(markdown, "t", lambda body: body, "zh/p.md", alone=True)
    assert "zh/p.md" in str(err.value)


@pytest.mark.parametrize("markdown", ["a {{ x 1 b", "{{ x {{ x 1 }}", "{{ x 1 }"])
def test_unclosed_directives_fail_the_build(markdown):
    with pytest.raises(PluginError, match="malformed") as err:
        directives.expand(markdown, "x", lambda body: body, "en/p.md")
    assert "en/p.md" in str(err.value)


def test_an_error_in_a_hook_names_the_page_and_the_directive():
    def boom(body):
        raise KeyError(body)

    with pytest.raises(PluginError, match=r"en/p\.md: cannot expand '\{\{ x nope \}\}'"):
        directives.expand("{{ x nope }}", "x", boom, "en/p.md")
