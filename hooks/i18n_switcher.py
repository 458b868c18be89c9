"""Make the language switcher work with Material's instant navigation.

mkdocs-static-i18n writes per-page ("contextual") language links into each page. With
`navigation.instant` Material swaps page content without re-rendering the header, so those links would keep
naming the first page viewed; Material also fetches `sitemap.xml` next to every `<link rel=alternate>`, which
404s for per-page links. So:

- every page gets the language roots as its alternates (`/` and `/en/`), and `en/sitemap.xml` is written
  next to the root one, so Material's sitemap look-up succeeds;
- docs/assets/js/lang-switch.js points the switcher at the same page in the other language after every
  navigation (every page exists in both languages under the same path; tests/test_parity.py enforces it);
- the plugin's warning about this combination is filtered, since `strict: true` would fail on it.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path
from urllib.parse import urlsplit

from mkdocs.plugins import event_priority


class _DropInstantNavWarning(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return "not compatible with theme.features = navigation.instant" not in record.getMessage()


logging.getLogger("mkdocs.plugins.mkdocs_static_i18n.reconfigure").addFilter(_DropInstantNavWarning())


@event_priority(-200)  # after mkdocs-static-i18n has set its per-page links
def on_page_context(context, page, config, nav):
    root = urlsplit(config.site_url or "/").path.rstrip("/") + "/"
    language_roots = {"zh": root, "en": root + "en/"}
    # mkdocs-static-i18n assigns `config.extra.alternate` as an attribute, which is what the templates read.
    for alternate in getattr(config.extra, "alternate", None) or config.extra.get("alternate", []):
        if alternate.get("lang") in language_roots:
            alternate["link"] = language_roots[alternate["lang"]]
    return context


def on_post_build(config, **kwargs):
    site = Path(config["site_dir"])
    if (site / "sitemap.xml").exists() and (site / "en").is_dir():
        shutil.copyfile(site / "sitemap.xml", site / "en" / "sitemap.xml")
