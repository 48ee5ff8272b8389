// The Bayeux side of the browser I/O (see io.js): long-polling POSTs, WebSockets, and the
// parsing of the messages they carry. A module of its own, so a build without Bayeux
// (tidings/sse) does not carry it.
import { HTTP, HTTP_FAILED, WS_CLOSED, WS_MESSAGE, WS_OPEN, describe } from './io.js';

// A Bayeux message as the fields the session reads, in the order bayeux_json.rs reads them:
// the wasm takes them by index, so no key string crosses into it per field.
const fields = (m) => [
  m.channel, m.id, m.clientId, m.successful, m.error,
  Array.isArray(m.subscription) ? m.subscription[0] : m.subscription,
  m.advice, m.data, m.supportedConnectionTypes, m.ext?.tidings,
];
const isMessage = (m) => typeof m == 'object' && m !== null && typeof m.channel == 'string';
// Most messages are plain deliveries: those cross as [channel, id, data], three reads instead
// of ten, and the channel as null when it is the previous delivery's in the same batch (the
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
    return [same ? null : m.channel, m.id, m.data];
  });
};

// A Bayeux body or frame, parsed here where it arrives: [messages as fields] or
// [undefined, why not]. A message that is not a Bayeux object is skipped (the rest of its batch
// still counts); a body that is not JSON, or not an object or array, fails whole.
const parse = (text) => {
  if (typeof text != 'string') return [undefined, 'a binary frame'];
  let v;
  try {
    v = JSON.parse(text);
  } catch {
    return [undefined, 'the body is not JSON'];
  }
  if (typeof v != 'object' || v === null) return [undefined, 'the body is neither a message nor an array of them'];
  return [batch(Array.isArray(v) ? v : [v])];
};

/** A Bayeux long-polling POST of `body` (JSON text); its answer is read as text. */
export function post(io, id, url, headers, body) {
  const { live, response } = io._fetch(io._requests, id, url, 'POST', headers, body);
  const done = (kind, a, b, c) => {
    if (!live()) return;
    io._requests.delete(id);
    io._report(kind, id, a, b, c);
  };
  response
    .then((r) => r.text().then((text) => done(HTTP, r.status, ...parse(text))))
    .catch((e) => done(HTTP_FAILED, describe(e)));
}

/** Opens a WebSocket; a socket the browser refuses at once (a bad URL, CSP) reports closed. */
export function socket(io, id, url) {
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

/** Sends one text frame (dropped if the socket is not open any more: its close reports it). */
export function send(io, id, text) {
  try {
    io._sockets.get(id)?.send(text);
  } catch {
    // Not open yet or any more.
  }
}
