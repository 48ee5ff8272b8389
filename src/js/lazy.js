/*! tidings/lazy: the API of 'tidings' (Client, poll, init) with nothing of the wasm client
 * loaded up front. It is imported and compiled at the first subscribe, publish or poll, so a
 * page that never subscribes pays for this file only; and only the protocol its clients use
 * ('tidings/sse' or 'tidings/bayeux', about 29 and 34 KB gzip, against 42 KB for both). */
// Two literal imports, so bundlers make a chunk (and a wasm asset) for each.
const start = (p) => (p == 'bayeux' ? import('./tidings-bayeux.js') : import('./tidings-sse.js')).then((m) => m.default().then(() => m));
// <shared> From here to </shared> this file is also the body of the script-tag build
// (tidings.global.js), which defines its own `start`. xtask's build inserts it there and
// minifies the whole, so comments here cost the script tag nothing.
// load(protocol): the module of one protocol, loaded once. Bayeux's for 'bayeux'; SSE's for
// the rest (SSE is the default protocol, and both modules poll).
const loading = {};
const load = (p) => {
  p = p == 'bayeux' ? p : 'sse';
  // A failed load is tried again at the next subscribe.
  return loading[p] || (loading[p] = start(p).catch((e) => { loading[p] = null; e.code = 'network'; throw e; }));
};
const closed = () => Object.assign(new Error('tidings: closed'), { code: 'closed', retrying: false });
const quiet = (p) => { p.catch(() => {}); return p; };
// on() before the client exists: kept in `pending`, and attached to the client before it starts
// so the listener hears the first state change. The returned remover is idempotent.
const later = (pending, event, callback) => {
  if (!['state', 'error', 'reset'].includes(event)) throw new TypeError(`on(): unknown event ${event}`);
  if (typeof callback != 'function') throw new TypeError('on(): callback must be a function');
  const entry = { event, callback, off: null };
  pending.push(entry);
  return () => {
    if (entry.off) entry.off();
    const i = pending.indexOf(entry);
    if (i >= 0) pending.splice(i, 1);
  };
};
// The client could not be made: the module did not load ('network'), or an option was bad (the
// loaded module checks the options, so with the lazy entry a bad option surfaces here, a
// TypeError from its `new Client` or `poll`, and not from the lazy `new Client`).
const failed = (pending, err) => {
  if (!err.code) err.code = 'invalid-option';
  for (const e of pending) if (e.event == 'error') e.callback(err);
};

class Subscription {
  constructor(channel) {
    this.channel = channel;
    this._sub = null;
    this._gone = false;
  }
  unsubscribe() {
    this._gone = true;
    if (this._sub) this._sub.unsubscribe();
  }
}

class Client {
  constructor(url, options) {
    this._url = url;
    this._options = options;
    this._client = null;
    this._pending = [];
    this._queue = [];
    this._closed = false;
    this._started = null;
  }
  // Resolves to the loaded module's Client, made on first need with the early listeners attached; the
  // subscribes that waited for it then go out together, in order (one request).
  _start() {
    if (!this._started) {
      this._started = load(this._options && this._options.protocol).then((m) => {
        if (this._closed) throw closed();
        const c = new m.Client(this._url, this._options);
        for (const e of this._pending) e.off = c.on(e.event, e.callback);
        this._client = c;
        this._flush(c);
        return c;
      }).catch((e) => {
        this._started = null;
        this._flush(null, e);
        if (!this._closed) failed(this._pending, e);
        throw e;
      });
    }
    return this._started;
  }
  _flush(c, err) {
    for (const q of this._queue.splice(0)) q(c, err);
  }
  subscribe(channel, callback, options) {
    if (this._client) return this._client.subscribe(channel, callback, options);
    if (typeof channel != 'string') throw new TypeError('subscribe(): channel must be a string');
    if (typeof callback != 'function') throw new TypeError('subscribe(): callback must be a function');
    const sub = new Subscription(channel);
    // Like the loaded client's: a rejection the page never looks at is not an unhandled one.
    sub.ready = quiet(new Promise((resolve, reject) => {
      this._queue.push((c, err) => {
        if (err || sub._gone) return reject(err || closed());
        try {
          sub._sub = c.subscribe(channel, callback, options);
          resolve(sub._sub.ready);
        } catch (e) {
          reject(e);
        }
      });
    }));
    quiet(this._start());
    return sub;
  }
  publish(channel, data) {
    return this._client ? this._client.publish(channel, data) : this._start().then((c) => c.publish(channel, data));
  }
  on(event, callback) {
    return this._client ? this._client.on(event, callback) : later(this._pending, event, callback);
  }
  get state() {
    return this._client ? this._client.state : this._closed ? 'closed' : 'idle';
  }
  get transport() {
    return this._client ? this._client.transport : null;
  }
  close() {
    this._closed = true;
    if (this._client) this._client.close();
    else this._flush(null, closed());
  }
}

// tidings.poll(url, callback, options): the handle is returned at once; the loaded poll() is made
// when the client has loaded, with the early listeners handed to it before it starts.
const poll = (url, callback, options) => {
  let real = null;
  let stopped = false;
  const pending = [];
  const handle = {
    stop() {
      stopped = true;
      if (real) real.stop();
    },
    on: (event, cb) => (real ? real.on(event, cb) : later(pending, event, cb)),
    get state() {
      return real ? real.state : stopped ? 'closed' : 'idle';
    },
    get transport() {
      return real ? real.transport : null;
    },
  };
  // poll() pushes over Bayeux when given `bayeux` and no `sse` (as the loaded poll() decides).
  const o = options || {};
  handle.ready = quiet(load(o.sse === undefined && o.bayeux !== undefined && 'bayeux').then((m) => {
    if (stopped) throw closed();
    real = m.poll(url, callback, options, pending);
    return real.ready;
  }).catch((e) => {
    // Errors of the running poller reached its listeners already.
    if (!real && !stopped) failed(pending, e);
    throw e;
  }));
  return handle;
};
// </shared>
export { load as default, Client, poll };
