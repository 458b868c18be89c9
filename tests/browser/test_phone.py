"""Every page of the built site, both languages, on a 390 px wide phone screen: nothing makes the page scroll
sideways, nothing is cut off, and a wide formula scrolls inside its own box with room at both ends
(docs/assets/css/book.css).
"""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.browser

PHONE = {"viewport": {"width": 390, "height": 844}, "is_mobile": True, "has_touch": True, "device_scale_factor": 2}

# Run in the page: what is wrong with its layout, as a list of sentences.
LAYOUT = """async () => {
  const width = document.documentElement.clientWidth;
  const problems = [];
  if (document.documentElement.scrollWidth > width)
    problems.push(`the page scrolls sideways: ${document.documentElement.scrollWidth} px wide`);
  const name = (el) => el.tagName.toLowerCase() + [...el.classList].slice(0, 2).map((c) => "." + c).join("");
  const fits = (r) => r.left >= -1 && r.right <= width + 1;

  // Content off the screen must be reachable: inside a box that scrolls sideways, fits the screen and starts
  // at or before the content (what lies left of a scroll box's start can never be scrolled to).
  for (const el of document.querySelectorAll("article.md-content__inner *")) {
    if (el.closest("svg") && el.tagName.toLowerCase() !== "svg") continue;  // a picture is one box
    const katex = el.parentElement.closest(".katex");
    if (katex && el.parentElement !== katex) continue;  // a formula is one box, .katex-html
    const r = el.getBoundingClientRect();
    if (r.width === 0 || r.height === 0 || fits(r)) continue;
    let why = "no box scrolls it";
    for (let box = el.parentElement; box && box !== document.body; box = box.parentElement) {
      const overflow = getComputedStyle(box).overflowX;
      if (overflow === "visible") continue;
      const b = box.getBoundingClientRect();
      if (overflow === "hidden" || overflow === "clip") {
        if (r.left < b.left - 1 || r.right > b.right + 1) { why = `cut off by ${name(box)}`; break; }
        continue;
      }
      if (!fits(b)) continue;  // a scroll box that is itself wider than the screen: look further out
      why = r.left < b.left - 1 ? `starts left of ${name(box)}, where it cannot be scrolled to` : null;
      break;
    }
    if (why) problems.push(`${name(el)} at [${Math.round(r.left)}, ${Math.round(r.right)}] px: ${why}`);
  }

  // Display math: at either end of its box's scroll, the formula keeps clear of the box's edges.
  for (const [i, box] of [...document.querySelectorAll("article div.arithmatex")].entries()) {
    const parts = [...box.querySelectorAll(".katex-html > *")];
    if (!parts.length) continue;
    const extent = () => {
      const rects = parts.map((p) => p.getBoundingClientRect()).filter((r) => r.width > 0);
      return [Math.min(...rects.map((r) => r.left)), Math.max(...rects.map((r) => r.right))];
    };
    const b = box.getBoundingClientRect();
    box.scrollLeft = 0;
    const [left] = extent();
    box.scrollLeft = box.scrollWidth;
    const [, right] = extent();
    box.scrollLeft = 0;
    if (!fits(b)) problems.push(`formula ${i + 1}: its box is wider than the screen`);
    if (left < b.left + 4 || right > b.right - 4)
      problems.push(`formula ${i + 1} runs into the edge of its box: [${Math.round(left)}, ${Math.round(right)}]`
                    + ` px in [${Math.round(b.left)}, ${Math.round(b.right)}]`);
  }
  return problems;
}"""

READY = """() => document.fonts.status === "loaded"
  && [...document.querySelectorAll("article div.arithmatex")].every((d) => d.querySelector(".katex"))"""


def _pages(site_dir) -> list[str]:
    return sorted("/" + p.parent.relative_to(site_dir).as_posix().removeprefix(".") + "/"
                  for p in site_dir.rglob("index.html") if not p.relative_to(site_dir).as_posix().startswith("assets/"))


def test_every_page_fits_a_phone_screen(browser, site_url, site_dir):
    pages = [p.replace("//", "/") for p in _pages(site_dir)]
    assert "/en/calculators/cost/" in pages and len(pages) >= 20, pages
    context = browser.new_context(**PHONE)
    context.set_default_timeout(30_000)
    page = context.new_page()
    problems = {}
    try:
        for path in pages:
            page.goto(site_url + path, wait_until="load")
            page.wait_for_function(READY)
            found = page.evaluate(LAYOUT)
            if found:
                problems[path] = found[:5] + ([f"… and {len(found) - 5} more"] if len(found) > 5 else [])
    finally:
        context.close()
    assert not problems, "\n".join(f"{path}: {'; '.join(p)}" for path, p in problems.items())
