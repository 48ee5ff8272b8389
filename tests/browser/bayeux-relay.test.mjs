// The tidings Bayeux client against tidings-relay in headless Chromium: WebSocket refused,
// WebSocket killed soon after each open (settles on long-polling), and the relay killed and
// restarted with its store under 200 messages/s (every acknowledged message exactly once).
// Then the same restart against a real Faye server, tidings side by side with Faye's own
// browser client, counting what each loses.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import {
  KEY, launchBrowser, loadTidings, openPage, publishAtRate, startFaye, startRelay, tempDir, waitFor,
} from './harness.mjs';

let browser;
before(async () => { browser = await launchBrowser(); });
after(async () => { await browser?.close(); });

/** A page on `server` with a Bayeux client subscribed to `channels`; deliveries in window.got. */
async function subscribedPage(server, channels, options = {}) {
  const p = await openPage(browser, `${server.url}/blank.html`);
  await loadTidings(p.page);
  await p.page.evaluate(async ({ channels, options }) => {
    window.got = Object.fromEntries(channels.map((c) => [c, []]));
    window.transports = [];
    window.errors = [];
    const client = new window.tidings.Client('/bayeux', { protocol: 'bayeux', throttleMs: 0, backoff: { minMs: 100, maxMs: 2000 }, ...options });
    client.on('state', (s, t) => window.transports.push(t));
    client.on('error', (e) => window.errors.push(e.code));
    window.client = client;
    await Promise.all(channels.map((c) => client.subscribe(c, (data, meta) => window.got[c].push([meta.id, data.i])).ready));
  }, { channels, options });
  return p;
}

/** Every acknowledged [id, i] arrived; ids strictly increase per channel (no duplicate, in order). */
function assertExactlyOnce(got, acked) {
  for (const ch of Object.keys(acked)) {
    const ids = got[ch].map(([id]) => Number(id));
    for (let k = 1; k < ids.length; k += 1) {
      assert.ok(ids[k] > ids[k - 1], `${ch}: ids strictly increase at ${k}: ${ids[k - 1]} then ${ids[k]}`);
    }
    const received = new Map(got[ch]);
    const missing = acked[ch].filter(([id]) => !received.has(id));
    assert.deepEqual(missing, [], `${ch}: every acknowledged message arrived`);
    for (const [id, i] of acked[ch]) assert.equal(received.get(id), i, `${ch}: message ${id}`);
  }
}

async function waitForAll(page, acked, timeout = 30_000) {
  return waitFor(async () => {
    const g = await page.evaluate(() => window.got);
    const done = Object.keys(acked).every((ch) => acked[ch].every(([id]) => g[ch].some(([x]) => x === id)));
    return done && g;
  }, { timeout, what: 'every acknowledged message' });
}

describe('against tidings-relay', () => {
  test('WebSocket refused: long-polling carries everything, and transport says so', async (t) => {
    const relay = await startRelay({ args: ['--fault-refuse-ws'] });
    t.after(() => relay.kill());
    const { page, context } = await subscribedPage(relay, ['/lp/a']);
    t.after(() => context.close());
    // `ready` may come just before the first connect's answer makes the state 'push'.
    await waitFor(() => page.evaluate(() => window.client.state === 'push'), { what: 'push' });
    assert.equal(await page.evaluate(() => window.client.transport), 'long-polling');
    const acked = { '/lp/a': [] };
    for (let i = 0; i < 20; i += 1) acked['/lp/a'].push([await relay.publish('/lp/a', { i }), i]);
    assertExactlyOnce(await waitForAll(page, acked), acked);
    assert.ok(!(await page.evaluate(() => window.transports)).includes('websocket'));
  });

  test('WebSocket killed 200 ms after each open: settles on long-polling, nothing lost', async (t) => {
    const relay = await startRelay({ args: ['--fault-kill-ws-after-ms', '200'] });
    t.after(() => relay.kill());
    const { page, context } = await subscribedPage(relay, ['/k/a', '/k/b']);
    t.after(() => context.close());
    const acked = { '/k/a': [], '/k/b': [] };
    const results = await publishAtRate({
      total: 300,
      rate: 100,
      publish: (i) => relay.publish(i % 2 ? '/k/b' : '/k/a', { i }),
    });
    for (const r of results) if (r.ok) acked[r.i % 2 ? '/k/b' : '/k/a'].push([r.v, r.i]);
    assertExactlyOnce(await waitForAll(page, acked), acked);
    await waitFor(() => page.evaluate(() => window.client.transport === 'long-polling'), { what: 'long-polling', timeout: 15_000 });
    assert.equal(await page.evaluate(() => window.client.state), 'push');
  });

  test('relay killed and restarted with its store at 200 msg/s: every acknowledged message exactly once', async (t) => {
    const store = path.join(tempDir(), 'relay-store.jsonl');
    let relay = await startRelay({ store });
    t.after(() => relay.kill());
    const { page, context } = await subscribedPage(relay, ['/z/a', '/z/b']);
    t.after(() => context.close());
    const port = relay.port;
    let down = false;
    const results = await publishAtRate({
      total: 800,
      rate: 200,
      beforeEach: async (i) => {
        if (i === 250) { down = true; await relay.kill(); }
        if (i === 330) { relay = await startRelay({ port, store }); down = false; }
      },
      publish: (i) => (down ? Promise.reject(new Error('down')) : relay.publish(i % 2 ? '/z/b' : '/z/a', { i })),
    });
    const acked = { '/z/a': [], '/z/b': [] };
    for (const r of results) if (r.ok) acked[r.i % 2 ? '/z/b' : '/z/a'].push([r.v, r.i]);
    const total = acked['/z/a'].length + acked['/z/b'].length;
    assert.ok(total > 600, `most publishes were acknowledged (${total})`);
    assertExactlyOnce(await waitForAll(page, acked), acked);
    assert.equal(await page.evaluate(() => window.client.state), 'push');
  });
});

describe('auth() and ext against tidings-relay (publishing needs the key in ext)', () => {
  test('auth() runs before every handshake and its ext goes on every message', async (t) => {
    const relay = await startRelay();
    t.after(() => relay.kill());
    const { page, context } = await openPage(browser, `${relay.url}/blank.html`);
    t.after(() => context.close());
    await loadTidings(page);
    const out = await page.evaluate(async (key) => {
      const { Client } = window.tidings;
      // No key: the relay refuses the publish with its Bayeux error.
      const anonymous = new Client('/bayeux', { protocol: 'bayeux', throttleMs: 0, throttleMs: 0 });
      const refused = await anonymous.publish('/auth/a', 1).then(() => null, (e) => [e.code, e.status, e.message]);
      anonymous.close();
      // A key from auth(), merged with the static ext and with tidings' own replay ext.
      let calls = 0;
      const client = new Client('/bayeux', {
        protocol: 'bayeux', throttleMs: 0,
        ext: { app: 'demo' },
        auth: async () => { calls += 1; return { app: 'demo', tidings: { key } }; },
      });
      const got = [];
      await client.subscribe('/auth/**', (data, meta) => got.push([meta.channel, data])).ready;
      const id = await client.publish('/auth/a/b', { hello: 1 });
      const t0 = Date.now();
      while (got.length < 1 && Date.now() - t0 < 5000) await new Promise((r) => setTimeout(r, 10));
      const gotBefore = [...got];
      // A failing auth() is reported and retried, not fatal.
      let fail = true;
      const flaky = new Client('/bayeux', {
        protocol: 'bayeux', throttleMs: 0,
        backoff: { minMs: 20, maxMs: 50 },
        auth: async () => { if (fail) { fail = false; throw new Error('token service down'); } return { tidings: { key } }; },
      });
      const errors = [];
      flaky.on('error', (e) => errors.push([e.code, e.retrying]));
      await flaky.subscribe('/auth/x', () => {}).ready;
      const flakyId = await flaky.publish('/auth/x', 2);
      const t1 = Date.now();
      while (!got.some(([c]) => c === '/auth/x') && Date.now() - t1 < 5000) await new Promise((r) => setTimeout(r, 10));
      flaky.close();
      client.close();
      return { refused, calls, id, got: gotBefore, errors, flakyId, wildcardSawFlaky: got.some(([c]) => c === '/auth/x') };
    }, KEY);
    assert.deepEqual(out.refused, ['publish', 401, '401::Publish key required']);
    assert.equal(out.calls, 1);
    assert.equal(out.id, '1');
    assert.deepEqual(out.got, [['/auth/a/b', { hello: 1 }]]);
    assert.deepEqual(out.errors[0], ['auth', true]);
    assert.equal(out.flakyId, '1');
    assert.ok(out.wildcardSawFlaky, '/auth/** also gets /auth/x');
  });
});

describe("against a real Faye server, side by side with Faye's browser client", () => {
  test('a server restart at 200 msg/s: what each client loses', async (t) => {
    let faye = await startFaye();
    t.after(() => faye.kill());
    const { page, context } = await subscribedPage(faye, ['/y/a'], { backoff: { minMs: 250, maxMs: 30000 } });
    t.after(() => context.close());
    await page.addScriptTag({ url: '/faye-browser.js' });
    await page.evaluate(async () => {
      window.fayeGot = [];
      const client = new window.Faye.Client('/bayeux');
      await client.subscribe('/y/a', (data) => window.fayeGot.push(data.i));
    });
    const port = faye.port;
    let down = false;
    const results = await publishAtRate({
      total: 1600,
      rate: 200,
      beforeEach: async (i) => {
        if (i === 200) { down = true; await faye.kill(); }
        if (i === 240) { faye = await startFaye({ port }); down = false; }
      },
      publish: (i) => (down ? Promise.reject(new Error('down')) : faye.publish('/y/a', { i })),
    });
    const acked = results.filter((r) => r.ok).map((r) => r.i);
    const last = acked.at(-1);
    // Both clients are back once each has the last message.
    await waitFor(() => page.evaluate((last) => window.got['/y/a'].some(([, i]) => i === last) && window.fayeGot.includes(last), last),
      { what: 'both clients to have the last message', timeout: 30_000 });
    const [tidingsGot, fayeGot] = await page.evaluate(() => [window.got['/y/a'].map(([, i]) => i), window.fayeGot]);
    const lost = (got) => acked.filter((i) => !got.includes(i)).length;
    const dupes = (got) => got.length - new Set(got).size;
    const report = { acknowledged: acked.length, tidingsLost: lost(tidingsGot), fayeLost: lost(fayeGot), tidingsDupes: dupes(tidingsGot), fayeDupes: dupes(fayeGot) };
    console.log(`faye restart at 200 msg/s: ${JSON.stringify(report)}`);
    // Faye keeps no history, so both lose what is published while they re-handshake; tidings
    // comes back sooner (back-off from 250 ms instead of Faye's fixed 5 s) and never duplicates.
    assert.equal(report.tidingsDupes, 0);
    assert.ok(report.tidingsLost < report.fayeLost, `tidings lost ${report.tidingsLost}, Faye lost ${report.fayeLost}`);
  });
});
