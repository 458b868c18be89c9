// Language boundaries under Material's instant navigation.
//
// 1. The switcher points at the same page in the other language, after every navigation. Instant navigation
//    does not re-render the header, so links written at build time would go stale (hooks/i18n_switcher.py).
//    Every page exists in both languages under the same path — zh at the site root, en under en/ — and
//    headings carry the same ids in both, so the hash is kept too.
// 2. A click that crosses languages (the switcher, a link in the text) is a full page load. Instant navigation
//    swaps only the content and would leave the header, tabs, search and <html lang> in the old language.
//    (Search lists only the page's own language: hooks/search_index.py.)
(function () {
  const root = new URL(__md_scope.pathname, location.href).pathname; // the site root, e.g. "/"
  const rest = (pathname) => (pathname.startsWith(root) ? pathname.slice(root.length) : "");
  const languageOf = (pathname) => (/^en(\/|$)/.test(rest(pathname)) ? "en" : "zh");

  function counterpart(lang) {
    const page = rest(location.pathname).replace(/^en(\/|$)/, "");
    return root + (lang === "en" ? "en/" : "") + page + location.search + location.hash;
  }
  function update() {
    for (const link of document.querySelectorAll(".md-select__link[hreflang]")) {
      const lang = link.getAttribute("hreflang");
      if (lang === "zh" || lang === "en") link.setAttribute("href", counterpart(lang));
    }
  }
  document$.subscribe(update);
  addEventListener("hashchange", update);

  // Capture phase on document: runs before Material's instant-navigation handler on <body>.
  document.addEventListener("click", (event) => {
    const link = event.target instanceof Element ? event.target.closest("a[href]") : null;
    if (!link || link.target || event.defaultPrevented) return;
    const url = new URL(link.href, location.href);
    if (url.origin !== location.origin || !url.pathname.startsWith(root)) return;
    if (languageOf(url.pathname) !== languageOf(location.pathname)) event.stopPropagation(); // the browser loads it
  }, true);
})();
