// The Faye 1.4 Node client (npm `faye`) against the tidings-relay binary, over WebSocket and
// over long-polling: handshake, subscribe, publish (the key in ext, through a Faye extension)
// and receive, wildcards, a message published through POST /publish, the key being refused,
// the fall-back to long-polling when WebSocket is refused, and the replay extension used from
// a Faye extension. This is the proof that the relay is a Bayeux server a real client accepts.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import faye from 'faye';
import { httpPublish, startRelay, waitFor } from './relay.mjs';

const KEY = `interop-key-${process.pid}`;
const TEST = { timeout: 30_000 };

/**
 * Things to undo when test `t` ends, last first (clients disconnect before their relay
 * stops; otherwise they would keep retrying and keep the process alive).
 */
function cleanups(t) {
  if (!t.cleanups) {
    t.cleanups = [];
    t.after(async () => {
      for (const undo of t.cleanups.reverse()) await undo();
    });
  }
  return t.cleanups;
}

/** A relay with the key and a short connect hold, stopped when the test ends. */
async function relay(t, args = []) {
  const r = await startRelay(['--key', KEY, '--connect-timeout-ms', '2000', ...args]);
  cleanups(t).push(() => r.stop());
  return r;
}

/** Disconnects a Faye client; if the relay does not answer in time, stops it anyway. */
async function disconnect(c) {
  const done = new Promise((resolve) => {
    const p = c.disconnect();
    if (p) p.then(resolve, resolve); else resolve();
  });
  await Promise.race([done, new Promise((r) => setTimeout(r, 2_000))]);
  // No more connects or retries from this client, whatever happened.
  c._state = c.DISCONNECTED;
  c._dispatcher.close();
}

/**
 * A Faye client for `r`, disconnected when the test ends. `seen` collects every message the
 * client receives (replies and data, as they came off the wire, ids included); with `key` an
 * extension puts the publish key in `ext.tidings.key` of every publish.
 */
function client(t, r, { transport, key = KEY, extensions = [] } = {}) {
  const c = new faye.Client(`${r.url}/bayeux`, { retry: 1 });
  if (transport === 'long-polling') c.disable('websocket');
  const seen = [];
  c.addExtension({
    incoming(message, callback) { seen.push(message); callback(message); },
  });
  if (key) {
    c.addExtension({
      outgoing(message, callback) {
        if (!message.channel.startsWith('/meta/')) {
          message.ext = { ...message.ext, tidings: { ...message.ext?.tidings, key } };
        }
        callback(message);
      },
    });
  }
  for (const e of extensions) c.addExtension(e);
  cleanups(t).push(() => disconnect(c));
  return { c, seen, data: () => seen.filter((m) => m.successful === undefined && 'data' in m) };
}

/** Subscribes and resolves when the relay confirmed it; `got` collects `[channel, data]`. */
async function subscribe(c, channel, got) {
  const sub = c.subscribe(channel, () => {}).withChannel((ch, data) => got.push([ch, data]));
  await sub;
  return sub;
}

for (const transport of ['websocket', 'long-polling']) {
  describe(`the Faye 1.4 client over ${transport}`, () => {
    test('handshakes, subscribes, publishes with the key and receives with the sequence number', TEST, async (t) => {
      const r = await relay(t);
      const { c, seen, data } = client(t, r, { transport });
      const got = [];
      await subscribe(c, '/chat/room', got);

      const handshake = seen.find((m) => m.channel === '/meta/handshake');
      assert.equal(handshake.successful, true);
      assert.match(handshake.clientId, /^[0-9a-f]{40}$/);
      assert.deepEqual(handshake.supportedConnectionTypes, ['long-polling', 'websocket']);
      assert.deepEqual(handshake.ext, { tidings: { replay: true } });
      assert.equal(c._dispatcher.connectionType, transport);

      await c.publish('/chat/room', { text: 'hello' });
      await c.publish('/chat/room', { text: 'again' });
      await waitFor(() => got.length >= 2, { what: 'both messages' });
      assert.deepEqual(got, [['/chat/room', { text: 'hello' }], ['/chat/room', { text: 'again' }]]);
      assert.deepEqual(data().map((m) => [m.channel, m.id]), [['/chat/room', '1'], ['/chat/room', '2']]);
      const replies = seen.filter((m) => m.channel === '/chat/room' && m.successful === true);
      assert.deepEqual(replies.map((m) => m.ext), [{ tidings: { id: '1' } }, { tidings: { id: '2' } }]);
      assert.equal(c._dispatcher.connectionType, transport, 'the transport stayed');
    });

    test('wildcard subscriptions match one segment or any depth', TEST, async (t) => {
      const r = await relay(t);
      const { c } = client(t, r, { transport });
      const one = [];
      const deep = [];
      await subscribe(c, '/wild/*', one);
      await subscribe(c, '/deep/**', deep);
      for (const channel of ['/wild/a', '/wild/a/b', '/deep/x', '/deep/x/y', '/other', '/wild/end']) {
        await c.publish(channel, channel);
      }
      await waitFor(() => one.length >= 2 && deep.length >= 2, { what: 'the wildcard deliveries' });
      // In publish order: '/wild/end' came after '/wild/a/b', which never matched '/wild/*'.
      assert.deepEqual(one, [['/wild/a', '/wild/a'], ['/wild/end', '/wild/end']]);
      assert.deepEqual(deep, [['/deep/x', '/deep/x'], ['/deep/x/y', '/deep/x/y']]);
    });

    test('a message published through POST /publish reaches the Faye subscriber', TEST, async (t) => {
      const r = await relay(t);
      const { c, data } = client(t, r, { transport, key: null });
      const got = [];
      await subscribe(c, '/news/*', got);
      const first = await httpPublish(r.url, KEY, '/news/today', { headline: 'relay speaks Bayeux' });
      const second = await httpPublish(r.url, KEY, '/news/today', [1, 2, 3]);
      assert.deepEqual([first, second], ['1', '2']);
      await waitFor(() => got.length >= 2, { what: 'the HTTP publishes' });
      assert.deepEqual(got, [['/news/today', { headline: 'relay speaks Bayeux' }], ['/news/today', [1, 2, 3]]]);
      assert.deepEqual(data().map((m) => m.id), [first, second], 'the same ids as POST /publish answered');
    });

    test('publishing without the key, or with a wrong one, is refused', TEST, async (t) => {
      const r = await relay(t);
      for (const key of [null, 'not-the-key']) {
        const { c } = client(t, r, { transport, key });
        const publishing = new Promise((resolve, reject) => c.publish('/chat/room', 'x').then(resolve, reject));
        await assert.rejects(publishing, (e) => {
          assert.equal(e.code, 401);
          assert.equal(e.message, key ? 'Publish key refused' : 'Publish key required');
          return true;
        });
      }
      // Nothing was stored: the first accepted message is number 1.
      assert.equal(await httpPublish(r.url, KEY, '/chat/room', 'ok'), '1');
    });
  });
}

test('with WebSocket refused, the Faye client falls back to long-polling and works', TEST, async (t) => {
  const r = await relay(t, ['--fault-refuse-ws']);
  const { c } = client(t, r, {});
  const got = [];
  await subscribe(c, '/fallback', got);
  await c.publish('/fallback', 'still here');
  await waitFor(() => got.length >= 1, { what: 'the message over long-polling' });
  assert.deepEqual(got, [['/fallback', 'still here']]);
  assert.equal(c._dispatcher.connectionType, 'long-polling');
});

test('a Faye extension can resume a channel with the tidings replay extension', TEST, async (t) => {
  const r = await relay(t, ['--history', '3']);
  for (const n of [1, 2, 3, 4]) await httpPublish(r.url, KEY, '/resume/a', n);
  await httpPublish(r.url, KEY, '/resume/b', 'b1');
  const replay = {
    outgoing(message, callback) {
      if (message.channel === '/meta/subscribe') {
        message.ext = { tidings: { replay: { '/resume/a': '2', '/resume/b': '0', '/resume/c': '9' } } };
      }
      callback(message);
    },
  };
  const { c, seen } = client(t, r, { extensions: [replay] });
  const got = [];
  await subscribe(c, '/resume/*', got);
  const reply = seen.find((m) => m.channel === '/meta/subscribe');
  assert.deepEqual(reply.ext, { tidings: { reset: ['/resume/c'] } });
  await waitFor(() => got.length >= 3, { what: 'the replay' });
  await httpPublish(r.url, KEY, '/resume/a', 5);
  await waitFor(() => got.length >= 4, { what: 'the live message' });
  const a = got.filter(([ch]) => ch === '/resume/a').map(([, d]) => d);
  const b = got.filter(([ch]) => ch === '/resume/b').map(([, d]) => d);
  assert.deepEqual(a, [3, 4, 5]);
  assert.deepEqual(b, ['b1']);
});
