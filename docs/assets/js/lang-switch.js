// Point the language switcher at the same page in the other language, after every navigation.
// Material's instant navigation does not re-render the header, so links written at build time would go
// stale (see hooks/i18n_switcher.py). Every page exists in both languages under the same path — zh at the
// site root, en under en/ — and headings carry the same ids in both, so the hash is kept too.
(function () {
  const root = new URL(__md_scope.pathname, location.href).pathname; // the site root, e.g. "/"
  function counterpart(lang) {
    let rest = location.pathname.startsWith(root) ? location.pathname.slice(root.length) : "";
    rest = rest.replace(/^en(\/|$)/, "");
    return root + (lang === "en" ? "en/" : "") + rest + location.search + location.hash;
  }
  function update() {
    for (const link of document.querySelectorAll(".md-select__link[hreflang]")) {
      const lang = link.getAttribute("hreflang");
      if (lang === "zh" || lang === "en") link.setAttribute("href", counterpart(lang));
    }
  }
  document$.subscribe(update);
  addEventListener("hashchange", update);
})();
