"""What the figure scripts in this folder share: both languages drawn with the labs' figure style.

These figures come from cited data (chapter 1's prices, chapter 2's reference measurement), not from lab runs, but
they look like the lab figures: labs/common.py's style() and save_figure() draw them.
"""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
FIG_DIR = REPO / "docs" / "assets" / "figures"
LANGS = ("zh", "en")


def figure_paths(name: str, fig_dir: Path = FIG_DIR) -> dict[str, Path]:
    """{lang: <fig_dir>/<name>_<lang>.svg}"""
    return {lang: Path(fig_dir) / f"{name}_{lang}.svg" for lang in LANGS}


def render(plot, data: dict, name: str, fig_dir: Path = FIG_DIR) -> list[Path]:
    """Draw `plot(data, lang) -> (figure, footer)` in both languages; the Chinese one needs a CJK font."""
    for folder in (REPO, REPO / "labs"):  # labs/common.py imports its sibling describe.py by name
        if str(folder) not in sys.path:
            sys.path.insert(0, str(folder))
    from labs import common

    if not common.cjk_font():
        raise SystemExit("error: no CJK font for the Chinese figure (Debian: apt-get install fonts-noto-cjk)")
    written = []
    for lang, path in figure_paths(name, fig_dir).items():
        common.style(lang)
        fig, footer = plot(data, lang)
        written.append(common.save_figure(fig, path, footer))
    return written
