// A new page opens at its top, also when the link was clicked while the old page was still scrolling.
//
// Material's instant navigation saves the scroll offset into history.state 100 ms after the last scroll event
// (debounced), with history.replaceState({x, y}, ""). When a link is clicked sooner (a trackpad's momentum
// scroll is still running, say) and the new page takes longer than that to arrive, the save lands after the
// click's pushState, on the new history entry, and Material then "restores" the old page's offset on the new
// page. Between a pushState and the arrival of the page it announced, an offset save can only belong to the
// page being left, so it is dropped. Back and forward (popstate) are untouched.
(function () {
  const push = history.pushState.bind(history);
  const replace = history.replaceState.bind(history);
  let arriving = false;
  history.pushState = function (state, unused, url) {
    arriving = true;
    return push(state, unused, url);
  };
  history.replaceState = function (state, unused, url) {
    const offsetSave = url === undefined && state !== null && typeof state === "object" && "y" in state;
    if (arriving && offsetSave) return undefined;
    return replace(state, unused, url);
  };
  document$.subscribe(() => { arriving = false; });
  addEventListener("popstate", () => { arriving = false; });
})();
