// The browser I/O of one client: fetch streams, Bayeux POSTs, poll GETs, WebSockets, one timer
// and the page listeners. The Rust driver (src/web/mod.rs) decides what to start and stop and
// tells this module by commands: `s(text)` and `v(value)` give the next command's arguments,
// `c(op, a, b, c)` runs it. What happened is reported through one function, `emit(kind, id, a,
// b, c, d)`. Commands from 16 on are the page's (the JavaScript API's, src/js/mod.rs): they go
// to `page(op, args, a, b, c)`. What only one protocol needs is in its own module (sse_io.js:
// streams; bayeux_io.js: POSTs, WebSockets and the parsing of their messages), so a build
// without that protocol carries none of it.
//
// Written in JavaScript rather than with web-sys: the async readers, closures and bindings cost
// the wasm about a fifth of its size in Rust. Three imports carry every command, so the glue
// has one small function for each of those rather than one per call. Nothing here decides
// anything.
//
// Ownership: `close` aborts every request, closes every socket, clears the timer and removes
// the listeners, and no event is reported after it (the driver drops its callback then).

// What `emit` reports (kept in step with `event` in src/web/mod.rs).
export const RESPONSE = 0; // a stream's response: a = status, b = content type
export const DATA = 1; // a stream's bytes: a = Uint8Array
export const END = 2; // a stream ended
export const FAILED = 3; // a stream failed: a = message
export const HTTP = 4; // a POST's answer: a = status, b = its messages (see `parse`), c = why none
export const HTTP_FAILED = 5; // a POST failed: a = message
const POLL = 6; // a poll's answer: a = status, b = ETag, c = Last-Modified, d = the body sorted
const POLL_FAILED = 7; // a poll failed: a = message
export const WS_OPEN = 8;
export const WS_MESSAGE = 9; // a = the frame's messages (see `parse`), b = why none
export const WS_CLOSED = 10;
const TIMER = 11;
const ONLINE = 12; // a = whether online
const VISIBLE = 13; // a = whether visible
const SHOWN = 14; // back from the back/forward cache
const HIDDEN = 15; // a = whether into the back/forward cache (else: leaving for good)

// The commands (kept in step with `op` in src/web/mod.rs).
const ABORT = 0; // a = a stream's or a POST's id
const START_POLL = 1; // a = id; arguments: URL, headers
const ABORT_POLL = 2; // a = id
const CLOSE_SOCKET = 3; // a = id
const SET_TIMER = 4; // a = ms; negative: clear
const WATCH = 5; // a = 1: listen to the page, 0: stop; returns the page facts (see `watch`)
const CLOSE = 6;

export const describe = (e) => (e instanceof Error ? e.message : typeof e == 'string' ? e : 'network error');

export const isObject = (v) => typeof v == 'object' && v !== null;

// A poll body for the wasm (src/web/poll.rs): tidings-relay's `{messages, last, reset}` as
// [text, last, reset, id, data, id, data, …]; anything else as [text, value], delivered whole
// (the text tells the same body again).
const sortBody = (text, v) => {
  if (isObject(v) && typeof v.last == 'string' && Array.isArray(v.messages)) {
    const out = [text, v.last, !!v.reset];
    for (const m of v.messages) {
      if (!isObject(m) || typeof m.id != 'string') return [text, v];
      out.push(m.id, m.data === undefined ? null : m.data);
    }
    return out;
  }
  return [text, v];
};

/** A body's text, sorted: parsed when it is JSON, else the text itself. */
export const textBody = (text) => {
  let v = text;
  try {
    v = JSON.parse(text);
  } catch {
    // Not JSON: the text itself.
  }
  return sortBody(text, v);
};

/** What a page poll function returned, sorted like a body. */
export const valueBody = (v) => {
  let text = '';
  try {
    text = JSON.stringify(v) ?? '';
  } catch {
    // Not JSON-able (a cycle, a BigInt): every answer then counts as new.
  }
  return sortBody(text, v);
};

export class Io {
  // Members with a leading `_` are internal (sse_io.js and bayeux_io.js use some): the
  // package build mangles their names, which minifies smaller than `#` private members.
  constructor(emit, credentials, page) {
    this._emit = emit;
    this._credentials = credentials;
    this._page = page;
    this._args = [];
    // id -> AbortController of streams and POSTs (one protocol per client: ids never mix),
    // and of polls (their own ids, in _polls).
    this._requests = new Map();
    this._polls = new Map();
    this._sockets = new Map();
    // `_timer`, `_listeners` and `_closed` start unset: no timer, no listeners, not closed.
  }

  /** A text argument of the next command. */
  s(text) {
    this._args.push(text);
  }

  /** A value argument of the next command. */
  v(value) {
    this._args.push(value);
  }

  /** The arguments given since the last command. */
  take() {
    const args = this._args;
    this._args = [];
    return args;
  }

  /** Runs command `op` (see the list above). */
  c(op, a, b, c) {
    const args = this.take();
    switch (op) {
      case ABORT:
        return this._abort(this._requests, a);
      case START_POLL:
        return this._poll(a, args[0], args[1]);
      case ABORT_POLL:
        return this._abort(this._polls, a);
      case CLOSE_SOCKET:
        return this._drop(a)?.close();
      case SET_TIMER:
        clearTimeout(this._timer);
        this._timer = a < 0 ? 0 : setTimeout(() => this._report(TIMER, 0), a);
        return;
      case WATCH:
        return this._watch(a);
      case CLOSE:
        return this._close();
      default:
        return this._page(op, args, a, b, c);
    }
  }

  _report(...report) {
    if (!this._closed) this._emit(...report);
  }

  // The init of every fetch: the HTTP cache bypassed (the protocols' ids and validators decide
  // what is new), aborted through `ctrl`, cookies when asked for; `headers` are names and values
  // in turn, one per line (a later one of the same name wins).
  _fetch(map, id, url, method, headers, body) {
    const ctrl = new AbortController();
    map.set(id, ctrl);
    const h = {};
    const lines = headers ? headers.split('\n') : [];
    for (let i = 0; i + 1 < lines.length; i += 2) h[lines[i]] = lines[i + 1];
    const init = { method, headers: h, cache: 'no-store', signal: ctrl.signal, body };
    if (this._credentials) init.credentials = 'include';
    // Still wanted: not aborted, not superseded, client not closed.
    const live = () => map.get(id) === ctrl && !this._closed;
    // [live, the response]: fetch() itself may throw (a bad URL), reported on a later turn like
    // any failure.
    return [live, Promise.resolve().then(() => fetch(url, init))];
  }

  // A conditional poll GET; the body is read unless the answer is 304 or not 2xx.
  _poll(id, url, headers) {
    const [live, response] = this._fetch(this._polls, id, url, 'GET', headers);
    const done = (kind, a, b, c, d) => {
      if (!live()) return;
      this._polls.delete(id);
      this._report(kind, id, a, b, c, d);
    };
    response
      .then((r) => {
        const h = r.headers;
        const answer = (body) => done(POLL, r.status, h.get('etag'), h.get('last-modified'), body);
        if (r.status >= 200 && r.status < 300) return r.text().then((t) => answer(textBody(t)));
        // An unread body holds its connection (six per host in HTTP/1.1): let it go.
        r.body?.cancel().catch(() => {});
        answer();
      })
      .catch((e) => done(POLL_FAILED, describe(e)));
  }

  // Stops request `id` of `map`; nothing more is reported for it.
  _abort(map, id) {
    map.get(id)?.abort();
    map.delete(id);
  }

  // Forgets socket `id` (silently: its handlers go) and returns it.
  _drop(id) {
    const ws = this._sockets.get(id);
    if (ws) {
      ws.onopen = ws.onmessage = ws.onclose = null;
      this._sockets.delete(id);
    }
    return ws;
  }

  // Listens to the page (`on`) or stops. Returns 1 when the page is hidden now, plus 2 when
  // the browser is offline now (a client started in a hidden tab must know at once).
  _watch(on) {
    const doc = globalThis.document;
    if (!on) {
      for (const [target, kind, f] of this._listeners || []) target.removeEventListener(kind, f);
      this._listeners = null;
      return 0;
    }
    if (!this._listeners) {
      this._listeners = [
        [globalThis, 'online', () => this._report(ONLINE, 0, true)],
        [globalThis, 'offline', () => this._report(ONLINE, 0, false)],
        [globalThis, 'pageshow', (e) => e.persisted && this._report(SHOWN, 0)],
        // Into the back/forward cache: the driver closes everything so the page stays eligible;
        // leaving for good: it closes, which says goodbye to a Bayeux server.
        [globalThis, 'pagehide', (e) => this._report(HIDDEN, 0, !!e.persisted)],
      ];
      if (doc) this._listeners.push([doc, 'visibilitychange', () => this._report(VISIBLE, 0, !doc.hidden)]);
      for (const [target, kind, f] of this._listeners) target.addEventListener(kind, f);
    }
    return (doc && doc.hidden ? 1 : 0) | (globalThis.navigator?.onLine === false ? 2 : 0);
  }

  // Stops everything; nothing is reported after this.
  _close() {
    this._closed = true;
    for (const c of this._requests.values()) c.abort();
    for (const c of this._polls.values()) c.abort();
    for (const id of [...this._sockets.keys()]) this.c(CLOSE_SOCKET, id);
    this._requests.clear();
    this._polls.clear();
    this.c(SET_TIMER, -1);
    this._watch(false);
  }
}
