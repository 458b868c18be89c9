// The calculators' Python: a module Web Worker that runs calc/ under the site's own Pyodide.
//
// Started once per tab by the first page that holds a calculator (see hooks/calculators.py) and reused across
// Material's instant navigation. Messages:
//   in:  {type: "init", archive, stdlib, lock}    the calc archive, the compiled stdlib and an empty package
//                                                 index (absolute URLs; see hooks/calculators.py)
//        {type: "compute", id, command, params, lang}
//   out: {type: "result", id, view, timings}       view: what calc.web.view() returns
//        {type: "failed", id, message, timings}    Python did not start, or calc raised something unexpected
// The worker sends nothing unasked, so a page that attaches its listener late loses no message.
import { loadPyodide } from "../../vendor/pyodide/pyodide.mjs";

const t0 = performance.now();
const timings = { origin: Math.round(performance.timeOrigin) };
let booting = null;
let pyodide = null;
let viewJson = null;

function mark(name) {
  timings[name] = Math.round(performance.now() - t0);
}

async function boot({ archive, stdlib, lock }) {
  const archiveBytes = fetch(archive).then((r) => {
    if (!r.ok) throw new Error(`${archive}: HTTP ${r.status}`);
    return r.arrayBuffer();
  });
  let sitePackages = null;
  mark("start"); // this module and Pyodide's loader are running
  pyodide = await loadPyodide({
    indexURL: new URL("../../vendor/pyodide/", import.meta.url).href,
    stdLibURL: stdlib,
    lockFileURL: lock,
    fsInit: async (_fs, info) => {
      sitePackages = info.sitePackages;
      mark("wasm");
    },
    stdout: () => {},
    stderr: (line) => console.warn("calc (python):", line),
  });
  mark("python");
  pyodide.unpackArchive(await archiveBytes, "zip", { extractDir: sitePackages });
  mark("unpacked");
  viewJson = pyodide.pyimport("calc.web").view_json;
  mark("imported");
}

self.onmessage = async (event) => {
  const msg = event.data;
  if (msg.type === "init") {
    booting ??= boot(msg);
    return;
  }
  if (msg.type === "modules") {
    // for scripts/bench_calculators.py: the stdlib modules imported from source (compiled in the browser)
    await booting;
    const names = pyodide.runPython(
      "import sys\n" +
      "[n for n, m in list(sys.modules.items()) if (getattr(getattr(m, '__spec__', None), 'origin', '') or '').endswith('.py')" +
      " and '.zip/' in m.__spec__.origin]",
    ).toJs();
    self.postMessage({ type: "modules", id: msg.id, fromSource: names });
    return;
  }
  if (msg.type !== "compute") return;
  try {
    if (!booting) throw new Error("the worker was not initialised");
    await booting;
    const started = performance.now();
    const view = JSON.parse(viewJson(JSON.stringify({ command: msg.command, params: msg.params, lang: msg.lang })));
    self.postMessage({ type: "result", id: msg.id, view, timings: { ...timings, compute: performance.now() - started } });
  } catch (err) {
    self.postMessage({ type: "failed", id: msg.id, message: String(err && err.message ? err.message : err), timings });
  }
};
