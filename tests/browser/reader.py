"""Clicking a link the way a reader does, so that a test waits on the site and not on a race in the harness.

Material's instant navigation writes the viewport offset into `history.state` 100 ms after each scroll
(debounced). A click within those 100 ms pushes the new page first; the late write then lands on the *new*
history entry, and Material restores the old page's offset on the new page. Playwright scrolls a link into
view and clicks at once, so on a loaded machine it hit this every other time (a reader clicking mid-scroll
can too). Waiting until the offset is recorded makes the click what a reader's is: after the scroll settled.
At the top of a page there is nothing to wait for: a late write would restore offset 0, which is right.
"""

from __future__ import annotations

RECORDED = "() => window.scrollY < 1 || Math.abs((history.state?.y ?? -1) - window.scrollY) < 1"


def click(page, locator) -> None:
    """Scroll locator into view, let Material record the offset, then click it."""
    locator.scroll_into_view_if_needed()
    page.wait_for_function(RECORDED)
    locator.click()
