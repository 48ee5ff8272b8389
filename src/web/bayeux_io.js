// The Bayeux side of the browser I/O (see io.js): long-polling POSTs, WebSockets, and the JSON
// of the messages they carry. A module of its own, so a build without Bayeux (tidings/sse)
// does not carry it.
import { HTTP, HTTP_FAILED, WS_CLOSED, WS_MESSAGE, WS_OPEN, describe, isObject } from './io.js';

// An id as text: ids are strings or whole numbers on the wire.
const text = (v) => (typeof v == 'string' ? v : Number.isSafeInteger(v) ? String(v) : undefined);
// Milliseconds as decimal digits when a finite number not below zero (whole, at most 2^53 - 1
// so the digits are exact), else undefined. Text: the wasm reads it with the digit parser it
// has anyway, not a float-to-integer conversion of its own.
const ms = (n) =>
  Number.isFinite(n) && n >= 0 ? String(Math.min(Math.floor(n), Number.MAX_SAFE_INTEGER)) : undefined;
// advice.reconnect as the index bayeux_json.rs reads (anything else: not a number), so the
// wasm compares no strings for it.
const reconnect = { retry: 0, handshake: 1, none: 2 };
// A list of strings as one text, one per line (channel names and ids hold no line breaks).
const lines = (list) => (Array.isArray(list) ? list.filter((x) => typeof x == 'string').join('\n') : undefined);

// A Bayeux message as the fields the session reads, in the order bayeux_json.rs reads them:
// the wasm takes them by index, so no key string crosses into it per field.
const fields = (m) => {
  const a = isObject(m.advice) ? m.advice : {};
  const t = isObject(m.ext) && isObject(m.ext.tidings) ? m.ext.tidings : {};
  const last = isObject(t.last)
    ? Object.entries(t.last).flatMap(([c, id]) => (text(id) === undefined ? [] : [c, text(id)]))
    : [];
  return [
    m.channel, text(m.id), m.clientId, m.successful, m.error,
    Array.isArray(m.subscription) ? m.subscription[0] : m.subscription,
    reconnect[a.reconnect], ms(a.interval), ms(a.timeout), m.data, lines(m.supportedConnectionTypes),
    !!t.replay, lines(t.reset), text(t.id), last.join('\n'),
  ];
};
const isMessage = (m) => isObject(m) && typeof m.channel == 'string';
// Most messages are plain deliveries: those cross as [channel, id, data], three reads instead
// of fifteen, and the channel as null when it is the previous delivery's in the same batch (the
// wasm reuses that name rather than decoding the same string again).
const plain = (m) => m.data !== undefined && m.successful === undefined && m.error === undefined
  && m.advice === undefined && m.clientId === undefined && m.ext?.tidings === undefined
  && !m.channel.startsWith('/meta/');
const batch = (list) => {
  let last;
  return list.filter(isMessage).map((m) => {
    if (!plain(m)) return fields(m);
    const same = m.channel === last;
    last = m.channel;
    return [same ? null : m.channel, text(m.id), m.data];
  });
};

// A Bayeux body or frame, parsed here where it arrives: [messages as fields] or
// [undefined, why not]. A message that is not a Bayeux object is skipped (the rest of its batch
// still counts); a body that is not JSON, or not an object or array, fails whole.
const parse = (body) => {
  if (typeof body != 'string') return [undefined, 'a binary frame'];
  let v;
  try {
    v = JSON.parse(body);
  } catch {
    return [undefined, 'the body is not JSON'];
  }
  if (!isObject(v)) return [undefined, 'the body is neither a message nor an array of them'];
  return [batch(Array.isArray(v) ? v : [v])];
};

// The JSON text of a batch the wasm gave as command arguments, eleven per message and then
// the replay map's (see src/web/bayeux_json.rs): channel, id, clientId, subscription,
// connectionType, version, supportedConnectionTypes (one per line), advice's timeout (the
// only advice a client gives), data, ext, and the number of channels in ext.tidings.replay
// followed by each channel and its id. What is undefined is left out by JSON.stringify.
const encode = (args) => {
  const list = [];
  for (let i = 0; i < args.length; ) {
    const [channel, id, clientId, subscription, connectionType, version, types, timeout, data, ext, n] =
      args.slice(i, (i += 11));
    let replay;
    for (let k = 0; k < n; k++) (replay ??= {})[args[i++]] = args[i++];
    list.push({
      version,
      supportedConnectionTypes: types?.split('\n'),
      advice: timeout && { timeout: +timeout },
      channel, id, clientId, subscription, connectionType, data,
      // A copy, so the page's own object is never changed.
      ext: replay ? { ...ext, tidings: { ...ext?.tidings, replay } } : ext,
    });
  }
  return JSON.stringify(list);
};

/** A Bayeux long-polling POST (arguments: URL, headers, the batch); its answer is read as
 *  text. */
export function post(io, id) {
  const [url, headers, ...messages] = io.take();
  const [live, response] = io._fetch(io._requests, id, url, 'POST', headers, encode(messages));
  const done = (kind, a, b, c) => {
    if (!live()) return;
    io._requests.delete(id);
    io._report(kind, id, a, b, c);
  };
  response
    .then((r) => r.text().then((t) => done(HTTP, r.status, ...parse(t))))
    .catch((e) => done(HTTP_FAILED, describe(e)));
}

/** Opens a WebSocket (argument: the URL); a socket the browser refuses at once (a bad URL,
 *  CSP) reports closed. */
export function socket(io, id) {
  const [url] = io.take();
  let ws;
  try {
    ws = new WebSocket(url);
  } catch {
    Promise.resolve().then(() => io._report(WS_CLOSED, id));
    return;
  }
  io._sockets.set(id, ws);
  ws.onopen = () => io._report(WS_OPEN, id);
  ws.onmessage = (e) => io._report(WS_MESSAGE, id, ...parse(e.data));
  // `error` is always followed by `close`: one handler covers both.
  ws.onclose = () => {
    io._drop(id);
    io._report(WS_CLOSED, id);
  };
}

/** Sends one text frame of a batch (the arguments); dropped if the socket is not open any
 *  more: its close reports it. */
export function send(io, id) {
  const frame = encode(io.take());
  try {
    io._sockets.get(id)?.send(frame);
  } catch {
    // Not open yet or any more.
  }
}
