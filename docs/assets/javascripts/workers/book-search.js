// Search in the page's language, around Material's own search worker (not a fork of it).
//
// hooks/search_index.py writes one index per language and points every page's worker here as
// book-search.js?lang=<zh|en>&worker=<Material's worker file>. This file sits next to Material's worker because
// that worker loads its lunr language files from "../lunr/", which a worker resolves against its own address.
//
// 1. Chinese pages use the index the page sends (search/search_index.json); English pages load
//    en/search/search_index.json instead. Each carries its own lunr settings.
// 2. English words match whatever their ending. The index holds Porter stems ("arithmetic" -> "arithmet"), but
//    Material adds a trailing wildcard to every query word and lunr does not stem wildcard terms, so the query
//    "arithmetic*" found nothing. Each query word becomes the common beginning of the stems of the index's words
//    that begin with it: "batching" -> "batch" (batch, batches, batched), "intensi" (still typing) -> "intens".
// 3. Chinese queries are cut into the index's own words: the fewest pieces, each a word of the index, the last
//    one possibly the start of a word still being typed. Chinese is spaced from Latin letters and digits
//    ("首token时间"), as in the index. Material's cutter never takes a whole run ("算术强度" became "算").
// 4. A query that names a glossary term (either language, abbreviation, any case or spacing) lists first the
//    section that defines the term (config.definitions, from the hook).
// 5. Results show the words the reader typed, not their stems ("Missing: …" and the ?h= highlight), and a
//    suggestion is a word of the text, not a stem.
(() => {
  const SETUP = 0, QUERY = 2, RESULT = 3;  // Material's SearchMessageType
  const params = new URLSearchParams(location.search);
  const lang = params.get("lang") === "en" ? "en" : "zh";
  const worker = params.get("worker") || "";
  if (!/^search\.[0-9a-f]+\.min\.js$/.test(worker)) throw new Error(`book-search: bad worker ${worker}`);

  // The English index, fetched while Material's worker loads.
  const own = lang === "zh" ? null
    : fetch(new URL(`../../../${lang}/search/search_index.json`, location)).then((r) => {
      if (!r.ok) throw new Error(`book-search: ${r.status} ${r.url}`);
      return r.json();
    });

  const HAN = /\p{sc=Han}/u;
  let words = new Set();     // the index's Chinese words
  let starts = new Set();    // every proper beginning of one
  let longest = 1;
  let indexing = true;        // false once the index is built: query words are not the index's words
  const stems = new Map();    // an English word of the index, as written -> its stem
  const spelled = new Map();  // a stem -> the words that have it
  let definitions = {};       // key(term) -> location of its definition
  let query = { typed: new Map(), pinned: null };  // the query being answered

  // The same as key() in hooks/search_index.py.
  const key = (text) => text.normalize("NFKC").toLowerCase().replace(/[^\p{L}\p{N}]/gu, "");

  function cut(run) {
    const n = run.length, cost = [0], from = [0];
    for (let j = 1; j <= n; j++) cost[j] = Infinity;
    for (let i = 0; i < n; i++) {
      if (cost[i] === Infinity) continue;
      for (let j = i + 1; j <= Math.min(n, i + longest); j++) {
        const piece = run.slice(i, j);
        const known = words.has(piece) || (j === n && starts.has(piece));
        if (!known && j > i + 1) continue;
        const c = cost[i] + (known ? 1 : 1.5);  // one character the index does not know: a piece of last resort
        if (c < cost[j]) { cost[j] = c; from[j] = i; }
      }
    }
    const pieces = [];
    for (let j = n; j > 0; j = from[j]) pieces.unshift(run.slice(from[j], j));
    return pieces;
  }

  function commonStart(list) {
    let start = list[0];
    for (const s of list) while (!s.startsWith(start)) start = start.slice(0, -1);
    return start;
  }

  function rewrite(text) {
    const k = key(text);
    query = { typed: new Map(), pinned: Object.hasOwn(definitions, k) ? definitions[k] : null };
    text = text.replace(/(\p{sc=Han})(?=[A-Za-z0-9])/gu, "$1 ").replace(/([A-Za-z0-9])(?=\p{sc=Han})/gu, "$1 ");
    text = text.replace(/\p{sc=Han}+/gu, (run) => cut(run).join(" "));
    if (lang === "en") {
      text = text.replace(/(?<![\w:])[A-Za-z]{3,}(?![\w:])/g, (word) => {
        const typed = word.toLowerCase();
        const found = [];
        for (const [written, stem] of stems) if (written.startsWith(typed)) found.push(stem);
        const term = found.length ? commonStart(found) : porter(new lunr.Token(typed)).toString();
        query.typed.set(term, typed);
        return term;
      });
    }
    return text;
  }

  async function prepare(message) {
    if (message.type === SETUP) {
      const index = own ? await own : message.data;
      definitions = index.config.definitions || {};
      return { ...message, data: { ...message.data, config: index.config, docs: index.docs } };
    }
    if (message.type === QUERY && typeof message.data === "string") return { ...message, data: rewrite(message.data) };
    return message;
  }

  function finish(message) {
    const { items, suggest } = message.data;
    for (const group of items) {
      for (const item of group) {
        item.terms = Object.fromEntries(Object.entries(item.terms || {}).map(([t, v]) => [query.typed.get(t) || t, v]));
      }
    }
    const at = query.pinned ? items.findIndex((group) => group.some((item) => item.location === query.pinned)) : -1;
    if (at >= 0) {
      const [group] = items.splice(at, 1);
      const [item] = group.splice(group.findIndex((i) => i.location === query.pinned), 1);
      item.score = Math.max(item.score, ...group.map((i) => i.score)) * 1.01 + 1e-6;
      group.unshift(item);
      items.unshift(group);
    }
    if (lang === "en" && suggest) {
      const last = [...query.typed.values()].pop() || "";
      message.data.suggest = suggest.map((stem) => {
        const options = [...(spelled.get(stem) || [stem])].sort((a, b) => a.length - b.length);
        return options.find((w) => w.startsWith(last)) || options[0];
      });
    }
    return message;
  }

  // Messages in order, each changed on its way in; results changed on their way out.
  const listen = self.addEventListener.bind(self);
  let queue = Promise.resolve();
  self.addEventListener = (type, listener, options) => {
    if (type !== "message") return listen(type, listener, options);
    return listen(type, (event) => {
      queue = queue.then(() => prepare(event.data)).then((data) => listener({ data }))
        .catch((err) => console.error("book-search:", err));
    }, options);
  };
  const post = self.postMessage.bind(self);
  self.postMessage = (message, ...rest) => post(message && message.type === RESULT ? finish(message) : message, ...rest);

  importScripts(worker);  // Material's worker; it sets self.lunr

  const lunr = self.lunr;
  const porter = lunr.stemmer;
  if (lang === "en") {
    // lunr's stemmer, noting each word and its stem; Material keeps "stemmer" in the pipeline (LANGUAGES in the hook).
    const noting = (token) => {
      const written = token.toString();
      const stem = porter(token).toString();
      if (indexing && !stems.has(written)) {
        stems.set(written, stem);
        if (!spelled.has(stem)) spelled.set(stem, new Set());
        spelled.get(stem).add(written);
      }
      return token;
    };
    lunr.Pipeline.registerFunction(noting, "book-stemmer");
    lunr.stemmer = noting;
  }

  // Material cuts a Chinese query by asking `piece in invertedIndex`; told that no piece is there, it keeps each
  // run whole, which is what rewrite() has left (one word per run). The index itself is untouched.
  const build = lunr.Builder.prototype.build;
  lunr.Builder.prototype.build = function () {
    const index = build.call(this);
    indexing = false;
    words = new Set(Object.keys(index.invertedIndex).filter((t) => HAN.test(t) && [...t].every((c) => HAN.test(c))));
    starts = new Set();
    for (const w of words) {
      longest = Math.max(longest, w.length);
      for (let i = 1; i < w.length; i++) starts.add(w.slice(0, i));
    }
    index.invertedIndex = new Proxy(index.invertedIndex, { has: () => false });
    return index;
  };
})();
