"""hooks/cjk_linebreaks.py: a wrapped Chinese sentence renders without a gap, and nothing else is joined."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "hooks"))
from cjk_linebreaks import join_cjk_lines  # noqa: E402


def test_a_wrapped_chinese_sentence_is_joined():
    assert join_cjk_lines("能带到 GPU 上的是形状：\n预填充每 token 远比解码便宜。") == "能带到 GPU 上的是形状：预填充每 token 远比解码便宜。"


def test_a_wrapped_list_item_is_joined_without_its_indent():
    assert join_cjk_lines("- 第一项很长\n  继续第一项\n- 第二项") == "- 第一项很长继续第一项\n- 第二项"


@pytest.mark.parametrize("markdown", [
    "中文\n```\n代码\n中文\n```",  # code is code
    "解码\nEnglish starts here",  # a Latin word keeps its space
    "| 表 |\n| 格 |",  # table rows
    "段落\n\n另一段",  # paragraphs
    "说明\n- 列表项",  # a new list
    "说明\n!!! note \"注意\"",  # an admonition
    "## 标题\n正文",  # a heading is one line
])
def test_blocks_and_mixed_text_are_left_alone(markdown):
    assert join_cjk_lines(markdown) == markdown
