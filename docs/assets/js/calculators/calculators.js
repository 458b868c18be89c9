// The calculators on the page: read the form, ask the Python worker (worker.js) for a view, show it.
//
// Loaded once per tab (extra_javascript, a module); Material's instant navigation keeps this context, so the
// worker started on the first calculator page is reused by every later one. hooks/calculators.py writes a tiny
// boot script (into <head> and into each widget) that starts the worker before this module runs; the module
// starts it itself if that did not happen. window.__calc holds the shared state: {worker, created, ...}.
//
// Everything shown comes from calc.web.view() in Python, as data: labels, formatted values, errors, and the
// chart as a tree of SVG nodes. It is put on the page with textContent / createElementNS only, so nothing a
// reader types or puts in the URL is ever parsed as HTML.

const calc = (window.__calc = window.__calc || {});
calc.created = calc.created || 0;

// The words this script shows (the status line) come with each widget, in its language: data-text, written by
// hooks/calculators.py from calc/strings.py, the one table of the calculators' words.
function text(widget) {
  return JSON.parse(widget.dataset.text);
}

// ------------------------------------------------------------------------------------------------------
// The worker

let nextId = 0;
const pending = new Map();

function scopeUrl(path) {
  return new URL(path, window.__md_scope || location.href).href;
}

function ensureWorker(widget) {
  const d = widget.dataset;
  if (!calc.worker) {
    calc.created += 1;
    calc.startedAt = performance.now();
    calc.worker = new Worker(scopeUrl(d.worker), { type: "module" });
    calc.worker.postMessage({ type: "init", archive: scopeUrl(d.archive), stdlib: scopeUrl(d.stdlib), lock: scopeUrl(d.lock) });
  }
  if (!calc.listening) {
    calc.listening = true;
    calc.worker.addEventListener("message", (event) => {
      const msg = event.data;
      const done = pending.get(msg.id);
      if (!done) return;
      pending.delete(msg.id);
      calc.timings = msg.timings;
      if (msg.type === "failed" && !calc.failed && !("imported" in (msg.timings || {}))) {
        calc.failed = msg.message;
        console.error("calculators: Python did not start:", msg.message);
      }
      done(msg);
    });
    calc.worker.addEventListener("error", (event) => {
      event.preventDefault();
      calc.failed = `worker: ${event.message || "could not be loaded"}`;
      console.error("calculators:", calc.failed);
      for (const [id, done] of pending) {
        pending.delete(id);
        done({ type: "failed", id, message: calc.failed });
      }
    });
  }
  return calc.worker;
}

function compute(widget, params) {
  const worker = ensureWorker(widget);
  if (calc.failed) return Promise.resolve({ type: "failed", message: calc.failed });
  const id = ++nextId;
  return new Promise((resolve) => {
    pending.set(id, resolve);
    worker.postMessage({ type: "compute", id, command: widget.dataset.command, params, lang: widget.dataset.lang });
  });
}

// ------------------------------------------------------------------------------------------------------
// Rendering (data in, DOM out; never innerHTML)

const SVG_NS = "http://www.w3.org/2000/svg";
const SVG_TAGS = new Set(["svg", "g", "title", "rect", "line", "polyline", "path", "circle", "text"]);
const SVG_ATTRS = new Set([
  "viewBox", "class", "role", "x", "y", "width", "height", "x1", "x2", "y1", "y2", "points", "d", "cx", "cy",
  "r", "text-anchor", "dominant-baseline", "transform",
]);

function svgNode(node) {
  if (!SVG_TAGS.has(node.tag)) return document.createComment("");
  const el = document.createElementNS(SVG_NS, node.tag);
  for (const [key, value] of Object.entries(node.attrs || {})) {
    if (SVG_ATTRS.has(key) || key.startsWith("data-") || key.startsWith("aria-")) el.setAttribute(key, value);
  }
  if (node.text != null) el.textContent = node.text;
  for (const child of node.children || []) el.appendChild(svgNode(child));
  return el;
}

function rawText(value) {
  if (value !== null && typeof value === "object") return JSON.stringify(value);
  return typeof value === "string" ? value : JSON.stringify(value);
}

function fillRows(tbody, rows) {
  const fresh = document.createDocumentFragment();
  for (const row of rows) {
    const tr = document.createElement("tr");
    tr.dataset.field = row.field;
    const th = document.createElement("th");
    th.scope = "row";
    th.textContent = row.label;
    const td = document.createElement("td");
    td.className = "calc__value";
    td.setAttribute("data-testid", row.field);
    td.dataset.value = rawText(row.value);
    if (row.href) {
      // A registry source: calc only sets href to an https URL from its own data (calc/web.py _link).
      const link = Object.assign(document.createElement("a"), { href: row.href, rel: "noopener", target: "_blank" });
      link.textContent = row.display;
      td.replaceChildren(link);
    } else {
      td.textContent = row.display;
    }
    const alt = document.createElement("td");
    alt.className = "calc__alt";
    alt.textContent = row.alt;
    tr.append(th, td, alt);
    fresh.appendChild(tr);
  }
  tbody.replaceChildren(fresh);
  tbody.closest("table").classList.toggle("calc__results--no-alt", rows.every((row) => !row.alt));
}

function setStatus(widget, state, text) {
  const status = widget.querySelector("[data-testid=status]");
  status.dataset.state = state;
  status.textContent = text;
  widget.dataset.state = state;
}

function showErrors(widget, errors) {
  const form = widget.querySelector("form");
  const general = [];
  for (const el of widget.querySelectorAll(".calc__error")) {
    el.hidden = true;
    el.textContent = "";
  }
  for (const el of form.querySelectorAll("[aria-invalid]")) el.removeAttribute("aria-invalid");
  for (const [name, message] of Object.entries(errors || {})) {
    const slot = widget.querySelector(`.calc__field[data-field="${CSS.escape(name)}"] .calc__error`);
    if (slot) {
      slot.textContent = message;
      slot.hidden = false;
      const input = form.elements.namedItem(name);
      if (input && input.setAttribute) input.setAttribute("aria-invalid", "true");
      const details = slot.closest("details");
      if (details) details.open = true;
    } else {
      general.push(`${name}: ${message}`);
    }
  }
  if (general.length) {
    const slot = widget.querySelector("[data-testid=error-form]");
    slot.textContent = general.join("; ");
    slot.hidden = false;
  }
}

function render(widget, reply) {
  const t = text(widget);
  const form = widget.querySelector("form");
  if (reply.type === "failed") {
    if (calc.failed) {
      form.dataset.state = "error";
      setStatus(widget, "error", t.failed + reply.message);
    } else {
      form.dataset.state = "ready";
      console.error("calculators:", reply.message);
      setStatus(widget, "error", t.bug + reply.message);
    }
    return;
  }
  form.dataset.state = "ready";
  const view = reply.view;
  if (!view.ok) {
    showErrors(widget, view.errors);
    setStatus(widget, "invalid", t.invalid);
    return;
  }
  showErrors(widget, {});
  fillRows(widget.querySelector("[data-testid=results] tbody"), view.rows);
  fillRows(widget.querySelector("[data-testid=details] tbody"), view.details);
  const warnings = widget.querySelector("[data-testid=warnings]");
  warnings.replaceChildren(...view.warnings.map((w) => Object.assign(document.createElement("li"), { textContent: w })));
  warnings.hidden = view.warnings.length === 0;
  const figure = widget.querySelector(".calc__chart");
  if (figure) figure.replaceChildren(svgNode(view.chart));
  setStatus(widget, "live", t.live);
}

// ------------------------------------------------------------------------------------------------------
// The form and the URL

function readParams(form) {
  const params = {};
  for (const el of form.elements) {
    if (el.name) params[el.name] = el.value;
  }
  return params;
}

function setValue(form, name, value) {
  const el = form.elements.namedItem(name);
  if (!el || !("value" in el)) return false;
  if (el.tagName === "SELECT" && ![...el.options].some((o) => o.value === value)) {
    const option = document.createElement("option"); // kept as typed: Python says what is wrong with it
    option.value = value;
    option.textContent = value;
    el.appendChild(option);
  }
  el.value = value;
  return true;
}

function queryFor(params, defaults) {
  const query = new URLSearchParams();
  for (const [name, value] of Object.entries(params)) {
    if (value !== (defaults[name] ?? "")) query.set(name, value);
  }
  return query.toString();
}

function writeUrl(query) {
  const url = location.pathname + (query ? `?${query}` : "") + location.hash;
  if (url !== location.pathname + location.search + location.hash) {
    history.replaceState(history.state, "", url);
    // The language switcher links carry the query too (docs/assets/js/lang-switch.js sets them per page).
    for (const link of document.querySelectorAll(".md-select__link[hreflang]")) {
      const target = new URL(link.href, location.href);
      target.search = query ? `?${query}` : "";
      link.setAttribute("href", target.pathname + target.search + target.hash);
    }
  }
}

function mount(widget) {
  if (widget.dataset.mounted) return;
  widget.dataset.mounted = "true";
  const form = widget.querySelector("form");
  const defaults = JSON.parse(widget.dataset.defaults);
  const t = text(widget);
  const sync = widget.hasAttribute("data-url-sync");

  if (sync) {
    let changed = false;
    for (const [name, value] of new URLSearchParams(location.search)) {
      if (name in defaults && setValue(form, name, value) && value !== defaults[name]) {
        changed = true;
        // a link that sets a collapsed input (config.json, "More inputs") shows it: the result depends on it
        const details = form.elements.namedItem(name).closest("details");
        if (details && value) details.open = true;
      }
    }
    if (changed) setStatus(widget, "stale", t.stale);
  }

  let inFlight = false;
  let dirty = false;
  let changedAt = null;
  async function run() {
    if (inFlight) {
      dirty = true;
      return;
    }
    inFlight = true;
    widget.dataset.busy = "true";
    const params = readParams(form);
    const asked = JSON.stringify(params);
    if (sync) writeUrl(queryFor(params, defaults));
    const reply = await compute(widget, params);
    inFlight = false;
    // never show a result for inputs the form no longer holds (an input can change without an event reaching
    // us while a slow computation, such as the planner's, is in flight)
    if (dirty || JSON.stringify(readParams(form)) !== asked) {
      dirty = false;
      run();
      return;
    }
    if (!widget.isConnected) return;
    render(widget, reply);
    widget.dataset.renders = String(Number(widget.dataset.renders || 0) + 1);
    widget.dataset.busy = "false";
    if (changedAt !== null) {
      calc.lastRecomputeMs = performance.now() - changedAt;
      changedAt = null;
    }
    if (calc.readyAt === undefined && reply.type === "result") calc.readyAt = performance.now();
  }
  const onChange = () => {
    changedAt ??= performance.now();
    run();
  };
  form.addEventListener("input", onChange); // fires for text, textarea and select alike
  form.addEventListener("submit", (event) => event.preventDefault());
  run();
}

function mountAll() {
  for (const widget of document.querySelectorAll(".calc[data-command]")) mount(widget);
}

if (typeof document$ !== "undefined") document$.subscribe(mountAll);
else mountAll();
