// The JavaScript API of tidings: `Client`, `Subscription`, `on`, `publish`, `poll`.
//
// The wasm (src/js/mod.rs, class `Core`) runs the protocols, timers and connections; this file
// is the page's side of it: it checks the options (a TypeError names a bad one), keeps the
// callbacks, listeners and promises, and builds the `meta` objects. Doing this in Rust cost the
// wasm about a quarter of its size. The build bundles this file with wasm-bindgen's glue
// (imported here as './wasm.js') into the package's minified `tidings.js`.
import init, { initSync, Core } from './wasm.js';

export { init as default, initSync };

// Which protocols this entry's wasm has. The package build defines both names per entry
// (rolldown's `--transform.define`), so the minifier drops the option handling of a protocol an
// entry leaves out; a client of that protocol gets the wasm's refusal, which names the entry
// that has it.
/* global TIDINGS_SSE, TIDINGS_BAYEUX */
const HAS_SSE = TIDINGS_SSE;
const HAS_BAYEUX = TIDINGS_BAYEUX;

const typeError = (m) => new TypeError(m);
const quote = JSON.stringify;
const isObject = (v) => typeof v == 'object' && v !== null;
// A value the page did not give: undefined (null is a value, and a bad one for most options).
const get = (o, k) => (o == null ? undefined : o[k]);
// Numbers cross into the wasm as f64; -1 is "not given".
const NONE = -1;

const COMMON = ['protocol', 'headers', 'withCredentials', 'backoff', 'throttleMs', 'poll', 'downshiftMs'];
const SSE_ONLY = ['channelParam', 'maxChannelsPerStream', 'lastEventIdInQuery', 'idleTimeoutMs', 'maxEventBytes'];
const BAYEUX_ONLY = ['transports', 'ext', 'auth'];
const EVENTS = ['state', 'error', 'reset'];
// Clients that are connecting or connected. Like an open EventSource, an active client stays
// alive without the page keeping a reference (`new Client(…).subscribe(…)` keeps delivering);
// an idle or closed one is left to the GC, which frees its wasm side.
const LIVE = new Set();
// The wasm's commands to the page (`page` in src/js/mod.rs) and the page's reports to it
// (`input` there).
const DELIVER = 16;
const READY = 17;
const REJECT = 18;
const PUBLISHED = 19;
const PUBLISH_FAILED = 20;
const STATE = 21;
const ERROR = 22;
const RESET = 23;
const AUTH = 24;
const POLL_FN = 25;
const THROW = 26;
const UNSUBSCRIBE = 16;
const CLOSE = 17;
const FLUSH = 18;
const AUTH_DONE = 19;
const POLL_DONE = 20;
// io.js's report of a stream's bytes, which goes to `Core.chunk`.
const DATA = 1;
const STATES = ['idle', 'connecting', 'push', 'polling', 'offline', 'closed'];
const TRANSPORTS = ['sse', 'websocket', 'long-polling', 'poll'];

/** Throws unless `o` is absent or an object whose keys are all in `allowed`. */
function checkKeys(o, what, allowed) {
  if (o == null) return;
  if (!isObject(o)) throw typeError(`${what} must be an object`);
  for (const k of Object.keys(o)) {
    if (!allowed.includes(k)) throw typeError(`${what}: unknown option ${quote(k)}`);
  }
}

/** A whole number from `min` to `max`, or NONE when not given. */
function number(o, key, min, max) {
  const v = get(o, key);
  if (v === undefined) return NONE;
  if (typeof v != 'number' || !Number.isInteger(v) || v < min || v > max) {
    throw typeError(`option ${key}: expected a whole number from ${min} to ${max}`);
  }
  return v;
}

function boolean(o, key) {
  const v = get(o, key);
  if (v !== undefined && typeof v != 'boolean') throw typeError(`option ${key}: expected true or false`);
  return v === true;
}

/** `headers` as names and values in turn, one per line (neither may hold a line break: fetch
 *  refuses those, and here they are refused at once rather than at the first request). */
function headers(o) {
  const h = get(o, 'headers');
  if (h === undefined) return '';
  if (!isObject(h)) throw typeError('option headers: expected an object of strings');
  const out = [];
  for (const [k, v] of Object.entries(h)) {
    if (typeof v != 'string') throw typeError(`option headers: ${quote(k)} must be a string`);
    if (/[\0\r\n]/.test(k + v)) throw typeError(`option headers: ${quote(k)} holds a line break or NUL`);
    out.push(k, v);
  }
  return out.join('\n');
}

/** `poll: { url | fn, intervalMs, pushIntervalMs }` as [url, fn index, interval, push]; a
 *  function goes into `fns`, which the wasm names by index. */
function pollSpec(o, fns) {
  const p = get(o, 'poll');
  if (p === undefined) return [undefined, NONE, NONE, NONE];
  checkKeys(p, 'option poll', ['url', 'fn', 'intervalMs', 'pushIntervalMs']);
  const url = get(p, 'url');
  const fn = get(p, 'fn');
  let index = NONE;
  if ((url === undefined) == (fn === undefined)) throw typeError('option poll: give exactly one of url and fn');
  if (url !== undefined && (typeof url != 'string' || !url || url.includes('\0'))) {
    throw typeError('option poll.url: expected a URL string');
  }
  if (fn !== undefined) {
    if (typeof fn != 'function') throw typeError('option poll.fn: expected a function');
    index = fns.push(fn) - 1;
  }
  return [url, index, number(p, 'intervalMs', 100, 86400000), number(p, 'pushIntervalMs', 0, 86400000)];
}

/** The absolute http(s) and ws(s) URLs of a Bayeux endpoint given either way. */
function bayeuxUrls(url) {
  let u;
  try {
    u = new URL(url, location.href);
  } catch {
    throw typeError(`new Client(url, …): ${quote(url)} is not a URL`);
  }
  const href = u.href;
  const rest = href.slice(u.protocol.length);
  const secure = u.protocol == 'https:' || u.protocol == 'wss:';
  if (!['http:', 'https:', 'ws:', 'wss:'].includes(u.protocol)) {
    throw typeError(`new Client(url, …): a Bayeux URL must be http(s) or ws(s), not ${u.protocol}`);
  }
  return [(secure ? 'https:' : 'http:') + rest, (secure ? 'wss:' : 'ws:') + rest];
}

/** Backs a failed callback or hook with a readable message. */
const describe = (e) => (e instanceof Error ? e.message : typeof e == 'string' ? e : 'network error');

/** A subscription: `ready` and `unsubscribe()`. */
export class Subscription {
  constructor(client, id, channel, ready) {
    this._client = client;
    this._id = id;
    this.channel = channel;
    this.ready = ready;
  }
  /** Stops deliveries (idempotent); the connection closes when the last subscription goes. */
  unsubscribe() {
    const c = this._client;
    if (!c) return;
    this._client = null;
    const s = c._subs.get(this._id);
    // Deliveries already queued for it are dropped with the callback; the entry stays only
    // until `ready` settles.
    if (s) s.gone = true;
    c._core.input(UNSUBSCRIBE, this._id);
    if (s && !s.settle) c._subs.delete(this._id);
  }
}

/** A realtime client: one connection, any number of channel subscriptions. */
export class Client {
  /** `new Client(url, options)`: connects nothing until the first `subscribe` (or `publish`).
   *  Throws a TypeError naming a bad option. */
  constructor(url, options) {
    checkKeys(options, 'Client options', [...COMMON, ...SSE_ONLY, ...BAYEUX_ONLY]);
    if (typeof url != 'string' || !url) throw typeError('new Client(url, …): url must not be empty');
    if (url.includes('\0')) throw typeError('new Client(url, …): url holds a NUL');
    const protocol = get(options, 'protocol') ?? 'sse';
    const kind = ['sse', 'bayeux', 'poll'].indexOf(protocol);
    if (kind < 0) throw typeError("option protocol: expected 'sse', 'bayeux' or 'poll'");
    if ((kind == 0 && !HAS_SSE) || (kind == 1 && !HAS_BAYEUX)) {
      throw typeError(`option protocol: this build of tidings leaves out '${protocol}' (npm: the 'tidings' entry has every protocol; Rust: the crate feature)`);
    }
    const other = [BAYEUX_ONLY, SSE_ONLY, [...SSE_ONLY, ...BAYEUX_ONLY]][kind];
    this._fns = [];
    const throttle = number(options, 'throttleMs', 0, 3600000);
    const poll = pollSpec(options, this._fns);
    const downshift = number(options, 'downshiftMs', 0, 3600000);
    if (kind == 2 && poll[0] === undefined && poll[1] == NONE) {
      throw typeError("option poll: protocol 'poll' needs poll: { url } or poll: { fn }");
    }
    const wrong = other.find((k) => get(options, k) !== undefined);
    if (wrong) throw typeError(`option ${wrong} does not apply to protocol '${protocol}'`);
    let flags = boolean(options, 'withCredentials') ? 1 : 0;
    // The URL, Bayeux's ws(s) URL and the SSE channel parameter, as `Core` takes them.
    let urls = [url, '', ''];
    let transports = 0;
    let ext;
    // The numbers `Core` takes, laid out as `mod n` in src/js/mod.rs says: throttle, downshift,
    // back-off min and max, idle timeout, max event bytes, channels per stream, then (pushed
    // below) flags, transports and the poll function, interval and push interval.
    const n = [throttle, downshift, NONE, NONE, NONE, NONE, NONE];
    if (kind == 0 && HAS_SSE) {
      const param = get(options, 'channelParam');
      if (param !== undefined && (typeof param != 'string' || !param || param.includes('\0'))) {
        throw typeError('option channelParam: expected a non-empty string');
      }
      urls[2] = param ?? '';
    }
    const h = headers(options);
    if (kind == 0 && HAS_SSE) {
      if (boolean(options, 'lastEventIdInQuery')) flags |= 2;
    }
    const b = get(options, 'backoff');
    if (b !== undefined && kind != 2) {
      checkKeys(b, 'option backoff', ['minMs', 'maxMs']);
      n[2] = number(b, 'minMs', 1, 3600000);
      n[3] = number(b, 'maxMs', 1, 3600000);
      if (n[2] > n[3] && n[3] != NONE) throw typeError('option backoff: minMs must not exceed maxMs');
    }
    if (kind == 0 && HAS_SSE) {
      n[4] = number(options, 'idleTimeoutMs', 1000, 3600000);
      n[5] = number(options, 'maxEventBytes', 1024, 256 * 1024 * 1024);
      n[6] = number(options, 'maxChannelsPerStream', 1, 1000);
    }
    this._authHook = null;
    if (kind == 1 && HAS_BAYEUX) {
      urls = [...bayeuxUrls(url), ''];
      const t = get(options, 'transports');
      if (t !== undefined) {
        const bad = () => typeError("option transports: expected a non-empty array of 'websocket' and 'long-polling'");
        if (!Array.isArray(t) || !t.length) throw bad();
        for (const name of t) {
          const digit = ['websocket', 'long-polling'].indexOf(name) + 1;
          if (!digit || String(transports).includes(String(digit))) throw bad();
          transports = transports * 10 + digit;
        }
      }
      ext = get(options, 'ext');
      if (ext !== undefined && !isObject(ext)) throw typeError('option ext: expected an object');
      const auth = get(options, 'auth');
      if (auth !== undefined) {
        if (typeof auth != 'function') throw typeError('option auth: expected a function');
        this._authHook = auth;
        flags |= 4;
      }
    }
    // The seed of the reconnect jitter last.
    n.push(flags, transports, poll[1], poll[2], poll[3], Math.random());
    this._ext = ext;
    // subscription number -> { callback, settle: [resolve, reject] until ready, gone }
    this._subs = new Map();
    this._state = 'idle';
    this._transport = null;
    // The channel of the last delivery (the wasm names it only when it changes).
    this._channel = undefined;
    this._publishes = new Map();
    this._listeners = [];
    // The wasm holds the page side through a WeakRef: a client the page dropped without
    // close() is still collected, and its wasm side freed (closing its connection).
    const ref = new WeakRef(this);
    const page = (op, args, a, b, c) => ref.deref()?._command(op, args, a, b, c);
    // What io.js reports goes to the wasm.
    const emit = (kind, id, a, b, c, d) => {
      const core = ref.deref()?._core;
      if (kind == DATA) core?.chunk(id, a);
      else core?.input(kind, id, a, b, c, d);
    };
    // The texts as one string, each ended by a NUL (none holds one: see below).
    const texts = [...urls, h, poll[0] ?? ''].map((t) => t + '\0').join('');
    this._core = new Core(page, emit, kind, texts, n, ext);
  }

  /** Subscribes `callback(data, meta)` to `channel` (Bayeux: a pattern such as `/chat/*`). An
   *  invalid channel name rejects `ready` and is reported on 'error'; nothing else is affected. */
  subscribe(channel, callback, options) {
    if (typeof channel != 'string') throw typeError('subscribe(channel, …): channel must be a string');
    if (typeof callback != 'function') throw typeError('subscribe(…, callback): callback must be a function');
    checkKeys(options, 'subscribe options', ['throttleMs', 'poll', 'hints', 'since']);
    let since = get(options, 'since');
    if (since !== undefined && typeof since != 'string') {
      if (!Number.isInteger(since) || since < 0) throw typeError('option since: expected a message id (string or whole number)');
      since = String(since);
    }
    const throttle = number(options, 'throttleMs', 0, 3600000);
    const poll = pollSpec(options, this._fns);
    const hints = boolean(options, 'hints');
    let settle;
    const ready = new Promise((resolve, reject) => (settle = [resolve, reject]));
    // A rejection the page never looks at (unsubscribe before ready) is not an unhandled
    // rejection; awaiting `ready` still sees it.
    ready.catch(() => {});
    const core = this._core;
    const id = core.subscribe(channel, throttle, hints, since, ...poll);
    if (id < 0) {
      core.input(FLUSH, 0);
      settle[1](this._thrown);
      this._emitError(this._thrown);
      return new Subscription(null, 0, channel, ready);
    }
    // Registered before the core's decisions run: it may settle `ready` at once (a channel
    // already live).
    this._subs.set(id, { callback, settle, gone: false });
    core.input(FLUSH, 0);
    return new Subscription(this, id, channel, ready);
  }

  /** Publishes `data` on `channel` (Bayeux). Resolves with the server's id for the message (when
   *  it gives one); rejects with the server's error (`err.code` 'publish'). */
  publish(channel, data) {
    if (typeof channel != 'string') throw typeError('publish(channel, …): channel must be a string');
    return new Promise((resolve, reject) => {
      const id = this._core.publish(channel, data === undefined ? null : data);
      if (id < 0) throw this._thrown;
      this._publishes.set(id, [resolve, reject]);
      this._core.input(FLUSH, 0);
    });
  }

  /** `'idle' | 'connecting' | 'push' | 'polling' | 'offline' | 'closed'`. */
  get state() {
    return this._state;
  }

  /** What carries data now: 'sse', 'websocket', 'long-polling', 'poll', or null. */
  get transport() {
    return this._transport;
  }

  /** `on('state' | 'error' | 'reset', callback)`; returns a function that removes it. */
  on(event, callback) {
    if (!EVENTS.includes(event)) {
      throw typeError(`on(event, …): unknown event ${quote(event)}; expected 'state', 'error' or 'reset'`);
    }
    if (typeof callback != 'function') throw typeError('on(…, callback): callback must be a function');
    const entry = [event, callback];
    this._listeners.push(entry);
    return () => {
      const i = this._listeners.indexOf(entry);
      if (i >= 0) this._listeners.splice(i, 1);
    };
  }

  /** Closes the connection and every subscription; pending `ready`s and publishes reject. */
  close() {
    this._core.input(CLOSE, 0);
    this._subs.clear();
  }

  /** Closes the client and frees its wasm side at once (the GC does it otherwise). */
  free() {
    if (this._freed) return;
    this.close();
    this._freed = true;
    this._core.free();
  }

  [Symbol.dispose]() {
    this.free();
  }

  _emit(event, a, b) {
    const targets = this._listeners.filter((l) => l[0] == event);
    for (const [, f] of targets) {
      try {
        f(a, b);
      } catch (e) {
        console.error('tidings: a listener threw', e);
      }
    }
    return targets.length;
  }

  _emitError(err) {
    if (!this._emit('error', err)) console.warn('tidings:', err);
  }

  // What the wasm tells the page (`page` in src/js/mod.rs): `args` the command's texts and
  // values, `a`, `b`, `c` its numbers.
  _command(op, args, a, b, c) {
    // An error: code and message, `b` the HTTP status (NaN: none), `c` whether it is retried.
    const err = () => this._fail(args[0], args[1], b === b ? b : undefined, !!c);
    switch (op) {
      case DELIVER: {
        let i = 1;
        if (c & 2) this._channel = args[i++];
        // The id's text, or the counter it is (NaN: no id).
        const id = c & 4 ? args[i++] : b === b ? String(b) : undefined;
        return this._deliver(a, args[0], c & 1, id, c & 8 ? args[i] : 'message', c & 16, Math.floor(c / 32));
      }
      case READY:
        return this._settle(a);
      case REJECT:
        return this._settle(a, err());
      case PUBLISHED:
        return this._published(a, b ? args[0] : undefined);
      case PUBLISH_FAILED:
        return this._published(a, undefined, err());
      case STATE:
        return this._setState(STATES[a], TRANSPORTS[b] ?? null);
      case ERROR:
        return this._emitError(err());
      case RESET:
        return this._emit('reset', args);
      case AUTH:
        return this._auth();
      case POLL_FN:
        return this._poll(a, b);
      case THROW:
        this._thrown = err();
    }
  }

  _deliver(sub, data, text, id, event, poll, coalesced) {
    const s = this._subs.get(sub);
    if (!s || s.gone) return;
    if (text) {
      try {
        data = JSON.parse(data);
      } catch {
        // Not JSON: the text itself.
      }
    }
    const channel = this._channel;
    try {
      s.callback(data, { channel, id, event, via: poll ? 'poll' : 'push', coalesced });
    } catch (e) {
      const err = this._fail('callback', `a callback for ${channel} threw`, undefined, false);
      err.cause = e;
      this._emitError(err);
    }
  }

  _settle(sub, err) {
    const s = this._subs.get(sub);
    if (!s || !s.settle) return;
    const [resolve, reject] = s.settle;
    s.settle = null;
    if (err) reject(err);
    else resolve();
    if (s.gone) this._subs.delete(sub);
  }

  _published(id, serverId, err) {
    const p = this._publishes.get(id);
    if (!p) return;
    this._publishes.delete(id);
    if (err) p[1](err);
    else p[0](serverId);
  }

  _setState(state, transport) {
    this._state = state;
    this._transport = transport;
    if (state == 'idle' || state == 'closed') LIVE.delete(this);
    else LIVE.add(this);
    this._emit('state', state, transport);
  }

  _auth() {
    this._later(this._authHook, (v) => this._core.input(AUTH_DONE, 0, true, isObject(v) ? v : this._ext), (e) =>
      this._core.input(AUTH_DONE, 0, false, describe(e)),
    );
  }

  _poll(id, index) {
    this._later(this._fns[index], (v) => this._core.input(POLL_DONE, id, true, v), (e) =>
      this._core.input(POLL_DONE, id, false, `the poll function failed: ${describe(e)}`),
    );
  }

  /** Calls the page's `f` (which may return a promise) and hands the outcome to `ok` or
   *  `failed`, unless the client was freed meanwhile. */
  _later(f, ok, failed) {
    let p;
    try {
      p = Promise.resolve(f());
    } catch (e) {
      p = Promise.reject(e);
    }
    p.then(
      (v) => this._freed || ok(v),
      (e) => this._freed || failed(e),
    );
  }

  _fail(code, message, status, retrying) {
    return Object.assign(new Error(message), status === undefined ? { code } : { code, status }, { retrying });
  }
}

/** What `poll()` returns: `stop()`, `state`, `transport`, `ready`, `on(…)`. */
export class Poller {
  constructor(client, sub) {
    this._client = client;
    this._sub = sub;
    this.ready = sub.ready;
  }
  /** Stops polling and push for good. */
  stop() {
    this._sub.unsubscribe();
    this._client.close();
  }
  get state() {
    return this._client.state;
  }
  get transport() {
    return this._client.transport;
  }
  on(event, callback) {
    return this._client.on(event, callback);
  }
}

/**
 * `poll(url, callback, { intervalMs, pushIntervalMs, channel, sse | bayeux, throttleMs, headers,
 * withCredentials, downshiftMs, backoff }, listeners?)`: the one-line replacement for a page's
 * `setInterval` AJAX loop. `listeners` (used by the script-tag loader) are `{ event, callback }`
 * registered before anything starts; each gets its remover as `off`.
 */
export function poll(url, callback, options, listeners) {
  checkKeys(options, 'poll options', [
    'intervalMs', 'pushIntervalMs', 'channel', 'sse', 'bayeux', 'throttleMs', 'headers', 'withCredentials',
    'downshiftMs', 'backoff',
  ]);
  const spec = { url };
  for (const k of ['intervalMs', 'pushIntervalMs']) if (get(options, k) !== undefined) spec[k] = options[k];
  const channel = get(options, 'channel');
  const sse = get(options, 'sse');
  const bayeux = get(options, 'bayeux');
  if (sse !== undefined && bayeux !== undefined) throw typeError('poll options: give sse or bayeux, not both');
  const endpoint = sse ?? bayeux;
  if ((endpoint !== undefined) != (channel !== undefined)) {
    throw typeError('poll options: channel and an sse or bayeux URL go together');
  }
  if (endpoint !== undefined && typeof endpoint != 'string') {
    throw typeError('poll options: the sse or bayeux URL must be a string');
  }
  const clientOptions = { protocol: sse !== undefined ? 'sse' : bayeux !== undefined ? 'bayeux' : 'poll', poll: spec };
  for (const k of ['headers', 'withCredentials', 'throttleMs', 'downshiftMs', 'backoff']) {
    if (get(options, k) !== undefined) clientOptions[k] = options[k];
  }
  const client = new Client(endpoint ?? url, clientOptions);
  for (const l of Array.isArray(listeners) ? listeners : []) l.off = client.on(l.event, l.callback);
  // A poll-only client still names its subscription; the name is only a label then.
  const sub = client.subscribe(channel ?? 'poll', callback, { hints: channel !== undefined });
  return new Poller(client, sub);
}
