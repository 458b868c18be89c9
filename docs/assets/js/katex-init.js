// Render the math that pymdownx.arithmatex leaves as \( \) and \[ \] spans, with KaTeX served by this site.
// document$ is Material's page observable: it fires on the first load and after each instant navigation.
document$.subscribe(() => {
  for (const el of document.querySelectorAll(".arithmatex")) {
    renderMathInElement(el, {
      delimiters: [
        { left: "\\(", right: "\\)", display: false },
        { left: "\\[", right: "\\]", display: true },
      ],
      throwOnError: false,
    });
  }
});
