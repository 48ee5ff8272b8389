// The benchmark page: one client kind (from ?kind=) against one server (?server=relay|faye),
// with the measurements run inside the page on one clock (performance.now()). Driven by
// tests/bench/clients.mjs through playwright.
//
// Kinds: tidings-sse, tidings-ws, tidings-lp (tidings over SSE, Bayeux WebSocket, Bayeux
// long-polling), faye-ws, faye-lp (Faye 1.4's browser client), res (reconnecting-eventsource).
// Every payload is {k, i}: k says which measurement it belongs to, so one callback serves all.
const q = new URLSearchParams(location.search);
const KIND = q.get('kind');
const SERVER = q.get('server');
const KEY = q.get('key');

let library = null;

function loadScript(src) {
  return new Promise((resolve, reject) => {
    const s = document.createElement('script');
    s.src = src;
    s.onload = resolve;
    s.onerror = () => reject(new Error(`cannot load ${src}`));
    document.head.append(s);
  });
}

/** Loads the client library once (the wasm module is compiled here for tidings). */
async function load() {
  if (library) return library;
  if (KIND.startsWith('tidings')) {
    const m = await import('/pkg/tidings.js');
    const wasm = await m.default();
    library = { m, wasm };
  } else if (KIND.startsWith('faye')) {
    await loadScript('/vendor/faye-browser.js');
    library = { Faye: window.Faye };
  } else if (KIND === 'res') {
    library = { RES: (await import('/vendor/reconnecting-eventsource.js')).default };
  } else {
    throw new Error(`unknown kind ${KIND}`);
  }
  return library;
}

/** Bounded wait for a condition (used for Faye's switch to WebSocket, which has no event we can await per message). */
async function until(fn, ms, what) {
  const deadline = performance.now() + ms;
  while (!fn()) {
    if (performance.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

/**
 * One client of this page's kind subscribed to `channels` (all in the same tick, so every
 * client can put them on one connection); resolves once every subscription is live.
 */
async function connect(channels, onMessage) {
  const lib = await load();
  if (KIND.startsWith('tidings')) {
    const { Client } = lib.m;
    // throttleMs 0: the default 500 ms throttle folds bursts by design, which would make a
    // throughput or latency run measure the throttle instead of the client.
    const client = KIND === 'tidings-sse'
      ? new Client('/events/', { protocol: 'sse', throttleMs: 0, maxChannelsPerStream: 100 })
      : new Client('/bayeux', { protocol: 'bayeux', throttleMs: 0, transports: [KIND === 'tidings-ws' ? 'websocket' : 'long-polling'] });
    // State changes and errors with their time, to explain a slow start.
    client.on('state', (st, t) => state.events.push([Math.round(performance.now()), st, t]));
    client.on('error', (e) => state.events.push([Math.round(performance.now()), 'error', e.code]));
    const subs = channels.map((c) => client.subscribe(c, (data) => onMessage(data)));
    state.subscribedAt = performance.now(); // the synchronous part: client and subscribe calls
    await Promise.all(subs.map((s) => s.ready));
    return { close: () => client.close(), transport: () => client.transport };
  }
  if (KIND.startsWith('faye')) {
    const client = new lib.Faye.Client('/bayeux');
    // The relay has no Faye EventSource transport; turned off on both servers alike.
    client.disable('eventsource');
    if (KIND === 'faye-lp') client.disable('websocket');
    const subs = channels.map((c) => client.subscribe(c, onMessage));
    state.subscribedAt = performance.now();
    await Promise.all(subs);
    // Faye starts on long-polling and upgrades to WebSocket by itself: measure once it has.
    if (KIND === 'faye-ws') await until(() => client._dispatcher.connectionType === 'websocket', 10_000, 'Faye on WebSocket');
    return { close: () => client.disconnect(), transport: () => client._dispatcher.connectionType };
  }
  // reconnecting-eventsource: one EventSource naming every channel; live once it opened.
  const url = `/events/?${channels.map((c) => `channel=${encodeURIComponent(c)}`).join('&')}`;
  const es = new lib.RES(url);
  state.subscribedAt = performance.now();
  es.onmessage = (e) => onMessage(JSON.parse(e.data));
  await new Promise((resolve, reject) => {
    es.onopen = resolve;
    setTimeout(() => reject(new Error('EventSource did not open in 10 s')), 10_000);
  });
  return { close: () => es.close(), transport: () => 'sse' };
}

/** Publishes a batch of {channel, data} from the page (the relay's batch POST, or the Faye server's). */
async function publish(batch) {
  const res = SERVER === 'relay'
    ? await fetch('/publish', {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${KEY}` },
      body: JSON.stringify({ messages: batch }),
    })
    : await fetch('/server-publish-batch', { method: 'POST', body: JSON.stringify(batch) });
  if (!res.ok) throw new Error(`publish ${res.status}: ${await res.text()}`);
}

// What the callbacks feed.
const state = {
  lat: null, // { i, resolve } of the message being waited for
  tput: null, // { seen, count, dupes, n, resolve }
  chan: null, // { seen, count, dupes, resolve }
  restartAt: null, // Date.now() of the first message after a restart
  restartDupes: 0,
  firstAt: null, // performance.now() (ms since navigation) of the first message
  readyAt: null,
  other: 0,
  events: [], // [ms, state or 'error', transport or code] of tidings clients
};

function onMessage(data) {
  switch (data?.k) {
    case 'l':
      if (state.lat && state.lat.i === data.i) state.lat.resolve(performance.now());
      break;
    case 't': {
      const t = state.tput;
      if (!t) break;
      if (t.seen[data.i]) t.dupes += 1;
      else {
        t.seen[data.i] = 1;
        t.count += 1;
        if (t.count === t.n) t.resolve(performance.now());
      }
      break;
    }
    case 'c': {
      const c = state.chan;
      if (!c) break;
      if (c.seen[data.i]) c.dupes += 1;
      else {
        c.seen[data.i] = 1;
        c.count += 1;
        if (c.count === c.seen.length) c.resolve(performance.now());
      }
      break;
    }
    case 'r':
      if (data.i >= 0 && state.restartAt === null) state.restartAt = Date.now();
      break;
    case 'f':
      if (state.firstAt === null) state.firstAt = performance.now();
      break;
    default:
      state.other += 1;
  }
}

function timeout(ms, value) {
  return new Promise((resolve) => setTimeout(() => resolve(value), ms));
}

function percentile(sorted, p) {
  if (!sorted.length) return null;
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)];
}

let main = null;

window.bench = {
  state,
  load,
  /** The wasm linear memory (tidings only): not part of the JS heap. */
  // The build gives the wasm's exports one-letter names: the memory is found by its type.
  wasmBytes: () => Object.values(library?.wasm ?? {}).find((v) => v instanceof WebAssembly.Memory)?.buffer.byteLength ?? null,

  /** The main client: latency, throughput and restart channels on one connection. */
  async setup(prefix) {
    main = await connect([`${prefix}/lat`, `${prefix}/tput`, `${prefix}/restart`], onMessage);
    return main.transport();
  },

  /** publish→callback latency over `n` sequential messages (after `warm` unmeasured ones). */
  async latency(prefix, n, warm, limitMs) {
    const channel = `${prefix}/lat`;
    const times = [];
    let lost = 0;
    const deadline = performance.now() + limitMs;
    for (let i = 0; i < warm + n && performance.now() < deadline; i += 1) {
      const t0 = performance.now();
      const arrived = new Promise((resolve) => { state.lat = { i, resolve }; });
      const sent = publish([{ channel, data: { k: 'l', i } }]);
      const t1 = await Promise.race([arrived, timeout(5_000, null)]);
      await sent;
      if (t1 === null) lost += 1;
      else if (i >= warm) times.push(t1 - t0);
    }
    state.lat = null;
    times.sort((a, b) => a - b);
    return { n, measured: times.length, lost, p50: percentile(times, 50), p99: percentile(times, 99), max: times.at(-1) ?? null, transport: main.transport() };
  },

  /** `n` messages published in batches of `batch`, `inflight` requests at a time; counted here. */
  async throughput(prefix, n, batch, inflight, limitMs) {
    const channel = `${prefix}/tput`;
    const done = new Promise((resolve) => {
      state.tput = { seen: new Uint8Array(n), count: 0, dupes: 0, n, resolve };
    });
    const t0 = performance.now();
    let next = 0;
    const errors = [];
    const worker = async () => {
      while (next < n) {
        const from = next;
        next = Math.min(n, next + batch);
        const msgs = [];
        for (let i = from; i < next; i += 1) msgs.push({ channel, data: { k: 't', i } });
        try { await publish(msgs); } catch (e) { errors.push(String(e)); }
      }
    };
    const publishing = Promise.all(Array.from({ length: inflight }, worker));
    const end = await Promise.race([done, timeout(limitMs, null)]);
    const published = await publishing.then(() => performance.now());
    const t = state.tput;
    const ms = (end ?? performance.now()) - t0;
    return {
      n, received: t.count, lost: n - t.count, dupes: t.dupes, ms, publishMs: published - t0,
      rate: t.count / (ms / 1000), timedOut: end === null, errors: errors.slice(0, 3),
    };
  },

  /** Duplicates of the throughput run seen since it ended. */
  tputDupes: () => state.tput?.dupes ?? null,

  /** 100 channels on a second client (one connection): time until live, then until one message on each arrived. */
  async channels(prefix, count, limitMs) {
    const channels = Array.from({ length: count }, (_, i) => `${prefix}/c${i}`);
    const t0 = performance.now();
    const client = await Promise.race([connect(channels, onMessage), timeout(limitMs, null)]);
    if (!client) return { count, liveMs: null, allMs: null, timedOut: true };
    const live = performance.now();
    const done = new Promise((resolve) => { state.chan = { seen: new Uint8Array(count), count: 0, dupes: 0, resolve }; });
    await publish(channels.map((channel, i) => ({ channel, data: { k: 'c', i } })));
    const end = await Promise.race([done, timeout(limitMs, null)]);
    const result = { count, liveMs: live - t0, callsMs: state.subscribedAt - t0, allMs: end === null ? null : end - live, received: state.chan.count, dupes: state.chan.dupes, transport: client.transport() };
    client.close();
    return result;
  },

  /** Auto mode (?auto=first): subscribe at once and note when the first message arrives. */
  async first(prefix) {
    await connect([`${prefix}/first`], onMessage);
    state.readyAt = performance.now();
  },
};

if (q.get('auto') === 'first') {
  window.bench.first(q.get('prefix')).catch((e) => { state.error = String(e); });
}
