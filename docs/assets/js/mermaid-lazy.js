// Mermaid is about 3 MB of JavaScript; load it only when a page holds a diagram.
// Material renders diagrams with the global `mermaid` and, when there is none, fetches it from unpkg.com.
// The site makes no request to another host, so this stand-in takes that global: Material calls
// initialize() once and render() per diagram, and the first render() loads the site's own copy, which
// then replaces the stand-in. Pages without a diagram never load it.
(function () {
  const src = new URL("../vendor/mermaid/mermaid.min.js", document.currentScript.src).href;
  let config = {};
  let loaded = null;
  function load() {
    loaded = loaded || new Promise((resolve, reject) => {
      const script = document.createElement("script");
      script.src = src;
      script.onload = () => {
        window.mermaid.initialize(config);
        resolve(window.mermaid);
      };
      script.onerror = () => reject(new Error(`cannot load ${src}`));
      document.head.appendChild(script);
    });
    return loaded;
  }
  window.mermaid = {
    initialize(options) { config = options; },
    async render(...args) { return (await load()).render(...args); },
  };
})();
