"""hooks/search_terms.py: the glossary's Chinese terms become jieba words for the search index."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "hooks"))
import search_terms  # noqa: E402

TABLE = """| 中文 | English | 定义 |
|------|---------|------|
| <span id="prefill"></span>预填充 | prefill | … |
| 多头注意力（MHA） | multi-head attention (MHA) | … |
| 查询、键、值（Q、K、V） | query, key, value | … |
| KV 缓存 | KV cache | … |
"""


def test_terms_come_from_the_first_column_without_markup_or_abbreviations():
    assert search_terms.glossary_terms(TABLE) == ["预填充", "多头注意力", "查询", "键", "值"]


def test_the_real_glossary_teaches_jieba_the_chapter_terms():
    import jieba

    terms = search_terms.glossary_terms(search_terms.GLOSSARY.read_text(encoding="utf-8"))
    assert {"预填充", "解码", "算术强度"} <= set(terms)
    search_terms.on_config({})
    assert "预填充" in jieba.lcut("预填充阶段受计算限制")
