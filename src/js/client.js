// The JavaScript API of tidings: `Client`, `Subscription`, `on`, `publish`, `poll`.
//
// The wasm (src/js/mod.rs, a `Core` per client) runs the protocols, timers and connections; this file
// is the page's side of it: it checks the options (a TypeError names a bad one), keeps the
// callbacks, listeners and promises, and builds the `meta` objects. Doing this in Rust cost the
// wasm about a quarter of its size. The build bundles this file with the glue (`./wasm.js`,
// also hand-written) and the I/O modules into the package's minified `tidings.js`.
//
// Written for the minified size, which every page pays: members with a leading `_` are
// internal and the build mangles their names; small steps used once are inlined where they are
// used; lists of names are written as one string.
import init, { initSync, make, input, chunk, subscribe, publish, free } from './wasm.js';
// io.js's helpers.
import { describe, isObject } from '../web/io.js';

export { init as default, initSync };

// Which protocols this entry's wasm has. The package build defines both names per entry, so
// the minifier drops the option handling of a protocol an entry leaves out; a client of that
// protocol gets the wasm's refusal, which names the entry that has it.
/* global TIDINGS_SSE, TIDINGS_BAYEUX */
const HAS_SSE = TIDINGS_SSE;
const HAS_BAYEUX = TIDINGS_BAYEUX;

/** Throws the TypeError that names a bad argument or option. */
const bad = (message) => {
  throw new TypeError(message);
};
const quote = JSON.stringify;
const words = (list) => list.split(' ');
// An option the page did not give is undefined (null is a value, and a bad one for most
// options); `o?.[key]` reads one of an absent `o` as not given.
// Numbers cross into the wasm as f64; -1 is "not given".
const NONE = -1;
const HOUR = 3600000;
const DAY = 86400000;

const SSE_ONLY = words('channelParam maxChannelsPerStream lastEventIdInQuery idleTimeoutMs maxEventBytes');
const BAYEUX_ONLY = words('transports ext auth');
const EITHER = [...SSE_ONLY, ...BAYEUX_ONLY];
// The client options `poll()` hands on as they are.
const PASSED = 'headers withCredentials throttleMs downshiftMs backoff';
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
// By number; idle (0) and closed (5) are the states of a client that is not live.
const STATES = words('idle connecting push polling offline closed');
const TRANSPORTS = words('sse websocket long-polling poll');

/** Throws unless `o` is absent or an object whose keys are all in `allowed`. */
function checkKeys(o, what, allowed) {
  if (o == null) return;
  if (!isObject(o)) bad(`${what} must be an object`);
  for (const k of Object.keys(o)) {
    if (!allowed.includes(k)) bad(`${what}: unknown option ${quote(k)}`);
  }
}

/** A whole number from `min` to `max`, or NONE when not given. */
function number(o, key, min, max) {
  const v = o?.[key];
  if (v === undefined) return NONE;
  if (!Number.isInteger(v) || v < min || v > max) {
    bad(`option ${key}: expected a whole number from ${min} to ${max}`);
  }
  return v;
}

function boolean(o, key) {
  const v = o?.[key];
  if (v !== undefined && typeof v != 'boolean') bad(`option ${key}: expected true or false`);
  return v === true;
}

/** Whether `v`, when given, is not a non-empty string without NUL (the texts cross into the
 *  wasm NUL-separated). */
const badText = (v) => v !== undefined && (typeof v != 'string' || !v || v.includes('\0'));

/** `headers` as names and values in turn, one per line (neither may hold a line break: fetch
 *  refuses those, and here they are refused at once rather than at the first request). */
function headers(o) {
  const h = o?.headers;
  if (h === undefined) return '';
  if (!isObject(h)) bad('option headers: expected an object of strings');
  const out = [];
  for (const [k, v] of Object.entries(h)) {
    if (typeof v != 'string') bad(`option headers: ${quote(k)} must be a string`);
    if (/[\0\r\n]/.test(k + v)) bad(`option headers: ${quote(k)} holds a line break or NUL`);
    out.push(k, v);
  }
  return out.join('\n');
}

/** `poll: { url | fn, intervalMs, pushIntervalMs }` as [url, fn index, interval, push]; a
 *  function goes into `fns`, which the wasm names by index. */
function pollSpec(o, fns) {
  const p = o?.poll;
  if (p === undefined) return [undefined, NONE, NONE, NONE];
  checkKeys(p, 'option poll', words('url fn intervalMs pushIntervalMs'));
  const url = p?.url;
  const fn = p?.fn;
  if ((url === undefined) == (fn === undefined)) bad('option poll: give exactly one of url and fn');
  if (badText(url)) bad('option poll.url: expected a URL string');
  if (fn !== undefined && typeof fn != 'function') bad('option poll.fn: expected a function');
  return [url, fn ? fns.push(fn) - 1 : NONE, number(p, 'intervalMs', 100, DAY), number(p, 'pushIntervalMs', 0, DAY)];
}

/** The absolute http(s) and ws(s) URLs of a Bayeux endpoint given either way. */
function bayeuxUrls(url) {
  let u;
  try {
    u = new URL(url, location.href);
  } catch {
    bad(`new Client(url, …): ${quote(url)} is not a URL`);
  }
  const scheme = u.protocol;
  const secure = /^(http|ws)(s?):$/.exec(scheme);
  if (!secure) bad(`new Client(url, …): a Bayeux URL must be http(s) or ws(s), not ${scheme}`);
  const rest = u.href.slice(scheme.length);
  return [`http${secure[2]}:${rest}`, `ws${secure[2]}:${rest}`];
}

/** A TidingsError: `status` only when a response caused it. */
const fail = (code, message, status, retrying) => {
  const e = new Error(message);
  e.code = code;
  if (status !== undefined) e.status = status;
  e.retrying = retrying;
  return e;
};

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
    if (s) s._gone = true;
    input(c, UNSUBSCRIBE, this._id);
    if (s && !s._settle) c._subs.delete(this._id);
  }
}

/** A realtime client: one connection, any number of channel subscriptions. */
export class Client {
  /** `new Client(url, options)`: connects nothing until the first `subscribe` (or `publish`).
   *  Throws a TypeError naming a bad option. */
  constructor(url, options) {
    checkKeys(options, 'Client options', [...words(`protocol poll ${PASSED}`), ...EITHER]);
    if (typeof url != 'string' || !url) bad('new Client(url, …): url must not be empty');
    if (url.includes('\0')) bad('new Client(url, …): url holds a NUL');
    const protocol = options?.protocol ?? 'sse';
    const kind = ['sse', 'bayeux', 'poll'].indexOf(protocol);
    if (kind < 0) bad("option protocol: expected 'sse', 'bayeux' or 'poll'");
    if ((kind == 0 && !HAS_SSE) || (kind == 1 && !HAS_BAYEUX)) {
      bad(`option protocol: this build of tidings leaves out '${protocol}' (npm: the 'tidings' entry has every protocol; Rust: the crate feature)`);
    }
    const sse = HAS_SSE && kind == 0;
    const throttle = number(options, 'throttleMs', 0, HOUR);
    const poll = pollSpec(options, (this._fns = []));
    const downshift = number(options, 'downshiftMs', 0, HOUR);
    if (kind == 2 && poll[0] === undefined && poll[1] == NONE) {
      bad("option poll: protocol 'poll' needs poll: { url } or poll: { fn }");
    }
    const wrong = [BAYEUX_ONLY, SSE_ONLY, EITHER][kind].find((k) => options?.[k] !== undefined);
    if (wrong) bad(`option ${wrong} does not apply to protocol '${protocol}'`);
    let flags = boolean(options, 'withCredentials') ? 1 : 0;
    // The URL, Bayeux's ws(s) URL and the SSE channel parameter, as `Core` takes them.
    let urls = [url, '', ''];
    let transports = '';
    let ext;
    // The numbers `Core` takes, laid out as `mod n` in src/js/mod.rs says: throttle, downshift,
    // back-off min and max, idle timeout, max event bytes, channels per stream, then (pushed
    // below) flags, transports and the poll function, interval and push interval.
    const n = [throttle, downshift, NONE, NONE, NONE, NONE, NONE];
    if (sse) {
      const param = options?.channelParam;
      if (badText(param)) bad('option channelParam: expected a non-empty string');
      urls[2] = param ?? '';
    }
    const h = headers(options);
    if (sse && boolean(options, 'lastEventIdInQuery')) flags |= 2;
    const b = options?.backoff;
    if (b !== undefined && kind != 2) {
      checkKeys(b, 'option backoff', ['minMs', 'maxMs']);
      n[2] = number(b, 'minMs', 1, HOUR);
      n[3] = number(b, 'maxMs', 1, HOUR);
      if (n[2] > n[3] && n[3] != NONE) bad('option backoff: minMs must not exceed maxMs');
    }
    if (sse) {
      n[4] = number(options, 'idleTimeoutMs', 1000, HOUR);
      n[5] = number(options, 'maxEventBytes', 1024, 256 * 1024 * 1024);
      n[6] = number(options, 'maxChannelsPerStream', 1, 1000);
    }
    if (HAS_BAYEUX && kind == 1) {
      urls = [...bayeuxUrls(url), ''];
      const t = options?.transports;
      if (t !== undefined) {
        // Each transport once, as a digit in order of preference.
        const message = "option transports: expected a non-empty array of 'websocket' and 'long-polling'";
        if (!Array.isArray(t) || !t.length) bad(message);
        for (const name of t) {
          const digit = ['websocket', 'long-polling'].indexOf(name) + 1;
          if (!digit || transports.includes(digit)) bad(message);
          transports += digit;
        }
      }
      ext = options?.ext;
      if (ext !== undefined && !isObject(ext)) bad('option ext: expected an object');
      const auth = options?.auth;
      if (auth !== undefined) {
        if (typeof auth != 'function') bad('option auth: expected a function');
        this._authHook = auth;
        flags |= 4;
      }
    }
    // The seed of the reconnect jitter last.
    n.push(flags, +transports, poll[1], poll[2], poll[3], Math.random());
    this._ext = ext;
    // subscription number -> { _callback, _settle: [resolve, reject] until ready, _gone }
    this._subs = new Map();
    this._state = 'idle';
    this._transport = null;
    this._publishes = new Map();
    this._listeners = [];
    // The wasm holds the page side through a WeakRef: a client the page dropped without
    // close() is still collected, and its wasm side freed (closing its connection).
    const ref = new WeakRef(this);
    const page = (...command) => ref.deref()?._command(...command);
    // What io.js reports goes to the wasm.
    const emit = (kind, id, a, ...rest) => {
      const client = ref.deref();
      if (client) kind == DATA ? chunk(client, id, a) : input(client, kind, id, a, ...rest);
    };
    // The texts as one string, each ended by a NUL (none holds one: see above).
    const texts = [...urls, h, poll[0] ?? '', ''].join('\0');
    make(this, page, emit, kind, texts, n, ext);
  }

  /** Subscribes `callback(data, meta)` to `channel` (Bayeux: a pattern such as `/chat/*`). An
   *  invalid channel name rejects `ready` and is reported on 'error'; nothing else is affected. */
  subscribe(channel, callback, options) {
    if (typeof channel != 'string') bad('subscribe(channel, …): channel must be a string');
    if (typeof callback != 'function') bad('subscribe(…, callback): callback must be a function');
    checkKeys(options, 'subscribe options', words('throttleMs poll hints since'));
    let since = options?.since;
    if (since !== undefined) {
      // An id never holds a NUL (SSE drops such an id; the texts cross NUL-separated).
      if (typeof since == 'string' ? since.includes('\0') : !Number.isInteger(since) || since < 0) {
        bad('option since: expected a message id (string or whole number)');
      }
      since = String(since);
    }
    const throttle = number(options, 'throttleMs', 0, HOUR);
    const poll = pollSpec(options, this._fns);
    const hints = boolean(options, 'hints');
    let settle;
    const ready = new Promise((resolve, reject) => (settle = [resolve, reject]));
    // A rejection the page never looks at (unsubscribe before ready) is not an unhandled
    // rejection; awaiting `ready` still sees it.
    ready.catch(() => {});
    const [url, ...numbers] = poll;
    const id = subscribe(this, `${since ?? ''}\0${url ?? ''}\0${channel}`, throttle, hints | (since !== undefined) << 1, ...numbers);
    // Registered before the core's decisions run: it may settle `ready` at once (a channel
    // already live).
    if (id >= 0) this._subs.set(id, { _callback: callback, _settle: settle });
    input(this, FLUSH, 0);
    if (id < 0) {
      settle[1](this._thrown);
      this._emitError(this._thrown);
    }
    return new Subscription(id >= 0 && this, id, channel, ready);
  }

  /** Publishes `data` on `channel` (Bayeux). Resolves with the server's id for the message (when
   *  it gives one); rejects with the server's error (`err.code` 'publish'). */
  publish(channel, data) {
    if (typeof channel != 'string') bad('publish(channel, …): channel must be a string');
    return new Promise((resolve, reject) => {
      // A build without Bayeux has no `publish` in its wasm: the refusal the core gives for
      // SSE and polling is made here.
      if (!HAS_BAYEUX) {
        throw fail(
          'invalid-option',
          "publish needs protocol 'bayeux' (SSE and polling are one-way)",
          undefined,
          false,
        );
      }
      const id = publish(this, channel, data ?? null);
      if (id < 0) throw this._thrown;
      this._publishes.set(id, [resolve, reject]);
      input(this, FLUSH, 0);
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
    if (!words('state error reset').includes(event)) {
      bad(`on(event, …): unknown event ${quote(event)}; expected 'state', 'error' or 'reset'`);
    }
    if (typeof callback != 'function') bad('on(…, callback): callback must be a function');
    const entry = [event, callback];
    const listeners = this._listeners;
    listeners.push(entry);
    return () => {
      const i = listeners.indexOf(entry);
      if (i >= 0) listeners.splice(i, 1);
    };
  }

  /** Closes the connection and every subscription; pending `ready`s and publishes reject. */
  close() {
    input(this, CLOSE, 0);
    this._subs.clear();
  }

  /** Closes the client and frees its wasm side at once (the GC does it otherwise). */
  free() {
    if (this._freed) return;
    this.close();
    this._freed = true;
    free(this);
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
    const subs = this._subs;
    const s = subs.get(a);
    // NaN: none (an error's status, a message's counter id).
    const number = b === b ? b : undefined;
    // An error: code and message, `b` the HTTP status, `c` whether it is retried.
    const err = () => fail(args[0], args[1], number, !!c);
    switch (op) {
      case DELIVER: {
        let i = 1;
        // The wasm names the channel only when it changes, even for a subscription now gone.
        if (c & 2) this._channel = args[i++];
        // The id's text, or the counter it is.
        const id = c & 4 ? args[i++] : number?.toString();
        const event = c & 8 ? args[i] : 'message';
        if (!s || s._gone) return;
        let data = args[0];
        if (c & 1) {
          try {
            data = JSON.parse(data);
          } catch {
            // Not JSON: the text itself.
          }
        }
        const channel = this._channel;
        try {
          s._callback(data, { channel, id, event, via: c & 16 ? 'poll' : 'push', coalesced: Math.floor(c / 32) });
        } catch (e) {
          const error = fail('callback', `a callback for ${channel} threw`, undefined, false);
          error.cause = e;
          this._emitError(error);
        }
        return;
      }
      case READY:
      case REJECT: {
        const settle = s?._settle;
        if (!settle) return;
        s._settle = null;
        if (op == READY) settle[0]();
        else settle[1](err());
        if (s._gone) subs.delete(a);
        return;
      }
      case PUBLISHED:
      case PUBLISH_FAILED: {
        const p = this._publishes.get(a);
        if (!p) return;
        this._publishes.delete(a);
        if (op == PUBLISHED) p[0](b ? args[0] : undefined);
        else p[1](err());
        return;
      }
      case STATE: {
        const state = (this._state = STATES[a]);
        const transport = (this._transport = TRANSPORTS[b] ?? null);
        LIVE[a % 5 ? 'add' : 'delete'](this);
        return this._emit('state', state, transport);
      }
      case ERROR:
        return this._emitError(err());
      case RESET:
        return this._emit('reset', args);
      case AUTH:
      case POLL_FN: {
        // The page's `auth()` or poll function `b` (for poll `a`), which may return a promise;
        // its outcome goes to the wasm unless the client was freed meanwhile.
        const auth = op == AUTH;
        const done = auth ? AUTH_DONE : POLL_DONE;
        const f = auth ? this._authHook : this._fns[b];
        new Promise((resolve) => resolve(f())).then(
          (v) => this._freed || input(this, done, a, true, auth ? (isObject(v) ? v : this._ext) : v),
          (e) => this._freed || input(this, done, a, false, auth ? describe(e) : `the poll function failed: ${describe(e)}`),
        );
        return;
      }
      case THROW:
        this._thrown = err();
    }
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
  checkKeys(options, 'poll options', words(`intervalMs pushIntervalMs channel sse bayeux ${PASSED}`));
  // The given ones of `keys` copied into `to`.
  const pick = (keys, to) => {
    for (const k of words(keys)) if (options?.[k] !== undefined) to[k] = options[k];
    return to;
  };
  const channel = options?.channel;
  const sse = options?.sse;
  const bayeux = options?.bayeux;
  if (sse !== undefined && bayeux !== undefined) bad('poll options: give sse or bayeux, not both');
  const endpoint = sse ?? bayeux;
  if ((endpoint !== undefined) != (channel !== undefined)) {
    bad('poll options: channel and an sse or bayeux URL go together');
  }
  if (endpoint !== undefined && typeof endpoint != 'string') bad('poll options: the sse or bayeux URL must be a string');
  const protocol = sse !== undefined ? 'sse' : bayeux !== undefined ? 'bayeux' : 'poll';
  const client = new Client(endpoint ?? url, pick(PASSED, { protocol, poll: pick('intervalMs pushIntervalMs', { url }) }));
  for (const l of Array.isArray(listeners) ? listeners : []) l.off = client.on(l.event, l.callback);
  // A poll-only client still names its subscription; the name is only a label then.
  const sub = client.subscribe(channel ?? 'poll', callback, { hints: channel !== undefined });
  return new Poller(client, sub);
}
