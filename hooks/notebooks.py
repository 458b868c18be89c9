"""Render the notebooks of both languages as pages.

mkdocs-static-i18n rebuilds the file list for each language and turns mkdocs-jupyter's NotebookFile objects
back into plain files, so without this hook /ch03/practice/ would be the raw .ipynb JSON
(ultrabug/mkdocs-static-i18n#198). After i18n has chosen each notebook's destination and URL, wrap it in
mkdocs-jupyter's NotebookFile again, keeping that destination.
"""

from __future__ import annotations

import re

from mkdocs.exceptions import PluginError
from mkdocs.plugins import event_priority


@event_priority(-150)  # after mkdocs-static-i18n's on_files (-100)
def on_files(files, config):
    if "mkdocs-jupyter" not in config.plugins:
        return files
    from mkdocs_jupyter.plugin import NotebookFile

    class LocalizedNotebook(NotebookFile):
        def __init__(self, file):  # keep the destination and URL that i18n chose for this language
            self.file, self.dest_path = file, file.dest_uri
            self.abs_dest_path, self.url = file.abs_dest_path, file.url

    for f in [f for f in files if f.src_uri.endswith(".ipynb") and not isinstance(f, NotebookFile)]:
        files.remove(f)  # in place: i18n's own file list maps nav paths per language
        files.append(LocalizedNotebook(f))
    return files


# nbconvert's page template loads MathJax from an empty src and, when a notebook holds a mermaid cell, mermaid
# from cdnjs. The site makes no request to another host: KaTeX and the site's own mermaid (Material renders
# every pre.mermaid with it) are already on the page, so both loaders are dropped.
_EMPTY_MATHJAX = re.compile(r'<!-- Load mathjax -->\s*<script src="">\s*</script>')
_CDN_MERMAID = re.compile(r'<script type="module">\s*document\.addEventListener\("DOMContentLoaded", async \(\) => \{\s*'
                          r'const diagrams = document\.querySelectorAll\("\.jp-Mermaid > pre\.mermaid"\);.*?</script>', re.S)


def on_post_page(output, page, config):
    if not page.file.src_uri.endswith(".ipynb"):
        return output
    output, n_mathjax = _EMPTY_MATHJAX.subn("", output)
    output, n_mermaid = _CDN_MERMAID.subn("", output)
    if "cdnjs.cloudflare.com" in output or n_mathjax != 1 or n_mermaid != 1:
        raise PluginError(f"{page.file.src_uri}: nbconvert's template changed; update hooks/notebooks.py "
                          "so the page loads nothing from another host")
    return output
